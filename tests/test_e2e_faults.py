"""Load and faults under the CeleryExecutor: pool fan-out, a killed worker, a Redis restart.

One Celery stack from scripts/e2e_stack.py (PostgreSQL metadata DB, Redis broker, two workers on
queues ``default`` and ``ml``) runs a generated sync definition of 50 MariaDB tables into an
embedded DuckDB warehouse, three times in a row:

1. fan-out: the source pool has ``POOL_SLOTS`` slots and the ``default`` worker more process
   slots than that; a sampler counts the sync user's connections in MariaDB's PROCESSLIST (and
   ``Threads_connected``) every 100 ms, and the peak must never exceed the pool (the sampler must
   have kept its pace, and its stalls, counted on a monotonic clock, hide at most 5% of the run);
2. a killed worker: the ``default`` worker's whole process tree gets SIGKILL while loads run, a
   replacement worker starts on the same queue, the run still succeeds with retried tries, and
   every table matches the source without a duplicate key;
3. a Redis restart: the broker is a private ``redis-server`` on a free port (the machine's
   shared Redis is never touched), stopped with SIGTERM mid-run and started again on the same
   port without persistence (queued messages are lost); the run must recover.

Timings, peaks and retries are printed (``pytest -s``) and written to test-output/e2e-faults.json.
Everything here has its own runtime folder, PostgreSQL database, MariaDB database and user, and
Redis server, so it can run beside tests/test_e2e_celery.py.

The heartbeat and queued timeouts are shortened (production: 300 s and 600 s) so that a lost
task is noticed within the test's time budget; the task retry delay stays the DAGs' own (30 s).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random
from typing import Any

import e2e_stack
import local_stack
import pytest
from support.net import free_port
from support.sampling import coverage
from support.services import Service, missing, require

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "test-output"
REPORT = OUTPUT / "e2e-faults.json"
LOGS = OUTPUT / "e2e-faults" / "logs"
RUNTIME = ROOT / ".nightshift" / "e2e-faults"  # fixed: a killed run's leftovers are stopped by the next one
REDIS_DIR = ROOT / ".nightshift" / "e2e-faults-redis"  # outside RUNTIME: the stack deletes that on start
METADATA_DB = "nightshift_e2e_faults"
SOURCE_DB = "nightshift_e2e_faults_source"
SOURCE_USER = "nightshift_e2e_faults"
CONN_ID = "faults_source"
POOL = "faults_source"
POOL_SLOTS = 4
WORKER_CONCURRENCY = 6  # > POOL_SLOTS: the pool, not the worker, must be what limits the fan-out
DAG_ID = "sync_faults"
DATASET = "faults"
TABLES = [f"t{i:02d}" for i in range(1, 51)]
RUN_TIMEOUT_S = 300
SAMPLE_EVERY_S = 0.1
STALL_S = 1.0  # a gap of 10 sampling periods: the sampler was blind
MAX_MEDIAN_GAP_S = 0.5  # its usual pace, query time included
MAX_STALLED_SHARE = 0.05  # of the sampled time, in stalls
pytestmark = pytest.mark.stack


# ---- the source: 50 small MariaDB tables ----------------------------------------------------------


def _mariadb(service: Service, **kwargs: Any):
    import MySQLdb

    return MySQLdb.connect(host=service.host, port=service.port, autocommit=True, **kwargs)


def _create_source(service: Service, password: str) -> None:
    """(Re)create the source database with 50 tables (id, name, amount, updated_at) and its user."""
    rng = Random(8)
    admin = _mariadb(service, user="root")
    try:
        cur = admin.cursor()
        cur.execute(f"DROP DATABASE IF EXISTS `{SOURCE_DB}`")
        cur.execute(f"DROP USER IF EXISTS '{SOURCE_USER}'@'%'")
        cur.execute(f"CREATE DATABASE `{SOURCE_DB}` CHARACTER SET utf8mb4")
        cur.execute(f"CREATE USER '{SOURCE_USER}'@'%%' IDENTIFIED BY %s", (password,))  # %% -> %
        cur.execute(f"GRANT SELECT ON `{SOURCE_DB}`.* TO '{SOURCE_USER}'@'%'")
        cur.execute(f"USE `{SOURCE_DB}`")
        base = datetime(2026, 1, 1)
        for number, table in enumerate(TABLES, start=1):
            cur.execute(
                f"CREATE TABLE `{table}` (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, "
                "amount DECIMAL(12, 2) NOT NULL, updated_at DATETIME(6) NOT NULL)"
            )
            rows = [
                (i, f"{table}-row-{i}", Decimal(rng.randint(0, 10**8)) / 100, base + timedelta(minutes=i))
                for i in range(1, 200 + 20 * number)
            ]
            cur.executemany(f"INSERT INTO `{table}` VALUES (%s, %s, %s, %s)", rows)  # noqa: S608
    finally:
        admin.close()


def _change_source(service: Service, round_: int) -> None:
    """New and updated rows in every table, stamped now (UTC): the next run must pick them up."""
    admin = _mariadb(service, user="root", db=SOURCE_DB)
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        cur = admin.cursor()
        for table in TABLES:
            cur.execute(f"SELECT MAX(id) FROM `{table}`")  # noqa: S608
            top = cur.fetchone()[0]
            cur.executemany(
                f"INSERT INTO `{table}` VALUES (%s, %s, %s, %s)",  # noqa: S608
                [(top + i, f"{table}-round{round_}-{i}", Decimal(i), now) for i in range(1, 11)],
            )
            cur.execute(
                f"UPDATE `{table}` SET amount = amount + 1, updated_at = %s WHERE id %% 37 = %s",  # noqa: S608
                (now, round_),
            )
    finally:
        admin.close()


def _drop_source(service: Service) -> None:
    admin = _mariadb(service, user="root")
    try:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{SOURCE_DB}`")
        admin.cursor().execute(f"DROP USER IF EXISTS '{SOURCE_USER}'@'%'")
    finally:
        admin.close()


def _source_stats(service: Service) -> dict[str, tuple[int, int, Decimal]]:
    """Per table: rows, distinct ids, sum of amount."""
    admin = _mariadb(service, user="root", db=SOURCE_DB)
    try:
        cur = admin.cursor()
        cur.execute(
            " UNION ALL ".join(
                f"SELECT '{t}', COUNT(*), COUNT(DISTINCT id), SUM(amount) FROM `{t}`" for t in TABLES
            )
        )
        return {t: (int(n), int(k), Decimal(s)) for t, n, k, s in cur.fetchall()}
    finally:
        admin.close()


def _sync_definition(folder: Path) -> None:
    """The sync YAML (include/config/syncs format): odd tables full, even ones incremental."""
    tables = "\n".join(
        f"  - {{name: {t}, mode: full, primary_key: [id]}}"
        if i % 2
        else f"  - {{name: {t}, mode: incremental, primary_key: [id], cursor: updated_at}}"
        for i, t in enumerate(TABLES, start=1)
    )
    (folder / "faults.yaml").write_text(
        f"""dag_id: {DAG_ID}
