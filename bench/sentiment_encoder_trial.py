"""Trial: a small learned text encoder (character CNN, word BiGRU) against the shipped model on tweets.

    .venv/bin/python bench/sentiment_encoder_trial.py [--encoders charcnn wordgru] [--seeds 13 14 15]
                                                      [--train tweets|all] [--data ../shared/data/sentiment]

The split is the project's: the tweets' check split of ``labels.tweets`` in retrain.yaml (never
trained on) is evaluated; the rated sets (``--train all``) use the frozen hash split of
``labels.split_seed`` / ``eval_share``, their evaluation parts left out. A seeded tenth of the
training tweets (by text hash) chooses the epoch to keep (early stopping); the check split only
measures. The shipped model is trained in the same run the way ``bench/sentiment_train.py --mode in``
trains it (every domain's training part plus the weak labels) and measured on the same tweets.

Per encoder and seed: held-out tweet weighted F1 and macro recall, the same for an equal blend of
its class probabilities with the shipped model's served ones, training wall time, texts/s on one
core (process time, best of 3, on the check tweets) and, for the first seed, whether two trainings
give the same weights. The encoders read the lower-cased characters (CNN) or words (GRU), plus the
20 dense rule signals the shipped model's prior reads (VADER's scores and lexicon shares; standardised).
Not a test; one core (``torch.set_num_threads(1)``).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "bench")]

MAX_CHARS = 280
CHAR_IDS = 512  # 0 padding, 1..255 the code point, else 256 + code point mod 255
WIDTHS = (2, 3, 4, 5)


def char_ids(text: str) -> list[int]:
    out = []
    for c in text.lower()[:MAX_CHARS]:
        o = ord(c)
        out.append(o if 0 < o < 256 else 256 + o % 255)
    return out or [32]


def held_out_part(text: str, share: float = 0.1) -> bool:
    digest = hashlib.sha256(f"trial-valid:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def make_net(kind: str, vocabulary: int, dense_width: int, sources: int):
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.zeros(dense_width))
            self.register_buffer("scale", torch.ones(dense_width))
            if kind == "charcnn":
                self.embed = nn.Embedding(CHAR_IDS, 24, padding_idx=0)
                self.convs = nn.ModuleList(nn.Conv1d(24, 64, w) for w in WIDTHS)
                width = 64 * len(WIDTHS)
            else:
                self.embed = nn.Embedding(vocabulary, 64, padding_idx=0)
                self.gru = nn.GRU(64, 48, batch_first=True, bidirectional=True)
                width = 2 * 2 * 48
            self.dropout = nn.Dropout(0.3)
            self.out = nn.Linear(width + dense_width, 3)
            self.source_bias = nn.Parameter(torch.zeros(sources, 3))  # training-only per-file scale

        def forward(self, ids, dense):
            x = self.embed(ids)
            if kind == "charcnn":
                x = x.transpose(1, 2)
                pad = max(WIDTHS) - x.shape[2]
                if pad > 0:
                    x = nn.functional.pad(x, (0, pad))
                h = torch.cat([torch.relu(conv(x)).amax(dim=2) for conv in self.convs], dim=1)
            else:
                seq, _ = self.gru(x)
                mask = (ids > 0).unsqueeze(2).float()
                mean = (seq * mask).sum(1) / mask.sum(1).clamp(min=1)
                h = torch.cat([mean, (seq - (1 - mask) * 1e4).amax(dim=1)], dim=1)
            return self.out(torch.cat([self.dropout(h), (dense - self.mean) / self.scale], dim=1))

    return Encoder()


class Trial:
    """One encoder: its inputs, training and scoring."""

    def __init__(self, kind: str, seed: int) -> None:
        self.kind, self.seed = kind, seed
        self.words: dict[str, int] = {}

    def ids(self, texts):
        import torch

        from nightshift_core.ml.model import tokens

        if self.kind == "charcnn":
            rows = [char_ids(t) for t in texts]
        else:
            rows = [[self.words.get(w, 1) for w in tokens(t)[:80]] or [1] for t in texts]
        out = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r)
        return out

    @staticmethod
    def dense(texts):
        import torch

        from nightshift_core.ml.model import analyse

        return torch.tensor([analyse(t).dense for t in texts], dtype=torch.float32)

    def train(
        self, texts, labels, sources, valid_texts, valid_labels, epochs: int = 12, balance: float = 0.0
    ):
        from collections import Counter

        import torch

        from nightshift_core.ml.metrics import classification_report
        from nightshift_core.ml.model import tokens
        from nightshift_core.sentiment.rules import LABELS

        torch.manual_seed(self.seed)
        torch.use_deterministic_algorithms(True)
        started = time.perf_counter()
        if self.kind == "wordgru":
            counts = Counter(w for t in texts for w in set(tokens(t)))
            kept = sorted((w for w, c in counts.items() if c >= 2), key=lambda w: (-counts[w], w))
            self.words = {w: i + 2 for i, w in enumerate(kept)}  # 0 padding, 1 unknown
        names = sorted(set(sources))
        source_ids = torch.tensor([names.index(s) for s in sources])
        dense = self.dense(texts)
        net = make_net(self.kind, len(self.words) + 2, dense.shape[1], len(names))
        net.mean.copy_(dense.mean(0))
        net.scale.copy_(dense.std(0).clamp(min=1e-3))
        targets = torch.tensor([LABELS.index(label) for label in labels])
        order_texts = list(texts)
        valid_dense, valid_ids = self.dense(valid_texts), self.ids(valid_texts)
        tweet = names.index("tweets")
        counts = torch.bincount(targets, minlength=len(LABELS)).clamp(min=1).float()
        class_weights = (counts.sum() / counts / len(LABELS)) ** balance  # 1: classes weighted equally
        optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
        generator = torch.Generator().manual_seed(self.seed)
        best, best_f1, history = None, -1.0, []
        for _epoch in range(epochs):
            net.train()
            order = torch.randperm(len(order_texts), generator=generator)
            for start in range(0, len(order), 64):
                idx = order[start : start + 64]
                batch = self.ids([order_texts[i] for i in idx.tolist()])
                logits = net(batch, dense[idx]) + net.source_bias[source_ids[idx]]
                loss = torch.nn.functional.cross_entropy(logits, targets[idx], weight=class_weights)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            net.eval()
            with torch.inference_mode():
                predicted = (net(valid_ids, valid_dense) + net.source_bias[tweet]).argmax(1)
            f1 = classification_report(valid_labels, [LABELS[i] for i in predicted.tolist()])["weighted_f1"]
            history.append(round(f1, 3))
            if f1 > best_f1:
                best_f1, best = f1, {k: v.clone() for k, v in net.state_dict().items()}
        net.load_state_dict(best)
        net.eval()
        self.net, self.tweet = net, tweet
        return time.perf_counter() - started, history

    def probabilities(self, texts, batch: int = 512) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch):
                part = texts[start : start + batch]
                logits = self.net(self.ids(part), self.dense(part)) + self.net.source_bias[self.tweet]
                out.append(torch.softmax(logits, 1).numpy())
        return np.concatenate(out)


def texts_per_second(fn, texts) -> float:
    fn(texts[:16])
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        fn(texts)
        best = min(best, time.process_time() - started)
    return len(texts) / best


def scores(gold, probs) -> tuple[float, float]:
    from nightshift_core.ml.metrics import classification_report
    from nightshift_core.sentiment.rules import LABELS

    report = classification_report(gold, [LABELS[i] for i in probs.argmax(1)])
    return report["weighted_f1"], report["macro_recall"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sentiment")
    parser.add_argument(
        "--encoders", nargs="+", default=["charcnn", "wordgru"], choices=("charcnn", "wordgru")
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[13, 14, 15])
    parser.add_argument("--train", choices=("tweets", "all"), default="tweets")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--balance", type=float, default=0.0, help="class weights (n / n_class) ** this")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)

    import sentiment_train as bench

    from nightshift_core.ml.config import load
    from nightshift_core.ml.labels import text_key
    from nightshift_core.ml.model import SOCIAL_MARKERS, train

    cfg = load()
    splits = bench.domain_splits(cfg, args.data)
    rated = {name: splits[name] for name in bench.SETS}
    rest, held = splits["tweets"].train, splits["tweets"].eval
    gold = [e.label for e in held]
    check_texts = [e.text for e in held]
    print(f"held-out tweets {len(held)}, training tweets {len(rest)}; encoder training: {args.train}")

    # The shipped model, trained as bench/sentiment_train.py --mode in trains it.
    human = [e for s in rated.values() for e in s.train] + rest
    every = [e for s in rated.values() for e in s.train + s.eval] + rest + held
    extra = bench.weak(cfg, len(human), {text_key(e.text) for e in every})
    started = time.perf_counter()
    shipped, _ = train(human + extra, cfg.model, log=lambda _: None)
    shipped_seconds = time.perf_counter() - started
    shipped_probs, _ = shipped.probabilities(check_texts)
    shipped_raw = shipped._raw(check_texts)[0]
    marked = np.array([SOCIAL_MARKERS.search(t) is not None for t in check_texts])
    s_f1, s_rec = scores(gold, shipped_probs)
    s_speed = texts_per_second(shipped.probabilities, check_texts)
    print(f"shipped model (seed {cfg.model.seed}): wF1 {s_f1:.3f}, macro recall {s_rec:.3f}, raw (no fallback) "
          f"{scores(gold, shipped_raw)[0]:.3f} / {scores(gold, shipped_raw)[1]:.3f}, {s_speed:.0f} texts/s, "
          f"training {shipped_seconds:.1f} s")  # fmt: skip

    fit = [e for e in rest if not held_out_part(e.text)]
    valid = [e for e in rest if held_out_part(e.text)]
    pairs = [(e.text, e.label, "tweets") for e in fit]
    if args.train == "all":
        pairs += [(e.text, e.label, name) for name, s in rated.items() for e in s.train]
    texts, labels, sources = (list(x) for x in zip(*pairs, strict=True))
    valid_texts, valid_labels = [e.text for e in valid], [e.label for e in valid]

    for kind in args.encoders:
        rows_out = []
        for n, seed in enumerate(args.seeds):
            trial = Trial(kind, seed)
            seconds, history = trial.train(
                texts, labels, sources, valid_texts, valid_labels, args.epochs, args.balance
            )
            probs = trial.probabilities(check_texts)
            f1, rec = scores(gold, probs)
            b_f1, b_rec = scores(gold, (probs + shipped_probs) / 2)
            r_f1, r_rec = scores(gold, (probs + shipped_raw) / 2)
            m_f1, m_rec = scores(gold, np.where(marked[:, None], (probs + shipped_raw) / 2, shipped_raw))
            # As it could be served: the encoder only on text with a tweet's markers (the rated sets and
            # the posts have none, so they are unchanged), half its probabilities and half the shipped
            # model's after its fallback (blending first flattens the rows under the fallback threshold).
            s2_f1, s2_rec = scores(
                gold, np.where(marked[:, None], (probs + shipped_probs) / 2, shipped_probs)
            )
            speed = texts_per_second(trial.probabilities, check_texts)
            same = "-"
            if n == 0:
                again = Trial(kind, seed)
                again.train(texts, labels, sources, valid_texts, valid_labels, args.epochs, args.balance)
                first, second = trial.net.state_dict(), again.net.state_dict()
                same = str(all(torch.equal(first[k], second[k]) for k in first))
            rows_out.append((f1, rec, b_f1, b_rec, r_f1, r_rec, m_f1, m_rec, s2_f1, s2_rec, speed, seconds))
            print(f"{kind} seed {seed}: wF1 {f1:.3f}, macro recall {rec:.3f}; blended with the served model "
                  f"{b_f1:.3f} / {b_rec:.3f}, with its raw probabilities {r_f1:.3f} / {r_rec:.3f} (on the tweets with "
                  f"markers alone {m_f1:.3f} / {m_rec:.3f}; served on those alone {s2_f1:.3f} / {s2_rec:.3f}); "
                  f"{speed:.0f} texts/s, training {seconds:.1f} s, valid wF1 by epoch {history}, "
                  f"same weights twice: {same}", flush=True)  # fmt: skip
        med = [statistics.median(c) for c in zip(*rows_out, strict=True)]
        print(f"{kind} median of {len(rows_out)}: wF1 {med[0]:.3f}, macro recall {med[1]:.3f}; blended "
              f"{med[2]:.3f} / {med[3]:.3f}, raw blend {med[4]:.3f} / {med[5]:.3f} (marked alone {med[6]:.3f} / "
              f"{med[7]:.3f}; served on those alone {med[8]:.3f} / {med[9]:.3f}); {med[10]:.0f} texts/s; training "
              f"{med[11]:.1f} s (shipped model {s_f1:.3f} / {s_rec:.3f}, {s_speed:.0f} texts/s)")  # fmt: skip


if __name__ == "__main__":
    main()
