"""Write report sections to an .xlsx workbook: one styled sheet per section, safe against hostile data.

Layout of every sheet: title (A1), subtitle (A2), header (row 3), data from row 4, panes frozen
below the header, an autofilter over the data, a ``Total`` row of ``=SUM()`` formulas and an
optional bar chart to the right. Workbooks are written in openpyxl's write-only (streaming)
mode, so a sheet of a million rows never holds a million cell objects; the file appears
atomically (temp file + ``os.replace``), so a re-run of the same date replaces it.

Untrusted text goes through :func:`nightshift_core.reports.cells.excel_value`; text a
spreadsheet would read as a formula is stored as a string cell with ``quotePrefix``. The only
formulas in a workbook are the totals this module writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, Cell
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from nightshift_core.reports.cells import excel_value
from nightshift_core.reports.formats import display, excel_format, finite
from nightshift_core.reports.tables import ChartSpec, ReportTable

DATE_FORMAT = excel_format("date")
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
TIME_FORMAT = "hh:mm:ss"
DURATION_FORMAT = "[h]:mm:ss"

EMPTY_MESSAGE = "No rows for this report date."
#: The first sheet when a report has a headline or charts.
OVERVIEW_SHEET = "overview"
TOTAL_LABEL = "Total"
HEADER_ROW = 3
FIRST_DATA_ROW = 4

#: Column widths are fitted to the header and this many leading rows, within these bounds.
WIDTH_SAMPLE_ROWS = 500
MIN_WIDTH, MAX_WIDTH = 10, 60
#: A bar chart shows at most this many categories; the title says when it was cut.
CHART_MAX_CATEGORIES = 50

_TITLE_FONT = Font(bold=True, size=14)
_SUBTITLE_FONT = Font(italic=True, color="595959")
_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", start_color="D9E1F2")
_TOTAL_FONT = Font(bold=True)
_PART_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_REPORT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_ERROR_CODES = frozenset(ERROR_CODES)


def workbook_name(report_id: str, report_date: date, part: str | None = None) -> str:
    """File name of a report workbook, e.g. ``daily_sales_2026-11-22_EMEA.xlsx``.

    ``part`` (a split value such as a region) is reduced to ``[A-Za-z0-9_-]`` (accents
    dropped, anything else becomes ``_``) so any value makes a safe file name; the date keeps re-runs of one day on one file.
    """
    if not _REPORT_ID.fullmatch(report_id):
        raise ValueError(
            f"report id {report_id!r} must be letters, digits, '_' or '-' (it becomes a file name); "
            "rename the report"
        )
    name = f"{report_id}_{report_date.isoformat()}"
    if part is not None:
        ascii_part = unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode()
        name += "_" + (_PART_UNSAFE.sub("_", ascii_part).strip("_") or "blank")
    return name + ".xlsx"


def build_workbook(
    path: Path,
    *,
    title: str,
    subtitle: str,
    tables: Sequence[ReportTable],
    overview: Sequence[Sequence[str]] = (),
    charts: Sequence[tuple[str, Path]] = (),
) -> Path:
    """Write ``tables`` to ``path`` (one sheet each) atomically and return ``path``.

    With ``overview`` rows (the headline) or ``charts`` ((title, PNG file): the e-mail's
    pictures), the first sheet, ``overview``, holds them: the headline table, then each chart below it.
    """
    path = Path(path)
    if overview or charts:
        tables_named = {t.name.casefold() for t in tables}
        if OVERVIEW_SHEET in tables_named:
            raise ValueError(
                f"workbook {path.name}: a section is named {OVERVIEW_SHEET!r}, the sheet of the headline "
                "and charts; rename the section"
            )
    if not tables:
        raise ValueError(f"workbook {path.name}: no report sections given; a workbook needs at least one")
    seen: dict[str, str] = {}
    for table in tables:
        key = table.name.casefold()
        if key in seen:
            raise ValueError(
                f"workbook {path.name}: sections {seen[key]!r} and {table.name!r} would get the same "
                "sheet name (Excel ignores case); rename one of them"
            )
        seen[key] = table.name

    wb = Workbook(write_only=True)
    try:
        if overview or charts:
            _write_overview(wb.create_sheet(OVERVIEW_SHEET), overview, charts, title=title, subtitle=subtitle)
        for table in tables:
            _write_sheet(wb.create_sheet(table.name), table, title=title, subtitle=subtitle)
        _save_atomically(wb, path)
    except BaseException:
        _discard(wb)
        raise
    return path


def build_workbooks_by(
    directory: Path,
    *,
    report_id: str,
    report_date: date,
    title: str,
    subtitle: str,
    tables: Sequence[ReportTable],
    split_column: str,
) -> dict[str, Path]:
    """One workbook per distinct value of ``split_column`` (e.g. one per region).

    Sections that have the column keep only that value's rows; a pivot spread over the column
    (one column per value) keeps only that value's column; other sections are included whole.
    Keys of the result are the split values as text (``"(blank)"`` for null). Workbooks of the
    same report and date left from an earlier run whose value no longer occurs are removed, so
    a re-run leaves exactly this run's files.
    """
    directory = Path(directory)
    split_tables = [t for t in tables if split_column in t.columns]
    spread_tables = [t for t in tables if t.spread_by == split_column]
    if not split_tables and not spread_tables:
        raise ValueError(
            f"report {report_id!r}: split column {split_column!r} is in none of the sections "
            f"{[t.name for t in tables]}; add it to a query or drop the split"
        )
    groups = {t.name: _group_rows(t, split_column) for t in split_tables}
    found = {v for g in groups.values() for v in g}
    found |= {c for t in spread_tables for c in t.spread} - {_part_label(v) for v in found}
    values = sorted(found, key=lambda v: (v is None, str(v)))
    labels = {v: _part_label(v) for v in values}
    if len(set(labels.values())) < len(labels):
        clashing = sorted({label for label in labels.values() if list(labels.values()).count(label) > 1})
        raise ValueError(
            f"report {report_id!r}: different values of split column {split_column!r} read the same "
            f"as text ({clashing}); cast the column to one type in the query"
        )
    files = _part_file_names(report_id, report_date, labels)

    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for value in values:
        part_tables = [
            _with_rows(t, groups[t.name].get(value, []))
            if t.name in groups
            else _spread_part(t, labels[value])
            if t.spread_by == split_column
            else t
            for t in tables
        ]
        written[labels[value]] = build_workbook(
            directory / files[value],
            title=f"{title} — {labels[value]}",
            subtitle=subtitle,
            tables=part_tables,
        )
    keep = {p.name for p in written.values()}
    for stale in directory.glob(f"{report_id}_{report_date.isoformat()}_*.xlsx"):
        if stale.name not in keep:
            stale.unlink()
    return written


# --- sheets -------------------------------------------------------------------------------------


def _write_overview(
    ws: WriteOnlyWorksheet,
    rows: Sequence[Sequence[str]],
    charts: Sequence[tuple[str, Path]],
    *,
    title: str,
    subtitle: str,
) -> None:
    """The headline as text cells (already formatted, as in the e-mail), then each chart as an image."""
    from openpyxl.drawing.image import Image

    ws.sheet_properties.pageSetUpPr.fitToPage = True  # written with the first row
    # Columns as wide as their longest cell, so printed cells do not run into each other; a row
    # of one cell (the late-sync or no-data line) runs over the empty cells to its right.
    widths = [MIN_WIDTH] * max((len(r) for r in rows), default=1)
    for cells in rows:
        if len(cells) > 1:
            for i, text in enumerate(cells):
                widths[i] = max(widths[i], min(MAX_WIDTH, len(str(text)) + 2))
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.append([_text_cell(ws, title, font=_TITLE_FONT)])
    ws.append([_text_cell(ws, subtitle, font=_SUBTITLE_FONT)])
    row = 2
    for cells in rows:
        ws.append([_text_cell(ws, c, font=_HEADER_FONT if c == cells[0] else Font()) for c in cells])
        row += 1
    columns = len(widths)
    for chart_title, png in charts:
        ws.append([])
        ws.append([_text_cell(ws, chart_title, font=_HEADER_FONT)])
        row += 2
        image = Image(str(png))
        image.anchor = f"A{row + 1}"
        ws.add_image(image)
        # Leave the rows the picture covers (default row height 15 pt = 20 px) empty below it.
        covered = -(-image.height // 20) + 1
        for _ in range(covered):
            ws.append([])
        row += covered
        columns = max(columns, _columns_spanned(widths, image.width))
    _print_setup(ws, columns, row, header=False)


def _write_sheet(ws: WriteOnlyWorksheet, table: ReportTable, *, title: str, subtitle: str) -> None:
    """Stream one section into ``ws``.

    Write-only sheets emit column widths and panes with the first row, so they are set first.
    """
    ncols = len(table.columns)
    last_col = get_column_letter(ncols)
    for i, width in enumerate(_fit_widths(table), start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = f"A{FIRST_DATA_ROW}"
    ws.sheet_properties.pageSetUpPr.fitToPage = True  # written with the first row (see _print_setup)

    ws.append([_text_cell(ws, title, font=_TITLE_FONT)])
    ws.append([_text_cell(ws, subtitle, font=_SUBTITLE_FONT)])
    ws.append([_text_cell(ws, c, font=_HEADER_FONT, fill=_HEADER_FILL) for c in table.columns])

    cells = _RowCells(ws, table)
    count = 0
    for count, row in enumerate(table.rows, start=1):
        if len(row) != ncols:
            raise ValueError(
                f"report section {table.name!r}: row {count} has {len(row)} values for {ncols} columns "
                f"({', '.join(table.columns)}); fix the query or the section's columns"
            )
        ws.append(cells.convert(row))
    if count == 0:
        ws.append([_text_cell(ws, EMPTY_MESSAGE, font=Font(italic=True))])
        _print_setup(ws, ncols, FIRST_DATA_ROW)
        return

    last_row = HEADER_ROW + count
    ws.auto_filter.ref = f"A{HEADER_ROW}:{last_col}{last_row}"
    if table.totals:
        ws.append(_totals_row(ws, table, last_row))
    print_cols, print_rows = ncols, last_row + (1 if table.totals else 0)
    if table.chart is not None:
        chart = _bar_chart(ws, table, count)
        ws.add_chart(chart, f"{get_column_letter(ncols + 2)}{HEADER_ROW}")
        # The chart's cells (default column width ~1.7 cm, row height ~0.53 cm) join the print area.
        print_cols = ncols + 1 + math.ceil(chart.width / 1.7)
        print_rows = max(print_rows, HEADER_ROW + math.ceil(chart.height / 0.53))
    _print_setup(ws, print_cols, print_rows)


def _print_setup(ws: WriteOnlyWorksheet, columns: int, rows: int, *, header: bool = True) -> None:
    """Print and PDF as people expect: landscape, one page wide (as many pages tall as it takes),
    the header row repeated on every page, and the print area covering the table and its chart."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = "9"  # A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    if header:
        ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    ws.print_area = f"A1:{get_column_letter(max(columns, 1))}{max(rows, HEADER_ROW)}"


