"""Where a change-capture backlog drain's memory goes, chunk by chunk.

    .venv/bin/python bench/cdc_backlog_memory.py [--sources mariadb postgres] [--rows 2000000]
        [--backlog 100000 1000000] [--variants base all] [--repeat 3] [--trace]

On the log-enabled servers of scripts/cdc_services.sh (MariaDB with the row-based binlog on
127.0.0.1:3307, PostgreSQL with wal_level=logical on 5433; BENCH_MEMORY_MARIADB_PORT and
BENCH_MEMORY_POSTGRES_PORT move them): a database ``memtrial_<hex>`` with an orderdetails-shaped
table of ``--rows`` rows (key orderNumber, productCode), dropped at the end with its slot. A snapshot
run, then per backlog size: N rows updated in 10,000-row transactions (bench/cdc_sync.py's backlog),
and one log-path run (nightshift_core.sync.cdc.run.sync_table, 50,000 changes a chunk) drains them in
a process of its own per variant (``--repeat`` times each, in turn), each from a copy of the
warehouse taken before the drain (the PostgreSQL slot is confirmed once all of them ran), so every
drain reads the same changes. Per chunk the drain prints the peak resident memory of each stage
(read and fold, the Arrow batch, staging, the warehouse's apply: VmHWM, reset between stages), and
after the chunk: resident memory, glibc malloc over all its arenas (malloc_info), Arrow's pool,
pymalloc's arenas, the warehouse file's size and the resident memory by kind of mapping; with
``--trace``, what tracemalloc holds (current, peak, and the lines that grew most from the second
chunk to the last). DuckDB's bundled jemalloc has no readout here: it is what the others leave.
The summary: median peak RSS per source, variant and backlog, and the change from the smallest.

Variants, applied in the drain's process without changing the package:

  base      as shipped
  trim      glibc's malloc_trim(0) after each chunk (free heap pages back to the system)
  arena2    MALLOC_ARENA_MAX=2 (fewer glibc arenas for DuckDB's threads)
  threads1  DuckDB with one thread (SET threads = 1)
  flush     DuckDB flushes its allocator after any task that peaked over 8 MB (allocator_flush_threshold)
  arrow-system   Arrow allocates through glibc malloc, not its bundled mimalloc (ARROW_DEFAULT_MEMORY_POOL)
  arrow-release  Arrow's pool hands its unused memory back after each chunk (MemoryPool.release_unused)
  release   both after each chunk: arrow-release and trim
  pymalloc-off   Python objects through glibc malloc, not pymalloc's arenas (PYTHONMALLOC=malloc)
  glibc-trim     everything through glibc malloc (pymalloc-off and arrow-system), trimmed after each chunk
  duckdb-bg      DuckDB's bundled jemalloc purges freed memory from background threads
                 (allocator_background_threads) and flushes after tasks over 8 MB
  all            glibc-trim and duckdb-bg
  all-1thread    all, with DuckDB on one thread
  in-code-1thread  in-code, with DuckDB on one thread
  in-code        what a run can do without an environment variable: release and duckdb-bg
  in-code-system in-code, with Arrow on the system allocator (pyarrow.set_memory_pool)
  instance  a new DuckDB instance after each chunk (the one the chunk's apply ran in is closed)
  memlimit  DuckDB's memory_limit at BENCH_MEMORY_LIMIT (default 128MB) instead of 80 % of the RAM

Not a test: nothing passes or fails here; read the per-chunk lines and the summary.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = "orderdetails"
KEY = ("orderNumber", "productCode")
LINES_PER_ORDER = 20
PORTS = {
    "mariadb": int(os.environ.get("BENCH_MEMORY_MARIADB_PORT", "3307")),
    "postgres": int(os.environ.get("BENCH_MEMORY_POSTGRES_PORT", "5433")),
}
LOGIN = {"mariadb": "root", "postgres": "postgres"}
# What each variant does in the drain's process (ENV: its environment, set before it starts).
STEPS: dict[str, tuple[str, ...]] = {
    "base": (),
    "trim": ("trim",),
    "arena2": (),
    "threads1": ("threads1",),
    "flush": ("flush",),
    "arrow-system": (),
    "arrow-release": ("arrow-release",),
    "release": ("arrow-release", "trim"),
    "pymalloc-off": (),
    "glibc-trim": ("trim",),
    "duckdb-bg": ("flush", "bg"),
    "all": ("trim", "flush", "bg"),
    "in-code": ("arrow-release", "trim", "flush", "bg"),
    "in-code-system": ("arrow-system", "arrow-release", "trim", "flush", "bg"),
    "all-1thread": ("trim", "flush", "bg", "threads1"),
    "in-code-1thread": ("arrow-release", "trim", "flush", "bg", "threads1"),
    "instance": ("instance",),
    "memlimit": ("memlimit",),
}
VARIANTS = tuple(STEPS)
ENV = {
    "arena2": {"MALLOC_ARENA_MAX": "2"},
    "arrow-system": {"ARROW_DEFAULT_MEMORY_POOL": "system"},
    "pymalloc-off": {"PYTHONMALLOC": "malloc"},
    "glibc-trim": {"PYTHONMALLOC": "malloc", "ARROW_DEFAULT_MEMORY_POOL": "system"},
    "all": {"PYTHONMALLOC": "malloc", "ARROW_DEFAULT_MEMORY_POOL": "system"},
    "all-1thread": {"PYTHONMALLOC": "malloc", "ARROW_DEFAULT_MEMORY_POOL": "system"},
}


# -- in the drain's process ---------------------------------------------------------------------


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL("libc.so.6")
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    return libc


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Start VmHWM (the peak resident memory) again from the resident memory now."""
    Path("/proc/self/clear_refs").write_text("5")


