"""Report e-mails: the summary body (pure), and the operator + yagmail hook against real SMTP servers."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pendulum
import pytest
from support.net import free_port
from support.smtp import Credentials, RecordingHandler, make_pki, start_server

from nightshift_core.reports.summary import (
    NO_ROWS,
    Block,
    format_cell,
    format_value,
    summary_file_paths,
    summary_html,
    summary_text,
    write_summary_files,
)

SCRIPT = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://evil.test","click")'
PASSWORD = "abcdwxyzefghstuv"  # a Gmail-style 16-character app password
SECTIONS = [
    (
        "Top customers",
        ["customer", "orders", "revenue", "note"],
        [
            (SCRIPT, 1234567, Decimal("98765.435"), FORMULA),
            ("Café Ünïcode — ok", 5, Decimal("0.005"), "line1\nline2\x07bell\x00"),
            ("Nobody", 0, None, None),
        ],
    ),
    ("Refunds", ["order", "amount"], []),
]


# -- summary body (pure) -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (True, "yes"),
        (1234567, "1,234,567"),
        (-1234, "-1,234"),
        (Decimal("98765.435"), "98,765.44"),
        (Decimal("0.005"), "0.01"),
        (Decimal("-2"), "-2.00"),
        (1234.5, "1,234.50"),
        (0.0004, "0.0004"),
        (float("nan"), "nan"),
        (dt.date(2026, 11, 21), "2026-11-21"),
        (
            dt.datetime(2026, 11, 21, 7, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2026-11-21 05:30:00 UTC",
        ),
        (b"\x01\xff", "01ff"),
        ("a\tb\r\nc\x00d\x1be\x7f", "a b cde"),
    ],
)
def test_format_value(value, expected):
    assert format_value(value) == expected


def test_html_escapes_every_value_and_aligns_numbers():
    html = summary_html("Sales <daily>", "2026-11-21 & co", SECTIONS, note="Totals in USD <b>")
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert FORMULA not in html and "=HYPERLINK(&quot;http://evil.test&quot;,&quot;click&quot;)" in html
    assert (
        "Sales &lt;daily&gt;" in html and "2026-11-21 &amp; co" in html and "Totals in USD &lt;b&gt;" in html
    )
    assert "1,234,567</td>" in html and "98,765.44</td>" in html
    assert "text-align:right" in html.split("1,234,567")[0].rsplit("<td", 1)[1]
    assert "line1 line2bell</td>" in html  # controls gone, the line break became a space
    assert "Refunds" in html and NO_ROWS in html
    assert "<style" not in html  # inline styles only


def test_long_cells_are_cut_and_long_sections_say_how_many_rows():
    rows = [(i, "x" * 2000) for i in range(25)]
    html = summary_html("T", "", [("Big", ["n", "text"], rows)])
    text = summary_text("T", "", [("Big", ["n", "text"], rows)])
    assert "x" * 501 not in html and "[truncated" in html
    assert html.count("<tr>") == 21  # header + 20 rows
    assert "showing 20 of 25 rows" in html and "showing 20 of 25 rows" in text
    assert "24</td>" not in html


def test_text_alternative_is_aligned_plain_text():
    text = summary_text("Sales", "for 2026-11-21", SECTIONS)
    lines = text.splitlines()
    assert lines[:3] == ["Sales", "=====", "for 2026-11-21"]
    header = next(line for line in lines if line.startswith("customer"))
    row = next(line for line in lines if line.startswith(SCRIPT))  # plain text is not HTML: kept verbatim
    assert row.index("1,234,567") + len("1,234,567") == header.index("orders") + len("orders")
    assert FORMULA[:30] in text
    assert "\x07" not in text and "\x00" not in text
    assert NO_ROWS in text and "3 rows" in text


def test_rows_must_match_the_columns():
    with pytest.raises(ValueError, match=r"section 'S': row 1 has 1 values but there are 2 columns"):
        summary_html("T", "", [("S", ["a", "b"], [(1,)])])


# -- SMTP connection handling (no server needed) -------------------------------------------
@pytest.mark.parametrize(
    ("disable_ssl", "disable_tls", "port", "mode"),
    [
        (False, True, 465, "ssl"),
        (True, False, 587, "starttls"),
        (True, True, 8025, "plain"),
        (False, False, 465, "ssl"),
        (False, False, 587, "starttls"),
        ("true", "false", 587, "starttls"),
    ],
)
def test_mode_follows_the_providers_switches(monkeypatch, disable_ssl, disable_tls, port, mode):
    from nightshift.hooks.mail import YagmailHook

    set_smtp(monkeypatch, port, disable_ssl=disable_ssl, disable_tls=disable_tls)
    assert YagmailHook().settings.mode == mode


def test_password_is_never_sent_in_clear_to_a_remote_host(monkeypatch):
    from nightshift.hooks.mail import MailConfigError, YagmailHook

    set_smtp(monkeypatch, 25, host="smtp.example.com", login="me@example.com", password=PASSWORD)
    with pytest.raises(
        MailConfigError, match="refusing to send the password unencrypted to smtp.example.com"
    ):
        YagmailHook().settings  # noqa: B018


# -- operator against real servers ---------------------------------------------------------
def set_smtp(monkeypatch, port, *, host="127.0.0.1", login=None, password=None, **extra):
    extra = {"from_email": "reports@nightshift.test", "disable_ssl": True, "disable_tls": True,
             "retry_limit": 0, "timeout": 5, **extra}  # fmt: skip
    conn = {
        "conn_type": "smtp",
        "host": host,
        "port": port,
        "login": login,
        "password": password,
        "extra": extra,
    }
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTSHIFT_SMTP", json.dumps(conn))


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    extra = {"engine": "duckdb", "path": str(path)}
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE", json.dumps({"conn_type": "generic", "extra": extra})
    )
    return path


@pytest.fixture
def report(tmp_path, monkeypatch) -> Path:
    """What the report-build task leaves in the report's folder: a workbook and the two summary bodies."""
    monkeypatch.setenv("NIGHTSHIFT_REPORTS_DIR", str(tmp_path / "reports"))
    workbook = tmp_path / "reports" / "daily_sales" / "2026-11-21" / "daily_sales_2026-11-21.xlsx"
    workbook.parent.mkdir(parents=True)
    workbook.write_bytes(b"PK\x03\x04" + os.urandom(4096))
    write_summary_files(workbook, "Daily sales", "2026-11-21 (UTC)", SECTIONS)
    return workbook


