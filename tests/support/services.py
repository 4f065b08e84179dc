"""Fixtures for real local services, and the rule for anything a test needs but cannot find.

A missing service or tool FAILS the test in CI (CI=true). Elsewhere the test skips, the end of the
run lists every suite skipped that way with the command that provides what it needs, and the run
still exits non-zero, unless NIGHTSHIFT_ALLOW_SKIPS=1 accepts the skips. This module is a pytest
plugin (tests/conftest.py loads it), so that holds for `make test` and for any pytest command line.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn

import pytest

START = "`scripts/services.sh` (as root) starts it when it is installed"
CDC_START = (
    "`scripts/cdc_services.sh` (also run by `scripts/services.sh`, as root or a normal user) "
    "creates and starts it under .nightshift/cdc/"
)


@dataclass(frozen=True)
class Service:
    name: str
    host: str
    port: int
    how_to_provide: str
    engine: str = ""  # "mysql" or "postgres" for the database servers scratch_database works on


SERVICES = {
    "mariadb": Service(
        "MariaDB",
        "127.0.0.1",
        3306,
        f"{START}; otherwise `apt-get install mariadb-server` first "
        "(the tests log in as root over TCP with no password)",
        "mysql",
    ),
    "postgres": Service(
        "PostgreSQL",
        "127.0.0.1",
        5432,
        f"{START}; otherwise `apt-get install postgresql` first "
        "(the tests log in as postgres over TCP: `trust` for 127.0.0.1 in pg_hba.conf)",
        "postgres",
    ),
    # Private log-enabled servers for the change-capture tests; the shared ones above have no binlog
    # and no logical WAL, and are never reconfigured.
    "mariadb_binlog": Service(
        "MariaDB with the row-based binlog",
        "127.0.0.1",
        3307,
        f"{CDC_START}; needs mariadb-server installed (`apt-get install mariadb-server`)",
        "mysql",
    ),
    "postgres_logical": Service(
        "PostgreSQL with wal_level=logical",
        "127.0.0.1",
        5433,
        f"{CDC_START}; needs postgresql installed (`apt-get install postgresql`)",
        "postgres",
    ),
    "redis": Service("Redis", "127.0.0.1", 6379, f"{START}; otherwise `apt-get install redis-server` first"),
}

ALLOW_SKIPS = "NIGHTSHIFT_ALLOW_SKIPS"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skips_allowed() -> bool:
    return os.environ.get(ALLOW_SKIPS, "") == "1"


class Need(NamedTuple):
    """What a skipped test needs and the command that provides it."""

    what: str
    fix: str


def missing(what: str, fix: str) -> NoReturn:
    """Fail (CI) or skip (elsewhere) a test that lacks ``what``; ``fix`` is the command that provides it.

    The skip carries the need, so the end of the run lists it and fails the run (see the hooks below).
    """
    if in_ci():
        pytest.fail(f"CI requires {what}: {fix}", pytrace=False)
    skip = pytest.skip.Exception(f"{what}: {fix}")
    skip.nightshift_need = Need(what, fix)  # type: ignore[attr-defined]
    raise skip


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require(key: str) -> Service:
    """Return the service if it answers; otherwise skip (local) or fail (CI)."""
    service = SERVICES[key]
    if not reachable(service.host, service.port):
        missing(f"{service.name} on {service.host}:{service.port} (not reachable)", service.how_to_provide)
    return service


_SKIPPED = pytest.StashKey[list[tuple[str, Need]]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    need = getattr(call.excinfo.value, "nightshift_need", None) if call.excinfo else None
    if need is not None and report.skipped:
        item.config.stash.setdefault(_SKIPPED, []).append((report.nodeid.split("::")[0], need))
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> Generator[None, Any, Any]:
    """After pytest's own summary, just above the counts: each skipped suite and what it needs."""
    result = yield
    skipped = config.stash.get(_SKIPPED, [])
    if skipped:
        suites: dict[Need, Counter[str]] = {}
        for module, need in skipped:
            suites.setdefault(need, Counter())[module] += 1
        write = terminalreporter.write_line
        terminalreporter.write_sep("=", "integration tests skipped: what they need is missing", yellow=True)
        for need, modules in suites.items():
            write(need.what, bold=True)
            write("    skipped: " + ", ".join(f"{m} ({n})" for m, n in sorted(modules.items())))
            write(f"    fix: {need.fix}")
        if skips_allowed():
            write(f"{ALLOW_SKIPS}=1: these skips do not fail the run.", yellow=True)
        else:
            write(
                f"These skips fail the run: provide what is missing, or accept them with {ALLOW_SKIPS}=1.",
                red=True,
            )
    return result


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.stash.get(_SKIPPED, []) and exitstatus == pytest.ExitCode.OK and not skips_allowed():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def mariadb() -> Service:
    return require("mariadb")


@pytest.fixture
def postgres() -> Service:
    return require("postgres")


@pytest.fixture
def mariadb_binlog() -> Service:
    return require("mariadb_binlog")


@pytest.fixture
def postgres_logical() -> Service:
    return require("postgres_logical")


@pytest.fixture
def redis() -> Service:
    return require("redis")


@dataclass(frozen=True)
class Scratch:
    """A throw-away database: its name, an autocommit connection and the Airflow connection JSON."""

    name: str
    conn: Any
    airflow_conn: str


@contextlib.contextmanager
def scratch_database(service: Service, prefix: str = "ns_scratch") -> Iterator[Scratch]:
    """Create a uniquely named database on MariaDB or PostgreSQL; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    if service.engine == "mysql":
        import MySQLdb

        admin = MySQLdb.connect(host=service.host, port=service.port, user="root", autocommit=True)
        admin.cursor().execute(f"CREATE DATABASE `{name}`")
        conn = MySQLdb.connect(
            host=service.host, port=service.port, user="root", database=name, autocommit=True
        )
        kind, login, drop = "mysql", "root", f"DROP DATABASE IF EXISTS `{name}`"
    else:
        import psycopg2

        admin = psycopg2.connect(host=service.host, port=service.port, user="postgres", dbname="postgres")
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
        conn = psycopg2.connect(host=service.host, port=service.port, user="postgres", dbname=name)
        conn.autocommit = True
        kind, login, drop = "postgres", "postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    airflow_conn = json.dumps(
        {"conn_type": kind, "host": service.host, "port": service.port, "login": login, "schema": name}
    )
    try:
        yield Scratch(name, conn, airflow_conn)
    finally:
        conn.close()
        admin.cursor().execute(drop)
        admin.close()
