"""Report definitions and the report DAG's tasks, on a synced classicmodels sample."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.marts import report_marts, shared_cache
from test_sync_classicmodels import sync_all

from nightshift_core.reports.config import ReportConfigError, load, load_all

ROOT = Path(__file__).resolve().parents[1]
CONFIG_PATH = ROOT / "include/config/reports/daily_sales.yaml"
HOSTILE = '=HYPERLINK("http://x","click")'
DAY = dt.date(2026, 11, 22)


def test_shipped_definitions_load():
    configs = {c.report_id: c for c in load_all()}
    sales = configs["daily_sales"]
    assert [s.name for s in sales.sections] == [
        "by_territory",
        "top_customers",
        "top_employees",
        "last_7_days",
    ]
    assert sales.assets and sales.email and sales.sheets and sales.excel.split_by == "territory"


GOOD = """
report_id: r1
title: A report
currency: USD
sections:
  - {name: customers, sql: reports/top_customers.sql, money: [sales], limit: 20}
email: {to: [a@example.com]}
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("title: A report", "title: A report\ncolour: red"), "unknown key(s) ['colour'] in top level"),
        (("reports/top_customers.sql", "reports/nope.sql"), "include/sql/reports/nope.sql does not exist"),
        (("reports/top_customers.sql", "../../etc/passwd"), "leads out of include/sql"),
        (("reports/top_customers.sql", "/etc/passwd"), "leads out of include/sql"),
        (("name: customers", "name: 'cust/omers'"), "names a worksheet"),
        (("money: [sales]", "money: ['sales; DROP TABLE x']"), "sections[0] (cust"),
        (("money: [sales]", "formats: {sales: moneys}"),
         "sections[0] (customers).formats.sales is 'moneys', not a format; use one of id, count, money"),
        (("money: [sales]", "money: [sales], formats: {sales: count}"),
         "formats.sales is 'count' but money/counts says 'money'; keep one"),
        (("currency: USD\n", ""), "sections[0] (customers).formats.sales is money but the report has no "
         "currency; add a top-level key such as 'currency: USD'"),
        (("money: [sales]", "formats: [sales]"), "sections[0] (customers).formats must be a mapping of column"),
        (("currency: USD", "currency: usd"), "currency 'usd' is not an ISO 4217 code"),
        (("name: customers,", "name: customers, title: Top 10 customers,"),
         "sections[0] (customers).title 'Top 10 customers' says 'Top 10' but the section's limit is 20; "
         "set 'limit: 10'"),
        ((", limit: 20", ""), "sections[0] (customers): the title or include/sql/reports/top_customers.sql "
         "uses the limit but the section sets none; add 'limit: N'"),
        (("limit: 20", "limit: 0"), "sections[0] (customers).limit is 0; use a whole number from 1 to 1000"),
        (("top_customers.sql, money: [sales]", "sales_by_territory.sql, money: [sales]"),
         "limit is 20 but include/sql/reports/sales_by_territory.sql does not end with 'LIMIT {{ limit }}'"),
        (("a@example.com", "not-an-address"), "email.to: 'not-an-address' is not an e-mail address"),
        (("report_id: r1", "report_id: R-1"), "report_id 'R-1' must be lower-case"),
        (("report_id: r1", "report_id: r1\nschedule: {assets: [orders]}"), "is not 'dataset.table'"),
        (("sql: reports/top_customers.sql,", "sql: reports/top_customers.sql, pivot: {index: a},"),
         "pivot is missing ['columns', 'values']"),
    ],
)  # fmt: skip
def test_bad_definitions_name_file_key_and_fix(tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ReportConfigError) as info:
        load(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_section_sql_symlink_out_of_include_sql_is_refused(tmp_path, monkeypatch):
    """A path under include/sql that is a symlink to a file outside it is refused, as resolved."""
    import nightshift_core.reports.config as config

    sql_dir = tmp_path / "sql"
    (sql_dir / "reports").mkdir(parents=True)
    outside = tmp_path / "secret.sql"
    outside.write_text("SELECT 1")
    (sql_dir / "reports" / "top_customers.sql").symlink_to(outside)
    monkeypatch.setattr(config, "SQL_DIR", sql_dir)
    path = tmp_path / "r1.yaml"
    path.write_text(GOOD)
    with pytest.raises(
        ReportConfigError,
        match=r"sections\[0\] \(customers\)\.sql is 'reports/top_customers.sql', "
        "which leads out of include/sql",
    ):
        load(path)
    (sql_dir / "reports" / "top_customers.sql").unlink()
    (sql_dir / "reports" / "top_customers.sql").write_text("SELECT 1 LIMIT {{ limit }}")
    assert load(path).sections[0].sql == "reports/top_customers.sql"


def test_duplicate_report_ids_are_reported_together(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    with pytest.raises(ReportConfigError, match="report_id 'r1' is also used by"):
        load_all(tmp_path)


def context(task_id: str, run_after: dt.datetime) -> dict:
    ti = SimpleNamespace(
        dag_id="report_daily_sales", task_id=task_id, run_id=f"test__{run_after}", map_index=-1
    )
    return {"ti": ti, "data_interval_start": None, "data_interval_end": None,
            "dag_run": SimpleNamespace(run_after=run_after)}  # fmt: skip


@pytest.fixture(scope="module")
def marts_cache(tmp_path_factory):
    return shared_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def synced_sample(tmp_path_factory, marts_cache):
    """The sample synced into DuckDB, with a formula payload as the best customer's name: built once
    for the module, as the tests only read the source and the warehouse (each writes its own
    report folder: ``synced``)."""
    from nightshift.operators.warehouse_ops import WarehouseQueryToTableOperator
    from nightshift_core.sample import classicmodels

    folder = tmp_path_factory.mktemp("reports-sample")
    with pytest.MonkeyPatch.context() as mp:
        warehouse = {"engine": "duckdb", "path": str(folder / "warehouse.duckdb")}
        mp.setenv(
            "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE", json.dumps({"conn_type": "generic", "extra": warehouse})
        )
        # as test_sync_classicmodels.sqlite_source makes it
        conn, dialect = classicmodels.connect(f"sqlite:///{folder / 'classicmodels.sqlite'}")
        classicmodels.generate(conn, dialect, scale=1.0, seed=7)
        mp.setenv(
            "AIRFLOW_CONN_CLASSICMODELS_SQLITE",
            json.dumps({"conn_type": "sqlite", "host": str(folder / "classicmodels.sqlite")}),
        )
        try:
            best = conn.execute(
                "SELECT o.customerNumber FROM orders o JOIN orderdetails d ON d.orderNumber = o.orderNumber "
                "GROUP BY o.customerNumber ORDER BY SUM(d.quantityOrdered * d.priceEach) DESC LIMIT 1"
            ).fetchone()[0]
            conn.execute("UPDATE customers SET customerName = ? WHERE customerNumber = ?", (HOSTILE, best))
            conn.commit()
            t0 = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
            sync_all("classicmodels_sqlite")  # no data interval: everything the source has
            WarehouseQueryToTableOperator(
                task_id="top_employees_by_sales", sql="classicmodels/top_employees_by_sales.sql",
                target="classicmodels_agg.top_employees_by_sales", shape={"dataset": "classicmodels"},
            ).execute(context("top_employees_by_sales", t0))  # fmt: skip
            # The headline's and the charts' per-day marts, built by dbt (the top-5 above stays the reference).
            report_marts(folder / "dbt", folder / "warehouse.duckdb", marts_cache)
            yield conn
        finally:
            conn.close()


@pytest.fixture
def synced(synced_sample, tmp_path, monkeypatch):
    """The module's synced sample (``synced_sample``); this test's reports go to its own folder."""
    monkeypatch.setenv("NIGHTSHIFT_REPORTS_DIR", str(tmp_path / "reports"))
    return synced_sample


def build(report_date: str = "", run_after=dt.datetime(2026, 11, 23, 6, tzinfo=dt.UTC)) -> dict:
    from nightshift.operators.reports import WarehouseToReportOperator

    op = WarehouseToReportOperator(task_id="build", config_path=str(CONFIG_PATH), report_date=report_date)
    return op.execute(context("build", run_after))


def test_build_writes_workbook_parts_sections_and_summary(synced):
    import openpyxl

    conn = synced
    result = build()
    assert result["report_date"] == DAY.isoformat()  # the day before the run
    workbook = openpyxl.load_workbook(result["workbook"])
    assert workbook.sheetnames == [
        "overview",
        "by_territory",
        "top_customers",
        "top_employees",
        "last_7_days",
    ]

    # The pivot's totals equal the source, per territory (a column each), to the cent.
    sheet = workbook["by_territory"]
    header = [c.value for c in sheet[3]]
    assert header[0] == "product_line"
    want = dict(
        conn.execute(
            "SELECT COALESCE(f.territory, 'Unassigned'), SUM(d.quantityOrdered * d.priceEach) "
            "FROM orderdetails d JOIN orders o ON o.orderNumber = d.orderNumber "
            "JOIN customers c ON c.customerNumber = o.customerNumber "
            "LEFT JOIN employees e ON e.employeeNumber = c.salesRepEmployeeNumber "
            "LEFT JOIN offices f ON f.officeCode = e.officeCode WHERE o.orderDate <= ? GROUP BY 1",
            (DAY.isoformat(),),
        ).fetchall()
    )
    lines = conn.execute("SELECT COUNT(DISTINCT productLine) FROM products").fetchone()[0]
    body = [r for r in sheet.iter_rows(min_row=4, max_row=3 + lines, values_only=True)]
    assert [r[0] for r in body] == sorted(r[0] for r in body) and len(body) == lines
    got = {t: sum(Decimal(str(r[i])) for r in body if r[i] is not None) for i, t in enumerate(header) if i}
    assert got.keys() == want.keys()
    # Money format and totals named after the pivoted value apply to every spread column.
    total = next(r for r in sheet.iter_rows(min_row=4) if r[0].value == "Total")
    assert [c.value for c in total[1:]] == [f"=SUM({c.column_letter}4:{c.column_letter}{3 + lines})"
                                            for c in total[1:]]  # fmt: skip
    assert all("#,##0.00" in c.number_format for c in sheet[4][1:])
    for territory, sales in want.items():
        assert got[territory] == Decimal(str(sales)).quantize(Decimal("0.01")), territory

    # The formula payload (the best customer's name) is stored as text, never as a formula.
    cell = workbook["top_customers"]["A4"]
    assert cell.value == HOSTILE and cell.data_type == "s"
    assert not any(
        c.data_type == "f" and not str(c.value).startswith("=SUM(")
        for ws in workbook.worksheets for row in ws.iter_rows() for c in row
    )  # fmt: skip
    # An empty section still has its sheet, saying so.
    assert "No rows" in " ".join(str(c.value) for row in workbook["last_7_days"].iter_rows() for c in row)

    # One workbook per territory, each with only its rows (top customers) and its column (the pivot).
    assert set(result["parts"]) == set(want)
    for territory, path in result["parts"].items():
        part = openpyxl.load_workbook(path)
        pivot = part["by_territory"]
        assert [c.value for c in pivot[3]] == ["product_line", territory]
        column = [r[1] for r in pivot.iter_rows(min_row=4, max_row=3 + lines, values_only=True)]
        assert sum(Decimal(str(v)) for v in column) == got[territory], territory
        customers = {r[2] for r in part["top_customers"].iter_rows(min_row=4, values_only=True)} - {None}
        assert customers <= {territory}, customers
        assert len(pivot._charts) == 1
    html = Path(result["summary_html"]).read_text()
    assert HOSTILE not in html and "=HYPERLINK(&quot;http://x&quot;" in html  # escaped, never raw
    assert "No rows for this report date." in html


def test_a_sections_limit_sets_its_title_its_query_and_its_email_rows(synced):
    """Top 20 customers: 20 rows from the query, all 20 in the e-mail, "Top 20" in the title."""
    sections = {s.name: s for s in load(CONFIG_PATH).sections}
    assert (sections["top_customers"].title, sections["top_customers"].limit) == ("Top 20 customers", 20)
    assert (sections["top_employees"].title, sections["top_employees"].limit) == ("Top 5 sales reps", 5)
    result = build()
    assert result["rows"]["top_customers"] == 20  # the sample has more customers than that
    text = Path(result["summary_text"]).read_text()
    block = text.split("Top 20 customers\n", 1)[1].split("\n\n", 1)[0]
    assert block.rstrip().endswith("\n20 rows") and "showing" not in block
    assert len(block.splitlines()) == 2 + 1 + 20 + 1  # underline, header, rule, rows, count
    html = Path(result["summary_html"]).read_text()
    assert ">Top 20 customers</h2>" in html and "showing 10 of 20" not in html


def test_formats_declared_in_the_yaml_reach_the_workbook_and_both_email_parts(synced):
    """employee_number is an id (1370, not 1,370), orders a count, sales money in USD."""
    import openpyxl

    result = build()
    sheet = openpyxl.load_workbook(result["workbook"])["top_employees"]
    header = [c.value for c in sheet[3]]
    first = {name: cell for name, cell in zip(header, sheet[4], strict=True)}
    assert first["employee_number"].number_format == "0"
    assert first["orders"].number_format == "#,##0"
    assert first["sales"].number_format == '#,##0.00 "USD"'
    number, orders, sales = (first[c].value for c in ("employee_number", "orders", "sales"))
    assert number >= 1000  # four digits, so a thousands separator would show
    html = Path(result["summary_html"]).read_text()
    text = Path(result["summary_text"]).read_text()
    money = f"{Decimal(str(sales)).quantize(Decimal('0.01')):,.2f} USD"
    for body in (html, text):
        assert f"{number:,}" not in body
        assert money in body
    assert f">{number}</td>" in html and f">{orders}</td>" in html
    line = next(line for line in text.splitlines() if money in line)
    assert line.split()[-4:-2] == [str(number), str(orders)]


def test_rebuilding_a_date_replaces_its_files(synced):
    first = build(report_date=DAY.isoformat())
    folder = Path(first["folder"])
    files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    stale = folder / "daily_sales_2026-11-22_Gone.xlsx"
    stale.write_bytes(b"left by an earlier definition")
    second = build(report_date=DAY.isoformat(), run_after=dt.datetime(2026, 12, 30, tzinfo=dt.UTC))
    assert second["folder"] == first["folder"]
    assert sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file()) == files
    assert len([p for p in folder.parent.iterdir()]) == 1


def test_bad_report_date_param_is_explained(synced):
    with pytest.raises(ValueError, match="report_date '22/11/2026' is not a date like 2026-11-22"):
        build(report_date="22/11/2026")


def test_sheets_task_skips_with_the_reason_when_not_configured(synced, monkeypatch):
    from airflow.sdk.exceptions import AirflowSkipException

    from nightshift.operators.reports import ReportToSheetsOperator

    result = build()
    sections = ["by_territory"]
    op = ReportToSheetsOperator(
        task_id="to_sheets",
        report_id="daily_sales",
        spreadsheet_key="",
        folder=result["folder"],
        sections=sections,
    )
    with pytest.raises(AirflowSkipException, match="Google Sheets is not configured"):
        op.execute(context("to_sheets", dt.datetime(2026, 11, 23, tzinfo=dt.UTC)))
    # A key but a connection without a service-account key: skipped too, naming the connection.
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps({"conn_type": "google_cloud_platform", "extra": {}})
    )
    op = ReportToSheetsOperator(
        task_id="to_sheets",
        report_id="daily_sales",
        spreadsheet_key="abc",
        folder=result["folder"],
        sections=sections,
    )
    with pytest.raises(AirflowSkipException, match="google_cloud_default"):
        op.execute(context("to_sheets", dt.datetime(2026, 11, 23, tzinfo=dt.UTC)))