@pytest.fixture
def servers():
    started = []

    def start(handler, mode="plain", **kwargs):
        controller = start_server(handler, mode, **kwargs)
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def context(task_id="email_daily_sales"):
    ti = SimpleNamespace(
        dag_id="report_daily_sales", task_id=task_id, run_id="scheduled__2026-11-21", map_index=-1
    )
    start = pendulum.datetime(2026, 11, 21, tz="UTC")
    return {"ti": ti, "data_interval_start": start, "data_interval_end": start.add(days=1)}


def operator(report: Path | None, **kwargs):
    from nightshift.operators.email_report import EmailReportOperator

    args = {
        "task_id": "email_daily_sales",
        "report_id": "daily_sales",
        "title": "Daily sales",
        "report_date": "2026-11-21",
        "to": "boss@nightshift.test, team@nightshift.test",
        "cc": ["audit@nightshift.test"],
        "workbook_path": str(report) if report else None,
        **kwargs,
    }
    return EmailReportOperator(**args)


def ledger_rows() -> list[dict]:
    from nightshift.hooks.warehouse import WarehouseHook

    with WarehouseHook().get_conn() as wh:
        if not wh.table_exists(_ledger()):
            return []
        return wh.query("SELECT * FROM nightshift_ops.report_deliveries ORDER BY sent_at").to_pylist()


def _ledger():
    from nightshift_core.warehouse import TableRef

    return TableRef.parse("nightshift_ops.report_deliveries")


