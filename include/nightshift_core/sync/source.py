"""The source through its dialect, on the DB-API path: describe a table, stream it as Arrow batches, count.

Every database's quirk lives in its dialect (:mod:`nightshift_core.sync.dialects`); these functions take
one (or its name) and name no database. Extraction uses server-side cursors so memory stays flat as
tables grow.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from nightshift_core.errors import SourceDataError
from nightshift_core.sync import dialects
from nightshift_core.sync.columns import (  # noqa: F401  (the column vocabulary, named from here too)
    EXACT_JSON_SUFFIX,
    SourceColumn,
    UnsupportedColumnError,
    arrow_schema,
)
from nightshift_core.sync.dialects import Dialect
from nightshift_core.sync.dialects.mysql import geometry_to_wkb as _mysql_geometry_to_wkb  # noqa: F401
from nightshift_core.sync.dialects.mysql import timedelta_to_time as _timedelta_to_time  # noqa: F401


def describe(
    conn: Any, dialect: Dialect | str, table: str, exclude: Sequence[str] = ()
) -> list[SourceColumn]:
    """The table's columns with exact Arrow types (:meth:`Dialect.describe`)."""
    return dialects.get(dialect).describe(conn, table, exclude)


def quote(dialect: Dialect | str, name: str) -> str:
    """A validated, quoted identifier (:meth:`Dialect.quote`)."""
    return dialects.get(dialect).quote(name)


def prepare_session(conn: Any, dialect: Dialect | str) -> None:
    """Instants in UTC, intervals in one form (:meth:`Dialect.prepare_session`)."""
    dialects.get(dialect).prepare_session(conn)


def select_sql(dialect: Dialect, table: str, columns: Sequence[SourceColumn], where: str = "") -> str:
    """``SELECT columns FROM table [WHERE ...]``, each column through its select expression."""
    cols = ", ".join(
        c.select.format(column=dialect.quote(c.reads or c.name)) if c.select else dialect.quote(c.name)
        for c in columns
    )
    return f"SELECT {cols} FROM {dialect.quote(table)}" + (f" WHERE {where}" if where else "")  # noqa: S608


def extract(
    conn: Any,
    dialect: Dialect | str,
    table: str,
    columns: Sequence[SourceColumn],
    *,
    where: str = "",
    params: Sequence[Any] = (),
    batch_rows: int = 50_000,
) -> Iterator[pa.RecordBatch]:
    """Stream ``SELECT columns FROM table [WHERE ...]`` as Arrow batches (server-side cursor)."""
    dialect = dialects.get(dialect)
    sql = select_sql(dialect, table, columns, where)
    schema = arrow_schema(columns)
    with dialect.raw_values(conn):
        cur = dialect.streaming_cursor(conn, batch_rows)
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


def bucket_checksums(
    conn: Any,
    dialect: Dialect | str,
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
    dialect = dialects.get(dialect)
    c = dialect.quote(cursor.name)
    bucket, value = dialect.checksum_terms(
        conn, dialect.quote(key), c, pa.types.is_timestamp(cursor.arrow_type), lo, width
    )
    sql = (
        f"SELECT {bucket} AS b, COUNT(*), SUM({value}) FROM {dialect.quote(table)}"  # noqa: S608
        + (f" WHERE {c} < {dialect.placeholder}" if before is not None else "") + " GROUP BY b"
    )  # fmt: skip
    cur = conn.cursor()
    try:
        cur.execute(sql, (dialect.bind(before),) if before is not None else ())
        return {int(b): (int(n), int(total or 0)) for b, n, total in cur.fetchall()}
    finally:
        cur.close()


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


def count(conn: Any, dialect: Dialect | str, table: str, where: str = "", params: Sequence[Any] = ()) -> int:
    """``SELECT COUNT(*) FROM table [WHERE ...]`` on the source."""
    sql = f"SELECT COUNT(*) FROM {dialects.get(dialect).quote(table)}" + (f" WHERE {where}" if where else "")  # noqa: S608
    return int(scalar(conn, sql, params))


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
