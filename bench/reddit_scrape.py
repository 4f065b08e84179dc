"""Scrape-to-warehouse throughput: 10 posts x 1,000 comments through the real praw client and
the local Reddit replay server into DuckDB, against a raw praw walk of the same trees.

    .venv/bin/python bench/reddit_scrape.py [--posts 10] [--comments 1000]

The raw walk (same server, same replace_more, no warehouse) is the floor: the ratio says what
staging and merging cost on top of talking to Reddit. Each run uses a fresh server and
warehouse. The server paces nothing (huge rate-limit budget), unlike Reddit. Not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins"), str(ROOT / "tests")]
ANCHOR = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)


def make_snapshot(posts: int, comments: int, seed: int = 7) -> dict:
    """Each post: ``comments`` comments, a third top level, the rest replies up to depth 6."""
    rng = random.Random(seed)
    subs = []
    for p in range(posts):
        nodes: list[dict] = []
        top: list[dict] = []
        for c in range(comments):
            node = {"id": f"p{p}c{c}", "author": f"user{c % 97}", "body": f"comment {c}: a fine and happy remark",
                    "score": rng.randint(0, 500), "age_hours": 5.0, "replies": [], "_depth": 0}  # fmt: skip
            parents = [n for n in nodes[-50:] if n["_depth"] < 6]
            if c % 3 == 0 or not parents:
                top.append(node)
            else:
                parent = rng.choice(parents)
                node["_depth"] = parent["_depth"] + 1
                parent["replies"].append(node)
            nodes.append(node)
        for node in nodes:
            del node["_depth"]
        subs.append({"id": f"post{p}", "title": f"Post {p}", "selftext": "", "author": "op", "score": 1000 - p,
                     "age_hours": 6, "comments": top})  # fmt: skip
    return {"subreddits": {"benchsub": subs}}


class _Env:
    def setenv(self, key: str, value: str) -> None:
        os.environ[key] = value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=10)
    parser.add_argument("--comments", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

    import logging

    import praw  # noqa: F401 - imported before timing: import cost is not scraping
    import pyarrow  # noqa: F401
    from support.fake_reddit import FakeReddit

    import nightshift_core.warehouse.duckdb_engine  # noqa: F401
    from nightshift.hooks.reddit import RedditHook
    from nightshift.operators.reddit import RedditToWarehouseOperator

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    snapshot = make_snapshot(args.posts, args.comments)
    # Reddit-like server: 200 siblings per page, threads continued past depth 10.
    options = {"tree_limit": 200, "max_depth": 10}

    fake = FakeReddit(snapshot, ANCHOR.timestamp(), _Env(), **options)
    try:
        hook = RedditHook()
        started = time.perf_counter()
        walked = 0
        for submission in hook.fetch_listing("benchsub", "top", "week", args.posts):
            forest, _ = hook.fetch_comments(submission, 100)
            stack = list(forest)
            while stack:
                comment = stack.pop()
                walked += 1
                stack.extend(comment.replies)
        raw_s = time.perf_counter() - started
        raw_requests = len(fake.app.log)
    finally:
        fake.stop()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE"] = json.dumps(
            {"conn_type": "generic", "extra": {"engine": "duckdb", "path": f"{tmp}/bench.duckdb"}}
        )
        fake = FakeReddit(snapshot, ANCHOR.timestamp(), _Env(), **options)
        try:
            op = RedditToWarehouseOperator(task_id="scrape", subreddit="benchsub", limit=args.posts,
                                           replace_more_limit=100, comment_depth=1000)  # fmt: skip
            ti = SimpleNamespace(dag_id="bench", task_id="scrape", run_id="bench", map_index=-1)
            context = {
                "ti": ti,
                "data_interval_start": ANCHOR - dt.timedelta(hours=1),
                "data_interval_end": ANCHOR,
            }
            started = time.perf_counter()
            result = op.execute(context)
            load_s = time.perf_counter() - started
        finally:
            fake.stop()
    rows = result["posts"] + result["comments"]
    print(f"{'path':32} {'rows':>7} {'requests':>9} {'seconds':>8} {'rows/s':>8}")
    print(f"{'raw praw walk (floor)':32} {walked + args.posts:>7} {raw_requests:>9} {raw_s:>8.2f} "
          f"{(walked + args.posts) / raw_s:>8.0f}")  # fmt: skip
    print(f"{'scrape -> DuckDB (operator)':32} {rows:>7} {'':>9} {load_s:>8.2f} {rows / load_s:>8.0f}")
    print(f"operator / floor time: {load_s / raw_s:.2f}x; {result['more_left']} stubs left unresolved")


if __name__ == "__main__":
    main()
