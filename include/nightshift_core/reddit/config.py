"""The Reddit scraping definition: ``include/config/reddit.yaml``, validated strictly.

A typo (``listng: top``), a listing Reddit does not have or a subreddit name Reddit would
reject is an error naming the file, the key and the fix; it surfaces as the DAG's import
error instead of a run that silently scrapes something else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from nightshift_core.errors import PermanentError
from nightshift_core.warehouse.types import check_identifier
from nightshift_core.yamlconf import Where

CONFIG_PATH = Path(__file__).resolve().parents[2] / "config" / "reddit.yaml"
Listing = Literal["top", "hot", "new"]
TimeFilter = Literal["hour", "day", "week", "month", "year", "all"]
LISTINGS: tuple[str, ...] = ("top", "hot", "new")
TIME_FILTERS: tuple[str, ...] = ("hour", "day", "week", "month", "year", "all")
#: Reddit's rule for community names: 3-21 letters, digits or underscores, not starting with "_".
#: Anchored because the DAG's Param uses it as a JSON Schema pattern; Python code uses fullmatch.
SUBREDDIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{2,20}$")
MAX_LISTING = 1000  # Reddit never serves more than 1000 items of a listing
MAX_REPLACE_MORE = 100

_KEYS = {"dag_id", "description", "schedule", "start_date", "conn_id", "pool", "dataset", "subreddits",
         "listing", "time_filter", "limit", "comment_depth", "replace_more_limit", "tags"}  # fmt: skip


class RedditConfigError(ValueError, PermanentError):
    """A bad reddit.yaml; the message names file, key and fix."""


@dataclass(frozen=True)
class RedditConfig:
    path: Path
    dag_id: str
    description: str
    schedule: str | None
    start_date: datetime
    conn_id: str
    pool: str
    dataset: str
    subreddits: tuple[str, ...]
    listing: Listing
    time_filter: TimeFilter
    limit: int
    comment_depth: int
    replace_more_limit: int
    tags: tuple[str, ...]


def check_subreddit(name: Any, where: str = "subreddit") -> str:
    """``name`` if Reddit would accept it as a community name, else a ValueError saying why."""
    if isinstance(name, str) and name.lower().startswith(("r/", "/r/")):
        raise ValueError(f"{where}: write {name.split('r/', 1)[1]!r} without the 'r/' prefix")
    if not isinstance(name, str) or not SUBREDDIT_NAME.fullmatch(name):
        raise ValueError(
            f"{where}: {name!r} is not a subreddit name; Reddit names have 3-21 letters, digits or "
            "'_' and do not start with '_' (e.g. showerthoughts)"
        )
    return name


def load(path: Path = CONFIG_PATH) -> RedditConfig:
    """Read and validate ``path``; every problem is a :class:`RedditConfigError`."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RedditConfigError(
            f"{path}: file not found; create it (see include/config/reddit.yaml)"
        ) from None
    except yaml.YAMLError as exc:
        raise RedditConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise RedditConfigError(f"{path}: expected a mapping at the top level")
    unknown = set(raw) - _KEYS
    if unknown:
        raise RedditConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}")

    def fail(key: str, message: str) -> RedditConfigError:
        return RedditConfigError(f"{path}: {key}: {message}")

    subreddits = raw.get("subreddits")
    if isinstance(subreddits, str):
        subreddits = [subreddits]
    if not isinstance(subreddits, list) or not subreddits:
        raise fail("subreddits", "list the communities to scrape, e.g. subreddits: [showerthoughts]")
    names = []
    for i, name in enumerate(subreddits):
        try:
            names.append(check_subreddit(name, f"subreddits[{i}]"))
        except ValueError as exc:
            raise RedditConfigError(f"{path}: {exc}") from None
    lowered = [n.lower() for n in names]
    dupes = sorted({n for n in lowered if lowered.count(n) > 1})
    if dupes:
        raise fail("subreddits", f"{dupes} listed twice (names are case-insensitive); keep one")
    listing = raw.get("listing", "top")
    if listing not in LISTINGS:
        raise fail("listing", f"{listing!r} is not a Reddit listing; use one of {list(LISTINGS)}")
    time_filter = raw.get("time_filter", "week")
    if time_filter not in TIME_FILTERS:
        raise fail(
            "time_filter", f"{time_filter!r} is not a Reddit time filter; use one of {list(TIME_FILTERS)}"
        )
    if "time_filter" in raw and listing != "top":
        raise fail(
            "time_filter", f"only 'top' takes a time filter; remove it or use listing: top (got {listing!r})"
        )
    limit = _int(raw, "limit", 25, 1, MAX_LISTING, fail)
    depth = _int(raw, "comment_depth", 10, 0, 1000, fail)
    more = _int(raw, "replace_more_limit", 32, 0, MAX_REPLACE_MORE, fail)
    dag_id, schedule, start_dt = Where(path, RedditConfigError).dag_basics(raw, "reddit_sentiment", "@hourly")
    try:
        dataset = check_identifier(raw.get("dataset", "reddit"), "dataset name")
    except ValueError as exc:
        raise fail("dataset", str(exc)) from None
    strings = {}
    for key, default in (("conn_id", "reddit_default"), ("pool", "reddit_api"), ("description", "")):
        value = raw.get(key, default)
        if not isinstance(value, str) or (key != "description" and not value.strip()):
            raise fail(key, f"must be a non-empty string, got {value!r}")
        strings[key] = value
    tags = raw.get("tags", ["nightshift", "reddit", "sentiment"])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise fail("tags", "must be a list of strings")
    return RedditConfig(
        path=path,
        dag_id=dag_id,
        description=strings["description"] or "Scrape Reddit and score sentiment",
        schedule=schedule,
        start_date=start_dt,
        conn_id=strings["conn_id"],
        pool=strings["pool"],
        dataset=dataset,
        subreddits=tuple(names),
        listing=listing,
        time_filter=time_filter,
        limit=limit,
        comment_depth=depth,
        replace_more_limit=more,
        tags=tuple(tags),
    )


def _int(raw: dict, key: str, default: int, low: int, high: int, fail) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise fail(key, f"must be a whole number from {low} to {high}, got {value!r}")
    return value
