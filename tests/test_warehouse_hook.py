"""WarehouseHook: the nightshift_warehouse connection picks and configures the engine."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pendulum
import pytest


def use_connection(monkeypatch, extra: dict) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE", json.dumps({"conn_type": "generic", "extra": extra})
    )


def test_duckdb_engine_from_the_connection(monkeypatch, tmp_path):
    from nightshift.hooks.warehouse import WarehouseHook

    use_connection(monkeypatch, {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")})
    warehouse = WarehouseHook().get_conn()
    assert warehouse.engine == "duckdb"
    warehouse.ensure_dataset("hooked")
    assert (tmp_path / "w.duckdb").exists()
    # the engine really works on that file: a query sees the dataset it made there
    import duckdb

    warehouse.close()
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        assert ("hooked",) in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "set extra 'engine'"),
        ({"engine": "snowflake"}, "extra 'engine' is 'snowflake'"),
        ({"engine": "duckdb"}, "set extra 'path'"),
        ({"engine": "bigquery", "anonymous": True}, "set extra 'project'"),
    ],
)
def test_incomplete_connection_names_the_key(monkeypatch, extra, message):
    from nightshift.hooks.warehouse import WarehouseConfigError, WarehouseHook

    use_connection(monkeypatch, extra)
    with pytest.raises(WarehouseConfigError, match=message) as info:
        WarehouseHook().get_conn()
    assert "nightshift_warehouse" in str(info.value)


def test_job_key_uses_the_interval_and_ignores_the_try():
    from nightshift.hooks.warehouse import job_key

    day = pendulum.datetime(2026, 11, 21)

    def context(try_number, start=day, map_index=-1):
        ti = SimpleNamespace(dag_id="d", task_id="t", run_id="r", try_number=try_number, map_index=map_index)
        end = start.add(days=1) if start else None
        return {"ti": ti, "data_interval_start": start, "data_interval_end": end}

    assert job_key(context(1)) == job_key(context(3))
    assert job_key(context(1)).interval_start == "2026-11-21T00:00:00+00:00"
    assert job_key(context(1)) != job_key(context(1, start=pendulum.datetime(2026, 11, 22)))
    assert job_key(context(1, start=None)).run_id == "r"
    assert job_key(context(1, map_index=2)).task_id == "t[2]"
