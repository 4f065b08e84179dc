"""Log values -> exactly the Arrow values the query path reads for the same row.

MariaDB/MySQL: mysql-replication decodes the binlog into Python values close to the driver's; the few
that differ (BIT as a bit string, SET as a Python set, FLOAT as its float32 value, a spatial value with
its SRID, BINARY(n) without its padding, TIMESTAMP as a naive UTC datetime) are brought to the query
path's form here. PostgreSQL: pgoutput sends each value in its type's text form; the server casts it
back to the column's type and reads it through the query path's own select expressions (no table is
read: the values travel as array parameters), so every type (numerics, arrays, enums, domains,
intervals, JSON) comes out as the query path's.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

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
    """As :func:`mysql_batch`, for pgoutput's text values: the server casts each to its column's type
    and reads it through the query path's select expressions (``conn``: a session prepared by
    :func:`source.prepare_session`)."""
    sources = [c for c in columns if c.reads is None]
    texts = [[None if row is None else row.get(c.name) for row in rows] for c in sources]
    names = [f"c{i}" for i in range(len(sources))]
    casts = ", ".join(
        f"CAST(u.{n} AS {c.source_type}) AS {_pg_quote(c.name)}" for n, c in zip(names, sources, strict=True)
    )
    selects = ", ".join(
        c.select.format(column=_pg_quote(c.reads or c.name)) if c.select else _pg_quote(c.name)
        for c in columns
    )
    unnest = ", ".join(["%s::text[]"] * len(sources))
    sql = (
        f"SELECT {selects} FROM (SELECT {casts}, u.n AS __nightshift_n FROM unnest({unnest}) "  # noqa: S608
        f"WITH ORDINALITY AS u({', '.join(names)}, n)) AS {_pg_quote(table)} "
        "ORDER BY __nightshift_n"
    )
    # nullable: a delete's row carries its key alone, whatever the source's NOT NULL columns
    schema = pa.schema([f.with_nullable(True) for f in source.arrow_schema(columns)])
    cur = conn.cursor()
    try:
        cur.execute(sql, texts)
        fetched = cur.fetchall()
    finally:
        cur.close()
    converters = [(i, c.convert) for i, c in enumerate(columns) if c.convert is not None]
    batch = source._to_batch(fetched, schema, converters, table) if fetched else schema.empty_table()
    arrays = list(batch.columns)
    missing = [[c.name for c in columns if row is None or (c.reads or c.name) not in row] for row in rows]
    return arrays, missing


def _pg_quote(name: str) -> str:
    return '"' + check_identifier(name, "source identifier") + '"'


def _timedelta_to_time(v: Any) -> dt.time:
    """A binlog TIME (a timedelta) as the query path's time of day; outside 00:00-24:00 it has none."""
    if isinstance(v, dt.time):
        return v
    if not dt.timedelta(0) <= v < dt.timedelta(days=1):
        raise ValueError(f"TIME value {v} is outside 00:00-24:00 and has no BigQuery TIME equivalent")
    return (dt.datetime.min + v).time()
