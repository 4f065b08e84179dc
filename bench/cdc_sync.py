"""Change capture against the query path, on the same table and the same changes.

    .venv/bin/python bench/cdc_sync.py [--rows 2000000 8000000] [--sources mariadb postgres]
                                       [--backlog 100000 1000000]

Starts its own log-enabled servers through scripts/cdc_services.sh (MariaDB with the row-based binlog
on 127.0.0.1:3317, PostgreSQL with wal_level=logical on 5443; BENCH_CDC_MARIADB_PORT and
BENCH_CDC_POSTGRES_PORT move them), data under a temporary folder, stopped at the end (the folder is
left with results.json), so the server counters below count this bench alone and others' tests on
3307/5433 are not slowed. Per source and size, a generated classicmodels database (sync_common.generate_large: a seeded
base of about 100,000 lines copied by the server up to the size); each phase
in its own process (its peak RSS, ru_maxrss, is its own) on its `orderdetails`:

  full          the query path's full sync (SqlToWarehouseOperator, Arrow reader) -> DuckDB
  incr-first    the query path's first incremental run: records its state
  cdc-snapshot  the log path's first run (nightshift_core.sync.cdc.run.sync_table): snapshot + position
  cdc-nochange  the log path with nothing changed (twice; the target: under 0.2 s)
  -- mutate: the same number of changed rows at every size (1 % of the smallest table): updates,
     inserts and deletes spread over the table (classicmodels.mutate, one transaction) --
  cdc-log       the log path reading those changes (deletes included), with the server's counters
  sb-*          the same log-path phases through a stand-in (the shipped readers + fold + a DuckDB
                upsert, see standin_phase), kept beside sync_table so the two can be compared
  incr          the query path's incremental run on the same changes (no reconciliation: misses deletes)
  reconcile     the query path's next run with reconciliation and detect_deletes (sees the deletes)
  backlog-N     (smallest size) N rows updated in 10,000-row transactions, then one log-path run
                drains them: its peak RSS against the smaller backlog's

Rows scanned: MariaDB's global Handler_read_* and its per-table rows read (userstat's TABLE_STATISTICS,
on for the bench's own server) deltas around the phase's process (the bench server serves nothing
else; catalog queries count in Handler_read_*), PostgreSQL's pg_stat_user_tables (seq_tup_read, idx_tup_fetch) of `orderdetails`.
Times are the sync call's own (imports and process start excluded). Not a test: nothing passes or
fails here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sync_common import ROOT, TABLE, Source, add_phase_arguments, generate_large, rss_mb  # noqa: E402
from sync_common import phase as query_phase  # noqa: E402

KEY = ("orderNumber", "productCode")
PORTS = {  # two benches at once need two pairs of ports
    "mariadb": int(os.environ.get("BENCH_CDC_MARIADB_PORT", "3317")),
    "postgres": int(os.environ.get("BENCH_CDC_POSTGRES_PORT", "5443")),
}
SOURCES = {
    "mariadb": Source("mariadb", "mysql", "mysql", PORTS["mariadb"], "root", "-"),
    "postgres": Source("postgres", "postgresql", "postgres", PORTS["postgres"], "postgres", "-", "postgres"),
}
QUERY_PHASES = {"full": "ours-duckdb", "incr-first": "incr-first", "incr": "incr", "reconcile": "reconcile"}
BACKLOG_TXN_ROWS = 10_000


# -- in a phase's own process -------------------------------------------------------------------


def cdc_phase(source: Source, name: str, db: str, workdir: str) -> dict:
    sys.path[:0] = [str(ROOT / "include")]
    import MySQLdb  # noqa: F401  (imports are not what is measured)
    import pandas  # noqa: F401  (pyarrow imports it on its first pa.array; the query path's phase has it too)
    import psycopg2
    import pyarrow.parquet  # noqa: F401  (what sync_table imports on first use: not what is measured)
    import pymysqlreplication  # noqa: F401

    import nightshift_core.sync.cdc.mysql_binlog  # noqa: F401
    import nightshift_core.sync.cdc.postgres_logical  # noqa: F401
    import nightshift_core.sync.cdc.values  # noqa: F401
    from nightshift_core.sync.cdc.endpoint import Endpoint
    from nightshift_core.sync.cdc.run import CdcTable, sync_table
    from nightshift_core.warehouse import JobKey, TableRef
    from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

    if source.name == "mariadb":
        import MySQLdb

        conn = MySQLdb.connect(host="127.0.0.1", port=source.port, user=source.login, database=db)
        dialect = "mysql"
    else:
        conn = psycopg2.connect(host="127.0.0.1", port=source.port, user=source.login, dbname=db)
        dialect = "postgres"
    endpoint = Endpoint("127.0.0.1", source.port, source.login, db)
    table = CdcTable(TABLE, KEY, definition=f"bench_{db[-8:]}")
    warehouse = DuckDBWarehouse(Path(workdir) / "cdc.duckdb")
    started = time.perf_counter()
    result = sync_table(conn, dialect, endpoint, table, warehouse, TableRef("bench", TABLE),
                        JobKey("bench_cdc", name, run_id=uuid.uuid4().hex))  # fmt: skip
    seconds = time.perf_counter() - started
    conn.close()
    live = warehouse.query(
        f"SELECT COUNT(*) AS n FROM bench.{TABLE} WHERE _nightshift_deleted_at IS NULL"  # noqa: S608
    ).to_pylist()[0]["n"]
    warehouse.close()
    return {
        "phase": name, "rows": result.staged_rows, "changes": result.changes, "deleted": result.deleted,
        "chunks": result.chunks, "seconds": seconds, "live_rows": live, "peak_rss_mb": rss_mb(),
    }  # fmt: skip


def standin_phase(source: Source, name: str, db: str, workdir: str) -> dict:
    """The stand-in log path: the shipped readers + fold + a DuckDB upsert, position kept with the rows.

    No consistent snapshot (the position is taken before an ordinary read, so the first log run
    replays what the snapshot already has: idempotent per key) and no type mapping (DuckDB casts the
    readers' values to the snapshot's column types): what the log path costs, not a sync to ship.
    """
    sys.path[:0] = [str(ROOT / "include")]
    import connectorx as cx
    import duckdb
    import pyarrow as pa

    from nightshift_core.sync.cdc import fold
    from nightshift_core.sync.cdc.endpoint import Endpoint

    endpoint = Endpoint("127.0.0.1", source.port, source.login, db)
    if source.name == "mariadb":
        from nightshift_core.sync.cdc.mysql_binlog import BinlogPosition, BinlogReader

        reader = BinlogReader(endpoint, [TABLE])
        to_text, from_text = (
            (lambda p: json.dumps(p.to_dict())),
            (lambda t: BinlogPosition.from_dict(json.loads(t))),
        )
    else:
        from nightshift_core.sync.cdc.postgres_logical import LogicalReader

        reader = LogicalReader(endpoint, f"sb_{db[-8:]}", [TABLE])
        to_text, from_text = str, int
    con = duckdb.connect(str(Path(workdir) / "standin.duckdb"))
    started = time.perf_counter()
    staged = changes = deleted = chunks = 0
    if name == "sb-snapshot":
        position = reader.current_position() if source.name == "mariadb" else reader.ensure_slot()
        everything = f"SELECT * FROM {source.table()}"  # noqa: S608
        stream = cx.read_sql(source.url(db), everything, return_type="arrow_stream", batch_size=50_000)
        con.register("incoming", stream)
        con.execute("CREATE OR REPLACE TABLE t AS SELECT *, NULL::TIMESTAMPTZ AS _deleted_at FROM incoming")
        con.execute("CREATE OR REPLACE TABLE pos AS SELECT ?::VARCHAR AS v", [to_text(position)])
        staged = con.execute("SELECT COUNT(*) FROM t").fetchone()[0]
    else:
        types = {c: t for c, t, *_ in con.execute("DESCRIBE t").fetchall()}
        names = [c for c in types if c != "_deleted_at"]
        on = " AND ".join(f't."{k}" = CAST(s."{k}" AS {types[k]})' for k in KEY)
        read = reader.read(from_text(con.execute("SELECT v FROM pos").fetchone()[0]))
        pending: list = []

        def apply(batch: list, end) -> None:
            nonlocal staged, deleted, chunks
            net = fold(batch, {batch[0].table: KEY}) if batch else []
            ups = [f.row for f in net if f.op == "upsert"]
            dels = [
                {**dict(zip(KEY, f.key, strict=True)), "at": f.commit_time} for f in net if f.op == "delete"
            ]
            con.execute("BEGIN")
            if ups:
                up = pa.Table.from_pylist([{c: r.get(c) for c in names} for r in ups])  # noqa: F841
                cast = ", ".join(f'CAST(s."{c}" AS {types[c]})' for c in names)
                con.execute(f"DELETE FROM t USING up AS s WHERE {on}")  # noqa: S608
                con.execute(f"INSERT INTO t SELECT {cast}, NULL FROM up AS s")  # noqa: S608
            if dels:
                gone = pa.Table.from_pylist(dels)  # noqa: F841
                con.execute(f"UPDATE t SET _deleted_at = s.at FROM gone AS s WHERE {on}")  # noqa: S608
            con.execute("UPDATE pos SET v = ?", [to_text(end)])
            con.execute("COMMIT")
            staged, deleted, chunks = staged + len(ups), deleted + len(dels), chunks + 1

        last = None
        for change in read:
            if pending and change.position != last and len(pending) >= 50_000:
                apply(pending, last)
                pending = []
            pending.append(change)
            last = change.position
            changes += 1
        if pending or read.end != from_text(con.execute("SELECT v FROM pos").fetchone()[0]):
            apply(pending, read.end)
        if source.name == "postgres":
            reader.confirm(read.end)
    seconds = time.perf_counter() - started
    live = con.execute("SELECT COUNT(*) FROM t WHERE _deleted_at IS NULL").fetchone()[0]
    con.close()
    reader.close()
    return {"phase": name, "rows": staged, "changes": changes, "deleted": deleted, "chunks": chunks,
            "seconds": seconds, "live_rows": live, "peak_rss_mb": rss_mb()}  # fmt: skip


def child(source: Source, name: str, db: str, workdir: str) -> dict:
    if name.startswith("sb-"):
        return standin_phase(source, name, db, workdir)
    if name.startswith(("cdc-", "backlog-")):
        return cdc_phase(source, name, db, workdir)
    result = query_phase(source, QUERY_PHASES[name], db, workdir)
    result["phase"] = name
    return result


# -- the parent ---------------------------------------------------------------------------------


def services(command: str, folder: str) -> None:
    env = dict(os.environ, NIGHTSHIFT_CDC_DIR=folder, NIGHTSHIFT_CDC_MARIADB_PORT=str(PORTS["mariadb"]),
               NIGHTSHIFT_CDC_POSTGRES_PORT=str(PORTS["postgres"]))  # fmt: skip
    out = subprocess.run([str(ROOT / "scripts" / "cdc_services.sh"), command], env=env, text=True,
                         capture_output=True, check=False)  # fmt: skip
    print(out.stdout.strip())
    if command == "start" and out.returncode != 0:
        raise SystemExit(f"could not start the bench's servers:\n{out.stderr}")


def admin(source: Source, db: str | None = None):
    if source.name == "mariadb":
        import MySQLdb

        return MySQLdb.connect(host="127.0.0.1", port=source.port, user=source.login, database=db or "",
                               autocommit=True)  # fmt: skip
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=source.port, user=source.login, dbname=db or "postgres")
    conn.autocommit = True
    return conn


def counters(source: Source, db: str) -> dict[str, int]:
    """Rows the server has read so far (see the module docstring)."""
    conn = admin(source, db)
    try:
        cur = conn.cursor()
        if source.name == "mariadb":
            cur.execute("SHOW GLOBAL STATUS LIKE 'Handler_read%'")
            handler = sum(int(v) for _, v in cur.fetchall())
            # Per-table rows read (userstat, turned on for the bench's own server at its start).
            cur.execute("SELECT COALESCE(SUM(ROWS_READ), 0) FROM information_schema.TABLE_STATISTICS "
                        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", [db, TABLE])  # fmt: skip
            return {"handler_read": handler, "table_rows_read": int(cur.fetchone()[0])}
        cur.execute(
            "SELECT COALESCE(seq_tup_read, 0), COALESCE(idx_tup_fetch, 0), COALESCE(seq_scan, 0), "
            "COALESCE(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = %s",
            [TABLE],
        )
        seq_tup, idx_tup, seq_scan, idx_scan = cur.fetchone()
        return {"seq_tup_read": seq_tup, "idx_tup_fetch": idx_tup, "seq_scan": seq_scan, "idx_scan": idx_scan}
    finally:
        conn.close()


def run(script: str, source: Source, name: str, db: str, workdir: str) -> dict | None:
    before = counters(source, db)
    cmd = [sys.executable, script, "--source", source.name, "--phase", name, "--db", db, "--workdir", workdir]
    wall = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - wall
    if out.returncode != 0:
        print(f"  {name}: FAILED\n{out.stderr[-3000:]}")
        return None
    time.sleep(0.6 if source.name == "postgres" else 0)  # ended backends' table statistics reach the view
    after = counters(source, db)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["scanned"] = {k: after[k] - before[k] for k in after}
    result["process_seconds"] = wall
    print(f"  {name:14} {result['seconds']:8.2f}s  rows {result.get('rows', 0):>10,}  "
          f"changes {result.get('changes', '-')!s:>8}  deleted {result.get('deleted', '-')!s:>6}  "
          f"RSS {result['peak_rss_mb']:6.0f} MB  scanned {result['scanned']}")  # fmt: skip
    return result


def source_rows(source: Source, db: str) -> int:
    conn = admin(source, db)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT COUNT(*) FROM {source.table()}")  # noqa: S608
        return int(cur.fetchone()[0])
    finally:
        conn.close()


def update_backlog(source: Source, db: str, rows: int) -> None:
    """``rows`` updates of orderdetails rows spread over the table, in 10,000-row transactions."""
    conn = admin(source, db)
    cur = conn.cursor()
    q = (lambda c: c) if source.name == "mariadb" else (lambda c: f'"{c}"')
    cur.execute(f"SELECT MIN({q('orderNumber')}), MAX({q('orderNumber')}), COUNT(*) FROM {source.table()}")  # noqa: S608
    lo, hi, total = cur.fetchone()
    done, step = 0, max(1, int((hi - lo + 1) * BACKLOG_TXN_ROWS / total))
    start = lo
    while done < rows and start <= hi:
        cur.execute(
            f"UPDATE {source.table()} SET {q('quantityOrdered')} = {q('quantityOrdered')} + 1 "  # noqa: S608
            f"WHERE {q('orderNumber')} >= %s AND {q('orderNumber')} < %s",
            [start, start + step],
        )
        done += cur.rowcount
        start += step
        if start > hi and done < rows:
            start = lo  # around again: the same rows change again (still one change each in the log)
    conn.close()
    print(f"  backlog: {done:,} rows updated in transactions of about {BACKLOG_TXN_ROWS:,}")


def bench_size(
    script: str,
    source: Source,
    rows: int,
    base_rows: int,
    backlog: list[int],
    paths: tuple[str, ...] = ("cdc", "sb"),
) -> dict:
    sys.path[:0] = [str(ROOT / "include")]
    from nightshift_core.sample import classicmodels

    db = f"ns_bench_{uuid.uuid4().hex[:8]}"
    q = "`" if source.name == "mariadb" else '"'
    admin(source).cursor().execute(f"CREATE DATABASE {q}{db}{q}")
    if source.name == "mariadb":  # per-table read counters, on the bench's own server only
        admin(source).cursor().execute("SET GLOBAL userstat = 1")
    results: dict[str, dict | None] = {}
    try:
        started = time.perf_counter()
        conn, dialect = classicmodels.connect(source.url(db))
        counts = generate_large(conn, dialect, rows, seed=1)
        print(f"\n{source.name} on 127.0.0.1:{source.port}: {counts[TABLE]:,} rows in {TABLE} "
              f"(generated in {time.perf_counter() - started:.0f}s)")  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="bench-cdc-") as workdir:
            for name in ("full", "incr-first"):
                results[name] = run(script, source, name, db, workdir)
            for p in paths:
                for name in (f"{p}-snapshot", f"{p}-nochange"):
                    results[name] = run(script, source, name, db, workdir)
            for p in paths:
                results[f"{p}-nochange-2"] = run(script, source, f"{p}-nochange", db, workdir)
            # The same number of changed rows at every size: 1 % of the smallest table.
            changed = classicmodels.mutate(conn, dialect, fraction=0.005 * base_rows / counts[TABLE], seed=2,
                                           now=dt.datetime.now(dt.UTC))  # fmt: skip
            conn.commit()
            print(f"  mutated: {changed}")
            results["mutation"] = {"counts": changed}  # type: ignore[assignment]
            for name in (*(f"{p}-log" for p in paths), "incr", "reconcile"):
                results[name] = run(script, source, name, db, workdir)
            results["source_rows"] = {"rows": source_rows(source, db)}  # type: ignore[assignment]
            for n in backlog:
                update_backlog(source, db, n)
                for path in ({"cdc": "backlog", "sb": "sb-backlog"}[p] for p in paths):
                    results[f"{path}-{n}"] = run(script, source, f"{path}-{n}", db, workdir)
        conn.close()
    finally:
        if source.name == "postgres":  # the slot first: a slot keeps its database from being dropped
            c = admin(source)
            c.cursor().execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                               "WHERE database = %s", [db])  # fmt: skip
            c.close()
        force = "" if source.name == "mariadb" else " WITH (FORCE)"
        admin(source).cursor().execute(f"DROP DATABASE IF EXISTS {q}{db}{q}{force}")
    return results


def report(all_results: dict[tuple[str, int], dict]) -> None:
    """One row per source, size and log path: sync_table (the shipped one) and the stand-in."""
    print(
        "\n| source | rows | log path | full | query incr | query incr + reconcile | log run | log / incr "
        "| no-change log runs | log run: source rows scanned | deletes captured (log / incr) | live rows = source |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (name, rows), r in all_results.items():

        def s(phase: str, r: dict = r) -> str:
            return f"{r[phase]['seconds']:.2f}s" if r.get(phase) else "failed"

        incr, deleted = r.get("incr"), r["mutation"]["counts"].get("orderdetails_deleted")
        for label, p in (("sync_table", "cdc"), ("stand-in", "sb")):
            if f"{p}-snapshot" not in r:
                continue
            log = r.get(f"{p}-log")
            ratio = f"{log['seconds'] / incr['seconds']:.2f}" if log and incr else "-"
            nochange = " / ".join(s(x) for x in (f"{p}-nochange", f"{p}-nochange-2"))
            scanned = ", ".join(f"{k} {v:,}" for k, v in (log or {}).get("scanned", {}).items()) or "-"
            live_ok = "yes" if log and log.get("live_rows") == r["source_rows"]["rows"] else "NO"
            print(f"| {name} | {rows:,} | {label} | {s('full')} | {s('incr')} ({(incr or {}).get('rows', 0):,} rows) "
                  f"| {s('reconcile')} | {s(p + '-log')} ({(log or {}).get('changes', 0):,} changes) | {ratio} "
                  f"| {nochange} | {scanned} | {(log or {}).get('deleted', '-')} / 0 of {deleted} | {live_ok} |")  # fmt: skip
    for (name, _rows), r in all_results.items():
        for phase, v in r.items():
            if phase.startswith(("backlog-", "sb-backlog-")) and v:
                print(f"  {name} {phase}: {v['changes']:,} changes drained in {v['seconds']:.1f}s, {v['chunks']} "
                      f"commits, peak RSS {v['peak_rss_mb']:.0f} MB")  # fmt: skip
    by_source: dict[str, list[tuple[int, dict]]] = {}
    for (name, rows), r in all_results.items():
        by_source.setdefault(name, []).append((rows, r))
    for name, sizes in by_source.items():
        if len(sizes) > 1:
            for phase in (p for p in ("cdc-log", "sb-log", "incr") if any(r.get(p) for _, r in sizes)):
                shown = " -> ".join(f"{(r.get(phase) or {}).get('seconds', float('nan')):.2f}s at {rows:,}"
                                    for rows, r in sizes)  # fmt: skip
                print(f"  {name} {phase} with the same changes as the table grows: {shown}")


def targets(all_results: dict[tuple[str, int], dict]) -> None:
    """Issue 30's targets, each marked met or not met from this run's numbers alone."""

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "NOT met")

    print("\n| source | target | this run | |")
    print("|---|---|---|---|")
    by_source: dict[str, list[tuple[int, dict]]] = {}
    for (name, rows), r in all_results.items():
        by_source.setdefault(name, []).append((rows, r))
    for name, sizes in by_source.items():
        for rows, r in sizes:
            log, incr = r.get("cdc-log"), r.get("incr")
            if log and incr:
                shown = f"{rows:,} rows: log {log['seconds']:.2f}s, query incremental {incr['seconds']:.2f}s"
                print(f"| {name} | log run no slower than the query path's incremental run | {shown} "
                      f"| {verdict(log['seconds'] <= incr['seconds'])} |")  # fmt: skip
            if log:
                scanned = log.get("scanned", {})
                rows_read = (
                    scanned.get("table_rows_read", 0)
                    + scanned.get("seq_tup_read", 0)
                    + scanned.get("idx_tup_fetch", 0)
                )
                shown = ", ".join(f"{k} {v:,}" for k, v in scanned.items())
                print(f"| {name} | 0 source rows scanned by the log run | {rows:,} rows: {shown} "
                      f"| {verdict(rows_read == 0)} |")  # fmt: skip
                deleted = r["mutation"]["counts"].get("orderdetails_deleted")
                print(f"| {name} | deletes captured with no reconciliation pass | {rows:,} rows: {log.get('deleted')} "
                      f"of {deleted} (query incremental: 0) | {verdict(log.get('deleted') == deleted)} |")  # fmt: skip
            idle = [r[p]["seconds"] for p in ("cdc-nochange", "cdc-nochange-2") if r.get(p)]
            if idle:
                print(f"| {name} | a run with nothing changed under 0.2 s | {rows:,} rows: "
                      f"{' / '.join(f'{x:.2f}s' for x in idle)} | {verdict(max(idle) < 0.2)} |")  # fmt: skip
        if len(sizes) > 1:
            (small, a), (big, b) = sizes[0], sizes[-1]
            for phase, label, target in (("cdc-log", "log run", True), ("incr", "query incremental", False)):
                if a.get(phase) and b.get(phase):
                    change = b[phase]["seconds"] / a[phase]["seconds"] - 1
                    shown = (f"{a[phase]['seconds']:.2f}s at {small:,} -> {b[phase]['seconds']:.2f}s at {big:,} "
                             f"({change:+.0%})")  # fmt: skip
                    mark = verdict(abs(change) <= 0.2) if target else "(shown)"
                    print(f"| {name} | {label} within ±20 % at {big // small}x the rows, same changes "
                          f"| {shown} | {mark} |")  # fmt: skip
        drains = sorted((int(k.split("-")[1]), v) for _, r in sizes for k, v in r.items()
                        if k.startswith("backlog-") and v)  # fmt: skip
        if len(drains) > 1:
            (n1, v1), (n2, v2) = drains[0], drains[-1]
            change = v2["peak_rss_mb"] / v1["peak_rss_mb"] - 1
            print(f"| {name} | backlog of {n2:,} drains in RSS flat against {n1:,} | {v1['peak_rss_mb']:.0f} MB -> "
                  f"{v2['peak_rss_mb']:.0f} MB ({change:+.0%}), {v2['changes']:,} changes in {v2['seconds']:.1f}s "
                  f"| {verdict(abs(change) <= 0.15)} (±15 %) |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 8_000_000])
    parser.add_argument("--sources", nargs="+", default=["mariadb", "postgres"], choices=list(SOURCES))
    parser.add_argument("--backlog", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--changes-of", type=int, help="change 1 %% of this many rows at every size "
                        "(default: the smallest --rows), to compare with a run at another size")  # fmt: skip
    parser.add_argument("--paths", nargs="+", default=["cdc", "sb"], choices=["cdc", "sb"],
                        help="log paths: cdc (sync_table), sb (the stand-in)")  # fmt: skip
    parser.add_argument("--source", help=argparse.SUPPRESS)
    add_phase_arguments(parser)
    args = parser.parse_args()
    if args.phase:
        os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
        print(json.dumps(child(SOURCES[args.source], args.phase, args.db, args.workdir)))
        return
    folder = tempfile.mkdtemp(prefix="nightshift-bench-cdc-")
    os.chmod(folder, 0o755)  # the servers run as their own system users under it when we are root
    all_results: dict[tuple[str, int], dict] = {}
    try:
        services("start", folder)
        for name in args.sources:
            for i, rows in enumerate(sorted(args.rows)):
                backlog = args.backlog if i == 0 else []
                base = args.changes_of or min(args.rows)
                all_results[(name, rows)] = bench_size(
                    __file__, SOURCES[name], rows, base, backlog, tuple(args.paths)
                )
                report(all_results)
                targets(all_results)
                # after every size: a run stopped later keeps what it measured
                Path(folder, "results.json").write_text(json.dumps(
                    {f"{k[0]}@{k[1]}": v for k, v in all_results.items()}, default=str, indent=1))  # fmt: skip
    finally:
        services("stop", folder)
        print(f"results: {folder}/results.json (servers stopped; remove the folder when done)")


if __name__ == "__main__":
    main()
