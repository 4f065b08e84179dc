"""The seed's TextBlob and VADER rules at their boundaries, and the model seam."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from nightshift_core.ml import fastvader
from nightshift_core.ml.labels import read_file
from nightshift_core.sentiment.rules import (
    Scorer,
    score_texts,
    textblob_label,
    textblob_polarity,
    vader_label,
    vader_scores,
)


@pytest.mark.parametrize(
    ("polarity", "label"),
    [
        (1.0, "positive"),
        (0.0001, "positive"),
        (0.00011, "positive"),
        (0.00009, "neutral"),
        (0.0, "neutral"),
        (-0.00009, "neutral"),
        (-0.0001, "negative"),
        (-0.00011, "negative"),
        (-1.0, "negative"),
    ],
)
def test_textblob_rule(polarity: float, label: str):
    assert textblob_label(polarity) == label


@pytest.mark.parametrize(
    ("pos", "neg", "label"),
    [
        (0.3, 0.0, "positive"),  # neg <= 0.05 and pos > neg
        (0.06, 0.05, "positive"),  # neg exactly at the boundary still counts as "low"
        (0.05, 0.05, "neutral"),  # neg low but pos - neg == 0
        (0.0, 0.0, "neutral"),  # nothing at all
        (0.02, 0.04, "neutral"),  # neg low, pos lower: the seed calls it neutral, not negative
        (0.05, 0.3, "negative"),  # neg high, pos exactly at the boundary
        (0.0, 0.051, "negative"),
        (0.051, 0.3, "neutral"),  # both above 0.05
        (0.3, 0.06, "neutral"),  # both above 0.05 even though pos dominates
    ],
)
def test_vader_rule(pos: float, neg: float, label: str):
    assert vader_label({"pos": pos, "neg": neg, "neu": 1 - pos - neg, "compound": 0.0}) == label


@pytest.mark.parametrize(
    ("text", "textblob", "vader"),
    [
        ("What a wonderful, happy day. I love it!", "positive", "positive"),
        ("This is terrible, awful and I hate it.", "negative", "negative"),
        ("The bus leaves at nine.", "neutral", "neutral"),
    ],
)
def test_real_libraries_through_the_rules(text: str, textblob: str, vader: str):
    (row,) = score_texts([text])
    assert row["textblob_label"] == textblob and row["vader_label"] == vader
    assert row["textblob_polarity"] == textblob_polarity(text)
    assert row["vader_compound"] == vader_scores(text)["compound"]
    assert row["model_label"] is None and row["model_version"] is None


def test_vader_works_offline_with_emoji():
    # vaderSentiment ships its lexicon and emoji table; nltk's downloader is never needed.
    assert vader_scores("😀😀")["compound"] > 0


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sentiment"


def test_the_fast_vader_is_vader_on_every_shared_sentiment_text():
    """The model's feature path scores with :mod:`nightshift_core.ml.fastvader`: it must give
    ``polarity_scores``' exact dict on real text (19,503 rated sentences, 12,284 tweets)."""
    files = [*sorted(SHARED.glob("*_GroundTruth.txt")), SHARED / "tweeteval" / "sentiment_12k.tsv"]
    texts = [row.text for path in files for row in read_file(path)]
    assert len(texts) > 30_000
    differ = [t for t in texts if fastvader.polarity_scores(t) != vader_scores(t)]
    assert not differ, f"{len(differ)} texts differ, e.g. {differ[:3]}"


def test_the_fast_vader_is_vader_on_text_made_to_hit_every_rule():
    """Boosters (also in capitals), negations before and across words, "no", "least", "kind of",
    "but" with repeated values, idioms, emoticons, emoji glued to words, punctuation runs."""
    from vaderSentiment import vaderSentiment as module

    rng = random.Random(32)
    lexicon = sorted(fastvader._lexicons()[0])
    words = (
        rng.sample(lexicon, 400)
        + list(module.BOOSTER_DICT)
        + list(module.NEGATE)
        + [w for case in module.SPECIAL_CASES for w in case.split()]
    )
    words += ["but", "BUT", "least", "at", "very", "no", "or", "nor", "kind", "of", "never", "so", "this", "without",
              "doubt", "GOOD", "Bad", "HATE", "!", "?", "!!", "???", "...", ":)", ":-(", "<3", "😍", "🎉🎉",
              "a😍b", " 😢", "(good)", "'no'", "\t", "n't", "isn't", "the", "a"]  # fmt: skip
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 16))) for _ in range(5000)]
    texts += ["good but good but good", "GOOD good BAD bad", "not at least good", "the shit", "kind of good"]
    differ = [t for t in texts if fastvader.polarity_scores(t) != vader_scores(t)]
    assert not differ, f"{len(differ)} texts differ, e.g. {differ[:3]}"
    assert len({fastvader.polarity_scores(t)["compound"] for t in texts}) > 500  # the texts vary the score


class _ConstantModel:
    name = "tiny"
    version = "3"

    def __init__(self, n: int | None = None) -> None:
        self.n = n

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        return [("negative", 0.75)] * (len(texts) if self.n is None else self.n)


def test_a_model_scores_every_text_with_its_version():
    model = _ConstantModel()
    assert isinstance(model, Scorer)
    rows = score_texts(["good", "bad"], model)
    assert [(r["model_label"], r["model_score"], r["model_version"]) for r in rows] == [
        ("negative", 0.75, "tiny:3"),
        ("negative", 0.75, "tiny:3"),
    ]


def test_a_model_that_drops_texts_is_an_error():
    with pytest.raises(ValueError, match="returned 1 predictions for 2 texts"):
        score_texts(["good", "bad"], _ConstantModel(n=1))
