"""Labels from people in the Airflow UI: which scraped texts to ask about, the form, the answers.

The labelling DAG (dags/sentiment_labelling.py, definition ``include/config/labelling.yaml``)
asks one person, in one form, to label the N scraped texts where a label helps most:

* the scorers disagree (VADER, TextBlob and the champion model give different labels);
* the champion is least sure (``|model_score|`` small; ``|vader_compound|`` without a model score);
* the text uses words no labelled text has (new vocabulary).

Texts are de-duplicated by :func:`~nightshift_core.ml.labels.text_key`, a text already in
``ml.labels`` is never asked again, and the picks are spread across subreddits (round robin,
each subreddit's best first). The answers (positive / neutral / negative / skip) become
``ml.labels`` rows with who answered and when; a skip is not a label.

Each request's picks and answer are recorded in ``ml.label_requests`` (:func:`request_rows`,
:func:`answered_rows`): the labels are made from that record, never from XComs, which any role
allowed to edit XComs could change; an XCom that differs from it is reported
(:func:`xcom_differences`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nightshift_core.errors import PermanentError
from nightshift_core.ml.labels import MAX_TEXT, normalise, text_key
from nightshift_core.sentiment.rules import LABELS
from nightshift_core.yamlconf import Where, read_mapping

CONFIG_PATH = Path(__file__).resolve().parents[2] / "config" / "labelling.yaml"
SOURCE = "airflow-ui"
SKIP = "skip"
ANSWERS = ("positive", "neutral", "negative", SKIP)
ANSWER_DISPLAY = {
    "positive": "Positive",
    "neutral": "Neutral",
    "negative": "Negative",
    SKIP: "Skip (not sure)",
}
_WORD = re.compile(r"[^\W\d_]{2,}(?:'[^\W\d_]+)?")
_TOP = {"dag_id", "description", "schedule", "after_assets", "start_date", "dataset", "texts_dataset",
        "items", "lookback_days", "min_chars", "max_chars", "weights", "response_timeout_hours",
        "assigned_users", "assigned_roles", "notify", "tags"}  # fmt: skip
_USER_KEYS = {"id", "name"}
_NOTIFY_KEYS = {"email", "to", "smtp_conn_id"}


class LabellingConfigError(ValueError, PermanentError):
    """A bad labelling.yaml; the message names file, key and fix."""


class LabelRequestError(ValueError, PermanentError):
    """A labelling request's record is missing, unanswered, or differs from an XCom of its run."""


@dataclasses.dataclass(frozen=True)
class Weights:
    """How much each reason counts in a text's priority (each reason is a number in [0, 1])."""

    disagreement: float = 1.0
    uncertainty: float = 1.0
    new_words: float = 1.0


@dataclasses.dataclass(frozen=True)
class LabellingConfig:
    path: Path
    dag_id: str
    description: str
    schedule: str | None
    after_assets: tuple[str, ...]
    start_date: datetime
    dataset: str
    texts_dataset: str
    items: int
    lookback_days: int
    min_chars: int
    max_chars: int
    weights: Weights
    response_timeout_hours: float
    assigned_users: tuple[dict[str, str], ...]
    #: roles whose users may answer (under the production auth manager; see plugins/nightshift/auth.py)
    assigned_roles: tuple[str, ...]
    notify_email: bool
    notify_to: str | None
    smtp_conn_id: str
    tags: tuple[str, ...]


