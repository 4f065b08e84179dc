"""Scikit-learn's ``HashingVectorizer`` matrix for character n-grams within words (``char_wb``), bit
for bit, with each word's hashed n-grams cached.

A ``char_wb`` n-gram never crosses whitespace: a text's n-grams are its words' n-grams (each word
padded with a space either side), so its counts are the sum of its words' counts, and a word met
before costs a dictionary look-up instead of slicing and hashing each of its n-grams again in
Python, which scikit-learn's analyzer does for every text (most of the model's tweet features'
time). What a new word hashes to is computed by scikit-learn itself: the same vectorizer, without
lower-casing or normalisation, on the word. The counts are then summed per text, and the
vectorizer's ``binary`` and ``norm`` applied as it applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np


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
            counted = self._plain.transform(missing).tocsr()
            counts = counted.data.astype(np.int64)
            columns = np.repeat(counted.indices, counts)
            bounds = np.concatenate(([0], np.cumsum(counts)))[counted.indptr].tolist()
            for word, start, end in zip(missing, bounds[:-1], bounds[1:], strict=True):
                known[word] = cache[word] = columns[start:end]
        return known

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
