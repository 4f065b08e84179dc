"""kill -9 between stage and publish, and in the middle of publish: the target and its sync state never change."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nightshift_core.warehouse import TableRef
from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

ROOT = Path(__file__).resolve().parents[1]
T = TableRef("crash", "items")

SCRIPT = textwrap.dedent(
    """
    import contextlib, os, signal, sys
    import pyarrow as pa
    from nightshift_core.warehouse import JobKey, SyncState, TableRef
    from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

    path, when = sys.argv[1], sys.argv[2]
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])
    rows = [{"id": 2, "v": "B"}, {"id": 3, "v": "C"}]

    class Crashing(DuckDBWarehouse):
        @contextlib.contextmanager
        def connect(self):
            with super().connect() as con:
                yield Proxy(con)

    class Proxy:
        def __init__(self, con):
            self.con = con
        def execute(self, sql, *args):
            if when == "mid-publish" and sql.startswith('INSERT INTO "crash"'):
                os.kill(os.getpid(), signal.SIGKILL)  # the DELETE already ran in this transaction
            if when == "mid-state" and sql.startswith("INSERT INTO _nightshift.sync_state"):
                os.kill(os.getpid(), signal.SIGKILL)  # the rows are written in this transaction
            return self.con.execute(sql, *args)
        def __getattr__(self, name):
            return getattr(self.con, name)

    wh = Crashing(path)
    staged = wh.stage(JobKey("d", "t", "s", "e"), TableRef("crash", "items"),
                      [pa.RecordBatch.from_pylist(rows, schema=schema)], schema)
    if when == "after-stage":
        os.kill(os.getpid(), signal.SIGKILL)
    wh.publish(staged, "merge", key=["id"], state=SyncState("id"))
    """
)


def seed(path: Path) -> DuckDBWarehouse:
    import pyarrow as pa

    from nightshift_core.warehouse import JobKey, SyncState

    wh = DuckDBWarehouse(path)
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])
    batch = pa.RecordBatch.from_pylist([{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], schema=schema)
    wh.publish(wh.stage(JobKey("seed", "t", "s", "e"), T, [batch], schema), "merge", key=["id"],
               state=SyncState("id"))  # fmt: skip
    return wh


def run(path: Path, when: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT / "include"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path), when], env=env, capture_output=True, timeout=120
    )


@pytest.mark.parametrize("when", ["after-stage", "mid-publish", "mid-state"])
def test_kill_9_leaves_target_unchanged_and_rerun_is_correct(tmp_path, when):
    path = tmp_path / "warehouse.duckdb"
    wh = seed(path)
    crashed = run(path, when)
    assert crashed.returncode == -9, crashed.stderr.decode()[-2000:]
    assert wh.query(f"SELECT id, v FROM {T} ORDER BY id").to_pylist() == [
        {"id": 1, "v": "a"},
        {"id": 2, "v": "b"},
    ]
    assert wh.sync_state(T, "id") == 2, "the state did not advance either"
    leftovers = wh.drop_staging()
    assert len(leftovers) == 1 and leftovers[0].endswith(".parquet"), leftovers
    rerun = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path), "none"],
        env={"PYTHONPATH": str(ROOT / "include"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert wh.query(f"SELECT id, v FROM {T} ORDER BY id").to_pylist() == [
        {"id": 1, "v": "a"},
        {"id": 2, "v": "B"},
        {"id": 3, "v": "C"},
    ]
    assert wh.sync_state(T, "id") == 3
    assert wh.drop_staging() == []


BQ_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import pyarrow as pa
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery
    from nightshift_core.warehouse import JobKey, SyncState, TableRef
    from nightshift_core.warehouse.bigquery_engine import BigQueryWarehouse

    endpoint, project, spool, when = sys.argv[1:5]
    client = bigquery.Client(project=project, credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=endpoint))
    wh = BigQueryWarehouse(client, use_storage_api=False, spool_dir=spool)
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])
    rows = [{"id": 2, "v": "B"}, {"id": 3, "v": "C"}]
    staged = wh.stage(JobKey("d", "t", "s", "e"), TableRef("crash", "items"),
                      [pa.RecordBatch.from_pylist(rows, schema=schema)], schema)
    if when == "after-stage":
        os.kill(os.getpid(), signal.SIGKILL)
    wh.publish(staged, "merge", key=["id"], state=SyncState("id"))
    """
)


def test_bigquery_kill_9_after_stage_leaves_target_unchanged(tmp_path, bq_emulator):
    import pyarrow as pa

    from nightshift_core.warehouse import JobKey, SyncState
    from nightshift_core.warehouse.bigquery_engine import BigQueryWarehouse

    wh = BigQueryWarehouse(bq_emulator.client(), use_storage_api=False, spool_dir=str(tmp_path))
    wh.client.delete_dataset(f"{bq_emulator.project}.crash", delete_contents=True, not_found_ok=True)
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])
    batch = pa.RecordBatch.from_pylist([{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], schema=schema)
    wh.publish(wh.stage(JobKey("seed", "t", "s", "e"), T, [batch], schema), "merge", key=["id"],
               state=SyncState("id"))  # fmt: skip

    def run_script(when: str) -> subprocess.CompletedProcess:
        args = [bq_emulator.endpoint, bq_emulator.project, str(tmp_path), when]
        env = {"PYTHONPATH": str(ROOT / "include"), "PATH": "/usr/bin:/bin"}
        return subprocess.run(
            [sys.executable, "-c", BQ_SCRIPT, *args], env=env, capture_output=True, timeout=120
        )

    crashed = run_script("after-stage")
    assert crashed.returncode == -9, crashed.stderr.decode()[-2000:]
    assert wh.query(f"SELECT id, v FROM {T} ORDER BY id").to_pylist() == [
        {"id": 1, "v": "a"},
        {"id": 2, "v": "b"},
    ]
    assert wh.sync_state(T, "id") == 2
    leftovers = wh.drop_staging()
    assert len(leftovers) == 1 and leftovers[0].startswith("crash._nightshift_stage_items_"), leftovers
    rerun = run_script("none")
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert wh.query(f"SELECT id, v FROM {T} ORDER BY id").to_pylist() == [
        {"id": 1, "v": "a"},
        {"id": 2, "v": "B"},
        {"id": 3, "v": "C"},
    ]
    assert wh.sync_state(T, "id") == 3
    assert wh.drop_staging() == []
