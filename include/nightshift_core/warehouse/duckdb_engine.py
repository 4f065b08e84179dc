"""DuckDB warehouse: the embedded default (one file under the runtime folder).

DuckDB lets one process at a time open a database file for writing, and Airflow runs
tasks in parallel processes, so every operation takes an exclusive file lock
(``<file>.lock``, :meth:`DuckDBWarehouse.lock`), opens the database, works, and closes it
again; a :meth:`DuckDBWarehouse.session` keeps it open (and locked) across a stretch of
operations. Extensions are never installed or auto-loaded: nothing here may reach the network.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from filelock import FileLock, Timeout

from nightshift_core.warehouse.base import (
    CHANGE_COLUMNS,
    CHANGE_OP,
    CHANGE_UNCHANGED,
    LOG_CURSOR,
    SYNC_STATE_COLUMNS,
    DuplicateKeyError,
    JobKey,
    PartitionFilter,
    PublishResult,
    StagedTable,
    SyncState,
    Warehouse,
)
from nightshift_core.warehouse.sql import bind_names, transpile
from nightshift_core.warehouse.staging import spool_parquet
from nightshift_core.warehouse.types import (
    DELETED_COLUMN,
    Column,
    LogicalType,
    TableRef,
    WarehouseError,
    WriteMode,
    check_identifier,
    logical_type,
)

CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
_META = "_nightshift"  # schema for the publish ledger and the incremental reads' states
CATALOG = "_nightshift_warehouse"
_DATABASE: tuple[int, duckdb.DuckDBPyConnection] | None = None
_SESSIONS: dict[tuple[int, int, str], duckdb.DuckDBPyConnection] = {}  # DuckDBWarehouse.session's, by key


def _database() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per process; warehouse files are attached to it per operation.

    Starting a DuckDB instance costs tens of milliseconds, several times per task; attaching
    a file is cheaper, and detaching it releases the file for other processes just the same.
    """
    global _DATABASE
    if _DATABASE is None or _DATABASE[0] != os.getpid():  # never reuse an instance across fork()
        database = duckdb.connect(":memory:", config=CONFIG)
        # Row order inside a table carries no meaning here; not keeping it lets big
        # INSERT ... SELECT loads stream with less memory.
        database.execute("SET preserve_insertion_order = false")
        _DATABASE = (os.getpid(), database)
    return _DATABASE[1]


def _release(con: duckdb.DuckDBPyConnection) -> None:
    """Detach the warehouse file so other processes can open it; drop the instance if that fails."""
    global _DATABASE
    try:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")  # only when an operation left a transaction open
        con.execute("USE memory")
        con.execute(f"DETACH {CATALOG}")
        con.close()
    except duckdb.Error:
        con.close()
        if _DATABASE is not None:
            _DATABASE[1].close()  # closing the instance closes every file it holds
        _DATABASE = None


_DDL_TYPES: dict[str, str] = {
    "INT64": "BIGINT",
    "FLOAT64": "DOUBLE",
    "NUMERIC": "DECIMAL(38, 9)",
    "BIGNUMERIC": "VARCHAR",  # DuckDB decimals stop at 38 digits: keep the exact text
    "BOOL": "BOOLEAN",
    "STRING": "VARCHAR",
    "BYTES": "BLOB",
    "DATE": "DATE",
    "DATETIME": "TIMESTAMP",
    "TIME": "TIME",
    "TIMESTAMP": "TIMESTAMPTZ",
    "JSON": "JSON",
}
_FROM_DUCKDB: dict[str, LogicalType] = {
    "BIGINT": "INT64", "INTEGER": "INT64", "SMALLINT": "INT64", "TINYINT": "INT64",
    "DOUBLE": "FLOAT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "VARCHAR": "STRING",
    "BLOB": "BYTES", "DATE": "DATE", "TIMESTAMP": "DATETIME", "TIME": "TIME",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP", "JSON": "JSON",
}  # fmt: skip
_TYPE_COMMENT = "nightshift:"
_ROWID = "_nightshift_rowid"  # apply_changes: the matched target row's rowid
# states recorded since the target's last full load (parameter: the target)
_SINCE_FULL_LOAD = (
    f"published_at >= COALESCE((SELECT MAX(published_at) FROM {_META}.sync_state WHERE target = ? AND full_load), "
    "'-infinity'::TIMESTAMPTZ)"
)


