"""Fixtures for real local services. Missing service: skip locally, FAIL in CI (CI=true)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class Service:
    name: str
    host: str
    port: int
    how_to_start: str


SERVICES = {
    "mariadb": Service(
        "MariaDB", "127.0.0.1", 3306, "start-stop-daemon --start --background --exec /usr/sbin/mariadbd"
    ),
    "postgres": Service("PostgreSQL", "127.0.0.1", 5432, "pg_ctlcluster <version> main start"),
    "redis": Service("Redis", "127.0.0.1", 6379, "redis-server --daemonize yes --port 6379"),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
        message = (
            f"{service.name} is not reachable on {service.host}:{service.port}; "
            f"start it (e.g. `{service.how_to_start}`)"
        )
        if in_ci():
            pytest.fail(f"CI requires {message}", pytrace=False)
        pytest.skip(message)
    return service


@pytest.fixture
def mariadb() -> Service:
    return require("mariadb")


@pytest.fixture
def postgres() -> Service:
    return require("postgres")


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
    if service is SERVICES["mariadb"]:
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
