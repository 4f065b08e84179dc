"""The readable part of a report e-mail: an HTML summary table and its plain-text twin.

Cells come from the warehouse and may hold anything a customer or a Reddit user typed, so
every value is turned into text here, stripped of control characters, cut to a readable
length and HTML-escaped; numbers are right-aligned with thousands separators. The
report-build task writes both bodies next to the workbook (:func:`write_summary_files`), and
the e-mail task only reads the files, so XCom carries paths, never rows.
"""

from __future__ import annotations

import datetime as dt
import decimal
import html
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightshift_core.reports.cells import truncate
from nightshift_core.reports.formats import NUMERIC_FORMATS, display


@dataclass(frozen=True)
class Block:
    """One section of the e-mail: its columns' declared formats and how many rows it shows."""

    title: str
    columns: Sequence[str]
    rows: Sequence[tuple]
    formats: Mapping[str, str] = field(default_factory=dict)  # column -> formats.FORMATS name
    max_rows: int | None = None  # None: the e-mail's max_rows


#: (section title, column names, rows), or a Block with formats and its own row limit
Section = tuple[str, Sequence[str], Sequence[tuple]] | Block

NO_ROWS = "No rows for this report date."
CELL_LIMIT = 500  # characters of one cell in the e-mail (the workbook has the full text)
TEXT_CELL_LIMIT = 40  # column width in the plain-text table

# Whitespace controls become a space; other C0/C1 controls, DEL, lone surrogates and the two
# non-characters are dropped (a mail client may render them as boxes or refuse the part).
_WHITESPACE = re.compile("[\t\n\r\x0b\x0c\x85\u2028\u2029]+")
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")

_FONT = "font-family:Arial,Helvetica,sans-serif"
_STYLE = {
    "body": f"{_FONT};color:#222;margin:0;padding:16px;",
    "h1": f"{_FONT};font-size:20px;margin:0 0 4px 0;",
    "subtitle": f"{_FONT};font-size:13px;color:#555;margin:0 0 16px 0;",
    "h2": f"{_FONT};font-size:16px;margin:20px 0 6px 0;",
    "table": "border-collapse:collapse;font-size:13px;" + _FONT + ";",
    "th": "background:#f0f0f0;border:1px solid #ccc;padding:4px 8px;text-align:left;",
    "td": "border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left;",
    "td_num": "border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:right;white-space:nowrap;",
    "muted": f"{_FONT};font-size:12px;color:#777;margin:4px 0;",
    "empty": f"{_FONT};font-size:13px;color:#555;font-style:italic;margin:4px 0;",
}


def is_number(value: Any) -> bool:
    """Numbers are right-aligned; booleans are not numbers here."""
    return isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)


def format_value(value: Any, limit: int = CELL_LIMIT) -> str:
    """One cell as display text: thousands separators, Decimals with 2 places, UTC timestamps.

    The result is plain text without control characters, at most ``limit`` characters; the
    caller escapes it for HTML.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return str(value)
        return f"{value.quantize(decimal.Decimal('0.01'), rounding=decimal.ROUND_HALF_UP):,.2f}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and abs(value) < 0.01:
            return f"{value:.3g}"  # a small rate must not show as 0.00
        return f"{value:,.2f}"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value).hex()
    else:
        text = str(value)
    return truncate(plain(text), limit)


def format_cell(value: Any, fmt: str | None, currency: str = "", limit: int = CELL_LIMIT) -> str:
    """A cell in its column's declared format (see :mod:`formats`), else as :func:`format_value`."""
    text = display(value, fmt, currency) if fmt else None
    return format_value(value, limit) if text is None else truncate(plain(text), limit)


def _blocks(sections: Sequence[Section], max_rows: int) -> list[tuple[Block, Sequence[tuple]]]:
    """Each section as a Block with the rows it shows; row lengths checked against the columns."""
    if max_rows < 1:
        raise ValueError(f"max_rows is {max_rows}; it must be at least 1")
    out = []
    for section in sections:
        block = section if isinstance(section, Block) else Block(*section)
        shown = block.rows[: block.max_rows or max_rows]
        for number, row in enumerate(shown, start=1):
            if len(row) != len(block.columns):
                raise ValueError(
                    f"section {block.title!r}: row {number} has {len(row)} values but there are "
                    f"{len(block.columns)} columns {list(block.columns)}; pass rows as tuples in column order"
                )
        out.append((block, shown))
    return out


def plain(text: str) -> str:
    """Text without control characters: line breaks and tabs become single spaces."""
    return _CONTROL.sub("", _WHITESPACE.sub(" ", text))


def _esc(text: str) -> str:
    return html.escape(plain(text), quote=True)


def _count(shown: int, total: int) -> str:
    return f"showing {shown:,} of {total:,} rows" if shown < total else f"{total:,} row{'s' * (total != 1)}"


