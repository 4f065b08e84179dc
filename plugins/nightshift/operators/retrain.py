"""The nightly sentiment retraining steps: labels in, plan, train, evaluate, gate, notify.

Each step is a transaction keyed by the Airflow run (``<dag_id>/<run_id>``): a retry finds the
MLflow run and model version an earlier try made instead of making a second, label rows carry
the run's time, and the evaluation reads the frozen evaluation set the training run logged, so
re-running any step of a run gives the same result. Only references and small metrics go
through XCom; models, data and reports are MLflow artifacts.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from nightshift.operators._fail_fast import fail_fast
from nightshift.operators.reddit import run_time

if TYPE_CHECKING:
    import datetime as dt

    from airflow.sdk import Context

    from nightshift.hooks.mlflow import MlflowRegistryHook
    from nightshift_core.ml.config import RetrainConfig
    from nightshift_core.warehouse import Warehouse

EVAL_SET = "data/eval_set.parquet"
MIN_TRAIN, MIN_EVAL = 20, 10
CANARY_TEXTS = ["", "   ", "!!!", "x" * 20_000, "=HYPERLINK(\"http://example.com\")", "Ünïcödé ☃ \u202e text",
                "great", "terrible", "The meeting is at noon."]  # fmt: skip


def run_key(context: Context) -> str:
    return f"{context['dag_run'].dag_id}/{context['dag_run'].run_id}"


def _param(context: Context, name: str, default: Any = None) -> Any:
    value = (context.get("params") or {}).get(name)
    return default if value is None else value


class _RetrainStep(BaseOperator):
    """Shared plumbing: the config, the warehouse and the MLflow registry."""

    def __init__(
        self, *, config: RetrainConfig, warehouse_conn_id: str = "nightshift_warehouse", **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.config = config
        self.warehouse_conn_id = warehouse_conn_id

    def registry(self) -> MlflowRegistryHook:
        from nightshift.hooks.mlflow import MlflowRegistryHook

        return MlflowRegistryHook(self.config.mlflow_conn_id, self.config.model_name)

    def warehouse(self) -> Warehouse:
        from nightshift.hooks.warehouse import WarehouseHook

        return WarehouseHook(self.warehouse_conn_id).get_conn()

    def human_labels(self, warehouse: Warehouse, until: dt.datetime) -> list[dict[str, Any]]:
        """Every label loaded at or before ``until`` (a re-run sees what the first run saw)."""
        from nightshift_core.ml.records import LABEL_SCHEMA
        from nightshift_core.warehouse import TableRef
        from nightshift_core.warehouse.sql import render

        warehouse.prepare_target(
            TableRef(self.config.dataset, "labels"), warehouse.arrow_columns(LABEL_SCHEMA)
        )
        rows = warehouse.query(render("ml/labels.sql", dataset=self.config.dataset)).to_pylist()
        return [r for r in rows if r["first_seen_at"] <= until]

    def scraped_texts(
        self, warehouse: Warehouse, since: dt.datetime, until: dt.datetime
    ) -> list[dict[str, Any]]:
        """Scraped texts scored in ``[since, until]``; none while the Reddit tables do not exist."""
        from nightshift_core.warehouse import TableRef
        from nightshift_core.warehouse.sql import render

        dataset = self.config.texts_dataset
        if not all(warehouse.table_exists(TableRef(dataset, t)) for t in ("posts", "comments", "sentiment")):
            self.log.info("no %s.posts/comments/sentiment tables yet: no scraped texts", dataset)
            return []
        sql = render("ml/scraped_texts.sql", dataset=dataset)
        return warehouse.query(sql, {"since": since, "until": until}).to_pylist()


class LabelsToWarehouseOperator(_RetrainStep):
    """Load the human label files (``labels.path`` or $NIGHTSHIFT_LABELS_DIR) into ``<dataset>.labels``.

    Rows are merged by ``example_id``; a row keeps the time it was first seen, so "new labels
    since the champion" counts rows, not reloads. A bad file fails the task naming file and line,
    and nothing is written.
    """

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        import pyarrow as pa

        from nightshift.hooks.warehouse import job_key
        from nightshift_core.ml.labels import read_labels
        from nightshift_core.ml.records import LABEL_SCHEMA
        from nightshift_core.warehouse import TableRef
        from nightshift_core.warehouse.sql import render

        location = self.config.labels_location()
        locations = [location]
        tweets = self.config.tweets_location()
        if tweets is not None and tweets.is_file():
            locations.append(tweets)
        elif tweets is not None:
            self.log.warning(
                "no tweet labels at %s (labels.tweets.path of %s): training without them; the gate "
                "reports their check set as missing and decides on the others", tweets, self.config.path.name
            )  # fmt: skip
        rows = read_labels(locations)
        now = run_time(context)
        target = TableRef(self.config.dataset, "labels")
        with self.warehouse() as warehouse:
            warehouse.prepare_target(target, warehouse.arrow_columns(LABEL_SCHEMA))
            known = {
                r["example_id"]: r["first_seen_at"]
                for r in warehouse.query(render("ml/labels.sql", dataset=self.config.dataset)).to_pylist()
            }
            records = [
                {"example_id": r.example_id, "text": r.text, "label": r.label, "rating": r.rating,
                 "source": r.source, "first_seen_at": known.get(r.example_id, now),
                 "labelled_by": None, "labelled_at": None}
                for r in rows
            ]  # fmt: skip
            staged = warehouse.stage(
                job_key(context),
                target,
                [pa.RecordBatch.from_pylist(records, schema=LABEL_SCHEMA)],
                LABEL_SCHEMA,
            )
            warehouse.publish(staged, "merge", key=["example_id"])
        new = sum(r.example_id not in known for r in rows)
        self.log.info("%d label rows from %s, %d of them new", len(rows), location, new)
        return {"location": str(location), "rows": len(rows), "new": new}


class RetrainPlanOperator(_RetrainStep):
    """Decide whether tonight trains: count new labels since the champion, check input drift
    (recent scraped texts vs the champion's training texts; the champion's F1 on labels newer
    than it), record the check in ``<dataset>.retrain_checks`` and return the decision."""

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        import datetime as dt

        import pyarrow as pa

        from nightshift.hooks.warehouse import job_key
        from nightshift_core.ml import drift as drift_mod
        from nightshift_core.ml.gate import drift_reasons, should_train
        from nightshift_core.ml.records import CHECK_SCHEMA
        from nightshift_core.warehouse import TableRef

        cfg = self.config
        now = run_time(context)
        registry = self.registry()
        from nightshift.hooks.mlflow import KIND_TAG

        champion = registry.ensure_champion()  # the rule baseline on a fresh registry
        champion_is_rules = champion.tags.get(KIND_TAG) == "rules"
        measured: dict[str, Any] = {"length_psi": None, "score_psi": None, "unseen_share": None,
                                    "champion_f1": None, "recent_f1": None, "recent_texts": 0}  # fmt: skip
        with self.warehouse() as warehouse:
            labels = self.human_labels(warehouse, now)
            since_champion = labels
            if champion is not None:
                trained_at = dt.datetime.fromisoformat(champion.tags["nightshift.labels_as_of"])
                since_champion = [r for r in labels if r["first_seen_at"] > trained_at]
                recent = self.scraped_texts(warehouse, now - dt.timedelta(days=cfg.drift.recent_days), now)
                measured["recent_texts"] = len(recent)
                # The rule baseline has no training texts to drift from.
                if len(recent) >= cfg.drift.min_recent_texts and not champion_is_rules:
                    folder = _model_folder(registry, champion)
                    reference = json.loads((folder / "profile.json").read_text())
                    measured |= drift_mod.compare(
                        reference, [r["text"] for r in recent], [r["vader_compound"] for r in recent]
                    )
                    measured["recent_texts"] = len(recent)
                measured["champion_f1"] = float(champion.tags.get("nightshift.weighted_f1", "nan"))
                if len(since_champion) >= cfg.drift.min_new_eval_labels:
                    measured["recent_f1"] = _weighted_f1(registry.load_version(champion), since_champion)
            reasons = drift_reasons(cfg.drift, {k: v for k, v in measured.items() if _finite(v)})
            decision = should_train(
                force=bool(_param(context, "force", False)),
                champion=None if champion is None else str(champion.version),
                new_labels=len(since_champion),
                min_new_labels=cfg.retrain_when.min_new_labels,
                drift=reasons,
                champion_is_rules=champion_is_rules,
            )
            row = {
                "run_key": run_key(context), "checked_at": now,
                "champion_version": None if champion is None else str(champion.version),
                "human_labels": len(labels), "new_labels": len(since_champion),
                **{k: (v if _finite(v) else None) for k, v in measured.items()},
                "drifted": bool(reasons), "decision": "train" if decision.go else "skip", "reason": decision.reason,
            }  # fmt: skip
            target = TableRef(cfg.dataset, "retrain_checks")
            warehouse.prepare_target(target, warehouse.arrow_columns(CHECK_SCHEMA))
            staged = warehouse.stage(
                job_key(context),
                target,
                [pa.RecordBatch.from_pylist([row], schema=CHECK_SCHEMA)],
                CHECK_SCHEMA,
            )
            warehouse.publish(staged, "merge", key=["run_key"])
        self.log.info("retrain check: %s", decision.reason)
        return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _model_folder(registry: MlflowRegistryHook, version: Any) -> Path:
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source))


def _weighted_f1(model: Any, rows: list[dict[str, Any]]) -> float:
    from nightshift_core.ml.metrics import classification_report

    predicted = [label for label, _ in model.predict([r["text"] for r in rows])]
    return round(classification_report([r["label"] for r in rows], predicted)["weighted_f1"], 4)


class TrainSentimentModelOperator(_RetrainStep):
    """Train a challenger on the human labels outside the frozen evaluation set plus capped weak
    labels; log it, its training profile and the evaluation set to MLflow; register a version."""

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        import dataclasses
        import datetime as dt

        import pyarrow as pa
        import pyarrow.parquet as pq
        from airflow.sdk.exceptions import AirflowSkipException

        from nightshift_core.ml import drift as drift_mod
        from nightshift_core.ml.data import digest, split_human, weak_examples, without_check_texts
        from nightshift_core.ml.labels import text_key
        from nightshift_core.ml.model import train

        plan = context["ti"].xcom_pull(task_ids="plan")
        if not plan or plan.get("decision") != "train":
            raise AirflowSkipException((plan or {}).get("reason") or "the plan task decided not to train")
        cfg = self.config
        model_config = dataclasses.replace(
            cfg.model, epochs=int(_param(context, "epochs", cfg.model.epochs)),
            seed=int(_param(context, "seed", cfg.model.seed)),
        ).validate()  # fmt: skip
        now = run_time(context)
        key = run_key(context)
        registry = self.registry()
        earlier = registry.find_run(key)
        if earlier is not None:
            versions = registry.client.search_model_versions(
                f"name = '{cfg.model_name}' and run_id = '{earlier.info.run_id}'"
            )
            if versions:
                self.log.info("an earlier try already trained and registered version %s", versions[0].version)
                return json.loads(versions[0].tags["nightshift.summary"])
            registry.client.delete_run(earlier.info.run_id)  # half-logged: start over

        with self.warehouse() as warehouse:
            labels = every = self.human_labels(warehouse, now)
            held_out = 0
            tweets = cfg.labels.tweets
            if tweets is not None:  # the tweet check split is never trained on (nor in the frozen set)
                labels, held_out = without_check_texts(
                    labels, Path(tweets.path).name, tweets.check_seed, tweets.check_share, tweets.max_train,
                )  # fmt: skip
            categorical = {Path(tweets.path).name} if tweets is not None else set()
            split = split_human(labels, cfg.labels.split_seed, cfg.labels.eval_share, categorical)
            weak = []
            if cfg.weak is not None:
                exclude = {text_key(r["text"]) for r in every}
                candidates = self.scraped_texts(warehouse, dt.datetime(1970, 1, 1, tzinfo=dt.UTC), now)
                weak = weak_examples(
                    candidates, exclude=exclude, n_human=len(split.train), max_share=cfg.weak.max_share,
                    min_vader_compound=cfg.weak.min_vader_compound,
                    min_textblob_polarity=cfg.weak.min_textblob_polarity,
                )  # fmt: skip
        if len(split.train) < MIN_TRAIN or len(split.eval) < MIN_EVAL:
            raise ValueError(
                f"{len(labels)} human labels give {len(split.train)} to train on and {len(split.eval)} to "
                f"evaluate on; at least {MIN_TRAIN} and {MIN_EVAL} are needed. Add labelled rows to "
                f"{cfg.labels_location()} (format: docs/reddit-and-sentiment.md, 'Human labels')"
            )
        examples = split.train + weak
        model, history = train(examples, model_config, log=self.log.info)
        eval_version = digest(split.eval)
        summary = {
            "human_train": len(split.train), "weak": len(weak), "eval": len(split.eval), "tweets_held_out": held_out,
            "duplicates_dropped": split.duplicates, "train_digest": digest(examples), "eval_version": eval_version,
            "train_seconds": history["seconds"], "labels_as_of": now.isoformat(),
            "fallback_threshold": history["fallback_threshold"], "scale_share": history["scale_share"],
        }  # fmt: skip
        run_id = registry.start_run(
            key, {"airflow.dag_id": context["dag_run"].dag_id, "eval_version": eval_version}
        )
        client = registry.client
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            model.save(folder)
            (folder / "profile.json").write_text(json.dumps(drift_mod.profile([e.text for e in examples])))
            client.log_artifacts(run_id, str(folder), "model")
            data = Path(tmp) / "data"
            data.mkdir()
            pq.write_table(
                pa.Table.from_pylist([dataclasses.asdict(e) for e in split.eval]), data / "eval_set.parquet"
            )
            (data / "manifest.json").write_text(json.dumps(summary, indent=2))
            client.log_artifacts(run_id, str(data), "data")
        for name, value in {**model_config.to_dict(), **summary}.items():
            client.log_param(run_id, name, value)
        for epoch, loss in enumerate(history["loss"]):
            client.log_metric(run_id, "train_loss", loss, step=epoch)
        client.set_terminated(run_id)
        result = {**summary, "run_id": run_id}
        version = registry.register(
            run_id, {"nightshift.labels_as_of": now.isoformat(), "eval_version": eval_version}
        )
        result["version"] = str(version.version)
        registry.tag_version(result["version"], {"nightshift.summary": json.dumps(result)})
        self.log.info("registered %s version %s: %s", cfg.model_name, version.version, result)
        return result


class EvaluateSentimentModelsOperator(_RetrainStep):
    """Score the frozen evaluation set with the challenger, the champion of plan time, VADER and
    TextBlob; log every metric and confusion matrix to the challenger's MLflow run."""

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        import pyarrow.parquet as pq

        from nightshift_core.ml.evaluation import RULES, evaluate_model, evaluate_rule, summary
        from nightshift_core.ml.model import TrainingExample

        trained = context["ti"].xcom_pull(task_ids="train")
        plan = context["ti"].xcom_pull(task_ids="plan")
        registry = self.registry()
        client = registry.client
        eval_path = registry.download(trained["run_id"], EVAL_SET)
        examples = [TrainingExample(**row) for row in pq.read_table(eval_path).to_pylist()]
        challenger = self._load(registry, trained["version"])
        reports = {"challenger": evaluate_model(challenger, examples)}
        champion = plan.get("champion_version")
        if champion is not None:
            reports["champion"] = evaluate_model(self._load(registry, champion), examples)
        for rule in RULES:
            reports[rule] = evaluate_rule(rule, examples)
        summaries = {name: summary(report) for name, report in reports.items()}
        domains = self._domains(challenger, examples)
        for domain in domains:
            for name in ("challenger", "vader"):
                for metric in ("weighted_f1", "pearson_r"):
                    value = domain[name].get(metric)
                    if _finite(value):
                        key = f"domain.{domain['name']}.{name}.{metric}"
                        client.log_metric(trained["run_id"], key, float(value))
        checks = [self._check(c, challenger) for c in self._check_sets()]
        for check in checks:
            for name in ("challenger", "vader", "textblob"):
                for metric, value in (check.get(name) or {}).items():
                    if _finite(value):
                        key = f"check.{check['key']}.{name}.{metric}"
                        client.log_metric(trained["run_id"], key, float(value))
        for name, values in summaries.items():
            for metric, value in values.items():
                if _finite(value):
                    client.log_metric(trained["run_id"], f"{name}.{metric}", float(value))
        client.log_dict(trained["run_id"], reports, "evaluation.json")
        registry.tag_version(
            trained["version"], {"nightshift.weighted_f1": str(summaries["challenger"]["weighted_f1"])}
        )
        return {"eval_version": trained["eval_version"], "champion_version": champion, "metrics": summaries,
                "checks": checks, "domains": domains}  # fmt: skip

    @staticmethod
    def _domains(challenger: Any, examples: list[Any]) -> list[dict[str, Any]]:
        """Challenger and VADER on each domain (label file) of the frozen evaluation set; one
        domain (or an evaluation set from before sources were kept) gives none."""
        from nightshift_core.ml.evaluation import evaluate_model, evaluate_rule, summary

        by_source: dict[str, list[Any]] = {}
        for example in examples:
            by_source.setdefault(getattr(example, "source", "") or "", []).append(example)
        if len(by_source) < 2 or "" in by_source:
            return []
        return [{"name": name, "n": len(rows), "challenger": summary(evaluate_model(challenger, rows)),
                 "vader": summary(evaluate_rule("vader", rows))}
                for name, rows in sorted(by_source.items())]  # fmt: skip

    def _check_sets(self) -> list[tuple[str, str, Any]]:
        """(name, examples or why it is missing) of each out-of-domain check set: the posts of
        ``gate.check_set`` and the never-trained split of ``labels.tweets``."""
        from nightshift_core.ml.data import check_examples
        from nightshift_core.ml.labels import read_file, read_labels
        from nightshift_core.ml.model import TrainingExample

        cfg = self.config
        found: list[tuple[str, str, Any]] = []
        posts = cfg.check_set_location()
        if posts is not None:
            found.append(
                (
                    "posts",
                    posts.name,
                    [TrainingExample(r.text, r.label, r.rating) for r in read_labels([posts])],
                )
            )
        tweets, spec = cfg.tweets_location(), cfg.labels.tweets
        if tweets is not None and spec is not None:
            name = f"{tweets.name} (check split)"
            if tweets.is_file():
                found.append(
                    (
                        "tweets",
                        name,
                        check_examples(read_file(tweets), spec.check_seed, spec.check_share),
                    )
                )
            else:
                found.append(("tweets", name, f"{tweets} not found (labels.tweets.path of {cfg.path.name}, relative to the "
                                    "labels folder); put TweetEval's file there or remove labels.tweets"))  # fmt: skip
        return found

    @staticmethod
    def _check(named: tuple[str, str, Any], challenger: Any) -> dict[str, Any]:
        from nightshift_core.ml.evaluation import evaluate_model, evaluate_rule, summary

        key, name, rows = named
        if isinstance(rows, str):
            return {"key": key, "name": name, "missing": rows}
        return {"key": key, "name": name, "n": len(rows), "challenger": summary(evaluate_model(challenger, rows)),
                "vader": summary(evaluate_rule("vader", rows)),
                "textblob": summary(evaluate_rule("textblob", rows))}  # fmt: skip

    @staticmethod
    def _load(registry: MlflowRegistryHook, version: str) -> Any:
        return registry.load_version(
            registry.client.get_model_version(registry.model_name, version), cached=False
        )


