"""The dbt project through Cosmos, with dbt really running (its own venv) on a synced DuckDB warehouse.

Bad source rows fail the audits, block the models, are e-mailed and kept in the audit schema; fixed
data goes green; the top-5 model equals the former post_load query; the partitioned model replaces
exactly its window's days; a stale manifest or a broken model fails loudly, naming the file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.net import free_port
from support.parse_guard import files_opened

from nightshift_core import dbt as core
from nightshift_core.local.mail_catcher import read_messages, start
from nightshift_core.sync.config import load as load_sync

ROOT = Path(__file__).resolve().parents[1]
SYNC = load_sync(ROOT / "include/config/syncs/classicmodels.yaml")
DBT = Path(os.environ.get("NIGHTSHIFT_DBT") or ROOT / ".venv-dbt/bin/dbt")
DAG_ID = "dbt_classicmodels"
MODELS = [
    "models.stg_employees_model_build", "models.stg_customers_model_build", "models.stg_products_model_build",
    "models.stg_orders_model_build", "models.stg_orderdetails_model_build",
    "models.top_employees_by_sales_model_build", "models.daily_sales_model_build",
    "models.daily_orders_model_build",
]  # fmt: skip
# The aggregate as the sync definition's post_load computed it before it moved to dbt.
POST_LOAD_TOP5 = ROOT / "include/sql/classicmodels/top_employees_by_sales.sql"

pytestmark = pytest.mark.timeout(900)


def test_dbt_is_installed_in_its_own_venv():
    assert DBT.is_file(), f"{DBT} missing: scripts/bootstrap.sh installs it (scripts/dbt_setup.sh)"
    version = subprocess.run([DBT, "--version"], capture_output=True, text=True, timeout=120, check=True)
    assert "duckdb" in version.stdout and "bigquery" in version.stdout, version.stdout


def _rows(sql: str, **params):
    from airflow.utils.session import create_session
    from sqlalchemy import text

    with create_session() as session:
        return session.execute(text(sql), params).fetchall()


def states(run_id: str) -> dict[str, str]:
    return dict(
        _rows(
            "SELECT task_id, state FROM task_instance WHERE dag_id = :d AND run_id = :r", d=DAG_ID, r=run_id
        )
    )


def warehouse(sql: str) -> list[dict]:
    from nightshift.hooks.warehouse import WarehouseHook

    with WarehouseHook().get_conn() as wh:
        return wh.query(sql).to_pylist()


def duck(path: Path, sql: str) -> list[tuple]:
    """Read the DuckDB file directly (catalog views the warehouse engine does not expose)."""
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def sync(conn_id: str) -> None:
    from test_sync_classicmodels import sync_all

    sync_all(conn_id)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Metadata DB, a mail catcher, the sample source (SQLite) synced into a DuckDB warehouse."""
    from airflow.utils import db

    from nightshift_core.sample import classicmodels

    db.resetdb()
    folder = tmp_path_factory.mktemp("dbt")
    source = folder / "classicmodels.sqlite"
    conn, dialect = classicmodels.connect(f"sqlite:///{source}")
    classicmodels.generate(conn, dialect, scale=1.0, seed=7, anchor=dt.date.today())
    conn.close()
    port = free_port()
    mail = start(folder / "mail", port=port)
    smtp = {"conn_type": "smtp", "host": "127.0.0.1", "port": port,
            "extra": {"from_email": "alerts@nightshift.test", "disable_ssl": True, "disable_tls": True, "retry_limit": 0}}  # fmt: skip
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIRFLOW_CONN_NIGHTSHIFT_SMTP", json.dumps(smtp))
        env.setenv("AIRFLOW_VAR_NIGHTSHIFT_ALERT_TO", "data-team@nightshift.test")
        env.setenv("AIRFLOW_CONN_CLASSICMODELS_DBT", json.dumps({"conn_type": "sqlite", "host": str(source)}))
        env.setenv(
            "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE",
            json.dumps(
                {
                    "conn_type": "generic",
                    "extra": {"engine": "duckdb", "path": str(folder / "warehouse.duckdb")},
                }
            ),
        )
        env.setenv("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False")
        sync("classicmodels_dbt")
        yield {
            "folder": folder,
            "source": source,
            "mail": folder / "mail",
            "warehouse": folder / "warehouse.duckdb",
        }
    mail.stop()


