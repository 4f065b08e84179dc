"""Airflow DAG: scrape Reddit into the warehouse and score sentiment (include/config/reddit.yaml).

The words "airflow" and "dag" must appear in this file: the dag-processor's safe mode skips
files without them. A bad reddit.yaml is this file's import error, naming the key to fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import DAG, Asset, Param, task

from nightshift.dag_defaults import default_args
from nightshift.operators.reddit import RedditToWarehouseOperator, SentimentScoreOperator
from nightshift.operators.warehouse_ops import WarehouseQueryToTableOperator
from nightshift_core.reddit.config import CONFIG_PATH, MAX_LISTING, SUBREDDIT_NAME, load

# NIGHTSHIFT_REDDIT_CONFIG points at another definition (tests); read at parse time: a file, no I/O else.
CONFIG = load(Path(os.environ.get("NIGHTSHIFT_REDDIT_CONFIG") or CONFIG_PATH))
DATASET = CONFIG.dataset

DOC = f"""
### Reddit scraping + sentiment

Every run (`{CONFIG.schedule}`) scrapes the `{CONFIG.listing}` posts
{f"of the {CONFIG.time_filter} " if CONFIG.listing == "top" else ""}of
{", ".join(f"r/{s}" for s in CONFIG.subreddits)} (definition: `include/config/{CONFIG.path.name}`):

1. `plan_subreddits` picks the subreddits (Param `subreddits`, else the configured ones);
2. `scrape` (one mapped task per subreddit, pool `{CONFIG.pool}`) reads the listing and each
   post's whole comment tree through connection `{CONFIG.conn_id}` (up to {CONFIG.replace_more_limit}
   "load more" requests per post, replies to depth {CONFIG.comment_depth}) and merges
   `{DATASET}.posts` and `{DATASET}.comments`, keyed by Reddit fullname (`t3_...`, `t1_...`);
3. `score_sentiment` scores the run's new or edited titles, self-text, comments and replies with
   TextBlob and VADER (the seed's rules) and the champion model once one exists, into
   `{DATASET}.sentiment` (`model_version` says which model gave each label);
4. `daily_sentiment` rebuilds `{DATASET}.daily_sentiment` (per subreddit, day and scorer: label
   counts, mean compound), the Asset the report digest waits for.

Re-running a run changes nothing: rows carry the run's time, not the clock's. With `make run` the
connection points at a local replay server serving `include/data/reddit_snapshot.json`.
"""

with DAG(
    dag_id=CONFIG.dag_id,
    description=CONFIG.description,
    schedule=CONFIG.schedule,
    start_date=CONFIG.start_date,
    catchup=False,
    max_active_runs=1,
    tags=list(CONFIG.tags),
    doc_md=DOC,
    default_args=default_args(),
    params={
        "subreddits": Param(
            [],
            type="array",
            items={"type": "string", "pattern": SUBREDDIT_NAME.pattern},
            title="Subreddits",
            description=f"Scrape these instead of the configured ones ({', '.join(CONFIG.subreddits)}); "
            "empty: the configured ones. Names without 'r/'.",
        ),
        "limit": Param(
            CONFIG.limit,
            type="integer",
            minimum=1,
            maximum=MAX_LISTING,
            title="Posts per subreddit",
            description="How many posts of the listing to scrape per subreddit.",
        ),
    },
) as dag:

    @task
    def plan_subreddits(params: dict | None = None) -> list[str]:
        """The run's subreddits: the Param when given (validated, de-duplicated), else the config's."""
        from nightshift_core.reddit.config import check_subreddit

        chosen = list((params or {}).get("subreddits") or CONFIG.subreddits)
        names = [check_subreddit(name, "Param subreddits") for name in chosen]
        return list(dict.fromkeys(names))

    scrape = RedditToWarehouseOperator.partial(
        task_id="scrape",
        listing=CONFIG.listing,
        time_filter=CONFIG.time_filter,
        limit="{{ params.limit }}",
        comment_depth=CONFIG.comment_depth,
        replace_more_limit=CONFIG.replace_more_limit,
        dataset=DATASET,
        reddit_conn_id=CONFIG.conn_id,
        pool=CONFIG.pool,
        outlets=[Asset(name=f"{DATASET}.posts"), Asset(name=f"{DATASET}.comments")],
    ).expand(subreddit=plan_subreddits())
    score = SentimentScoreOperator(
        task_id="score_sentiment", dataset=DATASET, outlets=[Asset(name=f"{DATASET}.sentiment")]
    )
    daily = WarehouseQueryToTableOperator(
        task_id="daily_sentiment",
        sql="reddit/daily_sentiment.sql",
        target=f"{DATASET}.daily_sentiment",
        shape={"dataset": DATASET},
        outlets=[Asset(name=f"{DATASET}.daily_sentiment")],
    )
    scrape >> score >> daily
