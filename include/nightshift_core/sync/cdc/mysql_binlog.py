"""Bounded reads of the MariaDB/MySQL row-based binlog (through the mysql-replication package).

A read starts at a stored position and ends at the position current when it started, so a run ends
however busy the source is; changes committed after that belong to the next read. Changes are
yielded per committed transaction, in commit order. Rolled-back transactions never reach the binlog.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import GtidEvent, MariadbGtidEvent, QueryEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from nightshift_core.sync.cdc.binlog_decode import Decoder
from nightshift_core.sync.cdc.changes import Change, Pending, TruncatedError, hand_over
from nightshift_core.sync.cdc.endpoint import Endpoint, ServerReader
from nightshift_core.sync.cdc.preflight import BinlogSettings, check_mysql

# Row images through the compiled decoder of binlog_decode (False: mysql-replication's own, as a
# reference for tests and benches; the values are the same).
FAST_DECODE = True
_BINLOG_NUMBER = re.compile(r"\.(\d+)$")
_TRUNCATE = re.compile(r"\s*TRUNCATE\s+(?:TABLE\s+)?(?:`?(\w+)`?\.)?`?(\w+)`?\s*;?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class BinlogPosition:
    """A point in the binlog between two transactions: file and offset, and the GTID state there
    (MariaDB's domain-server-sequence list, or MySQL's executed GTID set) where the server has one."""

    file: str
    pos: int
    gtid: str | None = None

    def _order(self) -> tuple[int, int]:
        match = _BINLOG_NUMBER.search(self.file)
        if match is None:
            raise ValueError(f"binlog file name {self.file!r} does not end in a sequence number")
        return int(match.group(1)), self.pos

    def at_or_after(self, other: BinlogPosition) -> bool:
        if self.file == other.file:  # one file: the offsets decide, without parsing its name
            return self.pos >= other.pos
        return self._order() >= other._order()

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "pos": self.pos, "gtid": self.gtid}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BinlogPosition:
        return cls(data["file"], int(data["pos"]), data.get("gtid"))


class BinlogRead:
    """One bounded read: iterate it for the changes; ``end`` is where the next read starts."""

    def __init__(self, reader: BinlogReader, start: BinlogPosition, end: BinlogPosition) -> None:
        self.start = start
        self.end = end
        self._reader = reader

    def __iter__(self) -> Iterator[Change]:
        return self._reader._changes(self.start, self.end)


class BinlogReader(ServerReader):
    """Reads the row changes of ``tables`` (names in ``endpoint.database``) from the binlog.

    Changes name their table as ``database.table``.
    """

    def __init__(
        self, endpoint: Endpoint, tables: Sequence[str], reader_id: int | None = None, *, split_after: int = 0
    ) -> None:
        self.endpoint = endpoint
        self.tables = frozenset(tables)
        # a transaction with more changes than this is yielded in parts before its commit (0: never)
        self.split_after = split_after
        # The server id this reader announces as a replica; two readers with one id evict each other.
        self.reader_id = reader_id or random.randrange(1 << 20, 1 << 31)
        self._conn = pymysql.connect(**self._settings(), autocommit=True)
        self.settings: BinlogSettings = check_mysql(self._conn, f"MySQL/MariaDB server {endpoint}")

    def _settings(self) -> dict[str, Any]:
        e = self.endpoint
        return {"host": e.host, "port": e.port, "user": e.user, "passwd": e.password}

    def current_position(self) -> BinlogPosition:
        """The binlog position now, with the GTID state at exactly that position."""
        with self._conn.cursor(pymysql.cursors.DictCursor) as cur:
            try:
                cur.execute("SHOW MASTER STATUS")
            except pymysql.err.ProgrammingError:  # MySQL 8.4 removed it
                cur.execute("SHOW BINARY LOG STATUS")
            status = cur.fetchone()
            if not status:
                raise RuntimeError(f"{self.endpoint}: SHOW MASTER STATUS returned nothing (is log_bin on?)")
            file, pos = status["File"], int(status["Position"])
            if self.settings.mariadb:
                cur.execute("SELECT BINLOG_GTID_POS(%s, %s) AS gtid", (file, pos))
                gtid = cur.fetchone()["gtid"]
            else:
                gtid = status.get("Executed_Gtid_Set") if self.settings.gtid else None
        return BinlogPosition(file, pos, gtid or None)

    def read(self, start: BinlogPosition) -> BinlogRead:
        """The changes committed from ``start`` up to the position current now (not beyond)."""
        return BinlogRead(self, start, self.current_position())

    def _stream(self, start: BinlogPosition) -> BinLogStreamReader:
        where: dict[str, Any]
        if start.file:
            where = {"log_file": start.file, "log_pos": start.pos, "resume_stream": True}
        elif start.gtid and self.settings.gtid:
            where = {"auto_position": start.gtid}
        else:
            raise ValueError(f"{self.endpoint}: position {start} has neither a binlog file nor a GTID state")
        return BinLogStreamReader(
            connection_settings=self._settings(),
            server_id=self.reader_id,
            blocking=False,
            # The package's MariaDB flag means "dump by GTID": with it, a file/offset is ignored and the
            # dump starts at the oldest binlog. MariaDB serves the classic file/offset dump as well.
            is_mariadb=self.settings.mariadb and "auto_position" in where,
            only_schemas=[self.endpoint.database],
            # other tables' row events are skipped undecoded (their table maps at their name)
            only_tables=sorted(self.tables),
            # a table map seen once is not decoded again: a changed table gets a new table id
            freeze_schema=True,
            only_events=[
                QueryEvent,
                XidEvent,
                GtidEvent,
                MariadbGtidEvent,
                WriteRowsEvent,
                UpdateRowsEvent,
                DeleteRowsEvent,
            ],
            enable_logging=False,
            **where,
        )

    def _changes(self, start: BinlogPosition, end: BinlogPosition) -> Iterator[Change]:
        if start.file and start.at_or_after(end):
            return
        stream = self._stream(start)
        decoder = Decoder() if FAST_DECODE else None
        gtid_state = _gtid_state(start.gtid) if self.settings.mariadb else {}
        pending: list[Pending] = []
        pending_gtid: tuple[int, str] | None = None
        seq = 0
        try:
            for event in stream:
                if not end.at_or_after(BinlogPosition(stream.log_file, stream.log_pos)):
                    break  # an event of a transaction committed after the read started
                if isinstance(event, MariadbGtidEvent):
                    pending_gtid = (event.domain_id, event.gtid)
                    continue
                if isinstance(event, (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)):
                    if event.table in self.tables:
                        pending.extend(_row_changes(event, decoder))
                    if self.split_after and len(pending) >= self.split_after:
                        # A transaction too big to hold: its changes so far, without a position (a read
                        # from the boundary before it sees them again), timed by their own event.
                        at = dt.datetime.fromtimestamp(event.timestamp, dt.UTC)
                        seq = yield from hand_over(pending, at, None, seq)
                    continue
                if isinstance(event, QueryEvent):
                    truncated = _TRUNCATE.fullmatch(event.query)
                    if truncated:
                        schema = truncated.group(1) or event.schema.decode()
                        if schema == self.endpoint.database and truncated.group(2) in self.tables:
                            here = BinlogPosition(stream.log_file, stream.log_pos)
                            raise TruncatedError(f"{schema}.{truncated.group(2)}", here)
                commit = isinstance(event, XidEvent) or (
                    isinstance(event, QueryEvent) and event.query.strip().upper() != "BEGIN"
                )
                if not commit:
                    continue
                # A transaction (or a DDL statement, which commits itself) ends here.
                if pending_gtid is not None:
                    gtid_state[pending_gtid[0]] = pending_gtid[1]
                    pending_gtid = None
                position = BinlogPosition(
                    stream.log_file,
                    stream.log_pos,
                    ",".join(gtid_state[d] for d in sorted(gtid_state)) or None,
                )
                commit_time = dt.datetime.fromtimestamp(event.timestamp, dt.UTC)
                seq = yield from hand_over(pending, commit_time, position, seq)
                if position.at_or_after(end):
                    break
        finally:
            stream.close()


def _gtid_state(text: str | None) -> dict[int, str]:
    """MariaDB's GTID state ('0-1-42,1-2-7') as domain -> GTID."""
    state: dict[int, str] = {}
    for gtid in (text or "").split(","):
        if gtid.strip():
            state[int(gtid.strip().split("-")[0])] = gtid.strip()
    return state


def _row_changes(event: Any, decoder: Decoder | None) -> list[Pending]:
    table = f"{event.schema}.{event.table}"
    images = decoder.images(event) if decoder is not None else None
    if images is None:  # the library's decoding (its row dicts copied: the event keeps them)
        if isinstance(event, UpdateRowsEvent):
            return [(table, "update", dict(r["before_values"]), dict(r["after_values"])) for r in event.rows]
        images = [dict(r["values"]) for r in event.rows]
    elif isinstance(event, UpdateRowsEvent):  # before and after images alternate
        pairs = iter(images)
        return [(table, "update", before, after) for before, after in zip(pairs, pairs, strict=True)]
    if isinstance(event, WriteRowsEvent):
        return [(table, "insert", None, image) for image in images]
    return [(table, "delete", image, None) for image in images]
