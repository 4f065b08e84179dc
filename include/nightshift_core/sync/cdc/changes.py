"""Row changes read from a source's log, and their fold per primary key (pure: no database)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from nightshift_core.errors import PermanentError

Op = Literal["insert", "update", "delete"]


class Change(NamedTuple):
    """One row change of a committed transaction, in commit order.

    ``before`` is the row before the change (None for an insert; on PostgreSQL only the key columns
    unless the table has REPLICA IDENTITY FULL), ``after`` the row after it (None for a delete).
    ``position`` is the log position just after the change's transaction committed (a binlog
    position or an LSN): a reader started there sees none of this transaction again; None for a part of
    a transaction too big to hold, yielded before its commit (its last part carries the position). ``seq`` orders
    the changes of one read: transactions in commit order, then statement order inside each.
    ``closes`` marks the last change of its transaction (or of a part of one): the reader has nothing
    more of it, so a consumer may commit what it holds there without reading on.

    A named tuple, not a dataclass: a run makes one per row change, and a tuple is built several
    times faster than a frozen dataclass.
    """

    table: str
    op: Op
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    commit_time: dt.datetime
    position: Any
    seq: int
    closes: bool = False


Pending = tuple[str, str, Mapping[str, Any] | None, Mapping[str, Any] | None]  # table, op, before, after


def hand_over(
    pending: list[Pending], commit_time: dt.datetime, position: Any, seq: int
) -> Generator[Change, None, int]:
    """A reader's ``pending`` rows of one transaction (or part) as changes numbered after ``seq``, the
    last one closing; ``pending`` empties as they go, so the reader holds none of what its consumer
    holds. Returns the last ``seq``."""
    pending.reverse()
    while pending:
        table, op, before, after = pending.pop()
        seq += 1
        yield Change(table, op, before, after, commit_time, position, seq, not pending)  # type: ignore[arg-type]
    return seq


class TruncatedError(PermanentError):
    """A TRUNCATE of a captured table reached the log: it carries no row images, so the log alone
    cannot tell which rows went; the table must be reloaded (a full refresh)."""

    def __init__(self, table: str, position: Any) -> None:
        self.table = table
        self.position = position
        super().__init__(
            f"{table} was truncated at log position {position}: change capture cannot follow a TRUNCATE; "
            "reload the table with a full_refresh run"
        )


class TableReplacedError(PermanentError):
    """A captured table was dropped, renamed or replaced (``what`` says how): the rows the log holds
    after it are another table's, so the table must be reloaded (a full refresh)."""

    def __init__(self, table: str, position: Any, what: str) -> None:
        self.table = table
        self.position = position
        super().__init__(
            f"{table} was dropped, renamed or replaced at log position {position} ({what}): change capture "
            "cannot follow one table into another; reload the table with a full_refresh run"
        )


class Folded(NamedTuple):
    """The net effect of a run's changes on one primary key: the row to upsert, or a tombstone."""

    table: str
    key: tuple
    op: Literal["upsert", "delete"]
    row: Mapping[str, Any] | None
    commit_time: dt.datetime
    position: Any


def _key(change: Change, image: Mapping[str, Any] | None, columns: Sequence[str]) -> tuple:
    try:
        return tuple([image[c] for c in columns])  # type: ignore[index]
    except (KeyError, TypeError):
        pass  # no image, or a key column missing from it: say which below
    if image is None:
        raise ValueError(
            f"{change.table}: a {change.op} change (seq {change.seq}) has no row image to key on"
        )
    missing = [c for c in columns if c not in image]
    if missing:
        raise ValueError(
            f"{change.table}: primary-key column(s) {missing} are not in the {change.op} change's row image "
            f"(columns: {sorted(image)}); check the key columns given for this table"
        )
    return tuple(image[c] for c in columns)


def fold(changes: Iterable[Change], keys: Mapping[str, Sequence[str]]) -> list[Folded]:
    """Fold changes per (table, primary key) in commit order: the last change of a key wins.

    A delete becomes a tombstone carrying its commit time; an update that changes the primary key is a
    delete of the old key plus an upsert of the new one. ``keys`` maps each table to its primary-key
    columns. Changes must arrive in commit order (strictly increasing ``seq``), as the readers yield
    them; anything else is refused rather than folded in the wrong order.
    """
    folder = Folder(keys)
    for change in changes:
        folder.add(change)
    return folder.take()


_OTHER = object()  # marks a Folder entry of a table other than its first (no key tuple equals it)


class Folder:
    """:func:`fold`, one change at a time: what it holds is one entry per key changed since the last
    :meth:`take`, never the changes themselves (a backlog is drained in chunks of bounded size)."""

    def __init__(self, keys: Mapping[str, Sequence[str]], default: Sequence[str] | None = None) -> None:
        self.keys = keys
        self.default = default  # the key columns of a table ``keys`` does not name (a read of one table)
        self.changes = 0  # changes added since the last take
        # One entry per key: keyed by the key tuple alone for the first table seen (a run reads one
        # table: no (table, key) pair per entry), by (_OTHER, table, key) for any other table.
        self._net: dict[tuple, Folded] = {}
        self._table: str | None = None
        self._last_seq: int | None = None

    def __len__(self) -> int:
        return len(self._net)

    def add(self, change: Change) -> int:
        """Fold ``change`` in; returns 1 (a change), as a folder of blocks returns their changes."""
        table, op, before, after, commit_time, position, seq, _closes = change
        if self._last_seq is not None and seq <= self._last_seq:
            raise ValueError(f"changes out of commit order: seq {seq} after seq {self._last_seq}")
        self._last_seq = seq
        columns = self.keys.get(table, self.default)
        if columns is None:
            raise ValueError(f"no primary-key columns given for table {table!r}")
        self.changes += 1
        if self._table is None:
            self._table = table
        first = table == self._table
        net = self._net
        if op == "delete":
            key = _key(change, before, columns)
            at = key if first else (_OTHER, table, key)
            net.pop(at, None)
            net[at] = Folded(table, key, "delete", None, commit_time, position)
            return 1
        key = _key(change, after, columns)
        if before is not None and op == "update":
            old = _key(change, before, columns)
            if old != key:
                at = old if first else (_OTHER, table, old)
                net.pop(at, None)
                net[at] = Folded(table, old, "delete", None, commit_time, position)
        at = key if first else (_OTHER, table, key)
        net.pop(at, None)
        net[at] = Folded(table, key, "upsert", after or {}, commit_time, position)
        return 1

    def take(self) -> list[Folded]:
        """The net rows in the order their keys last changed; the folder is empty after it."""
        folded, self._net, self.changes = list(self._net.values()), {}, 0
        return folded