def _malloc(libc: ctypes.CDLL, scratch: Path) -> dict:
    """glibc malloc over all its arenas (malloc_info; mallinfo2 sees the main arena alone), MB."""
    fp = libc.fopen(str(scratch).encode(), b"w")
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    xml = scratch.read_text()
    tail = xml[xml.rindex("</heap>") :]  # the totals over every arena follow the last heap
    total = {m[0]: int(m[1]) for m in re.findall(r'<total type="(\w+)" count="\d+" size="(\d+)"/>', tail)}
    system = int(re.search(r'<system type="current" size="(\d+)"/>', tail)[1])
    mb = 1 / 2**20
    free = total.get("fast", 0) + total.get("rest", 0)
    return {"arenas": xml.count("<heap nr="), "malloc_system": round(system * mb, 1),
            "malloc_free": round(free * mb, 1), "malloc_mmap": round(total.get("mmap", 0) * mb, 1)}  # fmt: skip


def _mappings() -> dict:
    """Resident memory by kind of mapping (MB): files (libraries, mapped files), the brk heap, and
    anonymous mappings by size: pymalloc's 1 MiB arenas, glibc's 64 MiB thread arenas, the rest."""
    out = {"file": 0, "heap": 0, "anon_1m": 0, "anon_64m": 0, "anon_other": 0}
    kind, size = "file", 0
    for line in Path("/proc/self/smaps").read_text().splitlines():
        first = line.split(None, 1)[0]
        if "-" in first and not first.endswith(
            ":"
        ):  # a mapping's header: range perms offset dev inode [path]
            parts = line.split()
            lo, hi = (int(x, 16) for x in first.split("-"))
            size = hi - lo
            path = parts[5] if len(parts) > 5 else ""
            if path == "[heap]":
                kind = "heap"
            elif path.startswith("/"):
                kind = "file"
            elif size == 1 << 20:
                kind = "anon_1m"
            elif size in (64 << 20, 128 << 20) or (
                size <= 64 << 20 and size % (1 << 20) == 0 and size >= 32 << 20
            ):
                kind = "anon_64m"
            else:
                kind = "anon_other"
        elif first == "Rss:":
            out[kind] += int(line.split()[1])
    return {k: round(v / 1024, 1) for k, v in out.items()}


