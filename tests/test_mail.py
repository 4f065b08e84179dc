"""nightshift_core.mail with plain data: connection settings, the MIME message, what a failure means.

The hook and the operators that send through it are tested against real SMTP servers in
test_email_report.py (reports) and test_failure_notifier.py (alerts)."""

from __future__ import annotations

import email.policy
import re
import smtplib
import socket
import ssl
from email.parser import BytesParser
from pathlib import Path

import pytest

from nightshift_core.errors import PermanentError
from nightshift_core.mail import (
    MailAuthError,
    MailConfigError,
    MailConnectionError,
    MailDeliveryError,
    SmtpSettings,
    as_bytes,
    build_message,
    connect_error,
    decide_mode,
    delivery_error,
    smtp_settings,
)
from nightshift_core.reports.paths import ReportPathError

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
SETTINGS = SmtpSettings("nightshift_smtp", "smtp.example.com", 465, "ssl", "me@example.com",
                        "me@example.com", "", 30.0, 5, None)  # fmt: skip


def settings(**fields):
    base = {"host": "127.0.0.1", "port": 8025, "login": None, "has_password": False,
            "extra": {"from_email": "reports@nightshift.test", "disable_ssl": True, "disable_tls": True}}  # fmt: skip
    return smtp_settings("nightshift_smtp", **{**base, **fields})


@pytest.mark.parametrize(
    ("disable_ssl", "disable_tls", "port", "mode"),
    [(False, True, 465, "ssl"), (True, False, 587, "starttls"), (True, True, 25, "plain"),
     (False, False, 465, "ssl"), (False, False, 587, "starttls"), (False, False, None, "starttls")],
)  # fmt: skip
def test_mode_follows_the_providers_switches(disable_ssl, disable_tls, port, mode):
    assert decide_mode(disable_ssl, disable_tls, port) == mode


def test_settings_read_the_connection():
    s = settings(port=None, extra={"from_email": "Nightshift Reports <r@example.com>", "disable_ssl": "true",
                                   "timeout": "7", "retry_limit": -1})  # fmt: skip
    assert (s.mode, s.port, s.from_email, s.from_name, s.timeout, s.retry_limit) == (
        "starttls",
        587,
        "r@example.com",
        "Nightshift Reports",
        7.0,
        0,
    )
    assert settings(login="me@example.com", extra={}).from_email == "me@example.com"  # the login as sender
    assert settings(extra={"disable_ssl": True}, from_email="alerts@x.test").from_email == "alerts@x.test"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"host": ""}, "has no host: set it"),
        ({"extra": {"from_email": "a@b.c", "disable_tls": "maybe"}}, "extra 'disable_tls' is 'maybe'; use true or false"),
        ({"extra": {}}, "has no sender address: set extra 'from_email'"),
        ({"has_password": True}, "has a password but no login"),
        ({"host": "smtp.example.com", "login": "me@example.com", "has_password": True},
         "refusing to send the password unencrypted to smtp.example.com"),
        ({"extra": {"from_email": "a@b.c", "ssl_context": "none"}}, "turns certificate checks off"),
        ({"extra": {"from_email": "a@b.c", "ssl_ca_file": "/nonexistent/ca.pem"}}, "is not a file"),
        ({"extra": {"from_email": "a@b.c", "timeout": "soon"}}, "extra timeout/retry_limit"),
    ],
)  # fmt: skip
def test_a_connection_that_cannot_work_is_a_permanent_error(fields, message):
    with pytest.raises(MailConfigError, match=message) as raised:
        settings(**fields)
    assert isinstance(raised.value, PermanentError)  # operators fail at once: a retry cannot fix it
    assert "nightshift_smtp" in str(raised.value)


def test_a_password_may_go_in_clear_to_the_local_catcher_only():
    assert settings(login="me", has_password=True).mode == "plain"


# -- the message ------------------------------------------------------------------------------------
@pytest.fixture
def folder(tmp_path) -> Path:
    report = tmp_path / "reports" / "daily_sales"
    (report / "charts").mkdir(parents=True)
    (report / "charts" / "sales.png").write_bytes(PNG)
    (report / "sales.xlsx").write_bytes(b"PK\x03\x04workbook")
    (report / "sales.csv").write_text("a,b\n1,2\n")
    return report


def message(**kwargs):
    args = {"sender": "reports@nightshift.test", "to": ["boss@nightshift.test"], "subject": "Daily sales",
            "html": "<p>Caf\u00e9</p>\n<img src=\"cid:sales.daily@nightshift\">", "text": "Caf\u00e9\nno newline at end",
            "message_id": "<m.1@nightshift.test>"}  # fmt: skip
    built = build_message(**{**args, **kwargs})
    return built, BytesParser(policy=email.policy.default).parsebytes(as_bytes(built))


