"""Unit tests of the retraining job's pure logic (``nightshift_core.ml``) with plain inputs.

Labels and their error messages, the frozen split, weak labels, metrics against scikit-learn as
an oracle, drift, the gate, the e-mail, retrain.yaml, and a tiny deterministic model. No Airflow,
no services.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from nightshift_core.ml import drift, gate
from nightshift_core.ml.config import CONFIG_PATH, LABELS_ENV, Drift, ModelConfig, RetrainConfigError, load
from nightshift_core.ml.data import check_examples, digest, split_human, weak_examples, without_check_texts
from nightshift_core.ml.evaluation import SUMMARY_KEYS, evaluate_model, evaluate_rule, overrides, summary
from nightshift_core.ml.labels import (
    LabelFileError,
    LabelRow,
    gold_label,
    in_eval,
    label_files,
    normalise,
    read_file,
    read_labels,
    text_key,
)
from nightshift_core.ml.metrics import auc_one_vs_rest, classification_report, confusion, pearson
from nightshift_core.ml.model import (
    ModelArtifactError,
    SentimentModel,
    TrainingExample,
    TweetHead,
    TweetLikeness,
    _calibration_part,
    analyse,
    build_vocabulary,
    choose_fallback,
    choose_threshold,
    tokens,
    train,
    with_fallback,
)
from nightshift_core.ml.report import render
from nightshift_core.sentiment.rules import LABELS

ROOT = Path(__file__).resolve().parents[1]


# -- labels: the gold rule ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rating", "label"),
    [
        (1.0, "positive"),
        (0.05, "positive"),
        (math.nextafter(0.05, 0), "neutral"),
        (0.0, "neutral"),
        (math.nextafter(-0.05, 0), "neutral"),
        (-0.05, "negative"),
        (-1.0, "negative"),
    ],
)
def test_gold_label_thresholds(rating, label):
    assert gold_label(rating) == label


# -- labels: reading good files ----------------------------------------------------------------
def test_csv_optional_columns_derived_labels_and_default_ids(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text(
        "id,text,label,rating\n"
        '7,"Great, really",positive,0.8\n'  # quoted comma
        ",just facts,neutral,\n"  # no id, no rating
        "9,meh,,-0.3\n"  # no label: the gold rule's
        "10,  Fine  ,Positive,0.05\n"  # text stripped, label case-insensitive, rating on the edge
    )
    rows = read_file(path)
    assert [(r.example_id, r.text, r.label, r.rating, r.source) for r in rows] == [
        ("reviews:7", "Great, really", "positive", 0.8, "reviews.csv"),
        (f"reviews:{text_key('just facts')[:16]}", "just facts", "neutral", None, "reviews.csv"),
        ("reviews:9", "meh", "negative", -0.3, "reviews.csv"),
        ("reviews:10", "Fine", "positive", 0.05, "reviews.csv"),
    ]


@pytest.mark.parametrize(
    ("header", "row", "expected"),
    [
        ("text,label", "nice,positive", ("positive", None)),
        ("text,rating", "nice,0.5", ("positive", 0.5)),
        ("text,rating", "so so,0.0", ("neutral", 0.0)),
        ("rating,text", "-0.05,bad", ("negative", -0.05)),
        ("label,text,id", "negative,bad,x1", ("negative", None)),
    ],
)
def test_csv_needs_text_and_a_label_or_a_rating(tmp_path, header, row, expected):
    path = tmp_path / "h.csv"
    path.write_text(f"{header}\n{row}\n")
    (only,) = read_file(path)
    assert (only.label, only.rating) == expected


def test_default_id_is_the_hash_of_the_normalised_text(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("text,label\nHello   World,positive\n")
    b.write_text("text,label\n hello world ,positive\n")
    (ra,), (rb,) = read_file(a), read_file(b)
    assert ra.example_id == f"a:{text_key('hello world')[:16]}"
    assert ra.example_id.split(":")[1] == rb.example_id.split(":")[1]


@pytest.mark.parametrize(
    ("raw", "rating", "label"),
    [
        ("2.0", 0.5, "positive"),
        ("0.2", 0.05, "positive"),  # 0.2 / 4 is exactly the threshold
        ("0.19", 0.0475, "neutral"),
        ("-0.1", -0.025, "neutral"),
        ("-0.2", -0.05, "negative"),
        ("-4", -1.0, "negative"),
        ("4", 1.0, "positive"),
    ],
)
def test_ground_truth_rating_is_divided_by_four(tmp_path, raw, rating, label):
    path = tmp_path / "set.tsv"
    path.write_text(f"id1\t{raw}\tsome text\twith a tab\n")
    (row,) = read_file(path)
    assert row.rating == pytest.approx(rating) and row.label == label
    assert row.example_id == "set:id1" and row.text == "some text\twith a tab" and row.source == "set.tsv"


def test_ground_truth_skips_blank_lines_and_handles_crlf(tmp_path):
    path = tmp_path / "vader.txt"
    path.write_bytes(b"1\t1.5\tgood\r\n\r\n\n2\t-1.5\tbad\r\n")
    assert [(r.example_id, r.text, r.label) for r in read_file(path)] == [
        ("vader:1", "good", "positive"),
        ("vader:2", "bad", "negative"),
    ]


def test_categorical_tsv_has_labels_without_ratings_and_keeps_its_file(tmp_path):
    path = tmp_path / "tweets.tsv"
    path.write_text("id\tlabel\ttext\nt1\tPositive\tso good @user\n\nt2\tneutral\tmeh\tstill text\r\n")
    rows = read_file(path)
    assert [(r.example_id, r.label, r.rating, r.text, r.source) for r in rows] == [
        ("tweets:t1", "positive", None, "so good @user", "tweets.tsv"),
        ("tweets:t2", "neutral", None, "meh\tstill text", "tweets.tsv"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id\tlabel\ttext\nt1\tgood\thi\n", r"tweets.tsv, line 2: label 'good' is not one of"),
        ("id\tlabel\ttext\nt1\tpositive\n", r"tweets.tsv, line 2: expected id<TAB>label<TAB>text"),
        ("id\tlabel\ttext\n\tpositive\thi\n", r"tweets.tsv, line 2: the ID \(first field\) is empty"),
        ("id\tlabel\ttext\nt1\tpositive\thi\nt1\tnegative\tho\n", r"line 3: id 't1' appears twice"),
    ],
)
def test_bad_categorical_rows_name_file_line_and_fix(tmp_path, content, message):
    path = tmp_path / "tweets.tsv"
    path.write_text(content)
    with pytest.raises(LabelFileError, match=message):
        read_file(path)


def test_the_tweet_check_split_leaves_training_whichever_file_holds_the_text():
    texts = [f"tweet number {i}" for i in range(400)]
    rows = [{"text": t, "source": "t.tsv"} for t in texts] + [{"text": texts[0].upper(), "source": "a.csv"}]
    rows += [{"text": "rated sentence", "source": "a.csv"}]
    checked = {t for t in texts if in_eval(t, 5, 0.2)}
    kept, left_out = without_check_texts(rows, "t.tsv", 5, 0.2)
    assert 50 < len(checked) < 110 and left_out == len(checked) + (texts[0] in checked)
    assert (
        not {r["text"].lower() for r in kept} & checked
        and {"text": "rated sentence", "source": "a.csv"} in kept
    )
    capped, _ = without_check_texts(rows, "t.tsv", 5, 0.2, max_train=100)
    assert sum(r["source"] == "t.tsv" for r in capped) == 100 and capped[-1]["text"] == "rated sentence"
    assert capped == without_check_texts(list(reversed(rows)), "t.tsv", 5, 0.2, max_train=100)[0][::-1]


def test_check_examples_are_the_check_split():
    rows = [LabelRow(f"t:{i}", f"tweet {i}", "neutral", None, "t.tsv") for i in range(300)]
    picked = check_examples(rows, 5, 0.2)
    assert [e.text for e in picked] == [r.text for r in rows if in_eval(r.text, 5, 0.2)]
    assert all(e.rating is None for e in picked)


def test_folder_reads_label_files_in_name_order_only(tmp_path):
    (tmp_path / "b.csv").write_text("text,label\nsecond,negative\n")
    (tmp_path / "a.txt").write_text("1\t2\tfirst\n")
    (tmp_path / "notes.md").write_text("not labels\n")
    (tmp_path / "sub.csv").mkdir()  # a folder, not a file
    assert label_files(tmp_path) == [tmp_path / "a.txt", tmp_path / "b.csv"]
    assert [r.text for r in read_labels([tmp_path])] == ["first", "second"]
    assert label_files(tmp_path / "b.csv") == [tmp_path / "b.csv"]


def test_the_shipped_labels_load():
    rows = read_labels([ROOT / "include" / "data" / "sentiment_labels.csv"])
    assert len(rows) >= 100 and {r.label for r in rows} == set(LABELS)
    assert len({r.example_id for r in rows}) == len(rows)


# -- labels: every error names the file, the line and the fix ----------------------------------
LONG = "x" * 10_001


@pytest.mark.parametrize(
    ("name", "content", "line", "message"),
    [
        ("a.csv", "words,label\nx,positive\n", None, r"the header is \['label', 'words'\]; it needs 'text' and 'label'"),
        ("a.csv", "text,id\nx,1\n", None, r"the header is \['id', 'text'\]; it needs 'text' and 'label'"),
        ("a.csv", "", None, r"the header is missing; it needs 'text' and 'label'"),
        ("a.csv", "text,label,mood\nx,positive,ok\n", None, r"unknown column\(s\) \['mood'\]; allowed: \['id', 'label'"),
        ("a.csv", "text,label\nx,positive,extra\n", 2, r"more fields than the header has; quote text containing commas"),
        ("a.csv", "text,label\nok,positive\n  ,positive\n", 3, r"the text is empty; remove the row or fill it in"),
        ("a.csv", f"text,label\n{LONG},positive\n", 2, r"the text has 10001 characters \(at most 10000\); shorten or drop it"),
        ("a.csv", "text,label\nx,happy\n", 2, r"label 'happy' is not one of positive, negative, neutral"),
        ("a.csv", "text,label\nx,\n", 2, r"label '' is not one of positive, negative, neutral"),
        ("a.csv", "text,label,rating\nx,negative,0.5\n", 2, r"label 'negative' contradicts rating 0.5 .*; fix one of them"),
        ("a.csv", "text,label,rating\nx,neutral,-0.05\n", 2, r"label 'neutral' contradicts rating -0.05"),
        ("a.csv", "text,label,rating\nx,positive,2\n", 2, r"rating '2' is outside \[-1, 1\]"),
        ("a.csv", "text,label,rating\nx,positive,nan\n", 2, r"rating 'nan' is outside \[-1, 1\]"),
        ("a.csv", "text,label,rating\nx,positive,lots\n", 2, r"rating 'lots' is not a number"),
        ("a.csv", 'text,label\n"two\nlines",positive\nx,happy\n', 4, r"label 'happy'"),  # physical line
        ("a.txt", "1\t0.5\tfine\n2\t0.5\n", 2, r"expected ID<TAB>MEAN_RATING<TAB>TEXT \(3 tab-separated fields\)"),
        ("a.tsv", "just one field\n", 1, r"expected ID<TAB>MEAN_RATING<TAB>TEXT"),
        ("a.txt", "1\t5\tx\n", 1, r"rating '5' is outside \[-4, 4\]"),
        ("a.txt", "1\tmuch\tx\n", 1, r"rating 'much' is not a number"),
        ("a.txt", "1\t1\t   \n", 1, r"the text is empty; remove the row or fill it in"),
    ],
)  # fmt: skip
def test_bad_label_file_names_file_line_and_fix(tmp_path, name, content, line, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LabelFileError, match=message) as info:
        read_file(path)
    text = str(info.value)
    assert text.startswith(f"{path}: " if line is None else f"{path}, line {line}: "), text


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("a.csv", "id,text,label\n1,x,positive\n2,y,positive\n1,z,negative\n", 4),
        ("a.txt", "1\t1\tx\n2\t1\ty\n1\t-1\tz\n", 3),
    ],
)
def test_duplicate_id_names_file_id_and_the_repeated_line(tmp_path, name, content, line):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LabelFileError, match=r"id '1' appears twice; ids must be unique") as info:
        read_file(path)
    assert str(info.value).startswith(str(path))
    assert f"line {line}" in str(info.value), str(info.value)


@pytest.mark.parametrize("rows_before", [0, 1000])  # 1000 rows: the bad byte lies past the 8 KiB decode chunk
@pytest.mark.parametrize("suffix", [".csv", ".txt"])
def test_non_utf8_names_file_line_and_fix(tmp_path, rows_before, suffix):
    path = tmp_path / f"latin{suffix}"
    if suffix == ".csv":
        head = "text,label\n" + "".join(f"row number {i} is fine,positive\n" for i in range(rows_before))
        bad_line, tail = rows_before + 2, "caf\xe9,positive\n"
    else:
        head = "".join(f"{i}\t1\trow number {i} is fine\n" for i in range(rows_before))
        bad_line, tail = rows_before + 1, "x\t1\tcaf\xe9\n"
    data = head.encode() + tail.encode("latin-1")
    path.write_bytes(data)
    with pytest.raises(LabelFileError, match=r"not UTF-8 .*; re-save it as UTF-8") as info:
        read_file(path)
    text = str(info.value)
    assert text.startswith(str(path))
    offset = data.index(b"\xe9")
    if "at byte " in text:  # a byte offset, if given, is the file's, not the decoder chunk's
        assert f"at byte {offset})" in text, text
    assert f"line {bad_line}" in text, text


def test_utf8_with_byte_order_mark_is_utf8(tmp_path):
    # "CSV UTF-8" as spreadsheet programs save it starts with a BOM; it is valid UTF-8.
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefftext,label\ncafé,positive\n".encode())
    (row,) = read_file(path)
    assert (row.text, row.label) == ("café", "positive")


def test_empty_folder_and_missing_path_name_the_location_and_fix(tmp_path):
    empty = tmp_path / "labels"
    empty.mkdir()
    (empty / "README.md").write_text("put label files here\n")
    with pytest.raises(LabelFileError) as info:
        read_labels([empty])
    assert str(info.value) == f"{empty}: no label files (.csv, .tsv, .txt) in this folder"
    missing = tmp_path / "nope"
    with pytest.raises(LabelFileError) as info:
        read_labels([missing])
    assert str(info.value) == (
        f"{missing}: no such file or folder; point labels.path (or NIGHTSHIFT_LABELS_DIR) at one"
    )


def test_example_ids_are_unique_across_the_files_of_a_folder(tmp_path):
    # example_id is the merge key of <dataset>.labels: two files with the same stem must not collide.
    (tmp_path / "reviews.csv").write_text("id,text,label\n1,hello there,positive\n")
    (tmp_path / "reviews.txt").write_text("1\t-2\tgoodbye then\n")
    with pytest.raises(LabelFileError) as refused:  # same stem: refused, naming both files
        read_labels([tmp_path])
    assert "reviews.csv" in str(refused.value) and "reviews.txt" in str(refused.value), str(refused.value)


# -- labels: the frozen split ------------------------------------------------------------------
TEXTS = [f"synthetic review {i} of product {i * 7 % 13}" for i in range(5000)]


@pytest.mark.parametrize("share", [0.1, 0.2, 0.5])
def test_in_eval_gives_about_the_share_asked_for(share):
    members = sum(in_eval(t, 42, share) for t in TEXTS)
    assert abs(members / len(TEXTS) - share) <= 0.02


def test_in_eval_is_stable_and_depends_on_the_seed():
    first = [in_eval(t, 42, 0.2) for t in TEXTS]
    assert first == [in_eval(t, 42, 0.2) for t in TEXTS]
    other = [in_eval(t, 43, 0.2) for t in TEXTS]
    assert first != other
    both = sum(a and b for a, b in zip(first, other, strict=True)) / len(TEXTS)
    assert abs(both - 0.2 * 0.2) < 0.02  # the seeds draw independent sets
    # a bigger share only adds texts: the evaluation set at 0.2 stays inside the one at 0.3
    assert all(in_eval(t, 42, 0.3) for t, member in zip(TEXTS, first, strict=True) if member)
    assert not any(in_eval(t, 42, 0.0) for t in TEXTS[:200])
    assert all(in_eval(t, 42, 1.0) for t in TEXTS[:200])


@pytest.mark.parametrize(
    "variant", ["Hello World", "hello world", "  HELLO   world ", "hello\tworld\n", "hello\u00a0world"]
)
def test_in_eval_ignores_case_and_whitespace(variant):
    assert normalise(variant) == "hello world"
    for seed in range(40):
        assert in_eval(variant, seed, 0.5) == in_eval("hello world", seed, 0.5)


# -- data: split, weak labels, digest ----------------------------------------------------------
def _human_rows() -> list[dict[str, Any]]:
    rows = [
        {"example_id": f"f:{i:03d}", "text": f"Text number {i % 60}", "label": LABELS[i % 3], "rating": None}
        for i in range(150)
    ]
    rows.append({"example_id": "g:1", "text": "  TEXT   number 5 ", "label": "neutral", "rating": 0.0})
    return rows


def test_split_puts_each_text_on_one_side_and_counts_duplicates():
    split = split_human(_human_rows(), 42, 0.3)
    assert split.duplicates == 151 - 60
    assert len(split.train) + len(split.eval) == 60
    train_keys, eval_keys = {text_key(e.text) for e in split.train}, {text_key(e.text) for e in split.eval}
    assert not train_keys & eval_keys and len(train_keys | eval_keys) == 60
    assert all(in_eval(e.text, 42, 0.3) for e in split.eval)
    assert not any(in_eval(e.text, 42, 0.3) for e in split.train)
    assert split.eval and split.train


def test_split_keeps_the_first_row_by_example_id_whatever_the_order():
    rows = _human_rows()
    expected = split_human(rows, 42, 0.3)
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert split_human(shuffled, 42, 0.3) == expected
    rows = [
        {"example_id": "b:1", "text": "Same words", "label": "positive", "rating": 0.5},
        {"example_id": "a:9", "text": "same  WORDS", "label": "negative", "rating": None},
    ]
    split = split_human(rows, 1, 0.5)
    (kept,) = split.train + split.eval
    assert (kept.text, kept.label, kept.rating, kept.weak) == ("same  WORDS", "negative", None, False)
    assert split.duplicates == 1


WEAK = {"min_vader_compound": 0.5, "min_textblob_polarity": 0.3}


@pytest.mark.parametrize(
    ("compound", "polarity", "label"),
    [
        (0.5, 0.3, "positive"),  # both exactly at their thresholds
        (0.9, 0.9, "positive"),
        (-0.5, -0.3, "negative"),
        (-0.9, -0.9, "negative"),
        (0.49, 0.9, None),
        (0.9, 0.29, None),
        (-0.49, -0.9, None),
        (-0.9, -0.29, None),
        (0.9, -0.9, None),  # confident but disagreeing
        (-0.9, 0.9, None),
        (0.0, 0.0, None),
        (None, 0.9, None),
        (0.9, None, None),
    ],
)
def test_weak_labels_need_confident_agreement(compound, polarity, label):
    row = {"text": "some scraped text", "vader_compound": compound, "textblob_polarity": polarity}
    chosen = weak_examples([row], exclude=set(), n_human=100, max_share=0.5, **WEAK)
    assert [(e.label, e.weak, e.rating) for e in chosen] == ([(label, True, None)] if label else [])


def test_weak_labels_skip_human_texts_empty_texts_and_repeats():
    rows = [
        {"text": "Loved IT", "vader_compound": 0.9, "textblob_polarity": 0.9},  # a human text, other case
        {"text": "   ", "vader_compound": 0.9, "textblob_polarity": 0.9},
        {"text": None, "vader_compound": 0.9, "textblob_polarity": 0.9},
        {"text": "great stuff", "vader_compound": 0.9, "textblob_polarity": 0.9},
        {"text": "GREAT   stuff", "vader_compound": 0.9, "textblob_polarity": 0.9},
    ]
    chosen = weak_examples(rows, exclude={text_key("loved it")}, n_human=100, max_share=0.5, **WEAK)
    assert [e.text for e in chosen] == ["great stuff"]


@pytest.mark.parametrize(
    ("max_share", "n_human"), [(0.3, 7), (0.3, 100), (0.5, 10), (0.2, 3), (0.0, 50), (0.9, 5)]
)
def test_weak_labels_are_capped_deterministically(max_share, n_human):
    rows = [
        {"text": f"scraped {i}", "vader_compound": s * 0.9, "textblob_polarity": s * 0.6}
        for i in range(60)
        for s in [1 if i % 2 else -1]
    ]
    cap = int(max_share / (1 - max_share) * n_human)
    chosen = weak_examples(rows, exclude=set(), n_human=n_human, max_share=max_share, **WEAK)
    assert len(chosen) == min(cap, 60)
    lowest = sorted(rows, key=lambda r: text_key(r["text"]))[:cap]  # the lowest text hashes
    assert [e.text for e in chosen] == [r["text"] for r in lowest]
    assert all(e.weak for e in chosen)
    assert chosen == weak_examples(rows[::-1], exclude=set(), n_human=n_human, max_share=max_share, **WEAK)


def test_weak_labels_share_one_is_uncapped():
    rows = [{"text": f"t{i}", "vader_compound": 0.9, "textblob_polarity": 0.9} for i in range(30)]
    assert len(weak_examples(rows, exclude=set(), n_human=1, max_share=1.0, **WEAK)) == 30


def test_digest_is_order_independent_and_content_sensitive():
    base = [
        TrainingExample("a fine film", "positive", 0.5),
        TrainingExample("a poor film", "negative", None),
        TrainingExample("a film", "neutral", 0.0, weak=True),
    ]
    d = digest(base)
    assert len(d) == 16 and d == digest(base[::-1]) == digest([base[1], base[2], base[0]])
    changed = [
        [TrainingExample("a finer film", "positive", 0.5), *base[1:]],
        [TrainingExample("a fine film", "neutral", 0.5), *base[1:]],
        [TrainingExample("a fine film", "positive", 0.6), *base[1:]],
        [TrainingExample("a fine film", "positive", None), *base[1:]],
        [TrainingExample("a fine film", "positive", 0.5, weak=True), *base[1:]],
        base[:2],
        [*base, base[0]],
    ]
    digests = {digest(c) for c in changed}
    assert d not in digests and len(digests) == len(changed)


# -- metrics against scikit-learn --------------------------------------------------------------
def _case(seed: int, kind: str) -> tuple[list[str], list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 400))
    gold = [str(x) for x in rng.choice(LABELS, n)]
    if kind == "missing_prediction":  # "neutral" never predicted
        predicted = [str(x) for x in rng.choice(LABELS[:2], n)]
    else:
        predicted = [g if rng.random() < 0.6 else str(rng.choice(LABELS)) for g in gold]
    if kind == "ties":  # few distinct probability rows: many tied scores
        rows = np.array([[0.6, 0.3, 0.1], [0.1, 0.6, 0.3], [0.3, 0.1, 0.6], [1 / 3, 1 / 3, 1 / 3]])
        probs = rows[rng.integers(0, len(rows), n)]
    else:
        probs = rng.dirichlet([1, 1, 1], n)
    return gold, predicted, probs


@pytest.mark.parametrize("kind", ["random", "missing_prediction", "ties"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_classification_report_matches_scikit_learn(seed, kind):
    from sklearn import metrics as sk

    gold, predicted, probs = _case(seed, kind)
    report = classification_report(gold, predicted, probabilities=probs)
    present = sorted(set(gold) | set(predicted))
    assert report["n"] == len(gold)
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(gold, predicted))
    assert report["weighted_f1"] == pytest.approx(
        sk.f1_score(gold, predicted, labels=present, average="weighted", zero_division=0)
    )
    assert report["macro_f1"] == pytest.approx(
        sk.f1_score(gold, predicted, labels=present, average="macro", zero_division=0)
    )
    assert report["weighted_precision"] == pytest.approx(
        sk.precision_score(gold, predicted, average="weighted", zero_division=0)
    )
    assert report["weighted_recall"] == pytest.approx(
        sk.recall_score(gold, predicted, average="weighted", zero_division=0)
    )
    assert report["confusion"] == {
        "labels": list(LABELS),
        "matrix": sk.confusion_matrix(gold, predicted, labels=list(LABELS)).tolist(),
    }
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        gold, predicted, labels=list(LABELS), zero_division=0
    )
    for i, label in enumerate(LABELS):
        assert report["per_class"][label] == pytest.approx(
            {"precision": precision[i], "recall": recall[i], "f1": f1[i], "support": support[i]}
        )
    columns = [LABELS.index(label) for label in sorted(LABELS)]  # scikit-learn sorts the classes
    assert report["auc"] == pytest.approx(
        sk.roc_auc_score(gold, probs[:, columns], multi_class="ovr", average="macro", labels=sorted(LABELS))
    )


def test_macro_f1_counts_classes_seen_in_gold_or_predictions_only():
    from sklearn import metrics as sk

    gold, predicted = ["positive", "positive", "negative"], ["positive", "negative", "negative"]
    report = classification_report(gold, predicted)
    assert report["macro_f1"] == pytest.approx(sk.f1_score(gold, predicted, average="macro"))
    assert report["per_class"]["neutral"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["auc"] is None and report["pearson_r"] is None


def test_empty_report_is_zeros_not_nan():
    report = classification_report([], [])
    assert report["n"] == 0
    assert [report[k] for k in ("accuracy", "weighted_f1", "macro_f1", "weighted_precision")] == [0.0] * 4


def test_auc_needs_two_classes_in_gold():
    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]])
    assert auc_one_vs_rest(["positive", "positive"], probs) is None
    assert auc_one_vs_rest(["positive", "negative"], probs) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pearson_matches_numpy_and_scipy(seed):
    from scipy import stats

    rng = np.random.default_rng(seed)
    x = rng.normal(size=50)
    y = 0.5 * x + rng.normal(size=50)
    expected = stats.pearsonr(x, y).statistic
    assert pearson(list(x), list(y)) == pytest.approx(expected)
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])


@pytest.mark.parametrize(
    ("x", "y"), [([1, 1, 1], [1, 2, 3]), ([1, 2, 3], [0.5, 0.5, 0.5]), ([1.0], [2.0]), ([], [])]
)
def test_pearson_is_none_when_undefined(x, y):
    assert pearson(x, y) is None


def test_report_pearson_uses_only_rated_rows():
    gold = ["positive", "negative", "neutral", "positive"]
    scores, ratings = [0.9, -0.8, 0.1, 0.2], [0.7, -0.9, None, 0.1]
    report = classification_report(gold, gold, scores=scores, ratings=ratings)
    assert report["pearson_r"] == pytest.approx(np.corrcoef([0.9, -0.8, 0.2], [0.7, -0.9, 0.1])[0, 1])
    unrated = classification_report(gold, gold, scores=scores, ratings=[None] * 4)
    assert unrated["pearson_r"] is None


def test_confusion_rejects_unknown_labels_and_length_mismatch():
    assert confusion(["positive", "neutral"], ["neutral", "neutral"]).tolist() == [
        [0, 0, 1],
        [0, 0, 0],
        [0, 0, 1],
    ]
    with pytest.raises(ValueError, match=r"labels \['Positive', 'great'\] are not among \['positive'"):
        confusion(["great", "positive"], ["positive", "Positive"])
    with pytest.raises(ValueError, match="2 gold labels but 1 predictions"):
        confusion(["positive", "negative"], ["positive"])


# -- drift -------------------------------------------------------------------------------------
WORDS = ["good", "bad", "film", "plot", "actor", "scene", "boring", "great", "the", "was"]


def _texts(seed: int, n: int = 300, low: int = 3, high: int = 15) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))) for _ in range(n)]


def test_psi_is_zero_for_identical_shares_and_grows_with_shift():
    base = [0.25, 0.25, 0.25, 0.25]
    assert drift.psi(base, base) == 0
    shifted = [drift.psi(base, [0.25 + d, 0.25 - d, 0.25, 0.25]) for d in (0.01, 0.05, 0.1, 0.2, 0.25)]
    assert all(a < b for a, b in zip(shifted, shifted[1:], strict=False)) and shifted[0] > 0
    assert math.isfinite(shifted[-1])  # an emptied bin is floored, not log(0)
    assert drift.psi([0.5, 0.5], [0.6, 0.4]) == pytest.approx(
        0.1 * math.log(0.6 / 0.5) - 0.1 * math.log(0.4 / 0.5)
    )
    with pytest.raises(ValueError, match="3 expected bins but 2 actual bins"):
        drift.psi([0.2, 0.3, 0.5], [0.5, 0.5])


def test_same_texts_do_not_drift():
    texts = _texts(1)
    reference = drift.profile(texts)
    same = drift.compare(reference, texts)
    assert same == {"texts": 300, "length_psi": 0.0, "score_psi": 0.0, "unseen_share": 0.0}
    resampled = drift.compare(reference, _texts(2))  # same distribution, other draw
    assert resampled["length_psi"] < 0.1 and resampled["unseen_share"] == 0.0


def test_long_texts_shift_the_length_psi():
    reference = drift.profile(_texts(1))
    long = drift.compare(reference, _texts(3, low=40, high=80))
    assert long["length_psi"] > 0.25 and long["unseen_share"] == 0.0


@pytest.mark.parametrize(("new_words", "at_least"), [(1, 0.05), (3, 0.2), (10, 0.45)])
def test_unknown_words_raise_the_unseen_share(new_words, at_least):
    reference = drift.profile(_texts(1))
    unknown = " ".join("zyx" + "abcdefghij"[i] for i in range(new_words))  # alphabetic: counted
    result = drift.compare(reference, [f"{unknown} {t}" for t in _texts(1)])
    assert result["unseen_share"] >= at_least


def test_words_seen_once_are_not_vocabulary():
    reference = drift.profile(["rare good", "good film", "film good"])
    assert reference["vocabulary"] == ["film", "good"]
    assert drift.compare(reference, ["rare film"])["unseen_share"] == 0.5


def test_score_shares_use_the_given_compounds():
    reference = drift.profile(["a", "b", "c", "d"], compounds=[-0.95, 0.05, 0.95, 1.0])
    assert reference["score_shares"] == [0.25, 0, 0, 0, 0, 0.25, 0, 0, 0, 0.5]
    flipped = drift.compare(reference, ["a", "b", "c", "d"], compounds=[-0.95, -0.95, -0.95, 0.05])
    assert flipped["score_psi"] > 0.25


def test_profile_is_json_serialisable():
    reference = drift.profile(_texts(1))
    text = json.dumps(reference, allow_nan=False)  # no Infinity: infinite edges are None
    stored = json.loads(text)
    assert stored == reference
    assert stored["length_edges"][0] is None and stored["length_edges"][-1] is None
    assert all(isinstance(e, float) for e in stored["length_edges"][1:-1])
    assert sum(stored["length_shares"]) == pytest.approx(1) and sum(stored["score_shares"]) == pytest.approx(
        1
    )
    assert drift.compare(stored, _texts(1)) == drift.compare(reference, _texts(1))
    empty = drift.profile([])
    assert json.loads(json.dumps(empty, allow_nan=False))["length_edges"] == [0.0, None]


# -- gate --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("measured", "reasons"),
    [
        ({}, []),
        ({"length_psi": None, "score_psi": None, "unseen_share": None, "champion_f1": None, "recent_f1": 0.1}, []),
        ({"length_psi": 0.25, "score_psi": 0.25, "unseen_share": 0.35}, []),  # at the limit is fine
        ({"length_psi": 0.3}, ["length_psi 0.300 > 0.25"]),
        ({"score_psi": 1.5}, ["score_psi 1.500 > 0.25"]),
        ({"unseen_share": 0.5}, ["unseen_share 0.500 > 0.35"]),
        ({"champion_f1": 0.8, "recent_f1": 0.7}, ["champion F1 fell from 0.800 to 0.700 on new labels (> 0.05)"]),
        ({"champion_f1": 0.8, "recent_f1": 0.76}, []),
        ({"champion_f1": 0.7, "recent_f1": 0.9}, []),  # better is not drift
        (
            {"length_psi": 0.3, "score_psi": 0.3, "unseen_share": 0.4, "champion_f1": 0.9, "recent_f1": 0.5},
            ["length_psi 0.300 > 0.25", "score_psi 0.300 > 0.25", "unseen_share 0.400 > 0.35",
             "champion F1 fell from 0.900 to 0.500 on new labels (> 0.05)"],
        ),
    ],
)  # fmt: skip
def test_drift_reasons_for_each_limit(measured, reasons):
    assert gate.drift_reasons(Drift(), measured) == reasons


@pytest.mark.parametrize(("before", "recent"), [(0.8, 0.75), (0.85, 0.8), (0.9, 0.85), (0.65, 0.6)])
def test_an_f1_drop_equal_to_the_limit_is_not_drift(before, recent):
    # Metrics are rounded to 4 places; "fell from 0.800 to 0.750 (> 0.05)" would be a false statement.
    assert gate.drift_reasons(Drift(max_f1_drop=0.05), {"champion_f1": before, "recent_f1": recent}) == []


DECIDE = {"champion": "3", "new_labels": 10, "min_new_labels": 50, "drift": []}


@pytest.mark.parametrize(
    ("changes", "go", "reason"),
    [
        ({"force": True}, True, "forced by the run's Param force=true"),
        ({"force": True, "champion": None, "drift": ["x"]}, True, "forced by the run's Param force=true"),
        ({"champion": None}, True, "no champion yet"),
        ({"drift": ["length_psi 0.300 > 0.25", "b"]}, True, "drift: length_psi 0.300 > 0.25; b"),
        ({"new_labels": 50}, True, "50 new labels since champion v3 (>= 50)"),
        ({"new_labels": 0, "min_new_labels": 0}, True, "0 new labels since champion v3 (>= 0)"),
        (
            {},
            False,
            "skipped: 10 new labels since champion v3 (< 50) and no drift; trigger with force=true to train anyway",
        ),
        ({"new_labels": 49}, False, "skipped: 49 new labels"),
        ({"champion_is_rules": True}, True, "the champion v3 is the rule baseline and 10 labels exist"),
        ({"champion_is_rules": True, "new_labels": 0}, False, "skipped: 0 new labels"),
    ],
)
def test_should_train_branches(changes, go, reason):
    decision = gate.should_train(**{"force": False, **DECIDE, **changes})
    assert decision.go is go and decision.reason.startswith(reason)
    if not go:
        assert "force=true" in decision.reason


RULES = {"vader": {"weighted_f1": 0.55, "ms_per_1k": 50}, "textblob": {"weighted_f1": 0.5, "ms_per_1k": 90}}


@pytest.mark.parametrize(
    ("f1", "ms", "champion", "go", "reason"),
    [
        (0.60, 100, None, True, "promoted: weighted F1 0.6000 >= vader 0.5500 + margin 0.01, 100 ms/1k"),
        (0.5599, 100, None, False, "rejected: weighted F1 0.5599 < vader 0.5500 + margin 0.01"),
        (
            0.80,
            100,
            {"weighted_f1": 0.7},
            True,
            "promoted: weighted F1 0.8000 >= champion 0.7000 + margin 0.01",
        ),
        (
            0.70,
            100,
            {"weighted_f1": 0.7},
            False,
            "rejected: weighted F1 0.7000 < champion 0.7000 + margin 0.01",
        ),
        (0.60, 100, {"weighted_f1": 0.7}, False, "< champion 0.7000"),  # beating the rules is not enough
        (0.99, 501, None, False, "rejected: 501 ms per 1k texts is over the 500 ms budget"),
        (0.99, 500, None, True, "promoted"),  # on the budget is within it
    ],
)
def test_should_promote(f1, ms, champion, go, reason):
    decision = gate.should_promote(
        {"weighted_f1": f1, "ms_per_1k": ms}, champion, RULES, min_f1_gain=0.01, max_ms_per_1k=500
    )
    assert decision.go is go and reason in decision.reason, decision.reason


@pytest.mark.parametrize(
    ("ms", "vader_ms", "go", "reason"),
    [
        (200, 50, True, "promoted: weighted F1 0.6000 >= vader 0.5500 + margin 0.01, 200 ms/1k (4.00 x VADER's)"),
        (201, 50, False, "rejected: 201 ms per 1k texts is 4.02 x VADER's 50 ms measured in the same task, over the 4 x"),
        # A busy machine slows both: 4,000 ms is over any sane absolute budget but within the ratio.
        (4000, 1000, True, "promoted"),
        (100, None, False, "rejected: VADER's scoring time was not measured"),
    ],
)  # fmt: skip
def test_the_time_budget_is_a_ratio_to_vader_measured_in_the_same_task(ms, vader_ms, go, reason):
    rules = {"vader": {"weighted_f1": 0.55, "ms_per_1k": vader_ms}, "textblob": {"weighted_f1": 0.5}}
    decision = gate.should_promote({"weighted_f1": 0.60, "ms_per_1k": ms}, None, rules, min_f1_gain=0.01,
                                   max_vader_ratio=4.0)  # fmt: skip
    assert decision.go is go and decision.reason.startswith(reason), decision.reason


def test_the_ratio_uses_vader_timed_beside_the_challenger_when_there_is_one():
    rules = {"vader": {"weighted_f1": 0.55, "ms_per_1k": 10}, "textblob": {"weighted_f1": 0.5}}
    challenger = {
        "weighted_f1": 0.60,
        "ms_per_1k": 300,
        "vader_ms_per_1k": 100,
    }  # VADER measured in a quiet moment: 10
    decision = gate.should_promote(challenger, None, rules, min_f1_gain=0.01, max_vader_ratio=4.0)
    assert decision.go and "300 ms/1k (3.00 x VADER's)" in decision.reason, decision.reason
    slow = gate.should_promote(
        {**challenger, "vader_ms_per_1k": 50}, None, rules, min_f1_gain=0.01, max_vader_ratio=4.0
    )
    assert not slow.go and "6.00 x VADER's 50 ms" in slow.reason, slow.reason


def test_the_shipped_gate_times_against_vader_not_an_absolute_budget():
    shipped = load(CONFIG_PATH).gate
    assert shipped.max_ms_per_1k is None and shipped.max_vader_ratio == SHIPPED["gate"]["max_vader_ratio"] > 1


def _check(ours: float, vader: float) -> dict:
    return {
        "name": "checks.csv",
        "n": 120,
        "challenger": {"weighted_f1": ours},
        "vader": {"weighted_f1": vader},
    }


@pytest.mark.parametrize(
    ("check", "drop", "go", "reason"),
    [
        (_check(0.87, 0.86), 0.0, True, "check set checks.csv (120 texts): wF1 0.8700 vs VADER 0.8600"),
        (_check(0.86, 0.86), 0.0, True, "promoted"),  # level with the rule is not below it
        (
            _check(0.80, 0.86),
            0.0,
            False,
            "rejected: it beats the champion on the evaluation set (weighted F1 0.8000 >= 0.7000 + 0.01) but "
            "falls below the rule baseline: weighted F1 0.8000 < VADER 0.8600 on the check set checks.csv "
            "(120 texts)",
        ),
        (_check(0.80, 0.86), 0.1, True, "promoted"),
        (_check(0.80, 0.86), 0.05, False, "< VADER 0.8600 - 0.05"),
    ],
)
def test_the_gate_rejects_a_challenger_that_does_not_generalise(check, drop, go, reason):
    decision = gate.should_promote(
        {"weighted_f1": 0.80, "ms_per_1k": 1}, {"weighted_f1": 0.7}, RULES, min_f1_gain=0.01,
        max_ms_per_1k=500, checks=[check], max_check_drop=drop,
    )  # fmt: skip
    assert decision.go is go and reason in decision.reason, decision.reason


def _rated(ours: float, rule: float, r_ours: float | None, r_rule: float | None, name: str = "rated") -> dict:
    return {"name": name, "n": 50, "challenger": {"weighted_f1": ours, "pearson_r": r_ours},
            "vader": {"weighted_f1": rule, "pearson_r": r_rule}}  # fmt: skip


@pytest.mark.parametrize(
    ("checks", "go", "reason"),
    [
        ([_rated(0.9, 0.8, 0.7, 0.8)], False, "Pearson r 0.7000 < VADER 0.8000 on the check set rated (50 texts)"),
        ([_rated(0.9, 0.8, 0.8, 0.8)], True, "rated (50 texts): wF1 0.9000 vs VADER 0.8000, r 0.8000 vs 0.8000"),
        ([_rated(0.9, 0.8, None, None, "tweets")], True, "tweets (50 texts): wF1 0.9000 vs VADER 0.8000"),
        ([_rated(0.9, 0.8, 0.9, 0.8), _rated(0.7, 0.8, None, None, "tweets")], False,
         "weighted F1 0.7000 < VADER 0.8000 on the check set tweets (50 texts)"),
        # a clone without the shared tweet file: promoted on the check set it has, the missing one named
        ([_rated(0.9, 0.8, 0.9, 0.8), {"name": "tweets", "missing": "/x/t.tsv not found"}], True,
         "; check set tweets: missing (/x/t.tsv not found), not checked"),
        ([_rated(0.7, 0.8, 0.9, 0.8), {"name": "tweets", "missing": "/x/t.tsv not found"}], False,
         "weighted F1 0.7000 < VADER 0.8000 on the check set rated (50 texts)"),
        ([{"name": "posts", "missing": "/x/p.csv not found"}], False,
         "rejected: no check set could be scored: posts: missing (/x/p.csv not found)"),
    ],
)  # fmt: skip
def test_every_check_set_must_be_at_least_the_rule_in_f1_and_r_where_rated(checks, go, reason):
    decision = gate.should_promote(
        {"weighted_f1": 0.80, "ms_per_1k": 1}, {"weighted_f1": 0.7}, RULES, min_f1_gain=0.01,
        max_ms_per_1k=500, checks=checks,
    )  # fmt: skip
    assert decision.go is go and reason in decision.reason, decision.reason


@pytest.mark.parametrize(
    ("domains", "go", "reason"),
    [
        ([_rated(0.9, 0.8, 0.7, 0.6, "movie.txt"), _rated(0.6, 0.5, None, None, "tweets.tsv")], True,
         ">= VADER on each of 2 domains of the evaluation set"),
        ([_rated(0.9, 0.8, 0.5, 0.6, "movie.txt")], True, "on each of 1 domains"),  # r: reported, not gated
        ([_rated(0.7, 0.8, 0.7, 0.6, "movie.txt")], False,
         "weighted F1 0.7000 < VADER 0.8000 on the evaluation set's domain movie.txt (50 texts)"),
        ([_rated(0.9, 0.8, 0.7, 0.6, "movie.txt"), _rated(0.4, 0.5, None, None, "tweets.tsv")], False,
         "weighted F1 0.4000 < VADER 0.5000 on the evaluation set's domain tweets.tsv (50 texts)"),
    ],
)  # fmt: skip
def test_every_domain_of_the_evaluation_set_must_be_at_least_the_rule(domains, go, reason):
    decision = gate.should_promote(
        {"weighted_f1": 0.80, "ms_per_1k": 1}, {"weighted_f1": 0.7}, RULES, min_f1_gain=0.01,
        max_ms_per_1k=500, checks=[_rated(0.9, 0.8, None, None, "posts")], domains=domains,
    )  # fmt: skip
    assert decision.go is go and reason in decision.reason, decision.reason


@pytest.mark.parametrize(
    ("bar", "margin"),
    [(0.55, 0.01), (0.7, 0.1), (0.6, 0.05), (0.8123, 0.01), (0.8, 0.02), (0.1, 0.2), (0.7, 0.0)],
)
def test_f1_exactly_bar_plus_margin_promotes(bar, margin):
    f1 = round(bar + margin, 4)  # what the challenger's summary holds
    for champion, rules in (({"weighted_f1": bar}, RULES), (None, {"vader": {"weighted_f1": bar}})):
        decision = gate.should_promote(
            {"weighted_f1": f1, "ms_per_1k": 1}, champion, rules, min_f1_gain=margin, max_ms_per_1k=500
        )
        assert decision.go, decision.reason


def test_a_negative_margin_lets_a_slightly_worse_challenger_through():
    decision = gate.should_promote(
        {"weighted_f1": 0.69, "ms_per_1k": 1},
        {"weighted_f1": 0.7},
        RULES,
        min_f1_gain=-0.02,
        max_ms_per_1k=500,
    )
    assert decision.go


# -- report ------------------------------------------------------------------------------------
def test_render_lists_decision_reason_and_every_contender():
    metrics = {
        "challenger v4": {"weighted_f1": 0.71234, "macro_f1": 0.6, "accuracy": 0.7, "auc": None, "ms_per_1k": 123.4, "n": 60},
        "champion v3": {"weighted_f1": 0.69, "n": 60},
        "vader": {"weighted_f1": 0.55, "pearson_r": -0.25, "n": 60},
        "textblob": {"weighted_f1": 0.5, "n": 60},
    }  # fmt: skip
    subject, html, text = render(
        dag_id="sentiment_retrain",
        model_name="sentiment",
        outcome="v4 promoted",
        reason="promoted: weighted F1 0.7123 >= champion 0.6900 + margin 0.01",
        metrics=metrics,
        facts={"human labels": 300, "eval digest": "abc123", "drift": None},
    )
    assert subject == "[nightshift] sentiment: v4 promoted (sentiment_retrain)"
    for part in (html, text):
        assert "v4 promoted" in part and all(name in part for name in metrics)
    assert "<p>promoted: weighted F1 0.7123 &gt;= champion 0.6900 + margin 0.01</p>" in html
    assert "promoted: weighted F1 0.7123 >= champion 0.6900 + margin 0.01" in text
    assert "challenger v4 | 0.7123 | 0.6000 | - | 0.7000 | - | - | - | - | 123 | 60" in text
    assert "vader | 0.5500 | - | - | - | - | -0.2500 | - | - | - | 60" in text
    assert "<li>human labels: 300</li>" in html and "drift: -" in text and "eval digest: abc123" in text
    assert html.count("<tr>") == 1 + len(metrics)


def test_render_escapes_hostile_text():
    subject, html, text = render(
        dag_id="d",
        model_name="m<i>",
        outcome="skipped & <b>bold</b>",
        reason="<script>alert(1)</script>",
        metrics={"<img src=x>": {"weighted_f1": 0.5}},
        facts={"<k>": "<v>"},
    )
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html and "&lt;img src=x&gt;" in html
    assert "<b>" not in html and "<i>" not in html and "<k>" not in html and "<v>" not in html
    assert "<script>alert(1)</script>" in text  # the plain-text part stays as written


def test_render_without_metrics_or_facts_has_no_empty_table():
    _, html, text = render(dag_id="d", model_name="m", outcome="skipped", reason="why", metrics={}, facts={})
    assert "<table" not in html and "<ul>" not in html
    assert text == "m: skipped\nwhy\n\n"


# -- config ------------------------------------------------------------------------------------
SHIPPED = yaml.safe_load(CONFIG_PATH.read_text())


def write(tmp_path: Path, changes: dict[str, Any]) -> Path:
    """The shipped retrain.yaml with ``changes`` (dotted keys; ``...`` removes the key) in tmp_path."""
    data = copy.deepcopy(SHIPPED)
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = data
        for parent in parents:
            node = node[parent]
        if value is ...:
            del node[key]
        else:
            node[key] = value
    path = tmp_path / "retrain.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_config_loads(monkeypatch):
    monkeypatch.delenv(LABELS_ENV, raising=False)
    config = load()
    assert config.path == CONFIG_PATH and config.dag_id == "sentiment_retrain"
    assert (
        config.labels.eval_share == SHIPPED["labels"]["eval_share"]
        and config.labels.split_seed == SHIPPED["labels"]["split_seed"]
    )
    assert config.weak is not None and config.weak.max_share == SHIPPED["weak_labels"]["max_share"]
    assert config.model.validate() is config.model and config.model.epochs == SHIPPED["model"]["epochs"]
    assert config.labels_location() == ROOT / SHIPPED["labels"]["path"]
    assert config.labels_location().is_file()
    assert (
        config.labels.tweets is not None
        and config.labels.tweets.check_share == SHIPPED["labels"]["tweets"]["check_share"]
    )
    assert config.tweets_location() == ROOT / "include" / "data" / SHIPPED["labels"]["tweets"]["path"]


def test_the_tweet_file_is_found_relative_to_the_labels_folder(tmp_path, monkeypatch):
    config = load(write(tmp_path, {}))
    assert config.path == tmp_path / "retrain.yaml"
    monkeypatch.setenv(LABELS_ENV, str(tmp_path))
    assert config.tweets_location() == tmp_path / "tweeteval" / "sentiment_12k.tsv"
    monkeypatch.setenv(LABELS_ENV, str(tmp_path / "retrain.yaml"))  # a file: its folder
    assert config.tweets_location() == tmp_path / "tweeteval" / "sentiment_12k.tsv"
    assert load(write(tmp_path, {"labels.tweets": ...})).tweets_location() is None


def test_unchanged_copy_loads_and_weak_labels_are_optional(tmp_path):
    assert load(write(tmp_path, {})).model == load().model
    assert load(write(tmp_path, {"weak_labels": ...})).weak is None
    assert load(write(tmp_path, {"weak_labels": None})).weak is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"qeueu": "x"}, r"unknown key\(s\) \['qeueu'\] in the top level; allowed: "),
        ({"labels.eval_share": 0.7}, r"eval_share must be a number from 0.05 to 0.5, got 0.7"),
        ({"labels.eval_share": 0.01}, r"eval_share must be a number from 0.05 to 0.5, got 0.01"),
        ({"labels.eval_share": True}, r"eval_share must be a number from 0.05 to 0.5, got True"),
        ({"labels.split_seed": 1.5}, r"split_seed must be a whole number from 0 to"),
        ({"labels.path": ...}, r"labels.path must be a non-empty string"),
        ({"labels.folder": "x"}, r"unknown key\(s\) \['folder'\] in labels"),
        ({"model.epochs": 0}, r"model: epochs must be a whole number from 1 to 100, got 0"),
        ({"model.dim": "8"}, r"model: dim must be a whole number from 2 to 1024, got '8'"),
        ({"model.layers": 3}, r"model: unknown model setting\(s\) \['layers'\]; known: "),
        ({"dataset": "bad-name"}, r"dataset: invalid dataset name 'bad-name'"),
        ({"texts_dataset": "1reddit"}, r"texts_dataset: invalid dataset name '1reddit'"),
        ({"weak_labels.cap": 1}, r"unknown key\(s\) \['cap'\] in weak_labels; allowed: "),
        ({"weak_labels.max_share": 0.95}, r"max_share must be a number from 0 to 0.9, got 0.95"),
        ({"drift.recent_days": 0}, r"recent_days must be a whole number from 1 to 365, got 0"),
        ({"drift.max_unseen_share": "high"}, r"max_unseen_share must be a number from 0 to 1, got 'high'"),
        ({"retrain_when.min_new_labels": -1}, r"min_new_labels must be a whole number from 0 to"),
        ({"gate.max_ms_per_1k": 0}, r"gate.max_ms_per_1k is 0: input should be greater than or equal to 1"),
        (
            {"gate.max_vader_ratio": 0},
            r"gate.max_vader_ratio is 0: input should be greater than or equal to 0.1",
        ),
        ({"gate.min_gain": 0.1}, r"unknown key\(s\) \['min_gain'\] in gate"),
        ({"tags": "ml"}, r"tags must be a list of strings"),
        ({"labels.tweets.check_share": 0.9}, r"check_share must be a number from 0.05 to 0.5, got 0.9"),
        ({"labels.tweets.path": ""}, r"labels.tweets.path must be a non-empty string"),
        ({"labels.tweets.share": 0.1}, r"unknown key\(s\) \['share'\] in labels.tweets"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, changes, message):
    path = write(tmp_path, changes)
    with pytest.raises(RetrainConfigError, match=message) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: ")


def test_missing_config_file(tmp_path):
    with pytest.raises(RetrainConfigError, match=r"retrain.yaml: file not found; create it"):
        load(tmp_path / "retrain.yaml")


def test_labels_location_honours_the_environment_and_the_project_root(tmp_path, monkeypatch):
    monkeypatch.delenv(LABELS_ENV, raising=False)
    assert load(write(tmp_path, {"labels.path": "data/mine"})).labels_location() == ROOT / "data" / "mine"
    assert load(write(tmp_path, {"labels.path": str(tmp_path)})).labels_location() == tmp_path
    config = load(write(tmp_path, {"labels.path": "data/mine"}))
    monkeypatch.setenv(LABELS_ENV, str(tmp_path / "elsewhere"))
    assert config.labels_location() == tmp_path / "elsewhere"
    monkeypatch.setenv(LABELS_ENV, "relative/labels")
    assert config.labels_location() == ROOT / "relative" / "labels"
    monkeypatch.setenv(LABELS_ENV, "")
    assert config.labels_location() == ROOT / "data" / "mine"


# -- model -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I don't like it!", ["i", "don't", "not", "like", "it", "!"]),
        ("Can't WAIT :)", ["can't", "not", "wait", ":)"]),
        ("really?? no...", ["really", "?", "?", "no"]),
        ("it's 10/10 ;-D", ["it's", "10", "10", ";-d"]),
        ("", []),
    ],
)
def test_tokens(text, expected):
    assert tokens(text) == expected


def _grams(text: str, ngrams: int = 1) -> set[str]:
    return set(analyse(text, ngrams).features)


@pytest.mark.parametrize(
    ("text", "negated"),
    [
        ("good film", set()),
        ("not good film", {"NOT_good", "NOT_film"}),
        ("I don't like it", {"NOT_like", "NOT_it"}),
        ("never again! great", {"NOT_again"}),  # "!" ends the negation
        ("no way? fine", {"NOT_way"}),
        ("not bad :) fun", {"NOT_bad"}),
    ],
)
def test_negation_marks_the_following_words(text, negated):
    assert {g for g in _grams(text) if g.startswith("NOT_")} == negated


def test_negation_ends_with_the_sentence():
    # analyse's docstring: a negation marks the words after it up to the end of its clause.
    assert "NOT_great" not in _grams("The start was not good. The ending was great")


def test_feature_counts():
    assert len(analyse("not a good day", 2).features) == 4 + 3 + 3  # words, NOT_ words, bigrams
    assert len(analyse("not a good day", 1).features) == 7
    assert len(analyse("not a good day", 3).features) == 7 + 3 + 2
    assert analyse("", 2).features == []
    assert {"#go", "goo", "ood", "od#"} <= _grams_chars("good")


def _grams_chars(word: str) -> set[str]:
    return set(analyse(word, 1, char_ngrams=3).features)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":) great", {"EMO_:)", "great"}),
        ("love you <3", {"EMO_<3"}),
        ("so sad :'(", {"EMO_:'("}),
        ("hmm :/", {"EMO_:/"}),
        ("yay =)", {"EMO_=)"}),
        ("cute ^_^", {"EMO_^_^"}),
        ("party 🎉", {"EMOJI_🎉"}),
        ("I loooove it", {"love", "ELONG"}),  # squeezed to one letter: "loove" is no word
        ("goooood stuff", {"good", "ELONG"}),  # squeezed to two: "good" is a word
        ("I LOVE it", {"ALLCAPS", "love"}),
    ],
)
def test_social_media_signals_are_features(text, expected):
    assert expected <= _grams(text)


def test_question_and_exclamation_marks_are_not_features():
    """Their meaning varies by domain ("?" reads negative in reviews): dense signals only."""
    assert not {g for g in _grams("really?? wow!!", 2) if "?" in g or "!" in g}
    dense_plain, dense_marked = analyse("really wow").dense, analyse("really?? wow!!").dense
    assert dense_plain != dense_marked


def test_elongation_and_emoticons_reach_the_rule_prior():
    """VADER alone misses "loooove" and reads "<3" as "3"; the dense signals do not."""
    assert analyse("I loooove it").dense[4] > analyse("I loooove it").dense[0]  # squeezed compound
    assert analyse("you <3").dense[16] > 0  # emoticon valence


def test_textblob_signals_only_when_configured_and_older_artifacts_keep_them(trained, tmp_path):
    """TextBlob's polarity and subjectivity (dense 5, 6) cost half the scoring time: they are read
    only with ``model.textblob``; an artifact saved before the setting existed was trained with
    them and loads with them."""
    from textblob import TextBlob

    text = "What a wonderful, happy day"
    assert analyse(text).dense[5:7] == [0.0, 0.0]
    assert analyse(text, textblob=True).dense[5:7] == list(TextBlob(text).sentiment) != [0.0, 0.0]
    model, _ = trained
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["config"]["textblob"] == 0 and SentimentModel.load(tmp_path / "m").config.textblob == 0
    del meta["config"]["textblob"]
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    assert SentimentModel.load(tmp_path / "m").config.textblob == 1


def test_vocabulary_is_pruned_and_stable():
    texts = ["good film", "good day", "good food", "bad film"]
    analysed = [analyse(t, 1) for t in texts]
    assert build_vocabulary(analysed, 2, 100) == ["good", "film"]
    assert build_vocabulary(analysed[::-1], 2, 100) == ["good", "film"]
    assert build_vocabulary(analysed, 2, 1) == ["good"]


def test_untrained_network_is_vader_exactly():
    """Every learned part starts at zero: before training the classes are VADER's compound +-0.05
    and the rating is VADER's compound."""
    import torch

    from nightshift_core.ml.model import _Encoder, _net
    from nightshift_core.sentiment.rules import vader_scores

    texts = ["great stuff", "awful stuff", "the meeting is at noon", "not bad", "meh :("]
    config = ModelConfig()
    encoder = _Encoder(config, [])
    with torch.inference_mode():
        logits, rating = _net(config, 0)(*encoder.encode(encoder.analyse(texts)))
    compounds = [vader_scores(t)["compound"] for t in texts]
    assert [LABELS[i] for i in logits.argmax(1).tolist()] == [gold_label(c) for c in compounds]
    assert np.allclose(rating.numpy(), compounds, atol=1e-5)


