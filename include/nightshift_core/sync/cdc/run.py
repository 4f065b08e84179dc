"""One table's change-capture step: a snapshot on its first run, then the log from the stored position.

The entry point is :func:`sync_table` (no Airflow import: the operator, the bench and tests call it).
The position the warehouse holds is authoritative: it is committed in the same transaction as the
rows it covers, so a crash anywhere leaves it exact, and the next run re-reads from it (the apply is
idempotent per primary key). A PostgreSQL slot is confirmed only after that commit.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from nightshift_core.errors import SourceDefinitionError
from nightshift_core.sync import source
from nightshift_core.sync.cdc.endpoint import Endpoint
from nightshift_core.sync.cdc.guards import GuardLimits
from nightshift_core.sync.cdc.log_source import LogRun, LogSource, frozen_heap
from nightshift_core.sync.cdc.sources import log_source
from nightshift_core.sync.cdc.table import CdcTable
from nightshift_core.sync.dialects import Dialect
from nightshift_core.warehouse.base import (
    CHANGE_OP,
    CHANGE_UNCHANGED,
    LOG_CURSOR,
    JobKey,
    SyncState,
    Warehouse,
)
from nightshift_core.warehouse.types import DELETED_COLUMN, SchemaChangeError, TableRef, columns_from_arrow

log = logging.getLogger(__name__)

CRASH_AT = "NIGHTSHIFT_CDC_CRASH_AT"  # tests: 'read' (nothing committed), 'chunk' (one chunk), 'commit'


@dataclass
class CdcResult:
    mode: Literal["snapshot", "log"]
    staged_rows: int = 0
    changes: int = 0  # row changes read from the log
    deleted: int = 0  # keys whose net change was a delete
    chunks: int = 0  # commits (each with its position)
    start: str | None = None
    end: str | None = None
    added_columns: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def sync_table(
    conn: Any,
    dialect: Dialect | str,
    endpoint: Endpoint,
    table: CdcTable,
    warehouse: Warehouse,
    target: TableRef,
    job: JobKey,
    *,
    full_refresh: bool = False,
    limits: GuardLimits | None = None,
) -> CdcResult:
    """Run one change-capture step of ``table`` into ``target``.

    ``conn`` is a fresh DB-API connection to the source (nothing run on it yet; the snapshot needs
    its first transaction), ``endpoint`` where the log reader connects (same server, same login),
    ``job`` the unit of work's identity (staging names). Without a stored position, or with
    ``full_refresh``, the table is read whole under a snapshot consistent with the log position it
    stores (the target is replaced); otherwise the changes from the stored position up to the
    position current when the run started are folded per key and applied in chunks, each chunk's
    rows and position in one transaction. ``limits`` are the log-retention guards' (checked against
    the stored position before the log is read: a log about to be lost fails the run, naming the fix).
    Returns counts for the caller's metadata.
    """
    started = time.monotonic()
    logs = log_source(dialect, table.name)
    stored, existing = None, None
    if not full_refresh:
        with warehouse.session():  # one connection for the three catalog reads (a file engine opens once)
            if warehouse.table_exists(target):
                stored = warehouse.log_position(target)
                existing = warehouse.get_schema(target) if stored is not None else None
    if stored is None:
        result = _snapshot(conn, logs, endpoint, table, warehouse, target, job)
    else:
        result = _from_log(
            conn, logs, endpoint, table, warehouse, target, job, stored, existing, limits or GuardLimits()
        )
    result.seconds = round(time.monotonic() - started, 3)
    return result


def engine_step(
    spec: Any, dialect: Any, conn: Any, warehouse: Warehouse, connection: Any, facts: Any
) -> dict:
    """``mode: cdc`` for the sync engine: ``spec`` a TableSpec (table, dataset, target, primary_key,
    exclude, batch_rows, deletes), ``dialect`` a Dialect or its name, ``connection`` the source's
    fields (host, port, login, password, schema: an Airflow Connection), ``facts`` the run's (job,
    full_refresh); the PostgreSQL slot is named after the job's DAG. Returns the quality gate's metadata."""
    logs = log_source(dialect, spec.table)
    endpoint = Endpoint(
        connection.host or "127.0.0.1", int(connection.port or logs.default_port),
        connection.login or "", connection.schema or "", connection.password or "",
    )  # fmt: skip
    deletes = getattr(spec, "deletes", "soft")
    table = CdcTable(spec.table, tuple(spec.primary_key), facts.job.dag_id, tuple(spec.exclude), deletes,
                     batch_rows=spec.batch_rows)  # fmt: skip
    result = sync_table(conn, logs.dialect, endpoint, table, warehouse, spec.target, facts.job,
                        full_refresh=facts.full_refresh)  # fmt: skip
    log.info("%s: %s, %d change(s) read, %d row(s) applied in %d commit(s), log position %s -> %s",
             spec.target, result.mode, result.changes, result.staged_rows, result.chunks, result.start,
             result.end)  # fmt: skip
    return {
        "source_table": spec.table,
        "target": str(spec.target),
        "mode": "cdc",
        "reader": result.mode,  # snapshot or log
        "staged_rows": result.staged_rows,
        "source_rows": result.staged_rows,  # the log's own net rows: no separate count to compare
        "window": {"from": result.start, "to": result.end, "changes": result.changes},
        "added_columns": result.added_columns,
        "marked_deleted": result.deleted if deletes == "soft" else None,
        "reconciled": None,
        "detect_deletes": False,
    }


# -- the first run: a snapshot with its log position ------------------------------------------


def _snapshot(conn, logs: LogSource, endpoint, table: CdcTable, warehouse, target, job) -> CdcResult:
    position = logs.snapshot(conn, endpoint, table)
    try:
        columns = _describe(conn, logs, table)
        schema = source.arrow_schema(columns)
        batches: Iterable[pa.RecordBatch] = source.extract(
            conn, logs.dialect, table.name, columns, batch_rows=table.batch_rows
        )
        if table.deletes == "soft":  # live rows: the marker column is there, and NULL
            schema = schema.append(pa.field(DELETED_COLUMN, pa.timestamp("us", tz="UTC")))
            batches = (
                b.append_column(
                    schema.field(DELETED_COLUMN), pa.nulls(b.num_rows, pa.timestamp("us", tz="UTC"))
                )
                for b in batches
            )
        staged = warehouse.stage(job, target, batches, schema)
    finally:
        conn.rollback()
    state = SyncState(LOG_CURSOR, full_load=True, position=json.dumps(position))
    published = warehouse.publish(staged, "replace", state=state)
    log.info("%s: snapshot of %s rows at log position %s", target, published.staged_rows, position)
    return CdcResult(
        "snapshot", staged_rows=published.staged_rows, chunks=1, end=state.position,
        added_columns=list(published.added_columns),
    )  # fmt: skip


def _describe(conn, logs: LogSource, table: CdcTable) -> list[source.SourceColumn]:
    columns = source.describe(conn, logs.dialect, table.name, exclude=table.exclude)
    missing = set(table.primary_key) - {c.name for c in columns}
    if missing:
        raise SourceDefinitionError(
            f"table {table.name!r}: primary key column(s) {sorted(missing)} not found in the source (or "
            "excluded); fix primary_key (or exclude) in the sync definition"
        )
    logs.check_columns(table.name, columns)
    return columns


# -- later runs: the log -----------------------------------------------------------------------


def _from_log(
    conn, logs: LogSource, endpoint, table: CdcTable, warehouse, target, job, stored: str, existing, limits
) -> CdcResult:
    position = json.loads(stored)
    source.prepare_session(conn, logs.dialect)
    columns = _describe(conn, logs, table)
    logs.after_describe(conn)
    _refuse_retyped(existing, target, table, columns)
    result = CdcResult("log", start=stored)

    def warn(warning: str) -> None:
        log.warning("%s: %s", target, warning)

    with logs.open_log(LogRun(conn, endpoint, table, stored, limits, warn)) as reader, frozen_heap():
        read = logs.read(reader, position)
        _apply_read(read, conn, logs, table, columns, warehouse, target, job, result)
        result.end = json.dumps(logs.encode(read.end))
        _crash_point("commit")
        logs.confirm(reader, read.end)  # only now may the server recycle the log up to it
    return result


def _refuse_retyped(existing: list, target: TableRef, table: CdcTable, columns) -> None:
    """A source column whose type changed cannot be followed from the log: name it and the fix
    (``existing``: the target's columns, read with the stored position)."""
    from nightshift_core.warehouse.types import plan_schema_change

    incoming = [c for c in columns_from_arrow(source.arrow_schema(columns))]
    try:
        plan_schema_change(
            [dataclasses.replace(c, nullable=True) for c in existing], incoming, table=str(target)
        )
    except SchemaChangeError as exc:
        raise SchemaChangeError(
            f"table {table.name!r}: a source column changed type; change capture cannot convert the "
            f"warehouse's values ({exc}). Reload the table: trigger the sync with full_refresh"
        ) from None


def _apply_read(read, conn, logs: LogSource, table, columns, warehouse, target, job, result) -> None:
    """Fold and apply ``read`` in chunks, each committed with a position a read may restart from: the
    end of its last transaction, or, inside a transaction too big for one chunk (its parts come
    without a position), the boundary before that transaction (a restart re-applies all of it, which
    the per-key apply makes harmless); then the read's end (when it moved) with no rows.

    Memory follows the chunk, not the backlog: changes are folded as they arrive (one entry per key,
    the change itself dropped), and a chunk is applied as soon as a transaction closes past
    ``table.chunk_changes`` (before the reader gathers the next one, itself cut in parts of that size),
    or at that size inside a split transaction. So a run holds under twice that many changes, and the
    reader at most a part (plus, on the binlog, one row event's rows).
    """
    folder = logs.folder(table)  # the read yields this table's changes alone
    safe: Any = read.start  # the last boundary with nothing after it applied
    for change in logs.units(read):  # changes, or blocks of them
        result.changes += folder.add(change)
        if change.closes and change.position is not None:
            safe = change.position
        # a closed transaction, or anywhere inside a split one (its chunks carry the boundary before it)
        if folder.changes >= table.chunk_changes and (change.closes or change.position is None):
            _apply_chunk(
                folder, logs.encode(safe), conn, logs, table, columns, warehouse, target, job, result
            )
    end = logs.encode(read.end)
    if folder.changes:
        _apply_chunk(folder, end, conn, logs, table, columns, warehouse, target, job, result)
    elif json.dumps(end) != (result.end or result.start):  # the log moved past nothing of the table's
        _crash_point("read")
        warehouse.record_position(target, job, SyncState(LOG_CURSOR, position=json.dumps(end)))
        result.chunks += 1
        if result.chunks == 1:
            _crash_point("chunk")


def _apply_chunk(
    folder: Any, position, conn, logs: LogSource, table: CdcTable, columns, warehouse, target, job, result
) -> None:
    """Apply what ``folder`` holds (emptying it) with ``position``, in one warehouse transaction."""
    batch, deleted = _change_batch(folder.take(), conn, logs, table, columns)
    _crash_point("read")
    chunk_job = dataclasses.replace(job, task_id=f"{job.task_id}.cdc{result.chunks}")
    staged = warehouse.stage(chunk_job, target, [batch], batch.schema)
    del batch  # staged: the rows live in the warehouse's staging from here on
    state = SyncState(LOG_CURSOR, position=json.dumps(position))
    published = warehouse.apply_changes(staged, table.primary_key, state=state)
    result.end = state.position
    result.chunks += 1
    result.staged_rows += published.staged_rows
    result.deleted += deleted
    result.added_columns += [c for c in published.added_columns if c not in result.added_columns]
    if result.chunks == 1:
        _crash_point("chunk")


def _change_batch(folded: Any, conn, logs: LogSource, table: CdcTable, columns) -> tuple[pa.RecordBatch, int]:
    """The folded rows (a list of :class:`Folded`, or the log source's columns of them) as one Arrow
    batch with the change columns, and how many are deletes."""
    ts = pa.timestamp("us", tz="UTC")
    if isinstance(folded, list):
        # A delete is written as its key alone: a delete's image holds the key (PostgreSQL's default
        # replica identity) or the old row, and every other column keeps the warehouse's value.
        rows = [
            f.row if f.op == "upsert" else dict(zip(table.primary_key, f.key, strict=True)) for f in folded
        ]
        arrays, missing = logs.batch(conn, rows, columns, table.name)
        del rows
        deletes = pa.array([f.op == "delete" for f in folded], pa.bool_())
        # a tombstone's commit time, NULL for the rest
        deleted_at = pa.array([f.commit_time if f.op == "delete" else None for f in folded], ts)
    else:
        arrays, missing = logs.columns(conn, folded, columns, table.name)
        deletes = pa.array(folded.deletes, pa.bool_())
        deleted_at = pc.if_else(deletes, folded.commit_times, pa.scalar(None, ts))
    # nullable: a delete's row carries its key alone, whatever the source's NOT NULL columns
    schema = pa.schema([f.with_nullable(True) for f in source.arrow_schema(columns)])
    count = len(folded)
    fields, data = list(schema), list(arrays) if count else [pa.array([], f.type) for f in schema]
    if table.deletes == "soft":
        fields.append(pa.field(DELETED_COLUMN, ts))
        data.append(deleted_at)
    fields += [pa.field(CHANGE_OP, pa.string()), pa.field(CHANGE_UNCHANGED, pa.list_(pa.string()))]
    hard = table.deletes == "hard"
    data.append(pc.if_else(deletes, "delete" if hard else "upsert", "upsert").cast(pa.string()))
    data.append(pa.array(missing if count else [], pa.list_(pa.string())))
    deleted = pc.sum(deletes).as_py() or 0
    return pa.RecordBatch.from_arrays(data, schema=pa.schema(fields)), deleted


def _crash_point(name: str) -> None:
    """Tests: die here with SIGKILL (no cleanup, as a killed worker) when CRASH_AT names this point."""
    if os.environ.get(CRASH_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)


__all__: Sequence[str] = ("CdcResult", "CdcTable", "engine_step", "sync_table")