def _numeric_columns(block: Block, rows: Sequence[tuple]) -> list[bool]:
    """Right-aligned columns: a declared numeric format, else every non-empty value a number."""
    numeric = []
    for i, column in enumerate(block.columns):
        if column in block.formats:
            numeric.append(block.formats[column] in NUMERIC_FORMATS)
            continue
        values = [row[i] for row in rows if i < len(row) and row[i] is not None]
        numeric.append(bool(values) and all(is_number(v) for v in values))
    return numeric


def summary_html(
    title: str,
    subtitle: str,
    sections: Sequence[Section],
    *,
    max_rows: int = 20,
    note: str = "",
    currency: str = "",
) -> str:
    """A self-contained HTML e-mail body (inline styles only; mail clients drop <style>)."""
    blocks = _blocks(sections, max_rows)
    out = [
        '<!DOCTYPE html><html><head><meta charset="utf-8">',
        f"<title>{_esc(title)}</title></head>",
        f'<body style="{_STYLE["body"]}">',
        f'<h1 style="{_STYLE["h1"]}">{_esc(title)}</h1>',
    ]
    if subtitle:
        out.append(f'<p style="{_STYLE["subtitle"]}">{_esc(subtitle)}</p>')
    for block, shown in blocks:
        columns, rows = block.columns, block.rows
        out.append(f'<h2 style="{_STYLE["h2"]}">{_esc(block.title)}</h2>')
        if not rows:
            out.append(f'<p style="{_STYLE["empty"]}">{NO_ROWS}</p>')
            continue
        numeric = _numeric_columns(block, shown)
        fmts = [block.formats.get(c) for c in columns]
        out.append(f'<table role="presentation" cellspacing="0" cellpadding="0" style="{_STYLE["table"]}">')
        out.append("<thead><tr>")
        for name, is_num in zip(columns, numeric, strict=True):
            align = "text-align:right;" if is_num else ""
            out.append(f'<th style="{_STYLE["th"]}{align}">{_esc(str(name))}</th>')
        out.append("</tr></thead><tbody>")
        for row in shown:
            cells = "".join(
                f'<td style="{_STYLE["td_num" if is_num else "td"]}">'
                f"{html.escape(format_cell(v, fmt, currency))}</td>"
                for v, is_num, fmt in zip(row, numeric, fmts, strict=True)
            )
            out.append(f"<tr>{cells}</tr>")
        out.append("</tbody></table>")
        out.append(f'<p style="{_STYLE["muted"]}">{_count(len(shown), len(rows))}</p>')
    if note:
        out.append(f'<p style="{_STYLE["muted"]}">{_esc(note)}</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def summary_text(
    title: str,
    subtitle: str,
    sections: Sequence[Section],
    *,
    max_rows: int = 20,
    note: str = "",
    currency: str = "",
) -> str:
    """The plain-text alternative of :func:`summary_html`: aligned columns, same rows."""
    blocks = _blocks(sections, max_rows)
    head = plain(title)
    lines = [head, "=" * len(head)]
    if subtitle:
        lines.append(plain(subtitle))
    for block, shown in blocks:
        columns, rows = block.columns, block.rows
        name = plain(block.title)
        lines += ["", name, "-" * len(name)]
        if not rows:
            lines.append(NO_ROWS)
            continue
        numeric = _numeric_columns(block, shown)
        fmts = [block.formats.get(c) for c in columns]
        table = [[truncate(plain(str(c)), TEXT_CELL_LIMIT) for c in columns]]
        table += [
            [format_cell(v, fmt, currency, TEXT_CELL_LIMIT) for v, fmt in zip(row, fmts, strict=True)]
            for row in shown
        ]
        widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
        for number, cells in enumerate(table):
            padded = [
                c.rjust(w) if is_num else c.ljust(w)
                for c, w, is_num in zip(cells, widths, numeric, strict=True)
            ]
            lines.append("  ".join(padded).rstrip())
            if number == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines.append(_count(len(shown), len(rows)))
    if note:
        lines += ["", plain(note)]
    return "\n".join(lines) + "\n"


def summary_file_paths(workbook_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Where the bodies of a report's e-mail live: ``<workbook>.summary.html`` and ``.txt``."""
    base = Path(workbook_path)
    return base.with_name(base.name + ".summary.html"), base.with_name(base.name + ".summary.txt")


def write_summary_files(
    workbook_path: str | os.PathLike[str],
    title: str,
    subtitle: str,
    sections: Sequence[Section],
    *,
    max_rows: int = 20,
    note: str = "",
    currency: str = "",
) -> tuple[Path, Path]:
    """Render both bodies and write them next to the workbook (atomically); return their paths."""
    html_path, text_path = summary_file_paths(workbook_path)
    options = {"max_rows": max_rows, "note": note, "currency": currency}
    bodies = (
        (html_path, summary_html(title, subtitle, sections, **options)),
        (text_path, summary_text(title, subtitle, sections, **options)),
    )
    for path, body in bodies:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, path)
    return html_path, text_path
