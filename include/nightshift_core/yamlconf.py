"""Small helpers for validating YAML definitions with errors that name file, key and fix."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nightshift_core.warehouse.types import check_identifier

T = TypeVar("T")
_DAG_ID = re.compile(r"[A-Za-z0-9_.-]{1,200}")


def load_folder(
    directory: Path, load: Callable[[Path], T], error: type[ValueError], *, id_key: str, what: str
) -> list[T]:
    """Every ``*.yaml`` in ``directory`` loaded by ``load``; all problems of all files in one error.

    Two definitions with the same ``id_key`` attribute are a problem too, naming both files.
    """
    configs, problems = [], []
    for path in sorted(directory.glob("*.yaml")):
        try:
            configs.append(load(path))
        except error as exc:
            problems.append(str(exc))
    seen: dict[str, Path] = {}
    for config in configs:
        ident, path = getattr(config, id_key), config.path
        if ident in seen:
            problems.append(
                f"{path}: {id_key} {ident!r} is also used by {seen[ident]}; give one of them another '{id_key}'"
            )
        seen[ident] = path
    if problems:
        raise error(f"invalid {what} definition(s):\n- " + "\n- ".join(problems))
    return configs


def read_mapping(path: Path, error: type[ValueError]) -> dict:
    """The top-level mapping of a YAML file, or ``error`` naming the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return raw


class Where:
    """Validates values of one file; every error starts with the file's path."""

    def __init__(self, path: Path, error: type[ValueError]) -> None:
        self.path = path
        self.error = error

    def fail(self, message: str) -> None:
        raise self.error(f"{self.path}: {message}")

    def keys(self, mapping: dict, allowed: set[str], where: str) -> None:
        unknown = set(mapping) - allowed
        if unknown:
            self.fail(f"unknown key(s) {sorted(unknown)} in {where}; allowed: {sorted(allowed)}")

    def mapping(self, raw: dict, key: str, *, required: bool) -> dict:
        value = raw.get(key)
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            self.fail(f"'{key}' must be a mapping")
        return value

    def string(self, raw: dict, key: str, where: str, *, required: bool = False) -> str | None:
        value = raw.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{where} must be a non-empty string")
        return value

    def sql_file(self, raw: dict, key: str, where: str, sql_dir: Path) -> str:
        """``raw[key]``: a file under ``sql_dir`` (include/sql) named by a path relative to it.

        Absolute paths, '..' and symlinks leading out of the folder are refused: the path is
        checked after resolving, as the file would be opened.
        """
        sql = self.string(raw, key, where, required=True)
        inside = not Path(sql).is_absolute() and ".." not in Path(sql).parts
        if not inside or not (sql_dir / sql).resolve().is_relative_to(sql_dir.resolve()):
            self.fail(
                f"{where} is {sql!r}, which leads out of include/sql: give a path relative to "
                "include/sql without '..' (e.g. reporting/daily_sales.sql) and no symlink leading out"
            )
        if not (sql_dir / sql).is_file():
            self.fail(f"{where}: include/sql/{sql} does not exist; add it or fix the path")
        return sql

    def dag_basics(self, raw: dict, dag_id: str, schedule: str) -> tuple[str, str | None, datetime]:
        """``dag_id``, ``schedule`` and ``start_date`` (a date or datetime, UTC if naive) of a definition."""
        ident = raw.get("dag_id", dag_id)
        if not isinstance(ident, str) or not _DAG_ID.fullmatch(ident):
            self.fail(f"dag_id {ident!r} must use letters, digits, '_', '.', '-'")
        cron = raw.get("schedule", schedule)
        if cron is not None and not isinstance(cron, str):
            self.fail(f"schedule: use a cron string, a preset like {schedule!r}, or null")
        start = raw.get("start_date", date(2026, 1, 1))
        if isinstance(start, datetime):
            start_dt = start if start.tzinfo else start.replace(tzinfo=UTC)
        elif isinstance(start, date):
            start_dt = datetime(start.year, start.month, start.day, tzinfo=UTC)
        else:
            self.fail(f"start_date: use a date like 2026-01-01, got {start!r}")
        return ident, cron, start_dt

    def number(self, raw: dict, key: str, default: float, low: float, high: float, kind: type = float) -> Any:
        """``raw[key]`` (or ``default``): a number (``kind`` int: a whole one) in [low, high]."""
        value = raw.get(key, default)
        ok = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int)
        if not ok or not low <= value <= high:
            what = "a number" if kind is float else "a whole number"
            self.fail(f"{key} must be {what} from {low:g} to {high:g}, got {value!r}")
        return kind(value)

    def ident(self, value: Any, where: str, what: str) -> str:
        try:
            return check_identifier(value, what)
        except ValueError as exc:
            raise self.error(f"{self.path}: {where}: {exc}") from None
