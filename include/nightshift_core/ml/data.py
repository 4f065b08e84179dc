"""From label rows and scraped texts to the training and frozen evaluation sets.

* Human labels are split by :func:`~nightshift_core.ml.labels.in_eval` on their text, so the
  evaluation set only ever holds human labels and never a text that is also trained on.
* Weak labels are scraped texts where VADER and TextBlob agree, each with at least the
  configured confidence; they never include a human-labelled text, are capped at a share of
  the training set, flagged ``weak`` and weighted down in the loss.
* Every set has a digest of its content: the evaluation set's digest is its version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from nightshift_core.ml.labels import in_eval, text_key
from nightshift_core.ml.model import TrainingExample


@dataclasses.dataclass(frozen=True)
class Split:
    train: list[TrainingExample]
    eval: list[TrainingExample]
    duplicates: int  # human rows dropped because their text was already labelled


def split_human(
    rows: Iterable[dict[str, Any]], seed: int, eval_share: float, categorical: Collection[str] = ()
) -> Split:
    """``rows`` (``text``, ``label``, ``rating``, ``example_id`` and ``source``) into train and eval,
    one row per text: the first by ``example_id`` wins, so the result does not depend on row order.
    Rows of the files named in ``categorical`` are marked as such (their own class boundaries)."""
    seen: set[str] = set()
    train, evaluation, duplicates = [], [], 0
    for row in sorted(rows, key=lambda r: r["example_id"]):
        key = text_key(row["text"])
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        example = TrainingExample(
            row["text"],
            row["label"],
            row.get("rating"),
            categorical=row.get("source") in categorical,
            source=row.get("source") or "",
        )
        (evaluation if in_eval(row["text"], seed, eval_share) else train).append(example)
    return Split(train, evaluation, duplicates)


def without_check_texts(
    rows: Iterable[dict[str, Any]], source: str, seed: int, share: float, max_train: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """``rows`` without the texts of the check split of the file named ``source`` (by text hash,
    whichever file they came from), and with at most ``max_train`` (> 0) of that file's other rows
    (the lowest seeded text hashes: a stable sample). Returns the rows and how many were held out."""
    rows = list(rows)
    checked = {text_key(r["text"]) for r in rows if r["source"] == source and in_eval(r["text"], seed, share)}
    kept = [r for r in rows if text_key(r["text"]) not in checked]
    if max_train > 0:
        own = sorted((r for r in kept if r["source"] == source), key=lambda r: _rank(r["text"], seed))
        dropped = {id(r) for r in own[max_train:]}
        kept = [r for r in kept if id(r) not in dropped]
    return kept, len(rows) - len(kept)


def _rank(text: str, seed: int) -> str:
    return hashlib.sha256(f"sample:{seed}:{text_key(text)}".encode()).hexdigest()


def check_examples(rows: Iterable[Any], seed: int, share: float) -> list[TrainingExample]:
    """The check split of one file's rows (:class:`~nightshift_core.ml.labels.LabelRow`)."""
    return [TrainingExample(r.text, r.label, r.rating) for r in rows if in_eval(r.text, seed, share)]


def weak_examples(
    candidates: Iterable[dict[str, Any]],
    *,
    exclude: set[str],
    n_human: int,
    max_share: float,
    min_vader_compound: float,
    min_textblob_polarity: float,
) -> list[TrainingExample]:
    """Scraped texts (``text``, ``vader_compound``, ``textblob_polarity``) where both rules agree
    confidently on positive or negative, at most ``max_share`` of the resulting training set.

    The cap keeps the texts with the lowest text hash: a stable choice that does not favour
    whatever was scraped first. Texts in ``exclude`` (text keys of human labels) are skipped.
    """
    chosen: dict[str, TrainingExample] = {}
    for row in candidates:
        text = row.get("text") or ""
        compound, polarity = row.get("vader_compound"), row.get("textblob_polarity")
        if not text.strip() or compound is None or polarity is None:
            continue
        if compound >= min_vader_compound and polarity >= min_textblob_polarity:
            label = "positive"
        elif compound <= -min_vader_compound and polarity <= -min_textblob_polarity:
            label = "negative"
        else:
            continue
        key = text_key(text)
        if key not in exclude and key not in chosen:
            chosen[key] = TrainingExample(text, label, None, weak=True)
    cap = int(max_share / (1 - max_share) * n_human) if max_share < 1 else len(chosen)
    return [chosen[k] for k in sorted(chosen)[:cap]]


def digest(examples: Sequence[TrainingExample]) -> str:
    """A content hash of a set of examples, independent of their order."""
    lines = sorted(json.dumps([text_key(e.text), e.label, e.rating, e.weak]) for e in examples)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
