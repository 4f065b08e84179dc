"""Input drift between the texts a model was trained on and the texts it scores now.

A *profile* is a small JSON-able summary of a text collection, saved with every model: the
decile edges and shares of text length (in words), the shares of VADER compound scores in ten
fixed bins, and the words seen at least twice. Comparing recent texts against it gives the
population stability index (PSI) of lengths and scores and the share of recent words the
model never saw. The usual PSI reading: < 0.1 stable, 0.1-0.25 moving, > 0.25 shifted.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from nightshift_core.ml.model import tokens
from nightshift_core.sentiment.rules import vader_scores

SCORE_EDGES = [-1.0 + 0.2 * i for i in range(11)]
MAX_VOCABULARY = 50_000
EPSILON = 1e-4


def _shares(values: Sequence[float], edges: Sequence[float]) -> list[float]:
    """Share of ``values`` in each bin ``[edges[i], edges[i+1])``, the outer bins open-ended."""
    counts = [0] * (len(edges) - 1)
    for value in values:
        i = 0
        while i < len(counts) - 1 and value >= edges[i + 1]:
            i += 1
        counts[i] += 1
    total = max(len(values), 1)
    return [c / total for c in counts]


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two share vectors over the same bins."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} expected bins but {len(actual)} actual bins")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def _length_edges(lengths: Sequence[int]) -> list[float]:
    ordered = sorted(lengths)
    if not ordered:
        return [0.0, math.inf]
    cuts = sorted({float(ordered[min(len(ordered) - 1, (len(ordered) * q) // 10)]) for q in range(1, 10)})
    return [-math.inf, *cuts, math.inf]


def profile(texts: Sequence[str], compounds: Sequence[float] | None = None) -> dict[str, Any]:
    """The summary of ``texts`` drift checks compare against (``compounds``: VADER's, if known)."""
    words = [tokens(t) for t in texts]
    lengths = [len(w) for w in words]
    edges = _length_edges(lengths)
    if compounds is None:
        compounds = [vader_scores(t)["compound"] for t in texts]
    counts = Counter(w for ws in words for w in ws)
    vocabulary = sorted(w for w, n in counts.most_common(MAX_VOCABULARY) if n >= 2)
    return {
        "texts": len(texts),
        "length_edges": [e if math.isfinite(e) else None for e in edges],
        "length_shares": _shares(lengths, edges),
        "score_shares": _shares(compounds, SCORE_EDGES),
        "vocabulary": vocabulary,
    }


def compare(
    reference: dict[str, Any], texts: Sequence[str], compounds: Sequence[float] | None = None
) -> dict[str, Any]:
    """PSI of lengths and scores and the unseen-word share of ``texts`` against ``reference``."""
    edges = [
        (-math.inf if i == 0 else math.inf) if e is None else e
        for i, e in enumerate(reference["length_edges"])
    ]
    words = [tokens(t) for t in texts]
    if compounds is None:
        compounds = [vader_scores(t)["compound"] for t in texts]
    known = set(reference["vocabulary"])
    all_words = [w for ws in words for w in ws if w.isalpha()]
    unseen = sum(w not in known for w in all_words)
    return {
        "texts": len(texts),
        "length_psi": round(psi(reference["length_shares"], _shares([len(w) for w in words], edges)), 4),
        "score_psi": round(psi(reference["score_shares"], _shares(compounds, SCORE_EDGES)), 4),
        "unseen_share": round(unseen / len(all_words), 4) if all_words else 0.0,
    }
