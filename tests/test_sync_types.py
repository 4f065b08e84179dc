"""Every source type in the mapping round-trips exactly into the warehouse (MariaDB, PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
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


def sync(conn_id: str, tmp_path, monkeypatch):
    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator
    from nightshift_core.warehouse import TableRef

    extra = {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")}
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE", json.dumps({"conn_type": "generic", "extra": extra})
    )
    op = SqlToWarehouseOperator(
        task_id="t", source_conn_id=conn_id, table="typed", dataset="types", primary_key=["id"]
    )
    ti = SimpleNamespace(dag_id="types", task_id="t", run_id="r", map_index=-1)
    assert op.execute({"ti": ti})["staged_rows"] == 2
    with WarehouseHook().get_conn() as wh:
        schema = {c.name: c.type for c in wh.get_schema(TableRef("types", "typed"))}
        rows = wh.query("SELECT * FROM types.typed ORDER BY id").to_pylist()
    return schema, rows


def test_mariadb_types_round_trip(mariadb, tmp_path, monkeypatch):
    import MySQLdb

    db = f"ns_types_{uuid.uuid4().hex[:8]}"
    admin = MySQLdb.connect(host=mariadb.host, port=mariadb.port, user="root")
    admin.cursor().execute(f"CREATE DATABASE `{db}`")
    try:
        conn = MySQLdb.connect(host=mariadb.host, port=mariadb.port, user="root", database=db)
        cur = conn.cursor()
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(MYSQL_DDL)
        cur.execute(f"INSERT INTO typed VALUES ({', '.join(['%s'] * len(MYSQL_ROW))})", MYSQL_ROW)
        cur.execute("INSERT INTO typed (id) VALUES (2)")
        conn.commit()
        conn.close()
        conn_json = {
            "conn_type": "mysql",
            "host": mariadb.host,
            "port": mariadb.port,
            "login": "root",
            "schema": db,
        }
        monkeypatch.setenv("AIRFLOW_CONN_TYPED_MARIADB", json.dumps(conn_json))
        schema, (row, empty) = sync("typed_mariadb", tmp_path, monkeypatch)
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{db}`")
        admin.close()
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


def test_postgres_types_round_trip(postgres, tmp_path, monkeypatch):
    import psycopg2

    db = f"ns_types_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host=postgres.host, port=postgres.port, user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{db}"')
    try:
        conn = psycopg2.connect(host=postgres.host, port=postgres.port, user="postgres", dbname=db)
        cur = conn.cursor()
        cur.execute(PG_DDL)
        cur.execute(f"INSERT INTO typed VALUES ({', '.join(['%s'] * len(PG_ROW))})", PG_ROW)
        cur.execute("INSERT INTO typed (id) VALUES (2)")
        conn.commit()
        conn.close()
        conn_json = {"conn_type": "postgres", "host": postgres.host, "port": postgres.port, "login": "postgres",
                     "schema": db}  # fmt: skip
        monkeypatch.setenv("AIRFLOW_CONN_TYPED_POSTGRES", json.dumps(conn_json))
        schema, (row, empty) = sync("typed_postgres", tmp_path, monkeypatch)
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()
    assert schema == PG_TYPES
    assert all(v is None for k, v in empty.items() if k != "id")
    assert row["flag"] is True and row["money"] == Decimal("-12345678.90")
    assert Decimal(row["free"]) == PG_ROW[4]
    assert (
        row["uid"] == PG_ROW[8] and row["raw"] == b"\x00\xff" and json.loads(row["doc"]) == {"a": [1, None]}
    )
    assert row["local_ts"] == PG_ROW[12] and row["utc_ts"] == PG_ROW[13] and row["clock"] == PG_ROW[14]


def test_unsupported_source_type_names_table_column_and_type(mariadb, tmp_path, monkeypatch):
    import MySQLdb

    from nightshift_core.warehouse import UnsupportedTypeError

    db = f"ns_types_{uuid.uuid4().hex[:8]}"
    admin = MySQLdb.connect(host=mariadb.host, port=mariadb.port, user="root")
    admin.cursor().execute(f"CREATE DATABASE `{db}`")
    try:
        admin.cursor().execute(f"CREATE TABLE `{db}`.typed (id INT PRIMARY KEY, place POINT)")
        conn_json = {
            "conn_type": "mysql",
            "host": mariadb.host,
            "port": mariadb.port,
            "login": "root",
            "schema": db,
        }
        monkeypatch.setenv("AIRFLOW_CONN_TYPED_MARIADB", json.dumps(conn_json))
        with pytest.raises(UnsupportedTypeError, match="table 'typed', column 'place': source type 'point'"):
            sync("typed_mariadb", tmp_path, monkeypatch)
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{db}`")
        admin.close()