def q(name: str) -> str:
    """Quote a validated identifier."""
    return '"' + check_identifier(name) + '"'


def fq(table: TableRef) -> str:
    return f"{q(table.dataset)}.{q(table.table)}"


class DuckDBWarehouse(Warehouse):
    engine = "duckdb"

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 600) -> None:
        self.path = Path(path)
        self.staging_dir = self.path.with_name(self.path.name + ".staging")
        self.lock_timeout = lock_timeout

    # -- connection handling -------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """The exclusive lock on ``<file>.lock`` that every writer of this file holds: each operation
        here around its connection, a process running DuckDB itself (dbt) for its whole run. Waits up
        to ``timeout`` seconds (default ``lock_timeout``; 0 makes one attempt), else WarehouseError."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        wait = self.lock_timeout if timeout is None else timeout
        # Not thread-local: a task may take it in one thread and release it in another (callbacks).
        lock = FileLock(self.path.with_name(self.path.name + ".lock"), thread_local=False)
        try:
            lock.acquire(timeout=wait)
        except Timeout:
            raise WarehouseError(
                f"DuckDB warehouse {self.path} stayed locked by another process for {wait:.0f}s; "
                "is a long task holding it?"
            ) from None
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """The file locked and attached once for every operation inside (in this thread): each operation
        otherwise attaches it and detaches it again (a checkpoint), which costs more than a small operation
        itself. Other processes' operations wait until the session ends: keep source reads outside it."""
        key = self._session_key()
        if key in _SESSIONS:
            yield
            return
        with self._attached() as con:
            _SESSIONS[key] = con
            try:
                yield
            finally:
                del _SESSIONS[key]

    def _session_key(self) -> tuple[int, int, str]:
        """Sessions are per process, thread and file: any warehouse object on the file shares one."""
        return os.getpid(), threading.get_ident(), str(self.path.resolve())

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An exclusive, short-lived connection (waits for other processes' operations); inside a
        :meth:`session`, a connection of its own to the file the session holds attached."""
        held = _SESSIONS.get(self._session_key())
        if held is None:
            with self._attached() as con:
                yield con
            return
        con = held.cursor()  # the attached file belongs to the instance: every cursor of it sees it
        try:
            con.execute(f"USE {CATALOG}")
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")  # only when an operation left a transaction open
            con.close()

    @contextlib.contextmanager
    def _attached(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The file locked and attached until the block ends."""
        with self.lock():
            # Attached under a fixed catalog name: connecting to the file directly would name the
            # catalog after the file, and a dataset with the same name would become ambiguous.
            con = _database().cursor()
            try:
                literal = "'" + str(self.path).replace("'", "''") + "'"
                con.execute(f"ATTACH {literal} AS {CATALOG}")
                con.execute(f"USE {CATALOG}")
                con.execute("SET TimeZone = 'UTC'")
                yield con
            finally:
                _release(con)

    # -- datasets and tables -------------------------------------------------------------
    def ensure_dataset(self, dataset: str) -> None:
        with self.connect() as con:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {q(dataset)}")

    def table_exists(self, table: TableRef) -> bool:
        with self.connect() as con:
            return _exists(con, table)

    def get_schema(self, table: TableRef) -> list[Column]:
        with self.connect() as con:
            return _schema(con, table)

    def create_table(self, table: TableRef, columns: Sequence[Column]) -> None:
        with self.connect() as con:
            _create(con, table, columns)

    def add_columns(self, table: TableRef, columns: Sequence[Column]) -> None:
        with self.connect() as con:
            _add_columns(con, table, columns)

    def drop_table(self, table: TableRef) -> None:
        with self.connect() as con:
            con.execute(f"DROP TABLE IF EXISTS {fq(table)}")

    # -- load and publish ----------------------------------------------------------------
    def stage(
        self, job: JobKey, target: TableRef, batches: Iterable[pa.RecordBatch], schema: pa.Schema
    ) -> StagedTable:
        columns = self.arrow_columns(schema)
        wide = {i: pa.list_(pa.string()) if c.repeated else pa.string()
                for i, c in enumerate(columns) if c.type == "BIGNUMERIC"}  # fmt: skip

        def exact_text(batch: pa.RecordBatch) -> pa.RecordBatch:
            # DuckDB would read >38-digit Parquet decimals as DOUBLE: hand it exact text.
            if not wide:
                return batch
            arrays = list(batch.columns)
            for i, text in wide.items():
                arrays[i] = pc.cast(arrays[i], text)
            fields = [f.with_type(wide[i]) if i in wide else f for i, f in enumerate(batch.schema)]
            return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))

        name = f"{target.dataset}__{target.table}__{job.job_id('stage')}"
        path = self.staging_dir / f"{name}.parquet"
        rows, digest = spool_parquet(batches, schema, path, convert=exact_text)
        return StagedTable(target=target, name=f"{path}#{digest}", job=job, rows=rows, columns=columns)

    def publish(
        self,
        staged: StagedTable,
        mode: WriteMode,
        *,
        key: Sequence[str] = (),
        partition: PartitionFilter | None = None,
        state: SyncState | None = None,
        partition_by: str | None = None,  # no table layouts here: DuckDB's zone maps prune by themselves
    ) -> PublishResult:
        self.check_publish_args(staged, mode, key, partition, state)
        path, _, digest = staged.name.rpartition("#")
        job_id = staged.job.job_id("publish", str(staged.target), mode, ",".join(key), digest)
        target = staged.target
        source = "read_parquet(?)"
        with self.connect() as con:
            _ensure_ledger(con)
            # Appending twice would duplicate rows; merge and replace are idempotent and always run.
            seen = con.execute(f"SELECT 1 FROM {_META}.published WHERE job_id = ?", [job_id]).fetchone()
            if mode == "append" and seen:
                Path(path).unlink(missing_ok=True)
                return PublishResult(target, mode, job_id, staged.rows, reattached=True)
            if not Path(path).exists():
                raise WarehouseError(f"{target}: staged file {path} is gone; re-run the task to stage again")
            con.execute("BEGIN TRANSACTION")
            try:
                added = self._prepare(con, target, staged.columns)
                names = ", ".join(q(c.name) for c in staged.columns)
                if mode == "merge":
                    keys = ", ".join(q(k) for k in key)
                    dup = con.execute(
                        f"SELECT {keys}, count(*) AS n FROM {source} GROUP BY ALL HAVING count(*) > 1 LIMIT 5",
                        [path],
                    ).fetchall()
                    if dup:
                        raise DuplicateKeyError(
                            f"{target}: staged rows repeat the merge key {list(key)}, e.g. {dup}; "
                            "fix the primary key in the sync definition or deduplicate the source"
                        )
                    # A join, not a tuple IN (...): DuckDB hashes the staged keys once.
                    on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in key)
                    if len(key) == 1:
                        con.execute(f"DELETE FROM {fq(target)} AS t USING {source} AS s WHERE {on}", [path])
                    else:  # the candidates by the first key column, then the whole key (see _candidates)
                        con.execute(
                            f"DELETE FROM {fq(target)} WHERE rowid IN ({_candidates(target, key, keys, source)} "  # noqa: S608
                            f"SELECT t.{q(_ROWID)} FROM t JOIN {source} AS s ON {on})",
                            [path, path],
                        )
                elif mode == "replace" and partition is not None:
                    col = q(partition.column)
                    outside = con.execute(
                        f"SELECT count(*) FROM {source} WHERE NOT ({col} >= ? AND {col} < ?) OR {col} IS NULL",
                        [path, partition.start, partition.end],
                    ).fetchone()[0]
                    if outside:
                        raise WarehouseError(
                            f"{target}: {outside} staged row(s) fall outside the partition "
                            f"{partition.column} in [{partition.start}, {partition.end}); nothing was written"
                        )
                    con.execute(
                        f"DELETE FROM {fq(target)} WHERE {col} >= ? AND {col} < ?",
                        [partition.start, partition.end],
                    )
                elif mode == "replace":
                    con.execute(f"DELETE FROM {fq(target)}")
                con.execute(f"INSERT INTO {fq(target)} ({names}) SELECT {names} FROM {source}", [path])
                con.execute(
                    f"INSERT OR REPLACE INTO {_META}.published VALUES (?, ?, ?, ?, now())",
                    [job_id, str(target), mode, staged.rows],
                )
                if state is not None:
                    # an integer cursor: the highest value this publish carries, read in this transaction
                    last = (
                        "NULL"
                        if state.read_until is not None
                        else f"(SELECT MAX({q(state.cursor)}) FROM {source})"
                    )
                    if state.position is not None:
                        last = "NULL"  # a log position: no cursor value among the rows
                    con.execute(
                        f"INSERT INTO {_META}.sync_state ({SYNC_STATE_COLUMNS}, position) "
                        f"SELECT ?, ?, ?, CAST({last} AS BIGINT), ?, ?, now(), ?",
                        [str(target), state.cursor, state.read_until,
                         *([] if state.read_until is not None or state.position is not None else [path]),
                         state.full_load, job_id, state.position],
                    )  # fmt: skip
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        Path(path).unlink(missing_ok=True)
        return PublishResult(target, mode, job_id, staged.rows, added_columns=added)

    def apply_changes(
        self, staged: StagedTable, key: Sequence[str], *, state: SyncState | None = None
    ) -> PublishResult:
        path, _, digest = staged.name.rpartition("#")
        target = staged.target
        job_id = staged.job.job_id("apply", str(target), ",".join(key), digest)
        data = [c for c in staged.columns if c.name not in CHANGE_COLUMNS]
        on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in key)
        if not Path(path).exists():
            raise WarehouseError(f"{target}: staged file {path} is gone; re-run the task to stage again")
        with self.connect() as con:
            _ensure_ledger(con)
            con.execute("BEGIN TRANSACTION")
            try:
                added = self._prepare(con, target, data)
                # a column the source dropped keeps its values (its new rows read NULL)
                staged_names = {c.name for c in data}
                gone = [c.name for c in _schema(con, target) if c.name not in staged_names]
                names = ", ".join([*(q(c.name) for c in data), *(q(name) for name in gone)])
                # a soft delete of a key the target never had (inserted and deleted between two reads)
                # leaves nothing: there is no row to mark
                absent = f"t.{q(key[0])} IS NULL" + (
                    f" AND s.{q(DELETED_COLUMN)} IS NOT NULL"
                    if DELETED_COLUMN in staged_names
                    else " AND FALSE"
                )
                # One pass over the target, filtered as it is read (see _candidates): the rows matched on the
                # whole key keep their rowid; the old rows then go by rowid. Only its key columns when no
                # staged image left a column out (no soft delete, no TOAST) and the source dropped none:
                # then no old value is kept, the merged rows are the staged ones (as the merge's), and the
                # read skips decoding whole candidate rows. (A second, narrower read of whole rows for the
                # partial images alone cost as much as it saved: both passes scan the first key column.)
                partial = con.execute(
                    f"SELECT count(*) FROM read_parquet(?) WHERE len({q(CHANGE_UNCHANGED)}) > 0", [path]
                ).fetchall()[0][0]
                old = bool(gone or partial)
                kept = ", ".join(
                    f"s.{q(c.name)}" if c.name in key or not old else
                    f"CASE WHEN list_contains(s.{q(CHANGE_UNCHANGED)}, '{c.name}') THEN t.{q(c.name)} "
                    f"ELSE s.{q(c.name)} END AS {q(c.name)}"
                    for c in data
                )  # fmt: skip
                kept += "".join(f", t.{q(name)} AS {q(name)}" for name in gone)
                read = "*" if old else ", ".join(q(k) for k in key)
                merged = con.sql(  # noqa: F841 - read by the DELETE and INSERT below (replacement scans)
                    f"{_candidates(target, key, read, 'read_parquet(?)')} "
                    f"SELECT {kept}, CASE WHEN {absent} THEN 'delete' ELSE s.{q(CHANGE_OP)} END AS {q(CHANGE_OP)}, "
                    f"t.{q(_ROWID)} FROM read_parquet(?) AS s LEFT JOIN t ON {on}",
                    params=[path, path],
                ).to_arrow_table()
                con.execute(
                    f"DELETE FROM {fq(target)} WHERE rowid IN "  # noqa: S608
                    f"(SELECT {q(_ROWID)} FROM merged WHERE {q(_ROWID)} IS NOT NULL)"
                )
                con.execute(
                    f"INSERT INTO {fq(target)} ({names}) SELECT {names} FROM merged "  # noqa: S608
                    f"WHERE {q(CHANGE_OP)} <> 'delete'"
                )
                if state is not None:
                    con.execute(
                        f"INSERT INTO {_META}.sync_state ({SYNC_STATE_COLUMNS}, position) "
                        "VALUES (?, ?, NULL, NULL, ?, ?, now(), ?)",
                        [str(target), state.cursor, state.full_load, job_id, state.position],
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        Path(path).unlink(missing_ok=True)
        return PublishResult(target, "merge", job_id, staged.rows, added_columns=added)

    def record_position(self, target: TableRef, job: JobKey, state: SyncState) -> str:
        if state.position is None:
            raise WarehouseError(f"{target}: record_position needs a state with a position")
        job_id = job.job_id("position", str(target), state.position)
        with self.connect() as con:
            _ensure_ledger(con)
            con.execute(
                f"INSERT INTO {_META}.sync_state ({SYNC_STATE_COLUMNS}, position) "
                "VALUES (?, ?, NULL, NULL, ?, ?, now(), ?)",
                [str(target), state.cursor, state.full_load, job_id, state.position],
            )
        return job_id

    def log_position(self, target: TableRef) -> str | None:
        with self.connect() as con:
            _ensure_ledger(con)
            row = con.execute(
                f"SELECT position FROM {_META}.sync_state WHERE target = ? AND cursor_column = ? "  # noqa: S608
                f"AND position IS NOT NULL AND {_SINCE_FULL_LOAD} ORDER BY published_at DESC LIMIT 1",
                [str(target), LOG_CURSOR, str(target)],
            ).fetchone()
        return None if row is None else row[0]

    def sync_state(self, target: TableRef, cursor: str) -> dt.datetime | int | None:
        with self.connect() as con:
            _ensure_ledger(con)
            row = con.execute(
                f"SELECT MAX(read_until), MAX(last_value) FROM {_META}.sync_state "  # noqa: S608
                f"WHERE target = ? AND cursor_column = ? AND {_SINCE_FULL_LOAD}",
                [str(target), cursor, str(target)],
            ).fetchone()
        read_until, last_value = row
        if read_until is not None:
            return read_until.astimezone(dt.UTC)
        return None if last_value is None else int(last_value)

    def mark_missing_deleted(
        self, staged_keys: StagedTable, key: Sequence[str], *, column: str, at: Any, within=None
    ) -> int:
        path = staged_keys.name.rpartition("#")[0]
        target = staged_keys.target
        on = " AND ".join(f"s.{q(k)} = t.{q(k)}" for k in key)
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                _add_columns(con, target, [c for c in [Column(column, "TIMESTAMP")] if c.name not in
                                           {x.name for x in _schema(con, target)}])  # fmt: skip
                marked = con.execute(
                    f"UPDATE {fq(target)} AS t SET {q(column)} = ? WHERE t.{q(column)} IS NULL "
                    f"AND NOT EXISTS (SELECT 1 FROM read_parquet(?) AS s WHERE {on})"
                    + self.within_sql("t", within, q),
                    [at, path],
                ).fetchone()[0]
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        Path(path).unlink(missing_ok=True)
        return int(marked)

    def unmatched_keys(
        self, staged_pairs: StagedTable, key: Sequence[str], cursor: str, *, before: Any = None
    ) -> pa.Table:
        path = staged_pairs.name.rpartition("#")[0]
        target = staged_pairs.target
        with self.connect() as con:
            exists = _exists(con, target)
            deleted = exists and DELETED_COLUMN in {c.name for c in _schema(con, target)}
            sql = self.unmatched_sql("read_parquet(?)", fq(target) if exists else None, key, cursor, quote=q,
                                     deleted=deleted, before="?" if before is not None and exists else None)  # fmt: skip
            params = [path, *([before] if before is not None and exists else [])]
            return con.sql(sql, params=params).to_arrow_table()

    def bucket_checksums(
        self, target: TableRef, key: str, cursor: str, *, lo: int, width: int, before: Any = None
    ) -> dict[int, tuple[int, int]]:
        with self.connect() as con:
            if not _exists(con, target):
                return {}
            types = {c.name: c.type for c in _schema(con, target)}
            value = f"epoch_us({q(cursor)})" if types[cursor] in ("DATETIME", "TIMESTAMP") else q(cursor)
            where = self.live_rows_where(types, cursor, "?" if before is not None else None, q)
            sql = (
                f"SELECT ({q(key)} - {int(lo)}) // {int(width)} AS b, COUNT(*) AS n, "  # noqa: S608
                f"CAST(SUM({value}) AS HUGEINT) AS s FROM {fq(target)}{where} GROUP BY b"
            )
            rows = con.execute(sql, [before] if before is not None else []).fetchall()
        return {int(b): (int(n), int(total or 0)) for b, n, total in rows}

    def discard(self, staged: StagedTable) -> None:
        Path(staged.name.rpartition("#")[0]).unlink(missing_ok=True)

    def _prepare(self, con: duckdb.DuckDBPyConnection, target: TableRef, columns: Sequence[Column]) -> tuple:
        from nightshift_core.warehouse.types import plan_schema_change

        con.execute(f"CREATE SCHEMA IF NOT EXISTS {q(target.dataset)}")
        if not _exists(con, target):
            _create(con, target, columns)
            return ()
        to_add = plan_schema_change(_schema(con, target), list(columns), table=str(target))
        _add_columns(con, target, to_add)
        return tuple(c.name for c in to_add)

    def drop_staging(self, older_than_seconds: float = 0) -> list[str]:
        removed = []
        if self.staging_dir.exists():
            cutoff = time.time() - older_than_seconds
            for path in sorted(self.staging_dir.iterdir()):
                if path.stat().st_mtime <= cutoff:
                    path.unlink(missing_ok=True)
                    removed.append(path.name)
        return removed

    # -- read ----------------------------------------------------------------------------
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        with self.connect() as con:
            return con.sql(transpile(sql, "duckdb"), params=bind_names(params) or None).to_arrow_table()

    def query_batches(
        self, sql: str, params: Mapping[str, Any] | None = None, batch_size: int = 65536
    ) -> Iterator[pa.RecordBatch]:
        with self.connect() as con:
            reader = con.sql(transpile(sql, "duckdb"), params=bind_names(params) or None).to_arrow_reader(
                batch_size
            )
            yield from reader


def _candidates(target: TableRef, key: Sequence[str], columns: str, source: str) -> str:
    """``WITH t AS MATERIALIZED (...)``: ``columns`` and the rowid (as _ROWID) of the target's rows whose
    first key column is among ``source``'s (one parameter: the staged file), for a join on the whole key.

    A semi join on one column, filtered as the target is read. Materialized, so that the whole-key join
    after it cannot push its min/max filters on the other key columns into the target's scan: DuckDB
    evaluates those on every row (a string key column decoded throughout the table), which cost more
    than the rest of the read and grew with the table.
    """
    first = q(key[0])
    return (
        f"WITH t AS MATERIALIZED (SELECT {columns}, rowid AS {q(_ROWID)} FROM {fq(target)} "  # noqa: S608
        f"WHERE {first} IN (SELECT {first} FROM {source}))"
    )


def _exists(con: duckdb.DuckDBPyConnection, table: TableRef) -> bool:
    row = con.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_catalog = ? AND table_schema = ? AND table_name = ?",
        [CATALOG, table.dataset, table.table],
    ).fetchone()
    return row is not None


