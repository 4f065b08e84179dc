"""Sync end to end through the real operators: source DB -> warehouse, full and incremental."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from nightshift_core.sync.config import load

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_SQL = ROOT.parent / "shared/data/classicmodels/mysqlsampledatabase.sql"
CONFIG = load(ROOT / "include/config/syncs/classicmodels.yaml")
UTC = dt.UTC


def context(task_id: str, start: dt.datetime | None, end: dt.datetime | None) -> dict:
    ti = SimpleNamespace(dag_id=CONFIG.dag_id, task_id=task_id, run_id=f"test__{start}", map_index=-1)
    return {"ti": ti, "data_interval_start": start, "data_interval_end": end}


def sync_all(
    conn_id: str, start=None, end=None, *, full_refresh=False, modes=None, detect=()
) -> dict[str, dict]:
    from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator

    results = {}
    for table in CONFIG.tables:
        op = SqlToWarehouseOperator(
            task_id=f"load_{table.name}",
            source_conn_id=conn_id,
            table=table.name,
            dataset=CONFIG.target.dataset,
            primary_key=table.primary_key,
            mode=(modes or {}).get(table.name, table.mode),
            cursor=table.cursor,
            lag=table.lag,
            full_refresh=full_refresh,
            detect_deletes=table.name in detect,
        )
        results[table.name] = op.execute(context(op.task_id, start, end))
    return results


def warehouse_rows(table: str, key: tuple[str, ...]) -> list[dict]:
    from nightshift.hooks.warehouse import WarehouseHook

    with WarehouseHook().get_conn() as wh:
        order = ", ".join(key)
        return wh.query(f"SELECT * FROM {CONFIG.target.dataset}.{table} ORDER BY {order}").to_pylist()


def source_rows(conn, table: str, key: tuple[str, ...], quote: str) -> list[dict]:
    cur = conn.cursor()
    order = ", ".join(f"{quote}{k}{quote}" for k in key)
    cur.execute(f"SELECT * FROM {quote}{table}{quote} ORDER BY {order}")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def normalise(value):
    """One comparable spelling for values that drivers return in different Python types."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value.normalize())
    if isinstance(value, str):
        if _NUMBER.match(value):
            return str(Decimal(value).normalize())
        if _DATE.match(value):
            parsed = dt.datetime.fromisoformat(value)
            return parsed.date().isoformat() if len(value) == 10 else parsed.replace(tzinfo=None).isoformat()
    return value


def same(a: list[dict], b: list[dict]) -> bool:
    return [{k: normalise(v) for k, v in r.items()} for r in a] == [
        {k: normalise(v) for k, v in r.items()} for r in b
    ]


@pytest.fixture
def warehouse_conn(request, tmp_path, monkeypatch):
    """DuckDB by default; tests parametrized with indirect=True also run on the BigQuery emulator."""
    extra = {"engine": "duckdb", "path": str(tmp_path / "warehouse.duckdb")}
    if getattr(request, "param", "duckdb") == "bigquery":
        emulator = request.getfixturevalue("bq_emulator")
        client = emulator.client()
        for dataset in ("classicmodels", "classicmodels_agg"):
            client.delete_dataset(f"{emulator.project}.{dataset}", delete_contents=True, not_found_ok=True)
        extra = {"engine": "bigquery", "anonymous": True, "project": emulator.project,
                 "api_endpoint": emulator.endpoint, "use_storage_api": False}  # fmt: skip
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE", json.dumps({"conn_type": "generic", "extra": extra})
    )


@pytest.fixture
def sqlite_source(tmp_path, monkeypatch, warehouse_conn):
    from nightshift_core.sample import classicmodels

    path = tmp_path / "classicmodels.sqlite"
    conn, dialect = classicmodels.connect(f"sqlite:///{path}")
    classicmodels.generate(conn, dialect, scale=1.0, seed=7)
    monkeypatch.setenv(
        "AIRFLOW_CONN_CLASSICMODELS_SQLITE", json.dumps({"conn_type": "sqlite", "host": str(path)})
    )
    yield conn, dialect
    conn.close()


