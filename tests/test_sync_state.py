"""Incremental state: what a window read, committed with its rows; the next window starts there.

Warehouse level on DuckDB and the BigQuery emulator (the state and the rows commit together or not at
all), then the operator on real MariaDB on both readers: a table bulk-loaded with one shared cursor
value is not re-read, a late commit inside the lag still arrives, an integer cursor reads strictly
past the last id.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from types import SimpleNamespace

import pyarrow as pa
import pytest

from nightshift_core.warehouse import JobKey, SyncState, TableRef, WarehouseError
from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

UTC = dt.UTC
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("v", pa.string()),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
    ]
)
T = TableRef("state", "items")


class FailingStateDuckDB(DuckDBWarehouse):
    """A DuckDB warehouse whose state INSERT fails after the rows were written in the same transaction."""

    @contextlib.contextmanager
    def connect(self):
        with super().connect() as con:
            yield _Proxy(con)


STATE_WRITE_FAILS = "injected: the state write fails"


class _Proxy:
    def __init__(self, con):
        self.con = con

    def execute(self, sql, *args):
        if sql.startswith("INSERT INTO _nightshift.sync_state"):
            raise RuntimeError(STATE_WRITE_FAILS)
        return self.con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.con, name)


@pytest.fixture(params=["duckdb", "bigquery"])
def engine(request, tmp_path):
    """(warehouse, make_next_state_write_fail, the error that fault raises: type and message)."""
    if request.param == "duckdb":
        path = tmp_path / "w.duckdb"
        holder = {"wh": DuckDBWarehouse(path)}

        def fail_next():
            holder["wh"] = FailingStateDuckDB(path)

        yield SimpleNamespace(get=lambda: holder["wh"], fail_next=fail_next, emulator=None,
                              fault=(RuntimeError, STATE_WRITE_FAILS))  # fmt: skip
        return
    from nightshift_core.warehouse.bigquery_engine import BigQueryWarehouse

    emulator = request.getfixturevalue("bq_emulator")
    wh = BigQueryWarehouse(emulator.client(), use_storage_api=False, spool_dir=str(tmp_path))
    wh.client.delete_dataset(f"{emulator.project}.state", delete_contents=True, not_found_ok=True)

    def fail_next():
        # after the MERGE ran in the same script: the interpreter rolls the transaction back
        emulator.inject_fault(r"INSERT INTO .*_nightshift_sync_state", reason="invalidQuery",
                              message=STATE_WRITE_FAILS)  # fmt: skip

    try:
        yield SimpleNamespace(get=lambda: wh, fail_next=fail_next, emulator=emulator,
                              fault=(WarehouseError, STATE_WRITE_FAILS))  # fmt: skip
    finally:
        emulator.clear_faults()
        # a failed publish leaves its staging table: the emulator is shared by the session
        wh.client.delete_dataset(f"{emulator.project}.state", delete_contents=True, not_found_ok=True)
        wh.close()


_TEST = ["state"]


@pytest.fixture(autouse=True)
def _own_job_ids(request):
    """Job history outlives dropped tables (as in BigQuery): keep each test's job ids its own."""
    _TEST[0] = f"state_{request.node.name}"


def publish(wh, rows, state, *, mode="merge", job="j"):
    staged = wh.stage(
        JobKey(_TEST[0], "t", run_id=job), T, [pa.RecordBatch.from_pylist(rows, SCHEMA)], SCHEMA
    )
    return wh.publish(staged, mode, key=["id"], state=state)


def test_the_state_commits_with_the_rows_and_reads_the_highest_since_the_last_full_load(engine):
    wh = engine.get()
    assert wh.sync_state(T, "ts") is None, "no state table yet"
    publish(wh, [{"id": 1, "v": "a", "ts": T0 - HOUR}], SyncState("ts", T0), job="1")
    assert wh.sync_state(T, "ts") == T0
    assert wh.sync_state(T, "updated_at") is None, "another cursor column: no state"
    assert wh.sync_state(TableRef("state", "other"), "ts") is None
    # a backfill of an older interval does not move the state back (everything before T0 was read)
    publish(wh, [{"id": 1, "v": "a2", "ts": T0 - 2 * HOUR}], SyncState("ts", T0 - HOUR), job="2")
    assert wh.sync_state(T, "ts") == T0
    publish(wh, [], SyncState("ts", T0 + HOUR), job="3")  # a window that read nothing still advances
    assert wh.sync_state(T, "ts") == T0 + HOUR
    # a full load resets the state to what it read
    publish(wh, [{"id": 1, "v": "full", "ts": T0}], SyncState("ts", T0 + 30 * MINUTE, full_load=True),
            mode="replace", job="4")  # fmt: skip
    assert wh.sync_state(T, "ts") == T0 + 30 * MINUTE
    # an integer cursor: the highest value published (None while nothing was)
    assert wh.sync_state(T, "id") is None
    publish(wh, [{"id": i, "v": "n", "ts": T0} for i in (5, 3, 4)], SyncState("id"), job="5")
    publish(wh, [], SyncState("id"), job="6")
    assert wh.sync_state(T, "id") == 5
    with pytest.raises(ValueError, match="UTC instant"):
        SyncState("ts", dt.datetime(2026, 1, 1))


