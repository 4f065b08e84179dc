"""The analysts' dbt project (include/dbt) as one Airflow DAG, rendered by astronomer-cosmos.

Parse time reads two files and nothing else: the manifest `dbt parse` wrote at setup
(scripts/dbt_setup.sh: bootstrap, CI, Docker build) and the project's files, to check the manifest
is not stale. dbt itself runs only inside tasks, from its own virtualenv.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, Param
from airflow.timetables.trigger import CronTriggerTimetable
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior
from cosmos.operators.local import DbtSourceLocalOperator, DbtTestLocalOperator

from nightshift.dag_defaults import default_args
from nightshift.dbt_project import (
    PROFILE_NAME,
    TARGET_NAME,
    WarehouseProfileMapping,
    dbt_executable,
    dbt_isolation,
    hold_warehouse_lock,
    raise_on_problems,
    release_warehouse_lock,
)
from nightshift_core import dbt as core

DAG_ID = "dbt_classicmodels"
SOURCE = "classicmodels"
# The synced tables the models read: a sync run that refreshed them all starts this DAG.
UPSTREAM = ("employees", "customers", "products", "orders", "orderdetails")
# How long after a midnight an unpaused DAG without runs still starts that midnight's run: none.
FIRST_RUN_NOT_BEFORE = dt.timedelta(0)

DOC = """
### dbt_classicmodels

