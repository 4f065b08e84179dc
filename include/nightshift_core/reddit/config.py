"""The Reddit scraping definition: ``include/config/reddit.yaml``, validated strictly.

A typo (``listng: top``), a listing Reddit does not have or a subreddit name Reddit would
reject is an error naming the file, the key and the fix; it surfaces as the DAG's import
error instead of a run that silently scrapes something else.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, StrictStr, ValidationInfo, model_validator

from nightshift_core.yamlconf import (
    CONFIG_DIR,
    ConfigError,
    DagId,
    FileModel,
    Fix,
    Schedule,
    StartDate,
    Tags,
    ident,
    number,
    parse,
    text,
)

CONFIG_PATH = CONFIG_DIR / "reddit.yaml"
Listing = Literal["top", "hot", "new"]
TimeFilter = Literal["hour", "day", "week", "month", "year", "all"]
LISTINGS: tuple[str, ...] = ("top", "hot", "new")
TIME_FILTERS: tuple[str, ...] = ("hour", "day", "week", "month", "year", "all")
#: Reddit's rule for community names: 3-21 letters, digits or underscores, not starting with "_".
#: Anchored because the DAG's Param uses it as a JSON Schema pattern; Python code uses fullmatch.
SUBREDDIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{2,20}$")
MAX_LISTING = 1000  # Reddit never serves more than 1000 items of a listing
MAX_REPLACE_MORE = 100


class RedditConfigError(ConfigError):
    """A bad reddit.yaml."""


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


def _subreddits(value: Any) -> tuple[str, ...]:
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not value:
        raise ValueError("subreddits: list the communities to scrape, e.g. subreddits: [showerthoughts]")
    names = tuple(check_subreddit(name, f"subreddits[{i}]") for i, name in enumerate(value))
    lowered = [n.lower() for n in names]
    dupes = sorted({n for n in lowered if lowered.count(n) > 1})
    if dupes:
        raise ValueError(f"subreddits: {dupes} listed twice (names are case-insensitive); keep one")
    return names


def _count(low: int, high: int, description: str) -> Any:
    return number(
        low,
        high,
        description,
        whole=True,
        fix=f"{{key}}: must be a whole number from {low} to {high}, got {{value}}",
    )


class RedditConfig(FileModel):
    """The Reddit scraping definition: ``include/config/reddit.yaml`` (dags/reddit_sentiment.py)."""

    top_level: ClassVar[str] = ""

    dag_id: DagId = "reddit_sentiment"
    description: StrictStr = Field(
        "Scrape Reddit and score sentiment", description="One line shown in the UI"
    )
    schedule: Schedule = "@hourly"
    start_date: StartDate
    conn_id: text(
        "Reddit connection: client id/secret and user agent", "{key}: must be a non-empty string, got {value}"
    ) = "reddit_default"
    pool: text(
        "Airflow pool capping parallel scrapes (Reddit allows ~100 OAuth queries/min)",
        "{key}: must be a non-empty string, got {value}",
    ) = "reddit_api"
    dataset: ident("dataset name", "Warehouse dataset of the posts, comments and scores") = "reddit"
    subreddits: Annotated[
        tuple[str, ...],
        BeforeValidator(_subreddits),
        Field(
            description="Communities to scrape, without 'r/'",
            json_schema_extra={"items": {"pattern": SUBREDDIT_NAME.pattern}},
        ),
    ]
    listing: Annotated[
        Listing, Fix(f"{{key}}: {{value}} is not a Reddit listing; use one of {list(LISTINGS)}")
    ] = Field("top", description="Which listing of each subreddit")
    time_filter: Annotated[
        TimeFilter, Fix(f"{{key}}: {{value}} is not a Reddit time filter; use one of {list(TIME_FILTERS)}")
    ] = Field("week", description="The window of 'top' (only 'top' takes one)")
    limit: _count(1, MAX_LISTING, "Posts per subreddit and run (Reddit serves at most 1000)") = 25
    comment_depth: _count(0, 1000, "Replies deeper than this are not stored (0: top-level comments only)") = (
        10
    )
    replace_more_limit: _count(
        0, MAX_REPLACE_MORE, "'Load more comments' requests per post (one API query each)"
    ) = 32
    tags: Tags = ("nightshift", "reddit", "sentiment")

    @classmethod
    def prepare(cls, data: dict, info: ValidationInfo) -> dict:
        data = super().prepare(data, info)
        if "subreddits" not in data:
            data["subreddits"] = None  # refused by _subreddits, saying what to write
        if isinstance(data.get("description"), str) and not data["description"]:
            data["description"] = "Scrape Reddit and score sentiment"
        return data

    @model_validator(mode="after")
    def _time_filter_only_for_top(self) -> RedditConfig:
        if "time_filter" in self.model_fields_set and self.listing != "top":
            raise ValueError(
                f"time_filter: only 'top' takes a time filter; remove it or use listing: top (got {self.listing!r})"
            )
        return self


def load(path: Path = CONFIG_PATH) -> RedditConfig:
    """Read and validate ``path``; every problem is a :class:`RedditConfigError`."""
    return parse(RedditConfig, path, RedditConfigError)