def _users(where: Where, raw: Any) -> tuple[dict[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        where.fail("assigned_users must be a list of {id, name} (empty: anyone allowed to answer)")
    users = []
    for i, user in enumerate(raw):
        if not isinstance(user, dict) or not user.get("id"):
            where.fail(
                f"assigned_users[{i}] must be a mapping with 'id' (the login or the numeric user id) "
                "and optional 'name'"
            )
        where.keys(user, _USER_KEYS, f"assigned_users[{i}]")
        ident = user["id"]
        if isinstance(ident, int) and not isinstance(ident, bool):
            ident = str(ident)  # a user id (FAB's are numbers); the request lists ids as strings
        name = user.get("name", ident)
        if not all(isinstance(v, str) and v.strip() for v in (ident, name)):
            where.fail(f"assigned_users[{i}]: id and name must be non-empty strings")
        users.append({"id": ident, "name": name})
    return tuple(users)


def _roles(where: Where, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(r, str) and r.strip() for r in raw):
        where.fail(
            "assigned_roles must be a list of role names, e.g. [Labeller] (empty: no role is assigned)"
        )
    return tuple(r.strip() for r in raw)


def load(path: Path = CONFIG_PATH) -> LabellingConfig:
    """Read and validate ``path``; every problem is a :class:`LabellingConfigError`."""
    if not path.is_file():
        raise LabellingConfigError(f"{path}: file not found; create it (see include/config/labelling.yaml)")
    where = Where(path, LabellingConfigError)
    raw = read_mapping(path, LabellingConfigError)
    where.keys(raw, _TOP, "the top level")
    assets = raw.get("after_assets") or []
    if not isinstance(assets, list) or not all(isinstance(a, str) and a.strip() for a in assets):
        where.fail("after_assets must be a list of Asset names, e.g. [reddit.sentiment]")
    if assets and raw.get("schedule") is not None:
        where.fail("give either schedule (a cron string) or after_assets, not both")
    dag_id, schedule, start_date = where.dag_basics(raw, "sentiment_labelling", "@daily")
    if assets:
        schedule = None
    weights_raw = where.mapping(raw, "weights", required=False)
    where.keys(weights_raw, {f.name for f in dataclasses.fields(Weights)}, "weights")
    weights = Weights(
        **{f.name: where.number(weights_raw, f.name, f.default, 0.0, 10.0)
           for f in dataclasses.fields(Weights)}
    )  # fmt: skip
    if not any(dataclasses.astuple(weights)):
        where.fail("weights: at least one of them must be above 0")
    notify = where.mapping(raw, "notify", required=False)
    where.keys(notify, _NOTIFY_KEYS, "notify")
    email = notify.get("email", False)
    if not isinstance(email, bool):
        where.fail(f"notify.email must be true or false, got {email!r}")
    min_chars = where.number(raw, "min_chars", 3, 1, MAX_TEXT, int)
    max_chars = where.number(raw, "max_chars", 1000, 1, MAX_TEXT, int)
    if max_chars < min_chars:
        where.fail(f"max_chars ({max_chars}) is below min_chars ({min_chars})")
    tags = raw.get("tags", ["nightshift", "sentiment", "ml"])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        where.fail("tags must be a list of strings")
    return LabellingConfig(
        path=path,
        dag_id=dag_id,
        description=raw.get("description") or "Label scraped texts in the Airflow UI",
        schedule=schedule,
        after_assets=tuple(assets),
        start_date=start_date,
        dataset=where.ident(raw.get("dataset", "ml"), "dataset", "dataset name"),
        texts_dataset=where.ident(raw.get("texts_dataset", "reddit"), "texts_dataset", "dataset name"),
        items=where.number(raw, "items", 12, 1, 50, int),
        lookback_days=where.number(raw, "lookback_days", 14, 1, 3650, int),
        min_chars=min_chars,
        max_chars=max_chars,
        weights=weights,
        response_timeout_hours=where.number(raw, "response_timeout_hours", 20, 0.01, 24 * 90),
        assigned_users=_users(where, raw.get("assigned_users")),
        assigned_roles=_roles(where, raw.get("assigned_roles")),
        notify_email=email,
        notify_to=where.string(notify, "to", "notify.to"),
        smtp_conn_id=where.string(notify, "smtp_conn_id", "notify.smtp_conn_id") or "nightshift_smtp",
        tags=tuple(tags),
    )


# -- which texts ----------------------------------------------------------------------------------


def words(text: str) -> set[str]:
    """The words of ``text`` (letters, at least two), lower-cased."""
    return set(_WORD.findall(normalise(text)))


def vocabulary(texts: Iterable[str]) -> set[str]:
    """Every word of the labelled texts."""
    seen: set[str] = set()
    for text in texts:
        seen |= words(text)
    return seen


@dataclasses.dataclass(frozen=True)
class Pick:
    """One text of the form: where it comes from, why it was chosen, and its form field."""

    field: str  # the form's Param name, "text_01" ...
    key: str  # text_key(text)[:16]; the label's example_id is "ui:<key>"
    text_id: str
    subreddit: str
    kind: str
    text: str
    priority: float
    reasons: dict[str, float]

    @property
    def example_id(self) -> str:
        return f"ui:{self.key}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Pick:
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def reasons(row: Mapping[str, Any], known_words: set[str]) -> dict[str, float]:
    """Each reason to ask about ``row``, a number in [0, 1] (1: a label helps most)."""
    labels = [row.get(k) for k in ("vader_label", "textblob_label", "model_label")]
    labels = [label for label in labels if label in LABELS]
    disagreement = (len(set(labels)) - 1) / (len(labels) - 1) if len(labels) > 1 else 0.0
    model_score, compound = _finite(row.get("model_score")), _finite(row.get("vader_compound"))
    certainty = abs(model_score if model_score is not None else compound if compound is not None else 0.0)
    found = words(row.get("text") or "")
    new = len(found - known_words) / len(found) if found else 0.0
    return {"disagreement": round(disagreement, 4), "uncertainty": round(1.0 - min(certainty, 1.0), 4),
            "new_words": round(new, 4)}  # fmt: skip


def pick_texts(
    rows: Iterable[Mapping[str, Any]],
    *,
    labelled_texts: Iterable[str],
    n: int,
    weights: Weights = Weights(),
    min_chars: int = 3,
    max_chars: int = 1000,
) -> list[Pick]:
    """The ``n`` texts of ``rows`` a label helps most, one per distinct text, none already labelled,
    spread across subreddits. ``rows`` have ``text_id``, ``subreddit``, ``kind``, ``text`` and the
    scorers' ``vader_label``/``textblob_label``/``model_label``, ``vader_compound``, ``model_score``.

    The result is the same for the same rows in any order.
    """
    labelled = list(labelled_texts)
    done = {text_key(t) for t in labelled}
    known_words = vocabulary(labelled)
    best: dict[str, tuple[float, str, Mapping[str, Any], dict[str, float]]] = {}
    for row in rows:
        text = (row.get("text") or "").strip()
        if not min_chars <= len(text) <= max_chars:
            continue
        key = text_key(text)
        if key in done:
            continue
        why = reasons(row, known_words)
        priority = round(sum(getattr(weights, name) * value for name, value in why.items()), 4)
        candidate = (-priority, str(row["text_id"]), row, why)
        if key not in best or candidate[:2] < best[key][:2]:
            best[key] = candidate
    by_subreddit: dict[str, list[tuple[float, str, Mapping[str, Any], dict[str, float]]]] = defaultdict(list)
    for entry in best.values():
        by_subreddit[str(entry[2].get("subreddit") or "")].append(entry)
    queues = [sorted(entries, key=lambda e: e[:2]) for entries in by_subreddit.values()]
    queues.sort(key=lambda q: (q[0][0], q[0][1]))  # the subreddit with the best text goes first
    chosen = []
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return [
        Pick(field=f"text_{i:02d}", key=text_key(row["text"].strip())[:16], text_id=str(row["text_id"]),
             subreddit=str(row.get("subreddit") or ""), kind=str(row.get("kind") or ""),
             text=row["text"].strip(), priority=-neg, reasons=why)
        for i, (neg, _, row, why) in enumerate(chosen, start=1)
    ]  # fmt: skip


# -- the form and its answers ----------------------------------------------------------------------


def form_fields(picks: Iterable[Pick]) -> dict[str, dict[str, Any]]:
    """Keyword arguments of one ``Param`` per pick: an enum of the answers, default skip.

    The text goes into ``description``, which the Airflow UI renders as plain text (React escapes
    it); never into ``description_md`` or the request's Markdown body: the texts are hostile input.
    """
    picks = list(picks)
    fields = {}
    for i, p in enumerate(picks, start=1):
        where = f"r/{p.subreddit}" if p.subreddit else "scraped text"
        fields[p.field] = {
            "default": SKIP,
            "type": "string",
            "enum": list(ANSWERS),
            "values_display": dict(ANSWER_DISPLAY),
            "title": f"{i}/{len(picks)} · {where} · {p.kind or 'text'}",
            "description": p.text,
        }
    return fields


def responder(user: Mapping[str, Any] | None) -> str | None:
    """Who answered, as stored in ``labelled_by``: the login, with the display name when it differs."""
    if not user or not user.get("id"):
        return None
    ident, name = str(user["id"]), str(user.get("name") or user["id"])
    return ident if name == ident else f"{name} ({ident})"


def _answer(answers: Mapping[str, Any], field: str) -> str:
    answer = answers.get(field, SKIP)
    if answer not in ANSWERS:
        raise ValueError(f"answer {answer!r} for {field} is not one of {', '.join(ANSWERS)}")
    return answer


def label_records(
    picks: Iterable[Pick],
    answers: Mapping[str, Any],
    *,
    responded_by: Mapping[str, Any] | None,
    responded_at: datetime,
) -> list[dict[str, Any]]:
    """``ml.labels`` rows (LABEL_SCHEMA) for the answered texts; skips are not labels.

    ``first_seen_at`` is the answer's time, so the next retrain counts them as new. No responder
    (the request timed out and took its defaults) means nobody labelled anything: no rows.
    """
    who = responder(responded_by)
    if who is None:
        return []
    rows = []
    for p in picks:
        answer = _answer(answers, p.field)
        if answer == SKIP:
            continue
        rows.append({"example_id": p.example_id, "text": p.text, "label": answer, "rating": None,
                     "source": SOURCE, "first_seen_at": responded_at, "labelled_by": who,
                     "labelled_at": responded_at})  # fmt: skip
    return rows


# -- the request's record --------------------------------------------------------------------------


def request_rows(request: str, picks: Iterable[Pick], picked_at: datetime) -> list[dict[str, Any]]:
    """``label_requests`` rows (LABEL_REQUEST_SCHEMA) of ``request`` ("<dag_id>/<run_id>"), not answered yet."""
    return [{**p.to_dict(), "reasons": json.dumps(p.reasons, sort_keys=True), "request": request,
             "picked_at": picked_at, "answer": None, "answered_by_id": None, "answered_by_name": None,
             "answered_at": None} for p in picks]  # fmt: skip


def recorded_picks(rows: Iterable[Mapping[str, Any]]) -> list[Pick]:
    """The picks of a recorded request, in form order."""
    picks = [{**r, "reasons": json.loads(r["reasons"] or "{}")} for r in rows]
    return [Pick.from_dict(p) for p in sorted(picks, key=lambda p: p["field"])]


def instant(value: datetime | str) -> datetime:
    """An answer's time as an aware UTC datetime (XComs may carry it as ISO text)."""
    return (datetime.fromisoformat(value) if isinstance(value, str) else value).astimezone(UTC)


def answered_rows(
    rows: Iterable[Mapping[str, Any]],
    answers: Mapping[str, Any],
    *,
    responded_by: Mapping[str, Any] | None,
    responded_at: datetime | str,
) -> list[dict[str, Any]]:
    """``rows`` with the answer of the HITL record: per text its answer, who answered and when."""
    by = dict(responded_by) if responded_by and responded_by.get("id") else None
    done = []
    for r in rows:
        answer = _answer(answers, r["field"])
        done.append({**r, "answer": answer, "answered_by_id": by and str(by["id"]),
                     "answered_by_name": by and str(by.get("name") or by["id"]),
                     "answered_at": instant(responded_at)})  # fmt: skip
    return done


def recorded_response(
    request: str, table: str, rows: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, str], dict[str, str] | None, datetime]:
    """(answers by field, who answered or None, when) of a recorded request; a request with no
    recorded answer is a :class:`LabelRequestError` naming it and the fix."""
    rows = list(rows)
    if not rows:
        raise LabelRequestError(
            f"{table}: no request {request!r} recorded; pick_texts records it and label_texts its answer: "
            "clear pick_texts to ask again"
        )
    if any(r["answered_at"] is None for r in rows):
        raise LabelRequestError(
            f"{table}: request {request!r} has no recorded answer: label_texts records the answer it "
            "resumes with, so it did not finish through a response (marked successful by hand?). "
            "Nothing was stored; clear label_texts to ask again"
        )
    first = rows[0]
    user = (
        {"id": first["answered_by_id"], "name": first["answered_by_name"]}
        if first["answered_by_id"]
        else None
    )
    return {r["field"]: r["answer"] for r in rows}, user, instant(first["answered_at"])


def _shown(value: Any) -> str:
    text = repr(value.isoformat() if isinstance(value, datetime) else value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def pick_differences(rows: Iterable[Mapping[str, Any]], picks_xcom: Any) -> list[str]:
    """How the XCom of pick_texts differs from the recorded picks (empty: it does not)."""
    recorded = {p.field: p.to_dict() for p in recorded_picks(rows)}
    if not isinstance(picks_xcom, list) or not all(isinstance(p, Mapping) for p in picks_xcom):
        return [f"pick_texts: XCom {_shown(picks_xcom)} is not a list of picks"]
    given = {p.get("field"): p for p in picks_xcom}
    found = [f"pick_texts {field}: not recorded" for field in sorted(given.keys() - recorded.keys(), key=str)]
    for field, pick in sorted(recorded.items()):
        if field not in given:
            found.append(f"pick_texts {field}: recorded, not in the XCom")
            continue
        found += [
            f"pick_texts {field}: {name} {_shown(given[field].get(name))} in the XCom, {_shown(pick[name])} recorded"
            for name in ("key", "text_id", "text")
            if given[field].get(name) != pick[name]
        ]
    return found


def xcom_differences(
    rows: Iterable[Mapping[str, Any]],
    response: tuple[Mapping[str, str], Mapping[str, str] | None, datetime],
    picks_xcom: Any,
    response_xcom: Any,
) -> list[str]:
    """How the XComs of pick_texts and label_texts differ from the recorded request ``rows`` and
    its ``response`` (:func:`recorded_response`); empty: they do not."""
    found = pick_differences(rows, picks_xcom)
    if not isinstance(response_xcom, Mapping):
        return [*found, f"label_texts: XCom {_shown(response_xcom)} is not the recorded response"]
    answers, user, at = response
    if responder(response_xcom.get("responded_by_user")) != responder(user):
        found.append(f"label_texts: responded_by_user {_shown(responder(response_xcom.get('responded_by_user')))} "
                     f"in the XCom, {_shown(responder(user))} recorded")  # fmt: skip
    given_at = response_xcom.get("responded_at")
    try:
        same_time = given_at is not None and instant(given_at) == at
    except (TypeError, ValueError, AttributeError):
        same_time = False
    if not same_time:
        found.append(f"label_texts: responded_at {_shown(given_at)} in the XCom, {_shown(at)} recorded")
    given = response_xcom.get("params_input")
    given = given if isinstance(given, Mapping) else {}
    for field in sorted(answers.keys() | given.keys(), key=str):
        if given.get(field) != answers.get(field):
            found.append(f"label_texts {field}: answer {_shown(given.get(field))} in the XCom, "
                         f"{_shown(answers.get(field))} recorded")  # fmt: skip
    return found