def test_unseen_features_add_no_correction(trained):
    """A text whose features are all outside the vocabulary scores exactly as the prior does."""
    import torch

    model, _ = trained
    prior_only = copy.deepcopy(model)
    with torch.no_grad():
        prior_only.net.embedding.weight.zero_()
    unseen, seen = ["zorblax quintuple"], ["great thing 3"]
    assert np.array_equal(model.probabilities(unseen)[0], prior_only.probabilities(unseen)[0])
    assert not np.array_equal(model.probabilities(seen)[0], prior_only.probabilities(seen)[0])


def test_predictions_are_the_same_in_other_processes(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "m")
    texts = ["A fine day, not bad!", "I don't like Mondays :(", "ünïcödé wörds ok?", "great thing 7"]
    code = (
        "import json, sys; from pathlib import Path; from nightshift_core.ml.model import SentimentModel; "
        "m = SentimentModel.load(Path(sys.argv[2])); print(json.dumps(m.predict(json.loads(sys.argv[1]))))"
    )
    expected = json.loads(json.dumps(model.predict(texts)))
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONPATH": str(ROOT / "include"), "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(texts), str(tmp_path / "m")],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
        assert json.loads(out) == expected


def _examples() -> list[TrainingExample]:
    rng = random.Random(0)
    good, bad, flat = ["great", "lovely", "superb", "fine"], ["awful", "broken", "sad", "poor"], ["a", "the"]
    examples = [TrainingExample(f"{rng.choice(good)} thing {i}", "positive", 0.6) for i in range(16)]
    examples += [TrainingExample(f"{rng.choice(bad)} thing {i}", "negative", None) for i in range(16)]
    examples += [
        TrainingExample(f"{rng.choice(flat)} thing {i}", "neutral", 0.0, weak=True) for i in range(8)
    ]
    return examples


