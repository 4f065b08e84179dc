"""A local fake of the Google Sheets API v4 and the OAuth token endpoint, for the real gspread client.

Plain HTTP on 127.0.0.1 (werkzeug, threaded). It keeps spreadsheets in memory, records every request,
checks bearer tokens it issued itself after verifying the service-account JWT signature, enforces the
limits the real API enforces for what the hook does (grid bounds, 50,000 characters per cell, 10M cells
per spreadsheet, ``valueInputOption`` required) and can inject faults (429 with ``Retry-After``, 5xx, 403).

Point a client at it with the Google connection extra ``sheets_endpoint`` (see :func:`use_google_connection`).
Enable the fixture with ``pytest_plugins = ["support.fake_sheets"]``.
"""

from __future__ import annotations

import base64
import copy
import functools
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

TOKEN_URI = "https://oauth2.googleapis.com/token"
SHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"
CELL_CHAR_LIMIT = 50_000
SPREADSHEET_CELL_LIMIT = 10_000_000
CLIENT_EMAIL = "nightshift-reports@nightshift-test.iam.gserviceaccount.com"
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
_STATUS |= {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_CELL = re.compile(r"^([A-Za-z]*)(\d*)$")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """Requests are recorded in ``FakeSheets.requests``; no access log."""


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    json: Any
    form: dict[str, str]
    authorization: str | None
    status: int = 0
    at: float = field(default_factory=time.monotonic)

    @property
    def is_token(self) -> bool:
        return self.path == "/token"

    @property
    def is_write(self) -> bool:
        return not self.is_token and self.method in ("POST", "PUT")


@dataclass
class Fault:
    status: int
    times: int
    retry_after: str | None
    message: str
    method: str | None
    path_contains: str | None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )


@dataclass
class Sheet:
    properties: dict[str, Any]
    cells: dict[tuple[int, int], Any] = field(default_factory=dict)
    #: repeatCell formats in the order applied: ((row0, row1, col0, col1), field path, value)
    formats: list[tuple[tuple[int, int, int, int], str, Any]] = field(default_factory=list)

    def format_at(self, row: int, col: int) -> dict[str, Any]:
        """The userEnteredFormat fields of one cell (0-based), as the repeatCell requests left them."""
        out: dict[str, Any] = {}
        for (r0, r1, c0, c1), path, value in self.formats:
            if r0 <= row < r1 and c0 <= col < c1:
                out[path] = value
        return out

    @property
    def title(self) -> str:
        return self.properties["title"]

    @property
    def rows(self) -> int:
        return self.properties["gridProperties"]["rowCount"]

    @property
    def cols(self) -> int:
        return self.properties["gridProperties"]["columnCount"]


@dataclass
class Spreadsheet:
    key: str
    title: str
    sheets: list[Sheet]


