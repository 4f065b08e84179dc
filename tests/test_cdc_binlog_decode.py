"""The compiled binlog row decoder (binlog_decode) against mysql-replication's own, on the private
MariaDB with the row-based binlog: every column type, NULLs, extremes, updates' before and after
images and deletes decode to the same Python values, types and all."""

from __future__ import annotations

import uuid
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


# Binary columns: the library gives an empty value as '' (its decode of b'' never looks a codec up), the
# compiled decoder as b'', the bytes the query path reads.
NO_CODEC = {"bin", "vb", "tb", "bl", "mb", "lb"}


def _library_empty_bytes(image: Any) -> Any:
    """The library's image as the compiled decoder reads it: b'' for an empty binary value, and the ucs2
    column's text (the library has no codec for ucs2 and gives its UTF-16 bytes)."""
    if not isinstance(image, dict):
        return image
    fixed = {k: ("bytes", "b''") if k in NO_CODEC and v == ("str", "''") else v for k, v in image.items()}
    if "u2" in fixed and fixed["u2"][0] == "bytes":
        fixed["u2"] = ("str", repr(eval(fixed["u2"][1]).decode("utf-16-be")))  # noqa: S307 - a bytes repr
    return fixed


def _read(endpoint: Endpoint, start: Any, how: str, monkeypatch, tables=("every", "lines_")) -> list[tuple]:
    """The changes of a read as (table, op, before, after, position, commit time, seq, closes), images
    typed; ``how``: "fast" (events parsed here, every image by the compiled plans), "parsed" (the same,
    the library's decoding where the reader hands an image to it), "fallback" (events parsed here,
    images by the library: as for a type the plans do not read) or "library" (the library's stream
    reader and decoding)."""
    from pymysqlreplication.row_event import RowsEvent

    monkeypatch.setattr(mysql_binlog, "FAST_DECODE", how != "library")
    if how == "fast":  # the library's decoding must not be reached: every image through a compiled plan

        def refuse(self):
            raise AssertionError(f"{self.table}: decoded by the library, not the compiled plan")

        monkeypatch.setattr(RowsEvent, "_fetch_rows", refuse)
    elif how == "fallback":
        monkeypatch.setattr(mysql_binlog, "compile_plan", lambda columns: None)
    try:
        with mysql_binlog.BinlogReader(endpoint, list(tables)) as reader:
            return [(c.table, c.op, _typed(c.before), _typed(c.after), *c[4:]) for c in reader.read(start)]
    finally:
        monkeypatch.undo()


def _as_compiled(changes: list[tuple]) -> list[tuple]:
    """The library's images as the compiled decoder gives them (see _library_empty_bytes)."""
    return [
        (t, op, _library_empty_bytes(b), _library_empty_bytes(a), *rest) for t, op, b, a, *rest in changes
    ]


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
    fast = _read(endpoint, start, "fast", monkeypatch)
    library = _as_compiled(_read(endpoint, start, "library", monkeypatch))
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
    assert fast == library, "the same changes, positions, commit times and order"
    # the events parsed here, images by the library (a table whose plan has a type it does not read)
    assert _as_compiled(_read(endpoint, start, "fallback", monkeypatch)) == fast
    ops = {(t.split(".")[1], op) for t, op, *_ in fast}
    assert ops == {(t, op) for t in ("every", "lines_") for op in ("insert", "update", "delete")}
    nulls = next(after for t, op, _, after, *_ in fast if op == "insert" and after["id"] == ("int", "3"))
    assert all(v == ("NoneType", "None") for k, v in nulls.items() if k != "id")


def test_a_type_the_plan_does_not_read_is_left_to_the_library():
    from pymysqlreplication.column import Column
    from pymysqlreplication.constants import FIELD_TYPE

    from nightshift_core.sync.cdc.binlog_decode import compile_plan

    readable = Column(type=FIELD_TYPE.LONG, name="a", unsigned=False)
    assert compile_plan([readable]) is not None
    assert compile_plan([readable, Column(type=FIELD_TYPE.NULL, name="b")]) is None
    assert compile_plan([Column(type=FIELD_TYPE.LONG, name=None, unsigned=False)]) is None