@pytest.fixture(scope="module")
def dag():
    from nightshift.dbt_dags import build

    return build()


def test_bad_rows_fail_the_audit_block_the_models_mail_it_and_are_kept_then_fixed_data_goes_green(stack, dag):
    import duckdb

    with sqlite3.connect(stack["source"]) as db:
        db.execute(
            "UPDATE orders SET status = 'Lost' WHERE orderNumber = (SELECT MIN(orderNumber) FROM orders)"
        )
        db.execute(
            "UPDATE customers SET customerName = ? WHERE customerNumber = (SELECT MIN(customerNumber) FROM customers)",
            ("A customer name far longer than the fifty characters declared",),
        )
    sync("classicmodels_dbt")
    # A load that let a NULL key through (the warehouse column made nullable, as a looser source would).
    with duckdb.connect(str(stack["warehouse"])) as con:
        con.execute("ALTER TABLE classicmodels.employees ALTER COLUMN employeeNumber DROP NOT NULL")
        con.execute(
            "INSERT INTO classicmodels.employees SELECT * REPLACE (NULL AS employeeNumber) "
            "FROM classicmodels.employees LIMIT 1"
        )

    run = dag.test(logical_date=None)
    assert run.state == "failed"
    got = states(run.run_id)
    assert got["source_freshness"] == "success"
    assert got["audit_sources"] == "failed"
    assert {got[t] for t in MODELS} == {"upstream_failed"}, got  # staging (ephemeral) and marts alike
    tables = {
        r[0]
        for r in duck(
            stack["warehouse"], "SELECT table_schema || '.' || table_name FROM information_schema.tables"
        )
    }
    assert "classicmodels_agg.top_employees_by_sales" not in tables, (
        "a model ran on data that failed its audit"
    )

    (alert,) = [
        m
        for m in read_messages(stack["mail"])
        if m["Subject"] == f"[nightshift] FAILED {DAG_ID}.audit_sources (try 1)"
    ]
    body = alert.get_body(("html",)).get_content()
    for test in (
        "source_accepted_values_classicmodels_orders_status__Shipped__Resolved__Cancelled__On_Hold__Disputed__In_Process",
        "source_not_null_classicmodels_employees_employeeNumber",
        "source_max_length_classicmodels_customers_customerName__50",
    ):
        assert (
            f"audit {test} (models/staging/_sources.yml) failed: 1 failing row, kept in nightshift_audit."
            in body
        ), body
    assert "AirflowFailException: 3 dbt audit(s) failed:" in body, body
    # The offending rows themselves, in the audit schema.
    kept = warehouse("SELECT * FROM nightshift_audit.source_not_null_classicmodels_employees_employeeNumber")
    assert len(kept) == 1 and kept[0]["employeeNumber"] is None
    # The accepted_values audit's table name is hashed (too long): the e-mail names it.
    (name,) = set(
        re.findall(
            r"source_accepted_values_classicmodels_orders_status\S* \S+ failed: 1 failing row, kept in nightshift_audit\.(\w+)",
            body,
        )
    )
    assert warehouse(f'SELECT value_field FROM nightshift_audit."{name}"') == [{"value_field": "Lost"}]

    # Fix the data, re-run: green, and the models are there.
    with sqlite3.connect(stack["source"]) as db:
        db.execute("UPDATE orders SET status = 'Shipped' WHERE status = 'Lost'")
        db.execute("UPDATE customers SET customerName = substr(customerName, 1, 50)")
    sync("classicmodels_dbt")
    with duckdb.connect(str(stack["warehouse"])) as con:
        con.execute("DELETE FROM classicmodels.employees WHERE employeeNumber IS NULL")
    day = dt.datetime(2026, 11, 22, 3, tzinfo=dt.UTC)
    green = dag.test(logical_date=day)
    assert green.state == "success", states(green.run_id)
    assert set(states(green.run_id).values()) == {"success"}
    assert warehouse(
        "SELECT COUNT(*) AS n FROM nightshift_audit.source_not_null_classicmodels_employees_employeeNumber"
    ) == [{"n": 0}]

    # The aggregate moved from post_load: the same rows.
    assert warehouse(
        "SELECT * FROM classicmodels_agg.top_employees_by_sales ORDER BY sales DESC, employee_number"
    ) == warehouse(POST_LOAD_TOP5.read_text().replace("{{ dataset }}", "classicmodels"))
    # The window came from the run (its data interval), never from the clock.
    (rendered,) = _rows(
        "SELECT rendered_fields FROM rendered_task_instance_fields WHERE dag_id = :d AND run_id = :r AND task_id = :t",
        d=DAG_ID, r=green.run_id, t="models.daily_sales_model_build",
    )  # fmt: skip
    fields = rendered[0] if isinstance(rendered[0], dict) else json.loads(rendered[0])
    # A run at 03:00 on the 22nd covers the day before it: its interval touches the 21st and the 22nd.
    assert (green.data_interval_start, green.data_interval_end) == (
        dt.datetime(2026, 11, 21, 3, tzinfo=dt.UTC),
        day,
    )
    assert fields["vars"] == {"window_start": "2026-11-21", "window_end": "2026-11-23"}
    # The first build has every day; it equals the aggregate over the raw tables.
    daily = warehouse(
        "SELECT SUM(sales) AS s, COUNT(DISTINCT order_date) AS days FROM classicmodels_agg.daily_sales"
    )
    raw = warehouse(
        "SELECT SUM(od.quantityOrdered * od.priceEach) AS s, COUNT(DISTINCT o.orderDate) AS days "
        "FROM classicmodels.orders o JOIN classicmodels.orderdetails od ON od.orderNumber = o.orderNumber"
    )
    assert daily == raw