def test_a_publish_that_fails_leaves_the_rows_and_the_state_unchanged(engine):
    wh = engine.get()
    publish(wh, [{"id": 1, "v": "a", "ts": T0 - HOUR}], SyncState("ts", T0), job="1")
    engine.fail_next()
    error, message = engine.fault
    with pytest.raises(error, match=message):  # the injected fault, not any other failure
        publish(engine.get(), [{"id": 1, "v": "changed", "ts": T0}, {"id": 2, "v": "b", "ts": T0}],
                SyncState("ts", T0 + HOUR), job="2")  # fmt: skip
    if engine.emulator is not None:
        assert [f["fired"] for f in engine.emulator.faults()] == [1]
    assert wh.query(f"SELECT id, v FROM {T} ORDER BY id").to_pylist() == [{"id": 1, "v": "a"}]
    assert wh.sync_state(T, "ts") == T0


# -- the operator on real MariaDB ---------------------------------------------------------------


@pytest.fixture
def maria(mariadb, tmp_path, monkeypatch):
    from support.services import scratch_database

    with scratch_database(mariadb, "ns_state") as db:
        monkeypatch.setenv("AIRFLOW_CONN_STATE_SOURCE", db.airflow_conn)
        monkeypatch.setenv(
            "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE",
            json.dumps(
                {"conn_type": "generic", "extra": {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")}}
            ),
        )
        yield db.conn.cursor()


def sync(table, start=None, *, reader, lag=dt.timedelta(minutes=10), cursor="updatedAt", **options) -> dict:
    from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator

    op = SqlToWarehouseOperator(
        task_id=f"load_{table}", source_conn_id="state_source", table=table, dataset="st", primary_key=["id"],
        mode="incremental", cursor=cursor, lag=lag, reader=reader, reconcile_every=dt.timedelta(0), **options,
    )  # fmt: skip
    run_id = f"scheduled__{start.isoformat()}" if start else "manual"
    ti = SimpleNamespace(dag_id="st", task_id=op.task_id, run_id=run_id, map_index=-1)
    context = {"ti": ti}
    if start is not None:
        context |= {"data_interval_start": start, "data_interval_end": start + HOUR}
    return op.execute(context)


def bulk_load(cur, rows: int, at: dt.datetime) -> None:
    """``film``: ``rows`` rows that share one ``updatedAt`` (as a sample database's bulk load leaves them)."""
    cur.execute("CREATE TABLE film (id INT PRIMARY KEY, title VARCHAR(40), updatedAt DATETIME(6) NOT NULL)")
    cur.execute(
        f"INSERT INTO film SELECT seq, CONCAT('film ', seq), %s FROM seq_1_to_{int(rows)}",  # noqa: S608
        (at.replace(tzinfo=None),),
    )


def source_clock(cur) -> dt.datetime:
    """The source's clock (what a manual run's state records how far it read on)."""
    cur.execute("SELECT UTC_TIMESTAMP(6)")
    return cur.fetchone()[0].replace(tzinfo=UTC)


READERS = ["arrow", "dbapi"]


@pytest.mark.integration
@pytest.mark.parametrize("reader", READERS)
def test_a_run_with_nothing_changed_reads_only_the_lag_window(maria, reader):
    bulk_load(maria, 1000, T0 - 24 * HOUR)
    first = sync("film", T0, reader=reader)
    assert first["reader"] == reader and first["staged_rows"] == 1000
    second = sync("film", T0 + HOUR, reader=reader)
    # MAX(updatedAt) of the target is a day old: a window from there re-read all 1,000 rows
    assert second["staged_rows"] == second["source_rows"] == 0
    assert second["window"]["from"] == str((T0 + HOUR - 10 * MINUTE).replace(tzinfo=None))
    assert second["window"]["state"] == str(T0 + 2 * HOUR), "how far it read: its interval's end"
    # a run without a data interval (manual): from the stored bound, up to the source's clock
    began = source_clock(maria)
    manual = sync("film", reader=reader)
    assert manual["staged_rows"] == 0
    assert began <= dt.datetime.fromisoformat(manual["window"]["state"]) <= source_clock(maria)
    assert sync("film", reader=reader)["staged_rows"] == 0
    # 1 % changed: only those rows
    maria.execute("UPDATE film SET title = 'changed', updatedAt = UTC_TIMESTAMP(6) WHERE id <= 10")
    changed = sync("film", reader=reader)
    assert changed["staged_rows"] == 10
    assert sync("film", reader=reader)["staged_rows"] == 10, "still inside the lag: re-read, never lost"


@pytest.mark.integration
@pytest.mark.parametrize("reader", READERS)
def test_a_late_commit_inside_the_lag_is_still_read(maria, reader):
    bulk_load(maria, 100, T0 - 24 * HOUR)
    sync("film", T0, reader=reader)
    # committed after the run for [T0, T0 + 1h) had read, with a cursor value inside that window
    maria.execute("INSERT INTO film VALUES (101, 'late', %s)", ((T0 + 55 * MINUTE).replace(tzinfo=None),))
    result = sync("film", T0 + HOUR, reader=reader)
    assert result["staged_rows"] == 1
    # later than the lag: the window alone cannot see it (reconciliation's job)
    maria.execute("INSERT INTO film VALUES (102, 'too late', %s)", ((T0 + 30 * MINUTE).replace(tzinfo=None),))
    assert sync("film", T0 + 2 * HOUR, reader=reader)["staged_rows"] == 0
    # re-running an interval reads the same window again (idempotent), whatever the state is now
    again = sync("film", T0 + HOUR, reader=reader)
    assert again["window"] == result["window"], "the same bounds, and the state its interval's end again"
    assert again["staged_rows"] == 1  # row 101; row 102 lies before the window's lag


@pytest.mark.integration
@pytest.mark.parametrize("reader", READERS)
def test_an_integer_cursor_reads_strictly_past_the_last_id(maria, reader):
    maria.execute("CREATE TABLE log (id BIGINT PRIMARY KEY, msg VARCHAR(20))")
    maria.execute("INSERT INTO log SELECT seq, 'm' FROM seq_1_to_50")
    options = {"reader": reader, "cursor": "id", "lag": dt.timedelta(0)}
    assert sync("log", **options)["staged_rows"] == 50
    # MAX(id) of the target, inclusive, re-read row 50 on every run
    nothing = sync("log", **options)
    assert nothing["staged_rows"] == 0 and nothing["window"]["from"] == "50"
    maria.execute("INSERT INTO log VALUES (51, 'new'), (52, 'new')")
    assert sync("log", **options)["staged_rows"] == 2
    assert sync("log", **options)["staged_rows"] == 0


@pytest.mark.integration
def test_a_target_loaded_before_states_existed_falls_back_to_its_max_cursor(maria):
    from nightshift.hooks.warehouse import WarehouseHook

    bulk_load(maria, 20, T0 - 24 * HOUR)
    sync("film", T0, reader="dbapi")
    with WarehouseHook().get_conn() as wh, wh.connect() as con:
        con.execute("DELETE FROM _nightshift.sync_state")  # as an older version left it
    result = sync("film", T0 + HOUR, reader="dbapi")
    assert result["staged_rows"] == 20, "MAX(updatedAt) - lag: the old window"
    assert result["window"]["from"] == str((T0 - 24 * HOUR - 10 * MINUTE).replace(tzinfo=None))
    assert sync("film", T0 + 2 * HOUR, reader="dbapi")["staged_rows"] == 0, "from then on: the state"
    # a full refresh resets the state to what it read
    full = sync("film", T0 + 3 * HOUR, reader="dbapi", full_refresh=True)
    assert full["staged_rows"] == 20 and full["mode"] == "full"
    assert sync("film", T0 + 4 * HOUR, reader="dbapi")["staged_rows"] == 0
