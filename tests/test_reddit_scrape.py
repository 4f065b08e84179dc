"""The real praw client against a local server speaking Reddit's API, through the real operators
into the DuckDB warehouse: trees with "load more" and "continue this thread" stubs, deleted and
removed content, retries on 429/500, malformed answers, idempotent re-runs, edits, hostile text."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support.fake_reddit import FakeReddit
from support.ml import use_mlflow

UTC = dt.UTC
ANCHOR = dt.datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp()
END = dt.datetime(2026, 3, 2, 12, tzinfo=UTC)
LONG = "long " * 8000  # 40,000 characters
ROOT = Path(__file__).resolve().parents[1]
HOSTILE = {
    "h1": '=HYPERLINK("http://example.invalid","x")',
    "h2": "<script>alert('x')</script> &amp; <b>bold</b>",
    "h3": "emoji 😀🔥👍🏽 and a zero-width\u200bjoiner",
    "h4": LONG,
    "h5": "+cmd|' /C calc'!A0\r\n\ttabbed",
}


def _tree() -> list[dict[str, Any]]:
    """Post t3_big: 8 top-level comments (tree_limit 5 -> a "load more" stub), one 7-deep chain
    (max_depth 4 -> "continue this thread"), one comment with 7 replies (a nested stub)."""
    comments = [
        {"id": f"top{i}", "author": f"user{i}", "body": f"Top level comment {i}, great stuff!", "score": 100 - i,
         "age_hours": 5 - i * 0.1}
        for i in range(8)
    ]  # fmt: skip
    node = comments[0]
    for depth in range(1, 8):
        child = {"id": f"deep{depth}", "author": "chain", "body": f"reply at depth {depth}", "score": 5,
                 "age_hours": 4}  # fmt: skip
        node["replies"] = [child]
        node = child
    comments[1]["replies"] = [
        {"id": f"wide{i}", "author": "fan", "body": f"sibling reply {i}", "score": 50 - i, "age_hours": 3}
        for i in range(7)
    ]
    comments[2].update(author="[deleted]", body="[deleted]")
    comments[3].update(author="[deleted]", body="[removed]")
    comments[4].update(author="[deleted]", body="The account is gone but these words stay.")
    comments[5]["replies"] = [
        {"id": key, "author": "hostile", "body": text, "score": 1, "age_hours": 2}
        for key, text in HOSTILE.items()
    ]
    comments[6]["edited_age_hours"] = 1
    return comments


def snapshot() -> dict[str, Any]:
    return {
        "subreddits": {
            "testsub": [
                {"id": "big", "title": "A big thread", "selftext": "Self text, quite nice.", "author": "op",
                 "score": 900, "age_hours": 6, "comments": _tree()},
                # "edited": true with no time, as older Reddit objects carry it
                {"id": "small", "title": "Small and sad", "selftext": "", "author": "op2", "score": 50,
                 "age_hours": 30, "url": "https://example.invalid/article", "edited": True,
                 "comments": [{"id": "s1", "author": "a", "body": "This is awful.", "score": 2, "age_hours": 20,
                               "edited": True}]},
                {"id": "gone", "title": "Removed post", "selftext": "[removed]", "author": "[deleted]",
                 "score": 10, "age_hours": 40, "comments": []},
                {"id": "old", "title": "Too old for the week", "selftext": "", "author": "op3", "score": 5000,
                 "age_hours": 24 * 9, "comments": []},
            ]
        }
    }  # fmt: skip


def expected_comments(snap: dict[str, Any]) -> dict[str, tuple[str, str, int]]:
    """fullname -> (post, parent, depth), straight from the snapshot's structure."""
    out = {}

    def walk(post: str, parent: str, items: list[dict], depth: int) -> None:
        for item in items:
            out[f"t1_{item['id']}"] = (post, parent, depth)
            walk(post, f"t1_{item['id']}", item.get("replies", []), depth + 1)

    for post in snap["subreddits"]["testsub"]:
        if post["age_hours"] < 24 * 7:
            walk(f"t3_{post['id']}", f"t3_{post['id']}", post["comments"], 0)
    return out


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    use_mlflow(monkeypatch, tmp_path / "mlflow")  # an empty registry: the rule baseline becomes champion
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE",
        json.dumps(
            {"conn_type": "generic", "extra": {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")}}
        ),
    )


@pytest.fixture
def reddit(monkeypatch, warehouse):
    fake = FakeReddit(snapshot(), ANCHOR, monkeypatch)
    yield fake
    fake.stop()


def context(task_id: str, end: dt.datetime = END) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="reddit_sentiment", task_id=task_id, run_id=f"test__{end}", map_index=-1)
    return {"ti": ti, "data_interval_start": end - dt.timedelta(hours=1), "data_interval_end": end}


