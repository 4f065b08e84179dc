"""Sync throughput on PostgreSQL's own types: a film-rental-shaped table with enum, domains, citext,
uuid, inet/cidr/macaddr, money, interval, tsvector/tsquery, xml, json/jsonb, bytea, timestamptz,
timetz, unconstrained numeric (and, in a twin table, text[] / int[] arrays), generated in SQL.

    .venv/bin/python bench/sync_postgres_types.py [--rows 500000]

Phases, each in its own process (bench/sync_common.py's harness):
  raw           psycopg2 named cursor, rows discarded (the driver floor)
  cx-text       connectorx -> Arrow with every column cast to text in the query: what one would write
                to get these types through connectorx at all (types are lost; informative)
  ours-arrow    SqlToWarehouseOperator, full, source.reader=arrow -> DuckDB (exact types)
  ours-dbapi    the same through the DB-API path (source.reader=dbapi)
  raw-arrays    the floor on the table with array columns
  ours-arrays   that table, reader auto: arrays go through the DB-API path (ARRAY + <col>__json)
Needs PostgreSQL on 127.0.0.1:5432 (postgres, trust). Not a test: nothing passes or fails here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sync_common import (  # noqa: E402
    POSTGRES,
    ROOT,
    Database,
    add_phase_arguments,
    raw_read,
    rss_mb,
    run_child,
    run_phase,
)

DDL = """
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TYPE mpaa_rating AS ENUM ('G', 'PG', 'PG-13', 'R', 'NC-17', 'Ünïcode ✓');
CREATE DOMAIN year AS integer CHECK (VALUE >= 1901 AND VALUE <= 2155);
CREATE DOMAIN price AS numeric(12, 2);
CREATE TABLE film (
  id int PRIMARY KEY, rating mpaa_rating, release_year year, price price, title varchar(40),
  email citext, uid uuid, ip inet, net cidr, mac macaddr, cost money, length interval, fts tsvector,
  query tsquery, doc xml, js json, jb jsonb, raw bytea, shown_at timestamptz, local_ts timestamp,
  clock timetz, plain_time time, big numeric, updated_at timestamptz NOT NULL
);
INSERT INTO film
SELECT g, (enum_range(NULL::mpaa_rating))[1 + g % 6], 1901 + g % 250, (g % 100000) / 100.0,
       'Film ' || g, 'User' || g || '@Example.COM', md5(g::text)::uuid,
       ('10.' || (g / 65536) % 256 || '.' || (g / 256) % 256 || '.' || g % 256)::inet,
       '10.0.0.0/8', '08:00:2b:01:02:03', (g % 100000 / 100.0)::numeric::money,
       make_interval(months => g % 14, days => g % 30, secs => g % 86400 + 0.5),
       to_tsvector('simple', 'the fat cat number ' || g), 'fat & cat'::tsquery,
       ('<film id="' || g || '">Ünïcode</film>')::xml, json_build_object('id', g, 'tags', json_build_array('a', g)),
       jsonb_build_object('id', g, 'ok', g % 2 = 0), decode(md5(g::text), 'hex'),
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second', timestamp '2026-01-01' + g * interval '1 ms',
       timetz '13:14:15.5+05:30', time '00:00' + (g % 86400) * interval '1 second',
       g::numeric * 1000000000000 + 0.000001, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second'
