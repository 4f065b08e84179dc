"""The shipped sync and report DAGs run through Airflow's own task runner, in process (``dag.test()``).

What the operator tests cannot see: templates rendered by Airflow (``{{ params... }}``, ``{{ var... }}``,
``{{ ti.xcom_pull(...) }}``), return values pushed as XCom and pulled by the next task, skips and
trigger rules. Each run's outcome is read back from the metadata DB (task states, rendered template
fields, XCom) and from the systems the tasks wrote to: a DuckDB warehouse, a local SMTP server and the
fake Google Sheets API. ``dag.test()`` parses the dags folder into this session's metadata DB first,
so the DAGs run are the ones Airflow would serialize.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from support.marts import shared_cache
from support.smtp import RecordingHandler, start_server
from test_email_report import set_smtp

from nightshift_core.reports.config import load as load_report
from nightshift_core.sync.config import load as load_sync

ROOT = Path(__file__).resolve().parents[1]
SYNC = load_sync(ROOT / "include/config/syncs/classicmodels.yaml")
REPORT = load_report(ROOT / "include/config/reports/daily_sales.yaml")
DATASET = SYNC.target.dataset
LOADS = [f"load_{t.target_table}" for t in SYNC.tables]
DAY = "2026-11-22"
RECIPIENT = "sales-team@nightshift.test"


@pytest.fixture(scope="module")
def metadata_db():
    """This session's metadata DB (tests/conftest.py), created empty."""
    from airflow.utils import db

    db.resetdb()


def _rows(sql: str, **params):
    from airflow.utils.session import create_session
    from sqlalchemy import text

    with create_session() as session:
        return session.execute(text(sql), params).fetchall()


def states(dag_id: str, run_id: str) -> dict[str, str]:
    rows = _rows(
        "SELECT task_id, state FROM task_instance WHERE dag_id = :d AND run_id = :r", d=dag_id, r=run_id
    )
    return dict(rows)


def tries(dag_id: str, run_id: str) -> dict[str, int]:
    """try_number of each failed task of the run."""
    rows = _rows(
        "SELECT task_id, try_number FROM task_instance WHERE dag_id = :d AND run_id = :r AND state = 'failed'",
        d=dag_id, r=run_id,
    )  # fmt: skip
    return dict(rows)


def rendered(dag_id: str, run_id: str, task_id: str) -> dict:
    (row,) = _rows(
        "SELECT rendered_fields FROM rendered_task_instance_fields WHERE dag_id = :d AND run_id = :r "
        "AND task_id = :t",
        d=dag_id, r=run_id, t=task_id,
    )  # fmt: skip
    return row[0] if isinstance(row[0], dict) else json.loads(row[0])


def xcoms(dag_id: str, run_id: str) -> dict[str, object]:
    """Every task's return value in the run."""
    rows = _rows(
        "SELECT task_id, value FROM xcom WHERE dag_id = :d AND run_id = :r AND key = 'return_value'",
        d=dag_id, r=run_id,
    )  # fmt: skip
    return {task: value if not isinstance(value, str) else json.loads(value) for task, value in rows}


def warehouse_rows(sql: str) -> list[dict]:
    from nightshift.hooks.warehouse import WarehouseHook

    with WarehouseHook().get_conn() as warehouse:
        return warehouse.query(sql).to_pylist()


@pytest.fixture(scope="module")
def synced(metadata_db, tmp_path_factory):
    """The generated classicmodels sample (SQLite) synced into DuckDB by one run of the shipped sync DAG."""
    from nightshift.sync_dags import build
    from nightshift_core.sample import classicmodels

    folder = tmp_path_factory.mktemp("dag-runs")
    source = folder / "classicmodels.sqlite"
    conn, dialect = classicmodels.connect(f"sqlite:///{source}")
    classicmodels.generate(conn, dialect, scale=1.0, seed=7)
    conn.close()
    warehouse = {"engine": "duckdb", "path": str(folder / "warehouse.duckdb")}
    with pytest.MonkeyPatch.context() as env:
        env.delenv("NIGHTSHIFT_SYNC_DIR", raising=False)
        env.delenv("NIGHTSHIFT_REPORT_DIR", raising=False)
        env.setenv(
            f"AIRFLOW_CONN_{SYNC.source.conn_id.upper()}",
            json.dumps({"conn_type": "sqlite", "host": str(source)}),
        )
        env.setenv(
            "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE", json.dumps({"conn_type": "generic", "extra": warehouse})
        )
        dag = build(SYNC)
        run = dag.test(logical_date=None)
        yield dag, run, source, folder


