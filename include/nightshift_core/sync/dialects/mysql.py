"""MySQL and MariaDB (mysqlclient; connectorx for the Arrow reader)."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from nightshift_core.sync.clock import ServerZone
from nightshift_core.sync.columns import SourceColumn
from nightshift_core.sync.dialects.base import Dialect, assume_utc, catalog_columns, decimal_type
from nightshift_core.warehouse.types import UnsupportedTypeError, check_identifier

_TEXT_CAST = {"decimal", "date", "datetime", "timestamp"}  # read as raw text, parsed by Arrow
_INTS = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"}
_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_SPATIAL = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
            "geometrycollection", "geomcollection"}  # fmt: skip
_SPATIAL_TYPE = re.compile(rf"^({'|'.join(sorted(_SPATIAL))})")
_MARIADB_TEXT = {"inet4", "inet6", "uuid"}  # MariaDB's own types; the driver returns their text form
_SEQUENCE = "@__nightshift_row"  # MariaDB: the session variable the Arrow read numbers its rows with


class MySqlDialect(Dialect):
    name = "mysql"
    connection_types = ("mysql", "mariadb", "google_cloud_sql_mysql")
    counts_in_read = True  # a session cannot share its snapshot: the Arrow read counts its own rows
    text_type = "CHAR"

    def quote(self, name: str) -> str:
        check_identifier(name, "source identifier")
        return f"`{name}`"

    def _snapshot(self, cur: Any) -> dt.datetime:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("SELECT UTC_TIMESTAMP(6)")  # before the snapshot is taken
        (clock_at,) = cur.fetchone()
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        return clock_at

    def is_mariadb(self, conn: Any) -> bool:
        """Whether the server is MariaDB (its VERSION() says so)."""
        cur = conn.cursor()
        try:
            cur.execute("SELECT VERSION()")
            return "mariadb" in str(cur.fetchone()[0]).lower()
        finally:
            cur.close()

    def server_zone(self, conn: Any) -> ServerZone:
        """The global ``time_zone`` (``SYSTEM``: the system zone): a new session, as the writers' are, runs in it."""
        cur = conn.cursor()
        try:
            cur.execute(
                "SELECT @@global.time_zone, @@system_time_zone, TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW())"
            )
            name, system, offset = cur.fetchone()
        finally:
            cur.close()
        name = system if str(name).upper() == "SYSTEM" else name
        return ServerZone(str(name), dt.timedelta(seconds=round(float(offset or 0))))

    def prepare_session(self, conn: Any) -> None:
        """TIMESTAMPs come back in UTC."""
        cur = conn.cursor()
        cur.execute("SET time_zone = '+00:00'")
        cur.close()

    def _describe(self, cur: Any, table: str, exclude: Sequence[str]) -> list[SourceColumn]:
        cur.execute(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, IS_NULLABLE "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
            "ORDER BY ORDINAL_POSITION",
            (table,),
        )
        rows = [(n, dtp.lower(), ct.lower(), p, s, nl == "YES") for n, dtp, ct, p, s, nl in cur.fetchall()]
        json_columns = _mariadb_json_columns(cur, table)
        rows = [(n, "json" if n in json_columns else d, c, p, s, nl) for n, d, c, p, s, nl in rows]
        return catalog_columns(table, rows, exclude, _arrow_type, _TEXT_CAST)

    def streaming_cursor(self, conn: Any, batch_rows: int) -> Any:
        import MySQLdb.cursors

        return conn.cursor(MySQLdb.cursors.SSCursor)

    @contextlib.contextmanager
    def raw_values(self, conn: Any) -> Iterator[None]:
        """DECIMAL/DATE/DATETIME/TIMESTAMP as raw text while extracting: mysqlclient's Python converters
        cost more than the rest of the extract; Arrow parses the text in C++."""
        from MySQLdb.constants import FIELD_TYPE

        kinds = (
            FIELD_TYPE.DECIMAL,
            FIELD_TYPE.NEWDECIMAL,
            FIELD_TYPE.DATE,
            FIELD_TYPE.DATETIME,
            FIELD_TYPE.TIMESTAMP,
        )
        restore = {t: conn.converter.pop(t) for t in kinds if t in conn.converter}
        try:
            yield
        finally:
            conn.converter.update(restore)

    def checksum_terms(
        self, conn: Any, key: str, cursor: str, timed: bool, lo: int, width: int
    ) -> tuple[str, str]:
        value = f"TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {cursor})" if timed else cursor
        return f"({key} - {int(lo)}) DIV {int(width)}", value

    def arrow_refusal(self, extra: dict) -> str | None:
        if any(extra.get(k) for k in ("ssl", "ssl_mode")):
            return "the connection's MySQL TLS options (ssl/ssl_mode) have no tested connectorx equivalent"
        return None

    def arrow_url(self, conn: Any) -> tuple[str, str]:
        return self._url("mysql", 3306, conn, {})

    def arrow_session(self, snapshot: str | None) -> list[str]:
        return ["SET time_zone = '+00:00'"]

    def numbers_rows(self, conn: Any) -> bool:
        return self.is_mariadb(conn)

    def count_in_read(self, table: str, condition: str, numbered: bool, column: str) -> tuple[str, list[str]]:
        """MariaDB numbers the rows it sends (a session variable, one increment per row) instead of a
        ``COUNT(*)`` subquery, which scans the table a second time before the first row."""
        if numbered:
            return f"CAST(({_SEQUENCE} := {_SEQUENCE} + 1) AS SIGNED) AS `{column}`", [f"SET {_SEQUENCE} = 0"]
        total = f"SELECT COUNT(*) FROM {self.quote(table)}{condition}"  # noqa: S608
        return f"({total}) AS `{column}`", []

    def _arrow_expression(self, column: SourceColumn, name: str, expr: str) -> str:
        full = column.source_type.lower()
        if full.startswith("bit"):
            return f"CAST({name} AS UNSIGNED)"
        if _SPATIAL_TYPE.match(full):
            return f"ST_AsBinary({name})"
        if full.startswith("float"):
            return f"CAST({name} AS CHAR)"  # its shortest text form, as mysqlclient reads it
        return expr


