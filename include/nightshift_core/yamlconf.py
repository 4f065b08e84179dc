"""Small helpers for validating YAML definitions with errors that name file, key and fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nightshift_core.warehouse.types import check_identifier

T = TypeVar("T")


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

    def ident(self, value: Any, where: str, what: str) -> str:
        try:
            return check_identifier(value, what)
        except ValueError as exc:
            raise self.error(f"{self.path}: {where}: {exc}") from None
