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
    name: str  # the warehouse column
    source_type: str
    arrow_type: pa.DataType
    nullable: bool
    convert: Callable[[Any], Any] | None = None  # driver value -> Arrow-ready value
    text_cast: bool = False  # driver returns raw text; Arrow parses it (much faster than Python)
    select: str | None = None  # SQL expression read instead of the bare column ({column}: quoted name)
    reads: str | None = None  # the source column ``select`` reads, when it is not ``name``


EXACT_JSON_SUFFIX = "__json"  # the companion of an array column: the values its ARRAY cannot hold


class UnsupportedColumnError(UnsupportedTypeError):
    """Source columns whose types have no exact mapping (all of the table's at once); carries what the
    fix needs: ``problems`` is [(column, source type, detail)], the first also as column/source_type."""

    def __init__(self, table: str, problems: Sequence[tuple[str, str, str]]) -> None:
        shown = "; ".join(f"column {c!r}: source type {t!r} is not supported ({d})" for c, t, d in problems)
        super().__init__(f"table {table!r}, {shown}")
        self.table, self.problems = table, list(problems)
        self.column, self.source_type, self.detail = self.problems[0]
        self.columns = [c for c, _, _ in self.problems]


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


def begin_snapshot(conn: Any, dialect: Dialect) -> dt.datetime:
    """Make every read until the connection closes see one snapshot of the source; return the source's
    clock (a UTC instant) at a point the snapshot is no earlier than.

    The extract, the source count the quality gate compares with, and the reconciliation's pairs
    then agree even while the source changes (a row deleted between them would otherwise make the
    gate fail). Every row committed before the returned instant is in the snapshot: an incremental
    read records it as how far it read. Must run before any other statement on ``conn``.
    """
    cur = conn.cursor()
    try:
        if dialect == "mysql":
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SELECT UTC_TIMESTAMP(6)")  # before the snapshot is taken
            (clock_at,) = cur.fetchone()
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        elif dialect == "postgres":  # psycopg2 has opened the transaction: this is its first statement
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # now() is the transaction's start; the snapshot is taken by this statement, later
            cur.execute("SELECT now()")
            (clock_at,) = cur.fetchone()
        else:  # SQLite: a read transaction holds its snapshot (WAL) or its shared lock until it ends
            cur.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")  # UTC, before the snapshot
            clock_at = dt.datetime.fromisoformat(cur.fetchone()[0])
            cur.execute("BEGIN")
    finally:
        cur.close()
    return _assume_utc(clock_at) if clock_at.tzinfo is None else clock_at.astimezone(dt.UTC)


def is_mariadb(conn: Any, dialect: Dialect) -> bool:
    """Whether a MySQL-dialect server is MariaDB (its VERSION() says so)."""
    return dialect == "mysql" and "mariadb" in str(scalar(conn, "SELECT VERSION()")).lower()


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
    """Make values unambiguous: MySQL TIMESTAMPs and PostgreSQL timestamptz come back in UTC, PostgreSQL
    intervals (read as text) in ISO 8601 (``P1Y2M-3DT4H5M6.5S``: months, days and time kept apart)."""
    if dialect == "mysql":
        cur = conn.cursor()
        cur.execute("SET time_zone = '+00:00'")
        cur.close()
    elif dialect == "postgres":
        cur = conn.cursor()
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute("SET IntervalStyle = 'iso_8601'")
        cur.close()


