"""Arrow-native extraction (connectorx): MySQL/MariaDB and PostgreSQL read straight into Arrow batches.

The reader speaks the wire protocol in Rust and hands over Arrow record batches in bounded chunks
(``return_type="arrow_stream"``), so no Python object is made per value. Every column is then cast to
the type the dialect derived from the catalog (:meth:`nightshift_core.sync.dialects.Dialect.describe`),
so both readers produce the same schema and the same values:

- DECIMAL/NUMERIC: connectorx returns ``decimal128(38, 10)`` and rounds a value with more decimals;
  a column whose declared precision is above 28 or scale above 10 (or PostgreSQL's unconstrained
  numeric, money) is read as the server's text and parsed by Arrow, which never rounds.
- FLOAT (4 bytes): through its shortest text form, as the DB-API path reads it.
- MySQL BIT: as an unsigned integer; spatial types: the server's OGC WKB (``ST_AsBinary``).
- TIMESTAMP/timestamptz: the session runs in UTC, as on the DB-API path.

What connectorx cannot read exactly (PostgreSQL arrays; SQLite; MySQL TLS options it has no tested
equivalent for; a WHERE parameter with no safe literal form) is read by the DB-API path instead:
:func:`fallback_reason` says which column or option and why.

PostgreSQL: the read joins the task's snapshot (``pg_export_snapshot``), so the extract, the gate's
count and the reconciliation pairs still agree while the source changes. MySQL/MariaDB cannot share
a snapshot between sessions: the read is one statement (one consistent view of its own).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote as url_quote

import pyarrow as pa

from nightshift_core.errors import SourceDataError
from nightshift_core.sync import dialects
from nightshift_core.sync.columns import SourceColumn, arrow_schema
from nightshift_core.sync.dialects import Dialect

_NATIVE_DECIMAL = (28, 10)  # widest precision and scale connectorx returns exactly (rust_decimal, scale 10)
_COUNT_COLUMN = "__nightshift_count"


class ArrowReadError(RuntimeError):
    """The Arrow reader failed (a connection refused, a query error): retried like any connection error.
    The message never holds the password."""


def available() -> bool:
    try:
        import connectorx  # noqa: F401
    except ImportError:
        return False
    return True


def fallback_reason(
    dialect: Dialect | str, columns: Sequence[SourceColumn], extra: dict | None = None
) -> str | None:
    """Why this table must be read by the DB-API path (None: the Arrow reader reads it exactly)."""
    why = dialects.get(dialect).arrow_refusal(extra or {})
    if why is not None:
        return why
    if not available():
        return "connectorx is not installed"
    for c in columns:
        if pa.types.is_list(c.arrow_type) or pa.types.is_large_list(c.arrow_type):
            return f"column {c.name!r} ({c.source_type}): arrays have no exact connectorx mapping"
        if c.reads is not None:
            return f"column {c.name!r} ({c.source_type}): derived from another column's array"
    return None


def inline(dialect: Dialect | str, where: str, params: Sequence[Any]) -> str | None:
    """``where`` with each ``%s`` replaced by its parameter's literal; None when one has no safe form."""
    parts = where.split("%s")
    if len(parts) != len(params) + 1:
        return None
    dialect = dialects.get(dialect)
    out = [parts[0]]
    for value, rest in zip(params, parts[1:], strict=True):
        text = dialect.literal(value)
        if text is None:
            return None
        out += [text, rest]
    return "".join(out)


def connection_url(dialect: Dialect | str, conn: Any) -> tuple[str, str]:
    """(connectorx URL, the password to scrub) from an Airflow Connection (:meth:`Dialect.arrow_url`)."""
    return dialects.get(dialect).arrow_url(conn)


def scrub(text: str, password: str) -> str:
    """``text`` without the password (raw or URL-quoted) and without any URL's credentials."""
    text = re.sub(r"(\w+://)[^@/\s]*@", r"\1***@", str(text))
    for secret in {password, url_quote(password, safe="")} - {""}:
        text = text.replace(secret, "***")
    return text


