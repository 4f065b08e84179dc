"""Source-database dialects: column discovery, exact Arrow types, streaming extraction.

Every quirk of MySQL/MariaDB, PostgreSQL and SQLite lives here; callers only pass the
dialect name. Extraction uses server-side cursors so memory stays flat as tables grow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import pyarrow as pa

from nightshift_core.errors import SourceDataError, SourceDefinitionError
from nightshift_core.sync.clock import ServerZone
from nightshift_core.warehouse.types import UnsupportedTypeError, check_identifier

Dialect = Literal["mysql", "postgres", "sqlite"]


@dataclass(frozen=True)
class SourceColumn:
    name: str
    source_type: str
    arrow_type: pa.DataType
    nullable: bool
    convert: Callable[[Any], Any] | None = None  # driver value -> Arrow-ready value
    text_cast: bool = False  # driver returns raw text; Arrow parses it (much faster than Python)
    select: str | None = None  # SQL expression read instead of the bare column ({column}: quoted name)


class UnsupportedColumnError(UnsupportedTypeError):
    """A source column whose type has no exact mapping; carries what the fix needs."""

    def __init__(self, table: str, column: str, source_type: str, detail: str) -> None:
        super().__init__(
            f"table {table!r}, column {column!r}: source type {source_type!r} is not supported ({detail})"
        )
        self.table, self.column, self.source_type, self.detail = table, column, source_type, detail


def dialect_for(conn_type: str) -> Dialect:
    kind = (conn_type or "").lower()
    if kind in ("mysql", "mariadb", "google_cloud_sql_mysql"):
        return "mysql"
    if kind in ("postgres", "postgresql"):
        return "postgres"
    if kind == "sqlite":
        return "sqlite"
    raise ValueError(f"unsupported source connection type {conn_type!r}: use mysql, postgres or sqlite")


def quote(dialect: Dialect, name: str) -> str:
    check_identifier(name, "source identifier")
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


def placeholder(dialect: Dialect) -> str:
    return "?" if dialect == "sqlite" else "%s"


def bind(dialect: Dialect, value: Any) -> Any:
    """A query parameter in the form the source compares correctly.

    SQLite keeps datetimes as ISO text; Python's sqlite3 would bind '2026-01-01 00:00:00'
    (space), which sorts before '2026-01-01T...' (T) as text: bind the ISO 'T' form.
    """
    if dialect == "sqlite" and isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(timespec="microseconds")
    return value


def begin_snapshot(conn: Any, dialect: Dialect) -> None:
    """Make every read until the connection closes see one snapshot of the source.

    The extract, the source count the quality gate compares with, and the reconciliation's pairs
    then agree even while the source changes (a row deleted between them would otherwise make the
    gate fail). Must run before any other statement on ``conn``.
    """
    cur = conn.cursor()
    try:
        if dialect == "mysql":
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        elif dialect == "postgres":  # psycopg2 has opened the transaction: this is its first statement
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        else:  # SQLite: a read transaction holds its snapshot (WAL) or its shared lock until it ends
            cur.execute("BEGIN")
    finally:
        cur.close()


def server_zone(conn: Any, dialect: Dialect) -> ServerZone:
    """The zone the server's sessions write local times in, read before :func:`prepare_session`.

    MySQL/MariaDB: the global ``time_zone`` (``SYSTEM``: the system zone); PostgreSQL: the
    session's default ``TimeZone``; SQLite has no zone (its CURRENT_TIMESTAMP is UTC).
    """
    if dialect == "sqlite":
        return ServerZone("UTC", dt.timedelta(0))
    cur = conn.cursor()
    try:
        if dialect == "mysql":
            # A new session runs in the global zone, as the writers' sessions do.
            cur.execute(
                "SELECT @@global.time_zone, @@system_time_zone, TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW())"
            )
            name, system, offset = cur.fetchone()
            name = system if str(name).upper() == "SYSTEM" else name
        else:
            cur.execute(
                "SELECT current_setting('TimeZone'), "
                "EXTRACT(EPOCH FROM (now() AT TIME ZONE current_setting('TimeZone')) - (now() AT TIME ZONE 'UTC'))"
            )
            name, offset = cur.fetchone()
    finally:
        cur.close()
    return ServerZone(str(name), dt.timedelta(seconds=round(float(offset or 0))))


def prepare_session(conn: Any, dialect: Dialect) -> None:
    """Make values unambiguous: MySQL TIMESTAMPs come back in UTC."""
    if dialect == "mysql":
        cur = conn.cursor()
        cur.execute("SET time_zone = '+00:00'")
        cur.close()
    elif dialect == "postgres":
        cur = conn.cursor()
        cur.execute("SET TIME ZONE 'UTC'")
        cur.close()


def describe(conn: Any, dialect: Dialect, table: str, exclude: Sequence[str] = ()) -> list[SourceColumn]:
    """The table's columns with exact Arrow types; unsupported types fail naming the column.

    Columns in ``exclude`` (case-insensitive) are dropped before any type is mapped, so an
    excluded column never has to be understood.
    """
    check_identifier(table, "table name")
    cur = conn.cursor()
    try:
        if dialect == "mysql":
            cur.execute(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, IS_NULLABLE "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
                "ORDER BY ORDINAL_POSITION",
                (table,),
            )
            rows = [
                (n, dtp.lower(), ct.lower(), p, s, nl == "YES") for n, dtp, ct, p, s, nl in cur.fetchall()
            ]
            json_columns = _mariadb_json_columns(cur, table)
            rows = [(n, "json" if n in json_columns else d, c, p, s, nl) for n, d, c, p, s, nl in rows]
            mapper = _mysql_type
        elif dialect == "postgres":
            cur.execute(
                "SELECT column_name, data_type, udt_name, numeric_precision, numeric_scale, is_nullable "
                "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s "
                "ORDER BY ordinal_position",
                (table,),
            )
            rows = [
                (n, dtp.lower(), udt.lower(), p, s, nl == "YES") for n, dtp, udt, p, s, nl in cur.fetchall()
            ]
            mapper = _postgres_type
        else:
            cur.execute(f'PRAGMA table_info("{table}")')
            rows = [(r[1], (r[2] or "").lower(), (r[2] or "").lower(), None, None, not r[3] and not r[5])
                    for r in cur.fetchall()]  # fmt: skip
            mapper = _sqlite_type
    finally:
        cur.close()
    if not rows:
        raise SourceDefinitionError(
            f"source table {table!r} not found (or has no columns visible to this connection): check the "
            "table name in the sync definition and the connection's database/schema and grants"
        )
    skip = {c.lower() for c in exclude}
    out = []
    for name, data_type, full_type, precision, scale, nullable in rows:
        if name.lower() in skip:
            continue
        try:
            mapped = mapper(data_type, full_type, precision, scale)
            text_cast = dialect == "mysql" and data_type in _MYSQL_TEXT_CAST
        except UnsupportedTypeError as exc:
            raise UnsupportedColumnError(table, name, full_type, str(exc)) from None
        arrow_type, convert, select = (*mapped, None)[:3]
        if text_cast:
            convert = None
        out.append(SourceColumn(name, full_type, arrow_type, nullable, convert, text_cast, select))
    return out


def _mariadb_json_columns(cur: Any, table: str) -> set[str]:
    """MariaDB's JSON is LONGTEXT plus a json_valid() check; MySQL reports 'json' itself."""
    import re

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


