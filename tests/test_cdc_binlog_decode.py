"""The compiled binlog row decoder (binlog_decode) against mysql-replication's own, on the private
MariaDB with the row-based binlog: every column type, NULLs, extremes, updates' before and after
images and deletes decode to the same Python values, types and all."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nightshift_core.sync.cdc import mysql_binlog
from nightshift_core.sync.cdc.endpoint import Endpoint

EVERY = """CREATE TABLE every (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
  i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED, flag TINYINT(1),
  b1 BIT(1), b5 BIT(5), b8 BIT(8), b17 BIT(17), b64 BIT(64),
  f FLOAT, d DOUBLE, d102 DECIMAL(10,2), d6530 DECIMAL(65,30), d55 DECIMAL(5,5), d180 DECIMAL(18,0),
  d199 DECIMAL(19,9), d2010 DECIMAL(20,10), d10 DECIMAL(1,0),
  c CHAR(3), vc VARCHAR(20), vcl VARCHAR(300), lat VARCHAR(10) CHARACTER SET latin1,
  u2 VARCHAR(5) CHARACTER SET ucs2, bin BINARY(4), vb VARBINARY(10),
  tt TINYTEXT, tx TEXT, mt MEDIUMTEXT, lt LONGTEXT, tb TINYBLOB, bl BLOB, mb MEDIUMBLOB, lb LONGBLOB,
  e ENUM('a','b','c'), s SET('x','y','z'), doc JSON,
  day DATE, dt0 DATETIME, dt1 DATETIME(1), dt3 DATETIME(3), dt6 DATETIME(6),
  ts0 TIMESTAMP NULL, ts2 TIMESTAMP(2) NULL, ts6 TIMESTAMP(6) NULL,
  t0 TIME, t3 TIME(3), t5 TIME(5), t6 TIME(6), yr YEAR,
  g GEOMETRY, pt POINT, ls LINESTRING, poly POLYGON
)"""
HIGH = (
    "1, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, "
    "18446744073709551615, 1, b'1', b'10101', b'11111111', b'10000000000000001', b'1000000000000000000000000000000000000000000000000000000000000001', "
    "3.4e38, 1.7976931348623157e308, 12345678.90, '12345678901234567890123456789012345.123456789012345678901234567890', "
    "0.99999, 999999999999999999, 1234567890.123456789, 9999999999.9999999999, 9, "
    "'abc', 'Zoë 🙂', REPEAT('é', 300), 'déjà', 'ab', x'00ff0102', x'0001', "
    "'tiny', 'text', 'medium', REPEAT('long ', 100), x'00', x'0102', x'ff', REPEAT(x'ab', 70000), "
    '\'c\', \'x,z\', \'{"a": [1, null, 2.5, "s"], "b": {"c": true}}\', '
    "'9999-12-31', '9999-12-31 23:59:59', '2026-02-28 23:59:59.9', '2026-02-28 23:59:59.999', "
    "'9999-12-31 23:59:59.999999', '2038-01-19 03:14:07', '2026-02-28 12:00:00.25', '2026-02-28 12:00:00.000001', "
    "'838:59:59', '23:59:59.999', '12:34:56.12345', '838:59:59.000000', 2155, "
    "ST_GeomFromText('POINT(1 2)'), ST_GeomFromText('POINT(151.2093 -33.868820001234567)', 4326), "
    "ST_GeomFromText('LINESTRING(1 1, 2 2.5)'), ST_GeomFromText('POLYGON((0 0, 4 0, 4 4, 0 0))')"
)
LOW = (
    "2, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, 0, b'0', b'0', b'0', b'0', b'0', "
    "-1.5, -2.2250738585072014e-308, -12345678.90, '-12345678901234567890123456789012345.123456789012345678901234567890', "
    "-0.00001, -999999999999999999, -0.000000001, -0.0000000001, -9, "
    "'', '', '', '', '', x'', x'', '', '', '', '', x'', x'', x'', x'', "
    "'a', '', '[]', '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.1', '1000-01-01 00:00:00.001', "
    "'1000-01-01 00:00:00.000001', '1970-01-01 00:00:01', '1970-01-01 00:00:01.01', '1970-01-01 00:00:01.000001', "
    "'-838:59:59', '-00:00:00.001', '-01:02:03.5', '-838:59:59.000000', 1901, "
    "ST_GeomFromText('POINT(0 0)'), ST_GeomFromText('POINT(-1 -1)'), ST_GeomFromText('LINESTRING(0 0, 1 1)'), "
    "ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))')"
)
# every NOT NULL: the straight-line path of a row without NULLs (fixed-width runs in one unpack)
LINES = """CREATE TABLE lines_ (
  a INT NOT NULL, b SMALLINT UNSIGNED NOT NULL, c BIGINT NOT NULL, d DOUBLE NOT NULL, e TINYINT NOT NULL,
  code VARCHAR(15) NOT NULL, price DECIMAL(10,2) NOT NULL, qty INT NOT NULL, at DATETIME(6) NOT NULL,
  f FLOAT NOT NULL, g MEDIUMINT NOT NULL, PRIMARY KEY (a, code)
)"""


@pytest.fixture
def source(mariadb_binlog) -> Iterator[tuple[Any, Endpoint]]:
    from support.services import scratch_database

    with scratch_database(mariadb_binlog, "ns_cdc_dec") as db:
        cur = db.conn.cursor()
        cur.execute("SET time_zone = '+00:00', sql_mode = ''")
        cur.execute(EVERY)
        cur.execute(LINES)
        yield cur, Endpoint(mariadb_binlog.host, mariadb_binlog.port, "root", db.name)


def _typed(value: Any) -> Any:
    """A value with its type spelled out (1 == 1.0 == True, Decimal('1') == Decimal('1.00'))."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return type(value).__name__, sorted(value)
    return type(value).__name__, repr(value)