def scrape(end: dt.datetime = END, **kwargs: Any) -> dict[str, Any]:
    from nightshift.operators.reddit import RedditToWarehouseOperator

    args = {"subreddit": "testsub", "limit": 10, "replace_more_limit": 20, "comment_depth": 50, **kwargs}
    op = RedditToWarehouseOperator(task_id="scrape_testsub", **args)
    return op.execute(context(op.task_id, end))


def score(end: dt.datetime = END) -> dict[str, Any]:
    from nightshift.operators.reddit import SentimentScoreOperator

    op = SentimentScoreOperator(task_id="score_sentiment")
    return op.execute(context(op.task_id, end))


def rows(table: str) -> list[dict[str, Any]]:
    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift_core.warehouse import TableRef

    with WarehouseHook().get_conn() as wh:
        if not wh.table_exists(TableRef("reddit", table)):
            return []
        key = "text_id" if table == "sentiment" else "fullname"
        return wh.query(f"SELECT * FROM reddit.{table} ORDER BY {key}").to_pylist()  # noqa: S608


def test_listing_and_whole_comment_trees(reddit):
    result = scrape()
    posts = {p["fullname"]: p for p in rows("posts")}
    assert set(posts) == {"t3_big", "t3_small", "t3_gone"}  # t=week leaves the 9-day-old post out
    assert result == {"subreddit": "testsub", "posts": 3, "comments": len(expected_comments(snapshot())),
                      "more_left": 0, "scraped_at": END.isoformat()}  # fmt: skip
    got = {c["fullname"]: (c["post_fullname"], c["parent_fullname"], c["depth"]) for c in rows("comments")}
    assert got == expected_comments(snapshot())
    # the tree really arrived in pieces, as Reddit sends it
    assert reddit.app.requests(r"^/api/morechildren"), "no 'load more comments' request was made"
    assert reddit.app.requests(r"^/comments/big/_/deep"), "no 'continue this thread' request was made"
    big = posts["t3_big"]
    assert big["created_utc"] == dt.datetime.fromtimestamp(ANCHOR - 6 * 3600, UTC)
    assert big["scraped_at"] == END and big["num_comments"] == len(got) - 1  # t3_small has one
    assert posts["t3_small"]["url"] == "https://example.invalid/article"
    assert {e.user_agent.split(" PRAW")[0] for e in reddit.app.log} == {
        "test:com.example.nightshift:v0.1 (by /u/nightshift_tests)"
    }


def test_deleted_removed_and_edited(reddit):
    scrape()
    comments = {c["fullname"]: c for c in rows("comments")}
    assert (comments["t1_top2"]["author"], comments["t1_top2"]["body"], comments["t1_top2"]["status"]) == (
        None, "[deleted]", "deleted",
    )  # fmt: skip
    assert (comments["t1_top3"]["author"], comments["t1_top3"]["status"]) == (None, "removed")
    assert comments["t1_top4"]["author"] is None and comments["t1_top4"]["status"] == "visible"
    assert (comments["t1_top6"]["edited"], comments["t1_top6"]["edited_utc"]) == (
        True, dt.datetime.fromtimestamp(ANCHOR - 3600, UTC),
    )  # fmt: skip
    assert (comments["t1_top0"]["edited"], comments["t1_top0"]["edited_utc"]) == (False, None)


