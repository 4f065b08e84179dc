"""Run Nightshift's local Airflow stack: the engine behind `make run` and `make stop`.

    python scripts/local_stack.py up        # init + start + trigger every DAG once
    python scripts/local_stack.py down      # stop everything this script started
    python scripts/local_stack.py status
    python scripts/local_stack.py env       # print the environment (eval "$(... env)")

Everything lives in the runtime folder (``.nightshift/`` or $NIGHTSHIFT_RUNTIME):
AIRFLOW_HOME, the SQLite metadata DB, logs, pid files, the mail catcher's .eml files.
Ports and the admin password can be changed with NIGHTSHIFT_PORT, NIGHTSHIFT_SMTP_PORT,
NIGHTSHIFT_REDDIT_PORT (the Reddit replay server; default: SMTP port + 1) and
NIGHTSHIFT_ADMIN_PASSWORD, so a second stack (the tests') can run beside yours.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN_USER = "admin"
DEFAULT_ADMIN_PASSWORD = "nightshift"


def runtime() -> Path:
    return Path(os.environ.get("NIGHTSHIFT_RUNTIME", ROOT / ".nightshift")).resolve()


def port() -> int:
    return int(os.environ.get("NIGHTSHIFT_PORT", "8080"))


def smtp_port() -> int:
    return int(os.environ.get("NIGHTSHIFT_SMTP_PORT", "8025"))


def reddit_port() -> int:
    return int(os.environ.get("NIGHTSHIFT_REDDIT_PORT", str(smtp_port() + 1)))


def admin_password() -> str:
    return os.environ.get("NIGHTSHIFT_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD)


def base_url() -> str:
    return f"http://127.0.0.1:{port()}"


def _say(message: str) -> None:
    print(f"\033[1m==> {message}\033[0m", flush=True)


class Step:
    """Print what is happening and how long it took."""

    def __init__(self, title: str) -> None:
        self.title = title

    def __enter__(self) -> Step:
        self.started = time.monotonic()
        _say(self.title)
        return self

    def __exit__(self, *exc: object) -> None:
        status = "failed" if exc[0] else "done"
        print(f"    {status}: {self.title} ({time.monotonic() - self.started:.1f}s)", flush=True)


def _local_secrets(folder: Path) -> dict[str, str]:
    """Random keys for this runtime folder, created once, never committed."""
    path = folder / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    from cryptography.fernet import Fernet

    values = {
        "fernet_key": Fernet.generate_key().decode(),
        "jwt_secret": secrets.token_urlsafe(48),
        "api_secret_key": secrets.token_urlsafe(48),
    }
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh)
    return values


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by its owner only from the first byte on.

    The text goes to a new 0600 file beside it that then takes its name, so a reader sees the old
    file or the new one, never a half-written or world-readable one (nor a symlink's target).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stack_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for every Airflow process of the local stack, on top of ``base`` (default: ours)."""
    rt = runtime()
    home = rt / "airflow"
    keys = _local_secrets(rt)
    env = dict(os.environ if base is None else base)
    python_path = [str(ROOT / "include"), str(ROOT / "plugins")]
    if env.get("PYTHONPATH"):
        python_path.append(env["PYTHONPATH"])
    env.update(
        {
            "NIGHTSHIFT_HOME": str(ROOT),
            "NIGHTSHIFT_RUNTIME": str(rt),
            "NIGHTSHIFT_SMTP_PORT": str(smtp_port()),
            "NIGHTSHIFT_REDDIT_PORT": str(reddit_port()),
            "PYTHONPATH": os.pathsep.join(python_path),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # astronomer-cosmos (the dbt DAG) reports usage to its maintainers unless told not to.
            "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url()}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": os.environ.get(
                "NIGHTSHIFT_METADATA_DB", f"sqlite:///{home / 'airflow.db'}"
            ),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port()),
            "AIRFLOW__API__BASE_URL": base_url(),
            "AIRFLOW__API__SECRET_KEY": keys["api_secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(rt / "logs" / "tasks"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        }
    )
    return env


def _airflow(args: list[str], env: dict[str, str], *, quiet: bool = True) -> None:
    cmd = [sys.executable, "-m", "airflow", *args]
    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=quiet, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()[-3000:] if quiet else ""
        raise SystemExit(f"error: `airflow {' '.join(args)}` failed (exit {result.returncode})\n{detail}")


def init(env: dict[str, str], *, sample_source: bool = True) -> None:
    """Migrate the metadata DB, set the admin password, load airflow_settings.yaml.

    ``sample_source``: also generate the SQLite classicmodels source (`make run`'s default).
    """
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (runtime() / "logs").mkdir(parents=True, exist_ok=True)
    write_private(home / "passwords.json", json.dumps({ADMIN_USER: admin_password()}) + "\n")
    with Step("Migrating the Airflow metadata database"):
        _airflow(["db", "migrate"], env)
    with Step("Loading connections, variables and pools from airflow_settings.yaml"):
        load_settings(ROOT / "airflow_settings.yaml", env)
    sample = runtime() / "classicmodels.sqlite"
    if sample_source and not sample.exists():
        with Step("Generating the sample classicmodels source database (SQLite)"):
            from nightshift_core.sample import classicmodels

            tmp = sample.with_name(sample.name + ".partial")
            tmp.unlink(missing_ok=True)
            conn, dialect = classicmodels.connect(f"sqlite:///{tmp}")
            try:
                # Placed in time so that yesterday's sales exist (the daily report is for yesterday).
                today = dt.datetime.now(dt.UTC).date()
                counts = classicmodels.generate(conn, dialect, scale=1.0, seed=42, anchor=today)
            finally:
                conn.close()
            tmp.replace(sample)
            print("    " + ", ".join(f"{n} {t}" for t, n in counts.items()))


def load_settings(path: Path, env: dict[str, str]) -> None:
    from nightshift_core.settings import (
        SettingsError,
        connections_json,
        load_settings,
        pools_json,
        variables_json,
    )

    try:
        settings = load_settings(path, env)
    except SettingsError as exc:
        raise SystemExit(f"error: {exc}") from None
    with tempfile.TemporaryDirectory() as tmp:
        for kind, payload, count, extra in (
            ("connections", connections_json(settings), len(settings.connections), ["--overwrite"]),
            ("variables", variables_json(settings), len(settings.variables), ["-a", "overwrite"]),
            ("pools", pools_json(settings), len(settings.pools), []),
        ):
            if not count:
                continue
            file = Path(tmp) / f"{kind}.json"
            fd = os.open(file, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(payload)
            _airflow([kind, "import", str(file), *extra], env)
            print(f"    {count} {kind}", flush=True)


def _pid_dir() -> Path:
    path = runtime() / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _alive(pid: int) -> bool:
    try:
        # A child of this very process that exited is a zombie until reaped, and kill(pid, 0)
        # still finds it: reap it first, so a component dying at start-up is seen at once.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child (started by an earlier `make run`)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running() -> dict[str, int]:
    out = {}
    for pid_file in sorted(_pid_dir().glob("*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except ValueError:
            pid_file.unlink()
            continue
        if _alive(pid):
            out[pid_file.stem] = pid
        else:
            pid_file.unlink()
    return out


def _spawn(name: str, cmd: list[str], env: dict[str, str]) -> int:
    log_path = runtime() / "logs" / f"{name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    log.write(f"{_LOG_MARK} {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
    log.flush()
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    (_pid_dir() / f"{name}.pid").write_text(str(proc.pid))
    print(
        f"    {name}: pid {proc.pid}, log {log_path.relative_to(ROOT) if log_path.is_relative_to(ROOT) else log_path}"
    )
    return proc.pid


def _port_in_use(number: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", number)) == 0


def start(env: dict[str, str], extra: Mapping[str, tuple[list[str], dict[str, str]]] | None = None) -> None:
    """Start the stand-ins and Airflow; ``extra`` maps more process names to (command, environment)."""
    extra = dict(extra or {})
    running = _running()
    if running:
        print(f"    already running: {', '.join(running)} (use `make stop` first to restart)")
        return
    for number, what, var in (
        (port(), "the Airflow UI", "NIGHTSHIFT_PORT"),
        (smtp_port(), "the mail catcher", "NIGHTSHIFT_SMTP_PORT"),
        (reddit_port(), "the Reddit replay server", "NIGHTSHIFT_REDDIT_PORT"),
    ):
        if _port_in_use(number):
            raise SystemExit(
                f"error: port {number} (for {what}) is already in use on 127.0.0.1: stop whatever uses it "
                f"or choose another with {var}=<port>"
            )
    with Step("Starting the mail catcher and Airflow (" + ", ".join([*COMPONENTS, *extra]) + ")"):
        _spawn(
            "mail-catcher",
            [sys.executable, "-m", "nightshift_core.local.mail_catcher", "--dir", str(runtime() / "mail"),
             "--port", str(smtp_port())],
            env,
        )  # fmt: skip
        _spawn(
            "reddit-replay",
            [sys.executable, "-m", "nightshift_core.local.reddit_replay", "--port", str(reddit_port()),
             "--snapshot", str(ROOT / "include" / "data" / "reddit_snapshot.json")],
            env,
        )  # fmt: skip
        for component in COMPONENTS:
            args = [component]
            if component == "api-server":
                args += ["--host", "127.0.0.1", "--port", str(port()), "--workers", "1"]
            _spawn(component, [sys.executable, "-m", "airflow", *args], env)
        for name, (cmd, process_env) in extra.items():
            _spawn(name, cmd, process_env)
    with Step(f"Waiting for the API server on {base_url()}"):
        _wait_healthy(timeout=180, also=extra)


def stop(only: Iterable[str] | None = None) -> None:
    running = _running()
    if only is not None:
        running = {name: pid for name, pid in running.items() if name in set(only)}
    if not running:
        print("    nothing running")
        return
    for name, pid in running.items():
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        print(f"    stopping {name} (pid {pid})")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in running.values()):
        time.sleep(0.5)
    for name, pid in running.items():
        if _alive(pid):
            print(f"    {name} did not stop in 30s: killing it")
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        (_pid_dir() / f"{name}.pid").unlink(missing_ok=True)


class Api:
    """Minimal REST API v2 client (JWT from /auth/token) used to drive the stack."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url.rstrip("/")
        self.token = self._token(username, password)

    def _token(self, username: str, password: str) -> str:
        body = self._request("POST", "/auth/token", {"username": username, "password": password}, auth=False)
        return body["access_token"]

    def _request(self, method: str, path: str, payload: object | None = None, *, auth: bool = True) -> dict:
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:2000]
            raise RuntimeError(f"{method} {path} -> HTTP {exc.code}: {detail}") from None
        return json.loads(raw) if raw else {}

    def get(self, path: str) -> dict:
        return self._request("GET", path)

    def post(self, path: str, payload: object) -> dict:
        return self._request("POST", path, payload)

    def patch(self, path: str, payload: object) -> dict:
        return self._request("PATCH", path, payload)


def _wait_healthy(timeout: float, also: Iterable[str] = ()) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url()}/api/v2/monitor/health", timeout=5) as resp:
                health = json.loads(resp.read())
            states = {k: (v or {}).get("status") for k, v in health.items()}
            if states.get("metadatabase") == "healthy" and states.get("scheduler") == "healthy":
                return
            last = str(states)
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as exc:
            last = str(exc)
        _check_children_alive(also)
        time.sleep(2)
    raise SystemExit(
        f"error: the API server did not become healthy in {timeout:.0f}s ({last}); see .nightshift/logs/"
    )


def _check_children_alive(also: Iterable[str] = ()) -> None:
    expected = {"mail-catcher", "reddit-replay", *COMPONENTS, *also}
    dead = expected - set(_running())
    if dead:
        raise SystemExit("\n".join(_explain_exit(name) for name in sorted(dead)))


_LOG_MARK = "--- nightshift: started"
_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")


def _explain_exit(name: str) -> str:
    """What a component that died at start-up left in its log, and the likely fix."""
    log = runtime() / "logs" / f"{name}.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    tail = text.rpartition(_LOG_MARK)[2].partition("\n")[2].strip().splitlines()[-15:]
    text = "\n".join(tail)
    missing = _MISSING_MODULE.findall(text)
    if missing:
        package = missing[-1].split(".")[0]
        fix = (
            f"Python package {package!r} is not installed in {Path(sys.prefix)}: run `make venv` to install "
            f"the locked runtime requirements (delete the venv first if it was built by hand); if {package!r} "
            "is still missing, it is not in requirements.txt: add it there and run `make lock`"
        )
    elif "Address already in use" in text:
        fix = "a port it needs is taken: stop what uses it, or pick other ports (NIGHTSHIFT_PORT, NIGHTSHIFT_SMTP_PORT)"
    else:
        fix = "read the log above; `make run` again once it is fixed"
    quoted = "\n".join(f"      | {line}" for line in tail) or "      | (the log is empty)"
    return f"error: {name} exited during start-up; its log {log} ends with:\n{quoted}\n    likely fix: {fix}"


def expected_dag_ids() -> dict[str, bool]:
    """Parse dags/ here first, so an import error is shown right away with its file.

    Maps each DAG id to whether it is scheduled on Assets (it then runs when its upstream
    DAGs have refreshed them, instead of being triggered).
    """
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        details = "\n".join(f"  {file}:\n{err}" for file, err in bag.import_errors.items())
        raise SystemExit(f"error: DAG import errors:\n{details}")
    return {dag_id: "Asset" in type(bag.dags[dag_id].timetable).__name__ for dag_id in sorted(bag.dag_ids)}


@dataclass(frozen=True)
class Triggered:
    """What ``trigger_all`` did: ``ok`` when every run succeeded (or waits for a person); ``runs``
    maps each DAG to the one run it stands for (see ``trigger_all``)."""

    ok: bool
    runs: dict[str, str]


def due_logical_date(dag: Mapping[str, object], now: dt.datetime | None = None) -> str | None:
    """The logical date of the run the scheduler creates for this DAG as soon as it is unpaused (at
    its next loop if it already is): its next scheduled run when that run's time has come, else None.

    ``dag`` is the REST API's DAG (``GET /api/v2/dags/{dag_id}``). A cron DAG with a ``start_date``
    and ``catchup=False`` always has one when first unpaused: its latest scheduled time in the past
    (Airflow 3.3's CronTriggerTimetable; ``run_immediately`` counts only without a ``start_date``).
    """
    run_after, logical_date = dag.get("next_dagrun_run_after"), dag.get("next_dagrun_logical_date")
    if not isinstance(run_after, str) or not isinstance(logical_date, str):
        return None
    now = now or dt.datetime.now(dt.UTC)
    return logical_date if dt.datetime.fromisoformat(run_after) <= now else None


def trigger_all(
    dags: dict[str, bool], timeout: float = 900, note: str = "triggered by make run"
) -> Triggered:
    """Run each DAG of ``expected_dag_ids()`` once and wait.

    Every DAG is unpaused. One whose scheduled run is due (``due_logical_date``) gets that run
    from the scheduler, and it is the DAG's run: a manual run as well would run it twice. Every
    other one is triggered (a manual run). Asset-scheduled DAGs start from their Assets.
    ``note`` goes on each run started here, the scheduled ones included.
    """
    api = Api(base_url(), ADMIN_USER, admin_password())
    asset_driven = {d for d, on_assets in dags.items() if on_assets}
    dag_ids = list(dags)
    with Step(f"Waiting for the dag-processor to register {len(dag_ids)} DAG(s)"):
        deadline = time.monotonic() + 180
        while True:
            known = {d["dag_id"] for d in api.get("/api/v2/dags?limit=1000")["dags"]}
            missing = set(dag_ids) - known
            if not missing:
                break
            errors = api.get("/api/v2/importErrors")["import_errors"]
            if errors:
                raise SystemExit(
                    "error: import errors: "
                    + "; ".join(f"{e['filename']}: {e['stack_trace'][-500:]}" for e in errors)
                )
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"error: DAGs not registered after 180s: {sorted(missing)}; see .nightshift/logs/dag-processor.log"
                )
            time.sleep(2)
    runs: dict[str, str] = {}
    # DAG id -> (the runs to look for, how the run started, the note to give it or None)
    waiting: dict[str, tuple[str, str, str | None]] = {}
    with Step("Unpausing every DAG and triggering those the scheduler does not start (REST API)"):
        for dag_id in sorted(asset_driven):
            # Unpaused first, so that the Asset events of this very run start them.
            api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
            waiting[dag_id] = (f"/api/v2/dags/{dag_id}/dagRuns?limit=1", "started by its Assets", None)
            print(f"    {dag_id}: runs when its upstream Assets are refreshed")
        for dag_id in [d for d in dag_ids if d not in asset_driven]:
            due = due_logical_date(api.get(f"/api/v2/dags/{dag_id}"))
            api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
            if due:
                query = urllib.parse.urlencode(
                    {"run_type": "scheduled", "logical_date_gte": due, "order_by": "logical_date", "limit": 1}
                )
                how = f"scheduled for {due}, started by the unpause"
                waiting[dag_id] = (f"/api/v2/dags/{dag_id}/dagRuns?{query}", how, f"{note} ({how})")
                print(f"    {dag_id}: its scheduled run for {due} is due: the scheduler starts it")
                continue
            run = api.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "note": note})
            runs[dag_id] = run["dag_run_id"]
            print(f"    {dag_id}: {run['dag_run_id']}")
    ok = True
    with Step("Waiting for the runs to finish"):
        pending = dict(runs)
        deadline = time.monotonic() + timeout
        while (pending or waiting) and time.monotonic() < deadline:
            for dag_id, (path, how, run_note) in list(waiting.items()):
                started = api.get(path)["dag_runs"]
                if started:
                    run_id = runs[dag_id] = pending[dag_id] = started[0]["dag_run_id"]
                    # the note only labels the run in the UI: a run without it is followed all the same
                    if run_note:
                        try:
                            api.patch(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", {"note": run_note})
                        except RuntimeError as exc:
                            print(f"    {dag_id}: could not set the run's note ({exc}); following it anyway")
                    print(f"    {dag_id}: {run_id} ({how})")
                    del waiting[dag_id]
            for dag_id, run_id in list(pending.items()):
                state = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
                if state in ("success", "failed"):
                    print(f"    {dag_id}: {state}")
                    ok &= state == "success"
                    del pending[dag_id]
                elif state == "running" and (request := awaiting_input(api, dag_id, run_id)):
                    print(f"    {dag_id}: waiting for a person in Required Actions: {request}")
                    del pending[dag_id]
            time.sleep(2)
        for dag_id in pending:
            print(f"    {dag_id}: still running after {timeout:.0f}s")
            ok = False
        for dag_id, (_, how, _) in waiting.items():
            print(f"    {dag_id}: no run {how} within {timeout:.0f}s")
            ok = False
    return Triggered(ok, runs)


def awaiting_input(api: Api, dag_id: str, run_id: str) -> str | None:
    """What a run's human-in-the-loop task asks ("subject" and its link) while it waits for an
    answer, else None. Such a run is done as far as `make run` goes: it waits for a person."""
    tis = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    for ti in tis:
        if ti["state"] == "awaiting_input":
            detail = api.get(
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/{ti['map_index']}/hitlDetails"
            )
            return f"{detail['subject']!r}, {base_url()}/dags/{dag_id}/runs/{run_id}/tasks/{ti['task_id']}/required_actions"
    return None


def champion() -> str | None:
    """The sentiment model serving Reddit scoring after the runs (MLflow alias ``champion``), in
    words; it is also written into the latest retraining run's note, so the UI shows it. None
    while the registry has none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from nightshift_core.ml.config import load

    config = load()
    store = runtime() / "mlflow.db"
    if not store.exists():
        return None
    try:
        version = MlflowClient(tracking_uri=f"sqlite:///{store}").get_model_version_by_alias(
            config.model_name, "champion"
        )
    except MlflowException:
        return None
    kind = (
        "the rule baseline (VADER)" if version.tags.get("nightshift.kind") == "rules" else "a trained model"
    )
    line = f"{config.model_name} v{version.version}, {kind}: {version.tags.get('nightshift.reason', '')}"
    api = Api(base_url(), ADMIN_USER, admin_password())
    runs = api.get(f"/api/v2/dags/{config.dag_id}/dagRuns?order_by=-run_after&limit=1")["dag_runs"]
    if runs:
        api.patch(
            f"/api/v2/dags/{config.dag_id}/dagRuns/{runs[0]['dag_run_id']}",
            {"note": f"champion: {line}"[:1000]},
        )
    return line


def activity_seconds() -> float:
    """Seconds between changes of the local sample source (NIGHTSHIFT_SAMPLE_ACTIVITY; 0 = off)."""
    value = os.environ.get("NIGHTSHIFT_SAMPLE_ACTIVITY", "120")
    try:
        return max(float(value), 0.0)
    except ValueError:
        raise SystemExit(
            f"error: NIGHTSHIFT_SAMPLE_ACTIVITY={value!r}: give seconds between changes, or 0 for off"
        ) from None


def start_activity(env: dict[str, str]) -> None:
    """Local demo only: keep the SQLite sample changing (new orders, updates), so the hourly syncs and
    the Assets downstream have work. Started after `make run`'s own runs, so they see a still source."""
    every = activity_seconds()
    sample = runtime() / "classicmodels.sqlite"
    if not every or not sample.exists() or "sample-activity" in _running():
        return
    with Step(
        f"Starting the sample source's activity (a change every {every:g}s; NIGHTSHIFT_SAMPLE_ACTIVITY=0 turns it off)"
    ):
        _spawn(
            "sample-activity",
            [sys.executable, "-m", "nightshift_core.sample.classicmodels", "live", "--url", f"sqlite:///{sample}",
             "--every", str(every)],
            env,
        )  # fmt: skip


def banner(serving: str | None = None) -> None:
    print(
        f"""
  Nightshift is running.
    Champion: {serving or "none yet (the first Reddit scoring or retraining run registers the rule baseline)"}
    UI:       {base_url()}
    Login:    {ADMIN_USER} / {admin_password()}   (local only; the API listens on 127.0.0.1)
    Labels:   {base_url()}/required_actions  (texts to label for the sentiment model)
    Mail:     {runtime() / "mail"}  (every message as .eml)
    Logs:     {runtime() / "logs"}
    Stop:     make stop
""",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the local Nightshift stack.")
    parser.add_argument("command", choices=["up", "init", "start", "trigger", "down", "status", "env"])
    parser.add_argument("--no-trigger", action="store_true", help="with up: start without running the DAGs")
    args = parser.parse_args(argv)
    if args.command == "env":
        for key, value in stack_env().items():
            if key.startswith(("AIRFLOW", "NIGHTSHIFT", "PYTHONPATH")):
                print(f"export {key}={shlex.quote(value)}")
        return 0
    if args.command == "down":
        with Step("Stopping the local stack"):
            stop()
        return 0
    if args.command == "status":
        running = _running()
        for name in ("mail-catcher", "reddit-replay", *COMPONENTS, "sample-activity"):
            print(f"  {name:14} {'running, pid ' + str(running[name]) if name in running else 'stopped'}")
        return 0 if running else 1
    env = stack_env()
    os.environ.update(env)
    sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins")]
    if args.command in ("up", "init"):
        init(env)
    if args.command in ("up", "start"):
        started_before = set(_running())
        try:
            start(env)
        except BaseException:
            # Whatever this very call started goes down again: a failed start leaves nothing behind.
            left = set(_running()) - started_before
            if left:
                with Step(f"Start-up failed: stopping what this run started ({', '.join(sorted(left))})"):
                    stop(only=left)
            raise
    ok = True
    if args.command == "trigger" or (args.command == "up" and not args.no_trigger):
        with Step("Parsing dags/"):
            dag_ids = expected_dag_ids()
        ok = trigger_all(dag_ids).ok
    serving = None
    if args.command == "trigger" or (args.command == "up" and not args.no_trigger):
        serving = champion()
    if args.command == "up" and not args.no_trigger:
        start_activity(env)
    if args.command in ("up", "start", "trigger"):
        banner(serving)
    if not ok:
        print(
            "error: some DAG runs did not succeed: open the UI above to see which task failed and why. "
            f"The stack stays up for that ({', '.join(sorted(_running()))}); `make stop` stops it",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
