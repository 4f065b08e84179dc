"""The interface a source database's change log implements for :mod:`nightshift_core.sync.cdc.run`.

:func:`nightshift_core.sync.cdc.sources.log_source` picks the log source for a dialect (the dialects
know nothing of change capture), and the run holds it without asking which database it is: the
snapshot consistent with a log position, the guards and the bounded read from a stored position, the
confirmation after the warehouse's commit. MySQL/MariaDB's binlog is in ``mysql_source.py``,
PostgreSQL's logical decoding in ``postgres_source.py``.
"""

from __future__ import annotations

import abc
import contextlib
import gc
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pyarrow as pa

    from nightshift_core.sync.cdc.endpoint import Endpoint
    from nightshift_core.sync.cdc.guards import GuardLimits
    from nightshift_core.sync.cdc.table import CdcTable
    from nightshift_core.sync.dialects.base import Dialect
    from nightshift_core.sync.source import SourceColumn


@dataclass(frozen=True)
class LogRun:
    """What opening one table's log read takes: the source session (``conn``, its catalog read done),
    where the reader connects, the table, the position the warehouse holds (``stored``, its JSON), the
    log-retention guards' limits, and where warnings go."""

    conn: Any
    endpoint: Endpoint
    table: CdcTable
    stored: str
    limits: GuardLimits
    warn: Callable[[str], None]

    @property
    def position(self) -> dict[str, Any]:
        """The stored position, decoded."""
        return json.loads(self.stored)


class LogSource(abc.ABC):
    """One source database's change log: snapshot with its position, guarded read, confirmation."""

    default_port: ClassVar[int]  # where the log reader connects when the connection names no port

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dialect!r})"

    @abc.abstractmethod
    def snapshot(self, conn: Any, endpoint: Endpoint, table: CdcTable) -> dict[str, Any]:
        """Open on ``conn`` (nothing run on it yet) a read-only snapshot, its session prepared, and return
        the log position it is consistent with (the first log run reads from there)."""

    def check_columns(self, table: str, columns: Sequence[SourceColumn]) -> None:  # noqa: B027  (optional)
        """Refuse columns the log's row images cannot be read back into (naming them and the fix)."""

    @abc.abstractmethod
    def check_server(self, conn: Any, server: str) -> None:
        """Raise :class:`~.preflight.PreflightError` listing every server setting the log needs changed
        (read-only; ``server`` is how the message names it)."""

    def check_capacity(self, conn: Any, tables: int, server: str) -> str | None:
        """What keeps the server from serving ``tables`` captured tables at once (None: nothing)."""
        return None

    def check_table(
        self, conn: Any, table: str, key: Sequence[str], columns: Sequence[SourceColumn], *, server: str
    ) -> None:
        """What the log path refuses of ``table`` before its first run (where a definition is written):
        :meth:`check_columns`, and whatever the database adds."""
        self.check_columns(table, columns)

    def after_describe(self, conn: Any) -> None:  # noqa: B027  (optional: nothing to end by default)
        """Before a log run reads the log: end the catalog read's transaction where one is open."""

    @abc.abstractmethod
    def open_log(self, run: LogRun) -> contextlib.AbstractContextManager[Any]:
        """A reader of ``run.table``'s changes, the log-retention guards passed for the stored position:
        a log about to be lost fails, naming the fix; warnings go to ``run.warn``."""

    @abc.abstractmethod
    def read(self, reader: Any, position: dict[str, Any]) -> Any:
        """The changes from ``position`` up to the position current now (iterable, ``start``, ``end``)."""

    def units(self, read: Any) -> Iterable[Any]:
        """What a run folds of ``read``, in commit order: its changes, or blocks of them that
        :meth:`folder`'s folder takes (each with ``closes`` and ``position`` as a change has)."""
        return read

    def folder(self, table: CdcTable) -> Any:
        """What folds :meth:`units` per key: ``add(unit)`` returns the changes it held, ``take()`` the net
        rows (a list of :class:`~.changes.Folded`, or what :meth:`columns` reads), ``changes``."""
        from nightshift_core.sync.cdc.changes import Folder

        return Folder({}, default=table.primary_key)

    def columns(
        self, conn: Any, folded: Any, columns: Sequence[SourceColumn], table: str
    ) -> tuple[list[pa.Array], list[list[str]]]:
        """As :meth:`batch`, for net rows :meth:`folder` gives column by column (not a list)."""
        raise NotImplementedError(f"{type(self).__name__} folds changes one by one")

    @abc.abstractmethod
    def encode(self, position: Any) -> dict[str, Any]:
        """A reader's position as the warehouse stores it (JSON)."""

    def confirm(self, reader: Any, end: Any) -> None:  # noqa: B027  (optional: a binlog keeps no state)
        """After the warehouse committed up to ``end``: let the server recycle the log before it."""

    @abc.abstractmethod
    def batch(
        self, conn: Any, rows: list[dict], columns: Sequence[SourceColumn], table: str
    ) -> tuple[list[pa.Array], list[list[str]]]:
        """The folded rows as Arrow arrays, and per row the columns its image left out."""


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """While a log run makes its objects per change (row images, changes, folded rows): the objects
    alive before it moved out of the cyclic garbage collector's reach (``gc.freeze``), so its
    collections scan what the run makes, not the whole process (Airflow, pandas, pyarrow...) again;
    a 21,600-change run spent 0.13-0.20 s in them, 0.03-0.05 s this way. They are handed back after,
    even on an error; nothing is done when the collector is off or the heap is frozen already."""
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
