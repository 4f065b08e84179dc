"""End-to-end: the same script as `make run` starts a real stack; DAGs run via the REST API.

Uses its own runtime folder and free ports, so it never touches a stack you have running.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.net import free_port
from support.runs import extra_runs, started_runs
from support.services import in_ci
from test_runtime_install import runtime_python

from nightshift_core.local.mail_catcher import read_messages

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    runtime = tmp_path_factory.mktemp("stack")
    env = {
        **os.environ,
        "NIGHTSHIFT_RUNTIME": str(runtime),
        "NIGHTSHIFT_PORT": str(free_port()),
        "NIGHTSHIFT_SMTP_PORT": str(free_port()),
        "NIGHTSHIFT_ADMIN_PASSWORD": "stack-test-password",
        "NIGHTSHIFT_SAMPLE_ACTIVITY": "0",  # a still source: the checks below pin counts
    }
    for key in [k for k in env if k.startswith("AIRFLOW")]:
        del env[key]  # the stack builds its own Airflow environment
    # The stack runs from the runtime venv (`make test` builds it as `make run` does), so a package
    # only the dev tools bring in fails here, as it would on a user's machine.
    python = os.environ.get("NIGHTSHIFT_RUNTIME_PYTHON") or (runtime_python() if in_ci() else sys.executable)
    script = [python, str(ROOT / "scripts/local_stack.py")]
    try:
        up = subprocess.run([*script, "up"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        up_ended = dt.datetime.now(dt.UTC)
    except subprocess.TimeoutExpired as exc:  # say where it was, and leave nothing running
        subprocess.run([*script, "down"], env=env, cwd=ROOT, capture_output=True, timeout=120)
        said = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"`local_stack.py up` ran over {exc.timeout:.0f}s; its output so far:\n{said[-4000:]}")
    try:
        assert up.returncode == 0, f"`local_stack.py up` failed:\n{up.stdout[-4000:]}\n{up.stderr[-4000:]}"
        sys.path.insert(0, str(ROOT / "scripts"))
        import local_stack

        os.environ.update(
            {k: env[k] for k in ("NIGHTSHIFT_RUNTIME", "NIGHTSHIFT_PORT", "NIGHTSHIFT_SMTP_PORT")}
        )
        yield {"runtime": runtime, "env": env, "up": up, "module": local_stack, "up_ended": up_ended}
    finally:
        down = subprocess.run(
            [*script, "down"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        logs = runtime / "logs"
        if logs.exists():
            for log in logs.glob("*.log"):
                (ROOT / "test-output" / f"stack-{log.name}").write_bytes(log.read_bytes())
        assert down.returncode == 0, down.stdout + down.stderr


def api(stack, password="stack-test-password"):
    mod = stack["module"]
    return mod.Api(f"http://127.0.0.1:{stack['env']['NIGHTSHIFT_PORT']}", "admin", password)


def wait_for_run(client, dag_id: str, run_id: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(2)
    raise AssertionError(f"{dag_id} {run_id} did not finish in {timeout}s")


def test_up_runs_every_dag_and_prints_the_login(stack):
    out = stack["up"].stdout
    assert "nightshift_selftest: success" in out
    assert "sync_classicmodels: success" in out
    assert "report_daily_sales: success" in out
    assert "(started by its Assets)" in out
    assert "reddit_sentiment: success" in out
    assert "sentiment_retrain: success" in out
    assert "sentiment_labelling: waiting for a person in Required Actions: 'Label " in out
    assert "/required_actions" in out
    assert "admin / stack-test-password" in out


def test_up_ran_each_dag_once(stack):
    """One run per DAG: a DAG whose scheduled time had come runs the scheduler's run for it (which
    unpausing starts), with make run's note, and is not triggered as well; the others are triggered."""
    client = api(stack)
    started = started_runs(stack["up"].stdout)
    dags = {d["dag_id"] for d in client.get("/api/v2/dags?limit=1000")["dags"]}
    assert set(started) == dags, stack["up"].stdout[-3000:]
    twice = {}
    for dag_id in sorted(dags):
        runs = client.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
        run = next(r for r in runs if r["dag_run_id"] == started[dag_id])
        if run["run_type"] == "asset_triggered":  # more than one when more than one upstream run ends
            continue
        assert run["run_type"] in ("manual", "scheduled"), run
        if dag_id != "sentiment_retrain":  # its note names the champion (test above)
            assert run["note"].startswith("triggered by make run"), run
        if extra := extra_runs(runs, started[dag_id], stack["up_ended"]):
            twice[dag_id] = extra
    assert not twice, f"besides the run make run started, these ran too: {twice}"


