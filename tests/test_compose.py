"""Static checks of the Docker deployment: docker-compose.yaml, Dockerfile, .env.example, .dockerignore.

Docker is not needed: the files are parsed, not run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"

AIRFLOW_COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker -q default,ml",
}
AIRFLOW_SERVICES = {"airflow-init", *AIRFLOW_COMMANDS}
EXPECTED_SERVICES = {"postgres", "redis", *AIRFLOW_SERVICES}
LONG_RUNNING_AIRFLOW = set(AIRFLOW_COMMANDS)

CODE_MOUNTS = {
    "./dags": "/opt/airflow/dags",
    "./plugins": "/opt/airflow/plugins",
    "./include": "/opt/airflow/include",
    "./logs": "/opt/airflow/logs",
}
SECRET_KEY_RE = re.compile(r"PASSWORD|SECRET|FERNET|CONN|_KEY|ALERT_TO|_AUTH$|BROKER_URL|RESULT_BACKEND")
# Keys that match SECRET_KEY_RE but hold a path, not a secret.
NOT_SECRET_VALUES = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"}
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
def compose_values(compose: dict) -> str:
    """Every string in the parsed compose file (what compose interpolates; comments are not)."""

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(key)
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)
        elif isinstance(node, str):
            yield node

    return "\n".join(walk(compose))


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


def _env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in ENV_EXAMPLE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example line is not KEY=VALUE: {raw!r}"
        values[key.strip()] = value.strip()
    return values


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
    """host path -> (container path, mode)"""
    mounts = {}
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), "use the short volume syntax"
        host, container, *mode = volume.split(":")
        mounts[host] = (container, mode[0] if mode else "rw")
    return mounts


# --- docker-compose.yaml ------------------------------------------------------------------------------


def test_services(services):
    assert set(services) == EXPECTED_SERVICES


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


def test_airflow_init_migrates_and_imports_connections(services):
    script = _command(services["airflow-init"])
    assert "airflow db migrate" in script
    guard = "[ -f /opt/airflow/secrets/connections.json ]"
    importing = "airflow connections import /opt/airflow/secrets/connections.json"
    assert guard in script and importing in script
    assert script.index(guard) < script.index(importing) and script.index(
        "airflow db migrate"
    ) < script.index(importing)
    assert "set -e" in script, "a failed migration must fail airflow-init"


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_airflow_services_mount_code_and_logs(services, name):
    mounts = _mounts(services[name])
    for host, container in CODE_MOUNTS.items():
        assert host in mounts, f"{name} does not mount {host}"
        assert mounts[host][0] == container
    assert mounts["./logs"][1] == "rw", "logs must stay writable"
    assert mounts.get("./secrets") == ("/opt/airflow/secrets", "ro")


def test_healthchecks(services):
    for name, service in services.items():
        if name == "airflow-init":
            assert "healthcheck" not in service
        else:
            assert "healthcheck" in service, f"{name} has no healthcheck"
            assert not service["healthcheck"].get("disable"), f"{name} disables its healthcheck"
            assert _healthcheck_test(service).split()[0] in ("CMD", "CMD-SHELL")


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
                '-d "celery@$${HOSTNAME}"',
            ],
        ),
    ],
)
def test_healthcheck_commands(services, name, fragments):
    test = _healthcheck_test(services[name])
    for fragment in fragments:
        assert fragment in test, f"{name} healthcheck lacks {fragment!r}: {test!r}"


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_celery_executor_and_core_settings(services, name):
    env = _environment(services[name])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"].lower() == "true"
    assert env["PYTHONPATH"] == "/opt/airflow/include:/opt/airflow/plugins"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://airflow:")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:")
    assert env["AIRFLOW__CELERY__BROKER_URL"].endswith("@redis:6379/0")


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_ui_always_needs_a_password(services, name):
    env = _environment(services[name])
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == (
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    )
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"].lower() == "false"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == "/opt/airflow/secrets/passwords.json"
    assert re.fullmatch(
        r"\$\{AIRFLOW_ADMIN_USER:\?[^}]+\}:admin", env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    )


def test_worker_is_scalable_and_serves_both_queues(services):
    worker = services["airflow-worker"]
    assert "container_name" not in worker
    args = shlex.split(_command(worker))
    assert args[:2] == ["celery", "worker"]
    flag = next(i for i, arg in enumerate(args) if arg in ("-q", "--queues"))
    assert set(args[flag + 1].split(",")) == {"default", "ml"}
    # A fixed host port would also stop --scale from working.
    assert "ports" not in worker


def test_api_server_port_is_published(services):
    ports = [str(port) for port in services["airflow-apiserver"].get("ports", [])]
    assert any(re.fullmatch(r"(\d+\.\d+\.\d+\.\d+:)?8080:8080(/tcp)?", port) for port in ports), ports


def test_dependencies(services):
    for name in AIRFLOW_SERVICES:
        depends_on = services[name]["depends_on"]
        assert isinstance(depends_on, dict), f"{name}: use the long depends_on form with conditions"
        assert depends_on["postgres"]["condition"] == "service_healthy"
        assert depends_on["redis"]["condition"] == "service_healthy"
        if name != "airflow-init":
            assert depends_on["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"


def test_postgres_and_redis(compose, services):
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    env = _environment(postgres)
    assert env["POSTGRES_USER"] == "airflow" and env["POSTGRES_DB"] == "airflow"
    volume = _mounts(postgres)
    assert volume and all(host in compose.get("volumes", {}) for host in volume), "use a named volume"

    redis = services["redis"]
    assert redis["image"] == "redis:7.2-bookworm"
    command = _command(redis)
    assert re.search(r"--requirepass \$\{REDIS_PASSWORD:\?[^}]+\}", command), command


def test_every_secret_is_required_without_default(services):
    checked = 0
    for name, service in services.items():
        for key, value in _environment(service).items():
            if not SECRET_KEY_RE.search(key) or key in NOT_SECRET_VALUES:
                continue
            checked += 1
            assert REQUIRED_VAR_RE.search(value), f"{name}: {key} must come from ${{VAR:?message}}"
            if key.startswith("AIRFLOW_CONN_") or key.endswith(
                ("_PASSWORD", "_SECRET", "_KEY", "_AUTH", "ALERT_TO")
            ):
                assert REQUIRED_ONLY_RE.match(value), f"{name}: {key} must be only ${{VAR:?message}}"
    # 8 per Airflow service, plus POSTGRES_PASSWORD and REDISCLI_AUTH.
    assert checked >= 8 * len(AIRFLOW_SERVICES) + 2


def test_every_url_password_is_required(services):
    for name, service in services.items():
        for key, value in _environment(service).items():
            for password in re.findall(r"://[^:/@]*:([^@]*)@", value):
                assert REQUIRED_ONLY_RE.match(password), f"{name}: {key} has a literal URL password"


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
    assert len(installs) == 1, installs
    install = installs[0]
    assert re.search(r"-r (/opt/airflow/)?requirements\.txt\b", install), install
    assert re.search(r"-c (/opt/airflow/)?requirements\.lock\b", install), install
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


def test_dockerfile_layers_and_code(dockerfile_instructions):
    pip_at = next(n for n, i in enumerate(dockerfile_instructions) if "pip install" in i)
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
    for entry in (".venv", ".nightshift", ".git", "test-output", ".env", "secrets"):
        assert entry in entries, f".dockerignore lacks {entry}"
    assert entries & {"__pycache__", "**/__pycache__"}


# --- .env.example -------------------------------------------------------------------------------------


def test_env_example_lists_every_required_variable_empty(compose_values):
    required = set(REQUIRED_VAR_RE.findall(compose_values))
    assert {
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_API_SECRET_KEY",
        "AIRFLOW_ADMIN_USER",
        "AIRFLOW_CONN_NIGHTSHIFT_SMTP",
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE",
        "NIGHTSHIFT_ALERT_TO",
    } <= required
    example = _env_example()
    assert not required - set(example), f".env.example lacks {sorted(required - set(example))}"
    filled = {key: value for key, value in example.items() if value}
    assert not filled, f".env.example must not ship values: {sorted(filled)}"


def test_env_example_explains_how_to_generate():
    text = ENV_EXAMPLE.read_text()
    assert "Fernet.generate_key()" in text
    assert "openssl rand -hex 32" in text
    assert '"conn_type":"smtp"' in text