def _schema(con: duckdb.DuckDBPyConnection, table: TableRef) -> list[Column]:
    rows = con.execute(
        "SELECT column_name, data_type, is_nullable, comment FROM duckdb_columns() "
        "WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [CATALOG, table.dataset, table.table],
    ).fetchall()
    if not rows:
        raise WarehouseError(f"table {table} does not exist in {con}")
    out = []
    for name, data_type, nullable, comment in rows:
        if comment and comment.startswith(_TYPE_COMMENT):
            kind = comment[len(_TYPE_COMMENT) :]
        elif data_type.startswith("DECIMAL"):
            kind = "NUMERIC"
        else:
            kind = _FROM_DUCKDB.get(data_type.removesuffix("[]"), "STRING")
        repeated = data_type.endswith("[]")
        out.append(Column(name, kind, bool(nullable) or repeated, repeated))  # type: ignore[arg-type]
    return out


def _ddl(column: Column) -> str:
    """A LIST for a REPEATED column (loads write an empty list, never NULL, as BigQuery holds it)."""
    return f"{_DDL_TYPES[column.type]}[]" if column.repeated else _DDL_TYPES[column.type]


def _create(con: duckdb.DuckDBPyConnection, table: TableRef, columns: Sequence[Column]) -> None:
    cols = ", ".join(f"{q(c.name)} {_ddl(c)}{'' if c.nullable else ' NOT NULL'}" for c in columns)
    con.execute(f"CREATE TABLE IF NOT EXISTS {fq(table)} ({cols})")
    _comment(con, table, columns)


