"""PostgreSQL's change log for change capture: logical decoding, read by :mod:`.postgres_logical`."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from nightshift_core.sync import source
from nightshift_core.sync.cdc import guards
from nightshift_core.sync.cdc.endpoint import Endpoint
from nightshift_core.sync.cdc.log_source import LogRun, LogSource
from nightshift_core.sync.cdc.preflight import check_generated_columns, check_postgres, check_replica_identity
from nightshift_core.sync.cdc.values import postgres_batch, postgres_columns
from nightshift_core.sync.source import SourceColumn


class LogicalSource(LogSource):
    """A replication slot per table (named after ``CdcTable.slot``): positions are LSNs, and the slot is
    confirmed only after the warehouse committed, so the server keeps the WAL a retry needs."""

    default_port = 5432

    def snapshot(self, conn: Any, endpoint: Endpoint, table: Any) -> dict[str, Any]:
        from nightshift_core.sync.cdc.postgres_logical import LogicalReader

        published = qualified(conn, table.name)
        with LogicalReader(endpoint, table.slot, [published], text=True) as reader:
            # a slot of this name in another database is another deployment's: refuse, never drop it
            guards.check_slot_database(conn, reader.slot, tables=[table.name], server=str(endpoint))
            # before the publication: one on a table without a replica identity breaks the source's writes
            _check_logged(
                conn, published, table.primary_key, table.exclude, server=str(endpoint), when="snapshot"
            )
            lsn, snapshot, replication = reader.create_slot_with_snapshot()
        position = {"lsn": lsn}
        conn.rollback()
        cur = conn.cursor()
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if not re.fullmatch(r"[0-9A-F-]+", snapshot):  # the server's own id, inlined (no parameter here)
            raise RuntimeError(f"{endpoint}: unexpected exported snapshot id {snapshot!r}")
        cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        cur.close()
        replication.close()  # imported: the reading transaction holds the snapshot from here on
        source.prepare_session(conn, self.dialect)
        return position

    def check_server(self, conn: Any, server: str) -> None:
        check_postgres(conn, server)

    def check_capacity(self, conn: Any, tables: int, server: str) -> str | None:
        with contextlib.closing(conn.cursor()) as cur:
            cur.execute(
                "SELECT current_setting('max_replication_slots')::int, count(*) FROM pg_replication_slots"
            )
            limit, used = cur.fetchone()
        if tables <= limit - used:
            return None
        return (
            f"{server}: {tables} table(s) on change capture take a replication slot each, and "
            f"max_replication_slots is {limit} with {used} in use: raise it (a restart; on Cloud SQL, database "
            "flag max_replication_slots) or keep some tables on mode: incremental. Each slot decodes all of "
            "the server's WAL, so its decoding work grows with their number too"
        )

    def check_table(
        self, conn: Any, table: str, key: Sequence[str], columns: Sequence[SourceColumn], *, server: str
    ) -> None:
        super().check_table(conn, table, key, columns, server=server)
        published = qualified(conn, table)
        _check_logged(conn, published, key, (), server=server, when="init")

    def after_describe(self, conn: Any) -> None:
        conn.commit()  # nothing written: this keeps the session's settings (a rollback would undo them)

    @contextlib.contextmanager
    def open_log(self, run: LogRun) -> Iterator[Any]:
        from nightshift_core.sync.cdc.postgres_logical import LogicalReader, format_lsn, parse_lsn

        table, endpoint = run.table, run.endpoint
        published = qualified(run.conn, table.name)
        with LogicalReader(
            endpoint, table.slot, [published], text=True, split_after=table.chunk_changes
        ) as reader:
            state = guards.check_slot(run.conn, reader.slot, tables=[table.name], position=run.stored,
                                      limits=run.limits, server=str(endpoint))  # fmt: skip
            _check_logged(
                run.conn, published, table.primary_key, table.exclude, server=str(endpoint), when="log"
            )
            _check_published(run.conn, reader.slot, published, run.position)
            run.conn.commit()
            # the slot's confirmed position as the guard read it (a stored position means the slot exists)
            confirmed = parse_lsn(state.confirmed_flush_lsn) if state and state.confirmed_flush_lsn else None
            if confirmed is None:
                confirmed = reader.slot_position()
            stored = int(run.position["lsn"])
            if stored < confirmed:  # the slot moved past what the warehouse holds
                raise guards.LogLostError(
                    f"table {table.name!r}: the warehouse's position {format_lsn(stored)} is behind "
                    f"slot {reader.slot}'s confirmed {format_lsn(confirmed)} on {endpoint} (the warehouse was "
                    "restored, or the slot advanced by hand): the changes between are gone from the log. "
                    "Reload the table: trigger the sync with full_refresh"
                )
            yield reader

    def read(self, reader: Any, position: dict[str, Any]) -> Any:
        return reader.read(int(position["lsn"]))

    def units(self, read: Any) -> Any:
        return read.blocks()  # row messages decoded and folded a chunk at a time (pgoutput_fold)

    def folder(self, table: Any) -> Any:
        from nightshift_core.sync.cdc.pgoutput_fold import BlockFolder

        return BlockFolder(table.primary_key)

    def columns(
        self, conn: Any, folded: Any, columns: Sequence[SourceColumn], table: str
    ) -> tuple[list[pa.Array], list[list[str]]]:
        arrays, missing = postgres_columns(conn, folded.texts, folded.absent, folded.rows, columns, table)
        conn.rollback()
        return arrays, missing

    def encode(self, position: Any) -> dict[str, Any]:
        return {"lsn": position}

    def confirm(self, reader: Any, end: Any) -> None:
        reader.confirm(end)  # only now may the server recycle the WAL up to it

    def batch(
        self, conn: Any, rows: list[dict], columns: Sequence[SourceColumn], table: str
    ) -> tuple[list[pa.Array], list[list[str]]]:
        arrays, missing = postgres_batch(conn, rows, columns, table) if rows else ([], [])
        conn.rollback()
        return arrays, missing


def _check_logged(
    conn: Any, table: str, key: Sequence[str], exclude: Sequence[str], *, server: str, when: str
) -> None:
    """What the log must carry of ``table`` (``schema.table``) for its rows to be followed: a replica
    identity holding the key, and no generated column left in (see :mod:`.preflight`). Before the
    snapshot's publication, on every log run, and where a definition is written (``when``)."""
    check_replica_identity(conn, table, key, server=server, when=when)
    check_generated_columns(conn, table, exclude, server=server)


