"""Build one sync DAG per ``include/config/syncs/*.yaml`` (parse time: files only, no I/O)."""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import DAG, Asset, Param

from nightshift.dag_defaults import default_args
from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator
from nightshift.operators.warehouse_ops import SyncQualityGateOperator, WarehouseQueryToTableOperator
from nightshift_core.sync.config import SyncConfig, load_all

DOC = """
### {dag_id}

Syncs connection `{conn_id}` into warehouse dataset `{dataset}` (definition:
`include/config/syncs/{file}`), then checks the loads and rebuilds the aggregates.

| table | mode | primary key | cursor | lag |
|---|---|---|---|---|
{rows}

- Source connections are limited by pool `{pool}`.
- Each synced table is an Asset (`{dataset}.<table>`), so downstream DAGs can be data-aware.
- Manual runs: `tables` limits the run to some tables, `full_refresh` reloads them whole,
  `reconcile` compares every incremental table with its source and repairs what a window missed.
"""


def build(config: SyncConfig) -> DAG:
    source, dataset = config.source, config.target.dataset
    rows = "\n".join(
        f"| {t.name} | {t.mode} | {', '.join(t.primary_key)} | {t.cursor or ''} | {t.lag} |"
        for t in config.tables
    )
    doc = DOC.format(
        dag_id=config.dag_id, conn_id=source.conn_id, dataset=dataset, file=config.path.name,
        rows=rows, pool=source.pool,
    )  # fmt: skip
    with DAG(
        dag_id=config.dag_id,
        description=config.description,
        schedule=config.schedule,
        start_date=config.start_date,
        catchup=config.catchup,
        max_active_runs=1,
        tags=list(config.tags),
        doc_md=doc,
        default_args=default_args(),
        params={
            "tables": Param(
                [],
                type="array",
                items={"type": "string", "enum": [t.name for t in config.tables]},
                description="Sync only these tables (empty: all).",
            ),
            "full_refresh": Param(False, type="boolean", description="Reload the selected tables whole."),
            "reconcile": Param(
                False,
                type="boolean",
                description="Reconcile every incremental table now: compare the source's (key, cursor) pairs "
                "with the warehouse and re-read what the windows missed.",
            ),
        },
    ) as dag:
        loads = []
        for table in config.tables:
            loads.append(
                SqlToWarehouseOperator(
                    task_id=f"load_{table.target_table}",
                    source_conn_id=source.conn_id,
                    table=table.name,
                    dataset=dataset,
                    target_table=table.target_table,
                    mode=table.mode,
                    primary_key=table.primary_key,
                    cursor=table.cursor,
                    lag=table.lag,
                    exclude=table.exclude,
                    batch_rows=source.batch_rows,
                    full_refresh="{{ params.full_refresh }}",
                    only_tables="{{ params.tables | join(',') }}",
                    detect_deletes=table.detect_deletes,
                    deletes=table.deletes,
                    partition_by=table.partition_by,
                    definition=_shown(config.path),
                    source_timezone=source.timezone,
                    reconcile="{{ params.reconcile }}",
                    reconcile_every=table.reconcile_every,
                    also_synced=[t.name for t in config.tables if t.name != table.name],
                    reader=source.reader,
                    read_partitions=source.read_partitions,
                    pool=source.pool,
                    # the task's own connection plus the Arrow reader's: the pool counts them all
                    pool_slots=1 if source.reader == "dbapi" else 1 + source.read_partitions,
                    outlets=[Asset(name=f"{dataset}.{table.target_table}")],
                )
            )
        gate = SyncQualityGateOperator(
            task_id="quality_gate",
            load_results=[load.output for load in loads],
            primary_keys={f"{dataset}.{t.target_table}": t.primary_key for t in config.tables},
            cursors={f"{dataset}.{t.target_table}": t.cursor for t in config.tables if t.cursor},
            tolerance=config.quality.row_count_tolerance,
            trigger_rule="none_failed_min_one_success",
        )
        loads >> gate
        for post in config.post_load:
            gate >> WarehouseQueryToTableOperator(
                task_id=post.name,
                sql=post.sql,
                target=post.target,
                shape={"dataset": dataset},
                outlets=[Asset(name=post.target)],
            )
    return dag


def _shown(path: Path) -> str:
    """The definition's path as a user finds it: relative to the project when inside it."""
    root = Path(__file__).resolve().parents[2]
    path = path.resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def build_all() -> list[DAG]:
    """All sync DAGs; NIGHTSHIFT_SYNC_DIR points at another definitions folder (tests)."""
    directory = os.environ.get("NIGHTSHIFT_SYNC_DIR")
    return [build(config) for config in (load_all(Path(directory)) if directory else load_all())]