description: {len(TABLES)} generated MariaDB tables, for the load and fault tests
schedule: null
start_date: 2026-01-01
catchup: false
source:
  conn_id: {CONN_ID}
  pool: {POOL}
  max_connections: {POOL_SLOTS}
  batch_rows: 1000
target:
  dataset: {DATASET}
tables:
{tables}
quality:
  row_count_tolerance: 0.0
"""
    )


# ---- the warehouse ---------------------------------------------------------------------------------


def _warehouse_stats(path: Path) -> dict[str, tuple[int, int, Decimal]]:
    from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

    sql = " UNION ALL ".join(
        f"SELECT '{t}' AS t, COUNT(*) AS n, COUNT(DISTINCT id) AS k, SUM(amount) AS s FROM {DATASET}.{t}"
        for t in TABLES
    )
    rows = DuckDBWarehouse(path).query(sql).to_pylist()
    return {r["t"]: (int(r["n"]), int(r["k"]), Decimal(r["s"])) for r in rows}


# ---- a private Redis -------------------------------------------------------------------------------


class PrivateRedis:
    """A ``redis-server`` of this module's own on a free port, without persistence."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.folder / "redis.pid"

    def stop_leftover(self) -> None:
        """Stop the server an interrupted earlier run left behind (its pid file says which)."""
        import psutil

        try:
            pid = int(self.pid_file.read_text())
            process = psutil.Process(pid)
            if "redis-server" in " ".join(process.cmdline()):
                process.terminate()
                process.wait(10)
        except (FileNotFoundError, ValueError, psutil.Error):
            pass
        shutil.rmtree(self.folder, ignore_errors=True)

    def start(self, timeout: float = 20) -> None:
        import redis

        self.folder.mkdir(parents=True, exist_ok=True)
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")]  # fmt: skip
        self.process = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL)
        self.pid_file.write_text(str(self.process.pid))
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server on port {self.port} did not start; read {self.folder / 'redis.log'}"
                    )
                time.sleep(0.1)
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM, as an orchestrator restarting the container would send."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)
        self.pid_file.unlink(missing_ok=True)