def test_bodies_images_and_attachments_in_their_places(folder):
    _, received = message(
        cc=["audit@nightshift.test"], from_name="Nightshift Reports", headers={"X-Nightshift-Report": "r 1"},
        attachments=[folder / "sales.xlsx", folder / "sales.csv"], attachments_under=folder,
        inline_images={"sales.daily@nightshift": folder / "charts" / "sales.png"},
    )  # fmt: skip
    assert received["From"] == "Nightshift Reports <reports@nightshift.test>"
    assert (received["To"], received["Cc"]) == ("boss@nightshift.test", "audit@nightshift.test")
    assert received["Message-ID"] == "<m.1@nightshift.test>" and received["X-Nightshift-Report"] == "r 1"
    assert received["Date"]
    layout = [part.get_content_type() for part in received.walk()]
    assert layout == ["multipart/mixed", "multipart/alternative", "text/plain", "multipart/related",
                      "text/html", "image/png", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                      "text/csv"]  # fmt: skip
    # exactly as given: no newline added, no <br>, no HTML source as the text part
    assert received.get_body(("plain",)).get_content() == "Caf\u00e9\nno newline at end"
    assert (
        received.get_body(("html",)).get_content()
        == '<p>Caf\u00e9</p>\n<img src="cid:sales.daily@nightshift">'
    )
    image = next(p for p in received.walk() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<sales.daily@nightshift>" and image.get_content_disposition() == "inline"
    assert image.get_content() == PNG
    files = {a.get_filename(): a.get_content() for a in received.iter_attachments()}
    assert files == {"sales.xlsx": b"PK\x03\x04workbook", "sales.csv": "a,b\n1,2\n"}


def test_a_plain_message_is_text_and_html_only():
    built, received = message(html="<p>h</p>", text="t", message_id=None)
    assert [p.get_content_type() for p in received.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]
    assert built["Message-ID"].endswith("@nightshift.test>")  # made when not given, in the sender's domain
    assert message(html="<p>h</p>", text="t", message_id=None)[0]["Message-ID"] != built["Message-ID"]


def test_headers_are_not_folded_and_cannot_be_injected():
    long_id = f"<nightshift.daily_sales.2026-11-21.{'0' * 40}@nightshift.test>"
    raw = as_bytes(message(message_id=long_id)[0])
    assert f"\r\nMessage-ID: {long_id}\r\n".encode() in raw
    with pytest.raises(ValueError):
        message(subject="hi\r\nBcc: everyone@example.com")


@pytest.mark.parametrize("kind", ["attachment", "image"])
@pytest.mark.parametrize("where", ["outside", "symlink"])
def test_files_outside_the_folder_are_refused(folder, tmp_path, kind, where):
    secret = tmp_path / "secrets.json"
    secret.write_text("{}")
    bad = secret
    if where == "symlink":
        bad = folder / "charts" / "looks_fine.png"
        bad.symlink_to(secret)
    files = {"attachments": [bad]} if kind == "attachment" else {"inline_images": {"x.y@nightshift": bad}}
    with pytest.raises(ReportPathError, match="is outside the folder"):
        message(attachments_under=folder, **files)


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"attachments": [Path("a.xlsx")]}, MailConfigError, "attachments need attachments_under"),
        ({"to": []}, MailConfigError, "no recipients"),
        ({"to": ["not an address"]}, MailConfigError, "invalid e-mail address"),
        ({"message_id": "m.1@nightshift.test"}, ValueError, "must look like <unique-part@domain>"),
        ({"inline_images": {"no domain": Path("x.png")}}, ValueError, "Content-ID 'no domain'"),
    ],
)
def test_a_message_that_cannot_be_built_says_why(folder, kwargs, error, text):
    with pytest.raises(error, match=text):
        message(**kwargs)


def test_inline_images_must_be_png_files_that_exist(folder):
    (folder / "charts" / "fake.png").write_text("<svg/>")
    with pytest.raises(ValueError, match="fake.png is not a PNG"):
        message(attachments_under=folder, inline_images={"a.b@nightshift": folder / "charts" / "fake.png"})
    with pytest.raises(FileNotFoundError, match="gone.png"):
        message(attachments_under=folder, inline_images={"a.b@nightshift": folder / "charts" / "gone.png"})


# -- what a failure means ---------------------------------------------------------------------------
SECRET = "abcdwxyzefghstuv"


@pytest.mark.parametrize(
    ("exc", "error", "text"),
    [
        (smtplib.SMTPAuthenticationError(535, f"bad credentials {SECRET}".encode()), MailAuthError,
         "refused login 'me@example.com' \\(535 bad credentials \\*\\*\\*\\).*16-character app password"),
        (smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server."), MailConnectionError,
         "does not offer STARTTLS"),
        (smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server."), MailAuthError,
         "offers no AUTH"),
        (ssl.SSLError(1, "wrong version number"), MailConnectionError, "TLS failed"),
        (socket.gaierror(-2, "Name or service not known"), MailConnectionError, "unknown host 'smtp.example.com'"),
        (TimeoutError(), MailConnectionError, "no answer within 30s"),
        (ConnectionRefusedError(), MailConnectionError, "connection refused; is an SMTP server listening"),
    ],
)  # fmt: skip
def test_connect_failures_name_the_connection_and_the_fix(exc, error, text):
    explained = connect_error(exc, SETTINGS, SECRET)
    assert type(explained) is error
    assert str(explained).startswith("connection 'nightshift_smtp' (ssl to smtp.example.com:465): ")
    assert SECRET not in str(explained)
    assert not isinstance(explained, PermanentError)  # the task's retries still apply


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (smtplib.SMTPRecipientsRefused({"x@y.z": (550, b"no")}), "refused every recipient \\['x@y.z'\\]; nothing was sent"),
        (smtplib.SMTPSenderRefused(553, b"not yours", "me@example.com"), "refused sender 'me@example.com' \\(553 not yours\\)"),
        (smtplib.SMTPDataError(554, b"spam"), "rejected the message \\(554 spam\\); nothing was sent"),
        (smtplib.SMTPServerDisconnected("gone"), "may or may not have been delivered.*same Message-ID"),
    ],
)  # fmt: skip
def test_delivery_failures_say_whether_anything_went_out(exc, text):
    explained = delivery_error(exc, SETTINGS, SECRET)
    assert isinstance(explained, MailDeliveryError)
    assert explained.args[0].startswith("connection 'nightshift_smtp': ")
    assert re.search(text, str(explained)), str(explained)


def test_other_errors_pass_through():
    bug = KeyError("x")
    assert connect_error(bug, SETTINGS) is bug and delivery_error(bug, SETTINGS) is bug
