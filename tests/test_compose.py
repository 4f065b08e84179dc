"""Static checks of the Docker deployment: docker-compose.yaml, Dockerfile, .env.example, .dockerignore.

Docker is not needed: the files are parsed, not run. What `make e2e` proves on one machine
(scripts/e2e_stack.py) is the reference: the same components, queues, pools and connections.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from nightshift_core.ml import config as retrain_config

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
SETTINGS_FILE = ROOT / "airflow_settings.yaml"
E2E_STACK = ROOT / "scripts" / "e2e_stack.py"

WORKERS = {"airflow-worker": "default", "airflow-worker-ml": "ml"}
AIRFLOW_COMMANDS = {
    # --proxy-headers: behind the TLS proxy the api-server sees https (test_transport).
    "airflow-apiserver": "api-server --proxy-headers",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    **{
        name: f"celery worker --queues {queue} --celery-hostname {queue}@%h"
        for name, queue in WORKERS.items()
    },
}
AIRFLOW_SERVICES = {"airflow-init", *AIRFLOW_COMMANDS}
DB_INIT = "postgres-init"
ONE_SHOT = {"airflow-init", DB_INIT}
PROXY = "cloud-sql-proxy"
EXPECTED_SERVICES = {"postgres", "redis", DB_INIT, PROXY, *AIRFLOW_SERVICES}
# Where task code runs (workers), or a task's failure callback after its worker died
# (dag-processor): the services that hold the project's connections.
TASK_RUNNERS = {*WORKERS, "airflow-dag-processor"}
ACCESS_DOC = ROOT / "docs" / "access-control.md"

CODE_MOUNTS = {
    "./dags": "/opt/airflow/dags",
    "./plugins": "/opt/airflow/plugins",
    "./include": "/opt/airflow/include",
    "./logs": "/opt/airflow/logs",
}
# Environment keys / variable names that hold a secret. "_CONN_" (AIRFLOW_CONN_*) and "_CONN$"
# (SQL_ALCHEMY_CONN), but not "_CONNECTION_" (an instance connection name is no secret).
SECRET_KEY_RE = re.compile(
    r"PASSWORD|SECRET|FERNET|_CONN_|_CONN$|_KEY|ALERT_TO|REPORT_TO|_AUTH$|BROKER_URL|RESULT_BACKEND"
)
# Keys that match SECRET_KEY_RE but hold a path, not a secret.
NOT_SECRET_VALUES: set[str] = set()
# A connection assembled in the compose file; its password part is checked as a URL password.
COMPOSITE_CONNECTIONS = {"AIRFLOW_CONN_MLFLOW_DEFAULT"}
# ${NAME...} interpolation; "$${...}" is an escaped literal "$" and is not interpolated.
INTERPOLATION_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}")
REQUIRED_VAR_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]+\}")
# Whole value is a single required interpolation (with a non-empty error message).
REQUIRED_ONLY_RE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}$")


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def settings() -> dict:
    return yaml.safe_load(SETTINGS_FILE.read_text())["airflow"]


def _strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, str):
        yield node


@pytest.fixture(scope="module")
def compose_values(compose: dict) -> str:
    """Every string in the parsed compose file (what compose interpolates; comments are not)."""
    return "\n".join(_strings(compose))


@pytest.fixture(scope="module")
def init_script(services) -> str:
    return _command(services["airflow-init"])


@pytest.fixture(scope="module")
def dockerfile_instructions() -> list[str]:
    """Dockerfile instructions, comments dropped and continuation lines joined."""
    instructions: list[str] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        instructions.append(" ".join((current + line).split()))
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return instructions


def _env_example() -> tuple[dict[str, str], set[str]]:
    """(KEY -> value of the active lines, names of the commented-out `# KEY=...` optional lines)."""
    values: dict[str, str] = {}
    optional: set[str] = set()
    for raw in ENV_EXAMPLE.read_text().splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            match = re.match(r"#\s*([A-Z][A-Z0-9_]*)=", line)
            if match:
                optional.add(match.group(1))
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example line is not KEY=VALUE: {raw!r}"
        values[key.strip()] = value.strip()
    return values, optional


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "use the mapping form for environment"
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _command(service: dict) -> str:
    command = service.get("command")
    if isinstance(command, list):
        return " ".join(str(part) for part in command)
    return str(command or "")


def _healthcheck_test(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else test


def _mounts(service: dict) -> dict[str, tuple[str, str]]:
    """source -> (container path, mode), for the short volume syntax."""
    mounts = {}
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), "use the short volume syntax"
        host, container, *mode = volume.split(":")
        mounts[host] = (container, mode[0] if mode else "rw")
    return mounts


def _script_commands(script: str, prefix: list[str]) -> list[list[str]]:
    """Lines of a shell script that start with ``prefix`` words, split like the shell would."""
    found = []
    for line in script.splitlines():
        line = line.strip()
        if line.startswith(prefix[0]):
            words = shlex.split(line)
            if words[: len(prefix)] == prefix:
                found.append(words)
    return found


def _e2e_workers() -> dict[str, str]:
    """``WORKERS`` (process name -> queue) of scripts/e2e_stack.py, read without importing it."""
    tree = ast.parse(E2E_STACK.read_text())
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "WORKERS" for t in targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{E2E_STACK.relative_to(ROOT)} no longer defines WORKERS = {{name: queue}}")


# --- docker-compose.yaml: services ---------------------------------------------------------------


def test_services(services):
    assert set(services) == EXPECTED_SERVICES


def test_only_the_cloud_sql_proxy_is_behind_a_profile(services):
    """`docker compose up` starts everything but the optional proxy (`--profile cloudsql`)."""
    profiled = {name: service["profiles"] for name, service in services.items() if "profiles" in service}
    assert profiled == {PROXY: ["cloudsql"]}


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_airflow_services_use_the_project_image(services, name):
    service = services[name]
    build = service.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    assert context in (".", "./"), f"{name} must build the project Dockerfile"
    assert re.fullmatch(r"nightshift-airflow:\$\{NIGHTSHIFT_IMAGE_TAG:-[\w.-]+\}", service["image"])


@pytest.mark.parametrize(("name", "command"), sorted(AIRFLOW_COMMANDS.items()))
def test_airflow_service_commands(services, name, command):
    assert _command(services[name]) == command


def test_airflow_init_migrates_and_imports_connections(init_script):
    assert "airflow db migrate" in init_script
    guard = "[ -f /opt/airflow/secrets/connections.json ]"
    importing = "airflow connections import /opt/airflow/secrets/connections.json"
    assert guard in init_script and importing in init_script
    assert init_script.index(guard) < init_script.index(importing)
    assert init_script.index("airflow db migrate") < init_script.index(importing)
    assert "set -euo pipefail" in init_script, "a failed step must fail airflow-init"


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_airflow_services_mount_code_and_logs(services, name):
    mounts = _mounts(services[name])
    for host, container in CODE_MOUNTS.items():
        assert host in mounts, f"{name} does not mount {host}"
        assert mounts[host][0] == container
    assert mounts["./logs"][1] == "rw", "logs must stay writable"
    # The key files only where connections are used (test_secrets_are_where_the_docs_say).
    if name in TASK_RUNNERS | {"airflow-init"}:
        assert mounts.get("./secrets") == ("/opt/airflow/secrets", "ro")


# --- healthchecks --------------------------------------------------------------------------------


def test_every_long_running_service_has_a_healthcheck_and_restarts(services):
    for name, service in services.items():
        if name in ONE_SHOT:
            assert "healthcheck" not in service, f"one-shot {name} needs no healthcheck"
            assert "restart" not in service, f"one-shot {name} must not be restarted after it exits"
            continue
        assert "healthcheck" in service, f"{name} has no healthcheck"
        check = service["healthcheck"]
        assert not check.get("disable"), f"{name} disables its healthcheck"
        assert _healthcheck_test(service).split()[0] in ("CMD", "CMD-SHELL")
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{name} healthcheck lacks {key}"
        assert service.get("restart") == "always", f"{name} must come back after a crash or reboot"


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("postgres", ["pg_isready"]),
        ("redis", ["redis-cli", "ping"]),
        ("airflow-apiserver", ["curl", "--fail", "http://localhost:8080/api/v2/version"]),
        ("airflow-scheduler", ["airflow jobs check", "--job-type SchedulerJob", "--local"]),
        ("airflow-dag-processor", ["airflow jobs check", "--job-type DagProcessorJob", "--local"]),
        ("airflow-triggerer", ["airflow jobs check", "--job-type TriggererJob", "--local"]),
        (
            "airflow-worker",
            [
                "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping",
                '-d "default@$${HOSTNAME}"',
            ],
        ),
        (
            "airflow-worker-ml",
            [
                "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping",
                '-d "ml@$${HOSTNAME}"',
            ],
        ),
        # The proxy image is distroless (no shell, no curl): its own `wait` asks /startup.
        (PROXY, ["CMD /cloud-sql-proxy wait"]),
    ],
)
def test_healthcheck_commands(services, name, fragments):
    test = _healthcheck_test(services[name])
    for fragment in fragments:
        assert fragment in test, f"{name} healthcheck lacks {fragment!r}: {test!r}"


# --- workers and queues --------------------------------------------------------------------------


def _queues(service: dict) -> set[str]:
    args = shlex.split(_command(service))
    assert args[:2] == ["celery", "worker"]
    flag = next(i for i, arg in enumerate(args) if arg in ("-q", "--queues"))
    return set(args[flag + 1].split(","))


@pytest.mark.parametrize(("name", "queue"), sorted(WORKERS.items()))
def test_worker_consumes_its_queue_and_scales(services, name, queue):
    worker = services[name]
    assert _queues(worker) == {queue}
    args = shlex.split(_command(worker))
    hostname = args[args.index("--celery-hostname") + 1]
    assert hostname == f"{queue}@%h"
    # The healthcheck pings this replica by the name Celery gave it, not another worker.
    assert f'-d "{queue}@$${{HOSTNAME}}"' in _healthcheck_test(worker)
    # A container_name or a fixed host port would stop `--scale` from working.
    assert "container_name" not in worker
    assert "ports" not in worker
    env = _environment(worker)
    assert env["DUMB_INIT_SETSID"] == "0", "warm shutdown: running tasks finish before the worker stops"
    assert re.fullmatch(
        r"\$\{NIGHTSHIFT_\w*WORKER_CONCURRENCY:-\d+\}", env["AIRFLOW__CELERY__WORKER_CONCURRENCY"]
    )


def test_queues_cover_every_task_and_match_make_e2e(services):
    queues = {queue for name in WORKERS for queue in _queues(services[name])}
    default_queue = _environment(services["airflow-scheduler"])["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    needed = {default_queue, retrain_config.load().queue}
    assert needed <= queues, f"no worker consumes {sorted(needed - queues)}"
    assert queues == set(_e2e_workers().values()), "compose and make e2e must run the same queues"


def test_transport_localhost_by_default_and_https_seen_through_the_proxy(services):
    """Plain HTTP only on the Docker host's 127.0.0.1 (a TLS proxy serves everyone else), and the
    api-server trusts the proxy's X-Forwarded-Proto: FAB sets its _token cookie Secure only when
    the request it sees is https."""
    api = services["airflow-apiserver"]
    assert [str(port) for port in api["ports"]] == ["${NIGHTSHIFT_BIND:-127.0.0.1}:8080:8080"]
    published = sorted(name for name, service in services.items() if "ports" in service)
    assert published == ["airflow-apiserver"], "nothing else is reachable from outside"
    env = _environment(api)
    assert "--proxy-headers" in shlex.split(_command(api)), "uvicorn: X-Forwarded-* for the FastAPI app"
    assert env["FORWARDED_ALLOW_IPS"] == "*", "the proxy connects through Docker's bridge, not 127.0.0.1"
    assert env["AIRFLOW__FAB__ENABLE_PROXY_FIX"].lower() == "true", "werkzeug ProxyFix for FAB's views"
    assert env["NIGHTSHIFT_COOKIE_SECURE"] == "${NIGHTSHIFT_COOKIE_SECURE:-false}"


@pytest.mark.parametrize(("value", "secure"), [("true", True), ("false", False), (None, False)])
def test_the_secure_cookie_setting_reaches_fab(monkeypatch, value, secure):
    """The variable the compose passes is the one include/config/webserver_config.py reads."""
    import runpy

    if value is None:
        monkeypatch.delenv("NIGHTSHIFT_COOKIE_SECURE", raising=False)
    else:
        monkeypatch.setenv("NIGHTSHIFT_COOKIE_SECURE", value)
    settings = runpy.run_path(str(ROOT / "include/config/webserver_config.py"))
    assert settings["SESSION_COOKIE_SECURE"] is secure


def test_dependencies(services):
    for name in AIRFLOW_SERVICES:
        depends_on = services[name]["depends_on"]
        assert isinstance(depends_on, dict), f"{name}: use the long depends_on form with conditions"
        assert depends_on["postgres"]["condition"] == "service_healthy"
        assert depends_on["redis"]["condition"] == "service_healthy"
        if name != "airflow-init":
            assert depends_on["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-init"]["depends_on"][DB_INIT]["condition"] == "service_completed_successfully"
    assert services[DB_INIT]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in WORKERS:
        assert services[name]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    # Sync tasks wait for the proxy when it runs; without the profile it must not be required.
    on_proxy = services["airflow-worker"]["depends_on"][PROXY]
    assert on_proxy == {"condition": "service_healthy", "required": False}


# --- settings shared by every Airflow component ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_celery_executor_and_core_settings(services, name):
    env = _environment(services[name])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "default"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"].lower() == "true"
    assert env["PYTHONPATH"] == "/opt/airflow/include:/opt/airflow/plugins"
    # Who holds the metadata DB's and Celery's URLs: test_secrets_are_where_the_docs_say.
    if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in env:
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
    if "AIRFLOW__CELERY__BROKER_URL" in env:
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:")
        assert env["AIRFLOW__CELERY__BROKER_URL"].endswith("@redis:6379/0")


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_production_access_control_is_the_fab_auth_manager(services, name):
    """Users and roles in the metadata DB (FAB), never the development-only simple auth manager."""
    env = _environment(services[name])
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == "nightshift.auth.NightshiftAuthManager"
    assert env["AIRFLOW__FAB__CONFIG_FILE"] == "/opt/airflow/include/config/webserver_config.py"
    assert not {k for k in env if "SIMPLE_AUTH_MANAGER" in k}
    assert "AIRFLOW_ADMIN_PASSWORD" not in env or name == "airflow-init", "the admin password is init's only"


def test_the_auth_manager_and_its_settings_exist():
    """The class and file the compose names are the project's, with FAB's database login."""
    from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

    from nightshift.auth import NightshiftAuthManager

    assert issubclass(NightshiftAuthManager, FabAuthManager)
    text = (ROOT / "include/config/webserver_config.py").read_text()
    assert "AUTH_TYPE = AUTH_DB" in text and "AUTH_USER_REGISTRATION = False" in text


def test_init_creates_the_roles_and_the_first_admin_without_a_default_password(services):
    init = services["airflow-init"]
    env = _environment(init)
    assert REQUIRED_ONLY_RE.match(env["AIRFLOW_ADMIN_USER"]), env["AIRFLOW_ADMIN_USER"]
    assert REQUIRED_ONLY_RE.match(env["AIRFLOW_ADMIN_PASSWORD"]), "no default admin password"
    script = "\n".join(init["command"])
    assert script.index("airflow db migrate") < script.index("airflow sync-perm") < script.index("add_user(")
    assert 'sm.find_role("Admin")' in script
    assert 'password=os.environ["AIRFLOW_ADMIN_PASSWORD"]' in script
    assert "passwords.json" not in script


@pytest.mark.parametrize("name", sorted(TASK_RUNNERS))
def test_every_connection_of_the_settings_file_is_defined(services, settings, name):
    """Each connection `make run` defines locally has its production counterpart here."""
    env = _environment(services[name])
    conn_ids = {c["conn_id"] for c in settings["connections"]} | {"google_cloud_default"}
    missing = {c for c in conn_ids if f"AIRFLOW_CONN_{c.upper()}" not in env}
    assert not missing, f"{name} lacks AIRFLOW_CONN_* for {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_reports_and_mlflow_artifacts_are_shared(compose, services, name):
    env = _environment(services[name])
    mounts = {container: (host, mode) for host, (container, mode) in _mounts(services[name]).items()}
    reports = env["NIGHTSHIFT_REPORTS_DIR"]
    assert mounts.get(reports) == ("./reports", "rw"), f"{name}: {reports} must be the shared ./reports"
    if "AIRFLOW_CONN_MLFLOW_DEFAULT" not in env:
        assert name not in TASK_RUNNERS | {"airflow-init"}, f"{name} lacks the MLflow connection"
        return
    artifacts = json.loads(env["AIRFLOW_CONN_MLFLOW_DEFAULT"])["extra"]["artifact_location"]
    default = re.fullmatch(r"\$\{MLFLOW_ARTIFACT_LOCATION:-(/[^}]+)\}", artifacts)
    assert default, artifacts
    host, mode = mounts[default.group(1)]
    assert host in compose["volumes"] and mode == "rw", "MLflow artifacts live on a shared named volume"


# --- MLflow ------------------------------------------------------------------------------------


def test_mlflow_connection_points_at_the_compose_postgres(services):
    env = _environment(services["airflow-worker-ml"])
    conn = json.loads(env["AIRFLOW_CONN_MLFLOW_DEFAULT"])
    assert conn["conn_type"] == "generic"
    assert retrain_config.load().mlflow_conn_id == "mlflow_default"
    _assert_own_database(services, conn["extra"]["tracking_uri"], "postgresql", "MLFLOW_DB_PASSWORD")


def _assert_own_database(services, url: str, scheme: str, password_var: str) -> str:
    """``url`` logs in as a role of its own, which postgres-init creates with the password from
    ``password_var`` and makes the owner of the URL's database; not the metadata DB's login.
    Returns the database name."""
    match = re.fullmatch(rf"{re.escape(scheme)}://(\w+):\$\{{{password_var}:\?[^}}]+\}}@postgres/(\w+)", url)
    assert match, url
    user, database = match.groups()
    assert user != "airflow" and database != "airflow", f"{url} uses the metadata DB or its login"
    # postgres-init creates exactly that role and database, owned by the role, idempotently,
    # reading the password from its environment (never from its command line).
    script = _command(services[DB_INIT])
    variable = f"{user}_password"
    assert f"\\getenv {variable} {password_var}" in script
    assert f"WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}')" in script
    assert f"ALTER ROLE {user} WITH LOGIN PASSWORD :'{variable}'" in script
    assert f"'CREATE DATABASE {database} OWNER {user}' WHERE NOT EXISTS" in script
    # No other role may connect to it (PostgreSQL lets PUBLIC connect to every database).
    (revoke,) = [line for line in script.splitlines() if line.strip().startswith("REVOKE CONNECT")]
    assert re.fullmatch(
        rf"REVOKE CONNECT, TEMPORARY ON DATABASE airflow, (\w+, )*{database}(, \w+)* FROM PUBLIC;",
        revoke.strip(),
    )
    assert "ON_ERROR_STOP=1" in script and "set -euo pipefail" in script
    db_env = _environment(services[DB_INIT])
    assert db_env["PGHOST"] == "postgres" and db_env["PGUSER"] == "airflow"
    assert REQUIRED_ONLY_RE.match(db_env[password_var])
    return database


def test_celery_result_backend_has_its_own_login_and_database(services):
    """The result backend's tables (celery_taskmeta, celery_tasksetmeta) live in a database of a
    role of their own: a leaked result-backend URL opens neither the metadata DB nor MLflow's."""
    urls = {
        _environment(services[name]).get("AIRFLOW__CELERY__RESULT_BACKEND")
        for name in ("airflow-scheduler", *WORKERS)
    }
    (url,) = urls
    database = _assert_own_database(services, url, "db+postgresql", "CELERY_DB_PASSWORD")
    mlflow = json.loads(_environment(services["airflow-worker-ml"])["AIRFLOW_CONN_MLFLOW_DEFAULT"])
    assert f"/{database}" not in mlflow["extra"]["tracking_uri"], "not MLflow's database either"


