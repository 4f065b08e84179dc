"""Validate the local settings file (connections, variables, pools) before Airflow sees it.

The format follows Astronomer's ``airflow_settings.yaml`` so teams can reuse theirs::

    airflow:
      connections:
        - conn_id: nightshift_smtp
          conn_type: smtp
          conn_host: 127.0.0.1
          conn_port: 8025
          conn_extra: {disable_ssl: true}
      variables:
        - variable_name: nightshift_alert_to
          variable_value: data-team@localhost
      pools:
        - pool_name: classicmodels_source
          pool_slot: 4
          pool_description: ...

``${NAME}`` placeholders are replaced from the given environment; an unknown name is an
error (a silently empty path or secret is worse than a clear stop).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nightshift_core.errors import PermanentError

_CONN_KEYS = {
    "conn_id", "conn_type", "conn_host", "conn_schema", "conn_login", "conn_password",
    "conn_port", "conn_extra", "conn_description",
}  # fmt: skip
_VAR_KEYS = {"variable_name", "variable_value", "variable_description"}
_POOL_KEYS = {"pool_name", "pool_slot", "pool_description", "include_deferred"}
_SECTIONS = {"connections": _CONN_KEYS, "variables": _VAR_KEYS, "pools": _POOL_KEYS}
_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SettingsError(ValueError, PermanentError):
    """A settings file problem, always naming the file, the entry and the fix."""


@dataclass
class Settings:
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    pools: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_settings(path: Path, env: Mapping[str, str]) -> Settings:
    """Read, expand and validate ``path``; raise :class:`SettingsError` on any problem."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or set(raw) - {"airflow"}:
        raise SettingsError(f"{path}: the top level must be a single 'airflow:' mapping")
    body = raw.get("airflow") or {}
    unknown = set(body) - set(_SECTIONS)
    if unknown:
        raise SettingsError(
            f"{path}: unknown section(s) {sorted(unknown)} under 'airflow'; allowed: {sorted(_SECTIONS)}"
        )
    settings = Settings()
    for section, allowed in _SECTIONS.items():
        entries = body.get(section) or []
        if not isinstance(entries, list):
            raise SettingsError(f"{path}: airflow.{section} must be a list of mappings")
        id_key = {"connections": "conn_id", "variables": "variable_name", "pools": "pool_name"}[section]
        target: dict[str, dict[str, Any]] = getattr(settings, section)
        for index, entry in enumerate(entries):
            where = f"{path}: airflow.{section}[{index}]"
            if not isinstance(entry, dict):
                raise SettingsError(f"{where}: expected a mapping, got {type(entry).__name__}")
            extra = set(entry) - allowed
            if extra:
                raise SettingsError(f"{where}: unknown key(s) {sorted(extra)}; allowed: {sorted(allowed)}")
            ident = entry.get(id_key)
            if not isinstance(ident, str) or not _ID.fullmatch(ident):
                raise SettingsError(f"{where}: '{id_key}' must be a name of letters, digits, '_', '.', '-'")
            if ident in target:
                raise SettingsError(f"{where}: duplicate {id_key} {ident!r}; each must appear once")
            target[ident] = _expand(entry, env, f"{where} ({ident})")
    for name, conn in settings.connections.items():
        if not conn.get("conn_type"):
            raise SettingsError(f"{path}: connection {name!r} has no conn_type (e.g. smtp, mysql, postgres)")
        port = conn.get("conn_port")
        if port is not None:
            try:
                conn["conn_port"] = int(port)
            except (TypeError, ValueError):
                raise SettingsError(
                    f"{path}: connection {name!r} conn_port must be a number, got {port!r}"
                ) from None
    for name, pool in settings.pools.items():
        slots = pool.get("pool_slot")
        if not isinstance(slots, int) or slots < 0:
            raise SettingsError(f"{path}: pool {name!r} needs an integer pool_slot >= 0, got {slots!r}")
    return settings


def _expand(value: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise SettingsError(f"{where}: ${{{name}}} is not set; export {name} or edit the value")
            return env[name]

        return _PLACEHOLDER.sub(replace, value)
    if isinstance(value, dict):
        return {k: _expand(v, env, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, where) for v in value]
    return value


def connections_json(settings: Settings) -> str:
    """The JSON accepted by ``airflow connections import``."""
    out = {}
    for conn_id, conn in settings.connections.items():
        extra = conn.get("conn_extra")
        out[conn_id] = {
            "conn_type": conn["conn_type"],
            "host": conn.get("conn_host"),
            "schema": conn.get("conn_schema"),
            "login": conn.get("conn_login"),
            "password": conn.get("conn_password"),
            "port": conn.get("conn_port"),
            "description": conn.get("conn_description"),
            "extra": json.dumps(extra) if isinstance(extra, dict) else extra,
        }
    return json.dumps(out, indent=2)


def variables_json(settings: Settings) -> str:
    """The JSON accepted by ``airflow variables import``."""
    out = {}
    for name, var in settings.variables.items():
        value = var.get("variable_value")
        out[name] = value if isinstance(value, str) else json.dumps(value)
    return json.dumps(out, indent=2)


def pools_json(settings: Settings) -> str:
    """The JSON accepted by ``airflow pools import``."""
    out = {
        name: {
            "slots": pool["pool_slot"],
            "description": pool.get("pool_description") or "",
            "include_deferred": bool(pool.get("include_deferred", False)),
        }
        for name, pool in settings.pools.items()
    }
    return json.dumps(out, indent=2)
