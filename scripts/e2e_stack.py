"""The CeleryExecutor mode of the local stack: the engine behind `make e2e`.

Airflow as production runs it, on this machine: metadata DB and Celery result backend on
PostgreSQL, broker on Redis, api-server, scheduler, dag-processor, triggerer and two Celery
workers, one per queue (``default``; ``ml`` for model training). Process handling, settings,
the REST API client and the DAG triggering come from ``local_stack``; only what differs lives
here. The caller (tests/test_e2e_celery.py) owns the external stand-ins (BigQuery emulator,
fake Sheets API, MariaDB source) and hands their connections in as ``AIRFLOW_CONN_*``::

    with celery_stack(E2EConfig(runtime=..., port=..., ..., extra_env={"AIRFLOW_CONN_...": ...})) as env:
        local_stack.trigger_all(local_stack.expected_dag_ids())

The PostgreSQL databases (metadata; Celery results, with a login of its own) and the Redis db
number are dedicated to the e2e and emptied when it starts; the runtime folder is deleted and
recreated. Leaving the ``with`` block stops every process it started, also on an exception,
Ctrl-C or SIGTERM.

    python scripts/e2e_stack.py down [--runtime DIR]   # stop what an interrupted run left behind
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import local_stack  # scripts/ is on sys.path: run as a script, or from the tests

ROOT = local_stack.ROOT
DEFAULT_RUNTIME = ROOT / ".nightshift" / "e2e"
#: Celery worker process name -> the queue it consumes.
WORKERS = {"worker-default": "default", "worker-ml": "ml"}
#: What the Celery workers are not given, as in docker-compose.yaml: they run the tasks' code, which
#: reaches Airflow only through the Task Execution API (with the token the scheduler issued).
WORKER_WITHHELD = (
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
)
#: The production auth manager (plugins/nightshift/auth.py) and its FAB settings.
AUTH_MANAGER = "nightshift.auth.NightshiftAuthManager"
FAB_CONFIG = ROOT / "include" / "config" / "webserver_config.py"
#: One user per shipped role: login -> role. The admin's login is local_stack.ADMIN_USER.
ROLE_USERS = {"op": "Op", "labeller": "Labeller", "viewer": "Viewer"}
# Creates the users in FAB's tables (idempotent), after syncing the roles; reads [{...}] on stdin.
_CREATE_USERS = """
import json, sys
from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
with get_application_builder() as appbuilder:
    sm = appbuilder.sm
    sm.sync_roles()
    for u in json.load(sys.stdin):
        if sm.find_user(username=u["username"]) is None:
            role = sm.find_role(u["role"])
            if role is None:
                sys.exit(f"role {u['role']!r} does not exist after the role sync")
            if not sm.add_user(u["username"], u["username"], "e2e", u["username"] + "@nightshift.invalid",
                               role, password=u["password"]):
                sys.exit(f"could not create user {u['username']!r}")