def test_airflow_init_creates_the_mlflow_tables_once(init_script):
    """Two workers creating MLflow's schema at the same moment would collide: init does it first."""
    assert 'json.loads(os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"])' in init_script
    assert "MlflowClient(tracking_uri=" in init_script
    assert init_script.index("airflow db migrate") < init_script.index("MlflowClient(")


# --- pools and variables created at init -----------------------------------------------------------


def test_airflow_init_creates_the_pools_of_the_settings_file(init_script, settings):
    created = {
        words[3]: int(words[4]) for words in _script_commands(init_script, ["airflow", "pools", "set"])
    }
    expected = {p["pool_name"]: p["pool_slot"] for p in settings["pools"]}
    assert created == expected
    assert init_script.index("airflow db migrate") < init_script.index("airflow pools set")


def test_airflow_init_sets_the_variables_of_the_settings_file(services, init_script, settings):
    set_lines = _script_commands(init_script, ["airflow", "variables", "set"])
    values = {}
    for words in set_lines:
        args = words[3:]
        if args[0] == "--description":
            args = args[2:]
        values[args[0]] = args[1]
    init_env = _environment(services["airflow-init"])
    for variable in (v["variable_name"] for v in settings["variables"]):
        assert variable in values, f"airflow-init does not set Variable {variable}"
        # The value comes from .env through airflow-init's environment ($$ = a literal $ for bash).
        source = re.fullmatch(r"\$\$(\w+)", values[variable])
        assert source, f"{variable}: {values[variable]!r} is not $$<ENV>"
        assert REQUIRED_ONLY_RE.match(init_env[source.group(1)]), f"{source.group(1)} must be required"
    # An AIRFLOW_VAR_* environment variable would shadow the value set in the database.
    for name, service in services.items():
        shadowing = {
            k for k in _environment(service) if k.startswith("AIRFLOW_VAR_") and k[12:].lower() in values
        }
        assert not shadowing, f"{name}: {sorted(shadowing)} would hide the Variables set at init"
    assert init_script.index("airflow db migrate") < init_script.index("airflow variables set")


