"""Report charts, the late-sync line and the e-mail's lead with plain data (and one DuckDB file).

The Reddit digest's chart must draw exactly the daily shares of ``reddit.daily_sentiment``; hostile
text in the data stays text in the e-mail; the YAML blocks fail naming the key and the fix.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import random
import re
from pathlib import Path

import pytest

from nightshift_core.reports.charts import ChartDef, render
from nightshift_core.reports.config import ReportConfigError, load
from nightshift_core.reports.headline import FreshnessSpec, HeadlineSpec, Kpi, compute, late_sync
from nightshift_core.reports.summary import Lead, Picture, summary_html, summary_text

ROOT = Path(__file__).resolve().parents[1]
DIGEST = load(ROOT / "include/config/reports/reddit_digest.yaml")
DAY = dt.date(2026, 12, 4)
HOSTILE = '<img src="https://evil.test/x.png" onerror="alert(1)">$\\frac{1}{2}$'


@pytest.fixture
def sentiment_warehouse(tmp_path, monkeypatch):
    """reddit.daily_sentiment with 20 days x 3 subreddits (one named with markup) x 3 scorers."""
    import duckdb

    path = tmp_path / "wh.duckdb"
    rng = random.Random(5)
    rows = []
    for subreddit in ("python", "dataengineering", HOSTILE):
        for offset in range(20):
            if offset == 3:
                continue  # a day without texts in every subreddit
            for scorer in ("vader", "textblob", "model"):
                positive, negative, neutral = rng.randint(0, 9), rng.randint(0, 9), rng.randint(1, 9)
                rows.append((subreddit, DAY - dt.timedelta(days=offset), scorer, None,
                             positive + negative + neutral, positive, negative, neutral, 0.1, 0.1))  # fmt: skip
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA reddit")
        con.execute(
            "CREATE TABLE reddit.daily_sentiment (subreddit VARCHAR, day DATE, scorer VARCHAR, model_version "
            "VARCHAR, texts BIGINT, positive BIGINT, negative BIGINT, neutral BIGINT, mean_vader_compound DOUBLE, "
            "mean_textblob_polarity DOUBLE)"
        )
        con.executemany("INSERT INTO reddit.daily_sentiment VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE",
        json.dumps({"conn_type": "generic", "extra": {"engine": "duckdb", "path": str(path)}}),
    )
    return rows


def test_the_reddit_chart_draws_the_daily_shares_of_daily_sentiment(sentiment_warehouse, tmp_path):
    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift.operators.reports import build_lead

    with WarehouseHook().get_conn() as warehouse:
        lead, charts = build_lead(DIGEST, warehouse, DAY, tmp_path)
    (chart,) = charts
    expected = sorted(
        (subreddit, day, {"positive": p / texts, "neutral": n0 / texts, "negative": n / texts})
        for subreddit, day, scorer, _, texts, p, n, n0, _, _ in sentiment_warehouse
        if scorer == "vader" and DAY - dt.timedelta(days=13) <= day <= DAY
    )
    drawn = sorted(chart.data)
    assert [(s, d) for s, d, _ in drawn] == [(s, d) for s, d, _ in expected]
    for (_, _, got), (_, _, want) in zip(drawn, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-12)
    assert chart.path.read_bytes().startswith(b"\x89PNG") and chart.height > chart.width / 2  # 3 panels
    assert lead.headline is None and lead.late == ""
    # The subreddit's markup is text in the alt attribute, never a tag or a remote image.
    html = summary_html("Digest", "", [], lead=lead)
    assert html.count("<img ") == 1 and 'evil.test/x.png" onerror' not in html
    assert 'alt="Sentiment per subreddit' in html and "&lt;img src" in html, re.findall(r"<img [^>]*>", html)


def test_a_line_chart_marks_the_report_date_and_says_so_in_its_alt_text():
    chart = ChartDef("revenue", "Revenue", "line", "x.sql", "day", ("revenue",), format="money")
    rows = [
        {"day": DAY - dt.timedelta(days=i), "revenue": decimal.Decimal(i * 10)} for i in range(29, -1, -1)
    ]
    drawn = render(chart, rows, DAY, "USD")
    assert drawn.size[0] == 720 and drawn.png.startswith(b"\x89PNG")
    assert drawn.alt == (
        f"Revenue, revenue per day from {DAY - dt.timedelta(days=29)} to {DAY}, the report date marked. "
        f"{DAY}: 0.00 USD. Highest 290.00 USD on {DAY - dt.timedelta(days=29)}."
    )
    assert render(chart, [], DAY).alt == "Revenue: no data for this period."
    with pytest.raises(
        ValueError, match=r"chart 'revenue': row 1 of include/sql/x.sql has no column\(s\) \['revenue'\]"
    ):
        render(chart, [{"day": DAY}], DAY)


SPEC = HeadlineSpec(
    "x.sql", "day", (Kpi("Revenue", ("revenue",), "money"), Kpi("AOV", ("revenue", "orders"), "money")), "orders",
    "no orders",
)  # fmt: skip


@pytest.mark.parametrize(("hours_old", "late"), [(29, False), (30, False), (31, True), (24 * 9, True)])
def test_a_sync_is_late_when_its_newest_row_is_older_than_allowed_before_the_days_end(hours_old, late):
    end = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    said = late_sync(DAY, end - dt.timedelta(hours=hours_old), FreshnessSpec("x.sql", 30))
    assert bool(said) is late
    if late:
        assert (
            said.startswith("Late sync: the newest synced row is from ")
            and "(the schedule allows 30)" in said
        )
    assert late_sync(DAY, None, None) == ""


def test_the_lead_comes_first_in_both_parts_and_hostile_labels_stay_text():
    rows = [{"day": DAY - dt.timedelta(days=i), "orders": 2, "revenue": 50} for i in range(1, 62)]
    headline = compute(SPEC, rows, DAY, freshest=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                       freshness=FreshnessSpec("x.sql", 30))  # fmt: skip
    assert headline.no_data == f"no orders on {DAY} — last order {DAY - dt.timedelta(days=1)}"
    picture = Picture("revenue.daily.2026-12-04@nightshift", "Revenue", HOSTILE)
    lead = Lead(headline, headline.late, [picture], "USD")
    html = summary_html("T", "s", [("Section", ["a"], [(1,)])], lead=lead, currency="USD")
    text = summary_text("T", "s", [("Section", ["a"], [(1,)])], lead=lead, currency="USD")
    body = html[html.index("<body") :]
    assert (
        body.index("Late sync") < body.index("No orders on") < body.index("Revenue") < body.index("Section")
    )
    assert (
        text.index("!! Late sync")
        < text.index("No orders on")
        < text.index("Revenue: 0.00 USD")
        < text.index("Section")
    )
    assert "Revenue: 0.00 USD  (−100.0% (−50.00 USD) vs previous day" in text
    assert "AOV: –  (n/a vs previous day" in text  # no orders: no average, no change
    assert re.findall(r"<img [^>]*>", html) == [
        '<img src="cid:revenue.daily.2026-12-04@nightshift" alt="&lt;img src=&quot;https://evil.test/x.png&quot; '
        'onerror=&quot;alert(1)&quot;&gt;$\\frac{1}{2}$" width="720" height="320" '
        'style="display:block;border:0;max-width:100%;height:auto;margin:4px 0 12px 0;">'
    ]
    assert "<style" not in html and "<script" not in html and "class=" not in html


GOOD = """
report_id: r1
title: A report
currency: USD
sections:
  - {name: customers, sql: reports/top_customers.sql, money: [sales], limit: 20}