"""


@dataclass(frozen=True)
class E2EConfig:
    """Where the e2e stack runs and what it talks to."""

    runtime: Path
    port: int
    smtp_port: int
    reddit_port: int
    #: worker process name -> port of its log server (one per worker: they share the host).
    log_server_ports: Mapping[str, int]
    admin_password: str = "e2e-admin-password"
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_user: str = "postgres"
    database: str = "nightshift_e2e"
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 5
    worker_concurrency: int = 2
    #: more environment for every process: AIRFLOW_CONN_*, AIRFLOW_VAR_*, NIGHTSHIFT_*.
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def postgres_url(self) -> str:
        return f"postgresql://{self.postgres_user}@{self.postgres_host}:{self.postgres_port}/{self.database}"

    @property
    def celery_user(self) -> str:
        """The Celery result backend's role, owner of its database (not the metadata DB's login)."""
        return f"{self.database}_celery"

    @property
    def celery_database(self) -> str:
        return f"{self.database}_celery"

    @property
    def result_backend_url(self) -> str:
        login = f"{self.celery_user}:{self.password(self.celery_user)}"
        return f"db+postgresql://{login}@{self.postgres_host}:{self.postgres_port}/{self.celery_database}"

    @property
    def broker_url(self) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"

    def password(self, user: str) -> str:
        """The e2e password of ``user`` (the admin's, or one of ROLE_USERS)."""
        return self.admin_password if user == local_stack.ADMIN_USER else f"e2e-{user}-password"

    def users(self) -> dict[str, str]:
        """login -> role of every e2e user."""
        return {local_stack.ADMIN_USER: "Admin", **ROLE_USERS}

    def nightshift_env(self) -> dict[str, str]:
        """The variables ``local_stack`` reads for its folder, ports and login."""
        return {
            "NIGHTSHIFT_RUNTIME": str(self.runtime),
            "NIGHTSHIFT_PORT": str(self.port),
            "NIGHTSHIFT_SMTP_PORT": str(self.smtp_port),
            "NIGHTSHIFT_REDDIT_PORT": str(self.reddit_port),
            "NIGHTSHIFT_ADMIN_PASSWORD": self.admin_password,
        }


def celery_env(config: E2EConfig) -> dict[str, str]:
    """``local_stack``'s environment switched to CeleryExecutor, PostgreSQL and Redis.

    Built from this process's environment without its ``AIRFLOW*`` and ``NIGHTSHIFT*`` variables
    (a test session has its own AIRFLOW_HOME, unit-test mode and definition folders, which must
    not leak into the stack); ``extra_env`` adds what the stack should see.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NIGHTSHIFT"))}
    env = local_stack.stack_env({**base, **config.nightshift_env()})
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": config.postgres_url.replace(
                "postgresql://", "postgresql+psycopg2://", 1
            ),
            "AIRFLOW__CELERY__BROKER_URL": config.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": config.result_backend_url,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(config.worker_concurrency),
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": WORKERS["worker-default"],
            # The production layout's access control: FAB users and roles in the metadata DB.
            "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
            "AIRFLOW__FAB__CONFIG_FILE": str(FAB_CONFIG),
            **config.extra_env,
        }
    )
    for key in [k for k in env if "SIMPLE_AUTH_MANAGER" in k]:
        del env[key]  # `make run`'s auth manager; the e2e runs the production one
    return env


def reset_backends(config: E2EConfig) -> None:
    """Drop and recreate the e2e's PostgreSQL databases; empty its Redis db.

    As postgres-init does in docker-compose.yaml: the Celery result backend's database belongs to a
    role of its own, and no other role may connect to it or to the metadata DB.
    """
    import psycopg2
    import redis
    from psycopg2 import sql

    conn = psycopg2.connect(
        host=config.postgres_host, port=config.postgres_port, user=config.postgres_user, dbname="postgres"
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            celery = sql.Identifier(config.celery_user)
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (config.celery_user,))
            if not cur.fetchall():
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(celery))
            cur.execute(
                sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD %s").format(celery),
                (config.password(config.celery_user),),
            )
            for database, owner in ((config.database, None), (config.celery_database, celery)):
                name = sql.Identifier(database)
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
                create = sql.SQL("CREATE DATABASE {}").format(name)
                cur.execute(create + sql.SQL(" OWNER {}").format(owner) if owner else create)
                cur.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(name))
    finally:
        conn.close()
    client = redis.Redis(host=config.redis_host, port=config.redis_port, db=config.redis_db)
    try:
        client.flushdb()
    finally:
        client.close()


def create_users(config: E2EConfig, env: dict[str, str]) -> None:
    """The shipped roles (synced by FAB) and one user per role, as an admin would create them."""
    import json
    import subprocess

    users = [{"username": u, "role": r, "password": config.password(u)} for u, r in config.users().items()]
    with local_stack.Step("Creating the FAB roles and one user per role: " + ", ".join(config.users())):
        result = subprocess.run([sys.executable, "-c", _CREATE_USERS], input=json.dumps(users), env=env,
                                cwd=ROOT, capture_output=True, text=True)  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(
                f"error: creating the e2e users failed:\n{(result.stderr or result.stdout)[-3000:]}"
            )


def worker_processes(config: E2EConfig, env: dict[str, str]) -> dict[str, tuple[list[str], dict[str, str]]]:
    """One `airflow celery worker` per queue, each with its own log-server port."""
    processes = {}
    for name, queue in WORKERS.items():
        command = [sys.executable, "-m", "airflow", "celery", "worker", "--queues", queue,
                   "--concurrency", str(config.worker_concurrency), "--celery-hostname", f"{queue}@%h",
                   "--without-mingle", "--without-gossip"]  # fmt: skip
        worker_env = {k: v for k, v in env.items() if k not in WORKER_WITHHELD}
        worker_env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(config.log_server_ports[name])
        processes[name] = (command, worker_env)
    return processes


def worker_log(config: E2EConfig, name: str) -> Path:
    return config.runtime / "logs" / f"{name}.log"


def wait_for_workers(config: E2EConfig, timeout: float = 180) -> None:
    """Wait until every worker says it is ready (Celery logs ``<name>@<host> ready.``)."""
    deadline = time.monotonic() + timeout
    waiting = dict(WORKERS)
    while waiting:
        for name in list(waiting):
            path = worker_log(config, name)
            if path.exists() and " ready." in path.read_text(errors="replace"):
                del waiting[name]
        local_stack._check_children_alive(WORKERS)
        if waiting and time.monotonic() > deadline:
            raise SystemExit(
                f"error: Celery worker(s) {sorted(waiting)} not ready after {timeout:.0f}s; "
                f"read {', '.join(str(worker_log(config, n)) for n in waiting)}"
            )
        time.sleep(1)


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM becomes SystemExit, so the `finally` that stops the stack runs (main thread only)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def celery_stack(config: E2EConfig, *, start_timeout: float = 180) -> Iterator[dict[str, str]]:
    """Start the whole Celery stack; yield its environment; stop everything on the way out."""
    with _environ(config.nightshift_env()), _sigterm_raises():
        with local_stack.Step(f"Stopping leftovers of an earlier e2e run in {config.runtime}"):
            local_stack.stop()
        shutil.rmtree(config.runtime, ignore_errors=True)
        try:
            with local_stack.Step(
                f"Resetting PostgreSQL database {config.database!r} and Redis db {config.redis_db}"
            ):
                reset_backends(config)
            env = celery_env(config)
            local_stack.init(env, sample_source=False)
            create_users(config, env)
            local_stack.start(env, extra=worker_processes(config, env))
            with local_stack.Step(
                "Waiting for the Celery workers (queues: " + ", ".join(WORKERS.values()) + ")"
            ):
                wait_for_workers(config, start_timeout)
            yield env
        finally:
            with local_stack.Step("Stopping the e2e stack"):
                local_stack.stop()


def wait_until_idle(
    api: local_stack.Api,
    timeout: float = 300,
    quiet_for: float = 10,
    each_poll: Callable[[], object] | None = None,
) -> None:
    """Wait until no DAG run is queued or running, and none has appeared for ``quiet_for`` seconds.

    Asset-triggered runs are created a scheduler loop after their upstream run ends, so one
    empty look is not enough. ``each_poll`` runs before every look (e.g. answering the
    human-in-the-loop requests that would otherwise keep a run waiting).
    """
    deadline = time.monotonic() + timeout
    quiet_since = None
    while True:
        if each_poll is not None:
            each_poll()
        active = api.get("/api/v2/dags/~/dagRuns?state=queued&state=running&limit=100")["dag_runs"]
        now = time.monotonic()
        if active:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= quiet_for:
            return
        if now > deadline:
            names = sorted(f"{r['dag_id']}/{r['dag_run_id']} ({r['state']})" for r in active)
            raise TimeoutError(f"DAG runs still active after {timeout:.0f}s: {names}")
        time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stop what an interrupted `make e2e` left running.")
    parser.add_argument("command", choices=["down"])
    parser.add_argument("--runtime", type=Path, default=DEFAULT_RUNTIME)
    args = parser.parse_args(argv)
    with _environ({"NIGHTSHIFT_RUNTIME": str(args.runtime.resolve())}):
        with local_stack.Step(f"Stopping the e2e stack in {args.runtime}"):
            local_stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