def test_airflow_init_makes_shared_folders_writable(services, init_script):
    assert services["airflow-init"]["user"] == "0:0"
    owned = set()
    for words in _script_commands(init_script, ["chown"]):
        paths = [w for w in words[1:] if not w.startswith("-")][1:]  # drop the owner
        owned.update(paths)
    uid = services["airflow-scheduler"]["user"].rsplit(":", 1)[0]
    assert f'chown -R "{uid}:0" /opt/airflow/logs' in init_script, "owned by the user the services run as"
    for path in ("/opt/airflow/logs", "/opt/airflow/reports", "/opt/airflow/mlflow-artifacts"):
        assert path in owned, f"airflow-init does not chown {path}"


# --- Cloud SQL Auth Proxy ------------------------------------------------------------------------


def test_cloud_sql_proxy_service(services):
    proxy = services[PROXY]
    assert re.fullmatch(r"gcr\.io/cloud-sql-connectors/cloud-sql-proxy:\d+\.\d+\.\d+", proxy["image"])
    args = proxy["command"]
    for flag in ("--address=0.0.0.0", "--private-ip", "--health-check"):
        assert flag in args, f"{PROXY} lacks {flag}"
    assert re.fullmatch(
        r"--port=\$\{CLOUD_SQL_PROXY_PORT:-3306\}", next(a for a in args if a.startswith("--port"))
    )
    key = next(a for a in args if a.startswith("--credentials-file=")).split("=", 1)[1]
    (mount,) = proxy["volumes"]
    assert mount["type"] == "bind" and mount["target"] == key and mount["read_only"] is True
    assert mount["source"].startswith("./secrets/")
    assert mount["bind"]["create_host_path"] is False, "a missing key must fail, not become a directory"
    env = _environment(proxy)
    assert env["CSQL_PROXY_INSTANCE_CONNECTION_NAME"] == "${CLOUD_SQL_INSTANCE_CONNECTION_NAME:-}"
    # Reachable only inside the compose network.
    assert "ports" not in proxy


