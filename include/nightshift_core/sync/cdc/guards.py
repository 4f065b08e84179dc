"""Guards a change-capture run calls first: fail before the source's log is lost, never after.

A log reader resumes from a stored position. If the server has already recycled the log there
(MariaDB/MySQL purged the binlog file, PostgreSQL marked the slot ``lost``), no run can catch up:
only a ``full_refresh`` (a new snapshot) can. If the server is about to recycle it (the binlog file
expires within a margin) or a slot holds more WAL than the team allows on the source's disk, the
run fails too, naming the table(s), the position, the numbers and the fix, while a fix is still
cheap. These are :class:`PermanentError` s: a retry in five minutes gives the same answer.

Slots of sync definitions that no longer exist keep WAL forever: :func:`orphan_slots` lists them
(never drops them) and ``python -m nightshift_core.sync.cdc.guards orphan-slots`` reports them.

How the run calls the guards (before reading, with the position stored with the rows)::

    warnings = check_binlog_position(conn, stored, tables=["shop.orders"], limits=GuardLimits())
    check_slot(conn, reader.slot, tables=["public.orders"], position=stored, limits=GuardLimits())

Both read only the server's catalog (no table is scanned) and raise :class:`LogLostError` (the
position is gone) or :class:`LogAtRiskError` (it is about to go, or the slot holds too much WAL);
``check_slot`` raises :class:`SlotDatabaseError` when the slot of that name belongs to another database
of the server (slots are server-wide, named after the definition's id: two definitions with one id on
two databases of a server would otherwise read each other's slot). Before a snapshot re-creates a slot
(dropping one of that name first), :func:`check_slot_database` makes that one check alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nightshift_core.errors import PermanentError
from nightshift_core.sync.cdc.endpoint import Endpoint
from nightshift_core.sync.cdc.table import CdcTable

SLOT_PREFIX = "nightshift_"  # postgres_logical.LogicalReader names its slot nightshift_<definition>
_GIB = 1 << 30


class LogGuardError(RuntimeError, PermanentError):
    """A change-capture run cannot (or must not) continue from its stored position."""


class LogLostError(LogGuardError):
    """The log at the stored position is gone: only a full_refresh (a new snapshot) recovers."""


class LogAtRiskError(LogGuardError):
    """The log at the stored position is about to be recycled, or a slot retains too much WAL."""


class SlotDatabaseError(LogGuardError):
    """The slot of this sync's name belongs to another database of the server than the one it reads."""


@dataclass(frozen=True)
class GuardLimits:
    """What the guards tolerate.

    ``purge_margin``: a binlog file that expires within this long counts as about to be purged.
    ``on_purge_risk``: ``fail`` (the default) stops the run; ``warn`` returns the warning so the run
    can log it and go on (for a source whose next run is certain to come sooner than the margin).
    ``max_slot_wal_bytes``: WAL a slot may hold on the source's disk before runs fail.
    """

    purge_margin: dt.timedelta = dt.timedelta(hours=6)
    on_purge_risk: Literal["warn", "fail"] = "fail"
    max_slot_wal_bytes: int = 10 * _GIB

    def __post_init__(self) -> None:
        if self.on_purge_risk not in ("warn", "fail"):
            raise ValueError(f"on_purge_risk must be 'warn' or 'fail', got {self.on_purge_risk!r}")
        if self.max_slot_wal_bytes <= 0 or self.purge_margin < dt.timedelta(0):
            raise ValueError("max_slot_wal_bytes must be positive and purge_margin not negative")


def _tables(tables: Sequence[str]) -> str:
    return ", ".join(tables) if tables else "(no table named)"