def test_edited_true_without_a_time_is_stored_as_edited_with_an_unknown_time(reddit):
    """Older objects say ``"edited": true``: edited, time NULL (never float(True) = 1970-01-01)."""
    assert reddit.app.snapshot.nodes["t3_small"]["edited"] is True  # the wire really carries a boolean
    scrape()
    post = next(p for p in rows("posts") if p["fullname"] == "t3_small")
    comment = next(c for c in rows("comments") if c["fullname"] == "t1_s1")
    assert (post["edited"], post["edited_utc"]) == (True, None)
    assert (comment["edited"], comment["edited_utc"]) == (True, None)
    big = next(p for p in rows("posts") if p["fullname"] == "t3_big")
    assert (big["edited"], big["edited_utc"]) == (False, None)
    gone = next(p for p in rows("posts") if p["fullname"] == "t3_gone")
    assert (gone["author"], gone["selftext"], gone["status"]) == (None, "[removed]", "removed")


def test_hostile_text_is_stored_verbatim(reddit):
    scrape()
    comments = {c["fullname"]: c["body"] for c in rows("comments")}
    for key, text in HOSTILE.items():
        assert comments[f"t1_{key}"] == text
    assert len(comments["t1_h4"]) == 40_000


def test_same_window_twice_gives_the_same_rows(reddit):
    scrape()
    score()
    first = {t: rows(t) for t in ("posts", "comments", "sentiment")}
    scrape()
    assert score()["scored"] == 0  # nothing new or changed
    assert {t: rows(t) for t in ("posts", "comments", "sentiment")} == first
    assert len({c["fullname"] for c in first["comments"]}) == len(first["comments"])


def test_an_edit_updates_the_row_and_its_score(reddit):
    scrape()
    score()
    before = {s["text_id"]: s for s in rows("sentiment")}
    later = END + dt.timedelta(hours=1)
    reddit.snapshot.edit("t1_top7", "Edit: actually this is terrible and I hate it.", ANCHOR + 1800)
    scrape(later)
    comments = {c["fullname"]: c for c in rows("comments")}
    assert comments["t1_top7"]["body"] == "Edit: actually this is terrible and I hate it."
    assert comments["t1_top7"]["edited_utc"] == dt.datetime.fromtimestamp(ANCHOR + 1800, UTC)
    assert comments["t1_top7"]["scraped_at"] == later
    assert len(comments) == len(expected_comments(snapshot()))
    result = score(later)
    assert result["scored"] == 1, result  # only the edited text is scored again
    after = {s["text_id"]: s for s in rows("sentiment")}
    assert set(after) == set(before)
    assert before["t1_top7:body"]["vader_label"] == "positive"
    assert after["t1_top7:body"]["vader_label"] == "negative"
    assert after["t1_top7:body"]["scored_at"] == later
    assert after["t1_top0:body"] == before["t1_top0:body"]


