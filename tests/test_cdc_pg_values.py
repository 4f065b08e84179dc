"""pgoutput's text values turned into the query path's Arrow values (values.postgres_batch) on the
private PostgreSQL with wal_level=logical (scripts/cdc_services.sh).

The common built-in types are parsed in Python/Arrow without asking the server; every other type,
and any column one value of which the local parsing declines, is cast by the server. These tests
read real rows back from the log, under a database whose defaults print dates, time zones and bytea
differently, and hold the result to the server's cast and to the query path's own reader."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg2
import pyarrow as pa
import pytest

from nightshift_core.errors import SourceDataError
from nightshift_core.sync import source
from nightshift_core.sync.cdc import values
from nightshift_core.sync.cdc.endpoint import Endpoint

DDL = """
CREATE TYPE mood AS ENUM ('ok', 'the "best", \\ {really}');
CREATE DOMAIN label AS text;
CREATE TABLE v (
  id int PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, t text, vc varchar(5), vcu varchar, ch char(3),
  u uuid, b boolean, f8 double precision, n numeric, n2 numeric(10, 2), n40 numeric(40, 5), d date,
  ts timestamp, ts6 timestamp(6), tz timestamptz, by bytea,
  f4 real, ts3 timestamp(3), lbl label, m mood, js jsonb, iv interval, tm time, arr int[]
)
"""
# the columns parsed locally; the others (float4, a timestamp with fewer digits, a domain, an enum,
# JSON, an interval, a time, an array and its exact-JSON companion) are the server's
LOCAL = {"id", "i2", "i4", "i8", "t", "vc", "vcu", "ch", "u", "b", "f8", "n", "n2", "n40", "d", "ts", "ts6",
         "tz", "by"}  # fmt: skip
NASTY = [
    'say "hi"',
    "back\\slash",
    "{a,b}",
    "NULL",
    "",
    " lead, trail ",
    "tab\tnew\nline",
    "ünï ✓",
    "'quote'",
]
ORDINARY = [  # values every local parser takes
    "(1, 1, 1, 1, 'plain', 'abc', 'x', 'ab', '6f1c2a9e-7d0b-4c1e-9a43-2d5f0e8b7c11', true, 0.1, 19.99, 19.99,"
    " 1.5, '2026-02-28', '2026-02-28 23:59:59.999999', '2026-02-28 12:00:00.5', '2026-02-28 12:00:00.123456+05:30',"
    " '\\x00ff', 0.1, '2026-02-28 12:00:00.1234', 'a', 'ok', '{\"k\": [1, null]}', '1 year -3 days 04:05:06.5',"
    " '13:14:15.5', '{1,NULL}')",
    "(2" + ", NULL" * 26 + ")",
    "(3, -32768, -2147483648, -9223372036854775808, '', 'ü\"\\,{', 'say \"hi\" {a,b} NULL \\', 'a',"
    " '00000000-0000-0000-0000-000000000000', false, '-0', '-123456789012345678901234567890.12345678', "
    " '-99999999.99', '12345678901234567890123456789012345.12345', '0001-01-01', '0001-01-01 00:00:00',"
    " '1999-12-31 23:59:59', '1900-01-01 00:00:00+05:53:28', '\\x', '-0', '0001-01-01 00:00:00', '',"
    " 'the \"best\", \\ {really}', '\"NULL\"', '0', '23:59:59.999999', '{}')",
    "(4, 32767, 2147483647, 9223372036854775807, 'NULL', 'NULL', '\\x41', 'ü ✓', "
    " 'ffffffff-ffff-ffff-ffff-ffffffffffff', NULL, 'NaN', '0.00000000000000000000000000000000000001', '0.01',"
    " '0.00001', '9999-12-31', '9999-12-31 23:59:59.999999', '2000-02-29 00:00:00.000001',"
    " '9999-12-31 23:59:59.999999+00', '\\x5c22', 'NaN', '1999-01-01 00:00:00.999', NULL, NULL, 'null', NULL,"
    " '00:00:00', NULL)",
    "(5, 0, 0, 0, 'x', '', '', '   ', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, 'Infinity', '1e-30',"
    " '-0.01', '-1', '1970-01-01', '1970-01-01 00:00:00', '1970-01-01 00:00:00', '1970-01-01 00:00:00-12',"
    " NULL, 'Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '-Infinity', '1e30', NULL, NULL, NULL, NULL, NULL,"
    " '2026-03-29 01:30:00 Europe/Amsterdam', NULL, '-Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(7, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '1e-310', NULL, NULL, NULL, NULL, NULL, NULL,"
    " '1850-06-01 12:00:00 America/New_York', NULL, '1e-40', NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(8, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '1.7976931348623157e308', NULL, NULL, NULL, NULL,"
    " NULL, NULL, NULL, NULL, '3.4028235e38', NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
]
SPECIAL = [  # infinities: psycopg2 (the query path's DB-API reader) reads them as the largest/smallest
    "(9, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'infinity', 'infinity',"
    " '-infinity', 'infinity', NULL, NULL, 'infinity', NULL, NULL, NULL, NULL, NULL, NULL)",
    "(10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '-infinity', '-infinity',"
    " 'infinity', '-infinity', NULL, NULL, '-infinity', NULL, NULL, NULL, NULL, NULL, NULL)",
]


@dataclass
class Logged:
    conn: Any  # the batch session: a source session as the log run prepares it
    cur: Any  # an autocommit session for writes
    read: Any  # () -> the rows (after images) logged since the start, by id

    def columns(self, table: str = "v") -> list[source.SourceColumn]:
        columns = source.describe(self.conn, "postgres", table)
        self.conn.commit()
        return columns

    def query_path(self, columns, table: str = "v") -> dict[str, list]:
        """The query path's DB-API reader on the same rows, by column (ordered by id)."""
        batches = list(source.extract(self.conn, "postgres", table, columns, where="true ORDER BY id"))
        self.conn.commit()
        merged = pa.Table.from_batches(batches)
        return {c.name: merged.column(c.name).combine_chunks() for c in columns}