def _pymalloc(scratch: Path) -> dict:
    """pymalloc's arenas (sys._debugmallocstats, which writes to the C stderr), MB."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(scratch.with_suffix(".pymalloc"), "w+b") as out:
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode()
    found = re.search(r"# arenas allocated current\s*=\s*([\d,]+)", text)  # none under tracemalloc
    return {"py_arenas": float(found[1].replace(",", "")) if found else float("nan")}  # 1 MiB arenas


def snapshot_memory(libc: ctypes.CDLL, scratch: Path, trace: bool) -> dict:
    """The process's memory now, by who holds it (MB)."""
    import pyarrow as pa

    pool = pa.default_memory_pool()
    out = {"rss": round(_status_mb("VmRSS"), 1), **_malloc(libc, scratch),
           "arrow": round(pool.bytes_allocated() / 2**20, 1), "py_blocks": sys.getallocatedblocks(), **_mappings(), **_pymalloc(scratch)}  # fmt: skip
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        out["traced"], out["traced_peak"] = round(current / 2**20, 1), round(peak / 2**20, 1)
    return out


def drain(args: argparse.Namespace) -> None:
    sys.path[:0] = [str(ROOT / "include")]
    import MySQLdb  # noqa: F401  (imports are not what is measured)
    import pandas  # noqa: F401
    import psycopg2
    import pyarrow as pa
    import pyarrow.parquet  # noqa: F401
    import pymysqlreplication  # noqa: F401

    import nightshift_core.sync.cdc.mysql_binlog  # noqa: F401
    import nightshift_core.sync.cdc.postgres_logical  # noqa: F401
    import nightshift_core.sync.cdc.postgres_source as postgres_source
    import nightshift_core.sync.cdc.values  # noqa: F401
    from nightshift_core.sync.cdc import run
    from nightshift_core.sync.cdc.endpoint import Endpoint
    from nightshift_core.warehouse import JobKey, TableRef
    from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse, _database

    libc, duck = _libc(), _database()
    scratch = Path(tempfile.mkdtemp(prefix="memtrial-")) / "malloc.xml"
    steps = STEPS[args.variant]
    if "threads1" in steps:
        duck.execute("SET threads = 1")
    if "arrow-system" in steps:
        pa.set_memory_pool(pa.system_memory_pool())
    if "flush" in steps:
        duck.execute("SET allocator_flush_threshold = '8MB'")
    if "bg" in steps:
        duck.execute("SET allocator_background_threads = true")
    if "memlimit" in steps:
        duck.execute(f"SET memory_limit = '{os.environ.get('BENCH_MEMORY_LIMIT', '128MB')}'")
    if args.phase == "drain":  # the slot is confirmed by the parent once every variant drained
        postgres_source.LogicalSource.confirm = lambda self, reader, end: None  # type: ignore[method-assign]
    chunks: list[dict] = []
    stages: dict[str, float] = {}  # this chunk's peak resident memory per stage
    started = time.perf_counter()

    def stage(name: str, call):
        """``call`` as one stage of a chunk: the peak resident memory it reached, kept under ``name``."""

        def measured(*a, **kw):
            stages["read"] = max(stages.get("read", 0), _status_mb("VmHWM"))  # what ran before it
            _reset_peak()
            try:
                return call(*a, **kw)
            finally:
                stages[name] = _status_mb("VmHWM")
                _reset_peak()

        return measured

    apply_chunk = run._apply_chunk

    def chunk(folder, *rest, **kw):
        changes = folder.changes
        apply_chunk(folder, *rest, **kw)
        if "arrow-release" in steps:
            pa.default_memory_pool().release_unused()
        if "trim" in steps:
            libc.malloc_trim(0)
        if "instance" in steps:  # a new DuckDB instance for the next chunk: this one's memory goes
            from nightshift_core.warehouse import duckdb_engine

            if duckdb_engine._DATABASE is not None:
                duckdb_engine._DATABASE[1].close()
                duckdb_engine._DATABASE = None
        memory = snapshot_memory(libc, scratch, args.trace)
        size = sum(
            p.stat().st_size for p in Path(args.warehouse).parent.glob(Path(args.warehouse).name + "*")
        )
        memory.update(chunk=len(chunks) + 1, changes=changes, peaks=dict(stages), warehouse_mb=round(size / 2**20, 1),
                      seconds=round(time.perf_counter() - started, 1))  # fmt: skip
        stages.clear()
        chunks.append(memory)
        print(json.dumps(memory), file=sys.stderr, flush=True)
        if args.trace and len(chunks) == 2:
            chunks_at[2] = tracemalloc.take_snapshot()
        _reset_peak()

    chunks_at: dict[int, tracemalloc.Snapshot] = {}
    run._apply_chunk = chunk
    run._change_batch = stage("batch", run._change_batch)
    DuckDBWarehouse.stage = stage("stage", DuckDBWarehouse.stage)
    DuckDBWarehouse.apply_changes = stage("apply", DuckDBWarehouse.apply_changes)
    if args.trace:
        tracemalloc.start(4)
    if args.source == "mariadb":
        conn = MySQLdb.connect(host="127.0.0.1", port=PORTS["mariadb"], user="root", database=args.db)
        dialect = "mysql"
    else:
        conn = psycopg2.connect(host="127.0.0.1", port=PORTS["postgres"], user="postgres", dbname=args.db)
        dialect = "postgres"
    endpoint = Endpoint("127.0.0.1", PORTS[args.source], LOGIN[args.source], args.db)
    table = run.CdcTable(TABLE, KEY, definition=args.db)
    warehouse = DuckDBWarehouse(Path(args.warehouse))
    duck.execute("SELECT 1").fetchall()
    before = snapshot_memory(libc, scratch, args.trace)
    _reset_peak()
    result = run.sync_table(conn, dialect, endpoint, table, warehouse, TableRef("bench", TABLE),
                            JobKey("memtrial", args.phase, run_id=uuid.uuid4().hex))  # fmt: skip
    conn.close()
    grown = []
    if args.trace and 2 in chunks_at:
        diff = tracemalloc.take_snapshot().compare_to(chunks_at[2], "traceback")
        for stat in diff[:8]:
            frames = [f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback][:4]
            grown.append({"kib": round(stat.size_diff / 1024), "count": stat.count_diff, "at": frames})
    print(json.dumps({
        "changes": result.changes, "chunks": result.chunks, "end": result.end, "before": before,
        "after": snapshot_memory(libc, scratch, args.trace), "per_chunk": chunks, "grown": grown,
        "peak_rss_mb": round(max([before["rss"]] + [max(c["peaks"].values()) for c in chunks]), 1),
        "seconds": round(time.perf_counter() - started, 1),
    }))  # fmt: skip
    shutil.rmtree(scratch.parent, ignore_errors=True)


