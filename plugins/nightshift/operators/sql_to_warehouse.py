"""SqlToWarehouseOperator: one source table -> the warehouse, streaming, exact, idempotent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator

from nightshift.operators._fail_fast import fail_fast
from nightshift_core.errors import SourceDefinitionError
from nightshift_core.warehouse.types import DELETED_COLUMN

if TYPE_CHECKING:
    from airflow.sdk import Context

    from nightshift_core.warehouse import SyncState, Warehouse


class SqlToWarehouseOperator(BaseOperator):
    """Copy ``table`` from a MySQL/MariaDB, PostgreSQL or SQLite connection into the warehouse.

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

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any] | None:
        from airflow.sdk.exceptions import AirflowSkipException

        from nightshift.hooks.warehouse import WarehouseHook, job_key
        from nightshift_core.sync import dialects, source
        from nightshift_core.warehouse import TableRef

        selected = self.only_tables
        if isinstance(selected, str):
            selected = [t for t in selected.split(",") if t.strip()]
        if selected and self.table not in selected:
            raise AirflowSkipException(f"table {self.table!r} not in this run's 'tables' Param {selected}")
        if self.mode == "cdc":
            return self._execute_cdc(context)
        dialect = dialects.for_connection(BaseHook.get_connection(self.source_conn_id).conn_type)
        conn = BaseHook.get_hook(self.source_conn_id).get_conn()
        try:
            # extract, count and pairs: one view of the source; every row committed before `clock_at` is in it
            clock_at = dialect.begin_snapshot(conn)
            server = dialect.server_zone(conn)  # before the session is switched to UTC
            dialect.prepare_session(conn)
            columns = self._describe(conn, dialect)
            self._refuse_partition_of_synced_parent(conn, dialect)
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
                where, params, window, upper = "", [], None, None
                read_until = clock_at  # a full read: everything committed before the snapshot
                if not full:
                    lower, upper, after, read_until = self._window(warehouse, target, columns, context, server,
                                                                   clock_at)  # fmt: skip
                    column, mark = dialect.quote(self.cursor), dialect.placeholder
                    conditions = []
                    if lower is not None:
                        conditions.append(f"{column} {'>' if after else '>='} {mark}")
                        params.append(dialect.bind(lower))
                    if upper is not None:
                        conditions.append(f"{column} < {mark}")
                        params.append(dialect.bind(upper))
                    where = " AND ".join(conditions)
                    window = {"cursor": self.cursor, "from": _text(lower), "to": _text(upper), "after": after}
                counted: dict = {}  # MySQL's Arrow read counts its own rows (its snapshot is its own)
                batches, reader = self._extract(conn, dialect, target, columns, where, params, counted)
                staged = warehouse.stage(job_key(context), target, batches, source.arrow_schema(columns))
                state = self._state(columns, read_until, full)
                result = warehouse.publish(staged, "replace" if full else "merge", key=self.primary_key,
                                           state=state)  # fmt: skip
                if window is not None:
                    window["state"] = _text(state.read_until if state else None)
                reconciled = None
                if not full and self._reconcile_due(context):
                    reconciled = self._reconcile(conn, dialect, warehouse, target, columns, context, upper)
                    # The gate's check of the whole table before this window's end: not the window itself.
                    reconciled["before"] = _text(upper)
                    before, bound = self._before(dialect, upper)
                    reconciled["source_rows"] = source.count(conn, dialect, self.table, before, bound)
            source_rows = counted.get("rows")
            if source_rows is None:
                source_rows = source.count(conn, dialect, self.table, where, params)
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
            "reader": reader,
            "staged_rows": result.staged_rows,
            "source_rows": source_rows,
            "window": window,
            "added_columns": list(result.added_columns),
            "marked_deleted": reconciled["marked_deleted"] if reconciled else None,
            "reconciled": reconciled,
            "detect_deletes": self.detect_deletes,
        }

    def _extract(
        self, conn, dialect, target, columns, where: str, params: list, counted: dict
    ) -> tuple[Any, str]:
        """The table's batches from the Arrow reader (connectorx) or, when it cannot read the table
        exactly or ``reader="dbapi"``, from the DB-API path; and which one ("arrow"/"dbapi")."""
        from nightshift_core.sync import arrow_reader, source

        why = "reader: dbapi" if self.reader == "dbapi" else None
        connection = BaseHook.get_connection(self.source_conn_id)
        why = why or arrow_reader.fallback_reason(dialect, columns, connection.extra_dejson)
        inlined = where
        if why is None and where:
            inlined = arrow_reader.inline(dialect, where, params)
            if inlined is None:
                why = "a window bound has no literal form the Arrow reader can take"
        if why is not None:
            if self.reader == "arrow":
                raise SourceDefinitionError(
                    f"{self._where()}table {self.table!r}: reader: arrow was asked for, but {why}; set "
                    "source.reader to auto (or dbapi) in the sync definition"
                )
            self.log.info("%s: read by the DB-API path: %s", target, why)
            batches = source.extract(conn, dialect, self.table, columns, where=where, params=params,
                                     batch_rows=self.batch_rows)  # fmt: skip
            return batches, "dbapi"
        url, password = arrow_reader.connection_url(dialect, connection)
        partition_on = None
        if self.read_partitions > 1 and self.primary_key:  # a keyless (full) table is read in one range
            key = self.primary_key[0]
            first = next(c for c in columns if c.name == key)
            if pa_integer(first.arrow_type):
                # connectorx takes it as SQL: quoted, a mixed-case "orderNumber" keeps its case
                partition_on = dialect.quote(key)
            else:
                self.log.info("%s: one Arrow read, not %d: the first key column %r is not an integer",
                              target, self.read_partitions, key)  # fmt: skip
        self.log.info("%s: read by the Arrow reader (connectorx)%s", target,
                      f", {self.read_partitions} key ranges at once" if partition_on else "")  # fmt: skip
        batches = arrow_reader.extract(
            url, dialect, self.table, columns, where=inlined, batch_rows=self.batch_rows,
            snapshot=dialect.export_snapshot(conn), password=password,
            partitions=self.read_partitions if partition_on else 1, partition_on=partition_on, counted=counted,
            numbered=dialect.numbers_rows(conn),
        )  # fmt: skip
        return batches, "arrow"

    def _execute_cdc(self, context: Context) -> dict[str, Any]:
        """``mode="cdc"``: one change-capture step (nightshift_core.sync.cdc.run), a snapshot on the
        first run or with ``full_refresh``, the source's log from the stored position after that."""
        from nightshift.hooks.warehouse import WarehouseHook, job_key
        from nightshift_core.sync.cdc.endpoint import Endpoint
        from nightshift_core.sync.cdc.run import CdcTable, sync_table
        from nightshift_core.warehouse import TableRef

        connection = BaseHook.get_connection(self.source_conn_id)
        kind = (connection.conn_type or "").lower()
        dialect = "postgres" if kind in ("postgres", "postgresql") else "mysql" if "mysql" in kind else kind
        endpoint = Endpoint(
            connection.host or "127.0.0.1", int(connection.port or (5432 if dialect == "postgres" else 3306)),
            connection.login or "", connection.schema or "", connection.password or "",
        )  # fmt: skip
        job = job_key(context)  # its dag_id names the definition's PostgreSQL slots
        table = CdcTable(self.table, tuple(self.primary_key), job.dag_id, tuple(self.exclude),
                         self.deletes, batch_rows=self.batch_rows)  # type: ignore[arg-type]  # fmt: skip
        target = TableRef(self.dataset, self.target_table)
        full = str(self.full_refresh).lower() in ("true", "1")
        conn = BaseHook.get_hook(self.source_conn_id).get_conn()
        try:
            with WarehouseHook(self.warehouse_conn_id).get_conn() as warehouse:
                result = sync_table(conn, dialect, endpoint, table, warehouse, target, job,
                                    full_refresh=full)  # fmt: skip
        finally:
            conn.close()
        self.log.info("%s: %s, %d change(s) read, %d row(s) applied in %d commit(s), log position %s -> %s",
                      target, result.mode, result.changes, result.staged_rows, result.chunks, result.start,
                      result.end)  # fmt: skip
        return {
            "source_table": self.table,
            "target": str(target),
            "mode": "cdc",
            "reader": result.mode,  # snapshot or log
            "staged_rows": result.staged_rows,
            "source_rows": result.staged_rows,  # the log's own net rows: no separate count to compare
            "window": {"from": result.start, "to": result.end, "changes": result.changes},
            "added_columns": result.added_columns,
            "marked_deleted": result.deleted if self.deletes == "soft" else None,
            "reconciled": None,
            "detect_deletes": False,
        }

    def _where(self) -> str:
        return f"sync definition {self.definition}, " if self.definition else ""

    def _describe(self, conn: Any, dialect: Any) -> list:
        """The source columns minus ``exclude`` (dropped before type mapping); a type with no exact
        mapping fails naming the file, table, column and the YAML change that skips it."""
        from nightshift_core.sync import source
        from nightshift_core.warehouse.types import UnsupportedTypeError

        try:
            return source.describe(conn, dialect, self.table, exclude=self.exclude)
        except source.UnsupportedColumnError as exc:
            value = "[" + ", ".join([*self.exclude, *exc.columns]) + "]"
            where = self.definition or "the sync definition"
            what = "the column" if len(exc.columns) == 1 else f"these {len(exc.columns)} columns"
            raise UnsupportedTypeError(
                f"{self._where()}{exc}. Nothing was read. To skip {what}, set `exclude: {value}` on "
                f"table {self.table!r} in {where} (its entry under `tables:`, e.g. "
                f"`- {{name: {self.table}, ..., exclude: {value}}}`); or cast it to a supported type in a "
                "view and sync the view"
            ) from None

    def _refuse_partition_of_synced_parent(self, conn: Any, dialect: Any) -> None:
        """A partitioned table is synced as one table holding every partition's rows: a partition of a
        table this definition also syncs would be copied twice (into its own target too)."""

        parents = [p for p in dialect.partition_parents(conn, self.table) if p in self.also_synced]
        if parents:
            where = self.definition or "the sync definition"
            raise SourceDefinitionError(
                f"{self._where()}table {self.table!r} is a partition of {parents[0]!r}, which this definition "
                f"syncs too (a partitioned table is synced as one table, every partition's rows included): "
                f"remove the entry `- {{name: {self.table}, ...}}` from `tables:` in {where}; its rows "
                f"reach the warehouse through {parents[0]!r}"
            )

    def _reconcile_due(self, context: Context) -> bool:
        """Every run (``reconcile_every`` None), when asked (Param), or when the data interval crosses a
        multiple of ``reconcile_every`` (UTC, e.g. midnight for 1d); always with ``detect_deletes``,
        whose key diff is the same pass."""
        if (
            self.detect_deletes
            or self.reconcile_every is None
            or str(self.reconcile).lower() in ("true", "1")
        ):
            return True
        if self.reconcile_every <= dt.timedelta(0):
            return False  # reconcile: false in the definition: only on demand
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start is None or end is None or not start < end:
            return False
        every = self.reconcile_every.total_seconds()
        return end.timestamp() // every != start.timestamp() // every  # (start, end] holds a multiple

    def _reconcile(
        self, conn, dialect, warehouse: Warehouse, target, columns, context: Context, upper
    ) -> dict:
        """Compare the source's (primary key, cursor) pairs with the warehouse and repair what differs.

        The two narrow columns stream into a staging table and are compared inside the warehouse
        engine (memory stays flat): keys the target lacks, holds with another cursor value or holds
        soft-deleted are re-read from the source by key and merged. Pairs whose cursor is at or past
        this window's end are left to the next window. With ``detect_deletes`` the same pairs mark
        the rows the source no longer has (one diff, not two).

        With an integer first key column, both sides first compute checksums per key range (row
        count and cursor sum, by the source server and the warehouse engine); only the ranges that
        differ are compared pair by pair (and, with ``detect_deletes``, soft-deleted).
        """
        import dataclasses

        from nightshift.hooks.warehouse import job_key
        from nightshift_core.sync import source

        job = job_key(context)
        wanted = {*self.primary_key, self.cursor}
        pairs = [c for c in columns if c.name in wanted]
        where, params = "", []
        # Deletes are judged on the whole table (no window bound), other changes before the window's end.
        buckets = self._suspect_ranges(
            conn, dialect, warehouse, target, columns, None if self.detect_deletes else upper
        )
        if buckets is not None:
            ranges, compared, rows = buckets
            if not ranges:
                self.log.info("%s: reconciliation: all %d key range(s) agree (%d source rows): nothing to "
                              "repair", target, compared, rows)  # fmt: skip
                return {"checked": rows, "repaired": 0, "repaired_keys": [],
                        "marked_deleted": 0 if self.detect_deletes else None,
                        "ranges_compared": compared, "ranges_differing": 0}  # fmt: skip
            k, mark = dialect.quote(self.primary_key[0]), dialect.placeholder
            where = " OR ".join(f"({k} BETWEEN {mark} AND {mark})" for _ in ranges)
            params = [v for r in ranges for v in r]
        batches = source.extract(conn, dialect, self.table, pairs, where=where, params=params,
                                 batch_rows=self.batch_rows)  # fmt: skip
        staged = warehouse.stage(dataclasses.replace(job, task_id=f"{job.task_id}.pairs"), target, batches,
                                 source.arrow_schema(pairs))  # fmt: skip
        checked, marked = staged.rows, None
        try:
            stale = warehouse.unmatched_keys(staged, self.primary_key, self.cursor, before=upper).to_pylist()
            repaired = 0
            if stale:
                repaired = self._repair(conn, dialect, warehouse, target, columns, stale, job)
            if self.detect_deletes:
                within = (self.primary_key[0], buckets[0]) if buckets is not None else None
                marked = warehouse.mark_missing_deleted(staged, self.primary_key, column=DELETED_COLUMN,
                                                        at=self._run_at(context), within=within)  # fmt: skip
                staged = None  # consumed
                self.log.info(
                    "%s: %s row(s) deleted in the source, marked in %s", target, marked, DELETED_COLUMN
                )
        finally:
            if staged is not None:
                warehouse.discard(staged)
        sample = [[row[k] for k in self.primary_key] for row in stale[:10]]
        if repaired:
            self.log.warning(
                "%s: reconciliation REPAIRED %d row(s) that the incremental windows had missed (absent from the "
                "warehouse, or another %s there), e.g. key(s) %s; they are merged now. Check the source's "
                "clock (source.timezone) and the lag if this repeats",
                target, repaired, self.cursor, sample,
            )  # fmt: skip
        else:
            self.log.info("%s: reconciliation checked %d key(s): nothing to repair", target, checked)
        out = {
            "checked": checked,
            "repaired": repaired,
            "repaired_keys": _jsonable(sample),
            "marked_deleted": marked,
        }
        if buckets is not None:
            out.update(ranges_compared=buckets[1], ranges_differing=len(buckets[0]))
        return out

    def _suspect_ranges(self, conn, dialect, warehouse: Warehouse, target, columns, upper):
        """Key ranges whose checksums differ between source and warehouse, as ([(lo, hi), ...], number of
        ranges compared, source rows); None when the shortcut does not apply (then every pair is compared)."""
        import math

        import pyarrow as pa

        from nightshift_core.sync import source

        by_name = {c.name: c for c in columns}
        first, cursor = by_name[self.primary_key[0]], by_name[self.cursor]
        if not pa.types.is_integer(first.arrow_type) or not (
            pa.types.is_timestamp(cursor.arrow_type) or pa.types.is_integer(cursor.arrow_type)
        ):
            return None
        k = dialect.quote(first.name)
        before, bound = self._before(dialect, upper)
        # MIN and MAX of the key come from its index; no COUNT(*), which scans the table
        sql = f"SELECT MIN({k}), MAX({k}) FROM {dialect.quote(self.table)}"  # noqa: S608
        lo, hi = source.first_row(conn, sql + (f" WHERE {before}" if before else ""), bound)
        lo, hi = (int(lo), int(hi)) if lo is not None else (0, 0)
        width = max(1, math.ceil((hi - lo + 1) / _RANGES))
        mine = source.bucket_checksums(conn, dialect, self.table, first.name, cursor, lo=lo, width=width,
                                       before=upper)  # fmt: skip
        theirs = warehouse.bucket_checksums(target, first.name, cursor.name, lo=lo, width=width, before=upper)
        compared = set(mine) | set(theirs)
        differing = sorted(b for b in compared if mine.get(b) != theirs.get(b))
        if len(differing) > _MAX_RANGES:
            return None  # too many: compare every pair
        ranges = []
        for b in differing:  # key ranges of the differing buckets; a warehouse key below lo falls in b < 0
            start, end = lo + b * width, lo + (b + 1) * width - 1
            if ranges and ranges[-1][1] + 1 == start:
                ranges[-1] = (ranges[-1][0], end)
            else:
                ranges.append((start, end))
        return ranges, len(compared), sum(n for n, _ in mine.values())

    def _before(self, dialect: Any, upper: Any) -> tuple[str, list[Any]]:
        """``cursor < upper`` as a source condition and its parameters ('' and [] without a bound)."""

        if upper is None:
            return "", []
        return f"{dialect.quote(self.cursor)} < {dialect.placeholder}", [
            dialect.bind(upper)
        ]

    def _repair(self, conn, dialect, warehouse: Warehouse, target, columns, keys: list[dict], job) -> int:
        """Re-read the rows of ``keys`` from the source (500 keys a query) and merge them."""
        import dataclasses

        import pyarrow as pa

        from nightshift_core.sync import source

        mark = dialect.placeholder
        names = [dialect.quote(k) for k in self.primary_key]
        clear_deleted = DELETED_COLUMN in {c.name for c in warehouse.get_schema(target)}
        schema = source.arrow_schema(columns)
        if clear_deleted:  # a key the source has again is live again
            schema = schema.append(pa.field(DELETED_COLUMN, pa.timestamp("us", tz="UTC")))

        def batches():
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                if len(names) == 1:
                    where = f"{names[0]} IN ({', '.join([mark] * len(chunk))})"
                else:
                    row = "(" + ", ".join([mark] * len(names)) + ")"
                    where = f"({', '.join(names)}) IN ({', '.join([row] * len(chunk))})"
                params = [dialect.bind(k[name]) for k in chunk for name in self.primary_key]
                for batch in source.extract(conn, dialect, self.table, columns, where=where, params=params,
                                            batch_rows=self.batch_rows):  # fmt: skip
                    if clear_deleted:
                        batch = batch.append_column(
                            schema.field(DELETED_COLUMN),
                            pa.nulls(batch.num_rows, schema.field(DELETED_COLUMN).type),
                        )
                    yield batch

        staged = warehouse.stage(
            dataclasses.replace(job, task_id=f"{job.task_id}.repair"), target, batches(), schema
        )
        return warehouse.publish(staged, "merge", key=self.primary_key).staged_rows

    @staticmethod
    def _run_at(context: Context) -> dt.datetime:
        dag_run = context.get("dag_run")
        return (
            context.get("data_interval_end") or getattr(dag_run, "run_after", None) or dt.datetime.now(dt.UTC)
        )

    def _refuse_dropped_columns(self, warehouse: Warehouse, target, columns) -> None:
        """A column the warehouse has but the source lost would silently turn NULL: stop instead."""
        if not warehouse.table_exists(target):
            return
        from nightshift_core.sync.source import EXACT_JSON_SUFFIX

        excluded = {c.lower() for c in self.exclude}
        present = {c.name.lower() for c in columns} | excluded | {DELETED_COLUMN}
        present |= {c + EXACT_JSON_SUFFIX for c in excluded}  # an excluded array's exact-JSON column
        dropped = [c.name for c in warehouse.get_schema(target) if c.name.lower() not in present]
        if dropped:
            raise SourceDefinitionError(
                f"{self._where()}source table {self.table!r} no longer has column(s) {dropped} that {target} holds; "
                "nothing was written. If the drop is intended, add them to 'exclude' in the sync "
                "definition (the warehouse keeps the old values) or rebuild the table with a full refresh "
                "into a new target_table"
            )

    def _state(self, columns, read_until: dt.datetime, full: bool) -> SyncState | None:
        """The state this read leaves, committed with its rows: how far it read on the source's clock
        (a timestamp cursor), or the highest value it read (an integer cursor; the warehouse takes
        it from the published rows). Other cursor types keep to the target's ``MAX(cursor)``."""
        import pyarrow as pa

        from nightshift_core.warehouse import SyncState

        cursor = next((c for c in columns if c.name == self.cursor), None) if self.cursor else None
        if cursor is None:
            return None
        if pa.types.is_timestamp(cursor.arrow_type):
            return SyncState(self.cursor, read_until, full_load=full)
        if pa.types.is_integer(cursor.arrow_type):
            return SyncState(self.cursor, None, full_load=full)
        return None

    def _window(
        self, warehouse: Warehouse, target, columns, context: Context, server, clock_at: dt.datetime
    ) -> tuple[Any, Any, bool, dt.datetime]:
        """Lower and upper bound of the cursor for an incremental read (None: unbounded), whether the
        lower bound is exclusive (an integer cursor past the last value read), and how far this read
        reaches on the source's clock (the state it leaves: the window's end, at most ``clock_at``).

        The lower bound starts from the state the previous read committed with its rows
        (:meth:`Warehouse.sync_state`), or, for a target without one, from its ``MAX(cursor)``.
        Bounds are instants; a DATETIME cursor gets them as wall-clock values of the source's zone
        (``source.timezone``), widened across DST changes so that no wall value of the window is
        left out (see nightshift_core.sync.clock).
        """
        import pyarrow as pa

        from nightshift_core.sync import clock
        from nightshift_core.warehouse.types import check_identifier

        cursor_column = next((c for c in columns if c.name == self.cursor), None)
        if cursor_column is None:
            raise SourceDefinitionError(
                f"{self._where()}table {self.table!r}: cursor column {self.cursor!r} not found in the source "
                "(or excluded); fix cursor in the sync definition"
            )
        watermark, stored = None, None
        if warehouse.table_exists(target):
            stored = warehouse.sync_state(target, self.cursor)
            if stored is None:  # loaded before states existed, or nothing read yet: the target's own mark
                col = check_identifier(self.cursor)
                rows = warehouse.query(f"SELECT MAX({col}) AS w FROM {target}").to_pylist()  # noqa: S608
                watermark = rows[0]["w"] if rows else None
        if not pa.types.is_timestamp(cursor_column.arrow_type):
            # e.g. an ever-growing integer id: no time window applies; past the last id read (a lag,
            # a duration, does not apply to ids: with one the last id is read again)
            if stored is not None:
                return stored, None, not self.lag, clock_at
            return watermark, None, False, clock_at
        if stored is not None:
            watermark = stored  # a UTC instant already
        naive = cursor_column.arrow_type.tz is None
        tz = clock.zone("UTC")
        if naive:
            name = clock.check_zone(
                server, self.source_timezone, where=f"{self._where()}table {self.table!r}"
            )
            if name is not None:
                tz = clock.zone(name)
                why = clock.contradiction(server, name)
                if why:
                    self.log.warning(
                        "%s: source.timezone is %r but %s; windows follow source.timezone (the zone the values "
                        "are written in). If the writers use the server's zone, fix source.timezone",
                        self.table, name, why,
                    )  # fmt: skip
        if watermark is not None and watermark.tzinfo is None:
            # a wall-clock value of the repeated hour means two instants: take the earlier one
            watermark = clock.earliest_instant(watermark, tz)
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        lower, upper = watermark, None
        if start is not None and end is not None and start < end:
            # Never skip a gap (a missed run) and never read past this run's interval.
            lower = min(start, watermark) if watermark is not None else None
            upper = end
        read_until = clock_at if upper is None else min(upper, clock_at)
        if lower is not None:
            lower = lower - self.lag
        if naive:  # DATETIME cursors hold the source zone's wall clock
            scan_end = upper if upper is not None else dt.datetime.now(dt.UTC)
            low_wall, high_wall = clock.wall_window(lower, scan_end, tz)
            lower, upper = low_wall, (high_wall if upper is not None else None)
        return lower, upper, False, read_until


_RANGES = 256  # the key span is cut into this many checksum ranges
_MAX_RANGES = 128  # more differing ranges than this: compare every pair instead


def _jsonable(rows: list[list[Any]]) -> list[list[Any]]:
    """Key values as XCom can carry them (JSON): numbers and text as they are, the rest as text."""
    return [
        [v if isinstance(v, (int, float, str, bool)) or v is None else str(v) for v in row] for row in rows
    ]


def pa_integer(t: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
