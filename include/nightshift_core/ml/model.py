"""The sentiment models: the rule baseline (VADER, the first champion) and the trained
challenger, a learned correction on top of the rule scores.

The challenger is built so that it cannot fall far below its prior where it knows nothing:

* a *prior head* reads dense rule and social-media signals -- VADER's scores (on the text and on
  its de-elongated form, "loooove" -> "love"; computed by :mod:`nightshift_core.ml.fastvader`,
  VADER's exact numbers at a quarter of the cost), VADER's and pattern's (TextBlob's) lexicon
  shares, emoticon/emoji valence, ALL-CAPS and elongation emphasis, ``!``/``?`` counts, negation
  share, and with ``textblob`` TextBlob's polarity and subjectivity (off by default: they cost
  half the scoring time and earned nothing on the bench) -- through one linear layer, a
  calibrated logistic regression on the rules;
* a *correction* reads the text's word, negated-word, bigram and (optionally) character
  n-gram features, but only those seen at least ``min_count`` times in training (a pruned
  vocabulary saved beside the weights; unseen features are dropped, never hashed into a shared
  bucket). Its input is the sum of the known features' embeddings divided by
  ``known + shrink``, so a text with few known features gets a correction near zero, and the
  embeddings start at zero, so a feature the data never moved adds nothing;
* class offsets are calibrated after training on a held-out share of the training labels
  (the offsets that maximise weighted F1), so the class prior of the training text is not
  forced on other text;
* labels from a categorical file (TweetEval's, whose neutral is broad) train a bias of their
  own on the class logits, so another file's class boundaries are not learned into the words;
  how much of that bias the served model carries (0 to 1) is chosen with the fallback below --
  with ``marked_scale``, a share of its own for texts that show a tweet's markers on their face
  (a user mention or a hashtag, :data:`SOCIAL_MARKERS`): TweetEval's neutral there, the rated
  sets' boundaries on text without them; or, with ``tweet_likeness``, a share that grows with the
  square of the text's tweet-likeness (:class:`TweetLikeness`, trained on the training texts);
  with ``tweet_head``, a linear classifier trained on the categorical file's texts only
  (:class:`TweetHead`) adds its log-probabilities to the class logits x that square;
* where the model is unsure -- its largest class probability below a threshold (at least 0.5)
  chosen on a held-out share of the training labels (``fallback_share``) such that no label
  file there is left below the rule -- its label is the rule's (VADER's compound +-0.05): it
  overrides the rule only where it is confident.

Deterministic (fixed seeds, one thread, no hashing salted per process), CPU, no downloads:
the lexicons are the files ``vaderSentiment`` and ``textblob`` ship. Weights are a plain
``state_dict`` loaded with ``weights_only=True``; the vocabulary and config are JSON.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np

from nightshift_core.errors import PermanentError
from nightshift_core.ml.config import ModelConfig
from nightshift_core.ml.fastvader import polarity_scores
from nightshift_core.ml.hashing import CachedCharHashing
from nightshift_core.sentiment.rules import LABELS, Label, vader_scores

WORD = r"[a-z0-9]+(?:'[a-z]+)?"
TOKEN = re.compile(WORD + r"|[!?]|[:;]-?[()dp]")
# The same tokens plus the punctuation that ends a clause; the punctuation only ends a negation's
# scope and is not a feature itself.
CLAUSE_TOKEN = re.compile(TOKEN.pattern + r"|[.,;]")
CLAUSE_BREAKS = frozenset({".", ",", ";"})
CLAUSE_ENDS = CLAUSE_BREAKS | {"!", "?"}
NEGATIONS = frozenset({"not", "no", "never", "nothing", "nobody", "neither", "nor", "hardly", "without"})
ELONGATED = re.compile(r"([a-z])\1{2,}")
# What a tweet shows on its face: a user mention or a hashtag (not a link: Reddit posts have
# links, and few TweetEval tweets do).
SOCIAL_MARKERS = re.compile(r"(?<![\w@#])(?:@\w|#[a-z_])", re.IGNORECASE)
LETTERS = re.compile(r"[A-Za-z]{2,}")
WEIGHTS_FILE = "weights.pt"
LIKENESS_FILE = "likeness.npy"
HEAD_FILE = "tweet_head.npy"
URL = re.compile(r"https?://|www\.", re.IGNORECASE)
CONFIG_FILE = "model.json"
VOCAB_FILE = "vocabulary.json"
KIND_TRAINED, KIND_RULES = "rule-residual", "rules"
# Common emoticons VADER's lexicon lacks (valence on its -4..4 scale; the project's own reading).
EXTRA_EMOTICONS = {"^_^": 2.0, "^^": 1.5, "^.^": 2.0, "xD": 2.0, "XD": 2.0, "-_-": -1.5, "T_T": -2.0,
                   ";_;": -2.0, "._.": -1.0}  # fmt: skip


class ModelArtifactError(ValueError, PermanentError):
    """A model artifact this code cannot load; the message says why and what to do."""


def _expand(found: list[str]) -> list[str]:
    out = []
    for token in found:
        if token.endswith("n't"):
            out.extend((token, "not"))
        else:
            out.append(token)
    return out


def tokens(text: str) -> list[str]:
    """Lower-cased words, ``!``/``?`` and simple emoticons; ``n't`` also counts as ``not``."""
    return _expand(TOKEN.findall(text.lower()))


