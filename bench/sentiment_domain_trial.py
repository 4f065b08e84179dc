"""Trial: serve the tweets' scale bias by a learned tweet-likeness score instead of the marker check.

    .venv/bin/python bench/sentiment_domain_trial.py [--seed 13] [--data ../shared/data/sentiment]

Trains the shipped model in domain once (every domain's training part plus the weak Reddit
labels, as ``bench/sentiment_train.py --mode in``), then a small tweet-likeness classifier on the
same training texts the model fits on (``nightshift_core.ml.model.TweetLikeness``: TweetEval
tweets against the rated sets and the weak Reddit texts, logistic regression on hashed character
2-4-grams plus marker, link, length, casing and non-ASCII columns). The model's held-out labels (its ``fallback_share``) then choose,
as ``choose_fallback`` does, how the scale bias is served:

* ``shipped``: the model as trained with ``tweet_likeness`` 0 (one share without markers, one with);
* ``prob``: share ``a + (b - a) * p`` for tweet-likeness ``p`` (``a``, ``b`` on the model's grid);
* ``prob+marks``: as ``prob``, but a text with markers always gets ``b``;
* ``thresh T``: share ``b`` where ``p >= T`` or the text has markers, else ``a``; ``prob^2``: ``p`` squared.

Each is measured on every held-out part (tweets with and without markers too) and the 120-post
check set, against VADER; plus the classifier's texts/s on one core. Not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "bench")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sentiment")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from sentiment_train import SETS, domain_splits, weak

    from nightshift_core.ml.config import load
    from nightshift_core.ml.labels import read_labels, text_key
    from nightshift_core.ml.metrics import classification_report
    from nightshift_core.ml.model import (
        SCALE_SHARES,
        SOCIAL_MARKERS,
        TrainingExample,
        TweetLikeness,
        _calibration_part,
        _weighted_f1,
        choose_threshold,
        rule_labels,
        train,
        with_fallback,
    )
    from nightshift_core.sentiment.rules import LABELS

    cfg = load()
    # The markers' model (tweet_likeness 0): its shares are the 'shipped' row; the others re-serve its logits.
    config = dataclasses.replace(cfg.model, seed=args.seed, tweet_likeness=0, marked_scale=1).validate()
    splits = domain_splits(cfg, args.data)
    human = [e for s in splits.values() for e in s.train]
    extra = weak(cfg, len(human), {text_key(e.text) for s in splits.values() for e in s.train + s.eval})
    examples = human + extra
    started = time.perf_counter()
    model, history = train(examples, config, log=lambda _: None)
    print(f"seed {args.seed}: trained in {time.perf_counter() - started:.1f} s; shares {history['scale_share']} / "
          f"{history['marked_share']} (markers), threshold {model.threshold}, bias {history['scale_bias']}")  # fmt: skip

    share = max(config.calibrate_share, config.fallback_share)
    calib_mask = [not e.weak and _calibration_part(e.text, config.seed, share) for e in examples]
    fit = [e for e, h in zip(examples, calib_mask, strict=True) if not h]
    calib = [e for e, h in zip(examples, calib_mask, strict=True) if h]
    started = time.perf_counter()
    likeness = TweetLikeness().fit([e.text for e in fit], [e.categorical for e in fit])
    print(f"tweet-likeness trained on {len(fit)} texts ({sum(e.categorical for e in fit)} tweets) in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip

    bias = np.array(history["scale_bias"], dtype=np.float32)
    s_u, s_m = history["scale_share"], history["marked_share"]

    def raw(texts):
        """Logits without any scale share, VADER compounds, marker flags, tweet-likeness."""
        analysed = model.encoder.analyse(texts)
        batch = model.encoder.encode(analysed)
        with torch.inference_mode():
            logits, _ = model.net(*batch)
        logits = logits.numpy() - s_u * bias  # the net's offsets carry the unmarked share
        marks = np.array([a.marked for a in analysed])
        return logits, batch[3][:, 0].numpy(), marks, likeness.proba(texts)

    def served(parts, shares_of, threshold):
        logits, compounds, _, _ = parts
        shifted = logits + shares_of(parts)[:, None] * bias
        probs = np.exp(shifted - shifted.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        return with_fallback(probs, compounds, threshold).argmax(axis=1)

    gold_c = np.array([LABELS.index(e.label) for e in calib])
    groups = [e.source for e in calib]
    cparts = raw([e.text for e in calib])

    def choose(make):
        best = None
        for a in SCALE_SHARES:
            for b in SCALE_SHARES:
                fn = make(a, b)
                shifted = cparts[0] + fn(cparts)[:, None] * bias
                probs = np.exp(shifted - shifted.max(axis=1, keepdims=True))
                probs /= probs.sum(axis=1, keepdims=True)
                t = choose_threshold(probs, cparts[1], gold_c, groups)
                f1 = _weighted_f1(gold_c, with_fallback(probs, cparts[1], t).argmax(axis=1))
                if best is None or round(f1, 6) > round(best[0], 6):
                    best = (f1, a, b, t, fn)
        return best

    policies = {"shipped": (None, s_u, s_m, model.threshold, lambda p: np.where(p[2], s_m, s_u))}
    for label, make in {
        "prob": lambda a, b: lambda p: a + (b - a) * p[3],
        "prob+marks": lambda a, b: lambda p: np.where(p[2], b, a + (b - a) * p[3]),
        "thresh 0.5": lambda a, b: lambda p: np.where(p[2] | (p[3] >= 0.5), b, a),
        "thresh 0.8": lambda a, b: lambda p: np.where(p[2] | (p[3] >= 0.8), b, a),
        "thresh 0.9": lambda a, b: lambda p: np.where(p[2] | (p[3] >= 0.9), b, a),
        "prob^2": lambda a, b: lambda p: a + (b - a) * p[3] ** 2,
    }.items():
        policies[label] = choose(make)

    check = [TrainingExample(r.text, r.label, r.rating) for r in read_labels([cfg.check_set_location()])]
    sets = {n: splits[n].eval for n in SETS} | {
        "tweets": splits["tweets"].eval,
        "tw+mark": [e for e in splits["tweets"].eval if SOCIAL_MARKERS.search(e.text)],
        "tw-mark": [e for e in splits["tweets"].eval if not SOCIAL_MARKERS.search(e.text)],
        "posts": check,
    }
    evaluated = {}
    for name, exs in sets.items():
        parts = raw([e.text for e in exs])
        gold = [e.label for e in exs]
        vader = classification_report(gold, [LABELS[i] for i in rule_labels(parts[1])])
        evaluated[name] = (parts, gold, vader)
        print(f"{name:8} n {len(exs):5}  mean tweet-likeness {parts[3].mean():.3f}, "
              f"share >= 0.5 {(parts[3] >= 0.5).mean():.3f}; VADER wF1 {vader['weighted_f1']:.3f} "
              f"mRec {vader['macro_recall']:.3f}")  # fmt: skip
    print(
        f"\n{'policy':12} {'a':>4} {'b':>4} {'thr':>4} {'calib':>6} | " + " | ".join(f"{n:>13}" for n in sets)
    )
    for label, (f1, a, b, t, fn) in policies.items():
        cells = []
        for name in sets:
            parts, gold, vader = evaluated[name]
            rep = classification_report(gold, [LABELS[i] for i in served(parts, fn, t)])
            gain = "" if name not in SETS else f" {rep['weighted_f1'] - vader['weighted_f1']:+.2f}"
            cells.append(f"{rep['weighted_f1']:.3f}/{rep['macro_recall']:.3f}{gain}")
        print(
            f"{label:12} {a:4g} {b:4g} {t:4g} {'-' if f1 is None else f'{f1:.3f}':>6} | "
            + " | ".join(f"{c:>13}" for c in cells)
        )
    print("cells: wF1/macro recall (rated sets: and wF1 - VADER's)")
    texts = [e.text for e in splits["tweets"].eval][:1000]
    started = time.process_time()
    likeness.proba(texts)
    print(f"tweet-likeness: {len(texts) / (time.process_time() - started):.0f} texts/s on one core")


if __name__ == "__main__":
    main()
