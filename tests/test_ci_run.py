"""``.ci/run`` stops, passed or failed, the private change-capture servers it started and no other, and
exits with ``make test``'s code. Run on servers of its own: a scratch data folder and free ports (the
shared 3307/5433 are never touched), with a stand-in for ``make`` that records which servers answer."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from support.net import free_port

ROOT = Path(__file__).resolve().parents[1]

FAKE_MAKE = """#!/usr/bin/env bash
# stands in for `make test`: notes its arguments and the change-capture servers answering, then exits
echo "make $* CI=$CI" >> "$FAKE_MAKE_LOG"
scripts/cdc_services.sh running >> "$FAKE_MAKE_LOG"
exit "$FAKE_MAKE_RC"
"""


@pytest.fixture
def ci(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="nightshift_ci_run_"))
    folder.chmod(0o755)  # the servers run as the system users mysql and postgres when we are root
    (tmp_path / "make").write_text(FAKE_MAKE)
    (tmp_path / "make").chmod(0o755)
    log = tmp_path / "make.log"
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "NIGHTSHIFT_CDC_DIR": str(folder / "cdc"),
        "NIGHTSHIFT_CDC_MARIADB_PORT": str(free_port()),
        "NIGHTSHIFT_CDC_POSTGRES_PORT": str(free_port()),
        "FAKE_MAKE_LOG": str(log),
    }

    def script(*args: str, rc: int = 0) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=ROOT, env=env | {"FAKE_MAKE_RC": str(rc)}, capture_output=True,
                              text=True, timeout=300)  # fmt: skip

    def running() -> str:
        return script("scripts/cdc_services.sh", "running").stdout.strip()

    try:
        yield script, running, log
    finally:
        script("scripts/cdc_services.sh", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_ci_stops_the_change_capture_servers_it_started_and_keeps_the_test_exit_code(ci):
    script, running, log = ci
    assert running() == "", "nothing answers on the scratch ports before the run"
    failed = script(".ci/run", rc=3)
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert log.read_text().splitlines() == ["make test CI=true", "mariadb postgres"], (
        "both up during the tests"
    )
    assert running() == "", f"the servers it started are stopped after a failed run:\n{failed.stdout}"

    log.unlink()
    script("scripts/cdc_services.sh", "start")
    script("scripts/cdc_services.sh", "stop", "mariadb")
    assert running() == "postgres"
    passed = script(".ci/run", rc=0)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert log.read_text().splitlines() == ["make test CI=true", "mariadb postgres"]
    assert running() == "postgres", f"the server running before the run is left running:\n{passed.stdout}"
    assert "Stopping the private change-capture servers (mariadb)" in passed.stdout
