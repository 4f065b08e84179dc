"""Classification metrics for the 3 sentiment labels, in plain numpy (no scikit-learn dependency).

Definitions follow scikit-learn's: per-class precision/recall/F1 with 0 where undefined,
``weighted`` averages by true-class support, ``macro`` is the plain mean over the classes that
occur in gold or predictions; AUC is one-vs-rest, macro-averaged over classes present in gold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nightshift_core.sentiment.rules import LABELS


def confusion(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str] = LABELS) -> np.ndarray:
    """``matrix[i][j]``: texts of gold class ``labels[i]`` predicted as ``labels[j]``."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({x for x in (*gold, *predicted) if x not in index})
    if unknown:
        raise ValueError(f"labels {unknown} are not among {list(labels)}")
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, ([index[g] for g in gold], [index[p] for p in predicted]), 1)
    return matrix


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b != 0)


def auc_one_vs_rest(
    gold: Sequence[str], probabilities: np.ndarray, labels: Sequence[str] = LABELS
) -> float | None:
    """Macro one-vs-rest ROC AUC from class probabilities (columns in ``labels`` order), with
    ties counted half (Mann-Whitney U). ``None`` when fewer than two classes occur in gold."""
    gold_arr = np.asarray(gold)
    aucs = []
    for j, label in enumerate(labels):
        positive = gold_arr == label
        n_pos, n_neg = int(positive.sum()), int((~positive).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        scores = probabilities[:, j]
        order = np.argsort(scores, kind="mergesort")
        ranks = np.empty(len(scores))
        sorted_scores = scores[order]
        # average ranks over ties
        _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
        for start, count in zip(first, counts, strict=True):
            ranks[order[start : start + count]] = start + (count + 1) / 2
        aucs.append((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs)) if len(aucs) >= 2 else None


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson r, or ``None`` when undefined (under 2 points or a constant side)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def classification_report(
    gold: Sequence[str],
    predicted: Sequence[str],
    *,
    probabilities: np.ndarray | None = None,
    scores: Sequence[float] | None = None,
    ratings: Sequence[float | None] | None = None,
) -> dict[str, Any]:
    """Accuracy, weighted/macro precision, recall and F1, the confusion matrix, and where the
    inputs allow: AUC (needs probabilities) and Pearson r of scores vs gold ratings."""
    matrix = confusion(gold, predicted)
    tp = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1).astype(float)
    predicted_count = matrix.sum(axis=0).astype(float)
    precision = _safe_div(tp, predicted_count)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    present = (support + predicted_count) > 0
    total = support.sum()
    report: dict[str, Any] = {
        "n": int(total),
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "weighted_f1": float((f1 * support).sum() / total) if total else 0.0,
        "weighted_precision": float((precision * support).sum() / total) if total else 0.0,
        "weighted_recall": float((recall * support).sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(LABELS)
        },  # fmt: skip
        "confusion": {"labels": list(LABELS), "matrix": matrix.tolist()},
        "auc": auc_one_vs_rest(gold, probabilities) if probabilities is not None else None,
        "pearson_r": None,
    }
    if scores is not None and ratings is not None:
        pairs = [(s, r) for s, r in zip(scores, ratings, strict=True) if r is not None]
        if pairs:
            report["pearson_r"] = pearson([s for s, _ in pairs], [r for _, r in pairs])
    return report