TINY = ModelConfig(epochs=2, min_steps=0, dim=8, min_count=1, shrink=1.0, l2=0.0)


@pytest.fixture(scope="module")
def trained() -> tuple[SentimentModel, dict[str, Any]]:
    return train(_examples(), TINY, log=lambda _: None)


def test_training_is_deterministic(trained):
    import torch

    model, history = trained
    again, history_again = train(_examples(), TINY, log=lambda _: None)
    first, second = model.net.state_dict(), again.net.state_dict()
    assert list(first) == list(second)
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert history["loss"] == history_again["loss"] and len(history["loss"]) == 2
    other, _ = train(_examples(), ModelConfig(**{**TINY.to_dict(), "seed": 14}), log=lambda _: None)
    assert not torch.equal(first["embedding.weight"], other.net.state_dict()["embedding.weight"])


def test_save_and_load_round_trip_predictions_exactly(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "m")
    loaded = SentimentModel.load(tmp_path / "m", name="sentiment", version="9")
    assert loaded.version == "9" and loaded.config == TINY
    texts = ["great thing", "awful thing", "the thing", "", "never seen words ü"]
    probs, ratings = model.probabilities(texts)
    probs_again, ratings_again = loaded.probabilities(texts)
    assert np.array_equal(probs, probs_again) and np.array_equal(ratings, ratings_again)
    assert loaded.predict(texts) == model.predict(texts)
    assert probs.shape == (5, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-6)
    assert all(-1 <= r <= 1 for r in ratings)
    empty_probs, empty_ratings = model.probabilities([])
    assert empty_probs.shape == (0, 3) and empty_ratings.shape == (0,)


