from __future__ import annotations

import pytest

from nightshift_core.alerts import FailureAlert, parse_recipients, redact_url_credentials, truncate


def make_alert(**overrides) -> FailureAlert:
    values = dict(
        dag_id="sync_classicmodels",
        task_id="load_orders",
        run_id="manual__2026-11-22T00:00:00+00:00",
        try_number=3,
        log_url="http://127.0.0.1:8080/dags/sync/runs/r/tasks/t?try_number=3",
        error="ValueError: boom",
        traceback="Traceback (most recent call last):\n  File x\nValueError: boom",
    )
    values.update(overrides)
    return FailureAlert(**values)


def test_subject_names_dag_task_and_try():
    assert make_alert().subject == "[nightshift] FAILED sync_classicmodels.load_orders (try 3)"
    assert make_alert(try_number=None).subject == "[nightshift] FAILED sync_classicmodels.load_orders"


def test_bodies_name_everything_needed_to_find_the_failure():
    alert = make_alert()
    for body in (alert.text_body(), alert.html_body()):
        for needle in (
            "sync_classicmodels",
            "load_orders",
            "manual__2026-11-22",
            "try_number=3",
            "ValueError: boom",
        ):
            assert needle in body
    assert "none (manual run)" in alert.text_body()


def test_html_escapes_hostile_values():
    alert = make_alert(task_id="<script>alert(1)</script>", error="<img src=x onerror=alert(1)>")
    body = alert.html_body()
    assert "<script>" not in body and "<img" not in body
    assert "&lt;script&gt;" in body


def test_non_http_log_url_is_not_linked():
    assert "<a href" not in make_alert(log_url="javascript:alert(1)").html_body()
    assert "<a href" in make_alert().html_body()


@pytest.mark.parametrize("length", [10, 4000, 4001, 100_000])
def test_truncate_keeps_head_and_tail(length):
    text = "H" + "x" * (length - 2) + "T" if length > 1 else "x"
    out = truncate(text, 4000)
    if length <= 4000:
        assert out == text
    else:
        assert out.startswith("H") and out.endswith("T")
        assert f"[{length - 4000} characters cut]" in out
        assert len(out) < 4100


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ("", []),
        ("a@x.org", ["a@x.org"]),
        ("a@x.org, b@y.org;a@x.org", ["a@x.org", "b@y.org"]),
        (["a@x.org", " ", "b@y.org"], ["a@x.org", "b@y.org"]),
    ],
)
def test_parse_recipients(value, expected):
    assert parse_recipients(value) == expected


@pytest.mark.parametrize("bad", ["not-an-address", "a b@x.org"])
def test_parse_recipients_rejects_garbage(bad):
    with pytest.raises(ValueError, match="invalid e-mail address"):
        parse_recipients(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mysql://etl:s3cret@db/x", "mysql://***:***@db/x"),
        ("cannot reach mysql://etl:pa/ss/w0rd@10.0.0.5/db", "cannot reach mysql://***:***@10.0.0.5/db"),
        ("postgresql://etl:p@ss@w0rd@db.internal:5432/x failed", "postgresql://***:***@db.internal:5432/x failed"),
        ("redis://:hunter2/@x:y@cache:6379/0", "redis://***:***@cache:6379/0"),
        ("'smtp://a:b/c@mail' or 'smtp://d:e@f@mail2'", "'smtp://***:***@mail' or 'smtp://***:***@mail2'"),
        # No password: kept as it is.
        ("mysql://etl@db/x", "mysql://etl@db/x"),
        ("see https://example.com/search?by=ann@example.com", "see https://example.com/search?by=ann@example.com"),
        ("no URL at all: a:b@c", "no URL at all: a:b@c"),
    ],
)  # fmt: skip
def test_url_credentials_are_redacted_whatever_the_password_holds(text, expected):
    assert redact_url_credentials(text) == expected


def test_redacted_applies_to_every_text_of_the_alert():
    alert = make_alert(try_number=3, logical_date="2026-11-22", log_url="http://x/log")
    shouted = alert.redacted(str.upper)
    assert shouted.try_number == 3
    assert [value for _, value in shouted.rows()] == [value.upper() for _, value in alert.rows()]
    assert shouted.traceback == alert.traceback.upper()