headline:
  sql: reports/headline_daily_orders.sql
  date: order_date
  empty_when: orders
  kpis:
    - {label: Revenue, sum: revenue, format: money}
charts:
  - {name: revenue, title: Revenue, kind: line, sql: reports/revenue_last_30_days.sql, x: order_date, y: revenue}
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("{label: Revenue, sum: revenue, format: money}", None),
        (
            "{label: Revenue, sum: revenue, ratio: [a, b]}",
            "headline.kpis[0] needs exactly one of sum: <column> or ratio",
        ),
        (
            "{label: Revenue, ratio: [revenue]}",
            "headline.kpis[0].ratio must be two columns [numerator, denominator]",
        ),
        (
            "{label: Revenue, sum: revenue, format: date}",
            "headline.kpis[0].format is 'date'; use count, money or share",
        ),
        ("{label: Revenue, sum: 'x; DROP TABLE y'}", "headline.kpis[0].sum: "),
        ("{label: Revenue, sum: revenue, colour: red}", "unknown key(s) ['colour'] in headline.kpis[0]"),
    ],
)
def test_a_bad_headline_fails_naming_the_file_the_key_and_the_fix(tmp_path, change, message):
    path = tmp_path / "r1.yaml"
    path.write_text(GOOD.replace("{label: Revenue, sum: revenue, format: money}", change))
    if message is None:
        assert load(path).headline.kpis[0].columns == ("revenue",)
        return
    with pytest.raises(ReportConfigError) as failed:
        load(path)
    assert "r1.yaml" in str(failed.value) and message in str(failed.value), str(failed.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("kind: line", "kind: pie", "charts[0] (revenue).kind is 'pie'; use one of line, bar, shares"),
        (
            "kind: line",
            "kind: shares",
            "facet (one panel per value) is required for kind shares and only there",
        ),
        ("reports/revenue_last_30_days.sql", "../../etc/passwd", "which leads out of include/sql"),
        ("name: revenue", "name: Revenue!", "charts[0].name 'Revenue!' must be unique"),
        ("currency: USD\n", "", "'Revenue' is money but the report has no currency"),
        (
            "y: revenue}",
            "y: revenue, days: 1}",
            "charts[0] (revenue).days is 1; a line or shares chart may span 2 to 366",
        ),
    ],
)
def test_a_bad_chart_fails_naming_the_file_the_key_and_the_fix(tmp_path, old, new, message):
    path = tmp_path / "r1.yaml"
    path.write_text(GOOD.replace(old, new).replace("money: [sales]", "counts: [sales]"))
    with pytest.raises(ReportConfigError) as failed:
        load(path)
    assert message in str(failed.value), str(failed.value)


