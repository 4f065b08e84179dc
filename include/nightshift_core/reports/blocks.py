"""Checks shared by the report YAML's ``headline:``, ``freshness:`` and ``charts:`` blocks.

Self-contained (no loader machinery), so the blocks parse the same whichever loader reads the
file; a problem raises :class:`ValueError` naming the key, the bad value and the fix, and the
loader adds the file's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nightshift_core.warehouse.types import check_identifier


def fail(message: str) -> None:
    raise ValueError(message)


def keys(raw: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        fail(f"unknown key(s) {unknown} in {where}; allowed: {', '.join(sorted(allowed))}")


def mapping(raw: Any, where: str, allowed: set[str], shape: str) -> dict:
    """``raw``, checked to be a mapping of known keys; ``shape`` says what it should look like."""
    if not isinstance(raw, dict):
        fail(f"{where} must be a mapping {shape}")
    keys(raw, allowed, where)
    return raw


def text(raw: dict, key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        fail(f"{where} must be non-empty text")
    return value.strip()


def ident(value: Any, where: str, what: str) -> str:
    try:
        return check_identifier(value, what)
    except (ValueError, TypeError) as exc:
        fail(f"{where}: {exc}")
    raise AssertionError  # unreachable


def sql_file(raw: dict, key: str, where: str, sql_dir: Path) -> str:
    """``raw[key]``: a file under ``sql_dir`` (include/sql), no absolute path, '..' or symlink out."""
    sql = text(raw, key, where)
    inside = not Path(sql).is_absolute() and ".." not in Path(sql).parts
    if not inside or not (sql_dir / sql).resolve().is_relative_to(sql_dir.resolve()):
        fail(
            f"{where} is {sql!r}, which leads out of include/sql: give a path relative to include/sql "
            "without '..' (e.g. reports/daily_kpis.sql) and no symlink leading out"
        )
    if not (sql_dir / sql).is_file():
        fail(f"{where}: include/sql/{sql} does not exist; add it or fix the path")
    return sql
