"""Inter-process locks, with a second process really contending: the DuckDB warehouse's file lock
(each operation, a session of several, and dbt's hold around a whole invocation) and the MLflow SQLite
store's first use."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A second process: takes the lock named by argv, says so, holds it until its stdin closes.
HOLDER = {
    "warehouse": "from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse\n"
    "held = DuckDBWarehouse(sys.argv[1]).lock()",
    "mlflow": "from nightshift.hooks.mlflow import _sqlite_init_lock\nheld = _sqlite_init_lock(sys.argv[1])",
}


class SecondProcess:
    """A second Python process that takes a lock (HOLDER[kind] on ``target``), says ``held`` once it
    has it, and keeps it until its stdin closes. Its lines are read by a thread, so a wait has a limit."""

    def __init__(self, kind: str, target: str) -> None:
        code = f"import sys\n{HOLDER[kind]}\nprint('waiting', flush=True)\nwith held:\n"
        code += "    print('held', flush=True)\n    sys.stdin.readline()\n"
        env = os.environ | {"PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in ("include", "plugins"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, target],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.said("waiting", within=60), "the second process did not start"

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("")  # the process ended

    def said(self, word: str, within: float) -> bool:
        """Whether the process says ``word`` within ``within`` seconds (Airflow's log lines skipped)."""
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return False
            if line == word:
                return True
            assert line, f"the second process ended (exit {self.proc.wait()}) before saying {word!r}"
        return False

    def let_go(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0


@pytest.fixture
def holder():
    started: list[SecondProcess] = []

    def start(kind: str, target: str, *, wait_held: bool = True) -> SecondProcess:
        second = SecondProcess(kind, target)
        started.append(second)
        if wait_held:
            assert second.said("held", within=30)
        return second

    yield start
    for second in started:
        if second.proc.poll() is None:
            second.proc.kill()
            second.proc.wait()


def test_an_operation_waits_for_another_process_holding_the_warehouse(tmp_path, holder):
    from nightshift_core.warehouse import WarehouseError
    from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

    path = tmp_path / "w.duckdb"
    other = holder("warehouse", str(path))

    # One attempt, and a short wait: both refused while the other process holds the file.
    with pytest.raises(WarehouseError, match=f"{path} stayed locked by another process for 0s"):
        with DuckDBWarehouse(path).lock(timeout=0):
            pass
    started = time.monotonic()
    with pytest.raises(WarehouseError, match="stayed locked"):
        DuckDBWarehouse(path, lock_timeout=0.5).ensure_dataset("blocked")
    assert time.monotonic() - started >= 0.5

    # A patient operation gets in as soon as the other process lets go, not before.
    threading.Timer(0.5, other.proc.stdin.close).start()
    started = time.monotonic()
    DuckDBWarehouse(path, lock_timeout=30).ensure_dataset("after")
    assert time.monotonic() - started >= 0.4
    assert other.proc.wait(timeout=30) == 0
    with DuckDBWarehouse(path).connect() as con:
        names = {
            row[0] for row in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()
        }
    assert "after" in names and "blocked" not in names


def test_the_lock_is_released_when_an_operation_fails(tmp_path, holder):
    from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

    path = tmp_path / "w.duckdb"
    with pytest.raises(Exception, match="Parser Error"):
        with DuckDBWarehouse(path).connect() as con:
            con.execute("NOT SQL")
    holder("warehouse", str(path)).let_go()  # the other process gets it at once


def test_a_session_opens_the_warehouse_once_and_holds_it_until_it_ends(tmp_path, holder, monkeypatch):
    """Every operation inside a session (and a nested one, and another object on the same file) uses the
    one opening; another process waits for the whole session; an operation after it opens the file again."""
    from nightshift_core.warehouse import TableRef
    from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

    path = tmp_path / "w.duckdb"
    opened: list[Path] = []
    real = DuckDBWarehouse._attached

    def counted(self):
        opened.append(self.path)
        return real(self)

    monkeypatch.setattr(DuckDBWarehouse, "_attached", counted)
    wh = DuckDBWarehouse(path)
    with wh.session():
        other = holder("warehouse", str(path), wait_held=False)
        wh.ensure_dataset("d")
        wh.query("CREATE TABLE d.t AS SELECT 1 AS id")
        with wh.session():
            assert wh.table_exists(TableRef("d", "t"))
        assert DuckDBWarehouse(path).query("SELECT id FROM d.t").to_pylist() == [{"id": 1}]
        assert opened == [path], opened
        assert not other.said("held", within=1.0), "the other process got the warehouse during the session"
    assert other.said("held", within=30)
    other.let_go()
    assert [c.name for c in wh.get_schema(TableRef("d", "t"))] == ["id"]
    assert opened == [path, path]


@pytest.fixture
def duckdb_connection(monkeypatch, tmp_path):
    """nightshift_warehouse on a DuckDB file; whatever dbt's hold still has is let go afterwards."""
    from nightshift.dbt_project import release_warehouse_lock

    connection = {"conn_type": "generic", "extra": {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")}}
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE", json.dumps(connection))
    yield tmp_path / "w.duckdb"
    release_warehouse_lock()


def test_dbt_holds_the_warehouse_lock_until_released(duckdb_connection, holder):
    """pre_execute takes the lock every writer takes and keeps it past its return; post_execute and the
    failure/retry callbacks (all release_warehouse_lock) let the other process in."""
    from nightshift.dbt_project import hold_warehouse_lock, release_warehouse_lock

    hold_warehouse_lock({})
    hold_warehouse_lock({})  # a second call (a retry's pre_execute in the same process) is a no-op
    other = holder("warehouse", str(duckdb_connection), wait_held=False)
    assert not other.said("held", within=1.0), "the other process got the warehouse while dbt held it"
    release_warehouse_lock({})
    assert other.said("held", within=30)
    other.let_go()
    release_warehouse_lock({})  # released twice (post_execute, then a callback): harmless


def test_dbt_gives_up_after_its_timeout_holding_nothing(duckdb_connection, holder):
    from nightshift.dbt_project import hold_warehouse_lock
    from nightshift_core.warehouse import WarehouseError

    other = holder("warehouse", str(duckdb_connection))
    with pytest.raises(WarehouseError, match=f"{duckdb_connection} stayed locked"):
        hold_warehouse_lock({}, timeout=0.3)
    other.let_go()
    hold_warehouse_lock({}, timeout=0)  # nothing was left half-held: the next try gets it at once...
    other = holder("warehouse", str(duckdb_connection), wait_held=False)
    assert not other.said("held", within=0.5), "...and holds it"


def test_the_mlflow_store_is_initialised_by_one_process_at_a_time(tmp_path, holder):
    from nightshift.hooks.mlflow import _sqlite_init_lock

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}.baseline"
    with _sqlite_init_lock(uri):
        other = holder("mlflow", uri, wait_held=False)
        assert not other.said("held", within=1.0), "the other process initialised the store at the same time"
    assert other.said("held", within=30)
    other.let_go()