@functools.cache
def _lexicons() -> tuple[dict[str, float], dict[str, tuple[float, float]], dict[str, float], dict[str, str]]:
    """VADER's word valences (-4..4), pattern's (TextBlob's) adjective polarity/subjectivity,
    VADER's emoticon entries (its lexicon's tokens without letters, ``:)``, ``<3``, ``:'(`` ...)
    and VADER's emoji descriptions -- all read from the files the packages ship."""
    import textblob
    import vaderSentiment

    vader: dict[str, float] = {}
    folder = Path(vaderSentiment.__file__).parent
    for line in (folder / "vader_lexicon.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            vader[parts[0]] = float(parts[1])
    emoticons = {k: v for k, v in vader.items() if not any(c.isalpha() for c in k) and len(k) >= 2}
    emoticons |= EXTRA_EMOTICONS
    emoji = {}
    for line in (folder / "emoji_utf8_lexicon.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            emoji[parts[0]] = parts[1]
    senses: dict[str, list[tuple[float, float]]] = {}
    tree = ElementTree.parse(Path(textblob.__file__).parent / "en" / "en-sentiment.xml")
    for word in tree.getroot().iter("word"):
        senses.setdefault(word.get("form", "").lower(), []).append(
            (float(word.get("polarity", 0)), float(word.get("subjectivity", 0)))
        )
    pattern = {w: (sum(p for p, _ in v) / len(v), sum(s for _, s in v) / len(v)) for w, v in senses.items()}
    return vader, pattern, emoticons, emoji


def deelongate(word: str, known: Callable[[str], bool]) -> str:
    """``word`` with letters repeated 3+ times squeezed: to two ("goooood" -> "good") when that is
    a known word, else to one ("loooove" -> "love")."""
    two = ELONGATED.sub(r"\1\1", word)
    return two if known(two) else ELONGATED.sub(r"\1", word)


@dataclasses.dataclass(frozen=True)
class Analysed:
    """One text, read once: its features (strings) and its dense signals."""

    features: list[str]
    dense: list[float]
    marked: bool = False  # the text shows social-media markers (SOCIAL_MARKERS)


def _emoticons_and_emoji(text: str) -> tuple[list[str], float]:
    """The emoticons (VADER's own list, matched as whitespace-separated tokens, also with trailing
    punctuation removed) and emoji of ``text``, and their summed VADER valence / 4."""
    vader, _, emoticons, emoji = _lexicons()
    found, valence = [], 0.0
    for piece in text.split():
        if piece in emoticons:
            found.append("EMO_" + piece)
            valence += emoticons[piece]
            continue
        stripped = piece.rstrip(".,!?")
        if stripped in emoticons:
            found.append("EMO_" + stripped)
            valence += emoticons[stripped]
    if not text.isascii():  # every emoji is outside ASCII: most texts skip the scan
        for char in text:
            if char in emoji:
                found.append("EMOJI_" + char)
                valence += sum(vader.get(w, 0.0) for w in emoji[char].split())
    return found, valence / 4


DENSE_WIDTH = 20


def analyse(text: str, ngrams: int = 2, char_ngrams: int = 0, textblob: bool = False) -> Analysed:
    """Features and dense signals of ``text``.

    Features: words (de-elongated), ``NOT_<word>`` for the words after a negation up to the end
    of its clause (``.``, ``,``, ``;``, ``!``, ``?`` or an emoticon), word 2..n-grams, emoticons
    and emoji, ``ALLCAPS``/``ELONG`` flags and, with ``char_ngrams`` > 0, the character
    n-grams of each word (``#lov``, ``ove#``). ``!`` and ``?`` are not features: their meaning
    varies by domain, so they only enter the dense signals.

    Dense signals 5 and 6 are TextBlob's polarity and subjectivity with ``textblob``, else 0 (a
    constant column the prior standardises to 0): its pattern analyser cost half the scoring time
    and its lexicon's word polarity is already a signal (9, 10)."""
    vader, pattern, _, _ = _lexicons()
    known = vader.__contains__
    raw = text[:4000]
    lowered = raw.lower()
    scanned = _expand(CLAUSE_TOKEN.findall(lowered))
    stretched = ELONGATED.search(lowered) is not None  # one scan: most texts have no elongation
    elongated = 0
    words: list[str] = []
    grams: list[str] = []
    negated = False
    for token in scanned:
        if token in CLAUSE_ENDS or token[0] in ":;":
            negated = False
            continue
        if stretched and ELONGATED.search(token):
            elongated += 1
            token = deelongate(token, known)
        words.append(token)
        if token in NEGATIONS:
            negated = True
        elif negated:
            grams.append("NOT_" + token)
    grams.extend(words)
    if ngrams >= 2:
        grams.extend([f"{a} {b}" for a, b in zip(words[:-1], words[1:], strict=True)])
    for n in range(3, ngrams + 1):
        grams.extend(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    if char_ngrams:
        for word in set(words):
            padded = f"#{word}#"
            grams.extend(padded[i : i + char_ngrams] for i in range(len(padded) - char_ngrams + 1))
    marks, emo_valence = _emoticons_and_emoji(raw)
    grams.extend(marks)
    letters = LETTERS.findall(raw)
    caps = sum(w.isupper() for w in letters)
    if caps:
        grams.append("ALLCAPS")
    if elongated:
        grams.append("ELONG")

    plain = polarity_scores(raw)
    squeezed = plain
    if elongated:
        # VADER on the text with its (lower-case) stretched letters squeezed to two, and to a known
        # word; the stronger of the two. A variant equal to the text is not scored again.
        variants = dict.fromkeys((ELONGATED.sub(lambda m: m.group(1) * 2, raw),
                                  " ".join(deelongate(w, known) for w in raw.split())))  # fmt: skip
        scored = [plain if v == raw else polarity_scores(v) for v in variants]
        squeezed = max(scored, key=lambda s: abs(s["compound"]))
    n = max(len(words), 1)
    valences = [vader[w] for w in words if w in vader]
    pat = [pattern[w] for w in words if w in pattern]
    polarity, subjectivity = _textblob(raw) if textblob else (0.0, 0.0)
    dense = [
        plain["compound"], plain["pos"], plain["neg"], plain["neu"], squeezed["compound"],
        polarity, subjectivity,
        sum(valences) / 4 / n, len(valences) / n,
        sum(p for p, _ in pat) / n, len(pat) / n,
        sum(w in NEGATIONS for w in words) / n,
        min(lowered.count("!"), 3) / 3, min(lowered.count("?"), 3) / 3,
        caps / max(len(letters), 1), min(elongated, 3) / 3,
        max(min(emo_valence, 2.0), -2.0) / 2, float(bool(marks)),
        math.log1p(len(words)) / 5, 1.0 if not words else 0.0,
    ]  # fmt: skip
    return Analysed(grams, dense, SOCIAL_MARKERS.search(raw) is not None)


@functools.cache
def _pattern_sentiment() -> Callable[[str], tuple[float, float]]:
    from textblob.en import sentiment

    return sentiment


def _textblob(text: str) -> tuple[float, float]:
    """TextBlob's polarity and subjectivity: the pattern analyser ``TextBlob(text).sentiment``
    runs, called directly (``PatternAnalyzer.analyze`` builds a namedtuple class per call)."""
    polarity, subjectivity = _pattern_sentiment()(text)
    return float(polarity), float(subjectivity)


_ASCII_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123))


def _upper_share(text: str) -> float:
    """The share of ``text``'s letters (``str.isalpha``) that are upper case; an ASCII text's
    letters are counted by deleting them from its bytes (the same counts, without a Python loop
    over its characters)."""
    if text.isascii():
        raw = text.encode("ascii")
        letters = len(raw) - len(raw.translate(None, _ASCII_LETTERS))
        upper = len(raw) - len(raw.translate(None, _ASCII_LETTERS[:26]))
        return upper / max(letters, 1)
    letters = [c for c in text if c.isalpha()]
    return sum(c.isupper() for c in letters) / max(len(letters), 1)


class TweetLikeness:
    """P(a text is a tweet): logistic regression on hashed character 2-4-grams (scikit-learn's
    ``HashingVectorizer``: MurmurHash3, not salted per process) and a few surface columns
    (markers, link, length, casing, non-ASCII, lower-case start, end punctuation). Trained on the
    model's training texts, the categorical file's (the tweets) against the others; its weights are
    one array (``LIKENESS_FILE``)."""

    FEATURES = 2**18
    SURFACE = 7

    def __init__(self, weights: np.ndarray | None = None) -> None:
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)

    @staticmethod
    @functools.cache
    def _hasher():
        from sklearn.feature_extraction.text import HashingVectorizer

        return HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=TweetLikeness.FEATURES,
                                 alternate_sign=False, lowercase=False)  # fmt: skip

    @staticmethod
    @functools.cache
    def _cached_hasher() -> CachedCharHashing:
        return CachedCharHashing(TweetLikeness._hasher())

    @classmethod
    def chars(cls, texts: Sequence[str]):
        """The hashed character n-grams of ``texts`` (each cut to its first 4,000 characters): what
        :meth:`proba` and :class:`TweetHead` read, computed once for both where the model serves both.
        The vectorizer's matrix, bit for bit, with each word's n-grams hashed once
        (:class:`~nightshift_core.ml.hashing.CachedCharHashing`)."""
        return cls._cached_hasher().transform([t[:4000] for t in texts])

    def _matrix(self, texts: Sequence[str], chars=None):
        from scipy import sparse

        texts = [t[:4000] for t in texts]  # (cut once: the surface columns and the n-grams read the same)
        rows = [[
            float(SOCIAL_MARKERS.search(t) is not None), float(URL.search(t) is not None),
            math.log1p(len(t)) / 6, _upper_share(t),
            float(not t.isascii()), float(t[:1].islower()), float(t.rstrip()[-1:] in ".!?\"'"),
        ] for t in texts]  # fmt: skip
        surface = sparse.csr_matrix(np.array(rows, dtype=np.float64).reshape(-1, self.SURFACE))
        return sparse.hstack([self.chars(texts) if chars is None else chars, surface]).tocsr()

    def fit(self, texts: Sequence[str], is_tweet: Sequence[bool]) -> TweetLikeness:
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(
            C=1.0, max_iter=2000, class_weight="balanced", solver="liblinear", random_state=0
        )
        clf.fit(self._matrix(texts), np.asarray(is_tweet, dtype=int))
        self.weights = np.concatenate([clf.coef_[0], clf.intercept_]).astype(np.float32)
        return self

    def proba(self, texts: Sequence[str], chars=None) -> np.ndarray:
        """P(tweet) of each text; ``chars``: :meth:`chars` of ``texts`` where already computed."""
        assert self.weights is not None
        if not len(texts):
            return np.zeros(0, dtype=np.float32)
        z = self._matrix(texts, chars) @ self.weights[:-1].astype(np.float64) + float(self.weights[-1])
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def weight(self, texts: Sequence[str], chars=None) -> np.ndarray:
        """The share of the tweets' scale bias a text carries: its tweet-likeness squared, so a
        text the classifier is unsure of (a Reddit post: 0.6 on average) gets little of it."""
        return self.proba(texts, chars) ** 2


