"""The challenger architecture: hashed word n-grams into an ``EmbeddingBag``, plus VADER's four
proportions as dense inputs, into a 3-class head and a rating head.

Small on purpose: ~16M parameters in one embedding table, trained in a minute on 2 CPU cores and
scoring thousands of texts a second. Hashing needs no vocabulary file, so any text is in
vocabulary; ``zlib.crc32`` (not ``hash()``, which is salted per process) keeps ids stable between
the trainer and every worker. Weights are saved as a plain ``state_dict`` and loaded with
``weights_only=True``: nothing is unpickled from an artifact.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np

from nightshift_core.ml.config import ModelConfig
from nightshift_core.sentiment.rules import LABELS, Label, vader_scores

TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]|[:;]-?[()dp]")
# The same tokens plus the punctuation that ends a clause; the punctuation only ends a negation's
# scope and is not a feature itself.
CLAUSE_TOKEN = re.compile(TOKEN.pattern + r"|[.,;]")
CLAUSE_BREAKS = frozenset({".", ",", ";"})
CLAUSE_ENDS = CLAUSE_BREAKS | {"!", "?"}
NEGATIONS = frozenset({"not", "no", "never", "nothing", "nobody", "neither", "nor", "hardly", "without"})
WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "model.json"


def _expand(found: list[str]) -> list[str]:
    out = []
    for token in found:
        if token.endswith("n't"):
            out.extend((token, "not"))
        else:
            out.append(token)
    return out


def tokens(text: str) -> list[str]:
    """Lower-cased words, ``!``/``?`` and emoticons; ``n't`` also counts as ``not``."""
    return _expand(TOKEN.findall(text.lower()))


def feature_ids(text: str, buckets: int, ngrams: int = 2) -> list[int]:
    """Hashed ids of the text's word 1..n-grams; a negation marks the words after it up to the
    end of its clause (``.``, ``,``, ``;``, ``!``, ``?`` or an emoticon): ``not good`` also
    yields ``NOT_good``."""
    scanned = _expand(CLAUSE_TOKEN.findall(text.lower()))  # tokens(text) plus the clause breaks
    words = [w for w in scanned if w not in CLAUSE_BREAKS]
    grams = list(words)
    negated = False
    for word in scanned:
        if word in NEGATIONS:
            negated = True
        elif word in CLAUSE_ENDS or word.startswith((":", ";")):
            negated = False
        elif negated:
            grams.append("NOT_" + word)
    for n in range(2, ngrams + 1):
        grams.extend(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    crc = zlib.crc32
    return [crc(gram.encode()) % buckets for gram in grams]


@functools.cache
def _word_lexicons() -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """VADER's word valences (-4..4) and pattern's (TextBlob's) adjective polarity/subjectivity,
    both read from the files their packages ship."""
    import textblob
    import vaderSentiment

    vader: dict[str, float] = {}
    path = Path(vaderSentiment.__file__).parent / "vader_lexicon.txt"
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            vader[parts[0]] = float(parts[1])
    senses: dict[str, list[tuple[float, float]]] = {}
    tree = ElementTree.parse(Path(textblob.__file__).parent / "en" / "en-sentiment.xml")
    for word in tree.getroot().iter("word"):
        senses.setdefault(word.get("form", "").lower(), []).append(
            (float(word.get("polarity", 0)), float(word.get("subjectivity", 0)))
        )
    pattern = {w: (sum(p for p, _ in v) / len(v), sum(s for _, s in v) / len(v)) for w, v in senses.items()}
    return vader, pattern


LEXICON_WIDTH = 12


def lexicon_features(texts: Sequence[str]) -> np.ndarray:
    """Per text: VADER's compound/pos/neg/neu, then word-lexicon statistics -- mean VADER
    valence and share of VADER words, pattern's mean polarity/subjectivity and share of its
    words, the share of negations, ``!``/``?`` counts and log length. The lexicons carry what
    our few thousand labels cannot: the sentiment of words never seen in training."""
    vader, pattern = _word_lexicons()
    rows = np.zeros((len(texts), LEXICON_WIDTH), dtype=np.float32)
    for i, text in enumerate(texts):
        s = vader_scores(text)
        words = tokens(text)
        n = max(len(words), 1)
        valences = [vader[w] for w in words if w in vader]
        pat = [pattern[w] for w in words if w in pattern]
        rows[i] = (
            s["compound"], s["pos"], s["neg"], s["neu"],
            sum(valences) / 4 / n, len(valences) / n,
            sum(p for p, _ in pat) / n, sum(q for _, q in pat) / n, len(pat) / n,
            sum(w in NEGATIONS or w == "not" for w in words) / n,
            min(words.count("!"), 3) / 3 + 2 * (min(words.count("?"), 3) / 3) / 2,
            np.log1p(len(words)) / 5,
        )  # fmt: skip
    return rows


def _net(config: ModelConfig):
    import torch
    from torch import nn

    class SentimentNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.EmbeddingBag(config.buckets, config.dim, mode="mean", sparse=True)
            width = config.dim + (LEXICON_WIDTH if config.lexicon else 0)
            self.dropout = nn.Dropout(config.dropout)
            self.hidden = nn.Sequential(nn.Linear(width, config.hidden), nn.ReLU()) if config.hidden else None
            width = config.hidden or width
            self.classes = nn.Linear(width, len(LABELS))
            self.rating = nn.Linear(width, 1)

        def forward(self, ids, offsets, lexicon):
            hidden = self.embedding(ids, offsets)
            if config.lexicon:
                hidden = torch.cat([hidden, lexicon], dim=1)
            hidden = self.dropout(hidden)
            if self.hidden is not None:
                hidden = self.hidden(hidden)
            return self.classes(hidden), torch.tanh(self.rating(hidden)).squeeze(1)

    return SentimentNet()


def _batch(texts: Sequence[str], config: ModelConfig):
    import torch

    ids: list[int] = []
    offsets = []
    for text in texts:
        offsets.append(len(ids))
        ids.extend(feature_ids(text, config.buckets, config.ngrams))
    lexicon = torch.from_numpy(lexicon_features(texts)) if config.lexicon else None
    return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long), lexicon


