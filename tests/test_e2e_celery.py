"""End-to-end under a real CeleryExecutor (`make e2e`): every shipped DAG, checked by outcome.

scripts/e2e_stack.py starts Airflow as production runs it (PostgreSQL metadata DB and result
backend, Redis broker, api-server, scheduler, dag-processor, triggerer, one Celery worker per
queue: ``default`` and ``ml``). This module owns the stand-ins the DAGs talk to, all reached
through ``AIRFLOW_CONN_*``: the classicmodels source generated into MariaDB, the BigQuery
emulator as the warehouse, the fake Google Sheets API, the mail catcher, the Reddit replay
server. It unpauses every DAG over the REST API v2 (JWT) and runs each once as `make run` does
(``local_stack.trigger_all``), waits, and checks the runs, the queues and workers that ran them,
the outcomes, and the UI in headless Chromium.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import e2e_stack
import local_stack
import pytest
from support.bq_emulator import BqEmulator, start_emulator, stop_emulator
from support.fake_sheets import FakeSheets, use_google_connection
from support.labelling import answer, first_field_positive, open_requests
from support.net import free_port
from support.runs import extra_runs
from support.services import require

from nightshift_core.local.mail_catcher import read_messages

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "test-output" / "e2e"
RUNTIME = ROOT / ".nightshift" / "e2e"  # fixed: a killed run's leftovers are stopped by the next one
LABELS_DIR = ROOT.parent / "shared" / "data" / "sentiment"
SOURCE_DB = "nightshift_e2e_classicmodels"
MLFLOW_DB = "nightshift_e2e_mlflow"  # the model registry on PostgreSQL, as in production
SHEET_KEY = "1nightshiftE2eDailySalesSpreadsheet"
RETRAIN_DAG = "sentiment_retrain"
LABELLING_DAG = "sentiment_labelling"
LABELLER, OP, VIEWER = "labeller", "op", "viewer"
REPORT_DAG = "report_daily_sales"
PROBE_POOL = "reddit_api"
ML_QUEUE = "ml"
RUNS_TIMEOUT_S = 480
pytestmark = pytest.mark.stack


@dataclass
class E2E:
    """The running stack and its stand-ins, after every triggered run has finished."""

    config: e2e_stack.E2EConfig
    api: local_stack.Api
    env: dict[str, str]
    dags: dict[str, bool]
    triggered: local_stack.Triggered
    #: when trigger_all returned (its runs had finished)
    triggered_until: dt.datetime
    emulator: BqEmulator
    sheets: FakeSheets
    source_counts: dict[str, int]
    _runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _tis: list[dict[str, Any]] | None = None

    @property
    def runtime(self) -> Path:
        return self.config.runtime

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's runs (read once: the stack is idle once the fixture yields)."""
        if dag_id not in self._runs:
            self._runs[dag_id] = self.api.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
        return self._runs[dag_id]

    def task_instances(self) -> list[dict[str, Any]]:
        """Every task instance of every run of the shipped DAGs (read once)."""
        if self._tis is None:
            self._tis = []
            for dag_id in self.dags:
                for run in self.runs(dag_id):
                    path = f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances?limit=1000"
                    self._tis += self.api.get(path)["task_instances"]
        return self._tis

    def warehouse(self, sql: str) -> list[dict[str, Any]]:
        client = self.emulator.client()
        return [dict(row.items()) for row in client.query(sql).result()]


def _classicmodels_on_mariadb(service) -> dict[str, int]:
    """(Re)create the source database and generate the sample into it; rows per table."""
    import MySQLdb

    from nightshift_core.sample import classicmodels

    admin = MySQLdb.connect(host=service.host, port=service.port, user="root", autocommit=True)
    try:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{SOURCE_DB}`")
        admin.cursor().execute(f"CREATE DATABASE `{SOURCE_DB}` CHARACTER SET utf8mb4")
    finally:
        admin.close()
    conn, dialect = classicmodels.connect(f"mysql://root@{service.host}:{service.port}/{SOURCE_DB}")
    try:
        # Dated up to yesterday, as `make run` seeds it: the dbt source freshness checks pass.
        return classicmodels.generate(
            conn, dialect, scale=1.0, seed=42, anchor=dt.datetime.now(dt.UTC).date()
        )
    finally:
        conn.close()


def _drop_source(service) -> None:
    import MySQLdb

    admin = MySQLdb.connect(host=service.host, port=service.port, user="root", autocommit=True)
    try:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{SOURCE_DB}`")
    finally:
        admin.close()


def _mlflow_store(postgres) -> str:
    """A fresh PostgreSQL database for MLflow's tracking store and registry; its URI."""
    import psycopg2

    admin = psycopg2.connect(host=postgres.host, port=postgres.port, user="postgres", dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {MLFLOW_DB} WITH (FORCE)")
            cur.execute(f"CREATE DATABASE {MLFLOW_DB}")
    finally:
        admin.close()
    uri = f"postgresql://postgres@{postgres.host}:{postgres.port}/{MLFLOW_DB}"
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri).search_experiments()  # create the tables once, before any worker races
    return uri


