"""VADER's ``polarity_scores``, the same numbers faster: the model's feature path calls it on every
text it scores.

``vaderSentiment`` lower-cases the whole text's word list again for every lexicon word it meets
(in its negation and idiom checks), so its cost grows with the square of a text's length, and
it rebuilds the text character by character to replace emoji. This is the same algorithm, step
for step and in the same floating-point order, with each word lower-cased once and the emoji
pass skipped for text without emoji. It reads the lexicons and constants of the installed
``vaderSentiment`` (the rule baseline's own analyser), and tests compare it with
``SentimentIntensityAnalyzer.polarity_scores`` on every shared sentiment text and on generated
text that exercises each rule (boosters, negations, "but", "least", idioms, capitals, emoji).
"""

from __future__ import annotations

import functools
import math
import string

from vaderSentiment.vaderSentiment import BOOSTER_DICT, C_INCR, N_SCALAR, NEGATE, SPECIAL_CASES, normalize

PUNCTUATION = string.punctuation
NEGATIONS = frozenset(NEGATE)


@functools.cache
def _lexicons() -> tuple[dict[str, float], dict[str, str], frozenset[str]]:
    """The rule baseline's analyser's word lexicon and emoji descriptions, and the emoji it can
    meet (its loop looks at one character at a time)."""
    from nightshift_core.sentiment.rules import _vader

    analyser = _vader()
    return analyser.lexicon, analyser.emojis, frozenset(k for k in analyser.emojis if len(k) == 1)


def _replace_emoji(text: str, emojis: dict[str, str]) -> str:
    """vaderSentiment's emoji pass: each emoji becomes its description, space-separated."""
    out = ""
    prev_space = True
    for char in text:
        if char in emojis:
            if not prev_space:
                out += " "
            out += emojis[char]
            prev_space = False
        else:
            out += char
            prev_space = char == " "
    return out


def polarity_scores(text: str) -> dict[str, float]:
    """``neg``, ``neu``, ``pos`` and ``compound``: exactly ``SentimentIntensityAnalyzer().polarity_scores(text)``."""
    lexicon, emojis, emoji_chars = _lexicons()
    if not emoji_chars.isdisjoint(text):
        text = _replace_emoji(text, emojis)
    text = text.strip()
    # SentiText: surrounding punctuation goes unless that leaves two characters or fewer (":)").
    words = [w if len(s := w.strip(PUNCTUATION)) <= 2 else s for w in text.split()]
    lower = [w.lower() for w in words]
    count = len(words)
    upper = sum(map(str.isupper, words))
    cap_diff = 0 < count - upper < count
    sentiments: list[float] = [
        0
        if low in BOOSTER_DICT or (low == "kind" and i < count - 1 and lower[i + 1] == "of")
        else (_valence(lexicon, words, lower, i, cap_diff) if low in lexicon else 0)
        for i, low in enumerate(lower)
    ]
    if "but" in lower:
        sentiments = _but_check(lower, sentiments)
    return _score(sentiments, text)


def _valence(lexicon: dict[str, float], words: list[str], lower: list[str], i: int, cap_diff: bool) -> float:
    """``SentimentIntensityAnalyzer.sentiment_valence`` for the lexicon word at ``i``."""
    low, item = lower[i], words[i]
    valence = lexicon[low]
    if low == "no" and i != len(words) - 1 and lower[i + 1] in lexicon:
        valence = 0.0
    if (
        (i > 0 and lower[i - 1] == "no")
        or (i > 1 and lower[i - 2] == "no")
        or (i > 2 and lower[i - 3] == "no" and lower[i - 1] in ["or", "nor"])
    ):
        valence = lexicon[low] * N_SCALAR
    if item.isupper() and cap_diff:
        if valence > 0:
            valence += C_INCR
        else:
            valence -= C_INCR
    for start_i in range(0, 3):
        if i > start_i and lower[i - (start_i + 1)] not in lexicon:
            s = _scalar_inc_dec(words[i - (start_i + 1)], lower[i - (start_i + 1)], valence, cap_diff)
            if start_i == 1 and s != 0:
                s = s * 0.95
            if start_i == 2 and s != 0:
                s = s * 0.9
            valence = valence + s
            valence = _negation_check(valence, lower, start_i, i)
            if start_i == 2:
                valence = _special_idioms_check(valence, lower, i)
    return _least_check(lexicon, valence, lower, i)


def _scalar_inc_dec(word: str, word_lower: str, valence: float, cap_diff: bool) -> float:
    scalar = 0.0
    if word_lower in BOOSTER_DICT:
        scalar = BOOSTER_DICT[word_lower]
        if valence < 0:
            scalar *= -1
        if word.isupper() and cap_diff:
            if valence > 0:
                scalar += C_INCR
            else:
                scalar -= C_INCR
    return scalar