def test_sentiment_rows_and_daily_summary(reddit):
    from nightshift.operators.warehouse_ops import WarehouseQueryToTableOperator

    scrape()
    score()
    scored = {s["text_id"]: s for s in rows("sentiment")}
    # titles, self-text, top-level comments and replies; never "[deleted]"/"[removed]"
    assert scored["t3_big:title"]["kind"] == "title"
    assert scored["t3_big:selftext"]["kind"] == "selftext"
    assert scored["t1_top0:body"]["kind"] == "comment" and scored["t1_deep1:body"]["kind"] == "reply"
    assert "t1_top2:body" not in scored and "t1_top3:body" not in scored and "t3_gone:selftext" not in scored
    assert "t3_small:selftext" not in scored  # link post without text
    assert scored["t1_s1:body"]["textblob_label"] == "negative"
    # A fresh registry: the rule baseline (VADER compound +-0.05) is the champion, version 1.
    from nightshift_core.ml.labels import gold_label

    assert {s["model_version"] for s in scored.values()} == {"sentiment:1"}
    assert all(s["model_label"] == gold_label(s["vader_compound"]) for s in scored.values())
    assert all(s["model_score"] == s["vader_compound"] for s in scored.values())
    op = WarehouseQueryToTableOperator(task_id="daily_sentiment", sql="reddit/daily_sentiment.sql",
                                       target="reddit.daily_sentiment", shape={"dataset": "reddit"})  # fmt: skip
    op.execute(context(op.task_id))
    from nightshift.hooks.warehouse import WarehouseHook

    with WarehouseHook().get_conn() as wh:
        daily = wh.query("SELECT * FROM reddit.daily_sentiment").to_pylist()
    assert {d["scorer"] for d in daily} == {"textblob", "vader", "model"}
    for scorer in ("textblob", "vader", "model"):
        mine = [d for d in daily if d["scorer"] == scorer]
        assert sum(d["texts"] for d in mine) == len(scored)
        assert all(d["positive"] + d["negative"] + d["neutral"] == d["texts"] for d in mine)
        labels = [s[f"{scorer}_label"] for s in scored.values()]
        assert sum(d["positive"] for d in mine) == labels.count("positive")
    small_day = [d for d in daily if d["day"] == dt.date(2026, 3, 1) and d["scorer"] == "vader"]
    assert small_day and small_day[0]["subreddit"] == "testsub"


def test_429_with_retry_after_is_waited_out(reddit):
    reddit.fault(
        r"^/r/testsub/top", 429, headers={"Retry-After": "1"}, body='{"message": "Too Many Requests"}'
    )
    scrape()
    calls = reddit.app.requests(r"^/r/testsub/top")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1.0
    assert len(rows("posts")) == 3


def test_500_is_retried_then_succeeds(reddit):
    reddit.fault(r"^/comments/big", 500, times=2)
    scrape()
    assert [c.status for c in reddit.app.requests(r"^/comments/big/?$")] == [500, 500, 200]
    assert len(rows("comments")) == len(expected_comments(snapshot()))


def test_persistent_500_fails_after_bounded_tries_and_writes_nothing(reddit):
    from nightshift.hooks.reddit import RedditApiError

    reddit.fault(r"^/comments/small", 503, times=100)
    started = time.monotonic()
    with pytest.raises(RedditApiError, match=r"HTTP 503 \(unavailable\) on all 3 tries; nothing was written"):
        scrape()
    assert time.monotonic() - started < 10
    assert len(reddit.app.requests(r"^/comments/small")) == 3
    assert rows("posts") == [] and rows("comments") == []


def test_retry_after_longer_than_allowed_fails_fast(reddit):
    from nightshift.hooks.reddit import RedditApiError

    reddit.connect(retry_max_wait_seconds=5)
    reddit.fault(r"^/r/testsub/top", 429, headers={"Retry-After": "3600"})
    with pytest.raises(
        RedditApiError, match=r"wait 3600s \(Retry-After\), more than retry_max_wait_seconds=5"
    ):
        scrape()
    assert rows("posts") == []


def test_malformed_json_is_a_clear_error_and_nothing_is_written(reddit):
    from nightshift.hooks.reddit import RedditApiError

    scrape()
    before = {t: rows(t) for t in ("posts", "comments")}
    reddit.snapshot.edit("t1_top7", "changed text that must not land", ANCHOR + 60)
    reddit.fault(
        r"^/comments/small", 200, body="<html>upstream proxy error</html>{", content_type="text/html"
    )
    with pytest.raises(
        RedditApiError, match=r"comments of t3_small: .* not JSON \('<html>upstream proxy error"
    ):
        scrape(END + dt.timedelta(hours=1))
    # the earlier post's new data (the edit) is not published either
    assert {t: rows(t) for t in ("posts", "comments")} == before


