"""Sync definitions: ``include/config/syncs/*.yaml``, one file per source database.

Validated strictly before any DAG is built: an unknown key, a merge table without a primary
key or an identifier like ``orders; DROP TABLE x`` is an error naming the file, the key and
the fix — a table is never dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from nightshift_core.errors import PermanentError
from nightshift_core.yamlconf import Where, load_folder, read_mapping

SYNC_DIR = Path(__file__).resolve().parents[2] / "config" / "syncs"
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
_DURATION = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

_TOP_KEYS = {"dag_id", "description", "source", "schedule", "start_date", "catchup", "target", "tables",
             "post_load", "tags", "quality"}  # fmt: skip
_SOURCE_KEYS = {"conn_id", "pool", "max_connections", "batch_rows", "timezone", "reader", "read_partitions",
                "mode"}  # fmt: skip
_TARGET_KEYS = {"dataset"}
_TABLE_KEYS = {"name", "mode", "primary_key", "cursor", "lag", "exclude", "target_table", "detect_deletes",
               "reconcile", "deletes", "partition_by"}  # fmt: skip
_MODES = ("full", "incremental", "cdc")
_POST_KEYS = {"name", "sql", "target"}
_QUALITY_KEYS = {"row_count_tolerance"}


class SyncConfigError(ValueError, PermanentError):
    """A bad sync definition; the message names file, key and fix."""


@dataclass(frozen=True)
class TableSync:
    name: str
    mode: Literal["full", "incremental", "cdc"]
    primary_key: tuple[str, ...]
    cursor: str | None = None
    lag: timedelta = timedelta(0)
    exclude: tuple[str, ...] = ()
    target_table: str = ""
    detect_deletes: bool = False
    # incremental only: None = every run, 0 = only when a run asks (Param), else when a run crosses it
    reconcile_every: timedelta | None = None
    # cdc only: a source delete marks the row (soft, _nightshift_deleted_at) or removes it (hard)
    deletes: Literal["soft", "hard"] = "soft"
    # BigQuery: the day-partitioning column of a target the sync creates (a DATE/DATETIME/TIMESTAMP
    # column whose value never changes for a row); merges are bounded to the partitions they touch
    partition_by: str | None = None


@dataclass(frozen=True)
class PostLoad:
    name: str
    sql: str  # path under include/sql
    target: str  # dataset.table, replaced on every run


@dataclass(frozen=True)
class SyncConfig:
    path: Path
    dag_id: str
    description: str
    conn_id: str
    pool: str
    max_connections: int
    batch_rows: int
    schedule: str | None
    start_date: datetime
    catchup: bool
    dataset: str
    tables: tuple[TableSync, ...]
    post_load: tuple[PostLoad, ...] = ()
    timezone: str | None = None  # IANA zone the source writes DATETIME values in (None: UTC)
    tags: tuple[str, ...] = ()
    row_count_tolerance: float = 0.0
    reader: str = "auto"  # auto: Arrow reader (connectorx) where it reads a table exactly; arrow; dbapi
    read_partitions: int = 1  # Arrow reader connections per table (key ranges read at once)
    extra: dict[str, Any] = field(default_factory=dict)


def load_all(directory: Path = SYNC_DIR) -> list[SyncConfig]:
    """Every definition in ``directory``; all problems of all files in one error."""
    return load_folder(directory, load, SyncConfigError, id_key="dag_id", what="sync")


def load(path: Path) -> SyncConfig:
    raw = read_mapping(path, SyncConfigError)
    where = Where(path, SyncConfigError)
    where.keys(raw, _TOP_KEYS, "top level")
    source = where.mapping(raw, "source", required=True)
    where.keys(source, _SOURCE_KEYS, "source")
    target = where.mapping(raw, "target", required=True)
    where.keys(target, _TARGET_KEYS, "target")
    conn_id = where.string(source, "conn_id", "source.conn_id", required=True)
    dataset = where.ident(target.get("dataset"), "target.dataset", "dataset name")
    tables_raw = raw.get("tables")
    if not isinstance(tables_raw, list) or not tables_raw:
        raise SyncConfigError(f"{path}: 'tables' must be a non-empty list of tables to sync")
    tables = []
    names: set[str] = set()
    default_mode = source.get("mode", "full")
    if default_mode not in _MODES:
        raise SyncConfigError(
            f"{path}: source.mode is {default_mode!r}; use full, incremental or cdc (the mode of every table "
            "that sets none)"
        )
    for i, item in enumerate(tables_raw):
        tables.append(_table(where, item, f"tables[{i}]", default_mode))
        if tables[-1].target_table in names:
            raise SyncConfigError(
                f"{path}: tables[{i}]: target table {tables[-1].target_table!r} appears twice"
            )
        names.add(tables[-1].target_table)
    post = []
    for i, item in enumerate(raw.get("post_load") or []):
        key = f"post_load[{i}]"
        if not isinstance(item, dict):
            raise SyncConfigError(f"{path}: {key}: expected a mapping with name, sql, target")
        where.keys(item, _POST_KEYS, key)
        name = where.ident(item.get("name"), f"{key}.name", "task name")
        sql = where.sql_file(item, "sql", f"{key}.sql", SQL_DIR)
        target_ref = where.string(item, "target", f"{key}.target", required=True)
        parts = target_ref.split(".")
        if len(parts) != 2:
            raise SyncConfigError(f"{path}: {key}.target: expected 'dataset.table', got {target_ref!r}")
        for part in parts:
            where.ident(part, f"{key}.target", "name")
        post.append(PostLoad(name, sql, target_ref))
    quality = where.mapping(raw, "quality", required=False)
    where.keys(quality, _QUALITY_KEYS, "quality")
    tolerance = quality.get("row_count_tolerance", 0.0)
    if not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1:
        raise SyncConfigError(f"{path}: quality.row_count_tolerance must be a fraction in [0, 1), e.g. 0.001")
    dag_id, schedule, start_dt = where.dag_basics(raw, f"sync_{path.stem}", "@daily")
    max_conn = source.get("max_connections", 4)
    if not isinstance(max_conn, int) or max_conn < 1:
        raise SyncConfigError(f"{path}: source.max_connections must be a positive integer")
    batch_rows = source.get("batch_rows", 50_000)
    if not isinstance(batch_rows, int) or batch_rows < 100:
        raise SyncConfigError(f"{path}: source.batch_rows must be an integer >= 100")
    reader = source.get("reader", "auto")
    if reader not in ("auto", "arrow", "dbapi"):
        raise SyncConfigError(f"{path}: source.reader must be auto, arrow or dbapi, got {reader!r}")
    partitions = source.get("read_partitions", 1)
    if not isinstance(partitions, int) or partitions < 1:
        raise SyncConfigError(f"{path}: source.read_partitions must be a positive integer")
    if reader == "auto" and "read_partitions" not in source and max_conn < 2:
        reader = "dbapi"  # a one-connection pool: the task's own connection reads too
    if reader != "dbapi" and partitions + 1 > max_conn:
        raise SyncConfigError(
            f"{path}: source.read_partitions {partitions} needs {partitions + 1} connections per table (the "
            f"reader's plus the task's own) but source.max_connections is {max_conn}: lower read_partitions"
        )
    tags = raw.get("tags", ["nightshift", "sync", "warehouse"])
    timezone = source.get("timezone")
    if timezone is not None:
        from nightshift_core.sync.clock import zone

        try:
            zone(str(timezone))
        except ValueError as exc:
            raise SyncConfigError(f"{path}: source.timezone: {exc}") from None
    return SyncConfig(
        path=path,
        dag_id=dag_id,
        description=str(raw.get("description") or f"Sync {conn_id} into {dataset}"),
        conn_id=conn_id,
        pool=where.string(source, "pool", "source.pool") or f"{conn_id}_pool",
        max_connections=max_conn,
        batch_rows=batch_rows,
        schedule=schedule,
        start_date=start_dt,
        catchup=bool(raw.get("catchup", False)),
        dataset=dataset,
        tables=tuple(tables),
        post_load=tuple(post),
        tags=tuple(tags),
        row_count_tolerance=float(tolerance),
        timezone=None if timezone is None else str(timezone),
        reader=reader,
        read_partitions=partitions,
    )


def _table(where: Where, item: Any, key: str, default_mode: str = "full") -> TableSync:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict):
        raise SyncConfigError(f"{where.path}: {key}: expected a table name or a mapping")
    where.keys(item, _TABLE_KEYS, key)
    name = where.ident(item.get("name"), f"{key}.name", "table name")
    key = f"{key} ({name})"
    mode = item.get("mode", default_mode)
    if mode not in _MODES:
        raise SyncConfigError(f"{where.path}: {key}.mode is {mode!r}; use 'full', 'incremental' or 'cdc'")
    pk = item.get("primary_key") or []
    pk = [pk] if isinstance(pk, str) else pk
    # A table with no key at all is replaced whole on every run: it says so with an explicit `primary_key: []`.
    keyless = mode == "full" and item.get("primary_key") == []
    if not isinstance(pk, list) or not (pk or keyless):
        raise SyncConfigError(
            f"{where.path}: {key}.primary_key is missing: every table is merged on its primary key; "
            "list its column(s), e.g. primary_key: [orderNumber] (a mode: full table with no key at all: "
            "primary_key: [])"
        )
    pk = [where.ident(c, f"{key}.primary_key", "column name") for c in pk]
    cursor = item.get("cursor")
    if mode == "incremental":
        if not isinstance(cursor, str):
            raise SyncConfigError(
                f"{where.path}: {key}.cursor is missing: incremental tables need a column that grows "
                "on every insert/update (e.g. cursor: updatedAt), or use mode: full"
            )
        where.ident(cursor, f"{key}.cursor", "column name")
    elif cursor is not None:
        raise SyncConfigError(f"{where.path}: {key}.cursor is only used with mode: incremental")
    exclude = [where.ident(c, f"{key}.exclude", "column name") for c in item.get("exclude") or []]
    clash = set(exclude) & (set(pk) | {cursor})
    if clash:
        raise SyncConfigError(f"{where.path}: {key}.exclude removes key/cursor column(s) {sorted(clash)}")
    detect = item.get("detect_deletes", False)
    if not isinstance(detect, bool):
        raise SyncConfigError(f"{where.path}: {key}.detect_deletes must be true or false")
    if detect and mode != "incremental":
        raise SyncConfigError(f"{where.path}: {key}.detect_deletes only applies to mode: incremental")
    deletes = item.get("deletes", "soft")
    if deletes not in ("soft", "hard"):
        raise SyncConfigError(
            f"{where.path}: {key}.deletes is {deletes!r}; use soft (the row stays, _nightshift_deleted_at set "
            "to the delete's commit time) or hard (the row is removed)"
        )
    if "deletes" in item and mode != "cdc":
        raise SyncConfigError(
            f"{where.path}: {key}.deletes only applies to mode: cdc (incremental tables see deletes through "
            "detect_deletes)"
        )
    reconcile = item.get("reconcile", True)
    if reconcile is not True and mode != "incremental":
        raise SyncConfigError(f"{where.path}: {key}.reconcile only applies to mode: incremental")
    if reconcile is True:
        every = None
    elif reconcile is False:
        every = timedelta(0)
    else:
        every = _duration(where, reconcile, f"{key}.reconcile")
        if every <= timedelta(0):
            raise SyncConfigError(f"{where.path}: {key}.reconcile must be true, false or a positive duration")
    partition_by = item.get("partition_by")
    if partition_by is not None:
        where.ident(partition_by, f"{key}.partition_by", "column name")
        if partition_by in exclude:
            raise SyncConfigError(f"{where.path}: {key}.partition_by column {partition_by!r} is excluded")
    return TableSync(
        partition_by=partition_by,
        detect_deletes=detect,
        reconcile_every=every,
        deletes=deletes,
        name=name,
        mode=mode,
        primary_key=tuple(pk),
        cursor=cursor,
        lag=_duration(where, item.get("lag", "0s"), f"{key}.lag"),
        exclude=tuple(exclude),
        target_table=where.ident(item.get("target_table", name), f"{key}.target_table", "table name"),
    )


def _duration(where: Where, value: Any, key: str) -> timedelta:
    match = _DURATION.fullmatch(str(value).strip())
    if not match:
        raise SyncConfigError(f"{where.path}: {key} is {value!r}; write a duration like 10m, 2h or 1d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