def col_letters(col: int) -> str:
    """1 -> A, 27 -> AA."""
    letters = ""
    while col:
        col, rest = divmod(col - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def col_number(letters: str) -> int:
    number = 0
    for char in letters.upper():
        number = number * 26 + ord(char) - 64
    return number


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class FakeSheets:
    """In-memory Sheets API; ``requests`` lists everything received, in order."""

    def __init__(self) -> None:
        self.spreadsheets: dict[str, Spreadsheet] = {}
        self.requests: list[Recorded] = []
        self.public_keys: dict[str, Any] = {}
        self.tokens: dict[str, str] = {}
        self._faults: deque[Fault] = deque()
        self._ids = itertools.count(1_000)
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # --- life cycle -------------------------------------------------------------------------------
    def start(self) -> FakeSheets:
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- set-up and inspection for tests ----------------------------------------------------------
    def add_spreadsheet(
        self, key: str, title: str = "Nightshift reports", sheets: tuple[tuple[str, int, int], ...] = ()
    ) -> Spreadsheet:
        """A spreadsheet with worksheets given as (title, rows, columns); default one 1000x26 "Sheet1"."""
        spreadsheet = Spreadsheet(key, title, [])
        for index, (name, rows, cols) in enumerate(sheets or (("Sheet1", 1000, 26),)):
            spreadsheet.sheets.append(Sheet(self._sheet_properties(name, rows, cols, index)))
        self.spreadsheets[key] = spreadsheet
        return spreadsheet

    def register_service_account(self, client_email: str, public_key: Any) -> None:
        """Accept JWT assertions from ``client_email`` signed by the matching private key."""
        self.public_keys[client_email] = public_key

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after: str | None = None,
        message: str | None = None,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching Sheets API requests (not token requests) with ``status``."""
        default = {
            429: "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute "
            "per user' of service 'sheets.googleapis.com'",
            403: "The caller does not have permission",
        }.get(status, "Internal error encountered.")
        self._faults.append(Fault(status, times, retry_after, message or default, method, path_contains))

    def sheet(self, key: str, title: str) -> Sheet:
        return next(s for s in self.spreadsheets[key].sheets if s.title == title)

    def values(self, key: str, title: str) -> list[list[Any]]:
        """The stored values of a worksheet as rows, trailing empty cells and rows trimmed."""
        return _grid(self.sheet(key, title).cells)

    @property
    def api_requests(self) -> list[Recorded]:
        return [r for r in self.requests if not r.is_token]

    @property
    def token_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.is_token]

    def reset_log(self) -> None:
        self.requests.clear()

    # --- HTTP -------------------------------------------------------------------------------------
    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path
        raw_path, _, raw_query = raw.partition("?")
        body = request.get_data()
        payload: Any = None
        form: dict[str, str] = {}
        if request.mimetype == "application/json" and body:
            payload = json.loads(body)
        elif request.mimetype == "application/x-www-form-urlencoded":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        record = Recorded(
            request.method,
            raw_path,
            parse_qs(raw_query, keep_blank_values=True),
            payload,
            form,
            request.headers.get("Authorization"),
        )
        with self._lock:
            self.requests.append(record)
            headers: dict[str, str] = {}
            try:
                if raw_path == "/token" and request.method == "POST":
                    status, result = 200, self._token(form)
                else:
                    self._fault(record, headers)
                    self._authorize(record)
                    status, result = 200, self._route(record)
            except ApiError as error:
                status = error.code
                if record.is_token:  # OAuth 2.0 error format (RFC 6749 section 5.2)
                    kind, _, description = error.message.partition(": ")
                    result = {"error": kind, "error_description": description}
                else:
                    result = {"error": {"code": status, "message": error.message, "status": _STATUS[status]}}
            record.status = status
        response = Response(json.dumps(result), status=status, mimetype="application/json", headers=headers)
        return response(environ, start_response)

    def _fault(self, record: Recorded, headers: dict[str, str]) -> None:
        for fault in self._faults:
            if fault.matches(record.method, record.path):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                if fault.retry_after is not None:
                    headers["Retry-After"] = fault.retry_after
                raise ApiError(fault.status, fault.message)

    def _token(self, form: dict[str, str]) -> dict[str, Any]:
        """The OAuth 2.0 JWT-bearer grant: verify the signed assertion, issue an access token."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            raise ApiError(400, f"unsupported_grant_type: {form.get('grant_type')!r}")
        try:
            head, claims_part, signature = form["assertion"].split(".")
            header = json.loads(_b64decode(head))
            claims = json.loads(_b64decode(claims_part))
        except (KeyError, ValueError) as error:
            raise ApiError(400, f"invalid_request: malformed assertion ({error})") from None
        key = self.public_keys.get(claims.get("iss"))
        if key is None or header.get("alg") != "RS256":
            raise ApiError(400, f"invalid_grant: unknown service account {claims.get('iss')!r}")
        try:
            key.verify(
                _b64decode(signature),
                f"{head}.{claims_part}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise ApiError(400, "invalid_grant: Invalid JWT Signature.") from None
        if claims.get("aud") != TOKEN_URI or SHEETS_SCOPE not in claims.get("scope", "").split():
            raise ApiError(400, f"invalid_scope: wrong scope or audience in {claims}")
        now = time.time()
        if not (claims.get("iat", 0) <= now + 60 and claims.get("exp", 0) > now):
            raise ApiError(400, "invalid_grant: Invalid JWT: Token must be a short-lived token")
        token = f"ya29.fake-{len(self.tokens) + 1}"
        self.tokens[token] = claims["iss"]
        return {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _authorize(self, record: Recorded) -> None:
        scheme, _, token = (record.authorization or "").partition(" ")
        if scheme != "Bearer" or token not in self.tokens:
            raise ApiError(401, "Request had invalid authentication credentials.")

    def _route(self, record: Recorded) -> dict[str, Any]:
        prefix = "/v4/spreadsheets/"
        if not record.path.startswith(prefix):
            raise ApiError(404, f"fake: no route for {record.method} {record.path}")
        rest = record.path[len(prefix) :]
        key_part, _, tail = rest.partition("/")
        if key_part.endswith(":batchUpdate") and not tail and record.method == "POST":
            return self._batch_update(self._spreadsheet(key_part[: -len(":batchUpdate")]), record.json)
        spreadsheet = self._spreadsheet(unquote(key_part))
        if not tail and record.method == "GET":
            return self._metadata(spreadsheet)
        if tail == "values:batchClear" and record.method == "POST":
            ranges = (record.json or {}).get("ranges", [])
            return {"clearedRanges": [self._clear(spreadsheet, a1) for a1 in ranges]}
        if tail.startswith("values/"):
            a1 = unquote(tail[len("values/") :])
            if a1.endswith(":clear") and record.method == "POST":
                return {"clearedRange": self._clear(spreadsheet, a1[: -len(":clear")])}
            if record.method == "PUT":
                return self._update(spreadsheet, a1, record)
            if record.method == "GET":
                return self._get(spreadsheet, a1, record)
        raise ApiError(404, f"fake: no route for {record.method} {record.path}")

    def _spreadsheet(self, key: str) -> Spreadsheet:
        if key not in self.spreadsheets:
            raise ApiError(404, "Requested entity was not found.")
        return self.spreadsheets[key]

    def _sheet_properties(self, title: str, rows: int, cols: int, index: int) -> dict[str, Any]:
        return {
            "sheetId": 0 if index == 0 else next(self._ids),
            "title": title,
            "index": index,
            "sheetType": "GRID",
            "gridProperties": {"rowCount": rows, "columnCount": cols},
        }

    @staticmethod
    def _metadata(spreadsheet: Spreadsheet) -> dict[str, Any]:
        return {
            "spreadsheetId": spreadsheet.key,
            "properties": {"title": spreadsheet.title, "locale": "en_US", "timeZone": "Etc/UTC"},
            "sheets": [{"properties": copy.deepcopy(sheet.properties)} for sheet in spreadsheet.sheets],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{spreadsheet.key}/edit",
        }

    # --- batchUpdate: applied to a copy, swapped in only when every request succeeded -------------
    def _batch_update(self, spreadsheet: Spreadsheet, body: Any) -> dict[str, Any]:
        work = copy.deepcopy(spreadsheet.sheets)
        replies: list[dict[str, Any]] = []
        for request in (body or {}).get("requests", []):
            (kind, spec), *extra = request.items()
            if extra:
                raise ApiError(400, "Invalid requests: each request must set exactly one kind")
            replies.append(getattr(self, f"_req_{kind}", self._req_unknown)(work, spec, kind))
        cells = sum(sheet.rows * sheet.cols for sheet in work)
        if cells > SPREADSHEET_CELL_LIMIT:
            raise ApiError(
                400,
                "Invalid requests: This action would increase the number of cells in the workbook "
                f"above the limit of {SPREADSHEET_CELL_LIMIT} cells.",
            )
        spreadsheet.sheets = work
        return {"spreadsheetId": spreadsheet.key, "replies": replies}

    def _req_unknown(self, work: list[Sheet], spec: Any, kind: str) -> dict[str, Any]:
        raise ApiError(400, f"fake: request kind {kind!r} is not implemented")

    def _req_addSheet(self, work: list[Sheet], spec: dict[str, Any], kind: str) -> dict[str, Any]:
        props = spec.get("properties", {})
        title = props.get("title") or f"Sheet{len(work) + 1}"
        if any(sheet.title.casefold() == title.casefold() for sheet in work):
            raise ApiError(
                400,
                f'Invalid requests[0].addSheet: A sheet with the name "{title}" already exists. '
                "Please enter another name.",
            )
        grid = props.get("gridProperties", {})
        new = self._sheet_properties(
            title, grid.get("rowCount", 1000), grid.get("columnCount", 26), len(work)
        )
        new["sheetId"] = props.get("sheetId", next(self._ids))
        if any(sheet.properties["sheetId"] == new["sheetId"] for sheet in work):
            raise ApiError(
                400, f"Invalid requests[0].addSheet: A sheet with the id {new['sheetId']} already exists."
            )
        if "frozenRowCount" in grid:
            new["gridProperties"]["frozenRowCount"] = grid["frozenRowCount"]
        self._check_frozen(new)
        work.append(Sheet(new))
        return {"addSheet": {"properties": copy.deepcopy(new)}}

    def _req_updateSheetProperties(
        self, work: list[Sheet], spec: dict[str, Any], kind: str
    ) -> dict[str, Any]:
        props = spec.get("properties", {})
        sheet = self._by_id(work, props.get("sheetId"))
        fields = [f.strip() for f in spec.get("fields", "").split(",") if f.strip()]
        if not fields:
            raise ApiError(400, "Invalid requests: updateSheetProperties: fields is required")
        for name in fields:
            if name in ("gridProperties.rowCount", "gridProperties.columnCount"):
                sub = name.split(".")[1]
                sheet.properties["gridProperties"][sub] = props["gridProperties"][sub]
            elif name == "gridProperties.frozenRowCount":
                sheet.properties["gridProperties"]["frozenRowCount"] = props["gridProperties"][
                    "frozenRowCount"
                ]
            elif name == "title":
                sheet.properties["title"] = props["title"]
            else:
                raise ApiError(400, f"fake: field {name!r} is not implemented")
        for row, col in list(sheet.cells):
            if row >= sheet.rows or col >= sheet.cols:
                del sheet.cells[(row, col)]
        self._check_frozen(sheet.properties)
        return {}

    @staticmethod
    def _check_frozen(properties: dict[str, Any]) -> None:
        grid = properties["gridProperties"]
        if grid.get("frozenRowCount", 0) >= grid["rowCount"]:
            raise ApiError(400, "Invalid requests: You can't freeze all visible rows on the sheet.")

    #: The userEnteredFormat fields the fake understands in a repeatCell fields mask.
    _FORMAT_FIELDS = ("userEnteredFormat.numberFormat", "userEnteredFormat.textFormat.bold")

    def _req_repeatCell(self, work: list[Sheet], spec: dict[str, Any], kind: str) -> dict[str, Any]:
        grid = spec.get("range", {})
        sheet = self._by_id(work, grid.get("sheetId"))
        r0, r1 = grid.get("startRowIndex", 0), grid.get("endRowIndex", sheet.rows)
        c0, c1 = grid.get("startColumnIndex", 0), grid.get("endColumnIndex", sheet.cols)
        if r1 > sheet.rows or c1 > sheet.cols:
            raise ApiError(400, f"Invalid requests: repeatCell: range exceeds grid limits of {sheet.title!r}")
        fields = [f.strip() for f in spec.get("fields", "").split(",") if f.strip()]
        if not fields:
            raise ApiError(400, "Invalid requests: repeatCell: fields is required")
        for path in fields:
            if path not in self._FORMAT_FIELDS:
                raise ApiError(400, f"fake: repeatCell field {path!r} is not implemented")
            value: Any = spec.get("cell", {})
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if path.endswith("numberFormat") and value is not None:
                if value.get("type") not in ("TEXT", "NUMBER", "PERCENT", "CURRENCY", "DATE", "TIME",
                                             "DATE_TIME", "SCIENTIFIC"):  # fmt: skip
                    raise ApiError(400, f"Invalid value at 'numberFormat.type' ({value.get('type')!r})")
            sheet.formats.append(((r0, r1, c0, c1), path, value))
        return {}

    def _req_updateCells(self, work: list[Sheet], spec: dict[str, Any], kind: str) -> dict[str, Any]:
        if spec.get("rows"):
            raise ApiError(400, "fake: updateCells with rows is not implemented (only clearing)")
        if spec.get("fields") not in ("userEnteredValue", "*"):
            raise ApiError(400, f"fake: updateCells fields {spec.get('fields')!r} is not implemented")
        grid = spec.get("range", {})
        sheet = self._by_id(work, grid.get("sheetId"))
        r0, r1 = grid.get("startRowIndex", 0), grid.get("endRowIndex", sheet.rows)
        c0, c1 = grid.get("startColumnIndex", 0), grid.get("endColumnIndex", sheet.cols)
        for row, col in list(sheet.cells):
            if r0 <= row < r1 and c0 <= col < c1:
                del sheet.cells[(row, col)]
        return {}

    @staticmethod
    def _by_id(work: list[Sheet], sheet_id: Any) -> Sheet:
        for sheet in work:
            if sheet.properties["sheetId"] == (sheet_id or 0):
                return sheet
        raise ApiError(400, f"Invalid requests: No grid with id: {sheet_id}")

    # --- values -----------------------------------------------------------------------------------
    def _resolve(self, spreadsheet: Spreadsheet, a1: str) -> tuple[Sheet, int, int, int | None, int | None]:
        """(sheet, first row, first col, last row, last col); 0-based, last bounds inclusive or None."""
        if a1.startswith("'"):
            end = 1
            while True:
                end = a1.index("'", end)
                if a1[end + 1 : end + 2] == "'":
                    end += 2
                    continue
                break
            title, cells = a1[1:end].replace("''", "'"), a1[end + 1 :].removeprefix("!")
        elif "!" in a1:
            title, cells = a1.rsplit("!", 1)
        elif any(s.title == a1 for s in spreadsheet.sheets):
            title, cells = a1, ""
        else:
            title, cells = spreadsheet.sheets[0].title, a1
        sheet = next((s for s in spreadsheet.sheets if s.title == title), None)
        if sheet is None:
            raise ApiError(400, f"Unable to parse range: {a1}")
        if not cells:
            return sheet, 0, 0, sheet.rows - 1, sheet.cols - 1
        start, _, stop = cells.partition(":")
        first = _CELL.match(start)
        last = _CELL.match(stop or start)
        if not first or not last:
            raise ApiError(400, f"Unable to parse range: {a1}")
        r0 = int(first[2]) - 1 if first[2] else 0
        c0 = col_number(first[1]) - 1 if first[1] else 0
        r1 = int(last[2]) - 1 if last[2] else sheet.rows - 1
        c1 = col_number(last[1]) - 1 if last[1] else sheet.cols - 1
        if not stop:
            return sheet, r0, c0, None, None
        return sheet, r0, c0, r1, c1

    def _clear(self, spreadsheet: Spreadsheet, a1: str) -> str:
        sheet, r0, c0, r1, c1 = self._resolve(spreadsheet, a1)
        r1 = r0 if r1 is None else r1
        c1 = c0 if c1 is None else c1
        for row, col in list(sheet.cells):
            if r0 <= row <= r1 and c0 <= col <= c1:
                del sheet.cells[(row, col)]
        return a1

    def _update(self, spreadsheet: Spreadsheet, a1: str, record: Recorded) -> dict[str, Any]:
        option = record.query.get("valueInputOption", [None])[0]
        if option not in ("RAW", "USER_ENTERED"):
            raise ApiError(400, "'valueInputOption' is required but not specified")
        body = record.json or {}
        if body.get("majorDimension", "ROWS") != "ROWS":
            raise ApiError(400, "fake: only majorDimension=ROWS is implemented")
        rows = body.get("values", [])
        sheet, r0, c0, r1, c1 = self._resolve(spreadsheet, a1)
        height = len(rows)
        width = max((len(row) for row in rows), default=0)
        if r1 is not None and (r0 + height - 1 > r1 or c0 + width - 1 > c1):
            raise ApiError(
                400,
                f"Requested writing within range [{a1}], but tried writing to row [{r0 + height}]",
            )
        if r0 + height > sheet.rows or c0 + width > sheet.cols:
            raise ApiError(
                400,
                f"Range ('{sheet.title}'!{col_letters(c0 + 1)}{r0 + 1}:{col_letters(c0 + width)}"
                f"{r0 + height}) exceeds grid limits. Max rows: {sheet.rows}, max columns: {sheet.cols}",
            )
        staged: dict[tuple[int, int], Any] = {}
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                if isinstance(value, str) and len(value) > CELL_CHAR_LIMIT:
                    raise ApiError(
                        400,
                        f"Your input contains more than the maximum of {CELL_CHAR_LIMIT} characters "
                        "in a single cell.",
                    )
                if isinstance(value, dict | list):
                    raise ApiError(400, f"Invalid values[{i}][{j}]: {json.dumps(value)[:80]}")
                staged[(r0 + i, c0 + j)] = value
        for cell, value in staged.items():
            if value is None:
                continue  # null leaves the cell unchanged
            if value == "":
                sheet.cells.pop(cell, None)
            elif option == "USER_ENTERED" and isinstance(value, str) and value.startswith("="):
                sheet.cells[cell] = {"formula": value}
            else:
                sheet.cells[cell] = value
        return {
            "spreadsheetId": spreadsheet.key,
            "updatedRange": f"'{sheet.title}'!{col_letters(c0 + 1)}{r0 + 1}:{col_letters(c0 + width)}"
            f"{r0 + height}",
            "updatedRows": height,
            "updatedColumns": width,
            "updatedCells": sum(len(row) for row in rows),
        }

    def _get(self, spreadsheet: Spreadsheet, a1: str, record: Recorded) -> dict[str, Any]:
        sheet, r0, c0, r1, c1 = self._resolve(spreadsheet, a1)
        r1 = r0 if r1 is None else r1
        c1 = c0 if c1 is None else c1
        unformatted = record.query.get("valueRenderOption", [""])[0] == "UNFORMATTED_VALUE"
        picked = {
            (row - r0, col - c0): value
            for (row, col), value in sheet.cells.items()
            if r0 <= row <= r1 and c0 <= col <= c1
        }
        rows = _grid(picked)
        if not unformatted:
            rows = [[_formatted(value) for value in row] for row in rows]
        result: dict[str, Any] = {"range": a1, "majorDimension": "ROWS"}
        if rows:
            result["values"] = rows
        return result


def _grid(cells: dict[tuple[int, int], Any]) -> list[list[Any]]:
    if not cells:
        return []
    height = max(row for row, _ in cells) + 1
    rows: list[list[Any]] = [[] for _ in range(height)]
    for (row, col), value in sorted(cells.items()):
        rows[row].extend([""] * (col - len(rows[row])))
        rows[row].append(value)
    return rows


def _formatted(value: Any) -> Any:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return "#FORMULA"
    return str(value)


@functools.cache
def _private_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account_key(fake: FakeSheets, client_email: str = CLIENT_EMAIL) -> dict[str, Any]:
    """A syntactically real service-account key (throwaway RSA key) that ``fake`` accepts."""
    from cryptography.hazmat.primitives import serialization

    key = _private_key()
    fake.register_service_account(client_email, key.public_key())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "nightshift-test",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem,
        "client_email": client_email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": TOKEN_URI,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/nightshift-reports",
    }


def use_google_connection(
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeSheets,
    *,
    conn_id: str = "google_cloud_default",
    key_file: Path | None = None,
    prefixed: bool = False,
    keyfile_as_text: bool = True,
) -> dict[str, Any]:
    """Define the Google connection (env var) with a key the fake accepts and ``sheets_endpoint``.

    ``key_file`` writes the key there and uses ``key_path``; ``prefixed`` uses the provider's legacy
    ``extra__google_cloud_platform__`` names. Returns the key (its ``client_email`` for assertions).
    """
    key = service_account_key(fake)
    prefix = "extra__google_cloud_platform__" if prefixed else ""
    extra: dict[str, Any] = {f"{prefix}sheets_endpoint": fake.endpoint}
    if key_file is not None:
        key_file.write_text(json.dumps(key))
        extra[f"{prefix}key_path"] = str(key_file)
    else:
        extra[f"{prefix}keyfile_dict"] = json.dumps(key) if keyfile_as_text else key
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "google_cloud_platform", "extra": extra})
    )
    return key


@pytest.fixture
def fake_sheets() -> Iterator[FakeSheets]:
    """A running fake Sheets API (and token endpoint) on 127.0.0.1."""
    fake = FakeSheets().start()
    yield fake
    fake.stop()
