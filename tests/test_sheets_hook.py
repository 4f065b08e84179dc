"""GoogleSheetsHook with the real gspread client and google-auth against a local fake Sheets API."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import random
import time

import pytest
from support.fake_sheets import CLIENT_EMAIL, use_google_connection

from nightshift_core.reports.cells import SHEETS_CELL_LIMIT

KEY = "1nightshiftReportsSpreadsheetKey"
HEADER = ["order_id", "customer", "amount"]


def table(n: int) -> list[tuple[int, str, float]]:
    return [(i, f"customer {i}", i * 1.5) for i in range(1, n + 1)]


def expected(rows: list[tuple]) -> list[list]:
    return [HEADER, *[list(row) for row in rows]]


@pytest.fixture
def sheets(fake_sheets, monkeypatch):
    """The fake with one spreadsheet and the Google connection pointing at it."""
    use_google_connection(monkeypatch, fake_sheets)
    fake_sheets.add_spreadsheet(KEY)
    return fake_sheets


def hook(**kwargs):
    from nightshift.hooks.sheets import GoogleSheetsHook

    return GoogleSheetsHook(**kwargs)


@pytest.mark.parametrize("n_rows", [10, 50_000])
def test_same_request_count_whatever_the_row_count(sheets, n_rows):
    rows = table(n_rows)
    result = hook().write_table(KEY, "Orders", HEADER, iter(rows))

    assert result == {
        "spreadsheet": KEY,
        "worksheet": "Orders",
        "rows": n_rows,
        "requests": 3,
        "range": f"'Orders'!A1:C{n_rows + 1}",
    }
    api = sheets.api_requests
    assert [(r.method, r.path.split("/")[-1]) for r in api] == [
        ("GET", KEY),
        ("POST", f"{KEY}:batchUpdate"),
        ("PUT", "%27Orders%27%21A1%3AC" + str(n_rows + 1)),
    ]
    assert sum(r.is_write for r in api) == 2
    assert sheets.values(KEY, "Orders") == expected(rows)


def test_token_exchange_happens_against_the_token_endpoint(sheets):
    hook().write_table(KEY, "Orders", HEADER, table(3))

    (token,) = sheets.token_requests
    assert token.status == 200, "the fake verifies the JWT signature with the key's public half"
    assert token.form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert sheets.tokens == {"ya29.fake-1": CLIENT_EMAIL}
    assert {r.authorization for r in sheets.api_requests} == {"Bearer ya29.fake-1"}


def test_a_shorter_result_leaves_no_stale_rows(sheets):
    writer = hook()
    writer.write_table(KEY, "Orders", HEADER, table(100))
    sheets.reset_log()
    result = writer.write_table(KEY, "Orders", HEADER, table(10))

    assert result["requests"] == 3
    assert sheets.values(KEY, "Orders") == expected(table(10))
    # Read back over HTTP with gspread as a user would: rows 12..101 (data rows 11..100) are empty.
    worksheet = writer.get_conn().open_by_key(KEY).worksheet("Orders")
    assert worksheet.get("A12:C101") == [[]], "gspread shows an empty range as [[]]"
    assert len(worksheet.get_all_values()) == 11
    (batch,) = [r for r in sheets.api_requests if r.path.endswith(":batchUpdate")]
    sheet_id = sheets.sheet(KEY, "Orders").properties["sheetId"]
    clear_all = {"updateCells": {"range": {"sheetId": sheet_id}, "fields": "userEnteredValue"}}
    assert clear_all in batch.json["requests"]
    assert [r for r in batch.json["requests"] if "updateCells" in r] == [clear_all]


def test_existing_small_sheet_is_grown_and_cleared_in_one_batch(fake_sheets, monkeypatch):
    use_google_connection(monkeypatch, fake_sheets)
    spreadsheet = fake_sheets.add_spreadsheet(KEY, sheets=(("Summary", 1000, 26), ("Orders", 5, 2)))
    orders = spreadsheet.sheets[1]
    orders.cells.update({(0, 0): "old header", (4, 1): "stale"})

    result = hook().write_table(KEY, "Orders", HEADER, table(20))

    assert result["requests"] == 3
    (batch,) = [r for r in fake_sheets.api_requests if r.method == "POST"]
    sheet_id = orders.properties["sheetId"]
    grid = {"rowCount": 21, "columnCount": 3, "frozenRowCount": 1}
    assert batch.json["requests"][:2] == [
        {
            "updateSheetProperties": {
                "properties": {"sheetId": sheet_id, "gridProperties": grid},
                "fields": "gridProperties.rowCount,gridProperties.columnCount,gridProperties.frozenRowCount",
            }
        },
        {"updateCells": {"range": {"sheetId": sheet_id}, "fields": "userEnteredValue"}},
    ]
    assert fake_sheets.values(KEY, "Orders") == expected(table(20))
    assert fake_sheets.values(KEY, "Summary") == []


def test_missing_worksheet_is_created_sized_to_the_data(sheets):
    result = hook().write_table(KEY, "Top customers", HEADER, table(7))

    assert result["worksheet"] == "Top customers"
    assert result["range"] == "'Top customers'!A1:C8"
    created = sheets.sheet(KEY, "Top customers").properties
    assert created["gridProperties"] == {"rowCount": 8, "columnCount": 3, "frozenRowCount": 1}
    assert [s.title for s in sheets.spreadsheets[KEY].sheets] == ["Sheet1", "Top customers"]
    (batch,) = [r for r in sheets.api_requests if r.method == "POST"]
    assert list(batch.json["requests"][0]) == ["addSheet"]


def test_worksheet_title_matches_like_sheets_does_ignoring_case(fake_sheets, monkeypatch):
    use_google_connection(monkeypatch, fake_sheets)
    fake_sheets.add_spreadsheet(KEY, sheets=(("orders", 50, 5),))

    result = hook().write_table(KEY, "Orders", HEADER, table(2))

    assert result["worksheet"] == "orders"
    assert [s.title for s in fake_sheets.spreadsheets[KEY].sheets] == ["orders"]
    assert fake_sheets.values(KEY, "orders") == expected(table(2))


def test_values_are_sent_raw_and_hostile_text_stays_text(sheets):
    long_text = "x" * 60_000
    row = (
        '=HYPERLINK("http://x","click")',
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "+1",
        "-1+2",
        long_text,
        decimal.Decimal("1234.50"),
        dt.datetime(2026, 11, 21, 13, 5, 9),
        dt.datetime(2026, 11, 21, 13, 5, 9, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.date(2026, 11, 21),
        None,
        True,
        7,
        float("nan"),
    )
    header = [f"c{i}" for i in range(len(row))]

    hook().write_table(KEY, "Hostile", header, [row])

    (put,) = [r for r in sheets.api_requests if r.method == "PUT"]
    assert put.query["valueInputOption"] == ["RAW"]
    sent = put.json["values"][1]
    truncated = sent[4]
    assert sent[:4] + sent[5:] == [
        '=HYPERLINK("http://x","click")',
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "+1",
        "-1+2",
        1234.5,
        "2026-11-21 13:05:09",
        "2026-11-21 11:05:09",
        "2026-11-21",
        "",
        True,
        7,
        "",
    ]
    assert len(truncated) == SHEETS_CELL_LIMIT
    assert truncated.startswith("x" * 49_000)
    assert truncated.endswith("chars]") and "truncated" in truncated
    stored = sheets.values(KEY, "Hostile")[1]
    assert stored[0] == '=HYPERLINK("http://x","click")', "stored as text, not as a formula"
    assert stored[5] == 1234.5 and isinstance(stored[5], float)


def test_429_with_retry_after_is_waited_out_then_succeeds(sheets):
    sheets.fail_next(429, retry_after="1", method="PUT")

    started = time.monotonic()
    result = hook(backoff_base=0.01).write_table(KEY, "Orders", HEADER, table(5))
    elapsed = time.monotonic() - started

    assert result["requests"] == 3, "retries are not API calls of their own"
    puts = [r for r in sheets.api_requests if r.method == "PUT"]
    assert [r.status for r in puts] == [429, 200]
    assert puts[1].at - puts[0].at >= 1.0, "Retry-After: 1 must be honoured (the backoff base is 10 ms)"
    assert elapsed < 5
    assert sheets.values(KEY, "Orders") == expected(table(5))


def test_5xx_then_success_uses_the_backoff(sheets):
    sheets.fail_next(503, times=2, method="POST")

    hook(backoff_base=0.01).write_table(KEY, "Orders", HEADER, table(5))

    posts = [r for r in sheets.api_requests if r.method == "POST"]
    assert [r.status for r in posts] == [503, 503, 200]
    assert sheets.values(KEY, "Orders") == expected(table(5))


def test_persistent_500_fails_after_bounded_attempts(sheets):
    from nightshift.hooks.sheets import SheetsApiError

    sheets.fail_next(500, times=100)

    with pytest.raises(SheetsApiError) as caught:
        hook(max_attempts=3, backoff_base=0.01).write_table(KEY, "Orders", HEADER, table(5))

    message = str(caught.value)
    assert caught.value.status == 500
    for needle in (KEY, "'Orders'", "HTTP 500", "3 attempt", "Internal error encountered"):
        assert needle in message, needle
    assert [r.status for r in sheets.api_requests] == [500, 500, 500]
    assert not any(r.is_write for r in sheets.api_requests)


def test_a_retry_after_beyond_the_wait_budget_fails_at_once(sheets):
    from nightshift.hooks.sheets import SheetsApiError

    sheets.fail_next(429, retry_after="30", times=5)

    started = time.monotonic()
    with pytest.raises(SheetsApiError, match=r"HTTP 429 after 1 attempt.*max_total_wait=2s.*Quota exceeded"):
        hook(max_total_wait=2).write_table(KEY, "Orders", HEADER, table(5))
    assert time.monotonic() - started < 5


def test_403_says_to_share_with_the_service_account(sheets):
    from nightshift.hooks.sheets import SheetsApiError

    sheets.fail_next(403)

    with pytest.raises(SheetsApiError) as caught:
        hook(backoff_base=0.01).write_table(KEY, "Orders", HEADER, table(5))

    message = str(caught.value)
    assert caught.value.status == 403
    assert "The caller does not have permission" in message
    assert f"share the spreadsheet with the service account {CLIENT_EMAIL}" in message
    assert len(sheets.api_requests) == 1, "a 403 is not retried"


def test_unknown_spreadsheet_names_the_key(sheets):
    from nightshift.hooks.sheets import SheetsApiError

    with pytest.raises(SheetsApiError, match=r"HTTP 404.*'no-such-key'.*spreadsheet key"):
        hook().write_table("no-such-key", "Orders", HEADER, table(1))


def test_a_key_google_does_not_accept_is_reported(sheets):
    from cryptography.hazmat.primitives.asymmetric import rsa

    from nightshift.hooks.sheets import SheetsApiError

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sheets.register_service_account(CLIENT_EMAIL, other.public_key())  # as if the key was rotated

    with pytest.raises(SheetsApiError) as caught:
        hook().write_table(KEY, "Orders", HEADER, table(1))
    message = str(caught.value)
    assert "invalid_grant: Invalid JWT Signature." in message
    assert "'google_cloud_default'" in message and "create a new key" in message
    assert [r.status for r in sheets.token_requests] == [400]
    assert sheets.api_requests == []


def test_over_the_cell_limit_is_refused_before_any_write(fake_sheets, monkeypatch):
    from nightshift.hooks.sheets import SheetsTooLarge

    use_google_connection(monkeypatch, fake_sheets)
    fake_sheets.add_spreadsheet(KEY, sheets=(("Archive", 9_999_000, 1),))
    header = [f"c{i}" for i in range(200)]

    with pytest.raises(SheetsTooLarge, match=r"10,000,000 per spreadsheet.*aggregate or filter"):
        hook().write_table(KEY, "Wide", header, ([i] * 200 for i in range(10)))

    assert [r.method for r in fake_sheets.api_requests] == ["GET"]


def test_a_row_wider_than_the_header_is_refused(sheets):
    with pytest.raises(ValueError, match=r"row 2 has 4 values but the header has 3 columns"):
        hook().write_table(KEY, "Orders", HEADER, [(1, "a", 1.0), (2, "b", 2.0, "extra")])
    assert not any(r.is_write for r in sheets.api_requests)


@pytest.mark.parametrize(
    "variant",
    ["keyfile_dict text", "keyfile_dict object", "key_path", "prefixed keyfile_dict", "prefixed key_path"],
)
def test_connection_extra_variants(fake_sheets, monkeypatch, tmp_path, variant):
    fake_sheets.add_spreadsheet(KEY)
    use_google_connection(
        monkeypatch,
        fake_sheets,
        key_file=tmp_path / "key.json" if "key_path" in variant else None,
        prefixed=variant.startswith("prefixed"),
        keyfile_as_text=variant != "keyfile_dict object",
    )

    assert hook().write_table(KEY, "Orders", HEADER, table(2))["rows"] == 2
    assert len(fake_sheets.token_requests) == 1


def test_missing_connection_is_not_configured(monkeypatch):
    from nightshift.hooks.sheets import SheetsNotConfigured

    monkeypatch.delenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", raising=False)
    with pytest.raises(SheetsNotConfigured) as caught:
        hook().write_table(KEY, "Orders", HEADER, table(1))
    message = str(caught.value)
    assert "'google_cloud_default' does not exist" in message
    assert "keyfile_dict" in message and "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT" in message


def test_connection_without_a_key_is_not_configured(monkeypatch):
    from nightshift.hooks.sheets import SheetsNotConfigured

    monkeypatch.setenv(
        "AIRFLOW_CONN_REPORTS_GOOGLE",
        json.dumps({"conn_type": "google_cloud_platform", "extra": {"project": "p", "keyfile_dict": ""}}),
    )
    with pytest.raises(SheetsNotConfigured, match=r"'reports_google' has no service-account key.*key_path"):
        hook(gcp_conn_id="reports_google").write_table(KEY, "Orders", HEADER, table(1))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"keyfile_dict": "{not json"}, r"'keyfile_dict' is not valid JSON"),
        (
            {"keyfile_dict": {"type": "authorized_user"}},
            r"not a service-account key \(type 'authorized_user'\)",
        ),
        (
            {"keyfile_dict": {"type": "service_account"}},
            r"lacks \['client_email', 'private_key', 'token_uri'\]",
        ),
        ({"key_path": "/nonexistent/key.json"}, r"cannot read key_path '/nonexistent/key.json'"),
        ({"key_path": "a.json", "keyfile_dict": "{}"}, r"'key_path' and 'keyfile_dict' are exclusive"),
    ],
)
def test_unusable_key_is_a_config_error(monkeypatch, extra, message):
    from nightshift.hooks.sheets import SheetsConfigError

    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
        json.dumps({"conn_type": "google_cloud_platform", "extra": extra}),
    )
    with pytest.raises(SheetsConfigError, match=message):
        hook().write_table(KEY, "Orders", HEADER, table(1))


def test_private_key_is_masked_and_never_logged(fake_sheets, monkeypatch, tmp_path, caplog, capsys):
    """A key read from ``key_path`` never passed through the connection extra, so the hook masks it."""
    from airflow.sdk._shared.secrets_masker import redact

    fake_sheets.add_spreadsheet(KEY)
    use_google_connection(monkeypatch, fake_sheets, key_file=tmp_path / "key.json")
    caplog.set_level(logging.DEBUG)
    writer = hook()
    writer.write_table(KEY, "Orders", HEADER, table(2))

    private_key = writer.service_account_info["private_key"]
    body = private_key.splitlines()[1]
    captured = capsys.readouterr()  # the hook's own log lines go through structlog to stdout
    assert "Wrote 2 rows x 3 columns" in captured.out, "the task log is really captured here"
    assert body not in caplog.text + captured.out + captured.err
    assert body not in str(redact(f"key: {private_key}"))


def test_backoff_grows_with_jitter_and_is_capped():
    from nightshift_core.http_retry import RetryPolicy

    policy = RetryPolicy(backoff_base=1.0, max_wait=10.0)
    rng = random.Random(7)
    for retry, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        delays = {policy.backoff(retry, rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (retry, delays)
        assert len(delays) > 1, "jitter spreads the retries of parallel tasks"


def test_retry_after_accepts_seconds_and_http_dates():
    from nightshift_core.http_retry import retry_after_seconds

    now = dt.datetime(2026, 11, 21, 12, 0, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Sat, 21 Nov 2026 12:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Sat, 21 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_header_is_bold_and_frozen_and_columns_take_their_declared_formats(sheets):
    """Both paths (a new worksheet, then the same one rewritten) format through the same batch."""
    header = ["employee_number", "orders", "sales", "share", "day", "note", "mean_compound"]
    rows = [(1324, 18, decimal.Decimal("1186293.27"), 0.25, dt.date(2026, 12, 4), 1002, -0.1254)]
    formats = {"employee_number": "id", "orders": "count", "sales": "money", "share": "share",
               "day": "date", "note": "text", "mean_compound": "score"}  # fmt: skip
    expected_formats = {
        0: {"type": "NUMBER", "pattern": "0"},
        1: {"type": "NUMBER", "pattern": "#,##0"},
        2: {"type": "NUMBER", "pattern": '#,##0.00 "USD"'},
        3: {"type": "PERCENT", "pattern": "0.0%"},
        4: {"type": "DATE", "pattern": "yyyy-mm-dd"},
        5: {"type": "TEXT"},
        6: {"type": "NUMBER", "pattern": "0.000"},
    }
    for _ in range(2):
        hook().write_table(KEY, "Sales", header, rows, formats=formats, currency="USD")
        sheet = sheets.sheet(KEY, "Sales")
        assert sheet.properties["gridProperties"]["frozenRowCount"] == 1
        for col, number_format in expected_formats.items():
            assert sheet.format_at(0, col) == {"userEnteredFormat.textFormat.bold": True}
            assert sheet.format_at(1, col) == {"userEnteredFormat.numberFormat": number_format}
        # A date is sent as its serial number (RAW text would stay text and ignore the format).
        assert sheets.values(KEY, "Sales")[1] == [1324, 18, 1186293.27, 0.25, 46360, 1002, -0.1254]


def test_a_header_only_sheet_keeps_a_row_below_the_frozen_header(sheets):
    """Sheets refuses to freeze every row of a sheet (the fake does too)."""
    hook().write_table(KEY, "Empty", HEADER, [])
    assert sheets.sheet(KEY, "Empty").properties["gridProperties"] == {
        "rowCount": 2, "columnCount": 3, "frozenRowCount": 1,
    }  # fmt: skip
