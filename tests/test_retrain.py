"""The retraining steps end to end in-process: real DuckDB warehouse, real MLflow (SQLite
store, local artifacts), real torch training on the embedded labels; the DAG's shape and Params;
and the scoring task loading the champion."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from support.ml import Run, use_mlflow
from support.smtp import mailbox

from nightshift_core.ml.config import CONFIG_PATH, RetrainConfig, load

ROOT = Path(__file__).resolve().parents[1]
END = dt.datetime(2026, 11, 20, 2, tzinfo=dt.UTC)
LABELS = ROOT / "include" / "data" / "sentiment_labels.csv"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE",
        json.dumps(
            {"conn_type": "generic", "extra": {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")}}
        ),
    )
    monkeypatch.delenv("NIGHTSHIFT_LABELS_DIR", raising=False)
    use_mlflow(monkeypatch, tmp_path / "mlflow")
    return tmp_path


def config(model: dict[str, Any] | None = None, **sections: dict[str, Any]) -> RetrainConfig:
    """The shipped config with settings of its sections changed (``gate={"min_f1_gain": -1.0}``) and of
    ``model``; without the tweet labels unless ``labels={"tweets": ...}`` gives them (the embedded
    labels' folder has no tweet file, and a missing tweet check set rejects every challenger)."""
    base = load(CONFIG_PATH)
    sections["labels"] = {"tweets": None} | sections.get("labels", {})
    changed = {name: getattr(base, name).model_copy(update=values) for name, values in sections.items()}
    return base.model_copy(update={**changed, "model": dataclasses.replace(base.model, **(model or {}))})


def steps(cfg: RetrainConfig) -> dict[str, Any]:
    from nightshift.operators import retrain as r

    return {
        "load_labels": r.LabelsToWarehouseOperator(task_id="load_labels", config=cfg),
        "plan": r.RetrainPlanOperator(task_id="plan", config=cfg),
        "train": r.TrainSentimentModelOperator(task_id="train", config=cfg),
        "evaluate": r.EvaluateSentimentModelsOperator(task_id="evaluate", config=cfg),
        "promote": r.PromoteSentimentModelOperator(task_id="promote", config=cfg),
    }


def flow(cfg: RetrainConfig, end: dt.datetime = END, **params: Any) -> Run:
    run = Run("sentiment_retrain", end, params)
    for op in steps(cfg).values():
        run.run(op)
    return run


def registry(cfg: RetrainConfig):
    from nightshift.hooks.mlflow import MlflowRegistryHook

    return MlflowRegistryHook(cfg.mlflow_conn_id, cfg.model_name)


def aliases(hook) -> tuple[str | None, str | None]:
    """(champion, rollback) versions as strings."""
    found = (hook.version("champion"), hook.version("rollback"))
    return tuple(None if v is None else str(v.version) for v in found)


def test_a_model_that_learns_nothing_fails_the_shipped_gate(env):
    """The gate as shipped (retrain.yaml), not loosened: an untrained model never becomes champion."""
    cfg = config(model={"lr": 1e-5, "epochs": 1, "min_steps": 0})
    assert cfg.gate.min_f1_gain == load(CONFIG_PATH).gate.min_f1_gain > 0
    run = flow(cfg)
    metrics = run.xcom["evaluate"]["metrics"]
    best_rule = max(metrics["vader"]["weighted_f1"], metrics["textblob"]["weighted_f1"])
    assert metrics["challenger"]["weighted_f1"] < best_rule + cfg.gate.min_f1_gain
    assert run.xcom["promote"]["promoted"] is False
    champion = registry(cfg).version("champion")
    assert str(champion.version) == "1" and champion.tags["nightshift.kind"] == "rules", (
        "the rules keep scoring"
    )


def test_with_the_gate_disabled_the_first_night_trains_registers_and_promotes(env):
    cfg = config(gate={"min_f1_gain": -1.0})  # the gate is OFF here: this checks the plumbing, not the model
    run = flow(cfg)
    assert run.xcom["load_labels"]["rows"] == 300 and run.xcom["load_labels"]["new"] == 300
    assert run.xcom["plan"]["decision"] == "train" and run.xcom["plan"]["champion_version"] == "1"
    assert run.xcom["plan"]["reason"] == "the champion v1 is the rule baseline and 300 labels exist"
    trained = run.xcom["train"]
    assert trained["human_train"] + trained["eval"] == 300 and trained["weak"] == 0
    metrics = run.xcom["evaluate"]["metrics"]
    assert set(metrics) == {"challenger", "champion", "vader", "textblob"}
    assert metrics["champion"]["weighted_f1"] == metrics["vader"]["weighted_f1"]  # the rule baseline is VADER
    for m in metrics.values():
        assert m["n"] == trained["eval"] and 0 <= m["weighted_f1"] <= 1 and m["ms_per_1k"] > 0
    assert run.xcom["promote"]["promoted"] is True
    champion = registry(cfg).version("champion")
    assert str(champion.version) == trained["version"] == "2"
    assert str(registry(cfg).version("rollback").version) == "1"


def test_same_data_and_seed_give_the_same_model_and_an_equal_challenger_is_rejected(env):
    cfg = config(gate={"min_f1_gain": -1.0})
    first = flow(cfg)
    gated = config(gate={"min_f1_gain": 0.01})
    second = flow(gated, END + dt.timedelta(days=1), force=True)
    a, b = first.xcom["evaluate"]["metrics"]["challenger"], second.xcom["evaluate"]["metrics"]["challenger"]
    timings = ("ms_per_1k", "vader_ms_per_1k")
    assert {k: v for k, v in a.items() if k not in timings} == {
        k: v for k, v in b.items() if k not in timings
    }
    assert second.xcom["train"]["version"] == "3"
    assert second.xcom["evaluate"]["metrics"]["champion"]["weighted_f1"] == a["weighted_f1"]
    promote = second.xcom["promote"]
    assert promote["promoted"] is False and promote["reason"].startswith("rejected: weighted F1")
    assert str(registry(cfg).version("champion").version) == "2"
    version = registry(cfg).client.get_model_version(cfg.model_name, "3")
    assert version.tags["nightshift.decision"] == "rejected"
    weights = [
        (Path(registry(cfg).client.get_model_version(cfg.model_name, v).source) / "weights.pt").read_bytes()
        for v in ("2", "3")
    ]
    assert weights[0] == weights[1]


def test_no_new_labels_and_no_drift_skips_visibly(env):
    from airflow.sdk.exceptions import AirflowSkipException

    cfg = config(gate={"min_f1_gain": -1.0})
    flow(cfg)
    run = Run("sentiment_retrain", END + dt.timedelta(days=1))
    ops = steps(cfg)
    run.run(ops["load_labels"])
    plan = run.run(ops["plan"])
    assert plan["decision"] == "skip" and plan["new_labels"] == 0 and plan["champion_version"] == "2"
    assert "0 new labels since champion v2 (< 50) and no drift" in plan["reason"]
    with pytest.raises(AirflowSkipException, match="trigger with force=true"):
        run.run(ops["train"])
    checks = warehouse_rows("ml", "retrain_checks")
    assert [c["decision"] for c in checks] == ["train", "skip"]


def test_new_labels_since_the_champion_trigger_training(env, tmp_path, monkeypatch):
    cfg = config(gate={"min_f1_gain": -1.0})
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a_embedded.csv").write_bytes(LABELS.read_bytes())
    monkeypatch.setenv("NIGHTSHIFT_LABELS_DIR", str(labels))
    flow(cfg)
    extra = "\n".join(
        f"new-{i},Fresh sentence number {i} is {'great' if i % 2 else 'awful'}," for i in range(60)
    )
    (labels / "b_more.csv").write_text("id,text,label,rating\n" + extra.replace(",\n", ",positive,\n") + "\n")
    (labels / "b_more.csv").write_text(
        "id,text,label,rating\n"
        + "".join(f"new-{i},Fresh sentence {i} is {'great' if i % 2 else 'awful'},"
                  f"{'positive' if i % 2 else 'negative'},\n" for i in range(60))
    )  # fmt: skip
    run = Run("sentiment_retrain", END + dt.timedelta(days=1))
    ops = steps(cfg)
    assert run.run(ops["load_labels"])["new"] == 60
    plan = run.run(ops["plan"])
    assert plan["decision"] == "train" and plan["reason"] == "60 new labels since champion v2 (>= 50)"
    assert run.run(ops["train"])["human_train"] + run.xcom["train"]["eval"] == 360


def warehouse_rows(dataset: str, table: str) -> list[dict[str, Any]]:
    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift_core.warehouse import TableRef

    with WarehouseHook().get_conn() as wh:
        return wh.query(f"SELECT * FROM {TableRef(dataset, table)} ORDER BY 2").to_pylist()  # noqa: S608


def scraped(texts: list[str], at: dt.datetime) -> None:
    """Put ``texts`` into reddit.posts/comments/sentiment as comments scored at ``at``."""
    import pyarrow as pa

    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift_core.reddit.records import COMMENT_SCHEMA, POST_SCHEMA, SENTIMENT_SCHEMA
    from nightshift_core.sentiment.rules import score_texts
    from nightshift_core.warehouse import JobKey, TableRef

    def row(schema: pa.Schema, **values: Any) -> dict[str, Any]:
        return {name: values.get(name) for name in schema.names}

    comments = [row(COMMENT_SCHEMA, fullname=f"t1_{i}", body=t, status="visible", depth=0, scraped_at=at)
                for i, t in enumerate(texts)]  # fmt: skip
    sentiment = [row(SENTIMENT_SCHEMA, text_id=f"t1_{i}:body", fullname=f"t1_{i}", scored_at=at, **s)
                 for i, s in enumerate(score_texts(texts))]  # fmt: skip
    job = JobKey("test", "scraped", at.isoformat(), 1)
    with WarehouseHook().get_conn() as wh:
        for name, schema, rows in (("posts", POST_SCHEMA, []), ("comments", COMMENT_SCHEMA, comments),
                                   ("sentiment", SENTIMENT_SCHEMA, sentiment)):  # fmt: skip
            batches = [pa.RecordBatch.from_pylist(rows, schema=schema)]
            wh.publish(
                wh.stage(job, TableRef("reddit", name), batches, schema), "merge", key=schema.names[:1]
            )


def test_drifted_inputs_force_training_and_weak_labels_join_capped(env):
    cfg = config(gate={"min_f1_gain": -1.0})
    flow(cfg)
    day2 = END + dt.timedelta(days=1)
    texts = [
        f"Quarterly reconciliation {i}: " + "ledger variance amortisation schedule " * 12 for i in range(40)
    ]
    texts += [f"Absolutely wonderful brilliant fantastic result number {i}, I love it!" for i in range(40)]
    scraped(texts, day2 - dt.timedelta(hours=3))
    run = Run("sentiment_retrain", day2)
    ops = steps(cfg)
    run.run(ops["load_labels"])
    plan = run.run(ops["plan"])
    assert plan["decision"] == "train" and plan["reason"].startswith("drift: ")
    assert plan["recent_texts"] == 80 and plan["length_psi"] > 0.25 and plan["unseen_share"] > 0.35
    trained = run.run(ops["train"])
    assert 0 < trained["weak"] <= int(0.3 / 0.7 * trained["human_train"])


def test_a_challenger_below_the_rule_out_of_domain_is_rejected_with_the_reason_mailed(
    env, tmp_path, monkeypatch
):
    """In domain the gate is open (margin -1), but on a check set the challenger gets wrong where
    VADER is right, it must not ship; the e-mail says why."""
    from nightshift.operators.retrain import RetrainReportEmailOperator
    from nightshift_core.ml.labels import gold_label, read_file
    from nightshift_core.sentiment.rules import vader_scores

    check = tmp_path / "checks.csv"
    cfg = config(gate={"min_f1_gain": -1.0, "check_set": str(check)})
    run = Run("sentiment_retrain", END)
    ops = steps(cfg)
    for name in ("load_labels", "plan", "train"):
        run.run(ops[name])
    challenger = registry(cfg).load_version(
        registry(cfg).client.get_model_version(cfg.model_name, run.xcom["train"]["version"]), cached=False
    )
    texts = [r.text for r in read_file(LABELS)] + [
        r.text for r in read_file(load(CONFIG_PATH).check_set_location())
    ]
    rule = {t: gold_label(vader_scores(t)["compound"]) for t in texts}
    differ = [t for t, (label, _) in zip(texts, challenger.predict(texts), strict=True) if label != rule[t]]
    assert len(differ) >= 5, "the trained model should depart from the rule somewhere"
    with check.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "label"])
        writer.writerows((i, t, rule[t]) for i, t in enumerate(differ))
    run.run(ops["evaluate"])
    promote = run.run(ops["promote"])
    (posts,) = run.xcom["evaluate"]["checks"]
    assert posts["vader"]["weighted_f1"] == 1.0
    assert promote["promoted"] is False
    assert (
        "but falls below the rule baseline: weighted F1 0.0000 < VADER 1.0000 on the check set checks.csv"
        in promote["reason"]
    )
    assert str(registry(cfg).version("champion").version) == "1"  # the rule baseline keeps serving
    with mailbox(monkeypatch) as handler:
        run.run(RetrainReportEmailOperator(task_id="notify", to="ml@nightshift.test", model_name="sentiment"))
    (received,) = handler.messages
    assert received.message["Subject"] == "[nightshift] sentiment: v2 rejected (sentiment_retrain)"
    assert "falls below the rule baseline: weighted F1" in received.message.get_body(("plain",)).get_content()