class TweetHead:
    """A linear classifier for the categorical file's texts (the tweets, ``model.tweet_head``):
    multinomial logistic regression (scikit-learn, lbfgs, classes weighted equally, fixed
    ``random_state``) on hashed word 1-2-grams, the character 2-4-grams :class:`TweetLikeness`
    hashes and VADER's compound, pos, neg and neu, trained on the tweets the model fits on only.
    Served as its log-probabilities added to the model's class logits x the text's tweet-likeness
    squared. Its weights are one array (``HEAD_FILE``): a row per class in ``LABELS`` order,
    the intercept in the last column."""

    WORDS = 2**18
    VADER = 4

    def __init__(self, weights: np.ndarray | None = None) -> None:
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self._served: tuple[np.ndarray, np.ndarray] | None = None  # (coefficients transposed, intercepts)

    @staticmethod
    @functools.cache
    def _words():
        from sklearn.feature_extraction.text import HashingVectorizer

        return HashingVectorizer(ngram_range=(1, 2), n_features=TweetHead.WORDS, alternate_sign=False,
                                 token_pattern=r"(?u)[#@]?\b\w[\w']*\b|[!?]")  # fmt: skip

    def _matrix(self, texts: Sequence[str], vader: np.ndarray, chars=None):
        from scipy import sparse

        texts = [t[:4000] for t in texts]
        dense = sparse.csr_matrix(np.asarray(vader, dtype=np.float64).reshape(-1, self.VADER))
        chars = TweetLikeness.chars(texts) if chars is None else chars
        return sparse.hstack([self._words().transform(texts), chars, dense]).tocsr()

    def fit(self, texts: Sequence[str], vader: np.ndarray, labels: np.ndarray) -> TweetHead:
        """``labels``: class indices in ``LABELS`` order, every class present."""
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced", random_state=0)
        clf.fit(self._matrix(texts, vader), np.asarray(labels, dtype=int))
        if list(clf.classes_) != list(range(len(LABELS))):
            raise ValueError(f"the tweet head needs every class in its training texts, got {clf.classes_}")
        self.weights = np.hstack([clf.coef_, clf.intercept_[:, None]]).astype(np.float32)
        self._served = None
        return self

    def log_proba(self, texts: Sequence[str], vader: np.ndarray, chars=None) -> np.ndarray:
        """Log class probabilities (``LABELS`` order) of ``texts`` with VADER's four scores ``vader``
        (``chars``: :meth:`TweetLikeness.chars` of ``texts`` where already computed)."""
        assert self.weights is not None
        if not len(texts):
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        if self._served is None:
            w = self.weights.astype(np.float64)
            self._served = (np.ascontiguousarray(w[:, :-1].T), w[:, -1])
        coefficients, intercepts = self._served
        z = np.asarray(self._matrix(texts, vader, chars) @ coefficients) + intercepts
        z -= z.max(axis=1, keepdims=True)
        return (z - np.log(np.exp(z).sum(axis=1, keepdims=True))).astype(np.float32)


