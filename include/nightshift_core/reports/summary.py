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
from nightshift_core.reports.headline import COMPARISONS, Change, Headline, change_text, direction, value_text


@dataclass(frozen=True)
class Block:
    """One section of the e-mail: its columns' declared formats and how many rows it shows."""

    title: str
    columns: Sequence[str]
    rows: Sequence[tuple]
    formats: Mapping[str, str] = field(default_factory=dict)  # column -> formats.FORMATS name
    max_rows: int | None = None  # None: the e-mail's max_rows


@dataclass(frozen=True)
class Picture:
    """A chart in the e-mail: an inline PNG attached with this Content-ID, and its alt text."""

    content_id: str  # without <>, e.g. revenue_30_days.daily_sales.2026-11-22@nightshift
    title: str
    alt: str
    width: int = 720
    height: int = 320


@dataclass(frozen=True)
class Lead:
    """What the e-mail says before any table: a late sync, the headline KPIs, the charts."""

    headline: Headline | None = None
    late: str = ""  # the late-sync warning (headline.late_sync), shown first
    pictures: Sequence[Picture] = ()
    currency: str = ""


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
    "late": f"{_FONT};font-size:14px;color:#7a1d00;background:#fff3e0;border:1px solid #e6a23c;"
    "padding:8px 12px;margin:0 0 12px 0;",
    "nodata": f"{_FONT};font-size:16px;font-weight:bold;color:#7a1d00;margin:8px 0;",
    "kpi_label": "border-bottom:1px solid #ddd;padding:6px 10px;text-align:left;font-size:13px;color:#444;",
    "kpi_value": "border-bottom:1px solid #ddd;padding:6px 10px;text-align:right;font-size:18px;"
    "font-weight:bold;white-space:nowrap;",
    "kpi_change": "border-bottom:1px solid #ddd;padding:6px 10px;text-align:right;font-size:12px;white-space:nowrap;",
    "img": "display:block;border:0;max-width:100%;height:auto;margin:4px 0 12px 0;",
}
_TREND = {1: ("#1b5e20", "\u25b2 "), -1: ("#b71c1c", "\u25bc "), 0: ("#555", "")}


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
    lead: Lead | None = None,
) -> str:
    """A self-contained HTML e-mail body (inline styles only; mail clients drop <style>).

    Layout is tables and inline styles; images are only ``cid:`` parts of the message, never a URL.
    """
    blocks = _blocks(sections, max_rows)
    out = [
        '<!DOCTYPE html><html><head><meta charset="utf-8">',
        f"<title>{_esc(title)}</title></head>",
        f'<body style="{_STYLE["body"]}">',
        f'<h1 style="{_STYLE["h1"]}">{_esc(title)}</h1>',
    ]
    if subtitle:
        out.append(f'<p style="{_STYLE["subtitle"]}">{_esc(subtitle)}</p>')
    if lead is not None:
        out += _lead_html(lead)
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
    lead: Lead | None = None,
) -> str:
    """The plain-text alternative of :func:`summary_html`: aligned columns, same rows, same headline."""
    blocks = _blocks(sections, max_rows)
    head = plain(title)
    lines = [head, "=" * len(head)]
    if subtitle:
        lines.append(plain(subtitle))
    if lead is not None:
        lines += _lead_text(lead)
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
    lead: Lead | None = None,
) -> tuple[Path, Path]:
    """Render both bodies and write them next to the workbook (atomically); return their paths."""
    html_path, text_path = summary_file_paths(workbook_path)
    options = {"max_rows": max_rows, "note": note, "currency": currency, "lead": lead}
    bodies = (
        (html_path, summary_html(title, subtitle, sections, **options)),
        (text_path, summary_text(title, subtitle, sections, **options)),
    )
    for path, body in bodies:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, path)
    return html_path, text_path


def headline_rows(headline: Headline, currency: str = "") -> list[list[str]]:
    """The headline as text cells: KPI, the report date's value, each comparison, month to date."""
    rows = []
    for line in headline.lines:
        fmt = line.kpi.format
        mtd = line.month_to_date
        rows.append(
            [
                plain(line.kpi.label),
                value_text(line.value, fmt, currency),
                *(change_text(c, fmt, currency) for c in line.changes),
                value_text(mtd.value, fmt, currency),
                change_text(mtd, fmt, currency),
            ]
        )
    return rows