@pytest.mark.parametrize("warehouse_conn", ["duckdb", "bigquery"], indirect=True)
def test_full_then_incremental_equals_the_source(sqlite_source):
    from nightshift_core.sample import classicmodels

    conn, dialect = sqlite_source
    t0 = dt.datetime(2026, 11, 20, tzinfo=UTC)
    first = sync_all("classicmodels_sqlite", t0, t0 + dt.timedelta(hours=1))
    assert all(r["staged_rows"] == r["source_rows"] for r in first.values())
    changed = classicmodels.mutate(conn, dialect, fraction=0.05, seed=3, now=dt.datetime(2026, 11, 20, 1, 30))
    conn.commit()
    t1 = t0 + dt.timedelta(hours=1)
    second = sync_all("classicmodels_sqlite", t1, t1 + dt.timedelta(hours=1))
    incremental = [t.name for t in CONFIG.tables if t.mode == "incremental"]
    assert sum(second[t]["staged_rows"] for t in incremental) < sum(
        first[t]["staged_rows"] for t in incremental
    )
    deleted = sum(v for k, v in changed.items() if "delete" in k)
    for table in CONFIG.tables:
        got, want = (
            warehouse_rows(table.name, table.primary_key),
            source_rows(conn, table.name, table.primary_key, '"'),
        )
        if deleted and table.name in ("payments", "orderdetails"):
            # Hard deletes are not propagated by incremental syncs: the warehouse keeps those rows.
            keys = {tuple(r[k] for k in table.primary_key) for r in want}
            got = [r for r in got if tuple(r[k] for k in table.primary_key) in keys]
        diff = [
            (g, w)
            for g, w in zip(got, want, strict=False)
            if [normalise(v) for v in g.values()] != [normalise(v) for v in w.values()]
        ][:1]
        assert same(got, want), (
            f"{table.name} differs from the source after the incremental sync: {len(got)} vs {len(want)} {diff}"
        )


def test_rerunning_the_same_interval_changes_nothing(sqlite_source):
    t0 = dt.datetime(2026, 11, 20, tzinfo=UTC)
    sync_all("classicmodels_sqlite", t0, t0 + dt.timedelta(hours=1))
    before = {t.name: warehouse_rows(t.name, t.primary_key) for t in CONFIG.tables}
    sync_all("classicmodels_sqlite", t0, t0 + dt.timedelta(hours=1))
    after = {t.name: warehouse_rows(t.name, t.primary_key) for t in CONFIG.tables}
    assert before == after


@pytest.mark.parametrize("warehouse_conn", ["duckdb", "bigquery"], indirect=True)
def test_top_five_aggregate_matches_the_source(sqlite_source):
    from nightshift.operators.warehouse_ops import WarehouseQueryToTableOperator

    conn, _ = sqlite_source
    sync_all("classicmodels_sqlite", full_refresh=True)
    # The former post_load query (now the dbt model's reference, tests/test_dbt.py), on both engines.
    post = SimpleNamespace(name="top_employees_by_sales", target="classicmodels_agg.top_employees_by_sales")
    op = WarehouseQueryToTableOperator(
        task_id=post.name, sql="classicmodels/top_employees_by_sales.sql", target=post.target,
        shape={"dataset": "classicmodels"},
    )  # fmt: skip
    assert op.execute(context(post.name, None, None))["rows"] == 5
    from nightshift.hooks.warehouse import WarehouseHook

    with WarehouseHook().get_conn() as wh:
        got = wh.query(f"SELECT employee_number, sales FROM {post.target} ORDER BY sales DESC").to_pylist()
    cur = conn.cursor()
    cur.execute(
        'SELECT e."employeeNumber", SUM(od."quantityOrdered" * CAST(od."priceEach" AS REAL)) AS s '
        'FROM employees e JOIN customers c ON c."salesRepEmployeeNumber" = e."employeeNumber" '
        'JOIN orders o ON o."customerNumber" = c."customerNumber" '
        'JOIN orderdetails od ON od."orderNumber" = o."orderNumber" '
        "GROUP BY 1 ORDER BY s DESC, 1 LIMIT 5"
    )
    want = cur.fetchall()
    assert [r["employee_number"] for r in got] == [w[0] for w in want]
    assert all(abs(float(r["sales"]) - w[1]) < 0.01 for r, w in zip(got, want, strict=True))
    assert all(isinstance(r["sales"], Decimal) for r in got), "money must stay exact (NUMERIC), never float"


