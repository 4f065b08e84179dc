"""GoogleSheetsHook: write a query result to a Google Sheets worksheet with the real gspread client.

Credentials come from a Google connection (default ``google_cloud_default``); its extra is read
by key name, with or without the provider's ``extra__google_cloud_platform__`` prefix:

``keyfile_dict``     a service-account key (JSON text or an object)
``key_path``         path of a service-account key file (use one of the two)
``sheets_endpoint``  optional base URL (e.g. ``http://127.0.0.1:8089``) that replaces the Google hosts
                     (Sheets API and OAuth token endpoint): a local fake speaking the same protocol.
                     Local/test only: the signed token request goes there, so never combine it with
                     a production key

Each :meth:`GoogleSheetsHook.write_table` makes exactly three API calls, whatever the row count:

1. ``GET spreadsheets/{key}`` (sheet metadata, no cell data);
2. one ``POST spreadsheets/{key}:batchUpdate``: ``addSheet`` sized to the data when the worksheet is
   missing, otherwise ``updateSheetProperties`` (grow the grid, only if the data is bigger) plus
   ``updateCells`` over the whole sheet clearing every value, so rows of a longer earlier run
   vanish (a batchUpdate is applied atomically); then the header row frozen and bold, and one
   ``repeatCell`` per column with a declared format setting its number format
   (:mod:`nightshift_core.reports.formats`);
3. one ``PUT spreadsheets/{key}/values/{range}?valueInputOption=RAW`` with the header and all rows;
   RAW input is never parsed, so text such as ``=HYPERLINK(...)`` stays text.

The Sheets write quota is 60 requests per minute per user: 429 and 5xx answers are retried with
exponential backoff and jitter, honouring ``Retry-After``, with bounded attempts and total wait.
Retries happen in the requests transport, so they cover the token exchange too.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import BaseHook
from requests.adapters import HTTPAdapter

from nightshift_core.errors import PermanentError
from nightshift_core.http_retry import RetriesExhausted, RetryPolicy, call_with_retries
from nightshift_core.reports.cells import sheets_value
from nightshift_core.reports.formats import sheets_format

if TYPE_CHECKING:
    import gspread
    import requests

SCOPES = ("https://www.googleapis.com/auth/spreadsheets",)
#: Hosts the client talks to: the Sheets API, Google APIs in general, and the OAuth token endpoint.
GOOGLE_HOSTS = ("sheets.googleapis.com", "www.googleapis.com", "oauth2.googleapis.com")
#: Google Sheets refuses a spreadsheet with more cells than this (all worksheets together).
SPREADSHEET_CELL_LIMIT = 10_000_000
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_PREFIX = "extra__google_cloud_platform__"
_CONFIGURE_HINT = (
    "set extra 'keyfile_dict' (the service-account key JSON) or 'key_path' (a key file path), "
    'e.g. AIRFLOW_CONN_{env}=\'{{"conn_type": "google_cloud_platform", '
    '"extra": {{"keyfile_dict": {{...}}}}}}\''
)


class SheetsNotConfigured(RuntimeError):
    """There is no Google connection, or it has no key: Sheets reports cannot run here."""


class SheetsConfigError(ValueError, PermanentError):
    """The Google connection has a key, but it is unusable; the message names the key to fix."""


class SheetsApiError(RuntimeError):
    """The Sheets API refused a request, or kept failing after the retries."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SheetsTooLarge(ValueError, PermanentError):
    """The result would push the spreadsheet over the Google Sheets cell limit."""


