"""Sentiment scoring throughput: texts/s for TextBlob, VADER and both (what the DAG runs).

    .venv/bin/python bench/sentiment_score.py [--texts 10000]

The texts are generated Reddit-like comments (1-4 sentences, some emoji, some long ones).
Figures are printed next to a trivial baseline measured in the same run (lower-casing and
splitting each text), so the ratio means something on a shared machine. Not a test.
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


def measure(name: str, fn, texts: list[str]) -> dict:
    started = time.perf_counter()
    for text in texts:
        fn(text)
    seconds = time.perf_counter() - started
    return {"scorer": name, "texts": len(texts), "seconds": seconds, "per_s": len(texts) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=10_000)
    args = parser.parse_args()

    from nightshift_core.sentiment.rules import (
        score_texts,
        textblob_label,
        textblob_polarity,
        vader_label,
        vader_scores,
    )

    texts = make_texts(args.texts)
    textblob_polarity("warm up"), vader_scores("warm up")  # lexicon loading is not scoring
    results = [
        measure("baseline (lower+split)", lambda t: t.lower().split(), texts),
        measure("textblob", lambda t: textblob_label(textblob_polarity(t)), texts),
        measure("vader", lambda t: vader_label(vader_scores(t)), texts),
    ]
    started = time.perf_counter()
    score_texts(texts)
    seconds = time.perf_counter() - started
    results.append({"scorer": "score_texts (both)", "texts": len(texts), "seconds": seconds,
                    "per_s": len(texts) / seconds})  # fmt: skip
    base = results[0]["per_s"]
    print(f"{'scorer':24} {'texts':>7} {'seconds':>8} {'texts/s':>10} {'x slower than baseline':>24}")
    for r in results:
        print(
            f"{r['scorer']:24} {r['texts']:>7} {r['seconds']:>8.2f} {r['per_s']:>10.0f} {base / r['per_s']:>24.1f}"
        )


if __name__ == "__main__":
    main()