@dataclasses.dataclass
class TrainingExample:
    text: str
    label: Label
    rating: float | None = None  # -1..1 where the labeller gave an intensity
    weak: bool = False  # a rule-agreement label, weighted down


class SentimentModel:
    """A trained network plus its config: a :class:`~nightshift_core.sentiment.rules.Scorer`."""

    def __init__(self, net: Any, config: ModelConfig, name: str = "sentiment", version: str = "unregistered"):
        self.net = net
        self.config = config
        self.name = name
        self.version = version

    def probabilities(self, texts: Sequence[str], batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities (columns in ``LABELS`` order) and rating-head scores in [-1, 1]."""
        import torch

        self.net.eval()
        probs, ratings = [], []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                logits, rating = self.net(*_batch(texts[start : start + batch_size], self.config))
                probs.append(torch.softmax(logits, dim=1).numpy())
                ratings.append(rating.numpy())
        if not probs:
            return np.zeros((0, len(LABELS)), dtype=np.float32), np.zeros(0, dtype=np.float32)
        return np.concatenate(probs), np.concatenate(ratings)

    def predict(self, texts: Sequence[str]) -> list[tuple[Label, float]]:
        """One ``(label, score)`` per text; score is the rating head's polarity in [-1, 1]."""
        probs, ratings = self.probabilities(list(texts))
        return [(LABELS[int(i)], float(r)) for i, r in zip(probs.argmax(axis=1), ratings, strict=True)]

    def save(self, folder: Path) -> None:
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), folder / WEIGHTS_FILE)
        (folder / CONFIG_FILE).write_text(
            json.dumps({"config": self.config.to_dict(), "labels": LABELS}, indent=2)
        )

    @classmethod
    def load(cls, folder: Path, name: str = "sentiment", version: str = "unregistered") -> SentimentModel:
        import torch

        for needed in (CONFIG_FILE, WEIGHTS_FILE):
            if not (folder / needed).is_file():
                raise FileNotFoundError(
                    f"model artifact {folder} has no {needed}: it is not a saved SentimentModel"
                )
        meta = json.loads((folder / CONFIG_FILE).read_text())
        if tuple(meta.get("labels", ())) != LABELS:
            raise ValueError(
                f"model artifact {folder} was trained for labels {meta.get('labels')}, not {LABELS}"
            )
        config = ModelConfig.from_dict(meta["config"])
        net = _net(config)
        net.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        net.eval()
        return cls(net, config, name, version)


