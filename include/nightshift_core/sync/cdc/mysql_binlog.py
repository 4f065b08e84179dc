"""Bounded reads of the MariaDB/MySQL row-based binlog.

A read starts at a stored position and ends at the position current when it started, so a run ends
however busy the source is; changes committed after that belong to the next read. Changes are
yielded per committed transaction, in commit order. Rolled-back transactions never reach the binlog.

The reader asks the server for the binlog (COM_BINLOG_DUMP on a pymysql connection) and parses the
dump's packets itself: each event's header with one struct call, its CRC32 checked, table maps
parsed once per distinct map (by mysql-replication, for the columns), and the row images of the
captured tables read by the table's compiled plan (binlog_decode) straight from the packet's bytes.
mysql-replication's stream reader built several objects per event and decoded every table map again
per statement, which was most of a read's time once the images were compiled. Images the plans do
not read (a column type they lack, binlog_row_image other than FULL) go through the library's own
decoding of the same bytes; an event type the reader does not know, or one written compressed, fails
the read naming it, rather than being skipped. ``FAST_DECODE = False`` reads through the library's
stream reader and decoding instead, the reference tests compare against.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.constants.COMMAND import COM_BINLOG_DUMP
from pymysql.protocol import MysqlPacket
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import BINLOG as B
from pymysqlreplication.constants import NONE_SOURCE
from pymysqlreplication.event import GtidEvent, MariadbGtidEvent, QueryEvent, XidEvent
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from nightshift_core.errors import PermanentError
from nightshift_core.sync.cdc.binlog_decode import Plan, compile_plan, fix_columns, length_coded
from nightshift_core.sync.cdc.changes import Change, Pending, TableReplacedError, TruncatedError, hand_over
from nightshift_core.sync.cdc.endpoint import Endpoint, ServerReader
from nightshift_core.sync.cdc.preflight import BinlogSettings, check_mysql

# The dump's events parsed here and row images through the compiled decoder of binlog_decode (False:
# mysql-replication's stream reader and decoding, as a reference for tests and benches).
FAST_DECODE = True
_BINLOG_NUMBER = re.compile(r"\.(\d+)$")
# a data change logged as its statement (a session with binlog_format STATEMENT or MIXED): no row images
_DML_STATEMENT = re.compile(
    r"\s*(?:/\*.*?\*/\s*)*(?:INSERT|UPDATE|DELETE|REPLACE|LOAD\s+DATA)\b", re.I | re.S
)
_XA_END = re.compile(r"\s*XA\s+END\b", re.I)  # a prepared XA transaction's rows end here, before its outcome
_TRUNCATE = re.compile(r"\s*TRUNCATE\s+(?:TABLE\s+)?(?:`?(\w+)`?\.)?`?(\w+)`?\s*;?\s*$", re.IGNORECASE)
# statements that drop, rename or replace a whole table (the names they touch are read after it)
_REPLACING = re.compile(
    r"\s*(?:DROP\s+TABLE|RENAME\s+TABLES?|CREATE\s+OR\s+REPLACE\s+TABLE|"
    r"ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE\b.*\bRENAME\s+(?:TO\b|AS\b|(?!COLUMN\b|INDEX\b|KEY\b)[`\w$]))",
    re.I | re.S,
)
_COMMENT = re.compile(r"/\*.*?\*/", re.S)
# an identifier, backquoted or bare, and the one after a dot if any (schema.table)
_NAME = re.compile(r"(?:`((?:[^`]|``)+)`|([\w$]+))(?:\s*\.\s*(?:`((?:[^`]|``)+)`|([\w$]+)))?")


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
        """The binlog position now, with the GTID state at exactly that position.

        MariaDB: the server's last binlogged GTIDs (@@gtid_binlog_pos) read before and after the
        position; the same both times, no transaction was binlogged in between (a transaction's GTID
        and its events are written under the binlog's lock, which SHOW MASTER STATUS takes), so they are
        the state at the position. BINLOG_GTID_POS gives the same, but reads the binlog file from its
        start to the position: 0.15 s for a 420 MB file (it is kept for the rare busy server whose
        state moves every time)."""
        with self._conn.cursor(pymysql.cursors.DictCursor) as cur:
            for _ in range(5):
                before = self._binlogged_gtids(cur)
                file, pos, status = self._status(cur)
                if before == self._binlogged_gtids(cur):
                    gtid = before
                    break
            else:
                cur.execute("SELECT BINLOG_GTID_POS(%s, %s) AS gtid", (file, pos))
                gtid = cur.fetchone()["gtid"]
            if not self.settings.mariadb:
                gtid = status.get("Executed_Gtid_Set") if self.settings.gtid else None
        return BinlogPosition(file, pos, gtid or None)

    def _status(self, cur: Any) -> tuple[str, int, dict[str, Any]]:
        try:
            cur.execute("SHOW MASTER STATUS")
        except pymysql.err.ProgrammingError:  # MySQL 8.4 removed it
            cur.execute("SHOW BINARY LOG STATUS")
        status = cur.fetchone()
        if not status:
            raise RuntimeError(f"{self.endpoint}: SHOW MASTER STATUS returned nothing (is log_bin on?)")
        return status["File"], int(status["Position"]), status

    def _binlogged_gtids(self, cur: Any) -> str | None:
        if not self.settings.mariadb:
            return None
        cur.execute("SELECT @@global.gtid_binlog_pos AS gtid")
        return cur.fetchone()["gtid"]

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
            return iter(())
        if FAST_DECODE and (start.file or self.settings.mariadb):
            return self._dump_changes(start, end)
        return self._library_changes(start, end)  # (a MySQL position holding only a GTID set: its GTID dump)

    def _library_event(self, data: bytes, stop: int, tables: dict[int, Any] | None = None) -> Any:
        """mysql-replication's event for a dump packet: a table map (``tables`` None), or a row event of
        one of ``tables`` (table id -> its table), decoded by the library on first access to its rows."""
        crc = stop < len(data)
        if tables is None and not crc:  # its table map parser stops 4 bytes (a checksum) before the end
            data += b"\0\0\0\0"
        self._conn._get_dbms = lambda: "mariadb" if self.settings.mariadb else "mysql"
        allowed = frozenset(
            {TableMapEvent} if tables is None else {WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent}
        )
        event = BinLogPacketWrapper(
            MysqlPacket(data, "utf8"), {} if tables is None else tables, self._conn, (0, 0, 0), crc, allowed,
            None, None, None, None, False, False, False, True, False,
        ).event  # fmt: skip
        if event is None:
            raise BinlogError(
                f"{self.endpoint}: mysql-replication could not read a binlog event of type {data[5]}"
            )
        return event

    def _dump(self, start: BinlogPosition) -> tuple[Any, bool]:
        """A connection the server streams the binlog from ``start`` on (a non-blocking dump: it ends
        where the binlog does), and whether the events before the first format description carry a
        CRC32 (the server's binlog_checksum; the format description says it for the file after it)."""
        conn = pymysql.connect(**self._settings(), autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@global.binlog_checksum")
                crc = str(cur.fetchone()[0]).upper() != "NONE"
                if crc:  # a replica that understands checksums gets the events with theirs
                    cur.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
                # MariaDB: a replica that knows GTID events gets every event as it is in the binlog
                cur.execute("SET @mariadb_slave_capability = 4")
                if not start.file:  # MariaDB: the binlog file and offset of a GTID state, found by the server
                    cur.execute("SET @slave_connect_state = %s, @slave_gtid_strict_mode = 1, "
                                "@slave_gtid_ignore_duplicates = 0", (start.gtid,))  # fmt: skip
            name = start.file.encode()
            # COM_BINLOG_DUMP: offset, flags (BINLOG_DUMP_NON_BLOCK), this replica's server id, file
            conn._execute_command(
                COM_BINLOG_DUMP, struct.pack("<IHI", start.pos or 4, 1, self.reader_id) + name
            )
        except BaseException:
            conn.close()
            raise
        return conn, crc

    def _dump_changes(self, start: BinlogPosition, end: BinlogPosition) -> Iterator[Change]:  # noqa: C901, PLR0912, PLR0915
        """The read, from the dump's packets: event headers parsed with struct, row events of the
        captured tables handed to their table map's compiled plan. Each event type the read does not
        name below fails it: none is skipped unread."""
        conn, crc = self._dump(start)
        maps = _TableMaps(self)
        by_id, by_bytes = maps.by_id, maps.by_bytes
        table_map, rows, writes, deletes, heartbeats = B.TABLE_MAP_EVENT, _ROWS, _WRITE, _DELETE, _HEARTBEATS
        gtid_state = _gtid_state(start.gtid) if self.settings.mariadb else {}
        pending: list[Pending] = []
        append = pending.append
        pending_gtid: tuple[int, str] | None = None
        seq = 0
        split_after = self.split_after
        file, pos = start.file, start.pos
        limit = _limit(file, end)
        post = _POST_HEADER_LENGTHS
        header, checksum = _HEADER, _CHECKSUM
        from_bytes = int.from_bytes
        crc32 = zlib.crc32
        try:
            for data in _packets(conn):
                timestamp, kind, server_id, size, next_pos, flags = header(data)
                if len(data) != size + 1:
                    raise BinlogError(f"{self.endpoint}: a binlog event of {size} bytes came in a packet of "
                                      f"{len(data) - 1}")  # fmt: skip
                stop = len(data) - 4 if crc else len(data)
                if crc and crc32(memoryview(data)[1:stop]) != checksum(data, stop)[0]:
                    if kind != B.FORMAT_DESCRIPTION_EVENT or data[-5] == 1:  # (one heading a file without)
                        raise BinlogError(f"{self.endpoint}: binlog event of type {kind} before {file}:"
                                          f"{next_pos} failed its CRC32 check")  # fmt: skip
                if kind == B.ROTATE_EVENT:
                    file = data[28:stop].decode()
                    pos = from_bytes(data[20:28], "little")
                    limit = _limit(file, end)
                    maps.clear()  # table ids are the server's, and a restart (a new file) reuses them
                    continue
                if next_pos and kind not in heartbeats:  # (a heartbeat's is where the server's binlog ends)
                    pos = next_pos
                if kind == table_map:  # (a transaction maps its tables again before each statement's rows)
                    table = by_bytes.get(data[20:stop]) or maps.add(data, stop, post[table_map])
                    by_id[data[20:26]] = table  # (by the table id's six bytes)
                    continue
                # an event of a transaction committed after the read started: the read ends before it
                if pos > limit:
                    break
                if kind in rows:
                    table = by_id.get(data[20:26])
                    if table is None:
                        raise BinlogError(f"{self.endpoint}: a row event at {file}:{pos} names a table id no "
                                          "table map gave")  # fmt: skip
                    if table.plan is False:  # a table this read does not capture
                        continue
                    images = table.images(data, stop, kind, post[kind])
                    name = table.name
                    if kind in writes:
                        for image in images:
                            append((name, "insert", None, image))
                    elif kind in deletes:
                        for image in images:
                            append((name, "delete", image, None))
                    else:
                        pairs = iter(images)
                        for before, after in zip(pairs, pairs, strict=True):
                            append((name, "update", before, after))
                    if split_after and len(pending) >= split_after:
                        # A transaction too big to hold: its changes so far, without a position (a read
                        # from the boundary before it sees them again), timed by their own event.
                        at = dt.datetime.fromtimestamp(timestamp, dt.UTC)
                        seq = yield from hand_over(pending, at, None, seq)
                    continue
                if kind == B.XID_EVENT:
                    pass  # a transaction commits
                elif kind == B.QUERY_EVENT:
                    query = _query(data, stop, post[B.QUERY_EVENT])
                    if query is None:
                        continue  # BEGIN
                    self._refuse_unfollowable(query[0], query[1], pending, BinlogPosition(file, pos))
                    # a statement outside a transaction (DDL, which commits itself) or one's COMMIT
                elif kind == B.MARIADB_GTID_EVENT:
                    sequence, domain = _GTID(data, 20)
                    pending_gtid = (domain, f"{domain}-{server_id}-{sequence}")
                    continue
                elif kind == B.FORMAT_DESCRIPTION_EVENT:
                    post, crc = _format_description(data)
                    continue
                elif kind in _IGNORED or flags & _IGNORABLE:
                    continue
                else:
                    raise BinlogError(_unknown(kind, self.endpoint, file, pos))
                # A transaction (or a DDL statement, which commits itself) ends here.
                if pending_gtid is not None:
                    gtid_state[pending_gtid[0]] = pending_gtid[1]
                    pending_gtid = None
                position = BinlogPosition(
                    file, pos, ",".join(gtid_state[d] for d in sorted(gtid_state)) or None
                )
                seq = yield from hand_over(
                    pending, dt.datetime.fromtimestamp(timestamp, dt.UTC), position, seq
                )
                if position.at_or_after(end):
                    break
        finally:
            conn.close()

    def _refuse_unfollowable(
        self, schema: str, query: str, pending: list[Pending], here: BinlogPosition
    ) -> None:
        """A query event (not BEGIN) that changes a captured table in a way the log holds no row images
        for fails the read: a TRUNCATE, a DROP / RENAME / CREATE OR REPLACE of it, a statement-logged
        change, the end of an XA transaction's rows. ``here`` is the event's position."""
        truncated = _TRUNCATE.fullmatch(query)
        if truncated:
            schema = truncated.group(1) or schema
            if schema == self.endpoint.database and truncated.group(2) in self.tables:
                raise TruncatedError(f"{schema}.{truncated.group(2)}", here)
        replaced = _replaced_table(query, schema, self.endpoint.database, self.tables)
        if replaced is not None:
            raise TableReplacedError(
                f"{self.endpoint.database}.{replaced}", here, " ".join(query.split())[:120]
            )
        named = _statement_change(query, self.tables)
        if named is not None:
            raise StatementLoggedError(named, here, query)
        if pending and _XA_END.match(query):
            raise XaTransactionError(pending[0][0], here, query)

    def _library_changes(self, start: BinlogPosition, end: BinlogPosition) -> Iterator[Change]:
        """The read through mysql-replication's stream reader and decoding (the reference)."""
        stream = self._stream(start)
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
                        pending.extend(_library_rows(event))
                    if self.split_after and len(pending) >= self.split_after:
                        at = dt.datetime.fromtimestamp(event.timestamp, dt.UTC)
                        seq = yield from hand_over(pending, at, None, seq)
                    continue
                if isinstance(event, QueryEvent):
                    here = BinlogPosition(stream.log_file, stream.log_pos)
                    self._refuse_unfollowable(event.schema.decode(), event.query, pending, here)
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


class BinlogError(RuntimeError):
    """The binlog stream holds something this reader cannot read exactly (it never skips it)."""


class StatementLoggedError(PermanentError):
    """A change to a captured table reached the binlog as its SQL statement, not as row images: a
    session wrote with binlog_format STATEMENT or MIXED (the global setting alone is checked at the
    start). The log cannot say which rows the statement changed, so the table must be reloaded."""

    def __init__(self, table: str, position: BinlogPosition, statement: str) -> None:
        self.table = table
        self.position = position
        shown = " ".join(statement.split())
        super().__init__(
            f"{table}: a change was logged as a statement at binlog position {position.file}:"
            f"{position.pos} ({shown[:120]}{'…' if len(shown) > 120 else ''}), not as row images, so "
            "change capture cannot tell which rows it changed: a session wrote with binlog_format "
            "STATEMENT or MIXED. Make every writer use ROW (no session may override it: revoke "
            "SUPER/BINLOG ADMIN from application users, or remove the override from their connection "
            "options), then reload the table with a full_refresh run."
        )


class XaTransactionError(PermanentError):
    """Rows of a captured table in an XA transaction: the binlog holds them at XA PREPARE, and whether
    they count is decided by an XA COMMIT or XA ROLLBACK logged later. Not followed: the run fails
    rather than apply rows that may be rolled back."""

    def __init__(self, table: str, position: BinlogPosition, statement: str) -> None:
        self.table = table
        self.position = position
        super().__init__(
            f"{table}: rows changed in an XA transaction ({' '.join(statement.split())[:80]}) at binlog "
            f"position {position.file}:{position.pos}; change capture does not follow XA transactions "
            "(their rows are logged at XA PREPARE, their outcome later). Keep XA transactions off the "
            "captured tables (or sync this table with mode: incremental), then, once the transaction "
            "is committed or rolled back, reload the table with a full_refresh run."
        )


def _replaced_table(query: str, schema: str, database: str, tables: Any) -> str | None:
    """The captured table (of ``database``) a DROP TABLE, RENAME TABLE, ALTER TABLE ... RENAME or CREATE
    OR REPLACE TABLE names, if it names one (``schema``: the statement's default database)."""
    if not _REPLACING.match(query):
        return None
    for first, bare, second, second_bare in _NAME.findall(_COMMENT.sub(" ", query)):
        qualified = bool(second or second_bare)
        name = (second or second_bare) if qualified else (first or bare)
        owner = (first or bare) if qualified else schema
        name, owner = name.replace("``", "`"), owner.replace("``", "`")
        if owner == database and name in tables:
            return name
    return None


def _statement_change(query: str, tables: Any) -> str | None:
    """The captured table a data-changing statement names, if it is one (None otherwise)."""
    if not _DML_STATEMENT.match(query):
        return None
    return next((t for t in tables if re.search(rf"(?<![\w$]){re.escape(t)}(?![\w$])", query)), None)


# a dump packet's OK byte, then the event header: timestamp, type, server id, size, next position, flags
_HEADER = struct.Struct("<xIBIIIH").unpack_from
_GTID = struct.Struct("<QI").unpack_from  # MariaDB GTID event: sequence number, domain
_CHECKSUM = struct.Struct("<I").unpack_from
_IGNORABLE = 0x80  # LOG_EVENT_IGNORABLE_F: an event a replica that does not know it may skip
_WRITE = frozenset({B.WRITE_ROWS_EVENT_V1, B.WRITE_ROWS_EVENT_V2})
_UPDATE = frozenset({B.UPDATE_ROWS_EVENT_V1, B.UPDATE_ROWS_EVENT_V2})
_DELETE = frozenset({B.DELETE_ROWS_EVENT_V1, B.DELETE_ROWS_EVENT_V2})
_ROWS = _WRITE | _UPDATE | _DELETE
_V2 = frozenset({B.WRITE_ROWS_EVENT_V2, B.UPDATE_ROWS_EVENT_V2, B.DELETE_ROWS_EVENT_V2})
# Events with no row change and no transaction boundary in them (statement-format context, markers,
# MySQL's GTID events, which only the end check needs, heartbeats).
_HEARTBEATS = frozenset({B.HEARTBEAT_LOG_EVENT, 41})  # (41: MySQL's HEARTBEAT_LOG_EVENT_V2)
_IGNORED = _HEARTBEATS | {
    B.STOP_EVENT, B.INTVAR_EVENT, B.RAND_EVENT, B.USER_VAR_EVENT, B.BEGIN_LOAD_QUERY_EVENT,
    B.EXECUTE_LOAD_QUERY_EVENT, B.IGNORABLE_LOG_EVENT, B.ROWS_QUERY_LOG_EVENT, B.GTID_LOG_EVENT,
    B.ANONYMOUS_GTID_LOG_EVENT, B.PREVIOUS_GTIDS_LOG_EVENT, B.XA_PREPARE_EVENT,
    36, 37, 42,  # MySQL's TRANSACTION_CONTEXT, VIEW_CHANGE (group replication), GTID_TAGGED_LOG
    B.MARIADB_ANNOTATE_ROWS_EVENT, B.MARIADB_BINLOG_CHECKPOINT_EVENT, B.MARIADB_GTID_GTID_LIST_EVENT,
    B.MARIADB_START_ENCRYPTION_EVENT,
}  # fmt: skip
# Post-header lengths by event type until a format description gives the server's own.
_POST_HEADER_LENGTHS = (
    {B.QUERY_EVENT: 13, B.TABLE_MAP_EVENT: 8} | dict.fromkeys(_ROWS - _V2, 8) | dict.fromkeys(_V2, 10)
)
_COMPRESSED = {
    40: "MySQL's binlog_transaction_compression (set it OFF)",
    **dict.fromkeys(range(165, 172), "MariaDB's log_bin_compress (set it OFF)"),
    B.PARTIAL_UPDATE_ROWS_EVENT: "MySQL's binlog_row_value_options=PARTIAL_JSON (set it to '')",
}


def _unknown(kind: int, endpoint: Endpoint, file: str, pos: int) -> str:
    why = _COMPRESSED.get(kind)
    if why:
        return f"{endpoint}: the binlog event before {file}:{pos} is written by {why}: change capture reads full row images only"
    if kind == B.INCIDENT_EVENT:
        return (f"{endpoint}: the binlog records an incident before {file}:{pos} (the server may have lost changes "
                "there); reload the table with a full_refresh run")  # fmt: skip
    return f"{endpoint}: binlog event type {kind} before {file}:{pos} is not one change capture reads"


def _limit(file: str, end: BinlogPosition) -> float:
    """The last offset in ``file`` a read ending at ``end`` takes events before: none in a file after
    the end's, all in one before it (or in a file not known yet: a dump by GTID starts with its name)."""
    if file == end.file:
        return end.pos
    return float("inf") if not file or end.at_or_after(BinlogPosition(file, 0)) else -1


def _packets(conn: Any) -> Iterator[bytes]:
    """The dump's event packets (each: the OK byte, then the event's header and body), read straight
    from the connection's socket until the server's end of file; an error packet raises as pymysql does."""
    read = conn._rfile.read
    while True:
        head = read(4)
        length = int.from_bytes(head[:3], "little")
        data = read(length)
        if len(head) != 4 or len(data) != length:
            raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server during the binlog dump")
        if length == 0xFFFFFF:  # an event of 16 MiB or more continues in the next packets
            parts = [data]
            while length == 0xFFFFFF:
                head = read(4)
                length = int.from_bytes(head[:3], "little")
                parts.append(read(length))
                if len(head) != 4 or len(parts[-1]) != length:
                    raise pymysql.err.OperationalError(
                        2013, "Lost connection to MySQL server during the binlog dump"
                    )
            data = b"".join(parts)
        first = data[0] if data else -1
        if first == 0:
            yield data
        elif first == 0xFE and length < 9:  # EOF: the dump reached the end of the binlog
            return
        elif first == 0xFF:
            pymysql.err.raise_mysql_exception(data)
        else:
            raise BinlogError(f"unexpected packet in the binlog dump (first byte {first}, {length} bytes)")


def _format_description(data: bytes) -> tuple[dict[int, int], bool]:
    """A format description event's post-header lengths by event type, and whether the events after
    it carry a CRC32. It always ends in the checksum algorithm (1: CRC32) and four checksum bytes."""
    # after the OK byte, the header (19), binlog version (2), server version (50), time (4), header length (1)
    lengths = data[77 : len(data) - 5]
    return {kind: lengths[kind - 1] for kind in range(1, len(lengths) + 1)}, data[-5] == 1


def _query(data: bytes, stop: int, post_header: int) -> tuple[str, str] | None:
    """A query event's schema and statement, or None for the BEGIN that opens a transaction."""
    schema_length = data[28]
    status_length = int.from_bytes(data[31:33], "little")
    p = 20 + post_header + status_length
    query = data[p + schema_length + 1 : stop]
    if query == b"BEGIN":
        return None
    text = query.decode(errors="replace")
    if text.strip().upper() == "BEGIN":
        return None
    return data[p : p + schema_length].decode(errors="replace"), text


class _Table:
    """A table map's table as the row events after it need it: its name and compiled plan (False: not
    captured; None: images decoded by the library), the columns-present bitmap of a full image."""

    __slots__ = ("columns", "full", "library", "name", "plan", "reader")

    def __init__(self, name: str, plan: Plan | bool | None, columns: int = 0, library: Any = None,
                 reader: BinlogReader | None = None) -> None:  # fmt: skip
        self.name = name
        self.plan = plan
        self.columns = columns
        self.full = b"\xff" * (columns // 8) + (bytes([(1 << (columns % 8)) - 1]) if columns % 8 else b"")
        self.library = library  # mysql-replication's table map event (its decoding, where the plan has none)
        self.reader = reader

    def images(self, data: bytes, stop: int, kind: int, post_header: int) -> list[dict[str, Any]]:
        """A row event's images in order (an update's before and after images alternate)."""
        p = 20 + post_header
        if kind in _V2:
            p += int.from_bytes(data[28:30], "little") - 2  # the extra data after the post-header
        count, p = (data[p], p + 1) if data[p] < 251 else length_coded(data, p)
        if count != self.columns:
            return self._library(data, stop)
        width = len(self.full)
        if data[p : p + width] != self.full:
            return self._library(data, stop)  # an image without every column (binlog_row_image is not FULL)
        p += width
        if kind in _UPDATE:
            if data[p : p + width] != self.full:
                return self._library(data, stop)
            p += width
        plan = self.plan
        if plan is None:
            return self._library(data, stop)
        return plan.images(data, p, stop, self.name)  # type: ignore[union-attr]

    def _library(self, data: bytes, stop: int) -> list[dict[str, Any]]:
        """The images through mysql-replication's decoding of the event (the same packet bytes)."""
        library = self.library
        return _library_images(
            self.reader._library_event(data, stop, {library.table_id: library.get_table()})
        )


class _TableMaps:
    """The table maps of a read by table id: a map's bytes seen before reuse its parsed table (a
    transaction maps its tables again before each statement's rows), new bytes are parsed (after DDL a
    table gets a new id and a new map)."""

    def __init__(self, reader: BinlogReader) -> None:
        self.reader = reader
        self.by_id: dict[bytes, _Table] = {}  # a table id (its six bytes) -> its table
        self.by_bytes: dict[bytes, _Table] = {}  # a table map's body -> its table

    def clear(self) -> None:
        self.by_id.clear()
        self.by_bytes.clear()

    def add(self, data: bytes, stop: int, post_header: int) -> _Table:
        """The table of a table map not seen before, parsed."""
        table = self.by_bytes[data[20:stop]] = self._parse(data, stop, post_header)
        return table

    def _parse(self, data: bytes, stop: int, post_header: int) -> _Table:
        reader = self.reader
        p = 20 + post_header
        schema = data[p + 1 : p + 1 + data[p]].decode()
        p += data[p] + 2
        name = data[p + 1 : p + 1 + data[p]].decode()
        if schema != reader.endpoint.database or name not in reader.tables:
            return _Table(f"{schema}.{name}", False)
        event = reader._library_event(data, stop)
        columns = event.columns
        if any(not c.name for c in columns):
            raise BinlogError(f"{reader.endpoint}: the binlog's table map of {schema}.{name} has no column names "
                              "(binlog_row_metadata must be FULL)")  # fmt: skip
        p += data[p] + 2
        count, p = length_coded(data, p)
        size, p = length_coded(data, p + count)  # past the column types: their metadata
        fix_columns(columns, data, p + size + (count + 7) // 8, stop)  # past it and the NULL bitmap
        return _Table(f"{schema}.{name}", compile_plan(columns), len(columns), event, reader)


def _gtid_state(text: str | None) -> dict[int, str]:
    """MariaDB's GTID state ('0-1-42,1-2-7') as domain -> GTID."""
    state: dict[int, str] = {}
    for gtid in (text or "").split(","):
        if gtid.strip():
            state[int(gtid.strip().split("-")[0])] = gtid.strip()
    return state


def _library_rows(event: Any) -> list[Pending]:
    """A row event's changes from the library's decoding."""
    table = f"{event.schema}.{event.table}"
    images = _library_images(event)
    if isinstance(event, UpdateRowsEvent):
        pairs = iter(images)
        return [(table, "update", before, after) for before, after in zip(pairs, pairs, strict=True)]
    if isinstance(event, WriteRowsEvent):
        return [(table, "insert", None, image) for image in images]
    return [(table, "delete", image, None) for image in images]


def _library_images(event: Any) -> list[dict[str, Any]]:
    """A row event's images from the library's decoding, in order (an update's before and after images
    alternate), as the compiled decoder gives them: an empty SET an empty set (the library's None, as
    for NULL), a column the image leaves out (binlog_row_image is not FULL) absent (the library's None
    would set it NULL), and an update's after image completed by its before image's columns (with
    MINIMAL images, the key: a column it has and the after image lacks did not change)."""
    images = []
    for row in event.rows:
        if "values" in row:
            images.append(_image(row["values"], row["none_sources"]))
            continue
        before = _image(row["before_values"], row["before_none_sources"])
        images += [before, {**before, **_image(row["after_values"], row["after_none_sources"])}]
    return images


def _image(values: dict[str, Any], none_sources: dict[str, str]) -> dict[str, Any]:
    image = dict(values)  # (a copy: the event keeps its row dicts)
    for name, source in none_sources.items():
        if source == NONE_SOURCE.COLS_BITMAP:
            del image[name]
        elif source == NONE_SOURCE.EMPTY_SET:
            image[name] = set()
    return image
