"""BigQuery warehouse: Parquet load jobs into staging tables, one atomic DML statement to publish.

Job ids are deterministic (see :class:`JobKey`): a retried task first looks for the job
its earlier try submitted and reattaches to it (waits for it, or takes its result)
instead of running it again. BigQuery never reuses a job id, so after a *failed* job the
next free suffix (``_1``, ``_2``...) is used.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from google.api_core.exceptions import Conflict, NotFound
from google.cloud import bigquery

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
from nightshift_core.warehouse.staging import spool_parquet
from nightshift_core.warehouse.types import (
    DELETED_COLUMN,
    Column,
    LogicalType,
    TableRef,
    WarehouseError,
    WriteMode,
    check_identifier,
)

STAGING_PREFIX = "_nightshift_stage_"
SYNC_STATE_TABLE = "_nightshift_sync_state"  # in each target's dataset (a transaction stays in one location)
_SYNC_STATE_SCHEMA = (
    Column("target", "STRING", False), Column("cursor_column", "STRING", False),
    Column("read_until", "TIMESTAMP"), Column("last_value", "INT64"), Column("full_load", "BOOL", False),
    Column("job_id", "STRING"), Column("published_at", "TIMESTAMP", False), Column("position", "STRING"),
)  # fmt: skip
_FROM_BQ: dict[str, LogicalType] = {
    "INTEGER": "INT64", "INT64": "INT64", "FLOAT": "FLOAT64", "FLOAT64": "FLOAT64",
    "NUMERIC": "NUMERIC", "BIGNUMERIC": "BIGNUMERIC", "BOOLEAN": "BOOL", "BOOL": "BOOL",
    "STRING": "STRING", "BYTES": "BYTES", "DATE": "DATE", "DATETIME": "DATETIME", "TIME": "TIME",
    "TIMESTAMP": "TIMESTAMP", "JSON": "JSON",
}  # fmt: skip
_MAX_JOB_ATTEMPTS = 20
# Types BigQuery can cluster a table on (FLOAT64, BYTES, JSON and arrays it cannot).
_CLUSTERABLE = frozenset(
    {"INT64", "STRING", "DATE", "DATETIME", "TIMESTAMP", "BOOL", "NUMERIC", "BIGNUMERIC"}
)


def q(name: str) -> str:
    return f"`{check_identifier(name)}`"


class BigQueryWarehouse(Warehouse):
    engine = "bigquery"

    def __init__(
        self,
        client: bigquery.Client,
        *,
        location: str | None = None,
        use_storage_api: bool = True,
        spool_dir: str | None = None,
    ) -> None:
        self.client = client
        self.project = client.project
        self.location = location or client.location
        self.use_storage_api = use_storage_api
        self.spool_dir = Path(spool_dir or tempfile.gettempdir())

    def _fq(self, table: TableRef) -> str:
        return f"`{self.project}`.{q(table.dataset)}.{q(table.table)}"

    def _ref(self, table: TableRef) -> str:
        return f"{self.project}.{table.dataset}.{table.table}"

    # -- datasets and tables -------------------------------------------------------------
    def ensure_dataset(self, dataset: str) -> None:
        ds = bigquery.Dataset(f"{self.project}.{check_identifier(dataset, 'dataset name')}")
        if self.location:
            ds.location = self.location
        self.client.create_dataset(ds, exists_ok=True)

    def table_exists(self, table: TableRef) -> bool:
        try:
            self.client.get_table(self._ref(table))
        except NotFound:
            return False
        return True

    def get_schema(self, table: TableRef) -> list[Column]:
        try:
            fields = self.client.get_table(self._ref(table)).schema
        except NotFound:
            raise WarehouseError(f"table {table} does not exist in project {self.project}") from None
        return [
            Column(f.name, _FROM_BQ.get(f.field_type, "STRING"), f.mode != "REQUIRED", f.mode == "REPEATED")
            for f in fields
        ]

    def create_table(
        self,
        table: TableRef,
        columns: Sequence[Column],
        *,
        cluster_by: Sequence[str] = (),
        partition_by: str | None = None,
    ) -> None:
        """Create ``table`` if missing, clustered on ``cluster_by`` (the merge key: at most its first
        four columns of a type BigQuery clusters on) and day-partitioned on ``partition_by`` (a DATE,
        DATETIME or TIMESTAMP column), so a MERGE bounded to a key range reads only those blocks."""
        schema = [_field(c) for c in columns]
        bq_table = bigquery.Table(self._ref(table), schema=schema)
        types = {c.name.lower(): c for c in columns}
        clustered = []
        for name in cluster_by:  # clustering keeps a prefix of the key: stop at the first it cannot take
            column = types.get(name.lower())
            if column is None or column.repeated or column.type not in _CLUSTERABLE or len(clustered) == 4:
                break
            clustered.append(column.name)
        if clustered:
            bq_table.clustering_fields = clustered
        if partition_by is not None:
            column = types.get(partition_by.lower())
            if column is None or column.repeated or column.type not in ("DATE", "DATETIME", "TIMESTAMP"):
                found = "missing" if column is None else column.type
                raise WarehouseError(
                    f"{table}: partition_by column {partition_by!r} is {found}; BigQuery partitions a table "
                    "by a DATE, DATETIME or TIMESTAMP column: name one (whose value never changes for a row, "
                    "such as a creation date) or remove partition_by"
                )
            bq_table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=column.name
            )
        self.client.create_table(bq_table, exists_ok=True)

    def add_columns(self, table: TableRef, columns: Sequence[Column]) -> None:
        if not columns:
            return
        # DDL rather than a schema patch: one statement, and the emulator applies it too.
        for c in columns:  # one statement per column: the emulator takes one ALTER at a time
            sql = f"ALTER TABLE {self._fq(table)} ADD COLUMN IF NOT EXISTS {q(c.name)} {_ddl(c)}"
            self.client.query(sql, location=self.location).result()

    def drop_table(self, table: TableRef) -> None:
        self.client.delete_table(self._ref(table), not_found_ok=True)

    # -- load and publish ----------------------------------------------------------------
    def stage(
        self, job: JobKey, target: TableRef, batches: Iterable[pa.RecordBatch], schema: pa.Schema
    ) -> StagedTable:
        columns = self.arrow_columns(schema)
        load_id = job.job_id("stage", str(target))
        staging = TableRef(target.dataset, f"{STAGING_PREFIX}{target.table}_{load_id[-24:]}")
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        # A private (0700) folder with an unpredictable name: the spool folder may be the shared
        # temp folder, where a fixed name could be read, or planted as a symlink, by another user.
        spool = tempfile.TemporaryDirectory(prefix="nightshift-spool-", dir=self.spool_dir)
        path = Path(spool.name) / f"{load_id}.parquet"
        try:
            rows, digest = spool_parquet(batches, schema, path, convert=_bigquery_friendly)
            self.ensure_dataset(target.dataset)
            config = bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.PARQUET,
                write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
                schema=[_field(Column(c.name, c.type, True, c.repeated)) for c in columns],
            )
            config.parquet_options = bigquery.ParquetOptions()
            # Parquet LISTs load into REPEATED columns (their element, not a wrapper record)
            config.parquet_options.enable_list_inference = any(c.repeated for c in columns)

            def submit(job_id: str) -> bigquery.LoadJob:
                with open(path, "rb") as fh:
                    return self.client.load_table_from_file(
                        fh, self._ref(staging), job_config=config, job_id=job_id, location=self.location
                    )

            self._run_job(f"{load_id}_{digest[:16]}", submit)
        finally:
            spool.cleanup()
        return StagedTable(
            target=target, name=f"{self._ref(staging)}#{digest}", job=job, rows=rows, columns=columns
        )

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
        self.check_publish_args(staged, mode, key, partition, state)
        ref, _, digest = staged.name.rpartition("#")
        staging = "`" + ref.replace("`", "") + "`"
        target = staged.target
        job_id = staged.job.job_id("publish", str(target), mode, ",".join(key), digest)
        if mode == "append":
            # Appending twice would duplicate rows: an earlier try's finished job means done.
            done = self._finished_job(job_id)
            if done is not None:
                self.client.delete_table(ref, not_found_ok=True)
                return PublishResult(target, mode, done.job_id, staged.rows, reattached=True)
        try:
            self.client.get_table(ref)
        except NotFound:
            raise WarehouseError(
                f"{target}: staging table {ref} is gone; re-run the task to stage again"
            ) from None
        if not self.table_exists(target):  # created with its layout; prepare_target evolves it later
            self.ensure_dataset(target.dataset)
            self.create_table(
                target, staged.columns, cluster_by=key if mode == "merge" else (), partition_by=partition_by
            )
        added = self.prepare_target(target, staged.columns)
        names = [c.name for c in staged.columns]
        cols = ", ".join(q(n) for n in names)
        params: list[Any] = []
        if mode == "merge":
            keys = ", ".join(q(k) for k in key)
            dup = self._rows(
                f"SELECT {keys}, COUNT(*) AS n FROM {staging} GROUP BY {keys} HAVING COUNT(*) > 1 LIMIT 5"
            )
            if dup:
                raise DuplicateKeyError(
                    f"{target}: staged rows repeat the merge key {list(key)}, e.g. {dup}; "
                    "fix the primary key in the sync definition or deduplicate the source"
                )
            on = " AND ".join(f"T.{q(k)} = S.{q(k)}" for k in key)
            bounds, params = self._merge_bounds(target, staging, key[0], staged.rows)
            on += bounds
            update = ", ".join(
                f"{q(n)} = S.{q(n)}" for n in names if n.lower() not in {k.lower() for k in key}
            )
            sql = (
                f"MERGE {self._fq(target)} T USING {staging} S ON {on} "
                + (f"WHEN MATCHED THEN UPDATE SET {update} " if update else "")
                + f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({', '.join('S.' + q(n) for n in names)})"
            )
        elif mode == "replace":
            # One MERGE both deletes the old rows and inserts the new: a single atomic statement.
            scope = ""
            if partition is not None:
                col = q(partition.column)
                params = [_param("p_start", partition.start), _param("p_end", partition.end)]
                outside = self._rows(
                    f"SELECT COUNT(*) AS n FROM {staging} WHERE {col} IS NULL "
                    f"OR NOT ({col} >= @p_start AND {col} < @p_end)",
                    params,
                )[0][0]
                if outside:
                    raise WarehouseError(
                        f"{target}: {outside} staged row(s) fall outside the partition "
                        f"{partition.column} in [{partition.start}, {partition.end}); nothing was written"
                    )
                scope = f" AND T.{col} >= @p_start AND T.{col} < @p_end"
            sql = (
                f"MERGE {self._fq(target)} T USING {staging} S ON FALSE "
                f"WHEN NOT MATCHED BY SOURCE{scope} THEN DELETE "
                f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({', '.join('S.' + q(n) for n in names)})"
            )
        else:
            sql = f"INSERT INTO {self._fq(target)} ({cols}) SELECT {cols} FROM {staging}"
        if state is not None:
            # One multi-statement transaction: the rows and their state commit together or not at all.
            # Values are inlined: a script takes no query parameters on every BigQuery front end.
            state_table = self._state_table(target)
            for p in params:  # the partition bounds: scalars (a literal's backslashes stay as they are)
                text = _literal(p.value)
                sql = re.sub(rf"@{p.name}\b", lambda _, text=text: text, sql)
            params = []
            last = (
                "NULL"
                if state.read_until is not None or state.position is not None
                else f"(SELECT MAX({q(state.cursor)}) FROM {staging})"
            )
            sql = self._with_state(sql, state_table, target, state, job_id, last)
        config = bigquery.QueryJobConfig(query_parameters=params)
        finished = self._run_job(
            job_id,
            lambda jid: self.client.query(
                sql, job_config=config, job_id=jid, location=self.location, job_retry=None
            ),
            rerun_done=mode != "append",
        )
        self.client.delete_table(ref, not_found_ok=True)
        return PublishResult(target, mode, finished.job_id, staged.rows, added_columns=added)

    def _merge_bounds(
        self, target: TableRef, staging: str, first_key: str, rows: int
    ) -> tuple[str, list[Any]]:
        """The part of a MERGE's ON clause that bounds the target to what the staged rows can match.

        A target row can only match a staged row whose key equals its own, so restricting the target
        to the staged keys' range of the first key column (and, on a partitioned target, to the staged
        rows' partition range) changes no result: it lets BigQuery skip the clustered blocks and the
        partitions outside it instead of reading the whole table. Partition bounds assume the
        partitioning column never changes for a row, and are left out when a staged row has no value
        there (a tombstone with only its key).
        """
        if rows == 0:
            return " AND FALSE", []  # nothing staged: nothing can match, read nothing
        field = (
            self.client.get_table(self._ref(target)).time_partitioning or bigquery.TimePartitioning()
        ).field
        k = q(first_key)
        select = f"MIN({k}), MAX({k})"
        if field:
            p = q(field)
            select += f", MIN({p}), MAX({p}), COUNTIF({p} IS NULL)"
        found = self._rows(f"SELECT {select} FROM {staging}")[0]  # noqa: S608 - quoted identifiers
        if found[0] is None:
            return "", []
        sql = f" AND T.{k} BETWEEN @k_lo AND @k_hi"
        params = [_param("k_lo", found[0]), _param("k_hi", found[1])]
        if field and not found[4] and found[2] is not None:
            sql += f" AND T.{p} BETWEEN @p_lo AND @p_hi"
            params += [_param("p_lo", found[2]), _param("p_hi", found[3])]
        return sql, params

    def _state_table(self, target: TableRef) -> TableRef:
        """The dataset's state table, created (or given the columns added since) when needed."""
        state_table = TableRef(target.dataset, SYNC_STATE_TABLE)
        if not self.table_exists(state_table):
            self.create_table(state_table, _SYNC_STATE_SCHEMA)
        else:
            self.prepare_target(state_table, _SYNC_STATE_SCHEMA)
        return state_table

    def _with_state(
        self,
        sql: str,
        state_table: TableRef,
        target: TableRef,
        state: SyncState,
        job_id: str,
        last: str = "NULL",
    ) -> str:
        """``sql`` and the state's record in one multi-statement transaction: both commit or neither.
        Values are inlined: a script takes no query parameters on every BigQuery front end."""
        record = self._state_record(state_table, target, state, job_id, last)
        return f"BEGIN TRANSACTION;\n{sql};\n{record};\nCOMMIT TRANSACTION;"

    def _state_record(
        self, state_table: TableRef, target: TableRef, state: SyncState, job_id: str, last: str = "NULL"
    ) -> str:
        """The INSERT of the state's record, values inlined."""
        return (
            f"INSERT INTO {self._fq(state_table)} ({SYNC_STATE_COLUMNS}, position) SELECT {_literal(str(target))}, "
            f"{_literal(state.cursor)}, CAST({_literal(state.read_until)} AS TIMESTAMP), CAST({last} AS INT64), "
            f"{_literal(state.full_load)}, {_literal(job_id)}, CURRENT_TIMESTAMP(), {_literal(state.position)}"
        )

    def apply_changes(
        self, staged: StagedTable, key: Sequence[str], *, state: SyncState | None = None
    ) -> PublishResult:
        ref, _, digest = staged.name.rpartition("#")
        staging = "`" + ref.replace("`", "") + "`"
        target = staged.target
        job_id = staged.job.job_id("apply", str(target), ",".join(key), digest)
        try:
            self.client.get_table(ref)
        except NotFound:
            raise WarehouseError(
                f"{target}: staging table {ref} is gone; re-run the task to stage again"
            ) from None
        data = [c for c in staged.columns if c.name not in CHANGE_COLUMNS]
        if not self.table_exists(target):
            self.ensure_dataset(target.dataset)
            self.create_table(target, data, cluster_by=key)
        added = self.prepare_target(target, data)
        names = [c.name for c in data]
        keys = {k.lower() for k in key}
        on = " AND ".join(f"T.{q(k)} = S.{q(k)}" for k in key)
        bounds, params = self._merge_bounds(target, staging, key[0], staged.rows)
        # a soft delete of a key the target never had (inserted and deleted between two reads) leaves nothing
        fresh = f" AND S.{q(DELETED_COLUMN)} IS NULL" if DELETED_COLUMN in names else ""
        # A column the log image lacks keeps the target's value; a column the source dropped is left alone.
        update = ", ".join(
            f"{q(n)} = IF({_literal(n)} IN UNNEST(S.{q(CHANGE_UNCHANGED)}), T.{q(n)}, S.{q(n)})"
            for n in names
            if n.lower() not in keys
        )
        sql = (
            f"MERGE {self._fq(target)} T USING {staging} S ON {on}{bounds} "
            f"WHEN MATCHED AND S.{q(CHANGE_OP)} = 'delete' THEN DELETE "
            + (f"WHEN MATCHED THEN UPDATE SET {update} " if update else "")
            + f"WHEN NOT MATCHED AND S.{q(CHANGE_OP)} != 'delete'{fresh} THEN INSERT ({', '.join(q(n) for n in names)}) "
            f"VALUES ({', '.join('S.' + q(n) for n in names)})"
        )
        if state is not None:
            for p in params:  # scripts take no parameters: the bounds inlined
                text = _literal(p.value)
                sql = re.sub(rf"@{p.name}\b", lambda _, text=text: text, sql)
            params = []
            sql = self._with_state(sql, self._state_table(target), target, state, job_id)
        config = bigquery.QueryJobConfig(query_parameters=params)
        finished = self._run_job(
            job_id,
            lambda jid: self.client.query(
                sql, job_config=config, job_id=jid, location=self.location, job_retry=None
            ),
            rerun_done=True,
        )
        self.client.delete_table(ref, not_found_ok=True)
        return PublishResult(target, "merge", finished.job_id, staged.rows, added_columns=added)

    def record_position(self, target: TableRef, job: JobKey, state: SyncState) -> str:
        if state.position is None:
            raise WarehouseError(f"{target}: record_position needs a state with a position")
        job_id = job.job_id("position", str(target), state.position)
        # one INSERT statement: atomic on its own, no script and no read of the target
        sql = self._state_record(self._state_table(target), target, state, job_id)
        finished = self._run_job(
            job_id,
            lambda jid: self.client.query(sql, job_id=jid, location=self.location, job_retry=None),
        )
        return finished.job_id

    def _states(self, target: TableRef, cursor: str, select: str, rest: str = "") -> list[dict] | None:
        """``select`` over ``target``'s states of ``cursor`` since its last full load (None: no state table)."""
        state_table = self._fq(TableRef(target.dataset, SYNC_STATE_TABLE))
        sql = (
            f"SELECT {select} FROM {state_table} "  # noqa: S608
            "WHERE target = @target AND cursor_column = @cursor AND published_at >= COALESCE("
            f"(SELECT MAX(published_at) FROM {state_table} WHERE target = @target AND full_load), "
            f"TIMESTAMP '0001-01-01 00:00:00+00'){rest}"
        )
        try:
            return self.query(sql, {"target": str(target), "cursor": cursor}).to_pylist()
        except NotFound:
            return None  # no state table in this dataset yet

    def log_position(self, target: TableRef) -> str | None:
        try:
            rows = self._states(
                target, LOG_CURSOR, "position", " AND position IS NOT NULL ORDER BY published_at DESC LIMIT 1"
            )
        except Exception as exc:  # a state table from before positions existed
            if "position" not in str(exc):
                raise
            return None
        return rows[0]["position"] if rows else None

    def sync_state(self, target: TableRef, cursor: str) -> dt.datetime | int | None:
        rows = self._states(target, cursor, "MAX(read_until) AS read_until, MAX(last_value) AS last_value")
        row = rows[0] if rows else {}
        if row.get("read_until") is not None:
            return row["read_until"].astimezone(dt.UTC)
        return None if row.get("last_value") is None else int(row["last_value"])

    def mark_missing_deleted(
        self, staged_keys: StagedTable, key: Sequence[str], *, column: str, at: Any, within=None
    ) -> int:
        ref = staged_keys.name.rpartition("#")[0]
        target = staged_keys.target
        if column.lower() not in {c.name.lower() for c in self.get_schema(target)}:
            self.add_columns(target, [Column(column, "TIMESTAMP")])
        on = " AND ".join(f"S.{q(k)} = T.{q(k)}" for k in key)
        sql = (
            f"UPDATE {self._fq(target)} T SET {q(column)} = @at WHERE T.{q(column)} IS NULL "
            f"AND NOT EXISTS (SELECT 1 FROM `{ref}` S WHERE {on})" + self.within_sql("T", within, q)
        )
        config = bigquery.QueryJobConfig(query_parameters=[_param("at", at)])
        job = self.client.query(sql, job_config=config, location=self.location)
        job.result()
        self.client.delete_table(ref, not_found_ok=True)
        return int(job.num_dml_affected_rows or 0)

    def unmatched_keys(
        self, staged_pairs: StagedTable, key: Sequence[str], cursor: str, *, before: Any = None
    ) -> pa.Table:
        target = staged_pairs.target
        exists = self.table_exists(target)
        deleted = exists and DELETED_COLUMN in {c.name for c in self.get_schema(target)}
        bounded = before is not None and exists
        sql = self.unmatched_sql(f"`{staged_pairs.name.rpartition('#')[0]}`", self._fq(target) if exists else None,
                                 key, cursor, quote=q, deleted=deleted, before="@before" if bounded else None)  # fmt: skip
        return self.query(sql, {"before": before} if bounded else None)

    def bucket_checksums(
        self, target: TableRef, key: str, cursor: str, *, lo: int, width: int, before: Any = None
    ) -> dict[int, tuple[int, int]]:
        if not self.table_exists(target):
            return {}
        types = {c.name: c.type for c in self.get_schema(target)}
        value = {
            "DATETIME": f'UNIX_MICROS(TIMESTAMP({q(cursor)}, "UTC"))',
            "TIMESTAMP": f"UNIX_MICROS({q(cursor)})",
        }
        expr = value.get(types[cursor], q(cursor))
        where = self.live_rows_where(types, cursor, "@before" if before is not None else None, q)
        sql = (
            f"SELECT DIV(({q(key)} - {int(lo)}), {int(width)}) AS b, COUNT(*) AS n, "  # noqa: S608
            # INT64 sums of seconds and of the microsecond remainders cannot overflow (a sum of micros can)
            f"SUM(DIV({expr}, 1000000)) AS sec, SUM(MOD({expr}, 1000000)) AS us FROM {self._fq(target)}{where} "
            "GROUP BY b"
        )
        rows = self.query(sql, {"before": before} if before is not None else None).to_pylist()
        return {int(r["b"]): (int(r["n"]), int(r["sec"] or 0) * 1_000_000 + int(r["us"] or 0)) for r in rows}

    def discard(self, staged: StagedTable) -> None:
        self.client.delete_table(staged.name.rpartition("#")[0], not_found_ok=True)

    def drop_staging(self, older_than_seconds: float = 0) -> list[str]:
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than_seconds)
        removed = []
        for ds in self.client.list_datasets():
            for item in self.client.list_tables(ds.dataset_id):
                created = item.created or cutoff
                if item.table_id.startswith(STAGING_PREFIX) and created <= cutoff:
                    self.client.delete_table(item.reference, not_found_ok=True)
                    removed.append(f"{ds.dataset_id}.{item.table_id}")
        return removed

    # -- jobs ----------------------------------------------------------------------------
    def _finished_job(self, base_id: str) -> bigquery.job._AsyncJob | None:
        """The successful job an earlier try ran under ``base_id`` (or a suffix), if any."""
        for attempt in range(_MAX_JOB_ATTEMPTS):
            job_id = base_id if attempt == 0 else f"{base_id}_{attempt}"
            try:
                job = self.client.get_job(job_id, location=self.location)
            except NotFound:
                return None
            if job.state != "DONE":
                job.result()
            if job.error_result is None:
                return job
        return None

    def _run_job(self, base_id: str, submit, *, rerun_done: bool = False) -> bigquery.job._AsyncJob:
        """Reattach to ``base_id``'s job if it runs (or ran); else submit under the next free id.

        ``rerun_done``: a job that already finished is run again under a new id (for
        idempotent statements, whose target may have changed since), while a job that is
        still running is waited for, never started twice.
        """
        for attempt in range(_MAX_JOB_ATTEMPTS):
            job_id = base_id if attempt == 0 else f"{base_id}_{attempt}"
            try:
                job = self.client.get_job(job_id, location=self.location)
                if rerun_done and job.state == "DONE":
                    continue
            except NotFound:
                try:
                    job = submit(job_id)
                except Conflict:  # another try submitted it just now: attach to it
                    job = self.client.get_job(job_id, location=self.location)
            if job.state != "DONE":
                try:
                    job.result()
                except Exception:
                    job.reload()
            if job.error_result is None:
                return job
            if not _retryable(job.error_result):
                raise WarehouseError(f"BigQuery job {job_id} failed: {job.error_result.get('message')}")
        raise WarehouseError(f"BigQuery job {base_id} failed {_MAX_JOB_ATTEMPTS} times")

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        job = self.client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=list(params)))
        return [tuple(row.values()) for row in job.result()]

    # -- read ----------------------------------------------------------------------------
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        return self._query(sql, params).to_arrow(create_bqstorage_client=self.use_storage_api)

    def query_batches(
        self, sql: str, params: Mapping[str, Any] | None = None, batch_size: int = 65536
    ) -> Iterator[pa.RecordBatch]:
        rows = self._query(sql, params, page_size=batch_size)
        for batch in rows.to_arrow_iterable():
            yield from batch.to_batches(max_chunksize=batch_size) if isinstance(batch, pa.Table) else [batch]

    def _query(self, sql: str, params: Mapping[str, Any] | None, page_size: int | None = None):
        from nightshift_core.warehouse.sql import bind_names

        config = bigquery.QueryJobConfig(
            query_parameters=[_param(k, v) for k, v in bind_names(params).items()]
        )
        return self.client.query(sql, job_config=config, location=self.location).result(page_size=page_size)

    def close(self) -> None:
        self.client.close()


