"""The sync benchmark's harness, shared by bench/sync_mariadb.py and bench/sync_postgres.py.

Each phase runs in its own process (its peak RSS is its own) on one generated classicmodels
`orderdetails` table:
  raw             the driver's floor: a server-side cursor, rows discarded (mysqlclient SSCursor;
                  psycopg2 named cursor)
  provider-*      MariaDB only: MySQLToGCSOperator's local file writing (no upload): Parquet and JSON
  cx-arrow        connectorx -> Arrow record batches (arrow_stream), batches discarded
  cx-arrow-2      the same over 2 partitions (key ranges)
  cx-duckdb       connectorx -> a DuckDB table (CREATE TABLE AS from the record batch stream)
  dlt-pyarrow     dlt `sql_database` with the pyarrow backend -> DuckDB
  dlt-connectorx  dlt `sql_database` with the connectorx backend -> DuckDB
  ours-dbapi      SqlToWarehouseOperator, full, DB-API reader (reader="dbapi") -> DuckDB
  ours-duckdb     SqlToWarehouseOperator, full, the Arrow reader (the default) -> DuckDB
  ours-bigquery   the same into the BigQuery emulator (--bigquery; informative)
  incr-first      the first incremental run on the target the full sync left (no state yet: it starts
                  from the target's MAX(updatedAt), as an older version did; this records the state)
  nochange        the next incremental run, nothing changed: reads 0 rows outside the lag window
  incr            incremental after about 1 % of the rows changed (no reconciliation)
  reconcile       the next incremental run with reconciliation and detect_deletes
  steady          the run after it: in sync, the per-range checksums agree (the daily cost)
  incr-same       incremental after a second mutation of the same number of rows at every size
                  (about 5,000: what the 0.5M table's 1 % is), so sizes compare at equal change;
                  lag 0, so the first mutation's rows (inside the 10-minute lag) are not read again

dlt is not a project dependency: the dlt phases run in a Python of their own, named by
BENCH_DLT_PYTHON (skipped, saying so, when it is not set). Make one with:
    python3.11 -m venv /tmp/bench-dlt
    /tmp/bench-dlt/bin/pip install "dlt[duckdb,sql_database,parquet]==1.31.0" connectorx==0.4.6 pymysql psycopg2-binary
    BENCH_DLT_PYTHON=/tmp/bench-dlt/bin/python .venv/bin/python bench/sync_mariadb.py
Not a test: nothing passes or fails here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
TABLE = "orderdetails"
KEY = ["orderNumber", "productCode"]
REFERENCE_ORDERDETAILS = 2996  # rows at scale 1
INCREMENTAL = ("incr-first", "nochange", "incr", "reconcile", "steady", "incr-same")
SAME_CHANGE_ROWS = 500_000  # incr-same changes what a 1 % change of a table this size changes
LAG = dt.timedelta(minutes=10)  # the incremental phases' lag: late commits this much after their cursor


@dataclass(frozen=True)
class Source:
    name: str  # mariadb, postgres
    scheme: str  # the sample generator's and connectorx's URL scheme
    conn_type: str  # the Airflow connection type
    port: int
    login: str
    raw_label: str  # what the floor phase uses
    admin_db: str = ""

    def url(self, db: str, scheme: str | None = None) -> str:
        return f"{scheme or self.scheme}://{self.login}@127.0.0.1:{self.port}/{db}"

    def table(self) -> str:
        return TABLE if self.name == "mariadb" else f'"{TABLE}"'


MARIADB = Source("mariadb", "mysql", "mysql", 3306, "root", "mysqlclient SSCursor")
POSTGRES = Source("postgres", "postgresql", "postgres", 5432, "postgres", "psycopg2 named cursor", "postgres")


def phases(source: Source, with_bigquery: bool) -> list[str]:
    out = ["raw"] + (["provider-parquet", "provider-json"] if source.name == "mariadb" else [])
    out += [
        "cx-arrow",
        "cx-arrow-2",
        "cx-duckdb",
        "dlt-pyarrow",
        "dlt-connectorx",
        "ours-dbapi",
        "ours-duckdb",
    ]
    return out + (["ours-bigquery"] if with_bigquery else [])


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dlt_phase(source: Source, name: str, db: str, workdir: str) -> dict:
    """Runs in the dlt venv: nothing of the project is imported."""
    import dlt
    from dlt.sources.sql_database import sql_table

    backend = name.split("-", 1)[1]
    driver = "mysql+pymysql" if source.name == "mariadb" else "postgresql+psycopg2"
    table = sql_table(
        credentials=source.url(db, driver), table=TABLE, backend=backend, chunk_size=50_000,
        **({"backend_kwargs": {"conn": source.url(db)}} if backend == "connectorx" else {}),
    )  # fmt: skip
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{uuid.uuid4().hex[:6]}", destination=dlt.destinations.duckdb(
            str(Path(workdir) / f"dlt_{backend}.duckdb")), dataset_name="bench",
        pipelines_dir=str(Path(workdir) / "dlt_pipelines"),
    )  # fmt: skip
    started = time.perf_counter()
    info = pipeline.run(table, write_disposition="replace")
    seconds = time.perf_counter() - started
    import duckdb

    info.raise_on_failed_jobs()
    with duckdb.connect(str(Path(workdir) / f"dlt_{backend}.duckdb"), read_only=True) as con:
        rows = con.execute(f"SELECT COUNT(*) FROM bench.{TABLE.lower()}").fetchone()[0]  # noqa: S608
    return {"phase": name, "rows": rows, "seconds": seconds, "peak_rss_mb": rss_mb()}


def phase(source: Source, name: str, db: str, workdir: str) -> dict:
    if name.startswith("dlt-"):
        return dlt_phase(source, name, db, workdir)
    sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins"), str(ROOT / "tests")]
    os.environ["AIRFLOW_CONN_BENCH_SOURCE"] = json.dumps(
        {
            "conn_type": source.conn_type,
            "host": "127.0.0.1",
            "port": source.port,
            "login": source.login,
            "schema": db,
        }  # fmt: skip
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
    # the operator imports lazily: a constant per process, whatever the rows.
    import airflow.sdk.execution_time.supervisor  # noqa: F401  (a worker's task runner has it loaded)
    import connectorx  # noqa: F401
    import duckdb
    import pandas  # noqa: F401
    import pyarrow.compute  # noqa: F401
    import sqlglot.dialects.bigquery  # noqa: F401
    import sqlglot.dialects.duckdb  # noqa: F401

    import nightshift_core.sync.arrow_reader  # noqa: F401
    import nightshift_core.warehouse.bigquery_engine  # noqa: F401
    import nightshift_core.warehouse.duckdb_engine  # noqa: F401
    import nightshift_core.warehouse.sql  # noqa: F401
    from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator

    if source.name == "mariadb":  # (imports the MySQL hook too)
        from airflow.providers.google.cloud.transfers.mysql_to_gcs import MySQLToGCSOperator
    else:
        import airflow.providers.postgres.hooks.postgres  # noqa: F401
    started = time.perf_counter()
    rows = 0
    spent: dict[str, float] = {}
    if name == "raw":
        rows = raw_read(source, db)
    elif name.startswith("provider"):
        fmt = name.split("-")[1]
        op = MySQLToGCSOperator(
            task_id="provider", sql=f"SELECT * FROM {TABLE}", bucket="unused", filename="bench_{}." + fmt,  # noqa: S608
            export_format=fmt, mysql_conn_id="bench_source",
        )  # fmt: skip
        for file in op._write_local_data_files(op.query()):
            rows += file["file_row_count"]
            file["file_handle"].close()
    elif name.startswith("cx-"):
        import connectorx as cx

        options = {"return_type": "arrow_stream", "batch_size": 50_000}
        if name == "cx-arrow-2":
            # taken as SQL: PostgreSQL folds an unquoted mixed-case name to lower case
            options.update(
                partition_on='"orderNumber"' if source.name == "postgres" else "orderNumber", partition_num=2
            )
        reader = cx.read_sql(source.url(db), f"SELECT * FROM {source.table()}", **options)  # noqa: S608
        if name == "cx-duckdb":
            with duckdb.connect(str(Path(workdir) / "cx.duckdb")) as con:
                con.register("incoming", reader)
                con.execute("CREATE OR REPLACE TABLE t AS SELECT * FROM incoming")
                rows = con.execute("SELECT COUNT(*) FROM t").fetchone()[0]
        else:
            rows = sum(batch.num_rows for batch in reader)
    else:
        incremental = name in INCREMENTAL
        op = SqlToWarehouseOperator(
            task_id=f"load_{TABLE}", source_conn_id="bench_source", table=TABLE, dataset="bench",
            primary_key=KEY, mode="incremental" if incremental else "full",
            cursor="updatedAt" if incremental else None, lag=dt.timedelta(0) if name == "incr-same" else LAG,
            reconcile_every=None if name in ("reconcile", "steady") else dt.timedelta(0),
            detect_deletes=name in ("reconcile", "steady"),
            reader="dbapi" if name == "ours-dbapi" else "auto",
        )  # fmt: skip
        if name in ("reconcile", "steady"):
            from nightshift_core.sync.reconcile import Reconciler

            inner = Reconciler.run

            def timed(*args, **kwargs):
                t = time.perf_counter()
                try:
                    return inner(*args, **kwargs)
                finally:
                    spent["reconcile_seconds"] = time.perf_counter() - t

            Reconciler.run = timed
        ti = SimpleNamespace(dag_id="bench", task_id=op.task_id, run_id=name, map_index=-1)
        ctx = {"ti": ti, "data_interval_start": None, "data_interval_end": None}
        if os.environ.get("BENCH_PROFILE") == name:
            import cProfile
            import pstats

            with cProfile.Profile() as profile:
                result = op.execute(ctx)
            pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
        else:
            result = op.execute(ctx)
        rows, spent["reader"] = result["staged_rows"], result["reader"]
        if incremental:
            spent["window"] = result["window"]
    seconds = time.perf_counter() - started
    return {"phase": name, "rows": rows, "seconds": seconds, **spent, "peak_rss_mb": rss_mb()}


def raw_read(source: Source, db: str, table: str | None = None) -> int:
    """The driver floor: every row of ``table`` (default: the bench table) read and discarded."""
    rows = 0
    if source.name == "mariadb":
        import MySQLdb
        import MySQLdb.cursors

        conn = MySQLdb.connect(host="127.0.0.1", user=source.login, database=db)
        cur = conn.cursor(MySQLdb.cursors.SSCursor)
    else:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=source.port, user=source.login, dbname=db)
        cur = conn.cursor(name="bench_raw")
        cur.itersize = 50_000
    cur.execute(f"SELECT * FROM {table or source.table()}")  # noqa: S608
    while batch := cur.fetchmany(50_000):
        rows += len(batch)
    conn.close()
    return rows


def run_phase(script: str, name: str, db: str, workdir: str, env: dict) -> dict | None:
    python = sys.executable
    if name.startswith("dlt-"):
        python = env.get("BENCH_DLT_PYTHON", "")
        if not python or not shutil.which(python):
            print(f"  {name}: SKIPPED: dlt is not a project dependency; set BENCH_DLT_PYTHON to a Python with "
                  "dlt[duckdb,sql_database,parquet], connectorx, pymysql and psycopg2-binary (see bench/sync_common.py)")  # fmt: skip
            return None
    cmd = [python, script, "--phase", name, "--db", db, "--workdir", workdir]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        print(f"  {name}: FAILED\n{out.stderr[-3000:]}")
        return None
    if os.environ.get("BENCH_PROFILE") == name:
        print(out.stderr[-12000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


class Database:
    """A scratch database on the source server, dropped afterwards."""

    def __init__(self, source: Source) -> None:
        self.source, self.name = source, f"ns_bench_{uuid.uuid4().hex[:8]}"

    def _admin(self, sql: str) -> None:
        if self.source.name == "mariadb":
            import MySQLdb

            admin = MySQLdb.connect(host="127.0.0.1", user=self.source.login, autocommit=True)
        else:
            import psycopg2

            admin = psycopg2.connect(host="127.0.0.1", port=self.source.port, user=self.source.login,
                                     dbname=self.source.admin_db)  # fmt: skip
            admin.autocommit = True
        try:
            admin.cursor().execute(sql)
        finally:
            admin.close()

    def __enter__(self) -> Database:
        q = "`" if self.source.name == "mariadb" else '"'
        self._admin(f"CREATE DATABASE {q}{self.name}{q}")
        return self

    def __exit__(self, *exc) -> None:
        q = "`" if self.source.name == "mariadb" else '"'
        force = "" if self.source.name == "mariadb" else " WITH (FORCE)"
        self._admin(f"DROP DATABASE IF EXISTS {q}{self.name}{q}{force}")


def bench_size(source: Source, script: str, target_rows: int, with_bigquery: bool) -> dict:
    sys.path[:0] = [str(ROOT / "include"), str(ROOT / "tests")]
    from nightshift_core.sample import classicmodels

    emulator = None
    env = dict(os.environ)
    results: dict[str, dict | None] = {}
    with Database(source) as db:
        try:
            started = time.perf_counter()
            conn, dialect = classicmodels.connect(source.url(db.name))
            counts = classicmodels.generate(conn, dialect, scale=target_rows / REFERENCE_ORDERDETAILS, seed=1)
            print(f"\n{source.name}: {counts[TABLE]:,} rows in {TABLE} (generated in "
                  f"{time.perf_counter() - started:.0f}s)")  # fmt: skip
            with tempfile.TemporaryDirectory() as workdir:
                if with_bigquery:
                    from support.bq_emulator import start_emulator

                    (Path(workdir) / "bq").mkdir()
                    emulator = start_emulator(Path(workdir) / "bq", project="bench")
                    env["BQ_ENDPOINT"] = emulator.endpoint
                for name in [*phases(source, with_bigquery), "incr-first", "nochange"]:
                    results[name] = run_phase(script, name, db.name, workdir, env)
                # mutate() inserts, updates and deletes this fraction each: about 1 % of the rows change,
                # dated now (after the state the no-change run recorded, on the source's clock).
                changed = classicmodels.mutate(
                    conn, dialect, fraction=0.005, seed=2, now=dt.datetime.now(dt.UTC)
                )
                conn.commit()
                print(f"  mutated: {changed}")
                for name in ("incr", "reconcile", "steady"):
                    results[name] = run_phase(script, name, db.name, workdir, env)
                changed = classicmodels.mutate(
                    conn, dialect, fraction=min(0.005 * SAME_CHANGE_ROWS / counts[TABLE], 1.0), seed=3,
                    now=dt.datetime.now(dt.UTC),
                )  # fmt: skip
                conn.commit()
                print(f"  mutated again, the same number of rows at every size: {changed}")
                results["incr-same"] = run_phase(script, "incr-same", db.name, workdir, env)
            conn.close()
        finally:
            if emulator:
                from support.bq_emulator import stop_emulator

                stop_emulator(emulator)
    report(source, results)
    return results


def report(source: Source, results: dict[str, dict | None]) -> None:
    def rate(name: str) -> float | None:
        r = results.get(name)
        return r["rows"] / r["seconds"] if r and r["seconds"] else None

    floor = rate("raw")
    print(f"  {'phase':16} {'rows':>10} {'rows/s':>12} {'seconds':>8} {'peak RSS MB':>12} {'vs floor':>9}")
    for name, r in results.items():
        if r:
            ratio = f"{rate(name) / floor:8.2f}x" if floor else "      n/a"
            print(f"  {name:16} {r['rows']:10,} {rate(name):12,.0f} {r['seconds']:8.2f} {r['peak_rss_mb']:12.0f} {ratio}"
                  + (f"  ({r['reader']} reader)" if r.get("reader") else ""))  # fmt: skip
    ours = rate("ours-duckdb")
    for other, target in (
        ("cx-duckdb", 0.9),
        ("dlt-connectorx", 1.3),
        ("dlt-pyarrow", None),
        ("ours-dbapi", None),
    ):
        if ours and rate(other):
            want = f" (target >= {target}x)" if target else ""
            print(f"  ours-duckdb vs {other}: {ours / rate(other):.2f}x{want}")
    full, incr = results.get("ours-duckdb"), results.get("incr")
    if full and incr:
        print(f"  incremental time / full time: {incr['seconds'] / full['seconds']:.1%} (target <= 5 %), "
              f"{incr['rows']:,} rows read")  # fmt: skip
    first, nochange = results.get("incr-first"), results.get("nochange")
    if first and nochange:
        print(f"  first incremental run without a state (from MAX(updatedAt) of the target): {first['rows']:,} "
              f"rows read; the no-change run after it: {nochange['rows']:,} rows read from "
              f"{nochange['window']['from']} (state - lag {LAG}; target: 0 outside the lag window), "
              f"{nochange['seconds']:.2f}s")  # fmt: skip
    for label, key in (("after the mutation (marks its deletes)", "reconcile"), ("steady state", "steady")):
        rec = results.get(key)
        if full and rec:
            print(f"  reconciliation {label}: {rec['reconcile_seconds']:.2f}s = "
                  f"{rec['reconcile_seconds'] / full['seconds']:.1%} of the full sync; peak RSS "
                  f"{rec['peak_rss_mb']:.0f} MB vs the full sync's {full['peak_rss_mb']:.0f} MB")  # fmt: skip


BASE_ORDERDETAILS = 100_000  # generate_large's seeded base: generated row by row, then copied


def generate_large(conn, dialect: str, rows: int, seed: int = 1) -> dict[str, int]:
    """classicmodels with about ``rows`` rows in orders' lines, at tens of thousands of rows a second.

    classicmodels.generate makes each row in Python (about 7,000 rows a second here: minutes for 2M,
    a quarter of an hour for 8M), so it makes a seeded base of about BASE_ORDERDETAILS lines and the
    server copies its orders and orderdetails ``copies`` times (INSERT ... SELECT, each copy's order
    numbers shifted past the last copy's): the same values, dates and audit stamps per copy, the key
    order kept. On the bench's own servers the copies are kept out of the binlog (MariaDB
    ``sql_log_bin=0``; PostgreSQL writes them to its WAL before any slot exists) and skip the foreign
    key and touch triggers (MariaDB ``foreign_key_checks=0``; PostgreSQL ``session_replication_role =
    replica``): the base's keys are valid, so are the copies'. Meanwhile MariaDB's buffer pool is 2 GB
    (its 32 MB set back afterwards) and PostgreSQL's secondary indexes are dropped and built again
    after the copies (a sort, not row by row through 16 MB of shared buffers). Then the tables are
    analysed (PostgreSQL: VACUUM ANALYZE, so no autovacuum runs into the measured phases). Row counts.
    """
    sys.path[:0] = [str(ROOT / "include")]
    from nightshift_core.sample import classicmodels

    copies = max(1, round(rows / BASE_ORDERDETAILS))
    counts = classicmodels.generate(conn, dialect, scale=rows / copies / REFERENCE_ORDERDETAILS, seed=seed)
    if copies == 1:
        return counts
    q = (lambda c: f"`{c}`") if dialect == "mysql" else (lambda c: f'"{c}"')
    cur = conn.cursor()
    restore: list[str] = []  # the server's own settings and indexes, put back once the copies are in
    if dialect == "mysql":
        cur.execute("SET SESSION sql_log_bin = 0, foreign_key_checks = 0, unique_checks = 0")
        # The bench's server runs with a 32 MB buffer pool (so the measured phases' index scans leave
        # memory as a big table's do): the copies' secondary-index inserts need it larger meanwhile.
        for name, during in (("innodb_buffer_pool_size", 2 << 30), ("innodb_flush_log_at_trx_commit", 2)):
            cur.execute(f"SELECT @@GLOBAL.{name}")
            restore.append(f"SET GLOBAL {name} = {int(cur.fetchone()[0])}")
            cur.execute(f"SET GLOBAL {name} = {during}")
    else:
        cur.execute("SET session_replication_role = replica")
        cur.execute("SET synchronous_commit = off")
        cur.execute("SET maintenance_work_mem = '512MB'")
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN "
            "('orders', %s) AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype = 'p')",
            [TABLE],
        )  # fmt: skip
        for name, definition in cur.fetchall():
            cur.execute(f'DROP INDEX "{name}"')
            restore.append(definition)
    cur.execute(f"SELECT MIN({q('orderNumber')}), MAX({q('orderNumber')}) FROM {q('orders')}")  # noqa: S608
    low, high = cur.fetchone()
    span = high - low + 1
    for table in ("orders", TABLE):
        schema = "DATABASE()" if dialect == "mysql" else "current_schema()"
        cur.execute(
            f"SELECT column_name FROM information_schema.columns WHERE table_name = %s AND table_schema = {schema} "  # noqa: S608
            "ORDER BY ordinal_position",
            [table],
        )
        columns = [r[0] for r in cur.fetchall()]
        listed = ", ".join(q(c) for c in columns)
        shifted = ", ".join(f"{q(c)} + %s" if c == "orderNumber" else q(c) for c in columns)
        base = q(table)
        if dialect == "mysql":  # an INSERT ... SELECT from its own table goes through a temporary copy
            base = q(f"base_{table}")
            cur.execute(f"CREATE TEMPORARY TABLE {base} AS SELECT * FROM {q(table)}")  # noqa: S608
        for copy in range(1, copies):
            cur.execute(
                f"INSERT INTO {q(table)} ({listed}) SELECT {shifted} FROM {base} "  # noqa: S608
                f"WHERE {q('orderNumber')} BETWEEN %s AND %s ORDER BY {q('orderNumber')}"
                + (f", {q('productCode')}" if table == TABLE else ""),
                [copy * span, low, high],
            )
            conn.commit()
        if dialect == "mysql":
            cur.execute(f"DROP TEMPORARY TABLE {base}")
        counts[table] *= copies
    for statement in restore:
        cur.execute(statement)
    if dialect == "mysql":
        cur.execute("SET SESSION sql_log_bin = 1, foreign_key_checks = 1, unique_checks = 1")
        cur.execute(f"ANALYZE TABLE {q('orders')}, {q(TABLE)}")
        cur.fetchall()
    else:
        cur.execute("SET session_replication_role = DEFAULT")
        cur.execute("RESET synchronous_commit")
        conn.commit()
        conn.autocommit = True
        cur.execute(f"VACUUM ANALYZE {q('orders')}")
        cur.execute(f"VACUUM ANALYZE {q(TABLE)}")
        conn.autocommit = False
    conn.commit()
    return counts


def add_phase_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments run_phase() gives a phase's own process."""
    for name in ("--phase", "--db", "--workdir"):
        parser.add_argument(name, help=argparse.SUPPRESS)