# Columns without a Python codec (binary, ucs2): the library gives an empty value as '' (its decode of
# b'' never looks the codec up), the compiled decoder as b'', the bytes the query path reads.
NO_CODEC = {"u2", "bin", "vb", "tb", "bl", "mb", "lb"}


def _library_empty_bytes(image: Any) -> Any:
    if not isinstance(image, dict):
        return image
    return {k: ("bytes", "b''") if k in NO_CODEC and v == ("str", "''") else v for k, v in image.items()}


def _read(endpoint: Endpoint, start: Any, fast: bool, monkeypatch) -> list[tuple]:
    from pymysqlreplication.row_event import RowsEvent

    monkeypatch.setattr(mysql_binlog, "FAST_DECODE", fast)
    if fast:  # the library's decoding must not be reached: every event goes through the compiled plan

        def refuse(self):
            raise AssertionError(f"{self.table}: decoded by the library, not the compiled plan")

        monkeypatch.setattr(RowsEvent, "_fetch_rows", refuse)
    try:
        with mysql_binlog.BinlogReader(endpoint, ["every", "lines_"]) as reader:
            return [(c.table, c.op, _typed(c.before), _typed(c.after)) for c in reader.read(start)]
    finally:
        monkeypatch.undo()


def test_the_compiled_decoder_reads_every_type_as_the_library(source, monkeypatch):
    cur, endpoint = source
    with mysql_binlog.BinlogReader(endpoint, ["every"]) as reader:
        start = reader.current_position()
    cur.execute(f"INSERT INTO every VALUES ({HIGH})")  # noqa: S608
    cur.execute(f"INSERT INTO every VALUES ({LOW})")  # noqa: S608
    cur.execute("INSERT INTO every (id) VALUES (3)")  # NULL in every other column
    # zero dates (allowed with an empty sql_mode): the library's None
    cur.execute("INSERT INTO every (id, day, dt0, dt6, ts0) VALUES (4, '0000-00-00', '0000-00-00 00:00:00', "
                "'2026-00-10 00:00:00', '0000-00-00 00:00:00')")  # fmt: skip
    cur.execute(
        "UPDATE every SET d102 = -d102, vc = 'changed', s = '', doc = NULL, t3 = '-00:00:01.5' WHERE id <= 2"
    )
    cur.execute("UPDATE every SET id = id + 10, e = 'b' WHERE id = 3")
    cur.execute("DELETE FROM every WHERE id IN (1, 4)")
    cur.execute("BEGIN")
    for k in range(300):  # many rows per event, every column set
        cur.execute(
            "INSERT INTO lines_ VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NOW(6), %s, %s)",
            (k - 150, k, -(k**5), k / 7, k % 100 - 50, f"S{k:03d}_é", f"{k * 3.01 - 400:.2f}", k * k, k / 3,
             -k),
        )  # fmt: skip
    cur.execute("UPDATE lines_ SET qty = qty + 1, price = -price")
    cur.execute("DELETE FROM lines_ WHERE a % 3 = 0")
    cur.execute("COMMIT")
    fast = _read(endpoint, start, True, monkeypatch)
    library = [
        (t, op, _library_empty_bytes(b), _library_empty_bytes(a))
        for t, op, b, a in _read(endpoint, start, False, monkeypatch)
    ]
    assert len(library) == 4 + 2 + 1 + 2 + 300 * 2 + 100
    differ = [
        (k, f[0], f[1], lib_image.get(k) if lib_image else None, v)
        for f, lib in zip(fast, library, strict=True)
        for image, lib_image in ((f[2], lib[2]), (f[3], lib[3]))
        if isinstance(image, dict)
        for k, v in image.items()
        if lib_image is None or lib_image.get(k) != v
    ]
    assert not differ, f"(column, table, op, library, compiled): {differ[:10]}"
    assert fast == library
    ops = {(t.split(".")[1], op) for t, op, _, _ in fast}
    assert ops == {(t, op) for t in ("every", "lines_") for op in ("insert", "update", "delete")}
    nulls = next(after for t, op, _, after in fast if op == "insert" and after["id"] == ("int", "3"))
    assert all(v == ("NoneType", "None") for k, v in nulls.items() if k != "id")


def test_a_type_the_plan_does_not_read_is_left_to_the_library():
    from pymysqlreplication.column import Column
    from pymysqlreplication.constants import FIELD_TYPE

    from nightshift_core.sync.cdc.binlog_decode import compile_plan

    readable = Column(type=FIELD_TYPE.LONG, name="a", unsigned=False)
    assert compile_plan([readable]) is not None
    assert compile_plan([readable, Column(type=FIELD_TYPE.NULL, name="b")]) is None
    assert compile_plan([Column(type=FIELD_TYPE.LONG, name=None, unsigned=False)]) is None
