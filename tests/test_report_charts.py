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
SCRAPED = dt.datetime(2026, 12, 4, 22, tzinfo=dt.UTC)  # the newest scrape: 2 hours before DAY ends


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
                texts = positive + negative + neutral
                compound = round((positive - negative) / texts, 4)  # a mean compound in -1..1
                rows.append((subreddit, DAY - dt.timedelta(days=offset), scorer, None,
                             texts, positive, negative, neutral, compound, 0.1))  # fmt: skip
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA reddit")
        con.execute(
            "CREATE TABLE reddit.daily_sentiment (subreddit VARCHAR, day DATE, scorer VARCHAR, model_version "
            "VARCHAR, texts BIGINT, positive BIGINT, negative BIGINT, neutral BIGINT, mean_vader_compound DOUBLE, "
            "mean_textblob_polarity DOUBLE)"
        )
        con.executemany("INSERT INTO reddit.daily_sentiment VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        # What the digest's other queries read: the newest scrape and one hostile post title.
        con.execute("CREATE TABLE reddit.posts (fullname VARCHAR, title VARCHAR, scraped_at TIMESTAMPTZ)")
        con.execute("CREATE TABLE reddit.comments (fullname VARCHAR, body VARCHAR, scraped_at TIMESTAMPTZ)")
        con.execute(
            "CREATE TABLE reddit.sentiment (text_id VARCHAR, fullname VARCHAR, subreddit VARCHAR, kind VARCHAR, "
            "created_utc TIMESTAMPTZ, vader_compound DOUBLE, vader_label VARCHAR, textblob_label VARCHAR)"
        )
        con.execute("INSERT INTO reddit.posts VALUES ('t3_a', ?, ?)", (HOSTILE, SCRAPED))
        con.execute(
            "INSERT INTO reddit.sentiment VALUES ('x1', 't3_a', 'python', 'title', ?, -0.9, 'negative', 'negative')",
            (SCRAPED - dt.timedelta(hours=5),),
        )
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
    assert [line.kpi.label for line in lead.headline.lines] == ["Texts", "Positive", "Negative"]
    assert lead.late == ""
    # The subreddit's markup is text in the alt attribute, never a tag or a remote image.
    html = summary_html("Digest", "", [], lead=lead)
    assert html.count("<img ") == 1 and 'evil.test/x.png" onerror' not in html
    assert 'alt="Sentiment per subreddit' in html and "&lt;img src" in html, re.findall(r"<img [^>]*>", html)


def _vader_days(rows) -> dict[dt.date, dict[str, int]]:
    """The fixture's VADER counts per day over every subreddit, summed here (not by the report's SQL)."""
    days: dict[dt.date, dict[str, int]] = {}
    for _, day, scorer, _, texts, positive, negative, _, _, _ in rows:
        if scorer == "vader":
            total = days.setdefault(day, {"texts": 0, "positive": 0, "negative": 0})
            total["texts"] += texts
            total["positive"] += positive
            total["negative"] += negative
    return days


def test_the_digest_headline_counts_texts_and_their_shares_against_the_days_before(
    sentiment_warehouse, tmp_path
):
    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift.operators.reports import build_lead

    with WarehouseHook().get_conn() as warehouse:
        lead, _ = build_lead(DIGEST, warehouse, DAY, tmp_path)
    days = _vader_days(sentiment_warehouse)
    one = dt.timedelta(days=1)

    def over(first: dt.date, last: dt.date) -> dict[str, int]:
        picked = [days.get(first + i * one, {}) for i in range((last - first).days + 1)]
        return {k: sum(d.get(k, 0) for d in picked) for k in ("texts", "positive", "negative")}

    def kpis(total: dict[str, int], per_day: int = 1) -> dict[str, decimal.Decimal | None]:
        texts = total["texts"]
        return {
            "Texts": decimal.Decimal(texts) / per_day,
            "Positive": decimal.Decimal(total["positive"]) / texts if texts else None,
            "Negative": decimal.Decimal(total["negative"]) / texts if texts else None,
        }

    want = {
        "value": kpis(over(DAY, DAY)),
        "previous day": kpis(over(DAY - one, DAY - one)),
        "same weekday last week": kpis(over(DAY - 7 * one, DAY - 7 * one)),
        "7-day average": kpis(over(DAY - 7 * one, DAY - one), per_day=7),
        "month to date": kpis(over(DAY.replace(day=1), DAY)),
        "previous month": kpis(over(dt.date(2026, 11, 1), dt.date(2026, 11, 4))),
    }
    assert want["value"]["Texts"] > 0 and want["previous month"]["Positive"] is None  # the fixture's days
    for line in lead.headline.lines:
        label = line.kpi.label
        got = {
            "value": line.value,
            **{c.against: c.base for c in line.changes},
            "month to date": line.month_to_date.value,
            "previous month": line.month_to_date.base,
        }
        assert got == pytest.approx({k: v[label] for k, v in want.items()}), label
    # Counts as integers, shares as percentages, share changes in points: in both parts of the e-mail.
    text = summary_text("Digest", "", [], lead=lead)
    texts = want["value"]["Texts"]
    share = want["value"]["Positive"] * 100
    assert f"Texts: {texts:,.0f}  (" in text and f"Positive: {share:.1f}%  (" in text, text
    points = (want["value"]["Positive"] - want["previous day"]["Positive"]) * 100
    assert f"{'+' if points > 0 else '−'}{abs(points):.1f} pts vs previous day" in text, text
    assert f"{texts:,.0f}" in summary_html("Digest", "", [], lead=lead)


def test_the_digest_says_when_a_day_has_no_texts_and_when_the_scrape_is_late(sentiment_warehouse, tmp_path):
    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift.operators.reports import build_lead

    empty = DAY - dt.timedelta(days=3)  # the fixture's day without texts
    with WarehouseHook().get_conn() as warehouse:
        quiet, _ = build_lead(DIGEST, warehouse, empty, tmp_path)
        timely, _ = build_lead(DIGEST, warehouse, DAY, tmp_path)
        late, _ = build_lead(DIGEST, warehouse, DAY + dt.timedelta(days=1), tmp_path)
    assert quiet.headline.no_data == f"no texts on {empty} — last text {empty - dt.timedelta(days=1)}"
    assert timely.late == "" and not timely.headline.no_data
    assert late.late == (
        f"Late sync: the newest synced row is from {SCRAPED:%Y-%m-%d %H:%M} UTC, 26 hours before the end of "
        f"{DAY + dt.timedelta(days=1)} (the schedule allows 6); later changes at the source are missing from "
        "this report."
    )
    assert late.headline.no_data == f"no texts on {DAY + dt.timedelta(days=1)} — last text {DAY}"


def test_the_digest_email_shows_counts_as_integers(sentiment_warehouse, tmp_path, monkeypatch):
    from test_reports import context

    from nightshift.operators.reports import WarehouseToReportOperator

    monkeypatch.setenv("NIGHTSHIFT_REPORTS_DIR", str(tmp_path / "reports"))
    built = WarehouseToReportOperator(
        task_id="build", config_path=str(DIGEST.path), report_date=DAY.isoformat()
    ).execute(context("build", dt.datetime(2026, 12, 5, 6, tzinfo=dt.UTC)))
    text = Path(built["summary_text"]).read_text()
    week = [r for r in sentiment_warehouse if r[0] == "python" and DAY - dt.timedelta(days=6) <= r[1] <= DAY]
    for scorer in ("vader", "textblob", "model"):
        counts = [sum(r[i] for r in week if r[2] == scorer) for i in (4, 5, 6, 7)]  # texts, +, -, neutral
        (line,) = [line for line in text.splitlines() if re.match(rf"\s*python\s+{scorer}\s", line)]
        assert line.split()[2:6] == [f"{n:,}" for n in counts], line


def test_the_digest_shows_the_mean_vader_compound_with_three_decimals_everywhere(
    sentiment_warehouse, tmp_path, monkeypatch
):
    """A score, declared in the YAML: 3 decimals (as the query rounds) in both e-mail parts and Excel."""
    import openpyxl
    from test_reports import context

    from nightshift.operators.reports import WarehouseToReportOperator, formats_of

    monkeypatch.setenv("NIGHTSHIFT_REPORTS_DIR", str(tmp_path / "reports"))
    built = WarehouseToReportOperator(
        task_id="build", config_path=str(DIGEST.path), report_date=DAY.isoformat()
    ).execute(context("build", dt.datetime(2026, 12, 5, 6, tzinfo=dt.UTC)))
    text, html = Path(built["summary_text"]).read_text(), Path(built["summary_html"]).read_text()
    week = [r for r in sentiment_warehouse if r[0] == "python" and DAY - dt.timedelta(days=6) <= r[1] <= DAY]
    sheet = openpyxl.load_workbook(built["workbook"])["by_subreddit"]
    header = [c.value for c in sheet[3]]
    for scorer in ("vader", "textblob", "model"):
        rows = [r for r in week if r[2] == scorer]
        mean = sum(r[8] * r[4] for r in rows) / sum(r[4] for r in rows)
        said = f"{decimal.Decimal(str(round(mean, 3))):.3f}"
        (line,) = [line for line in text.splitlines() if re.match(rf"\s*python\s+{scorer}\s", line)]
        assert line.split()[6] == said, (line, mean)
        assert re.search(
            rf">python</td><td[^>]*>{scorer}</td>(<td[^>]*>[^<]*</td>){{4}}<td[^>]*>{said}</td>", html
        )
    cell = next(row for row in sheet.iter_rows(min_row=4) if row[0].value == "python")[
        header.index("mean_vader_compound")
    ]
    assert cell.number_format == "0.000"
    import pyarrow.parquet as pq

    section = pq.read_table(Path(built["folder"]) / "sections" / "by_subreddit.parquet")
    assert formats_of(section)[0]["mean_vader_compound"] == "score"  # what the Sheets task formats by


def test_the_digest_email_renders_in_chromium_with_its_chart_and_the_headline_in_both_parts(
    sentiment_warehouse, tmp_path, monkeypatch
):
    from test_report_headline import built_message, check_screenshot, email_parts, screenshot

    monkeypatch.setenv("NIGHTSHIFT_REPORTS_DIR", str(tmp_path / "reports"))
    _, message = built_message(DIGEST, DAY, monkeypatch)
    html, text, images = email_parts(message)
    day = _vader_days(sentiment_warehouse)[DAY]
    for said in (f"{day['texts']:,}", f"{100 * day['positive'] / day['texts']:.1f}%",
                 f"{100 * day['negative'] / day['texts']:.1f}%"):  # fmt: skip
        assert said in html and said in text, said
    # A share's changes are points in the HTML too, never a percent of a percent.
    assert html.count(" pts") >= 6 and text.count(" pts") >= 6, re.findall(r"[^>]* pts", html)
    loaded, shot, wide = screenshot(html, images, tmp_path)
    # One picture, the chart: the subreddit named like an <img> tag stayed text (alt and table cells).
    assert len(loaded) == len(images) == 1
    check_screenshot(loaded, shot, wide)


def test_the_documented_kpi_and_chart_example_works_on_the_digest(sentiment_warehouse, tmp_path):
    """The reports page's "Adding a KPI and a chart" (README links it), followed to the letter."""
    import yaml

    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift.operators.reports import build_lead

    assert "(docs/reports.md#adding-a-kpi-and-a-chart)" in (ROOT / "README.md").read_text()
    page = (ROOT / "docs/reports.md").read_text()
    section = page[page.index("## Adding a KPI and a chart") :]
    example = yaml.safe_load(
        section[section.index("```yaml") + 7 : section.index("```", section.index("```yaml") + 7)]
    )
    raw = yaml.safe_load(DIGEST.path.read_text())
    raw["headline"]["kpis"] += example["headline"]["kpis"]
    raw["charts"] += example["charts"]
    (tmp_path / "reddit_digest.yaml").write_text(yaml.safe_dump(raw))
    config = load(tmp_path / "reddit_digest.yaml")
    with WarehouseHook().get_conn() as warehouse:
        lead, charts = build_lead(config, warehouse, DAY, tmp_path)
    vader = [r for r in sentiment_warehouse if r[2] == "vader"]
    per_day: dict[dt.date, dict[str, float]] = {}
    for _, day, _, _, _, positive, negative, neutral, _, _ in vader:
        counts = per_day.setdefault(day, {"positive": 0.0, "neutral": 0.0, "negative": 0.0})
        counts["positive"] += positive
        counts["neutral"] += neutral
        counts["negative"] += negative
    today = [r for r in vader if r[1] == DAY]
    neutral = [line for line in lead.headline.lines if line.kpi.label == "Neutral"]
    assert [line.kpi.label for line in lead.headline.lines][-1] == "Neutral"
    assert float(neutral[0].value) == pytest.approx(sum(r[7] for r in today) / sum(r[4] for r in today))
    assert "Neutral: " in summary_text("Digest", "", [], lead=lead)
    chart = {c.chart.name: c for c in charts}["texts_per_day"]
    assert [(x, v) for _, x, v in chart.data] == sorted(per_day.items())
    assert chart.path.read_bytes().startswith(b"\x89PNG") and chart.content_id in {
        p.content_id for p in lead.pictures
    }
    counts = per_day[DAY]
    assert chart.alt.startswith(
        "Texts per label and day (VADER, last 30 days), positive, neutral and negative per day from "
        f"{min(per_day)} to {DAY}, the report date marked. {DAY}: positive {counts['positive']:.0f}, "
        f"neutral {counts['neutral']:.0f}, negative {counts['negative']:.0f}. Highest: positive "
    ), chart.alt


def test_a_line_chart_of_several_columns_keeps_the_days_it_spans_and_names_each_column():
    chart = ChartDef(
        "texts", "Texts", "line", "x.sql", "day", ("positive", "neutral"), format="count", days=5
    )
    rows = [{"day": DAY - dt.timedelta(days=i), "positive": i, "neutral": 10 - i} for i in range(9, -1, -1)]
    drawn = render(chart, rows, DAY)
    assert [x for _, x, _ in drawn.data] == [DAY - dt.timedelta(days=i) for i in range(4, -1, -1)]
    assert drawn.alt == (
        f"Texts, positive and neutral per day from {DAY - dt.timedelta(days=4)} to {DAY}, the report date "
        f"marked. {DAY}: positive 0, neutral 10. Highest: positive 4 on {DAY - dt.timedelta(days=4)}, "
        f"neutral 10 on {DAY}."
    )


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


@pytest.mark.parametrize("last", [0, 3_000, 45_000, 79_000, 90_000, 1_234_567.89])
def test_a_line_charts_report_date_value_stays_in_the_plot_apart_from_the_date_label(last):
    """Wherever the report date's value falls (the top, the middle, zero), its label stays inside the
    plot and off the date label above it, and the date label stays in the picture."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from nightshift_core.reports import charts

    chart = ChartDef("revenue", "Revenue", "line", "x.sql", "day", ("revenue",), format="money", days=30)
    rows = [{"day": DAY - dt.timedelta(days=i), "revenue": decimal.Decimal(30_000 + i * 7_919 % 50_000)}
            for i in range(29, 0, -1)] + [{"day": DAY, "revenue": decimal.Decimal(last)}]  # fmt: skip
    fig = Figure(figsize=(charts.WIDTH_INCHES, 3.0), dpi=charts.DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    charts._line(ax, chart, charts._data(chart, rows), DAY, "USD")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (date,) = [t.get_window_extent(renderer) for t in ax.texts if t.get_text().strip() == f"{DAY:%d %b}"]
    (value,) = [t.get_window_extent(renderer) for t in ax.texts if t.get_text().endswith(" USD")]
    plot = ax.get_window_extent(renderer)
    assert not value.overlaps(date), (value, date)
    assert plot.x0 <= value.x0 and value.x1 <= plot.x1 and plot.y0 <= value.y0 and value.y1 <= plot.y1, (
        value,
        plot,
    )
    assert date.y0 >= plot.y1 and 0 <= date.x0 and date.x1 <= fig.bbox.x1 and date.y1 <= fig.bbox.y1, date


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