def test_a_scheduled_run_is_due_once_its_time_has_come():
    from local_stack import due_logical_date

    def dag(next_run: str | None) -> dict:
        return {"next_dagrun_logical_date": next_run, "next_dagrun_run_after": next_run}

    now = dt.datetime(2026, 12, 6, 11, 47, tzinfo=dt.UTC)
    assert due_logical_date(dag("2026-12-06T11:00:00Z"), now) == "2026-12-06T11:00:00Z"
    assert due_logical_date(dag("2026-12-07T00:00:00Z"), now) is None
    assert due_logical_date(dag(None), now) is None  # schedule=None


def _run(run_id: str, logical_date: str | None, run_after: str) -> dict:
    return {"dag_run_id": run_id, "run_type": run_id.split("__")[0], "logical_date": logical_date,
            "run_after": run_after}  # fmt: skip


def test_extra_runs_tells_a_second_run_from_a_later_scheduled_time():
    """The check above on made-up runs: a manual run beside the one unpausing started for the latest
    scheduled time is a second run; a scheduled time that came while the runs went on is not."""
    until = dt.datetime(2026, 12, 6, 12, 30, tzinfo=dt.UTC)
    manual = _run("manual__a", None, "2026-12-06T11:47:40Z")
    past = _run("scheduled__11", "2026-12-06T11:00:00Z", "2026-12-06T11:00:00Z")
    later = _run("scheduled__12", "2026-12-06T12:00:00Z", "2026-12-06T12:00:00Z")
    afterwards = _run("manual__b", None, "2026-12-06T12:40:00Z")  # another test's, after make run
    assert extra_runs([manual, past, later, afterwards], "manual__a", until) == ["scheduled__11 (scheduled)"]
    assert extra_runs([past, later, afterwards], "scheduled__11", until) == []
    assert extra_runs([manual, past], "scheduled__11", until) == ["manual__a (manual)"]


def test_retraining_registered_a_model_and_mailed_its_decision(stack):
    from mlflow import MlflowClient

    uri = f"sqlite:///{stack['runtime'] / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    versions = {str(v.version): v for v in client.search_model_versions("name = 'sentiment'")}
    # Version 1 is the rule baseline, the first champion; every later one was trained and judged.
    assert (
        versions["1"].tags["nightshift.kind"] == "rules"
        and versions["1"].tags["nightshift.decision"] == "baseline"
    )
    trained = [v for k, v in versions.items() if k != "1"]
    assert trained, "the retraining run registered no trained version"
    subjects = [m["Subject"] for m in read_messages(stack["runtime"] / "mail")]
    for version in trained:
        decision = version.tags["nightshift.decision"]
        assert decision in {"promoted", "rejected"}, version.tags
        assert f"[nightshift] sentiment: v{version.version} {decision} (sentiment_retrain)" in subjects, (
            subjects
        )
    champion = client.get_model_version_by_alias("sentiment", "champion")
    kind = "the rule baseline (VADER)" if champion.version == "1" else "a trained model"
    assert f"Champion: sentiment v{champion.version}, {kind}: " in stack["up"].stdout
    runs = api(stack).get("/api/v2/dags/sentiment_retrain/dagRuns?order_by=-run_after&limit=1")["dag_runs"]
    assert runs[0]["note"].startswith(f"champion: sentiment v{champion.version}, {kind}"), runs[0]