def describe(conn: Any, dialect: Dialect, table: str, exclude: Sequence[str] = ()) -> list[SourceColumn]:
    """The table's columns with exact Arrow types; unsupported types fail naming every such column.

    Columns in ``exclude`` (case-insensitive) are dropped before any type is mapped, so an
    excluded column never has to be understood.
    """
    check_identifier(table, "table name")
    skip = {c.lower() for c in exclude}
    cur = conn.cursor()
    try:
        if dialect == "postgres":
            return _describe_postgres(cur, table, skip)
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
        else:
            cur.execute(f'PRAGMA table_info("{table}")')
            rows = [(r[1], (r[2] or "").lower(), (r[2] or "").lower(), None, None, not r[3] and not r[5])
                    for r in cur.fetchall()]  # fmt: skip
            mapper = _sqlite_type
    finally:
        cur.close()
    if not rows:
        raise _not_found(table)
    out, problems = [], []
    for name, data_type, full_type, precision, scale, nullable in rows:
        if name.lower() in skip:
            continue
        try:
            mapped = mapper(data_type, full_type, precision, scale)
            text_cast = dialect == "mysql" and data_type in _MYSQL_TEXT_CAST
        except UnsupportedTypeError as exc:
            problems.append((name, full_type, str(exc)))
            continue
        arrow_type, convert, select = (*mapped, None)[:3]
        if text_cast:
            convert = None
        out.append(SourceColumn(name, full_type, arrow_type, nullable, convert, text_cast, select))
    if problems:
        raise UnsupportedColumnError(table, problems)
    return out


def _not_found(table: str) -> SourceDefinitionError:
    return SourceDefinitionError(
        f"source table {table!r} not found (or has no columns visible to this connection): check the "
        "table name in the sync definition and the connection's database/schema and grants"
    )


def partition_parents(conn: Any, dialect: Dialect, table: str) -> list[str]:
    """PostgreSQL: the partitioned tables ``table`` is a partition of, nearest first ([] when it is
    none, and on other sources). Reading a partitioned table reads each of its partitions' rows once."""
    if dialect != "postgres":
        return []
    sql = (  # pg_inherits, not pg_partition_ancestors (PostgreSQL 12+): Cloud SQL still runs older ones
        "WITH RECURSIVE up(relid, n) AS (SELECT to_regclass(quote_ident(current_schema()) || '.' || "
        "quote_ident(%s))::oid, 0 UNION ALL SELECT i.inhparent, up.n + 1 FROM up JOIN pg_inherits i ON "
        "i.inhrelid = up.relid JOIN pg_class p ON p.oid = i.inhparent AND p.relkind = 'p') "
        "SELECT c.relname FROM up JOIN pg_class c ON c.oid = up.relid WHERE up.n > 0 ORDER BY up.n"
    )
    cur = conn.cursor()
    try:
        cur.execute(sql, (check_identifier(table, "table name"),))
        return [name for (name,) in cur.fetchall()]
    finally:
        cur.close()


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
        c.select.format(column=quote(dialect, c.reads or c.name)) if c.select else quote(dialect, c.name)
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


# -- PostgreSQL: the catalog, not information_schema, so domains, enums and arrays resolve exactly ---
_PG_COLUMNS = (
    "SELECT a.attname, a.atttypid, a.atttypmod, NOT a.attnotnull, format_type(a.atttypid, a.atttypmod) "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = %s "
    "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped "
    "AND has_column_privilege(c.oid, a.attnum, 'SELECT') ORDER BY a.attnum"
)
_PG_TYPES = (
    "SELECT t.oid::int8, t.typname, n.nspname, t.typtype, t.typcategory, t.typbasetype::int8, t.typtypmod, "
    "t.typelem::int8, t.typlen FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
    "WHERE t.oid = ANY(%s::int8[]::oid[])"
)
_PG_STRINGS = {"text", "varchar", "bpchar", "name", "char", "citext"}
# Read as PostgreSQL's own text form (driver objects such as ipaddress or timedelta would change it).
_PG_TEXT_FORM = {
    "uuid",
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
    "interval",
    "tsvector",
    "tsquery",
    "xml",
    "timetz",
}
_PG_EXTENSION_TYPES = {"citext", "geometry", "geography"}  # recognised in any schema
_EMPTY_ARRAY = "'{{}}'"  # '{}' once the select expression is formatted


