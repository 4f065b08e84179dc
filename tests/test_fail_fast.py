"""Errors a retry cannot heal make exactly one try; errors that can heal keep the DAG's retries.

Each DAG runs under real Airflow (`airflow dags test`, its own metadata DB) with retries=2 and no
retry delay; the metadata DB then says how many tries each task made.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration

DAG_FILE = """
import datetime as dt
from airflow.sdk import DAG
from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator

for dag_id, conn_id in (("probe_permanent", "probe_source"), ("probe_transient", "probe_dead")):
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2026, 1, 1)):
        SqlToWarehouseOperator(
            task_id="load", source_conn_id=conn_id, table="typed", dataset="probe", primary_key=["id"],
            definition="include/config/syncs/probe.yaml", retries=2, retry_delay=dt.timedelta(0),
        )
"""


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    """One metadata DB (one `airflow db migrate`) for both DAGs: each test runs its own DAG and reads only
    that DAG's rows."""
    from support.net import free_port
    from support.services import require, scratch_database

    with scratch_database(require("postgres"), "ns_fail") as db:
        db.conn.cursor().execute("CREATE TABLE typed (id INT PRIMARY KEY, span int4range)")
        yield from _airflow(tmp_path_factory.mktemp("fail-fast"), db.airflow_conn, free_port())


def _airflow(tmp_path, source_conn: str, dead_port: int):
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "probe.py").write_text(DAG_FILE)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins")]),
            "AIRFLOW_CONN_PROBE_SOURCE": source_conn,
            # nothing listens there: a connection error, which a retry may heal
            "AIRFLOW_CONN_PROBE_DEAD": json.dumps(
                {
                    "conn_type": "mysql",
                    "host": "127.0.0.1",
                    "port": dead_port,
                    "login": "root",
                    "schema": "x",
                }
            ),
            "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE": json.dumps(
                {"conn_type": "generic", "extra": {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")}}
            ),
        }
    )
    airflow = [sys.executable, "-m", "airflow"]
    migrate = subprocess.run(
        [*airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    yield env, home / "airflow.db"


def run_dag(env: dict[str, str], dag_id: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", dag_id], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    return result.stdout + result.stderr


def tries(db: Path, dag_id: str) -> tuple[str, int]:
    with sqlite3.connect(db) as conn:
        state, number = conn.execute(
            "SELECT state, try_number FROM task_instance WHERE dag_id = ? AND task_id = 'load'", (dag_id,)
        ).fetchone()
        history = conn.execute(
            "SELECT COUNT(*) FROM task_instance_history WHERE dag_id = ?", (dag_id,)
        ).fetchone()
    assert history[0] == number - 1, "every earlier try is in the history"
    return state, number


def test_an_unsupported_column_fails_on_the_first_try(airflow_env):
    env, db = airflow_env
    output = run_dag(env, "probe_permanent")
    assert tries(db, "probe_permanent") == ("failed", 1)
    assert "AirflowFailException" in output
    assert "set `exclude: [span]` on table 'typed' in include/config/syncs/probe.yaml" in output


def test_a_connection_error_still_uses_every_retry(airflow_env):
    env, db = airflow_env
    output = run_dag(env, "probe_transient")
    assert tries(db, "probe_transient") == ("failed", 3)
    assert "OperationalError" in output and "AirflowFailException" not in output
