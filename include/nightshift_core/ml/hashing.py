"""Scikit-learn's ``HashingVectorizer`` matrix for character n-grams within words (``char_wb``), bit
for bit, with each word's hashed n-grams cached.

A ``char_wb`` n-gram never crosses whitespace: a text's n-grams are its words' n-grams (each word
padded with a space either side), so its counts are the sum of its words' counts, and a word met
before costs a dictionary look-up instead of slicing and hashing each of its n-grams again in
Python, which scikit-learn's analyzer does for every text (most of the model's tweet features'
time). What a new word hashes to is computed for all new words of a batch at once
(:func:`word_ngram_columns`, scikit-learn's MurmurHash3 of each n-gram's UTF-8 bytes in numpy; the
tests compare it with scikit-learn's own on every word of the shared sets). The counts are then summed per text, and the
vectorizer's ``binary`` and ``norm`` applied as it applies them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)  # MurmurHash3_x86_32's constants
_SPAN = np.arange(16)  # an n-gram of up to 4 characters is at most 16 bytes of UTF-8


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def word_ngram_columns(
    words: Sequence[str], min_n: int, max_n: int, n_features: int
) -> tuple[np.ndarray, np.ndarray]:
    """The hashed columns of each word's ``char_wb`` n-grams, as scikit-learn's ``HashingVectorizer``
    (``alternate_sign=False``) hashes them, for all words at once: the columns of word *i* are
    ``columns[bounds[i]:bounds[i + 1]]``, one per n-gram occurrence (in no particular order).

    Each word is padded with a space either side and its n-grams of ``min_n``..``max_n`` characters
    (at most 4, at least one n-gram per word: ``min_n`` up to 3) are the padded word's substrings of
    that length. Each is hashed as scikit-learn does: MurmurHash3_x86_32 with seed 0 of its UTF-8
    bytes, the column the absolute value modulo ``n_features``. Here in numpy, every n-gram of a length
    in one pass, instead of a Python slice and hash per n-gram. Raises UnicodeEncodeError on a lone
    surrogate (as scikit-learn does).
    """
    if max_n > 4 or min_n < 1:
        raise ValueError(f"n-grams of {min_n}..{max_n} characters: this hashing reads 1..4")
    padded = [" " + w + " " for w in words]
    data = "".join(padded)
    raw = np.frombuffer(data.encode("utf-8") + bytes(20), dtype=np.uint8)  # (padded: every read in bounds)
    points = np.frombuffer(data.encode("utf-32-le"), dtype=np.uint32)
    lengths = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
    offsets = np.zeros(len(points) + 1, dtype=np.int64)  # each character's first byte
    np.cumsum(1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000), out=offsets[1:])
    starts = np.zeros(len(words), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    owners, hashed = [], []
    for n in range(min_n, max_n + 1):
        count = np.maximum(lengths - n + 1, 0)  # a padded word of n characters or more
        total = int(count.sum())
        if not total:
            continue
        before = np.zeros(len(words), dtype=np.int64)
        np.cumsum(count[:-1], out=before[1:])
        owner = np.repeat(np.arange(len(words)), count)
        first = (starts - before)[owner] + np.arange(total)  # each n-gram's first character
        begin = offsets[first]
        size = offsets[first + n] - begin
        block = np.zeros((total, 20), dtype=np.uint8)  # its bytes, zero after them, 5 words of 4
        block[:, :16] = raw[begin[:, None] + _SPAN]
        block[:, :16][_SPAN >= size[:, None]] = 0
        words32 = block.view("<u4")
        h = np.zeros(total, dtype=np.uint32)
        blocks = size // 4
        for i in range(4):  # the whole 4-byte blocks
            k = _rotl(words32[:, i] * _C1, 15) * _C2
            h = np.where(blocks > i, _rotl(h ^ k, 13) * np.uint32(5) + np.uint32(0xE6546B64), h)
        # the tail (zero bytes after the n-gram, so a tail of none mixes in nothing), length, finalizer
        h ^= _rotl(np.take_along_axis(words32, blocks[:, None], axis=1)[:, 0] * _C1, 15) * _C2
        h ^= size.astype(np.uint32)
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
        signed = h.view(np.int32).astype(np.int64)
        column = np.abs(signed) % n_features
        column[signed == -(2**31)] = (2**31 - 1 - (n_features - 1)) % n_features  # as FeatureHasher does
        owners.append(owner)
        hashed.append(column)
    if not owners:
        return np.zeros(0, dtype=np.int32), np.zeros(len(words) + 1, dtype=np.int64)
    owner = np.concatenate(owners)
    index_type = np.int32 if n_features <= np.iinfo(np.int32).max else np.int64
    columns = np.concatenate(hashed)[np.argsort(owner, kind="stable")].astype(index_type)
    bounds = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=len(words)), out=bounds[1:])
    return columns, bounds


class CachedCharHashing:
    """``vectorizer.transform(texts)`` for a scikit-learn ``HashingVectorizer`` with
    ``analyzer="char_wb"`` and ``alternate_sign=False``: the same matrix (shape, dtype, sorted
    indices, values), with the hashed n-grams of at most ``max_words`` words kept between calls
    (about 300 bytes a word; when it is full, all but the words of the batch at hand are dropped,
    so a long-lived scorer's memory stays bounded)."""

    def __init__(self, vectorizer: Any, max_words: int = 2**16) -> None:
        from sklearn.base import clone

        if vectorizer.analyzer != "char_wb" or vectorizer.alternate_sign:
            raise ValueError(
                "CachedCharHashing reads HashingVectorizer(analyzer='char_wb', alternate_sign=False), not "
                f"analyzer={vectorizer.analyzer!r}, alternate_sign={vectorizer.alternate_sign!r}; use the "
                "vectorizer's own transform for that one"
            )
        self.vectorizer = vectorizer
        self.max_words = max_words
        self._cache: dict[str, np.ndarray] = {}
        self._decode = vectorizer.decode
        self._preprocess = vectorizer.build_preprocessor()  # lower-casing, accents: on the whole text
        # The words are preprocessed already: the plain vectorizer counts each one's n-grams.
        self._plain = clone(vectorizer).set_params(
            preprocessor=None, lowercase=False, strip_accents=None, binary=False, norm=None
        )

    def _hashed(self, words: Sequence[str]) -> dict[str, np.ndarray]:
        """Each of ``words``' hashed columns, one per n-gram (repeated as often as it occurs)."""
        cache = self._cache
        known: dict[str, np.ndarray] = {}
        missing = []
        for word in set(words):
            columns = cache.get(word)
            if columns is None:
                missing.append(word)
            else:
                known[word] = columns
        if len(cache) + len(missing) > self.max_words:
            cache.clear()  # all but this batch's words: the ones in use now stay
            cache.update(known)
        if missing:
            low, high = self.vectorizer.ngram_range
            columns = bounds = None
            # Not for min_n above 3 (a padded word shorter than it is one n-gram of its own, as
            # scikit-learn counts it) or n-grams over 4 characters (over 16 bytes): those its way.
            if low <= 3 and high <= 4:
                with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate: scikit-learn's word
                    columns, bounds = word_ngram_columns(missing, low, high, self.vectorizer.n_features)
            if columns is None:
                counted = self._plain.transform(missing).tocsr()
                counts = counted.data.astype(np.int64)
                columns = np.repeat(counted.indices, counts)
                bounds = np.concatenate(([0], np.cumsum(counts)))[counted.indptr]
            bounds = bounds.tolist()
            for word, start, end in zip(missing, bounds[:-1], bounds[1:], strict=True):
                known[word] = cache[word] = columns[start:end]
        return known

    def clear(self) -> None:
        """Forget every word (a scorer that has seen no text yet)."""
        self._cache.clear()

    def transform(self, texts: Sequence[str]):
        """The vectorizer's matrix of ``texts`` (a SciPy CSR matrix)."""
        from scipy import sparse
        from sklearn.preprocessing import normalize

        v = self.vectorizer
        split = [self._preprocess(self._decode(t)).split() for t in texts]
        words = list(chain.from_iterable(split))
        try:
            per_word = list(map(self._cache.__getitem__, words))
        except KeyError:  # a word not seen yet (or the cache was dropped)
            per_word = list(map(self._hashed(words).__getitem__, words))
        widths = np.fromiter(map(len, per_word), dtype=np.int64, count=len(per_word))
        # Each text's n-gram count: its words' widths summed.
        ends = np.concatenate(([0], np.cumsum(widths)))[np.cumsum([len(s) for s in split], dtype=np.int64)]
        columns = np.concatenate(per_word) if per_word else np.zeros(0, dtype=np.int64)
        # One number per n-gram, text x n_features + column, sorted: a run of equal numbers is one
        # count, as FeatureHasher's values (1 per n-gram) summed by its sum_duplicates, which also
        # sorts each row's columns.
        pairs = np.repeat(np.arange(len(split), dtype=np.int64), np.diff(ends, prepend=0)) * v.n_features
        pairs += columns
        pairs.sort()
        first = np.flatnonzero(np.diff(pairs, prepend=-1))
        counts = np.diff(first, append=len(pairs))
        pairs = pairs[first]
        indptr = np.searchsorted(pairs, np.arange(len(split) + 1, dtype=np.int64) * v.n_features)
        index_type = np.int32 if len(pairs) <= np.iinfo(np.int32).max else np.int64
        matrix = sparse.csr_matrix(
            (counts.astype(v.dtype), (pairs % v.n_features).astype(index_type), indptr.astype(index_type)),
            shape=(len(split), v.n_features),
        )
        if v.binary:
            matrix.data.fill(1)
        if v.norm is not None and len(split):  # (no texts: an empty matrix, where the vectorizer raises)
            matrix = normalize(matrix, norm=v.norm, copy=False)
        return matrix