def test_message_has_headers_bodies_and_the_workbook(monkeypatch, servers, warehouse, report):
    handler = RecordingHandler()
    set_smtp(monkeypatch, servers(handler).port)

    result = operator(report).execute(context())

    (received,) = handler.messages
    message = received.message
    assert result == {"sent": True, "message_id": message["Message-ID"], "recipients": 3}
    assert message["Message-ID"].startswith("<nightshift.daily_sales.2026-11-21.")
    assert message["Message-ID"].endswith("@nightshift.test>")
    assert message["From"] == "reports@nightshift.test"
    assert message["To"] == "boss@nightshift.test, team@nightshift.test"
    assert message["Cc"] == "audit@nightshift.test"
    assert message["Subject"] == "[nightshift] Daily sales 2026-11-21"
    assert message["Auto-Submitted"] == "auto-generated"
    assert received.mail_from == "reports@nightshift.test"
    assert received.rcpt_tos == ["boss@nightshift.test", "team@nightshift.test", "audit@nightshift.test"]

    html = message.get_body(("html",)).get_content()
    assert html == report.with_name(report.name + ".summary.html").read_text()
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "=HYPERLINK(&quot;http://evil.test&quot;" in html
    assert "Café Ünïcode — ok" in html and "98,765.44" in html
    text = message.get_body(("plain",)).get_content()
    assert text == report.with_name(report.name + ".summary.txt").read_text()
    assert "<table" not in text and "Top customers" in text

    (attachment,) = message.iter_attachments()
    assert attachment.get_filename() == "daily_sales_2026-11-21.xlsx"
    assert (
        attachment.get_content_type() == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert attachment.get_content() == report.read_bytes()

    (row,) = ledger_rows()
    assert row["report_id"] == "daily_sales" and row["report_date"] == dt.date(2026, 11, 21)
    assert row["message_id"] == message["Message-ID"]
    assert row["recipients"] == "boss@nightshift.test, team@nightshift.test, audit@nightshift.test"


def test_empty_report_says_no_rows_and_needs_no_attachment(monkeypatch, servers, warehouse, report):
    handler = RecordingHandler()
    set_smtp(monkeypatch, servers(handler).port)
    html_path, text_path = write_summary_files(
        report.with_name("empty"), "Refunds", "2026-11-21", [("Refunds", ["id"], [])]
    )

    op = operator(None, summary_html_path=str(html_path), summary_text_path=str(text_path), cc=[])
    assert op.execute(context())["sent"] is True

    (received,) = handler.messages
    assert NO_ROWS in received.message.get_body(("html",)).get_content()
    assert NO_ROWS in received.message.get_body(("plain",)).get_content()
    assert list(received.message.iter_attachments()) == []


def test_missing_summary_names_the_file(monkeypatch, servers, warehouse, report):
    handler = RecordingHandler()
    set_smtp(monkeypatch, servers(handler).port)
    report.with_name(report.name + ".summary.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"daily_sales_2026-11-21\.xlsx\.summary\.txt"):
        operator(report).execute(context())
    assert handler.messages == []


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_tls_modes_with_auth(monkeypatch, servers, warehouse, report, pki, mode):
    handler = RecordingHandler()
    server = servers(handler, mode, pki=pki, credentials=Credentials("reports@nightshift.test", PASSWORD))
    switches = {"disable_ssl": mode != "ssl", "disable_tls": mode != "starttls"}
    set_smtp(monkeypatch, server.port, login="reports@nightshift.test", password=PASSWORD,
             ssl_ca_file=str(pki.ca_file), **switches)  # fmt: skip

    assert operator(report).execute(context())["sent"] is True

    (received,) = handler.messages
    assert received.login == "reports@nightshift.test"
    assert received.message.get_body(("html",)).get_content().count("<table") == 1


def test_untrusted_certificate_is_a_clear_error(monkeypatch, servers, warehouse, report, pki):
    from nightshift.hooks.mail import MailConnectionError

    handler = RecordingHandler()
    set_smtp(monkeypatch, servers(handler, "ssl", pki=pki).port, disable_ssl=False, disable_tls=True)
    with pytest.raises(MailConnectionError, match="certificate is not trusted.*ssl_ca_file"):
        operator(report).execute(context())
    assert handler.messages == [] and ledger_rows() == []


def test_starttls_server_refuses_a_plain_client(monkeypatch, servers, warehouse, report, pki):
    from nightshift.hooks.mail import MailDeliveryError

    handler = RecordingHandler()
    set_smtp(monkeypatch, servers(handler, "starttls", pki=pki).port)  # connection says plain
    with pytest.raises(MailDeliveryError, match="refused sender.*STARTTLS"):
        operator(report).execute(context())
    assert handler.messages == []


def test_wrong_password_fails_every_try_clearly_and_marks_nothing(
    monkeypatch, servers, warehouse, report, pki, caplog, capsys
):
    from nightshift.hooks.mail import MailAuthError

    handler = RecordingHandler()
    server = servers(handler, "ssl", pki=pki, credentials=Credentials("reports@nightshift.test", PASSWORD))
    wrong = "wrongpasswordxyz"
    set_smtp(monkeypatch, server.port, login="reports@nightshift.test", password=wrong,
             ssl_ca_file=str(pki.ca_file), disable_ssl=False, disable_tls=True)  # fmt: skip
    caplog.set_level(logging.DEBUG)

    op = operator(report, retries=2)
    for _try in range(op.retries + 1):  # what Airflow does: retry, then mark the task failed
        with pytest.raises(MailAuthError) as raised:
            op.execute(context())
        message = str(raised.value)
        assert "connection 'nightshift_smtp'" in message
        assert "reports@nightshift.test" in message and "535" in message
        assert "16-character app password" in message
        assert wrong not in message

    assert handler.messages == [] and ledger_rows() == []
    captured = capsys.readouterr()  # task logs (structlog) go to stdout, library logs to caplog
    assert "Sending report daily_sales for 2026-11-21 to 3 recipient(s)" in captured.out
    assert wrong not in caplog.text + captured.out + captured.err


def test_connection_refused_names_host_and_port(monkeypatch, warehouse, report):
    from nightshift.hooks.mail import MailConnectionError

    port = free_port()
    set_smtp(monkeypatch, port)
    with pytest.raises(
        MailConnectionError, match=rf"connection 'nightshift_smtp' \(plain to 127.0.0.1:{port}\).*refused"
    ):
        operator(report).execute(context())
    assert ledger_rows() == []


def test_a_report_goes_out_once_per_date_unless_forced(monkeypatch, servers, warehouse, report, capsys):
    handler = RecordingHandler()
    set_smtp(monkeypatch, servers(handler).port)

    first = operator(report).execute(context())
    again = operator(report).execute(context())  # a retry or a re-run of the same date
    assert again == {"sent": False, "message_id": first["message_id"], "recipients": 3}
    assert len(handler.messages) == 1
    assert f"already sent (message-id {first['message_id']}" in capsys.readouterr().out  # the task log

    other_day = operator(report, report_date="2026-11-22").execute(context())
    assert other_day["sent"] is True and other_day["message_id"] != first["message_id"]

    forced = operator(report, force_resend="True").execute(context())
    assert forced["sent"] is True and forced["message_id"] not in (
        first["message_id"],
        other_day["message_id"],
    )
    assert [m.message["Message-ID"] for m in handler.messages] == [
        first["message_id"],
        other_day["message_id"],
        forced["message_id"],
    ]
    rows = {(r["report_date"].isoformat(), r["message_id"]) for r in ledger_rows()}
    assert rows == {("2026-11-21", forced["message_id"]), ("2026-11-22", other_day["message_id"])}


def test_a_connection_lost_after_data_is_accepted_does_not_resend(monkeypatch, servers, warehouse, report):
    handler = RecordingHandler(drop_at_quit=True, at_quit=ledger_rows)
    set_smtp(monkeypatch, servers(handler).port)

    first = operator(report).execute(context())  # QUIT gets no reply: the report went out anyway
    assert first["sent"] is True
    (marker,) = handler.seen_at_quit[0]  # recorded before the session was closed
    assert marker["message_id"] == first["message_id"]
    second = operator(report).execute(context())  # the retry / next run
    assert second["sent"] is False
    assert len(handler.messages) == 1
    assert [r["message_id"] for r in ledger_rows()] == [first["message_id"]]


def test_delivered_but_unrecorded_fails_without_retry(monkeypatch, servers, warehouse, report):
    from airflow.sdk.exceptions import AirflowFailException

    from nightshift.hooks.warehouse import WarehouseHook

    handler = RecordingHandler()
    set_smtp(monkeypatch, servers(handler).port)
    with WarehouseHook().get_conn() as wh:  # a ledger whose sent_at is text: the marker cannot be merged
        wh.query("CREATE SCHEMA nightshift_ops")
        wh.query(
            "CREATE TABLE nightshift_ops.report_deliveries (report_id STRING, report_date DATE, "
            "message_id STRING, recipients STRING, sent_at STRING)"
        )

    with pytest.raises(AirflowFailException, match="WAS sent .*Not retrying"):
        operator(report).execute(context())
    assert len(handler.messages) == 1


# -- paths from the build task's XCom: only files in the report's own folder ---------------
SECRET = '{"fernet_key": "not-for-mail-3f9c"}'


def planted(tmp_path: Path, report: Path, kind: str) -> Path:
    """A path to a secret the XCom could name: outside the folder, via '..', or a symlink inside it."""
    secret = tmp_path / "secrets" / "secrets.json"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(SECRET)
    if kind == "outside":
        return secret
    if kind == "dotdot":
        return report.parent / ".." / ".." / ".." / "secrets" / "secrets.json"
    link = report.with_name("looks_like_a_report.xlsx")  # inside the folder, pointing out of it
    link.symlink_to(secret)
    return link


@pytest.mark.parametrize("kind", ["outside", "dotdot", "symlink"])
@pytest.mark.parametrize("field", ["workbook_path", "summary_html_path", "summary_text_path"])
def test_a_path_outside_the_report_folder_fails_at_once_and_sends_nothing(
    monkeypatch, servers, warehouse, report, tmp_path, field, kind
):
    from airflow.sdk.exceptions import AirflowFailException

    handler = RecordingHandler()
    set_smtp(monkeypatch, servers(handler).port)
    html_path, text_path = (str(p) for p in summary_file_paths(report))
    paths = {"workbook_path": str(report), "summary_html_path": html_path, "summary_text_path": text_path}
    bad = planted(tmp_path, report, kind)

    with pytest.raises(AirflowFailException) as raised:
        operator(None, **{**paths, field: str(bad)}).execute(context())
    message = str(raised.value)
    assert f"report 'daily_sales': {field} {str(bad)!r}" in message
    assert f"is outside the folder {str(tmp_path / 'reports' / 'daily_sales')!r}" in message
    assert "re-run the report's build task" in message and "not retried" in message
    assert SECRET not in message
    assert handler.messages == [] and ledger_rows() == []


def test_the_hook_attaches_only_files_under_the_folder_it_is_given(monkeypatch, servers, report, tmp_path):
    from nightshift.hooks.mail import MailConfigError, YagmailHook
    from nightshift_core.reports.paths import ReportPathError

    handler = RecordingHandler()
    set_smtp(monkeypatch, servers(handler).port)
    folder = report.parent.parent
    send = {"to": ["boss@nightshift.test"], "subject": "s", "html": "<p>h</p>", "text": "t",
            "message_id": "<m.1@nightshift.test>"}  # fmt: skip
    for kind in ("outside", "symlink"):
        bad = planted(tmp_path, report, kind)
        with pytest.raises(ReportPathError, match=f"attachment {str(bad)!r}.* is outside the folder"):
            YagmailHook().send(**send, attachments=[report, bad], attachments_under=folder)
    with pytest.raises(MailConfigError, match="attachments need attachments_under"):
        YagmailHook().send(**send, attachments=[report])
    assert handler.messages == []

    YagmailHook().send(**send, attachments=[report], attachments_under=folder)  # the control: it sends
    (received,) = handler.messages
    assert [a.get_filename() for a in received.message.iter_attachments()] == [report.name]


FORMATTED = Block(
    "Reps <b>",
    ["employee_number", "texts", "sales", "share", "day", "code", "<img src=x onerror=alert(1)>"],
    [
        (1324, 18.0, Decimal("1186293.275"), 0.125, dt.datetime(2026, 12, 4, 23, 30, tzinfo=dt.UTC), 10425,
         "<script>alert(1)</script>"),
    ],
    {"employee_number": "id", "texts": "count", "sales": "money", "share": "share", "day": "date",
     "code": "text", "<img src=x onerror=alert(1)>": "text"},
)  # fmt: skip


@pytest.mark.parametrize("render", [summary_html, summary_text])
def test_columns_are_shown_in_their_declared_format(render):
    body = render("T", "", [FORMATTED], currency="EUR")
    for shown in ("1324", "18", "1,186,293.28 EUR", "12.5%", "2026-12-04", "10425"):
        assert shown in body
    for wrong in ("1,324", "18.00", "10,425", "0.125", "23:30"):
        assert wrong not in body


def test_formatted_columns_stay_escaped_and_aligned_by_their_format():
    body = summary_html("T", "", [FORMATTED], currency="EUR")
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<img" not in body and "Reps &lt;b&gt;" in body
    cells = re.findall(r'<td style="([^"]*)">([^<]*)</td>', body)
    aligned = {text: "text-align:right" in style for style, text in cells}
    assert aligned["1324"] and aligned["18"] and aligned["12.5%"]
    assert not aligned["10425"] and not aligned["2026-12-04"]  # text and dates read left to right


@pytest.mark.parametrize(
    ("value", "fmt", "shown"),
    [
        (1324, "id", "1324"), (Decimal("10425"), "id", "10425"), (18.0, "count", "18"),
        (2.5, "count", "3"), (Decimal("0.005"), "money", "0.01 USD"), (0.0, "share", "0.0%"),
        (dt.date(2026, 1, 2), "date", "2026-01-02"), (1002, "text", "1002"),
        ("n/a", "money", "n/a"), (float("nan"), "count", "nan"), (None, "money", ""),
    ],
)  # fmt: skip
def test_format_cell(value, fmt, shown):
    assert format_cell(value, fmt, "USD") == shown