def build_vocabulary(analysed: Sequence[Analysed], min_count: int, max_size: int) -> list[str]:
    """The features in at least ``min_count`` texts, most frequent first (ties by the feature
    itself), at most ``max_size``: a stable choice for the same texts."""
    counts = Counter(f for a in analysed for f in set(a.features))
    kept = [f for f, c in counts.items() if c >= min_count]
    kept.sort(key=lambda f: (-counts[f], f))
    return kept[:max_size]


def _net(config: ModelConfig, vocabulary_size: int):
    import torch
    from torch import nn

    class RuleResidualNet(nn.Module):
        """Starts as VADER exactly (compound +-0.05 for the class, compound for the rating); every
        learned part starts at zero and is pulled back to zero by the L2 penalty."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("dense_mean", torch.zeros(DENSE_WIDTH))
            self.register_buffer("dense_scale", torch.ones(DENSE_WIDTH))
            self.register_buffer("offsets", torch.zeros(len(LABELS)))
            self.sharpness = nn.Parameter(torch.tensor(8.0))
            self.scale = nn.Parameter(torch.tensor(1.0))  # ratings are often milder than VADER's compound
            self.prior = nn.Linear(DENSE_WIDTH, len(LABELS) + 1)
            nn.init.zeros_(self.prior.weight)
            nn.init.zeros_(self.prior.bias)
            self.embedding = nn.EmbeddingBag(max(vocabulary_size, 1), config.dim, mode="sum")
            nn.init.zeros_(self.embedding.weight)
            self.dropout = nn.Dropout(config.dropout)
            self.correction = nn.Linear(config.dim, len(LABELS) + 1)
            nn.init.zeros_(self.correction.bias)

        def forward(self, ids, offsets, known, dense):
            compound = dense[:, 0]
            pos, neg = LABELS.index("positive"), LABELS.index("negative")
            base = torch.zeros(len(compound), len(LABELS) + 1)
            base[:, pos] = self.sharpness * (compound - 0.05)
            base[:, neg] = self.sharpness * (-compound - 0.05)
            base[:, len(LABELS)] = self.scale * torch.atanh(compound.clamp(-0.995, 0.995))
            out = base + self.prior((dense - self.dense_mean) / self.dense_scale)
            bag = self.embedding(ids, offsets) / (known + config.shrink).unsqueeze(1)
            out = out + self.correction(self.dropout(bag))
            return out[:, : len(LABELS)] + self.offsets, torch.tanh(out[:, len(LABELS)])

        def penalty(self):
            return (self.prior.weight**2).sum() + (self.correction.weight**2).sum()

    return RuleResidualNet()


@dataclasses.dataclass
class TrainingExample:
    text: str
    label: Label
    rating: float | None = None  # -1..1 where the labeller gave an intensity
    weak: bool = False  # a rule-agreement label, weighted down
    # From a categorical file whose classes have boundaries of their own (TweetEval's broad
    # neutral): in training its logits get a learned scale bias the served model never applies.
    categorical: bool = False
    source: str = ""  # the label file it came from: the fallback threshold holds for each


class _Encoder:
    """Texts -> the network's inputs, for one config and vocabulary."""

    def __init__(self, config: ModelConfig, vocabulary: Sequence[str]) -> None:
        self.config = config
        self.index = {f: i for i, f in enumerate(vocabulary)}

    def analyse(self, texts: Sequence[str]) -> list[Analysed]:
        ngrams, chars, textblob = self.config.ngrams, self.config.char_ngrams, bool(self.config.textblob)
        return [analyse(t, ngrams, chars, textblob) for t in texts]

    def encode(self, analysed: Sequence[Analysed]):
        import torch

        ids: list[int] = []
        starts, known = [], []
        index = self.index
        for a in analysed:
            starts.append(len(ids))
            ids.extend(index[f] for f in a.features if f in index)
            known.append(len(ids) - starts[-1])
        return (
            torch.tensor(ids, dtype=torch.long),
            torch.tensor(starts, dtype=torch.long),
            torch.tensor(known, dtype=torch.float32),
            torch.tensor([a.dense for a in analysed], dtype=torch.float32).reshape(-1, DENSE_WIDTH),
        )