The analysts' dbt project in `include/dbt/`, run after each `sync_classicmodels` run has refreshed
`{upstream}`, and daily at 00:00 UTC for the day before (so Airflow's backfill can re-run chosen days).

1. `source_freshness` — `dbt source freshness` on the `classicmodels` sources.
2. `audit_sources` — every dbt test on the sources (NULL keys, unique keys, allowed values,
   relationships, completeness per row, lengths and ranges). A failure stops here: the models and the
   reports that read them do not run, the failure e-mail names each test and its failing-row count,
   and the rows are kept in `nightshift_audit.<test name>`.
3. `models` — one `dbt build` task per model (the model, then its tests), in dependency order; each
   model is an Asset (`<dataset>.<table>`), e.g. `classicmodels_agg.top_employees_by_sales`.

Partitioned models (`daily_sales`) replace exactly the days of the run's window: the days its data
interval touches (Param `days` widens it), or `window_start`/`window_end`. Never the clock.
Add a model: a `.sql` file and its YAML block under `include/dbt/models/` (docs/dbt.md, "Analysts: adding a model").
"""


def nightshift_window(dag_run: Any, params: dict[str, Any]) -> list[str]:
    """[start, end) of the run, for the dbt vars window_start/window_end (a template macro).

    From the run's data interval (None for a manual run in Airflow 3: then its run_after), or the Params.
    """
    return list(
        core.window(
            getattr(dag_run, "data_interval_start", None),
            getattr(dag_run, "data_interval_end", None),
            getattr(dag_run, "run_after", None),
            days=int(params.get("days") or 1),
            start=params.get("window_start") or None,
            end=params.get("window_end") or None,
        )
    )  # fmt: skip


WINDOW_VARS = {
    "window_start": "{{ nightshift_window(dag_run, params)[0] }}",
    "window_end": "{{ nightshift_window(dag_run, params)[1] }}",
}


def build() -> DAG:
    cosmos_log = logging.getLogger("cosmos")
    level = cosmos_log.level
    # Cosmos logs ~10 INFO lines per parse; keep the dag-processor's log short.
    cosmos_log.setLevel(logging.WARNING)
    try:
        return _build()
    finally:
        cosmos_log.setLevel(level)


def _build() -> DAG:
    manifest = core.manifest_path()  # stale or missing: an import error saying what to run
    project = core.PROJECT_DIR
    profile = ProfileConfig(
        profile_name=PROFILE_NAME,
        target_name=TARGET_NAME,
        profile_mapping=WarehouseProfileMapping(conn_id="nightshift_warehouse"),
    )
    common: dict[str, Any] = {
        "profile_config": profile,
        "project_dir": str(project),
        "dbt_executable_path": dbt_executable(),
        "invocation_mode": InvocationMode.SUBPROCESS,
        "install_deps": False,
        "callback": raise_on_problems,
        "vars": WINDOW_VARS,
        **dbt_isolation(),
    }
    with DAG(
        dag_id=DAG_ID,
        description="dbt audits and models over the synced classicmodels tables (astronomer-cosmos)",
        schedule=AssetOrTimeSchedule(
            # Midnight UTC, covering the day before: a daily run (and each backfill run) rebuilds that day.
            # Unpausing must not start last midnight's run before any sync has loaded the sources; the
            # first timed run is the next midnight, and the first sync's Assets start one sooner. So no
            # start_date (with one, catchup=False starts last midnight's run at once), and
            # run_immediately=timedelta(0): Airflow 3.3 treats run_immediately=False like None, which
            # still starts last midnight's run when unpaused within 10 % of a period (2 h 24 min) after it.
            timetable=CronTriggerTimetable(
                "0 0 * * *",
                timezone="UTC",
                interval=dt.timedelta(days=1),
                run_immediately=FIRST_RUN_NOT_BEFORE,
            ),
            assets=[Asset(name=f"{SOURCE}.{table}") for table in UPSTREAM],
        ),
        start_date=None,
        catchup=False,
        max_active_runs=1,
        tags=["nightshift", "warehouse", "dbt"],
        doc_md=DOC.format(upstream=", ".join(f"{SOURCE}.{t}" for t in UPSTREAM)),
        default_args=_task_defaults(),
        user_defined_macros={"nightshift_window": nightshift_window},
        params={
            "days": Param(
                1,
                type="integer",
                minimum=1,
                maximum=366,
                description="Rebuild at least this many days of the partitioned models, ending with the "
                "last day of the run's data interval (1: exactly the days the interval touches).",
            ),
            "window_start": Param(
                None,
                type=["null", "string"],
                format="date",
                description="With window_end: rebuild the partitioned models for [window_start, window_end) "
                "instead (YYYY-MM-DD).",
            ),
            "window_end": Param(
                None,
                type=["null", "string"],
                format="date",
                description="End of the window (exclusive, YYYY-MM-DD); give window_start too.",
            ),
            "full_refresh": Param(
                False, type="boolean", description="Rebuild the incremental models from all their history."
            ),
        },  # fmt: skip
    ) as dag:
        freshness = DbtSourceLocalOperator(task_id="source_freshness", select=f"source:{SOURCE}", **common)
        audits = DbtTestLocalOperator(task_id="audit_sources", select=f"source:{SOURCE}", **common)
        models = DbtTaskGroup(
            group_id="models",
            project_config=ProjectConfig(
                dbt_project_path=project, manifest_path=manifest, install_dbt_deps=False, partial_parse=True
            ),
            profile_config=profile,
            execution_config=ExecutionConfig(
                execution_mode=ExecutionMode.LOCAL,
                invocation_mode=InvocationMode.SUBPROCESS,
                dbt_executable_path=dbt_executable(),
            ),
            render_config=RenderConfig(
                load_method=LoadMode.DBT_MANIFEST,
                test_behavior=TestBehavior.BUILD,
                select=["path:models"],
                emit_datasets=False,
                enable_owner_inheritance=False,
            ),
            operator_args={
                "install_deps": False,
                "callback": raise_on_problems,
                "vars": WINDOW_VARS,
                "full_refresh": "{{ params.full_refresh }}",
                **dbt_isolation(),
            },
        )
        _declare_model_assets(models)
        _share_partial_parse(models, freshness, audits)
        freshness >> audits >> models
    return dag


def _task_defaults() -> dict[str, Any]:
    """The shared defaults, plus the DuckDB file lock around each dbt invocation (released on every outcome)."""
    args = default_args(pre_execute=hold_warehouse_lock, post_execute=release_warehouse_lock)
    args["on_failure_callback"] = [release_warehouse_lock, *args["on_failure_callback"]]
    args["on_retry_callback"] = [release_warehouse_lock]
    return args


def _share_partial_parse(group: DbtTaskGroup, *tasks: Any) -> None:
    """The tasks before the group keep dbt's parse in the group's cache folder too (Cosmos gives one only
    to the tasks it renders): every task of a run then reuses the parse of the one before it, as dbt
    parses a project again from scratch only when the run's vars or profile differ."""
    cache_dir = next((t.cache_dir for t in group.tasks_map.values() if getattr(t, "cache_dir", None)), None)
    for task in tasks:
        task.cache_dir = cache_dir


def _declare_model_assets(group: DbtTaskGroup) -> None:
    """Each model's task updates the Asset ``<schema>.<table>``, as the sync's tables do."""
    for unique_id, task in group.tasks_map.items():
        node = group.dbt_graph.filtered_nodes.get(unique_id)
        if (
            node is None
            or not unique_id.startswith("model.")
            or node.config.get("materialized") == "ephemeral"
        ):
            continue
        schema = node.config.get("schema") or "nightshift_dbt"
        table = node.config.get("alias") or node.resource_name
        task.outlets = [*task.outlets, Asset(name=f"{schema}.{table}")]


def build_all() -> list[DAG]:
    return [build()]
