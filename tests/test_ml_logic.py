"""Unit tests of the retraining job's pure logic: labels, split, metrics, drift, gate, model."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nightshift_core.ml import drift, gate
from nightshift_core.ml.config import CONFIG_PATH, Drift, ModelConfig, RetrainConfigError, load
from nightshift_core.ml.data import digest, split_human, weak_examples
from nightshift_core.ml.labels import LabelFileError, gold_label, in_eval, read_file, read_labels
from nightshift_core.ml.metrics import classification_report, confusion, pearson
from nightshift_core.ml.model import SentimentModel, TrainingExample, feature_ids, tokens, train
from nightshift_core.ml.report import render
from nightshift_core.sentiment.rules import LABELS

ROOT = Path(__file__).resolve().parents[1]


# -- labels ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rating", "label"),
    [(0.05, "positive"), (0.0499, "neutral"), (0.0, "neutral"), (-0.0499, "neutral"), (-0.05, "negative")],
)
def test_gold_rule_edges(rating, label):
    assert gold_label(rating) == label


def test_csv_rows_ids_ratings_and_derived_labels(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(
        'id,text,label,rating\n7,"Great, really",positive,0.8\n,just facts,neutral,\n9,meh,,-0.3\n'
    )
    rows = read_file(path)
    assert [(r.example_id.split(":")[0], r.label, r.rating) for r in rows] == [
        ("mine", "positive", 0.8), ("mine", "neutral", None), ("mine", "negative", -0.3)
    ]  # fmt: skip
    assert rows[0].example_id == "mine:7" and len(rows[1].example_id) == len("mine:") + 16


def test_ground_truth_tsv_divides_the_rating_by_four(tmp_path):
    path = tmp_path / "set.txt"
    path.write_text("1\t2.0\tgood one\n2\t-0.1\tso so\n")
    assert [(r.rating, r.label) for r in read_file(path)] == [(0.5, "positive"), (-0.025, "neutral")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "a.csv",
            "words,label\nx,positive\n",
            r"the header is \['label', 'words'\]; it needs 'text' and 'label'",
        ),
        ("a.csv", "text,label,mood\nx,positive,ok\n", r"unknown column\(s\) \['mood'\]"),
        ("a.csv", "text,label\nx,positive,extra\n", r"line 2: more fields than the header has"),
        ("a.csv", "text,label\n  ,positive\n", r"line 2: the text is empty"),
        (
            "a.csv",
            "text,label\nx,happy\n",
            r"line 2: label 'happy' is not one of positive, negative, neutral",
        ),
        ("a.csv", "text,label,rating\nx,negative,0.5\n", r"line 2: label 'negative' contradicts rating 0.5"),
        ("a.csv", "text,label,rating\nx,positive,2\n", r"line 2: rating '2' is outside \[-1, 1\]"),
        ("a.csv", "text,label,rating\nx,positive,lots\n", r"line 2: rating 'lots' is not a number"),
        ("a.csv", "id,text,label\n1,x,positive\n1,y,negative\n", r"id '1' appears twice"),
        ("a.txt", "1\t0.5\n", r"line 1: expected ID<TAB>MEAN_RATING<TAB>TEXT"),
        ("a.txt", "1\t5\tx\n", r"line 1: rating '5' is outside \[-4, 4\]"),
    ],
)
def test_bad_label_files_name_file_line_and_fix(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LabelFileError, match=message) as info:
        read_file(path)
    assert str(info.value).startswith(str(path))


def test_non_utf8_empty_folder_and_missing_path(tmp_path):
    bad = tmp_path / "latin.csv"
    bad.write_bytes("text,label\ncaf\xe9,positive\n".encode("latin-1"))
    with pytest.raises(LabelFileError, match="not UTF-8.*re-save it as UTF-8"):
        read_file(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LabelFileError, match="no label files"):
        read_labels([empty])
    with pytest.raises(LabelFileError, match="no such file or folder; point labels.path"):
        read_labels([tmp_path / "nope"])


def test_the_embedded_labels_load():
    rows = read_labels([ROOT / "include" / "data" / "sentiment_labels.csv"])
    assert len(rows) == 300 and {r.label for r in rows} == set(LABELS)


def test_eval_membership_is_stable_seeded_and_close_to_the_share():
    texts = [f"sentence number {i}" for i in range(5000)]
    members = [in_eval(t, 42, 0.2) for t in texts]
    assert members == [in_eval(t, 42, 0.2) for t in texts]
    assert abs(sum(members) / len(texts) - 0.2) < 0.02
    assert members != [in_eval(t, 7, 0.2) for t in texts]
    assert in_eval("Hello   World", 42, 0.2) == in_eval(" hello world ", 42, 0.2)


# -- data --------------------------------------------------------------------------------------
def test_split_keeps_one_row_per_text_whatever_the_order():
    rows = [{"example_id": f"f:{i}", "text": f"Text {i % 50}", "label": "positive", "rating": None}
            for i in range(100)]  # fmt: skip
    a, b = split_human(rows, 1, 0.3), split_human(list(reversed(rows)), 1, 0.3)
    assert a == b and a.duplicates == 50 and len(a.train) + len(a.eval) == 50
    assert not {e.text.lower() for e in a.train} & {e.text.lower() for e in a.eval}


def test_weak_labels_need_agreement_skip_human_texts_and_are_capped():
    candidates = [{"text": f"good {i}", "vader_compound": 0.9, "textblob_polarity": 0.5} for i in range(20)]
    candidates += [{"text": "bad", "vader_compound": -0.9, "textblob_polarity": -0.5},
                   {"text": "mixed", "vader_compound": 0.9, "textblob_polarity": -0.5},
                   {"text": "weak", "vader_compound": 0.2, "textblob_polarity": 0.9}]  # fmt: skip
    from nightshift_core.ml.labels import text_key

    chosen = weak_examples(candidates, exclude={text_key("good 0")}, n_human=1000, max_share=0.5,
                           min_vader_compound=0.5, min_textblob_polarity=0.3)  # fmt: skip
    assert {e.text for e in chosen} == {f"good {i}" for i in range(1, 20)} | {"bad"}
    assert all(e.weak for e in chosen) and {e.label for e in chosen} == {"positive", "negative"}
    capped = weak_examples(candidates, exclude=set(), n_human=7, max_share=0.3,
                           min_vader_compound=0.5, min_textblob_polarity=0.3)  # fmt: skip
    assert len(capped) == int(0.3 / 0.7 * 7) == 3
    assert capped == weak_examples(list(reversed(candidates)), exclude=set(), n_human=7, max_share=0.3,
                                   min_vader_compound=0.5, min_textblob_polarity=0.3)  # fmt: skip


def test_digest_ignores_order_and_sees_content():
    a = [TrainingExample("x", "positive"), TrainingExample("y", "negative", -0.5)]
    assert digest(a) == digest(a[::-1])
    assert digest(a) != digest([TrainingExample("x", "neutral"), a[1]])


# -- metrics against scikit-learn ---------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scikit_learn(seed):
    from sklearn import metrics as sk

    rng = np.random.default_rng(seed)
    gold = list(rng.choice(LABELS, 300))
    predicted = list(rng.choice(LABELS[:2], 300))  # "neutral" never predicted
    probs = rng.dirichlet([1, 1, 1], 300)
    report = classification_report(gold, predicted, probabilities=probs)
    assert report["weighted_f1"] == pytest.approx(
        sk.f1_score(gold, predicted, average="weighted", zero_division=0)
    )
    assert report["macro_f1"] == pytest.approx(sk.f1_score(gold, predicted, average="macro", zero_division=0))
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(gold, predicted))
    assert report["weighted_recall"] == pytest.approx(
        sk.recall_score(gold, predicted, average="weighted", zero_division=0)
    )
    assert report["weighted_precision"] == pytest.approx(
        sk.precision_score(gold, predicted, average="weighted", zero_division=0)
    )
    assert report["confusion"]["matrix"] == sk.confusion_matrix(gold, predicted, labels=list(LABELS)).tolist()
    order = [LABELS.index(label) for label in sorted(LABELS)]  # scikit-learn wants sorted columns
    assert report["auc"] == pytest.approx(
        sk.roc_auc_score(gold, probs[:, order], multi_class="ovr", average="macro", labels=sorted(LABELS))
    )


def test_pearson_and_confusion_guards():
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1])
    assert pearson([1, 1, 1], [1, 2, 3]) is None
    with pytest.raises(ValueError, match=r"labels \['great'\] are not among"):
        confusion(["great"], ["positive"])
    with pytest.raises(ValueError, match="2 gold labels but 1 predictions"):
        confusion(["positive", "negative"], ["positive"])


# -- drift -------------------------------------------------------------------------------------
def test_drift_profile_and_comparison():
    rng = random.Random(3)
    words = ["good", "bad", "film", "plot", "actor", "scene", "boring", "great"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 15))) for _ in range(400)]
    reference = json.loads(json.dumps(drift.profile(texts)))  # JSON-able, as it is stored
    same = drift.compare(reference, texts)
    assert same["length_psi"] == pytest.approx(0, abs=1e-3) and same["unseen_share"] == 0
    long = drift.compare(reference, [t * 6 for t in texts])
    assert long["length_psi"] > 0.25
    new_words = drift.compare(reference, ["quantum ledger amortisation " + t for t in texts])
    assert new_words["unseen_share"] > 0.2
    assert (
        drift.psi([0.5, 0.5], [0.5, 0.5])
        == 0
        < drift.psi([0.5, 0.5], [0.6, 0.4])
        < drift.psi([0.5, 0.5], [0.9, 0.1])
    )


# -- gate --------------------------------------------------------------------------------------
def test_drift_reasons_and_training_decision():
    limits = Drift()
    reasons = gate.drift_reasons(limits, {"length_psi": 0.3, "score_psi": 0.1, "unseen_share": 0.5,
                                          "champion_f1": 0.8, "recent_f1": 0.7})  # fmt: skip
    assert reasons == ["length_psi 0.300 > 0.25", "unseen_share 0.500 > 0.35",
                       "champion F1 fell from 0.800 to 0.700 on new labels (> 0.05)"]  # fmt: skip
    decide = dict(champion="3", new_labels=10, min_new_labels=50, drift=[])
    assert gate.should_train(force=False, **decide).go is False
    assert "trigger with force=true" in gate.should_train(force=False, **decide).reason
    assert gate.should_train(force=True, **decide).go
    assert gate.should_train(force=False, **{**decide, "champion": None}).reason == "no champion yet"
    assert gate.should_train(force=False, **{**decide, "new_labels": 50}).go
    assert gate.should_train(force=False, **{**decide, "drift": ["x"]}).reason == "drift: x"


def test_promotion_rules():
    rules = {
        "vader": {"weighted_f1": 0.55, "ms_per_1k": 50},
        "textblob": {"weighted_f1": 0.5, "ms_per_1k": 90},
    }
    fast = {"weighted_f1": 0.56, "ms_per_1k": 100}
    assert gate.should_promote(fast, None, rules, min_f1_gain=0.01, max_ms_per_1k=500).go  # == bar + margin
    assert not gate.should_promote(fast, None, rules, min_f1_gain=0.02, max_ms_per_1k=500).go
    champion = {"weighted_f1": 0.7}
    verdict = gate.should_promote(fast, champion, rules, min_f1_gain=0.01, max_ms_per_1k=500)
    assert not verdict.go and "< champion 0.7000" in verdict.reason
    slow = gate.should_promote({**fast, "ms_per_1k": 900}, None, rules, min_f1_gain=0, max_ms_per_1k=500)
    assert not slow.go and "over the 500 ms budget" in slow.reason


def test_report_escapes_html_and_lists_every_contender():
    metrics = {"challenger": {"weighted_f1": 0.7, "n": 10}, "vader": {"weighted_f1": 0.5, "n": 10}}
    subject, html, text = render(dag_id="d", model_name="m", outcome="v2 promoted", reason="<script>x</script>",
                                 metrics=metrics, facts={"version": "2"})  # fmt: skip
    assert subject == "[nightshift] m: v2 promoted (d)"
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<td>challenger</td>" in html and "vader | 0.5000" in text


# -- config ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("queue: ml", "queue: ml\nqeueu: x", r"unknown key\(s\) \['qeueu'\] in the top level"),
        ("eval_share: 0.2", "eval_share: 0.7", r"eval_share must be a number from 0.05 to 0.5, got 0.7"),
        ("  epochs: 4", "  epochs: 0", r"model: epochs must be from 1 to 100, got 0"),
        ("  epochs: 4", "  epochs: 4\n  layers: 3", r"model: unknown model setting\(s\) \['layers'\]"),
        ("dataset: ml", "dataset: bad-name", r"dataset: invalid dataset name"),
        ("  max_share: 0.3", "  max_share: 0.3\n  cap: 1", r"unknown key\(s\) \['cap'\] in weak_labels"),
    ],
)
def test_bad_retrain_yaml_names_file_and_key(tmp_path, old, new, message):
    text = CONFIG_PATH.read_text()
    assert old in text
    path = tmp_path / "retrain.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(RetrainConfigError, match=message) as info:
        load(path)
    assert str(info.value).startswith(str(path))


def test_labels_location(monkeypatch, tmp_path):
    monkeypatch.delenv("NIGHTSHIFT_LABELS_DIR", raising=False)
    assert load().labels_location() == ROOT / "include" / "data" / "sentiment_labels.csv"
    monkeypatch.setenv("NIGHTSHIFT_LABELS_DIR", str(tmp_path))
    assert load().labels_location() == tmp_path


# -- model -------------------------------------------------------------------------------------
def test_tokens_and_negation_features():
    assert tokens("I don't like it!") == ["i", "don't", "not", "like", "it", "!"]
    plain = feature_ids("like it", 1 << 20, 1)
    negated = feature_ids("not like it", 1 << 20, 1)
    assert set(plain) < set(negated) and len(negated) == 3 + 2  # words + NOT_like, NOT_it


def test_feature_ids_are_the_same_in_another_process():
    code = "import json; from nightshift_core.ml.model import feature_ids; print(json.dumps(feature_ids('A fine day, not bad!', 4096)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT / "include"), "PYTHONHASHSEED": "123"}).stdout  # fmt: skip
    assert json.loads(out) == feature_ids("A fine day, not bad!", 4096)


def test_training_is_deterministic_and_saved_models_predict_the_same(tmp_path):
    import torch

    rng = random.Random(0)
    examples = [TrainingExample(f"{rng.choice(['great', 'lovely', 'fine'])} thing {i}", "positive", 0.6)
                for i in range(20)]  # fmt: skip
    examples += [
        TrainingExample(f"{rng.choice(['awful', 'broken', 'sad'])} thing {i}", "negative") for i in range(20)
    ]
    config = dataclasses.replace(ModelConfig(), epochs=2, min_steps=0, buckets=4096, dim=8, hidden=0)
    a, _ = train(examples, config, log=lambda _: None)
    b, _ = train(examples, config, log=lambda _: None)
    for (name, x), (_, y) in zip(a.net.state_dict().items(), b.net.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    a.save(tmp_path / "m")
    loaded = SentimentModel.load(tmp_path / "m", version="9")
    texts = ["great thing", "awful thing", ""]
    assert loaded.predict(texts) == a.predict(texts) and loaded.version == "9"
    (tmp_path / "m" / "weights.pt").unlink()
    with pytest.raises(FileNotFoundError, match="has no weights.pt"):
        SentimentModel.load(tmp_path / "m")