def qualified(conn: Any, table: str) -> str:
    """``schema.table`` of the table a plain ``table`` names for the query path: the one in ``conn``'s
    current schema (the first of its search_path that exists), which its describe and extract read. The
    publication and the replica identity check name that one, never public's of the same name."""
    if "." in table:
        return table
    with contextlib.closing(conn.cursor()) as cur:
        cur.execute("SELECT current_schema()")
        (schema,) = cur.fetchone()
    return f"{schema or 'public'}.{table}"


def _check_published(conn: Any, publication: str, table: str, position: dict[str, Any]) -> None:
    """Fail when the table ``table`` names now is not the one the publication holds: it was dropped and
    created again, or renamed and another took its name, and the log has none of its changes since."""
    from nightshift_core.sync.cdc.changes import TableReplacedError
    from nightshift_core.sync.cdc.postgres_logical import format_lsn

    schema, _, name = table.rpartition(".")
    with contextlib.closing(conn.cursor()) as cur:
        cur.execute(
            # the relation the publication was given (a partitioned table itself, not its partitions)
            "SELECT EXISTS (SELECT 1 FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid "
            "WHERE p.pubname = %s AND r.prrelid = to_regclass(quote_ident(%s) || '.' || quote_ident(%s)))",
            [publication, schema, name],
        )
        (held,) = cur.fetchone()
    if not held:
        raise TableReplacedError(
            table, format_lsn(int(position["lsn"])), f"publication {publication} no longer holds it"
        )
