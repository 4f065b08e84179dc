"""Bounded reads of PostgreSQL's logical decoding: one slot and one publication per sync definition.

The slot decodes with the built-in ``pgoutput`` plugin (limited to the definition's tables by the
publication) through the SQL functions: ``pg_logical_slot_peek_binary_changes`` reads without
consuming, ``pg_replication_slot_advance`` confirms. So a read can be repeated until the caller says
its data is committed, and only then does the slot let the server recycle that WAL (`confirm`).

A read ends at the WAL position current when it started. Positions are LSNs (ints; `format_lsn`
gives PostgreSQL's text form): a change's position is the end of its transaction's commit record.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import struct
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import psycopg2
from psycopg2 import sql

from nightshift_core.sync.cdc.changes import Change, Pending, TruncatedError, hand_over
from nightshift_core.sync.cdc.endpoint import Endpoint, ServerReader
from nightshift_core.sync.cdc.preflight import check_postgres

_NAME = re.compile(r"[a-z][a-z0-9_]{0,49}")
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_OID = struct.Struct("!I").unpack_from
_INT32 = struct.Struct("!i").unpack_from
# Text values pgoutput sends, turned into Python values for the key types; the rest stay text until
# the engine refactor maps every type as the query path does.
_CASTS: dict[int, Any] = {
    16: lambda v: v == "t",
    20: int,
    21: int,
    23: int,
    26: int,
    700: float,
    701: float,
    1700: Decimal,
}


# pgoutput writes each value with its type's output function in the reading session: dates and
# timestamps in ISO form and in UTC, bytea in hex, whatever the server's defaults, so values.py parses
# them itself (the server reads any of its own forms back alike).
_SESSION = "SET DateStyle = 'ISO, MDY'; SET TimeZone = 'UTC'; SET bytea_output = 'hex'"


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


class LogicalRead:
    """One bounded read: iterate it for the changes; ``end`` is where the next read starts."""

    def __init__(self, reader: LogicalReader, start: int, upto: int) -> None:
        self.start = start
        self.end = upto
        self._upto = upto
        self._reader = reader

    def __iter__(self) -> Iterator[Change]:
        return self._ended(self._reader._changes(self.start, self._upto))

    def blocks(self) -> Iterator[Block]:
        """The read as :class:`Block` s (row messages not yet decoded) instead of changes."""
        return self._ended(self._reader._blocks(self.start, self._upto))

    def _ended(self, items: Iterator[Any]) -> Iterator[Any]:
        for item in items:
            # A commit record that straddles the bound is decoded with it: the next read starts after it.
            if item.position is not None:
                self.end = max(self.end, item.position)
            yield item


class LogicalReader(ServerReader):
    """Reads the row changes of ``tables`` through the slot and publication of ``definition``."""

    def __init__(
        self,
        endpoint: Endpoint,
        definition: str,
        tables: Sequence[str],
        *,
        text: bool = False,
        split_after: int = 0,
    ) -> None:
        if not _NAME.fullmatch(definition):
            raise ValueError(
                f"sync definition name {definition!r} cannot name a replication slot: use lower-case "
                "letters, digits and '_', starting with a letter, at most 50 characters"
            )
        self.endpoint = endpoint
        self.slot = f"nightshift_{definition}"
        self.tables = [t if "." in t else f"public.{t}" for t in tables]
        self.text = text  # values as pgoutput's text (the caller casts them), not the few Python casts
        # a transaction with more changes than this is yielded in parts before its commit (0: never)
        self.split_after = split_after
        self._conn = self._connect()
        self._conn.autocommit = True
        check_postgres(self._conn, f"PostgreSQL server {endpoint}")

    def _connect(self) -> Any:
        e = self.endpoint
        conn = psycopg2.connect(host=e.host, port=e.port, user=e.user, password=e.password, dbname=e.database)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(_SESSION)
        except BaseException:
            conn.close()
            raise
        return conn

    def _one(self, query: Any, params: Sequence[Any] = ()) -> Any:
        if not self._conn.autocommit:  # a read's transaction: a statement here would end with its rollback
            raise RuntimeError(
                f"slot {self.slot}: a read is still open on this reader; finish or close it first"
            )
        with self._conn.cursor() as cur:
            cur.execute(query, params)
            row = cur.fetchone()
        return row[0] if row else None

    def _table_list(self) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(*t.split(".", 1)) for t in self.tables)

    def ensure_slot(self) -> int:
        """Create the publication and the slot if missing; return the slot's confirmed position.

        A new slot sees the changes committed after its creation, nothing before.
        """
        self.ensure_publication()
        if not self._one("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [self.slot]):
            self._one("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [self.slot])
        return self.slot_position()

    def ensure_publication(self) -> None:
        """Create the publication, or set its tables to this reader's."""
        pub = sql.Identifier(self.slot)
        if self._one("SELECT 1 FROM pg_publication WHERE pubname = %s", [self.slot]):
            self._one(sql.SQL("ALTER PUBLICATION {} SET TABLE {}; SELECT 1").format(pub, self._table_list()))
        else:
            self._one(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}; SELECT 1").format(pub, self._table_list()))

    def create_slot_with_snapshot(self) -> tuple[int, str, Any]:
        """(Re)create the slot on a replication connection with an exported snapshot.

        Returns the slot's start position, the snapshot's name and the replication connection, which
        must stay open (and idle) until a reading transaction has run ``SET TRANSACTION SNAPSHOT``:
        that transaction then sees exactly the rows committed before the slot's first change.
        """
        from psycopg2.extras import LogicalReplicationConnection

        self.ensure_publication()
        if self._one("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [self.slot]):
            self._one("SELECT pg_drop_replication_slot(%s)", [self.slot])
        e = self.endpoint
        replication = psycopg2.connect(host=e.host, port=e.port, user=e.user, password=e.password,
                                       dbname=e.database, connection_factory=LogicalReplicationConnection)  # fmt: skip
        try:
            cur = replication.cursor()
            cur.execute(f"CREATE_REPLICATION_SLOT {self.slot} LOGICAL pgoutput EXPORT_SNAPSHOT")
            _slot, consistent_point, snapshot, _plugin = cur.fetchone()
        except BaseException:
            replication.close()
            raise
        return parse_lsn(consistent_point), snapshot, replication

    def slot_position(self) -> int:
        """The position the slot has confirmed: the server keeps the WAL after it."""
        lsn = self._one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", [self.slot]
        )
        if lsn is None:
            raise LookupError(
                f"{self.endpoint}: replication slot {self.slot} does not exist (call ensure_slot)"
            )
        return parse_lsn(lsn)

    def current_position(self) -> int:
        """The WAL flushed to disk: what decoding reads and how far ``pg_replication_slot_advance``
        moves a slot (it stops at the flush point, so a bound past it would store a position the
        slot is never confirmed to). A committed transaction is flushed before its commit returns."""
        return parse_lsn(self._one("SELECT pg_current_wal_flush_lsn()::text"))

    def read(self, start: int) -> LogicalRead:
        """The changes committed after ``start`` up to the WAL position current now (not beyond).

        ``start`` is the stored position; it may be ahead of the slot (a run committed its data but did
        not confirm): transactions up to it are skipped, not returned twice.
        """
        return LogicalRead(self, start, max(start, self.current_position()))

    def confirm(self, position: int) -> None:
        """Tell the slot everything up to ``position`` is committed downstream (never moves it back)."""
        if position > self.slot_position():
            self._one("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", [self.slot, format_lsn(position)])

    def drop(self) -> None:
        """Drop the slot and the publication (a slot left behind keeps WAL on the server forever)."""
        if self._one("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [self.slot]):
            self._one("SELECT pg_drop_replication_slot(%s)", [self.slot])
        self._one(sql.SQL("DROP PUBLICATION IF EXISTS {}; SELECT 1").format(sql.Identifier(self.slot)))

    def _changes(self, start: int, upto: int) -> Iterator[Change]:
        with contextlib.closing(self._messages(start, upto)) as messages:  # (a raise ends the read too)
            yield from _decode(messages, start, text=self.text, split_after=self.split_after)

    def _blocks(self, start: int, upto: int) -> Iterator[Block]:
        with contextlib.closing(self._messages(start, upto)) as messages:
            yield from _blocks(messages, start, split_after=self.split_after)

    def _messages(self, start: int, upto: int) -> Iterator[tuple[str, bytes]]:
        if upto <= start:
            return  # no WAL flushed since the position: nothing to decode (and no query to ask)
        # On the control connection (no second login): a server-side cursor, which needs a transaction,
        # streams the decoded messages instead of holding them all here; autocommit again after it.
        conn = self._conn
        conn.autocommit = False
        try:
            with conn.cursor(name=f"{self.slot}_read") as cur:
                cur.itersize = 5000
                cur.execute(
                    "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, NULL, "
                    "'proto_version', '1', 'publication_names', %s)",
                    [self.slot, format_lsn(upto), self.slot],
                )
                for lsn, data in cur:
                    yield lsn, bytes(data)
        finally:
            if not conn.closed:
                conn.rollback()
                conn.autocommit = True


class Block:
    """Row messages of one committed transaction, or of a part of a bigger one (``position`` None), in
    commit order: ``segments`` pairs each run of rows with the Relation in effect for them (a Relation
    message between two rows, after a DDL, starts a new segment)."""

    __slots__ = ("commit_time", "count", "position", "segments")

    def __init__(self, segments: list, commit_time: dt.datetime, position: int | None) -> None:
        self.segments: list[tuple[_Relation, list[bytes]]] = segments
        self.count = sum(len(rows) for _, rows in segments)
        self.commit_time = commit_time
        self.position = position

    closes = True  # a block ends where its transaction (or part) does: a chunk may be committed after it


def _blocks(messages: Iterator[tuple[str, bytes]], start: int, *, split_after: int = 0) -> Iterator[Block]:
    """pgoutput protocol version 1 messages (with their LSN's text) -> the row messages of the
    transactions committed after ``start``, one :class:`Block` per transaction. With ``split_after``, a
    bigger transaction comes in parts of that many rows before its commit, without a position (a read
    from the boundary before it sees them again)."""
    relations: dict[int, _Relation] = {}
    segments: list[tuple[_Relation, list[bytes]]] = []
    rows: list[bytes] = []
    current: _Relation | None = None
    pending = 0
    begun_at, replayed = _PG_EPOCH, True
    for lsn, data in messages:
        kind = data[0]
        if kind == 85 or kind == 73 or kind == 68:  # 'U', 'I', 'D': a row change (most messages)
            relation = relations[_OID(data, 1)[0]]
            if relation is not current:
                current, rows = relation, []
                segments.append((relation, rows))
            rows.append(data)
            pending += 1
            if split_after and pending >= split_after and not replayed:
                yield Block(segments, begun_at, None)
                segments, current, pending = [], None, 0
        elif kind == 66:  # 'B'
            segments, current, pending = [], None, 0
            final_lsn, micros = struct.unpack_from("!qq", data, 1)
            # its commit record starts before ``start``: committed downstream already, all of it skipped
            begun_at, replayed = _PG_EPOCH + dt.timedelta(microseconds=micros), final_lsn < start
        elif kind == 82:  # 'R'
            relation = _relation(data)
            relations[relation.oid] = relation
        elif kind == 67:  # 'C'
            _flags, _commit_lsn, end_lsn, micros = struct.unpack_from("!bqqq", data, 1)
            if end_lsn <= start:
                continue  # committed downstream already: the slot was not confirmed after it
            yield Block(segments, _PG_EPOCH + dt.timedelta(microseconds=micros), end_lsn)
            segments, current, pending = [], None, 0
        elif kind == 84:  # 'T'
            (count,) = struct.unpack_from("!i", data, 1)
            oids = struct.unpack_from(f"!{count}I", data, 6)
            raise TruncatedError(", ".join(relations[oid].table for oid in oids), lsn)


def _decode(
    messages: Iterator[tuple[str, bytes]], start: int, *, text: bool = False, split_after: int = 0
) -> Iterator[Change]:
    """:func:`_blocks` as changes, one per row message, numbered in commit order from 1."""
    return block_changes(_blocks(messages, start, split_after=split_after), text=text)


def block_changes(blocks: Iterable[Block], *, text: bool = False) -> Iterator[Change]:
    """``blocks``' row messages decoded one by one, as changes numbered in commit order from 1."""
    seq = 0
    for block in blocks:
        pending = [_row(data[0], data, relation, text) for relation, rows in block.segments for data in rows]
        seq = yield from hand_over(pending, block.commit_time, block.position, seq)


def _string(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(b"\0", at)
    return data[at:end].decode(), end + 1


class _Relation:
    """A Relation message: the table, its columns (name, type OID, part of the key) and, for the text
    values the caller casts itself, a TupleData reader compiled for these columns (:func:`_compile`):
    ``text_image(data, at)`` for a new row or a full old row, ``text_key(data, at)`` for an old key."""

    __slots__ = ("columns", "oid", "table", "text_image", "text_key")

    def __init__(self, oid: int, table: str, columns: list[tuple[str, int, bool]]) -> None:
        self.oid, self.table, self.columns = oid, table, columns
        self.text_image = _compile(columns, key_only=False)
        self.text_key = _compile(columns, key_only=True)


def _relation(data: bytes) -> _Relation:
    (oid,) = struct.unpack_from("!I", data, 1)
    namespace, at = _string(data, 5)
    name, at = _string(data, at)
    at += 1  # replica identity setting
    (ncols,) = struct.unpack_from("!h", data, at)
    at += 2
    columns = []
    for _ in range(ncols):
        flags = data[at]
        column, at = _string(data, at + 1)
        type_oid, _typmod = struct.unpack_from("!Ii", data, at)
        at += 8
        columns.append((column, type_oid, bool(flags & 1)))
    return _Relation(oid, f"{namespace}.{name}", columns)


def _tuple(
    data: bytes, at: int, columns: list[tuple[str, int, bool]], key_only: bool = False, raw: bool = False
) -> tuple[dict, int]:
    """One TupleData; ``key_only`` keeps the key columns of an old-key image (the rest arrive as nulls)."""
    ncols = (data[at] << 8) | data[at + 1]
    at += 2
    row: dict[str, Any] = {}
    for column, type_oid, is_key in columns[:ncols]:
        kind = data[at]
        if kind == 116 or kind == 98:  # 't' text ('b' binary: never asked for, kept as its bytes' text)
            start = at + 5
            at = start + _INT32(data, at + 1)[0]
            text = data[start:at].decode()
            row[column] = text if raw else _CASTS.get(type_oid, str)(text)
        else:
            at += 1
            if kind == 110 and (is_key or not key_only):  # 'n' null
                row[column] = None
            # 'u': an unchanged TOASTed value pgoutput does not resend
    return row, at


def _compile(columns: list[tuple[str, int, bool]], key_only: bool) -> Any:
    """:func:`_tuple` with ``raw`` for exactly these columns, as one function without a loop: each
    column's name a constant, each value read in place. The message is read as one character per byte
    (latin-1), so a value's slice of it is its text when all ASCII (the common case: one object, not a
    bytes slice and its decoded copy); any other is decoded from its UTF-8 bytes. A TupleData with
    another number of columns goes to :func:`_tuple`."""
    lines = [
        "def image(data, at):",
        f"    if (data[at] << 8) | data[at + 1] != {len(columns)}:",
        "        return _tuple(data, at, COLUMNS, KEY_ONLY, True)",
        "    chars = data.decode('latin-1')",
        "    at += 2",
        "    row = {}",
    ]
    for column, _type_oid, is_key in columns:
        name = repr(column)
        lines += [
            "    kind = data[at]",
            "    if kind == 116 or kind == 98:",
            "        start = at + 5",
            "        at = start + _INT32(data, at + 1)[0]",
            "        value = chars[start:at]",
            f"        row[{name}] = value if value.isascii() else data[start:at].decode()",
            "    else:",
            "        at += 1",
        ]
        if is_key or not key_only:
            lines += ["        if kind == 110:", f"            row[{name}] = None"]
    lines.append("    return row, at")
    scope = {"_tuple": _tuple, "_INT32": _INT32, "COLUMNS": columns, "KEY_ONLY": key_only}
    exec(compile("\n".join(lines), "<pgoutput image>", "exec"), scope)  # noqa: S102 - names only as repr()
    return scope["image"]


_OPS = {85: "update", 73: "insert", 68: "delete"}


def _row(kind: int, data: bytes, relation: _Relation, raw: bool) -> Pending:
    image = data[5]
    if image == 75 or image == 79:  # 'K' the old key (REPLICA IDENTITY DEFAULT) or 'O' old row (FULL)
        if raw:
            before, at = (relation.text_key if image == 75 else relation.text_image)(data, 6)
        else:
            before, at = _tuple(data, 6, relation.columns, key_only=image == 75)
        if kind == 68:
            return relation.table, "delete", before, None
        image = data[at]
    else:
        before, at = None, 5
    after = None
    if image == 78:  # 'N' the new row
        after, at = relation.text_image(data, at + 1) if raw else _tuple(data, at + 1, relation.columns)
    return relation.table, _OPS[kind], before, after
