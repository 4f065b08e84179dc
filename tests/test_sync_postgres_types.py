"""PostgreSQL's own types, synced exactly from a real PostgreSQL into DuckDB and the BigQuery emulator.

A film-rental-shaped table holds every type the sync maps (enum, domains, citext, uuid, inet/cidr/macaddr,
money, interval, tsvector/tsquery, xml, json/jsonb, bytea, timestamptz, timetz, unconstrained numeric and
arrays), with NULLs, empty arrays, arrays with NULL elements, a multi-dimensional array, an array whose
lower bound is not 1, and non-ASCII enum labels. Ranges and composites fail at once, and the advice in
the error, applied to a real sync file, syncs the table in one round. A partitioned table is one table.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pyarrow.compute as pc
import pytest

from nightshift_core.warehouse import WarehouseError

UTC = dt.UTC
DATASET = "pg_types"

DDL = """
CREATE EXTENSION citext;
CREATE TYPE mpaa_rating AS ENUM ('G', 'PG', 'PG-13', 'R', 'NC-17', 'Ünïcode ✓');
CREATE DOMAIN year AS integer CHECK (VALUE >= 1901 AND VALUE <= 2155);
CREATE DOMAIN price AS numeric(12, 2);
CREATE DOMAIN label AS varchar(40);
CREATE TABLE film (
  id int PRIMARY KEY, rating mpaa_rating, release_year year, price price, title label, email citext,
  uid uuid, ip inet, net cidr, mac macaddr, cost money, length interval, fts tsvector, query tsquery,
  doc xml, js json, jb jsonb, raw bytea, shown_at timestamptz, local_ts timestamp, clock timetz,
  plain_time time, features text[], scores int[], amounts numeric(10, 2)[],
  ratings mpaa_rating[], stamps timestamptz[], updated_at timestamptz NOT NULL
);
INSERT INTO film VALUES
  (1, 'Ünïcode ✓', 2006, 19.99, 'Académie', 'Ana@Example.COM', '6f1c2a9e-7d0b-4c1e-9a43-2d5f0e8b7c11',
   '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '1234.56', '1 year 2 mons -3 days 04:05:06.5',
   to_tsvector('simple', 'the fat cat'), 'fat & cat', '<a>ü</a>', '{"b": [1, null], "a": "ü"}',
   '{"k": 1.5}', '\\x00ff', '2026-02-28 12:00:00.123456+00', '2026-02-28 23:59:59.999999',
   '13:14:15.5+05:30', '13:14:15.5',
   '{Trailers,"Deleted Scenes"}', '{3,1,2}', '{1.50,-2.25}', '{PG-13,"Ünïcode ✓"}',
   '{"2026-01-01 00:00:00+00"}', '2026-03-01 00:00:00+00'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-03-01 00:00:00+00'),
  (3, 'G', 1901, 0, '', '', NULL, '::1', NULL, NULL, '-0.01', '0', '', NULL, NULL, '[]', 'null', '', NULL,
   NULL, NULL, NULL, '{}', '{}', '{}', '{}', '{}', '2026-03-01 00:00:00+00'),
  (4, 'PG', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, '{a,NULL}', '{{1,2},{3,4}}', '[0:1]={1,2}', '{NULL}', '{}',
   '2026-03-01 00:00:00+00');
"""

ARRAYS = ("features", "scores", "amounts", "ratings", "stamps")
TYPES = {
    "id": "INT64", "rating": "STRING", "release_year": "INT64", "price": "NUMERIC", "title": "STRING",
    "email": "STRING", "uid": "STRING", "ip": "STRING", "net": "STRING", "mac": "STRING", "cost": "NUMERIC",
    "length": "STRING", "fts": "STRING", "query": "STRING", "doc": "STRING", "js": "JSON", "jb": "JSON",
    "raw": "BYTES", "shown_at": "TIMESTAMP", "local_ts": "DATETIME", "clock": "STRING", "plain_time": "TIME",
 "features": "ARRAY<STRING>", "scores": "ARRAY<INT64>", "amounts": "ARRAY<NUMERIC>",
    "ratings": "ARRAY<STRING>", "stamps": "ARRAY<TIMESTAMP>", "updated_at": "TIMESTAMP",
} | {f"{a}__json": "JSON" for a in ARRAYS}  # fmt: skip
FILM_1 = {
    "rating": "Ünïcode ✓", "release_year": 2006, "price": Decimal("19.99"), "title": "Académie",
    "email": "Ana@Example.COM", "uid": "6f1c2a9e-7d0b-4c1e-9a43-2d5f0e8b7c11", "ip": "192.168.0.1/24",
    "net": "10.0.0.0/8", "mac": "08:00:2b:01:02:03", "cost": Decimal("1234.56"), "length": "P1Y2M-3DT4H5M6.5S",
    "fts": "'cat':3 'fat':2 'the':1", "query": "'fat' & 'cat'", "doc": "<a>ü</a>",
    "js": {"b": [1, None], "a": "ü"}, "jb": {"k": 1.5}, "raw": b"\x00\xff",
    "shown_at": dt.datetime(2026, 2, 28, 12, 0, 0, 123456, tzinfo=UTC),
    "local_ts": dt.datetime(2026, 2, 28, 23, 59, 59, 999999), "clock": "13:14:15.5+05:30",
    "plain_time": dt.time(13, 14, 15, 500000),
    "features": ["Trailers", "Deleted Scenes"], "scores": [3, 1, 2],
    "amounts": [Decimal("1.50"), Decimal("-2.25")], "ratings": ["PG-13", "Ünïcode ✓"],
    "stamps": [dt.datetime(2026, 1, 1, tzinfo=UTC)],
} | {f"{a}__json": None for a in ARRAYS}  # fmt: skip
FILM_3 = {
    "rating": "G", "release_year": 1901, "price": Decimal("0"), "title": "", "email": "", "ip": "::1",
    "cost": Decimal("-0.01"), "length": "PT0S", "fts": "", "js": [], "jb": None, "raw": b"",
} | dict.fromkeys(ARRAYS, []) | {f"{a}__json": None for a in ARRAYS}  # fmt: skip
FILM_4_EXACT = {  # what the ARRAY columns cannot hold, in the exact-JSON column
    "features__json": ["a", None],
    "scores__json": [[1, 2], [3, 4]],
    "amounts__json": {"dims": "[0:1]", "elements": [1, 2]},
    "ratings__json": [None],
    "stamps__json": None,
}


@pytest.fixture(params=["duckdb", "bigquery"])
def engine(request, tmp_path, monkeypatch) -> str:
    """The warehouse connection: the embedded DuckDB file, or the BigQuery emulator."""
    extra = {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")}
    if request.param == "bigquery":
        emulator = request.getfixturevalue("bq_emulator")
        emulator.client().delete_dataset(
            f"{emulator.project}.{DATASET}", delete_contents=True, not_found_ok=True
        )
        extra = {"engine": "bigquery", "anonymous": True, "project": emulator.project,
                 "api_endpoint": emulator.endpoint, "use_storage_api": False}  # fmt: skip
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE", json.dumps({"conn_type": "generic", "extra": extra})
    )
    return request.param


def duckdb_warehouse(tmp_path, monkeypatch) -> None:
    """The warehouse connection on an embedded DuckDB file only (tests that need no BigQuery run)."""
    extra = {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")}
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE", json.dumps({"conn_type": "generic", "extra": extra})
    )


@pytest.fixture
def pg(postgres, monkeypatch):
    """A scratch PostgreSQL database behind connection ``pg_types``; yields an autocommit cursor."""
    from support.services import scratch_database

    with scratch_database(postgres, "ns_pgtypes") as db:
        monkeypatch.setenv("AIRFLOW_CONN_PG_TYPES", db.airflow_conn)
        yield db.conn.cursor()


def context(task_id: str, start=None, end=None) -> dict:
    ti = SimpleNamespace(dag_id="pg_types", task_id=task_id, run_id=f"test__{start}", map_index=-1)
    return {"ti": ti, "data_interval_start": start, "data_interval_end": end}


def sync(table: str, start=None, end=None, **options) -> dict:
    from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator

    options = {"primary_key": ["id"]} | options
    op = SqlToWarehouseOperator(task_id=f"load_{table}", source_conn_id="pg_types", table=table,
                                dataset=DATASET, **options)  # fmt: skip
    return op.execute(context(op.task_id, start, end))


def warehouse(table: str, order: str = "id") -> tuple[dict[str, str], list[dict]]:
    """(column -> type as BigQuery names it, rows) of a synced table."""
    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift_core.warehouse import TableRef

    with WarehouseHook().get_conn() as wh:
        schema = {
            c.name: f"ARRAY<{c.type}>" if c.repeated else c.type
            for c in wh.get_schema(TableRef(DATASET, table))
        }
        rows = wh.query(f"SELECT * FROM {DATASET}.{table} ORDER BY {order}").to_pylist()
    for row in rows:
        for name, kind in schema.items():
            if kind == "BIGNUMERIC" and row[name] is not None:
                row[name] = Decimal(row[name])  # DuckDB keeps BIGNUMERIC as exact text
    return schema, rows


def parsed(value):
    return None if value is None else json.loads(value)


def test_every_postgres_type_round_trips_exactly(pg, engine):
    pg.execute(DDL)
    result = sync("film")
    assert result["staged_rows"] == result["source_rows"] == 4
    schema, rows = warehouse("film")
    assert schema == TYPES
    film = {row["id"]: row for row in rows}
    one = {k: parsed(v) if TYPES[k] == "JSON" else v for k, v in film[1].items()}
    assert one == {"id": 1, "updated_at": dt.datetime(2026, 3, 1, tzinfo=UTC)} | FILM_1
    # A NULL array: its ARRAY is empty (BigQuery cannot hold a NULL array), its exact-JSON column JSON null.
    assert {a: film[2][a] for a in ARRAYS} == dict.fromkeys(ARRAYS, [])
    assert {a: film[2][f"{a}__json"] for a in ARRAYS} == dict.fromkeys(ARRAYS, "null")
    scalars = set(FILM_1) - set(ARRAYS) - {f"{a}__json" for a in ARRAYS}
    assert all(film[2][k] is None for k in scalars), "NULL scalars stay NULL"
    three = {
        k: parsed(film[3][k]) if TYPES[k] == "JSON" and k in ("js", "jb") else film[3][k] for k in FILM_3
    }
    assert three == FILM_3  # empty text, empty arrays, JSON [] and JSON null
    # a NULL element: the ARRAY keeps the others; more dimensions or another lower bound: the ARRAY is empty
    assert {a: film[4][a] for a in ARRAYS} == dict.fromkeys(ARRAYS, []) | {"features": ["a"]}
    assert {k: parsed(film[4][k]) for k in FILM_4_EXACT} == FILM_4_EXACT


def test_numeric_without_precision_is_bignumeric_with_every_digit(request, pg, engine):
    if engine == "bigquery":
        reason = "BigQuery emulator: DuckDB underneath has no DECIMAL(76, 38), so BIGNUMERIC columns fail"
        request.applymarker(pytest.mark.xfail(strict=True, raises=WarehouseError, reason=reason))
    pg.execute("CREATE TABLE amounts (id int PRIMARY KEY, free numeric, many numeric[])")
    values = [Decimal("3.14159265358979323846264338327950288"), Decimal("-1e-38"), Decimal(10**37)]
    pg.execute(
        "INSERT INTO amounts VALUES (1, %s, %s), (2, %s, '{}'), (3, NULL, NULL)",
        (values[0], values, values[1]),
    )
    sync("amounts")
    schema, rows = warehouse("amounts")
    assert schema == {"id": "INT64", "free": "BIGNUMERIC", "many": "ARRAY<BIGNUMERIC>", "many__json": "JSON"}
    assert [r["free"] for r in rows] == [values[0], values[1], None]
    assert [[Decimal(v) for v in r["many"]] for r in rows] == [values, [], []]


def test_a_value_beyond_bignumeric_fails_naming_the_column_instead_of_rounding(pg, tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    duckdb_warehouse(tmp_path, monkeypatch)
    pg.execute("CREATE TABLE amounts (id int PRIMARY KEY, free numeric)")
    pg.execute("INSERT INTO amounts VALUES (1, 1e-39)")  # 39 decimals: one more than BIGNUMERIC holds
    with pytest.raises(
        AirflowFailException, match=r"SourceDataError: table 'amounts', column 'free': a value does not fit"
    ):
        sync("amounts")


def test_the_exact_json_form_is_what_postgresql_itself_writes(pg):
    """NULL elements and extra dimensions: to_json's own output (numbers keep their digits)."""
    from nightshift_core.sync import source

    pg.execute("CREATE TABLE t (id int PRIMARY KEY, a numeric(6, 3)[], b text[])")
    pg.execute('INSERT INTO t VALUES (1, \'{{1.5,NULL},{-0.001,2}}\', \'{"x,y",NULL,"\\"q\\""}\')')
    pg.connection.autocommit = False
    try:
        columns = source.describe(pg.connection, "postgres", "t")
        batch = next(source.extract(pg.connection, "postgres", "t", columns))
    finally:
        pg.connection.rollback()
        pg.connection.autocommit = True
    row = batch.to_pylist()[0]
    assert row["a"] == [] and row["a__json"] == "[[1.500,null],[-0.001,2.000]]"
    assert row["b"] == ["x,y", '"q"'] and json.loads(row["b__json"]) == ["x,y", None, '"q"']


@pytest.mark.parametrize("reader", ["dbapi", "auto"])
def test_an_array_with_null_elements_keeps_its_other_elements_in_order(pg, engine, reader):
    """The ARRAY column holds the non-NULL elements in their order (BigQuery's ARRAY cannot hold a NULL
    element); the exact value, NULLs included, is in <col>__json. Under reader auto the table is read
    by the DB-API path too: the Arrow reader has no exact mapping for arrays."""
    pg.execute("CREATE TABLE tagged (id int PRIMARY KEY, tags text[], n int[])")
    pg.execute(
        "INSERT INTO tagged VALUES (1, '{zeta,NULL,alpha,\"\",mid}', '{3,NULL,1,NULL}'), "
        "(2, '{NULL,NULL}', '{NULL}'), (3, '{b,a}', '{2,1}'), (4, NULL, '{}')"
    )
    result = sync("tagged", reader=reader)
    assert (result["reader"], result["staged_rows"]) == ("dbapi", 4)
    _, rows = warehouse("tagged")
    assert [(r["tags"], parsed(r["tags__json"]), r["n"], parsed(r["n__json"])) for r in rows] == [
        (["zeta", "alpha", "", "mid"], ["zeta", None, "alpha", "", "mid"], [3, 1], [3, None, 1, None]),
        ([], [None, None], [], [None]),
        (["b", "a"], None, [2, 1], None),  # nothing the ARRAY cannot hold: no exact-JSON value
        ([], None, [], None),
    ]
    assert rows[3]["tags__json"] == "null"  # a NULL array, not an empty one


@pytest.mark.parametrize("reader", ["dbapi", "arrow"])
def test_incremental_sync_with_a_timestamptz_cursor(pg, engine, reader):
    tags = "text[]" if reader == "dbapi" else "text"  # arrays are the DB-API path's
    pg.execute(f"CREATE TABLE events (id int PRIMARY KEY, tags {tags}, updated_at timestamptz NOT NULL)")
    t0 = dt.datetime(2026, 3, 1, tzinfo=UTC)
    pg.execute(
        "INSERT INTO events VALUES (1, '{a}', %s), (2, NULL, %s), (3, '{b,NULL}', %s)",
        (
            t0 + dt.timedelta(minutes=5),
            t0 + dt.timedelta(minutes=59, seconds=59.999999),
            t0 + dt.timedelta(hours=1),
        ),
    )
    options = {"mode": "incremental", "cursor": "updated_at", "reader": reader}
    first = sync("events", t0, t0 + dt.timedelta(hours=1), **options)
    assert first["reader"] == reader
    assert first["staged_rows"] == first["source_rows"] == 2  # the row at the window's end is the next run's
    pg.execute(
        "UPDATE events SET tags = '{a,c}', updated_at = %s WHERE id = 1", (t0 + dt.timedelta(minutes=70),)
    )
    second = sync("events", t0 + dt.timedelta(hours=1), t0 + dt.timedelta(hours=2), **options)
    # from where the first run read up to (its interval's end): row 3 and the updated 1, not row 2 again
    assert second["staged_rows"] == second["source_rows"] == 2 and second["reconciled"]["repaired"] == 0
    _, rows = warehouse("events")
    if reader == "arrow":
        assert [(r["id"], r["tags"], r["updated_at"]) for r in rows] == [
            (1, "{a,c}", t0 + dt.timedelta(minutes=70)),
            (2, None, t0 + dt.timedelta(minutes=59, seconds=59.999999)),
            (3, "{b,NULL}", t0 + dt.timedelta(hours=1)),
        ]
        return
    assert [(r["id"], r["tags"], parsed(r["tags__json"]), r["updated_at"]) for r in rows] == [
        (1, ["a", "c"], None, t0 + dt.timedelta(minutes=70)),
        (2, [], None, t0 + dt.timedelta(minutes=59, seconds=59.999999)),
        (3, ["b"], ["b", None], t0 + dt.timedelta(hours=1)),
    ]
    assert rows[1]["tags__json"] == "null"  # JSON null: the source array was NULL, not empty


@pytest.mark.parametrize(
    ("numeric", "arrow"),
    [
        ("numeric", "decimal256(76, 38)"),
        ("numeric(10, 2)", "decimal128(10, 2)"),
        ("numeric(38, 0)", "decimal128(38, 0)"),
        ("numeric(60, 20)", "decimal256(60, 20)"),
        ("numeric(5, -2)", "decimal128(7, 0)"),
        ("numeric(3, 5)", "decimal128(5, 5)"),
        ("numeric(1000, 0)", "decimal256(76, 38)"),
    ],
)
def test_numeric_precision_and_scale_come_from_the_catalog(pg, numeric, arrow):
    from nightshift_core.sync import source

    pg.execute(f"CREATE DOMAIN amount AS {numeric}")
    pg.execute(f"CREATE TABLE t (id int PRIMARY KEY, plain {numeric}, via_domain amount, many {numeric}[])")
    columns = {c.name: str(c.arrow_type) for c in source.describe(pg.connection, "postgres", "t")}
    assert (columns["plain"], columns["via_domain"], columns["many"]) == (
        arrow,
        arrow,
        f"list<item: {arrow}>",
    )


SYNC_FILE = """
dag_id: sync_rentals
schedule: "@daily"
start_date: 2026-01-01
source: {{conn_id: pg_types}}
target: {{dataset: {dataset}}}
tables:
{tables}
"""


def run_file(path: Path, table: str) -> dict:
    """Build the DAG from a real sync file, as Airflow does, and run one table's load task."""
    from nightshift.sync_dags import build
    from nightshift_core.sync.config import load

    task = build(load(path)).get_task(f"load_{table}")
    task.full_refresh, task.only_tables, task.reconcile = False, "", False  # the Params' defaults
    return task.execute(context(task.task_id))


def test_ranges_and_composites_fail_at_once_and_the_advice_works_in_one_round(pg, engine, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    pg.execute("CREATE TYPE address AS (street text, city text)")
    pg.execute(
        "CREATE TABLE rental (id int PRIMARY KEY, during tstzrange, spans int4multirange, home address, "
        "slots int4range[], note text)"
    )
    pg.execute("INSERT INTO rental VALUES (1, '[2026-01-01, 2026-01-02)', '{[1,2)}', ROW('Main St', 'Zürich'), "
               "'{\"[1,2)\"}', 'kept'), (2, NULL, NULL, NULL, NULL, NULL)")  # fmt: skip
    path = tmp_path / "rentals.yaml"
    path.write_text(
        SYNC_FILE.format(dataset=DATASET, tables="  - {name: rental, primary_key: [id], mode: full}")
    )
    with pytest.raises(AirflowFailException) as failure:
        run_file(path, "rental")
    message = str(failure.value)
    assert message.startswith(f"UnsupportedTypeError: sync definition {path}, table 'rental', "), message
    for column, kind in [("during", "tstzrange"), ("spans", "int4multirange"), ("home", "address"),
                         ("slots", "int4range[]")]:  # fmt: skip
        assert f"column {column!r}: source type {kind!r} is not supported" in message
    assert "PostgreSQL composite type address" in message and "PostgreSQL array of range type" in message
    assert "not retried" in message
    advice = re.search(r"set `exclude: \[([^\]]*)\]` on table 'rental' in (\S+) ", message)
    assert advice and advice.group(2) == str(path), message
    # Follow the advice literally: add the exclude it names to the table's entry, and run again.
    path.write_text(path.read_text().replace("mode: full}", f"mode: full, exclude: [{advice.group(1)}]}}"))
    assert run_file(path, "rental")["staged_rows"] == 2
    schema, rows = warehouse("rental")
    assert schema == {"id": "INT64", "note": "STRING"} and rows[0] == {"id": 1, "note": "kept"}


def test_a_partitioned_table_is_synced_once_as_one_table(pg, engine, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    pg.execute(
        "CREATE TABLE payment (id int, paid_at timestamptz NOT NULL, amount numeric(5, 2), PRIMARY KEY (id, paid_at)) "
        "PARTITION BY RANGE (paid_at)"
    )
    pg.execute(
        "CREATE TABLE payment_2026_01 PARTITION OF payment FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')"
    )
    pg.execute("CREATE TABLE payment_2026_02 PARTITION OF payment FOR VALUES FROM ('2026-02-01') TO ('2026-03-01') "
               "PARTITION BY HASH (id)")  # fmt: skip
    pg.execute(
        "CREATE TABLE payment_2026_02_h0 PARTITION OF payment_2026_02 FOR VALUES WITH (MODULUS 1, REMAINDER 0)"
    )
    pg.execute(
        "INSERT INTO payment SELECT i, TIMESTAMPTZ '2026-01-01' + i * INTERVAL '1 day', i FROM generate_series(0, 49) i"
    )
    entries = ["payment", "payment_2026_02_h0"]
    tables = "\n".join(f"  - {{name: {t}, primary_key: [id, paid_at], mode: full}}" for t in entries)
    path = tmp_path / "rentals.yaml"
    path.write_text(SYNC_FILE.format(dataset=DATASET, tables=tables))
    result = run_file(path, "payment")
    assert result["staged_rows"] == result["source_rows"] == 50
    _, rows = warehouse("payment")
    assert [r["id"] for r in rows] == list(range(50)), "every partition's rows, each once"
    with pytest.raises(AirflowFailException, match=r"SourceDefinitionError: .*'payment_2026_02_h0' is a partition "
                       r"of 'payment', which this definition syncs too") as failure:  # fmt: skip
        run_file(path, "payment_2026_02_h0")
    assert "remove the entry `- {name: payment_2026_02_h0, ...}` from `tables:` in" in str(failure.value)
    # Alone in a definition, a partition is a table of its own: its rows only.
    path.write_text(SYNC_FILE.format(dataset=DATASET, tables=tables.splitlines()[1]))
    assert run_file(path, "payment_2026_02_h0")["staged_rows"] == 19  # February's days 31..49


SCALARS = {k: v for k, v in TYPES.items() if k not in ARRAYS and not k.endswith("__json")}


def test_every_scalar_type_round_trips_exactly_through_the_arrow_reader(pg, engine):
    """The same table through connectorx (its arrays excluded): the same schema and the same values."""
    pg.execute(DDL)
    result = sync("film", exclude=list(ARRAYS), reader="arrow")
    assert result["reader"] == "arrow" and result["staged_rows"] == result["source_rows"] == 4
    schema, rows = warehouse("film")
    assert schema == SCALARS
    film = {row["id"]: row for row in rows}
    one = {k: parsed(v) if SCALARS[k] == "JSON" else v for k, v in film[1].items()}
    assert one == {"id": 1, "updated_at": dt.datetime(2026, 3, 1, tzinfo=UTC)} | {
        k: v for k, v in FILM_1.items() if k in SCALARS
    }
    assert all(film[2][k] is None for k in SCALARS if k not in ("id", "updated_at"))
    three = {k: parsed(film[3][k]) if k in ("js", "jb") else film[3][k] for k in FILM_3 if k in SCALARS}
    assert three == {k: v for k, v in FILM_3.items() if k in SCALARS}


def test_a_table_with_arrays_falls_back_to_the_dbapi_path_naming_the_column(pg, engine, capsys):
    pg.execute(DDL)
    result = sync("film")
    assert result["reader"] == "dbapi"
    logged = capsys.readouterr()
    assert "read by the DB-API path: column 'features' (text[]): arrays have no exact connectorx mapping" in (
        logged.out + logged.err
    )
    with pytest.raises(Exception, match=r"reader: arrow was asked for, but column 'features'"):
        sync("film", reader="arrow")


@pytest.mark.parametrize("reader", ["dbapi", "arrow"])
@pytest.mark.parametrize(("numeric", "value"), [("numeric", "3.14159265358979323846264338327950288"),
                                               ("numeric(20, 15)", "12345.123456789012345"),
                                               ("numeric(10, 2)", "-12345678.90")])  # fmt: skip
def test_decimals_keep_every_digit_on_both_readers(pg, tmp_path, monkeypatch, reader, numeric, value):
    """connectorx rounds decimals to 10 places: wide ones are read as the server's text instead."""
    duckdb_warehouse(tmp_path, monkeypatch)
    pg.execute(f"CREATE TABLE amounts (id int PRIMARY KEY, v {numeric}, r real)")
    pg.execute("INSERT INTO amounts VALUES (1, %s, 0.1), (2, NULL, NULL)", (Decimal(value),))
    assert sync("amounts", reader=reader)["reader"] == reader
    _, rows = warehouse("amounts")
    got = rows[0]["v"]
    assert Decimal(got) == Decimal(value) and rows[0]["r"] == 0.1 and rows[1]["v"] is None


def test_key_range_reads_of_a_mixed_case_key_column(pg, tmp_path, monkeypatch):
    """connectorx takes ``partition_on`` as SQL: a mixed-case PostgreSQL key column is quoted, else the
    server folds it to lower case and the read fails ('column ... ordernumber does not exist'). The batches
    connectorx hands back show the key ranges it read, so a read that silently stops splitting fails."""
    duckdb_warehouse(tmp_path, monkeypatch)
    pg.execute(
        'CREATE TABLE "Orders" ("orderNumber" int PRIMARY KEY, "Note" text); '
        "INSERT INTO \"Orders\" SELECT g, 'note ' || g FROM generate_series(1, 5000) g"
    )
    import connectorx

    real, reads = connectorx.read_sql, []

    def read_sql(url, sql, **options):
        """connectorx's read as the task makes it; each batch's key range recorded as it arrives."""
        read = {"partition_on": options.get("partition_on"), "ranges": []}
        reads.append(read)
        for batch in real(url, sql, **options):
            keys = batch.column("orderNumber")
            read["ranges"].append((pc.min(keys).as_py(), pc.max(keys).as_py(), batch.num_rows))
            yield batch

    monkeypatch.setattr(connectorx, "read_sql", read_sql)
    result = sync("Orders", primary_key=["orderNumber"], read_partitions=2, reader="arrow")
    assert result["reader"] == "arrow" and result["staged_rows"] == result["source_rows"] == 5000
    # one read, split by connectorx into two key ranges (a batch each), not one scan of all 5,000 keys
    assert [r["partition_on"] for r in reads] == ['"orderNumber"']
    assert sorted(reads[0]["ranges"]) == [(1, 2500, 2500), (2501, 5000, 2500)], reads
    schema, rows = warehouse("Orders", order="`orderNumber`")
    assert [r["orderNumber"] for r in rows] == list(range(1, 5001))
    assert rows[41]["Note"] == "note 42"