def _columns_spanned(widths: Sequence[float], pixels: int) -> int:
    """How many columns (the given widths in characters, then default ones) a picture this wide covers."""
    covered, count = 0.0, 0
    while covered < pixels:
        # Excel's column of w characters is about 7 * w + 5 pixels (Calibri 11).
        covered += 7 * (widths[count] if count < len(widths) else 8.43) + 5
        count += 1
    return count


class _RowCells:
    """Turns a row of Python values into what ``WriteOnlyWorksheet.append`` takes.

    Plain numbers and ordinary text go through as values (cheapest path). Values that need
    a style (money, counts, dates, literal text) are written through one pre-styled cell per
    column and kind, re-filled for every row: openpyxl serialises each appended row before
    it takes the next, and creating and styling a fresh cell per value costs several times
    more than the write itself.
    """

    def __init__(self, ws: WriteOnlyWorksheet, table: ReportTable) -> None:
        self.ws = ws
        self.number_formats = _number_formats(table)
        self.date_columns = {i for i, c in enumerate(table.columns) if table.format_of(c) == "date"}
        self.templates: dict[tuple[int, str], Cell] = {}

    def convert(self, row: Iterable[Any]) -> list[Any]:
        out: list[Any] = []
        for col, raw in enumerate(row):
            value, literal = excel_value(raw)
            if value is None or value is True or value is False:
                out.append(value)
            elif isinstance(value, str):
                if literal or value in _ERROR_CODES:
                    out.append(self._styled(col, "text", value))
                else:
                    out.append(value)
            elif isinstance(value, int | float | Decimal):
                if not finite(value):
                    # NaN/inf have no xlsx representation (Excel calls the file corrupt).
                    out.append(self._styled(col, "text", str(value)))
                elif self.number_formats[col]:
                    out.append(self._styled(col, "number", value))
                else:
                    out.append(value)
            else:  # date, datetime, time, timedelta
                out.append(self._styled(col, type(value).__name__, value))
        return out

    def _styled(self, col: int, kind: str, value: Any) -> Cell:
        cell = self.templates.get((col, kind))
        if cell is None:
            cell = self.templates[(col, kind)] = self._template(col, kind)
        cell.value = value
        if kind == "text":
            cell.data_type = "s"  # never "f" (a leading "=") or "e" (an error code)
        return cell

    def _template(self, col: int, kind: str) -> Cell:
        cell = WriteOnlyCell(self.ws)
        if kind == "text":
            cell.quotePrefix = True
        elif kind == "number":
            cell.number_format = self.number_formats[col] or "General"
        elif col in self.date_columns and kind in ("date", "datetime"):
            cell.number_format = DATE_FORMAT
        else:
            cell.number_format = {
                "date": DATE_FORMAT,
                "datetime": DATETIME_FORMAT,
                "time": TIME_FORMAT,
                "timedelta": DURATION_FORMAT,
            }[kind]
        return cell