class PromoteSentimentModelOperator(_RetrainStep):
    """The gate: promote the challenger to ``champion`` (the old one becomes ``rollback``) when
    it beats the champion -- or with none, the best rule -- by the margin within the latency
    budget. Then a canary loads ``champion`` the way scoring does and scores the evaluation set
    plus odd inputs; any error or a different F1 puts the aliases back and fails the task."""

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        from nightshift.hooks.mlflow import CHAMPION, ROLLBACK
        from nightshift_core.ml.gate import should_promote

        cfg = self.config
        trained = context["ti"].xcom_pull(task_ids="train")
        evaluated = context["ti"].xcom_pull(task_ids="evaluate")
        metrics = evaluated["metrics"]
        decision = should_promote(
            metrics["challenger"], metrics.get("champion"), {r: metrics[r] for r in ("vader", "textblob")},
            min_f1_gain=cfg.gate.min_f1_gain, max_ms_per_1k=cfg.gate.max_ms_per_1k,
            max_vader_ratio=cfg.gate.max_vader_ratio,
            checks=evaluated.get("checks") or [], max_check_drop=cfg.gate.max_check_drop,
            domains=evaluated.get("domains") or [],
        )  # fmt: skip
        registry = self.registry()
        version = trained["version"]
        result = {"version": version, "promoted": decision.go, "reason": decision.reason, "metrics": metrics,
                  "previous_champion": evaluated.get("champion_version")}  # fmt: skip
        registry.tag_version(version, {"nightshift.decision": "promoted" if decision.go else "rejected",
                                       "nightshift.reason": decision.reason})  # fmt: skip
        self.log.info("gate: %s", decision.reason)
        if not decision.go:
            return result
        before = {alias: registry.version(alias) for alias in (CHAMPION, ROLLBACK)}
        current = before[CHAMPION]
        if current is None or str(current.version) != version:
            registry.set_aliases(
                {ROLLBACK: None if current is None else str(current.version), CHAMPION: version}
            )
        try:
            self._canary(registry, version, trained, metrics["challenger"]["weighted_f1"])
        except Exception as exc:
            registry.set_aliases({a: None if v is None else str(v.version) for a, v in before.items()})
            registry.tag_version(
                version, {"nightshift.decision": "rolled back", "nightshift.reason": str(exc)[:4000]}
            )
            restored = "no champion" if current is None else f"version {current.version}"
            raise RuntimeError(
                f"canary of {cfg.model_name} v{version} failed, aliases restored ({restored}): {exc}"
            ) from exc
        return result

    def _canary(self, registry: MlflowRegistryHook, version: str, trained: dict, expected_f1: float) -> None:
        import pyarrow.parquet as pq

        from nightshift_core.ml.metrics import classification_report
        from nightshift_core.sentiment.rules import LABELS

        model = registry.load_alias("champion", cached=False)
        if model is None or model.version != version:
            raise RuntimeError(f"alias champion points at {getattr(model, 'version', None)}, not {version}")
        rows = pq.read_table(registry.download(trained["run_id"], EVAL_SET)).to_pylist()
        predictions = model.predict([r["text"] for r in rows] + CANARY_TEXTS)
        if len(predictions) != len(rows) + len(CANARY_TEXTS):
            raise RuntimeError(f"{len(predictions)} predictions for {len(rows) + len(CANARY_TEXTS)} texts")
        bad = [p for p in predictions if p[0] not in LABELS or not math.isfinite(p[1]) or not -1 <= p[1] <= 1]
        if bad:
            raise RuntimeError(f"{len(bad)} invalid predictions, e.g. {bad[:3]}")
        f1 = classification_report([r["label"] for r in rows], [p[0] for p in predictions[: len(rows)]])[
            "weighted_f1"
        ]
        if abs(f1 - expected_f1) > 1e-3:
            raise RuntimeError(
                f"served model scores weighted F1 {f1:.4f}, evaluation measured {expected_f1:.4f}"
            )
        self.log.info("canary passed: %d texts, weighted F1 %.4f", len(predictions), f1)


