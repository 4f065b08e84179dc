"""The flow of one table's sync: snapshot, describe, window, read, stage, publish with its state, reconcile.

No Airflow here: the operator (``SqlToWarehouseOperator``) builds the source connection, the
warehouse and the run's facts, calls :meth:`TableSyncEngine.run` and returns its small result; a
test or a bench can do the same with a real database and no scheduler. The source database is a
:class:`~nightshift_core.sync.dialects.Dialect`; the flow never asks which one.

``full`` replaces the target with the whole table. ``incremental`` reads the rows whose cursor
lies in a window (:mod:`nightshift_core.sync.window`) and MERGEs them on the primary key, with the
state (how far it read, on the source's clock) committed in the same transaction as the rows. Both
are a read built by a method of the mode (:meth:`TableSyncEngine._read_full`, ``_read_incremental``)
through one flow; ``cdc`` is a flow of its own (:func:`nightshift_core.sync.cdc.run.engine_step`,
the source's log), handed the same inputs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from nightshift_core.errors import SourceDefinitionError
from nightshift_core.sync import arrow_reader, clock, source, window
from nightshift_core.sync.columns import EXACT_JSON_SUFFIX, SourceColumn, UnsupportedColumnError, arrow_schema
from nightshift_core.sync.reconcile import Reconciler
from nightshift_core.warehouse import SyncState, TableRef
from nightshift_core.warehouse.types import DELETED_COLUMN, UnsupportedTypeError, check_identifier

if TYPE_CHECKING:
    from nightshift_core.sync.clock import ServerZone
    from nightshift_core.sync.dialects import Dialect
    from nightshift_core.warehouse import JobKey, Warehouse

READERS = ("auto", "arrow", "dbapi")


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """One table of a sync definition: what to read and how (the operator's arguments)."""

    table: str
    dataset: str
    primary_key: tuple[str, ...]
    target_table: str | None = None
    mode: str = "full"
    cursor: str | None = None
    lag: dt.timedelta = dt.timedelta(0)
    exclude: tuple[str, ...] = ()
    batch_rows: int = 50_000
    detect_deletes: bool = False
    definition: str = ""  # the sync file this table comes from, named in errors
    source_timezone: str | None = None  # zone of the source's DATETIME values (None: UTC)
    reconcile_every: dt.timedelta | None = None  # None: every run; 0: only on demand; else e.g. 1 day
    also_synced: tuple[str, ...] = ()  # the definition's other source tables (partition check)
    reader: str = "auto"  # auto: the Arrow reader where it reads the table exactly, else DB-API
    read_partitions: int = 1  # Arrow reader connections (key ranges)
    partition_by: str | None = None  # the column a target the sync creates is day-partitioned by
    deletes: str = "soft"  # mode cdc: a source delete marks the row (soft) or removes it (hard)

    def __post_init__(self) -> None:
        if self.reader not in READERS:
            raise ValueError(f"reader must be auto, arrow or dbapi, got {self.reader!r}")

    @property
    def target(self) -> TableRef:
        return TableRef(self.dataset, self.target_table or self.table)

    @property
    def where(self) -> str:
        """The error messages' prefix naming the definition."""
        return f"sync definition {self.definition}, " if self.definition else ""


@dataclasses.dataclass(frozen=True)
class RunFacts:
    """What the scheduler says about this run."""

    job: JobKey  # the try-independent identity of the work (staging names)
    start: dt.datetime | None = None  # the data interval
    end: dt.datetime | None = None
    run_at: dt.datetime | None = None  # when deletes are stamped (the interval's end, else the run's time)
    full_refresh: bool = False
    reconcile: bool = False  # asked for by the run's Param


@dataclasses.dataclass(frozen=True)
class Read:
    """One mode's read: the WHERE of the extract, the window it reports and how far it reaches."""

    full: bool
    read_until: dt.datetime
    where: str = ""
    params: tuple[Any, ...] = ()
    window: dict | None = None
    upper: Any = None


class TableSyncEngine:
    """One table from a source connection (DB-API, any dialect) to the warehouse, streaming, exact, idempotent.

    ``connection`` carries the fields the Arrow reader connects with (host, port, login, password,
    schema, extra_dejson: an Airflow Connection will do).
    """

    def __init__(
        self,
        spec: TableSpec,
        dialect: Dialect,
        conn: Any,
        warehouse: Warehouse,
        *,
        connection: Any = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.spec, self.dialect, self.conn, self.warehouse = spec, dialect, conn, warehouse
        self.connection = connection
        self.log = log or logging.getLogger(__name__)

    def run(self, facts: RunFacts) -> dict[str, Any]:
        """Sync the table once; small metadata (row counts, window, reconciliation) for the quality gate."""
        if self.spec.mode == "cdc":
            from nightshift_core.sync.cdc.run import engine_step

            return engine_step(self.spec, self.dialect, self.conn, self.warehouse, self.connection, facts)
        return self._query(facts)

    def _query(self, facts: RunFacts) -> dict[str, Any]:
        """``full`` and ``incremental``: the source read by queries in one snapshot."""
        spec, dialect, conn = self.spec, self.dialect, self.conn
        # extract, count and pairs: one view of the source; every row committed before `clock_at` is in it
        clock_at = dialect.begin_snapshot(conn)
        server = dialect.server_zone(conn)  # before the session is switched to UTC
        dialect.prepare_session(conn)
        columns = self._describe()
        self._refuse_partition_of_synced_parent()
        missing = set(spec.primary_key) - {c.name for c in columns}
        if missing:
            raise SourceDefinitionError(
                f"{spec.where}table {spec.table!r}: primary key column(s) {sorted(missing)} not found in "
                "the source (or excluded); fix primary_key (or exclude) in the sync definition"
            )
        target = spec.target
        full = spec.mode == "full" or facts.full_refresh
        with self.warehouse.session():  # the target's checks and state: the warehouse opened once
            self._refuse_dropped_columns(target, columns)
            if full:
                read = self._read_full(clock_at)
            else:
                read = self._read_incremental(target, columns, facts, server, clock_at)
        counted: dict = {}  # MySQL's Arrow read counts its own rows (its snapshot is its own)
        batches, reader = self._extract(target, columns, read.where, list(read.params), counted)
        staged = self.warehouse.stage(facts.job, target, batches, arrow_schema(columns))
        state = self._state(columns, read.read_until, full)
        result = self.warehouse.publish(staged, "replace" if full else "merge", key=list(spec.primary_key),
                                        state=state, partition_by=spec.partition_by)  # fmt: skip
        if read.window is not None:
            read.window["state"] = _text(state.read_until if state else None)
        reconciled = None
        if not full and self._reconcile_due(facts):
            reconciler = self._reconciler(target, columns, facts.job)
            reconciled = reconciler.run(read.upper, facts.run_at or dt.datetime.now(dt.UTC))
            # The gate's check of the whole table before this window's end: not the window itself.
            reconciled["before"] = _text(read.upper)
            reconciled["source_rows"] = reconciler.source_rows(read.upper)
        source_rows = counted.get("rows")
        if source_rows is None:
            source_rows = source.count(conn, dialect, spec.table, read.where, read.params)
        if result.added_columns:
            self.log.warning(
                "%s: new source column(s) added to the warehouse: %s", target, result.added_columns
            )
        self.log.info("%s: %s rows %s (source count in window: %s)", target, result.staged_rows,
                      "replaced" if full else "merged", source_rows)  # fmt: skip
        return {
            "source_table": spec.table,
            "target": str(target),
            "mode": "full" if full else "incremental",
            "reader": reader,
            "staged_rows": result.staged_rows,
            "source_rows": source_rows,
            "window": read.window,
            "added_columns": list(result.added_columns),
            "marked_deleted": reconciled["marked_deleted"] if reconciled else None,
            "reconciled": reconciled,
            "detect_deletes": spec.detect_deletes,
        }

    # -- the modes ---------------------------------------------------------------------------------
    def _read_full(self, clock_at: dt.datetime) -> Read:
        """The whole table: everything committed before the snapshot."""
        return Read(full=True, read_until=clock_at)

    def _read_incremental(
        self, target: TableRef, columns: Sequence[SourceColumn], facts: RunFacts, server: ServerZone, clock_at
    ) -> Read:
        """The rows whose cursor lies in this run's window (:meth:`_window`)."""
        spec, dialect = self.spec, self.dialect
        win = self._window(target, columns, facts, server, clock_at)
        column, mark = dialect.quote(spec.cursor), dialect.placeholder
        conditions, params = [], []
        if win.lower is not None:
            conditions.append(f"{column} {'>' if win.after else '>='} {mark}")
            params.append(dialect.bind(win.lower))
        if win.upper is not None:
            conditions.append(f"{column} < {mark}")
            params.append(dialect.bind(win.upper))
        shown = {"cursor": spec.cursor, "from": _text(win.lower), "to": _text(win.upper), "after": win.after}
        return Read(full=False, read_until=win.read_until, where=" AND ".join(conditions), params=tuple(params),
                    window=shown, upper=win.upper)  # fmt: skip

    def _window(
        self, target: TableRef, columns: Sequence[SourceColumn], facts: RunFacts, server: ServerZone, clock_at
    ) -> window.Window:
        """The cursor's window: from the state the previous read committed with its rows
        (:meth:`Warehouse.sync_state`), or, for a target without one, from its ``MAX(cursor)``. Bounds
        are instants; a DATETIME cursor gets them as wall-clock values of the source's zone
        (``source.timezone``), widened across DST changes (see :mod:`nightshift_core.sync.clock`)."""
        spec = self.spec
        cursor = next((c for c in columns if c.name == spec.cursor), None)
        if cursor is None:
            raise SourceDefinitionError(
                f"{spec.where}table {spec.table!r}: cursor column {spec.cursor!r} not found in the source "
                "(or excluded); fix cursor in the sync definition"
            )
        watermark, stored = None, None
        if self.warehouse.table_exists(target):
            stored = self.warehouse.sync_state(target, spec.cursor)
            if stored is None:  # loaded before states existed, or nothing read yet: the target's own mark
                col = check_identifier(spec.cursor)
                rows = self.warehouse.query(f"SELECT MAX({col}) AS w FROM {target}").to_pylist()  # noqa: S608
                watermark = rows[0]["w"] if rows else None
        if not pa.types.is_timestamp(cursor.arrow_type):
            return window.integer_window(stored, watermark, spec.lag, clock_at)
        wall_zone = None
        if cursor.arrow_type.tz is None:  # a DATETIME: the wall clock of the zone it is written in
            wall_zone = clock.zone(self._wall_zone_name(server) or "UTC")
        return window.time_window(mark=stored if stored is not None else watermark, start=facts.start,
                                  end=facts.end, lag=spec.lag, clock_at=clock_at, wall_zone=wall_zone)  # fmt: skip

    def _wall_zone_name(self, server: ServerZone) -> str | None:
        """The zone a DATETIME cursor is written in (None: UTC); warns when the server says otherwise."""
        spec = self.spec
        name = clock.check_zone(server, spec.source_timezone, where=f"{spec.where}table {spec.table!r}")
        if name is not None:
            why = clock.contradiction(server, name)
            if why:
                self.log.warning(
                    "%s: source.timezone is %r but %s; windows follow source.timezone (the zone the values "
                    "are written in). If the writers use the server's zone, fix source.timezone",
                    spec.table, name, why,
                )  # fmt: skip
        return name

    def _state(
        self, columns: Sequence[SourceColumn], read_until: dt.datetime, full: bool
    ) -> SyncState | None:
        """The state this read leaves, committed with its rows: how far it read on the source's clock
        (a timestamp cursor), or the highest value it read (an integer cursor; the warehouse takes
        it from the published rows). Other cursor types keep to the target's ``MAX(cursor)``."""
        name = self.spec.cursor
        cursor = next((c for c in columns if c.name == name), None) if name else None
        if cursor is None:
            return None
        if pa.types.is_timestamp(cursor.arrow_type):
            return SyncState(name, read_until, full_load=full)
        if pa.types.is_integer(cursor.arrow_type):
            return SyncState(name, None, full_load=full)
        return None

    # -- reading -------------------------------------------------------------------------------------
    def _extract(
        self, target: TableRef, columns: Sequence[SourceColumn], where: str, params: list, counted: dict
    ) -> tuple[Iterator[pa.RecordBatch], str]:
        """The table's batches from the Arrow reader (connectorx) or, when it cannot read the table
        exactly or ``reader="dbapi"``, from the DB-API path; and which one ("arrow"/"dbapi")."""
        spec, dialect = self.spec, self.dialect
        extra = getattr(self.connection, "extra_dejson", None) or {}
        why = "reader: dbapi" if spec.reader == "dbapi" else None
        why = why or arrow_reader.fallback_reason(dialect, columns, extra)
        inlined = where
        if why is None and where:
            inlined = arrow_reader.inline(dialect, where, params)
            if inlined is None:
                why = "a window bound has no literal form the Arrow reader can take"
        if why is not None:
            if spec.reader == "arrow":
                raise SourceDefinitionError(
                    f"{spec.where}table {spec.table!r}: reader: arrow was asked for, but {why}; set "
                    "source.reader to auto (or dbapi) in the sync definition"
                )
            self.log.info("%s: read by the DB-API path: %s", target, why)
            batches = source.extract(self.conn, dialect, spec.table, columns, where=where, params=params,
                                     batch_rows=spec.batch_rows)  # fmt: skip
            return batches, "dbapi"
        url, password = arrow_reader.connection_url(dialect, self.connection)
        partitions = max(1, int(spec.read_partitions))
        partition_on = None
        if partitions > 1 and spec.primary_key:  # a keyless (full) table is read in one range
            key = spec.primary_key[0]
            first = next(c for c in columns if c.name == key)
            if pa.types.is_integer(first.arrow_type):
                # connectorx takes it as SQL: quoted, a mixed-case "orderNumber" keeps its case
                partition_on = dialect.quote(key)
            else:
                self.log.info("%s: one Arrow read, not %d: the first key column %r is not an integer",
                              target, partitions, key)  # fmt: skip
        self.log.info("%s: read by the Arrow reader (connectorx)%s", target,
                      f", {partitions} key ranges at once" if partition_on else "")  # fmt: skip
        batches = arrow_reader.extract(
            url, dialect, spec.table, columns, where=inlined, batch_rows=spec.batch_rows,
            snapshot=dialect.export_snapshot(self.conn), password=password,
            partitions=partitions if partition_on else 1, partition_on=partition_on, counted=counted,
            numbered=dialect.numbers_rows(self.conn),
        )  # fmt: skip
        return batches, "arrow"

    def _describe(self) -> list[SourceColumn]:
        """The source columns minus ``exclude`` (dropped before type mapping); a type with no exact
        mapping fails naming the file, table, column and the YAML change that skips it."""
        spec = self.spec
        try:
            return self.dialect.describe(self.conn, spec.table, exclude=spec.exclude)
        except UnsupportedColumnError as exc:
            value = "[" + ", ".join([*spec.exclude, *exc.columns]) + "]"
            where = spec.definition or "the sync definition"
            what = "the column" if len(exc.columns) == 1 else f"these {len(exc.columns)} columns"
            raise UnsupportedTypeError(
                f"{spec.where}{exc}. Nothing was read. To skip {what}, set `exclude: {value}` on "
                f"table {spec.table!r} in {where} (its entry under `tables:`, e.g. "
                f"`- {{name: {spec.table}, ..., exclude: {value}}}`); or cast it to a supported type in a "
                "view and sync the view"
            ) from None

    # -- refusals ------------------------------------------------------------------------------------
    def _refuse_partition_of_synced_parent(self) -> None:
        """A partitioned table is synced as one table holding every partition's rows: a partition of a
        table this definition also syncs would be copied twice (into its own target too)."""
        spec = self.spec
        parents = [p for p in self.dialect.partition_parents(self.conn, spec.table) if p in spec.also_synced]
        if parents:
            where = spec.definition or "the sync definition"
            raise SourceDefinitionError(
                f"{spec.where}table {spec.table!r} is a partition of {parents[0]!r}, which this definition "
                f"syncs too (a partitioned table is synced as one table, every partition's rows included): "
                f"remove the entry `- {{name: {spec.table}, ...}}` from `tables:` in {where}; its rows "
                f"reach the warehouse through {parents[0]!r}"
            )

    def _refuse_dropped_columns(self, target: TableRef, columns: Sequence[SourceColumn]) -> None:
        """A column the warehouse has but the source lost would silently turn NULL: stop instead."""
        if not self.warehouse.table_exists(target):
            return
        spec = self.spec
        excluded = {c.lower() for c in spec.exclude}
        present = {c.name.lower() for c in columns} | excluded | {DELETED_COLUMN}
        present |= {c + EXACT_JSON_SUFFIX for c in excluded}  # an excluded array's exact-JSON column
        dropped = [c.name for c in self.warehouse.get_schema(target) if c.name.lower() not in present]
        if dropped:
            raise SourceDefinitionError(
                f"{spec.where}source table {spec.table!r} no longer has column(s) {dropped} that {target} "
                "holds; nothing was written. If the drop is intended, add them to 'exclude' in the sync "
                "definition (the warehouse keeps the old values) or rebuild the table with a full refresh "
                "into a new target_table"
            )

    # -- reconciliation --------------------------------------------------------------------------------
    def _reconcile_due(self, facts: RunFacts) -> bool:
        spec = self.spec
        return window.reconcile_due(detect_deletes=spec.detect_deletes, every=spec.reconcile_every,
                                    asked=facts.reconcile, start=facts.start, end=facts.end)  # fmt: skip

    def _reconciler(self, target: TableRef, columns: Sequence[SourceColumn], job: JobKey) -> Reconciler:
        spec = self.spec
        return Reconciler(self.conn, self.dialect, self.warehouse, spec.table, target, columns,
                          list(spec.primary_key), spec.cursor, job, detect_deletes=spec.detect_deletes,
                          batch_rows=spec.batch_rows, log=self.log)  # fmt: skip


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