def arrow_schema(columns: Sequence[SourceColumn]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in columns])


def extract(
    conn: Any,
    dialect: Dialect,
    table: str,
    columns: Sequence[SourceColumn],
    *,
    where: str = "",
    params: Sequence[Any] = (),
    batch_rows: int = 50_000,
) -> Iterator[pa.RecordBatch]:
    """Stream ``SELECT columns FROM table [WHERE ...]`` as Arrow batches (server-side cursor)."""
    cols = ", ".join(
        c.select.format(column=quote(dialect, c.name)) if c.select else quote(dialect, c.name)
        for c in columns
    )
    sql = f"SELECT {cols} FROM {quote(dialect, table)}" + (f" WHERE {where}" if where else "")  # noqa: S608
    schema = arrow_schema(columns)
    restore = _raw_mysql_values(conn) if dialect == "mysql" else {}
    cur = _streaming_cursor(conn, dialect, batch_rows)
    try:
        cur.execute(sql, tuple(params))
        converters = [(i, c.convert) for i, c in enumerate(columns) if c.convert is not None]
        text_cast = {i for i, c in enumerate(columns) if c.text_cast}
        while True:
            rows = cur.fetchmany(batch_rows)
            if not rows:
                break
            yield _to_batch(rows, schema, converters, table, text_cast)
    finally:
        cur.close()
        if restore:
            conn.converter.update(restore)


def _raw_mysql_values(conn: Any) -> dict:
    """Have mysqlclient return DECIMAL/DATE/DATETIME/TIMESTAMP as raw text while extracting.

    Its Python converters cost more than the rest of the extract; Arrow parses the text in C++.
    Returns the converters to put back.
    """
    from MySQLdb.constants import FIELD_TYPE

    kinds = (
        FIELD_TYPE.DECIMAL,
        FIELD_TYPE.NEWDECIMAL,
        FIELD_TYPE.DATE,
        FIELD_TYPE.DATETIME,
        FIELD_TYPE.TIMESTAMP,
    )
    return {t: conn.converter.pop(t) for t in kinds if t in conn.converter}