def _size(n: int) -> str:
    for unit, scale in (("GiB", _GIB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit} ({n:,} bytes)"
    return f"{n:,} bytes"


# -- MariaDB / MySQL ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BinlogRetention:
    """What the server keeps: its binlog files (oldest first), how long, and when each was closed.

    ``closed_at`` maps a file to the time the server rotated away from it (the first event of the
    next file); the newest file is still being written and has no entry. ``expire`` is None when the
    server never expires binlogs by age.
    """

    files: tuple[str, ...]
    expire: dt.timedelta | None
    closed_at: Mapping[str, dt.datetime]


def binlog_retention(
    conn: Any, connection_settings: Mapping[str, Any] | None = None, file: str | None = None
) -> BinlogRetention:
    """Read the server's binlog files and expiry; with ``connection_settings`` (pymysql keywords)
    and a ``file``, date that file's rotation through the replication protocol (one short read)."""
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        files = tuple(str(row[0]) for row in cur.fetchall())
        cur.execute(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('binlog_expire_logs_seconds', 'expire_logs_days')"
        )
        found = {str(k).lower(): str(v) for k, v in cur.fetchall()}
    seconds = float(found.get("binlog_expire_logs_seconds") or 0)
    if not seconds:  # MySQL 5.7 and older MariaDB: whole (or fractional) days
        seconds = float(found.get("expire_logs_days") or 0) * 86400
    expire = dt.timedelta(seconds=seconds) if seconds else None
    closed: dict[str, dt.datetime] = {}
    if connection_settings is not None and file in files[:-1]:
        closed = _closed_at(file, files[files.index(file) + 1], connection_settings)
    return BinlogRetention(files, expire, closed)


def _closed_at(file: str, following: str, settings: Mapping[str, Any]) -> dict[str, dt.datetime]:
    """When ``file`` was closed: the timestamp of the first event of the ``following`` file."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import FormatDescriptionEvent

    stream = BinLogStreamReader(
        connection_settings=dict(settings),
        server_id=random.randrange(1 << 20, 1 << 31),  # a replica id of its own for this short read
        blocking=False,
        log_file=following,
        log_pos=4,
        resume_stream=True,
        only_events=[FormatDescriptionEvent],
    )
    try:
        for event in stream:
            if event.timestamp:
                return {file: dt.datetime.fromtimestamp(event.timestamp, dt.UTC)}
    finally:
        stream.close()
    return {}


def judge_binlog(
    retention: BinlogRetention,
    position: Mapping[str, Any],
    *,
    tables: Sequence[str],
    limits: GuardLimits,
    now: dt.datetime,
    server: str = "the source server",
) -> list[str]:
    """Decide from what :func:`binlog_retention` read (pure). Raise or return warnings.

    ``position`` is the stored binlog position (``BinlogPosition.to_dict()``: file, pos, gtid).
    A GTID-only position (no file) is not judged here: the server resolves GTIDs itself.
    """
    file = position.get("file")
    if not file:
        return []
    where = f"binlog position {file}:{position.get('pos')}"
    fix = (
        "reload the table(s) with a full_refresh run (a new snapshot, then the log from there); to keep "
        "this from recurring, run the sync more often than the binlog expiry or raise "
        "binlog_expire_logs_seconds (Cloud SQL: the retained transaction log days)"
    )
    if file not in retention.files:
        oldest = retention.files[0] if retention.files else "none"
        raise LogLostError(
            f"{_tables(tables)}: the stored {where} is gone from {server} (its oldest binlog is now "
            f"{oldest}); the changes since then cannot be read: {fix}"
        )
    closed = retention.closed_at.get(file)
    if retention.expire is None or closed is None:
        return []  # never expires, or the file is still being written (expiry counts from its close)
    purge_at = closed + retention.expire
    if purge_at - now > limits.purge_margin:
        return []
    left = purge_at - now
    message = (
        f"{_tables(tables)}: the stored {where} on {server} is in a binlog file closed at "
        f"{closed:%Y-%m-%d %H:%M:%S} UTC that the server purges at about {purge_at:%Y-%m-%d %H:%M:%S} UTC "
        f"({max(left.total_seconds(), 0) / 3600:.1f} h from now, within the {limits.purge_margin} margin): "
        "run the sync now so its position moves past that file, or raise binlog_expire_logs_seconds; once "
        f"the file is purged, {fix}"
    )
    if limits.on_purge_risk == "fail":
        raise LogAtRiskError(message)
    return [message]


def check_binlog_position(
    conn: Any,
    position: Mapping[str, Any],
    *,
    tables: Sequence[str],
    limits: GuardLimits = GuardLimits(),  # noqa: B008 - frozen, so one shared default is safe
    connection_settings: Mapping[str, Any] | None = None,
    endpoint: Endpoint | None = None,
    now: dt.datetime | None = None,
    server: str = "the source server",
) -> list[str]:
    """Call at the start of a binlog run with the stored position (a dict with file, pos, gtid).

    ``conn`` is a DB-API connection to the source (SHOW BINARY LOGS needs the REPLICATION CLIENT or
    BINLOG MONITOR privilege the reader has anyway). Raises :class:`LogLostError` when the stored
    file is no longer on the server, :class:`LogAtRiskError` when it expires within
    ``limits.purge_margin`` and ``limits.on_purge_risk`` is ``fail``; returns the warnings otherwise.
    The expiry is judged only when the guard can date the stored file's rotation, which needs a
    replication login: ``connection_settings`` (pymysql keywords) or the reader's ``endpoint``.
    """
    if connection_settings is None and endpoint is not None:
        connection_settings = {
            "host": endpoint.host, "port": endpoint.port, "user": endpoint.user, "passwd": endpoint.password
        }  # fmt: skip
    retention = binlog_retention(conn, connection_settings, position.get("file"))
    return judge_binlog(
        retention, position, tables=tables, limits=limits, now=now or dt.datetime.now(dt.UTC), server=server
    )


# -- PostgreSQL ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotState:
    """One row of pg_replication_slots as the guards read it."""

    name: str
    database: str | None
    active: bool
    wal_status: str | None  # reserved, extended, unreserved, lost (PostgreSQL 13+); None before
    restart_lsn: str | None
    confirmed_flush_lsn: str | None
    retained_bytes: int | None  # pg_current_wal_lsn() - restart_lsn


# wal_status through the row's JSON: NULL before PostgreSQL 13 (no such column), so one query serves all;
# the session's database with each slot, to tell a slot of this database from one of another
_SLOTS_SQL = """
SELECT slot_name::text, database::text, active, to_jsonb(s) ->> 'wal_status', restart_lsn::text,
       confirmed_flush_lsn::text,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, current_database()::text
FROM pg_replication_slots AS s WHERE slot_type = 'logical' AND slot_name LIKE %s ORDER BY slot_name
"""


def _read_slots(conn: Any, like: str) -> list[tuple[SlotState, str]]:
    """Each matching slot's state, with the database ``conn`` is connected to."""
    with conn.cursor() as cur:
        cur.execute(_SLOTS_SQL, [like])
        return [
            (SlotState(name, db, bool(active), status, restart, confirmed, None if held is None else int(held)),
             current)
            for name, db, active, status, restart, confirmed, held, current in cur.fetchall()
        ]  # fmt: skip


def read_slots(conn: Any, like: str = SLOT_PREFIX.replace("_", r"\_") + "%") -> list[SlotState]:
    """The logical slots whose name matches ``like`` (default: every slot the CDC reader creates)."""
    return [state for state, _current in _read_slots(conn, like)]


def judge_slot_database(
    state: SlotState | None,
    *,
    slot: str,
    tables: Sequence[str],
    database: str | None,
    position: str | None = None,
    server: str = "the source server",
) -> None:
    """Refuse a slot of another database than ``database``, the one the sync reads (pure; None: no
    check): with a slot of that name there, the sync's own is gone or never existed."""
    if state is None or database is None or state.database == database:
        return
    where = f"{_tables(tables)} (slot {slot} on {server}, stored position {position or 'none'})"
    raise SlotDatabaseError(
        f"{where}: the replication slot belongs to database {state.database!r}, but this sync reads "
        f"database {database!r}. Slots are shared by the whole server and named after the sync "
        "definition's id (its DAG id) and the table, so two definitions with one id reading databases of "
        "one server (a staging and a production deployment, or a source connection moved to another "
        "database) meet at one slot, and this sync cannot read its changes through it. Fix: give one of "
        f"the definitions another DAG id, or, if the sync of database {state.database!r} is abandoned, "
        f"drop its slot, connected to that database (SELECT pg_drop_replication_slot('{slot}'); DROP "
        f"PUBLICATION IF EXISTS {slot};); then reload the table(s) with a full_refresh run"
    )


def judge_slot(
    state: SlotState | None,
    *,
    slot: str,
    tables: Sequence[str],
    position: str | None,
    limits: GuardLimits,
    server: str = "the source server",
    database: str | None = None,
) -> None:
    """Decide from one slot's state (pure); ``position`` is the stored LSN's text form, if any, and
    ``database`` the database the sync reads (a slot of another database fails; None: not checked)."""
    judge_slot_database(state, slot=slot, tables=tables, database=database, position=position, server=server)
    fix = "reload the table(s) with a full_refresh run, which re-creates the slot and takes a new snapshot"
    where = f"{_tables(tables)} (slot {slot} on {server}, stored position {position or 'none'})"
    if state is None:
        if position is None:
            return  # first run: the run creates the slot and snapshots
        raise LogLostError(
            f"{where}: the replication slot is gone, so the changes since then are lost: {fix}"
        )
    if state.wal_status == "lost" or state.restart_lsn is None:
        raise LogLostError(
            f"{where}: the server has removed WAL the slot still needed (wal_status "
            f"{state.wal_status or 'unknown'}, restart_lsn {state.restart_lsn}): {fix}"
        )
    held = state.retained_bytes or 0
    if held > limits.max_slot_wal_bytes:
        raise LogAtRiskError(
            f"{where}: the slot retains {_size(held)} of WAL (restart_lsn {state.restart_lsn}), over the "
            f"{_size(limits.max_slot_wal_bytes)} limit, and the source's disk fills until a run confirms: "
            "find why runs stopped confirming (failed or paused DAG) and run the sync; if the table is no "
            f"longer synced, drop the slot (SELECT pg_drop_replication_slot('{slot}')); if the backlog is "
            f"not worth reading, {fix}"
        )
    if state.wal_status == "unreserved":
        raise LogAtRiskError(
            f"{where}: wal_status is 'unreserved': the server will remove WAL the slot needs at its next "
            f"checkpoint (max_slot_wal_keep_size reached, {_size(held)} held): run the sync now; once "
            f"lost, {fix}"
        )


def check_slot(
    conn: Any,
    slot: str,
    *,
    tables: Sequence[str],
    position: str | None,
    limits: GuardLimits = GuardLimits(),  # noqa: B008 - frozen, so one shared default is safe
    server: str = "the source server",
) -> SlotState | None:
    """Call at the start of a logical-decoding run with the slot's name and the stored position.

    ``conn`` is a DB-API connection to the database the sync reads: slots are server-wide but a
    logical slot belongs to one database, and a slot of this name in another database raises
    :class:`SlotDatabaseError` (naming both databases and the fix). Raises :class:`LogLostError` when
    the slot is gone or lost its WAL with a position stored, :class:`LogAtRiskError` when it retains
    more than ``limits.max_slot_wal_bytes`` or is ``unreserved``; returns the slot's state (None before
    the first run created it).
    """
    state, database = _slot_and_database(conn, slot)
    judge_slot(state, slot=slot, tables=tables, position=position, limits=limits, server=server,
               database=database)  # fmt: skip
    return state


def check_slot_database(
    conn: Any, slot: str, *, tables: Sequence[str], server: str = "the source server"
) -> SlotState | None:
    """Call before a snapshot re-creates the slot (dropping one of that name first): a slot of this
    name in another database than ``conn``'s is another sync's and raises :class:`SlotDatabaseError`.
    Nothing else is judged (a lost or full slot is what the snapshot replaces). Returns its state."""
    state, database = _slot_and_database(conn, slot)
    judge_slot_database(state, slot=slot, tables=tables, database=database, server=server)
    return state


def _slot_and_database(conn: Any, slot: str) -> tuple[SlotState | None, str | None]:
    """The slot's state (None: no such slot) and the database ``conn`` reads (None with no slot)."""
    found = [(s, current) for s, current in _read_slots(conn, slot.replace("_", r"\_")) if s.name == slot]
    return found[0] if found else (None, None)


def orphan_slots(conn: Any, live: Iterable[str]) -> list[SlotState]:
    """Slots the CDC reader created (named ``nightshift_<name>``) that no live sync uses.

    ``live`` names the slots the current sync definitions use, in full or as the ``<name>`` the
    reader was given. Reported, never dropped: the caller decides (a definition may be renamed back,
    or its data may still be wanted). Each holds ``retained_bytes`` of WAL on the server until dropped.
    """
    live = {n if n.startswith(SLOT_PREFIX) else SLOT_PREFIX + n for n in live}
    return [s for s in read_slots(conn) if s.name not in live]


def orphan_report(orphans: Sequence[SlotState], server: str = "the source server") -> str:
    """One line per orphaned slot: its name, database, WAL held, and the statement that drops it."""
    if not orphans:
        return f"{server}: no orphaned change-capture slots"
    lines = [f"{server}: {len(orphans)} change-capture slot(s) whose sync definition no longer exists:"]
    for s in orphans:
        lines.append(
            f"  - {s.name} (database {s.database}, {'active' if s.active else 'inactive'}, "
            f"wal_status {s.wal_status}, holds {_size(s.retained_bytes or 0)}); if no definition will use "
            f"it again: SELECT pg_drop_replication_slot('{s.name}'); DROP PUBLICATION IF EXISTS {s.name};"
        )
    return "\n".join(lines)


def _live_slots() -> set[str]:
    """The slots the sync definitions under include/config/syncs use: one per ``mode: cdc`` table."""
    from nightshift_core.sync.config import load_all

    return {
        CdcTable(t.name, tuple(t.primary_key), config.dag_id).slot
        for config in load_all()
        for t in config.tables
        if t.mode == "cdc"
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``orphan-slots``: print the orphaned slots of one PostgreSQL server; exit 1 if there are any."""
    parser = argparse.ArgumentParser(prog="python -m nightshift_core.sync.cdc.guards")
    sub = parser.add_subparsers(dest="command", required=True)
    orphans = sub.add_parser("orphan-slots", help="report change-capture slots of removed sync definitions")
    orphans.add_argument("--host", default="127.0.0.1")
    orphans.add_argument("--port", type=int, default=5432)
    orphans.add_argument("--user", default="postgres")
    orphans.add_argument("--dbname", default="postgres")
    orphans.add_argument(
        "--live",
        action="append",
        metavar="SLOT",
        help="a slot a sync still uses (repeatable; with or without its nightshift_ prefix); default: "
        "the slots of the mode: cdc tables of every definition under include/config/syncs",
    )
    args = parser.parse_args(argv)
    import psycopg2

    live = args.live if args.live is not None else sorted(_live_slots())
    # The password, if any, comes from PGPASSWORD or ~/.pgpass, never from the command line.
    conn = psycopg2.connect(host=args.host, port=args.port, user=args.user, dbname=args.dbname)
    try:
        found = orphan_slots(conn, live)
    finally:
        conn.close()
    print(orphan_report(found, f"PostgreSQL {args.host}:{args.port}"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
