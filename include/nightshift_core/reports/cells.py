"""Make untrusted values safe to put in a spreadsheet cell or an e-mail.

Reports carry customer names and Reddit text: a value such as ``=HYPERLINK("http://x")``
must be shown as text by Excel and Google Sheets, never run as a formula. Values are kept
verbatim where the format allows it (Sheets ``RAW`` input, an Excel string cell with
``quotePrefix``); only characters a format cannot hold are replaced, and over-long text is
cut with a visible marker instead of being rejected.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from typing import Any

#: A cell whose text starts with one of these is read as a formula (or DDE) by spreadsheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

#: Google Sheets refuses cells over 50,000 characters; Excel stops at 32,767.
SHEETS_CELL_LIMIT = 50_000
EXCEL_CELL_LIMIT = 32_767
TRUNCATION_MARKER = "… [truncated {dropped} chars]"

# Characters XML 1.0 cannot hold (openpyxl raises IllegalCharacterError on them): C0 controls
# except tab/newline/carriage return, lone surrogates and the two non-characters.
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def is_formula_like(value: Any) -> bool:
    """True when a spreadsheet would interpret ``value`` (a string) as a formula."""
    return isinstance(value, str) and value.startswith(FORMULA_PREFIXES)


def clean_text(text: str) -> str:
    """Replace characters that XML (so xlsx) cannot store with U+FFFD; the row is kept."""
    return _ILLEGAL_XML.sub("\ufffd", text)


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, ending with a marker saying how much went."""
    if len(text) <= limit:
        return text
    keep = limit - len(TRUNCATION_MARKER.format(dropped=len(text)))
    return text[:keep] + TRUNCATION_MARKER.format(dropped=len(text) - keep)


def excel_value(value: Any) -> tuple[Any, bool]:
    """A value for an openpyxl cell, and whether it must be stored as literal text.

    The caller sets ``cell.data_type = "s"`` and a ``quotePrefix`` style when the flag is
    true, so Excel shows ``=cmd|...`` as text even after the user edits the cell.
    """
    if value is None or isinstance(value, bool | int | float | decimal.Decimal):
        return value, False
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        # xlsx has no time zones: store UTC wall time (the report says so in its subtitle).
        return value.astimezone(dt.UTC).replace(tzinfo=None), False
    if isinstance(value, dt.date | dt.time | dt.timedelta):
        return value, False
    if isinstance(value, bytes):
        value = value.hex()
    text = truncate(clean_text(str(value)), EXCEL_CELL_LIMIT)
    return text, is_formula_like(text)


def sheets_value(value: Any) -> Any:
    """A JSON value for a Sheets ``values.update`` with ``valueInputOption=RAW``.

    RAW input is never parsed, so formula-like text stays text; numbers stay numbers so
    the sheet can sum them. Decimals become floats only for display in Sheets (the
    warehouse keeps the exact value).
    """
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        value = value.hex()
    return truncate(str(value), SHEETS_CELL_LIMIT)