def bucket_checksums(
    conn: Any,
    dialect: Dialect,
    table: str,
    key: str,
    cursor: SourceColumn,
    *,
    lo: int,
    width: int,
    before: Any = None,
) -> dict[int, tuple[int, int]]:
    """Per bucket ``(key - lo) DIV width``, computed by the source server itself: (row count, sum of
    the cursor as integer microseconds since 1970-01-01 (wall clock for DATETIME), or of an integer
    cursor's value). The warehouse computes the same (``Warehouse.bucket_checksums``)."""
    k, c, mark = quote(dialect, key), quote(dialect, cursor.name), placeholder(dialect)
    timed = pa.types.is_timestamp(cursor.arrow_type)
    if dialect == "mysql":
        value = f"TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {c})" if timed else c
        bucket = f"({k} - {int(lo)}) DIV {int(width)}"
    elif dialect == "postgres":
        value = f"CAST(EXTRACT(EPOCH FROM {c}) * 1000000 AS BIGINT)" if timed else c
        bucket = f"({k} - {int(lo)}) / {int(width)}"
    else:
        conn.create_function("nightshift_epoch_us", 1, _sqlite_epoch_us, deterministic=True)
        value = f"nightshift_epoch_us({c})" if timed else c
        bucket = f"({k} - {int(lo)}) / {int(width)}"
    sql = (
        f"SELECT {bucket} AS b, COUNT(*), SUM({value}) FROM {quote(dialect, table)}"  # noqa: S608
        + (f" WHERE {c} < {mark}" if before is not None else "") + " GROUP BY b"
    )  # fmt: skip
    cur = conn.cursor()
    try:
        cur.execute(sql, (bind(dialect, before),) if before is not None else ())
        return {int(b): (int(n), int(total or 0)) for b, n, total in cur.fetchall()}
    finally:
        cur.close()


def _sqlite_epoch_us(value: Any) -> int | None:
    if value is None:
        return None
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    moment = moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment
    return (moment - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)


def first_row(conn: Any, sql: str, params: Sequence[Any] = ()) -> tuple | None:
    cur = conn.cursor()
    try:
        cur.execute(sql, tuple(params))
        return cur.fetchone()
    finally:
        cur.close()


