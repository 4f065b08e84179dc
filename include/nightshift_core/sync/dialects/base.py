"""The interface every source database implements: the only place a database's quirks live.

A dialect is stateless (one instance per database kind); each method takes the DB-API connection
it acts on. The engine, the readers and the reconciliation hold a :class:`Dialect` and never ask
which database it is: a new source database is a new subclass in its own module, registered in
``dialects/__init__.py``. The shape follows the providers' template-method transfers
(``sql_to_gcs.py`` and its MySQL/PostgreSQL subclasses).
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote as url_quote
from urllib.parse import urlencode

import pyarrow as pa

from nightshift_core.sync.clock import ServerZone
from nightshift_core.sync.columns import SourceColumn, UnsupportedColumnError, not_found
from nightshift_core.warehouse.types import UnsupportedTypeError, check_identifier

# (name, data type, full type, precision, scale, nullable): one catalog row, as describe() maps it
CatalogRow = tuple[str, str, str, Any, Any, bool]
# data type, full type, precision, scale -> (Arrow type, convert[, select])
TypeMapper = Callable[[str, str, Any, Any], tuple]


class Dialect(abc.ABC):
    """Catalog, types, quoting, snapshot, server clock and reader choice of one source database."""

    name: ClassVar[str]  # as logs and tests name it: mysql, postgres, sqlite
    connection_types: ClassVar[tuple[str, ...]]  # the Airflow conn_type values it serves
    placeholder: ClassVar[str] = "%s"  # the driver's bind-parameter mark
    counts_in_read: ClassVar[bool] = False  # the Arrow read counts its own rows (no shared snapshot)
    text_type: ClassVar[str] = "text"  # the SQL type a value is cast to for its text form

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- names and values ----------------------------------------------------------------------
    def quote(self, name: str) -> str:
        check_identifier(name, "source identifier")
        return f'"{name}"'

    def bind(self, value: Any) -> Any:
        """A query parameter in the form the source compares correctly."""
        return value

    # -- the session: snapshot, clock, zone --------------------------------------------------------
    def begin_snapshot(self, conn: Any) -> dt.datetime:
        """Make every read until the connection closes see one snapshot of the source; return the source's
        clock (a UTC instant) at a point the snapshot is no earlier than.

        The extract, the source count the quality gate compares with, and the reconciliation's pairs
        then agree even while the source changes (a row deleted between them would otherwise make the
        gate fail). Every row committed before the returned instant is in the snapshot: an incremental
        read records it as how far it read. Must run before any other statement on ``conn``.
        """
        cur = conn.cursor()
        try:
            clock_at = self._snapshot(cur)
        finally:
            cur.close()
        return assume_utc(clock_at) if clock_at.tzinfo is None else clock_at.astimezone(dt.UTC)

    @abc.abstractmethod
    def _snapshot(self, cur: Any) -> dt.datetime:
        """Open the snapshot on ``cur``'s connection; the server's clock read no later than it is taken."""

    def server_zone(self, conn: Any) -> ServerZone:
        """The zone the server's sessions write local times in, read before :meth:`prepare_session`."""
        return ServerZone("UTC", dt.timedelta(0))

    def prepare_session(self, conn: Any) -> None:  # noqa: B027  (optional: nothing to set by default)
        """Make values unambiguous (instants in UTC, intervals in one form)."""

    # -- the catalog -----------------------------------------------------------------------------
    def describe(self, conn: Any, table: str, exclude: Sequence[str] = ()) -> list[SourceColumn]:
        """The table's columns with exact Arrow types; unsupported types fail naming every such column.

        Columns in ``exclude`` (case-insensitive) are dropped before any type is mapped, so an
        excluded column never has to be understood.
        """
        check_identifier(table, "table name")
        cur = conn.cursor()
        try:
            return self._describe(cur, table, exclude)
        finally:
            cur.close()

    @abc.abstractmethod
    def _describe(self, cur: Any, table: str, exclude: Sequence[str]) -> list[SourceColumn]:
        """:meth:`describe` on an open cursor."""

    # -- change capture ------------------------------------------------------------------------------
    def partition_parents(self, conn: Any, table: str) -> list[str]:
        """The partitioned tables ``table`` is a partition of, nearest first ([]: none, or no partitions)."""
        return []

    # -- the DB-API reader -------------------------------------------------------------------------
    def streaming_cursor(self, conn: Any, batch_rows: int) -> Any:
        """A cursor that streams a result instead of holding it whole."""
        return conn.cursor()

    @contextlib.contextmanager
    def raw_values(self, conn: Any) -> Iterator[None]:
        """While extracting: have the driver return what Arrow parses faster itself as raw text."""
        yield

    def checksum_terms(
        self, conn: Any, key: str, cursor: str, timed: bool, lo: int, width: int
    ) -> tuple[str, str]:
        """(bucket of ``key``: ``(key - lo) DIV width``, the cursor as an integer: microseconds since
        1970-01-01 for a timestamp, else its value) as SQL over the quoted column names."""
        value = f"CAST(EXTRACT(EPOCH FROM {cursor}) * 1000000 AS BIGINT)" if timed else cursor
        return f"({key} - {int(lo)}) / {int(width)}", value

    # -- the Arrow reader (connectorx) ---------------------------------------------------------------
    def arrow_refusal(self, extra: dict) -> str | None:
        """Why the Arrow reader cannot read this source at all (None: it can), from the connection's extras."""
        return None

    def arrow_url(self, conn: Any) -> tuple[str, str]:
        """(connectorx URL, the password to scrub) from an Airflow Connection's fields."""
        raise NotImplementedError(f"{self.name}: no Arrow reader")

    def _url(self, scheme: str, default_port: int, conn: Any, query: dict[str, str]) -> tuple[str, str]:
        password = conn.password or ""
        user = url_quote(conn.login or "", safe="")
        auth = user + (":" + url_quote(password, safe="") if password else "")
        host = conn.host or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        port = conn.port or default_port
        url = f"{scheme}://{auth}@{host}:{int(port)}/{url_quote(conn.schema or '', safe='')}"
        if query:
            url += "?" + urlencode(query)
        return url, password

    def arrow_session(self, snapshot: str | None) -> list[str]:
        """Statements each Arrow reader connection runs first."""
        return []

    def export_snapshot(self, conn: Any) -> str | None:
        """The id of the task's snapshot for the Arrow reader's connections to join (None: cannot share)."""
        return None

    def numbers_rows(self, conn: Any) -> bool:
        """Whether the server can number the rows of a read (counting it without a second scan)."""
        return False

    def count_in_read(self, table: str, condition: str, numbered: bool, column: str) -> tuple[str, list[str]]:
        """(a select-list item named ``column`` counting the read's rows, statements to run first)."""
        raise NotImplementedError(f"{self.name}: the Arrow read does not count its own rows")

    def literal(self, value: Any) -> str | None:
        """A WHERE parameter as an SQL literal (connectorx takes no bind parameters); None: no safe form."""
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int):
            return str(int(value))
        if isinstance(value, Decimal) and value.is_finite():
            return str(value)
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                return self._instant_literal(value.astimezone(dt.UTC))
            return self._wall_literal(value.isoformat(sep=" ", timespec="microseconds"))
        if isinstance(value, dt.date):
            return self._date_literal(value.isoformat())
        return None

    def _instant_literal(self, value: dt.datetime) -> str:
        """A UTC instant; the reader's session runs in UTC."""
        return self._wall_literal(value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"))

    def _wall_literal(self, text: str) -> str:
        return f"'{text}'"

    def _date_literal(self, text: str) -> str:
        return f"'{text}'"

    def arrow_select(self, column: SourceColumn, native_decimal: tuple[int, int]) -> str:
        """The select-list item the Arrow reader reads ``column`` through: a DECIMAL wider than
        ``native_decimal`` (precision, scale) as the server's exact text, parsed by Arrow."""
        name = self.quote(column.name)
        expr = column.select.format(column=name) if column.select else name
        t = column.arrow_type
        if pa.types.is_decimal(t) and (
            t.precision > native_decimal[0] or t.scale > native_decimal[1] or column.select
        ):
            return f"CAST({expr} AS {self.text_type})"
        return self._arrow_expression(column, name, expr)

    def _arrow_expression(self, column: SourceColumn, name: str, expr: str) -> str:
        return expr


def catalog_columns(
    table: str,
    rows: Sequence[CatalogRow],
    exclude: Sequence[str],
    mapper: TypeMapper,
    text_cast: set[str] = frozenset(),
) -> list[SourceColumn]:
    """Map catalog rows to columns: ``exclude`` dropped first, every unsupported type reported at once;
    a data type in ``text_cast`` is read as the driver's raw text and parsed by Arrow."""
    if not rows:
        raise not_found(table)
    skip = {c.lower() for c in exclude}
    out, problems = [], []
    for name, data_type, full_type, precision, scale, nullable in rows:
        if name.lower() in skip:
            continue
        try:
            mapped = mapper(data_type, full_type, precision, scale)
        except UnsupportedTypeError as exc:
            problems.append((name, full_type, str(exc)))
            continue
        arrow_type, convert, select = (*mapped, None)[:3]
        cast = data_type in text_cast
        out.append(
            SourceColumn(name, full_type, arrow_type, nullable, None if cast else convert, cast, select)
        )
    if problems:
        raise UnsupportedColumnError(table, problems)
    return out


def decimal_type(precision: int | None, scale: int | None) -> pa.DataType:
    p, s = int(precision or 38), int(scale or 0)
    return pa.decimal128(p, s) if p <= 38 else pa.decimal256(p, s)


def assume_utc(v: dt.datetime) -> dt.datetime:
    return v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v
