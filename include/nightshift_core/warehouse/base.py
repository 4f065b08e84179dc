"""The warehouse interface every job uses; engines implement it (DuckDB, BigQuery)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from nightshift_core.errors import PermanentError
from nightshift_core.warehouse.types import (
    DELETED_COLUMN,
    Column,
    TableRef,
    WarehouseError,
    WriteMode,
    check_identifier,
    columns_from_arrow,
    plan_schema_change,
)


@dataclass(frozen=True)
class JobKey:
    """Identity of one unit of work: the same (dag, task, interval) always gives the same ids.

    The try number is deliberately not part of it, so a retry finds the work of the
    attempt before it instead of doing it a second time.
    """

    dag_id: str
    task_id: str
    interval_start: str | None = None
    interval_end: str | None = None
    run_id: str | None = None  # only used when the run has no data interval

    def job_id(self, purpose: str, *parts: str) -> str:
        scope = (self.interval_start, self.interval_end) if self.interval_start else (self.run_id,)
        raw = "|".join(map(str, (self.dag_id, self.task_id, *scope, purpose, *parts)))
        digest = hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()
        return f"nightshift_{purpose}_{digest}"


@dataclass(frozen=True)
class PartitionFilter:
    """Rows with ``start <= column < end`` form the partition a ``replace`` swaps."""

    column: str
    start: Any
    end: Any

    def __post_init__(self) -> None:
        check_identifier(self.column, "partition column")


@dataclass(frozen=True)
class StagedTable:
    """Data loaded next to its target, not yet visible there."""

    target: TableRef
    name: str  # engine-specific fully qualified staging table name
    job: JobKey
    rows: int
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class PublishResult:
    target: TableRef
    mode: WriteMode
    job_id: str
    staged_rows: int
    reattached: bool = False  # True when an earlier try had already published this data
    added_columns: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class SyncState:
    """What an incremental read of ``cursor`` covered, committed with its rows (see :meth:`Warehouse.publish`).

    ``read_until`` (a timestamp cursor): every source row whose cursor is below this UTC instant was
    read; the window's end on the source's own clock. None (an integer cursor): the engine records
    the highest cursor value among the published rows instead. ``full_load``: the whole table was
    read; states recorded before it no longer count.
    """

    cursor: str
    read_until: dt.datetime | None = None
    full_load: bool = False
    # change capture (cursor LOG_CURSOR): the log position the published rows reach, as JSON text
    position: str | None = None

    def __post_init__(self) -> None:
        check_identifier(self.cursor, "cursor column")
        if self.read_until is not None and self.read_until.tzinfo is None:
            raise ValueError(f"SyncState.read_until must be a UTC instant, got the naive {self.read_until}")


SYNC_STATE_COLUMNS = "target, cursor_column, read_until, last_value, full_load, job_id, published_at"
LOG_CURSOR = "_nightshift_log"  # the cursor_column of change-capture states (their position is the cursor)
CHANGE_OP = "_nightshift_op"  # apply_changes: 'upsert' or 'delete' (a hard delete)
CHANGE_UNCHANGED = "_nightshift_unchanged"  # apply_changes: the columns whose warehouse value stays
CHANGE_COLUMNS = (CHANGE_OP, CHANGE_UNCHANGED)


class DuplicateKeyError(WarehouseError, PermanentError):
    """Staged rows repeat a merge key: the upsert would be ambiguous."""


class Warehouse(ABC):
    """Engine-neutral operations. SQL passed to :meth:`query` is BigQuery Standard SQL."""

    engine: str

    # -- datasets and tables -------------------------------------------------------------
    @abstractmethod
    def ensure_dataset(self, dataset: str) -> None: ...

    @abstractmethod
    def table_exists(self, table: TableRef) -> bool: ...

    @abstractmethod
    def get_schema(self, table: TableRef) -> list[Column]: ...

    @abstractmethod
    def create_table(self, table: TableRef, columns: Sequence[Column]) -> None:
        """Create ``table`` if it does not exist."""

    @abstractmethod
    def add_columns(self, table: TableRef, columns: Sequence[Column]) -> None:
        """Add NULLABLE columns (schema evolution); existing rows read NULL."""

    @abstractmethod
    def drop_table(self, table: TableRef) -> None: ...

    # -- load and publish ----------------------------------------------------------------
    @abstractmethod
    def stage(
        self, job: JobKey, target: TableRef, batches: Iterable[pa.RecordBatch], schema: pa.Schema
    ) -> StagedTable:
        """Stream ``batches`` into a staging table for ``target`` (bounded memory)."""

    def stage_parquet(self, job: JobKey, target: TableRef, paths: Sequence[str]) -> StagedTable:
        """Stage Parquet files, streaming them row group by row group."""
        import pyarrow.parquet as pq

        schema = pq.read_schema(paths[0])

        def batches() -> Iterator[pa.RecordBatch]:
            for path in paths:
                with pq.ParquetFile(path) as file:
                    if not file.schema_arrow.equals(schema):
                        raise WarehouseError(f"{path}: schema differs from {paths[0]}; stage them separately")
                    yield from file.iter_batches(batch_size=65536)

        return self.stage(job, target, batches(), schema)

    @abstractmethod
    def publish(
        self,
        staged: StagedTable,
        mode: WriteMode,
        *,
        key: Sequence[str] = (),
        partition: PartitionFilter | None = None,
        state: SyncState | None = None,
        partition_by: str | None = None,
    ) -> PublishResult:
        """Make staged rows visible in one atomic step, then drop the staging table.

        ``merge`` upserts on ``key``; ``replace`` swaps the whole table, or only the rows of
        ``partition``; ``append`` adds rows. The target is created or evolved (new NULLABLE
        columns) first. A failure at any point leaves the target's rows exactly as they were
        (on BigQuery a new NULLABLE column may already have been added: DDL cannot join a
        transaction there). ``append`` of the same staged content for the same job happens
        once: a retry finds the earlier publish and returns ``reattached=True``. ``merge`` and
        ``replace`` are idempotent and simply run again.

        ``state`` is recorded for the target in the same transaction as the rows (DuckDB: one
        transaction; BigQuery: one multi-statement transaction): either both are visible or
        neither. States are only ever inserted (concurrent publishes never conflict on them);
        :meth:`sync_state` reads the highest since the last full load.

        A target this call creates is laid out for cheap merges where the engine has layouts
        (BigQuery: clustered on ``key``, day-partitioned on ``partition_by``, a DATE, DATETIME or
        TIMESTAMP column whose value never changes for a row); engines without them ignore it.
        """

    def apply_changes(
        self, staged: StagedTable, key: Sequence[str], *, state: SyncState | None = None
    ) -> PublishResult:
        """Apply folded log changes (one row per key) to the target in one transaction with ``state``.

        The staged rows carry two control columns besides the data: ``_nightshift_op`` ('upsert', or
        'delete' for a hard delete) and ``_nightshift_unchanged`` (names of columns whose value the
        target keeps: a PostgreSQL unchanged TOAST value, a column the log image lacks). An upsert
        replaces the row with the staged values except those; a soft delete is an upsert of the
        marker column (``_nightshift_deleted_at``), and writes nothing for a key the target lacks. The target is created or evolved (new NULLABLE columns) first; replaying the
        same changes leaves the same rows (the state's position then says where the next read starts).
        """
        raise WarehouseError(f"the {self.engine} warehouse cannot apply change-capture changes yet")

    def record_position(self, target: TableRef, job: JobKey, state: SyncState) -> str:
        """Record ``state`` (a change-capture position whose read brought no rows) for ``target`` alone,
        in one small transaction: the rows already there are not read. Returns the record's job id."""
        raise WarehouseError(f"the {self.engine} warehouse cannot keep change-capture positions yet")

    def log_position(self, target: TableRef) -> str | None:
        """The change-capture position (JSON text) committed last with ``target``'s rows since its last
        full load; None when there is none (the table needs a snapshot first)."""
        raise WarehouseError(f"the {self.engine} warehouse cannot keep change-capture positions yet")

    @abstractmethod
    def sync_state(self, target: TableRef, cursor: str) -> dt.datetime | int | None:
        """What the states recorded for ``target`` and ``cursor`` since its last full load say was
        read: the highest ``read_until`` (a UTC instant), else the highest integer cursor value read;
        None when nothing is recorded (a target loaded before states existed, or only empty reads)."""

    @abstractmethod
    def mark_missing_deleted(
        self,
        staged_keys: StagedTable,
        key: Sequence[str],
        *,
        column: str,
        at: Any,
        within: tuple[str, Sequence[tuple[int, int]]] | None = None,
    ) -> int:
        """Soft-delete: set ``column`` (TIMESTAMP) to ``at`` on target rows whose ``key`` is not in
        ``staged_keys`` (all keys the source still has; with ``within=(column, [(lo, hi), ...])`` only
        target rows whose ``column`` lies in one of those inclusive ranges, the keys staged) and that
        are not marked yet. One atomic
        statement; returns how many rows it marked. Adds ``column`` (NULLABLE) when missing."""

    @abstractmethod
    def unmatched_keys(
        self, staged_pairs: StagedTable, key: Sequence[str], cursor: str, *, before: Any = None
    ) -> pa.Table:
        """Keys of ``staged_pairs`` (the source's key + cursor columns) that the target lacks or holds
        with another cursor value (or soft-deleted), as a table of the key columns; only pairs whose
        cursor is below ``before`` when given (later changes belong to the next window). The computation
        runs in the engine; the staged table stays (for :meth:`mark_missing_deleted` or :meth:`discard`)."""

    @abstractmethod
    def bucket_checksums(
        self, target: TableRef, key: str, cursor: str, *, lo: int, width: int, before: Any = None
    ) -> dict[int, tuple[int, int]]:
        """Per bucket ``(key - lo) DIV width`` of the live rows (not soft-deleted, cursor below ``before``):
        (row count, sum of the cursor as integer microseconds since 1970-01-01, wall clock for DATETIME;
        the value itself for an integer cursor). Empty when the target does not exist."""

    @abstractmethod
    def discard(self, staged: StagedTable) -> None:
        """Drop a staged table that will not be published."""

    @abstractmethod
    def drop_staging(self, older_than_seconds: float = 0) -> list[str]:
        """Remove leftover staging tables (of crashed runs); return their names."""

    # -- read ----------------------------------------------------------------------------
    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table: ...

    @abstractmethod
    def query_batches(
        self, sql: str, params: Mapping[str, Any] | None = None, batch_size: int = 65536
    ) -> Iterator[pa.RecordBatch]: ...

    def close(self) -> None:  # noqa: B027 - optional for engines without resources
        """Release connections."""

    def session(self) -> contextlib.AbstractContextManager[None]:
        """One connection for every operation inside (in this thread) instead of one each: for a stretch of
        warehouse work with no source read in it, as a file engine keeps other processes' operations
        waiting until it ends. Nested: the outer one's. Engines whose operations open nothing hold nothing."""
        return contextlib.nullcontext()

    def lock(self, timeout: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the warehouse against other processes' writes, for work that outlasts one operation
        (dbt running DuckDB itself). Engines that take concurrent writers hold nothing."""
        return contextlib.nullcontext()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared helpers ------------------------------------------------------------------
    def prepare_target(self, target: TableRef, columns: Sequence[Column]) -> tuple[str, ...]:
        """Create the target or add the new columns; refuse drops/retypes. Returns added names."""
        self.ensure_dataset(target.dataset)
        if not self.table_exists(target):
            self.create_table(target, columns)
            return ()
        to_add = plan_schema_change(self.get_schema(target), list(columns), table=str(target))
        if to_add:
            self.add_columns(target, to_add)
        return tuple(c.name for c in to_add)

    @staticmethod
    def within_sql(alias: str, within: tuple[str, Sequence[tuple[int, int]]] | None, quote) -> str:
        """`` AND (alias.col BETWEEN lo AND hi OR ...)`` for ``within`` (integers only), or ''."""
        if within is None:
            return ""
        column, ranges = within
        if not ranges:
            return " AND FALSE"
        spans = " OR ".join(f"{alias}.{quote(column)} BETWEEN {int(lo)} AND {int(hi)}" for lo, hi in ranges)
        return f" AND ({spans})"

    @staticmethod
    def live_rows_where(columns: Iterable[str], cursor: str, before: str | None, quote) -> str:
        """`` WHERE`` for :meth:`bucket_checksums`: rows not soft-deleted (when ``columns`` has the marker)
        whose cursor is below the ``before`` placeholder (when given); '' when nothing is filtered."""
        where = [f"{quote(DELETED_COLUMN)} IS NULL"] if DELETED_COLUMN in set(columns) else []
        if before:
            where.append(f"{quote(cursor)} < {before}")
        return f" WHERE {' AND '.join(where)}" if where else ""

    @staticmethod
    def unmatched_sql(
        staged: str,
        target: str | None,
        key: Sequence[str],
        cursor: str,
        *,
        quote,
        deleted: bool,
        before: str | None,
    ) -> str:
        """The :meth:`unmatched_keys` query: ``staged``/``target`` are FROM clauses (``target`` None: no
        table yet, every key is unmatched), ``before`` the bound parameter's placeholder or None."""
        keys = ", ".join(f"s.{quote(k)}" for k in key)
        if target is None:
            return f"SELECT {keys} FROM {staged} AS s ORDER BY {keys}"  # noqa: S608
        on = " AND ".join(f"s.{quote(k)} = t.{quote(k)}" for k in key)
        stale = [f"t.{quote(key[0])} IS NULL", f"t.{quote(cursor)} IS DISTINCT FROM s.{quote(cursor)}"]
        if deleted:
            stale.append(f"t.{quote(DELETED_COLUMN)} IS NOT NULL")
        window = f" AND s.{quote(cursor)} < {before}" if before else ""
        return (
            f"SELECT {keys} FROM {staged} AS s LEFT JOIN {target} AS t ON {on} "  # noqa: S608
            f"WHERE ({' OR '.join(stale)}){window} ORDER BY {keys}"
        )

    @staticmethod
    def check_publish_args(
        staged: StagedTable, mode: WriteMode, key: Sequence[str], partition, state: SyncState | None = None
    ) -> None:
        names = {c.name.lower() for c in staged.columns}
        if state is not None and state.position is None and state.cursor.lower() not in names:
            raise WarehouseError(
                f"{staged.target}: sync state cursor column {state.cursor!r} not in the data"
            )
        if mode == "merge":
            if not key:
                raise WarehouseError(f"{staged.target}: merge needs key columns (the primary key)")
            missing = [k for k in key if k.lower() not in names]
            if missing:
                raise WarehouseError(f"{staged.target}: merge key column(s) {missing} not in the data")
        if partition is not None:
            if mode != "replace":
                raise WarehouseError(f"{staged.target}: a partition is only used with mode='replace'")
            if partition.column.lower() not in names:
                raise WarehouseError(
                    f"{staged.target}: partition column {partition.column!r} not in the data"
                )
        for k in key:
            check_identifier(k, "key column")

    @staticmethod
    def arrow_columns(schema: pa.Schema) -> tuple[Column, ...]:
        return tuple(columns_from_arrow(schema))
