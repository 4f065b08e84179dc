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
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StrictStr, ValidationInfo, WithJsonSchema, model_validator

from nightshift_core.errors import PermanentError
from nightshift_core.ml.labels import MAX_TEXT, normalise, text_key
from nightshift_core.sentiment.rules import LABELS
from nightshift_core.yamlconf import (
    CONFIG_DIR,
    ConfigError,
    ConfigModel,
    DagId,
    FileModel,
    Fix,
    Flag,
    Schedule,
    StartDate,
    Tags,
    ident,
    number,
    parse,
)
from nightshift_core.yamlconf import (
    text as nonempty,
)

CONFIG_PATH = CONFIG_DIR / "labelling.yaml"
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


class LabellingConfigError(ConfigError):
    """A bad labelling.yaml."""


class LabelRequestError(ValueError, PermanentError):
    """A labelling request's record is missing, unanswered, or differs from an XCom of its run."""


def _weight(description: str) -> Any:
    return number(0.0, 10.0, description)


class Weights(ConfigModel):
    """How much each reason counts in a text's priority (each reason is a number in [0, 1])."""

    disagreement: _weight("VADER, TextBlob and the champion give different labels") = 1.0
    uncertainty: _weight("1 - |model_score| (1 - |vader_compound| without a model score)") = 1.0
    new_words: _weight("Share of the text's words that no labelled text has") = 1.0

    def __init__(self, *args: float, **values: Any) -> None:
        super().__init__(**dict(zip(type(self).model_fields, args, strict=False)), **values)

    @model_validator(mode="after")
    def _one_counts(self) -> Weights:
        if not any((self.disagreement, self.uncertainty, self.new_words)):
            raise ValueError("{key}: at least one of them must be above 0")
        return self


class Notify(ConfigModel):
    """The e-mail with the link to the form."""

    email: Flag = Field(False, description="E-mail the link to the form when a request opens")
    to: Annotated[StrictStr | None, Fix("{key} must be comma-separated addresses or null, got {value}")] = (
        Field(None, description="Comma-separated; null: the Variable nightshift_alert_to")
    )
    smtp_conn_id: nonempty(
        "SMTP connection of the e-mail", "notify.smtp_conn_id must be a non-empty string"
    ) = "nightshift_smtp"


def _users(raw: Any) -> tuple[dict[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError("assigned_users must be a list of {id, name} (empty: anyone allowed to answer)")
    users = []
    for i, user in enumerate(raw):
        if not isinstance(user, dict) or not user.get("id"):
            raise ValueError(
                f"assigned_users[{i}] must be a mapping with 'id' (the login or the numeric user id) "
                "and optional 'name'"
            )
        unknown = set(user) - {"id", "name"}
        if unknown:
            raise ValueError(
                f"unknown key(s) {sorted(unknown)} in assigned_users[{i}]; allowed: ['id', 'name']"
            )
        ident = user["id"]
        if isinstance(ident, int) and not isinstance(ident, bool):
            ident = str(ident)  # a user id (FAB's are numbers); the request lists ids as strings
        name = user.get("name", ident)
        if not all(isinstance(v, str) and v.strip() for v in (ident, name)):
            raise ValueError(f"assigned_users[{i}]: id and name must be non-empty strings")
        users.append({"id": ident, "name": name})
    return tuple(users)


def _roles(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(r, str) and r.strip() for r in raw):
        raise ValueError(
            "assigned_roles must be a list of role names, e.g. [Labeller] (empty: no role is assigned)"
        )
    return tuple(r.strip() for r in raw)


def _assets(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw or [], list) or not all(isinstance(a, str) and a.strip() for a in raw or []):
        raise ValueError("after_assets must be a list of Asset names, e.g. [reddit.sentiment]")
    return tuple(raw or ())


_USERS_SCHEMA = {
    "type": "array",
    "description": "Who may answer, e.g. [{id: alice, name: Alice}]; empty: anyone allowed to edit the DAG",
    "items": {
        "type": "object",
        "properties": {"id": {"type": ["string", "integer"]}, "name": {"type": "string"}},
        "required": ["id"],
        "additionalProperties": False,
    },
}


class LabellingConfig(FileModel):
    """The labelling definition: ``include/config/labelling.yaml`` (dags/sentiment_labelling.py)."""

    dag_id: DagId = "sentiment_labelling"
    description: StrictStr = Field(
        "Label scraped texts in the Airflow UI", description="One line shown in the UI"
    )
    schedule: Schedule = "@daily"
    after_assets: Annotated[tuple[str, ...], BeforeValidator(_assets)] = Field(
        (), description="Run when these Assets are updated (instead of a schedule), e.g. [reddit.sentiment]"
    )
    start_date: StartDate
    dataset: ident("dataset name", "Warehouse dataset of ml.labels, where the answers are merged") = "ml"
    texts_dataset: ident("dataset name", "Dataset of the scraped texts and their scores") = "reddit"
    items: number(1, 50, "Texts per request (one form, one field per text)", whole=True) = 12
    lookback_days: number(1, 3650, "Texts scored in the last N days are candidates", whole=True) = 14
    min_chars: number(1, MAX_TEXT, "Shorter texts are not asked about", whole=True) = 3
    max_chars: number(1, MAX_TEXT, "Longer texts are not asked about", whole=True) = 1000
    weights: Weights = Weights()
    response_timeout_hours: number(
        0.01, 24 * 90, "Unanswered this long: the request takes its defaults (all skip) and the run ends"
    ) = 20.0
    assigned_users: Annotated[
        tuple[dict[str, str], ...], BeforeValidator(_users), WithJsonSchema(_USERS_SCHEMA)
    ] = ()
    #: roles whose users may answer (under the production auth manager; see plugins/nightshift/auth.py)
    assigned_roles: Annotated[tuple[str, ...], BeforeValidator(_roles)] = Field(
        (), description="Users with these roles may answer (production auth manager only), e.g. [Labeller]"
    )
    notify: Notify = Notify()
    tags: Tags = ("nightshift", "sentiment", "ml")

    @classmethod
    def prepare(cls, data: dict, info: ValidationInfo) -> dict:
        data = super().prepare(data, info)
        if data.get("after_assets") and data.get("schedule") is not None:
            raise ValueError("give either schedule (a cron string) or after_assets, not both")
        if data.get("after_assets"):
            data["schedule"] = None
        if not data.get("description"):
            data.pop("description", None)
        return data

    @model_validator(mode="after")
    def _chars(self) -> LabellingConfig:
        if self.max_chars < self.min_chars:
            raise ValueError(f"max_chars ({self.max_chars}) is below min_chars ({self.min_chars})")
        return self


DEFAULT_WEIGHTS = Weights()


def load(path: Path = CONFIG_PATH) -> LabellingConfig:
    """Read and validate ``path``; every problem is a :class:`LabellingConfigError`."""
    return parse(LabellingConfig, path, LabellingConfigError)


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
    weights: Weights = DEFAULT_WEIGHTS,
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
