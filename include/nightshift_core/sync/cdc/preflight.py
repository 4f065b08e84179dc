"""Fail-fast checks that a source server writes the log change capture reads.

Read-only: the checks only read server variables. Each problem names the setting, its current and
required value, and the Cloud SQL way to set it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nightshift_core.errors import PermanentError

# Cloud SQL for MySQL turns the binary log on with point-in-time recovery; the row settings are
# database flags. Cloud SQL for PostgreSQL sets wal_level=logical through its own flag.
_MYSQL_REQUIRED: tuple[tuple[str, str, str], ...] = (
    (
        "log_bin",
        "ON",
        "enable point-in-time recovery, which turns the binary log on "
        "(gcloud sql instances patch INSTANCE --enable-bin-log)",
    ),
    ("binlog_format", "ROW", "database flag binlog_format=ROW"),
    ("binlog_row_image", "FULL", "database flag binlog_row_image=FULL"),
    ("binlog_row_metadata", "FULL", "database flag binlog_row_metadata=FULL"),
)
_POSTGRES_CLOUD_SQL = "database flag cloudsql.logical_decoding=on (it sets wal_level=logical)"


@dataclass(frozen=True)
class Problem:
    setting: str
    current: str | None
    required: str
    cloud_sql: str

    def __str__(self) -> str:
        current = "absent (the server is too old to have it)" if self.current is None else repr(self.current)
        return (
            f"{self.setting} is {current}, change capture needs {self.required!r}: "
            f"on Cloud SQL, {self.cloud_sql}; on your own server, set {self.setting} in its configuration "
            "and restart it"
        )


class PreflightError(PermanentError):
    """The source's log cannot serve change capture; the message lists every setting to change."""

    def __init__(self, server: str, problems: Sequence[Problem]) -> None:
        self.server = server
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{server} cannot serve change capture:\n{lines}")


@dataclass(frozen=True)
class BinlogSettings:
    """What the MariaDB/MySQL check found: which flavour, and whether positions can be GTIDs."""

    mariadb: bool
    gtid: bool


def _variables(conn: Any, names: Sequence[str]) -> dict[str, str]:
    cur = conn.cursor()
    try:
        cur.execute(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN (" + ", ".join(["%s"] * len(names)) + ")",
            list(names),
        )
        return {str(name).lower(): str(value) for name, value in cur.fetchall()}
    finally:
        cur.close()


def check_mysql(conn: Any, server: str) -> BinlogSettings:
    """Check a MariaDB/MySQL server's binlog settings; raise PreflightError naming each one to change.

    ``conn`` is any DB-API connection to the server, ``server`` how the message names it.
    GTID positions are used where the server has them (always on MariaDB, gtid_mode=ON on MySQL);
    otherwise positions are binlog file and offset, which is not a failure.
    """
    found = _variables(conn, [n for n, _, _ in _MYSQL_REQUIRED] + ["gtid_mode", "version"])
    problems = []
    for name, required, cloud_sql in _MYSQL_REQUIRED:
        current = found.get(name)
        normalised = {"1": "ON", "0": "OFF"}.get(current or "", current or "")
        if normalised.upper() != required:
            problems.append(Problem(name, current, required, cloud_sql))
    if problems:
        raise PreflightError(server, problems)
    mariadb = "mariadb" in found.get("version", "").lower()
    return BinlogSettings(mariadb=mariadb, gtid=mariadb or found.get("gtid_mode", "").upper() == "ON")


def check_postgres(conn: Any, server: str) -> None:
    """Check a PostgreSQL server's wal_level; raise PreflightError naming the setting to change."""
    cur = conn.cursor()
    try:
        cur.execute("SELECT current_setting('wal_level')")
        (wal_level,) = cur.fetchone()
    finally:
        cur.close()
    if wal_level != "logical":
        raise PreflightError(server, [Problem("wal_level", wal_level, "logical", _POSTGRES_CLOUD_SQL)])
