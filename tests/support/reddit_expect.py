"""What a scrape of the embedded Reddit snapshot must store, computed from the snapshot itself."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT / "include" / "data" / "reddit_snapshot.json"
CONFIG = ROOT / "include" / "config" / "reddit.yaml"
PLACEHOLDERS = ("[deleted]", "[removed]")
WEEK_HOURS = 7 * 24


def expected_counts() -> dict[str, int]:
    """Rows in reddit.posts, reddit.comments and reddit.sentiment after one scrape with the shipped config.

    Posts: the top ``limit`` of each subreddit within the week; comments: every comment down to
    ``comment_depth`` (the snapshot's trees are small enough for ``replace_more_limit``); sentiment:
    each title, each non-empty visible selftext and each visible comment.
    """
    config = yaml.safe_load(CONFIG.read_text())
    snapshot = json.loads(SNAPSHOT.read_text())["subreddits"]
    posts = []
    for sub in config["subreddits"]:
        recent = [p for p in snapshot[sub] if p["age_hours"] < WEEK_HOURS]
        posts += sorted(recent, key=lambda p: -p["score"])[: config["limit"]]
    comments = visible = 0
    stack = [(c, 0) for p in posts for c in p.get("comments", [])]
    while stack:
        comment, depth = stack.pop()
        if depth > config["comment_depth"]:
            continue
        comments += 1
        visible += comment["body"] not in PLACEHOLDERS
        stack += [(r, depth + 1) for r in comment.get("replies", [])]
    selftexts = sum(1 for p in posts if p.get("selftext") and p["selftext"] not in PLACEHOLDERS)
    return {"posts": len(posts), "comments": comments, "sentiment": len(posts) + selftexts + visible}