def train(
    examples: Sequence[TrainingExample],
    config: ModelConfig,
    *,
    log: Callable[[str], None] = print,
) -> tuple[SentimentModel, dict[str, Any]]:
    """Train on ``examples`` with fixed seeds: the same examples and config give the same weights.

    Returns the model and a small history (loss per epoch, seconds). The examples' order is
    shuffled with the seed, so callers may pass them in any stable order.
    """
    import torch

    if not examples:
        raise ValueError("no training examples: load human labels first (see README, 'Sentiment labels')")
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # sparse-gradient sums are only reproducible single-threaded
    try:
        net = _net(config)
        dense = [p for n, p in net.named_parameters() if not n.startswith("embedding.")]
        sparse_opt = torch.optim.SparseAdam(list(net.embedding.parameters()), lr=config.lr)
        dense_opt = torch.optim.Adam(dense, lr=config.lr / 4)
        label_index = {label: i for i, label in enumerate(LABELS)}
        targets = torch.tensor([label_index[e.label] for e in examples])
        ratings = torch.tensor([0.0 if e.rating is None else e.rating for e in examples])
        has_rating = torch.tensor([e.rating is not None for e in examples], dtype=torch.float32)
        weights = torch.tensor([config.weak_weight if e.weak else 1.0 for e in examples])
        counts = torch.bincount(targets, minlength=len(LABELS)).clamp(min=1).float()
        class_weights = (counts.sum() / counts) ** config.class_balance
        class_weights = class_weights / (class_weights * counts).sum() * counts.sum()
        texts = [e.text for e in examples]
        # Featurise once: every epoch reuses the same ids.
        all_ids = [
            torch.tensor(feature_ids(t, config.buckets, config.ngrams), dtype=torch.long) for t in texts
        ]
        lexicon = torch.from_numpy(lexicon_features(texts)) if config.lexicon else torch.zeros(len(texts), 0)
        generator = torch.Generator().manual_seed(config.seed)
        history = []
        started = time.perf_counter()
        epochs = max(
            config.epochs, math.ceil(config.min_steps / math.ceil(len(examples) / config.batch_size))
        )
        for epoch in range(epochs):
            net.train()
            order = torch.randperm(len(examples), generator=generator)
            total = 0.0
            for start in range(0, len(order), config.batch_size):
                idx = order[start : start + config.batch_size]
                chunks = [all_ids[i] for i in idx.tolist()]
                lengths = torch.tensor([0] + [len(c) for c in chunks[:-1]])
                offsets = torch.cumsum(lengths, 0)
                logits, rating = net(torch.cat(chunks), offsets, lexicon[idx])
                w = weights[idx]
                loss_cls = (
                    torch.nn.functional.cross_entropy(
                        logits, targets[idx], weight=class_weights, reduction="none"
                    )
                    * w
                ).sum()
                loss_rating = (((rating - ratings[idx]) ** 2) * has_rating[idx] * w).sum()
                loss = (loss_cls + config.rating_weight * loss_rating) / w.sum()
                sparse_opt.zero_grad()
                dense_opt.zero_grad()
                loss.backward()
                sparse_opt.step()
                dense_opt.step()
                total += float(loss.detach()) * len(idx)
            history.append(round(total / len(examples), 6))
            if epoch == epochs - 1 or (epoch + 1) % max(1, epochs // 5) == 0:
                log(f"epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}")
        net.eval()
    finally:
        torch.set_num_threads(threads)
    return SentimentModel(net, config), {"loss": history, "seconds": round(time.perf_counter() - started, 3)}