# -- the parent ---------------------------------------------------------------------------------


def admin(source: str, db: str | None = None):
    if source == "mariadb":
        import MySQLdb

        return MySQLdb.connect(host="127.0.0.1", port=PORTS[source], user="root", database=db or "",
                               autocommit=True)  # fmt: skip
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=PORTS[source], user="postgres", dbname=db or "postgres")
    conn.autocommit = True
    return conn


def create(source: str, db: str, rows: int) -> None:
    """An orderdetails-shaped table of ``rows`` rows, LINES_PER_ORDER lines an order."""
    admin(source).cursor().execute(
        f"CREATE DATABASE `{db}`" if source == "mariadb" else f'CREATE DATABASE "{db}"'
    )
    conn = admin(source, db)
    cur = conn.cursor()
    if source == "mariadb":
        cur.execute(
            "CREATE TABLE orderdetails (orderNumber INT NOT NULL, productCode VARCHAR(15) NOT NULL, "
            "quantityOrdered INT NOT NULL, priceEach DECIMAL(10,2) NOT NULL, orderLineNumber SMALLINT NOT NULL, "
            "updatedAt DATETIME(6) NOT NULL, PRIMARY KEY (orderNumber, productCode))"
        )
        cur.execute(
            f"INSERT INTO orderdetails SELECT 10000 + seq DIV {LINES_PER_ORDER}, "  # noqa: S608
            f"CONCAT('S', LPAD(seq MOD {LINES_PER_ORDER}, 4, '0')), 10 + seq MOD 40, "
            f"ROUND(10 + (seq MOD 997) / 10, 2), seq MOD {LINES_PER_ORDER} + 1, "
            f"TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_0_to_{rows - 1}"
        )
    else:
        cur.execute(
            'CREATE TABLE orderdetails ("orderNumber" INT NOT NULL, "productCode" VARCHAR(15) NOT NULL, '
            '"quantityOrdered" INT NOT NULL, "priceEach" NUMERIC(10,2) NOT NULL, "orderLineNumber" SMALLINT '
            'NOT NULL, "updatedAt" TIMESTAMP(6) NOT NULL, PRIMARY KEY ("orderNumber", "productCode"))'
        )
        cur.execute(
            f"INSERT INTO orderdetails SELECT 10000 + s / {LINES_PER_ORDER}, "  # noqa: S608
            f"'S' || LPAD((s % {LINES_PER_ORDER})::text, 4, "
            f"'0'), 10 + s % 40, ROUND(10 + (s % 997) / 10.0, 2), s % {LINES_PER_ORDER} + 1, "
            f"TIMESTAMP '2024-01-01' + s * INTERVAL '1 second' FROM generate_series(0, {rows - 1}) AS s"
        )
        cur.execute("VACUUM ANALYZE orderdetails")
    conn.close()