@pytest.mark.parametrize("missing", ["weights.pt", "model.json", "vocabulary.json"])
def test_load_names_the_missing_file(trained, tmp_path, missing):
    model, _ = trained
    folder = tmp_path / "m"
    model.save(folder)
    (folder / missing).unlink()
    with pytest.raises(ModelArtifactError, match=f"model artifact {folder} has no {missing}"):
        SentimentModel.load(folder)


def test_load_refuses_an_older_model_format_with_the_way_out(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    (tmp_path / "m" / "model.json").write_text(json.dumps({**meta, "kind": None}))
    with pytest.raises(ModelArtifactError, match=r"of kind None.*action=rollback.*force=true"):
        SentimentModel.load(tmp_path / "m")


def test_rule_model_is_vader_and_round_trips(tmp_path):
    from nightshift_core.ml.model import RuleModel, rule_package_version
    from nightshift_core.sentiment.rules import vader_scores

    rules = RuleModel(version="1")
    texts = ["great stuff", "awful stuff", "the meeting is at noon", ""]
    compounds = [vader_scores(t)["compound"] for t in texts]
    assert rules.predict(texts) == [(gold_label(c), c) for c in compounds]
    probs, scores = rules.probabilities(texts)
    assert [LABELS[i] for i in probs.argmax(1)] == [gold_label(c) for c in compounds]
    assert np.allclose(scores, compounds)
    rules.save(tmp_path / "r")
    loaded = SentimentModel.load(tmp_path / "r", version="1")
    assert isinstance(loaded, RuleModel) and loaded.version == "1"
    assert loaded.rule_version == rule_package_version() and loaded.rule_version.startswith("vaderSentiment ")
    assert loaded.predict(texts) == rules.predict(texts)


def test_load_refuses_other_labels(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    (tmp_path / "m" / "model.json").write_text(json.dumps({**meta, "labels": ["good", "bad"]}))
    with pytest.raises(ValueError, match=r"was trained for labels \['good', 'bad'\]"):
        SentimentModel.load(tmp_path / "m")


def test_train_needs_examples():
    with pytest.raises(ValueError, match="no training examples"):
        train([], TINY, log=lambda _: None)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "epochs must be a whole number from 1 to 100, got 0"),
        ({"dim": True}, "dim must be a whole number from 2 to 1024, got True"),
    ],
)
def test_model_config_validate(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**changes).validate()