def _add_columns(con: duckdb.DuckDBPyConnection, table: TableRef, columns: Sequence[Column]) -> None:
    for c in columns:
        con.execute(f"ALTER TABLE {fq(table)} ADD COLUMN IF NOT EXISTS {q(c.name)} {_ddl(c)}")
    _comment(con, table, columns)


def _comment(con: duckdb.DuckDBPyConnection, table: TableRef, columns: Sequence[Column]) -> None:
    for c in columns:  # the exact logical type, for get_schema
        con.execute(f"COMMENT ON COLUMN {fq(table)}.{q(c.name)} IS '{_TYPE_COMMENT}{c.type}'")


def _ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {_META}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {_META}.published (job_id VARCHAR PRIMARY KEY, target VARCHAR, "
        "mode VARCHAR, rows BIGINT, published_at TIMESTAMPTZ)"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {_META}.sync_state (target VARCHAR NOT NULL, cursor_column VARCHAR NOT NULL, "
        "read_until TIMESTAMPTZ, last_value BIGINT, full_load BOOLEAN NOT NULL, job_id VARCHAR, "
        "published_at TIMESTAMPTZ NOT NULL)"
    )
    # change capture's log position (JSON text), added to ledgers made before it existed
    con.execute(f"ALTER TABLE {_META}.sync_state ADD COLUMN IF NOT EXISTS position VARCHAR")


__all__ = ["DuckDBWarehouse", "logical_type"]