def _dbt(*args: str, vars_: dict | None = None, profiles: Path) -> subprocess.CompletedProcess:
    command = [str(DBT), *args, "--project-dir", str(core.PROJECT_DIR), "--profiles-dir", str(profiles),
               "--target-path", str(profiles / "target"), "--log-path", str(profiles / "logs")]  # fmt: skip
    if vars_:
        command += ["--vars", json.dumps(vars_)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "DO_NOT_TRACK": "1"}
    )


def _profile(folder: Path) -> Path:
    """profiles.yml as the Cosmos tasks get it: from nightshift_warehouse through the profile mapping."""
    from nightshift.dbt_project import PROFILE_NAME, TARGET_NAME, WarehouseProfileMapping

    mapping = WarehouseProfileMapping(conn_id="nightshift_warehouse")
    folder.mkdir(exist_ok=True)
    (folder / "profiles.yml").write_text(mapping.get_profile_file_contents(PROFILE_NAME, TARGET_NAME))
    return folder


def test_partitioned_model_backfill_then_one_day_again_leaves_one_copy_per_day(stack, dag, tmp_path):
    """30 days as one window, then one of them again after its source rows changed: one copy of each day."""
    # daily_sales was built whole by the DAG run of the test above.
    assert warehouse("SELECT COUNT(*) AS n FROM classicmodels_agg.daily_sales")[0]["n"] > 0
    profiles = _profile(tmp_path / "p")
    last = warehouse("SELECT MAX(orderDate) AS d FROM classicmodels.orders")[0]["d"]
    first = last - dt.timedelta(days=29)
    window = {"window_start": first.isoformat(), "window_end": (last + dt.timedelta(days=1)).isoformat()}
    before = warehouse("SELECT * FROM classicmodels_agg.daily_sales ORDER BY order_date, product_line")
    done = _dbt("run", "--select", "daily_sales", vars_=window, profiles=profiles)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (
        warehouse("SELECT * FROM classicmodels_agg.daily_sales ORDER BY order_date, product_line") == before
    )

    # One day changes in the warehouse (every line of its orders doubles), and is re-run alone.
    import duckdb

    day = warehouse(
        f"SELECT order_date AS d FROM classicmodels_agg.daily_sales WHERE order_date >= DATE '{first}' "
        "GROUP BY order_date ORDER BY COUNT(*) DESC LIMIT 1"
    )[0]["d"]
    with duckdb.connect(str(stack["warehouse"])) as con:
        con.execute(
            "UPDATE classicmodels.orderdetails SET quantityOrdered = quantityOrdered * 2 WHERE orderNumber IN "
            f"(SELECT orderNumber FROM classicmodels.orders WHERE orderDate = DATE '{day}')"
        )
    one = {"window_start": day.isoformat(), "window_end": (day + dt.timedelta(days=1)).isoformat()}
    # The staging tables it reads are rebuilt first, as the DAG's tasks do.
    done = _dbt("run", "--select", "+daily_sales", vars_=one, profiles=profiles)
    assert done.returncode == 0, done.stdout[-3000:]
    after = warehouse("SELECT * FROM classicmodels_agg.daily_sales ORDER BY order_date, product_line")
    copies = warehouse(
        "SELECT order_date, product_line, COUNT(*) AS n FROM classicmodels_agg.daily_sales GROUP BY ALL HAVING COUNT(*) > 1"
    )
    assert copies == []
    assert [r for r in after if r["order_date"] != day] == [r for r in before if r["order_date"] != day]
    changed = {r["product_line"]: r for r in after if r["order_date"] == day}
    for old in (r for r in before if r["order_date"] == day):
        assert changed[old["product_line"]]["quantity"] == 2 * old["quantity"]
        assert changed[old["product_line"]]["sales"] == 2 * old["sales"]

    # Incremental without a window: refused, never the clock.
    refused = _dbt("run", "--select", "daily_sales", profiles=profiles)
    assert refused.returncode != 0 and "pass vars window_start and window_end" in refused.stdout