# -- evaluation --------------------------------------------------------------------------------
def test_the_gates_timing_scores_each_round_with_the_word_cache_empty(monkeypatch):
    """The word cache would otherwise hold every word of the texts the timing repeats: each timed round
    of the model starts from an empty one, as a scoring task in a fresh process does."""
    from nightshift_core.ml import evaluation
    from nightshift_core.ml.model import TweetLikeness

    tweets, _ = _tweets_and_prose()
    categorical = [TrainingExample(t, ("positive", "negative", "neutral")[i % 3], None, categorical=True,
                                   source="t.tsv") for i, t in enumerate(tweets)]  # fmt: skip
    config = ModelConfig(**{**TINY.to_dict(), "tweet_likeness": 1, "tweet_head": 1, "fallback_share": 0.2})
    model, _ = train(_examples() + categorical, config, log=lambda _: None)
    assert model.likeness is not None  # the model hashes character n-grams (their cache is timed here)
    cache = TweetLikeness._cached_hasher()._cache
    seen = []
    probabilities = model.probabilities

    def watched(texts):
        if len(texts) == evaluation.TIMING_TEXTS:  # a timed round (the others: warm-up, the report)
            seen.append(len(cache))
        return probabilities(texts)

    monkeypatch.setattr(model, "probabilities", watched)
    examples = _examples()[::4]
    evaluation.evaluate_model(model, examples)
    assert seen == [0] * evaluation.PAIRED_ROUNDS
    model.probabilities(["words kept after a call"])
    assert len(cache) > 0 and model.forget_texts() is None and len(cache) == 0


