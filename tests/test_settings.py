from __future__ import annotations

import json
from pathlib import Path

import pytest

from nightshift_core.settings import (
    SettingsError,
    connections_json,
    load_settings,
    pools_json,
    variables_json,
)

ROOT = Path(__file__).resolve().parents[1]
ENV = {"NIGHTSHIFT_RUNTIME": "/srv/ns", "NIGHTSHIFT_SMTP_PORT": "2525", "NIGHTSHIFT_REDDIT_PORT": "2526"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(text)
    return path


def test_shipped_settings_file_is_valid():
    settings = load_settings(ROOT / "airflow_settings.yaml", ENV)
    smtp = settings.connections["nightshift_smtp"]
    assert smtp["conn_port"] == 2525
    assert settings.connections["nightshift_warehouse"]["conn_extra"]["path"] == "/srv/ns/warehouse.duckdb"
    assert "nightshift_alert_to" in settings.variables


def test_exports_match_airflow_import_formats(tmp_path):
    path = write(
        tmp_path,
        """
airflow:
  connections:
    - {conn_id: src, conn_type: mysql, conn_host: h, conn_port: 3306, conn_login: u, conn_password: p,
       conn_extra: {ssl: true}}
  variables:
    - {variable_name: plain, variable_value: text}
    - {variable_name: structured, variable_value: {a: 1}}
  pools:
    - {pool_name: src_pool, pool_slot: 4, pool_description: at most 4 source connections}
""",
    )
    settings = load_settings(path, ENV)
    conns = json.loads(connections_json(settings))
    assert conns["src"]["conn_type"] == "mysql" and conns["src"]["port"] == 3306
    assert json.loads(conns["src"]["extra"]) == {"ssl": True}
    assert json.loads(variables_json(settings)) == {"plain": "text", "structured": '{"a": 1}'}
    assert json.loads(pools_json(settings))["src_pool"]["slots"] == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("airflow:\n  conections: []\n", "unknown section(s) ['conections']"),
        (
            "airflow:\n  connections:\n    - {conn_id: a, conn_type: smtp, conn_hots: x}\n",
            "unknown key(s) ['conn_hots']",
        ),
        ("airflow:\n  connections:\n    - {conn_id: a}\n", "has no conn_type"),
        ("airflow:\n  connections:\n    - {conn_id: 'a b', conn_type: smtp}\n", "'conn_id' must be a name"),
        (
            "airflow:\n  variables:\n    - {variable_name: v, variable_value: 1}\n    - {variable_name: v, variable_value: 2}\n",
            "duplicate variable_name 'v'",
        ),
        ("airflow:\n  pools:\n    - {pool_name: p, pool_slot: many}\n", "integer pool_slot"),
        (
            "airflow:\n  connections:\n    - {conn_id: a, conn_type: smtp, conn_port: x}\n",
            "conn_port must be a number",
        ),
        (
            "airflow:\n  connections:\n    - {conn_id: a, conn_type: smtp, conn_host: '${NOPE}'}\n",
            "${NOPE} is not set",
        ),
        ("airflow: [\n", "not valid YAML"),
        ("other: 1\n", "single 'airflow:' mapping"),
    ],
)
def test_bad_files_name_file_key_and_fix(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_settings(path, ENV)
    assert message in str(info.value)
    assert str(path) in str(info.value)
