"""Excel report build time and memory against writing the same detail rows as CSV.

    .venv/bin/python bench/report_excel.py [--sizes 100000 500000 1000000] [--detail-rows 100000]

Per size, synthetic sales rows (region, productline, customer, month, amount, quantity) are
written to Parquet once; then, each in a fresh subprocess so its peak RSS is its own:

* ``report``: three pivots (region x productline, month x region, top customers) and the
  workbook (the pivots with charts and totals, plus a detail sheet of the first
  ``--detail-rows`` rows);
* ``floor``: the same detail rows written with the ``csv`` module;
* ``sheets``: the same sections written to a local fake Sheets API by the real gspread client
  (``GoogleSheetsHook``): the number of API requests.

The workbook time is printed as a ratio to the CSV floor measured in the same run (absolute
times on a shared machine mean little). Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins"), str(ROOT / "tests")]
BATCH = 65_536
REGIONS = ["APAC", "EMEA", "Japan", "NA"]
LINES = ["Classic Cars", "Motorcycles", "Planes", "Ships", "Trains", "Trucks and Buses", "Vintage Cars"]
TOP_CUSTOMERS = 50


def write_source(rows: int, path: Path) -> None:
    """Deterministic synthetic sales rows as Parquet, generated a batch at a time."""
    from decimal import Decimal

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    schema = pa.schema(
        [
            ("region", pa.string()),
            ("productline", pa.string()),
            ("customer", pa.string()),
            ("month", pa.date32()),
            ("amount", pa.decimal128(12, 2)),
            ("quantity", pa.int64()),
        ]
    )
    months = np.array([f"2026-{m:02}-01" for m in range(1, 13)], dtype="datetime64[D]")
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, BATCH):
            n = min(BATCH, rows - start)
            cents = rng.integers(100, 2_000_000, n)
            batch = pa.RecordBatch.from_arrays(
                [
                    pa.array(np.array(REGIONS)[rng.integers(0, len(REGIONS), n)]),
                    pa.array(np.array(LINES)[rng.integers(0, len(LINES), n)]),
                    pa.array([f"Customer {c:05}" for c in rng.zipf(1.3, n) % 20_000]),
                    pa.array(months[rng.integers(0, 12, n)], pa.date32()),
                    pa.array([Decimal(int(c)).scaleb(-2) for c in cents], pa.decimal128(12, 2)),
                    pa.array(rng.integers(1, 100, n)),
                ],
                schema=schema,
            )
            writer.write_batch(batch)


def report_tables(table, detail) -> tuple[list, float]:
    """The report's sections: three pivots and the detail rows."""
    import pyarrow.compute as pc

    from nightshift_core.reports.tables import ChartSpec, ReportTable, pivot

    by_line = pivot(table, index="region", columns="productline", values="amount")
    by_month = pivot(table, index="month", columns="region", values="amount")
    customers = (
        table.group_by("customer")
        .aggregate([("amount", "sum"), ("quantity", "sum"), ("amount", "count")])
        .rename_columns(["customer", "revenue", "units", "orders"])
        .sort_by([("revenue", "descending"), ("customer", "ascending")])
        .slice(0, TOP_CUSTOMERS)
        .select(["customer", "orders", "units", "revenue"])
    )
    grand = pc.sum(table["amount"]).as_py()
    lines = [c for c in by_line.column_names if c != "region"]
    regions = [c for c in by_month.column_names if c != "month"]
    tables = [
        ReportTable.from_arrow(
            "Region x line",
            "Revenue by region and product line",
            by_line,
            money=tuple(lines),
            totals=tuple(lines),
            chart=ChartSpec("region", tuple(lines)),
        ),
        ReportTable.from_arrow(
            "By month",
            "Revenue by month",
            by_month,
            money=tuple(regions),
            totals=tuple(regions),
            chart=ChartSpec("month", tuple(regions)),
        ),
        ReportTable.from_arrow(
            "Top customers",
            f"Top {TOP_CUSTOMERS} customers",
            customers,
            money=("revenue",),
            counts=("orders", "units"),
            totals=("orders", "units", "revenue"),
            chart=ChartSpec("customer", ("revenue",)),
        ),
        ReportTable.from_arrow(
            "Detail",
            "Order lines",
            detail,
            money=("amount",),
            counts=("quantity",),
            totals=("amount", "quantity"),
        ),
    ]
    return tables, grand


