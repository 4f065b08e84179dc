"""PostgreSQL (psycopg2; connectorx for the Arrow reader).

Types come from the catalog, not information_schema, so domains, enums and arrays resolve exactly.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from nightshift_core.sync.clock import ServerZone
from nightshift_core.sync.columns import EXACT_JSON_SUFFIX, SourceColumn, UnsupportedColumnError, not_found
from nightshift_core.sync.dialects.base import Dialect, decimal_type
from nightshift_core.warehouse.types import UnsupportedTypeError, check_identifier

_SSL_KEYS = ("sslmode", "sslrootcert", "sslcert", "sslkey")


class PostgresDialect(Dialect):
    name = "postgres"
    connection_types = ("postgres", "postgresql")

    def _snapshot(self, cur: Any) -> dt.datetime:
        # psycopg2 has opened the transaction: this is its first statement
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # now() is the transaction's start; the snapshot is taken by this statement, later
        cur.execute("SELECT now()")
        (clock_at,) = cur.fetchone()
        return clock_at

    def server_zone(self, conn: Any) -> ServerZone:
        """The session's default ``TimeZone``."""
        cur = conn.cursor()
        try:
            cur.execute(
                "SELECT current_setting('TimeZone'), "
                "EXTRACT(EPOCH FROM (now() AT TIME ZONE current_setting('TimeZone')) - (now() AT TIME ZONE 'UTC'))"
            )
            name, offset = cur.fetchone()
        finally:
            cur.close()
        return ServerZone(str(name), dt.timedelta(seconds=round(float(offset or 0))))

    def prepare_session(self, conn: Any) -> None:
        """timestamptz in UTC, intervals (read as text) in ISO 8601 (``P1Y2M-3DT4H5M6.5S``: months, days
        and time kept apart)."""
        cur = conn.cursor()
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute("SET IntervalStyle = 'iso_8601'")
        cur.close()

    def _describe(self, cur: Any, table: str, exclude: Sequence[str]) -> list[SourceColumn]:
        return _describe(cur, table, exclude)

    def partition_parents(self, conn: Any, table: str) -> list[str]:
        """Reading a partitioned table reads each of its partitions' rows once."""
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

    def streaming_cursor(self, conn: Any, batch_rows: int) -> Any:
        cur = conn.cursor(name="nightshift_extract")
        cur.itersize = batch_rows
        return cur

    def arrow_url(self, conn: Any) -> tuple[str, str]:
        extra = conn.extra_dejson or {}
        return self._url("postgresql", 5432, conn, {k: str(extra[k]) for k in _SSL_KEYS if extra.get(k)})

    def arrow_session(self, snapshot: str | None) -> list[str]:
        """Each reader connection joins the task's snapshot, in UTC, with ISO 8601 intervals."""
        out = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"]
        if snapshot:
            if not re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):
                raise ValueError("unexpected snapshot id")
            out.append(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        return [*out, "SET TIME ZONE 'UTC'", "SET IntervalStyle = 'iso_8601'"]

    def export_snapshot(self, conn: Any) -> str | None:
        cur = conn.cursor()
        try:
            cur.execute("SELECT pg_export_snapshot()")
            return str(cur.fetchone()[0])
        finally:
            cur.close()

    def _instant_literal(self, value: dt.datetime) -> str:
        return f"TIMESTAMPTZ '{value.replace(tzinfo=None).isoformat(sep=' ')}+00:00'"

    def _wall_literal(self, text: str) -> str:
        return f"TIMESTAMP '{text}'"

    def _date_literal(self, text: str) -> str:
        return f"DATE '{text}'"

    def _arrow_expression(self, column: SourceColumn, name: str, expr: str) -> str:
        if column.source_type.lower() == "real" and not column.select:
            return f"CAST({name} AS text)"  # its shortest text form, as psycopg2 reads it
        return expr


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


def _describe(cur: Any, table: str, exclude: Sequence[str]) -> list[SourceColumn]:
    skip = {c.lower() for c in exclude}
    cur.execute(_PG_COLUMNS, (table,))
    rows = cur.fetchall()
    if not rows:
        raise not_found(table)
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
    # The ARRAY holds a one-dimensional array's non-NULL elements in order (an ARRAY cannot hold a NULL
    # element); the exact value, NULLs included, is in the exact-JSON column.
    listed = (
        f"CASE WHEN cardinality({{column}}) = 0 THEN {_EMPTY_ARRAY} "
        "WHEN array_ndims({column}) = 1 AND array_lower({column}, 1) = 1 THEN "
        f"array_remove({typed}, NULL) ELSE {_EMPTY_ARRAY} END"
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
    return decimal_type(precision, scale)