def _connections(mariadb, emulator: BqEmulator, google_conn: str, smtp_port: int, reddit_port: int):
    """AIRFLOW_CONN_* for every connection the DAGs use, pointing at this module's stand-ins."""
    reddit = f"http://127.0.0.1:{reddit_port}"
    conns = {
        "classicmodels_source": {"conn_type": "mysql", "host": mariadb.host, "port": mariadb.port,
                                 "login": "root", "schema": SOURCE_DB},
        "nightshift_warehouse": {"conn_type": "generic", "extra": {
            "engine": "bigquery", "anonymous": True, "project": emulator.project,
            "api_endpoint": emulator.endpoint, "use_storage_api": False}},
        "nightshift_smtp": {"conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port, "extra": {
            "from_email": "nightshift-e2e@localhost", "disable_ssl": True, "disable_tls": True,
            "timeout": 10, "retry_limit": 1}},
        "reddit_default": {"conn_type": "generic", "login": "e2e-replay-client-id",
                           "password": "e2e-replay-not-a-secret", "extra": {
            "user_agent": "local:com.example.nightshift:v1.0 (by /u/nightshift_e2e)",
            "oauth_url": reddit, "reddit_url": reddit, "short_url": reddit}},
    }  # fmt: skip
    env = {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(value) for conn_id, value in conns.items()}
    env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"] = google_conn
    return env


def _save_logs(runtime: Path) -> None:
    logs = runtime / "logs"
    if not logs.exists():
        return
    target = OUTPUT / "logs"
    target.mkdir(parents=True, exist_ok=True)
    for log in logs.glob("*.log"):
        (target / log.name).write_bytes(log.read_bytes())


@pytest.fixture(scope="module")
def e2e(tmp_path_factory) -> Iterator[E2E]:
    started = time.monotonic()
    mariadb = require("mariadb")
    postgres = require("postgres")
    require("redis")
    if not LABELS_DIR.is_dir():
        pytest.fail(f"shared test data missing: {LABELS_DIR} (the retraining DAG reads its labels there)")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    emulator = start_emulator(tmp_path_factory.mktemp("e2e-bq"))
    sheets = FakeSheets().start()
    try:
        source_counts = _classicmodels_on_mariadb(mariadb)
        sheets.add_spreadsheet(SHEET_KEY, title="Nightshift e2e")
        smtp_port, reddit_port = free_port(), free_port()
        with pytest.MonkeyPatch.context() as mp:
            use_google_connection(mp, sheets)
            google_conn = os.environ["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"]
        config = e2e_stack.E2EConfig(
            runtime=RUNTIME,
            port=free_port(),
            smtp_port=smtp_port,
            reddit_port=reddit_port,
            log_server_ports={name: free_port() for name in e2e_stack.WORKERS},
            extra_env={
                **_connections(mariadb, emulator, google_conn, smtp_port, reddit_port),
                "AIRFLOW_VAR_NIGHTSHIFT_DAILY_SALES_SHEET": SHEET_KEY,
                "NIGHTSHIFT_LABELS_DIR": str(LABELS_DIR),
                "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(
                    {
                        "conn_type": "generic",
                        "extra": {
                            "tracking_uri": _mlflow_store(postgres),
                            "artifact_location": str(RUNTIME / "mlflow-artifacts"),
                        },
                    }
                ),
            },  # fmt: skip
        )
        dags = local_stack.expected_dag_ids()
        try:
            with e2e_stack.celery_stack(config) as env:
                api = local_stack.Api(local_stack.base_url(), local_stack.ADMIN_USER, config.admin_password)
                triggered = local_stack.trigger_all(
                    dags, timeout=RUNS_TIMEOUT_S, note="triggered by make e2e"
                )
                triggered_until = dt.datetime.now(dt.UTC)
                # A labelling run waits for a person: answer each request as it opens.
                e2e_stack.wait_until_idle(api, timeout=RUNS_TIMEOUT_S, each_poll=lambda: _label(api))
                # Freeze the picture the checks look at: an hour boundary while they run would
                # start scheduled runs, and the UI's "latest run" would be a running one.
                for dag_id in dags:
                    api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": True})
                e2e_stack.wait_until_idle(api, timeout=RUNS_TIMEOUT_S, each_poll=lambda: _label(api))
                print(f"e2e: stack up and every run finished after {time.monotonic() - started:.0f}s")
                yield E2E(config, api, env, dags, triggered, triggered_until, emulator, sheets, source_counts)
        finally:
            _save_logs(config.runtime)
    finally:
        sheets.stop()
        stop_emulator(emulator)
        _drop_source(mariadb)
        print(f"e2e: {time.monotonic() - started:.0f}s in all")


def _label(api: local_stack.Api) -> None:
    """Answer every open labelling request over the REST API: its first text positive."""
    for request in open_requests(api):
        answer(api, request, first_field_positive(request))


def _failed_tasks(e2e: E2E) -> list[str]:
    return sorted(
        f"{ti['dag_id']}.{ti['task_id']}[{ti['map_index']}] {ti['dag_run_id']}: {ti['state']} "
        f"(log: {e2e.runtime}/logs/tasks/dag_id={ti['dag_id']})"
        for ti in e2e.task_instances()
        if ti["state"] not in ("success", "skipped")
    )