FROM generate_series(1, :rows) g;
CREATE TABLE film_arrays (
  id int PRIMARY KEY, title varchar(40), features text[], scores int[], amounts numeric(10, 2)[],
  ratings mpaa_rating[], updated_at timestamptz NOT NULL
);
INSERT INTO film_arrays
SELECT g, 'Film ' || g, ARRAY['Trailers', 'Scene ' || g], ARRAY[g % 7, g % 11, g],
       ARRAY[(g % 1000) / 100.0, -1.25]::numeric(10, 2)[],
       ARRAY[(enum_range(NULL::mpaa_rating))[1 + g % 6]],
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second'
FROM generate_series(1, :rows) g;
ANALYZE;
"""
PHASES = ("raw", "cx-text", "ours-arrow", "ours-dbapi", "raw-arrays", "ours-arrays")


def phase(name: str, db: str, workdir: str) -> dict:
    sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins")]
    source = POSTGRES
    table = "film_arrays" if name.endswith("arrays") else "film"
    os.environ["AIRFLOW_CONN_BENCH_SOURCE"] = json.dumps(
        {
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": source.port,
            "login": source.login,
            "schema": db,
        }
    )
    os.environ["AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE"] = json.dumps(
        {"conn_type": "generic", "extra": {"engine": "duckdb", "path": str(Path(workdir) / f"{name}.duckdb")}}
    )
    # Imports are a constant per process, whatever the rows: not measured.
    import airflow.providers.postgres.hooks.postgres  # noqa: F401
    import airflow.sdk.execution_time.supervisor  # noqa: F401  (a worker's task runner has it loaded)
    import connectorx as cx
    import psycopg2
    import pyarrow.compute  # noqa: F401

    import nightshift_core.sync.arrow_reader  # noqa: F401
    import nightshift_core.warehouse.duckdb_engine  # noqa: F401
    from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator

    started, reader = time.perf_counter(), None
    if name.startswith("raw"):
        rows = raw_read(source, db, table)
    elif name == "cx-text":
        conn = psycopg2.connect(host="127.0.0.1", port=source.port, user=source.login, dbname=db)
        cur = conn.cursor()
        cur.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'film'::regclass AND attnum > 0 ORDER BY attnum"
        )
        columns = ", ".join(f'"{c}"::text AS "{c}"' for (c,) in cur.fetchall())
        conn.close()
        stream = cx.read_sql(source.url(db), f"SELECT {columns} FROM film",  # noqa: S608
                             return_type="arrow_stream", batch_size=50_000)  # fmt: skip
        rows = sum(batch.num_rows for batch in stream)
    else:
        op = SqlToWarehouseOperator(
            task_id=f"load_{table}", source_conn_id="bench_source", table=table, dataset="bench",
            primary_key=["id"], mode="full", reader={"ours-dbapi": "dbapi", "ours-arrow": "arrow"}.get(name, "auto"),
        )  # fmt: skip
        ti = SimpleNamespace(dag_id="bench", task_id=op.task_id, run_id=name, map_index=-1)
        result = op.execute({"ti": ti, "data_interval_start": None, "data_interval_end": None})
        rows, reader = result["staged_rows"], result["reader"]
    seconds = time.perf_counter() - started
    return {"phase": name, "rows": rows, "seconds": seconds, "reader": reader, "peak_rss_mb": rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500_000)
    add_phase_arguments(parser)
    args = parser.parse_args()
    if run_child(args, phase):
        return
    import psycopg2

    with Database(POSTGRES) as db, tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        conn = psycopg2.connect(host="127.0.0.1", port=POSTGRES.port, user=POSTGRES.login, dbname=db.name)
        conn.autocommit = True
        conn.cursor().execute(DDL.replace(":rows", str(int(args.rows))))
        conn.close()
        print(f"postgres: {args.rows:,} rows in film and in film_arrays (generated in "
              f"{time.perf_counter() - started:.0f}s)")  # fmt: skip
        results = {name: run_phase(__file__, name, db.name, workdir, dict(os.environ)) for name in PHASES}
    print(
        f"  {'phase':12} {'rows':>9} {'rows/s':>10} {'seconds':>8} {'peak RSS MB':>12} {'vs floor':>9}  reader"
    )
    for name, r in results.items():
        if r:
            floor = results["raw-arrays" if name.endswith("arrays") else "raw"]
            ratio = (
                f"{(r['rows'] / r['seconds']) / (floor['rows'] / floor['seconds']):8.2f}x"
                if floor
                else "      n/a"
            )
            print(f"  {name:12} {r['rows']:9,} {r['rows'] / r['seconds']:10,.0f} {r['seconds']:8.2f} "
                  f"{r['peak_rss_mb']:12.0f} {ratio}  {r['reader'] or ''}")  # fmt: skip
    arrow, dbapi = results.get("ours-arrow"), results.get("ours-dbapi")
    if arrow and dbapi:
        print(f"  ours-arrow vs ours-dbapi: {dbapi['seconds'] / arrow['seconds']:.2f}x")


if __name__ == "__main__":
    main()
