"""Log values -> exactly the Arrow values the query path reads for the same row.

MariaDB/MySQL: mysql-replication decodes the binlog into Python values close to the driver's; the few
that differ (BIT as a bit string, SET as a Python set, FLOAT as its float32 value, a spatial value with
its SRID, BINARY(n) without its padding, TIMESTAMP as a naive UTC datetime) are brought to the query
path's form here. PostgreSQL: pgoutput sends each value in its type's text form. The common built-in
types (integers, text, uuid, boolean, float8, numeric, date, timestamp, timestamptz, bytea) are parsed
here, by Arrow, into exactly what the server's cast would give; the other types (arrays, enums,
domains, intervals, JSON...) and any column with a text that parsing declines are cast back to the
column's type by the server and read through the query path's own select expressions (no table is
read: each column's values travel as one array parameter), so every type comes out as the query
path's.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from nightshift_core.errors import SourceDataError, SourceDefinitionError
from nightshift_core.sync import source
from nightshift_core.sync.source import SourceColumn
from nightshift_core.warehouse.types import check_identifier

_SET = re.compile(r"^set\((.*)\)$")
_BINARY_N = re.compile(r"^binary\((\d+)\)$")
_MYSQL_NOT_ON_LOG = {"inet4", "inet6", "uuid"}  # MariaDB stores them in a binary form of its own
_MYSQL_SPATIAL = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
                  "geometrycollection", "geomcollection"}  # fmt: skip


def check_mysql_columns(table: str, columns: Sequence[SourceColumn]) -> None:
    """Refuse the column types whose binlog form has no exact conversion here, naming the fix."""
    bad = [c.name for c in columns if c.source_type.split("(")[0] in _MYSQL_NOT_ON_LOG]
    if bad:
        raise SourceDefinitionError(
            f"table {table!r}: column(s) {bad} (MariaDB INET4/INET6/UUID) cannot be read from the binlog "
            "exactly; exclude them (exclude: [...]) or sync the table with mode: incremental"
        )


def mysql_converter(column: SourceColumn) -> Any:
    """A function: binlog value (never None) -> the value the query path puts in the column."""
    full, arrow = column.source_type, column.arrow_type
    kind = full.split("(")[0].split(" ")[0]
    if pa.types.is_boolean(arrow):
        return lambda v: int(v, 2) != 0 if isinstance(v, str) else bool(v)
    if kind == "bit":
        return lambda v: int(v, 2) if isinstance(v, str) else int(v)
    if kind == "float":  # a float32: its shortest decimal form, as the server prints it
        import numpy as np

        return lambda v: float(str(np.float32(v)))
    if kind == "set":
        match = _SET.match(full)
        order = [m.strip("'") for m in match.group(1).split(",")] if match else []
        return lambda v: v if isinstance(v, str) else ",".join(x for x in order if x in v)
    if kind == "binary":
        size = int(_BINARY_N.match(full).group(1)) if _BINARY_N.match(full) else 0
        return lambda v: bytes(v).ljust(size, b"\0")
    if kind in _MYSQL_SPATIAL:  # a 4-byte SRID, then the OGC WKB the query path keeps
        return lambda v: bytes(v[4:])
    if kind == "json" or isinstance(arrow, pa.BaseExtensionType):
        return lambda v: (
            v.decode()
            if isinstance(v, bytes)
            else v
            if isinstance(v, str)
            else json.dumps(v, ensure_ascii=False)
        )
    if pa.types.is_string(arrow):
        return lambda v: v.decode() if isinstance(v, bytes) else str(v)
    if pa.types.is_time(arrow):
        return _timedelta_to_time
    if pa.types.is_timestamp(arrow) and arrow.tz is not None:
        return lambda v: v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v
    return _same


def _same(v: Any) -> Any:
    return v


def mysql_batch(
    rows: Sequence[Mapping[str, Any] | None], columns: Sequence[SourceColumn], table: str
) -> tuple[list[pa.Array], list[list[str]]]:
    """The data columns of ``rows`` (images by column name; None: only the key is known) and, per
    row, the columns the image lacks (their warehouse value stays)."""
    converters = [mysql_converter(c) for c in columns]
    images = [{} if row is None else row for row in rows]
    arrays = []
    for column, convert in zip(columns, converters, strict=True):
        name = column.name
        values = [image.get(name) for image in images]
        if convert is not _same:  # (most columns: the binlog's value is the query path's)
            values = [None if v is None else convert(v) for v in values]
        try:
            arrays.append(pa.array(values, type=column.arrow_type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError) as exc:
            raise SourceDataError(
                f"table {table!r}, column {column.name!r}: a binlog value does not fit {column.arrow_type} "
                f"({exc}); fix the data or exclude the column"
            ) from None
    missing = [[c.name for c in columns if row is None or c.name not in row] for row in rows]
    return arrays, missing


def postgres_batch(
    conn: Any, rows: Sequence[Mapping[str, Any] | None], columns: Sequence[SourceColumn], table: str
) -> tuple[list[pa.Array], list[list[str]]]:
    """As :func:`mysql_batch`, for pgoutput's text values (``conn``: a session prepared by
    :func:`source.prepare_session`). The text of the common built-in types is parsed here, as the
    server's cast and the query path's reader would give it (:func:`_pg_local`); the other columns,
    and any column a value of which this parsing declines, are cast by the server."""
    images = [_NO_IMAGE if row is None else row for row in rows]
    arrays = _pg_arrays(conn, lambda name: [image.get(name) for image in images], columns, table)
    read = frozenset(c.reads or c.name for c in columns)
    missing = [  # (a row known by its key alone, None, has the empty image: it lacks every column)
        [] if read <= image.keys() else [c.name for c in columns if (c.reads or c.name) not in image]
        for image in images
    ]
    return arrays, missing


def postgres_columns(
    conn: Any,
    texts: Mapping[str, pa.Array],
    absent: Mapping[str, Any],
    rows: int,
    columns: Sequence[SourceColumn],
    table: str,
) -> tuple[list[pa.Array], list[list[str]]]:
    """:func:`postgres_batch` for rows given column by column: ``texts`` each source column's pgoutput
    text (a string array of ``rows``), ``absent`` its mask of the rows whose image lacks it (a numpy
    bool array); a column in neither is absent from every row."""
    import numpy as np

    none = np.ones(rows, dtype=bool)

    def texts_of(name: str) -> Any:
        values = texts.get(name)
        return pa.nulls(rows, pa.string()) if values is None else values

    arrays = _pg_arrays(conn, texts_of, columns, table)
    masks = [absent.get(c.reads or c.name, none) for c in columns]
    lacking = np.flatnonzero(np.logical_or.reduce(masks)) if masks else []
    missing: list[list[str]] = [[]] * rows  # (shared empty lists: nothing appends to them)
    for row in lacking.tolist() if len(lacking) else []:
        missing[row] = [c.name for c, mask in zip(columns, masks, strict=True) if mask[row]]
    return arrays, missing


def _pg_arrays(conn: Any, texts_of: Any, columns: Sequence[SourceColumn], table: str) -> list[pa.Array]:
    """Each column's values from ``texts_of(source column)``: its texts (a list or a string array)."""
    arrays: list[pa.Array | None] = [None] * len(columns)
    for i, column in enumerate(columns):
        parse = _pg_local(column, conn)
        if parse is not None:
            try:
                arrays[i] = parse(texts_of(column.name))
            except _DECLINED:
                pass  # NaN, an infinity, a value logged before a type change...: the server casts it
    remote = [i for i, a in enumerate(arrays) if a is None]
    if remote:
        types = {c.name: c.source_type for c in columns if c.reads is None}
        cast = _pg_server_batch(conn, texts_of, [columns[i] for i in remote], types, table)
        for i, array in zip(remote, cast, strict=True):
            arrays[i] = array
    return arrays  # type: ignore[return-value]