def _number_formats(table: ReportTable) -> list[str | None]:
    """Each column's ``number_format`` from its declared format (None: the value decides)."""
    return [excel_format(fmt, table.currency) if (fmt := table.format_of(c)) else None for c in table.columns]


def _text_cell(ws: WriteOnlyWorksheet, text: Any, *, font: Font, fill: PatternFill | None = None) -> Cell:
    """A string cell for titles and headers; formula-like text stays text here too."""
    value, literal = excel_value(text)
    cell = WriteOnlyCell(ws, value=value if value is not None else "")
    cell.data_type = "s"
    cell.font = font
    if fill is not None:
        cell.fill = fill
    if literal:
        cell.quotePrefix = True
    return cell


def _totals_row(ws: WriteOnlyWorksheet, table: ReportTable, last_row: int) -> list[Cell | None]:
    row: list[Cell | None] = [None] * len(table.columns)
    label = WriteOnlyCell(ws, value=TOTAL_LABEL)
    label.font = _TOTAL_FONT
    row[0] = label
    for column in table.totals:
        i = table.index(column)
        letter = get_column_letter(i + 1)
        cell = WriteOnlyCell(ws, value=f"=SUM({letter}{FIRST_DATA_ROW}:{letter}{last_row})")
        cell.font = _TOTAL_FONT
        if fmt := table.format_of(column):
            cell.number_format = excel_format(fmt, table.currency)
        row[i] = cell
    return row


