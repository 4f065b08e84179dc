"""Sentiment scoring throughput: texts/s for TextBlob, VADER, the trained model, and the rules
plus the model together (what the DAG's scoring task runs), on one core.

    .venv/bin/python bench/sentiment_score.py [--texts 10000] [--rounds 3] [--model DIR]
                                              [--data ../shared/data/sentiment]

The texts are generated Reddit-like comments (1-4 sentences, some emoji, some long ones). The
model is a saved one (``--model``, a folder ``SentimentModel.save`` wrote) or, by default, the
shipped config of retrain.yaml trained on the shared sentiment sets (the three rated files and
the TweetEval file). Each scorer runs ``--rounds`` times, interleaved, and its best round counts;
figures are printed next to a trivial baseline and VADER measured in the same run, so the ratios
mean something on a shared machine. Target (issue 32): the model >= 2,000 texts/s. Not a test.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include")]

SENTENCES = [
    "This is honestly the best thing I have read all week!", "What a terrible idea, it broke everything.",
    "The meeting moved to Thursday.", "I love how simple this is 😍", "Ugh, this bug ruined my weekend.",
    "Which version are you running?", "Nice write-up, very clear and helpful.", "No, that is wrong and annoying.",
    "It depends on the size of the table.", "Great job everyone 🎉🎉",
]  # fmt: skip


def make_texts(n: int, seed: int = 42) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        text = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 4)))
        texts.append(text * 20 if i % 500 == 0 else text)  # an occasional very long comment
    return texts


def trained_model(data: Path):
    """The shipped model config trained on every row of the shared sentiment sets."""
    from nightshift_core.ml.config import load
    from nightshift_core.ml.labels import read_labels
    from nightshift_core.ml.model import TrainingExample, train

    cfg = load()
    rated = sorted(data.glob("*_GroundTruth.txt"))
    tweets = data / cfg.labels.tweets.path if cfg.labels.tweets is not None else None
    rows = read_labels(rated + ([tweets] if tweets is not None and tweets.is_file() else []))
    examples = [TrainingExample(r.text, r.label, r.rating, categorical=r.rating is None, source=r.source)
                for r in rows]  # fmt: skip
    started = time.perf_counter()
    model, history = train(examples, cfg.model, log=lambda _: None)
    print(f"trained the shipped config on {len(examples)} shared texts in {time.perf_counter() - started:.0f} s "
          f"(vocabulary {history['vocabulary']})")  # fmt: skip
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", type=Path, help="a saved model folder (default: train the shipped config)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sentiment")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)  # "texts/s on one core"
    from nightshift_core.ml.model import SentimentModel
    from nightshift_core.sentiment.rules import (
        score_texts,
        textblob_label,
        textblob_polarity,
        vader_label,
        vader_scores,
    )

    model = SentimentModel.load(args.model) if args.model else trained_model(args.data)
    texts = make_texts(args.texts)
    (
        textblob_polarity("warm up"),
        vader_scores("warm up"),
        model.predict(["warm up"]),
    )  # loading is not scoring
    scorers = {
        "baseline (lower+split)": lambda ts: [t.lower().split() for t in ts],
        "textblob": lambda ts: [textblob_label(textblob_polarity(t)) for t in ts],
        "vader": lambda ts: [vader_label(vader_scores(t)) for t in ts],
        "model": model.predict,
        "score_texts (rules+model)": lambda ts: score_texts(ts, model),
    }
    best = dict.fromkeys(scorers, float("inf"))
    for _ in range(args.rounds):
        for name, fn in scorers.items():
            started = time.perf_counter()
            fn(texts)
            best[name] = min(best[name], time.perf_counter() - started)
    per_s = {name: len(texts) / seconds for name, seconds in best.items()}
    print(f"{'scorer':26} {'texts':>7} {'seconds':>8} {'texts/s':>10} {'x baseline':>11} {'x VADER':>8}")
    for name, seconds in best.items():
        print(f"{name:26} {len(texts):>7} {seconds:>8.2f} {per_s[name]:>10.0f} "
              f"{per_s['baseline (lower+split)'] / per_s[name]:>11.1f} {per_s['vader'] / per_s[name]:>8.2f}")  # fmt: skip
    ok = per_s["model"] >= 2000
    print(f"model: {per_s['model']:.0f} texts/s, {per_s['vader'] / per_s['model']:.2f} x VADER's time "
          f"(best of {args.rounds}): target >= 2000 texts/s {'met' if ok else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
