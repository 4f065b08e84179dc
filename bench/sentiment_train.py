"""Sentiment model bench: the shipped challenger against VADER and TextBlob, in domain and out.

    .venv/bin/python bench/sentiment_train.py [--mode all|in|lodo] [--set KEY=VALUE ...]
                                              [--data ../shared/data/sentiment]

* ``in``: train once on the union of the 80 % splits of the three human-rated sets (movie,
  Amazon, NYT sentences; the project's frozen hash split, seed 42), evaluate each set's 20 %.
* ``lodo`` (leave one domain out): for each set, train on the other two sets' 80 % splits and
  evaluate on the held-out set's 20 % split -- text the model never saw the domain of.

Both modes add weak labels the way the DAG does: texts of the embedded Reddit snapshot where
VADER and TextBlob agree confidently, capped at the configured share. VADER (compound, +-0.05)
and TextBlob are measured in the same run on the same texts: weighted F1, macro F1, Pearson r
of scores vs mean ratings, texts/s on one core. Targets (the issue's): out of domain >= VADER in
wF1 and r on every held-out set; in domain >= VADER + 0.10 wF1 on movie and Amazon, + 0.03 on
NYT; >= 2,000 texts/s; training <= 10 minutes. Not a test.
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
IN_DOMAIN_GAIN = {"movie": 0.10, "amazon": 0.10, "nyt": 0.03}


def snapshot_texts() -> list[str]:
    snapshot = json.loads((ROOT / "include" / "data" / "reddit_snapshot.json").read_text())["subreddits"]
    texts = []
    for posts in snapshot.values():
        stack = []
        for post in posts:
            texts += [post.get("title") or "", post.get("selftext") or ""]
            stack += post.get("comments", [])
        while stack:
            comment = stack.pop()
            texts.append(comment.get("body") or "")
            stack += comment.get("replies", [])
    return [t for t in texts if t.strip() and t not in ("[deleted]", "[removed]")]


def weak(cfg, n_human: int, exclude: set[str]):
    from nightshift_core.ml.data import weak_examples
    from nightshift_core.sentiment.rules import textblob_polarity, vader_scores

    if cfg.weak is None:
        return []
    rows = [{"text": t, "vader_compound": vader_scores(t)["compound"], "textblob_polarity": textblob_polarity(t)}
            for t in snapshot_texts()]  # fmt: skip
    return weak_examples(rows, exclude=exclude, n_human=n_human, max_share=cfg.weak.max_share,
                         min_vader_compound=cfg.weak.min_vader_compound,
                         min_textblob_polarity=cfg.weak.min_textblob_polarity)  # fmt: skip


def table(title: str, folds: dict[str, tuple[dict, dict, dict]], gains: dict[str, float] | None) -> bool:
    print(f"\n{title}")
    header = f"{'held-out':9} {'scorer':9} {'wF1':>6} {'mF1':>6} {'r':>6} {'texts/s':>8}   vs VADER"
    print(header + "\n" + "-" * len(header))
    met = True
    for name, (model, vader, textblob) in folds.items():
        for scorer, r in (("model", model), ("vader", vader), ("textblob", textblob)):
            per_s = 1e6 / r["ms_per_1k"]
            pearson = "-" if r["pearson_r"] is None else f"{r['pearson_r']:.3f}"
            versus = f"wF1 {r['weighted_f1'] - vader['weighted_f1']:+.3f}, r {(r['pearson_r'] or 0) - vader['pearson_r']:+.3f}"
            print(
                f"{name:9} {scorer:9} {r['weighted_f1']:6.3f} {r['macro_f1']:6.3f} {pearson:>6} {per_s:8.0f}   {versus}"
            )
        gain = model["weighted_f1"] - vader["weighted_f1"]
        r_gain = model["pearson_r"] - vader["pearson_r"]
        fast = 1e6 / model["ms_per_1k"] >= 2000
        need = 0.0 if gains is None else gains[name]
        ok = gain >= need and (gains is not None or r_gain >= 0) and fast
        met &= ok
        what = f"wF1 >= VADER + {need:.2f}" + ("" if gains else " and r >= VADER's")
        print(f"{'':9} target {what}, >= 2000 texts/s: {'met' if ok else 'NOT met'} "
              f"(wF1 {gain:+.3f}, r {r_gain:+.3f}, {1e6 / model['ms_per_1k']:.0f} texts/s)\n")  # fmt: skip
    return met


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sentiment")
    parser.add_argument("--mode", choices=("all", "in", "lodo"), default="all")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a model setting"
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)  # "texts/s on one core"
    from nightshift_core.ml.config import load
    from nightshift_core.ml.data import split_human
    from nightshift_core.ml.evaluation import evaluate_model, evaluate_rule
    from nightshift_core.ml.labels import read_file, text_key
    from nightshift_core.ml.model import train

    cfg = load()
    model_config = dataclasses.replace(
        cfg.model, **{k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    ).validate()
    print(f"model: {model_config}")
    splits = {}
    for name, stem in SETS.items():
        rows = [dataclasses.asdict(r) for r in read_file(args.data / f"{stem}_GroundTruth.txt")]
        splits[name] = split_human(rows, cfg.split_seed, cfg.eval_share)
    print("sets (train/eval): " + ", ".join(f"{k} {len(s.train)}/{len(s.eval)}" for k, s in splits.items()))

    def fit(names: list[str]):
        human = [e for n in names for e in splits[n].train]
        extra = weak(
            cfg, len(human), {text_key(e.text) for n in splits for e in splits[n].train + splits[n].eval}
        )
        started = time.perf_counter()
        model, history = train(human + extra, model_config, log=lambda _: None)
        seconds = time.perf_counter() - started
        print(f"  trained on {'+'.join(names)}: {len(human)} human + {len(extra)} weak, {seconds:.1f} s, "
              f"vocabulary {history['vocabulary']}, offsets {history['offsets']}")  # fmt: skip
        return model, seconds

    def fold(model, name: str):
        examples = splits[name].eval
        return (
            evaluate_model(model, examples),
            evaluate_rule("vader", examples),
            evaluate_rule("textblob", examples),
        )

    met, slowest = True, 0.0
    if args.mode in ("all", "lodo"):
        print("\nleave-one-domain-out: train on two sets, evaluate the third's 20 % split")
        folds = {}
        for name in SETS:
            model, seconds = fit([n for n in SETS if n != name])
            slowest = max(slowest, seconds)
            folds[name] = fold(model, name)
        met &= table("OUT OF DOMAIN (target: >= VADER in wF1 and r)", folds, None)
    if args.mode in ("all", "in"):
        print("\nin domain: train on all three sets' 80 % splits")
        model, seconds = fit(list(SETS))
        slowest = max(slowest, seconds)
        met &= table("IN DOMAIN", {name: fold(model, name) for name in SETS}, IN_DOMAIN_GAIN)
    # The gate's out-of-domain check set (short social-media posts made for the project), scored by
    # the in-domain model when it was trained, else the last fold's.
    from nightshift_core.ml.labels import read_labels
    from nightshift_core.ml.model import TrainingExample

    location = cfg.check_set_location()
    if location is not None:
        rows = [TrainingExample(r.text, r.label, r.rating) for r in read_labels([location])]
        ours, vader = evaluate_model(model, rows), evaluate_rule("vader", rows)
        textblob = evaluate_rule("textblob", rows)
        print(f"check set {location.name} ({len(rows)} texts): wF1 model {ours['weighted_f1']:.3f}, "
              f"VADER {vader['weighted_f1']:.3f}, TextBlob {textblob['weighted_f1']:.3f}")  # fmt: skip
    print(f"slowest training {slowest:.1f} s (target <= 600 s); all targets {'met' if met and slowest <= 600 else 'NOT met'}; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