def _retryable(error: dict | None) -> bool:
    """A failed job is worth a new id only for transient reasons."""
    return bool(error) and error.get("reason") in {
        "backendError",
        "internalError",
        "rateLimitExceeded",
        "jobInternalError",
    }


def _field(column: Column) -> bigquery.SchemaField:
    mode = "REPEATED" if column.repeated else "NULLABLE" if column.nullable else "REQUIRED"
    return bigquery.SchemaField(column.name, column.type, mode=mode)


def _bigquery_friendly(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Arrow types BigQuery's Parquet loader cannot take as they are."""
    arrays, fields, changed = list(batch.columns), list(batch.schema), False
    for i, f in enumerate(batch.schema):
        if pa.types.is_uint64(f.type):  # NUMERIC column; Parquet UINT64 is not accepted
            arrays[i], fields[i], changed = (
                pc.cast(arrays[i], pa.decimal128(38, 9)),
                f.with_type(pa.decimal128(38, 9)),
                True,
            )
        elif isinstance(f.type, pa.BaseExtensionType) and f.type.extension_name == "arrow.json":
            storage = arrays[i].storage
            arrays[i], fields[i], changed = storage, f.with_type(storage.type), True
    if not changed:
        return batch
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _param(name: str, value: Any) -> bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter:
    if isinstance(value, (list, tuple)):
        kind = _param_type(value[0]) if value else "STRING"
        return bigquery.ArrayQueryParameter(name, kind, list(value))
    return bigquery.ScalarQueryParameter(name, _param_type(value), value)


def _literal(value: Any) -> str:
    """A GoogleSQL literal for a value of :func:`_param_type`'s kinds (for scripts, which take no parameters)."""
    if value is None:
        return "NULL"
    kind = _param_type(value)
    if kind == "BOOL":
        return "TRUE" if value else "FALSE"
    if kind == "INT64":
        return str(int(value))
    if kind == "FLOAT64":
        return f"CAST('{value!r}' AS FLOAT64)"  # also inf and nan
    if kind == "STRING":
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    if kind == "TIMESTAMP":
        return f"TIMESTAMP '{value.astimezone(dt.UTC).isoformat(sep=' ', timespec='microseconds')}'"
    if kind == "DATETIME":
        return f"DATETIME '{value.isoformat(sep=' ', timespec='microseconds')}'"
    if kind == "TIME":
        return f"TIME '{value.isoformat()}'"
    if kind in ("NUMERIC", "BIGNUMERIC"):
        return f"{kind} '{value}'"
    if kind == "DATE":
        return f"DATE '{value.isoformat()}'"
    raise WarehouseError(f"no GoogleSQL literal for {type(value).__name__} value {value!r}")


def _param_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, Decimal):
        return (
            "NUMERIC"
            if abs(value.as_tuple().exponent) <= 9 and len(value.as_tuple().digits) <= 38
            else "BIGNUMERIC"
        )
    if isinstance(value, bytes):
        return "BYTES"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP" if value.tzinfo else "DATETIME"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, dt.time):
        return "TIME"
    return "STRING"


def _ddl(column: Column) -> str:
    """Type for DDL. NUMERIC is spelled with its full (38, 9), which BigQuery treats as plain
    NUMERIC; the emulator would otherwise keep only 3 decimals. REPEATED is an ARRAY."""
    kind = "NUMERIC(38, 9)" if column.type == "NUMERIC" else column.type
    return f"ARRAY<{kind}>" if column.repeated else kind
