"""The service fixtures: a missing service fails in CI and skips locally."""

from __future__ import annotations

import pytest


def test_service_fixture_fails_in_ci_and_skips_locally(monkeypatch):
    from support import services

    closed = services.Service("Nothing", "127.0.0.1", 9, "nothing to start")
    monkeypatch.setitem(services.SERVICES, "nothing", closed)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI requires Nothing"):
        services.require("nothing")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        services.require("nothing")


NEEDS_MARIADB = """
def test_reads(mariadb):
    pass


def test_writes(mariadb):
    pass


def test_without_services():
    pass
"""


def run_suite_without_mariadb(tmp_path, **env: str):
    """pytest in a subprocess on a two-test suite needing MariaDB, which it finds on a closed port."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from support.net import free_port

    tests = Path(__file__).resolve().parent
    (tmp_path / "conftest.py").write_text(
        f"import dataclasses, sys\nsys.path.insert(0, {str(tests)!r})\n"
        "pytest_plugins = ['support.services']\n\n\n"
        "def pytest_configure():\n"
        "    from support import services\n\n"
        "    mariadb = services.SERVICES['mariadb']\n"
        f"    services.SERVICES['mariadb'] = dataclasses.replace(mariadb, port={free_port()})\n"
    )
    (tmp_path / "test_needs_mariadb.py").write_text(NEEDS_MARIADB)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "NIGHTSHIFT_ALLOW_SKIPS")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path)],
        env={**clean, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **env}, cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


SUMMARY = "integration tests skipped: what they need is missing"


def test_skipped_suites_are_listed_with_their_fix_and_fail_the_run(tmp_path):
    run = run_suite_without_mariadb(tmp_path)
    out = run.stdout
    assert "1 passed, 2 skipped" in out, out
    block = out[out.index(SUMMARY) :]
    assert "MariaDB on 127.0.0.1:" in block and "(not reachable)" in block, block
    assert "skipped: test_needs_mariadb.py (2)" in block, block
    assert "fix: `scripts/services.sh` (as root) starts it" in block, block
    assert "`apt-get install mariadb-server`" in block, block
    assert "NIGHTSHIFT_ALLOW_SKIPS=1" in block, block
    assert run.returncode == 1, out


def test_allow_skips_keeps_the_list_and_passes_the_run(tmp_path):
    run = run_suite_without_mariadb(tmp_path, NIGHTSHIFT_ALLOW_SKIPS="1")
    assert "1 passed, 2 skipped" in run.stdout, run.stdout
    assert SUMMARY in run.stdout and "skipped: test_needs_mariadb.py (2)" in run.stdout, run.stdout
    assert "NIGHTSHIFT_ALLOW_SKIPS=1: these skips do not fail the run" in run.stdout, run.stdout
    assert run.returncode == 0, run.stdout


def test_in_ci_a_missing_service_fails_the_tests_instead(tmp_path):
    run = run_suite_without_mariadb(tmp_path, CI="true")
    assert "1 passed, 2 errors" in run.stdout, run.stdout
    assert "CI requires MariaDB on 127.0.0.1:" in run.stdout, run.stdout
    assert SUMMARY not in run.stdout, run.stdout
    assert run.returncode == 1, run.stdout