def _bar_chart(ws: WriteOnlyWorksheet, table: ReportTable, count: int) -> BarChart:
    spec = table.chart
    assert spec is not None
    shown = min(count, CHART_MAX_CATEGORIES)
    last = HEADER_ROW + shown
    chart = BarChart()
    chart.type = "col"
    chart.title = table.title if shown == count else f"{table.title} (first {shown} of {count:,})"
    chart.x_axis.title = spec.category
    # openpyxl >= 3.1 marks axes deleted unless told otherwise; Excel then hides them.
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    cat_col = table.index(spec.category) + 1
    for column in spec.values:
        col = table.index(column) + 1
        chart.add_data(Reference(ws, min_col=col, min_row=HEADER_ROW, max_row=last), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=cat_col, min_row=FIRST_DATA_ROW, max_row=last))
    chart.width = min(32.0, max(16.0, 0.6 * shown))
    chart.height = 9.0
    return chart


def _fit_widths(table: ReportTable) -> list[float]:
    """Column widths in characters from the header and a leading sample of rows."""
    widths = [len(str(c)) + 3 for c in table.columns]  # room for the filter button
    formats = [table.format_of(c) for c in table.columns]
    sample = table.rows[:WIDTH_SAMPLE_ROWS]
    for row in sample:
        for i, value in enumerate(row):
            if i < len(widths):
                widths[i] = max(widths[i], _display_length(value, formats[i], table.currency))
    if table.totals:
        widths[0] = max(widths[0], len(TOTAL_LABEL) + 1)
        # A total is wider than any one value: without room for it, a printed total reads "###".
        # Its bound (largest sampled value x rows) needs no pass over every row.
        count = len(table.rows)
        for column in table.totals:
            i = table.index(column)
            numbers = [abs(v) for row in sample if _is_number(v := row[i])]
            if numbers:
                bound = max(numbers) * count
                widths[i] = max(widths[i], _display_length(-bound, formats[i], table.currency) + 1)
    return [float(min(MAX_WIDTH, max(MIN_WIDTH, w + 1))) for w in widths]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool) and finite(value)


