"""SqlToWarehouseOperator: one source table -> the warehouse, streaming, exact, idempotent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator

from nightshift.operators._fail_fast import fail_fast
from nightshift_core.errors import SourceDefinitionError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from nightshift_core.warehouse import Warehouse


DELETED_COLUMN = "_nightshift_deleted_at"


class SqlToWarehouseOperator(BaseOperator):
    """Copy ``table`` from a MySQL/MariaDB, PostgreSQL or SQLite connection into the warehouse.

    ``mode="full"`` replaces the target with the whole table. ``mode="incremental"`` reads
    rows whose ``cursor`` lies in a window and MERGEs them on ``primary_key``. The window's
    lower bound is the earlier of the data interval start and the target's own watermark
    (``MAX(cursor)``, committed together with the data), minus ``lag``; its upper bound is
    the data interval end when the run has one. ``full_refresh=True`` forces a full load.
    ``detect_deletes=True`` (incremental, small tables) also diffs the primary keys and sets
    ``_nightshift_deleted_at`` on rows the source no longer has (a soft delete).

    Returns small metadata (row counts, window) for the quality gate, never data.
    """

    template_fields: Sequence[str] = ("full_refresh", "only_tables")
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

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any] | None:
        from airflow.sdk.exceptions import AirflowSkipException

        from nightshift.hooks.warehouse import WarehouseHook, job_key
        from nightshift_core.sync import source
        from nightshift_core.warehouse import TableRef

        selected = self.only_tables
        if isinstance(selected, str):
            selected = [t for t in selected.split(",") if t.strip()]
        if selected and self.table not in selected:
            raise AirflowSkipException(f"table {self.table!r} not in this run's 'tables' Param {selected}")
        dialect = source.dialect_for(BaseHook.get_connection(self.source_conn_id).conn_type)
        conn = BaseHook.get_hook(self.source_conn_id).get_conn()
        try:
            source.prepare_session(conn, dialect)
            columns = self._describe(conn, dialect)
            missing = set(self.primary_key) - {c.name for c in columns}
            if missing:
                raise SourceDefinitionError(
                    f"{self._where()}table {self.table!r}: primary key column(s) {sorted(missing)} not found in "
                    "the source (or excluded); fix primary_key (or exclude) in the sync definition"
                )
            target = TableRef(self.dataset, self.target_table)
            with WarehouseHook(self.warehouse_conn_id).get_conn() as warehouse:
                self._refuse_dropped_columns(warehouse, target, columns)
                full = self.mode == "full" or str(self.full_refresh).lower() in ("true", "1")
                where, params, window = "", [], None
                if not full:
                    lower, upper = self._window(warehouse, target, columns, context)
                    column, mark = source.quote(dialect, self.cursor), source.placeholder(dialect)
                    conditions = []
                    if lower is not None:
                        conditions.append(f"{column} >= {mark}")
                        params.append(source.bind(dialect, lower))
                    if upper is not None:
                        conditions.append(f"{column} < {mark}")
                        params.append(source.bind(dialect, upper))
                    where = " AND ".join(conditions)
                    window = {"cursor": self.cursor, "from": _text(lower), "to": _text(upper)}
                batches = source.extract(
                    conn, dialect, self.table, columns, where=where, params=params, batch_rows=self.batch_rows
                )
                staged = warehouse.stage(job_key(context), target, batches, source.arrow_schema(columns))
                result = warehouse.publish(staged, "replace" if full else "merge", key=self.primary_key)
                marked = None
                if self.detect_deletes and not full:
                    marked = self._mark_deleted(conn, dialect, warehouse, target, columns, context)
            source_rows = source.scalar(
                conn,
                f"SELECT COUNT(*) FROM {source.quote(dialect, self.table)}"  # noqa: S608 - validated identifier
                + (f" WHERE {where}" if where else ""),
                params,
            )
        finally:
            conn.close()
        if result.added_columns:
            self.log.warning(
                "%s: new source column(s) added to the warehouse: %s", target, result.added_columns
            )
        self.log.info("%s: %s rows %s (source count in window: %s)", target, result.staged_rows,
                      "replaced" if full else "merged", source_rows)  # fmt: skip
        return {
            "source_table": self.table,
            "target": str(target),
            "mode": "full" if full else "incremental",
            "staged_rows": result.staged_rows,
            "source_rows": source_rows,
            "window": window,
            "added_columns": list(result.added_columns),
            "marked_deleted": marked,
        }

    def _where(self) -> str:
        return f"sync definition {self.definition}, " if self.definition else ""

    def _describe(self, conn: Any, dialect: str) -> list:
        """The source columns minus ``exclude`` (dropped before type mapping); a type with no exact
        mapping fails naming the file, table, column and the YAML change that skips it."""
        from nightshift_core.sync import source
        from nightshift_core.warehouse.types import UnsupportedTypeError

        try:
            return source.describe(conn, dialect, self.table, exclude=self.exclude)
        except source.UnsupportedColumnError as exc:
            value = "[" + ", ".join([*self.exclude, exc.column]) + "]"
            where = self.definition or "the sync definition"
            raise UnsupportedTypeError(
                f"{self._where()}{exc}. Nothing was read. To skip the column, set `exclude: {value}` on "
                f"table {self.table!r} in {where} (its entry under `tables:`, e.g. "
                f"`- {{name: {self.table}, ..., exclude: {value}}}`); or cast it to a supported type in a "
                "view and sync the view"
            ) from None

    def _mark_deleted(self, conn, dialect, warehouse: Warehouse, target, columns, context: Context) -> int:
        """Primary-key diff: target rows whose key the source no longer has get a deletion time."""
        import dataclasses

        from nightshift.hooks.warehouse import job_key
        from nightshift_core.sync import source

        keys = [c for c in columns if c.name in self.primary_key]
        batches = source.extract(conn, dialect, self.table, keys, batch_rows=self.batch_rows)
        job = job_key(context)
        job = dataclasses.replace(job, task_id=f"{job.task_id}.keys")
        staged = warehouse.stage(job, target, batches, source.arrow_schema(keys))
        dag_run = context.get("dag_run")
        run_at = (
            context.get("data_interval_end") or getattr(dag_run, "run_after", None) or dt.datetime.now(dt.UTC)
        )
        marked = warehouse.mark_missing_deleted(staged, self.primary_key, column=DELETED_COLUMN, at=run_at)
        self.log.info("%s: %s row(s) deleted in the source, marked in %s", target, marked, DELETED_COLUMN)
        return marked

    def _refuse_dropped_columns(self, warehouse: Warehouse, target, columns) -> None:
        """A column the warehouse has but the source lost would silently turn NULL: stop instead."""
        if not warehouse.table_exists(target):
            return
        present = {c.name.lower() for c in columns} | {c.lower() for c in self.exclude} | {DELETED_COLUMN}
        dropped = [c.name for c in warehouse.get_schema(target) if c.name.lower() not in present]
        if dropped:
            raise SourceDefinitionError(
                f"{self._where()}source table {self.table!r} no longer has column(s) {dropped} that {target} holds; "
                "nothing was written. If the drop is intended, add them to 'exclude' in the sync "
                "definition (the warehouse keeps the old values) or rebuild the table with a full refresh "
                "into a new target_table"
            )

    def _window(self, warehouse: Warehouse, target, columns, context: Context) -> tuple[Any, Any]:
        """Lower and upper bound of the cursor for an incremental read (None: unbounded)."""
        import pyarrow as pa

        from nightshift_core.warehouse.types import check_identifier

        cursor_column = next((c for c in columns if c.name == self.cursor), None)
        if cursor_column is None:
            raise SourceDefinitionError(
                f"{self._where()}table {self.table!r}: cursor column {self.cursor!r} not found in the source "
                "(or excluded); fix cursor in the sync definition"
            )
        watermark = None
        if warehouse.table_exists(target):
            col = check_identifier(self.cursor)
            rows = warehouse.query(f"SELECT MAX({col}) AS w FROM {target}").to_pylist()  # noqa: S608
            watermark = rows[0]["w"] if rows else None
        if not pa.types.is_timestamp(cursor_column.arrow_type):
            return watermark, None  # e.g. an ever-growing integer id: no time window applies
        naive = cursor_column.arrow_type.tz is None
        if watermark is not None and watermark.tzinfo is None:
            watermark = watermark.replace(tzinfo=dt.UTC)
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        lower, upper = watermark, None
        if start is not None and end is not None and start < end:
            # Never skip a gap (a missed run) and never read past this run's interval.
            lower = min(start, watermark) if watermark is not None else None
            upper = end
        if lower is not None:
            lower = lower - self.lag
        if naive:  # DATETIME cursors hold UTC wall-clock values
            lower = lower.astimezone(dt.UTC).replace(tzinfo=None) if lower is not None else None
            upper = upper.astimezone(dt.UTC).replace(tzinfo=None) if upper is not None else None
        return lower, upper


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
