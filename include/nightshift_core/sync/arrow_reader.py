"""Arrow-native extraction (connectorx): MySQL/MariaDB and PostgreSQL read straight into Arrow batches.

The reader speaks the wire protocol in Rust and hands over Arrow record batches in bounded chunks
(``return_type="arrow_stream"``), so no Python object is made per value. Every column is then cast to
the type the dialect layer derived from the catalog (:func:`nightshift_core.sync.source.describe`),
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
import datetime as dt
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import urlencode

import pyarrow as pa

from nightshift_core.errors import SourceDataError
from nightshift_core.sync.source import Dialect, SourceColumn, arrow_schema, quote

_NATIVE_DECIMAL = (28, 10)  # widest precision and scale connectorx returns exactly (rust_decimal, scale 10)
_MYSQL_SPATIAL = re.compile(
    r"^(geometry|point|linestring|polygon|multipoint|multilinestring|multipolygon|geometrycollection|geomcollection)"
)
_COUNT_COLUMN = "__nightshift_count"
_SEQUENCE = "@__nightshift_row"  # MariaDB: the session variable the read numbers its rows with
_PG_SSL_KEYS = ("sslmode", "sslrootcert", "sslcert", "sslkey")


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
    dialect: Dialect, columns: Sequence[SourceColumn], extra: dict | None = None
) -> str | None:
    """Why this table must be read by the DB-API path (None: the Arrow reader reads it exactly)."""
    if dialect == "sqlite":
        return "SQLite sources are read by the DB-API path"
    if not available():
        return "connectorx is not installed"
    extra = extra or {}
    if dialect == "mysql" and any(extra.get(k) for k in ("ssl", "ssl_mode")):
        return "the connection's MySQL TLS options (ssl/ssl_mode) have no tested connectorx equivalent"
    for c in columns:
        if pa.types.is_list(c.arrow_type) or pa.types.is_large_list(c.arrow_type):
            return f"column {c.name!r} ({c.source_type}): arrays have no exact connectorx mapping"
        if c.reads is not None:
            return f"column {c.name!r} ({c.source_type}): derived from another column's array"
    return None


def literal(dialect: Dialect, value: Any) -> str | None:
    """A WHERE parameter as an SQL literal (connectorx takes no bind parameters); None: no safe form."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
            if dialect == "postgres":
                return f"TIMESTAMPTZ '{value.replace(tzinfo=None).isoformat(sep=' ')}+00:00'"
            value = value.replace(tzinfo=None)  # the session runs in UTC
        text = value.isoformat(sep=" ", timespec="microseconds")
        return f"TIMESTAMP '{text}'" if dialect == "postgres" else f"'{text}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'" if dialect == "postgres" else f"'{value.isoformat()}'"
    return None


def inline(dialect: Dialect, where: str, params: Sequence[Any]) -> str | None:
    """``where`` with each ``%s`` replaced by its parameter's literal; None when one has no safe form."""
    parts = where.split("%s")
    if len(parts) != len(params) + 1:
        return None
    out = [parts[0]]
    for value, rest in zip(params, parts[1:], strict=True):
        text = literal(dialect, value)
        if text is None:
            return None
        out += [text, rest]
    return "".join(out)


def connection_url(dialect: Dialect, conn: Any) -> tuple[str, str]:
    """(connectorx URL, the password to scrub) from an Airflow Connection's host, port, schema, login,
    password and, for PostgreSQL, its sslmode/sslrootcert/sslcert/sslkey extras."""
    password = conn.password or ""
    user = url_quote(conn.login or "", safe="")
    auth = user + (":" + url_quote(password, safe="") if password else "")
    host = conn.host or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    if dialect == "mysql":
        scheme, port = "mysql", conn.port or 3306
        query = {}
    else:
        scheme, port = "postgresql", conn.port or 5432
        extra = conn.extra_dejson or {}
        query = {k: str(extra[k]) for k in _PG_SSL_KEYS if extra.get(k)}
    url = f"{scheme}://{auth}@{host}:{int(port)}/{url_quote(conn.schema or '', safe='')}"
    if query:
        url += "?" + urlencode(query)
    return url, password


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


def select_list(dialect: Dialect, columns: Sequence[SourceColumn]) -> str:
    return ", ".join(_select(dialect, c) for c in columns)


def _select(dialect: Dialect, c: SourceColumn) -> str:
    name = quote(dialect, c.name)
    expr = c.select.format(column=name) if c.select else name
    t, full = c.arrow_type, c.source_type.lower()
    text = "CHAR" if dialect == "mysql" else "text"
    if pa.types.is_decimal(t) and (
        t.precision > _NATIVE_DECIMAL[0] or t.scale > _NATIVE_DECIMAL[1] or c.select
    ):
        return f"CAST({expr} AS {text})"  # exact text, parsed by Arrow
    if dialect == "mysql":
        if full.startswith("bit"):
            return f"CAST({name} AS UNSIGNED)"
        if _MYSQL_SPATIAL.match(full):
            return f"ST_AsBinary({name})"
        if full.startswith("float"):
            return f"CAST({name} AS CHAR)"  # its shortest text form, as mysqlclient reads it
    elif full == "real" and not c.select:
        return f"CAST({name} AS text)"
    return expr


def session_setup(dialect: Dialect, snapshot: str | None) -> list[str]:
    """Statements each reader connection runs first: the task's snapshot, UTC, ISO 8601 intervals."""
    if dialect == "mysql":
        return ["SET time_zone = '+00:00'"]
    out = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"]
    if snapshot:
        if not re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):
            raise ValueError("unexpected snapshot id")
        out.append(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
    return [*out, "SET TIME ZONE 'UTC'", "SET IntervalStyle = 'iso_8601'"]


def export_snapshot(conn: Any, dialect: Dialect) -> str | None:
    """PostgreSQL: the id of the task's snapshot, for the reader's connections to join."""
    if dialect != "postgres":
        return None
    cur = conn.cursor()
    try:
        cur.execute("SELECT pg_export_snapshot()")
        return str(cur.fetchone()[0])
    finally:
        cur.close()


def extract(
    url: str,
    dialect: Dialect,
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

    condition = f" WHERE {where}" if where else ""
    selected = select_list(dialect, columns)
    setup = session_setup(dialect, snapshot)
    count_in_read = counted is not None and dialect == "mysql" and partitions <= 1
    if count_in_read:  # one statement, one snapshot: the rows read and their count agree
        if numbered:
            selected += f", CAST(({_SEQUENCE} := {_SEQUENCE} + 1) AS SIGNED) AS `{_COUNT_COLUMN}`"
            setup.append(f"SET {_SEQUENCE} = 0")
        else:
            total = f"SELECT COUNT(*) FROM {quote(dialect, table)}{condition}"  # noqa: S608
            selected += f", ({total}) AS `{_COUNT_COLUMN}`"
        counted["rows"] = 0  # no batch at all: nothing matched
    sql = f"SELECT {selected} FROM {quote(dialect, table)}{condition}"  # noqa: S608
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