def test_sync_dag_pushes_each_load_to_the_gate_and_params_select_a_full_reload(synced):
    dag, first, source, _ = synced
    assert first.state == "success"
    assert states(dag.dag_id, first.run_id) == dict.fromkeys([*LOADS, "quality_gate"], "success")
    with sqlite3.connect(source) as db:
        counts = {t.name: db.execute(f"SELECT COUNT(*) FROM {t.name}").fetchone()[0] for t in SYNC.tables}  # noqa: S608
    # Each load's return value is an XCom; the gate's template pulled all eight of them, in order.
    pushed = xcoms(dag.dag_id, first.run_id)
    loads = [pushed[task] for task in LOADS]
    assert [(r["source_table"], r["staged_rows"], r["source_rows"]) for r in loads] == [
        (t, counts[t], counts[t]) for t in counts
    ]
    assert rendered(dag.dag_id, first.run_id, "quality_gate") == {"load_results": loads}
    assert pushed["quality_gate"]["checked"] == [f"{DATASET}.{t.target_table}" for t in SYNC.tables]
    # The Params' defaults, as rendered: no selection, no forced reload.
    assert rendered(dag.dag_id, first.run_id, "load_orders") == {
        "full_refresh": "False", "only_tables": "", "reconcile": "False"
    }  # fmt: skip
    for table, n in counts.items():
        assert warehouse_rows(f"SELECT COUNT(*) AS n FROM {DATASET}.{table}") == [{"n": n}], table  # noqa: S608

    # A change an incremental window cannot see (amount, same updatedAt) and a deleted payment:
    # only `tables: [payments], full_refresh: true` reloads the table whole, every other load skips.
    with sqlite3.connect(source) as db:
        db.execute("UPDATE payments SET amount = amount + 1000")
        db.execute("DELETE FROM payments WHERE rowid = (SELECT MIN(rowid) FROM payments)")
        want = db.execute("SELECT COUNT(*), SUM(amount) FROM payments").fetchone()
    second = dag.test(logical_date=None, run_conf={"tables": ["payments"], "full_refresh": True})
    assert second.state == "success"
    assert states(dag.dag_id, second.run_id) == {
        **dict.fromkeys(LOADS, "skipped"), "load_payments": "success", "quality_gate": "success",
    }  # fmt: skip
    for task in LOADS:
        assert rendered(dag.dag_id, second.run_id, task) == {
            "full_refresh": "True", "only_tables": "payments", "reconcile": "False"
        }, task  # fmt: skip
    pushed = xcoms(dag.dag_id, second.run_id)
    assert set(pushed) == {"load_payments", "quality_gate"}, "skipped loads push nothing"
    assert pushed["load_payments"]["mode"] == "full" and pushed["load_payments"]["staged_rows"] == want[0]
    assert pushed["quality_gate"]["checked"] == [f"{DATASET}.payments"]
    got = warehouse_rows(f"SELECT COUNT(*) AS n, SUM(amount) AS total FROM {DATASET}.payments")  # noqa: S608
    assert (got[0]["n"], float(got[0]["total"])) == (want[0], pytest.approx(float(want[1])))


def delivered(day: str):
    """The delivery marker of the daily sales report for ``day``, if any."""
    import datetime as dt

    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift.operators.email_report import DeliveryLedger

    with WarehouseHook().get_conn() as warehouse:
        return DeliveryLedger(warehouse).find(REPORT.report_id, dt.date.fromisoformat(day))


