"""The sync's quality gate on both engines: NULL and duplicated primary keys are found in every table of a
load, however many, by a few queries rather than one per table."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow as pa
import pytest
from test_sync_postgres_types import DATASET, engine  # noqa: F401 - the engine fixture: DuckDB or the emulator

from nightshift_core.warehouse import JobKey, TableRef

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("v", pa.string())])


@pytest.fixture
def warehouse(engine):  # noqa: F811 - the imported fixture, requested
    """``nightshift_warehouse`` on a DuckDB file or the BigQuery emulator (``engine``), the dataset empty."""
    from nightshift.hooks.warehouse import WarehouseHook

    with WarehouseHook().get_conn() as wh:
        wh.ensure_dataset(DATASET)
        yield wh


def load(wh, table: str, ids: list[int | None]) -> dict:
    """The table replaced with one row per id; the load result the gate reads."""
    rows = [{"id": i, "v": f"v{i}"} for i in ids]
    target = TableRef(DATASET, table)
    staged = wh.stage(JobKey("gate_test", table), target, [pa.RecordBatch.from_pylist(rows, SCHEMA)], SCHEMA)
    wh.publish(staged, "replace")
    return {"target": str(target), "staged_rows": len(ids), "source_rows": len(ids), "window": None}


def gate(results: list[dict], keyed: dict[str, list[str]]):
    from nightshift.operators.warehouse_ops import SyncQualityGateOperator

    op = SyncQualityGateOperator(task_id="quality_gate", load_results=results, primary_keys=keyed)
    return op.execute(
        {"ti": SimpleNamespace(dag_id="gate_test", task_id="quality_gate", run_id="r", map_index=-1)}
    )


def test_every_table_with_a_null_or_duplicated_key_is_named_in_few_queries(warehouse, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from nightshift.operators import warehouse_ops

    monkeypatch.setattr(warehouse_ops, "KEY_CHECKS_PER_QUERY", 2)  # three tables with keys: two queries
    results = [load(warehouse, "clean", [1, 2, 3]), load(warehouse, "nulls", [1, None, None]),
               load(warehouse, "keyless", [1, 1]), load(warehouse, "dups", [1, 1, 2, 2, 2, 3])]  # fmt: skip
    keyed = {r["target"]: ["id"] for r in results} | {f"{DATASET}.keyless": []}
    queries = []
    real = type(warehouse).query

    def counted(self, sql, params=None):
        queries.append(sql)
        return real(self, sql, params)

    monkeypatch.setattr(type(warehouse), "query", counted)
    with pytest.raises(AirflowFailException) as failed:
        gate(results, keyed)
    problems = str(failed.value).splitlines()[1:]
    assert problems == [
        f"- {DATASET}.nulls: primary key ['id'] has 2 NULL and 1 duplicated value(s)",  # the NULLs group too
        f"- {DATASET}.dups: primary key ['id'] has 0 NULL and 2 duplicated value(s)",
    ], problems
    assert len(queries) == 2, queries
    clean = [r for r in results if r["target"] != f"{DATASET}.nulls" and r["target"] != f"{DATASET}.dups"]
    assert gate(clean, keyed) == {"checked": [f"{DATASET}.clean", f"{DATASET}.keyless"], "repaired": {}}