def test_report_landed_on_disk_in_the_mailbox_and_sheets_was_skipped(stack):
    client = api(stack)
    # The sync's Assets start the report's runs (an hour boundary while the stack runs: more than one).
    runs = client.get("/api/v2/dags/report_daily_sales/dagRuns")["dag_runs"]
    assert runs and {r["run_type"] for r in runs} == {"asset_triggered"}
    for run in runs:
        assert wait_for_run(client, "report_daily_sales", run["dag_run_id"]) == "success"
        tis = client.get(f"/api/v2/dags/report_daily_sales/dagRuns/{run['dag_run_id']}/taskInstances")
        states = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}
        assert states == {"build": "success", "to_sheets": "skipped", "email": "success"}
    workbooks = list((stack["runtime"] / "reports" / "daily_sales").glob("*/daily_sales_*.xlsx"))
    assert workbooks, "no workbook written"
    import openpyxl

    # the sample ends yesterday: the daily section has rows, not "No rows for this report date"
    sheet = openpyxl.load_workbook(workbooks[-1], read_only=True)["last_7_days"]
    cells = " ".join(str(c) for row in sheet.iter_rows(values_only=True) for c in row if c is not None)
    assert "No rows" not in cells, cells[:500]
    mails = [m for m in read_messages(stack["runtime"] / "mail")
             if m["Subject"].startswith("[nightshift] Classic Models daily sales")]  # fmt: skip
    assert len(mails) == 1, "one e-mail per report date, however many runs built it"
    attachment = next(mails[0].iter_attachments())
    assert attachment.get_filename().startswith("daily_sales_")
    summary = mails[0].get_body(("html",)).get_content()
    assert "No rows for this report date." not in summary, "the e-mail summary has yesterday's rows"


def test_reddit_rows_were_scraped_and_scored(stack):
    import duckdb
    from support.reddit_expect import SNAPSHOT, expected_counts

    con = duckdb.connect(str(stack["runtime"] / "warehouse.duckdb"), read_only=True)
    try:
        counts = {t: con.execute(f"SELECT COUNT(*) FROM reddit.{t}").fetchone()[0]  # noqa: S608
                  for t in ("posts", "comments", "sentiment")}  # fmt: skip
        daily = con.execute(
            "SELECT scorer, SUM(texts) FROM reddit.daily_sentiment GROUP BY scorer"
        ).fetchall()
        titles = {r[0] for r in con.execute("SELECT title FROM reddit.posts").fetchall()}
        versions = {
            r[0] for r in con.execute("SELECT DISTINCT model_version FROM reddit.sentiment").fetchall()
        }
    finally:
        con.close()
    assert counts == expected_counts(), "every post, comment and text of the snapshot, once"
    totals = dict(daily)  # every text goes through the champion: the rule baseline at least
    assert set(totals) == {"textblob", "vader", "model"} and set(totals.values()) == {counts["sentiment"]}, (
        totals
    )
    assert versions and all(v is not None and v.startswith("sentiment:") for v in versions), versions
    snapshot = json.loads(SNAPSHOT.read_text())["subreddits"]
    assert {p["title"] for posts in snapshot.values() for p in posts} == titles


def test_ui_is_served(stack):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{stack['env']['NIGHTSHIFT_PORT']}/", timeout=10) as resp:
        page = resp.read().decode()
    assert resp.status == 200 and "<title>Airflow" in page, page[:500]


def test_admin_login_works_and_wrong_password_is_refused(stack):
    client = api(stack)
    assert client.get("/api/v2/dags")["total_entries"] >= 1
    with pytest.raises(RuntimeError, match="HTTP 401"):
        api(stack, password="wrong")
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{stack['env']['NIGHTSHIFT_PORT']}/api/v2/dags", timeout=10)
    assert info.value.code in (401, 403), "the API must not be open without a token"


def test_selftest_run_is_visible_and_sent_mail(stack):
    client = api(stack)
    run_id = started_runs(stack["up"].stdout)["nightshift_selftest"]
    run = client.get(f"/api/v2/dags/nightshift_selftest/dagRuns/{run_id}")
    assert run["state"] == "success" and run["run_type"] in ("manual", "scheduled"), run
    subjects = [m["Subject"] for m in read_messages(stack["runtime"] / "mail")]
    assert f"[nightshift] self-test OK: {run_id}" in subjects, subjects


