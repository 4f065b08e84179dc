"""TextBlob and VADER labels exactly as the seed defined them, as pure functions.

The thresholds are the seed's, kept on purpose so labels stay comparable with its history:
TextBlob polarity ``>= 0.0001`` is positive and ``<= -0.0001`` negative; VADER looks at the
``pos``/``neg`` proportions, not the compound score. VADER comes from the ``vaderSentiment``
package, which ships its lexicon (nltk's VADER needs a download that cannot work offline).

A trained model plugs in through :class:`Scorer`: the scoring task passes the registry's
current champion (``nightshift_core.ml.model.SentimentModel``), or ``None`` for rules only.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

Label = Literal["positive", "negative", "neutral"]
LABELS: tuple[Label, ...] = ("positive", "negative", "neutral")

TEXTBLOB_THRESHOLD = 0.0001
VADER_PROPORTION = 0.05


def textblob_label(polarity: float) -> Label:
    """The seed's TextBlob rule: polarity >= 0.0001 positive, <= -0.0001 negative, else neutral."""
    if polarity >= TEXTBLOB_THRESHOLD:
        return "positive"
    if polarity <= -TEXTBLOB_THRESHOLD:
        return "negative"
    return "neutral"


def vader_label(scores: Mapping[str, float]) -> Label:
    """The seed's VADER rule on the ``pos``/``neg`` proportions of ``polarity_scores``."""
    pos, neg = scores["pos"], scores["neg"]
    if neg <= VADER_PROPORTION:
        return "positive" if pos - neg > 0 else "neutral"
    if pos <= VADER_PROPORTION:
        return "negative" if pos - neg <= 0 else "neutral"
    return "neutral"


@functools.cache
def _textblob():
    from textblob.sentiments import PatternAnalyzer

    return PatternAnalyzer()


@functools.cache
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def textblob_polarity(text: str) -> float:
    """TextBlob's pattern-analyzer polarity in [-1, 1] (what ``TextBlob(text).sentiment`` returns)."""
    return float(_textblob().analyze(text).polarity)


def vader_scores(text: str) -> dict[str, float]:
    """VADER's ``neg``, ``neu``, ``pos`` and ``compound`` for ``text``."""
    return _vader().polarity_scores(text)


@runtime_checkable
class Scorer(Protocol):
    """A trained sentiment model: its name and version are stored with every label it gives."""

    name: str
    version: str

    def predict(self, texts: Sequence[str]) -> list[tuple[Label, float]]:
        """One ``(label, score)`` per text, in order; score is a polarity in [-1, 1]."""
        ...


def score_texts(texts: Iterable[str], model: Scorer | None = None) -> list[dict[str, Any]]:
    """Every scorer's output for each text: one dict per text, in order."""
    texts = list(texts)
    predictions = model.predict(texts) if model is not None and texts else None
    if predictions is not None and len(predictions) != len(texts):
        raise ValueError(
            f"model {model.name} {model.version} returned {len(predictions)} predictions for "
            f"{len(texts)} texts; a Scorer must return exactly one per text"
        )
    rows = []
    for i, text in enumerate(texts):
        polarity = textblob_polarity(text)
        vader = vader_scores(text)
        label, score = predictions[i] if predictions is not None else (None, None)
        rows.append(
            {
                "textblob_polarity": polarity,
                "textblob_label": textblob_label(polarity),
                "vader_compound": vader["compound"],
                "vader_pos": vader["pos"],
                "vader_neg": vader["neg"],
                "vader_neu": vader["neu"],
                "vader_label": vader_label(vader),
                "model_label": label,
                "model_score": None if score is None else float(score),
                "model_version": f"{model.name}:{model.version}" if predictions is not None else None,
            }
        )
    return rows