def test_cloud_sql_proxy_requires_nothing_of_users_without_the_profile(services):
    """Compose interpolates services of inactive profiles too: a ${VAR:?} in the proxy would stop
    `docker compose up` for everyone who does not use it."""
    required = REQUIRED_VAR_RE.findall("\n".join(_strings(services[PROXY])))
    assert not required, f"{PROXY} must not require {required}"


# --- secrets -------------------------------------------------------------------------------------


def test_every_secret_is_required_without_default(services):
    checked = set()
    for name, service in services.items():
        for key, value in _environment(service).items():
            if not SECRET_KEY_RE.search(key) or key in NOT_SECRET_VALUES:
                continue
            checked.add(key)
            assert REQUIRED_VAR_RE.search(value), f"{name}: {key} must come from ${{VAR:?message}}"
            whole = key.startswith("AIRFLOW_CONN_") or key.endswith(
                ("_PASSWORD", "_SECRET", "_KEY", "_AUTH", "ALERT_TO", "REPORT_TO")
            )
            if whole and key not in COMPOSITE_CONNECTIONS:
                assert REQUIRED_ONLY_RE.match(value), f"{name}: {key} must be only ${{VAR:?message}}"
    assert {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW_CONN_NIGHTSHIFT_SMTP",
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        "POSTGRES_PASSWORD",
        "PGPASSWORD",
        "MLFLOW_DB_PASSWORD",
        "REDISCLI_AUTH",
        "NIGHTSHIFT_ALERT_TO",
    } <= checked


