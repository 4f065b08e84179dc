"""Sync throughput on a generated classicmodels `orderdetails` table in MariaDB.

    .venv/bin/python bench/sync_mariadb.py [--rows 2000000 500000] [--bigquery]

Phases, each in its own process (peak RSS is its own), on the same table in one run:
  raw        SELECT * through a server-side cursor, rows discarded (the floor)
  provider   MySQLToGCSOperator's local file writing (no upload): Parquet, and its default JSON
  ours       SqlToWarehouseOperator, full sync into DuckDB (and the BigQuery emulator: informative)
  incr       SqlToWarehouseOperator, incremental after 1 % of the rows changed (no reconciliation)
  reconcile  the next incremental run with the reconciliation and detect_deletes (it marks the rows
             deleted by the mutation); its reconciliation time is also reported on its own
  steady     the run after it: the table is in sync, the per-range checksums agree (the daily cost)
Prints rows/s, ratios and peak RSS. Needs MariaDB on 127.0.0.1:3306 (root, no password).
Not a test: nothing passes or fails here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins"), str(ROOT / "tests")]
TABLE = "orderdetails"
REFERENCE_ORDERDETAILS = 2996  # rows at scale 1


def phase(name: str, db: str, workdir: str) -> dict:
    os.environ["AIRFLOW_CONN_BENCH_MYSQL"] = json.dumps(
        {"conn_type": "mysql", "host": "127.0.0.1", "port": 3306, "login": "root", "schema": db}
    )
    extra = {"engine": "duckdb", "path": str(Path(workdir) / "bench.duckdb")}
    if name == "ours-bigquery":
        extra = {
            "engine": "bigquery",
            "anonymous": True,
            "project": "bench",
            "api_endpoint": os.environ["BQ_ENDPOINT"],
        }
    os.environ["AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE"] = json.dumps({"conn_type": "generic", "extra": extra})
    # Imports (Airflow alone takes seconds) are not part of what is measured, nor are the modules
    # the operator imports lazily: a constant per process, whatever the rows. pandas is pulled
    # in by DuckDB's Python bindings on first use; sqlglot loads its dialects on first use.
    import MySQLdb  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.compute  # noqa: F401
    import sqlglot.dialects.bigquery  # noqa: F401
    import sqlglot.dialects.duckdb  # noqa: F401
    from airflow.providers.google.cloud.transfers.mysql_to_gcs import MySQLToGCSOperator  # noqa: F401

    import nightshift_core.sql  # noqa: F401
    import nightshift_core.warehouse.bigquery_engine  # noqa: F401
    import nightshift_core.warehouse.duckdb_engine  # noqa: F401
    from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator  # noqa: F401

    started = time.perf_counter()
    rows = 0
    spent: dict[str, float] = {}
    if name == "raw":
        import MySQLdb
        import MySQLdb.cursors

        conn = MySQLdb.connect(host="127.0.0.1", user="root", database=db)
        cur = conn.cursor(MySQLdb.cursors.SSCursor)
        cur.execute(f"SELECT * FROM {TABLE}")  # noqa: S608
        while batch := cur.fetchmany(50_000):
            rows += len(batch)
        conn.close()
    elif name.startswith("provider"):
        from airflow.providers.google.cloud.transfers.mysql_to_gcs import MySQLToGCSOperator

        fmt = name.split("-")[1]
        op = MySQLToGCSOperator(
            task_id="provider", sql=f"SELECT * FROM {TABLE}", bucket="unused", filename="bench_{}." + fmt,  # noqa: S608
            export_format=fmt, mysql_conn_id="bench_mysql",
        )  # fmt: skip
        for file in op._write_local_data_files(op.query()):
            rows += file["file_row_count"]
            file["file_handle"].close()
    else:
        from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator

        incremental = name in ("incr", "reconcile", "steady")
        op = SqlToWarehouseOperator(
            task_id=f"load_{TABLE}", source_conn_id="bench_mysql", table=TABLE, dataset="bench",
            primary_key=["orderNumber", "productCode"], mode="incremental" if incremental else "full",
            cursor="updatedAt" if incremental else None,
            reconcile_every=None if name in ("reconcile", "steady") else dt.timedelta(0),
            detect_deletes=name in ("reconcile", "steady"),
        )  # fmt: skip
        if name in ("reconcile", "steady"):
            inner = op._reconcile

            def timed(*args, **kwargs):
                t = time.perf_counter()
                try:
                    return inner(*args, **kwargs)
                finally:
                    spent["reconcile_seconds"] = time.perf_counter() - t

            op._reconcile = timed
        ti = SimpleNamespace(dag_id="bench", task_id=op.task_id, run_id=name, map_index=-1)
        ctx = {"ti": ti, "data_interval_start": None, "data_interval_end": None}
        if os.environ.get("BENCH_PROFILE") == name:
            import cProfile
            import pstats

            with cProfile.Profile() as profile:
                rows = op.execute(ctx)["staged_rows"]
            pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
        else:
            rows = op.execute(ctx)["staged_rows"]
    seconds = time.perf_counter() - started
    return {"phase": name, "rows": rows, "seconds": seconds, **spent,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def run_phase(name: str, db: str, workdir: str, env: dict) -> dict | None:
    cmd = [sys.executable, __file__, "--phase", name, "--db", db, "--workdir", workdir]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"  {name}: FAILED\n{out.stderr[-3000:]}")
        return None
    if os.environ.get("BENCH_PROFILE") == name:
        print(out.stderr[-12000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_size(target_rows: int, with_bigquery: bool) -> None:
    import MySQLdb

    from nightshift_core.sample import classicmodels

    db = f"ns_bench_{uuid.uuid4().hex[:8]}"
    admin = MySQLdb.connect(host="127.0.0.1", user="root")
    admin.cursor().execute(f"CREATE DATABASE `{db}`")
    emulator = None
    env = dict(os.environ)
    try:
        started = time.perf_counter()
        conn, dialect = classicmodels.connect(f"mysql://root@127.0.0.1:3306/{db}")
        counts = classicmodels.generate(conn, dialect, scale=target_rows / REFERENCE_ORDERDETAILS, seed=1)
        print(f"\n{counts[TABLE]:,} rows in {TABLE} (generated in {time.perf_counter() - started:.0f}s)")
        with tempfile.TemporaryDirectory() as workdir:
            if with_bigquery:
                from support.bq_emulator import start_emulator

                (Path(workdir) / "bq").mkdir()
                emulator = start_emulator(Path(workdir) / "bq", project="bench")
                env["BQ_ENDPOINT"] = emulator.endpoint
            results = {}
            phases = ["raw", "provider-parquet", "provider-json", "ours-duckdb"]
            for name in phases + (["ours-bigquery"] if with_bigquery else []):
                results[name] = run_phase(name, db, workdir, env)
            # mutate() inserts, updates and deletes this fraction each: about 1 % of the rows change.
            changed = classicmodels.mutate(conn, dialect, fraction=0.005, seed=2, now=dt.datetime(2030, 1, 1))
            conn.commit()
            print(f"  mutated: {changed}")
            results["incr"] = run_phase("incr", db, workdir, env)
            results["reconcile"] = run_phase("reconcile", db, workdir, env)
            results["steady"] = run_phase("steady", db, workdir, env)
        conn.close()
        raw = results["raw"]
        print(f"  {'phase':14} {'rows':>10} {'rows/s':>12} {'seconds':>8} {'peak RSS MB':>12} {'vs raw':>7}")
        for name, r in results.items():
            if r:
                rate = r["rows"] / r["seconds"]
                ratio = rate / (raw["rows"] / raw["seconds"]) if raw else float("nan")
                print(
                    f"  {name:14} {r['rows']:10,} {rate:12,.0f} {r['seconds']:8.2f} {r['peak_rss_mb']:12.0f} {ratio:6.2f}x"
                )
        ours, incr = results.get("ours-duckdb"), results.get("incr")
        for provider_phase in ("provider-parquet", "provider-json"):
            provider = results.get(provider_phase)
            if ours and provider:
                print(
                    f"  ours-duckdb vs {provider_phase}: {provider['seconds'] / ours['seconds']:.2f}x faster"
                )
        if ours and incr:
            print(f"  incremental time / full time: {incr['seconds'] / ours['seconds']:.1%}")
        for label, key in (
            ("after the mutation (marks its deletes)", "reconcile"),
            ("steady state", "steady"),
        ):
            rec = results.get(key)
            if ours and rec:
                print(
                    f"  reconciliation {label}: {rec['reconcile_seconds']:.2f}s = "
                    f"{rec['reconcile_seconds'] / ours['seconds']:.1%} of the full sync (target <= 15 %); peak "
                    f"RSS {rec['peak_rss_mb']:.0f} MB vs the full sync's {ours['peak_rss_mb']:.0f} MB"
                )
    finally:
        if emulator:
            from support.bq_emulator import stop_emulator

            stop_emulator(emulator)
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{db}`")
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[500_000, 2_000_000])
    parser.add_argument("--bigquery", action="store_true", help="also load into the BigQuery emulator")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
        print(json.dumps(phase(args.phase, args.db, args.workdir)))
        return
    for rows in args.rows:
        bench_size(rows, args.bigquery)


if __name__ == "__main__":
    main()
