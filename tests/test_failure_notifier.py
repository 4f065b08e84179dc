"""The failure notifier against a real SMTP server (the local mail catcher)."""

from __future__ import annotations

import json
import re
import secrets
from types import SimpleNamespace

import pendulum
import pytest
from support.net import free_port

from nightshift_core.local.mail_catcher import read_messages, start


@pytest.fixture
def mailbox(tmp_path, monkeypatch):
    port = free_port()
    controller = start(tmp_path / "mail", port=port)
    conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {
            "from_email": "alerts@nightshift.test",
            "disable_ssl": True,
            "disable_tls": True,
            "retry_limit": 0,
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTSHIFT_SMTP", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_VAR_NIGHTSHIFT_ALERT_TO", "oncall@nightshift.test, lead@nightshift.test")
    yield tmp_path / "mail"
    controller.stop()


def failure_context(exception: BaseException) -> dict:
    ti = SimpleNamespace(
        dag_id="sync_classicmodels",
        task_id="load_orders",
        run_id="scheduled__2026-11-21T00:00:00+00:00",
        try_number=2,
        log_url="http://127.0.0.1:8080/dags/sync_classicmodels/runs/x/tasks/load_orders?try_number=2",
    )
    return {"ti": ti, "exception": exception, "logical_date": pendulum.datetime(2026, 11, 21, tz="UTC")}


def raise_and_catch(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_alert_is_delivered_with_everything_needed(mailbox):
    from nightshift.notifiers import FailureEmailNotifier

    error = raise_and_catch(RuntimeError("cannot reach mysql://etl:s3cret@10.0.0.5/classicmodels"))
    FailureEmailNotifier()(failure_context(error))

    (message,) = read_messages(mailbox)
    assert message["Subject"] == "[nightshift] FAILED sync_classicmodels.load_orders (try 2)"
    assert message["From"] == "alerts@nightshift.test"
    assert message["X-Envelope-To"] == "oncall@nightshift.test, lead@nightshift.test"
    assert message["X-Nightshift-Dag"] == "sync_classicmodels"
    html = message.get_body(("html",)).get_content()
    for needle in (
        "sync_classicmodels",
        "load_orders",
        "scheduled__2026-11-21T00:00:00+00:00",
        "2026-11-21T00:00:00+00:00",
        "try_number=2",
        "RuntimeError: cannot reach",
        "Traceback",
    ):
        assert needle in html, needle
    assert "s3cret" not in html, "credentials in a URI must be redacted"
    text = message.get_body(("plain",)).get_content()  # the same alert as plain text, redacted too
    assert "Task: load_orders" in text and "RuntimeError: cannot reach mysql://***:***@10.0.0.5" in text
    assert "s3cret" not in message.as_string()
    assert (
        message["Message-ID"].endswith("@nightshift.test>") and message["Auto-Submitted"] == "auto-generated"
    )


@pytest.mark.parametrize("password", ["Xk9/Qz7:Lm3", "Hq4@Vb8/Rt2@Wn6"])
def test_url_passwords_holding_slash_or_at_are_redacted(mailbox, password):
    from nightshift.notifiers import FailureEmailNotifier

    error = raise_and_catch(RuntimeError(f"cannot reach mysql://etl:{password}@10.0.0.5/classicmodels"))
    FailureEmailNotifier()(failure_context(error))

    (message,) = read_messages(mailbox)
    html = message.get_body(("html",)).get_content()
    assert "cannot reach mysql://***:***@10.0.0.5/classicmodels" in html
    for piece in re.split("[/:@]", password):
        assert piece not in html, f"{piece!r} of the password reached the alert"


@pytest.fixture
def masked_secret():
    from airflow.sdk._shared.secrets_masker import reset_secrets_masker
    from airflow.sdk.log import mask_secret

    secret = f"tok-{secrets.token_hex(12)}"
    mask_secret(secret)
    yield secret
    reset_secrets_masker()


def test_secrets_known_to_airflows_masker_are_redacted(mailbox, masked_secret):
    from nightshift.notifiers.email import FailureEmailNotifier, alert_from_context

    error = raise_and_catch(PermissionError(f"the API refused token {masked_secret} (401)"))
    alert = alert_from_context(failure_context(error))
    FailureEmailNotifier().send(alert, subject=f"[nightshift] {masked_secret} failed")

    (message,) = read_messages(mailbox)
    html = message.get_body(("html",)).get_content()
    assert "PermissionError: the API refused token *** (401)" in html
    assert masked_secret not in html, "error and traceback must pass through the masker"
    assert message["Subject"] == "[nightshift] *** failed"


def test_explicit_recipients_and_sender_win_over_the_variable_and_the_connection(mailbox):
    from nightshift.notifiers import FailureEmailNotifier

    notifier = FailureEmailNotifier(
        to=["someone@nightshift.test"], from_email="On call <oncall@nightshift.test>"
    )
    notifier(failure_context(ValueError("x")))
    (message,) = read_messages(mailbox)
    assert message["X-Envelope-To"] == "someone@nightshift.test"
    assert message["From"] == "On call <oncall@nightshift.test>"


def test_missing_recipients_is_a_clear_error(mailbox, monkeypatch):
    from nightshift.notifiers.email import AlertConfigError, FailureEmailNotifier

    monkeypatch.delenv("AIRFLOW_VAR_NIGHTSHIFT_ALERT_TO")
    with pytest.raises(AlertConfigError, match="nightshift_alert_to"):
        FailureEmailNotifier().notify(failure_context(ValueError("x")))
    assert read_messages(mailbox) == []


def test_unreachable_smtp_server_raises_naming_the_connection(monkeypatch):
    from nightshift.hooks.mail import MailConnectionError
    from nightshift.notifiers import FailureEmailNotifier

    port = free_port()
    conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": {"from_email": "a@b.c",
            "disable_ssl": True, "disable_tls": True, "retry_limit": 0, "timeout": 2}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTSHIFT_SMTP", json.dumps(conn))
    with pytest.raises(
        MailConnectionError, match=rf"'nightshift_smtp' \(plain to 127.0.0.1:{port}\).*refused"
    ):
        FailureEmailNotifier(to="x@y.z").notify(failure_context(ValueError("x")))


def test_a_connection_without_sender_is_an_alert_config_error(mailbox, monkeypatch):
    from nightshift.notifiers.email import AlertConfigError, FailureEmailNotifier

    conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": 25,
        "extra": {"disable_ssl": True, "disable_tls": True},
    }
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTSHIFT_SMTP", json.dumps(conn))
    with pytest.raises(
        AlertConfigError, match="'nightshift_smtp' has no sender address: set extra 'from_email'"
    ):
        FailureEmailNotifier().notify(failure_context(ValueError("x")))
    assert read_messages(mailbox) == []
