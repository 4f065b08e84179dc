"""The retraining definition: ``include/config/retrain.yaml``, validated strictly."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PlainValidator, StrictStr, ValidationInfo, WithJsonSchema

from nightshift_core.yamlconf import (
    CONFIG_DIR,
    ConfigError,
    ConfigModel,
    DagId,
    FileModel,
    Fix,
    Schedule,
    StartDate,
    Tags,
    ident,
    number,
    parse,
    text,
)

ROOT = Path(__file__).resolve().parents[3]
CONFIG_PATH = CONFIG_DIR / "retrain.yaml"
LABELS_ENV = "NIGHTSHIFT_LABELS_DIR"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture and training knobs; saved beside the weights, part of the version digest."""

    dim: int = 16
    ngrams: int = 2
    char_ngrams: int = 0  # > 0: also character n-grams of this length (for words never seen whole)
    textblob: int = 0  # 1: TextBlob's polarity and subjectivity enter the prior (half the scoring time)
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
    rating_share: float = 1.0  # served score = this share of the rating head + the rest VADER's compound
    l2: float = 0.001  # penalty pulling the learned departures from the rule back to zero
    l2_reference: int = 0  # > 0: l2 holds at this many training texts, scaled by sqrt(this / n) for n texts
    class_balance: float = 0.0  # 0: plain loss; 1: classes weighted by inverse frequency
    weak_weight: float = 0.5
    calibrate_share: float = 0.1  # human labels held out of the fit to calibrate class offsets
    scale_bias: int = 1  # 1: categorical files' own class boundaries go to a training-only bias
    marked_scale: int = (
        0  # 1: texts with a tweet's markers (@mention, #hashtag) get a share of it of their own
    )
    tweet_likeness: int = (
        0  # 1: the scale bias is served by a learned tweet-likeness score (over marked_scale)
    )
    tweet_head: int = 0  # 1: a linear head on the categorical file's texts, added x tweet-likeness^2
    fallback_share: float = 0.0  # > 0: human labels held out of the fit to choose the fallback threshold
    seed: int = 13

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> ModelConfig:
        """``self``, or a ValueError naming the setting that is out of range."""
        limits = {"dim": (2, 1024), "ngrams": (1, 3), "char_ngrams": (0, 6), "textblob": (0, 1), "min_count": (1, 10**6),
                  "max_vocabulary": (1, 10**7), "shrink": (0.0, 1000.0), "dropout": (0.0, 0.9),
                  "epochs": (1, 100), "min_steps": (0, 10**6), "batch_size": (1, 4096), "lr": (1e-5, 1.0),
                  "weight_decay": (0.0, 10.0), "l2": (0.0, 10.0), "rating_weight": (0.0, 10.0), "rating_share": (0.0, 1.0), "class_balance": (0.0, 1.0),
                  "weak_weight": (0.0, 1.0), "calibrate_share": (0.0, 0.5), "fallback_share": (0.0, 0.5), "scale_bias": (0, 1),
                  "marked_scale": (0, 1), "tweet_likeness": (0, 1), "tweet_head": (0, 1),
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


class RetrainConfigError(ConfigError):
    """A bad retrain.yaml."""


def _model_config(value: Any) -> ModelConfig:
    if isinstance(value, ModelConfig):
        return value
    try:
        return ModelConfig.from_dict(value or {}).validate()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model: {exc}") from None


def _model_schema() -> dict[str, Any]:
    kinds = {int: "integer", float: "number"}
    return {
        "type": "object",
        "description": "Architecture and training knobs of nightshift_core.ml.model (saved beside the weights)",
        "properties": {
            f.name: {"type": kinds[type(f.default)], "default": f.default}
            for f in dataclasses.fields(ModelConfig)
        },
        "additionalProperties": False,
    }


class Tweets(ConfigModel):
    """Categorical social-media labels (TweetEval's layout) beside the rated sets; a seeded share
    of them is never trained on and is the gate's social-media check set."""

    path: text("Tweet file, relative to the labels folder (e.g. tweeteval/sentiment_12k.tsv)")
    check_share: number(0.05, 0.5, "Seeded share (by text hash) never trained on: the gate's check set") = 0.2
    check_seed: number(0, 2**31, "Seed of that split", whole=True) = 32
    max_train: number(0, 10**9, "Train on at most this many of the other tweets (0: all)", whole=True) = 0


class Labels(ConfigModel):
    """The human label files."""

    path: text("A label file or a folder of them, from the project root (NIGHTSHIFT_LABELS_DIR overrides it)")
    eval_share: number(0.05, 0.5, "Share of human labels in the frozen evaluation set (by text hash)") = 0.2
    split_seed: number(0, 2**31, "Seed of the evaluation split", whole=True) = 42
    tweets: Tweets | None = None


class WeakLabels(ConfigModel):
    """Scraped texts where VADER and TextBlob agree, used as labels (remove the block for human labels only)."""

    max_share: number(0.0, 0.9, "At most this share of the training set is weak") = 0.3
    min_vader_compound: number(0.0, 1.0, "VADER must be at least this sure") = 0.5
    min_textblob_polarity: number(0.0, 1.0, "TextBlob must be at least this sure") = 0.3


class RetrainWhen(ConfigModel):
    """When a run trains at all."""

    min_new_labels: number(
        0, 10**9, "Fewer new human labels since the champion, and no drift: skip", whole=True
    ) = 50


class Drift(ConfigModel):
    """Drift of the scraped texts from the champion's training texts, and of the champion's F1."""

    recent_days: number(
        1, 365, "Scraped texts of the last N days against the champion's training texts", whole=True
    ) = 7
    min_recent_texts: number(1, 10**9, "Fewer recent texts: no distribution check", whole=True) = 50
    max_length_psi: number(0.0, 100.0, "Population stability index of text lengths") = 0.25
    max_score_psi: number(0.0, 100.0, "... and of VADER compound scores") = 0.25
    max_unseen_share: number(0.0, 1.0, "Share of recent words the champion never saw in training") = 0.35
    max_f1_drop: number(0.0, 1.0, "Champion F1 on labels newer than it vs its F1 at promotion") = 0.05
    min_new_eval_labels: number(
        1, 10**9, "Labels newer than the champion needed for the F1 check", whole=True
    ) = 20


class Gate(ConfigModel):
    """What a challenger must do to be promoted."""

    min_f1_gain: number(
        -1.0, 1.0, "Challenger weighted F1 >= champion's + this, on the frozen evaluation set"
    ) = 0.01
    max_ms_per_1k: (
        number(1.0, 10**7, "Absolute scoring budget per 1,000 texts (a busy machine breaks it)") | None
    ) = None
    max_vader_ratio: (
        number(
            0.1, 1000.0, "Scoring time at most this many times VADER's, measured in the same evaluate task"
        )
        | None
    ) = 4.0
    check_set: Annotated[
        StrictStr | None,
        Field(min_length=1),
        Fix("gate.check_set must be a label file path (or leave it out for no out-of-domain check)"),
    ] = Field(None, description="Out-of-domain check set (a label file, from the project root)")
    max_check_drop: number(
        0.0, 1.0, "On the check set the challenger's weighted F1 must be >= VADER's - this"
    ) = 0.0


class RetrainConfig(FileModel):
    """The retraining definition: ``include/config/retrain.yaml`` (dags/sentiment_retrain.py)."""

    dag_id: DagId = "sentiment_retrain"
    description: StrictStr = Field("Retrain the sentiment model", description="One line shown in the UI")
    schedule: Schedule = "0 2 * * *"
    start_date: StartDate
    queue: text("Celery queue of the torch tasks (train, evaluate, promote)") = "ml"
    dataset: ident("dataset name", "Warehouse dataset of ml.labels and ml.retrain_checks") = "ml"
    model_name: text("MLflow registered model; aliases champion and rollback") = "sentiment"
    mlflow_conn_id: text("Airflow connection of the MLflow tracking server") = "mlflow_default"
    labels: Annotated[
        Labels, Fix("labels must be a mapping with path, e.g. {path: include/data/sentiment_labels.csv}")
    ]
    texts_dataset: ident(
        "dataset name", "Scraped Reddit texts and their rule scores (weak labels, drift)"
    ) = "reddit"
    weak: WeakLabels | None = Field(None, alias="weak_labels")
    retrain_when: RetrainWhen = RetrainWhen()
    drift: Drift = Drift()
    model: Annotated[ModelConfig, PlainValidator(_model_config), WithJsonSchema(_model_schema())] = (
        ModelConfig()
    )
    gate: Gate = Gate()
    tags: Tags = ("nightshift", "sentiment", "ml")

    @classmethod
    def prepare(cls, data: dict, info: ValidationInfo) -> dict:
        data = super().prepare(data, info)
        if not data.get("description"):
            data.pop("description", None)
        return data

    def labels_location(self) -> Path:
        """Where the label files are: $NIGHTSHIFT_LABELS_DIR, else ``labels.path`` (from the project root)."""
        chosen = os.environ.get(LABELS_ENV) or self.labels.path
        path = Path(chosen)
        return path if path.is_absolute() else ROOT / path

    def labels_folder(self) -> Path:
        """The folder of the label files: the labels location itself, or the folder of that file."""
        location = self.labels_location()
        return location if location.is_dir() else location.parent

    def tweets_location(self) -> Path | None:
        """The categorical tweet file (``labels.tweets.path``, relative to :meth:`labels_folder`)."""
        if self.labels.tweets is None:
            return None
        path = Path(self.labels.tweets.path)
        return path if path.is_absolute() else self.labels_folder() / path

    def check_set_location(self) -> Path | None:
        """The out-of-domain check set of the gate (``gate.check_set``, from the project root)."""
        if not self.gate.check_set:
            return None
        path = Path(self.gate.check_set)
        return path if path.is_absolute() else ROOT / path


def load(path: Path = CONFIG_PATH) -> RetrainConfig:
    """Read and validate ``path``; every problem is a :class:`RetrainConfigError`."""
    return parse(RetrainConfig, path, RetrainConfigError)