def aggregate(folder: Path, marts_cache: Path) -> None:
    """The aggregates the report reads: the top-5 dbt model (tests/test_dbt.py builds it with dbt),
    its reference query standing in here, and the headline's per-day marts, built by dbt once a session
    for the same synced sample (``support.marts.report_marts``)."""
    import datetime as dt

    from support.marts import report_marts
    from test_reports import context

    report_marts(folder / "dbt", folder / "warehouse.duckdb", marts_cache)
    from nightshift.operators.warehouse_ops import WarehouseQueryToTableOperator

    WarehouseQueryToTableOperator(
        task_id="top_employees_by_sales", sql="classicmodels/top_employees_by_sales.sql",
        target="classicmodels_agg.top_employees_by_sales", shape={"dataset": "classicmodels"},
    ).execute(context("top_employees_by_sales", dt.datetime(2026, 11, 22, tzinfo=dt.UTC)))  # fmt: skip


def test_report_dag_renders_params_variables_and_xcom_into_sheets_and_mail(
    synced, fake_sheets, monkeypatch, tmp_path_factory
):
    from support.fake_sheets import use_google_connection

    from nightshift.report_dags import build

    _, _, _, folder = synced
    aggregate(folder, shared_cache(tmp_path_factory))
    handler = RecordingHandler()
    server = start_server(handler)
    try:
        set_smtp(monkeypatch, server.port)
        use_google_connection(monkeypatch, fake_sheets)
        fake_sheets.add_spreadsheet("sales-sheet")
        monkeypatch.setenv("AIRFLOW_VAR_NIGHTSHIFT_DAILY_SALES_SHEET", "sales-sheet")
        monkeypatch.setenv("AIRFLOW_VAR_NIGHTSHIFT_REPORT_TO", RECIPIENT)
        monkeypatch.setenv("NIGHTSHIFT_REPORTS_DIR", str(folder / "reports"))
        dag = build(REPORT)
        run = dag.test(run_conf={"report_date": DAY})
        again = dag.test(run_conf={"report_date": DAY, "force_resend": True})
    finally:
        server.stop()
    assert run.state == "success" and again.state == "success"
    assert states(dag.dag_id, run.run_id) == dict.fromkeys(["build", "to_sheets", "email"], "success")
    built = xcoms(dag.dag_id, run.run_id)["build"]
    assert built["report_date"] == DAY  # the Param, not the day before the run
    assert built["workbook"] == str(folder / "reports" / "daily_sales" / DAY / f"daily_sales_{DAY}.xlsx")
    assert rendered(dag.dag_id, run.run_id, "build") == {"report_date": DAY}
    # The Variable and the build task's XCom, rendered into the next tasks' arguments.
    assert rendered(dag.dag_id, run.run_id, "to_sheets") == {
        "spreadsheet_key": "sales-sheet",
        "folder": built["folder"],
    }
    email = rendered(dag.dag_id, run.run_id, "email")
    subject = f"[nightshift] {REPORT.title} {DAY}"
    assert email["to"] == [RECIPIENT] and email["subject"] == subject and email["report_date"] == DAY
    assert email["workbook_path"] == built["workbook"] and email["summary_html_path"] == built["summary_html"]
    assert email["force_resend"] == "False"
    assert rendered(dag.dag_id, again.run_id, "email")["force_resend"] == "True"
    # What reached the outside: each section in its worksheet, one e-mail per run (the second forced).
    worksheets = [w["worksheet"] for w in xcoms(dag.dag_id, run.run_id)["to_sheets"]["worksheets"]]
    assert worksheets == [s.name for s in REPORT.sections]
    assert fake_sheets.values("sales-sheet", "top_customers")[0] == [
        "customer",
        "country",
        "territory",
        "orders",
        "sales",
    ]
    assert len(handler.messages) == 2
    for received in handler.messages:
        message = received.message
        assert received.rcpt_tos == [RECIPIENT] and message["Subject"] == subject
        assert [part.get_filename() for part in message.iter_attachments()] == [f"daily_sales_{DAY}.xlsx"]


