"""Column formats by meaning, declared per section in a report YAML (``formats: {column: money}``).

One name says how a column reads everywhere: the e-mail (HTML and plain text), Excel's
``number_format`` and the number format of a Google Sheets column. A column without a format is
shown as its value suggests (numbers with separators, dates as dates).

``id``     plain digits, no separators (employee 1324, order 10425)
``count``  a whole number with thousands separators (18, 1,186)
``money``  two decimals, thousands separators and the report's ``currency`` (1,234.50 USD)
``share``  a fraction shown as a percentage with one decimal (0.25 -> 25.0%)
``score``  a measure on a small scale with three decimals (a mean VADER compound: -0.125, 0.400)
``date``   YYYY-MM-DD (a timestamp shows its UTC date)
``text``   as text, left-aligned, even when the value is a number
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any, Literal, get_args

Format = Literal["id", "count", "money", "share", "score", "date", "text"]
FORMATS: tuple[str, ...] = get_args(Format)
#: Formats whose cells are right-aligned in the e-mail.
NUMERIC_FORMATS = frozenset({"id", "count", "money", "share", "score"})
#: Formats of a headline KPI and of a chart's values.
KPI_FORMATS = ("count", "money", "share")


def excel_format(fmt: str, currency: str = "") -> str:
    """The ``number_format`` of an openpyxl cell in a column of this format."""
    return {
        "id": "0",
        "count": "#,##0",
        "money": f'#,##0.00 "{currency}"' if currency else "#,##0.00",
        "share": "0.0%",
        "score": "0.000",
        "date": "yyyy-mm-dd",
        "text": "@",
    }[fmt]


def sheets_format(fmt: str, currency: str = "") -> dict[str, str]:
    """The ``numberFormat`` of a Google Sheets cell (``CellFormat.numberFormat``) in this format."""
    kind = {"id": "NUMBER", "count": "NUMBER", "money": "NUMBER", "share": "PERCENT", "score": "NUMBER",
            "date": "DATE"}  # fmt: skip
    if fmt == "text":
        return {"type": "TEXT"}
    return {"type": kind[fmt], "pattern": excel_format(fmt, currency)}


def display(value: Any, fmt: str, currency: str = "") -> str | None:
    """``value`` as text in format ``fmt``; None when the format does not apply to the value.

    A value the format cannot read (text in a ``money`` column, NaN) is left to the caller's
    general rendering, so a bad row is shown as it is instead of failing the report.
    """
    number = isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)
    if number and not finite(value):
        return None
    if fmt == "text":
        return None if value is None else str(value)
    if fmt == "date":
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC) if value.tzinfo else value
            return value.date().isoformat()
        return value.isoformat() if isinstance(value, dt.date) else None
    if not number:
        return None
    if fmt == "id":
        return str(int(value)) if value == int(value) else str(value)
    if fmt == "count":
        return f"{_round(value, '1'):,.0f}"
    if fmt == "money":
        text = f"{_round(value, '0.01'):,.2f}"
        return f"{text} {currency}" if currency else text
    if fmt == "share":
        return f"{_round(decimal.Decimal(str(value)) * 100, '0.1'):.1f}%"
    if fmt == "score":
        return f"{_round(value, '0.001'):.3f}"
    raise ValueError(f"unknown column format {fmt!r}; use one of {', '.join(FORMATS)}")


def finite(value: int | float | decimal.Decimal) -> bool:
    """A number Excel, Sheets and the formats can show as one: not NaN or infinite."""
    if isinstance(value, decimal.Decimal):
        return value.is_finite()
    return isinstance(value, int) or math.isfinite(value)


def _round(value: int | float | decimal.Decimal, step: str) -> decimal.Decimal:
    """Half-up rounding, as people round money (``round()`` and ``:.2f`` round half to even)."""
    exact = value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value))
    return exact.quantize(decimal.Decimal(step), rounding=decimal.ROUND_HALF_UP)
