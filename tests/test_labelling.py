"""Labelling in the Airflow UI: labelling.yaml, which texts are picked, the form, and the answers
landing in a real DuckDB ``ml.labels`` that the next retrain plan counts.

The request itself (``label_texts`` waiting under Required Actions, answered over the REST API)
runs in the local stack: tests/test_local_stack.py. Here the operator's resume path runs with
the event Airflow hands it, as the scheduler does after a response.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.ml import Run
from support.parse_guard import no_io_while_parsing
from test_retrain import env  # noqa: F401 - the fixture: real DuckDB warehouse and MLflow in tmp_path

from nightshift_core.ml.labelling import (
    ANSWERS,
    CONFIG_PATH,
    LabellingConfigError,
    LabelRequestError,
    Weights,
    answered_rows,
    form_fields,
    label_records,
    load,
    pick_differences,
    pick_texts,
    reasons,
    recorded_picks,
    recorded_response,
    request_rows,
    xcom_differences,
)
from nightshift_core.ml.labels import text_key

ROOT = Path(__file__).resolve().parents[1]
DAG_FILE = ROOT / "dags" / "sentiment_labelling.py"
SHIPPED = yaml.safe_load(CONFIG_PATH.read_text())
END = dt.datetime(2026, 11, 20, 2, tzinfo=dt.UTC)
HOSTILE = '<img src=x onerror="alert(1)"> **bold** [click](javascript:alert(2)) | table |'


def row(text_id: str, text: str, subreddit: str = "python", **scores: Any) -> dict[str, Any]:
    values = {"vader_label": "neutral", "textblob_label": "neutral", "model_label": None,
              "vader_compound": 0.9, "model_score": None, "kind": "comment"}  # fmt: skip
    return {"text_id": text_id, "text": text, "subreddit": subreddit, **values, **scores}


# ---- labelling.yaml ------------------------------------------------------------------------------


def test_shipped_config_is_valid():
    cfg = load()
    assert cfg.dag_id == "sentiment_labelling" and cfg.after_assets == ("reddit.sentiment",)
    assert cfg.schedule is None and cfg.items == 12 and cfg.dataset == "ml"
    assert cfg.assigned_users == () and cfg.notify.email is True and cfg.response_timeout_hours == 20
    assert cfg.assigned_roles == ("Labeller",)


def write(tmp_path: Path, **changes: Any) -> Path:
    data = {k: v for k, v in {**SHIPPED, **changes}.items() if v is not ...}
    path = tmp_path / "labelling.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"itemz": 3}, r"unknown key\(s\) \['itemz'\] in the top level"),
        ({"items": 0}, r"items must be a whole number from 1 to 50, got 0"),
        ({"items": 2.5}, r"items must be a whole number"),
        ({"schedule": "@daily"}, r"give either schedule \(a cron string\) or after_assets, not both"),
        ({"after_assets": "reddit.sentiment"}, r"after_assets must be a list of Asset names"),
        ({"response_timeout_hours": 0}, r"response_timeout_hours must be a number from 0.01"),
        ({"assigned_users": [{"name": "Alice"}]}, r"assigned_users\[0\] must be a mapping with 'id'"),
        ({"assigned_users": [{"id": "alice", "role": "x"}]}, r"unknown key\(s\) \['role'\] in assigned_users\[0\]"),
        ({"assigned_roles": "Labeller"}, r"assigned_roles must be a list of role names, e.g. \[Labeller\]"),
        ({"assigned_roles": [""]}, r"assigned_roles must be a list of role names"),
        ({"notify": {"email": "yes"}}, r"notify.email must be true or false"),
        ({"notify": {"mail": True}}, r"unknown key\(s\) \['mail'\] in notify"),
        ({"weights": {"disagreement": 0, "uncertainty": 0, "new_words": 0}}, r"at least one of them"),
        ({"weights": {"novelty": 1}}, r"unknown key\(s\) \['novelty'\] in weights"),
        ({"min_chars": 50, "max_chars": 10}, r"max_chars \(10\) is below min_chars \(50\)"),
        ({"dataset": "bad-name"}, r"dataset: invalid dataset name"),
    ],
)  # fmt: skip
def test_bad_config_names_file_key_and_fix(tmp_path, changes, message):
    path = write(tmp_path, **changes)
    with pytest.raises(LabellingConfigError, match=message) as info:
        load(path)
    assert str(info.value).startswith(str(path))


def test_a_schedule_instead_of_assets_and_assigned_users(tmp_path):
    cfg = load(write(tmp_path, after_assets=..., schedule="0 7 * * *", assigned_users=[{"id": "alice"}]))
    assert cfg.schedule == "0 7 * * *" and cfg.after_assets == ()
    assert cfg.assigned_users == ({"id": "alice", "name": "alice"},)


def test_bad_config_is_the_dag_import_error(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("NIGHTSHIFT_LABELLING_CONFIG", str(write(tmp_path, items=500)))
    with no_io_while_parsing():
        bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.dag_ids == []
    (error,) = bag.import_errors.values()
    assert "LabellingConfigError" in error and "items must be a whole number from 1 to 50" in error


# ---- which texts ---------------------------------------------------------------------------------


def test_each_reason_counts():
    assert reasons(row("a", "calm words here"), set()) == {"disagreement": 0.0, "uncertainty": 0.1,
                                                           "new_words": 1.0}  # fmt: skip
    split = row("b", "calm words", vader_label="positive", textblob_label="negative", model_label="neutral")
    assert reasons(split, {"calm", "words"})["disagreement"] == 1.0
    half = row("c", "calm words", vader_label="positive", textblob_label="positive", model_label="neutral")
    assert reasons(half, {"calm"}) == {"disagreement": 0.5, "uncertainty": 0.1, "new_words": 0.5}
    # the champion's score decides how sure "the champion" is once there is one
    assert reasons(row("d", "x", vader_compound=0.95, model_score=0.1), set())["uncertainty"] == 0.9
    assert reasons(row("e", "x", vader_compound=-0.2, model_score=None), set())["uncertainty"] == 0.8


def test_picks_where_labels_help_most_first():
    rows = [
        row("t1_sure", "I love it so much", vader_label="positive", textblob_label="positive", vader_compound=0.95),
        row("t1_split", "I love it so much, not", vader_label="positive", textblob_label="negative",
            vader_compound=0.95),
        row("t1_unsure", "I love it so much maybe", vader_label="positive", textblob_label="positive",
            vader_compound=0.05),
    ]  # fmt: skip
    known = ["I love it so much, not maybe"]  # every word is known: only disagreement and certainty count
    picks = pick_texts(rows, labelled_texts=known, n=2)
    assert [p.text_id for p in picks] == ["t1_split", "t1_unsure"], "the sure, agreed text is left out"
    assert picks[0].priority == pytest.approx(1.05) and picks[1].priority == pytest.approx(0.95)
    assert [p.field for p in picks] == ["text_01", "text_02"]
    new_words = [row("t1_a", "plain known words"), row("t1_b", "plain zorblax words")]
    picks = pick_texts(new_words, labelled_texts=["plain known words"], n=1, weights=Weights(1, 0, 1))
    assert [p.text_id for p in picks] == ["t1_b"]


def test_one_per_text_none_already_labelled_and_sizes_kept():
    rows = [
        row("t1_a", "Same  Text here"), row("t1_b", "same text HERE", vader_compound=0.0),
        row("t1_c", "Labelled already"), row("t1_d", "ok"), row("t1_e", "x" * 1001), row("t1_f", "fresh one"),
    ]  # fmt: skip
    picks = pick_texts(rows, labelled_texts=["labelled   ALREADY"], n=10)
    assert sorted(p.text_id for p in picks) == ["t1_b", "t1_f"], "the surer duplicate, the labelled text, "
    "the too short and the too long text are not asked"
    (dup,) = [p for p in picks if p.text_id == "t1_b"]
    assert dup.key == text_key("same text here")[:16] and dup.example_id == f"ui:{dup.key}"


def test_spread_across_subreddits_and_the_same_for_any_order():
    rows = [row(f"t1_p{i}", f"python text {i}", "python", vader_compound=0.0) for i in range(6)]
    rows += [row(f"t1_s{i}", f"shower text {i}", "showerthoughts", vader_compound=0.5) for i in range(3)]
    rows += [row("t1_d0", "pipeline text", "dataengineering", vader_compound=0.8)]
    picks = pick_texts(rows, labelled_texts=[], n=5)
    assert [p.subreddit for p in picks] == ["python", "showerthoughts", "dataengineering", "python",
                                            "showerthoughts"]  # fmt: skip
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert pick_texts(shuffled, labelled_texts=[], n=5) == picks


# ---- the form and its answers --------------------------------------------------------------------


def test_the_form_shows_each_text_as_plain_text_with_four_answers():
    from airflow.sdk import Param
    from airflow.sdk.definitions.param import ParamsDict

    (pick,) = pick_texts([row("t1_x", HOSTILE, "python")], labelled_texts=[], n=1)
    fields = form_fields([pick])
    field = fields["text_01"]
    assert field["description"] == HOSTILE, "shown as-is: the UI renders description as plain text"
    assert "description_md" not in field
    assert field["enum"] == list(ANSWERS) == ["positive", "neutral", "negative", "skip"]
    assert field["default"] == "skip" and field["title"] == "1/1 · r/python · comment"
    params = ParamsDict(
        {"text_01": Param(field.pop("default"), description=field.pop("description"), **field)}
    )
    params.validate()
    with pytest.raises(ValueError):  # noqa: PT011 - ParamValidationError subclasses ValueError
        params["text_01"] = "happy"


def test_answers_become_labels_and_skips_do_not():
    picks = pick_texts([row(f"t1_{i}", f"text number {i}") for i in range(3)], labelled_texts=[], n=3)
    at = END + dt.timedelta(hours=5)
    answers = {"text_01": "positive", "text_02": "skip", "text_03": "negative"}
    records = label_records(picks, answers, responded_by={"id": "alice", "name": "alice"}, responded_at=at)
    assert [(r["example_id"], r["label"]) for r in records] == [
        (picks[0].example_id, "positive"), (picks[2].example_id, "negative")
    ]  # fmt: skip
    assert {(r["source"], r["labelled_by"], r["labelled_at"], r["first_seen_at"]) for r in records} == {
        ("airflow-ui", "alice", at, at)
    }
    named = label_records(picks[:1], answers, responded_by={"id": "7", "name": "Alice"}, responded_at=at)
    assert named[0]["labelled_by"] == "Alice (7)"
    # a timed-out request took its defaults: nobody answered, nothing is a label
    assert label_records(picks, answers, responded_by=None, responded_at=at) == []
    with pytest.raises(ValueError, match="answer 'great' for text_01 is not one of"):
        label_records(picks, {"text_01": "great"}, responded_by={"id": "alice"}, responded_at=at)


def test_a_recorded_request_and_how_an_xcom_differs_from_it():
    picks = pick_texts([row(f"t1_{i}", f"text number {i}") for i in range(2)], labelled_texts=[], n=2)
    at = END + dt.timedelta(hours=5)
    rows = request_rows("sentiment_labelling/r1", picks, END)
    assert recorded_picks(reversed(rows)) == picks, "the record gives the picks back, in form order"
    with pytest.raises(LabelRequestError, match="request 'sentiment_labelling/r1' has no recorded answer"):
        recorded_response("sentiment_labelling/r1", "ml.label_requests", rows)
    rows = answered_rows(
        rows, {"text_01": "positive", "text_02": "skip"}, responded_by=ALICE, responded_at=at
    )
    response = recorded_response("sentiment_labelling/r1", "ml.label_requests", rows)
    assert response == ({"text_01": "positive", "text_02": "skip"}, ALICE, at)
    xcoms = [p.to_dict() for p in picks], {"params_input": response[0], "responded_by_user": ALICE,
                                            "responded_at": at.isoformat()}  # fmt: skip
    assert xcom_differences(rows, response, *xcoms) == [], "the honest XComs, the time as ISO text too"
    extra = [*xcoms[0][1:], {**xcoms[0][0], "field": "text_03"}]
    assert pick_differences(rows, extra) == ["pick_texts text_03: not recorded",
                                             "pick_texts text_01: recorded, not in the XCom"]  # fmt: skip
    assert pick_differences(rows, None) == ["pick_texts: XCom None is not a list of picks"]
    assert xcom_differences(rows, response, xcoms[0], None) == [
        "label_texts: XCom None is not the recorded response"
    ]
    timed_out = answered_rows(rows, {}, responded_by=None, responded_at=at)
    assert recorded_response("r", "t", timed_out) == ({"text_01": "skip", "text_02": "skip"}, None, at)


@pytest.mark.usefixtures("env")
def test_the_resumed_form_rejects_an_answer_outside_the_four_and_a_missing_field():
    from nightshift.operators.labelling import LabelTextsOperator, PickTextsOperator

    scrape({"python": ["one text", "two text"]}, END)
    run = Run("sentiment_labelling", END)
    run.run(PickTextsOperator(task_id="pick_texts", config=load()))
    ask = LabelTextsOperator(task_id="label_texts", config=load())
    event = {"chosen_options": ["OK"], "responded_by_user": {"id": "alice", "name": "alice"},
             "responded_at": END, "timedout": False}  # fmt: skip
    with pytest.raises(ValueError, match="happy"):
        ask.execute_complete(run.context("label_texts"), {**event, "params_input": {"text_01": "happy",
                                                                                     "text_02": "skip"}})  # fmt: skip
    with pytest.raises(ValueError, match="does not match params"):
        ask.execute_complete(run.context("label_texts"), {**event, "params_input": {"text_01": "positive"}})
    done = ask.execute_complete(
        run.context("label_texts"), {**event, "params_input": {"text_01": "positive", "text_02": "skip"}}
    )
    assert (
        done["responded_by_user"] == {"id": "alice", "name": "alice"}
        and done["params_input"]["text_01"] == "positive"
    )


# ---- the DAG -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    with no_io_while_parsing():
        bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["sentiment_labelling"]


def test_dag_shape(dag):
    from airflow.providers.standard.operators.hitl import HITLEntryOperator

    from nightshift.operators.labelling import LabelRequestNotifier

    assert dag.catchup is False and dag.max_active_runs == 1
    assert "AssetTriggeredTimetable" in type(dag.timetable).__name__
    assert [t.task_id for t in dag.topological_sort()] == ["pick_texts", "label_texts", "store_labels"]
    ask = dag.get_task("label_texts")
    assert isinstance(ask, HITLEntryOperator) and ask.options == ["OK"] and ask.defaults == ["OK"]
    assert ask.response_timeout == dt.timedelta(hours=20) and ask.execution_timeout is not None
    assert ask.assigned_users is None, "empty assigned_users: anyone allowed to act on the DAG"
    assert [type(n) for n in ask.notifiers] == [LabelRequestNotifier]
    assert "Required Actions" in dag.doc_md


# ---- end to end in-process: real DuckDB, real MLflow, the operators' own code ---------------------


def scrape(texts: dict[str, list[str]], at: dt.datetime) -> None:
    """Store ``texts`` (per subreddit) as scored top-level comments, scraped and scored at ``at``."""
    import pyarrow as pa

    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift_core.reddit.records import COMMENT_SCHEMA, POST_SCHEMA, SENTIMENT_SCHEMA
    from nightshift_core.sentiment.rules import score_texts
    from nightshift_core.warehouse import JobKey, TableRef

    comments, sentiment = [], []
    for subreddit, bodies in texts.items():
        for i, (body, scores) in enumerate(zip(bodies, score_texts(bodies), strict=True)):
            name = f"t1_{subreddit}{i}"
            comments.append({"fullname": name, "subreddit": subreddit, "body": body, "status": "visible",
                             "depth": 0, "scraped_at": at})  # fmt: skip
            sentiment.append({**scores, "text_id": f"{name}:body", "fullname": name, "subreddit": subreddit,
                              "kind": "comment", "scored_at": at})  # fmt: skip
    with WarehouseHook().get_conn() as wh:
        for table, schema, rows in (("posts", POST_SCHEMA, []), ("comments", COMMENT_SCHEMA, comments),
                                    ("sentiment", SENTIMENT_SCHEMA, sentiment)):  # fmt: skip
            batch = pa.RecordBatch.from_pylist(
                [{n: r.get(n) for n in schema.names} for r in rows], schema=schema
            )
            wh.publish(wh.stage(JobKey("test", table, at.isoformat(), 1), TableRef("reddit", table), [batch],
                                schema), "merge", key=schema.names[:1])  # fmt: skip


def labels_table() -> list[dict[str, Any]]:
    from nightshift.hooks.warehouse import WarehouseHook

    with WarehouseHook().get_conn() as wh:
        return wh.query("SELECT * FROM ml.labels ORDER BY example_id").to_pylist()


def answered_run(at: dt.datetime, answer: dict[str, str] | None, user: dict[str, str] | None) -> Run:
    """pick_texts, then label_texts resumed with the response event Airflow's server builds from its
    HITL record (``answer``: field -> label; None: the request timed out and took its defaults)."""
    from nightshift.operators.labelling import LabelTextsOperator, PickTextsOperator

    cfg = load()
    run = Run("sentiment_labelling", at, run_id=f"asset_triggered__{at.isoformat()}")
    picks = run.run(PickTextsOperator(task_id="pick_texts", config=cfg))
    ask = LabelTextsOperator(task_id="label_texts", config=cfg)
    answers = {p["field"]: "skip" for p in picks} | (answer or {})
    event = {"chosen_options": ["OK"], "params_input": answers, "responded_by_user": user,
             "responded_at": at + dt.timedelta(minutes=30), "timedout": answer is None}  # fmt: skip
    run.xcom["label_texts"] = ask.execute_complete(run.context("label_texts"), event)
    assert (
        set(ask.params) == set(answers)
        and ask.subject == f"Label {len(picks)} scraped texts for the sentiment model"
    )
    return run


def labelling_run(at: dt.datetime, answer: dict[str, str] | None, user: dict[str, str] | None) -> Run:
    """:func:`answered_run`, then store_labels."""
    from nightshift.operators.labelling import StoreLabelsOperator

    run = answered_run(at, answer, user)
    run.run(StoreLabelsOperator(task_id="store_labels", config=load()))
    return run


@pytest.mark.usefixtures("env")
def test_answers_land_in_ml_labels_and_the_next_retrain_plan_counts_them():
    from test_retrain import config, flow

    from nightshift.operators.retrain import LabelsToWarehouseOperator, RetrainPlanOperator

    retrain = config(gate={"min_f1_gain": -1.0})
    flow(retrain)  # a champion trained on the label file as of END
    scrape({"python": [HOSTILE, "The GIL is fine, honestly", "I hate segfaults so much", "meh, tabs"],
            "dataengineering": ["Airflow 3 is out!", "My pipeline broke again", "dbt or not dbt?"],
            "showerthoughts": ["Socks are tiny sleeping bags for feet", "Nobody has ever been older"]},
           END + dt.timedelta(hours=1))  # fmt: skip
    run = labelling_run(END + dt.timedelta(hours=2), None, None)  # nobody answered: nothing stored
    assert run.xcom["store_labels"]["labels"] == 0 and run.xcom["store_labels"]["labelled_by"] is None
    assert {r["source"] for r in labels_table()} == {"sentiment_labels.csv"}

    run = labelling_run(END + dt.timedelta(hours=3), {"text_01": "negative", "text_02": "positive",
                                                      "text_03": "neutral"}, {"id": "alice", "name": "alice"})  # fmt: skip
    picked = {p["field"]: p for p in run.xcom["pick_texts"]}
    assert len(picked) == 9, "every scraped text, none of the file's labels"
    assert len({p["subreddit"] for p in run.xcom["pick_texts"][:3]}) == 3, "spread across subreddits"
    answered_at = END + dt.timedelta(hours=3, minutes=30)
    assert run.xcom["store_labels"] == {"asked": 9, "labels": 3, "labelled_by": "alice",
                                        "answered_at": answered_at.isoformat()}  # fmt: skip
    ui = [r for r in labels_table() if r["source"] == "airflow-ui"]
    assert [(r["example_id"], r["label"], r["text"]) for r in ui] == sorted(
        (f"ui:{text_key(picked[f]['text'])[:16]}", label, picked[f]["text"])
        for f, label in (("text_01", "negative"), ("text_02", "positive"), ("text_03", "neutral"))
    )
    assert {(r["labelled_by"], r["labelled_at"], r["first_seen_at"], r["rating"]) for r in ui} == {
        ("alice", answered_at, answered_at, None)
    }
    # the next request does not ask about the labelled texts again
    again = Run("sentiment_labelling", END + dt.timedelta(hours=4))
    from nightshift.operators.labelling import PickTextsOperator

    repicked = again.run(PickTextsOperator(task_id="pick_texts", config=load()))
    assert len(repicked) == 6 and not {p["text"] for p in repicked} & {r["text"] for r in ui}

    # the next retrain: the file loader leaves the UI labels alone, the plan counts them as new
    day2 = Run("sentiment_retrain", END + dt.timedelta(days=1))
    day2.run(LabelsToWarehouseOperator(task_id="load_labels", config=retrain))
    plan = day2.run(RetrainPlanOperator(task_id="plan", config=retrain))
    assert plan["new_labels"] == 3 and plan["human_labels"] == 303, plan
    assert f"3 new labels since champion v{plan['champion_version']} (< 50)" in plan["reason"], plan["reason"]
    assert len([r for r in labels_table() if r["source"] == "airflow-ui"]) == 3


@pytest.mark.usefixtures("env")
def test_a_retried_store_keeps_the_first_time_and_an_empty_warehouse_asks_nothing():
    from airflow.sdk.exceptions import AirflowSkipException

    from nightshift.operators.labelling import PickTextsOperator, StoreLabelsOperator

    with pytest.raises(AirflowSkipException, match="no reddit.posts/comments/sentiment tables yet"):
        Run("sentiment_labelling", END).run(PickTextsOperator(task_id="pick_texts", config=load()))
    scrape({"python": ["first text", "second text"]}, END)
    run = labelling_run(END + dt.timedelta(hours=1), {"text_01": "positive"}, {"id": "bob", "name": "bob"})
    first = labels_table()
    run.run(StoreLabelsOperator(task_id="store_labels", config=load()))  # a retry of the same task
    assert labels_table() == first and len(first) == 1 and first[0]["labelled_by"] == "bob"
    run = labelling_run(END + dt.timedelta(hours=2), {"text_01": "negative"}, {"id": "bob", "name": "bob"})
    assert len(labels_table()) == 2
    with pytest.raises(AirflowSkipException, match="every recent scraped text is labelled"):
        Run("sentiment_labelling", END + dt.timedelta(hours=3)).run(
            PickTextsOperator(task_id="pick_texts", config=load())
        )


# ---- an edited XCom stores nothing -----------------------------------------------------------------

FORGED = "Forged: a text nobody was asked about"
ALICE = {"id": "alice", "name": "alice"}


def ui_labels() -> list[tuple[str, str, str]]:
    """(text, label, labelled_by) of every label given in the UI."""
    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift_core.warehouse import TableRef

    with WarehouseHook().get_conn() as wh:
        if not wh.table_exists(TableRef("ml", "labels")):
            return []
    return sorted(
        (r["text"], r["label"], r["labelled_by"]) for r in labels_table() if r["source"] == "airflow-ui"
    )


def forge_pick(xcom: dict[str, Any]) -> None:
    xcom["pick_texts"][0] |= {"text": FORGED, "key": text_key(FORGED)[:16]}


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    ("forge", "differences"),
    [
        (lambda x: x["label_texts"].update(responded_by_user={"id": "mallory", "name": "mallory"}),
         [r"label_texts: responded_by_user 'mallory' in the XCom, 'alice' recorded"]),
        (lambda x: x["label_texts"]["params_input"].update(text_01="positive"),
         [r"label_texts text_01: answer 'positive' in the XCom, 'negative' recorded"]),
        (lambda x: x["label_texts"]["params_input"].update(text_02="negative"),
         [r"label_texts text_02: answer 'negative' in the XCom, 'skip' recorded"]),
        (lambda x: x["label_texts"].update(responded_at=END - dt.timedelta(days=30)),
         [r"label_texts: responded_at '2026-10-21T02:00:00\+00:00' in the XCom, '2026-11-20T05:30:00\+00:00' recorded"]),
        (forge_pick, [r"pick_texts text_01: key '[0-9a-f]{16}' in the XCom, '[0-9a-f]{16}' recorded",
                      r"pick_texts text_01: text 'Forged: a text nobody was asked about' in the XCom, '.*' recorded"]),
        (lambda x: [forge_pick(x), x["label_texts"].update(responded_by_user={"id": "mallory", "name": "m"}),
                    x["label_texts"]["params_input"].update(text_01="positive")],
         [r"pick_texts text_01: text 'Forged", r"responded_by_user 'm \(mallory\)' in the XCom",
          r"label_texts text_01: answer 'positive'"]),
    ],
    ids=["labelled_by", "label", "skip_made_a_label", "answered_at", "text", "text_label_and_labeller"],
)  # fmt: skip
def test_edited_xcoms_store_nothing_and_fail_naming_each_difference(forge, differences):
    """An Op edits the XComs of pick_texts / label_texts and clears store_labels: the labels come
    from the request recorded in ml.label_requests, and the edit fails the task, storing nothing."""
    import copy

    from airflow.sdk.exceptions import AirflowFailException

    from nightshift.operators.labelling import StoreLabelsOperator

    scrape({"python": ["The GIL is fine, honestly", "meh, tabs"], "showerthoughts": ["Socks are tiny"]}, END)
    run = answered_run(END + dt.timedelta(hours=3), {"text_01": "negative"}, ALICE)
    honest = copy.deepcopy(run.xcom)
    forge(run.xcom)
    with pytest.raises(AirflowFailException) as info:
        run.run(StoreLabelsOperator(task_id="store_labels", config=load()))
    message = str(info.value)
    assert message.startswith(f"LabelRequestError: sentiment_labelling/{run.run_id}: the XComs differ from the "
                              "request recorded in ml.label_requests: ")  # fmt: skip
    for difference in differences:
        assert re.search(difference, message), (difference, message)
    assert "Nothing was stored" in message and "clear label_texts to ask again" in message
    assert ui_labels() == [], "nothing stored"
    run.xcom = honest  # the record was never touched: the honest XComs store alice's answer
    run.run(StoreLabelsOperator(task_id="store_labels", config=load()))
    assert ui_labels() == [(honest["pick_texts"][0]["text"], "negative", "alice")]


@pytest.mark.usefixtures("env")
def test_a_response_xcom_for_a_request_nobody_answered_stores_nothing():
    """label_texts marked successful by hand, a response XCom written for it: no recorded answer."""
    from airflow.sdk.exceptions import AirflowFailException

    from nightshift.operators.labelling import PickTextsOperator, StoreLabelsOperator

    scrape({"python": ["The GIL is fine, honestly"]}, END)
    run = Run("sentiment_labelling", END + dt.timedelta(hours=1))
    run.run(PickTextsOperator(task_id="pick_texts", config=load()))
    run.xcom["label_texts"] = {"chosen_options": ["OK"], "params_input": {"text_01": "positive"},
                               "responded_by_user": ALICE, "responded_at": END + dt.timedelta(hours=2)}  # fmt: skip
    with pytest.raises(AirflowFailException, match=r"ml.label_requests: request 'sentiment_labelling/.*' has no "
                       r"recorded answer.*Nothing was stored; clear label_texts to ask again"):  # fmt: skip
        run.run(StoreLabelsOperator(task_id="store_labels", config=load()))
    assert ui_labels() == []


@pytest.mark.usefixtures("env")
def test_an_edited_pick_xcom_fails_the_form_and_a_re_pick_keeps_the_recorded_texts():
    import copy

    from airflow.sdk.exceptions import AirflowFailException

    from nightshift.operators.labelling import LabelTextsOperator, PickTextsOperator

    scrape({"python": ["The GIL is fine, honestly", "meh, tabs"]}, END)
    run = Run("sentiment_labelling", END + dt.timedelta(hours=1))
    picked = copy.deepcopy(run.run(PickTextsOperator(task_id="pick_texts", config=load())))
    forge_pick(run.xcom)
    ask = LabelTextsOperator(task_id="label_texts", config=load())
    event = {"chosen_options": ["OK"], "params_input": {"text_01": "positive", "text_02": "skip"},
             "responded_by_user": ALICE, "responded_at": END + dt.timedelta(hours=2), "timedout": False}  # fmt: skip
    with pytest.raises(AirflowFailException, match=r"the XCom of pick_texts differs from the picks recorded in "
                       r"ml.label_requests: pick_texts text_01: key .* text 'Forged: a text"):  # fmt: skip
        ask.execute_complete(run.context("label_texts"), event)
    # pick_texts cleared and run again (new scraped texts meanwhile): the request keeps its texts
    scrape({"python": ["Brand new text that would rank first now"]}, END + dt.timedelta(hours=1))
    assert run.run(PickTextsOperator(task_id="pick_texts", config=load())) == picked
    assert ask.execute_complete(run.context("label_texts"), event)["params_input"]["text_01"] == "positive"


@pytest.mark.usefixtures("env")
def test_the_request_e_mail_links_to_required_actions_and_names_no_text(monkeypatch):
    from support.smtp import mailbox

    from nightshift.operators.labelling import LabelRequestNotifier, LabelTextsOperator

    with mailbox(monkeypatch) as handler:
        monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.test:8080")
        shipped = load()
        cfg = shipped.model_copy(
            update={"notify": shipped.notify.model_copy(update={"to": "labellers@nightshift.test"})}
        )
        ask = LabelTextsOperator(task_id="label_texts", config=cfg)
        run = Run("sentiment_labelling", END)
        run.xcom["pick_texts"] = [
            p.to_dict() for p in pick_texts([row("t1_x", HOSTILE)], labelled_texts=[], n=1)
        ]
        context = run.context("label_texts")
        context |= {"task": ask, "task_instance": context["ti"]}
        (notifier,) = ask.notifiers
        assert isinstance(notifier, LabelRequestNotifier)
        notifier.notify(context)
    (received,) = handler.messages
    message = received.message
    assert received.rcpt_tos == ["labellers@nightshift.test"]
    assert message["Subject"] == "[nightshift] 1 texts to label (sentiment_labelling)"
    url = (f"http://airflow.test:8080/dags/sentiment_labelling/runs/{run.run_id}/tasks/label_texts/"
           "required_actions?map_index=-1")  # fmt: skip
    assert url in message.get_body(("plain",)).get_content()
    assert "onerror" not in message.as_string()