def test_workbook_sheets_print_landscape_one_page_wide_with_the_header_repeated_and_the_chart_inside(
    tmp_path,
):
    import openpyxl
    import pyarrow as pa
    from openpyxl.utils.cell import range_boundaries

    from nightshift_core.reports.excel import build_workbook
    from nightshift_core.reports.tables import ChartSpec, ReportTable

    rows = pa.table({"territory": [f"T{i}" for i in range(40)], "sales": [float(i) for i in range(40)]})
    table = ReportTable.from_arrow(
        "by_territory", "Sales", rows, totals=("sales",), chart=ChartSpec("territory", ("sales",))
    )
    path = build_workbook(tmp_path / "w.xlsx", title="T", subtitle="s", tables=[table])
    sheet = openpyxl.load_workbook(path)["by_territory"]
    setup = sheet.page_setup
    assert (setup.orientation, setup.fitToWidth, setup.fitToHeight) == ("landscape", 1, 0)
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert sheet.print_title_rows == "$3:$3"  # the header row on every printed page
    (chart,) = sheet._charts
    min_col, min_row, max_col, max_row = range_boundaries(sheet.print_area.split("!")[-1].replace("$", ""))
    anchor = chart.anchor._from
    assert min_col <= anchor.col + 1 <= max_col and min_row <= anchor.row + 1 <= max_row
    assert max_col >= anchor.col + 1 + 8 and max_row >= 44  # the chart's width and the 40 rows + total