# docs/access-control.md: the table of which service holds which secret, found by its header row.
SECRETS_TABLE_HEADER = "| secret | environment variable or mount | held by |"
# Whatever the table says: the workers run every task's code, so they never hold a key to Airflow
# itself (the metadata DB, the Fernet key, the JWT secret); and the JWT secret stays with the two
# components that issue or check tokens ([api_auth] jwt_secret in Airflow's configuration reference).
NEVER_HELD = {
    **{
        worker: {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__CORE__FERNET_KEY",
            "AIRFLOW__API_AUTH__JWT_SECRET",
        }
        for worker in WORKERS
    },
    **{
        name: {"AIRFLOW__API_AUTH__JWT_SECRET"}
        for name in AIRFLOW_SERVICES - {"airflow-apiserver", "airflow-scheduler"}
    },
}


def _documented_secrets_table() -> dict[str, set[str]]:
    """The access-control page's table: environment variable (or mount) -> the services that hold it."""
    lines = ACCESS_DOC.read_text().splitlines()
    assert SECRETS_TABLE_HEADER in lines, (
        f"{ACCESS_DOC.name} lacks the table starting {SECRETS_TABLE_HEADER!r}"
    )
    table: dict[str, set[str]] = {}
    for line in lines[lines.index(SECRETS_TABLE_HEADER) + 2 :]:
        if not line.startswith("|"):
            break
        _, where, holders = (cell.strip() for cell in line.strip("|").split("|"))
        for key in re.findall(r"`([^`]+)`", where):
            table[key] = set(re.findall(r"`([\w-]+)`", holders))
    return table