def test_the_run_window_comes_from_the_run():
    utc = dt.UTC
    # A daily backfill run [D, D+1): exactly day D.
    assert core.window(dt.datetime(2026, 11, 1, tzinfo=utc), dt.datetime(2026, 11, 2, tzinfo=utc), None) == (
        "2026-11-01", "2026-11-02",
    )  # fmt: skip
    # The 03:00 cron interval touches two days; an hourly sync's interval one.
    assert core.window(dt.datetime(2026, 11, 1, 3, tzinfo=utc), dt.datetime(2026, 11, 2, 3, tzinfo=utc), None) == (
        "2026-11-01", "2026-11-03",
    )  # fmt: skip
    hour = (dt.datetime(2026, 11, 5, 13, tzinfo=utc), dt.datetime(2026, 11, 5, 14, tzinfo=utc))
    assert core.window(*hour, None) == ("2026-11-05", "2026-11-06")
    assert core.window(*hour, None, days=3) == ("2026-11-03", "2026-11-06")
    # A manual run without an interval: the day before it ran; explicit Params win.
    assert core.window(None, None, dt.datetime(2026, 11, 5, 9, tzinfo=utc)) == ("2026-11-04", "2026-11-05")
    assert core.window(None, None, None, start="2026-10-01", end="2026-10-31") == ("2026-10-01", "2026-10-31")
    with pytest.raises(ValueError, match="give both"):
        core.window(None, None, None, start="2026-10-01")


def _copy_project(tmp_path: Path) -> Path:
    copy = tmp_path / "dbt"
    shutil.copytree(core.PROJECT_DIR, copy, ignore=shutil.ignore_patterns("logs", "dbt_packages"))
    return copy


def test_a_new_model_without_a_new_manifest_is_an_import_error_saying_what_to_run(tmp_path):
    copy = _copy_project(tmp_path)
    assert core.manifest_path(copy)  # the shipped manifest matches the shipped files
    (copy / "models/marts/new_model.sql").write_text("select 1 as x\n")
    with pytest.raises(
        core.DbtProjectError, match=r"changed since its manifest was built.*scripts/dbt_setup.sh parse"
    ):
        core.manifest_path(copy)