def update_backlog(source: str, db: str, rows: int) -> None:
    """``rows`` updates spread over the table in 10,000-row transactions: bench/cdc_sync.py's backlog."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from cdc_sync import update_backlog as cdc_sync_backlog
    from sync_common import Source

    admin_db = "postgres" if source == "postgres" else ""
    cdc_sync_backlog(Source(source, "", "", PORTS[source], LOGIN[source], "", admin_db), db, rows)


def child(source: str, phase: str, db: str, warehouse: str, variant: str, trace: bool) -> dict:
    cmd = [sys.executable, __file__, "--source", source, "--phase", phase, "--db", db, "--warehouse",
           warehouse, "--variant", variant] + (["--trace"] if trace else [])  # fmt: skip
    env = dict(os.environ, **ENV.get(variant, {}))
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{phase} ({variant}) failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def show(label: str, result: dict) -> None:
    print(f"  {label}: {result['changes']:,} changes, {result['chunks']} commits in {result['seconds']}s, "
          f"peak RSS {result['peak_rss_mb']:.0f} MB (before the read {result['before']['rss']:.0f} MB)")  # fmt: skip
    for c in result["per_chunk"]:
        peaks = " ".join(f"{k} {v:5.0f}" for k, v in c["peaks"].items())
        traced = f"  traced {c['traced']:5.1f} (peak {c['traced_peak']:5.1f})" if "traced" in c else ""
        print(f"    chunk {c['chunk']:3}  peak: {peaks}  | after: rss {c['rss']:5.0f}  malloc {c['malloc_system']:5.0f} "
              f"(free {c['malloc_free']:5.0f}, mmap {c['malloc_mmap']:4.0f}, {c['arenas']} arenas)  arrow {c['arrow']:5.1f}  "
              f"py blocks {c['py_blocks']:>9,} in {c['py_arenas']:4.0f} MB of arenas{traced}")  # fmt: skip
        print(f"               warehouse file {c.get('warehouse_mb', 0):6.1f} MB;  resident: files {c['file']:5.0f}  brk heap {c['heap']:5.0f}  1 MiB maps {c['anon_1m']:5.0f}  "
              f"32-64 MiB maps {c['anon_64m']:5.0f}  other anonymous {c['anon_other']:5.0f}")  # fmt: skip
    for g in result["grown"]:
        print(f"    grew {g['kib']:>7} KiB ({g['count']:+} blocks) at {' < '.join(g['at'])}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sources", nargs="+", default=["mariadb", "postgres"], choices=list(PORTS))
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--backlog", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--variants", nargs="+", default=["base"], choices=VARIANTS)
    parser.add_argument("--trace", action="store_true", help="tracemalloc in the drain (slower)")
    parser.add_argument("--repeat", type=int, default=1, help="drains per variant and backlog (median shown)")
    parser.add_argument("--keep", action="store_true", help="keep the database (to drain again)")
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="memtrial-airflow-"))
        drain(args)
        return
    summary: dict[str, dict[str, dict[int, list[float]]]] = {}
    for source in args.sources:
        db = f"memtrial_{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        try:
            create(source, db, args.rows)
            print(f"\n{source} on 127.0.0.1:{PORTS[source]}: {args.rows:,} rows in {db}.{TABLE} "
                  f"({time.perf_counter() - started:.0f}s)")  # fmt: skip
            with tempfile.TemporaryDirectory(prefix="memtrial-") as workdir:
                warehouse = str(Path(workdir) / "cdc.duckdb")
                snap = child(source, "snapshot", db, warehouse, "base", False)
                print(f"  snapshot: peak RSS {snap['peak_rss_mb']:.0f} MB")
                for n in args.backlog:
                    update_backlog(source, db, n)
                    base = str(Path(workdir) / "before-drain.duckdb")
                    shutil.copyfile(warehouse, base)
                    for _ in range(args.repeat):  # the variants in turn, so a busy spell hits them alike
                        for variant in args.variants:
                            shutil.copyfile(base, warehouse)
                            result = child(source, "drain", db, warehouse, variant, args.trace)
                            show(f"backlog {n:,} [{variant}]", result)
                            peaks = summary.setdefault(source, {}).setdefault(variant, {})
                            peaks.setdefault(n, []).append(result["peak_rss_mb"])
                    if source == "postgres":  # every variant drained the same changes: confirm them now
                        confirm(db, json.loads(result["end"])["lsn"])
        finally:
            if not args.keep:
                drop(source, db)
    print(
        "\n| source | variant | "
        + " | ".join(f"peak RSS, backlog {n:,}" for n in args.backlog)
        + " | change |"
    )
    print("|---|---|" + "---|" * (len(args.backlog) + 1))
    for source, variants in summary.items():
        for variant, peaks in variants.items():
            medians = [statistics.median(peaks[n]) for n in args.backlog if n in peaks]
            shown = [f"{statistics.median(peaks[n]):.0f} MB" + (f" ({', '.join(f'{p:.0f}' for p in peaks[n])})"
                     if len(peaks[n]) > 1 else "") for n in args.backlog if n in peaks]  # fmt: skip
            change = f"{medians[-1] / medians[0] - 1:+.0%}" if len(medians) > 1 else "-"
            print(f"| {source} | {variant} | " + " | ".join(shown) + f" | {change} |")


def confirm(db: str, lsn: int) -> None:
    sys.path[:0] = [str(ROOT / "include")]
    from nightshift_core.sync.cdc.endpoint import Endpoint
    from nightshift_core.sync.cdc.postgres_logical import LogicalReader
    from nightshift_core.sync.cdc.run import CdcTable

    slot = CdcTable(TABLE, KEY, definition=db).slot
    with LogicalReader(Endpoint("127.0.0.1", PORTS["postgres"], "postgres", db), slot, [TABLE]) as reader:
        reader.confirm(lsn)


def drop(source: str, db: str) -> None:
    if source == "postgres":  # the slot first: a slot keeps its database from being dropped
        c = admin(source)
        c.cursor().execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                           "WHERE database = %s", [db])  # fmt: skip
        c.cursor().execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        c.close()
    else:
        admin(source).cursor().execute(f"DROP DATABASE IF EXISTS `{db}`")


if __name__ == "__main__":
    main()
