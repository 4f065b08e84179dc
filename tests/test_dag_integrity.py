"""DAG integrity and policy, over every DAG in dags/.

Parsing runs with network, database, Variable and Connection access blocked
(tests/support/parse_guard.py): a parse-time lookup is an import error here, not mocked away.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest
import yaml
from support.parse_guard import no_io_while_parsing

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"
POLICY = yaml.safe_load((ROOT / "include/config/dag_policy.yaml").read_text())
DAG_FILES = sorted(p for p in DAGS.rglob("*.py") if not p.name.startswith("_"))


def parse(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    with no_io_while_parsing():
        return DagBag(dag_folder=str(folder))


@pytest.fixture(scope="module")
def dagbag():
    return parse(DAGS)


def _dags(dagbag):
    return sorted(dagbag.dags.values(), key=lambda d: d.dag_id)


def test_there_are_dags(dagbag):
    assert DAG_FILES, "no DAG files found"
    assert {"nightshift_selftest", "sync_classicmodels", "report_daily_sales"} <= set(dagbag.dag_ids)


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, "\n".join(f"{f}:\n{e}" for f, e in dagbag.import_errors.items())


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parse_time_is_fast_with_warm_imports(path: Path):
    from airflow.dag_processing.dagbag import DagBag

    with no_io_while_parsing():
        DagBag(dag_folder=str(path))  # warm the imports
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            bag = DagBag(dag_folder=str(path))
            timings.append((time.perf_counter() - started) * 1000)
    assert not bag.import_errors
    assert min(timings) < POLICY["max_parse_ms"], f"{path.name} parses in {min(timings):.1f} ms"


def test_owner_tags_and_docs(dagbag):
    for dag in _dags(dagbag):
        assert dag.tags, f"{dag.dag_id}: add tags from {POLICY['tags']}"
        unknown = set(dag.tags) - set(POLICY["tags"])
        assert not unknown, f"{dag.dag_id}: tags {sorted(unknown)} not in include/config/dag_policy.yaml"
        assert dag.doc_md and dag.doc_md.strip(), f"{dag.dag_id}: add doc_md"
        for task in dag.tasks:
            assert task.owner in POLICY["owners"], f"{dag.dag_id}.{task.task_id}: owner {task.owner!r}"


def test_every_task_retries_times_out_and_alerts(dagbag):
    from nightshift.notifiers.email import FailureEmailNotifier

    for dag in _dags(dagbag):
        for task in dag.tasks:
            where = f"{dag.dag_id}.{task.task_id}"
            assert task.retries >= POLICY["min_retries"], f"{where}: retries={task.retries}"
            assert task.execution_timeout is not None, f"{where}: set execution_timeout"
            callbacks = task.on_failure_callback or []
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert any(isinstance(cb, FailureEmailNotifier) for cb in callbacks), (
                f"{where}: no FailureEmailNotifier in on_failure_callback (use nightshift.dag_defaults)"
            )


def test_start_date_is_static(dagbag):
    again = parse(DAGS)
    for dag in _dags(dagbag):
        # None only where it is meant: no catch-up, and no run when the DAG is first unpaused.
        assert dag.start_date is not None or not dag.catchup, f"{dag.dag_id}: set a start_date"
        assert again.dags[dag.dag_id].start_date == dag.start_date, (
            f"{dag.dag_id}: start_date changes per parse"
        )


def test_params_have_schemas_and_valid_defaults(dagbag):
    for dag in _dags(dagbag):
        for name, param in dag.params.items():
            param = dag.params.get_param(name)
            assert param.schema.get("type") or param.schema.get("enum"), (
                f"{dag.dag_id}: Param {name!r} needs a type"
            )
            assert param.description, f"{dag.dag_id}: Param {name!r} needs a description"
        dag.params.validate()


def _dag_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in ("dag", "DAG"):
                yield node


# DAG files and the builders they call (factories such as nightshift/sync_dags.py).
DAG_SOURCES = DAG_FILES + sorted((ROOT / "plugins/nightshift").glob("*_dags.py"))


def test_every_dag_file_builds_dags_somewhere():
    for path in DAG_FILES:
        tree = ast.parse(path.read_text())
        builders = [
            n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").endswith("_dags")
        ]
        assert list(_dag_calls(tree)) or builders, f"{path.name}: no dag()/DAG() call and no *_dags builder"


@pytest.mark.parametrize("path", DAG_SOURCES, ids=lambda p: p.name)
def test_schedule_start_date_and_catchup_are_explicit(path: Path):
    calls = list(_dag_calls(ast.parse(path.read_text())))
    for call in calls:
        given = {kw.arg for kw in call.keywords}
        for required in ("schedule", "start_date", "catchup", "default_args", "doc_md"):
            assert required in given, f"{path.name}:{call.lineno}: pass {required}= explicitly"
        start = next(kw.value for kw in call.keywords if kw.arg == "start_date")
        text = ast.unparse(start)
        assert not any(s in text for s in ("now(", "today(", "days_ago", "utcnow")), (
            f"{path.name}:{call.lineno}: start_date must be a fixed date, got {text}"
        )


# The guard itself must catch what it promises to catch.
BAD_DAGS = {
    "variable": "from airflow.sdk import Variable\nX = Variable.get('nightshift_x', default='fallback')\n",
    "connection": "from airflow.sdk import BaseHook\nC = BaseHook.get_connection('nightshift_smtp')\n",
    "http": "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:9/', timeout=1)\n",
    "database": "import sqlite3\nsqlite3.connect(':memory:')\n",
}


@pytest.mark.parametrize("kind", sorted(BAD_DAGS))
def test_guard_turns_parse_time_io_into_import_error(tmp_path: Path, kind: str):
    source = BAD_DAGS[kind] + (
        "import pendulum\nfrom airflow.sdk import dag\n"
        "@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)\n"
        "def bad():\n    pass\nbad()\n"
    )
    (tmp_path / f"bad_{kind}.py").write_text(source)
    bag = parse(tmp_path)
    assert bag.dag_ids == [], f"a DAG doing {kind} I/O at parse time was accepted"
    (error,) = bag.import_errors.values()
    assert "ParseTimeIOError" in error and "during DAG parsing" in error


def test_ruff_airflow_rules_clean():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "AIR", "--no-cache", "dags", "plugins", "include"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_pool_used_exists_in_the_local_settings(dagbag):
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
    pools = {p["pool_name"] for p in settings.get("pools") or []} | {"default_pool"}
    for dag in _dags(dagbag):
        for task in dag.tasks:
            assert task.pool in pools, (
                f"{dag.dag_id}.{task.task_id}: pool {task.pool!r} missing from airflow_settings.yaml"
            )


def test_sync_definitions_are_valid_and_their_connections_exist_locally():
    from nightshift_core.sync.config import SYNC_DIR, load, load_all

    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
    conns = {c["conn_id"] for c in settings["connections"]}
    configs = load_all()
    assert configs, "no sync definitions shipped"
    pools = {p["pool_name"]: p["pool_slot"] for p in settings["pools"]}
    for config in configs:
        source = config.source
        assert source.conn_id in conns, (
            f"{config.path.name}: connection {source.conn_id} not in airflow_settings.yaml"
        )
        # The pool is what limits source connections; max_connections documents its size.
        assert pools.get(source.pool) == source.max_connections, (
            f"{config.path.name}: pool {source.pool} has {pools.get(source.pool)} slots in "
            f"airflow_settings.yaml but source.max_connections is {source.max_connections}"
        )
    for example in sorted((SYNC_DIR / "examples").glob("*.yaml")):
        load(example)  # examples must stay valid too
