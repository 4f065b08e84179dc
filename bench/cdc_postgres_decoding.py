"""How to read PostgreSQL's logical decoding for change capture: three ways, the same changes.

    .venv/bin/python bench/cdc_postgres_decoding.py [--rows 100000] [--port 5433]

Needs the private PostgreSQL with wal_level=logical (scripts/cdc_services.sh). A scratch database
gets a table of ``--rows`` rows; one transaction updates all of them, another deletes a tenth. Each
way then reads those changes up to the LSN current at its start, each on its own slot, best of 3:

- ``pgoutput-sql``: the reader we ship: pgoutput through pg_logical_slot_peek_binary_changes,
  decoded to row dicts of text, as the log run reads them (`postgres_logical.LogicalReader.read`);
  ``pgoutput-sql (REV)``: the same with the reader module as it is at git revision REV
  (``--baseline``, default HEAD), alternating with the working tree's, for a before/after in one run;
- ``pgoutput-sql-fetch``: the same SQL call, messages fetched only (the rest is our decoding);
- ``test_decoding-sql``: the text plugin through pg_logical_slot_peek_changes, fetched only (its text
  would still need parsing, so this is a floor for it);
- ``pgoutput-stream``: pgoutput over the replication protocol (psycopg2 LogicalReplicationConnection),
  messages fetched only, stopping at the bound.

Then the log run's next steps on the same changes, read as text as the run reads them: ``fold`` (the
per-key fold, ``changes.Folder``) and ``values``: the folded rows turned into the query path's Arrow
values (``values.postgres_batch``), alternating with ``values (REV)``, values.py at ``--baseline``.

wal2json is not measured: it is not installed with PostgreSQL (a separate package). Not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import psycopg2.extras

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include")]

from nightshift_core.sync.cdc.endpoint import Endpoint  # noqa: E402
from nightshift_core.sync.cdc.postgres_logical import LogicalReader, format_lsn  # noqa: E402


def module_at(rev: str, name: str):
    """nightshift_core.sync.cdc.``name`` as it is at git revision ``rev``, as a module of its own."""
    path = f"include/nightshift_core/sync/cdc/{name}.py"
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    spec = importlib.util.spec_from_loader(f"{name}_{rev.replace('~', '_')}", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(text, f"{rev}:{name}.py", "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def best(fn, runs: int = 3) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - started)
    return min(times), count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--port", type=int, default=5433)
    parser.add_argument("--baseline", default="HEAD", help="git revision of the reader to compare with")
    args = parser.parse_args()
    baseline = module_at(args.baseline, "postgres_logical")
    baseline_values = module_at(args.baseline, "values")
    db = f"ns_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host="127.0.0.1", port=args.port, user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{db}"')
    conn = psycopg2.connect(host="127.0.0.1", port=args.port, user="postgres", dbname=db)
    conn.autocommit = True
    cur = conn.cursor()
    reader = LogicalReader(Endpoint("127.0.0.1", args.port, "postgres", db), "bench", ["t"], text=True)
    try:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT, n NUMERIC(12, 2))")
        cur.execute("INSERT INTO t SELECT g, 'row ' || g, g / 7.0 FROM generate_series(1, %s) g", [args.rows])
        start = reader.ensure_slot()
        cur.execute("SELECT pg_create_logical_replication_slot('bench_text', 'test_decoding')")
        cur.execute("UPDATE t SET v = v || '!', n = n + 1")
        cur.execute("DELETE FROM t WHERE id % 10 = 0")
        upto = reader.current_position()
        last_commit = max(c.position for c in reader.read(start))

        def pgoutput_sql() -> int:
            return sum(1 for _ in reader.read(start))

        old = baseline.LogicalReader(
            Endpoint("127.0.0.1", args.port, "postgres", db), "bench", ["t"], text=True
        )

        def pgoutput_sql_baseline() -> int:
            return sum(1 for _ in old.read(start))

        def fetch(query: str, params: list, is_change) -> int:
            with conn.cursor(name="fetch") as c:
                conn.autocommit = False
                c.itersize = 2000
                c.execute(query, params)
                n = sum(1 for row in c if is_change(row[0]))
            conn.rollback()
            conn.autocommit = True
            return n

        def pgoutput_sql_fetch() -> int:
            return fetch("SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, NULL, "
                         "'proto_version', '1', 'publication_names', %s)", [reader.slot, format_lsn(upto), reader.slot],
                         lambda data: bytes(data[:1]) in (b"I", b"U", b"D"))  # fmt: skip

        def test_decoding_sql() -> int:
            return fetch("SELECT data FROM pg_logical_slot_peek_changes('bench_text', %s::pg_lsn, NULL)",
                         [format_lsn(upto)], lambda data: data.startswith("table "))  # fmt: skip

        def pgoutput_stream() -> int:
            rconn = psycopg2.connect(host="127.0.0.1", port=args.port, user="postgres", dbname=db,
                                     connection_factory=psycopg2.extras.LogicalReplicationConnection)  # fmt: skip
            rcur = rconn.cursor()
            rcur.start_replication(slot_name=reader.slot, decode=False, start_lsn=start,
                                   options={"proto_version": "1", "publication_names": reader.slot})  # fmt: skip
            n = 0
            while True:
                msg = rcur.read_message()
                if msg is None:
                    time.sleep(0.001)
                    continue
                if msg.payload[:1] in (b"I", b"U", b"D"):
                    n += 1
                if msg.payload[:1] == b"C" and struct.unpack_from("!q", msg.payload, 10)[0] >= last_commit:
                    break  # the commit of the last transaction before the bound
            rconn.close()  # no feedback sent: the slot stays where it was, as for the peek
            return n

        print(f"{args.rows:,} rows updated in one transaction, {args.rows // 10:,} deleted in another")
        print(f"{'way':<24}{'seconds':>10}{'changes':>10}{'changes/s':>12}")
        for name, fn in ((f"pgoutput-sql ({args.baseline})", pgoutput_sql_baseline), ("pgoutput-sql", pgoutput_sql),
                         (f"pgoutput-sql ({args.baseline})", pgoutput_sql_baseline), ("pgoutput-sql", pgoutput_sql),
                         ("pgoutput-sql-fetch", pgoutput_sql_fetch),
                         ("test_decoding-sql", test_decoding_sql),
                         ("pgoutput-stream", pgoutput_stream)):  # fmt: skip
            seconds, n = best(fn)
            print(f"{name:<24}{seconds:>10.2f}{n:>10,}{n / seconds:>12,.0f}")
        old.close()
        steps(Endpoint("127.0.0.1", args.port, "postgres", db), start, args.baseline, baseline_values)
    finally:
        cur.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'bench_text'"
        )
        reader.drop()
        reader.close()
        conn.close()
        admin.cursor().execute(f'DROP DATABASE "{db}" WITH (FORCE)')
        admin.close()


def steps(endpoint: Endpoint, start: int, rev: str, baseline_values) -> None:
    """The log run's fold and value conversion of the same changes, read as text (see the docstring)."""
    from nightshift_core.sync import source
    from nightshift_core.sync.cdc import values
    from nightshift_core.sync.cdc.changes import Folder

    conn = psycopg2.connect(
        host=endpoint.host, port=endpoint.port, user=endpoint.user, dbname=endpoint.database
    )
    source.prepare_session(conn, "postgres")
    columns = source.describe(conn, "postgres", "t")
    conn.commit()
    with LogicalReader(endpoint, "bench", ["t"], text=True) as reader:
        changes = list(reader.read(start))
    rows: list = []

    def fold() -> int:
        folder = Folder({}, default=("id",))
        for change in changes:
            folder.add(change)
        rows[:] = [f.row if f.op == "upsert" else {"id": f.key[0]} for f in folder.take()]
        return len(changes)

    def convert(module) -> int:
        arrays, _missing = module.postgres_batch(conn, rows, columns, "t")
        conn.rollback()
        return len(arrays[0])

    for name, fn in (("fold", fold), (f"values ({rev})", lambda: convert(baseline_values)),
                     ("values", lambda: convert(values)), (f"values ({rev})", lambda: convert(baseline_values)),
                     ("values", lambda: convert(values))):  # fmt: skip
        seconds, n = best(fn)
        print(f"{name:<24}{seconds:>10.2f}{n:>10,}{n / seconds:>12,.0f}")
    conn.close()


if __name__ == "__main__":
    main()