@pytest.mark.parametrize(("kind", "day"), [("outside", "2026-11-20"), ("symlink", "2026-11-21")])
def test_a_forged_build_xcom_fails_sheets_and_mail_and_sends_nothing(
    synced, fake_sheets, monkeypatch, tmp_path, tmp_path_factory, capsys, kind, day
):
    """The build task's XCom (which an XCom edit through the API could change) names a secrets file
    for the workbook and the bodies and another folder for the Sheets task: both tasks fail at once,
    the SMTP server receives nothing and the Sheets API is not called. The same run without the
    forgery sends."""
    import shutil

    from support.fake_sheets import use_google_connection
    from support.smtp import mailbox

    from nightshift.operators.reports import WarehouseToReportOperator
    from nightshift.report_dags import build

    _, _, _, folder = synced
    aggregate(folder, shared_cache(tmp_path_factory))
    reports = folder / "reports"
    secret = tmp_path / "secrets.json"
    secret.write_text('{"fernet_key": "do-not-mail-9a7e"}')
    elsewhere = tmp_path / "elsewhere"
    real_build = WarehouseToReportOperator.execute

    def forged_build(self, context):
        built = real_build(self, context)
        shutil.copytree(built["folder"], elsewhere)  # real Parquet files the Sheets task could publish
        paths = dict.fromkeys(["workbook", "summary_text", "summary_html"], str(secret))
        paths["folder"] = str(elsewhere)
        if kind == "symlink":  # names inside the report's folder, pointing out of it
            planted = reports / "daily_sales" / f"planted-{day}"
            planted.mkdir(parents=True)
            for name in paths:
                (planted / name).symlink_to(paths[name], target_is_directory=name == "folder")
                paths[name] = str(planted / name)
        return {**built, **paths}

    use_google_connection(monkeypatch, fake_sheets)
    fake_sheets.add_spreadsheet("sales-sheet")
    monkeypatch.setenv("AIRFLOW_VAR_NIGHTSHIFT_DAILY_SALES_SHEET", "sales-sheet")
    monkeypatch.setenv("AIRFLOW_VAR_NIGHTSHIFT_REPORT_TO", RECIPIENT)
    monkeypatch.setenv("NIGHTSHIFT_REPORTS_DIR", str(reports))
    dag = build(REPORT)
    with mailbox(monkeypatch) as handler:
        with monkeypatch.context() as forgery:
            forgery.setattr(WarehouseToReportOperator, "execute", forged_build)
            attacked = dag.test(run_conf={"report_date": day})
        log = capsys.readouterr().out
        assert states(dag.dag_id, attacked.run_id) == {"build": "success", "to_sheets": "failed",
                                                       "email": "failed"}  # fmt: skip
        assert tries(dag.dag_id, attacked.run_id) == {"to_sheets": 1, "email": 1}  # no retries
        forged = xcoms(dag.dag_id, attacked.run_id)["build"]
        assert rendered(dag.dag_id, attacked.run_id, "email")["workbook_path"] == forged["workbook"]
        allowed = repr(str(reports / "daily_sales"))
        for field, key in [("summary_html_path", "summary_html"), ("folder", "folder")]:  # email, to_sheets
            assert f"{field} {forged[key]!r}" in log and f"is outside the folder {allowed}" in log
        assert "re-run the report's build task" in log
        assert handler.messages == []
        assert fake_sheets.api_requests == [] and fake_sheets.token_requests == []
        assert delivered(day) is None

        control = dag.test(run_conf={"report_date": day})  # the same date, the build's own XCom
        assert delivered(day) is not None
    assert states(dag.dag_id, control.run_id) == dict.fromkeys(["build", "to_sheets", "email"], "success")
    (received,) = handler.messages
    assert "do-not-mail-9a7e" not in received.raw.decode(errors="replace")
    assert [part.get_filename() for part in received.message.iter_attachments()] == [
        f"daily_sales_{day}.xlsx"
    ]
    assert len(fake_sheets.api_requests) > 0