def run_child(args: argparse.Namespace, run) -> bool:
    """In a phase's own process: run ``run(phase, db, workdir)`` and print its result for run_phase()."""
    if not args.phase:
        return False
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    print(json.dumps(run(args.phase, args.db, args.workdir)))
    return True


def main(source: Source, script: str) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[500_000, 2_000_000])
    parser.add_argument("--bigquery", action="store_true", help="also load into the BigQuery emulator")
    add_phase_arguments(parser)
    args = parser.parse_args()
    if run_child(args, lambda name, db, workdir: phase(source, name, db, workdir)):
        return
    sizes = {}
    for rows in args.rows:
        sizes[rows] = bench_size(source, script, rows, args.bigquery)
    if len(sizes) > 1:
        for key, label in (("incr", "1 % changed"), ("incr-same", "the same rows changed at every size")):
            print(
                f"\nincremental run ({label}) by size (target for the same rows: within ±20 % as the table grows):"
            )
            shown = [
                f"{(r.get(key) or {}).get('seconds', float('nan')):.2f}s ({(r.get(key) or {}).get('rows', 0):,} rows)"
                for r in sizes.values()
            ]
            print("  " + " -> ".join(shown))
        print("\npeak RSS by size (flat is the target: within ±15 %):")
        for name in next(iter(sizes.values())):
            shown = [f"{(r.get(name) or {}).get('peak_rss_mb', float('nan')):.0f}" for r in sizes.values()]
            print(f"  {name:16} " + " -> ".join(shown) + " MB")