# Text in character sets other than UTF-8 and Latin-1: UCS-2 and UTF-16 (big-endian in MySQL), UTF-16LE,
# UTF-32 (big-endian), CHAR (its trailing spaces stripped in the binlog as by the query path), VARCHAR,
# TEXT, and ENUM/SET members in such a character set (the table map names them in it) or in latin1, and
# latin1 text with the bytes Windows-1252 leaves undefined (MySQL reads them as C1 controls).
CHARSETS = """CREATE TABLE texts (
  id INT PRIMARY KEY,
  u2c CHAR(4) CHARACTER SET ucs2, u2v VARCHAR(10) CHARACTER SET ucs2, u2t TEXT CHARACTER SET ucs2,
  u16c CHAR(4) CHARACTER SET utf16, u16v VARCHAR(10) CHARACTER SET utf16, u16t TEXT CHARACTER SET utf16,
  le16v VARCHAR(10) CHARACTER SET utf16le, le16t TEXT CHARACTER SET utf16le,
  u32c CHAR(4) CHARACTER SET utf32, u32v VARCHAR(10) CHARACTER SET utf32, u32t TEXT CHARACTER SET utf32,
  e2 ENUM('a', 'é', 'ü') CHARACTER SET ucs2, s32 SET('x', 'ÿ', 'z') CHARACTER SET utf32,
  e16 ENUM('ą', 'b') CHARACTER SET utf16le, el ENUM('é', 'b') CHARACTER SET latin1,
  lat VARCHAR(10) CHARACTER SET latin1
)"""
TEXTS = [
    (1, "ab", "Zoë", "déjà vu", "a🙂", "Zoë🙂", "🙂" * 20, "Zoë", "ü🙂", "a🙂", "Zoë 🙂", "ÿ" * 30,
     "é", "ÿ,z", "ą", "é", "\x81é€\x9d"),
    (2, "a  ", "", "", "", "", "", "", "", "", "", "", "a", "", "b", "b", ""),
    (3, *([None] * 16)),
]  # fmt: skip


def test_ucs2_utf16_and_utf32_text_from_the_log_equals_the_query_path(mariadb_binlog, tmp_path):
    """The compiled decoder reads these character sets in MySQL's byte order (the library has no codec
    for ucs2 and utf16le and reads utf16/utf32 little-endian), and names ENUM/SET members in the
    column's own character set: the log run's warehouse rows equal the snapshot's (the query path's)."""
    import MySQLdb
    from support.services import scratch_database

    from nightshift_core.sync.cdc.run import CdcTable, sync_table
    from nightshift_core.warehouse import JobKey, TableRef
    from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

    with scratch_database(mariadb_binlog, "ns_cdc_cs") as db:
        cur = db.conn.cursor()
        cur.execute(CHARSETS)
        cur.executemany(f"INSERT INTO texts VALUES ({', '.join(['%s'] * 17)})", TEXTS)
        endpoint = Endpoint(mariadb_binlog.host, mariadb_binlog.port, "root", db.name)

        def run() -> Any:
            conn = MySQLdb.connect(host=endpoint.host, port=endpoint.port, user="root", database=db.name)
            try:
                return sync_table(conn, "mysql", endpoint, CdcTable("texts", ("id",), definition="cs"),
                                  DuckDBWarehouse(tmp_path / "w.duckdb"), TableRef("cdc", "texts"),
                                  JobKey("cdc", "texts", run_id=uuid.uuid4().hex))  # fmt: skip
            finally:
                conn.close()

        assert run().mode == "snapshot"
        cur.execute("INSERT INTO texts SELECT id + 100, u2c, u2v, u2t, u16c, u16v, u16t, le16v, le16t, u32c, "
                    "u32v, u32t, e2, s32, e16, el, lat FROM texts")  # fmt: skip
        cur.execute("UPDATE texts SET u16v = 'ü🙂ü', e2 = 'ü' WHERE id = 101")
        result = run()
        assert result.mode == "log" and result.changes == 4
    rows = DuckDBWarehouse(tmp_path / "w.duckdb").query("SELECT * FROM cdc.texts ORDER BY id").to_pylist()
    data = {
        r["id"]: {k: v for k, v in r.items() if not k.startswith("_nightshift") and k != "id"} for r in rows
    }
    names = list(data[1])
    for row in TEXTS:  # the query path's values are the inserted ones (a CHAR without its trailing spaces)
        expected = [
            v.rstrip(" ") if isinstance(v, str) and k.endswith("c") else v
            for k, v in zip(names, row[1:], strict=True)
        ]
        assert list(data[row[0]].values()) == expected
    assert data[102] == data[2] and data[103] == data[3], "the log path's values differ from the query path's"
    assert data[101] == {**data[1], "u16v": "ü🙂ü", "e2": "ü"}