# ---- sampling the source's connections -------------------------------------------------------------


class ConnectionSampler:
    """Counts the sync user's connections (PROCESSLIST) and ``Threads_connected`` every 100 ms."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.samples: list[tuple[float, int, int]] = []  # (monotonic time, sync user's, Threads_connected)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mariadb-sampler", daemon=True)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        while not self.samples and self.error is None:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            conn = _mariadb(self.service, user="root")
            try:
                cur = conn.cursor()
                due = time.monotonic()
                while not self._stop.is_set():
                    cur.execute(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s", (SOURCE_USER,)
                    )
                    ours = int(cur.fetchone()[0])
                    cur.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
                    threads = int(cur.fetchone()[1])
                    now = time.monotonic()
                    self.samples.append((now, ours, threads))
                    # Paced on the monotonic clock (query time included); after a stall, no catch-up burst.
                    due = max(due + SAMPLE_EVERY_S, now)
                    self._stop.wait(due - now)
            finally:
                conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by summary()
            self.error = exc

    def summary(self) -> dict[str, Any]:
        if self.error is not None:
            raise AssertionError(f"the MariaDB sampler failed: {self.error!r}")
        ours = [s[1] for s in self.samples]
        threads = [s[2] for s in self.samples]
        seen = coverage([s[0] for s in self.samples], stall_s=STALL_S)
        return {
            "samples": seen.samples,
            "sampled_s": round(seen.span_s, 1),
            "median_sample_gap_s": round(seen.median_gap_s, 3),
            "max_sample_gap_s": round(seen.max_gap_s, 3),
            "sampler_stalls": seen.stalls,
            "sampler_stalled_s": round(seen.stalled_s, 2),
            "sampler_problems": seen.problems(
                max_median_gap_s=MAX_MEDIAN_GAP_S, max_stalled_share=MAX_STALLED_SHARE
            ),
            "peak_source_connections": max(ours),
            "samples_at_peak": ours.count(max(ours)),
            "threads_connected_first": threads[0],
            "threads_connected_peak": max(threads),
            # Everything on this machine's MariaDB, so only reported: other tests may use it too.
            "threads_connected_above_first": max(threads) - threads[0],
        }


# ---- the stack -------------------------------------------------------------------------------------


@dataclass
class Faults:
    config: e2e_stack.E2EConfig
    env: dict[str, str]
    api: local_stack.Api
    mariadb: Service
    redis: PrivateRedis
    warehouse: Path
    report: dict[str, Any] = field(default_factory=dict)

    def save_report(self) -> None:
        REPORT.write_text(json.dumps(self.report, indent=2, default=str) + "\n")

    def trigger(self, note: str) -> Future[local_stack.Triggered]:
        """Trigger the sync over the REST API and wait for it in a thread (``local_stack.trigger_all``)."""
        pool = ThreadPoolExecutor(1, thread_name_prefix="trigger")
        future = pool.submit(local_stack.trigger_all, {DAG_ID: False}, RUN_TIMEOUT_S, note)
        pool.shutdown(wait=False)
        return future

    def current_run(self, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.api.get(f"/api/v2/dags/{DAG_ID}/dagRuns?state=queued&state=running&limit=1")[
                "dag_runs"
            ]
            if runs:
                return runs[0]["dag_run_id"]
            time.sleep(0.5)
        raise AssertionError(f"no {DAG_ID} run started within {timeout:.0f}s")

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=1000"
        return self.api.get(path)["task_instances"]

    def wait_for(self, run_id: str, ready: Callable[[list[dict[str, Any]]], bool], what: str) -> None:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not ready(self.task_instances(run_id)):
            if time.monotonic() > deadline:
                raise AssertionError(f"{DAG_ID}/{run_id}: never reached '{what}'")
            time.sleep(0.3)


def _redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server (the broker restart starts its own)", "`apt-get install redis-server`")
    return binary


def _connections(mariadb: Service, password: str, warehouse: Path) -> dict[str, str]:
    source = {"conn_type": "mysql", "host": mariadb.host, "port": mariadb.port, "login": SOURCE_USER,
              "password": password, "schema": SOURCE_DB}  # fmt: skip
    target = {"conn_type": "generic", "extra": {"engine": "duckdb", "path": str(warehouse)}}
    return {
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(source),
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE": json.dumps(target),
    }


def _save_logs(runtime: Path, redis: PrivateRedis) -> None:
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True)
    for log in (*(runtime / "logs").glob("*.log"), redis.folder / "redis.log"):
        if log.is_file():
            shutil.copy(log, LOGS / log.name)


@pytest.fixture(scope="module")
def faults(tmp_path_factory) -> Iterator[Faults]:
    started = time.monotonic()
    mariadb = require("mariadb")
    require("postgres")
    redis = PrivateRedis(_redis_binary(), REDIS_DIR)
    OUTPUT.mkdir(exist_ok=True)
    REPORT.unlink(missing_ok=True)
    password = secrets.token_urlsafe(18)
    definitions = tmp_path_factory.mktemp("faults-syncs")
    _sync_definition(definitions)
    warehouse = RUNTIME / "warehouse.duckdb"
    redis.stop_leftover()
    redis.start()
    try:
        _create_source(mariadb, password)
        config = e2e_stack.E2EConfig(
            runtime=RUNTIME,
            port=free_port(),
            smtp_port=free_port(),
            reddit_port=free_port(),
            log_server_ports={name: free_port() for name in e2e_stack.WORKERS},
            admin_password=secrets.token_urlsafe(12),
            database=METADATA_DB,
            redis_port=redis.port,
            redis_db=0,
            worker_concurrency=WORKER_CONCURRENCY,
            extra_env={
                **_connections(mariadb, password, warehouse),
                "NIGHTSHIFT_SYNC_DIR": str(definitions),
                # Lost tasks are found within the test's budget (production: 300 s / 600 s).
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
            },
        )
        try:
            with e2e_stack.celery_stack(config) as env:
                api = local_stack.Api(local_stack.base_url(), local_stack.ADMIN_USER, config.admin_password)
                api.post("/api/v2/pools", {"name": POOL, "slots": POOL_SLOTS, "description": "e2e faults"})
                report = {"stack_up_s": round(time.monotonic() - started, 1), "tables": len(TABLES),
                          "pool_slots": POOL_SLOTS, "worker_concurrency": WORKER_CONCURRENCY,
                          "cpus": os.cpu_count(), "scenarios": {}}  # fmt: skip
                print(f"\nfaults: stack up after {report['stack_up_s']}s")
                state = Faults(config, env, api, mariadb, redis, warehouse, report)
                try:
                    yield state
                finally:
                    state.report["total_s"] = round(time.monotonic() - started, 1)
                    state.save_report()
        finally:
            _save_logs(config.runtime, redis)
    finally:
        redis.stop()
        _drop_source(mariadb)
        print(f"faults: {time.monotonic() - started:.0f}s in all; report in {REPORT.relative_to(ROOT)}")


# ---- what a run did --------------------------------------------------------------------------------


def _loads(tis: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [ti for ti in tis if ti["task_id"].startswith("load_")]


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _peak_overlap(tis: list[dict[str, Any]]) -> int:
    """Most task instances whose (last try's) start-end intervals overlap."""
    events = []
    for ti in tis:
        if ti["start_date"] and ti["end_date"]:
            events += [(_parse_time(ti["start_date"]), 1), (_parse_time(ti["end_date"]), -1)]
    peak = now = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        now += step
        peak = max(peak, now)
    return peak


def _finish(
    faults: Faults, future: Future[local_stack.Triggered], run_id: str, started: float
) -> dict[str, Any]:
    """Wait for the run; check it succeeded and the warehouse equals the source; the run's numbers."""
    triggered = future.result(timeout=RUN_TIMEOUT_S + 60)
    assert triggered.runs == {DAG_ID: run_id}, f"the trigger waited for another run: {triggered.runs}"
    ok = triggered.ok
    wall = time.monotonic() - started
    tis = faults.task_instances(run_id)
    run = faults.api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
    bad = sorted(
        f"{ti['task_id']}: {ti['state']} (try {ti['try_number']})" for ti in tis if ti["state"] != "success"
    )
    assert ok and run["state"] == "success" and not bad, f"{run_id}: {run['state']}; not successful: {bad}"
    loads = _loads(tis)
    assert len(loads) == len(TABLES)
    source, target = _source_stats(faults.mariadb), _warehouse_stats(faults.warehouse)
    wrong = {
        t: {"source": source[t], "warehouse": target.get(t)} for t in TABLES if target.get(t) != source[t]
    }
    assert not wrong, f"warehouse differs from the source (rows, distinct ids, sum): {wrong}"
    duplicates = {t: n - k for t, (n, k, _) in target.items() if n != k}
    assert not duplicates, f"duplicate primary keys in the warehouse: {duplicates}"
    retried = sorted(ti["task_id"] for ti in tis if ti["try_number"] > 1)
    durations = [ti["duration"] for ti in loads if ti["duration"] is not None]
    return {
        "run_id": run_id,
        "wall_s": round(wall, 1),
        "retried_tasks": len(retried),
        "retried": retried,
        "max_try_number": max(ti["try_number"] for ti in tis),
        "peak_running_loads": _peak_overlap(loads),
        "load_s_median": round(statistics.median(durations), 2),
        "load_s_max": round(max(durations), 2),
        "source_rows": sum(n for n, _, _ in source.values()),
    }


def _print(name: str, numbers: dict[str, Any]) -> None:
    shown = {k: v for k, v in numbers.items() if k not in ("retried", "run_id")}
    print(f"\nfaults/{name}: " + ", ".join(f"{k}={v}" for k, v in shown.items()), flush=True)


def _check_pool(numbers: dict[str, Any]) -> None:
    assert not numbers["sampler_problems"], f"the sampler cannot vouch for the peak: {numbers}"
    assert numbers["peak_source_connections"] <= POOL_SLOTS, (
        f"{numbers['peak_source_connections']} connections to the source at once; pool {POOL!r} has "
        f"{POOL_SLOTS} slots: {numbers}"
    )
    assert numbers["peak_running_loads"] <= POOL_SLOTS, numbers


# ---- 1. fan-out under the pool ---------------------------------------------------------------------


def test_fan_out_of_50_tables_never_exceeds_the_pool(faults):
    with ConnectionSampler(faults.mariadb) as sampler:
        started = time.monotonic()
        future = faults.trigger("e2e faults: fan-out")
        run_id = faults.current_run()
        numbers = _finish(faults, future, run_id, started)
    numbers.update(sampler.summary())
    faults.report["scenarios"]["fan_out"] = numbers
    faults.save_report()
    _print("fan_out", numbers)
    _check_pool(numbers)
    # It did fan out: more than one load at a time, up to the pool.
    assert numbers["peak_source_connections"] >= 2, numbers
    assert numbers["peak_running_loads"] >= 2, numbers


# ---- 2. a worker killed mid-run --------------------------------------------------------------------


def _kill_tree(name: str) -> dict[str, int]:
    """SIGKILL a stack process and every descendant, as a lost machine would lose them.

    The worker's process group first, then whatever survived it: Airflow puts each task runner
    in a process group of its own, which a SIGKILL to the worker's group does not signal; they
    normally exit once their supervisor's sockets close (``alive_after_group_kill`` counts those
    still running half a second later).
    """
    import psutil

    pid = local_stack._running()[name]
    root = psutil.Process(pid)
    tree = [root, *root.children(recursive=True)]
    outside_group = sum(1 for p in tree if _pgid(p.pid) not in (None, pid))
    os.killpg(pid, signal.SIGKILL)
    time.sleep(0.5)
    survivors = [p for p in tree if _running(p)]
    for process in survivors:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=15)
    assert not alive, f"still alive after SIGKILL: {alive}"
    return {
        "killed_processes": len(tree),
        "outside_worker_process_group": outside_group,
        "alive_after_group_kill": len(survivors),
    }


