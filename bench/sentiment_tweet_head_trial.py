"""Trial: a tweet-specific linear head blended with the shipped model by tweet-likeness.

    .venv/bin/python bench/sentiment_tweet_head_trial.py [--seed 13] [--data ../shared/data/sentiment]
                                                         [--c 1.0] [--left-out movie amazon nyt]

Trains the shipped model in domain once (every domain's training part plus the weak Reddit
labels, as ``bench/sentiment_train.py --mode in``; the tweets' check split is never trained on).
Then, on the tweets among the texts the model fits on (never its held-out ``fallback_share``,
never the check split, no outside data), a *tweet head*: a multinomial logistic regression
(scikit-learn, lbfgs, balanced class weights, fixed ``random_state``) on hashed word 1-2-grams,
hashed character 2-4-grams (as ``TweetLikeness`` builds them) and VADER's compound, pos, neg and
neu as dense columns. Its class probabilities are blended with the model's before the rule
fallback: ``(1 - w) * model + w * head``, the fallback threshold chosen again for each blend on
the model's held-out training labels (``choose_threshold``: every training file at least VADER
there). Variants:

* ``shipped``: the model as trained (its own threshold);
* ``head``: the head alone, no fallback (reported on the tweets; elsewhere for reference);
* ``w=p^2`` / ``w=p``: ``w`` the text's tweet-likeness ``p`` squared / itself;
* ``w=c*p^k``: ``c`` in 0.25..1 and ``k`` in 1..3 chosen with the threshold on the same held-out
  training labels (weighted F1, every file at least VADER);
* ``logit p^2``: the head's log-probabilities added to the model's logits with weight ``p^2``
  (a product of experts instead of a mixture).

Each is measured on every held-out part -- the tweets (with and without a mention or hashtag
too: weighted F1, macro F1, macro recall), movie, Amazon and NYT (weighted F1 and its gain on
VADER; Pearson r is the served score's, which no blend changes) -- and the 120-post check set,
against VADER; plus the head's texts/s on one core. With ``--left-out``, each named domain is
left out of training instead (the head still trains on the tweets) and the variants are measured
on its held-out part. Not a test.

Measured (held-out tweets wF1 / macro recall; seed 13, then 14): shipped 0.633 / 0.611, 0.618 /
0.593; head alone 0.658 / 0.660, 0.667 / 0.670 (below VADER on NYT, -0.06); ``w=p^2`` 0.645 /
0.654, 0.646 / 0.652; ``w=p`` 0.646 / 0.654, 0.647 / 0.653 (in-domain movie +0.148 at 13);
``logit p^2`` 0.657 / 0.642, 0.657 / 0.640 with every other set at or above the shipped model's
gain on VADER (posts 0.893, 0.879; left out movie, Amazon, NYT +0.054 / +0.054 / +0.009 at 13,
+0.064 / +0.042 / +0.005 at 14). ``logit p^2`` is what ``model.tweet_head`` serves.
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


class TweetHead:
    """Multinomial logistic regression on hashed word and character n-grams plus VADER's four scores."""

    WORDS = 2**18
    CHARS = 2**18

    def __init__(self, c: float = 1.0) -> None:
        self.c = c
        self.clf = None

    @staticmethod
    def _vectorizers():
        from sklearn.feature_extraction.text import HashingVectorizer

        words = HashingVectorizer(ngram_range=(1, 2), n_features=TweetHead.WORDS, alternate_sign=False,
                                  token_pattern=r"(?u)[#@]?\b\w[\w']*\b|[!?]", norm="l2")  # fmt: skip
        chars = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=TweetHead.CHARS,
                                  alternate_sign=False, lowercase=False, norm="l2")  # fmt: skip
        return words, chars

    def matrix(self, texts, vader: np.ndarray):
        from scipy import sparse

        words, chars = self._vectorizers()
        texts = [t[:4000] for t in texts]
        return sparse.hstack(
            [words.transform(texts), chars.transform(texts), sparse.csr_matrix(vader)]
        ).tocsr()

    def fit(self, texts, vader: np.ndarray, labels: np.ndarray) -> TweetHead:
        from sklearn.linear_model import LogisticRegression

        self.clf = LogisticRegression(C=self.c, max_iter=3000, class_weight="balanced", random_state=0)
        self.clf.fit(self.matrix(texts, vader), labels)
        assert list(self.clf.classes_) == [0, 1, 2]
        return self

    def proba(self, texts, vader: np.ndarray) -> np.ndarray:
        return self.clf.predict_proba(self.matrix(texts, vader))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sentiment")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--c", type=float, default=1.0, help="the head's inverse L2 strength")
    parser.add_argument(
        "--left-out",
        nargs="*",
        default=[],
        choices=("movie", "amazon", "nyt"),
        help="instead of in domain: leave each of these domains out of training",
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from sentiment_train import SETS, domain_splits, weak

    from nightshift_core.ml import fastvader
    from nightshift_core.ml.config import load
    from nightshift_core.ml.labels import read_labels, text_key
    from nightshift_core.ml.metrics import classification_report
    from nightshift_core.ml.model import (
        SOCIAL_MARKERS,
        TrainingExample,
        TweetLikeness,
        _calibration_part,
        _weighted_f1,
        blend_scores,
        choose_threshold,
        rule_labels,
        train,
        with_fallback,
    )
    from nightshift_core.sentiment.rules import LABELS

    cfg = load()
    config = dataclasses.replace(cfg.model, seed=args.seed).validate()
    splits = domain_splits(cfg, args.data)
    held_keys = {text_key(e.text) for e in splits["tweets"].eval}
    assert not any(text_key(e.text) in held_keys for e in splits["tweets"].train), (
        "a check tweet is in the training part"
    )
    check = [TrainingExample(r.text, r.label, r.rating) for r in read_labels([cfg.check_set_location()])]
    tweets = splits["tweets"].eval
    domains = [*SETS, "tweets"]

    def vader4(texts):
        rows = [fastvader.polarity_scores(t) for t in texts]
        return np.array([[r["compound"], r["pos"], r["neg"], r["neu"]] for r in rows], dtype=np.float64)

    def run(names, sets):
        """Train the model on ``names``' training parts (plus weak labels), the head on its fit tweets,
        and print every variant on ``sets``; returns the model, head and likeness."""
        human = [e for n in names for e in splits[n].train]
        extra = weak(cfg, len(human), {text_key(e.text) for s in splits.values() for e in s.train + s.eval})
        examples = human + extra
        started = time.perf_counter()
        model, history = train(examples, config, log=lambda _: None)
        model_seconds = time.perf_counter() - started
        print(f"seed {args.seed}, trained on {'+'.join(names)}: model in {model_seconds:.1f} s; shares "
              f"{history['scale_share']} / {history['marked_share']}, threshold {model.threshold}")  # fmt: skip

        # The same fit / held-out division train() makes: the head and the likeness see only the fit part.
        share = max(config.calibrate_share, config.fallback_share)
        calib_mask = [not e.weak and _calibration_part(e.text, config.seed, share) for e in examples]
        fit = [e for e, h in zip(examples, calib_mask, strict=True) if not h]
        calib = [e for e, h in zip(examples, calib_mask, strict=True) if h]
        likeness = model.likeness or TweetLikeness().fit([e.text for e in fit], [e.categorical for e in fit])

        fit_tweets = [e for e in fit if e.categorical]
        started = time.perf_counter()
        head = TweetHead(args.c).fit(
            [e.text for e in fit_tweets], vader4([e.text for e in fit_tweets]),
            np.array([LABELS.index(e.label) for e in fit_tweets]),
        )  # fmt: skip
        head_seconds = time.perf_counter() - started
        print(f"tweet head trained on {len(fit_tweets)} tweets in {head_seconds:.1f} s (C {args.c:g})")

        def parts_of(exs):
            texts = [e.text for e in exs]
            probs, ratings, compounds = model._raw(texts)
            return {
                "probs": probs,
                "compounds": compounds,
                "scores": blend_scores(ratings, compounds, model.config.rating_share),
                "p": likeness.proba(texts).astype(np.float64),
                "head": head.proba(texts, vader4(texts)),
                "gold": np.array([LABELS.index(e.label) for e in exs]),
                "ratings": [e.rating for e in exs],
            }

        def mix(parts, w):
            return (1 - w)[:, None] * parts["probs"] + w[:, None] * parts["head"]

        def product(parts, w):
            z = np.log(np.clip(parts["probs"], 1e-9, 1)) + w[:, None] * np.log(
                np.clip(parts["head"], 1e-9, 1)
            )
            z = np.exp(z - z.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)

        cparts = parts_of(calib)
        groups = [e.source for e in calib]

        def choose(blend):
            probs = blend(cparts)
            t = choose_threshold(probs, cparts["compounds"], cparts["gold"], groups)
            return t, _weighted_f1(
                cparts["gold"], with_fallback(probs, cparts["compounds"], t).argmax(axis=1)
            )

        variants = {}  # name -> (blend of parts -> probabilities, threshold, held-out training wF1)
        shipped = lambda p: p["probs"]  # noqa: E731
        variants["shipped"] = (shipped, model.threshold, _weighted_f1(
            cparts["gold"], with_fallback(cparts["probs"], cparts["compounds"], model.threshold).argmax(axis=1)))  # fmt: skip
        variants["head"] = (
            lambda p: p["head"],
            0.0,
            _weighted_f1(cparts["gold"], cparts["head"].argmax(axis=1)),
        )
        for name, blend in {
            "w=p^2": lambda p: mix(p, p["p"] ** 2),
            "w=p": lambda p: mix(p, p["p"]),
            "logit p^2": lambda p: product(p, p["p"] ** 2),
        }.items():
            variants[name] = (blend, *choose(blend))
        best = None

        def scaled(c, k):
            return lambda p: mix(p, c * p["p"] ** k)

        for c in (0.25, 0.5, 0.75, 1.0):
            for k in (1, 2, 3):
                blend = scaled(c, k)
                t, f1 = choose(blend)
                if best is None or round(f1, 6) > round(best[2], 6):
                    best = (blend, t, f1, c, k)
        variants[f"w={best[3]:g}*p^{best[4]}"] = best[:3]

        evaluated = {}
        for name, exs in sets.items():
            parts = parts_of(exs)
            gold = [e.label for e in exs]
            vader = classification_report(gold, [LABELS[i] for i in rule_labels(parts["compounds"])],
                                          scores=parts["compounds"], ratings=parts["ratings"])  # fmt: skip
            mine = classification_report(gold, [LABELS[i] for i in with_fallback(
                parts["probs"], parts["compounds"], model.threshold).argmax(axis=1)],
                scores=parts["scores"], ratings=parts["ratings"])  # fmt: skip
            evaluated[name] = (parts, gold, vader)
            r = "" if vader["pearson_r"] is None else (
                f"; r model {mine['pearson_r']:.3f} VADER {vader['pearson_r']:.3f} "
                f"({mine['pearson_r'] - vader['pearson_r']:+.3f})")  # fmt: skip
            print(f"{name:8} n {len(exs):5}  mean p {parts['p'].mean():.3f}, mean p^2 {(parts['p'] ** 2).mean():.3f}; "
                  f"VADER wF1 {vader['weighted_f1']:.3f} mF1 {vader['macro_f1']:.3f} "
                  f"mRec {vader['macro_recall']:.3f}{r}")  # fmt: skip

        print(f"\n{'variant':11} {'thr':>4} {'calib':>6} | " + " | ".join(f"{n:>19}" for n in sets))
        for label, (blend, t, f1) in variants.items():
            cells = []
            for name in sets:
                parts, gold, vader = evaluated[name]
                rep = classification_report(gold, [LABELS[i] for i in with_fallback(
                    blend(parts), parts["compounds"], t).argmax(axis=1)])  # fmt: skip
                if name.startswith("tw"):
                    cells.append(f"{rep['weighted_f1']:.3f}/{rep['macro_f1']:.3f}/{rep['macro_recall']:.3f}")
                else:
                    cells.append(f"{rep['weighted_f1']:.3f} {rep['weighted_f1'] - vader['weighted_f1']:+.3f}")
            print(f"{label:11} {t:4g} {f1:6.3f} | " + " | ".join(f"{c:>19}" for c in cells))
        print("cells: tweets wF1/mF1/macro recall; others wF1 and its gain on VADER's. calib: the model's "
              "held-out training labels (wF1), on which each threshold is chosen")  # fmt: skip

        print(f"training: model {model_seconds:.1f} s + head {head_seconds:.1f} s")
        return model, head, likeness

    if args.left_out:
        for name in args.left_out:
            print(f"\nLEFT OUT: {name}")
            run([n for n in domains if n != name], {name: splits[name].eval, "posts": check})
        return
    model, head, likeness = run(domains, {
        "tweets": tweets,
        "tw+mark": [e for e in tweets if SOCIAL_MARKERS.search(e.text)],
        "tw-mark": [e for e in tweets if not SOCIAL_MARKERS.search(e.text)],
        **{n: splits[n].eval for n in SETS},
        "posts": check,
    })  # fmt: skip

    texts = [e.text for e in tweets][:2000]
    started = time.process_time()
    head.proba(texts, vader4(texts))
    with_vader = time.process_time() - started
    started = time.process_time()
    scores = vader4(texts)
    vader_only = time.process_time() - started
    started = time.process_time()
    head.proba(texts, scores)
    head_only = time.process_time() - started
    started = time.process_time()
    model._raw(texts)
    likeness.proba(texts)
    model_time = time.process_time() - started
    print(f"one core: head {len(texts) / head_only:.0f} texts/s (with its own VADER scores "
          f"{len(texts) / with_vader:.0f}; VADER alone {len(texts) / vader_only:.0f}); shipped model "
          f"{len(texts) / model_time:.0f}; model + head {len(texts) / (model_time + head_only):.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