def _held_secrets(service: dict) -> set[str]:
    """The secret environment variables of a service (by name, or because the value interpolates a
    secret from .env), and ``./secrets`` when it mounts that folder or a file in it."""
    held = set()
    for key, value in _environment(service).items():
        interpolated = {var for var, _ in INTERPOLATION_RE.findall(value)}
        if SECRET_KEY_RE.search(key) or any(SECRET_KEY_RE.search(var) for var in interpolated):
            held.add(key)
    for volume in service.get("volumes", []):
        source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
        if source == "./secrets" or source.startswith("./secrets/"):
            held.add("./secrets")
    return held


def test_secrets_are_where_the_docs_say(services):
    table = _documented_secrets_table()
    assert set(services) >= {s for holders in table.values() for s in holders}, (
        f"{ACCESS_DOC.name} names no such service"
    )
    for name, service in services.items():
        held = _held_secrets(service)
        listed = {key for key, holders in table.items() if name in holders}
        assert not held - listed, (
            f"{name} holds {sorted(held - listed)}: {ACCESS_DOC.name}'s table does not give it that"
        )
        assert not listed - held, (
            f"{ACCESS_DOC.name}'s table gives {name} {sorted(listed - held)}, the compose does not"
        )
        assert not held & NEVER_HELD.get(name, set()), (
            f"{name} must never hold {sorted(held & NEVER_HELD[name])}"
        )