def test_evaluate_model_and_rules_share_one_report_shape(trained):
    model, _ = trained
    examples = _examples()[::4]
    reports = {"model": evaluate_model(model, examples), "vader": evaluate_rule("vader", examples)}
    reports["textblob"] = evaluate_rule("textblob", examples)
    for report in reports.values():
        assert report["n"] == len(examples) and report["ms_per_1k"] >= 0
        short = summary(report)
        assert tuple(short) == SUMMARY_KEYS
        assert all(v is None or round(v, 4) == v for v in short.values() if not isinstance(v, int))
    assert reports["model"]["auc"] is not None and reports["vader"]["auc"] is None
    # The model is timed beside VADER, in alternating rounds on the same texts (the gate's ratio).
    assert reports["model"]["vader_ms_per_1k"] > 0 and summary(reports["vader"])["vader_ms_per_1k"] is None
    with pytest.raises(ValueError, match=r"unknown rule 'bert'; use one of \('vader', 'textblob'\)"):
        evaluate_rule("bert", examples)


# -- the rule where the model is unsure ------------------------------------------------------------
NEG, NEU, POS = (LABELS.index(x) for x in ("negative", "neutral", "positive"))


def _p(*rows: tuple[float, float, float]) -> np.ndarray:
    """Probability rows given as (negative, neutral, positive)."""
    out = np.zeros((len(rows), 3), dtype=np.float32)
    for i, (neg, neu, pos) in enumerate(rows):
        out[i, [NEG, NEU, POS]] = neg, neu, pos
    return out


