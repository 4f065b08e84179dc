"""SQLite (the standard library's sqlite3): the local stand-in for a source database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa

from nightshift_core.sync.columns import SourceColumn
from nightshift_core.sync.dialects.base import Dialect, catalog_columns, decimal_type
from nightshift_core.warehouse.types import UnsupportedTypeError


class SqliteDialect(Dialect):
    name = "sqlite"
    connection_types = ("sqlite",)
    placeholder = "?"

    def bind(self, value: Any) -> Any:
        """SQLite keeps datetimes as ISO text; Python's sqlite3 would bind '2026-01-01 00:00:00'
        (space), which sorts before '2026-01-01T...' (T) as text: bind the ISO 'T' form."""
        if isinstance(value, dt.datetime):
            return value.replace(tzinfo=None).isoformat(timespec="microseconds")
        return value

    def _snapshot(self, cur: Any) -> dt.datetime:
        """A read transaction holds its snapshot (WAL) or its shared lock until it ends."""
        cur.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")  # UTC, before the snapshot
        clock_at = dt.datetime.fromisoformat(cur.fetchone()[0])
        cur.execute("BEGIN")
        return clock_at

    def _describe(self, cur: Any, table: str, exclude: Sequence[str]) -> list[SourceColumn]:
        cur.execute(f'PRAGMA table_info("{table}")')
        rows = [(r[1], (r[2] or "").lower(), (r[2] or "").lower(), None, None, not r[3] and not r[5])
                for r in cur.fetchall()]  # fmt: skip
        return catalog_columns(table, rows, exclude, _arrow_type)

    def checksum_terms(
        self, conn: Any, key: str, cursor: str, timed: bool, lo: int, width: int
    ) -> tuple[str, str]:
        conn.create_function("nightshift_epoch_us", 1, _epoch_us, deterministic=True)
        value = f"nightshift_epoch_us({cursor})" if timed else cursor
        return f"({key} - {int(lo)}) / {int(width)}", value

    def arrow_refusal(self, extra: dict) -> str | None:
        return "SQLite sources are read by the DB-API path"


def _epoch_us(value: Any) -> int | None:
    if value is None:
        return None
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    moment = moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment
    return (moment - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)


def _arrow_type(data_type: str, full: str, precision, scale):
    t = data_type
    if t.startswith(("decimal", "numeric")):
        p, s = 38, 9
        if "(" in t:
            inner = t[t.index("(") + 1 : t.index(")")].split(",")
            p, s = int(inner[0]), int(inner[1]) if len(inner) > 1 else 0
        return decimal_type(p, s), lambda v: Decimal(str(v))
    if t.startswith(("bool",)):
        return pa.bool_(), bool
    if t.startswith("datetime") or t.startswith("timestamp"):
        return pa.timestamp("us"), lambda v: v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(v)
    if t.startswith("date"):
        return pa.date32(), lambda v: v if isinstance(v, dt.date) else dt.date.fromisoformat(v)
    if "int" in t:
        return pa.int64(), None
    if any(k in t for k in ("char", "clob", "text")) or t == "":
        return pa.string(), None
    if "blob" in t:
        return pa.binary(), None
    if any(k in t for k in ("real", "floa", "doub")):
        return pa.float64(), None
    raise UnsupportedTypeError(f"SQLite type {data_type}")