class RollbackSentimentModelOperator(_RetrainStep):
    """Manual rollback (Param ``action: rollback``): ``champion`` and ``rollback`` swap, so a
    second rollback undoes the first. Fails when there is nothing to roll back to."""

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        from nightshift.hooks.mlflow import CHAMPION, ROLLBACK

        registry = self.registry()
        champion, previous = registry.version(CHAMPION), registry.version(ROLLBACK)
        if previous is None:
            raise RuntimeError(
                f"model {self.config.model_name!r} has no {ROLLBACK!r} version: nothing to roll back to "
                f"(champion: {None if champion is None else champion.version})"
            )
        model = registry.load_version(previous, cached=False)  # it must load before it serves
        registry.set_aliases(
            {ROLLBACK: None if champion is None else str(champion.version), CHAMPION: str(previous.version)}
        )
        reason = f"rolled back from v{None if champion is None else champion.version} to v{model.version}"
        self.log.info(reason)
        return {"version": str(previous.version), "promoted": True, "reason": reason,
                "previous_champion": None if champion is None else str(champion.version)}  # fmt: skip


class RetrainReportEmailOperator(BaseOperator):
    """E-mail the run's outcome: the decision, why, and the metrics table of every contender."""

    template_fields = ("to",)

    def __init__(
        self, *, to: str, model_name: str, smtp_conn_id: str = "nightshift_smtp", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.to = to
        self.model_name = model_name
        self.smtp_conn_id = smtp_conn_id

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        import hashlib

        from nightshift.hooks.mail import YagmailHook
        from nightshift_core.alerts import parse_recipients
        from nightshift_core.ml.report import render

        ti = context["ti"]
        outcome = ti.xcom_pull(task_ids="promote") or ti.xcom_pull(task_ids="rollback")
        if not outcome:
            raise ValueError("neither promote nor rollback left a result to report")
        plan = ti.xcom_pull(task_ids="plan") or {}
        trained = ti.xcom_pull(task_ids="train") or {}
        verb = (
            "rolled back"
            if ti.xcom_pull(task_ids="rollback")
            else ("promoted" if outcome["promoted"] else "rejected")
        )
        facts = {"version": outcome["version"], "previous champion": outcome.get("previous_champion"),
                 "human labels (train/eval)": f"{trained.get('human_train')}/{trained.get('eval')}" if trained else None,
                 "weak labels": trained.get("weak"), "evaluation set": trained.get("eval_version"),
                 "tweets held out (check split)": trained.get("tweets_held_out"),
                 "rule fallback below class probability": trained.get("fallback_threshold"),
                 "share of the categorical scale bias served": trained.get("scale_share"),
                 "why it trained": plan.get("reason"), "drift: length PSI": plan.get("length_psi"),
                 "drift: score PSI": plan.get("score_psi"), "drift: unseen words": plan.get("unseen_share")}  # fmt: skip
        evaluated = ti.xcom_pull(task_ids="evaluate") or {}
        checks = evaluated.get("checks") or []
        metrics = dict(outcome.get("metrics") or {})
        for domain in evaluated.get("domains") or []:
            for name in ("challenger", "vader"):
                metrics[f"{name} on the evaluation set's {domain['name']}"] = domain[name]
        for check in checks:
            if check.get("missing"):
                facts[f"check set {check['name']}"] = f"missing: {check['missing']}"
            for name in ("challenger", "vader", "textblob"):
                if check.get(name):
                    metrics[f"{name} on {check['name']}"] = check[name]
        subject, html, text = render(
            dag_id=context["dag_run"].dag_id, model_name=self.model_name, outcome=f"v{outcome['version']} {verb}",
            reason=outcome["reason"], metrics=metrics,
            facts={k: v for k, v in facts.items() if v is not None},
        )  # fmt: skip
        recipients = parse_recipients(self.to)
        if not recipients:
            raise ValueError(
                "no recipients: set the Airflow Variable 'nightshift_alert_to' (comma-separated)"
            )
        digest = hashlib.sha256(run_key(context).encode()).hexdigest()[:24]
        sent = YagmailHook(self.smtp_conn_id).send(
            to=recipients, subject=subject, html=html, text=text, message_id=f"<retrain.{digest}@nightshift>"
        )
        return {"subject": subject, "recipients": sent["recipients"]}
