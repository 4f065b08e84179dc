"""Warehouse load/read throughput against pyarrow's own Parquet write/read of the same data.

    .venv/bin/python bench/warehouse_load.py [--rows 1000000] [--engines duckdb,bigquery]

Each phase runs in a fresh subprocess so its peak RSS is its own. The floor is
pyarrow writing and reading the same batches as a Parquet file; our figures are printed
as ratios to it (absolute times on a shared machine mean little). The BigQuery figure
uses the local emulator and is informative only. Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "tests")]
BATCH = 65536


def make_batches(rows: int):
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(42)
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            ("amount", pa.decimal128(38, 9)),
            ("ratio", pa.float64()),
            ("name", pa.string()),
            ("active", pa.bool_()),
            ("day", pa.date32()),
            ("updated_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        ids = np.arange(start, start + n, dtype=np.int64)
        cents = rng.integers(0, 10_000_000, n)
        yield (
            pa.RecordBatch.from_arrays(
                [
                    pa.array(ids),
                    pa.array([Decimal(int(c)).scaleb(-2) for c in cents], pa.decimal128(38, 9)),
                    pa.array(rng.random(n)),
                    pa.array([f"customer {i % 10007} name" for i in ids]),
                    pa.array(ids % 3 == 0),
                    pa.array((ids % 3650).astype("int32"), pa.date32()),
                    pa.array(1_700_000_000_000_000 + ids * 1_000_000, pa.timestamp("us", tz="UTC")),
                ],
                schema=schema,
            ),
            schema,
        )


def batches_from_file(path: str):
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    return file.schema_arrow, file.iter_batches(batch_size=BATCH)


def phase(name: str, data: str, workdir: str, endpoint: str | None) -> dict:
    """Run one measured phase in this process and return its numbers."""
    import pyarrow.parquet as pq

    from nightshift_core.warehouse import JobKey, TableRef

    table = TableRef("bench", "mixed")
    key = JobKey("bench", "load", "s", "e")
    started = time.perf_counter()
    rows = 0
    if name == "floor-write":
        schema, it = batches_from_file(data)
        with pq.ParquetWriter(Path(workdir) / "floor.parquet", schema, compression="zstd") as writer:
            for batch in it:
                writer.write_batch(batch)
                rows += batch.num_rows
    elif name == "floor-read":
        for batch in pq.ParquetFile(Path(workdir) / "floor.parquet").iter_batches(batch_size=BATCH):
            rows += batch.num_rows
    else:
        engine, action = name.split("-")
        wh = open_engine(engine, workdir, endpoint)
        if action == "load":
            schema, it = batches_from_file(data)
            staged = wh.stage(key, table, it, schema)
            rows = wh.publish(staged, "replace").staged_rows
        else:
            for batch in wh.query_batches("SELECT * FROM bench.mixed", batch_size=BATCH):
                rows += batch.num_rows
    seconds = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"phase": name, "rows": rows, "seconds": seconds, "peak_rss_mb": rss_mb}


def open_engine(engine: str, workdir: str, endpoint: str | None):
    if engine == "duckdb":
        from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

        return DuckDBWarehouse(Path(workdir) / "bench.duckdb")
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    from nightshift_core.warehouse.bigquery_engine import BigQueryWarehouse

    client = bigquery.Client(
        project="bench",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=endpoint),
    )
    return BigQueryWarehouse(client, use_storage_api=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", default="duckdb,bigquery")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.data, args.workdir, args.endpoint)))
        return

    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as workdir:
        data = str(Path(workdir) / "source.parquet")
        writer = None
        for batch, schema in make_batches(args.rows):
            writer = writer or pq.ParquetWriter(data, schema)
            writer.write_batch(batch)
        writer.close()
        engines = [e for e in args.engines.split(",") if e]
        emulator = None
        endpoint = None
        if "bigquery" in engines:
            from support.bq_emulator import start_emulator, stop_emulator

            (Path(workdir) / "bq").mkdir()
            emulator = start_emulator(Path(workdir) / "bq")
            endpoint = emulator.endpoint
        try:
            phases = ["floor-write", "floor-read"]
            for engine in engines:
                phases += [f"{engine}-load", f"{engine}-read"]
            results = {}
            for name in phases:
                cmd = [sys.executable, __file__, "--phase", name, "--data", data, "--workdir", workdir]
                if endpoint:
                    cmd += ["--endpoint", endpoint]
                out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
                if out.returncode != 0:
                    print(f"{name}: FAILED\n{out.stderr[-3000:]}")
                    continue
                results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            if emulator:
                stop_emulator(emulator)
    print(f"\nwarehouse bench, {args.rows:,} rows of a 7-column mixed-type table")
    print(f"{'phase':16} {'rows/s':>12} {'seconds':>8} {'peak RSS MB':>12} {'vs floor':>9}")
    for name, r in results.items():
        floor = results.get("floor-write" if name.endswith(("write", "load")) else "floor-read")
        rate = r["rows"] / r["seconds"]
        ratio = rate / (floor["rows"] / floor["seconds"]) if floor else float("nan")
        print(f"{name:16} {rate:12,.0f} {r['seconds']:8.2f} {r['peak_rss_mb']:12.0f} {ratio:8.2f}x")


if __name__ == "__main__":
    main()
