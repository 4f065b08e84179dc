"""SqlToWarehouseOperator: one source table -> the warehouse, streaming, exact, idempotent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator

from nightshift.operators._fail_fast import fail_fast

if TYPE_CHECKING:
    from airflow.sdk import Context

    from nightshift_core.sync.engine import RunFacts, TableSpec


class SqlToWarehouseOperator(BaseOperator):
    """Copy ``table`` from a MySQL/MariaDB, PostgreSQL or SQLite connection into the warehouse.

    The flow is :class:`nightshift_core.sync.engine.TableSyncEngine`'s; this operator turns its
    arguments and the run's context into the engine's inputs, opens the source connection (its
    dialect from the connection type) and the warehouse, and returns the engine's small result.

    ``mode="full"`` replaces the target with the whole table. ``mode="incremental"`` reads
    rows whose ``cursor`` lies in a window and MERGEs them on ``primary_key``. The window's
    lower bound is the earlier of the data interval start and the state the previous read left
    (how far it read, on the source's clock; committed in the same transaction as its rows),
    minus ``lag``; its upper bound is the data interval end when the run has one. An integer
    cursor reads past the highest value read so far. A target without a state (loaded by an
    older version) starts from its own ``MAX(cursor)``. ``full_refresh=True`` forces a full
    load (and resets the state).
    ``detect_deletes=True`` (incremental, small tables) also diffs the primary keys and sets
    ``_nightshift_deleted_at`` on rows the source no longer has (a soft delete).
    ``mode="cdc"`` reads the source's change log (:mod:`nightshift_core.sync.cdc`): a snapshot on the
    first run, the log after it; a source delete marks the row (``deletes="soft"``) or removes it.

    Returns small metadata (row counts, window) for the quality gate, never data.
    """

    template_fields: Sequence[str] = ("full_refresh", "only_tables", "reconcile")
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        source_conn_id: str,
        table: str,
        dataset: str,
        primary_key: Sequence[str],
        target_table: str | None = None,
        mode: str = "full",
        cursor: str | None = None,
        lag: dt.timedelta = dt.timedelta(0),
        exclude: Sequence[str] = (),
        batch_rows: int = 50_000,
        full_refresh: bool | str = False,
        only_tables: str | Sequence[str] = "",
        detect_deletes: bool = False,
        warehouse_conn_id: str = "nightshift_warehouse",
        definition: str = "",
        source_timezone: str | None = None,
        reconcile: bool | str = False,
        reconcile_every: dt.timedelta | None = None,
        also_synced: Sequence[str] = (),
        reader: str = "auto",
        read_partitions: int = 1,
        deletes: str = "soft",
        partition_by: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_conn_id = source_conn_id
        self.table = table
        self.dataset = dataset
        self.primary_key = list(primary_key)
        self.target_table = target_table or table
        self.mode = mode
        self.cursor = cursor
        self.lag = lag
        self.exclude = list(exclude)
        self.batch_rows = batch_rows
        self.full_refresh = full_refresh
        self.only_tables = only_tables
        self.detect_deletes = detect_deletes
        self.warehouse_conn_id = warehouse_conn_id
        self.definition = definition  # the sync file this task comes from, named in errors
        self.source_timezone = source_timezone  # zone of the source's DATETIME values (None: UTC)
        self.reconcile = reconcile  # the run's Param: reconcile now
        self.reconcile_every = reconcile_every  # None: every run; 0: only on demand; else e.g. 1 day
        self.also_synced = list(also_synced)  # the definition's other source tables (partition check)
        if reader not in ("auto", "arrow", "dbapi"):
            raise ValueError(f"reader must be auto, arrow or dbapi, got {reader!r}")
        self.reader = reader  # auto: the Arrow reader where it reads the table exactly, else DB-API
        self.read_partitions = max(1, int(read_partitions))  # Arrow reader connections (key ranges)
        self.deletes = deletes  # mode="cdc": a source delete marks the row (soft) or removes it (hard)
        self.partition_by = partition_by  # the column a target the sync creates is day-partitioned by

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any] | None:
        from airflow.sdk.exceptions import AirflowSkipException

        from nightshift.hooks.warehouse import WarehouseHook
        from nightshift_core.sync import dialects
        from nightshift_core.sync.engine import TableSyncEngine

        selected = self.only_tables
        if isinstance(selected, str):
            selected = [t for t in selected.split(",") if t.strip()]
        if selected and self.table not in selected:
            raise AirflowSkipException(f"table {self.table!r} not in this run's 'tables' Param {selected}")
        connection = BaseHook.get_connection(self.source_conn_id)
        dialect = dialects.for_connection(connection.conn_type)
        conn = BaseHook.get_hook(self.source_conn_id).get_conn()
        try:
            with WarehouseHook(self.warehouse_conn_id).get_conn() as warehouse:
                engine = TableSyncEngine(
                    self.spec(), dialect, conn, warehouse, connection=connection, log=self.log
                )
                return engine.run(self.facts(context))
        finally:
            conn.close()

    def spec(self) -> TableSpec:
        """This task's table, as the engine takes it."""
        from nightshift_core.sync.engine import TableSpec

        return TableSpec(
            table=self.table, dataset=self.dataset, primary_key=tuple(self.primary_key),
            target_table=self.target_table, mode=self.mode, cursor=self.cursor, lag=self.lag,
            exclude=tuple(self.exclude), batch_rows=self.batch_rows, detect_deletes=self.detect_deletes,
            definition=self.definition, source_timezone=self.source_timezone,
            reconcile_every=self.reconcile_every, also_synced=tuple(self.also_synced), reader=self.reader,
            read_partitions=self.read_partitions, deletes=self.deletes, partition_by=self.partition_by,
        )  # fmt: skip

    def facts(self, context: Context) -> RunFacts:
        """The run as the engine sees it: its interval, when deletes are stamped, the run's Params."""
        from nightshift.hooks.warehouse import job_key
        from nightshift_core.sync.engine import RunFacts

        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        run_after = getattr(context.get("dag_run"), "run_after", None)
        return RunFacts(
            job=job_key(context), start=start, end=end, run_at=end or run_after or dt.datetime.now(dt.UTC),
            full_refresh=_flag(self.full_refresh), reconcile=_flag(self.reconcile),
        )  # fmt: skip


def _flag(value: bool | str) -> bool:
    """A template field that renders to text: 'True'/'1' (any case) or True."""
    return str(value).lower() in ("true", "1")