def test_every_url_password_is_required(services):
    found = 0
    for name, service in services.items():
        for key, value in _environment(service).items():
            for password in re.findall(r"://[^:/@\"]*:([^@\"]*)@", value):
                found += 1
                assert REQUIRED_ONLY_RE.match(password), f"{name}: {key} has a literal URL password"
    # metadata DB (5 services), broker and result backend (scheduler, 2 workers), MLflow (4)
    assert found >= 5 + 2 * 3 + 4, "metadata DB, result backend, broker and MLflow URLs"


def test_no_secret_interpolation_has_a_default(compose_values):
    found = INTERPOLATION_RE.findall(compose_values)
    assert found
    for var, modifier in found:
        if SECRET_KEY_RE.search(var) or var == "AIRFLOW_ADMIN_USER":
            assert modifier.startswith(":?") and len(modifier) > 2, (
                f"${{{var}{modifier}}} must be ${{{var}:?...}}"
            )


def test_no_pip_additional_requirements(compose_text):
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in compose_text
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in DOCKERFILE.read_text()


# --- Dockerfile ---------------------------------------------------------------------------------------


def test_dockerfile_base_image(dockerfile_instructions):
    assert dockerfile_instructions[0] == "FROM apache/airflow:3.3.2-python3.11"


def test_dockerfile_installs_pinned_requirements(dockerfile_instructions):
    installs = [i for i in dockerfile_instructions if i.startswith("RUN") and "pip install" in i]
    # One install into Airflow's environment; dbt gets its own venv (test_dockerfile_dbt_has_its_own_venv).
    installs = [i for i in installs if "dbt-venv" not in i]
    assert len(installs) == 1, installs
    install = installs[0]
    assert re.search(r"-r (/opt/airflow/)?requirements\.txt\b", install), install
    assert re.search(r"-c (/opt/airflow/)?requirements\.lock\b", install), install
    # The same set as the runtime venv that make run and make test's runtime check build: nothing more.
    assert re.findall(r"-r\s+(\S+)", install) == ["requirements.txt"], install
    assert "requirements-dev" not in " ".join(dockerfile_instructions)
    assert "--no-cache-dir" in install
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in install
    # pip runs as the airflow user, the system packages as root, before it.
    users = [(n, i) for n, i in enumerate(dockerfile_instructions) if i.startswith("USER ")]
    pip_at = dockerfile_instructions.index(install)
    assert [i for n, i in users if n < pip_at][-1] == "USER airflow"
    apt = next(n for n, i in enumerate(dockerfile_instructions) if "apt-get install" in i)
    assert apt < pip_at and [i for n, i in users if n < apt][-1] == "USER root"
    for package in ("default-libmysqlclient-dev", "build-essential", "pkg-config"):
        assert package in dockerfile_instructions[apt]