def test_a_new_binlog_file_and_images_without_every_column_read_as_by_the_library(source, monkeypatch):
    """Across a rotation to a new binlog file (positions in the new file, the table mapped again) and
    with binlog_row_image=MINIMAL (images without every column: decoded by the library's code), the
    events parsed here give the library's changes, positions and commit times."""
    cur, endpoint = source
    with mysql_binlog.BinlogReader(endpoint, ["lines_"]) as reader:
        start = reader.current_position()
    row = "INSERT INTO lines_ VALUES (%s, 1, 2, 3.5, 4, %s, 9.99, 5, NOW(6), 0.5, 6)"
    cur.execute(row, (1, "a"))
    cur.execute("FLUSH BINARY LOGS")
    cur.execute(row, (2, "b"))
    cur.execute("SET SESSION binlog_row_image = 'MINIMAL'")
    cur.execute("UPDATE lines_ SET qty = 7 WHERE a = 1")
    cur.execute("DELETE FROM lines_ WHERE a = 2")
    cur.execute("SET SESSION binlog_row_image = 'FULL'")
    cur.execute(row, (3, "c"))
    fast = _read(endpoint, start, "parsed", monkeypatch, ["lines_"])
    library = _read(endpoint, start, "library", monkeypatch, ["lines_"])
    assert fast == library
    assert [op for _, op, *_ in fast] == ["insert", "insert", "update", "delete", "insert"]
    assert fast[2][3] == {"a": ("int", "1"), "code": ("str", "'a'"), "qty": ("int", "7")}, (
        "a MINIMAL after image"
    )
    files = [c[5].file for c in fast]
    assert files[0] != files[1] == files[-1], "the read follows the rotation into the next file"


def test_a_table_of_more_than_250_columns_is_read_by_its_compiled_plan(source, monkeypatch):
    """A row event's column count of 251 or more takes three bytes: the plan still reads its images."""
    cur, endpoint = source
    columns = ", ".join(f"c{k} INT" for k in range(1, 300))
    cur.execute(f"CREATE TABLE wide (id INT PRIMARY KEY, {columns})")
    with mysql_binlog.BinlogReader(endpoint, ["wide"]) as reader:
        start = reader.current_position()
    cur.execute(f"INSERT INTO wide VALUES (1, {', '.join(str(k) for k in range(1, 300))})")  # noqa: S608
    cur.execute("UPDATE wide SET c299 = -1, c1 = NULL WHERE id = 1")
    cur.execute("DELETE FROM wide")
    fast = _read(endpoint, start, "fast", monkeypatch, ["wide"])
    assert fast == _read(endpoint, start, "library", monkeypatch, ["wide"])
    assert [op for _, op, *_ in fast] == ["insert", "update", "delete"]
    assert fast[1][3]["c299"] == ("int", "-1") and fast[1][3]["c1"] == ("NoneType", "None")


def test_the_current_position_carries_the_gtid_state_binlog_gtid_pos_gives_there(source):
    """MariaDB: the GTID state the reader gives with the current position (read without scanning the
    binlog) is the one BINLOG_GTID_POS computes at that file and offset, also at a new file's start."""
    cur, endpoint = source
    with mysql_binlog.BinlogReader(endpoint, ["lines_"]) as reader:
        positions = [reader.current_position()]
        cur.execute("INSERT INTO lines_ VALUES (1, 1, 2, 3.5, 4, 'a', 9.99, 5, NOW(6), 0.5, 6)")
        positions.append(reader.current_position())
        cur.execute("FLUSH BINARY LOGS")
        positions.append(reader.current_position())
    assert positions[0].gtid != positions[1].gtid == positions[2].gtid
    assert positions[1].file != positions[2].file
    for position in positions:
        cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (position.file, position.pos))
        assert position.gtid and position.gtid == cur.fetchone()[0], position