_NO_IMAGE: Mapping[str, Any] = {}


def _pg_server_batch(
    conn: Any,
    texts_of: Any,
    columns: Sequence[SourceColumn],
    types: Mapping[str, str],
    table: str,
) -> list[pa.Array]:
    """``columns`` cast by the server and read through the query path's select expressions (no table
    is read: each source column they read travels as one text-array parameter, ``texts_of(name)``;
    ``types``: the source columns' types by name)."""
    names = list(dict.fromkeys(c.reads or c.name for c in columns))
    alias = {name: f"c{i}" for i, name in enumerate(names)}
    casts = ", ".join(f"CAST(u.{alias[n]} AS {types[n]}) AS {_pg_quote(n)}" for n in names)
    selects = ", ".join(
        c.select.format(column=_pg_quote(c.reads or c.name)) if c.select else _pg_quote(c.name)
        for c in columns
    )
    unnest = ", ".join(["%s::text[]"] * len(names))
    sql = (
        f"SELECT {selects} FROM (SELECT {casts}, u.n AS __nightshift_n FROM unnest({unnest}) "  # noqa: S608
        f"WITH ORDINALITY AS u({', '.join(alias[n] for n in names)}, n)) AS {_pg_quote(table)} "
        "ORDER BY __nightshift_n"
    )
    # one array literal per column, not a list (which the driver would send as one literal per value)
    params = [_pg_array_literal(_listed(texts_of(n))) for n in names]
    # nullable: a delete's row carries its key alone, whatever the source's NOT NULL columns
    schema = pa.schema([f.with_nullable(True) for f in source.arrow_schema(columns)])
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        fetched = cur.fetchall()
    finally:
        cur.close()
    converters = [(i, c.convert) for i, c in enumerate(columns) if c.convert is not None]
    batch = source._to_batch(fetched, schema, converters, table) if fetched else schema.empty_table()
    return list(batch.columns)