def _mariadb_json_columns(cur: Any, table: str) -> set[str]:
    """MariaDB's JSON is LONGTEXT plus a json_valid() check; MySQL reports 'json' itself."""
    try:
        cur.execute(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        )
    except Exception:  # MySQL has no TABLE_NAME there, and needs no help
        return set()
    return {
        m.group(1) for (clause,) in cur.fetchall() for m in re.finditer(r"json_valid\(`([^`]+)`\)", clause)
    }


def _arrow_type(data_type: str, full: str, precision, scale):
    if full.startswith("tinyint(1)") or full == "bit(1)":
        return pa.bool_(), (_bit_to_bool if full == "bit(1)" else bool)
    if data_type == "bigint" and "unsigned" in full:
        return pa.uint64(), None
    if data_type in _INTS:
        return pa.int64(), None
    if data_type == "bit":
        return pa.int64(), lambda v: int.from_bytes(v, "big")
    if data_type == "decimal":
        return decimal_type(precision, scale), None
    if data_type in ("float", "double", "real"):
        return pa.float64(), None
    if data_type in _TEXT or data_type in _MARIADB_TEXT:
        return pa.string(), None
    if data_type in _BINARY:
        return pa.binary(), None
    if data_type in _SPATIAL:
        return pa.binary(), geometry_to_wkb
    if data_type == "json":
        return pa.json_(pa.string()), None
    if data_type == "date":
        return pa.date32(), None
    if data_type == "datetime":
        return pa.timestamp("us"), None
    if data_type == "timestamp":
        return pa.timestamp("us", tz="UTC"), assume_utc
    if data_type == "time":
        return pa.time64("us"), timedelta_to_time
    raise UnsupportedTypeError(f"MySQL type {data_type}")


def geometry_to_wkb(v: bytes) -> bytes:
    """MySQL/MariaDB store a geometry as a 4-byte SRID then standard (OGC) WKB: keep the WKB."""
    return bytes(v[4:])


def _bit_to_bool(v: Any) -> bool:
    return bool(int.from_bytes(v, "big")) if isinstance(v, (bytes, bytearray)) else bool(v)


def timedelta_to_time(v: Any) -> dt.time:
    if isinstance(v, dt.time):
        return v
    seconds = v.total_seconds()
    if not 0 <= seconds < 86400:
        raise ValueError(f"TIME value {v} is outside 00:00-24:00 and has no BigQuery TIME equivalent")
    return (dt.datetime.min + v).time()