def _api_message(response: requests.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except Exception:
        return response.text[:500]


class _GoogleAdapter(HTTPAdapter):
    """Transport for the Google hosts: optional rewrite to a local endpoint, retries on 429/5xx."""

    def __init__(
        self, policy: RetryPolicy, endpoint: str | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        super().__init__()
        self.policy = policy
        self.endpoint = urlsplit(endpoint) if endpoint else None
        self.sleep = sleep

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if self.endpoint is not None and request.url:
            url = urlsplit(request.url)
            if url.hostname in GOOGLE_HOSTS:
                from requests.utils import get_environ_proxies

                base = self.endpoint.path.rstrip("/")
                request.url = urlunsplit(
                    (self.endpoint.scheme, self.endpoint.netloc, base + url.path, url.query, "")
                )
                # Proxies were chosen for the Google host; choose again (NO_PROXY) for the endpoint.
                kwargs["proxies"] = get_environ_proxies(request.url)
        return call_with_retries(
            lambda: super(_GoogleAdapter, self).send(request, *args, **kwargs),
            self.policy,
            statuses=RETRY_STATUSES,
            describe=_api_message,  # reads the body, so the connection can be reused
            sleep=self.sleep,
            what=f"{request.method} {request.url}",
        )


def _extra(extras: dict[str, Any], name: str) -> Any:
    """An extra by name, also under the Google provider's legacy prefix; empty strings count as unset."""
    for key in (name, _PREFIX + name):
        value = extras.get(key)
        if value not in (None, ""):
            return value
    return None


class GoogleSheetsHook(BaseHook):
    """Google Sheets through gspread, authenticated with a service-account key from a Google connection."""

    conn_name_attr = "gcp_conn_id"
    default_conn_name = "google_cloud_default"
    conn_type = "google_cloud_platform"
    hook_name = "Google Sheets"

    def __init__(
        self,
        gcp_conn_id: str = default_conn_name,
        *,
        max_attempts: int = 5,
        backoff_base: float = 1.0,
        max_total_wait: float = 120.0,
        timeout: float = 300.0,
    ) -> None:
        super().__init__()
        self.gcp_conn_id = gcp_conn_id
        self.retry_policy = RetryPolicy(
            max_attempts=max_attempts, backoff_base=backoff_base, max_wait=60.0, max_total_wait=max_total_wait
        )
        self.timeout = timeout

    @cached_property
    def extras(self) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            connection = self.get_connection(self.gcp_conn_id)
        except AirflowNotFoundException:
            raise SheetsNotConfigured(
                f"Google Sheets: connection {self.gcp_conn_id!r} does not exist; create it and "
                + _CONFIGURE_HINT.format(env=self.gcp_conn_id.upper())
            ) from None
        return connection.extra_dejson

    @cached_property
    def service_account_info(self) -> dict[str, Any]:
        """The service-account key of the connection (parsed, private key masked in logs)."""
        from airflow.sdk.log import mask_secret

        key_path = _extra(self.extras, "key_path")
        keyfile = _extra(self.extras, "keyfile_dict")
        where = f"connection {self.gcp_conn_id!r}"
        if key_path and keyfile:
            raise SheetsConfigError(f"{where}: extras 'key_path' and 'keyfile_dict' are exclusive; keep one")
        if not key_path and not keyfile:
            raise SheetsNotConfigured(
                f"Google Sheets: {where} has no service-account key; "
                + _CONFIGURE_HINT.format(env=self.gcp_conn_id.upper())
            )
        if key_path:
            if str(key_path).endswith(".p12"):
                raise SheetsConfigError(f"{where}: key_path {key_path!r} is a P12 key; use a JSON key file")
            try:
                with open(key_path, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as error:
                raise SheetsConfigError(
                    f"{where}: cannot read key_path {key_path!r} ({error.strerror}); "
                    "mount the key file there or use extra 'keyfile_dict'"
                ) from None
            source = f"the file in extra 'key_path' ({key_path})"
        else:
            text = keyfile
            source = "extra 'keyfile_dict'"
        if isinstance(text, dict):
            info = text
        else:
            try:
                info = json.loads(text)
            except ValueError as error:
                raise SheetsConfigError(
                    f"{where}: {source} is not valid JSON (line {error.lineno}); "
                    "paste the service-account key file exactly as downloaded"
                ) from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            kind = info.get("type") if isinstance(info, dict) else type(info).__name__
            raise SheetsConfigError(
                f"{where}: {source} is not a service-account key (type {kind!r}); "
                "create a key for a service account (IAM > Service accounts > Keys)"
            )
        missing = [name for name in ("client_email", "private_key", "token_uri") if not info.get(name)]
        if missing:
            raise SheetsConfigError(f"{where}: {source} lacks {missing}; download the key file again")
        mask_secret(info["private_key"])
        return info

    @property
    def client_email(self) -> str:
        return self.service_account_info["client_email"]

    def _session(self) -> requests.Session:
        import requests
        from google.auth.transport.requests import AuthorizedSession, Request
        from google.oauth2 import service_account

        endpoint = _extra(self.extras, "sheets_endpoint")
        if endpoint is not None and urlsplit(str(endpoint)).scheme not in ("http", "https"):
            raise SheetsConfigError(
                f"connection {self.gcp_conn_id!r}: extra 'sheets_endpoint' is {endpoint!r}; "
                "use a URL such as http://127.0.0.1:8089, or remove it to use Google"
            )
        try:
            credentials = service_account.Credentials.from_service_account_info(
                self.service_account_info, scopes=list(SCOPES)
            )
        except ValueError as error:
            raise SheetsConfigError(
                f"connection {self.gcp_conn_id!r}: the service-account key is unusable ({error}); "
                "download a fresh key file"
            ) from None
        adapter = _GoogleAdapter(self.retry_policy, endpoint)
        token_session = requests.Session()
        session = AuthorizedSession(credentials, auth_request=Request(token_session))
        for mounted in (session, token_session):
            for host in GOOGLE_HOSTS:
                mounted.mount(f"https://{host}/", adapter)
        return session

    def get_conn(self) -> gspread.Client:
        """A gspread client on an authorized session (the token is fetched on first use)."""
        return self._client

    @cached_property
    def _client(self) -> gspread.Client:
        import gspread

        client = gspread.Client(auth=None, session=self._session())
        client.set_timeout((10.0, self.timeout))
        return client

    def write_table(
        self,
        spreadsheet_key: str,
        worksheet: str,
        header: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        formats: Mapping[str, str] | None = None,
        currency: str = "",
    ) -> dict[str, Any]:
        """Replace the contents of ``worksheet`` with ``header`` and ``rows``, in three API calls.

        The worksheet is created when missing and grown when too small; every value of it is cleared
        first. The header row is bold and frozen; ``formats`` (column -> format name) set each
        column's number format, dates in a ``date`` column are written as date serial numbers so
        the format applies. Returns small metadata: spreadsheet, worksheet, rows, requests (API
        calls made, retries not counted) and the A1 range written.
        """
        import google.auth.exceptions
        import gspread
        from gspread.utils import absolute_range_name, rowcol_to_a1

        if not header:
            raise ValueError(
                f"worksheet {worksheet!r}: the header is empty; a table needs at least one column"
            )
        width = len(header)
        http = self.get_conn().http_client
        calls = 0
        step = "reading the spreadsheet metadata"

        try:
            metadata = http.fetch_sheet_metadata(
                spreadsheet_key,
                params={"includeGridData": "false", "fields": "properties.title,sheets.properties"},
            )
            calls += 1
            sheets = [sheet["properties"] for sheet in metadata.get("sheets", [])]
            target = next((p for p in sheets if p["title"].casefold() == worksheet.casefold()), None)
            other_cells = sum(
                _grid_cells(p) for p in sheets if target is None or p["sheetId"] != target["sheetId"]
            )
            formats = dict(formats or {})
            dates = {i for i, c in enumerate(header) if formats.get(c) == "date"}
            values = self._values(
                header, rows, spreadsheet_key, worksheet, SPREADSHEET_CELL_LIMIT - other_cells, target, dates
            )
            n_rows = len(values)
            # Sheets refuses to freeze every row: a header-only sheet keeps one empty row below it.
            grid_rows = max(n_rows, 2)

            if target is None:
                step = "adding the worksheet"
                # The id is chosen here so the formatting requests of the same batch can name it.
                sheet_id = max((p["sheetId"] for p in sheets), default=0) + 1
                reply = http.batch_update(
                    spreadsheet_key,
                    {
                        "requests": [
                            {
                                "addSheet": {
                                    "properties": {
                                        "sheetId": sheet_id,
                                        "title": worksheet,
                                        "sheetType": "GRID",
                                        "gridProperties": {
                                            "rowCount": grid_rows,
                                            "columnCount": width,
                                            "frozenRowCount": 1,
                                        },
                                    }
                                }
                            },
                            *_format_requests(sheet_id, header, formats, currency),
                        ]
                    },
                )
                title = reply["replies"][0]["addSheet"]["properties"]["title"]
            else:
                step = "clearing the worksheet"
                title = target["title"]
                grid = target.get("gridProperties", {})
                requests_: list[dict[str, Any]] = [
                    {
                        "updateSheetProperties": {
                            "properties": {
                                "sheetId": target["sheetId"],
                                "gridProperties": {
                                    "rowCount": max(grid.get("rowCount", 0), grid_rows),
                                    "columnCount": max(grid.get("columnCount", 0), width),
                                    "frozenRowCount": 1,
                                },
                            },
                            "fields": "gridProperties.rowCount,gridProperties.columnCount,"
                            "gridProperties.frozenRowCount",
                        }
                    },
                    # No rows given: every cell of the range loses its value; formats are kept.
                    {"updateCells": {"range": {"sheetId": target["sheetId"]}, "fields": "userEnteredValue"}},
                    *_format_requests(target["sheetId"], header, formats, currency),
                ]
                http.batch_update(spreadsheet_key, {"requests": requests_})
            calls += 1

            step = "writing the values"
            a1 = absolute_range_name(title, f"A1:{rowcol_to_a1(n_rows, width)}")
            http.values_update(
                spreadsheet_key,
                a1,
                params={"valueInputOption": "RAW"},
                body={"majorDimension": "ROWS", "values": values},
            )
            calls += 1
        except RetriesExhausted as error:
            raise SheetsApiError(
                f"Google Sheets kept failing while {step} of spreadsheet {spreadsheet_key!r}, worksheet "
                f"{worksheet!r}: HTTP {error.status} after {error.attempts} attempt(s) and {error.waited:.1f}s "
                f"of backoff ({error.reason}): {error.message}. The write quota is 60 requests/min per "
                "user; retry later or spread the reports over time",
                status=error.status,
            ) from None
        except gspread.exceptions.APIError as error:
            raise self._api_error(error, spreadsheet_key, worksheet, step) from None
        except google.auth.exceptions.RefreshError as error:
            raise SheetsApiError(
                f"Google refused the service-account key of connection {self.gcp_conn_id!r} "
                f"({self.client_email}) while {step} of spreadsheet {spreadsheet_key!r}: {error}; "
                "the key may be deleted or disabled: create a new key and update the connection"
            ) from None

        self.log.info("Wrote %d rows x %d columns to %s in %d requests", n_rows - 1, width, a1, calls)
        return {
            "spreadsheet": spreadsheet_key,
            "worksheet": title,
            "rows": n_rows - 1,
            "requests": calls,
            "range": a1,
        }

    def _values(
        self,
        header: Sequence[str],
        rows: Iterable[Sequence[Any]],
        spreadsheet_key: str,
        worksheet: str,
        budget: int,
        target: dict[str, Any] | None,
        dates: Collection[int] = (),
    ) -> list[list[Any]]:
        """Header + rows as JSON cell values, refusing (before any write) what Sheets cannot hold."""
        width = len(header)
        existing = target.get("gridProperties", {}) if target else {}
        existing_rows = existing.get("rowCount", 0)
        columns = max(existing.get("columnCount", 0), width)
        values: list[list[Any]] = [[_cell(name) for name in header]]
        for number, row in enumerate(rows, start=1):
            if len(row) > width:
                raise ValueError(
                    f"worksheet {worksheet!r}: row {number} has {len(row)} values but the header has "
                    f"{width} columns; select the same columns as the header"
                )
            values.append([_serial(v) if i in dates else _cell(v) for i, v in enumerate(row)])
            if max(existing_rows, len(values)) * columns > budget:
                break
        cells = max(existing_rows, len(values)) * columns
        if cells > budget:
            raise SheetsTooLarge(
                f"spreadsheet {spreadsheet_key!r}, worksheet {worksheet!r}: the result needs more than "
                f"{budget:,} cells (at least {len(values) - 1:,} rows x {width} columns, the other worksheets "
                f"use {SPREADSHEET_CELL_LIMIT - budget:,}) and Google Sheets holds at most "
                f"{SPREADSHEET_CELL_LIMIT:,} per spreadsheet; aggregate or filter the query, or send it as "
                "an Excel attachment instead"
            )
        return values

    def _api_error(
        self, error: gspread.exceptions.APIError, spreadsheet_key: str, worksheet: str, step: str
    ) -> SheetsApiError:
        status = error.response.status_code
        message = error.error.get("message", "")
        where = f"spreadsheet {spreadsheet_key!r}, worksheet {worksheet!r}"
        if status == 403:
            hint = (
                f"share the spreadsheet with the service account {self.client_email} as Editor "
                "(Share button in Google Sheets) and check that the Sheets API is enabled for its project"
            )
        elif status == 404:
            hint = "check the spreadsheet key (the id between /d/ and /edit in its URL)"
        elif status == 401:
            hint = f"the key of connection {self.gcp_conn_id!r} was refused; create a new key"
        else:
            hint = "fix the request or the data and run the task again"
        return SheetsApiError(
            f"Google Sheets answered HTTP {status} while {step} of {where}: {message}; {hint}", status=status
        )


def _format_requests(
    sheet_id: int, header: Sequence[str], formats: Mapping[str, str], currency: str
) -> list[dict[str, Any]]:
    """A bold header row, and each formatted column's number format below it (to the grid's end)."""
    bold = {
        "repeatCell": {
            "range": {"sheetId": sheet_id, "startRowIndex": 0, "endRowIndex": 1},
            "cell": {"userEnteredFormat": {"textFormat": {"bold": True}}},
            "fields": "userEnteredFormat.textFormat.bold",
        }
    }
    columns = [
        {
            "repeatCell": {
                "range": {
                    "sheetId": sheet_id,
                    "startRowIndex": 1,
                    "startColumnIndex": i,
                    "endColumnIndex": i + 1,
                },
                "cell": {"userEnteredFormat": {"numberFormat": sheets_format(formats[name], currency)}},
                "fields": "userEnteredFormat.numberFormat",
            }
        }
        for i, name in enumerate(header)
        if name in formats
    ]
    return [bold, *columns]


#: Day 0 of Sheets' date serial numbers (as in Lotus 1-2-3 and Excel's 1900 system after February).
_SERIAL_EPOCH = dt.datetime(1899, 12, 30)


def _serial(value: Any) -> Any:
    """A date or timestamp as a Sheets date serial number (a RAW date string would stay text)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return (value - _SERIAL_EPOCH) / dt.timedelta(days=1)
    if isinstance(value, dt.date):
        return (value - _SERIAL_EPOCH.date()).days
    return _cell(value)


def _grid_cells(properties: dict[str, Any]) -> int:
    grid = properties.get("gridProperties", {})
    return int(grid.get("rowCount", 0)) * int(grid.get("columnCount", 0))


def _cell(value: Any) -> Any:
    """A JSON-safe cell value: numpy scalars as Python values, NaN as empty, infinities as text."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()
    result = sheets_value(value)
    if isinstance(result, float) and not math.isfinite(result):
        return "" if math.isnan(result) else str(result)
    return result