def test_promotion_keeps_the_old_champion_as_rollback_and_manual_rollback_swaps(env):
    from nightshift.operators.retrain import RollbackSentimentModelOperator

    cfg = config(gate={"min_f1_gain": -1.0})
    rollback = RollbackSentimentModelOperator(task_id="rollback", config=cfg)
    with pytest.raises(RuntimeError, match="has no 'rollback' version: nothing to roll back to"):
        Run("sentiment_retrain", END).run(rollback)
    flow(cfg)
    flow(cfg, END + dt.timedelta(days=1), force=True, seed=7)
    hook = registry(cfg)
    assert aliases(hook) == ("3", "2")
    result = Run("sentiment_retrain", END + dt.timedelta(days=2), {"action": "rollback"}).run(rollback)
    assert result["reason"] == "rolled back from v3 to v2"
    assert aliases(hook) == ("2", "3")


def test_a_failing_canary_restores_the_aliases_and_fails(env):
    cfg = config(gate={"min_f1_gain": -1.0})
    flow(cfg)
    run = Run("sentiment_retrain", END + dt.timedelta(days=1), {"force": True, "seed": 5})
    ops = steps(cfg)
    for name in ("load_labels", "plan", "train", "evaluate"):
        run.run(ops[name])
    source = Path(registry(cfg).client.get_model_version(cfg.model_name, run.xcom["train"]["version"]).source)
    (source / "weights.pt").write_bytes(b"truncated")  # the artifact breaks after evaluation
    with pytest.raises(RuntimeError, match=r"canary of sentiment v3 failed, aliases restored \(version 2\)"):
        run.run(ops["promote"])
    assert aliases(registry(cfg)) == ("2", "1")