def test_below_the_threshold_the_rule_label_stands():
    probs = _p((0.1, 0.8, 0.1), (0.4, 0.35, 0.25), (0.3, 0.3, 0.4))
    compounds = np.array([0.6, 0.6, -0.02], dtype=np.float32)
    out = with_fallback(probs, compounds, 0.5)
    assert out.argmax(axis=1).tolist() == [NEU, POS, NEU]  # sure: the model; unsure: VADER's +-0.05 label
    assert out[0].tolist() == probs[0].tolist() and out[1].tolist() == [
        1.0 if i == POS else 0.0 for i in range(3)
    ]
    assert with_fallback(probs, compounds, 0.0) is probs


def test_the_threshold_is_the_one_that_scores_best_on_held_out_labels_ties_to_the_rule():
    # The model is right when sure (>= 0.8) and wrong below that; VADER is right on the unsure ones.
    probs = _p((0.9, 0.05, 0.05), (0.1, 0.8, 0.1), (0.6, 0.3, 0.1), (0.2, 0.55, 0.25))
    compounds = np.array([-0.5, 0.5, 0.5, -0.5], dtype=np.float32)
    gold = np.array([NEG, NEU, POS, NEG])
    assert choose_threshold(probs, compounds, gold) == 0.8  # highest threshold with the best F1
    assert choose_threshold(_p((0.1, 0.1, 0.8)), np.array([0.9]), np.array([POS])) == 1.01  # a tie: the rule
    model_only = choose_threshold(_p((0.1, 0.1, 0.8)), np.array([-0.9]), np.array([POS]))
    assert model_only == 0.8  # the model beats the rule, and keeps as much fallback as it can


def test_the_threshold_leaves_no_group_of_the_held_out_labels_below_the_rule():
    # Sure at 0.6: right twice on the tweets where VADER is wrong, wrong once on a movie line
    # where VADER is right. Overall the model gains; per file, the movie line would lose.
    probs = _p((0.6, 0.3, 0.1), (0.6, 0.3, 0.1), (0.1, 0.3, 0.6), (0.1, 0.1, 0.8))
    compounds = np.array([0.5, 0.5, -0.5, 0.5], dtype=np.float32)
    gold = np.array([NEG, NEG, NEG, POS])
    groups = ["tweets", "tweets", "movie", "movie"]
    assert choose_threshold(probs, compounds, gold) == 0.6
    assert choose_threshold(probs, compounds, gold, groups, min_group=1) == 1.01
    assert choose_threshold(probs, compounds, gold, groups, min_group=3) == 0.6  # too few to judge a group
    # Never below better-than-even odds: a 0.45 winner that would help is still left to the rule.
    assert choose_threshold(_p((0.45, 0.3, 0.25)), np.array([0.5]), np.array([NEG])) == 1.01


def test_the_share_of_the_scale_bias_is_chosen_with_the_threshold_on_held_out_labels():
    # The categorical scale pushes towards neutral: half of it gets both texts right, all of it
    # turns the polar one neutral, none leaves the neutral one positive.
    logits = np.log(_p((1, 1, np.e**2), (1, 1, np.e**3)))  # (negative, neutral, positive) logits
    bias = np.log(_p((1, np.e**3, 1)))[0]
    compounds = np.array([0.5, 0.5], dtype=np.float32)
    share, marked_share, threshold = choose_fallback(
        logits, compounds, np.array([NEU, POS]), ["a", "a"], bias
    )
    assert share == marked_share == 0.75 and threshold >= 0.5
    assert choose_fallback(logits, compounds, np.array([POS, POS]), ["a", "a"], bias)[:2] == (
        0.0,
        0.0,
    )  # ties


def test_texts_with_social_media_markers_get_a_share_of_the_scale_bias_of_their_own():
    # Two texts the model reads alike (positive, by e**2.5 over the others): the one with
    # social-media markers is neutral, the plain one positive. One share cannot get both right
    # (ties: none); a share of its own for the marked text can, and without markers nothing changes.
    logits = np.log(_p((1, 1, np.e**2.5), (1, 1, np.e**2.5)))
    bias = np.log(_p((1, np.e**3, 1)))[0]
    compounds = np.array([0.5, 0.5], dtype=np.float32)
    gold, marked = np.array([NEU, POS]), np.array([True, False])
    share, marked_share, _ = choose_fallback(logits, compounds, gold, ["a", "a"], bias, marked)
    assert (share, marked_share) == (0.0, 1.0)
    assert choose_fallback(logits, compounds, gold, ["a", "a"], bias)[:2] == (0.0, 0.0)
    assert choose_fallback(logits, compounds, gold, ["a", "a"], bias, np.array([False, False]))[:2] == (
        0.0,
        0.0,
    )
    # The share of text without markers is the one chosen as if no text had them: here the two
    # neutral texts with markers make it 1 (two of three right), and the plain one stays neutral.
    logits3, compounds3 = np.log(_p(*[(1, 1, np.e**2.5)] * 3)), np.array([0.5] * 3, dtype=np.float32)
    gold3, marked3 = np.array([NEU, NEU, POS]), np.array([True, True, False])
    assert choose_fallback(logits3, compounds3, gold3, ["a"] * 3, bias)[:2] == (1.0, 1.0)
    assert choose_fallback(logits3, compounds3, gold3, ["a"] * 3, bias, marked3)[:2] == (1.0, 1.0)


@pytest.mark.parametrize(
    ("text", "marked"),
    [("@user that was fun", True), ("so good #blessed", True), ("#MondayMotivation", True),
     ("see https://t.co/x", False), ("mail me at a@b.com", False), ("C# and F# are fine", False),
     ("a plain sentence", False), ("## heading", False), ("we're #1", False)],
)  # fmt: skip
def test_social_media_markers_are_mentions_and_hashtags(text, marked):
    assert analyse(text).marked is marked