def test_every_shipped_dag_ran_and_every_run_succeeded(e2e):
    states = {dag_id: Counter(r["state"] for r in e2e.runs(dag_id)) for dag_id in e2e.dags}
    assert all(states.values()), f"DAGs without any run: {[d for d, s in states.items() if not s]}"
    bad = {dag_id: dict(s) for dag_id, s in states.items() if set(s) != {"success"}}
    assert not bad, f"runs that did not succeed: {bad}; failed tasks: {_failed_tasks(e2e)}"
    assert e2e.triggered.ok
    # The trigger stood by one run of each DAG: the Asset-scheduled ones' first from their Assets, the
    # others' the scheduler's for their latest scheduled time (due when unpaused) or a manual one.
    assert set(e2e.triggered.runs) == set(e2e.dags)
    for dag_id, on_assets in e2e.dags.items():
        run = next(r for r in e2e.runs(dag_id) if r["dag_run_id"] == e2e.triggered.runs[dag_id])
        if on_assets:
            assert run["run_type"] == "asset_triggered", run
        else:
            assert run["run_type"] in ("manual", "scheduled") and run["note"].startswith(
                "triggered by make e2e"
            )
    # Asset-scheduled DAGs run only on their Assets, but for a timed run that came due while the
    # stack was up (a midnight during the test): none may date from before it (tests/test_dbt_schedule.py
    # sets the clock to both sides of midnight; this holds at whatever hour the suite runs).
    stack_started = min(_at(r["start_date"]) for d in e2e.dags for r in e2e.runs(d) if r["start_date"])
    for dag_id, on_assets in e2e.dags.items():
        if on_assets:
            other = [
                (r["run_type"], r["run_after"])
                for r in e2e.runs(dag_id)
                if r["run_type"] != "asset_triggered"
                and not (r["run_type"] == "scheduled" and _at(r["run_after"]) >= stack_started)
            ]
            assert not other, f"{dag_id}: runs not started by its Assets: {other}"


