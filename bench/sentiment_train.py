"""Sentiment model bench: the shipped challenger against VADER and TextBlob on the shared sets.

    .venv/bin/python bench/sentiment_train.py [--seed 13] [--epochs N] [--data ../shared/data/sentiment]

Trains once on the union of the 80 % splits of the three human-rated sets (movie, Amazon, NYT
sentences; the split is the project's frozen hash split, seed 42), then evaluates each set's
20 % with the model, VADER (compound, +-0.05) and TextBlob in the same run: weighted F1, macro
F1, Pearson r of scores vs mean ratings, texts/s. Ratios are against VADER measured in the same
run (this machine is noisy; absolute times mean little). Targets from the issue: weighted F1 >=
VADER + 0.10 per set, >= 2,000 texts/s, training <= 10 minutes. Not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include")]
SETS = {"movie": "movieReviewSnippets", "amazon": "amazonReviewSnippets", "nyt": "nytEditorialSnippets"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sentiment")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a model setting"
    )
    args = parser.parse_args()

    from nightshift_core.ml.config import load
    from nightshift_core.ml.data import split_human
    from nightshift_core.ml.evaluation import evaluate_model, evaluate_rule
    from nightshift_core.ml.labels import read_file
    from nightshift_core.ml.model import train

    cfg = load()
    model_config = dataclasses.replace(
        cfg.model,
        **{k: v for k, v in (("seed", args.seed), ("epochs", args.epochs)) if v is not None},
        **{k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)},
    )
    train_set, evals = [], {}
    for name, stem in SETS.items():
        rows = [dataclasses.asdict(r) for r in read_file(args.data / f"{stem}_GroundTruth.txt")]
        split = split_human(rows, cfg.split_seed, cfg.eval_share)
        train_set += split.train
        evals[name] = split.eval
    print(f"train: {len(train_set)} sentences; eval: " + ", ".join(f"{k} {len(v)}" for k, v in evals.items()))
    print(f"model: {model_config}")

    started = time.perf_counter()
    model, history = train(train_set, model_config, log=lambda _: None)
    train_s = time.perf_counter() - started
    print(f"training: {train_s:.1f} s wall ({len(history['loss'])} epochs), target <= 600 s\n")

    header = f"{'set':8} {'scorer':9} {'wF1':>6} {'mF1':>6} {'r':>6} {'texts/s':>8}   vs VADER"
    print(header)
    print("-" * len(header))
    met = True
    for name, examples in evals.items():
        vader = evaluate_rule("vader", examples)
        results = {
            "model": evaluate_model(model, examples),
            "vader": vader,
            "textblob": evaluate_rule("textblob", examples),
        }
        for scorer, r in results.items():
            per_s = 1e6 / r["ms_per_1k"]
            versus = f"F1 {r['weighted_f1'] - vader['weighted_f1']:+.3f}, speed {vader['ms_per_1k'] / r['ms_per_1k']:.2f}x"
            pearson = "-" if r["pearson_r"] is None else f"{r['pearson_r']:.3f}"
            print(
                f"{name:8} {scorer:9} {r['weighted_f1']:6.3f} {r['macro_f1']:6.3f} {pearson:>6} {per_s:8.0f}   {versus}"
            )
        gain = results["model"]["weighted_f1"] - vader["weighted_f1"]
        fast = 1e6 / results["model"]["ms_per_1k"] >= 2000
        met &= gain >= 0.10 and fast
        print(f"{'':8} target F1 >= VADER + 0.10: {'met' if gain >= 0.10 else 'NOT met'} ({gain:+.3f}); "
              f">= 2000 texts/s: {'met' if fast else 'NOT met'}\n")  # fmt: skip
    print(f"all targets {'met' if met and train_s <= 600 else 'NOT met'}; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
