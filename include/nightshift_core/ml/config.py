"""The retraining definition: ``include/config/retrain.yaml``, validated strictly."""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from nightshift_core.errors import PermanentError
from nightshift_core.yamlconf import Where, read_mapping

ROOT = Path(__file__).resolve().parents[3]
CONFIG_PATH = ROOT / "include" / "config" / "retrain.yaml"
LABELS_ENV = "NIGHTSHIFT_LABELS_DIR"
_TOP = {"dag_id", "description", "schedule", "start_date", "queue", "dataset", "model_name", "mlflow_conn_id",
        "labels", "texts_dataset", "weak_labels", "retrain_when", "drift", "model", "gate", "tags"}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture and training knobs; saved beside the weights, part of the version digest."""

    dim: int = 16
    ngrams: int = 2
    char_ngrams: int = 0  # > 0: also character n-grams of this length (for words never seen whole)
    min_count: int = 3  # a feature enters the vocabulary when this many training texts have it
    max_vocabulary: int = 50_000
    shrink: float = 4.0  # correction input = sum of known features / (known + shrink)
    dropout: float = 0.2
    epochs: int = 4
    min_steps: int = 1200  # small label sets train for more epochs, to at least this many batches
    batch_size: int = 32
    lr: float = 0.01
    weight_decay: float = 0.01  # on the feature embeddings: rare features stay near zero
    rating_weight: float = 0.5
    l2: float = 0.001  # penalty pulling the learned departures from the rule back to zero
    l2_reference: int = 0  # > 0: l2 holds at this many training texts, scaled by sqrt(this / n) for n texts
    class_balance: float = 0.0  # 0: plain loss; 1: classes weighted by inverse frequency
    weak_weight: float = 0.5
    calibrate_share: float = 0.1  # human labels held out of the fit to calibrate class offsets
    scale_bias: int = 1  # 1: categorical files' own class boundaries go to a training-only bias
    fallback_share: float = 0.0  # > 0: human labels held out of the fit to choose the fallback threshold
    seed: int = 13

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> ModelConfig:
        """``self``, or a ValueError naming the setting that is out of range."""
        limits = {"dim": (2, 1024), "ngrams": (1, 3), "char_ngrams": (0, 6), "min_count": (1, 10**6),
                  "max_vocabulary": (1, 10**7), "shrink": (0.0, 1000.0), "dropout": (0.0, 0.9),
                  "epochs": (1, 100), "min_steps": (0, 10**6), "batch_size": (1, 4096), "lr": (1e-5, 1.0),
                  "weight_decay": (0.0, 10.0), "l2": (0.0, 10.0), "rating_weight": (0.0, 10.0), "class_balance": (0.0, 1.0),
                  "weak_weight": (0.0, 1.0), "calibrate_share": (0.0, 0.5), "fallback_share": (0.0, 0.5), "scale_bias": (0, 1),
                  "l2_reference": (0, 10**9),
                  "seed": (0, 2**31)}  # fmt: skip
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            whole = isinstance(getattr(ModelConfig, name), int)  # the default's type is the setting's
            kinds = int if whole else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
                kind = "a whole number" if whole else "a number"
                raise ValueError(f"{name} must be {kind} from {low:g} to {high:g}, got {value!r}")
        return self

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


class RetrainConfigError(ValueError, PermanentError):
    """A bad retrain.yaml; the message names file, key and fix."""


@dataclasses.dataclass(frozen=True)
class WeakLabels:
    max_share: float = 0.3
    min_vader_compound: float = 0.5
    min_textblob_polarity: float = 0.3


@dataclasses.dataclass(frozen=True)
class Tweets:
    """Categorical social-media labels (TweetEval's layout) beside the rated sets; a seeded share
    of them is never trained on and is the gate's social-media check set."""

    path: str = "tweeteval/sentiment_12k.tsv"  # relative to the labels folder
    check_share: float = 0.2
    check_seed: int = 32
    max_train: int = 0  # > 0: train on at most this many of the other tweets (a seeded sample)


@dataclasses.dataclass(frozen=True)
class Drift:
    recent_days: int = 7
    min_recent_texts: int = 50
    max_length_psi: float = 0.25
    max_score_psi: float = 0.25
    max_unseen_share: float = 0.35
    max_f1_drop: float = 0.05
    min_new_eval_labels: int = 20


@dataclasses.dataclass(frozen=True)
class RetrainConfig:
    path: Path
    dag_id: str
    description: str
    schedule: str | None
    start_date: datetime
    queue: str
    dataset: str
    model_name: str
    mlflow_conn_id: str
    labels_path: str
    eval_share: float
    split_seed: int
    tweets: Tweets | None
    texts_dataset: str
    weak: WeakLabels | None
    min_new_labels: int
    drift: Drift
    model: ModelConfig
    min_f1_gain: float
    max_ms_per_1k: float
    check_set: str | None
    max_check_drop: float
    tags: tuple[str, ...]

    def labels_location(self) -> Path:
        """Where the label files are: $NIGHTSHIFT_LABELS_DIR, else ``labels.path`` (from the project root)."""
        chosen = os.environ.get(LABELS_ENV) or self.labels_path
        path = Path(chosen)
        return path if path.is_absolute() else ROOT / path

    def labels_folder(self) -> Path:
        """The folder of the label files: the labels location itself, or the folder of that file."""
        location = self.labels_location()
        return location if location.is_dir() else location.parent

    def tweets_location(self) -> Path | None:
        """The categorical tweet file (``labels.tweets.path``, relative to :meth:`labels_folder`)."""
        if self.tweets is None:
            return None
        path = Path(self.tweets.path)
        return path if path.is_absolute() else self.labels_folder() / path

    def check_set_location(self) -> Path | None:
        """The out-of-domain check set of the gate (``gate.check_set``, from the project root)."""
        if not self.check_set:
            return None
        path = Path(self.check_set)
        return path if path.is_absolute() else ROOT / path


def _section(where: Where, raw: dict, key: str, cls: type, limits: dict[str, tuple[float, float]]) -> Any:
    section = where.mapping(raw, key, required=False)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    where.keys(section, set(fields), key)
    values = {}
    for name, (low, high) in limits.items():
        default = fields[name].default
        kind = int if isinstance(default, int) else float
        values[name] = where.number(section, name, default, low, high, kind)
    return values, section


def load(path: Path = CONFIG_PATH) -> RetrainConfig:
    """Read and validate ``path``; every problem is a :class:`RetrainConfigError`."""
    if not path.is_file():
        raise RetrainConfigError(f"{path}: file not found; create it (see include/config/retrain.yaml)")
    where = Where(path, RetrainConfigError)
    raw = read_mapping(path, RetrainConfigError)
    where.keys(raw, _TOP, "the top level")
    dag_id, schedule, start_dt = where.dag_basics(raw, "sentiment_retrain", "0 2 * * *")

    labels = where.mapping(raw, "labels", required=True)
    where.keys(labels, {"path", "eval_share", "split_seed", "tweets"}, "labels")
    labels_path = where.string(labels, "path", "labels.path", required=True)
    eval_share = where.number(labels, "eval_share", 0.2, 0.05, 0.5)
    split_seed = where.number(labels, "split_seed", 42, 0, 2**31, int)
    tweets = None
    if labels.get("tweets") is not None:
        values, section = _section(
            where, labels, "tweets", Tweets,
            {"check_share": (0.05, 0.5), "check_seed": (0, 2**31), "max_train": (0, 10**9)},
        )  # fmt: skip
        tweets_path = where.string(section, "path", "labels.tweets.path", required=True)
        tweets = Tweets(path=tweets_path, **values)

    weak = None
    if raw.get("weak_labels") is not None:
        values, _ = _section(
            where, raw, "weak_labels", WeakLabels,
            {"max_share": (0.0, 0.9), "min_vader_compound": (0.0, 1.0), "min_textblob_polarity": (0.0, 1.0)},
        )  # fmt: skip
        weak = WeakLabels(**values)

    retrain_when = where.mapping(raw, "retrain_when", required=False)
    where.keys(retrain_when, {"min_new_labels"}, "retrain_when")
    min_new = where.number(retrain_when, "min_new_labels", 50, 0, 10**9, int)
    drift_values, _ = _section(
        where, raw, "drift", Drift,
        {"recent_days": (1, 365), "min_recent_texts": (1, 10**9), "max_length_psi": (0.0, 100.0),
         "max_score_psi": (0.0, 100.0), "max_unseen_share": (0.0, 1.0), "max_f1_drop": (0.0, 1.0),
         "min_new_eval_labels": (1, 10**9)},
    )  # fmt: skip
    model_raw = where.mapping(raw, "model", required=False)
    try:
        model = ModelConfig.from_dict(model_raw)
        model.validate()
    except (TypeError, ValueError) as exc:
        where.fail(f"model: {exc}")
    gate = where.mapping(raw, "gate", required=False)
    where.keys(gate, {"min_f1_gain", "max_ms_per_1k", "check_set", "max_check_drop"}, "gate")
    check_set = gate.get("check_set")
    if check_set is not None and (not isinstance(check_set, str) or not check_set.strip()):
        where.fail("gate.check_set must be a label file path (or leave it out for no out-of-domain check)")
    tags = raw.get("tags", ["nightshift", "sentiment", "ml"])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        where.fail("tags must be a list of strings")
    names = {}
    for key, default in (("queue", "ml"), ("model_name", "sentiment"), ("mlflow_conn_id", "mlflow_default")):
        raw.setdefault(key, default)
        names[key] = where.string(raw, key, key, required=True)
    return RetrainConfig(
        path=path,
        dag_id=dag_id,
        description=raw.get("description") or "Retrain the sentiment model",
        schedule=schedule,
        start_date=start_dt,
        dataset=where.ident(raw.get("dataset", "ml"), "dataset", "dataset name"),
        labels_path=labels_path,
        eval_share=eval_share,
        split_seed=split_seed,
        tweets=tweets,
        texts_dataset=where.ident(raw.get("texts_dataset", "reddit"), "texts_dataset", "dataset name"),
        weak=weak,
        min_new_labels=min_new,
        drift=Drift(**drift_values),
        model=model,
        min_f1_gain=where.number(gate, "min_f1_gain", 0.01, -1.0, 1.0),
        max_ms_per_1k=where.number(gate, "max_ms_per_1k", 1000.0, 1.0, 10**7),
        check_set=check_set,
        max_check_drop=where.number(gate, "max_check_drop", 0.0, 0.0, 1.0),
        tags=tuple(tags),
        **names,
    )