def phase(name: str, source: str, workdir: str, detail_rows: int) -> dict:
    """Run one measured phase in this process and return its numbers."""
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    detail = table.slice(0, detail_rows)
    started = time.perf_counter()
    result: dict = {"phase": name, "source_rows": table.num_rows, "detail_rows": detail.num_rows}
    if name == "floor":
        import csv

        from nightshift_core.reports.tables import ArrowRows

        out = Path(workdir) / "floor.csv"
        with open(out, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(detail.column_names)
            writer.writerows(ArrowRows(detail))
        result["seconds"] = time.perf_counter() - started
    elif name == "sheets":
        # The same sections through the real gspread client to the local fake Sheets API:
        # the request count is what the quota (60 writes/min/user) sees.
        import os

        import pytest
        from support.fake_sheets import FakeSheets, use_google_connection

        from nightshift.hooks.sheets import GoogleSheetsHook

        os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
        tables, _ = report_tables(table, detail)
        fake = FakeSheets().start()
        try:
            use_google_connection(pytest.MonkeyPatch(), fake)
            fake.add_spreadsheet("bench")
            hook = GoogleSheetsHook()
            for t in tables:
                hook.write_table("bench", t.name, t.columns, t.rows)
            result["requests"] = len(fake.api_requests)
            result["worksheets"] = len(tables)
        finally:
            fake.stop()
        result["seconds"] = time.perf_counter() - started
    else:
        from nightshift_core.reports.excel import build_workbook

        tables, grand = report_tables(table, detail)
        result["pivot_seconds"] = time.perf_counter() - started
        path = build_workbook(
            Path(workdir) / "report.xlsx",
            title="Sales report",
            subtitle=f"Synthetic data · {table.num_rows:,} source rows · revenue {grand:,.2f}",
            tables=tables,
        )
        result["seconds"] = time.perf_counter() - started
        result["workbook_seconds"] = result["seconds"] - result["pivot_seconds"]
        result["file_mb"] = path.stat().st_size / 2**20
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_phase(name: str, source: Path, workdir: str, detail_rows: int) -> dict | None:
    cmd = [sys.executable, __file__, "--phase", name, "--source", str(source), "--workdir", workdir]
    cmd += ["--detail-rows", str(detail_rows)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"{name} ({source.name}): FAILED\n{out.stderr[-3000:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 500_000, 1_000_000])
    parser.add_argument("--detail-rows", type=int, default=100_000)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.source, args.workdir, args.detail_rows)))
        return

    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for size in args.sizes:
            source = Path(workdir) / f"sales_{size}.parquet"
            write_source(size, source)
            floor = run_phase("floor", source, workdir, args.detail_rows)
            report = run_phase("report", source, workdir, args.detail_rows)
            sheets = run_phase("sheets", source, workdir, args.detail_rows)
            if floor and report:
                results.append((size, floor, report, sheets))
            source.unlink()

    print(f"\nexcel report bench: 3 pivots + charts + a detail sheet of up to {args.detail_rows:,} rows")
    print(
        f"{'source rows':>12} {'detail':>8} {'pivot s':>8} {'xlsx s':>8} {'rows/s':>9} {'RSS MB':>7} "
        f"{'file MB':>8} {'csv s':>7} {'csv MB':>7} {'xlsx/csv':>9} {'Sheets requests':>16}"
    )
    for size, floor, report, sheets in results:
        rate = report["detail_rows"] / report["workbook_seconds"]
        ratio = report["workbook_seconds"] / floor["seconds"]
        print(
            f"{size:12,} {report['detail_rows']:8,} {report['pivot_seconds']:8.2f} "
            f"{report['workbook_seconds']:8.2f} {rate:9,.0f} {report['peak_rss_mb']:7.0f} "
            f"{report['file_mb']:8.1f} {floor['seconds']:7.2f} {floor['peak_rss_mb']:7.0f} {ratio:8.1f}x "
            + (f"{sheets['requests']:>7} ({sheets['worksheets']} sheets)" if sheets else "failed")
        )


if __name__ == "__main__":
    main()