@dataclass(frozen=True)
class _PgType:
    oid: int
    name: str
    schema: str
    kind: str  # typtype: b base, d domain, e enum, c composite, r range, m multirange, p pseudo
    category: str
    base: int  # a domain's base type
    base_typmod: int  # a domain's typmod on its base type (e.g. numeric(12, 2))
    element: int
    length: int

    @property
    def sql(self) -> str:
        return f'"{self.schema}"."{self.name}"'

    @property
    def is_array(self) -> bool:
        return self.category == "A" and self.element != 0 and self.length == -1


def _describe_postgres(cur: Any, table: str, skip: set[str]) -> list[SourceColumn]:
    cur.execute(_PG_COLUMNS, (table,))
    rows = cur.fetchall()
    if not rows:
        raise _not_found(table)
    names = {r[0].lower() for r in rows}
    kept = [r for r in rows if r[0].lower() not in skip]
    types = _pg_types(cur, {r[1] for r in kept})
    out, problems = [], []
    for name, oid, typmod, nullable, shown in kept:
        try:
            out.extend(_pg_columns(name, shown, types, oid, typmod, nullable, names))
        except UnsupportedTypeError as exc:
            problems.append((name, shown, str(exc)))
    if problems:
        raise UnsupportedColumnError(table, problems)
    return out


def _pg_types(cur: Any, oids: set[int]) -> dict[int, _PgType]:
    """The pg_type rows of ``oids`` and of every base and element type they lead to."""
    known: dict[int, _PgType] = {}
    wanted = set(oids)
    while wanted:
        cur.execute(_PG_TYPES, (sorted(wanted),))
        known.update((row[0], _PgType(*row)) for row in cur.fetchall())
        wanted = {o for t in known.values() for o in (t.base, t.element) if o and o not in known}
    return known


def _pg_resolve(types: dict[int, _PgType], oid: int, typmod: int) -> tuple[_PgType, int, bool]:
    """The type under any domains, with the typmod that applies to it, and whether a domain was crossed."""
    t, domain = types[oid], False
    while t.kind == "d":
        typmod = t.base_typmod if t.base_typmod >= 0 else typmod
        t, domain = types[t.base], True
    return t, typmod, domain


def _pg_columns(name, shown, types, oid, typmod, nullable, names) -> list[SourceColumn]:
    """One warehouse column for a scalar; two for an array: the ARRAY and its exact-JSON companion."""
    t, typmod, _ = _pg_resolve(types, oid, typmod)
    if t.name in ("geometry", "geography"):  # PostGIS: the server's own OGC WKB
        return [SourceColumn(name, shown, pa.binary(), nullable, bytes, select="ST_AsBinary({column})")]
    if not t.is_array:
        arrow, cast = _pg_scalar(t, typmod)
        select = ("abbrev({column})" if t.name == "inet" else f"CAST({{column}} AS {cast})") if cast else None
        return [
            SourceColumn(name, shown, arrow, nullable, bytes if arrow == pa.binary() else None, select=select)
        ]
    element, typmod, domain = _pg_resolve(types, t.element, typmod)  # an array's typmod is its elements'
    try:
        arrow, cast = _pg_scalar(element, typmod)
    except UnsupportedTypeError as exc:
        raise UnsupportedTypeError(f"PostgreSQL array of {str(exc).removeprefix('PostgreSQL ')}") from None
    if isinstance(arrow, pa.BaseExtensionType):  # json[]/jsonb[]: each element's JSON text
        arrow = pa.string()
    companion = name + EXACT_JSON_SUFFIX
    if companion.lower() in names:
        raise UnsupportedTypeError(
            f"PostgreSQL array; its exact-JSON column {companion!r} would clash with the source column of that name"
        )
    if cast == "text":  # through the array's own text form: each element as its output function writes it
        typed = "CAST(CAST({column} AS text) AS text[])"
    else:
        cast = cast or (element.sql if domain else None)
        typed = f"CAST({{column}} AS {cast}[])" if cast else "{column}"
    as_json = f"CAST(to_json({typed}) AS text)"
    listed = (
        f"CASE WHEN cardinality({{column}}) = 0 THEN {_EMPTY_ARRAY} "
        "WHEN array_ndims({column}) = 1 AND array_lower({column}, 1) = 1 THEN "
        f"CASE WHEN array_position({{column}}, NULL) IS NULL THEN {typed} ELSE {_EMPTY_ARRAY} END "
        f"ELSE {_EMPTY_ARRAY} END"
    )
    exact = (
        "CASE WHEN {column} IS NULL THEN 'null' WHEN cardinality({column}) = 0 THEN NULL "
        r"WHEN array_dims({column}) !~ '^(\[1:[0-9]+\])+$' THEN "
        f"CAST(json_build_object('dims', array_dims({{column}}), 'elements', to_json({typed})) AS text) "
        f"WHEN array_ndims({{column}}) > 1 THEN {as_json} "
        f"WHEN array_position({{column}}, NULL) IS NOT NULL THEN {as_json} END"
    )
    return [
        SourceColumn(name, shown, pa.list_(arrow), True, select=listed),
        SourceColumn(companion, shown, pa.json_(pa.string()), True, select=exact, reads=name),
    ]


