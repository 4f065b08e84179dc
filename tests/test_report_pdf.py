"""Report workbooks printed to PDF by headless LibreOffice, as a reader would print them.

The daily sales report is built from the synced sample (overview with the headline and its two
pictures, four sections, one workbook per territory) and each workbook is converted with
``soffice --headless --convert-to pdf``; poppler's ``pdftotext``/``pdfimages`` read the result.
Every page must be landscape A4, each sheet must print on one page wide, a short section on one page
with its chart, and every chart or picture must be anchored inside its sheet's print area. Without
LibreOffice or poppler the tests skip locally and FAIL in CI (``scripts/bootstrap.sh --dev``
installs both).
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.services import missing
from test_reports import build, marts_cache, synced, synced_sample  # noqa: F401 - fixtures
from test_sync_classicmodels import sqlite_source, warehouse_conn  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(600)

A4_LANDSCAPE = (841.89, 595.28)  # points
TOOLS = ("soffice", "pdftotext", "pdfimages")


@dataclass(frozen=True)
class Page:
    number: int
    width: float
    height: float
    lines: tuple[str, ...]  # the page's text, one entry per printed line, top to bottom
    images: int

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def require_office() -> None:
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if absent:
        missing(
            f"LibreOffice and poppler to print workbooks to PDF ({', '.join(absent)} not found)",
            "`apt-get install --no-install-recommends libreoffice-calc-nogui poppler-utils` "
            "(`scripts/bootstrap.sh --dev` does it as root)",
        )


def to_pdf(workbooks: list[Path], out: Path) -> list[Path]:
    """Convert the workbooks in one LibreOffice run, with a profile of its own (runs may overlap)."""
    require_office()
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["soffice", f"-env:UserInstallation={(out / 'profile').as_uri()}", "--headless", "--norestore",
         "--convert-to", "pdf", "--outdir", str(out), *map(str, workbooks)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    pdfs = [out / (w.stem + ".pdf") for w in workbooks]
    assert done.returncode == 0 and all(p.exists() for p in pdfs), (done.stdout, done.stderr)
    return pdfs


def read_pdf(pdf: Path) -> list[Page]:
    """Each page's size, text lines (words grouped by their baseline) and image count."""
    bbox = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True)
    listed = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True)
    images: dict[int, int] = {}
    for line in listed.stdout.splitlines()[2:]:
        fields = line.split()
        if fields[2] == "image":  # not the transparency masks ("smask")
            images[int(fields[0])] = images.get(int(fields[0]), 0) + 1
    pages = []
    for number, (width, height, body) in enumerate(
        re.findall(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', bbox.stdout, re.S), start=1
    ):
        words = [
            (float(y), float(x), html.unescape(w))
            for x, y, w in re.findall(
                r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="[\d.]+" yMax="([\d.]+)">'
                r"(.*?)</word>",
                body,
            )  # fmt: skip
        ]
        lines: list[list[tuple[float, float, str]]] = []
        for word in sorted(words):
            if lines and abs(lines[-1][0][0] - word[0]) < 2:
                lines[-1].append(word)
            else:
                lines.append([word])
        text = tuple(" ".join(w for _, _, w in sorted(line, key=lambda w: w[1])) for line in lines)
        pages.append(Page(number, float(width), float(height), text, images.get(number, 0)))
    return pages


def sheets_of(pages: list[Page], title: str) -> list[list[Page]]:
    """Pages grouped by sheet: a sheet's first page starts with the workbook title (row 1, not repeated)."""
    sheets: list[list[Page]] = []
    for page in pages:
        if page.lines and page.lines[0] == title:
            sheets.append([page])
        else:
            assert sheets, f"page {page.number} comes before any sheet's title: {page.lines[:3]}"
            sheets[-1].append(page)
    return sheets


def in_order(words: list[str], line: str) -> bool:
    """The words appear in the line in this order (a wrapped cell beside them may add words between)."""
    rest = iter(line.split())
    return all(any(w == word for w in rest) for word in words)


def column_pixels(ws, column: int) -> float:
    """A column's width in pixels as Excel and LibreOffice draw it (7 px per character + 5)."""
    from openpyxl.utils import get_column_letter

    dimension = ws.column_dimensions.get(get_column_letter(column))
    width = dimension.width if dimension is not None and dimension.width else 8.43
    return 7 * width + 5


def drawing_cells(ws, anchor) -> tuple[int, int, int, int]:
    """(first column, first row, last column, last row), 1-based, that a chart or picture covers."""
    first_col, first_row = anchor._from.col + 1, anchor._from.row + 1
    width, height = anchor.ext.width / 9525, anchor.ext.height / 9525  # EMU -> pixels
    last_col, covered = first_col, column_pixels(ws, first_col) - anchor._from.colOff / 9525
    while covered < width:
        last_col += 1
        covered += column_pixels(ws, last_col)
    last_row = first_row + math.ceil((height + anchor._from.rowOff / 9525) / 20) - 1  # 15 pt rows = 20 px
    return first_col, first_row, last_col, last_row


def check_drawings_in_print_area(path: Path) -> dict[str, int]:
    """Every chart and picture of every sheet lies inside that sheet's print area; returns counts."""
    import openpyxl
    from openpyxl.utils.cell import range_boundaries

    counts = {}
    for ws in openpyxl.load_workbook(path).worksheets:
        assert ws.print_area, f"{path.name}/{ws.title}: no print area"
        min_col, min_row, max_col, max_row = range_boundaries(ws.print_area.split("!")[-1].replace("$", ""))
        drawings = [*ws._charts, *ws._images]
        for drawing in drawings:
            first_col, first_row, last_col, last_row = drawing_cells(ws, drawing.anchor)
            assert (
                min_col <= first_col and last_col <= max_col and min_row <= first_row and last_row <= max_row
            ), (
                f"{path.name}/{ws.title}: a drawing over columns {first_col}-{last_col}, rows {first_row}-{last_row} "
                f"is not inside the print area {ws.print_area}"
            )
        counts[ws.title] = len(drawings)
    return counts


def check_pages(pages: list[Page], pdf: Path) -> None:
    """Landscape A4 throughout, and no cell printed as ### (a column too narrow for its number)."""
    for page in pages:
        assert (page.width, page.height) == pytest.approx(A4_LANDSCAPE, abs=0.5), (pdf.name, page.number)
        assert "###" not in page.text, (pdf.name, page.number, [line for line in page.lines if "###" in line])


def test_the_daily_sales_workbooks_print_one_page_per_sheet_with_their_charts(synced, tmp_path):  # noqa: F811
    import openpyxl

    conn = synced
    day = dt.date.fromisoformat(str(conn.execute("SELECT MAX(orderDate) FROM orders").fetchone()[0])[:10])
    built = build(day.isoformat())
    assert built["rows"]["last_7_days"] > 0 and built["rows"]["top_customers"] == 20, built["rows"]
    workbooks = [Path(built["workbook"]), *map(Path, built["parts"].values())]
    pdfs = to_pdf(workbooks, tmp_path / "pdf")
    for workbook, pdf in zip(workbooks, pdfs, strict=True):
        book = openpyxl.load_workbook(workbook)
        title = book.worksheets[0]["A1"].value
        drawings = check_drawings_in_print_area(workbook)
        pages = read_pdf(pdf)
        check_pages(pages, pdf)
        sheets = sheets_of(pages, title)
        assert [len(s) for s in sheets] == [1] * len(book.sheetnames), (pdf.name, [len(s) for s in sheets])
        for ws, (page,) in zip(book.worksheets, sheets, strict=True):
            if ws.title == "overview":
                assert drawings["overview"] == page.images == 2, (pdf.name, drawings, page.images)
                assert any(line.startswith("Revenue ") for line in page.lines), page.lines
                continue
            header = " ".join(str(c.value) for c in ws[3]).split()
            assert any(in_order(header, line) for line in page.lines), (
                pdf.name,
                ws.title,
                header,
                page.lines[:4],
            )
            for chart in ws._charts:  # the chart, title and axis, printed on the sheet's page
                chart_title = "".join(r.t for p in chart.title.tx.rich.p for r in p.r)
                assert chart_title in page.text, (pdf.name, ws.title, chart_title)
        assert drawings.get("by_territory") == 1 and drawings.get("top_customers") == 1, drawings


def test_a_long_section_prints_one_page_wide_with_its_header_on_every_page(tmp_path):
    import pyarrow as pa

    from nightshift_core.reports.excel import build_workbook
    from nightshift_core.reports.tables import ReportTable

    count = 150
    rows = pa.table({
        "order_number": [10_100 + i for i in range(count)],
        "order_date": [dt.date(2026, 11, 1) + dt.timedelta(days=i % 30) for i in range(count)],
        "customer": [f"Customer with a rather long name number {i}" for i in range(count)],
        "status": ["In Process"] * count,
        "comments": ["Check on availability before shipping. " * 2] * count,
        "lines": [i % 17 + 1 for i in range(count)],
        "sales": [9_999.99 * (i % 7 + 1) for i in range(count)],
    })  # fmt: skip
    table = ReportTable.from_arrow(
        "orders", "Orders", rows, totals=("lines", "sales"), currency="USD",
        formats={"order_number": "id", "order_date": "date", "lines": "count", "sales": "money"},
    )  # fmt: skip
    path = build_workbook(tmp_path / "long.xlsx", title="Long report", subtitle="s", tables=[table])
    (pdf,) = to_pdf([path], tmp_path / "pdf")
    pages = read_pdf(pdf)
    check_pages(pages, pdf)
    (sheet,) = sheets_of(pages, "Long report")
    assert len(sheet) >= 3, len(sheet)  # 150 rows do not fit one page at a readable size
    header = " ".join(rows.column_names)
    for page in sheet:  # every page one sheet wide: all columns, the header row repeated
        assert page.lines[0 if page.number > 1 else 2] == header, (page.number, page.lines[:3])
    printed = [int(line.split()[0]) for page in sheet for line in page.lines if re.match(r"\d{5} ", line)]
    assert printed == [10_100 + i for i in range(count)]  # every row once, in order, none cut off
    total = sum(9_999.99 * (i % 7 + 1) for i in range(count))
    assert sheet[-1].lines[-1].startswith("Total") and f"{total:,.2f} USD" in sheet[-1].lines[-1], sheet[
        -1
    ].lines[-2:]
