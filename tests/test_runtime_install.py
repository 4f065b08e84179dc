"""The runtime install alone (what `make run` and the Docker image install) is enough.

`make test` builds `.venv-runtime` with scripts/bootstrap.sh, exactly as `make run` builds
`.venv` (requirements.txt pinned by requirements.lock, no dev tools), and points
NIGHTSHIFT_RUNTIME_PYTHON at it; tests/test_local_stack.py runs the whole local stack from it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from support.services import missing

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "scripts" / "check_runtime.py"


def runtime_python() -> str:
    """The runtime venv's interpreter; a missing one fails in CI and skips elsewhere."""
    python = os.environ.get("NIGHTSHIFT_RUNTIME_PYTHON", "")
    if python and Path(python).is_file():
        return python
    missing(
        f"the runtime venv (NIGHTSHIFT_RUNTIME_PYTHON={python!r} is not its interpreter)",
        "`make test` builds .venv-runtime and sets it; by hand: `NIGHTSHIFT_VENV=.venv-runtime "
        "scripts/bootstrap.sh`, then `export NIGHTSHIFT_RUNTIME_PYTHON=$PWD/.venv-runtime/bin/python`",
    )


def run_check(python: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH"))}
    return subprocess.run(
        [python, str(CHECK)], env={**clean, **(env or {})}, cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_the_runtime_venv_holds_no_dev_tools():
    python = runtime_python()
    for dev_only in ("pytest", "ruff", "bqemulator", "selenium", "pytest_httpserver"):
        probe = subprocess.run([python, "-c", f"import {dev_only}"], capture_output=True, text=True)
        assert probe.returncode != 0, f"{dev_only} is importable in {python}: that is not the runtime install"


def test_every_module_imports_with_the_runtime_install_alone():
    result = run_check(runtime_python())
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "every module of dags/, plugins/ and include/ imports" in result.stdout


def test_a_missing_runtime_package_fails_the_check_naming_module_and_fix(tmp_path):
    """Hide werkzeug (which only the dev tools used to bring in) the way a missing install looks."""
    (tmp_path / "werkzeug.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'werkzeug'\", name='werkzeug')\n"
    )
    result = run_check(runtime_python(), {"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if "reddit_replay" in x)
    assert line.startswith("error: include/nightshift_core/local/reddit_replay.py: ModuleNotFoundError")
    assert "lacks 'werkzeug': add it to requirements.txt" in line


def test_the_nightshift_command_runs_from_the_runtime_venv(tmp_path):
    """scripts/bootstrap.sh links `nightshift` into the venv it builds; the runtime install alone runs it."""
    command = Path(runtime_python()).parent / "nightshift"
    assert command.is_file(), f"{command} is missing: scripts/bootstrap.sh links scripts/nightshift there"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH"))}
    env = {**clean, "AIRFLOW_HOME": str(tmp_path)}
    shown = subprocess.run([str(command), "sync", "init", "--help"], env=env, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert shown.returncode == 0 and "--append-only" in shown.stdout, shown.stderr[-2000:]
    refused = subprocess.run([str(command), "sync", "init", "no_such_conn", "-o", str(tmp_path / "x.yaml")],
                             env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "connection 'no_such_conn' is not defined" in refused.stderr
