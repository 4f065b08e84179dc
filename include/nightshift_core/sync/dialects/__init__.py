"""One class per source database; callers hold a :class:`Dialect` and never branch on which one."""

from __future__ import annotations

from nightshift_core.sync.dialects.base import Dialect
from nightshift_core.sync.dialects.mysql import MySqlDialect
from nightshift_core.sync.dialects.postgres import PostgresDialect
from nightshift_core.sync.dialects.sqlite import SqliteDialect

DIALECTS: dict[str, Dialect] = {d.name: d for d in (MySqlDialect(), PostgresDialect(), SqliteDialect())}

__all__ = ["DIALECTS", "Dialect", "MySqlDialect", "PostgresDialect", "SqliteDialect", "for_connection", "get"]


def for_connection(conn_type: str | None) -> Dialect:
    """The dialect of an Airflow connection type (``mysql``, ``google_cloud_sql_mysql``, ``postgres``...)."""
    kind = (conn_type or "").lower()
    for dialect in DIALECTS.values():
        if kind in dialect.connection_types:
            return dialect
    raise ValueError(f"unsupported source connection type {conn_type!r}: use mysql, postgres or sqlite")


def get(dialect: Dialect | str) -> Dialect:
    """A dialect itself, or the one of that name (``mysql``, ``postgres``, ``sqlite``)."""
    if isinstance(dialect, Dialect):
        return dialect
    try:
        return DIALECTS[dialect]
    except KeyError:
        raise ValueError(f"unknown source dialect {dialect!r}: use one of {', '.join(DIALECTS)}") from None
