"""The seed's TextBlob and VADER rules at their boundaries, and the model seam."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

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