def test_failure_sends_an_alert_through_the_catcher(stack):
    client = api(stack)
    run = client.post(
        "/api/v2/dags/nightshift_selftest/dagRuns", {"logical_date": None, "conf": {"fail": True}}
    )
    assert wait_for_run(client, "nightshift_selftest", run["dag_run_id"]) == "failed"
    tis = client.get(f"/api/v2/dags/nightshift_selftest/dagRuns/{run['dag_run_id']}/taskInstances")
    states = {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in tis["task_instances"]}
    assert states["maybe_fail"] == ("failed", 1), "AirflowFailException must not be retried"
    deadline = time.monotonic() + 30
    alerts = []
    while time.monotonic() < deadline and not alerts:
        alerts = [
            m
            for m in read_messages(stack["runtime"] / "mail")
            if m["Subject"] == "[nightshift] FAILED nightshift_selftest.maybe_fail (try 1)"
            and run["dag_run_id"] in m.get_body(("html",)).get_content()
        ]
        time.sleep(1)
    (alert,) = alerts
    html = alert.get_body(("html",)).get_content()
    assert "AirflowFailException: self-test failure requested" in html
    assert f"http://127.0.0.1:{stack['env']['NIGHTSHIFT_PORT']}/dags/nightshift_selftest/runs/" in html


def xcom(client, dag_id: str, run_id: str, task_id: str) -> dict:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    value = client.get(path)["value"]
    return json.loads(value) if isinstance(value, str) else value


def warehouse_query(stack, sql: str, timeout: float = 60) -> list[tuple]:
    """``sql`` on the stack's DuckDB file, read-only; retried while a task holds the write lock."""
    import duckdb

    deadline = time.monotonic() + timeout
    while True:
        try:
            con = duckdb.connect(str(stack["runtime"] / "warehouse.duckdb"), read_only=True)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
            continue
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


def test_a_labelling_request_waits_and_its_answers_land_in_ml_labels(stack):
    from support.labelling import answer, open_requests

    from nightshift_core.ml.labels import text_key

    client = api(stack)
    waiting = open_requests(client)
    assert len(waiting) == 1, "one open request at a time (max_active_runs=1)"
    (request,) = waiting
    ti = request["task_instance"]
    assert ti["task_id"] == "label_texts"
    params = request["params"]
    assert 1 <= len(params) <= 12 and request["options"] == ["OK"]
    texts = {name: p["description"] for name, p in params.items()}
    answers = ["positive", "neutral", "negative", "skip"]
    for name, param in params.items():
        assert param["value"] == "skip" and param["schema"]["enum"] == answers
        assert "description_md" not in param["schema"], "texts are plain text, never Markdown"
        assert texts[name] not in (request["body"] or ""), "no scraped text in the Markdown body"
    fields = sorted(params)
    labelled = dict(zip(fields, ["positive", "negative"], strict=False))
    run_id = ti["dag_run_id"]
    response = answer(client, request, labelled)
    assert response["responded_by"] == {"id": "admin", "name": "admin"}
    with pytest.raises(RuntimeError, match="HTTP 409"):
        answer(client, request, labelled)  # answered once only
    assert wait_for_run(client, "sentiment_labelling", run_id) == "success"
    stored = xcom(client, "sentiment_labelling", run_id, "store_labels")
    assert stored["labels"] == len(labelled) and stored["labelled_by"] == "admin", stored
    rows = warehouse_query(
        stack,
        "SELECT example_id, text, label, source, labelled_by, labelled_at, first_seen_at FROM ml.labels "
        "WHERE source = 'airflow-ui' ORDER BY example_id",
    )
    expected = sorted((f"ui:{text_key(texts[n])[:16]}", texts[n], label) for n, label in labelled.items())
    assert [r[:3] for r in rows] == expected
    assert all(r[3:5] == ("airflow-ui", "admin") and r[5] is not None and r[5] == r[6] for r in rows), rows

    # the next retrain counts them: its plan sees every label, the UI ones among the new
    run = client.post(
        "/api/v2/dags/sentiment_retrain/dagRuns", {"logical_date": None, "note": "after labelling"}
    )
    assert wait_for_run(client, "sentiment_retrain", run["dag_run_id"], timeout=600) == "success"
    plan = xcom(client, "sentiment_retrain", run["dag_run_id"], "plan")
    (total,) = warehouse_query(stack, "SELECT COUNT(*) FROM ml.labels")[0]
    assert plan["human_labels"] == total and plan["new_labels"] >= len(labelled), plan