@contextlib.contextmanager
def _scrubbed_stderr(password: str) -> Iterator[None]:
    """connectorx's connection pool logs each failed connect from native code to the process's stderr,
    the server's message included (which can quote the URL): while it connects, file descriptor 2 goes
    to a spool that is copied back scrubbed."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as spool:
        os.dup2(spool.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            spool.seek(0)
            text = spool.read().decode(errors="replace")
            if text:
                os.write(2, scrub(text, password).encode())


def select_list(dialect: Dialect | str, columns: Sequence[SourceColumn]) -> str:
    dialect = dialects.get(dialect)
    return ", ".join(dialect.arrow_select(c, _NATIVE_DECIMAL) for c in columns)


def extract(
    url: str,
    dialect: Dialect | str,
    table: str,
    columns: Sequence[SourceColumn],
    *,
    where: str = "",
    batch_rows: int = 50_000,
    snapshot: str | None = None,
    partitions: int = 1,
    partition_on: str | None = None,
    password: str = "",
    counted: dict | None = None,
    numbered: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Stream ``SELECT columns FROM table [WHERE ...]`` as Arrow batches of the catalog's types.

    ``partitions`` > 1 reads key ranges of the integer column ``partition_on`` over that many
    connections at once (never more). ``counted`` (a dict, MySQL/MariaDB, one partition): the same
    statement also counts the rows its WHERE selects, in the read's own snapshot, into
    ``counted["rows"]``: a session cannot share its snapshot there, so the gate's count comes from the
    read itself (computed by the server, not by counting batches). With ``numbered`` (MariaDB) the
    server numbers the rows it sends (a session variable, one increment per row) instead of running
    a ``COUNT(*)`` subquery, which scans the table a second time before the first row: the last
    number is the server's count, and a number missing or repeated on arrival fails the read.
    """
    import connectorx as cx

    dialect = dialects.get(dialect)
    condition = f" WHERE {where}" if where else ""
    selected = select_list(dialect, columns)
    setup = dialect.arrow_session(snapshot)
    count_in_read = counted is not None and dialect.counts_in_read and partitions <= 1
    if count_in_read:  # one statement, one snapshot: the rows read and their count agree
        counter, first = dialect.count_in_read(table, condition, numbered, _COUNT_COLUMN)
        selected += ", " + counter
        setup += first
        counted["rows"] = 0  # no batch at all: nothing matched
    sql = f"SELECT {selected} FROM {dialect.quote(table)}{condition}"  # noqa: S608
    schema = arrow_schema(columns)
    options: dict[str, Any] = {
        "return_type": "arrow_stream",
        "batch_size": int(batch_rows),
        "pre_execution_query": setup,
    }
    if partitions > 1 and partition_on:
        options.update(partition_on=partition_on, partition_num=int(partitions))
    try:
        with _scrubbed_stderr(password):  # the connections are made here, before the first batch
            reader = cx.read_sql(url, sql, **options)
        for batch in reader:
            if batch.num_rows and count_in_read:
                count = batch.column(len(schema))
                if numbered:
                    _check_numbers(count, counted["rows"], table)
                    counted["rows"] += batch.num_rows
                else:
                    counted["rows"] = int(count[0].as_py())
                batch = batch.select(range(len(schema)))
            if batch.num_rows:
                yield conform(batch, schema, table)
    except (SourceDataError, ArrowReadError):
        raise
    except BaseException as exc:  # connectorx reports some failures as a Rust panic (a BaseException)
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        raise ArrowReadError(
            f"table {table!r}: the Arrow reader failed: {scrub(_first_line(exc), password)}"
            " (set `source.reader: dbapi` in the sync definition to read it through the DB-API path)"
        ) from None


def _check_numbers(numbers: pa.Array, before: int, table: str) -> None:
    """The server's row numbers in a batch must continue from ``before`` one by one."""
    import numpy as np

    got = numbers.to_numpy(zero_copy_only=False)
    off = np.flatnonzero(np.diff(got) != 1)  # positions whose next number is not one more
    if got[0] != before + 1 or off.size:
        at = before + 1 if got[0] != before + 1 else before + 2 + int(off[0])
        raise ArrowReadError(
            f"table {table!r}: the server numbered the rows it sent, and row {at} arrived out of sequence "
            "(a row lost or repeated on the way); nothing was written. Retrying reads the table again; if it "
            "persists, set `source.reader: dbapi` in the sync definition"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def conform(batch: pa.RecordBatch, schema: pa.Schema, table: str) -> pa.RecordBatch:
    """Cast each column to the catalog's type, exactly (an unsafe cast fails naming the column)."""
    arrays = []
    for i, field in enumerate(schema):
        try:
            arrays.append(_cast(batch.column(i), field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise SourceDataError(
                f"table {table!r}, column {field.name!r}: a value does not fit {field.type} ({exc}); "
                "fix the data or exclude the column"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _cast(array: pa.Array, target: pa.DataType) -> pa.Array:
    if array.type == target:
        return array
    if isinstance(target, pa.BaseExtensionType):  # e.g. JSON: the text is the storage
        return pa.ExtensionArray.from_storage(target, _cast(array, target.storage_type))
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(array.type):
        if target.tz and not array.type.tz:
            return array.cast(pa.timestamp(target.unit, tz="UTC")).cast(target)  # the session runs in UTC
        return array.cast(target)
    if pa.types.is_float64(target) and pa.types.is_string(array.type):
        return array.cast(target)
    if pa.types.is_boolean(target) and pa.types.is_integer(array.type):
        return array.cast(target)
    if pa.types.is_large_binary(array.type) or pa.types.is_large_string(array.type):
        array = array.cast(pa.binary() if pa.types.is_large_binary(array.type) else pa.string())
        if array.type == target:
            return array
    return array.cast(target, safe=True)