def _negated(word: str) -> bool:
    return word in NEGATIONS or "n't" in word


def _negation_check(valence: float, lower: list[str], start_i: int, i: int) -> float:
    if start_i == 0:
        if _negated(lower[i - 1]):
            valence = valence * N_SCALAR
    if start_i == 1:
        if lower[i - 2] == "never" and (lower[i - 1] == "so" or lower[i - 1] == "this"):
            valence = valence * 1.25
        elif lower[i - 2] == "without" and lower[i - 1] == "doubt":
            pass
        elif _negated(lower[i - 2]):
            valence = valence * N_SCALAR
    if start_i == 2:
        if (
            lower[i - 3] == "never"
            and (lower[i - 2] == "so" or lower[i - 2] == "this")
            or (lower[i - 1] == "so" or lower[i - 1] == "this")
        ):
            valence = valence * 1.25
        elif lower[i - 3] == "without" and (lower[i - 2] == "doubt" or lower[i - 1] == "doubt"):
            pass
        elif _negated(lower[i - 3]):
            valence = valence * N_SCALAR
    return valence


def _special_idioms_check(valence: float, lower: list[str], i: int) -> float:
    special, booster = SPECIAL_CASES, BOOSTER_DICT
    onezero = f"{lower[i - 1]} {lower[i]}"
    twoonezero = f"{lower[i - 2]} {lower[i - 1]} {lower[i]}"
    twoone = f"{lower[i - 2]} {lower[i - 1]}"
    threetwoone = f"{lower[i - 3]} {lower[i - 2]} {lower[i - 1]}"
    threetwo = f"{lower[i - 3]} {lower[i - 2]}"
    for seq in (onezero, twoonezero, twoone, threetwoone, threetwo):
        if seq in special:
            valence = special[seq]
            break
    if len(lower) - 1 > i:
        zeroone = f"{lower[i]} {lower[i + 1]}"
        if zeroone in special:
            valence = special[zeroone]
    if len(lower) - 1 > i + 1:
        zeroonetwo = f"{lower[i]} {lower[i + 1]} {lower[i + 2]}"
        if zeroonetwo in special:
            valence = special[zeroonetwo]
    for n_gram in (threetwoone, threetwo, twoone):
        if n_gram in booster:
            valence = valence + booster[n_gram]
    return valence


def _least_check(lexicon: dict[str, float], valence: float, lower: list[str], i: int) -> float:
    if i > 1 and lower[i - 1] not in lexicon and lower[i - 1] == "least":
        if lower[i - 2] != "at" and lower[i - 2] != "very":
            valence = valence * N_SCALAR
    elif i > 0 and lower[i - 1] not in lexicon and lower[i - 1] == "least":
        valence = valence * N_SCALAR
    return valence


def _but_check(lower: list[str], sentiments: list[float]) -> list[float]:
    """vaderSentiment's contrastive "but", as it is (each value found by ``index``, so a value
    repeated before and after "but" is scaled where it first occurs)."""
    bi = lower.index("but")
    for sentiment in sentiments:
        si = sentiments.index(sentiment)
        if si < bi:
            sentiments.pop(si)
            sentiments.insert(si, sentiment * 0.5)
        elif si > bi:
            sentiments.pop(si)
            sentiments.insert(si, sentiment * 1.5)
    return sentiments


def _score(sentiments: list[float], text: str) -> dict[str, float]:
    """``SentimentIntensityAnalyzer.score_valence``."""
    if sentiments:
        sum_s = float(sum(sentiments))
        ep_count = min(text.count("!"), 4)
        qm_count = text.count("?")
        qm_amplifier = 0
        if qm_count > 1:
            qm_amplifier = qm_count * 0.18 if qm_count <= 3 else 0.96
        punct_emph_amplifier = ep_count * 0.292 + qm_amplifier
        if sum_s > 0:
            sum_s += punct_emph_amplifier
        elif sum_s < 0:
            sum_s -= punct_emph_amplifier
        compound = normalize(sum_s)
        pos_sum, neg_sum, neu_count = 0.0, 0.0, 0
        for score in sentiments:
            if score > 0:
                pos_sum += float(score) + 1
            if score < 0:
                neg_sum += float(score) - 1
            if score == 0:
                neu_count += 1
        if pos_sum > math.fabs(neg_sum):
            pos_sum += punct_emph_amplifier
        elif pos_sum < math.fabs(neg_sum):
            neg_sum -= punct_emph_amplifier
        total = pos_sum + math.fabs(neg_sum) + neu_count
        pos, neg, neu = math.fabs(pos_sum / total), math.fabs(neg_sum / total), math.fabs(neu_count / total)
    else:
        compound, pos, neg, neu = 0.0, 0.0, 0.0, 0.0
    return {"neg": round(neg, 3), "neu": round(neu, 3), "pos": round(pos, 3), "compound": round(compound, 4)}