@pytest.fixture
def logged(postgres_logical) -> Iterator[Logged]:
    from support.services import scratch_database

    from nightshift_core.sync.cdc.postgres_logical import LogicalReader

    service = postgres_logical
    with scratch_database(service, "ns_pgval") as db:
        cur = db.conn.cursor()
        # the reader's session must not depend on these (its text is parsed here)
        cur.execute(f"ALTER DATABASE \"{db.name}\" SET DateStyle = 'SQL, DMY'")
        cur.execute(f"ALTER DATABASE \"{db.name}\" SET TimeZone = 'America/St_Johns'")
        cur.execute(f"ALTER DATABASE \"{db.name}\" SET bytea_output = 'escape'")
        cur.execute(DDL)
        endpoint = Endpoint(service.host, service.port, "postgres", db.name)
        reader = LogicalReader(endpoint, f"v{uuid.uuid4().hex[:10]}", ["v"], text=True)
        conn = psycopg2.connect(host=service.host, port=service.port, user="postgres", dbname=db.name)
        try:
            start = reader.ensure_slot()
            source.prepare_session(conn, "postgres")
            conn.commit()

            def read() -> list[dict]:
                rows = {c.after["id"]: c.after for c in reader.read(start) if c.op == "insert"}
                return [rows[k] for k in sorted(rows, key=int)]

            yield Logged(conn, cur, read)
        finally:
            conn.close()
            reader.drop()
            reader.close()


def same(a: pa.Array, b: pa.Array) -> bool:
    """Equal types and values, NaN equal to NaN (and -0.0 told from 0.0)."""
    if a.type != b.type or len(a) != len(b):
        return False
    for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True):
        if isinstance(x, float) and isinstance(y, float):
            if not (math.isnan(x) and math.isnan(y)) and (
                x != y or math.copysign(1, x) != math.copysign(1, y)
            ):
                return False
        elif x != y or type(x) is not type(y):
            return False
    return True


def spy_server(monkeypatch) -> list[list[str]]:
    """The columns each batch leaves to the server."""
    sent: list[list[str]] = []
    server = values._pg_server_batch

    def recording(conn, images, columns, *rest):
        sent.append([c.name for c in columns])
        return server(conn, images, columns, *rest)

    monkeypatch.setattr(values, "_pg_server_batch", recording)
    return sent


def check_against_both(logged: Logged, rows: list[dict], columns, monkeypatch) -> list[list[str]]:
    sent = spy_server(monkeypatch)
    arrays, missing = values.postgres_batch(logged.conn, rows, columns, "v")
    logged.conn.rollback()
    monkeypatch.undo()
    types = {c.name: c.source_type for c in columns if c.reads is None}
    by_server = values._pg_server_batch(logged.conn, lambda n: [r.get(n) for r in rows], columns, types, "v")
    logged.conn.rollback()
    # the same texts given column by column, as the log run's array fold gives them
    texts = {n: pa.array([r.get(n) for r in rows], pa.string()) for n in {k for r in rows for k in r}}
    absent = {n: np.array([n not in r for r in rows]) for n in texts}
    by_columns, missing_by_columns = values.postgres_columns(
        logged.conn, texts, absent, len(rows), columns, "v"
    )
    logged.conn.rollback()
    by_query = logged.query_path(columns)
    assert missing == [[] for _ in rows] == missing_by_columns
    for column, mine, theirs in zip(columns, arrays, by_columns, strict=True):
        assert same(mine, theirs), (
            f"{column.name}: by rows {mine.to_pylist()} != by columns {theirs.to_pylist()}"
        )
    for column, mine, theirs in zip(columns, arrays, by_server, strict=True):
        assert same(mine, theirs), f"{column.name}: {mine.type} {mine.to_pylist()} != {theirs.to_pylist()}"
        query = by_query[column.name]
        assert same(mine, query), f"{column.name}: {mine.to_pylist()} != query path {query.to_pylist()}"
    return sent