def _at(timestamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(timestamp)


def test_the_trigger_ran_each_dag_once(e2e):
    """Unpausing a DAG whose scheduled time has come starts that time's run: the trigger takes that
    run as the DAG's run and does not add a manual one (which would run the DAG twice)."""
    twice = {
        dag_id: extra
        for dag_id, on_assets in e2e.dags.items()
        if not on_assets
        and (extra := extra_runs(e2e.runs(dag_id), e2e.triggered.runs[dag_id], e2e.triggered_until))
    }
    assert not twice, f"besides the run the trigger started, these ran too: {twice}"


# ---- queues and workers ----------------------------------------------------------------------------

_EXECUTING = re.compile(r"Executing workload in Celery: .*")
_FIELD = re.compile(r"\b(dag_id|task_id|run_id|queue)='([^']*)'")
_MAP_INDEX = re.compile(r"\bmap_index=(-?\d+)")


def executed_by_worker(e2e: E2E) -> dict[str, list[dict[str, str]]]:
    """For each worker: the task instances its log says it executed."""
    out: dict[str, list[dict[str, str]]] = {}
    for name in e2e_stack.WORKERS:
        text = e2e_stack.worker_log(e2e.config, name).read_text(errors="replace")
        items = []
        for match in _EXECUTING.finditer(text):
            fields = dict(_FIELD.findall(match.group(0)))
            index = _MAP_INDEX.search(match.group(0))
            fields["map_index"] = index.group(1) if index else "-1"
            items.append(fields)
        out[name] = items
    return out


def _empty(ti: dict[str, Any]) -> bool:
    return "EmptyOperator" in (ti.get("operator"), ti.get("operator_name"))


def test_both_workers_consume_their_own_queue(e2e):
    listed = subprocess.run(
        [sys.executable, "-m", "airflow", "celery", "list-workers", "--output", "json"],
        env=e2e.env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-3000:]
    workers = json.loads(listed.stdout[listed.stdout.index("[") :])
    queues = {w["worker_name"].split("@")[0]: w["queues"] for w in workers}
    assert queues == {"default": ["default"], ML_QUEUE: [ML_QUEUE]}, workers


def test_every_task_ran_on_the_worker_of_its_queue(e2e):
    # EmptyOperator tasks (e.g. Cosmos's ephemeral dbt models) are marked done by the scheduler:
    # no worker ever runs them.
    tis = [ti for ti in e2e.task_instances() if ti["state"] == "success" and not _empty(ti)]
    assert tis
    executed = executed_by_worker(e2e)
    where: dict[tuple[str, str, str, int], set[str]] = defaultdict(set)
    for worker, items in executed.items():
        assert all(item.get("queue") == e2e_stack.WORKERS[worker] for item in items), (worker, items[:3])
        for item in items:
            where[(item["dag_id"], item["run_id"], item["task_id"], int(item["map_index"]))].add(worker)
    wrong, missing = [], []
    for ti in tis:
        key = (ti["dag_id"], ti["dag_run_id"], ti["task_id"], ti["map_index"])
        workers = where.get(key)
        expected = next(w for w, q in e2e_stack.WORKERS.items() if q == ti["queue"])
        if not workers:
            missing.append(key)
        elif workers != {expected}:
            wrong.append((key, ti["queue"], sorted(workers)))
    assert not missing, f"succeeded but no worker log records running them: {missing[:10]}"
    assert not wrong, f"ran on a worker that does not consume their queue: {wrong[:10]}"
    by_queue = Counter(ti["queue"] for ti in tis)
    assert by_queue["default"] > 0, by_queue
    ml_dags = {ti["dag_id"] for ti in tis if ti["queue"] == ML_QUEUE}
    if RETRAIN_DAG in e2e.dags:
        assert RETRAIN_DAG in ml_dags, f"{RETRAIN_DAG} put no task on queue {ML_QUEUE!r}: {by_queue}"
        assert executed["worker-ml"], "the ml worker ran nothing"
    print(f"tasks per queue: {dict(by_queue)}; per worker: { {w: len(i) for w, i in executed.items()} }")


def test_workers_are_started_without_the_metadata_db_fernet_key_or_jwt_secret(monkeypatch, tmp_path):
    """As in docker-compose.yaml: the tasks' code runs where none of Airflow's own keys are; the
    other components keep them. (The stack runs every DAG so; /proc/<pid>/environ cannot show it,
    Celery's process title overwrites that memory.)"""
    monkeypatch.setenv("NIGHTSHIFT_RUNTIME", str(tmp_path))
    ports = {name: 8790 + n for n, name in enumerate(e2e_stack.WORKERS)}
    config = e2e_stack.E2EConfig(runtime=tmp_path, port=8080, smtp_port=2525, reddit_port=8090,
                                 log_server_ports=ports)  # fmt: skip
    env = e2e_stack.celery_env(config)
    assert set(e2e_stack.WORKER_WITHHELD) <= set(env), "the other components need them"
    workers = e2e_stack.worker_processes(config, env)
    assert set(workers) == set(e2e_stack.WORKERS)
    for name, (_, worker_env) in workers.items():
        assert worker_env["AIRFLOW__CELERY__RESULT_BACKEND"] == config.result_backend_url
        held = {key for key in worker_env if key in e2e_stack.WORKER_WITHHELD or key.endswith("JWT_SECRET")}
        assert not held, f"{name} holds {sorted(held)}"


def test_celery_results_live_in_their_own_database_under_their_own_login(e2e):
    """celery_taskmeta belongs to the result backend's role, in its database; that role cannot
    even connect to the metadata DB, and the metadata DB holds no Celery table."""
    import psycopg2

    config = e2e.config
    backend = e2e.env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert f"//{config.celery_user}:" in backend and backend.endswith(f"/{config.celery_database}"), backend
    celery_db = config.postgres_url.rsplit("/", 1)[0] + "/" + config.celery_database
    with psycopg2.connect(celery_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename, tableowner FROM pg_tables WHERE tablename LIKE 'celery_%'")
        owners = dict(cur.fetchall())
        cur.execute("SELECT COUNT(*) FROM celery_taskmeta")
        (results,) = cur.fetchone()
    assert owners.get("celery_taskmeta") == config.celery_user, owners
    assert set(owners.values()) == {config.celery_user}, owners
    assert results > 0, "no task result was stored in the result backend's database"
    with psycopg2.connect(config.postgres_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'celery_%'")
        assert cur.fetchall() == [], "Celery tables in the metadata DB"
    login = dict(host=config.postgres_host, port=config.postgres_port, user=config.celery_user)
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        psycopg2.connect(dbname=config.database, **login).close()


# ---- outcomes -------------------------------------------------------------------------------------


def test_sync_copied_every_source_row_into_the_bigquery_emulator(e2e):
    project = e2e.emulator.project
    got = {
        table: e2e.warehouse(f"SELECT COUNT(*) AS n FROM `{project}.classicmodels.{table}`")[0]["n"]
        for table in e2e.source_counts
    }
    assert got == e2e.source_counts
    top = e2e.warehouse(f"SELECT * FROM `{project}.classicmodels_agg.top_employees_by_sales`")
    assert len(top) == 5


def test_reddit_rows_were_scraped_and_scored_into_the_warehouse(e2e):
    project = e2e.emulator.project
    from support.reddit_expect import expected_counts

    counts = {
        t: e2e.warehouse(f"SELECT COUNT(*) AS n FROM `{project}.reddit.{t}`")[0]["n"]
        for t in ("posts", "comments", "sentiment")
    }
    assert counts == expected_counts(), "every post, comment and text of the snapshot, once"
    daily = e2e.warehouse(
        f"SELECT scorer, SUM(texts) AS n FROM `{project}.reddit.daily_sentiment` GROUP BY scorer"
    )
    totals = {r["scorer"]: r["n"] for r in daily}  # "model" too once a champion has scored them
    assert set(totals) >= {"textblob", "vader"} and set(totals.values()) == {counts["sentiment"]}, totals


def test_selftest_heartbeats_are_in_the_warehouse(e2e):
    runs = {r["dag_run_id"] for r in e2e.runs("nightshift_selftest")}
    rows = e2e.warehouse(f"SELECT run_id FROM `{e2e.emulator.project}.nightshift_ops.selftest_heartbeat`")
    assert {r["run_id"] for r in rows} == runs


def _daily_sales_folders(e2e: E2E) -> list[Path]:
    return sorted(p for p in (e2e.runtime / "reports" / "daily_sales").iterdir() if p.is_dir())


def test_daily_sales_workbook_is_on_disk(e2e):
    import openpyxl

    folders = _daily_sales_folders(e2e)
    assert folders, "no report folder"
    for folder in folders:
        workbook = folder / f"daily_sales_{folder.name}.xlsx"
        assert workbook.is_file(), f"missing {workbook}"
        names = openpyxl.load_workbook(workbook, read_only=True).sheetnames
        assert {"by_territory", "top_customers", "top_employees", "last_7_days"} <= set(names), names


def test_daily_sales_sections_were_written_to_the_fake_sheets_api(e2e):
    import pyarrow.parquet as pq

    folder = _daily_sales_folders(e2e)[-1]
    for section in ("by_territory", "top_customers", "top_employees", "last_7_days"):
        table = pq.read_table(folder / "sections" / f"{section}.parquet")
        values = e2e.sheets.values(SHEET_KEY, section)
        assert values and values[0] == table.column_names, section
        assert len(values) == table.num_rows + 1, section
    tis = [ti for ti in e2e.task_instances() if ti["task_id"] == "to_sheets"]
    assert tis and {ti["state"] for ti in tis} == {"success"}, "the Sheets task must run, not skip"
    assert e2e.sheets.token_requests, "the service-account token exchange went to the fake"


def test_emails_arrived_in_the_catcher(e2e):
    subjects = Counter(m["Subject"] for m in read_messages(e2e.runtime / "mail"))
    sales = [s for s in subjects if s.startswith("[nightshift] Classic Models daily sales ")]
    digest = [s for s in subjects if s.startswith("[nightshift] Reddit sentiment digest ")]
    selftest = [s for s in subjects if s.startswith("[nightshift] self-test OK: ")]
    assert sales and digest and selftest, subjects
    assert all(subjects[s] == 1 for s in sales + digest), f"one e-mail per report and date: {subjects}"
    assert not [s for s in subjects if "FAILED" in s], subjects


# ---- retraining ------------------------------------------------------------------------------------


def assert_model_registered(e2e: E2E) -> None:
    """The retraining runs succeeded on queue ``ml``, trained on the shared human-rated sets,
    registered a version in the PostgreSQL-backed MLflow registry, and the gate promoted it
    over the rules to ``champion`` with its metrics logged."""
    from mlflow import MlflowClient

    runs = e2e.runs(RETRAIN_DAG)
    assert runs and {r["state"] for r in runs} == {"success"}, runs
    tis = [ti for ti in e2e.task_instances() if ti["dag_id"] == RETRAIN_DAG]
    assert {ti["queue"] for ti in tis if ti["task_id"] in {"train", "evaluate", "promote"}} == {ML_QUEUE}, tis
    uri = json.loads(e2e.env["AIRFLOW_CONN_MLFLOW_DEFAULT"])["extra"]["tracking_uri"]
    client = MlflowClient(tracking_uri=uri)
    versions = client.search_model_versions("name = 'sentiment'")
    assert versions, "no model version registered"
    champion = client.get_model_version_by_alias("sentiment", "champion")
    assert champion.tags["nightshift.decision"] == "promoted", champion.tags
    run = client.get_run(champion.run_id)
    assert int(run.data.params["human_train"]) > 10_000  # the three shared sets, minus their eval split
    metrics = run.data.metrics
    assert metrics["challenger.weighted_f1"] >= metrics["vader.weighted_f1"] + 0.01, metrics
    assert metrics["challenger.n"] == int(run.data.params["eval"]) > 3000


def test_retraining_registered_a_model(e2e):
    assert RETRAIN_DAG in e2e.dags, (
        f"no DAG {RETRAIN_DAG!r} in dags/: was it renamed? (the ml-queue checks need it)"
    )
    assert_model_registered(e2e)


# ---- the UI in a browser ---------------------------------------------------------------------------


GRID_DAG = "sync_classicmodels"


def _is_green(css_color: str) -> bool:
    """A computed CSS colour that is clearly green (Airflow's success colour).

    Chromium reports ``rgb()``/``rgba()`` or, for the UI's theme tokens, ``oklch(L C H)``.
    """
    numbers = [float(n) for n in re.findall(r"-?[\d.]+", css_color)]
    if css_color.startswith("oklch(") and len(numbers) >= 3:
        _, chroma, hue = numbers[:3]
        return chroma >= 0.08 and 110 <= hue <= 170
    if css_color.startswith("rgb") and len(numbers) >= 3:
        red, green, blue = numbers[:3]
        return green > red + 40 and green > blue + 20
    return False


@pytest.mark.parametrize(
    ("css", "green"),
    [("oklch(0.47 0.2 149)", True), ("oklch(0.58 0.22 27)", False), ("oklch(0.5 0.01 149)", False),
     ("rgba(21, 128, 61, 1)", True), ("rgb(220, 38, 38)", False), ("transparent", False)],
)  # fmt: skip
def test_green_means_green(css, green):
    assert _is_green(css) is green


def _login(driver, wait, e2e: E2E, user: str = local_stack.ADMIN_USER) -> None:
    """Sign in on FAB's login page (the production auth manager's) as ``user``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(local_stack.base_url() + "/")
    wait.until(ec.url_contains("/auth/login"))
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(e2e.config.password(user))
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "[type=submit]"))).click()
    wait.until(lambda d: "/auth/login" not in d.current_url)


def test_ui_shows_every_dag_and_its_green_runs(e2e):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from support.browser import chromium

    base = local_stack.base_url()
    with chromium(width=1600, height=2200, log_path=OUTPUT / "chromedriver.log") as driver:
        wait = WebDriverWait(driver, 60)
        try:
            _login(driver, wait, e2e)

            driver.get(base + "/dags")
            cards = wait.until(
                lambda d: (
                    (found := d.find_elements(By.CSS_SELECTOR, "[data-testid=dag-card]"))
                    and len(found) >= len(e2e.dags)
                    and found
                )
            )
            # The latest-run badges render after the cards: wait for one per DAG.
            wait.until(
                lambda d: (
                    len(
                        d.find_elements(By.CSS_SELECTOR, "[data-testid=latest-run] [data-testid=state-badge]")
                    )
                    >= len(e2e.dags)
                )
            )
            driver.save_screenshot(str(OUTPUT / "ui-dag-list.png"))
            shown = {}
            for card in driver.find_elements(By.CSS_SELECTOR, "[data-testid=dag-card]"):
                dag_id = card.find_element(By.CSS_SELECTOR, "[data-testid=dag-id]").text
                badge = card.find_element(
                    By.CSS_SELECTOR, "[data-testid=latest-run] [data-testid=state-badge]"
                )
                shown[dag_id] = (
                    badge.get_attribute("aria-label"),
                    badge.value_of_css_property("background-color"),
                )
            assert set(shown) == set(e2e.dags), shown
            not_green = {d: s for d, s in shown.items() if s[0] != "success" or not _is_green(s[1])}
            assert not not_green, f"latest run not shown as a green success: {not_green}"
            assert len(cards) == len(e2e.dags)

            driver.get(f"{base}/dags/{GRID_DAG}")
            runs = [r["dag_run_id"] for r in e2e.runs(GRID_DAG)]
            tasks = {ti["task_id"] for ti in e2e.task_instances() if ti["dag_id"] == GRID_DAG}
            wanted = {f"grid-{run}-{task}" for run in runs for task in tasks}
            wait.until(
                lambda d: (
                    wanted
                    <= {
                        a.get_attribute("data-testid")
                        for a in d.find_elements(By.CSS_SELECTOR, "a[data-testid^=grid-]")
                    }
                )
            )
            driver.save_screenshot(str(OUTPUT / f"ui-grid-{GRID_DAG}.png"))
            colours = {}
            for cell in driver.find_elements(By.CSS_SELECTOR, "a[data-testid^=grid-]"):
                badge = cell.find_element(By.CSS_SELECTOR, "[data-testid=task-state-badge]")
                colours[cell.get_attribute("data-testid")] = badge.value_of_css_property("background-color")
            not_green = {cell: c for cell, c in colours.items() if cell in wanted and not _is_green(c)}
            assert not not_green, f"grid cells not green: {not_green}"
            for task in tasks:
                assert driver.find_elements(By.CSS_SELECTOR, f"[data-testid=task-{task}]"), f"no row {task}"
        except Exception:
            driver.save_screenshot(str(OUTPUT / "ui-failure.png"))
            (OUTPUT / "ui-failure.html").write_text(driver.page_source)
            raise


def _until(check, timeout: float, what: str, every: float = 2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(every)
    raise AssertionError(f"{what} within {timeout:.0f}s")


def _a_labelling_request(api: local_stack.Api) -> tuple[str, dict[str, Any]]:
    """Trigger a labelling run and wait for its request; requests of other runs (one the unpause
    let start first) are answered with all skips to get them out of the way."""
    run_id = api.post(f"/api/v2/dags/{LABELLING_DAG}/dagRuns", {"logical_date": None})["dag_run_id"]

    def mine():
        requests = open_requests(api)
        for other in [r for r in requests if r["task_instance"]["dag_run_id"] != run_id]:
            answer(api, other, {})
        return next((r for r in requests if r["task_instance"]["dag_run_id"] == run_id), None)

    return run_id, _until(mine, RUNS_TIMEOUT_S, f"no labelling request of run {run_id}")


# A scraped comment with markup, seeded with the scores that rank it first among the picks: the three
# scorers give three labels (disagreement 1), the model is unsure (score 0), and five of its eight
# words are in no labelled text (new words 0.625; no shipped snapshot text passes 0.34, so nothing
# else reaches its 2.625). Its id sorts before every scraped one, which would break a tie.
MARKUP = "<b>bold</b> <img src=x onerror=alert(1)> quokkas zyzzyva snarfblat"
MARKUP_ID = "t1_000markup"


def _seed_markup_text(e2e: E2E) -> None:
    dataset = f"`{e2e.emulator.project}.reddit`"
    (post,) = e2e.warehouse(f"SELECT fullname, subreddit FROM {dataset}.posts ORDER BY fullname LIMIT 1")
    e2e.warehouse(
        f"INSERT INTO {dataset}.comments (fullname, post_fullname, parent_fullname, depth, subreddit, body, "
        "author, score, created_utc, edited, status, scraped_at) VALUES "
        f"('{MARKUP_ID}', '{post['fullname']}', '{post['fullname']}', 0, '{post['subreddit']}', '{MARKUP}', "
        "'e2e_seed', 1, CURRENT_TIMESTAMP(), FALSE, 'visible', CURRENT_TIMESTAMP())"
    )
    e2e.warehouse(
        f"INSERT INTO {dataset}.sentiment (text_id, fullname, subreddit, kind, created_utc, text_sha256, "
        "textblob_polarity, textblob_label, vader_compound, vader_pos, vader_neg, vader_neu, vader_label, "
        "model_label, model_score, model_version, scored_at) VALUES "
        f"('{MARKUP_ID}:body', '{MARKUP_ID}', '{post['subreddit']}', 'comment', CURRENT_TIMESTAMP(), 'seed', "
        "-0.5, 'negative', 0.0, 0.2, 0.0, 0.8, 'positive', 'neutral', 0.0, 'seed', "
        "TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 MINUTE))"
    )


def test_a_labeller_answers_a_request_in_the_browser(e2e):
    """A Labeller signs in, opens the request under Required Actions, sees each text as plain
    text (the first pick is a seeded text with markup: shown as typed, nothing rendered or run),
    labels it and submits; the label lands in ml.labels with their login."""
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    from support.browser import chromium

    from nightshift_core.ml.labels import text_key

    api, base = e2e.api, local_stack.base_url()
    api.patch(f"/api/v2/dags/{LABELLING_DAG}", {"is_paused": False})
    try:
        _seed_markup_text(e2e)
        run_id, request = _a_labelling_request(api)
        field = sorted(request["params"])[0]
        assert field == "text_01" and request["params"][field]["description"] == MARKUP, request["params"]
        texts = [" ".join(p["description"].split()) for p in request["params"].values()]
        url = f"{base}/dags/{LABELLING_DAG}/runs/{run_id}/tasks/label_texts/required_actions"
        with chromium(width=1400, height=3000, log_path=OUTPUT / "chromedriver-labelling.log") as driver:
            wait = WebDriverWait(driver, 60)
            try:
                _login(driver, wait, e2e, LABELLER)
                driver.get(url)
                button = wait.until(
                    ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='OK']"))
                )
                wait.until(
                    lambda d: all(
                        t in " ".join(d.find_element(By.TAG_NAME, "body").text.split()) for t in texts
                    )
                )
                # shown as typed: markup in a text is characters on the page (the wait above found
                # MARKUP's "<b>bold</b> <img ...>" in the page's text), never elements, and no handler ran
                assert not driver.find_elements(By.CSS_SELECTOR, "main script, main img[src=x]")
                assert not driver.find_elements(By.XPATH, "//main//b[normalize-space()='bold']")
                with pytest.raises(NoAlertPresentException):
                    driver.switch_to.alert  # noqa: B018 - reading it is the check
                # the field is a searchable select: type the answer, take the match
                choice = driver.find_element(By.CSS_SELECTOR, f"#element_{field} input")
                choice.send_keys("Negative")
                choice.send_keys(Keys.ENTER)
                wait.until(lambda d: "Negative" in d.find_element(By.ID, f"element_{field}").text)
                driver.save_screenshot(str(OUTPUT / "ui-labelling-form.png"))
                button.click()
                _until(lambda: api.get(f"/api/v2/dags/{LABELLING_DAG}/dagRuns/{run_id}")["state"] != "running",
                       RUNS_TIMEOUT_S, "the labelling run did not finish")  # fmt: skip
            except Exception:
                driver.save_screenshot(str(OUTPUT / "ui-labelling-failure.png"))
                (OUTPUT / "ui-labelling-failure.html").write_text(driver.page_source)
                raise
        assert api.get(f"/api/v2/dags/{LABELLING_DAG}/dagRuns/{run_id}")["state"] == "success"
        detail = api.get(
            f"/api/v2/dags/{LABELLING_DAG}/dagRuns/{run_id}/taskInstances/label_texts/-1/hitlDetails"
        )
        labeller_id = _fab_user_id(e2e, LABELLER)
        assert detail["responded_by_user"] == {"id": labeller_id, "name": LABELLER}
        assert detail["params_input"][field] == "negative"
        assert sum(v != "skip" for v in detail["params_input"].values()) == 1, detail["params_input"]
        text = request["params"][field]["description"]
        assert text == MARKUP
        (row,) = e2e.warehouse(
            "SELECT text, label, source, labelled_by, labelled_at IS NOT NULL AS dated "
            f"FROM `{e2e.emulator.project}.ml.labels` WHERE example_id = 'ui:{text_key(text)[:16]}'"
        )
        assert row == {"text": text, "label": "negative", "source": "airflow-ui",
                       "labelled_by": f"{LABELLER} ({labeller_id})", "dated": True}  # fmt: skip
    finally:
        api.patch(f"/api/v2/dags/{LABELLING_DAG}", {"is_paused": True})


# --- Access control (production auth manager: FAB users and roles) -------------------------------
# Last in this module: these checks trigger a run and answer a labelling request of their own.


def _http(method: str, path: str, token: str | None = None, body: object | None = None) -> tuple[int, str]:
    """(status, body text) of one call to the stack, with ``token`` as the bearer (None: anonymous)."""
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(local_stack.base_url() + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _token(e2e: E2E, user: str) -> str:
    status, body = _http(
        "POST", "/auth/token", body={"username": user, "password": e2e.config.password(user)}
    )
    assert status in (200, 201), f"{user}: token refused: {status} {body[:300]}"
    return json.loads(body)["access_token"]


def _fab_user_id(e2e: E2E, login: str) -> str:
    import psycopg2

    with psycopg2.connect(e2e.config.postgres_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM ab_user WHERE username = %s", (login,))
        (row,) = cur.fetchall()
    return str(row[0])


def _a_task_instance(e2e: E2E, dag_id: str, task_id: str | None = None) -> dict[str, Any]:
    return next(
        ti
        for ti in e2e.task_instances()
        if ti["dag_id"] == dag_id and ti["state"] == "success" and task_id in (None, ti["task_id"])
    )


def test_each_role_may_do_what_its_row_says_and_nothing_more(e2e):
    """REST API v2 with each role's JWT from FAB's token endpoint: allowed calls succeed, the rest 403."""
    admin = local_stack.ADMIN_USER
    tokens = {user: _token(e2e, user) for user in (admin, OP, LABELLER, VIEWER)}
    ti = _a_task_instance(e2e, LABELLING_DAG)
    ti_path = f"/api/v2/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}"
    probe_dag = "nightshift_selftest"
    # The report's build task: its XCom names the files the e-mail task attaches (an Op could edit it
    # to name a secrets file). A write let through by mistake changes nothing: the edit writes the
    # XCom's own value back, the pool write its own settings; the probe XCom created is deleted next.
    build = _a_task_instance(e2e, REPORT_DAG, "build")
    build_path = f"/api/v2/dags/{REPORT_DAG}/dagRuns/{build['dag_run_id']}/taskInstances/build/xcomEntries"
    built = e2e.api.get(f"{build_path}/return_value")["value"]
    pool = e2e.api.get(f"/api/v2/pools/{PROBE_POOL}")
    pool = {"pool": pool["name"]} | {k: pool[k] for k in ("slots", "description", "include_deferred")}
    asset_id = e2e.api.get("/api/v2/assets?limit=1")["assets"][0]["id"]
    # call -> (method, path, body, the users it is allowed for)
    matrix = {
        "list DAGs": ("GET", "/api/v2/dags", None, {admin, OP, LABELLER, VIEWER}),
        "read the retrain DAG": ("GET", f"/api/v2/dags/{RETRAIN_DAG}/details", None, {admin, OP, LABELLER, VIEWER}),
        "read the sync DAG": ("GET", f"/api/v2/dags/{GRID_DAG}/details", None, {admin, OP, VIEWER}),
        "clear (dry run)": ("POST", f"/api/v2/dags/{probe_dag}/clearTaskInstances",
                            {"dry_run": True, "only_failed": False}, {admin, OP}),
        "list connections": ("GET", "/api/v2/connections", None, {admin}),
        "read a connection": ("GET", "/api/v2/connections/nightshift_smtp", None, {admin}),
        "list variables": ("GET", "/api/v2/variables", None, {admin, OP}),
        "write a variable": ("PATCH", "/api/v2/variables/nightshift_alert_to",
                             {"key": "nightshift_alert_to", "value": "x@nightshift.invalid"}, set()),
        "read XComs": ("GET", f"{ti_path}/xcomEntries", None, {admin, OP, VIEWER}),
        "create an XCom": ("POST", build_path, {"key": "nightshift_probe", "value": "x"}, set()),
        "edit an XCom": ("PATCH", f"{build_path}/return_value", {"value": built}, set()),
        "delete an XCom": ("DELETE", f"{build_path}/nightshift_probe", None, set()),
        "write a pool": ("PATCH", f"/api/v2/pools/{PROBE_POOL}", pool, {admin, OP}),
        "create an asset event": ("POST", "/api/v2/assets/events", {"asset_id": asset_id}, set()),
        "delete a DAG": ("DELETE", f"/api/v2/dags/{LABELLING_DAG}", None, set()),
        "clear the labelling DAG (dry run)": ("POST", f"/api/v2/dags/{LABELLING_DAG}/clearTaskInstances",
                                              {"dry_run": True, "only_failed": False}, {admin, OP}),
        "read a task log": ("GET", f"{ti_path}/logs/{ti['try_number']}", None, {admin, OP, VIEWER}),
        "list labelling requests": ("GET", "/api/v2/dags/~/dagRuns/~/hitlDetails", None, {admin, OP, LABELLER, VIEWER}),
    }  # fmt: skip
    wrong = {}
    for name, (method, path, body, allowed) in matrix.items():
        for user, token in tokens.items():
            if user == admin and method != "GET":
                continue  # the admin's writes are not probed: they would change the stack
            status, text = _http(method, path, token, body)
            expected = "allowed" if user in allowed else "forbidden"
            if (expected == "allowed") != (status < 300) or (expected == "forbidden" and status != 403):
                wrong[f"{name} as {user}"] = f"{status} (expected {expected}): {text[:200]}"
    assert not wrong, wrong

    status, text = _http("GET", "/api/v2/dags", tokens[LABELLER])
    assert {d["dag_id"] for d in json.loads(text)["dags"]} == {LABELLING_DAG, RETRAIN_DAG}

    # Trigger: an Op may, a Labeller or Viewer may not, the labelling DAG included (the DAG is
    # paused: the run stays queued).
    status, text = _http("POST", f"/api/v2/dags/{probe_dag}/dagRuns", tokens[OP], {"logical_date": None})
    assert status == 200, text[:300]
    for user in (LABELLER, VIEWER):
        for dag_id in (probe_dag, LABELLING_DAG):
            status, _ = _http("POST", f"/api/v2/dags/{dag_id}/dagRuns", tokens[user], {"logical_date": None})
            assert status == 403, (user, dag_id)


def test_no_token_is_401_and_a_wrong_password_does_not_say_whether_the_user_exists(e2e):
    assert _http("GET", "/api/v2/dags")[0] == 401
    status, text = _http("GET", "/api/v2/connections", "not-a-token")
    assert status in (401, 403) and "nightshift_smtp" not in text, (status, text[:200])
    known = _http("POST", "/auth/token", body={"username": OP, "password": "wrong password"})
    unknown = _http("POST", "/auth/token", body={"username": "nobody-here", "password": "wrong password"})
    assert known[0] in (400, 401) and known == unknown, (known, unknown)


def test_a_labelling_request_is_answered_by_a_labeller_not_by_an_op(e2e):
    """The request is assigned to the Labeller role: an Op (not assigned) and a Viewer get 403, a
    Labeller's answer is taken and the label row names them."""
    from support.labelling import DAG_ID

    from nightshift_core.ml.labels import text_key

    api = e2e.api
    api.patch(f"/api/v2/dags/{LABELLING_DAG}", {"is_paused": False})
    try:
        run_id, request = _a_labelling_request(api)
        assert {"id": "role:Labeller", "name": "Labeller (role)"} in request["assigned_users"]
        ti = request["task_instance"]
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/{ti['map_index']}/hitlDetails"
        field = sorted(request["params"])[0]
        body = {
            "chosen_options": ["OK"],
            "params_input": {n: "skip" for n in request["params"]} | {field: "neutral"},
        }
        for user in (OP, VIEWER):
            status, text = _http("PATCH", path, _token(e2e, user), body)
            assert status == 403, (
                f"{user} answered a request assigned to the Labeller role: {status} {text[:200]}"
            )
        status, text = _http("PATCH", path, _token(e2e, LABELLER), body)
        assert status == 200, text[:300]
        _until(lambda: api.get(f"/api/v2/dags/{LABELLING_DAG}/dagRuns/{run_id}")["state"] != "running",
               RUNS_TIMEOUT_S, "the labelling run did not finish")  # fmt: skip
        assert api.get(f"/api/v2/dags/{LABELLING_DAG}/dagRuns/{run_id}")["state"] == "success"
        labeller_id = _fab_user_id(e2e, LABELLER)
        text = request["params"][field]["description"]
        (row,) = e2e.warehouse(
            "SELECT label, labelled_by FROM "
            f"`{e2e.emulator.project}.ml.labels` WHERE example_id = 'ui:{text_key(text)[:16]}'"
        )
        assert row == {"label": "neutral", "labelled_by": f"{LABELLER} ({labeller_id})"}
    finally:
        api.patch(f"/api/v2/dags/{LABELLING_DAG}", {"is_paused": True})