def _pg_array_literal(texts: Sequence[str | None]) -> str:
    """PostgreSQL's text form of a one-dimensional text[] holding ``texts`` (None: NULL)."""
    return "{" + ",".join("NULL" if v is None else _pg_element(v) for v in texts) + "}"


def _pg_element(text: str) -> str:
    if "\\" in text or '"' in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


class _Declined(Exception):
    """A value this module does not parse as the server would: the column goes to the server."""


_DECLINED = (_Declined, pa.ArrowException, ValueError, TypeError, OverflowError)
# format_type's name of a built-in type (quoted or schema-qualified when it is anything else), its
# typmod apart: "character varying(20)" -> ("character varying", "20")
_PG_SHOWN = re.compile(r"^([a-z ]+?)(?:\((\d+)(?:,(\d+))?\))?( with(?:out)? time zone)?$")
_INT_RANGES = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1)}
_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_UTC_MICROS = pa.timestamp("us", tz="UTC")


def _pg_local(column: SourceColumn, conn: Any) -> Any:
    """A function: pgoutput texts (None: NULL) of ``column`` -> its Arrow array, exactly the query
    path's values; it raises (one of ``_DECLINED``) on a text the server would read otherwise. None:
    the column is left to the server (derived columns, arrays, domains, enums, JSON, intervals...).

    The reader's session prints dates and timestamps in ISO form and in UTC (``postgres_logical``).
    A value logged before the column's type changed may not be that type's text: the checks below
    decline what the server's cast would change (a longer string it truncates, an out-of-range
    integer, more decimals than the scale)."""
    if column.reads is not None or column.convert not in (None, bytes):
        return None
    match = _PG_SHOWN.match(column.source_type)
    if match is None:
        return None
    name, size, scale, zone = match.groups()
    name += zone or ""
    arrow, select = column.arrow_type, column.select
    if select is not None and not (name == "uuid" and select == "CAST({column} AS text)"):
        return None
    if name in ("smallint", "integer", "bigint") and arrow == pa.int64() and size is None:
        return functools.partial(_pg_integers, bounds=_INT_RANGES.get(name))
    if name in ("text", "character varying", "character", "bpchar") and arrow == pa.string():
        fixed = name == "character" or (name == "bpchar" and size is not None)
        return functools.partial(_pg_strings, size=int(size) if size else None, fixed=fixed)
    if name == "uuid" and arrow == pa.string():
        return _pg_uuids
    if name == "boolean" and arrow == pa.bool_():
        return _pg_booleans
    # PostgreSQL 12+ prints a float8 in its shortest exact form (older ones round unless asked not to)
    if name == "double precision" and arrow == pa.float64() and getattr(conn, "server_version", 0) >= 120000:
        return functools.partial(_pg_parse, arrow=arrow)
    if name == "numeric" and pa.types.is_decimal(arrow) and (size is None) == (scale is None):
        return functools.partial(_pg_parse, arrow=arrow)
    if name == "date" and arrow == pa.date32():
        return functools.partial(_pg_parse, arrow=arrow)
    # (a smaller precision rounds a logged value with more digits: the server's)
    if name == "timestamp without time zone" and arrow == pa.timestamp("us") and size in (None, "6"):
        return functools.partial(_pg_parse, arrow=arrow)
    if name == "timestamp with time zone" and arrow == _UTC_MICROS and size in (None, "6"):
        return functools.partial(_pg_parse, arrow=arrow)
    if name == "bytea" and arrow == pa.binary():
        return _pg_bytes
    return None


