"""The Excel report builder: layout, hostile cell values, pivots, split and re-run behaviour.

Every workbook is written by the module and read back with openpyxl in normal mode (and, for
the hostile values, as raw sheet XML), so the checks are on what Excel would open.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import pyarrow as pa
import pytest
from openpyxl.chart import BarChart

from nightshift_core.reports import tables as tables_module
from nightshift_core.reports.cells import EXCEL_CELL_LIMIT
from nightshift_core.reports.excel import (
    CHART_MAX_CATEGORIES,
    EMPTY_MESSAGE,
    MAX_WIDTH,
    MIN_WIDTH,
    build_workbook,
    build_workbooks_by,
    workbook_name,
)
from nightshift_core.reports.tables import ChartSpec, ReportTable, pivot

TITLE = "Daily sales"
SUBTITLE = "Report date 2026-11-22 · generated from warehouse dataset classicmodels · times in UTC"
DAY = dt.date(2026, 11, 22)

SALES_COLUMNS = ("productline", "orders", "revenue", "last_order", "shipped_at")
SALES_ROWS = [
    ("Classic Cars", 12, Decimal("120345.67"), dt.date(2026, 11, 21), dt.datetime(2026, 11, 22, 6, 30)),
    ("Motorcycles", 4, Decimal("9876.50"), dt.date(2026, 11, 20), None),
    ("Planes", 1_250, Decimal("0.01"), dt.date(2026, 11, 19), dt.datetime(2026, 11, 22, 23, 59, 59)),
    ("Ships", 0, Decimal("0.00"), None, dt.datetime(2026, 11, 21, 0, 0)),
    ("Trains", 7, Decimal("1500"), dt.date(2026, 11, 22), dt.datetime(2026, 11, 22, 12, 0)),
    ("Trucks and Buses", 3, Decimal("2500.10"), dt.date(2026, 11, 22), dt.datetime(2026, 11, 22, 12, 0)),
]

# (input, what the cell must hold, whether Excel must be told it is literal text)
HOSTILE = [
    pytest.param('=HYPERLINK("http://x","click")', '=HYPERLINK("http://x","click")', True, id="hyperlink"),
    pytest.param("@SUM(1+1)*cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", True, id="dde"),
    pytest.param("+1+1", "+1+1", True, id="plus"),
    pytest.param("-2+3", "-2+3", True, id="minus"),
    pytest.param("\t=1", "\t=1", True, id="tab"),
    pytest.param("\r=1", "\r=1", True, id="carriage-return"),
    pytest.param("=", "=", True, id="bare-equals"),
    pytest.param("#N/A", "#N/A", True, id="error-code"),
    pytest.param("ok \x00\x07\x1b end", "ok \ufffd\ufffd\ufffd end", False, id="control-chars"),
    pytest.param("lone \ud800 surrogate", "lone \ufffd surrogate", False, id="lone-surrogate"),
    pytest.param("emoji 😀🚀 ünïcödé", "emoji 😀🚀 ünïcödé", False, id="emoji"),
    pytest.param(b"\x00\xff", "00ff", False, id="bytes"),
]


def sales_table(**kw) -> ReportTable:
    options = {
        "money": ("revenue",),
        "counts": ("orders",),
        "totals": ("orders", "revenue"),
        "chart": ChartSpec("productline", ("revenue", "orders")),
    }
    options.update(kw)
    return ReportTable("By product line", "Revenue by product line", SALES_COLUMNS, SALES_ROWS, **options)


def open_sheet(path: Path, name: str):
    return openpyxl.load_workbook(path)[name]


def openpyxl_temp_files() -> list[str]:
    from openpyxl.worksheet._writer import ALL_TEMP_FILES

    return ALL_TEMP_FILES


def formula_cells(ws) -> dict[str, str]:
    return {c.coordinate: c.value for row in ws.iter_rows() for c in row if c.data_type == "f"}


# --- layout ---------------------------------------------------------------------------------------


def test_sheet_layout_titles_header_panes_filter_and_widths(tmp_path):
    path = build_workbook(tmp_path / "r.xlsx", title=TITLE, subtitle=SUBTITLE, tables=[sales_table()])
    ws = open_sheet(path, "By product line")

    assert ws["A1"].value == TITLE
    assert ws["A1"].font.b and ws["A1"].font.sz > 11
    assert ws["A2"].value == SUBTITLE
    assert [c.value for c in ws[3]][:5] == list(SALES_COLUMNS)
    assert all(c.font.b for c in ws[3][:5])
    assert ws["A4"].value == "Classic Cars"
    assert ws.freeze_panes == "A4"
    assert ws.auto_filter.ref == "A3:E9"
    widths = {letter: ws.column_dimensions[letter].width for letter in "ABCDE"}
    assert all(MIN_WIDTH <= w <= MAX_WIDTH for w in widths.values()), widths
    assert widths["A"] >= len("Trucks and Buses")
    assert widths["E"] >= len("2026-11-22 06:30:00")


def test_number_and_date_formats(tmp_path):
    path = build_workbook(tmp_path / "r.xlsx", title=TITLE, subtitle=SUBTITLE, tables=[sales_table()])
    ws = open_sheet(path, "By product line")

    for row in range(4, 10):
        assert ws[f"B{row}"].number_format == "#,##0"
        assert ws[f"C{row}"].number_format == "#,##0.00"
    assert ws["B6"].value == 1250 and ws["B6"].data_type == "n"
    assert ws["C4"].value == pytest.approx(120345.67)
    assert ws["D4"].is_date and ws["D4"].number_format == "yyyy-mm-dd"
    assert ws["D4"].value == dt.datetime(2026, 11, 21)
    assert ws["E4"].is_date and ws["E4"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert ws["E4"].value == dt.datetime(2026, 11, 22, 6, 30)
    assert ws["D7"].value is None and ws["E5"].value is None


def test_totals_row_has_real_sum_formulas_and_nothing_else_is_a_formula(tmp_path):
    path = build_workbook(tmp_path / "r.xlsx", title=TITLE, subtitle=SUBTITLE, tables=[sales_table()])
    ws = open_sheet(path, "By product line")

    assert ws["A10"].value == "Total" and ws["A10"].font.b
    assert ws["B10"].value == "=SUM(B4:B9)" and ws["B10"].number_format == "#,##0"
    assert ws["C10"].value == "=SUM(C4:C9)" and ws["C10"].number_format == "#,##0.00"
    assert formula_cells(ws) == {"B10": "=SUM(B4:B9)", "C10": "=SUM(C4:C9)"}
    assert ws.max_row == 10


def test_bar_chart_anchor_series_and_categories(tmp_path):
    path = build_workbook(tmp_path / "r.xlsx", title=TITLE, subtitle=SUBTITLE, tables=[sales_table()])
    ws = open_sheet(path, "By product line")

    (chart,) = ws._charts
    assert isinstance(chart, BarChart)
    # anchored at G3: one empty column right of the five-column table, level with the header
    assert (chart.anchor._from.col, chart.anchor._from.row) == (6, 2)
    sheet = "'By product line'"
    assert [s.val.numRef.f for s in chart.series] == [f"{sheet}!$C$4:$C$9", f"{sheet}!$B$4:$B$9"]
    assert [s.tx.strRef.f for s in chart.series] == [f"{sheet}!C3", f"{sheet}!B3"]
    assert {(s.cat.numRef or s.cat.strRef).f for s in chart.series} == {f"{sheet}!$A$4:$A$9"}
    assert chart.title.tx.rich.p[0].r[0].t == "Revenue by product line"
    assert chart.x_axis.delete is False and chart.y_axis.delete is False


@pytest.mark.parametrize("categories", [CHART_MAX_CATEGORIES, CHART_MAX_CATEGORIES + 13])
def test_chart_is_capped_and_says_so(tmp_path, categories):
    rows = [(f"customer {i:03}", Decimal(i)) for i in range(categories)]
    table = ReportTable(
        "Top customers",
        "Top customers",
        ("customer", "revenue"),
        rows,
        chart=ChartSpec("customer", ("revenue",)),
    )
    ws = open_sheet(
        build_workbook(tmp_path / "r.xlsx", title=TITLE, subtitle=SUBTITLE, tables=[table]), "Top customers"
    )

    (chart,) = ws._charts
    shown = min(categories, CHART_MAX_CATEGORIES)
    assert chart.series[0].val.numRef.f == f"'Top customers'!$B$4:$B${3 + shown}"
    title = chart.title.tx.rich.p[0].r[0].t
    if categories > CHART_MAX_CATEGORIES:
        assert title == f"Top customers (first {CHART_MAX_CATEGORIES} of {categories})"
    else:
        assert title == "Top customers"
    assert ws.auto_filter.ref == f"A3:B{3 + categories}"  # the data itself is never cut


def test_empty_table_gets_a_sheet_with_a_visible_message(tmp_path):
    empty = ReportTable(
        "Returns",
        "Returns",
        ("customer", "amount"),
        [],
        money=("amount",),
        totals=("amount",),
        chart=ChartSpec("customer", ("amount",)),
    )
    path = build_workbook(tmp_path / "r.xlsx", title=TITLE, subtitle=SUBTITLE, tables=[sales_table(), empty])
    ws = open_sheet(path, "Returns")

    assert [ws["A1"].value, ws["A2"].value] == [TITLE, SUBTITLE]
    assert [c.value for c in ws[3]] == ["customer", "amount"]
    assert ws["A4"].value == EMPTY_MESSAGE
    assert ws.max_row == 4
    assert ws._charts == [] and formula_cells(ws) == {}
    assert ws.freeze_panes == "A4"


# --- hostile data ---------------------------------------------------------------------------------


def hostile_workbook(tmp_path: Path, payloads: list) -> Path:
    rows = [(f"row {i}", payload, i) for i, payload in enumerate(payloads)]
    table = ReportTable("Comments", "Comments", ("id", "text", "n"), rows, totals=("n",))
    return build_workbook(tmp_path / "hostile.xlsx", title=TITLE, subtitle=SUBTITLE, tables=[table])


@pytest.mark.parametrize(("payload", "expected", "literal"), HOSTILE)
def test_hostile_value_is_stored_as_text(tmp_path, payload, expected, literal):
    ws = open_sheet(hostile_workbook(tmp_path, [payload]), "Comments")

    cell = ws["B4"]
    assert cell.data_type == "s"
    assert cell.value == expected
    assert bool(cell.quotePrefix) is literal
    assert formula_cells(ws) == {"C5": "=SUM(C4:C4)"}


def test_all_hostile_values_together_leave_only_our_formulas(tmp_path):
    payloads = [p.values[0] for p in HOSTILE] + ["x" * 40_000, None]
    ws = open_sheet(hostile_workbook(tmp_path, payloads), "Comments")

    for row, param in enumerate(HOSTILE, start=4):
        assert (ws[f"B{row}"].data_type, ws[f"B{row}"].value) == ("s", param.values[1])
    long_cell = ws[f"B{4 + len(HOSTILE)}"]
    assert long_cell.data_type == "s"
    assert len(long_cell.value) <= EXCEL_CELL_LIMIT
    assert long_cell.value.startswith("x" * 30_000)
    assert re.search(r"… \[truncated \d+ chars\]$", long_cell.value)
    assert ws[f"B{5 + len(HOSTILE)}"].value is None
    last = 5 + len(HOSTILE)
    assert formula_cells(ws) == {f"C{last + 1}": f"=SUM(C4:C{last})"}


def test_hostile_cell_is_a_string_in_the_sheet_xml(tmp_path):
    path = hostile_workbook(tmp_path, ['=HYPERLINK("http://x","click")'])
    with zipfile.ZipFile(path) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
        styles = archive.read("xl/styles.xml").decode()

    cell = re.search(r'<c r="B4"([^>]*)>(.*?)</c>', sheet)
    assert cell, sheet[:2000]
    attributes, body = cell.groups()
    assert 't="inlineStr"' in attributes
    assert "<f>" not in body
    assert "<t>=HYPERLINK(&quot;http://x&quot;,&quot;click&quot;)</t>" in body or (
        '<t>=HYPERLINK("http://x","click")</t>' in body
    )
    # the cell's style carries quotePrefix, so Excel keeps it text even after an edit
    style_id = int(re.search(r's="(\d+)"', attributes).group(1))
    cell_xfs = re.search(r"<cellXfs[^>]*>(.*?)</cellXfs>", styles, re.S).group(1)
    xf = re.findall(r"<xf [^>]*?(?:/>|>.*?</xf>)", cell_xfs, re.S)[style_id]
    assert 'quotePrefix="1"' in xf
    assert re.findall(r"<f>(.*?)</f>", sheet) == ["SUM(C4:C4)"]


def test_titles_and_headers_are_text_too(tmp_path):
    table = ReportTable("S", "S", ("=cmd|' /C calc'!A0", "b"), [("x", 1)])
    path = build_workbook(tmp_path / "r.xlsx", title="=1+1", subtitle="+2", tables=[table])
    ws = open_sheet(path, "S")

    for coordinate, text in [("A1", "=1+1"), ("A2", "+2"), ("A3", "=cmd|' /C calc'!A0")]:
        assert (ws[coordinate].data_type, ws[coordinate].value, ws[coordinate].quotePrefix) == (
            "s",
            text,
            True,
        )
    assert formula_cells(ws) == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (Decimal("NaN"), "NaN"),
        (Decimal("-Infinity"), "-Infinity"),
    ],
)
def test_non_finite_numbers_become_text_instead_of_a_corrupt_file(tmp_path, value, expected):
    table = ReportTable("S", "S", ("k", "amount"), [("a", value), ("b", Decimal("1.5"))], money=("amount",))
    ws = open_sheet(build_workbook(tmp_path / "r.xlsx", title=TITLE, subtitle=SUBTITLE, tables=[table]), "S")

    assert (ws["B4"].data_type, ws["B4"].value) == ("s", expected)
    assert (ws["B5"].data_type, ws["B5"].value, ws["B5"].number_format) == ("n", 1.5, "#,##0.00")


# --- Arrow input ----------------------------------------------------------------------------------


def test_from_arrow_streams_in_chunks_and_stores_utc(tmp_path, monkeypatch):
    monkeypatch.setattr(tables_module, "ARROW_CHUNK_ROWS", 3)  # force several chunks
    n = 10
    arrow = pa.table(
        {
            "customer": [f"c{i}" if i != 4 else "=1+1" for i in range(n)],
            "amount": pa.array([Decimal(i) / 100 for i in range(n)], pa.decimal128(38, 9)),
            "at": pa.array(
                [dt.datetime(2026, 11, 22, 10, i, tzinfo=dt.UTC) for i in range(n)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    table = ReportTable.from_arrow("Detail", "Detail", arrow, money=("amount",), totals=("amount",))
    assert len(table.rows) == n and table.rows[-1][0] == "c9" and list(table.rows)[4][0] == "=1+1"
    ws = open_sheet(
        build_workbook(tmp_path / "r.xlsx", title=TITLE, subtitle=SUBTITLE, tables=[table]), "Detail"
    )

    assert [ws.cell(r, 1).value for r in range(4, 4 + n)] == [f"c{i}" if i != 4 else "=1+1" for i in range(n)]
    assert ws["A8"].data_type == "s" and ws["A8"].quotePrefix
    assert ws["B13"].value == pytest.approx(0.09)
    assert ws["C4"].value == dt.datetime(2026, 11, 22, 10, 0)  # naive, UTC wall time
    assert ws["B14"].value == "=SUM(B4:B13)"


def test_aware_datetimes_are_written_in_utc(tmp_path):
    cest = dt.timezone(dt.timedelta(hours=2))
    table = ReportTable("S", "S", ("k", "at"), [("a", dt.datetime(2026, 6, 1, 8, 0, tzinfo=cest))])
    ws = open_sheet(build_workbook(tmp_path / "r.xlsx", title=TITLE, subtitle=SUBTITLE, tables=[table]), "S")
    assert ws["B4"].value == dt.datetime(2026, 6, 1, 6, 0)


# --- pivot ----------------------------------------------------------------------------------------


def orders_arrow() -> pa.Table:
    rows = [
        ("EMEA", "Planes", Decimal("0.10")),
        ("EMEA", "Planes", Decimal("0.10")),
        ("EMEA", "Planes", Decimal("0.10")),
        ("EMEA", "Cars", Decimal("99999999999999.99")),
        ("EMEA", "Cars", Decimal("0.01")),
        ("APAC", "Ships", Decimal("1.005")),
        ("NA", "Cars", Decimal("12.34")),
        ("NA", None, Decimal("5")),
    ]
    return pa.table(
        {
            "region": [r[0] for r in rows],
            "productline": [r[1] for r in rows],
            "amount": pa.array([r[2] for r in rows], pa.decimal128(38, 3)),
        }
    )


def test_pivot_sum_keeps_decimals_exact_and_fills_zero():
    result = pivot(orders_arrow(), index="region", columns="productline", values="amount")

    assert result.column_names == ["region", "Cars", "Planes", "Ships", "(blank)"]
    assert pa.types.is_decimal(result.schema.field("Cars").type)
    assert result.to_pylist() == [
        {"region": "APAC", "Cars": Decimal("0"), "Planes": Decimal("0"), "Ships": Decimal("1.005"), "(blank)": Decimal("0")},
        {
            "region": "EMEA",
            "Cars": Decimal("100000000000000.000"),
            "Planes": Decimal("0.300"),
            "Ships": Decimal("0"),
            "(blank)": Decimal("0"),
        },
        {"region": "NA", "Cars": Decimal("12.340"), "Planes": Decimal("0"), "Ships": Decimal("0"), "(blank)": Decimal("5")},
    ]  # fmt: skip
    assert result.column("Planes")[1].as_py() == Decimal("0.3")  # 0.1 + 0.1 + 0.1, exactly


@pytest.mark.parametrize(
    ("agg", "emea_planes", "apac_planes"),
    [("count", 3, 0), ("max", Decimal("0.100"), None), ("min", Decimal("0.100"), None)],
)
def test_pivot_other_aggregations(agg, emea_planes, apac_planes):
    result = pivot(orders_arrow(), index=["region"], columns="productline", values="amount", agg=agg)
    by_region = {row["region"]: row for row in result.to_pylist()}
    assert by_region["EMEA"]["Planes"] == emea_planes
    assert by_region["APAC"]["Planes"] == apac_planes


def test_pivot_with_two_index_columns_feeds_a_report_table(tmp_path):
    arrow = orders_arrow().append_column("month", pa.array(["2026-10", "2026-11"] * 4))
    result = pivot(arrow, index=["region", "month"], columns="productline", values="amount")
    assert [(r["region"], r["month"]) for r in result.to_pylist()][:3] == [
        ("APAC", "2026-11"),
        ("EMEA", "2026-10"),
        ("EMEA", "2026-11"),
    ]
    table = ReportTable.from_arrow(
        "Pivot", "Region x line", result, money=("Cars", "Planes"), totals=("Cars", "Planes")
    )
    ws = open_sheet(
        build_workbook(tmp_path / "p.xlsx", title=TITLE, subtitle=SUBTITLE, tables=[table]), "Pivot"
    )
    assert [c.value for c in ws[3]] == ["region", "month", "Cars", "Planes", "Ships", "(blank)"]
    assert ws.cell(4 + result.num_rows, 3).value == f"=SUM(C4:C{3 + result.num_rows})"


@pytest.mark.parametrize(
    ("kwargs", "role", "column"),
    [
        ({"index": "regoin", "columns": "productline", "values": "amount"}, "index", "regoin"),
        ({"index": "region", "columns": "line", "values": "amount"}, "columns", "line"),
        ({"index": "region", "columns": "productline", "values": "amt"}, "values", "amt"),
    ],
)
def test_pivot_names_the_missing_column(kwargs, role, column):
    with pytest.raises(ValueError) as err:
        pivot(orders_arrow(), **kwargs)
    message = str(err.value)
    assert f"{role} column {column!r}" in message
    assert "available columns: region, productline, amount" in message


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "role", "column"),
    [
        ({"money": ("revenu",)}, "money", "revenu"),
        ({"counts": ("order",)}, "counts", "order"),
        ({"totals": ("sales",)}, "totals", "sales"),
        ({"chart": ChartSpec("product", ("revenue",))}, "chart.category", "product"),
        ({"chart": ChartSpec("productline", ("revenue", "margin"))}, "chart.values", "margin"),
    ],
)
def test_unknown_columns_are_named_with_the_section_and_the_choices(kwargs, role, column):
    with pytest.raises(ValueError) as err:
        sales_table(**kwargs)
    message = str(err.value)
    assert "'By product line'" in message
    assert f"{role} column {column!r}" in message
    assert "available columns: productline, orders, revenue, last_order, shipped_at" in message


@pytest.mark.parametrize(
    "name", ["", "a" * 32, "Q1/Q2", "a:b", "what?", "[x]", "*", "back\\slash", "'quoted'", "History"]
)
def test_bad_sheet_names_are_rejected(name):
    with pytest.raises(ValueError, match="report section name"):
        ReportTable(name, "t", ("a",), [])


def test_other_definition_errors():
    with pytest.raises(ValueError, match="duplicate column names"):
        ReportTable("S", "t", ("a", "a"), [])
    with pytest.raises(ValueError, match="cannot be in totals"):
        ReportTable("S", "t", ("a", "b"), [], totals=("a",))
    with pytest.raises(ValueError, match="both money and counts"):
        ReportTable("S", "t", ("a", "b"), [], money=("b",), counts=("b",))


def test_workbook_level_errors(tmp_path):
    with pytest.raises(ValueError, match="no report sections"):
        build_workbook(tmp_path / "r.xlsx", title=TITLE, subtitle=SUBTITLE, tables=[])
    clash = [ReportTable("Sales", "t", ("a",), []), ReportTable("SALES", "t", ("a",), [])]
    with pytest.raises(ValueError, match="same sheet name"):
        build_workbook(tmp_path / "r.xlsx", title=TITLE, subtitle=SUBTITLE, tables=clash)
    assert list(tmp_path.iterdir()) == []


# --- files: names, atomic re-runs, split --------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        (None, "daily_sales_2026-11-22.xlsx"),
        ("EMEA", "daily_sales_2026-11-22_EMEA.xlsx"),
        ("North America", "daily_sales_2026-11-22_North_America.xlsx"),
        ("../../etc/passwd", "daily_sales_2026-11-22_etc_passwd.xlsx"),
        ("Zürich/東京", "daily_sales_2026-11-22_Zurich.xlsx"),
        ("///", "daily_sales_2026-11-22_blank.xlsx"),
    ],
)
def test_workbook_name(part, expected):
    assert workbook_name("daily_sales", DAY, part) == expected


@pytest.mark.parametrize("report_id", ["", "../x", "daily sales", "_x"])
def test_workbook_name_rejects_unsafe_report_ids(report_id):
    with pytest.raises(ValueError, match="report id"):
        workbook_name(report_id, DAY)


def test_rerun_replaces_the_file_and_a_failed_run_keeps_the_old_one(tmp_path):
    path = tmp_path / workbook_name("daily_sales", DAY)
    first = ReportTable("S", "t", ("k", "v"), [("old", 1)])
    second = ReportTable("S", "t", ("k", "v"), [("new", 2), ("newer", 3)])
    broken = ReportTable("S", "t", ("k", "v"), [("fine", 1), ("too", "many", "values")])

    build_workbook(path, title=TITLE, subtitle=SUBTITLE, tables=[first])
    build_workbook(path, title=TITLE, subtitle=SUBTITLE, tables=[second])
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert [ws_row[0] for ws_row in open_sheet(path, "S").iter_rows(min_row=4, values_only=True)] == [
        "new",
        "newer",
    ]

    with pytest.raises(ValueError, match=r"row 2 has 3 values for 2 columns"):
        build_workbook(path, title=TITLE, subtitle=SUBTITLE, tables=[broken])
    assert not [f for f in openpyxl_temp_files() if Path(f).exists()]  # the streamed sheet is gone too
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    assert open_sheet(path, "S")["A4"].value == "new"


def regional_tables(regions=("EMEA", "APAC", "NA", "EMEA", "NA", "EMEA")) -> list[ReportTable]:
    detail = ReportTable(
        "Orders",
        "Orders",
        ("order", "region", "amount"),
        [(i, region, Decimal(i) + Decimal("0.5")) for i, region in enumerate(regions, start=1)],
        money=("amount",),
        totals=("amount",),
    )
    lines = ReportTable(
        "Product lines", "Product lines", ("productline", "lines"), [("Cars", 2), ("Ships", 1)]
    )
    return [detail, lines]


def test_split_makes_one_workbook_per_value_with_only_its_rows(tmp_path):
    result = build_workbooks_by(
        tmp_path,
        report_id="daily_sales",
        report_date=DAY,
        title=TITLE,
        subtitle=SUBTITLE,
        tables=regional_tables(),
        split_column="region",
    )

    assert sorted(result) == ["APAC", "EMEA", "NA"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "daily_sales_2026-11-22_APAC.xlsx",
        "daily_sales_2026-11-22_EMEA.xlsx",
        "daily_sales_2026-11-22_NA.xlsx",
    ]
    wb = openpyxl.load_workbook(result["EMEA"])
    orders = wb["Orders"]
    assert orders["A1"].value == f"{TITLE} — EMEA"
    assert list(orders.iter_rows(min_row=4, max_row=6, values_only=True)) == [
        (1, "EMEA", 1.5),
        (4, "EMEA", 4.5),
        (6, "EMEA", 6.5),
    ]
    assert orders["C7"].value == "=SUM(C4:C6)"
    assert list(wb["Product lines"].iter_rows(min_row=4, values_only=True)) == [("Cars", 2), ("Ships", 1)]
    apac = openpyxl.load_workbook(result["APAC"])["Orders"]
    assert list(apac.iter_rows(min_row=4, max_row=4, values_only=True)) == [(2, "APAC", 2.5)]
    assert apac["C5"].value == "=SUM(C4:C4)"


def test_split_keeps_a_pivot_spread_over_the_split_column_to_its_own_column(tmp_path):
    """Regions as the pivot's columns: each region's workbook has the product lines and its column."""
    import pyarrow as pa

    from nightshift_core.reports.tables import ChartSpec, pivot

    sales = pa.table({
        "productline": ["Cars", "Cars", "Ships", "Planes", "Planes"],
        "region": ["EMEA", "APAC", "EMEA", "LATAM", "EMEA"],
        "sales": [Decimal("10.00"), Decimal("2.50"), Decimal("4.00"), Decimal("7.25"), Decimal("1.00")],
    })  # fmt: skip
    spread = ReportTable.from_arrow(
        "By line", "Sales", pivot(sales, index="productline", columns="region", values="sales"),
        totals=("APAC", "EMEA", "LATAM"), formats=dict.fromkeys(("APAC", "EMEA", "LATAM"), "money"),
        currency="USD", chart=ChartSpec("productline", ("APAC", "EMEA", "LATAM")),
    )  # fmt: skip
    assert (spread.spread_by, spread.spread) == ("region", ("APAC", "EMEA", "LATAM"))
    result = build_workbooks_by(tmp_path, report_id="r", report_date=DAY, title=TITLE, subtitle=SUBTITLE,
                                tables=[*regional_tables(), spread], split_column="region")  # fmt: skip
    # LATAM is a value of the pivot only: it gets its workbook too (its Orders sheet is empty).
    assert sorted(result) == ["APAC", "EMEA", "LATAM", "NA"]
    for region, column in {"APAC": [2.5, 0, 0], "EMEA": [10, 1, 4], "LATAM": [0, 7.25, 0]}.items():
        sheet = openpyxl.load_workbook(result[region])["By line"]
        assert [c.value for c in sheet[3]] == ["productline", region]
        assert list(sheet.iter_rows(min_row=4, values_only=True)) == [
            *zip(["Cars", "Planes", "Ships"], column, strict=True),
            ("Total", "=SUM(B4:B6)"),
        ]
        assert sheet["B4"].number_format == '#,##0.00 "USD"' and len(sheet._charts) == 1
    na = openpyxl.load_workbook(result["NA"])["By line"]
    assert [c.value for c in na[3]] == ["productline"] and not na._charts


def test_split_rerun_replaces_files_and_drops_values_that_are_gone(tmp_path):
    kwargs = {"report_id": "daily_sales", "report_date": DAY, "title": TITLE, "subtitle": SUBTITLE}
    unrelated = tmp_path / "daily_sales_2026-11-21_EMEA.xlsx"
    unrelated.write_bytes(b"yesterday")
    build_workbooks_by(tmp_path, tables=regional_tables(), split_column="region", **kwargs)

    result = build_workbooks_by(
        tmp_path, tables=regional_tables(("EMEA", "APAC")), split_column="region", **kwargs
    )

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "daily_sales_2026-11-21_EMEA.xlsx",
        "daily_sales_2026-11-22_APAC.xlsx",
        "daily_sales_2026-11-22_EMEA.xlsx",
    ]
    emea = openpyxl.load_workbook(result["EMEA"])["Orders"]
    assert list(emea.iter_rows(min_row=4, max_row=4, values_only=True)) == [(1, "EMEA", 1.5)]
    assert emea["A5"].value == "Total"
    assert unrelated.read_bytes() == b"yesterday"


def test_split_values_that_sanitise_alike_get_distinct_files(tmp_path):
    result = build_workbooks_by(
        tmp_path,
        report_id="r",
        report_date=DAY,
        title=TITLE,
        subtitle=SUBTITLE,
        tables=regional_tables(("North America", "North/America", None)),
        split_column="region",
    )
    assert sorted(result) == ["(blank)", "North America", "North/America"]
    assert len({p.name for p in result.values()}) == 3
    assert all(re.fullmatch(r"r_2026-11-22_[A-Za-z0-9_-]+\.xlsx", p.name) for p in result.values())


def test_split_column_missing_everywhere_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"split column 'country' is in none of the sections"):
        build_workbooks_by(
            tmp_path,
            report_id="r",
            report_date=DAY,
            title=TITLE,
            subtitle=SUBTITLE,
            tables=regional_tables(),
            split_column="country",
        )


def test_split_values_that_read_alike_as_text_are_an_error(tmp_path):
    tables = regional_tables()
    mixed = _with_region_values(tables[0], [1, "1", "EMEA", "EMEA", "EMEA", "EMEA"])
    with pytest.raises(ValueError, match=r"read the same as text \(\['1'\]\)"):
        build_workbooks_by(
            tmp_path,
            report_id="r",
            report_date=DAY,
            title=TITLE,
            subtitle=SUBTITLE,
            tables=[mixed],
            split_column="region",
        )
    assert list(tmp_path.iterdir()) == []


def _with_region_values(table: ReportTable, regions: list) -> ReportTable:
    rows = [(order, region, amount) for (order, _, amount), region in zip(table.rows, regions, strict=True)]
    return ReportTable(table.name, table.title, table.columns, rows, money=table.money, totals=table.totals)


def test_declared_formats_set_each_columns_number_format(tmp_path):
    """An id shows plain digits, a count an integer, money its currency, a share a percentage."""
    table = ReportTable(
        name="reps", title="Reps",
        columns=("employee", "employee_number", "orders", "sales", "share", "day", "code"),
        rows=[("Ann", 1324, 18.0, Decimal("1186293.27"), 0.25, dt.datetime(2026, 12, 4, 9, 30), 1002)],
        totals=("orders", "sales"),
        formats={"employee_number": "id", "orders": "count", "sales": "money", "share": "share",
                 "day": "date", "code": "text"},
        currency="USD",
    )  # fmt: skip
    ws = openpyxl.load_workbook(build_workbook(tmp_path / "f.xlsx", title="T", subtitle="", tables=[table]))[
        "reps"
    ]
    assert [ws[f"{c}4"].number_format for c in "BCDEFG"] == [
        "0", "#,##0", '#,##0.00 "USD"', "0.0%", "yyyy-mm-dd", "@",
    ]  # fmt: skip
    assert ws["B4"].value == 1324 and ws["F4"].is_date
    assert (ws["C5"].value, ws["C5"].number_format) == ("=SUM(C4:C4)", "#,##0")
    assert (ws["D5"].value, ws["D5"].number_format) == ("=SUM(D4:D4)", '#,##0.00 "USD"')
    assert table.money == ("sales",) and table.counts == ("orders",)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"formats": {"n": "digits"}}, "column 'n' has format 'digits'; give it one format of id, count"),
        ({"formats": {"n": "id"}, "money": ("n",)}, "column 'n' has format 'id' and is listed as money"),
        ({"formats": {"missing": "id"}}, "formats column 'missing' is not in the result"),
    ],
)
def test_bad_formats_name_the_section_and_column(kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ReportTable(name="s", title="S", columns=("label", "n"), rows=[], **kw)
