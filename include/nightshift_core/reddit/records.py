"""praw Submission/Comment objects -> warehouse rows keyed by Reddit fullname.

Only attributes already loaded from the API response are read (``vars(obj)``): touching a
missing attribute of a lazy praw object would silently fire another API request. Deleted and
removed content is kept as Reddit reports it (``[deleted]``/``[removed]``) with a ``status``
column, so it is never scored as if it were someone's words.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import pyarrow as pa

from nightshift_core.errors import PermanentError

Status = Literal["visible", "deleted", "removed"]
DELETED, REMOVED = "[deleted]", "[removed]"

POST_SCHEMA = pa.schema(
    [
        pa.field("fullname", pa.string(), nullable=False),
        ("subreddit", pa.string()),
        ("title", pa.string()),
        ("selftext", pa.string()),
        ("author", pa.string()),
        ("score", pa.int64()),
        ("num_comments", pa.int64()),
        ("created_utc", pa.timestamp("us", tz="UTC")),
        ("edited", pa.bool_()),
        ("edited_utc", pa.timestamp("us", tz="UTC")),  # NULL when not edited or the time is unknown
        ("permalink", pa.string()),
        ("url", pa.string()),
        ("status", pa.string()),
        ("scraped_at", pa.timestamp("us", tz="UTC")),
    ]
)
COMMENT_SCHEMA = pa.schema(
    [
        pa.field("fullname", pa.string(), nullable=False),
        ("post_fullname", pa.string()),
        ("parent_fullname", pa.string()),
        ("depth", pa.int64()),
        ("subreddit", pa.string()),
        ("body", pa.string()),
        ("author", pa.string()),
        ("score", pa.int64()),
        ("created_utc", pa.timestamp("us", tz="UTC")),
        ("edited", pa.bool_()),
        ("edited_utc", pa.timestamp("us", tz="UTC")),  # NULL when not edited or the time is unknown
        ("status", pa.string()),
        ("scraped_at", pa.timestamp("us", tz="UTC")),
    ]
)
SENTIMENT_SCHEMA = pa.schema(
    [
        pa.field("text_id", pa.string(), nullable=False),  # "<fullname>:title|selftext|body"
        ("fullname", pa.string()),
        ("subreddit", pa.string()),
        ("kind", pa.string()),  # title | selftext | comment (top level) | reply
        ("created_utc", pa.timestamp("us", tz="UTC")),
        ("text_sha256", pa.string()),  # of the scored text: an edit means a new score
        ("textblob_polarity", pa.float64()),
        ("textblob_label", pa.string()),
        ("vader_compound", pa.float64()),
        ("vader_pos", pa.float64()),
        ("vader_neg", pa.float64()),
        ("vader_neu", pa.float64()),
        ("vader_label", pa.string()),
        ("model_label", pa.string()),
        ("model_score", pa.float64()),
        ("model_version", pa.string()),  # NULL until a trained model is champion
        ("scored_at", pa.timestamp("us", tz="UTC")),
    ]
)


class RecordError(ValueError, PermanentError):
    """A Reddit object lacks a field every post/comment has; names the object and the field."""


def text_status(text: str | None) -> Status:
    """``deleted``/``removed`` for Reddit's placeholders, else ``visible``."""
    if text == DELETED:
        return "deleted"
    if text == REMOVED:
        return "removed"
    return "visible"


def timestamp(value: Any) -> dt.datetime | None:
    """Reddit epoch seconds (``created_utc``, ``edited``) -> aware UTC; ``False``/``True``/None -> None.

    Older Reddit objects carry ``"edited": true`` with no time: the edit time is then unknown
    (NULL), never ``float(True)`` = 1970-01-01 00:00:01.
    """
    if value is None or isinstance(value, bool):
        return None
    return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)


def was_edited(value: Any) -> bool:
    """Reddit's ``edited`` (``false``, ``true`` or the edit's epoch seconds) -> edited or not."""
    if isinstance(value, bool):
        return value
    return value is not None and float(value) > 0


def _fields(obj: Any) -> dict[str, Any]:
    return vars(obj)


def _need(data: dict[str, Any], name: str, what: str) -> Any:
    if name not in data:
        raise RecordError(
            f"{what}: the API response has no {name!r}; Reddit changed its format or sent a partial object"
        )
    return data[name]


def _author(value: Any) -> str | None:
    # praw turns "[deleted]" into None and other names into lazy Redditor objects.
    if value is None:
        return None
    name = getattr(value, "name", value)
    return None if name == DELETED else str(name)


def post_record(submission: Any, scraped_at: dt.datetime) -> dict[str, Any]:
    data = _fields(submission)
    name = _need(data, "name", "a post")
    selftext = data.get("selftext") or ""
    return {
        "fullname": name,
        "subreddit": str(_need(data, "subreddit", name)),
        "title": _need(data, "title", name),
        "selftext": selftext,
        "author": _author(data.get("author")),
        "score": data.get("score"),
        "num_comments": data.get("num_comments"),
        "created_utc": timestamp(_need(data, "created_utc", name)),
        "edited": was_edited(data.get("edited")),
        "edited_utc": timestamp(data.get("edited")),
        "permalink": data.get("permalink"),
        "url": data.get("url"),
        "status": text_status(selftext) if selftext else "visible",
        "scraped_at": scraped_at,
    }


def walk_comments(
    post_fullname: str, forest: Iterable[Any], scraped_at: dt.datetime, max_depth: int | None = None
) -> Iterator[dict[str, Any]]:
    """Every comment of a tree, depth first, with its depth (top level = 0) and parent.

    Items that are not comments (unresolved "load more" stubs) are skipped; the caller bounds
    how many of those it resolves. Replies deeper than ``max_depth`` are not returned.
    """
    stack: list[tuple[Any, int]] = [(c, 0) for c in reversed(list(forest))]
    while stack:
        comment, depth = stack.pop()
        data = _fields(comment)
        if "body" not in data:  # MoreComments
            continue
        if max_depth is not None and depth > max_depth:
            continue
        name = _need(data, "name", "a comment")
        body = data["body"]
        yield {
            "fullname": name,
            "post_fullname": post_fullname,
            "parent_fullname": _need(data, "parent_id", name),
            "depth": depth,
            "subreddit": str(_need(data, "subreddit", name)),
            "body": body,
            "author": _author(data.get("author")),
            "score": data.get("score"),
            "created_utc": timestamp(_need(data, "created_utc", name)),
            "edited": was_edited(data.get("edited")),
            "edited_utc": timestamp(data.get("edited")),
            "status": text_status(body),
            "scraped_at": scraped_at,
        }
        # ``replies`` is a property of praw's Comment (a CommentForest); it never fetches.
        replies = getattr(comment, "replies", None) or []
        stack.extend((reply, depth + 1) for reply in reversed(list(replies)))