def test_dockerfile_dbt_has_its_own_venv_and_a_manifest_parsed_at_build(dockerfile_instructions):
    (install,) = [i for i in dockerfile_instructions if "pip install" in i and "dbt-venv" in i]
    assert "python -m venv /opt/airflow/dbt-venv" in install
    assert "-r requirements-dbt.txt -c requirements-dbt.lock" in install and "--no-cache-dir" in install
    env = " ".join(i for i in dockerfile_instructions if i.startswith("ENV"))
    assert "NIGHTSHIFT_DBT=/opt/airflow/dbt-venv/bin/dbt" in env
    assert "AIRFLOW__COSMOS__ENABLE_TELEMETRY=False" in env
    include_at = next(
        n for n, i in enumerate(dockerfile_instructions) if "include/ /opt/airflow/include" in i
    )
    (parse,) = [n for n, i in enumerate(dockerfile_instructions) if "dbt_setup.sh parse" in i]
    assert parse > include_at, "parse the dbt project after copying it"


def test_dockerfile_layers_and_code(dockerfile_instructions):
    pip_at = next(
        n for n, i in enumerate(dockerfile_instructions) if "pip install" in i and "dbt-venv" not in i
    )
    copies = {n: i for n, i in enumerate(dockerfile_instructions) if i.startswith("COPY")}
    requirements_copy = [n for n, i in copies.items() if "requirements.txt" in i and "requirements.lock" in i]
    assert requirements_copy and requirements_copy[0] < pip_at, "copy the requirements before installing"
    for folder in ("dags", "plugins", "include"):
        at = [n for n, i in copies.items() if re.search(rf"\s{folder}/? /opt/airflow/{folder}/?$", i)]
        assert at and at[0] > pip_at, f"{folder}/ must be copied to /opt/airflow/{folder} after pip install"
    assert "ENV PYTHONPATH=/opt/airflow/include:/opt/airflow/plugins" in dockerfile_instructions


def test_dockerignore():
    entries = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
    entries.discard("")
    for entry in (
        ".venv",
        ".venv-runtime",
        ".nightshift",
        ".git",
        "test-output",
        ".env",
        "secrets",
        "reports",
    ):
        assert entry in entries, f".dockerignore lacks {entry}"
    assert entries & {"__pycache__", "**/__pycache__"}


# --- .env.example -------------------------------------------------------------------------------------


def test_env_example_lists_every_required_variable_empty(compose_values):
    required = set(REQUIRED_VAR_RE.findall(compose_values))
    assert {
        "POSTGRES_PASSWORD",
        "MLFLOW_DB_PASSWORD",
        "REDIS_PASSWORD",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_API_SECRET_KEY",
        "AIRFLOW_ADMIN_USER",
        "AIRFLOW_ADMIN_PASSWORD",
        "AIRFLOW_CONN_NIGHTSHIFT_SMTP",
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE",
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
        "AIRFLOW_CONN_CLASSICMODELS_SOURCE",
        "AIRFLOW_CONN_REDDIT_DEFAULT",
        "NIGHTSHIFT_ALERT_TO",
        "NIGHTSHIFT_REPORT_TO",
    } <= required
    example, _ = _env_example()
    assert not required - set(example), f".env.example lacks {sorted(required - set(example))}"
    filled = {key: value for key, value in example.items() if value}
    assert not filled, f".env.example must not ship values: {sorted(filled)}"


def test_env_example_documents_every_variable_and_defaults_no_secret(compose_values):
    example, optional = _env_example()
    optional -= set(example)  # commented examples of required values are not optional settings
    used = {var for var, _ in INTERPOLATION_RE.findall(compose_values)}
    undocumented = used - set(example) - optional
    assert not undocumented, f".env.example does not mention {sorted(undocumented)}"
    assert "CLOUD_SQL_INSTANCE_CONNECTION_NAME" in example
    secret_optional = {name for name in optional if SECRET_KEY_RE.search(name)}
    assert not secret_optional, f"secrets cannot be optional: {sorted(secret_optional)}"


def test_env_example_explains_how_to_generate():
    text = ENV_EXAMPLE.read_text()
    assert "Fernet.generate_key()" in text
    assert "openssl rand -hex 32" in text
    assert '"conn_type":"smtp"' in text
    assert "cloud-sql-proxy" in text, "classicmodels_source example must go through the proxy"