class SentimentModel:
    """A trained network, its config and vocabulary: a :class:`~nightshift_core.sentiment.rules.Scorer`."""

    kind = KIND_TRAINED

    def __init__(
        self,
        net: Any,
        config: ModelConfig,
        vocabulary: Sequence[str],
        name: str = "sentiment",
        version: str = "unregistered",
        threshold: float = 0.0,
        marked_bias: Sequence[float] | None = None,
        likeness: TweetLikeness | None = None,
        likeness_bias: Sequence[float] | None = None,
        head: TweetHead | None = None,
    ):
        self.net = net
        self.config = config
        self.vocabulary = list(vocabulary)
        self.threshold = threshold  # below this class probability the rule's label stands
        # Added to the class logits of a text with social-media markers (model.marked_scale).
        self.marked_bias = None if marked_bias is None else np.asarray(marked_bias, dtype=np.float32)
        # Added x the text's tweet-likeness to its class logits (model.tweet_likeness).
        self.likeness = likeness
        self.likeness_bias = None if likeness_bias is None else np.asarray(likeness_bias, dtype=np.float32)
        # Its log-probabilities are added x the text's tweet-likeness squared (model.tweet_head).
        self.head = head
        self.encoder = _Encoder(config, self.vocabulary)
        self.name = name
        self.version = version

    def forget_texts(self) -> None:
        """Drop what scoring keeps of the texts it has seen (the character n-grams' word cache, one per
        process): the next texts are scored as by a model just loaded (the gate's timing)."""
        TweetLikeness._cached_hasher().clear()

    def probabilities(self, texts: Sequence[str], batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities (columns in ``LABELS`` order) and scores in [-1, 1]; where the
        largest probability is below the fallback threshold, the row is the rule's label with
        probability 1 (as :class:`RuleModel` gives it). The score is the rating head's, blended
        with VADER's compound: ``rating_share * rating + (1 - rating_share) * compound``."""
        probs, ratings, compounds = self._raw(texts, batch_size)
        return with_fallback(probs, compounds, self.threshold), blend_scores(
            ratings, compounds, self.config.rating_share
        )

    def _raw(self, texts: Sequence[str], batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The network's own probabilities and ratings, and VADER's compound of each text."""
        import torch

        self.net.eval()
        probs, ratings, compounds = [], [], []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                analysed = self.encoder.analyse(texts[start : start + batch_size])
                batch = self.encoder.encode(analysed)
                logits, rating = self.net(*batch)
                if self.marked_bias is not None:
                    marked = torch.tensor([a.marked for a in analysed], dtype=torch.float32)
                    logits = logits + marked.unsqueeze(1) * torch.from_numpy(self.marked_bias)
                serve_head = self.head is not None and self.likeness is not None
                if self.likeness is not None and (self.likeness_bias is not None or serve_head):
                    chunk = texts[start : start + batch_size]
                    chars = TweetLikeness.chars(chunk)  # read by both
                    tweetness = torch.from_numpy(self.likeness.weight(chunk, chars)).unsqueeze(1)
                    if self.likeness_bias is not None:
                        logits = logits + tweetness * torch.from_numpy(self.likeness_bias)
                    if serve_head:
                        head = self.head.log_proba(chunk, batch[3][:, : TweetHead.VADER].numpy(), chars)
                        logits = logits + tweetness * torch.from_numpy(head)
                probs.append(torch.softmax(logits, dim=1).numpy())
                ratings.append(rating.numpy())
                compounds.append(batch[3][:, 0].numpy())
        if not probs:
            empty = np.zeros(0, dtype=np.float32)
            return np.zeros((0, len(LABELS)), dtype=np.float32), empty, empty
        return np.concatenate(probs), np.concatenate(ratings), np.concatenate(compounds)

    def predict(self, texts: Sequence[str]) -> list[tuple[Label, float]]:
        """One ``(label, score)`` per text; score is the rating head's polarity in [-1, 1]."""
        probs, ratings = self.probabilities(list(texts))
        return [(LABELS[int(i)], float(r)) for i, r in zip(probs.argmax(axis=1), ratings, strict=True)]

    def seen_words(self) -> set[str]:
        """The single words of the vocabulary (what drift's unseen-word share compares against)."""
        return {f for f in self.vocabulary if " " not in f and not f.startswith(("NOT_", "EMO", "#"))}

    def save(self, folder: Path) -> None:
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), folder / WEIGHTS_FILE)
        (folder / VOCAB_FILE).write_text(json.dumps(self.vocabulary, ensure_ascii=False))
        meta = {"kind": self.kind, "config": self.config.to_dict(), "labels": LABELS,
                "fallback_threshold": self.threshold}  # fmt: skip
        if self.marked_bias is not None:
            meta["marked_bias"] = [float(b) for b in self.marked_bias]
        if self.likeness_bias is not None and self.likeness is not None:
            meta["likeness_bias"] = [float(b) for b in self.likeness_bias]
        if self.head is not None and self.likeness is not None:
            meta["tweet_head"] = True
            np.save(folder / HEAD_FILE, self.head.weights, allow_pickle=False)
        if self.likeness is not None and ("likeness_bias" in meta or "tweet_head" in meta):
            np.save(folder / LIKENESS_FILE, self.likeness.weights, allow_pickle=False)
        (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path, name: str = "sentiment", version: str = "unregistered") -> Any:
        """The model saved in ``folder``: a trained :class:`SentimentModel` or a :class:`RuleModel`."""
        import torch

        if not (folder / CONFIG_FILE).is_file():
            raise ModelArtifactError(f"model artifact {folder} has no {CONFIG_FILE}: it is not a saved model")
        meta = json.loads((folder / CONFIG_FILE).read_text())
        if tuple(meta.get("labels", ())) != LABELS:
            raise ModelArtifactError(
                f"model artifact {folder} was trained for labels {meta.get('labels')}, not {LABELS}"
            )
        kind = meta.get("kind")
        if kind == KIND_RULES:
            return RuleModel(meta.get("rule", "vader"), name, version, meta.get("rule_version", ""))
        if kind != KIND_TRAINED:
            raise ModelArtifactError(
                f"model artifact {folder} is of kind {kind!r}, which this version of the project cannot "
                f"load (it reads {KIND_TRAINED!r} and {KIND_RULES!r}); roll back to a version it can "
                "read (sentiment_retrain with action=rollback) or train a new one (force=true)"
            )
        for needed in (WEIGHTS_FILE, VOCAB_FILE):
            if not (folder / needed).is_file():
                raise ModelArtifactError(f"model artifact {folder} has no {needed}")
        # Artifacts saved before the ``textblob`` setting existed always read TextBlob.
        config = ModelConfig.from_dict({"textblob": 1, **meta["config"]})
        vocabulary = json.loads((folder / VOCAB_FILE).read_text())
        net = _net(config, len(vocabulary))
        net.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        net.eval()
        threshold = float(meta.get("fallback_threshold", 0.0))
        likeness = head = None
        if meta.get("likeness_bias") is not None or meta.get("tweet_head"):
            if not (folder / LIKENESS_FILE).is_file():
                raise ModelArtifactError(f"model artifact {folder} has no {LIKENESS_FILE}")
            likeness = TweetLikeness(np.load(folder / LIKENESS_FILE, allow_pickle=False))
        if meta.get("tweet_head"):
            if not (folder / HEAD_FILE).is_file():
                raise ModelArtifactError(f"model artifact {folder} has no {HEAD_FILE}")
            head = TweetHead(np.load(folder / HEAD_FILE, allow_pickle=False))
        return cls(net, config, vocabulary, name, version, threshold, meta.get("marked_bias"),
                   likeness, meta.get("likeness_bias"), head)  # fmt: skip