def test_generic_user_agent_is_refused_before_any_request(reddit):
    from nightshift.hooks.reddit import RedditConfigError

    reddit.connect(user_agent="python-requests/2.32")
    from airflow.sdk.exceptions import AirflowFailException

    # a configuration error cannot heal: one try, no retries
    with pytest.raises(
        AirflowFailException, match=r"<platform>:<app id>:<version> \(by /u/<reddit username>\)"
    ) as err:
        scrape()
    assert isinstance(err.value.__cause__, RedditConfigError)
    assert reddit.app.log == []


def test_wrong_secret_names_the_connection(reddit):
    from nightshift.hooks.reddit import RedditConfigError

    reddit.connect(secret="not-the-secret")
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(
        AirflowFailException, match=r"refused the credentials of connection 'reddit_default'"
    ) as err:
        scrape()
    assert isinstance(err.value.__cause__, RedditConfigError)


def test_unknown_subreddit_is_a_clear_error(reddit):
    from nightshift.hooks.reddit import RedditApiError

    with pytest.raises(RedditApiError, match=r"r/nosuchsub/top: not found .* include/config/reddit.yaml"):
        scrape(subreddit="nosuchsub")


def test_replace_more_is_bounded(reddit):
    result = scrape(replace_more_limit=0)
    assert result["more_left"] > 0
    assert not reddit.app.requests(r"^/api/morechildren")
    got = {c["fullname"] for c in rows("comments")}
    assert "t1_top7" not in got and "t1_top0" in got  # past tree_limit: left as a stub


def test_digest_report_over_scraped_text_is_safe(reddit, tmp_path, monkeypatch):
    """The Reddit digest report: hostile text stays text in Excel and is escaped in the e-mail."""
    import openpyxl

    from nightshift.operators.reports import WarehouseToReportOperator
    from nightshift.operators.warehouse_ops import WarehouseQueryToTableOperator

    scrape()
    score()
    op = WarehouseQueryToTableOperator(task_id="daily_sentiment", sql="reddit/daily_sentiment.sql",
                                       target="reddit.daily_sentiment", shape={"dataset": "reddit"})  # fmt: skip
    op.execute(context(op.task_id))
    monkeypatch.setenv("NIGHTSHIFT_REPORTS_DIR", str(tmp_path / "reports"))
    from nightshift.hooks.warehouse import WarehouseHook

    with WarehouseHook().get_conn() as wh:
        report_date = wh.query("SELECT MAX(day) AS day FROM reddit.daily_sentiment").to_pylist()[0]["day"]
    config = ROOT / "include/config/reports/reddit_digest.yaml"
    build = WarehouseToReportOperator(
        task_id="build", config_path=str(config), report_date=report_date.isoformat()
    )
    result = build.execute(context("build"))
    assert result["rows"]["by_subreddit"] >= 2 and result["rows"]["most_negative"] >= 1
    workbook = openpyxl.load_workbook(result["workbook"])
    cells = [c for ws in workbook.worksheets for row in ws.iter_rows(min_row=4) for c in row]
    assert not [c.value for c in cells if c.data_type == "f" and not str(c.value).startswith("=SUM(")]
    html = Path(result["summary_html"]).read_text()
    assert "<script>" not in html


def test_the_client_secret_is_never_logged(reddit, caplog, capsys):
    import logging

    from support.fake_reddit import CLIENT_SECRET

    caplog.set_level(logging.DEBUG)
    reddit.fault(r"^/r/testsub/top", 500)  # a retried request logs its URL too
    scrape()
    captured = capsys.readouterr()  # task and hook logs go through structlog to stdout
    assert "HTTP 500, try 2 of" in caplog.text + captured.out, "the retry's log line is really captured here"
    assert CLIENT_SECRET not in caplog.text + captured.out + captured.err
