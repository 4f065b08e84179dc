"""Reconciliation finds and repairs what an incremental window missed (real PostgreSQL, DuckDB)."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration
UTC = dt.UTC
HOUR = dt.timedelta(hours=1)
T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BEHIND = T0 - 5 * HOUR  # older than any window's lower bound (watermark - lag)


@pytest.fixture
def pg(postgres, tmp_path, monkeypatch):
    from support.services import scratch_database

    with scratch_database(postgres, "ns_reconcile") as db:
        cur = db.conn.cursor()
        cur.execute(
            "CREATE TABLE ev (shop INT, id INT, v TEXT, updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (shop, id))"
        )
        cur.executemany(
            "INSERT INTO ev VALUES (%s, %s, %s, %s)",
            [(shop, i, f"v{i}", T0 - HOUR) for shop in (1, 2) for i in range(1, 6)],
        )
        monkeypatch.setenv("AIRFLOW_CONN_RECONCILE_SOURCE", db.airflow_conn)
        monkeypatch.setenv(
            "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE",
            json.dumps(
                {"conn_type": "generic", "extra": {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")}}
            ),
        )
        yield cur


def run(start: dt.datetime, table: str = "ev", **options) -> dict:
    from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator

    key = ["shop", "id"] if table == "ev" else ["id"]
    op = SqlToWarehouseOperator(
        task_id=f"load_{table}", source_conn_id="reconcile_source", table=table, dataset="rec", primary_key=key,
        mode="incremental", cursor="updated_at", lag=dt.timedelta(minutes=10), **options,
    )  # fmt: skip
    ti = SimpleNamespace(
        dag_id="rec", task_id=op.task_id, run_id=f"scheduled__{start.isoformat()}", map_index=-1
    )
    return op.execute({"ti": ti, "data_interval_start": start, "data_interval_end": start + HOUR})


def warehouse() -> dict[tuple[int, int], tuple[str, bool]]:
    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift_core.warehouse import TableRef

    with WarehouseHook().get_conn() as wh:
        columns = {c.name for c in wh.get_schema(TableRef("rec", "ev"))}
        deleted = "_nightshift_deleted_at IS NOT NULL" if "_nightshift_deleted_at" in columns else "FALSE"
        rows = wh.query(f"SELECT shop, id, v, {deleted} AS gone FROM rec.ev").to_pylist()  # noqa: S608
    return {(r["shop"], r["id"]): (r["v"], r["gone"]) for r in rows}


def source(cur) -> dict[tuple[int, int], tuple[str, bool]]:
    cur.execute("SELECT shop, id, v FROM ev")
    return {(shop, i): (v, False) for shop, i, v in cur.fetchall()}


def break_the_window(cur) -> None:
    """Changes an incremental window cannot see: cursor values older than watermark - lag."""
    cur.execute("INSERT INTO ev VALUES (2, 9, 'late commit', %s)", (BEHIND,))
    cur.execute("UPDATE ev SET v = 'changed behind', updated_at = %s WHERE shop = 1 AND id = 2", (BEHIND,))
    cur.execute("DELETE FROM ev WHERE shop = 2 AND id = 3")


def test_missing_rows_stale_updates_and_deletes_are_repaired_in_the_next_run(pg):
    first = run(T0, detect_deletes=True)
    assert first["reconciled"]["repaired"] == 0 and first["reconciled"]["checked"] == 10
    break_the_window(pg)
    result = run(T0 + HOUR, detect_deletes=True)
    assert dt.datetime.fromisoformat(result["window"]["from"]) > BEHIND, "the window itself cannot see them"
    assert result["reconciled"]["repaired"] == 2
    assert result["reconciled"]["repaired_keys"] == [[1, 2], [2, 9]]
    assert result["marked_deleted"] == 1
    expected = source(pg) | {(2, 3): ("v3", True)}
    assert warehouse() == expected
    clean = run(T0 + 2 * HOUR, detect_deletes=True)
    assert (clean["reconciled"]["repaired"], clean["marked_deleted"]) == (0, 0), "a clean table reports 0"
    assert warehouse() == expected


def test_without_reconciliation_the_window_misses_them_and_the_param_repairs_on_demand(pg):
    run(T0, reconcile_every=dt.timedelta(0))
    break_the_window(pg)
    result = run(T0 + HOUR, reconcile_every=dt.timedelta(0))
    assert result["reconciled"] is None
    assert (2, 9) not in warehouse() and warehouse()[(1, 2)][0] == "v2", "what a window alone loses"
    asked = run(T0 + 2 * HOUR, reconcile_every=dt.timedelta(0), reconcile="True")
    assert asked["reconciled"]["repaired"] == 2
    assert warehouse()[(2, 9)] == ("late commit", False) and warehouse()[(1, 2)] == ("changed behind", False)
    assert warehouse()[(2, 3)] == ("v3", False), "without detect_deletes the deleted row stays"


def test_a_daily_reconciliation_runs_in_the_run_that_crosses_midnight(pg):
    daily = dt.timedelta(days=1)
    assert run(dt.datetime(2026, 11, 20, 22, tzinfo=UTC), reconcile_every=daily)["reconciled"] is None
    assert run(dt.datetime(2026, 11, 20, 23, tzinfo=UTC), reconcile_every=daily)["reconciled"] is not None


def test_the_quality_gate_reports_repairs_and_checks_beyond_the_window(pg, tmp_path, monkeypatch, request):
    from airflow.sdk.exceptions import AirflowFailException
    from support.net import free_port

    from nightshift.operators.warehouse_ops import SyncQualityGateOperator
    from nightshift_core.local.mail_catcher import read_messages, start
    from nightshift_core.sync.reconcile import Reconciler

    def gate(result: dict) -> dict:
        op = SyncQualityGateOperator(task_id="gate", load_results=[result], primary_keys={"rec.ev": ["shop", "id"]},
                                     cursors={"rec.ev": "updated_at"})  # fmt: skip
        ti = SimpleNamespace(dag_id="rec", task_id="gate", run_id="r1", try_number=1, log_url=None)
        return op.execute({"ti": ti})

    port = free_port()
    catcher = start(tmp_path / "mail", port=port)
    request.addfinalizer(catcher.stop)
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTSHIFT_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"from_email": "alerts@nightshift.test", "disable_ssl": True, "disable_tls": True, "retry_limit": 0},
    }))  # fmt: skip
    monkeypatch.setenv("AIRFLOW_VAR_NIGHTSHIFT_ALERT_TO", "oncall@nightshift.test")

    run(T0, detect_deletes=True)
    break_the_window(pg)
    assert gate(run(T0 + HOUR, detect_deletes=True))["repaired"] == {"rec.ev": 2}
    (mail,) = read_messages(tmp_path / "mail")
    assert mail["Subject"] == "[nightshift] WARNING rec: reconciliation repaired 2 row(s)"
    assert "rec.ev: 2 row(s) missing or stale after the incremental window" in mail.get_body().get_content()

    # A row committed behind the window, which a reconciliation reports repaired but never writes: the gate
    # counts the table before the window's end on both sides and sees the warehouse one row short.
    def repair_lost(self, keys) -> int:
        return len(keys)  # reported as repaired, never written

    pg.execute("INSERT INTO ev VALUES (1, 7, 'behind the window', %s)", (BEHIND,))
    monkeypatch.setattr(Reconciler, "_repair", repair_lost)
    lost = run(T0 + 2 * HOUR, detect_deletes=True)
    assert lost["reconciled"]["repaired"] == 1 and (1, 7) not in warehouse()
    pg.execute("SELECT COUNT(*) FROM ev WHERE updated_at < %s", (T0 + 3 * HOUR,))
    assert lost["reconciled"]["source_rows"] == pg.fetchone()[0] == 11
    with pytest.raises(
        AirflowFailException,
        match=r"rec\.ev: after reconciliation the warehouse holds 10 live row\(s\) with updated_at before "
        r"2026-11-20 15:00:00\+00:00 but the source has 11",
    ):
        gate(lost)


@pytest.mark.parametrize("reader", ["dbapi", "arrow"])
def test_a_row_deleted_while_the_table_is_read_leaves_extract_count_and_pairs_in_agreement(
    pg, monkeypatch, reader
):
    """All reads of one task see one snapshot of the source, so the gate's count matches the load. The
    Arrow reader's own connection joins that snapshot: a row deleted before it even starts is still read."""
    from nightshift_core.sync import arrow_reader, source

    module = source if reader == "dbapi" else arrow_reader
    real, deleted = module.extract, []

    def extract_then_delete(*args, **kwargs):
        if reader == "arrow":  # the task's snapshot is open, the reader's connection not yet
            pg.execute("DELETE FROM ev WHERE shop = 2 AND id = 5")
            deleted.append(True)
        for batch in real(*args, **kwargs):
            if not deleted:  # another session deletes a row after the first batch was read
                pg.execute("DELETE FROM ev WHERE shop = 2 AND id = 5")
                deleted.append(True)
            yield batch

    monkeypatch.setattr(module, "extract", extract_then_delete)
    result = run(T0, detect_deletes=True, reader=reader)
    assert result["reader"] == reader
    assert deleted and result["staged_rows"] == result["source_rows"] == 10
    assert result["reconciled"]["checked"] == 10 and result["marked_deleted"] == 0
    later = run(T0 + HOUR, detect_deletes=True)  # a new snapshot: now the delete is seen
    assert later["marked_deleted"] == 1


