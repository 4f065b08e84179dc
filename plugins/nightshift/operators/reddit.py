"""Reddit -> warehouse, and sentiment scoring of what was scraped.

Both operators are transactions: rows are keyed by Reddit fullname / text id and merged, and
their ``scraped_at``/``scored_at`` is the run's time (data interval end, else ``run_after``),
so re-running an hour or scraping overlapping windows leaves the same rows, and an edited
comment simply updates its row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from nightshift.operators._fail_fast import fail_fast

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import Context

    from nightshift_core.sentiment.rules import Scorer


def run_time(context: Any) -> dt.datetime:
    """The deterministic time of this run: data interval end, else when it was due to run."""
    end = context.get("data_interval_end")
    if end is None:
        dag_run = context.get("dag_run")
        end = getattr(dag_run, "run_after", None) or context.get("logical_date")
    if end is None:
        raise ValueError("the task context has no data_interval_end or run_after to stamp rows with")
    return dt.datetime.fromtimestamp(end.timestamp(), tz=dt.UTC)


class RedditToWarehouseOperator(BaseOperator):
    """Scrape one subreddit's listing and every post's comment tree; merge into ``<dataset>.posts``
    and ``<dataset>.comments``.

    The scrape streams into staging first: if any request fails (after the hook's retries) or
    an answer is malformed, nothing is published.
    """

    template_fields: Sequence[str] = ("subreddit", "limit")

    def __init__(
        self,
        *,
        subreddit: str,
        listing: str = "top",
        time_filter: str = "week",
        limit: int | str = 25,
        comment_depth: int = 10,
        replace_more_limit: int = 32,
        dataset: str = "reddit",
        reddit_conn_id: str = "reddit_default",
        warehouse_conn_id: str = "nightshift_warehouse",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subreddit = subreddit
        self.listing = listing
        self.time_filter = time_filter
        self.limit = limit
        self.comment_depth = comment_depth
        self.replace_more_limit = replace_more_limit
        self.dataset = dataset
        self.reddit_conn_id = reddit_conn_id
        self.warehouse_conn_id = warehouse_conn_id

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        import pyarrow as pa

        from nightshift.hooks.reddit import RedditHook
        from nightshift.hooks.warehouse import WarehouseHook, job_key
        from nightshift_core.reddit.config import MAX_LISTING, check_subreddit
        from nightshift_core.reddit.records import COMMENT_SCHEMA, POST_SCHEMA, post_record, walk_comments
        from nightshift_core.warehouse import TableRef

        subreddit = check_subreddit(self.subreddit, f"{self.task_id}: subreddit")
        try:
            limit = int(self.limit)
        except (TypeError, ValueError):
            limit = 0
        if not 1 <= limit <= MAX_LISTING:
            raise ValueError(
                f"{self.task_id}: limit is {self.limit!r}; give a whole number from 1 to {MAX_LISTING}"
            )
        scraped_at = run_time(context)
        hook = RedditHook(self.reddit_conn_id)
        seen: set[str] = set()
        submissions = []
        for submission in hook.fetch_listing(subreddit, self.listing, self.time_filter, limit):
            if submission.fullname not in seen:  # a post can move between listing pages
                seen.add(submission.fullname)
                submissions.append(submission)
        posts: list[dict[str, Any]] = []
        stats = {"comments": 0, "more_left": 0}

        def comment_batches() -> Iterator[pa.RecordBatch]:
            for submission in submissions:
                forest, left = hook.fetch_comments(submission, self.replace_more_limit)
                posts.append(post_record(submission, scraped_at))
                rows = list(walk_comments(submission.fullname, forest, scraped_at, self.comment_depth))
                stats["comments"] += len(rows)
                stats["more_left"] += left
                if rows:
                    yield pa.RecordBatch.from_pylist(rows, schema=COMMENT_SCHEMA)

        job = job_key(context)
        with WarehouseHook(self.warehouse_conn_id).get_conn() as warehouse:
            staged_comments = warehouse.stage(
                job, TableRef(self.dataset, "comments"), comment_batches(), COMMENT_SCHEMA
            )
            staged_posts = warehouse.stage(
                job, TableRef(self.dataset, "posts"), [pa.RecordBatch.from_pylist(posts, schema=POST_SCHEMA)],
                POST_SCHEMA,
            )  # fmt: skip
            warehouse.publish(staged_posts, "merge", key=["fullname"])
            warehouse.publish(staged_comments, "merge", key=["fullname"])
        if stats["more_left"]:
            self.log.info("r/%s: %d 'load more' stubs left unresolved (replace_more_limit=%d)",
                          subreddit, stats["more_left"], self.replace_more_limit)  # fmt: skip
        return {"subreddit": subreddit, "posts": len(posts), "comments": stats["comments"],
                "more_left": stats["more_left"], "scraped_at": scraped_at.isoformat()}  # fmt: skip


class SentimentScoreOperator(BaseOperator):
    """Score the texts this run scraped (titles, self-text, comments, replies) with TextBlob,
    VADER and the champion model if one exists; merge into ``<dataset>.sentiment``.

    The champion is looked up in the MLflow registry (``mlflow_conn_id``, alias ``champion``) at
    run time and cached per worker process; ``mlflow_conn_id=None`` scores with the rules only.
    A text is scored again only when its words changed (edited) or the champion model changed.
    """

    def __init__(
        self,
        *,
        dataset: str = "reddit",
        batch_size: int = 2000,
        warehouse_conn_id: str = "nightshift_warehouse",
        mlflow_conn_id: str | None = "mlflow_default",
        model_name: str = "sentiment",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.batch_size = batch_size
        self.warehouse_conn_id = warehouse_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self.model_name = model_name

    def champion(self) -> Scorer | None:
        if self.mlflow_conn_id is None:
            return None
        from nightshift.hooks.mlflow import MlflowRegistryHook

        model = MlflowRegistryHook(self.mlflow_conn_id, self.model_name).load_alias("champion")
        if model is None:
            self.log.info("no %r champion in the registry yet: rules only", self.model_name)
        return model

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        import pyarrow as pa

        from nightshift.hooks.warehouse import WarehouseHook, job_key
        from nightshift_core.reddit.records import COMMENT_SCHEMA, POST_SCHEMA, SENTIMENT_SCHEMA
        from nightshift_core.sentiment.rules import score_texts
        from nightshift_core.warehouse import TableRef
        from nightshift_core.warehouse.sql import render

        scored_at = run_time(context)
        model = self.champion()
        version = f"{model.name}:{model.version}" if model is not None else None
        target = TableRef(self.dataset, "sentiment")
        stats = {"texts": 0, "scored": 0}
        with WarehouseHook(self.warehouse_conn_id).get_conn() as warehouse:
            for table, schema in (
                ("posts", POST_SCHEMA),
                ("comments", COMMENT_SCHEMA),
                ("sentiment", SENTIMENT_SCHEMA),
            ):
                warehouse.prepare_target(TableRef(self.dataset, table), warehouse.arrow_columns(schema))
            texts = warehouse.query(
                render("reddit/texts_to_score.sql", dataset=self.dataset), {"scraped_at": scored_at}
            ).to_pylist()
            stats["texts"] = len(texts)

            def batches() -> Iterator[pa.RecordBatch]:
                for start in range(0, len(texts), self.batch_size):
                    todo = []
                    for row in texts[start : start + self.batch_size]:
                        digest = hashlib.sha256(row["text"].encode("utf-8", "surrogatepass")).hexdigest()
                        if digest != row["scored_sha256"] or version != row["scored_model_version"]:
                            todo.append((row, digest))
                    if not todo:
                        continue
                    scores = score_texts([row["text"] for row, _ in todo], model)
                    stats["scored"] += len(todo)
                    yield pa.RecordBatch.from_pylist(
                        [
                            {
                                "text_id": row["text_id"],
                                "fullname": row["fullname"],
                                "subreddit": row["subreddit"],
                                "kind": row["kind"],
                                "created_utc": row["created_utc"],
                                "text_sha256": digest,
                                **score,
                                "scored_at": scored_at,
                            }
                            for (row, digest), score in zip(todo, scores, strict=True)
                        ],
                        schema=SENTIMENT_SCHEMA,
                    )

            staged = warehouse.stage(job_key(context), target, batches(), SENTIMENT_SCHEMA)
            warehouse.publish(staged, "merge", key=["text_id"])
        return {"target": str(target), **stats, "model_version": version, "scored_at": scored_at.isoformat()}