def test_the_marked_bias_applies_to_marked_texts_and_round_trips(trained, tmp_path):
    model, _ = trained
    texts = ["great thing #yay", "great thing", "@user awful thing", "awful thing"]
    before = model.probabilities(texts)[0]
    bias = [9.0 if i == NEU else 0.0 for i in range(3)]  # towards neutral
    marked = SentimentModel(model.net, model.config, model.vocabulary, threshold=model.threshold,
                            marked_bias=bias)  # fmt: skip
    probs = marked.probabilities(texts)[0]
    assert probs.argmax(axis=1).tolist() == [NEU, before[1].argmax(), NEU, before[3].argmax()]
    assert np.array_equal(probs[[1, 3]], before[[1, 3]])
    marked.save(tmp_path / "m")
    loaded = SentimentModel.load(tmp_path / "m")
    assert loaded.marked_bias.tolist() == bias
    assert np.array_equal(loaded.probabilities(texts)[0], probs)
    model.save(tmp_path / "plain")  # no marked bias: none saved, none loaded
    assert "marked_bias" not in json.loads((tmp_path / "plain" / "model.json").read_text())
    assert SentimentModel.load(tmp_path / "plain").marked_bias is None


def test_categorical_labels_train_a_scale_bias_the_served_model_does_not_carry_whole():
    rated = _examples()
    broad = [
        TrainingExample(f"fine thing {i}", "neutral", None, categorical=True, source="t.tsv")
        for i in range(16)
    ]
    _, plain = train(rated, TINY, log=lambda _: None)
    assert plain["scale_bias"] == [0.0, 0.0, 0.0] and plain["scale_share"] == 0.0
    _, history = train(rated + broad, TINY, log=lambda _: None)
    pos, neg, neu = history["scale_bias"]  # in LABELS order
    assert neu > max(neg, pos)  # the file's broad neutral went into the bias, not into the words
    off = ModelConfig(**{**TINY.to_dict(), "scale_bias": 0})
    assert train(rated + broad, off, log=lambda _: None)[1]["scale_bias"] == [0.0, 0.0, 0.0]


def test_overrides_count_where_the_label_differs_from_vader_and_who_was_right():
    texts = ["I love it", "I hate it", "The meeting is at noon."]
    assert overrides(["positive", "negative", "neutral"], ["positive", "negative", "neutral"], texts) == {
        "override_share": 0.0, "override_right": None, "override_rule_right": None}  # fmt: skip
    result = overrides(["neutral", "neutral", "neutral"], ["neutral", "positive", "neutral"], texts)
    assert result == {
        "override_share": pytest.approx(2 / 3),
        "override_right": 0.5,
        "override_rule_right": 0.0,
    }


def test_the_threshold_is_chosen_in_training_saved_and_used(tmp_path):
    config = ModelConfig(**{**TINY.to_dict(), "fallback_share": 0.3})
    model, history = train(_examples() * 2, config, log=lambda _: None)
    assert history["fallback_threshold"] == model.threshold and history["calibration_examples"] > 0
    model.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "model.json").read_text())["fallback_threshold"] == model.threshold
    loaded = SentimentModel.load(tmp_path / "m")
    assert loaded.threshold == model.threshold > 0
    loaded.threshold = 1.01  # always unsure: VADER's labels
    texts = ["great thing", "awful thing", "a thing"]
    assert [label for label, _ in loaded.predict(texts)] == ["positive", "negative", "neutral"]
    assert evaluate_model(loaded, [TrainingExample(t, "neutral") for t in texts])["override_share"] == 0.0


def test_the_scale_share_follows_tweet_likeness_when_given():
    # Three texts the model reads alike (positive): the two that look like tweets are neutral, the
    # plain one positive. Markers say nothing here (none has them); their tweet-likeness does: no
    # share for plain text, all of it for tweets gets all three right.
    logits = np.log(_p(*[(1, 1, np.e**2.5)] * 3))
    bias = np.log(_p((1, np.e**3, 1)))[0]
    compounds = np.array([0.5] * 3, dtype=np.float32)
    gold = np.array([NEU, NEU, POS])
    tweetness = np.array([0.97, 0.92, 0.04])
    assert choose_fallback(logits, compounds, gold, ["a"] * 3, bias, None, tweetness)[:2] == (0.0, 1.0)
    assert choose_fallback(logits, compounds, gold, ["a"] * 3, bias, np.zeros(3, dtype=bool))[:2] == (
        1.0,
        1.0,
    )


def test_tweet_likeness_separates_tweets_and_round_trips_with_the_model(trained, tmp_path):
    tweets = [f"@user{i} lol this is sooo {w} #day{i}" for i, w in enumerate(["fun", "bad", "ok"] * 10)]
    prose = [
        f"The film, directed with care, is {w} in its {i}th act." for i, w in enumerate(["fine", "dull"] * 15)
    ]
    likeness = TweetLikeness().fit(tweets + prose, [True] * len(tweets) + [False] * len(prose))
    again = TweetLikeness().fit(tweets + prose, [True] * len(tweets) + [False] * len(prose))
    assert np.array_equal(likeness.weights, again.weights)
    p = likeness.proba(["@bob omg so fun #yay", "The novel is careful in its second act."])
    assert p[0] > 0.5 > p[1]
    model, _ = trained
    texts = ["@bob great thing #yay", "The great thing is careful in its second act."]
    before = model.probabilities(texts)[0]
    bias = [40.0 if i == NEU else 0.0 for i in range(3)]  # towards neutral, x tweet-likeness squared
    served = SentimentModel(model.net, model.config, model.vocabulary, threshold=model.threshold,
                            likeness=likeness, likeness_bias=bias)  # fmt: skip
    probs = served.probabilities(texts)[0]
    assert probs[0].argmax() == NEU and before[0].argmax() != NEU
    served.save(tmp_path / "m")
    loaded = SentimentModel.load(tmp_path / "m")
    assert loaded.likeness_bias.tolist() == bias
    assert np.array_equal(loaded.probabilities(texts)[0], probs)
    (tmp_path / "m" / "likeness.npy").unlink()
    with pytest.raises(ModelArtifactError, match="likeness.npy"):
        SentimentModel.load(tmp_path / "m")
    model.save(tmp_path / "plain")
    assert not (tmp_path / "plain" / "likeness.npy").exists()
    assert SentimentModel.load(tmp_path / "plain").likeness is None


def _tweets_and_prose() -> tuple[list[str], list[str]]:
    tweets = [f"@user{i} lol this is sooo {w} #day{i}" for i, w in enumerate(["fun", "bad", "ok"] * 10)]
    prose = [
        f"The film, directed with care, is {w} in its {i}th act." for i, w in enumerate(["fine", "dull"] * 15)
    ]
    return tweets, prose


def test_the_tweet_head_is_added_by_tweet_likeness_squared_and_round_trips_with_the_model(trained, tmp_path):
    tweets, prose = _tweets_and_prose()
    likeness = TweetLikeness().fit(tweets + prose, [True] * len(tweets) + [False] * len(prose))
    model, _ = trained
    texts = ["@bob great thing #yay", "The great thing is careful in its second act."]
    before = model.probabilities(texts)[0]
    # A head that calls everything neutral (log-odds 40): it rules the tweet, hardly touches the prose.
    weights = np.zeros((3, TweetHead.WORDS + TweetLikeness.FEATURES + TweetHead.VADER + 1), dtype=np.float32)
    weights[NEU, -1] = 40.0
    served = SentimentModel(model.net, model.config, model.vocabulary, threshold=model.threshold,
                            likeness=likeness, head=TweetHead(weights))  # fmt: skip
    probs = served.probabilities(texts)[0]
    assert before[0].argmax() != NEU and probs[0].argmax() == NEU
    chars, vader = TweetLikeness.chars(texts), np.zeros((2, TweetHead.VADER))  # hashed once, read by both
    assert np.array_equal(likeness.proba(texts, chars), likeness.proba(texts))
    noisy = TweetHead(np.random.default_rng(0).normal(size=weights.shape).astype(np.float32))
    assert np.array_equal(noisy.log_proba(texts, vader, chars), noisy.log_proba(texts, vader))
    assert probs[1].argmax() == before[1].argmax() and abs(probs[1] - before[1]).max() < 0.05
    served.save(tmp_path / "m")
    assert "likeness_bias" not in json.loads((tmp_path / "m" / "model.json").read_text())
    loaded = SentimentModel.load(tmp_path / "m")
    assert np.array_equal(loaded.head.weights, weights) and np.array_equal(
        loaded.probabilities(texts)[0], probs
    )
    (tmp_path / "m" / "tweet_head.npy").unlink()
    with pytest.raises(ModelArtifactError, match="tweet_head.npy"):
        SentimentModel.load(tmp_path / "m")
    served.save(tmp_path / "n")
    (tmp_path / "n" / "likeness.npy").unlink()
    with pytest.raises(ModelArtifactError, match="likeness.npy"):
        SentimentModel.load(tmp_path / "n")


def test_the_tweet_head_trains_on_the_categorical_texts_it_fits_on_only(monkeypatch):
    tweets, _ = _tweets_and_prose()
    labels = ["positive", "negative", "neutral"]
    categorical = [
        TrainingExample(t, labels[i % 3], None, categorical=True, source="t.tsv")
        for i, t in enumerate(tweets)
    ]
    examples = _examples() + categorical
    config = ModelConfig(**{**TINY.to_dict(), "tweet_likeness": 1, "tweet_head": 1, "fallback_share": 0.2})
    seen: list[list[str]] = []
    fit = TweetHead.fit

    def recording(self, texts, vader, gold):
        seen.append(list(texts))
        return fit(self, texts, vader, gold)

    monkeypatch.setattr(TweetHead, "fit", recording)
    model, history = train(examples, config, log=lambda _: None)
    again, _ = train(examples, config, log=lambda _: None)
    assert history["tweet_head"] and model.head is not None and model.likeness is not None
    assert np.array_equal(model.head.weights, again.head.weights)  # deterministic
    held = {e.text for e in categorical if _calibration_part(e.text, config.seed, config.fallback_share)}
    assert held and set(seen[0]) == {e.text for e in categorical} - held
    off, history_off = train(examples, dataclasses.replace(config, tweet_head=0), log=lambda _: None)
    assert off.head is None and not history_off["tweet_head"] and len(seen) == 2
    with pytest.raises(ValueError, match="tweet_head"):
        dataclasses.replace(config, tweet_head=2).validate()
