"""Sync definitions: ``include/config/syncs/*.yaml``, one file per source database.

:class:`SyncConfig` is the file's model (its JSON Schema is
``include/config/schemas/sync.schema.json``), validated strictly before any DAG is built: an
unknown key, a merge table without a primary key or an identifier like ``orders; DROP TABLE x``
is an error naming the file, the key and the fix — a table is never dropped silently.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Field,
    StrictInt,
    StrictStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from nightshift_core.yamlconf import (
    CONFIG_DIR,
    SQL_DIR,
    Catchup,
    Columns,
    ConfigError,
    ConfigModel,
    DagId,
    FileModel,
    Fix,
    Flag,
    Schedule,
    StartDate,
    Tags,
    ident,
    identifier,
    load_folder,
    parse,
    sql_file,
    text,
)

SYNC_DIR = CONFIG_DIR / "syncs"
_DURATION = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
Mode = Literal["full", "incremental", "cdc"]
_MODES: tuple[str, ...] = ("full", "incremental", "cdc")


class SyncConfigError(ConfigError):
    """A bad sync definition."""


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    match = _DURATION.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"{{key}} is {value!r}; write a duration like 10m, 2h or 1d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


_DURATION_SCHEMA = {"type": "string", "pattern": r"^\s*\d+\s*[smhd]\s*$", "examples": ["10m", "2h", "1d"]}
Duration = Annotated[timedelta, BeforeValidator(_duration), WithJsonSchema(_DURATION_SCHEMA)]


def _reconcile(value: Any) -> timedelta | None:
    """``true``: every run (None); ``false``: only when a run asks (0); a duration: when a run crosses it."""
    if value is True or value is None:
        return None
    if value is False:
        return timedelta(0)
    every = _duration(value)
    if every <= timedelta(0):
        raise ValueError("{key} must be true, false or a positive duration")
    return every


class TableSync(ConfigModel):
    """One source table and how it is synced (a plain name: a full copy merged on ``primary_key``)."""

    name: ident("table name", "Source table")
    mode: Annotated[Mode, Fix("{key} is {value}; use 'full', 'incremental' or 'cdc'")] = Field(
        "full",
        description="full: every row each run; incremental: rows whose cursor moved; cdc: the binlog/WAL "
        "(default: source.mode)",
    )
    primary_key: Columns = Field(
        (), description="Merge key column(s); a mode: full table with no key at all says primary_key: []"
    )
    cursor: ident("column name", "incremental: a column that grows on every insert/update") | None = None
    lag: Duration = Field(timedelta(0), description="incremental: re-read this far behind the last cursor")
    exclude: Columns = Field((), description="Columns not synced")
    target_table: ident("table name", "Warehouse table (default: the source table's name)") = ""
    detect_deletes: Flag = Field(False, description="incremental: find rows deleted at the source")
    # incremental only: None = every run, 0 = only when a run asks (Param), else when a run crosses it
    reconcile_every: Annotated[
        timedelta | None,
        BeforeValidator(_reconcile),
        WithJsonSchema({"anyOf": [{"type": "boolean"}, _DURATION_SCHEMA]}),
    ] = Field(
        None,
        alias="reconcile",
        json_schema_extra={"default": True},
        description="incremental: compare with the source every run (true), only when asked (false), or "
        "when a run crosses this duration",
    )
    # cdc only: a source delete marks the row (soft, _nightshift_deleted_at) or removes it (hard)
    deletes: Annotated[
        Literal["soft", "hard"],
        Fix(
            "{key} is {value}; use soft (the row stays, _nightshift_deleted_at set to the delete's commit "
            "time) or hard (the row is removed)"
        ),
    ] = Field("soft", description="cdc: soft keeps the row with _nightshift_deleted_at; hard removes it")
    # BigQuery: the day-partitioning column of a target the sync creates (a DATE/DATETIME/TIMESTAMP
    # column whose value never changes for a row); merges are bounded to the partitions they touch
    partition_by: (
        ident("column name", "BigQuery: day-partition a target the sync creates by this column") | None
    ) = None

    @classmethod
    def prepare(cls, data: dict, info: ValidationInfo) -> dict:
        name = data.get("name")
        data.setdefault("target_table", name)
        mode = data.get("mode", "full")
        pk = data.get("primary_key") or []
        # A table with no key at all is replaced whole on every run: it says so with an explicit `primary_key: []`.
        keyless = mode == "full" and data.get("primary_key") == []
        if not isinstance(pk, list | str) or not (pk or keyless):
            raise ValueError(
                "{key}.primary_key is missing: every table is merged on its primary key; list its column(s), "
                "e.g. primary_key: [orderNumber] (a mode: full table with no key at all: primary_key: [])"
            )
        return data

    @model_validator(mode="after")
    def _mode_rules(self) -> TableSync:
        if self.mode == "incremental" and self.cursor is None:
            raise ValueError(
                "{key}.cursor is missing: incremental tables need a column that grows on every insert/update "
                "(e.g. cursor: updatedAt), or use mode: full"
            )
        if self.mode != "incremental" and self.cursor is not None:
            raise ValueError("{key}.cursor is only used with mode: incremental")
        clash = set(self.exclude) & (set(self.primary_key) | {self.cursor})
        if clash:
            raise ValueError(f"{{key}}.exclude removes key/cursor column(s) {sorted(clash)}")
        if self.detect_deletes and self.mode != "incremental":
            raise ValueError("{key}.detect_deletes only applies to mode: incremental")
        if "deletes" in self.model_fields_set and self.mode != "cdc":
            raise ValueError(
                "{key}.deletes only applies to mode: cdc (incremental tables see deletes through detect_deletes)"
            )
        if self.reconcile_every is not None and self.mode != "incremental":
            raise ValueError("{key}.reconcile only applies to mode: incremental")
        if self.partition_by is not None and self.partition_by in self.exclude:
            raise ValueError(f"{{key}}.partition_by column {self.partition_by!r} is excluded")
        return self


class PostLoad(ConfigModel):
    """A query run after the tables are synced, replacing ``target`` on every run."""

    labelled: ClassVar[bool] = False

    name: ident("task name", "Task id of the step")
    sql: text("Query file under include/sql")
    target: text("dataset.table replaced on every run")

    @field_validator("sql")
    @classmethod
    def _sql_under_include_sql(cls, sql: str) -> str:
        return sql_file(sql, SQL_DIR)

    @field_validator("target")
    @classmethod
    def _dataset_table(cls, target: str) -> str:
        parts = target.split(".")
        if len(parts) != 2:
            raise ValueError(f"{{key}}: expected 'dataset.table', got {target!r}")
        for part in parts:
            identifier(part, "name")
        return target


def _positive(description: str) -> Any:
    return Annotated[StrictInt, Field(ge=1, description=description), Fix("{key} must be a positive integer")]


class Source(ConfigModel):
    """The source database."""

    conn_id: text("Airflow connection of the source database", "source.conn_id must be a non-empty string")
    pool: Annotated[
        StrictStr | None, Field(min_length=1), Fix("source.pool must be a non-empty string (or leave it out)")
    ] = Field(None, description="Airflow pool limiting source connections (default: <conn_id>_pool)")
    max_connections: _positive("Size of that pool: source connections at once") = 4
    batch_rows: Annotated[StrictInt, Field(ge=100), Fix("{key} must be an integer >= 100")] = Field(
        50_000, description="Rows per Arrow batch / Parquet row group"
    )
    timezone: StrictStr | None = Field(
        None, description="IANA zone the source writes DATETIME values in (null: UTC)"
    )
    reader: Annotated[
        Literal["auto", "arrow", "dbapi"], Fix("{key} must be auto, arrow or dbapi, got {value}")
    ] = Field(
        "auto", description="auto: the Arrow reader (connectorx) where it reads a table exactly; arrow; dbapi"
    )
    read_partitions: _positive("Arrow reader connections per table (key ranges read at once)") = 1
    mode: Annotated[
        Mode, Fix("{key} is {value}; use full, incremental or cdc (the mode of every table that sets none)")
    ] = Field("full", description="The mode of every table that sets none")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, timezone: str | None) -> str | None:
        if timezone is not None:
            from nightshift_core.sync.clock import zone

            try:
                zone(timezone)
            except ValueError as exc:
                raise ValueError(f"{{key}}: {exc}") from None
        return timezone

    @model_validator(mode="after")
    def _connections(self) -> Source:
        reader = self.reader
        if reader == "auto" and "read_partitions" not in self.model_fields_set and self.max_connections < 2:
            reader = "dbapi"  # a one-connection pool: the task's own connection reads too
        if reader != "dbapi" and self.read_partitions + 1 > self.max_connections:
            raise ValueError(
                f"source.read_partitions {self.read_partitions} needs {self.read_partitions + 1} connections per "
                "table (the reader's plus the task's own) but source.max_connections is "
                f"{self.max_connections}: lower read_partitions"
            )
        pool = self.pool or f"{self.conn_id}_pool"  # the default pool is named after the connection
        return self.model_copy(update={"reader": reader, "pool": pool})


class Target(ConfigModel):
    """The warehouse side."""

    dataset: ident("dataset name", "Warehouse dataset the tables are written to")


class Quality(ConfigModel):
    """Checks after each run."""

    row_count_tolerance: Annotated[
        float,
        Field(ge=0, lt=1, strict=True),
        Fix("quality.row_count_tolerance must be a fraction in [0, 1), e.g. 0.001"),
    ] = Field(0.0, description="Share by which the warehouse row count may differ from the source's")


def _table_names_too(schema: dict[str, Any]) -> None:
    """In the JSON Schema a table may also be just its name, as loading allows."""
    schema["items"] = {"anyOf": [schema["items"], {"type": "string"}]}
    schema["minItems"] = 1


class SyncConfig(FileModel):
    """A sync definition: ``include/config/syncs/<name>.yaml``, one DAG per file."""

    top_level: ClassVar[str] = " in top level"

    dag_id: DagId = Field(None, description="The DAG's id", json_schema_extra={"default": "sync_<file name>"})
    description: StrictStr = Field(
        "", description="One line shown in the UI (default: Sync <conn_id> into <dataset>)"
    )
    source: Annotated[Source, Fix("'source' must be a mapping with conn_id")]
    schedule: Schedule = "@daily"
    start_date: StartDate
    catchup: Catchup
    target: Annotated[Target, Fix("'target' must be a mapping with dataset")]
    tables: tuple[TableSync, ...] = Field(description="Tables to sync", json_schema_extra=_table_names_too)
    post_load: tuple[PostLoad, ...] = ()
    tags: Tags = ("nightshift", "sync", "warehouse")
    quality: Quality = Quality()

    @classmethod
    def prepare(cls, data: dict, info: ValidationInfo) -> dict:
        data = super().prepare(data, info)
        data.setdefault("dag_id", f"sync_{data['path'].stem}")
        tables = data.get("tables")
        if not isinstance(tables, list) or not tables:
            raise ValueError("'tables' must be a non-empty list of tables to sync")
        source = data.get("source")
        mode = source.get("mode", "full") if isinstance(source, dict) else "full"
        default = {"mode": mode} if mode in _MODES else {}
        data["tables"] = [
            {**default, "name": t} if isinstance(t, str) else {**default, **t} if isinstance(t, dict) else t
            for t in tables
        ]
        if data.get("post_load") is None:
            data.pop("post_load", None)
        return data

    @model_validator(mode="after")
    def _one_target_per_table(self) -> SyncConfig:
        names: set[str] = set()
        for i, table in enumerate(self.tables):
            if table.target_table in names:
                raise ValueError(f"tables[{i}]: target table {table.target_table!r} appears twice")
            names.add(table.target_table)
        if not self.description:
            description = f"Sync {self.source.conn_id} into {self.target.dataset}"
            return self.model_copy(update={"description": description})
        return self


def load_all(directory: Path = SYNC_DIR) -> list[SyncConfig]:
    """Every definition in ``directory``; all problems of all files in one error."""
    return load_folder(directory, load, SyncConfigError, id_key="dag_id", what="sync")


def load(path: Path) -> SyncConfig:
    """Read and validate ``path``; every problem is a :class:`SyncConfigError`."""
    return parse(SyncConfig, path, SyncConfigError)