def test_report_dag_shape():
    from nightshift.report_dags import build as build_dag

    dag = build_dag(load(CONFIG_PATH))
    assert dag.dag_id == "report_daily_sales"
    assert dag.get_task("build").downstream_task_ids == {"to_sheets", "email"}
    assert "classicmodels_agg.top_employees_by_sales" in dag.doc_md  # runs on the dbt models (include/dbt)


def test_sheets_task_writes_every_section_in_three_requests_each(synced, fake_sheets, monkeypatch):
    from support.fake_sheets import use_google_connection

    from nightshift.operators.reports import ReportToSheetsOperator

    use_google_connection(monkeypatch, fake_sheets)
    fake_sheets.add_spreadsheet("sales-sheet")
    result = build()
    sections = ["by_territory", "top_customers", "top_employees", "last_7_days"]
    op = ReportToSheetsOperator(
        task_id="to_sheets", report_id="daily_sales", spreadsheet_key="sales-sheet", folder=result["folder"], sections=sections,
        worksheet_prefix="d_",
    )  # fmt: skip
    out = op.execute(context("to_sheets", dt.datetime(2026, 11, 23, tzinfo=dt.UTC)))
    assert [w["worksheet"] for w in out["worksheets"]] == [f"d_{s}" for s in sections]
    assert len(fake_sheets.api_requests) == 3 * len(sections)
    customers = fake_sheets.values("sales-sheet", "d_top_customers")
    assert customers[0] == ["customer", "country", "territory", "orders", "sales"]
    assert customers[1][0] == HOSTILE  # RAW input: stored as the text it is
    # The build's formats (carried in the section files) become the columns' number formats.
    employees = fake_sheets.sheet("sales-sheet", "d_top_employees")
    formats = {name: employees.format_at(1, i).get("userEnteredFormat.numberFormat")
               for i, name in enumerate(fake_sheets.values("sales-sheet", "d_top_employees")[0])}  # fmt: skip
    assert formats == {
        "employee": None,
        "employee_number": {"type": "NUMBER", "pattern": "0"},
        "orders": {"type": "NUMBER", "pattern": "#,##0"},
        "sales": {"type": "NUMBER", "pattern": '#,##0.00 "USD"'},
    }
    assert employees.format_at(0, 0) == {"userEnteredFormat.textFormat.bold": True}
    assert employees.properties["gridProperties"]["frozenRowCount"] == 1
    assert fake_sheets.values("sales-sheet", "d_last_7_days")[1:] in ([], [[]])