class RuleModel:
    """The rule baseline as a model version: VADER's compound score with the benchmarks' +-0.05
    thresholds. It is the first champion on a fresh install, so every scored row carries a
    ``model_version`` and a trained challenger must beat the rule to replace it."""

    kind = KIND_RULES

    def __init__(self, rule: str = "vader", name: str = "sentiment", version: str = "unregistered",
                 rule_version: str = "") -> None:  # fmt: skip
        if rule != "vader":
            raise ModelArtifactError(f"unknown rule {rule!r} in a rules model artifact; known: vader")
        self.rule = rule
        self.name = name
        self.version = version
        self.rule_version = rule_version or rule_package_version()
        self.config = None
        self.vocabulary: list[str] = []

    def probabilities(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        from nightshift_core.ml.labels import gold_label

        scores = np.array([vader_scores(t)["compound"] for t in texts], dtype=np.float32)
        probs = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
        for i, score in enumerate(scores):
            probs[i, LABELS.index(gold_label(float(score)))] = 1.0
        return probs, scores

    def predict(self, texts: Sequence[str]) -> list[tuple[Label, float]]:
        from nightshift_core.ml.labels import gold_label

        out = []
        for text in texts:
            score = float(vader_scores(text)["compound"])
            out.append((gold_label(score), score))
        return out

    def seen_words(self) -> set[str]:
        return set(_lexicons()[0])

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(
            json.dumps(
                {"kind": self.kind, "rule": self.rule, "rule_version": self.rule_version, "labels": LABELS},
                indent=2,
            )  # fmt: skip
        )


def rule_package_version() -> str:
    """``vaderSentiment <version>`` plus a digest of its lexicon: what the rule baseline is."""
    from importlib.metadata import version

    import vaderSentiment

    lexicon = (Path(vaderSentiment.__file__).parent / "vader_lexicon.txt").read_bytes()
    return f"vaderSentiment {version('vaderSentiment')} lexicon {hashlib.sha256(lexicon).hexdigest()[:12]}"


def blend_scores(ratings: np.ndarray, compounds: np.ndarray, share: float) -> np.ndarray:
    """The served score: ``share`` of the rating head's and the rest VADER's compound. Out of
    domain the rating head alone can correlate worse with human ratings than the rule (left-out
    NYT on the bench: r 0.39 against VADER's 0.47); the blend keeps the rule's ordering in it."""
    if share >= 1.0:
        return ratings
    return (share * ratings + (1.0 - share) * compounds).astype(np.float32)


def rule_labels(compounds: np.ndarray) -> np.ndarray:
    """VADER's class index (compound +-0.05, the benchmarks' rule) of each compound score."""
    out = np.full(len(compounds), LABELS.index("neutral"))
    out[compounds >= 0.05] = LABELS.index("positive")
    out[compounds <= -0.05] = LABELS.index("negative")
    return out


def with_fallback(probs: np.ndarray, compounds: np.ndarray, threshold: float) -> np.ndarray:
    """``probs`` with each row whose largest probability is below ``threshold`` replaced by the
    rule's label (probability 1)."""
    unsure = probs.max(axis=1) < threshold if len(probs) else np.zeros(0, dtype=bool)
    if not unsure.any():
        return probs
    out = probs.copy()
    out[unsure] = 0.0
    out[unsure, rule_labels(compounds[unsure])] = 1.0
    return out


def choose_threshold(
    probs: np.ndarray,
    compounds: np.ndarray,
    gold: np.ndarray,
    groups: Sequence[str] | None = None,
    min_group: int = 30,
) -> float:
    """The fallback threshold that maximises weighted F1 on held-out ``probs`` among those where
    every group (a source file, with at least ``min_group`` texts) scores at least the rule's
    weighted F1 -- so no domain of the training data is left below the rule for another's gain.
    Ties go to the higher threshold (more texts left to the rule). 0 never falls back, 1.01
    always does (and is always allowed)."""
    rule = rule_labels(compounds)
    names = np.asarray(groups if groups is not None else [""] * len(gold))
    parts = [names == g for g in sorted(set(names.tolist())) if (names == g).sum() >= min_group]
    floors = [_weighted_f1(gold[m], rule[m]) for m in parts]
    best, best_f1 = 1.01, _weighted_f1(gold, rule)
    for threshold in np.round(np.arange(0.99, MIN_THRESHOLD - 0.005, -0.01), 2):
        predicted = with_fallback(probs, compounds, float(threshold)).argmax(axis=1)
        if any(
            round(_weighted_f1(gold[m], predicted[m]), 6) < round(f, 6)
            for m, f in zip(parts, floors, strict=True)
        ):
            continue
        f1 = _weighted_f1(gold, predicted)
        if round(f1, 6) > round(best_f1, 6):
            best, best_f1 = float(threshold), f1
    return best


# The model overrides the rule only where it gives its label better-than-even odds.
MIN_THRESHOLD = 0.5
SCALE_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


def choose_fallback(
    logits: np.ndarray,
    compounds: np.ndarray,
    gold: np.ndarray,
    groups: Sequence[str],
    bias: np.ndarray,
    marked: np.ndarray | None = None,
    tweetness: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """``(share, marked_share, threshold)``: how much of the categorical files' scale ``bias``
    the served model's logits carry, and the fallback threshold below which the rule's label
    stands, chosen on held-out ``logits`` (weighted F1, every group at least the rule; see
    :func:`choose_threshold`). ``share`` is chosen first, with the threshold, as if no text had
    markers; then, where ``marked`` is given, the texts with social-media markers get a
    ``marked_share`` of their own (the threshold chosen again with it). Ties go to the smaller
    share and to a marked share equal to ``share``; without ``marked`` it is ``share``.

    With ``tweetness`` (each text's tweet-likeness, 0..1) instead, a text's share is
    ``share + (marked_share - share) * tweetness``, both chosen jointly on the grid."""
    flags = np.zeros(len(gold), dtype=bool) if marked is None else np.asarray(marked, dtype=bool)
    weight = flags.astype(np.float64) if tweetness is None else np.asarray(tweetness, dtype=np.float64)

    def best(pairs: Sequence[tuple[float, float]]) -> tuple[float, float, float]:
        chosen: tuple[float, float, float, float] | None = None
        for share, marked_share in pairs:
            shifted = logits + (share + (marked_share - share) * weight)[:, None] * bias
            probs = np.exp(shifted - shifted.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            threshold = choose_threshold(probs, compounds, gold, groups)
            f1 = _weighted_f1(gold, with_fallback(probs, compounds, threshold).argmax(axis=1))
            if chosen is None or round(f1, 6) > round(chosen[0], 6):
                chosen = (f1, share, marked_share, threshold)
        assert chosen is not None
        return chosen[1], chosen[2], chosen[3]

    if tweetness is not None:
        return best([(a, b) for a in SCALE_SHARES for b in SCALE_SHARES])
    choice = best([(s, s) for s in SCALE_SHARES])
    if not flags.any():
        return choice
    share = choice[0]
    return best([(share, share), *((share, s) for s in SCALE_SHARES if s != share)])


def _calibration_part(text: str, seed: int, share: float) -> bool:
    digest = hashlib.sha256(f"calibrate:{seed}:{unicodedata.normalize('NFC', text)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _weighted_f1(gold: np.ndarray, predicted: np.ndarray) -> float:
    total = 0.0
    for c in range(len(LABELS)):
        support = int((gold == c).sum())
        if not support:
            continue
        tp = int(((predicted == c) & (gold == c)).sum())
        fp = int(((predicted == c) & (gold != c)).sum())
        f1 = 2 * tp / (2 * tp + fp + (support - tp)) if tp else 0.0
        total += f1 * support
    return total / max(len(gold), 1)


def calibrate_offsets(
    logits: np.ndarray, gold: np.ndarray, span: float = 3.0, step: float = 0.1
) -> np.ndarray:
    """Offsets added to the positive and negative logits (neutral's stays 0) that maximise
    weighted F1 on held-out ``logits``; the smallest offsets win ties, so with no signal the
    model keeps what it learned."""
    grid = np.round(np.arange(-span, span + step / 2, step), 6)
    best, best_key = np.zeros(len(LABELS), dtype=np.float32), None
    pos, neg = LABELS.index("positive"), LABELS.index("negative")
    for a in grid:
        for b in grid:
            shifted = logits.copy()
            shifted[:, pos] += a
            shifted[:, neg] += b
            key = (round(_weighted_f1(gold, shifted.argmax(axis=1)), 6), -(abs(a) + abs(b)))
            if best_key is None or key > best_key:
                best_key = key
                best = np.zeros(len(LABELS), dtype=np.float32)
                best[pos], best[neg] = a, b
    return best


def train(
    examples: Sequence[TrainingExample],
    config: ModelConfig,
    *,
    log: Callable[[str], None] = print,
) -> tuple[SentimentModel, dict[str, Any]]:
    """Train on ``examples`` with fixed seeds: the same examples and config give the same weights.

    A ``max(config.calibrate_share, config.fallback_share)`` of the human examples (chosen by
    text hash) is held out of the fit, to calibrate the class offsets (``calibrate_share`` > 0) and
    to choose the fallback threshold (``fallback_share`` > 0). Returns the model and a small
    history (loss per epoch, seconds, vocabulary size, offsets, threshold). The examples' order
    is shuffled with the seed, so callers may pass them in any stable order.
    """
    import torch

    if not examples:
        raise ValueError(
            "no training examples: load human labels first (see docs/reddit-and-sentiment.md, 'Human labels')"
        )
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # gradient sums are only reproducible single-threaded
    started = time.perf_counter()
    try:
        share = max(config.calibrate_share, config.fallback_share)
        held = [not e.weak and _calibration_part(e.text, config.seed, share) for e in examples]
        if sum(held) < 10:  # too few to calibrate on: fit on everything, keep zero offsets
            held = [False] * len(examples)
        fit = [e for e, h in zip(examples, held, strict=True) if not h]
        calib = [e for e, h in zip(examples, held, strict=True) if h]
        probe = _Encoder(config, [])
        fit_analysed = probe.analyse([e.text for e in fit])
        vocabulary = build_vocabulary(fit_analysed, config.min_count, config.max_vocabulary)
        encoder = _Encoder(config, vocabulary)
        net = _net(config, len(vocabulary))
        ids_all, starts_all, known_all, dense_all = encoder.encode(fit_analysed)
        net.dense_mean.copy_(dense_all.mean(0))
        net.dense_scale.copy_(dense_all.std(0).clamp(min=1e-3))
        per_text = [
            ids_all[int(s) : int(s) + int(k)]
            for s, k in zip(starts_all.tolist(), known_all.tolist(), strict=True)
        ]
        optimizer = torch.optim.AdamW(
            [
                {"params": [net.embedding.weight], "weight_decay": config.weight_decay},
                {
                    "params": [p for n, p in net.named_parameters() if not n.startswith("embedding.")],
                    "weight_decay": 0.0,
                },
            ],
            lr=config.lr,
        )
        label_index = {label: i for i, label in enumerate(LABELS)}
        targets = torch.tensor([label_index[e.label] for e in fit])
        ratings = torch.tensor([0.0 if e.rating is None else e.rating for e in fit])
        has_rating = torch.tensor([e.rating is not None for e in fit], dtype=torch.float32)
        weights = torch.tensor([config.weak_weight if e.weak else 1.0 for e in fit])
        categorical = torch.tensor([e.categorical for e in fit], dtype=torch.float32)
        # Another file's class boundaries (where its neutral ends) are learned here, not in the
        # features: the served model predicts on the rated sets' scale.
        scale_bias = torch.zeros(len(LABELS), requires_grad=True)
        if config.scale_bias and bool(categorical.any()):
            optimizer.add_param_group({"params": [scale_bias], "weight_decay": 0.0})
        counts = torch.bincount(targets, minlength=len(LABELS)).clamp(min=1).float()
        class_weights = (counts.sum() / counts) ** config.class_balance
        class_weights = class_weights / (class_weights * counts).sum() * counts.sum()
        # The pull back to the rule is config.l2 at l2_reference training texts, stronger on fewer
        # (by the square root): a few hundred labels need the rule's prior more than 20,000 do.
        l2 = config.l2 * math.sqrt(config.l2_reference / len(fit)) if config.l2_reference else config.l2
        generator = torch.Generator().manual_seed(config.seed)
        history = []
        epochs = max(config.epochs, math.ceil(config.min_steps / math.ceil(len(fit) / config.batch_size)))
        for epoch in range(epochs):
            net.train()
            order = torch.randperm(len(fit), generator=generator)
            total = 0.0
            for start in range(0, len(order), config.batch_size):
                idx = order[start : start + config.batch_size]
                chunks = [per_text[i] for i in idx.tolist()]
                lengths = torch.tensor([0] + [len(c) for c in chunks[:-1]])
                logits, rating = net(
                    torch.cat(chunks), torch.cumsum(lengths, 0), known_all[idx], dense_all[idx]
                )
                logits = logits + categorical[idx].unsqueeze(1) * scale_bias
                w = weights[idx]
                loss_cls = (
                    torch.nn.functional.cross_entropy(
                        logits, targets[idx], weight=class_weights, reduction="none"
                    )
                    * w
                ).sum()
                loss_rating = (((rating - ratings[idx]) ** 2) * has_rating[idx] * w).sum()
                loss = (loss_cls + config.rating_weight * loss_rating) / w.sum() + l2 * net.penalty()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
            history.append(round(total / len(fit), 6))
            if epoch == epochs - 1 or (epoch + 1) % max(1, epochs // 5) == 0:
                log(f"epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}")
        net.eval()
        model = SentimentModel(net, config, vocabulary)
        likeness = None
        if (
            config.tweet_likeness
            and config.scale_bias
            and bool(categorical.any())
            and not bool(categorical.all())
        ):
            likeness = TweetLikeness().fit([e.text for e in fit], [e.categorical for e in fit])
        head = None
        tweets_fit = [i for i, e in enumerate(fit) if e.categorical]
        if (
            config.tweet_head
            and likeness is not None
            and len(set(targets[tweets_fit].tolist())) == len(LABELS)
        ):
            # Only the categorical file's texts the model fits on: never its held-out labels.
            vader = dense_all[tweets_fit, : TweetHead.VADER].numpy()
            head = TweetHead().fit([fit[i].text for i in tweets_fit], vader, targets[tweets_fit].numpy())
        elif config.tweet_head:
            log(
                "tweet head: not trained (it needs tweet_likeness, other texts and categorical texts of every class)"
            )
        offsets = np.zeros(len(LABELS), dtype=np.float32)
        share = marked_share = 0.0
        if calib:
            gold = np.array([label_index[e.label] for e in calib])
            calib_texts = [e.text for e in calib]
            if config.calibrate_share > 0:
                with torch.inference_mode():
                    logits, _ = net(*encoder.encode(encoder.analyse(calib_texts)))
                offsets = calibrate_offsets(logits.numpy(), gold)
                net.offsets.copy_(torch.from_numpy(offsets))
                log(f"calibrated class offsets on {len(calib)} held-out labels: {offsets.round(2).tolist()}")
            if config.fallback_share > 0:
                calib_analysed = encoder.analyse(calib_texts)
                encoded = encoder.encode(calib_analysed)
                with torch.inference_mode():
                    logits, _ = net(*encoded)
                bias = scale_bias.detach().numpy()
                marked = np.array([a.marked for a in calib_analysed]) if config.marked_scale else None
                tweetness = None if likeness is None else likeness.weight(calib_texts)
                share, marked_share, model.threshold = choose_fallback(
                    logits.numpy(), encoded[3][:, 0].numpy(), gold, [e.source for e in calib], bias,
                    None if likeness is not None else marked, tweetness,
                )  # fmt: skip
                if share:
                    net.offsets.add_(torch.from_numpy(share * bias))
                if marked_share != share and likeness is not None:
                    model.likeness = likeness
                    model.likeness_bias = ((marked_share - share) * bias).astype(np.float32)
                elif marked_share != share:
                    model.marked_bias = ((marked_share - share) * bias).astype(np.float32)
                if head is not None:
                    # The head joins the served logits; the fallback threshold is chosen again with it.
                    model.likeness, model.head = likeness, head
                    probs, _, compounds = model._raw(calib_texts)
                    model.threshold = choose_threshold(probs, compounds, gold, [e.source for e in calib])
                log(
                    f"fallback to the rule below class probability {model.threshold:g}, {share:g} of the "
                    f"categorical scale bias {bias.round(2).tolist()} ({marked_share:g} on texts with "
                    f"{'tweet-likeness 1' if model.likeness is not None else 'social-media markers'}; {len(calib)} "
                    f"held-out labels){'; with the tweet head' if model.head is not None else ''}"
                )
        if head is not None and model.head is None:  # no held-out labels: served without a threshold
            model.likeness, model.head = likeness, head
    finally:
        torch.set_num_threads(threads)
    return model, {
        "loss": history,
        "seconds": round(time.perf_counter() - started, 3),
        "vocabulary": len(vocabulary),
        "calibration_examples": len(calib),
        "offsets": [round(float(o), 3) for o in offsets],
        "scale_bias": [round(float(b), 3) for b in scale_bias.detach()],
        "scale_share": share,
        "marked_share": marked_share,
        "fallback_threshold": model.threshold,
        "tweet_head": model.head is not None,
        "l2": round(l2, 6),
    }