def _running(process) -> bool:  # a psutil.Process
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _start_replacement(faults: Faults, name: str, hostname: str) -> Path:
    """Start another ``default`` worker (same command as the stack's, own Celery name and log port)."""
    command, env = e2e_stack.worker_processes(faults.config, faults.env)["worker-default"]
    command = [hostname if arg == "default@%h" else arg for arg in command]
    env = {**env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
    local_stack._spawn(name, command, env)
    return faults.config.runtime / "logs" / f"{name}.log"


def _wait_ready(log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (log.exists() and " ready." in log.read_text(errors="replace")):
        if time.monotonic() > deadline:
            raise AssertionError(f"the replacement worker did not get ready in {timeout:.0f}s; read {log}")
        time.sleep(0.5)


def _log_lines(faults: Faults, name: str, text: str, since: int = 0) -> int:
    """How many lines of a stack process's log contain ``text`` (from byte ``since`` on)."""
    log = faults.config.runtime / "logs" / f"{name}.log"
    with log.open("rb") as fh:
        fh.seek(since)
        return sum(text.encode() in line for line in fh)


def _log_size(faults: Faults, name: str) -> int:
    return (faults.config.runtime / "logs" / f"{name}.log").stat().st_size


def _executed(log: Path, run_id: str) -> set[tuple[str, int]]:
    """(task_id, try_number) of this run's workloads that a worker's log says it executed."""
    import re

    out = set()
    for line in log.read_text(errors="replace").splitlines():
        if "Executing workload in Celery" in line and f"run_id='{run_id}'" in line:
            task = re.search(r"task_id='([^']+)'", line)
            attempt = re.search(r"try_number=(\d+)", line)
            if task and attempt:
                out.add((task.group(1), int(attempt.group(1))))
    return out


def test_killed_worker_tasks_retry_elsewhere_and_the_warehouse_ends_correct(faults):
    _change_source(faults.mariadb, round_=1)
    scheduler_log = _log_size(faults, "scheduler")
    with ConnectionSampler(faults.mariadb) as sampler:
        started = time.monotonic()
        future = faults.trigger("e2e faults: worker killed mid-run")
        run_id = faults.current_run()

        def mid_run(tis: list[dict[str, Any]]) -> bool:
            loads = _loads(tis)
            done = sum(ti["state"] == "success" for ti in loads)
            return done >= 5 and sum(ti["state"] == "running" for ti in loads) >= 2

        faults.wait_for(run_id, mid_run, "5 loads done and 2 running")
        running = sorted(
            ti["task_id"] for ti in _loads(faults.task_instances(run_id)) if ti["state"] == "running"
        )
        killed_at = time.monotonic()
        kill = _kill_tree("worker-default")
        log = _start_replacement(faults, "worker-default-2", "default-2@%h")
        _wait_ready(log)
        replacement_ready_s = time.monotonic() - killed_at
        numbers = _finish(faults, future, run_id, started)
    numbers.update(sampler.summary())
    executed_there = _executed(log, run_id)
    numbers.update(
        kill,
        running_at_kill=running,
        killed_after_s=round(killed_at - started, 1),
        replacement_ready_after_kill_s=round(replacement_ready_s, 1),
        recovered_after_kill_s=round(started + numbers["wall_s"] - killed_at, 1),
        retried_on_replacement=sorted(t for t, attempt in executed_there if attempt > 1),
        heartbeat_timeouts=_log_lines(
            faults, "scheduler", "Detected a task instance without a heartbeat", scheduler_log
        ),
        # Delivered to the killed worker but not started yet: found by the queued timeout, not retried.
        requeued_from_queued=_log_lines(
            faults, "scheduler", "Task stuck in queued; will try to requeue", scheduler_log
        ),
        ran_on_replacement=len(executed_there),
    )
    faults.report["scenarios"]["worker_kill"] = numbers
    faults.save_report()
    _print("worker_kill", numbers)
    assert numbers["retried_tasks"] >= 1, f"no task was retried after the kill: {numbers}"
    lost = set(running) & set(numbers["retried"])
    assert lost, f"none of the loads running at the kill ({running}) was retried: {numbers['retried']}"
    assert lost <= set(numbers["retried_on_replacement"]), (
        f"retried loads {sorted(lost)} did not run again on the replacement worker: {sorted(executed_there)}"
    )
    _check_pool(numbers)


# ---- 3. the broker restarted mid-run ---------------------------------------------------------------


def test_runs_recover_from_a_redis_restart(faults):
    _change_source(faults.mariadb, round_=2)
    outage_s = 5.0
    scheduler_log = _log_size(faults, "scheduler")
    with ConnectionSampler(faults.mariadb) as sampler:
        started = time.monotonic()
        future = faults.trigger("e2e faults: Redis restarted mid-run")
        run_id = faults.current_run()
        faults.wait_for(
            run_id,
            lambda tis: sum(ti["state"] == "success" for ti in _loads(tis)) >= 5,
            "5 loads done",
        )
        done_before = sum(ti["state"] == "success" for ti in _loads(faults.task_instances(run_id)))
        stopped_at = time.monotonic()
        faults.redis.stop()
        time.sleep(outage_s)
        faults.redis.start()
        restarted_at = time.monotonic()
        numbers = _finish(faults, future, run_id, started)
    numbers.update(sampler.summary())
    alive = local_stack._running()
    numbers.update(
        loads_done_before_stop=done_before,
        stopped_after_s=round(stopped_at - started, 1),
        outage_s=round(restarted_at - stopped_at, 1),
        recovered_after_restart_s=round(started + numbers["wall_s"] - restarted_at, 1),
        # Each failed send costs the task one try (Airflow marks it failed, then up for retry).
        sends_failed=_log_lines(faults, "scheduler", "Error sending Celery workload", scheduler_log),
    )
    faults.report["scenarios"]["redis_restart"] = numbers
    faults.save_report()
    _print("redis_restart", numbers)
    assert {"scheduler", "worker-ml"} <= set(alive), f"not running after the broker restart: {sorted(alive)}"
    assert any(name.startswith("worker-default") for name in alive), sorted(alive)
    _check_pool(numbers)