def _pg_scalar(t: _PgType, typmod: int) -> tuple[pa.DataType, str | None]:
    """Arrow type of a PostgreSQL type (domains resolved) and the SQL type to CAST it to when read
    ('text': its text form, as the type's output function writes it)."""
    if t.kind == "e":
        return pa.string(), "text"  # the label
    if t.kind in ("r", "m"):
        kind = "multirange" if t.kind == "m" else "range"
        raise UnsupportedTypeError(
            f"PostgreSQL {kind} type {t.name}: no warehouse type holds its bounds exactly"
        )
    if t.kind == "c":
        raise UnsupportedTypeError(f"PostgreSQL composite type {t.name}")
    name = t.name if t.schema == "pg_catalog" or t.name in _PG_EXTENSION_TYPES else f"{t.schema}.{t.name}"
    if name in ("int2", "int4", "int8"):
        return pa.int64(), None
    if name == "numeric":
        return _pg_numeric(typmod), None
    if name in ("float4", "float8"):
        return pa.float64(), None
    if name == "bool":
        return pa.bool_(), None
    if name in _PG_STRINGS:
        return pa.string(), None
    if name == "bytea":
        return pa.binary(), None
    if name == "date":
        return pa.date32(), None
    if name == "timestamp":
        return pa.timestamp("us"), None
    if name == "timestamptz":
        return pa.timestamp("us", tz="UTC"), None
    if name == "time":
        return pa.time64("us"), None
    if name in ("json", "jsonb"):
        return pa.json_(pa.string()), "text"  # the text as stored (json keeps duplicate keys and spacing)
    if name == "money":
        return pa.decimal128(38, 9), "numeric"  # exact: money casts to numeric with its own decimals
    if name in _PG_TEXT_FORM:
        return pa.string(), "text"
    raise UnsupportedTypeError(f"PostgreSQL type {name}")


def _pg_numeric(typmod: int) -> pa.DataType:
    """numeric(p, s) from its typmod; unconstrained (or wider than BIGNUMERIC): every digit BIGNUMERIC
    holds, and a value with more fails naming the column instead of being rounded."""
    if typmod < 4:
        return pa.decimal256(76, 38)
    precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0x7FF
    if scale > 1023:  # PostgreSQL 15+: a negative scale rounds to tens, hundreds...
        precision, scale = precision + 2048 - scale, 0
    precision = max(precision, scale)
    if precision > 76 or scale > 38:
        return pa.decimal256(76, 38)
    return _decimal_type(precision, scale)


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