def _text_array(texts: Sequence[str | None] | pa.Array) -> pa.Array:
    return texts if isinstance(texts, pa.Array) else pa.array(texts, pa.string())


def _listed(texts: Sequence[str | None] | pa.Array) -> Sequence[str | None]:
    return texts.to_pylist() if isinstance(texts, pa.Array) else texts


def _pg_parse(texts: Sequence[str | None], arrow: pa.DataType) -> pa.Array:
    """Arrow's own parsing: strict (no spaces, no other forms), so anything unusual is declined."""
    return _text_array(texts).cast(arrow)


def _pg_integers(texts: Sequence[str | None], bounds: tuple[int, int] | None) -> pa.Array:
    values = _text_array(texts).cast(pa.int64())
    if bounds is not None and values.null_count < len(values):
        low, high = pc.min_max(values).values()
        if low.as_py() < bounds[0] or high.as_py() > bounds[1]:
            raise _Declined("out of the column type's range")
    return values


def _pg_strings(texts: Sequence[str | None], size: int | None, fixed: bool) -> pa.Array:
    values = _text_array(texts)
    if size is not None and values.null_count < len(values):
        low, high = pc.min_max(pc.utf8_length(values)).values()
        if high.as_py() > size or (fixed and low.as_py() != size):
            raise _Declined("not of the column type's length")
    return values


def _pg_uuids(texts: Sequence[str | None]) -> pa.Array:
    values = _text_array(texts)
    if pc.all(pc.match_substring_regex(values, _UUID)).as_py() is False:
        raise _Declined("not a uuid's canonical form")
    return values


def _pg_booleans(texts: Sequence[str | None]) -> pa.Array:
    values = _text_array(texts)
    true = pc.equal(values, "t")
    if pc.all(pc.or_(true, pc.equal(values, "f"))).as_py() is False:  # (NULLs stay NULL)
        raise _Declined("not a boolean's output form")
    return true


def _pg_bytes(texts: Sequence[str | None]) -> pa.Array:
    """bytea's hex form (the reader's session sets bytea_output = hex)."""
    texts = _listed(texts)
    if any(v is not None and not v.startswith("\\x") for v in texts):
        raise _Declined("not bytea's hex form")
    return pa.array([None if v is None else bytes.fromhex(v[2:]) for v in texts], pa.binary())


def _pg_quote(name: str) -> str:
    return '"' + check_identifier(name, "source identifier") + '"'


def _timedelta_to_time(v: Any) -> dt.time:
    """A binlog TIME (a timedelta) as the query path's time of day; outside 00:00-24:00 it has none."""
    if isinstance(v, dt.time):
        return v
    if not dt.timedelta(0) <= v < dt.timedelta(days=1):
        raise ValueError(f"TIME value {v} is outside 00:00-24:00 and has no BigQuery TIME equivalent")
    return (dt.datetime.min + v).time()
