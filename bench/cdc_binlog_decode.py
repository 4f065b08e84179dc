"""The MariaDB log run's cost on the private binlog server: the reader's own dump parsing and compiled
row decoder against mysql-replication's stream reader and decoding.

    .venv/bin/python bench/cdc_binlog_decode.py [--rows 200000] [--changed 0.01] [--repeat 3]
                                                [--port 3307] [--profile] [--statements row|set]

A scratch database on the log-enabled MariaDB (scripts/cdc_services.sh; 127.0.0.1:3307) gets an
`orderdetails`-shaped table of --rows rows (filled with sql_log_bin=0: nothing of it in the binlog),
a snapshot into DuckDB through the log path's own first run, then one transaction changing about
--changed of it the way the sync bench does (updates of quantityOrdered/priceEach/updatedAt spread
over the table, inserts of new keys, deletes: 5 : 1 : 1; each update and delete its own statement,
so its own row event, as the sync bench writes them; --statements set: one statement each). Then, alternating, from copies of the
snapshot's warehouse (each run reads the same changes from the same stored position):

  read-lib / read-fast   the reader alone: every change of the read iterated (decode + Change objects)
  run-lib / run-fast     the whole log run (nightshift_core.sync.cdc.run.sync_table): read, fold,
                         Arrow batch, DuckDB apply with the position

``lib`` reads through mysql-replication's BinLogStreamReader and RowsEvent.rows (mysql_binlog's
FAST_DECODE = False), ``fast`` parses the dump's packets in mysql_binlog and decodes rows through the
compiled plans of nightshift_core.sync.cdc.binlog_decode; the two runs' warehouse tables are checked equal. Medians of
--repeat tries; --profile prints a cProfile of one fast and one lib run instead. The database is
dropped at the end. Not a test: nothing passes or fails here.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include")]

import MySQLdb  # noqa: E402

from nightshift_core.sync.cdc import mysql_binlog  # noqa: E402
from nightshift_core.sync.cdc.endpoint import Endpoint  # noqa: E402
from nightshift_core.sync.cdc.run import CdcTable, sync_table  # noqa: E402
from nightshift_core.warehouse import JobKey, TableRef  # noqa: E402
from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse  # noqa: E402

TABLE = "orderdetails"
KEY = ("orderNumber", "productCode")
DDL = """CREATE TABLE orderdetails (
  orderNumber INT NOT NULL, productCode VARCHAR(15) NOT NULL, quantityOrdered INT NOT NULL,
  priceEach DECIMAL(10,2) NOT NULL, orderLineNumber SMALLINT NOT NULL,
  updatedAt DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (orderNumber, productCode), KEY productCode (productCode), KEY updatedAt (updatedAt)
)"""
LINES = 10  # lines per order


def fill(cur, rows: int) -> None:
    cur.execute("SET SESSION sql_log_bin = 0")
    cur.execute(
        "INSERT INTO orderdetails SELECT 10000 + (seq DIV %s), CONCAT('S', LPAD(seq MOD %s, 2, '0'), '_', "
        "seq MOD 997), 10 + seq MOD 90, (seq MOD 10000) / 100 + 1, 1 + seq MOD %s, "
        "TIMESTAMP'2004-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_0_to_%s",
        (LINES, LINES, LINES, rows - 1),
    )
    cur.execute("SET SESSION sql_log_bin = 1")


def mutate(cur, rows: int, changed: float, per_row: bool) -> None:
    """One transaction: updates, inserts, deletes in 5 : 1 : 1 (about ``changed`` x ``rows`` changes),
    spread over the table. ``per_row``: each update and delete its own statement (so its own row
    event, as the sync bench's classicmodels.mutate writes them); else one statement each."""
    target = max(7, round(changed * rows))
    orders = rows // LINES
    step = max(
        2, round(7 * orders / target)
    )  # one order in ``step``: 5 lines updated, line 7 of the next deleted
    update = (
        "UPDATE orderdetails SET quantityOrdered = quantityOrdered + 1, priceEach = priceEach + 0.01, "
        "updatedAt = NOW(6) WHERE "
    )
    delete = "DELETE FROM orderdetails WHERE "
    cur.execute("BEGIN")
    if per_row:
        cur.execute(
            "SELECT orderNumber, productCode, orderLineNumber FROM orderdetails WHERE orderNumber %% %s IN (0, 1) "
            "AND (orderLineNumber <= 5 OR orderLineNumber = 7)",
            (step,),
        )
        picked = cur.fetchall()
        for number, code, line in picked:
            if number % step == 0 and line <= 5:
                cur.execute(update + "orderNumber = %s AND productCode = %s", (number, code))
            elif number % step == 1 and line == 7:
                cur.execute(delete + "orderNumber = %s AND productCode = %s", (number, code))
    else:
        cur.execute(update + "orderNumber %% %s = 0 AND orderLineNumber <= 5", (step,))
        cur.execute(delete + "orderNumber %% %s = 1 AND orderLineNumber = 7", (step,))
    cur.execute(
        "INSERT INTO orderdetails SELECT 10000 + %s + seq DIV %s, CONCAT('N', seq MOD %s), 5, 9.99, "
        "1 + seq MOD %s, NOW(6) FROM seq_0_to_%s",
        (orders + 10, LINES, LINES, LINES, max(0, target // 7 - 1)),
    )
    cur.execute("COMMIT")


def run_log(endpoint: Endpoint, warehouse_file: Path, fast: bool) -> tuple[float, int]:
    mysql_binlog.FAST_DECODE = fast
    conn = MySQLdb.connect(
        host=endpoint.host, port=endpoint.port, user=endpoint.user, database=endpoint.database
    )
    warehouse = DuckDBWarehouse(warehouse_file)
    started = time.perf_counter()
    result = sync_table(conn, "mysql", endpoint, CdcTable(TABLE, KEY, definition="bench"), warehouse,
                        TableRef("bench", TABLE), JobKey("bench_cdc", "log", run_id=uuid.uuid4().hex))  # fmt: skip
    seconds = time.perf_counter() - started
    conn.close()
    warehouse.close()
    assert result.mode == "log", result
    return seconds, result.changes


def read_only(endpoint: Endpoint, start: dict, fast: bool) -> tuple[float, int]:
    mysql_binlog.FAST_DECODE = fast
    with mysql_binlog.BinlogReader(endpoint, [TABLE]) as reader:
        started = time.perf_counter()
        n = sum(1 for _ in reader.read(mysql_binlog.BinlogPosition.from_dict(start)))
        return time.perf_counter() - started, n


def table_of(path: Path) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT * FROM bench.{TABLE} ORDER BY ALL").fetchall()  # noqa: S608


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--port", type=int, default=3307)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--statements", choices=["row", "set"], default="row",
                        help="updates and deletes one statement per row (default) or one per kind")  # fmt: skip
    args = parser.parse_args()
    db = f"ns_bdec_{uuid.uuid4().hex[:8]}"
    admin = MySQLdb.connect(host="127.0.0.1", port=args.port, user="root", autocommit=True)
    admin.cursor().execute(f"CREATE DATABASE `{db}`")
    endpoint = Endpoint("127.0.0.1", args.port, "root", db)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-binlog-") as workdir,
            contextlib.closing(
                MySQLdb.connect(host="127.0.0.1", port=args.port, user="root", database=db, autocommit=True)
            ) as conn,
        ):
            cur = conn.cursor()
            cur.execute(DDL)
            fill(cur, args.rows)
            base = Path(workdir) / "base.duckdb"
            snap = MySQLdb.connect(host="127.0.0.1", port=args.port, user="root", database=db)
            sync_table(snap, "mysql", endpoint, CdcTable(TABLE, KEY, definition="bench"), DuckDBWarehouse(base),
                       TableRef("bench", TABLE), JobKey("bench_cdc", "snap", run_id="s"))  # fmt: skip
            snap.close()
            wh = DuckDBWarehouse(base)
            import json

            start = json.loads(wh.log_position(TableRef("bench", TABLE)))
            wh.close()
            mutate(cur, args.rows, args.changed, args.statements == "row")
            print(f"{args.rows:,} rows in {db}.{TABLE}; position {start}")
            if args.profile:
                for fast in (False, True):
                    copy = Path(workdir) / f"p{fast}.duckdb"
                    shutil.copy(base, copy)
                    profile = cProfile.Profile()
                    profile.enable()
                    seconds, n = run_log(endpoint, copy, fast)
                    profile.disable()
                    print(f"\n== {'fast' if fast else 'lib'}: {n:,} changes in {seconds:.2f}s ==")
                    pstats.Stats(profile).sort_stats("tottime").print_stats(25)
                return
            times: dict[str, list[float]] = {}
            changes = 0
            tables = {}
            for i in range(args.repeat):
                for fast in (False, True) if i % 2 == 0 else (True, False):
                    name = "fast" if fast else "lib"
                    s, changes = read_only(endpoint, start, fast)
                    times.setdefault(f"read-{name}", []).append(s)
                    copy = Path(workdir) / f"{name}.duckdb"
                    shutil.copy(base, copy)
                    s, n = run_log(endpoint, copy, fast)
                    assert n == changes, (n, changes)
                    times.setdefault(f"run-{name}", []).append(s)
                    tables[name] = table_of(copy)
            assert tables["lib"] == tables["fast"], "the two decoders' warehouse tables differ"
            print(f"{changes:,} changes, medians of {args.repeat} (alternating), warehouse tables equal:")
            for name, values in times.items():
                median = statistics.median(values)
                print(f"  {name:10s} {median:6.2f} s  {changes / median:9,.0f} changes/s   "
                      f"({', '.join(f'{v:.2f}' for v in values)})")  # fmt: skip
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{db}`")
        admin.close()


if __name__ == "__main__":
    main()