def test_local_parsing_gives_the_servers_and_the_query_paths_values(logged, monkeypatch):
    logged.cur.execute(f"INSERT INTO v VALUES {', '.join(ORDINARY)}")
    rows = logged.read()
    assert len(rows) == len(ORDINARY)
    assert rows[4]["tz"] == "1970-01-01 12:00:00+00" and rows[0]["by"] == "\\x00ff", "UTC, hex"
    assert rows[0]["d"] == "2026-02-28", "ISO dates whatever the database's DateStyle"
    columns = logged.columns()
    sent = check_against_both(logged, rows, columns, monkeypatch)
    assert sent == [[c.name for c in columns if c.name not in LOCAL]], "the local columns stay local"


def test_infinite_dates_and_timestamps_read_as_the_query_paths_largest_and_smallest(logged, monkeypatch):
    logged.cur.execute(f"INSERT INTO v VALUES {', '.join(ORDINARY + SPECIAL)}")
    rows = logged.read()
    columns = logged.columns()
    sent = check_against_both(logged, rows, columns, monkeypatch)
    assert {"d", "ts", "ts6", "tz"} <= set(sent[0]) and "i4" not in sent[0]
    arrays, _ = values.postgres_batch(logged.conn, rows, columns, "v")
    logged.conn.rollback()
    by_name = dict(zip([c.name for c in columns], arrays, strict=True))
    assert by_name["d"].to_pylist()[-2:] == [dt.date.max, dt.date.min]
    assert by_name["ts"].to_pylist()[-2:] == [dt.datetime.max, dt.datetime.min]


def test_a_value_the_server_refuses_fails_as_before(logged):
    logged.cur.execute("INSERT INTO v (id, n2) VALUES (1, 'NaN')")
    logged.cur.execute("INSERT INTO v (id, d) VALUES (2, '0044-03-15 BC')")
    rows = logged.read()
    columns = logged.columns()
    with pytest.raises(SourceDataError, match="'n2'"):
        values.postgres_batch(logged.conn, rows[:1], columns, "v")
    logged.conn.rollback()
    with pytest.raises(ValueError, match="year -44 is out of range"):  # psycopg2's, on both paths
        values.postgres_batch(logged.conn, rows[1:], columns, "v")
    logged.conn.rollback()


@pytest.mark.parametrize(
    ("column", "text", "server"),
    [  # text logged before the column's type changed: the server's cast decides, not the local parser
        ("vc", "abcdefgh", "abcde"),  # varchar(5): truncated by the cast
        ("ch", "abcdef", "abc"),  # char(3)
        ("ch", "a", "a  "),  # char(3): padded
        ("i2", "40000", None),  # out of smallint's range: the server refuses it
        ("n2", "1.235", Decimal("1.24")),  # more decimals than numeric(10, 2): rounded
        ("ts", "2026-01-01 10:00:00+02", dt.datetime(2026, 1, 1, 10)),  # was timestamptz
        ("tz", "2026-01-01 10:00:00", dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)),  # was timestamp
        ("d", "2026-01-01 23:00:00", dt.date(2026, 1, 1)),  # was a timestamp
        ("b", "true", True),
        ("u", "{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ("by", "abc", b"abc"),  # bytea's escape form
        ("f8", " 1.5", 1.5),
    ],
)
def test_a_text_the_local_parser_declines_is_cast_by_the_server(logged, column, text, server):
    columns = logged.columns()
    (target,) = [c for c in columns if c.name == column]
    with pytest.raises(values._DECLINED):
        values._pg_local(target, logged.conn)([text])
    rows = [{"id": "1", column: text}]
    if server is None:
        with pytest.raises(psycopg2.DataError):
            values.postgres_batch(logged.conn, rows, columns, "v")
        logged.conn.rollback()
        return
    arrays, _ = values.postgres_batch(logged.conn, rows, columns, "v")
    logged.conn.rollback()
    value = arrays[[c.name for c in columns].index(column)].to_pylist()[0]
    if isinstance(server, dt.datetime) and server.tzinfo:
        value = value.astimezone(dt.UTC)
    assert value == server


def test_the_array_parameter_carries_any_text(logged):
    cur = logged.conn.cursor()
    texts = [*NASTY, None, "plain"]
    cur.execute("SELECT %s::text[]", [values._pg_array_literal(texts)])
    assert cur.fetchone()[0] == texts
    cur.execute("SELECT %s::text[]", [values._pg_array_literal([])])
    assert cur.fetchone()[0] == []
    logged.conn.rollback()


def test_server_columns_carry_any_text_through_the_log(logged, monkeypatch):
    values_sql = ", ".join(f"({i}, %s, %s)" for i in range(1, len(NASTY) + 1))
    logged.cur.execute(f"INSERT INTO v (id, lbl, t) VALUES {values_sql}", [x for t in NASTY for x in (t, t)])
    rows = logged.read()
    columns = [c for c in logged.columns() if c.name in ("id", "lbl", "t")]
    sent = check_against_both(logged, rows, columns, monkeypatch)
    assert sent == [["lbl"]]
    arrays, _ = values.postgres_batch(logged.conn, rows, columns, "v")
    logged.conn.rollback()
    assert arrays[1].to_pylist() == NASTY == arrays[2].to_pylist()
