"""MySQL/MariaDB's change log for change capture: the binlog, read by :mod:`.mysql_binlog`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from nightshift_core.sync import source
from nightshift_core.sync.cdc import guards
from nightshift_core.sync.cdc.endpoint import Endpoint
from nightshift_core.sync.cdc.log_source import LogRun, LogSource
from nightshift_core.sync.cdc.preflight import check_cascades, check_mysql
from nightshift_core.sync.cdc.values import check_mysql_columns, mysql_batch
from nightshift_core.sync.source import SourceColumn


class BinlogSource(LogSource):
    """The binlog: positions are file and offset with the GTID state; nothing to confirm on the server
    (the position the warehouse stores is all there is)."""

    default_port = 3306

    def snapshot(self, conn: Any, endpoint: Endpoint, table: Any) -> dict[str, Any]:
        from nightshift_core.sync.cdc.mysql_binlog import BinlogReader

        check_cascades(conn, table.name, server=str(endpoint))
        with BinlogReader(endpoint, [table.name]) as reader:
            # Where the log stands before the snapshot: a MySQL server without MariaDB's snapshot
            # status starts here, and the first log run replays what the snapshot already has
            # (idempotent per key).
            before = reader.current_position()
            source.prepare_session(conn, self.dialect)
            cur = conn.cursor()
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
            status = {str(k).lower(): v for k, v in cur.fetchall()}
            cur.close()
            position = before.to_dict()
            if status.get("binlog_snapshot_file"):  # MariaDB: exactly the snapshot's point in the log
                file, pos = str(status["binlog_snapshot_file"]), int(status["binlog_snapshot_position"])
                position = {"file": file, "pos": pos, "gtid": _mariadb_gtid(conn, file, pos)}
        return position

    def check_columns(self, table: str, columns: Sequence[SourceColumn]) -> None:
        check_mysql_columns(table, columns)

    def check_server(self, conn: Any, server: str) -> None:
        check_mysql(conn, server)

    def check_table(
        self, conn: Any, table: str, key: Sequence[str], columns: Sequence[SourceColumn], *, server: str
    ) -> None:
        super().check_table(conn, table, key, columns, server=server)
        check_cascades(conn, table, server=server)

    @contextlib.contextmanager
    def open_log(self, run: LogRun) -> Iterator[Any]:
        from nightshift_core.sync.cdc.mysql_binlog import BinlogReader

        table = run.table
        check_cascades(run.conn, table.name, server=str(run.endpoint))  # a cascade added since the snapshot
        for warning in guards.check_binlog_position(run.conn, run.position, tables=[table.name],
                                                    limits=run.limits, endpoint=run.endpoint,
                                                    server=str(run.endpoint)):  # fmt: skip
            run.warn(warning)
        with BinlogReader(run.endpoint, [table.name], split_after=table.chunk_changes) as reader:
            yield reader

    def read(self, reader: Any, position: dict[str, Any]) -> Any:
        from nightshift_core.sync.cdc.mysql_binlog import BinlogPosition

        return reader.read(BinlogPosition.from_dict(position))

    def encode(self, position: Any) -> dict[str, Any]:
        return position.to_dict()

    def batch(
        self, conn: Any, rows: list[dict], columns: Sequence[SourceColumn], table: str
    ) -> tuple[list[pa.Array], list[list[str]]]:
        return mysql_batch(rows, columns, table) if rows else ([], [])


def _mariadb_gtid(conn: Any, file: str, pos: int) -> str | None:
    cur = conn.cursor()
    try:
        cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
        row = cur.fetchone()
    finally:
        cur.close()
    return (row[0] or None) if row else None