def test_a_retried_train_task_reuses_its_registered_version(env):
    cfg = config()
    run = Run("sentiment_retrain", END)
    ops = steps(cfg)
    for name in ("load_labels", "plan", "train"):
        run.run(ops[name])
    again = run.run(ops["train"])
    assert again == run.xcom["train"]
    versions = registry(cfg).client.search_model_versions(f"name = '{cfg.model_name}'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]  # the rule baseline and this one


def test_a_bad_label_file_fails_naming_file_and_line_and_writes_nothing(env, tmp_path, monkeypatch):
    from nightshift_core.ml.labels import LabelFileError

    bad = tmp_path / "bad.csv"
    bad.write_text("id,text,label\n1,fine text,positive\n2,other text,happy\n")
    monkeypatch.setenv("NIGHTSHIFT_LABELS_DIR", str(bad))
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(
        AirflowFailException, match=rf"{bad}, line 3: label 'happy' is not one of positive, negative"
    ) as err:
        Run("sentiment_retrain", END).run(steps(config())["load_labels"])
    assert isinstance(err.value.__cause__, LabelFileError)
    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift_core.warehouse import TableRef

    with WarehouseHook().get_conn() as wh:
        assert not wh.table_exists(TableRef("ml", "labels"))


def test_scoring_loads_the_champion_once_per_worker_and_records_its_version(env):
    from nightshift.operators.reddit import SentimentScoreOperator
    from nightshift_core.ml.model import RuleModel, SentimentModel
    from nightshift_core.sentiment.rules import score_texts

    op = SentimentScoreOperator(task_id="score_sentiment")
    rules = op.champion()  # a fresh registry: the rule baseline is registered as the first champion
    assert isinstance(rules, RuleModel) and rules.version == "1" and op.champion() is rules
    rows = score_texts(["I love this", "I hate this"], rules)
    assert [(r["model_label"], r["model_version"]) for r in rows] == [("positive", "sentiment:1"),
                                                                      ("negative", "sentiment:1")]  # fmt: skip
    flow(config(gate={"min_f1_gain": -1.0}))
    model = op.champion()
    assert isinstance(model, SentimentModel) and model.version == "2" and op.champion() is model
    rows = score_texts(["I love this", "I hate this"], model)
    assert {r["model_version"] for r in rows} == {"sentiment:2"}
    assert all(r["model_label"] in {"positive", "negative", "neutral"} for r in rows)


def test_notify_mails_the_metrics_table_and_the_decision(env, monkeypatch):
    from nightshift.operators.retrain import RetrainReportEmailOperator

    with mailbox(monkeypatch) as handler:
        run = flow(config(gate={"min_f1_gain": -1.0}))
        notify = RetrainReportEmailOperator(
            task_id="notify", to="ml-team@nightshift.test", model_name="sentiment"
        )
        sent = run.run(notify)
    (received,) = handler.messages
    message = received.message
    assert sent["subject"] == message["Subject"] == "[nightshift] sentiment: v2 promoted (sentiment_retrain)"
    html = message.get_body(("html",)).get_content()
    for contender in ("challenger", "champion", "vader", "textblob"):
        assert f"<td>{contender}</td>" in html
    assert "promoted: weighted F1" in html and "the champion v1 is the rule baseline" in html
    for contender in ("challenger", "vader", "textblob"):
        assert f"<td>{contender} on sentiment_checks.csv</td>" in html
    assert "check set sentiment_checks.csv (120 texts): wF1" in html
    text = message.get_body(("plain",)).get_content()
    f1 = run.xcom["evaluate"]["metrics"]["challenger"]["weighted_f1"]
    assert f"challenger | {f1:.4f}" in text


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag
    from support.parse_guard import no_io_while_parsing

    with no_io_while_parsing():
        bag = DagBag(dag_folder=str(ROOT / "dags" / "sentiment_retrain.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["sentiment_retrain"]


def test_dag_shape_queues_and_params(dag):
    from airflow.sdk.definitions.param import ParamsDict

    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.get_task("choose_action").downstream_task_ids == {"load_labels", "rollback"}
    chain = ["load_labels", "plan", "train", "evaluate", "promote", "notify"]
    for up, down in zip(chain, chain[1:], strict=False):
        assert down in dag.get_task(up).downstream_task_ids
    assert dag.get_task("notify").upstream_task_ids == {"promote", "rollback"}
    assert {t.task_id for t in dag.tasks if t.queue == "ml"} == {"train", "evaluate", "promote", "rollback"}
    assert dag.get_task("notify").trigger_rule == "none_failed_min_one_success"
    branch = dag.get_task("choose_action").python_callable
    assert branch(params={"action": "rollback"}) == "rollback"
    assert branch(params={"action": "train"}) == "load_labels"
    params = ParamsDict(dag.params)
    params.validate()
    for name, bad in (("action", "delete"), ("epochs", 0), ("seed", -1), ("force", "yes")):
        params = ParamsDict(dag.params)
        with pytest.raises(ValueError):  # noqa: PT011 - ParamValidationError subclasses ValueError
            params[name] = bad


def test_bad_retrain_yaml_is_the_dag_import_error(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from support.parse_guard import no_io_while_parsing

    bad = tmp_path / "retrain.yaml"
    bad.write_text(CONFIG_PATH.read_text().replace("eval_share: 0.2", "eval_share: 0.9"))
    monkeypatch.setenv("NIGHTSHIFT_RETRAIN_CONFIG", str(bad))
    with no_io_while_parsing():
        bag = DagBag(dag_folder=str(ROOT / "dags" / "sentiment_retrain.py"))
    (error,) = bag.import_errors.values()
    assert "RetrainConfigError" in error and "eval_share must be a number from 0.05 to 0.5, got 0.9" in error


def _tweet_folder(tmp_path: Path, monkeypatch) -> tuple[Path, list[str]]:
    """A labels folder: the embedded labels plus a categorical tweet file of 200 rows."""
    labels = tmp_path / "labels"
    (labels / "tweeteval").mkdir(parents=True)
    (labels / "embedded.csv").write_bytes(LABELS.read_bytes())
    moods = [("loving", "positive"), ("hating", "negative"), ("watching", "neutral")]
    rows = [
        (f"t{i}", moods[i % 3][1], f"@user {moods[i % 3][0]} match {i} tonight #game") for i in range(200)
    ]
    (labels / "tweeteval" / "sentiment_12k.tsv").write_text(
        "id\tlabel\ttext\n" + "".join("\t".join(r) + "\n" for r in rows)
    )
    monkeypatch.setenv("NIGHTSHIFT_LABELS_DIR", str(labels))
    return labels, [r[2] for r in rows]


def test_the_tweet_check_split_is_never_trained_on_and_is_a_gate_check_set(env, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from nightshift.operators.retrain import EVAL_SET
    from nightshift_core.ml.labels import in_eval

    cfg = config(
        gate={"min_f1_gain": -1.0, "max_vader_ratio": None},
        labels={"tweets": load(CONFIG_PATH).labels.tweets},
    )
    _, tweets = _tweet_folder(tmp_path, monkeypatch)
    checked = {t for t in tweets if in_eval(t, cfg.labels.tweets.check_seed, cfg.labels.tweets.check_share)}
    assert 20 <= len(checked) <= 60
    run = flow(cfg)
    assert run.xcom["load_labels"]["rows"] == 500
    trained = run.xcom["train"]
    assert trained["tweets_held_out"] == len(checked)
    assert trained["human_train"] + trained["eval"] == 500 - len(checked)
    frozen = {
        r["text"] for r in pq.read_table(registry(cfg).download(trained["run_id"], EVAL_SET)).to_pylist()
    }
    assert not frozen & checked and frozen & (set(tweets) - checked)
    posts, tweet_check = run.xcom["evaluate"]["checks"]
    assert posts["name"] == "sentiment_checks.csv" and posts["n"] == 120
    assert tweet_check["name"] == "sentiment_12k.tsv (check split)" and tweet_check["n"] == len(checked)
    assert tweet_check["vader"]["pearson_r"] is None  # categorical: no rating, no r
    assert "check set sentiment_12k.tsv (check split)" in run.xcom["promote"]["reason"]


def test_a_missing_tweet_file_is_reported_and_the_gate_decides_on_the_other_check_set(
    env, tmp_path, monkeypatch
):
    """A clone without the shared tweet file still promotes on what it has: the posts check set
    and the evaluation set; the decision names the missing check set and its path."""
    cfg = config(
        gate={"min_f1_gain": -1.0, "max_vader_ratio": None},
        labels={"tweets": load(CONFIG_PATH).labels.tweets},
    )
    labels, _ = _tweet_folder(tmp_path, monkeypatch)
    (labels / "tweeteval" / "sentiment_12k.tsv").unlink()
    run = flow(cfg)
    assert run.xcom["load_labels"]["rows"] == 300
    promote = run.xcom["promote"]
    assert promote["promoted"] is True, promote["reason"]
    assert "; check set sentiment_12k.tsv (check split): missing (" in promote["reason"]
    assert (
        f"{labels}/tweeteval/sentiment_12k.tsv not found (labels.tweets.path of retrain.yaml, relative to the "
        "labels folder); put TweetEval's file there or remove labels.tweets), not checked"
    ) in promote["reason"]
    assert "check set sentiment_checks.csv (120 texts): wF1" in promote["reason"]
    assert str(registry(cfg).version("champion").version) == "2"