def scalar(conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
    row = first_row(conn, sql, params)
    return row[0] if row else None


def count(conn: Any, dialect: Dialect, table: str, where: str = "", params: Sequence[Any] = ()) -> int:
    """``SELECT COUNT(*) FROM table [WHERE ...]`` on the source."""
    sql = f"SELECT COUNT(*) FROM {quote(dialect, table)}" + (f" WHERE {where}" if where else "")  # noqa: S608
    return int(scalar(conn, sql, params))


def _streaming_cursor(conn: Any, dialect: Dialect, batch_rows: int) -> Any:
    if dialect == "mysql":
        import MySQLdb.cursors

        return conn.cursor(MySQLdb.cursors.SSCursor)
    if dialect == "postgres":
        cur = conn.cursor(name="nightshift_extract")
        cur.itersize = batch_rows
        return cur
    return conn.cursor()


def _to_batch(
    rows: list[tuple], schema: pa.Schema, converters, table: str, text_cast: set[int] = frozenset()
) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    for i, convert in converters:
        columns[i] = [None if v is None else convert(v) for v in columns[i]]
    arrays = []
    for i, field in enumerate(schema):
        try:
            if i in text_cast:
                arrays.append(_cast_text(columns[i], field.type))
                continue
            arrays.append(pa.array(columns[i], type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError) as exc:
            raise SourceDataError(
                f"table {table!r}, column {field.name!r}: a value does not fit {field.type} ({exc}); "
                "fix the data or exclude the column"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _cast_text(values: Sequence[Any], target: pa.DataType) -> pa.Array:
    text = pa.array(values, pa.binary()).cast(pa.string())
    if pa.types.is_timestamp(target) and target.tz:
        return text.cast(pa.timestamp(target.unit)).cast(target)  # the session runs in UTC
    try:
        return text.cast(target)
    except pa.ArrowInvalid:
        # e.g. MySQL zero dates ('0000-00-00'), which mysqlclient itself turns into NULL
        import datetime as _dt

        parse = _dt.date.fromisoformat if pa.types.is_date(target) else _dt.datetime.fromisoformat
        out = []
        for v in text.to_pylist():
            try:
                out.append(None if v is None else parse(v))
            except ValueError:
                out.append(None)
        return pa.array(out, target)


# -- type maps ---------------------------------------------------------------------------
_MYSQL_TEXT_CAST = {"decimal", "date", "datetime", "timestamp"}
_INTS = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"}
_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_MYSQL_SPATIAL = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
                  "geometrycollection", "geomcollection"}  # fmt: skip
_MARIADB_TEXT = {"inet4", "inet6", "uuid"}  # MariaDB's own types; the driver returns their text form


def _decimal_type(precision: int | None, scale: int | None) -> pa.DataType:
    p, s = int(precision or 38), int(scale or 0)
    return pa.decimal128(p, s) if p <= 38 else pa.decimal256(p, s)


def _mysql_type(data_type: str, full: str, precision, scale):
    if full.startswith("tinyint(1)") or full == "bit(1)":
        return pa.bool_(), (_bit_to_bool if full == "bit(1)" else bool)
    if data_type == "bigint" and "unsigned" in full:
        return pa.uint64(), None
    if data_type in _INTS:
        return pa.int64(), None
    if data_type == "bit":
        return pa.int64(), lambda v: int.from_bytes(v, "big")
    if data_type == "decimal":
        return _decimal_type(precision, scale), None
    if data_type in ("float", "double", "real"):
        return pa.float64(), None
    if data_type in _TEXT or data_type in _MARIADB_TEXT:
        return pa.string(), None
    if data_type in _BINARY:
        return pa.binary(), None
    if data_type in _MYSQL_SPATIAL:
        return pa.binary(), _mysql_geometry_to_wkb
    if data_type == "json":
        return pa.json_(pa.string()), None
    if data_type == "date":
        return pa.date32(), None
    if data_type == "datetime":
        return pa.timestamp("us"), None
    if data_type == "timestamp":
        return pa.timestamp("us", tz="UTC"), _assume_utc
    if data_type == "time":
        return pa.time64("us"), _timedelta_to_time
    raise UnsupportedTypeError(f"MySQL type {data_type}")


def _postgres_type(data_type: str, udt: str, precision, scale):
    if data_type in ("smallint", "integer", "bigint"):
        return pa.int64(), None
    if data_type == "numeric":
        if precision is None:  # unconstrained NUMERIC: keep every digit
            return pa.decimal256(76, 38), None
        return _decimal_type(precision, scale), None
    if data_type in ("real", "double precision"):
        return pa.float64(), None
    if data_type == "boolean":
        return pa.bool_(), None
    if data_type in ("text", "character varying", "character", "uuid", "citext") or udt in ("citext",):
        return pa.string(), (str if data_type == "uuid" else None)
    if data_type == "bytea":
        return pa.binary(), bytes
    if data_type in ("json", "jsonb"):
        import json

        return pa.json_(pa.string()), lambda v: v if isinstance(v, str) else json.dumps(v)
    if data_type == "date":
        return pa.date32(), None
    if data_type == "timestamp without time zone":
        return pa.timestamp("us"), None
    if data_type == "timestamp with time zone":
        return pa.timestamp("us", tz="UTC"), None
    if data_type == "time without time zone":
        return pa.time64("us"), None
    if data_type == "user-defined" and udt in ("geometry", "geography"):  # PostGIS
        return pa.binary(), bytes, "ST_AsBinary({column})"
    raise UnsupportedTypeError(f"PostgreSQL type {data_type if data_type != 'user-defined' else udt}")


def _sqlite_type(data_type: str, full: str, precision, scale):
    t = data_type
    if t.startswith(("decimal", "numeric")):
        p, s = 38, 9
        if "(" in t:
            inner = t[t.index("(") + 1 : t.index(")")].split(",")
            p, s = int(inner[0]), int(inner[1]) if len(inner) > 1 else 0
        return _decimal_type(p, s), lambda v: Decimal(str(v))
    if t.startswith(("bool",)):
        return pa.bool_(), bool
    if t.startswith("datetime") or t.startswith("timestamp"):
        return pa.timestamp("us"), lambda v: v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(v)
    if t.startswith("date"):
        return pa.date32(), lambda v: v if isinstance(v, dt.date) else dt.date.fromisoformat(v)
    if "int" in t:
        return pa.int64(), None
    if any(k in t for k in ("char", "clob", "text")) or t == "":
        return pa.string(), None
    if "blob" in t:
        return pa.binary(), None
    if any(k in t for k in ("real", "floa", "doub")):
        return pa.float64(), None
    raise UnsupportedTypeError(f"SQLite type {data_type}")


def _mysql_geometry_to_wkb(v: bytes) -> bytes:
    """MySQL/MariaDB store a geometry as a 4-byte SRID then standard (OGC) WKB: keep the WKB."""
    return bytes(v[4:])


def _bit_to_bool(v: Any) -> bool:
    return bool(int.from_bytes(v, "big")) if isinstance(v, (bytes, bytearray)) else bool(v)


def _assume_utc(v: dt.datetime) -> dt.datetime:
    return v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v


def _timedelta_to_time(v: Any) -> dt.time:
    if isinstance(v, dt.time):
        return v
    seconds = v.total_seconds()
    if not 0 <= seconds < 86400:
        raise ValueError(f"TIME value {v} is outside 00:00-24:00 and has no BigQuery TIME equivalent")
    return (dt.datetime.min + v).time()