def headline_columns(headline: Headline) -> list[str]:
    return [
        "",
        headline.report_date.isoformat(),
        *(f"vs {c}" for c in COMPARISONS),
        f"month to date ({headline.month_span})",
        f"vs {headline.previous_span}",
    ]


def _lead_html(lead: Lead) -> list[str]:
    """Late sync, no-data line, the KPI table (percent changes; the text part has the amounts) and pictures."""
    out = []
    if lead.late:
        out.append(
            f'<table role="presentation" cellspacing="0" cellpadding="0" width="100%"><tr>'
            f'<td style="{_STYLE["late"]}"><b>&#9888; {_esc(lead.late)}</b></td></tr></table>'
        )
    headline = lead.headline
    if headline is not None:
        if headline.no_data:
            said = headline.no_data[:1].upper() + headline.no_data[1:]
            out.append(f'<p style="{_STYLE["nodata"]}">{_esc(said)}</p>')
        columns = [
            "",
            headline.report_date.isoformat(),
            *(f"vs {c}" for c in COMPARISONS),
            f"month to date ({headline.month_span}) vs {headline.previous_span}",
        ]
        out.append(f'<table role="presentation" cellspacing="0" cellpadding="0" style="{_STYLE["table"]}">')
        heads = [
            f'<th style="{_STYLE["th"]}{"" if i == 0 else "text-align:right;"}">{_esc(c)}</th>'
            for i, c in enumerate(columns)
        ]
        out.append("<tr>" + "".join(heads) + "</tr>")
        for line in headline.lines:
            fmt, mtd = line.kpi.format, line.month_to_date
            tds = [
                f'<td style="{_STYLE["kpi_label"]}">{_esc(line.kpi.label)}</td>',
                f'<td style="{_STYLE["kpi_value"]}">{_esc(value_text(line.value, fmt, lead.currency))}</td>',
            ]
            tds += [_change_td(change, fmt, lead.currency) for change in line.changes]
            tds.append(
                f'<td style="{_STYLE["kpi_change"]}">{_esc(value_text(mtd.value, fmt, lead.currency))}<br>'
                + _change_span(mtd, fmt, lead.currency)
                + "</td>"
            )
            out.append("<tr>" + "".join(tds) + "</tr>")
        out.append("</table>")
    for picture in lead.pictures:
        out.append(f'<h2 style="{_STYLE["h2"]}">{_esc(picture.title)}</h2>')
        out.append(
            f'<img src="cid:{html.escape(picture.content_id, quote=True)}" alt="{_esc(picture.alt)}" '
            f'width="{int(picture.width)}" height="{int(picture.height)}" style="{_STYLE["img"]}">'
        )
    return out


def _short_change(change: Change, fmt: str, currency: str) -> str:
    """The percent change alone when there is one, else the full change text (a share's: points)."""
    percent = change.percent
    if percent is None or change.delta is None or change.delta == 0 or fmt == "share":
        return change_text(change, fmt, currency)
    return f"{'+' if percent > 0 else '−'}{abs(percent):,.1f}%"


def _change_span(change: Change, fmt: str, currency: str) -> str:
    colour, arrow = _TREND[direction(change)]
    return f'<span style="color:{colour};">{arrow}{_esc(_short_change(change, fmt, currency))}</span>'


def _change_td(change: Change, fmt: str, currency: str) -> str:
    return f'<td style="{_STYLE["kpi_change"]}">{_change_span(change, fmt, currency)}</td>'


def _lead_text(lead: Lead) -> list[str]:
    lines: list[str] = []
    if lead.late:
        lines += ["", "!! " + plain(lead.late)]
    headline = lead.headline
    if headline is not None:
        lines.append("")
        if headline.no_data:
            lines.append(plain(headline.no_data[:1].upper() + headline.no_data[1:]))
        for cells in headline_rows(headline, lead.currency):
            mtd = (
                f"month to date ({headline.month_span}) {cells[-2]}, {cells[-1]} vs {headline.previous_span}"
            )
            changes = "; ".join(f"{c} vs {name}" for c, name in zip(cells[2:5], COMPARISONS, strict=True))
            lines.append(f"{cells[0]}: {cells[1]}  ({changes}; {mtd})")
    for picture in lead.pictures:
        lines += ["", f"[Chart] {plain(picture.title)}: {plain(picture.alt)}"]
    return lines