def test_checksums_per_key_range_compare_pairs_only_where_a_range_differs(pg):
    pg.execute("CREATE TABLE big (id INT PRIMARY KEY, v TEXT, updated_at TIMESTAMP NOT NULL)")
    pg.execute(
        "INSERT INTO big SELECT i, 'v' || i, TIMESTAMP '2026-11-20 10:00' + i * INTERVAL '1 millisecond' "
        "FROM generate_series(1, 50000) AS i"
    )

    def sync(start: dt.datetime) -> dict:
        return run(start, table="big")

    first = sync(T0)["reconciled"]
    assert (first["ranges_differing"], first["repaired"], first["checked"]) == (0, 0, 50000)
    assert first["ranges_compared"] == 256  # the key span cut into 256 ranges
    # behind the window, in one key range: an update and a late insert of a missing key
    pg.execute("DELETE FROM big WHERE id = 42000")
    pg.execute("INSERT INTO big VALUES (42000, 'late', TIMESTAMP '2026-11-20 06:00')")
    pg.execute("UPDATE big SET v = 'changed', updated_at = TIMESTAMP '2026-11-20 06:00:01' WHERE id = 41000")
    second = sync(T0 + HOUR)["reconciled"]
    assert second["ranges_differing"] == 2 and second["repaired"] == 2  # keys 41000 and 42000: two ranges
    assert second["checked"] <= 2 * 196, "only the differing ranges' pairs were read"
    assert second["repaired_keys"] == [[41000], [42000]]
    assert sync(T0 + 2 * HOUR)["reconciled"]["ranges_differing"] == 0


def test_with_detect_deletes_the_checksums_find_the_range_that_lost_a_row(pg):
    pg.execute("CREATE TABLE big (id INT PRIMARY KEY, v TEXT, updated_at TIMESTAMPTZ NOT NULL)")
    pg.execute(
        "INSERT INTO big SELECT i, 'v' || i, TIMESTAMPTZ '2026-11-20 10:00+00' + i * INTERVAL '1 millisecond' "
        "FROM generate_series(1, 30000) AS i"
    )

    def sync(start: dt.datetime) -> dict:
        return run(start, table="big", detect_deletes=True)

    assert sync(T0)["reconciled"]["ranges_differing"] == 0
    pg.execute("DELETE FROM big WHERE id = 25000")
    result = sync(T0 + HOUR)
    assert result["marked_deleted"] == 1 and result["reconciled"]["ranges_differing"] == 1
    assert result["reconciled"]["checked"] <= 118, "only that range's pairs (30000 keys / 256)"
    again = sync(T0 + 2 * HOUR)["reconciled"]
    assert (again["ranges_differing"], again["marked_deleted"]) == (0, 0), "the marked row no longer counts"
