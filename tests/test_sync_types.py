"""Every source type in the mapping round-trips exactly into the warehouse (MariaDB, PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from types import SimpleNamespace

import pytest

MYSQL_DDL = """
CREATE TABLE typed (
  id BIGINT PRIMARY KEY, flag TINYINT(1), bit1 BIT(1), small SMALLINT, big_unsigned BIGINT UNSIGNED,
  money DECIMAL(10,2), wide DECIMAL(65,30), ratio DOUBLE, label VARCHAR(20), body TEXT, kind ENUM('a','b'),
  tags SET('x','y'), raw BLOB, doc JSON, day DATE, local_ts DATETIME(6), utc_ts TIMESTAMP(6) NULL,
  clock TIME(6), yr YEAR
)"""
MYSQL_ROW = (
    1, 1, b"\x01", -32768, 2**64 - 1, Decimal("-12345678.90"), Decimal("12345678901234567890123456789012345.123456789012345678901234567890"),
    0.25, "Zoë =1+1", "<b>x</b>", "b", "x,y", b"\x00\xff", '{"a": [1, null]}', dt.date(2026, 2, 28),
    dt.datetime(2026, 2, 28, 23, 59, 59, 999999), dt.datetime(2026, 2, 28, 12, 0), dt.time(13, 14, 15, 500000), 2026,
)  # fmt: skip
MYSQL_TYPES = {
    "id": "INT64", "flag": "BOOL", "bit1": "BOOL", "small": "INT64", "big_unsigned": "NUMERIC", "money": "NUMERIC",
    "wide": "BIGNUMERIC", "ratio": "FLOAT64", "label": "STRING", "body": "STRING", "kind": "STRING", "tags": "STRING",
    "raw": "BYTES", "doc": "JSON", "day": "DATE", "local_ts": "DATETIME", "utc_ts": "TIMESTAMP", "clock": "TIME",
    "yr": "INT64",
}  # fmt: skip

PG_DDL = """
CREATE TABLE typed (
  id BIGINT PRIMARY KEY, flag BOOLEAN, small SMALLINT, money NUMERIC(10,2), free NUMERIC, ratio DOUBLE PRECISION,
  label VARCHAR(20), body TEXT, uid UUID, raw BYTEA, doc JSONB, day DATE, local_ts TIMESTAMP, utc_ts TIMESTAMPTZ,
  clock TIME
)"""
PG_ROW = (
    1, True, -32768, Decimal("-12345678.90"), Decimal("3.14159265358979323846264338327950288"), 0.25, "Zoë =1+1",
    "<b>x</b>", "6f1c2a9e-7d0b-4c1e-9a43-2d5f0e8b7c11", b"\x00\xff", '{"a": [1, null]}', dt.date(2026, 2, 28),
    dt.datetime(2026, 2, 28, 23, 59, 59, 999999), dt.datetime(2026, 2, 28, 12, 0, tzinfo=dt.UTC), dt.time(13, 14, 15, 500000),
)  # fmt: skip
PG_TYPES = {
    "id": "INT64", "flag": "BOOL", "small": "INT64", "money": "NUMERIC", "free": "BIGNUMERIC", "ratio": "FLOAT64",
    "label": "STRING", "body": "STRING", "uid": "STRING", "raw": "BYTES", "doc": "JSON", "day": "DATE",
    "local_ts": "DATETIME", "utc_ts": "TIMESTAMP", "clock": "TIME",
}  # fmt: skip


@pytest.fixture(params=["dbapi", "arrow"], autouse=True)
def reader(request, monkeypatch):
    """Every test here runs on both readers: the DB-API path and the Arrow reader (connectorx)."""
    monkeypatch.setitem(globals(), "READER", request.param)
    return request.param


READER = "dbapi"


def sync(conn_id: str, tmp_path, monkeypatch, **options):
    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator
    from nightshift_core.warehouse import TableRef

    extra = {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")}
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE", json.dumps({"conn_type": "generic", "extra": extra})
    )
    options = {"reader": READER} | options
    op = SqlToWarehouseOperator(
        task_id="t", source_conn_id=conn_id, table="typed", dataset="types", primary_key=["id"], **options
    )
    ti = SimpleNamespace(dag_id="types", task_id="t", run_id="r", map_index=-1)
    result = op.execute({"ti": ti})
    assert result["staged_rows"] == 2 and result["reader"] == options["reader"]
    with WarehouseHook().get_conn() as wh:
        schema = {c.name: c.type for c in wh.get_schema(TableRef("types", "typed"))}
        rows = wh.query("SELECT * FROM types.typed ORDER BY id").to_pylist()
    return schema, rows


@pytest.fixture
def maria_db(mariadb, monkeypatch):
    """A scratch MariaDB database behind connection ``typed_mariadb``; yields a cursor on it."""
    from support.services import scratch_database

    with scratch_database(mariadb, "ns_types") as db:
        monkeypatch.setenv("AIRFLOW_CONN_TYPED_MARIADB", db.airflow_conn)
        yield db.conn.cursor()


@pytest.fixture
def pg_db(postgres, monkeypatch):
    """A scratch PostgreSQL database behind connection ``typed_postgres``; yields a cursor on it."""
    from support.services import scratch_database

    with scratch_database(postgres, "ns_types") as db:
        monkeypatch.setenv("AIRFLOW_CONN_TYPED_POSTGRES", db.airflow_conn)
        yield db.conn.cursor()


def test_mariadb_types_round_trip(maria_db, tmp_path, monkeypatch):
    cur = maria_db
    cur.execute("SET time_zone = '+00:00'")
    cur.execute(MYSQL_DDL)
    cur.execute(f"INSERT INTO typed VALUES ({', '.join(['%s'] * len(MYSQL_ROW))})", MYSQL_ROW)
    cur.execute("INSERT INTO typed (id) VALUES (2)")
    schema, (row, empty) = sync("typed_mariadb", tmp_path, monkeypatch)
    assert schema == MYSQL_TYPES
    assert all(v is None for k, v in empty.items() if k != "id"), "NULLs must stay NULL"
    assert row["flag"] is True and row["bit1"] is True and row["small"] == -32768
    assert Decimal(row["big_unsigned"]) == 2**64 - 1
    assert row["money"] == Decimal("-12345678.90") and Decimal(row["wide"]) == MYSQL_ROW[6]
    assert row["label"] == "Zoë =1+1" and row["body"] == "<b>x</b>" and row["tags"] == "x,y"
    assert row["raw"] == b"\x00\xff" and json.loads(row["doc"]) == {"a": [1, None]}
    assert row["day"] == dt.date(2026, 2, 28) and row["local_ts"] == MYSQL_ROW[15]
    assert row["utc_ts"] == dt.datetime(2026, 2, 28, 12, 0, tzinfo=dt.UTC)
    assert row["clock"] == dt.time(13, 14, 15, 500000) and row["yr"] == 2026


def test_postgres_types_round_trip(pg_db, tmp_path, monkeypatch):
    cur = pg_db
    cur.execute(PG_DDL)
    cur.execute(f"INSERT INTO typed VALUES ({', '.join(['%s'] * len(PG_ROW))})", PG_ROW)
    cur.execute("INSERT INTO typed (id) VALUES (2)")
    schema, (row, empty) = sync("typed_postgres", tmp_path, monkeypatch)
    assert schema == PG_TYPES
    assert all(v is None for k, v in empty.items() if k != "id")
    assert row["flag"] is True and row["money"] == Decimal("-12345678.90")
    assert Decimal(row["free"]) == PG_ROW[4]
    assert (
        row["uid"] == PG_ROW[8] and row["raw"] == b"\x00\xff" and json.loads(row["doc"]) == {"a": [1, None]}
    )
    assert row["local_ts"] == PG_ROW[12] and row["utc_ts"] == PG_ROW[13] and row["clock"] == PG_ROW[14]


def test_mariadb_spatial_columns_become_exact_wkb(maria_db, tmp_path, monkeypatch):
    cur = maria_db
    cur.execute("CREATE TABLE typed (id INT PRIMARY KEY, place POINT, shape GEOMETRY, route LINESTRING)")
    cur.execute(
        "INSERT INTO typed VALUES (1, ST_GeomFromText('POINT(151.2093 -33.868820001234567)', 4326), "
        "ST_GeomFromText('POLYGON((0 0, 4 0, 4 4, 0 0))'), ST_GeomFromText('LINESTRING(1 1, 2 2.5)'))"
    )
    cur.execute("INSERT INTO typed (id) VALUES (2)")
    cur.execute("SELECT ST_AsBinary(place), ST_AsBinary(shape), ST_AsBinary(route) FROM typed WHERE id = 1")
    expected = cur.fetchone()
    schema, (row, empty) = sync("typed_mariadb", tmp_path, monkeypatch)
    assert {k: schema[k] for k in ("place", "shape", "route")} == dict.fromkeys(
        ("place", "shape", "route"), "BYTES"
    )
    assert (row["place"], row["shape"], row["route"]) == expected  # the server's own OGC WKB, byte for byte
    cur.execute("SELECT ST_AsText(ST_GeomFromWKB(UNHEX(%s)))", (row["place"].hex(),))
    assert cur.fetchone()[0].startswith("POINT(151.2093 -33.86882")
    assert empty["place"] is None and empty["shape"] is None


def test_mariadb_inet_and_uuid_types_are_text(maria_db, tmp_path, monkeypatch):
    cur = maria_db
    cur.execute("CREATE TABLE typed (id INT PRIMARY KEY, ip6 INET6, ip4 INET4, uid UUID)")
    cur.execute(
        "INSERT INTO typed VALUES (1, '2001:db8::1', '10.0.0.1', '6f1c2a9e-7d0b-4c1e-9a43-2d5f0e8b7c11')"
    )
    cur.execute("INSERT INTO typed (id) VALUES (2)")
    schema, (row, _) = sync("typed_mariadb", tmp_path, monkeypatch)
    assert (schema["ip6"], schema["ip4"], schema["uid"]) == ("STRING", "STRING", "STRING")
    assert (row["ip6"], row["ip4"], row["uid"]) == (
        "2001:db8::1",
        "10.0.0.1",
        "6f1c2a9e-7d0b-4c1e-9a43-2d5f0e8b7c11",
    )


def test_postgis_geometry_and_geography_become_exact_wkb(pg_db, tmp_path, monkeypatch):
    from support.services import missing

    cur = pg_db
    cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
    if cur.fetchone() is None:
        missing(
            "PostGIS for the local PostgreSQL",
            "`scripts/bootstrap.sh --dev` installs it as root (Debian: postgresql-<major version>-postgis-3)",
        )
    cur.execute("CREATE EXTENSION postgis")
    cur.execute("CREATE TABLE typed (id INT PRIMARY KEY, shape geometry, spot geography(POINT, 4326))")
    cur.execute(
        "INSERT INTO typed VALUES (1, ST_GeomFromText('POLYGON Z((0 0 1, 4 0 1, 4 4 2, 0 0 1))', 3857), "
        "'SRID=4326;POINT(-73.9857 40.7484)')"
    )
    cur.execute("INSERT INTO typed (id) VALUES (2)")
    cur.execute("SELECT ST_AsBinary(shape), ST_AsBinary(spot) FROM typed WHERE id = 1")
    expected = tuple(bytes(v) for v in cur.fetchone())
    schema, (row, empty) = sync("typed_postgres", tmp_path, monkeypatch)
    assert (schema["shape"], schema["spot"]) == ("BYTES", "BYTES")
    assert (row["shape"], row["spot"]) == expected
    cur.execute("SELECT ST_AsText(ST_GeomFromWKB(%s))", (row["spot"],))
    assert cur.fetchone()[0] == "POINT(-73.9857 40.7484)"
    assert empty["shape"] is None


def test_an_unsupported_type_fails_at_once_naming_file_table_column_and_the_yaml_fix(
    pg_db, tmp_path, monkeypatch
):
    from airflow.sdk.exceptions import AirflowFailException

    pg_db.execute("CREATE TABLE typed (id INT PRIMARY KEY, span int4range, note TEXT)")
    pg_db.execute("INSERT INTO typed VALUES (1, '[1,5)', 'kept'), (2, NULL, NULL)")
    with pytest.raises(AirflowFailException) as failure:
        sync("typed_postgres", tmp_path, monkeypatch, definition="include/config/syncs/shop.yaml")
    message = str(failure.value)
    assert message.startswith(
        "UnsupportedTypeError: sync definition include/config/syncs/shop.yaml, table 'typed', column 'span': "
        "source type 'int4range' is not supported (PostgreSQL range type int4range: no warehouse type holds its "
        "bounds exactly)"
    ), message
    assert "set `exclude: [span]` on table 'typed' in include/config/syncs/shop.yaml" in message
    assert "not retried" in message


def test_following_the_advice_syncs_the_table_without_the_column(pg_db, tmp_path, monkeypatch):
    """``exclude`` is applied before type mapping: the excluded column is never looked at."""
    pg_db.execute("CREATE TABLE typed (id INT PRIMARY KEY, span int4range, note TEXT)")
    pg_db.execute("INSERT INTO typed VALUES (1, '[1,5)', 'kept'), (2, NULL, NULL)")
    schema, (row, _) = sync("typed_postgres", tmp_path, monkeypatch, exclude=["span"])
    assert schema == {"id": "INT64", "note": "STRING"}
    assert row == {"id": 1, "note": "kept"}


def test_a_missing_primary_key_column_fails_at_once(maria_db, tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    maria_db.execute("CREATE TABLE typed (code INT PRIMARY KEY, place POINT)")
    with pytest.raises(
        AirflowFailException, match=r"SourceDefinitionError: .*primary key column\(s\) \['id'\]"
    ):
        sync("typed_mariadb", tmp_path, monkeypatch)


def test_mariadb_exclude_drops_a_column_before_its_type_is_looked_at(maria_db, tmp_path, monkeypatch):
    from nightshift_core.sync.dialects import mysql

    maria_db.execute("CREATE TABLE typed (id INT PRIMARY KEY, place POINT, note TEXT)")
    maria_db.execute("INSERT INTO typed VALUES (1, ST_GeomFromText('POINT(1 2)'), 'kept'), (2, NULL, NULL)")
    seen = []
    real = mysql._arrow_type
    monkeypatch.setattr(mysql, "_arrow_type", lambda dtype, *rest: seen.append(dtype) or real(dtype, *rest))
    schema, (row, _) = sync("typed_mariadb", tmp_path, monkeypatch, exclude=["PLACE"])  # names are case-blind
    assert schema == {"id": "INT64", "note": "STRING"} and row == {"id": 1, "note": "kept"}
    assert "point" not in seen, "the excluded column's type was never mapped"