def test_reference_database_on_mariadb_syncs_exactly(mariadb, monkeypatch, warehouse_conn):
    import MySQLdb

    if not REFERENCE_SQL.exists():
        pytest.fail(f"shared test data missing: {REFERENCE_SQL}")
    db = f"ns_sync_{uuid.uuid4().hex[:8]}"
    text = REFERENCE_SQL.read_text(encoding="latin-1")
    text = text.replace("CREATE DATABASE /*!32312 IF NOT EXISTS*/`classicmodels`", f"CREATE DATABASE `{db}`")
    text = text.replace("USE `classicmodels`;", f"USE `{db}`;")
    assert db in text, "the reference file's CREATE DATABASE line changed; update this test"
    loaded = subprocess.run(
        ["mysql", "-h", mariadb.host, "-P", str(mariadb.port), "-u", "root"], input=text.encode("latin-1"),
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr.decode()[-2000:]
    conn_json = {
        "conn_type": "mysql",
        "host": mariadb.host,
        "port": mariadb.port,
        "login": "root",
        "schema": db,
    }
    monkeypatch.setenv("AIRFLOW_CONN_CLASSICMODELS_MARIADB", json.dumps(conn_json))
    conn = MySQLdb.connect(host=mariadb.host, port=mariadb.port, user="root", database=db)
    try:
        # The reference schema has no audit column: sync everything in full mode.
        results = sync_all("classicmodels_mariadb", modes={t.name: "full" for t in CONFIG.tables})
        expected = {"customers": 122, "employees": 23, "offices": 7, "orderdetails": 2996, "orders": 326,
                    "payments": 273, "productlines": 7, "products": 110}  # fmt: skip
        assert {t: r["staged_rows"] for t, r in results.items()} == expected
        for table in CONFIG.tables:
            got = warehouse_rows(table.name, table.primary_key)
            want = source_rows(conn, table.name, table.primary_key, "`")
            assert same(got, want), f"{table.name} differs between MariaDB and the warehouse"
        from nightshift.hooks.warehouse import WarehouseHook
        from nightshift_core.warehouse import TableRef

        with WarehouseHook().get_conn() as wh:
            types = {c.name: c.type for c in wh.get_schema(TableRef("classicmodels", "payments"))}
        assert types == {
            "customerNumber": "INT64",
            "checkNumber": "STRING",
            "paymentDate": "DATE",
            "amount": "NUMERIC",
        }
    finally:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()


def test_schema_drift_added_column_appears_dropped_column_stops(sqlite_source):
    conn, _ = sqlite_source
    sync_all("classicmodels_sqlite", full_refresh=True)
    cur = conn.cursor()
    cur.execute('ALTER TABLE offices ADD COLUMN "timezone" VARCHAR(40)')
    cur.execute("UPDATE offices SET \"timezone\" = 'Europe/Paris' WHERE \"officeCode\" = '4'")
    conn.commit()
    results = sync_all("classicmodels_sqlite")
    assert results["offices"]["added_columns"] == ["timezone"]
    rows = {r["officeCode"]: r["timezone"] for r in warehouse_rows("offices", ("officeCode",))}
    assert rows["4"] == "Europe/Paris" and rows["1"] is None
    cur.execute('ALTER TABLE offices DROP COLUMN "territory"')
    conn.commit()
    before = warehouse_rows("offices", ("officeCode",))
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(
        AirflowFailException, match=r"no longer has column\(s\) \['territory'\].*nothing was written"
    ):  # the guard cannot heal on a retry: one try
        sync_all("classicmodels_sqlite")
    assert warehouse_rows("offices", ("officeCode",)) == before


def test_thirty_hourly_runs_leave_no_duplicates(sqlite_source):
    from nightshift_core.sample import classicmodels

    conn, dialect = sqlite_source
    start = dt.datetime(2026, 11, 20, tzinfo=UTC)
    for hour in range(30):
        lo = start + dt.timedelta(hours=hour)
        if hour % 10 == 5:
            now = (lo + dt.timedelta(minutes=30)).replace(tzinfo=None)
            classicmodels.mutate(conn, dialect, fraction=0.01, seed=hour, now=now)
            conn.commit()
        sync_all("classicmodels_sqlite", lo, lo + dt.timedelta(hours=1))
    for table in CONFIG.tables:
        rows = warehouse_rows(table.name, table.primary_key)
        keys = [tuple(r[k] for k in table.primary_key) for r in rows]
        assert len(keys) == len(set(keys)), f"{table.name}: duplicate primary keys after a backfill"
        want = source_rows(conn, table.name, table.primary_key, '"')
        live = {tuple(r[k] for k in table.primary_key) for r in want}
        assert same([r for r in rows if tuple(r[k] for k in table.primary_key) in live], want), table.name


def test_detect_deletes_soft_deletes_rows_gone_from_the_source(sqlite_source):
    from nightshift_core.sample import classicmodels

    conn, dialect = sqlite_source
    t0 = dt.datetime(2026, 11, 20, tzinfo=UTC)
    sync_all("classicmodels_sqlite", t0, t0 + dt.timedelta(hours=1))
    changed = classicmodels.mutate(
        conn, dialect, fraction=0.05, seed=11, now=dt.datetime(2026, 11, 20, 1, 30)
    )
    conn.commit()
    assert changed["payments_deleted"] and changed["orderdetails_deleted"]
    t1 = t0 + dt.timedelta(hours=1)
    results = sync_all(
        "classicmodels_sqlite", t1, t1 + dt.timedelta(hours=1), detect={"payments", "orderdetails"}
    )
    for table in ("payments", "orderdetails"):
        assert results[table]["marked_deleted"] == changed[f"{table}_deleted"]
        spec = next(t for t in CONFIG.tables if t.name == table)
        rows = warehouse_rows(table, spec.primary_key)
        live = [{k: v for k, v in r.items() if k != "_nightshift_deleted_at"} for r in rows
                if r["_nightshift_deleted_at"] is None]  # fmt: skip
        assert same(live, source_rows(conn, table, spec.primary_key, '"')), table
        marked = {r["_nightshift_deleted_at"] for r in rows if r["_nightshift_deleted_at"] is not None}
        assert marked == {t1 + dt.timedelta(hours=1)}
    # The next run neither trips over the soft-delete column nor marks anything again.
    t2 = t1 + dt.timedelta(hours=1)
    before = {t: warehouse_rows(t, next(s for s in CONFIG.tables if s.name == t).primary_key)
              for t in ("payments", "orderdetails")}  # fmt: skip
    again = sync_all(
        "classicmodels_sqlite", t2, t2 + dt.timedelta(hours=1), detect={"payments", "orderdetails"}
    )
    for table, rows in before.items():
        assert again[table]["marked_deleted"] == 0
        assert warehouse_rows(table, next(s for s in CONFIG.tables if s.name == table).primary_key) == rows


CRASH_SCRIPT = """
import datetime as dt, os, signal, sys
from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

def crash(self, *args, **kwargs):  # the stage is written; the merge never starts
    os.kill(os.getpid(), signal.SIGKILL)

DuckDBWarehouse.publish = crash
import test_sync_classicmodels as t
start = dt.datetime.fromisoformat(sys.argv[1])
t.sync_all("classicmodels_sqlite", start, start + dt.timedelta(hours=1))
"""


def test_kill_9_between_stage_and_merge_then_rerun_is_correct(sqlite_source):
    """A worker killed after staging leaves the target as it was; the retry lands the interval."""
    import os
    import sys

    from nightshift_core.sample import classicmodels

    conn, dialect = sqlite_source
    t0 = dt.datetime(2026, 11, 20, tzinfo=UTC)
    sync_all("classicmodels_sqlite", t0, t0 + dt.timedelta(hours=1))
    tables = [t for t in CONFIG.tables if t.mode == "incremental"]
    before = {t.name: warehouse_rows(t.name, t.primary_key) for t in tables}
    classicmodels.mutate(conn, dialect, fraction=0.05, seed=5, now=dt.datetime(2026, 11, 20, 1, 30))
    conn.commit()
    t1 = t0 + dt.timedelta(hours=1)
    pythonpath = os.pathsep.join(str(ROOT / p) for p in ("include", "plugins", "tests"))
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, t1.isoformat()],
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        timeout=300,
    )
    assert crashed.returncode == -9, crashed.stderr.decode()[-3000:]
    for table in tables:
        assert warehouse_rows(table.name, table.primary_key) == before[table.name], table.name
    sync_all("classicmodels_sqlite", t1, t1 + dt.timedelta(hours=1), detect={"payments", "orderdetails"})
    for table in CONFIG.tables:
        rows = [{k: v for k, v in r.items() if k != "_nightshift_deleted_at"}
                for r in warehouse_rows(table.name, table.primary_key)
                if r.get("_nightshift_deleted_at") is None]  # fmt: skip
        assert same(rows, source_rows(conn, table.name, table.primary_key, '"')), table.name