@pytest.mark.parametrize("kind", ["outside", "symlinked folder", "symlinked section"])
def test_sheets_task_refuses_a_folder_outside_the_report_and_writes_nothing(
    synced, fake_sheets, monkeypatch, tmp_path, kind
):
    import shutil

    from airflow.sdk.exceptions import AirflowFailException
    from support.fake_sheets import use_google_connection

    from nightshift.operators.reports import ReportToSheetsOperator

    use_google_connection(monkeypatch, fake_sheets)
    fake_sheets.add_spreadsheet("sales-sheet")
    built = Path(build()["folder"])
    elsewhere = tmp_path / "elsewhere"  # another report's data, say: valid Parquet the task could publish
    shutil.copytree(built, elsewhere)
    report_folder = tmp_path / "reports" / "daily_sales"
    folder, bad = elsewhere, elsewhere
    if kind == "symlinked folder":
        folder = bad = report_folder / "planted"
        folder.symlink_to(elsewhere, target_is_directory=True)
    elif kind == "symlinked section":
        folder = built
        bad = built / "sections" / "top_customers.parquet"
        bad.unlink()
        bad.symlink_to(elsewhere / "sections" / "top_customers.parquet")
    sections = ["by_territory", "top_customers"]
    op = ReportToSheetsOperator(
        task_id="to_sheets", report_id="daily_sales", spreadsheet_key="sales-sheet", folder=str(folder),
        sections=sections,
    )  # fmt: skip
    with pytest.raises(AirflowFailException) as raised:
        op.execute(context("to_sheets", dt.datetime(2026, 11, 23, tzinfo=dt.UTC)))
    message = str(raised.value)
    assert f"{str(bad)!r}" in message and f"is outside the folder {str(report_folder)!r}" in message
    assert "re-run the report's build task" in message
    assert fake_sheets.api_requests == [] and fake_sheets.token_requests == []


@pytest.mark.parametrize("report_id", ["", ".", "..", "../etc", "daily_sales/..", "/etc"])
def test_a_report_id_that_is_a_path_has_no_folder(report_id, tmp_path):
    from nightshift_core.reports.paths import ReportPathError, report_folder

    env = {"NIGHTSHIFT_REPORTS_DIR": str(tmp_path)}
    assert report_folder("daily_sales", env) == tmp_path.resolve() / "daily_sales"
    with pytest.raises(ReportPathError, match="must be a plain name"):
        report_folder(report_id, env)


def test_build_refuses_a_date_folder_that_is_a_symlink_out_of_the_report(synced, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "keep.txt").parent.mkdir()
    (elsewhere / "keep.txt").write_text("not a report file: the clean-up of stale files must not touch it")
    day_folder = tmp_path / "reports" / "daily_sales" / DAY.isoformat()
    day_folder.parent.mkdir(parents=True)
    day_folder.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(AirflowFailException, match=rf"build folder '{day_folder}' \(resolves to .*elsewhere"):
        build(report_date=DAY.isoformat())
    assert [p.name for p in elsewhere.iterdir()] == ["keep.txt"]
