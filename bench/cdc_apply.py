"""DuckDB's apply of one change-capture chunk: its cost against the size of the target.

    .venv/bin/python bench/cdc_apply.py [--rows 2000000 8000000] [--changes 20000] [--baseline REV]
                                        [--repeat 3] [--paths apply merge]

An `orderdetails`-shaped target (orderNumber, productCode, quantityOrdered, priceEach,
orderLineNumber, updatedAt, _nightshift_deleted_at) of N rows is made once per size; each try copies
it and applies the same staged chunk through `DuckDBWarehouse.apply_changes` (attach, transaction,
position, detach and its checkpoint included): a third updates rows spread over the table, a third
inserts new keys, a third soft-deletes (the key alone, every other column kept; --deletes sets that
share, the rest split between updates and inserts). The working tree's
engine and the engine at git revision REV (default HEAD) alternate in the same run, and each result
is checked equal to the other's. Medians of --repeat tries. Not a test: nothing passes or fails here.

--paths merge times the query path's incremental publish instead (`publish(..., "merge", key=...)`)
of the same chunk as plain rows: the updated and soft-deleted keys and the new ones, each a whole row.

Why the apply still grows with the target when the changes are spread over it (DuckDB 2.0, measured
step by step): the read scans the first key column of every row group and reads the whole rows that
share it with a staged key; the DELETE by rowid scans the rowids; and the delete, its commit and the
detach's checkpoint each cost per 2,048-row vector holding a deleted row (a checkpoint after 13,000
deletes: 112 ms spread over 8M rows, 40 ms over 2M, 16 ms when they sit in 7 vectors; replaying them
from the WAL at the next attach instead costs about as much). A UNIQUE index on the key would make the
lookup flat but costs far more than it saves: 10 s to build over 8M rows, the file 53 -> 443 MB, the
chunk's INSERT ... ON CONFLICT 0.8 s and its commit 0.8 s; an UPDATE in place commits in 0.7-3 s (it
rewrites the columns).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include")]

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute  # noqa: E402, F401 - pa.compute

from nightshift_core.warehouse import JobKey, TableRef  # noqa: E402
from nightshift_core.warehouse.base import CHANGE_OP, CHANGE_UNCHANGED, LOG_CURSOR, SyncState  # noqa: E402
from nightshift_core.warehouse.types import DELETED_COLUMN  # noqa: E402

TARGET = TableRef("bench", "orderdetails")
KEY = ["orderNumber", "productCode"]
NON_KEY = ["quantityOrdered", "priceEach", "orderLineNumber", "updatedAt"]


def engine_at(rev: str) -> types.ModuleType:
    """nightshift_core.warehouse.duckdb_engine as it is at git revision ``rev``, as a module of its own."""
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:include/nightshift_core/warehouse/duckdb_engine.py"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    spec = importlib.util.spec_from_loader(f"duckdb_engine_{rev.replace('~', '_')}", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(text, f"{rev}:duckdb_engine.py", "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def make_target(engine, path: Path, rows: int) -> None:
    """A target as the snapshot leaves it: loaded by one replace publish (so its types and comments
    are the engine's own), ordered by the key as the source's primary key reads it."""
    wh = engine.DuckDBWarehouse(path)
    con = duckdb.connect()
    table = con.sql(
        f"SELECT 10000 + i // 10 AS orderNumber, 'S' || lpad(CAST(i % 10 AS VARCHAR), 2, '0') || '_' "  # noqa: S608
        f"|| CAST(i % 7919 AS VARCHAR) AS productCode, CAST(20 + i % 50 AS BIGINT) AS quantityOrdered, "
        f"CAST((i % 20000) / 100 AS DECIMAL(38, 9)) AS priceEach, CAST(i % 10 + 1 AS BIGINT) AS orderLineNumber, "
        f"TIMESTAMP '2025-01-01' + to_microseconds(i) AS updatedAt, NULL::TIMESTAMPTZ AS {DELETED_COLUMN} "
        f"FROM range({rows}) AS r(i)"
    ).to_arrow_table()
    table = table.cast(pa.schema([f if f.name != DELETED_COLUMN else pa.field(DELETED_COLUMN, pa.timestamp("us", tz="UTC"))
                                  for f in table.schema]))  # fmt: skip
    staged = wh.stage(
        JobKey("bench", "snapshot", run_id="1"), TARGET, table.to_batches(100_000), table.schema
    )
    wh.publish(staged, "replace", state=SyncState(LOG_CURSOR, position='{"n": 0}', full_load=True))


def chunk(rows: int, changes: int, seed: int, deletes_share: float = 1 / 3) -> pa.RecordBatch:
    """``changes`` folded changes spread over the table: updates, inserts (new keys) and soft deletes."""
    import random

    rng = random.Random(seed)
    n_deletes = round(changes * deletes_share)
    n_updates = (changes - n_deletes) // 2
    picked = rng.sample(range(rows), n_updates + n_deletes)
    updates, deletes = picked[:n_updates], picked[n_updates:]
    inserts = changes - len(updates) - len(deletes)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    out: dict[str, list] = {c: [] for c in [*KEY, *NON_KEY, DELETED_COLUMN, CHANGE_OP, CHANGE_UNCHANGED]}

    def add(i: int, order: int, code: str, deleted: bool) -> None:
        out["orderNumber"].append(order)
        out["productCode"].append(code)
        for c, v in zip(NON_KEY, (99, 1.5, 1, dt.datetime(2026, 1, 1, 0, 0, i % 60)), strict=True):
            out[c].append(None if deleted else v)
        out[DELETED_COLUMN].append(now if deleted else None)
        out[CHANGE_OP].append("upsert")
        out[CHANGE_UNCHANGED].append(NON_KEY if deleted else [])

    for i in updates:
        add(i, 10000 + i // 10, f"S{i % 10:02d}_{i % 7919}", False)
    for i in deletes:
        add(i, 10000 + i // 10, f"S{i % 10:02d}_{i % 7919}", True)
    for j in range(inserts):
        add(j, 10000 + rows // 10 + 1 + j, "NEW", False)
    types_ = {"orderNumber": pa.int64(), "productCode": pa.string(), "quantityOrdered": pa.int64(),
              "priceEach": pa.decimal128(38, 9), "orderLineNumber": pa.int64(), "updatedAt": pa.timestamp("us"),
              DELETED_COLUMN: pa.timestamp("us", tz="UTC"), CHANGE_OP: pa.string(),
              CHANGE_UNCHANGED: pa.list_(pa.string())}  # fmt: skip
    from decimal import Decimal

    out["priceEach"] = [None if v is None else Decimal(str(v)) for v in out["priceEach"]]
    return pa.RecordBatch.from_pydict({c: pa.array(v, types_[c]) for c, v in out.items()})


def as_rows(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The chunk as the query path stages it: whole rows, no change columns (deletes become updates)."""
    table = pa.Table.from_batches([batch]).drop_columns([CHANGE_OP, CHANGE_UNCHANGED, DELETED_COLUMN])
    filled = {c: pa.compute.fill_null(table[c], table[c].drop_null()[0]) for c in NON_KEY}
    for c, column in filled.items():
        table = table.set_column(table.schema.get_field_index(c), c, column)
    return table.combine_chunks().to_batches()[0]


def apply_once(
    engine, base: Path, work: Path, batch: pa.RecordBatch, n: int, path_: str
) -> tuple[float, list]:
    path = work / f"try{n}.duckdb"
    shutil.copy(base, path)
    wh = engine.DuckDBWarehouse(path)
    staged = wh.stage(JobKey("bench", f"chunk{n}", run_id=str(n)), TARGET, [batch], batch.schema)
    started = time.perf_counter()
    if path_ == "apply":
        wh.apply_changes(staged, KEY, state=SyncState(LOG_CURSOR, position=f'{{"n": {n}}}'))
    else:
        wh.publish(staged, "merge", key=KEY, state=SyncState(LOG_CURSOR, position=f'{{"n": {n}}}'))
    seconds = time.perf_counter() - started
    with wh.connect() as con:
        digest = con.execute(
            "SELECT COUNT(*), COUNT(_nightshift_deleted_at), SUM(hash(COLUMNS(*))) FROM bench.orderdetails"
        ).fetchall()
        digest += con.execute(
            "SELECT position FROM _nightshift.sync_state ORDER BY published_at DESC LIMIT 1"
        ).fetchall()
    path.unlink()
    return seconds, digest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 8_000_000])
    parser.add_argument("--changes", type=int, default=20_000)
    parser.add_argument("--deletes", type=float, default=1 / 3, help="the soft deletes' share of the changes "
                        "(the rest: half updates, half inserts); bench/cdc_sync.py's mutation has about 0.08")  # fmt: skip
    parser.add_argument("--baseline", default="HEAD", help="git revision of the engine to compare with")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--paths", nargs="+", choices=["apply", "merge"], default=["apply"])
    args = parser.parse_args()
    import nightshift_core.warehouse.duckdb_engine as current

    engines = {args.baseline: engine_at(args.baseline), "working tree": current}
    print(
        f"duckdb {duckdb.__version__}; {args.changes:,} changes a chunk, {args.deletes:.0%} of them soft deletes"
    )
    with tempfile.TemporaryDirectory(prefix="bench-cdc-apply-") as tmp:
        work = Path(tmp)
        for rows in args.rows:
            base = work / f"base{rows}.duckdb"
            make_target(current, base, rows)
            changes = chunk(rows, args.changes, seed=rows, deletes_share=args.deletes)
            for path_ in args.paths:
                batch = changes if path_ == "apply" else as_rows(changes)
                times: dict[str, list[float]] = {name: [] for name in engines}
                digests: dict[str, list] = {}
                for n in range(args.repeat):
                    for name, engine in engines.items():
                        seconds, digests[name] = apply_once(engine, base, work, batch, n, path_)
                        times[name].append(seconds)
                same = len({repr(d) for d in digests.values()}) == 1
                shown = "; ".join(f"{name} {statistics.median(t):.3f}s ({' / '.join(f'{x:.3f}' for x in t)})"
                                  for name, t in times.items())  # fmt: skip
                print(
                    f"{rows:>10,} rows, {path_}: {shown}; same result: {'yes' if same else 'NO ' + repr(digests)}"
                )
            base.unlink()


if __name__ == "__main__":
    main()
