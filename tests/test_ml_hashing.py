"""The cached character n-gram hashing gives scikit-learn's ``HashingVectorizer`` matrix bit for bit
(``nightshift_core.ml.hashing``), so a model's features, weights and predictions do not change."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer

from nightshift_core.ml.hashing import CachedCharHashing
from nightshift_core.ml.model import TweetLikeness, _upper_share

TEXTS = [
    "",
    " ",
    "a",
    "I",
    "Hello World",
    "hello world hello world",
    "@user LOVE this!!! #blessed 😍😍 https://t.co/AbC123?x=1&y=2 www.example.com",
    "tabs\tand\nnewlines\r\nand  doubled   spaces\t\t\n and\x0bvertical\x0cform\x1cfeed",
    "no-break\u00a0space, em\u2003space, ideographic\u3000space, line\u2028separator",
    "   leading and trailing   ",
    "Ça va? Très bien, merci — naïve café, Straße, ΟΔΟΣ, İstanbul, ǅemal",
    "日本語のテキスト、中文文本 and 한국어 mixed with ASCII",
    "🙂🙃 👍🏽 👨‍👩‍👧 ❤️ 🇩🇪 emoji only",
    "e\u0301 combining accent, zero\u200bwidth, soft\u00adhyphen",
    "x" * 5000,
    "sooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooo good",
    " ".join(["wordy"] * 1500) + " tail beyond the cut",  # longer than the model's 4,000-character cut
    "MiXeD CaSe ThE SaMe WoRdS mixed case the same words",
    ":) :-( <3 ^_^ xD ¯\\_(ツ)_/¯",
]


def _same(ours, theirs) -> None:
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert (ours != theirs).nnz == 0
    for part in (
        "indptr",
        "indices",
        "data",
    ):  # the same stored entries in the same order, not just equal values
        assert np.array_equal(getattr(ours, part), getattr(theirs, part)), part


VECTORIZERS = {
    "the model's": TweetLikeness._hasher(),
    "lower-cased, accents stripped": HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(2, 4),
        n_features=2**18,
        alternate_sign=False,
        strip_accents="unicode",
    ),
    "1-5-grams, l1, float32": HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(1, 5),
        n_features=2**20,
        alternate_sign=False,
        lowercase=False,
        norm="l1",
        dtype=np.float32,
    ),  # fmt: skip
    "16 columns (collisions), binary, no norm": HashingVectorizer(
        analyzer="char_wb", ngram_range=(3, 3), n_features=16, alternate_sign=False, binary=True, norm=None
    ),
}


@pytest.mark.parametrize("vectorizer", VECTORIZERS.values(), ids=VECTORIZERS.keys())
def test_cached_char_hashing_is_the_vectorizers_matrix_bit_for_bit(vectorizer):
    cached = CachedCharHashing(vectorizer)
    _same(cached.transform(TEXTS), vectorizer.transform(TEXTS))
    _same(cached.transform(TEXTS), vectorizer.transform(TEXTS))  # every word cached now
    _same(cached.transform(TEXTS[::-1]), vectorizer.transform(TEXTS[::-1]))
    _same(cached.transform(["", ""]), vectorizer.transform(["", ""]))
    assert cached.transform([]).shape == (0, vectorizer.n_features)


def test_the_cache_stays_bounded_and_the_matrix_the_same_when_it_is_dropped():
    vectorizer = TweetLikeness._hasher()
    cached = CachedCharHashing(vectorizer, max_words=5)
    for start in range(0, len(TEXTS), 3):
        part = TEXTS[start : start + 3]
        _same(cached.transform(part), vectorizer.transform(part))
        assert len(cached._cache) <= max(5, len({w for t in part for w in t.split()}))


def test_the_models_char_features_are_the_vectorizers_on_texts_cut_to_4000_characters():
    _same(TweetLikeness.chars(TEXTS), TweetLikeness._hasher().transform([t[:4000] for t in TEXTS]))


@pytest.mark.parametrize(
    "vectorizer",
    [HashingVectorizer(analyzer="char_wb"), HashingVectorizer(analyzer="word", alternate_sign=False)],
    ids=["alternate_sign", "word"],
)
def test_cached_char_hashing_refuses_settings_it_does_not_reproduce(vectorizer):
    with pytest.raises(ValueError, match="analyzer='char_wb', alternate_sign=False"):
        CachedCharHashing(vectorizer)


def test_the_upper_case_share_is_the_per_character_one():
    for text in [*TEXTS, "ABC def", "\x00\x7fAz", "123 !?"]:
        letters = [c for c in text if c.isalpha()]
        assert _upper_share(text) == sum(c.isupper() for c in letters) / max(len(letters), 1), text


def test_the_numpy_murmurhash_of_every_shared_word_is_scikit_learns():
    """Every whitespace-separated word of the shared sets (about 107,000), plus the edge cases: the
    columns hashed in numpy equal scikit-learn's, count for count."""
    from pathlib import Path

    from scipy import sparse

    from nightshift_core.ml.hashing import word_ngram_columns

    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "sentiment"
    assert shared.is_dir(), f"{shared}: the shared data this test reads is missing"
    words = set()
    for path in sorted(p for p in shared.rglob("*") if p.is_file()):
        words.update(path.read_text(encoding="utf-8", errors="ignore").split())
    words |= {word for text in TEXTS for word in text.split()}
    words = sorted(words)
    assert len(words) > 100_000
    for low, high, features in ((2, 4, 2**18), (1, 3, 2**20), (3, 4, 16)):
        vectorizer = HashingVectorizer(analyzer="char_wb", ngram_range=(low, high), n_features=features,
                                       alternate_sign=False, lowercase=False, norm=None)  # fmt: skip
        columns, bounds = word_ngram_columns(words, low, high, features)
        ours = sparse.csr_matrix((np.ones(len(columns)), columns, bounds), shape=(len(words), features))
        ours.sum_duplicates()
        theirs = vectorizer.transform(words)
        assert (ours != theirs).nnz == 0, (low, high, features)


def test_a_lone_surrogate_is_scikit_learns_error_either_way():
    vectorizer = TweetLikeness._hasher()
    with pytest.raises(UnicodeEncodeError) as theirs:
        vectorizer.transform(["bad \ud800 word"])
    with pytest.raises(UnicodeEncodeError) as ours:
        CachedCharHashing(vectorizer).transform(["bad \ud800 word"])
    assert type(ours.value) is type(theirs.value)
