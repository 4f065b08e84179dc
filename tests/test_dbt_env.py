"""dbt runs with an explicit environment, not its worker's: a model cannot read Airflow's keys.

A model in a copy of the project reads ``env_var("AIRFLOW__API_AUTH__JWT_SECRET", "none")`` into a
table; dbt really runs (its own venv) through a Cosmos task built with the shipped DAG's dbt
operator settings, by Airflow's task runner (``dag.test()``), on a DuckDB warehouse.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nightshift_core import dbt as core

SENTINEL = "jwt-secret-that-must-not-reach-dbt"
PROBE = "dbt-settings-do-reach-dbt"
MODEL = """\
select
    '{{ env_var("AIRFLOW__API_AUTH__JWT_SECRET", "none") }}' as jwt_secret,
    '{{ env_var("AIRFLOW__CORE__FERNET_KEY", "none") }}' as fernet_key,
    '{{ env_var("DBT_NIGHTSHIFT_PROBE", "none") }}' as dbt_probe
"""
# A one-task DAG: dbt run of the probe model, with the operator settings of the shipped DAG's tasks.
DAG_FILE = """
import datetime as dt
import os

from cosmos.constants import InvocationMode
from cosmos.operators.local import DbtRunLocalOperator
from airflow.sdk import DAG

from nightshift.dbt_dags import build

shipped = build().get_task("models.top_employees_by_sales_model_build")
with DAG("dbt_env_probe", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)):
    DbtRunLocalOperator(
        task_id="env_probe",
        project_dir=os.environ["NIGHTSHIFT_PROBE_PROJECT"],
        select=["env_probe"],
        profile_config=shipped.profile_config,
        dbt_executable_path=shipped.dbt_executable_path,
        invocation_mode=InvocationMode.SUBPROCESS,
        install_deps=False,
        env=shipped.env,
        append_env=shipped.append_env,
    )
"""

pytestmark = pytest.mark.timeout(600)


def _dbt_tasks(dag) -> list:
    return [task for task in dag.tasks if hasattr(task, "append_env")]


def test_every_dbt_task_gets_the_same_explicit_environment(monkeypatch):
    from nightshift.dbt_dags import build
    from nightshift.dbt_project import dbt_env

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", SENTINEL)
    monkeypatch.setenv("DBT_NIGHTSHIFT_PROBE", PROBE)
    tasks = _dbt_tasks(build())
    assert len(tasks) >= 3, [t.task_id for t in tasks]
    for task in tasks:
        assert task.append_env is False, f"{task.task_id} hands dbt the worker's environment"
        assert task.env == dbt_env(), task.task_id
    env = tasks[0].env
    assert env["DBT_NIGHTSHIFT_PROBE"] == PROBE and "PATH" in env and "HOME" in env
    assert not {name for name in env if name.startswith("AIRFLOW")}, sorted(env)


@pytest.fixture
def probe_dag(monkeypatch, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    project = tmp_path / "dbt"
    shutil.copytree(
        core.PROJECT_DIR, project, ignore=shutil.ignore_patterns("logs", "target", "dbt_packages")
    )
    (project / "models" / "env_probe.sql").write_text(MODEL)
    warehouse = tmp_path / "warehouse.duckdb"
    conn = {"conn_type": "generic", "extra": {"engine": "duckdb", "path": str(warehouse)}}
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False")
    monkeypatch.setenv("NIGHTSHIFT_PROBE_PROJECT", str(project))
    # What a worker holds and dbt must not see; and a DBT_* setting it must see.
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", SENTINEL)
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", SENTINEL)
    monkeypatch.setenv("DBT_NIGHTSHIFT_PROBE", PROBE)
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "dbt_env_probe.py").write_text(DAG_FILE)
    bundle = {"name": "dbt-env-probe", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
              "kwargs": {"path": str(folder), "refresh_interval": 0}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([bundle]))
    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["dbt_env_probe"], warehouse


def test_a_model_reading_a_secret_variable_gets_nothing(probe_dag):
    import duckdb
    from airflow.utils import db

    dag, warehouse = probe_dag
    db.resetdb()
    run = dag.test()
    assert run.state == "success", "the probe model's dbt run failed (see the captured log)"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        row = con.execute("SELECT jwt_secret, fernet_key, dbt_probe FROM nightshift_dbt.env_probe").fetchone()
    assert row == ("none", "none", PROBE), row


def test_the_probe_model_is_not_in_the_shipped_project():
    assert not list(Path(core.PROJECT_DIR).rglob("env_probe*"))