def test_a_model_with_a_missing_ref_fails_setup_naming_the_file(tmp_path):
    copy = _copy_project(tmp_path)
    (copy / "models/marts/broken.sql").write_text("select * from {{ ref('no_such_model') }}\n")
    done = subprocess.run(
        ["scripts/dbt_setup.sh", "parse"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NIGHTSHIFT_DBT_PROJECT": str(copy)},
    )  # fmt: skip
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "models/marts/broken.sql" in out and "no_such_model" in out, out[-2000:]


def test_a_model_with_bad_sql_fails_its_task_naming_the_file(stack, tmp_path, monkeypatch):
    """An analyst's model the warehouse rejects: the DAG, rendered from a project holding it, runs its task
    through Airflow's task runner; the task fails at once, its error and failure e-mail naming the file."""
    copy = _copy_project(tmp_path)
    (copy / "models/marts/bad_sql.sql").write_text(
        "select nonsense_column from {{ source('classicmodels', 'orders') }}\n"
    )
    parsed = subprocess.run(
        ["scripts/dbt_setup.sh", "parse"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NIGHTSHIFT_DBT_PROJECT": str(copy)},
    )  # fmt: skip
    assert parsed.returncode == 0, parsed.stdout[-2000:] + parsed.stderr[-2000:]
    from nightshift.dbt_dags import build

    manifest_path = core.manifest_path
    monkeypatch.setattr(core, "PROJECT_DIR", copy)
    monkeypatch.setattr(core, "manifest_path", lambda: manifest_path(copy))
    dag = build()
    task_id = "models.bad_sql_model_build"
    assert task_id in dag.task_dict
    # Every other task is marked done without running: only the model's own task runs.
    run = dag.test(logical_date=None, mark_success_pattern=rf"(?!{re.escape(task_id)}$).*")
    assert run.state == "failed"
    assert states(run.run_id)[task_id] == "failed"
    # Failed at once (SQL the warehouse rejects is not retried), and the e-mail says which file.
    failed = f"[nightshift] FAILED {DAG_ID}.{task_id}"
    alerts = [m for m in read_messages(stack["mail"]) if m["Subject"].startswith(failed)]
    assert [m["Subject"] for m in alerts] == [f"{failed} (try 1)"]
    body = alerts[0].get_body(("html",)).get_content()
    assert "AirflowFailException: 1 dbt node(s) failed:" in body, body
    assert "model bad_sql (models/marts/bad_sql.sql) error" in body and "nonsense_column" in body, body


def test_parsing_the_dbt_dag_runs_no_subprocess_and_reads_only_the_manifest():
    """The DAG file's docstring promises parse time reads the manifest and the project's files, nothing else."""
    from unittest import mock

    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag

    def refuse(*args, **kwargs):
        raise AssertionError(f"subprocess at DAG-parse time: {args[:1]}")

    dag_file = ROOT / "dags" / "nightshift_dbt.py"
    with mock.patch.object(subprocess.Popen, "__init__", refuse), files_opened() as opened:
        bag = DagBag(dag_folder=str(dag_file))
    assert not bag.import_errors, bag.import_errors
    # Python's and Airflow's own reads aside: installed packages' files, the standard library, Airflow's
    # config and its plugins folder's ignore file (read once per process when plugins first load).
    own = [Path(p).resolve() for p in (sys.prefix, sys.base_prefix, os.environ["AIRFLOW_HOME"])]
    plugins_ignore = Path(settings.PLUGINS_FOLDER, ".airflowignore").resolve()
    read = {p for p in opened if p != plugins_ignore and not any(p.is_relative_to(o) for o in own)}
    target = core.target_dir()
    assert read == {
        dag_file.resolve(),  # DagBag reads the file it parses
        (target / core.RENDER_MANIFEST).resolve(),
        (target / core.FINGERPRINT_FILE).resolve(),
        *(p.resolve() for p in core.project_files()),
    }, sorted(map(str, read))
    dag = bag.dags[DAG_ID]
    outlets = {a.name for t in dag.tasks for a in t.outlets}
    assert {"classicmodels_agg.top_employees_by_sales", "classicmodels_agg.daily_sales"} <= outlets
    assert dag.get_task("audit_sources").downstream_task_ids >= {"models.stg_orders_model_build"}
    # Every dbt task of a run keeps its parse in one folder, so the next task parses only what changed.
    caches = {t.task_id: t.cache_dir for t in dag.tasks if getattr(t, "partial_parse", False)}
    assert {"source_freshness", "audit_sources", "models.daily_sales_model_build"} <= set(caches), caches
    assert len(set(caches.values())) == 1 and None not in caches.values(), caches
    report = yaml.safe_load((ROOT / "include/config/reports/daily_sales.yaml").read_text())
    assert "classicmodels_agg.top_employees_by_sales" in report["schedule"]["assets"]


def test_bigquery_path_runs_on_the_emulator(bq_emulator, tmp_path, monkeypatch):
    """dbt-bigquery through the same profile mapping: models, audits and the partitioned model's
    insert_overwrite of exactly its window (a changed day inside it rebuilt, a changed day outside it
    left as it was), against the local BigQuery emulator."""
    from nightshift_core.sample import classicmodels

    client = bq_emulator.client()
    for dataset in ("classicmodels", "classicmodels_agg", "nightshift_audit"):
        client.delete_dataset(f"{bq_emulator.project}.{dataset}", delete_contents=True, not_found_ok=True)
    extra = {"engine": "bigquery", "anonymous": True, "project": bq_emulator.project,
             "api_endpoint": bq_emulator.endpoint, "use_storage_api": False}  # fmt: skip
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE", json.dumps({"conn_type": "generic", "extra": extra})
    )
    source = tmp_path / "classicmodels.sqlite"
    conn, dialect = classicmodels.connect(f"sqlite:///{source}")
    classicmodels.generate(conn, dialect, scale=0.2, seed=3, anchor=dt.date.today())
    conn.close()
    monkeypatch.setenv(
        "AIRFLOW_CONN_CLASSICMODELS_BQ", json.dumps({"conn_type": "sqlite", "host": str(source)})
    )
    sync("classicmodels_bq")
    profiles = _profile(tmp_path / "p")
    assert "type: bigquery" in (profiles / "profiles.yml").read_text()

    built = _dbt("build", "--exclude", "source:*", profiles=profiles)
    assert built.returncode == 0, built.stdout[-3000:]
    audits = _dbt("test", "--select", "source:classicmodels", profiles=profiles)
    assert audits.returncode == 0, audits.stdout[-3000:]
    before = warehouse("SELECT * FROM classicmodels_agg.daily_sales ORDER BY order_date, product_line")
    last = max(r["order_date"] for r in before)
    first = last - dt.timedelta(days=6)
    window = {"window_start": first.isoformat(), "window_end": (last + dt.timedelta(days=1)).isoformat()}
    # The source rows of one day inside the window and one day before it change (every line doubles);
    # the run must rebuild the first and leave the second as it was.
    inside = last
    outside = max(r["order_date"] for r in before if r["order_date"] < first)
    client.query(
        "UPDATE classicmodels.orderdetails SET quantityOrdered = quantityOrdered * 2 WHERE orderNumber IN "
        f"(SELECT orderNumber FROM classicmodels.orders WHERE orderDate IN (DATE '{inside}', DATE '{outside}'))"
    ).result()
    source = warehouse(
        "SELECT o.orderDate AS d, SUM(od.quantityOrdered) AS q FROM classicmodels.orders o JOIN "
        "classicmodels.orderdetails od ON od.orderNumber = o.orderNumber "
        f"WHERE o.orderDate IN (DATE '{inside}', DATE '{outside}') GROUP BY o.orderDate"
    )
    built_q = {d: sum(r["quantity"] for r in before if r["order_date"] == d) for d in (inside, outside)}
    assert {r["d"]: r["q"] for r in source} == {d: 2 * q for d, q in built_q.items()}
    again = _dbt("run", "--select", "daily_sales", vars_=window, profiles=profiles)
    assert again.returncode == 0, again.stdout[-3000:]
    after = warehouse("SELECT * FROM classicmodels_agg.daily_sales ORDER BY order_date, product_line")
    assert len({(r["order_date"], r["product_line"]) for r in after}) == len(after), "a day copied twice"
    assert [r for r in after if r["order_date"] != inside] == [
        r for r in before if r["order_date"] != inside
    ], f"only {inside} (inside the window) may change; {outside} is outside it"
    old = {r["product_line"]: r for r in before if r["order_date"] == inside}
    new = {r["product_line"]: r for r in after if r["order_date"] == inside}
    assert old and new.keys() == old.keys()
    for line, row in old.items():
        assert (new[line]["quantity"], new[line]["sales"]) == (2 * row["quantity"], 2 * row["sales"]), line