def _display_length(value: Any, fmt: str | None, currency: str = "") -> int:
    if value is None:
        return 0
    if fmt and (text := display(value, fmt, currency)) is not None:
        return len(text)
    if isinstance(value, datetime):
        return 19
    if isinstance(value, date):
        return 10
    if isinstance(value, time | timedelta):
        return 8
    if _is_number(value):
        return min(len(str(value)), 15)
    text = value.hex() if isinstance(value, bytes) else str(value)
    return max((len(line) for line in text[: MAX_WIDTH * 4].splitlines()), default=0)


# --- splitting and files ------------------------------------------------------------------------


def _group_rows(table: ReportTable, column: str) -> dict[Any, list[tuple]]:
    i = table.index(column)
    groups: dict[Any, list[tuple]] = {}
    for row in table.rows:
        groups.setdefault(row[i], []).append(row)
    return groups


def _with_rows(
    table: ReportTable, rows: Sequence[tuple], columns: Sequence[str] | None = None
) -> ReportTable:
    """``table`` with other rows, and only ``columns`` (the hints of the others dropped) when given."""
    kept = tuple(table.columns if columns is None else columns)
    values = tuple(c for c in table.chart.values if c in kept) if table.chart else ()
    return ReportTable(
        name=table.name,
        title=table.title,
        columns=kept,
        rows=rows,
        totals=tuple(c for c in table.totals if c in kept),
        chart=ChartSpec(table.chart.category, values) if table.chart and values else None,
        formats={c: f for c, f in table.formats.items() if c in kept},
        currency=table.currency,
        spread_by=table.spread_by,
        spread=tuple(c for c in table.spread if c in kept),
    )


def _spread_part(table: ReportTable, label: str) -> ReportTable:
    """A pivot spread over the split column, keeping the column of one value (``label``) alone."""
    keep = [i for i, c in enumerate(table.columns) if c not in table.spread or c == label]
    return _with_rows(
        table, [tuple(row[i] for i in keep) for row in table.rows], [table.columns[i] for i in keep]
    )


def _part_label(value: Any) -> str:
    if value is None:
        return "(blank)"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _part_file_names(report_id: str, report_date: date, labels: dict[Any, str]) -> dict[Any, str]:
    """File names per split value; values that sanitise alike get a short hash of the value."""
    names = {v: workbook_name(report_id, report_date, label) for v, label in labels.items()}
    taken: dict[str, int] = {}
    for name in names.values():
        taken[name] = taken.get(name, 0) + 1
    for value, name in names.items():
        if taken[name] > 1:
            digest = hashlib.sha256(labels[value].encode("utf-8", "surrogatepass")).hexdigest()[:8]
            names[value] = workbook_name(report_id, report_date, f"{labels[value]}_{digest}")
    return names


def _discard(wb: Workbook) -> None:
    """Close and delete the sheets' temp files of a workbook that will not be saved."""
    for ws in wb.worksheets:
        with contextlib.suppress(Exception):
            if not ws.closed:
                ws.close()
        with contextlib.suppress(Exception):
            ws._writer.cleanup()


def _save_atomically(wb: Workbook, path: Path) -> None:
    """Save to a temp file beside ``path`` and rename it over ``path`` (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        wb.save(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
