"""The daily sales headline, charts and e-mail on a generated sample with days whose orders are known.

The sample is synced into DuckDB and the per-day marts are built and tested by dbt itself; the
headline's numbers are checked against SQL written here over the synced raw tables (not the marts),
for a day with known orders and a day with none. The e-mail is then rendered in headless Chromium
with its pictures resolved from their Content-IDs.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import re
from email import message_from_bytes
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.marts import build_report_marts, dbt

from nightshift_core.reports.config import load

ROOT = Path(__file__).resolve().parents[1]
CONFIG = load(ROOT / "include/config/reports/daily_sales.yaml")
ANCHOR = dt.date(2026, 11, 30)  # the sample's orders end on 2026-11-29
KNOWN = dt.date(2026, 11, 20)  # a Friday whose orders this test writes
EMPTY = dt.date(2026, 11, 24)  # a day inside the sample left without orders
AFTER = dt.date(2026, 12, 4)  # after the last order, long after the last sync
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample with KNOWN's orders replaced by three known ones and EMPTY's removed, synced and
    the report's marts built and tested by dbt."""
    from test_sync_classicmodels import sync_all

    from nightshift_core.sample import classicmodels

    folder = tmp_path_factory.mktemp("headline")
    source = folder / "classicmodels.sqlite"
    conn, dialect = classicmodels.connect(f"sqlite:///{source}")
    classicmodels.generate(conn, dialect, scale=1.0, seed=11, anchor=ANCHOR)
    known = _write_known_orders(conn)
    conn.close()
    with pytest.MonkeyPatch.context() as env:
        env.setenv(
            "AIRFLOW_CONN_CLASSICMODELS_SQLITE", json.dumps({"conn_type": "sqlite", "host": str(source)})
        )
        env.setenv(
            "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE",
            json.dumps(
                {"conn_type": "generic", "extra": {"engine": "duckdb", "path": str(folder / "wh.duckdb")}}
            ),
        )
        env.setenv("NIGHTSHIFT_REPORTS_DIR", str(folder / "reports"))
        sync_all("classicmodels_sqlite")
        build_report_marts(folder / "dbt", test=True)  # the models and their data tests
        yield SimpleNamespace(folder=folder, known=known)


def _write_known_orders(conn) -> dict:
    """KNOWN gets three orders: two by customers who ordered before, one by a customer's first order."""
    old = [r[0] for r in conn.execute(
        "SELECT customerNumber FROM orders WHERE orderDate < ? GROUP BY customerNumber ORDER BY customerNumber "
        "LIMIT 2", (str(KNOWN - dt.timedelta(days=30)),),
    )]  # fmt: skip
    (new,) = conn.execute(
        "SELECT customerNumber FROM customers WHERE customerNumber NOT IN (SELECT customerNumber FROM orders) "
        "ORDER BY customerNumber LIMIT 1"
    ).fetchone()
    products = [r[0] for r in conn.execute("SELECT productCode FROM products ORDER BY productCode LIMIT 3")]
    for day in (KNOWN, EMPTY):
        conn.execute(
            "DELETE FROM orderdetails WHERE orderNumber IN (SELECT orderNumber FROM orders WHERE orderDate = ?)",
            (str(day),),
        )
        conn.execute("DELETE FROM orders WHERE orderDate = ?", (str(day),))
    number = conn.execute("SELECT MAX(orderNumber) FROM orders").fetchone()[0]
    stamp = f"{KNOWN} 18:00:00"
    lines = {  # order -> [(product, quantity, price)]
        (number + 1, old[0]): [(products[0], 2, "100.00"), (products[1], 1, "50.50")],
        (number + 2, old[1]): [(products[2], 3, "10.00")],
        (number + 3, new): [(products[0], 1, "999.99")],
    }
    for (order, customer), items in lines.items():
        conn.execute(
            "INSERT INTO orders (orderNumber, orderDate, requiredDate, shippedDate, status, comments, "
            "customerNumber, updatedAt) VALUES (?, ?, ?, NULL, 'In Process', NULL, ?, ?)",
            (order, str(KNOWN), str(KNOWN + dt.timedelta(days=7)), customer, stamp),
        )
        for line, (product, quantity, price) in enumerate(items, start=1):
            conn.execute(
                "INSERT INTO orderdetails (orderNumber, productCode, quantityOrdered, priceEach, orderLineNumber, "
                "updatedAt) VALUES (?, ?, ?, ?, ?, ?)",
                (order, product, quantity, price, line, stamp),
            )
    conn.commit()
    return {"revenue": decimal.Decimal("1280.49"), "orders": 3, "new_customers": 1}


# Written here, independently of the dbt models: per day from the synced raw tables.
DAY_SQL = """
WITH days AS (
  SELECT CAST(d AS DATE) AS day FROM generate_series(DATE '{first}', DATE '{last}', INTERVAL 1 DAY) AS t(d)
), firsts AS (
  SELECT customerNumber, MIN(orderDate) AS first_day FROM classicmodels.orders GROUP BY customerNumber
), per_order AS (
  SELECT o.orderNumber, o.orderDate, o.customerNumber, COALESCE(SUM(d.quantityOrdered * d.priceEach), 0) AS value
  FROM classicmodels.orders o LEFT JOIN classicmodels.orderdetails d ON d.orderNumber = o.orderNumber
  GROUP BY ALL
)
SELECT days.day,
  COUNT(p.orderNumber) AS orders,
  COALESCE(SUM(p.value), 0) AS revenue,
  COUNT(DISTINCT CASE WHEN f.first_day = days.day THEN p.customerNumber END) AS new_customers
FROM days LEFT JOIN per_order p ON p.orderDate = days.day
LEFT JOIN firsts f ON f.customerNumber = p.customerNumber
GROUP BY days.day ORDER BY days.day
"""


def _raw_days(first: dt.date, last: dt.date) -> dict[dt.date, dict]:
    from nightshift.hooks.warehouse import WarehouseHook

    with WarehouseHook().get_conn() as warehouse:
        rows = warehouse.query(DAY_SQL.format(first=first, last=last)).to_pylist()
    return {r["day"]: r for r in rows}


def _lead(day: dt.date, out: Path):
    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift.operators.reports import build_lead

    with WarehouseHook().get_conn() as warehouse:
        return build_lead(CONFIG, warehouse, day, out)


def _expected(day: dt.date) -> dict[str, dict[str, decimal.Decimal | None]]:
    """Each KPI's value and bases from the raw days: previous day, same weekday, 7-day mean, months."""
    one = dt.timedelta(days=1)
    raw = _raw_days(day - 70 * one, day)

    def total(column: str, first: dt.date, last: dt.date) -> decimal.Decimal:
        return sum((decimal.Decimal(str(raw[first + i * one][column])) for i in range((last - first).days + 1)),
                   decimal.Decimal(0))  # fmt: skip

    def ratio(first: dt.date, last: dt.date) -> decimal.Decimal | None:
        orders = total("orders", first, last)
        return total("revenue", first, last) / orders if orders else None

    month = day.replace(day=1)
    previous = (month - one).replace(day=1)
    same = previous.replace(day=min(day.day, (month - one).day))
    out = {}
    for label, column in (("Revenue", "revenue"), ("Orders", "orders"), ("New customers", "new_customers")):
        out[label] = {
            "value": total(column, day, day),
            "previous day": total(column, day - one, day - one),
            "same weekday last week": total(column, day - 7 * one, day - 7 * one),
            "7-day average": total(column, day - 7 * one, day - one) / 7,
            "mtd": total(column, month, day),
            "mtd base": total(column, previous, same),
        }
    out["Average order value"] = {
        "value": ratio(day, day),
        "previous day": ratio(day - one, day - one),
        "same weekday last week": ratio(day - 7 * one, day - 7 * one),
        "7-day average": ratio(day - 7 * one, day - one),
        "mtd": ratio(month, day),
        "mtd base": ratio(previous, same),
    }
    return out


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return abs(decimal.Decimal(a) - decimal.Decimal(b)) < decimal.Decimal("0.000001")


@pytest.mark.parametrize("day", [KNOWN, EMPTY, KNOWN + dt.timedelta(days=7)])
def test_headline_numbers_equal_sql_over_the_raw_tables(sample, day, tmp_path):
    lead, _ = _lead(day, tmp_path)
    expected = _expected(day)
    got = {line.kpi.label: line for line in lead.headline.lines}
    assert list(got) == ["Revenue", "Orders", "Average order value", "New customers"]
    for label, want in expected.items():
        line = got[label]
        assert _close(line.value, want["value"]), (label, line.value, want)
        for change in line.changes:
            assert _close(change.base, want[change.against]), (label, change.against, change.base, want)
        assert _close(line.month_to_date.value, want["mtd"]), (label, line.month_to_date, want)
        assert _close(line.month_to_date.base, want["mtd base"]), (label, line.month_to_date, want)
    if day == KNOWN:
        assert {k: got[k.replace("_", " ").capitalize()].value for k in sample.known} == sample.known
        assert not lead.headline.no_data


def test_a_day_without_orders_says_so_and_names_the_last_order(sample, tmp_path):
    lead, _ = _lead(EMPTY, tmp_path)
    last = max(d for d, r in _raw_days(EMPTY - dt.timedelta(days=30), EMPTY).items() if r["orders"])
    assert lead.headline.no_data == f"no orders on {EMPTY} — last order {last}"
    lead, _ = _lead(AFTER, tmp_path)
    assert lead.headline.no_data == f"no orders on {AFTER} — last order {ANCHOR - dt.timedelta(days=1)}"


def test_a_late_sync_is_stated_and_a_timely_one_is_not(sample, tmp_path):
    from nightshift.hooks.warehouse import WarehouseHook

    with WarehouseHook().get_conn() as warehouse:
        freshest = warehouse.query(
            "SELECT GREATEST((SELECT MAX(updatedAt) FROM classicmodels.orders), "
            "(SELECT MAX(updatedAt) FROM classicmodels.orderdetails)) AS f"
        ).to_pylist()[0]["f"]
    end = dt.datetime.combine(AFTER + dt.timedelta(days=1), dt.time())
    lead, _ = _lead(AFTER, tmp_path)
    hours = (end - freshest.replace(tzinfo=None)).total_seconds() / 3600
    assert hours > CONFIG.freshness.max_age_hours
    assert lead.late.startswith(f"Late sync: the newest synced row is from {freshest:%Y-%m-%d %H:%M} UTC")
    timely = freshest.date() - dt.timedelta(days=1)
    assert _lead(timely, tmp_path)[0].late == ""


def test_daily_orders_holds_every_day_of_a_window_with_or_without_orders(sample):
    """An incremental run over days after the last order writes them as zeros, once each."""
    from nightshift.hooks.warehouse import WarehouseHook

    window = {
        "window_start": str(ANCHOR - dt.timedelta(days=2)),
        "window_end": str(ANCHOR + dt.timedelta(days=3)),
    }
    done = dbt(sample.folder / "dbt", "run", "--select", "daily_orders", vars_=window)
    assert done.returncode == 0, done.stdout[-3000:]
    with WarehouseHook().get_conn() as warehouse:
        rows = warehouse.query(
            "SELECT order_date, orders, revenue FROM classicmodels_agg.daily_orders "
            f"WHERE order_date >= DATE '{window['window_start']}' ORDER BY order_date"
        ).to_pylist()
    assert [r["order_date"] for r in rows] == [ANCHOR + dt.timedelta(days=i) for i in range(-2, 3)]
    assert [(r["orders"], r["revenue"]) for r in rows[2:]] == [(0, 0)] * 3, rows
    assert rows[1]["orders"] > 0, rows  # the last order day


def test_chart_data_and_alt_text_say_what_the_pictures_show(sample, tmp_path):
    lead, charts = _lead(KNOWN, tmp_path)
    by_name = {c.chart.name: c for c in charts}
    assert set(by_name) == {"revenue_30_days", "territory_revenue"}
    for chart in charts:
        assert chart.path.read_bytes().startswith(b"\x89PNG") and chart.width == 720
    assert f"{KNOWN}: 1,280.49 USD" in by_name["revenue_30_days"].alt
    assert (
        f"{KNOWN} " in by_name["territory_revenue"].alt
        and "average 7 days" in by_name["territory_revenue"].alt
    )


# -- the e-mail in a browser -----------------------------------------------------------------------
def built_message(config, day: dt.date, monkeypatch):
    """Build ``config``'s report for ``day`` and the e-mail the report DAG would send: (XCom, message)."""
    from test_email_report import set_smtp
    from test_reports import context

    from nightshift.hooks.mail import YagmailHook
    from nightshift.operators.email_report import EmailReportOperator
    from nightshift.operators.reports import WarehouseToReportOperator
    from nightshift_core.reports.paths import report_folder

    built = WarehouseToReportOperator(
        task_id="build", config_path=str(config.path), report_date=day.isoformat()
    ).execute(context("build", dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6), tzinfo=dt.UTC)))
    set_smtp(monkeypatch, 25)
    op = EmailReportOperator(task_id="email", report_id=config.report_id, title=config.title, to="a@b.test",
                             report_date=day.isoformat(), workbook_path=built["workbook"])  # fmt: skip
    html, text, attachments, images = op._bodies()
    message = YagmailHook().build_message(
        to=["a@b.test"], cc=[], subject="s", html=html, text=text, attachments=attachments,
        attachments_under=report_folder(config.report_id), inline_images=images,
        message_id="<x.1@nightshift.test>",
    )  # fmt: skip
    return built, message_from_bytes(message.as_bytes())


def email_parts(message) -> tuple[str, str, dict[str, bytes]]:
    """(HTML, plain text, {Content-ID: PNG bytes}) of a report e-mail; every image part is inline."""
    html = text = ""
    images = {}
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "text/html":
            html = part.get_payload(decode=True).decode()
        elif kind == "text/plain":
            text = part.get_payload(decode=True).decode()
        elif kind.startswith("image/"):
            assert part.get("Content-Disposition", "").startswith("inline")
            images[part["Content-ID"].strip("<>")] = part.get_payload(decode=True)
    return html, text, images


def test_the_email_renders_in_chromium_with_its_pictures_and_the_text_part_has_the_headline(
    sample, tmp_path, monkeypatch
):
    built, message = built_message(CONFIG, KNOWN, monkeypatch)
    html, text, images = email_parts(message)
    # The workbook's first sheet has the same headline and pictures.
    import openpyxl

    overview = openpyxl.load_workbook(built["workbook"]).worksheets[0]
    assert overview.title == "overview" and len(overview._images) == 2
    cells = [[c.value for c in row] for row in overview.iter_rows()]
    assert ["Revenue", "1,280.49 USD"] == cells[next(i for i, r in enumerate(cells) if r[0] == "Revenue")][:2]
    cids = re.findall(r'src="cid:([^"]+)"', html)
    assert cids and sorted(cids) == sorted(images), (cids, list(images))
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html), "no remote resource"
    assert "<script" not in html.lower() and "<style" not in html.lower()
    assert not re.search(r"<[^>]+\son\w+\s*=", html), "no event handler attribute"
    # The headline numbers of the HTML are the text part's.
    for number in ("1,280.49 USD", "426.83 USD"):
        assert number in html and number in text
    for label in ("Revenue: 1,280.49 USD", "Orders: 3 ", "New customers: 1 "):
        assert label in text
    loaded, shot, wide = screenshot(html, images, tmp_path)
    assert len(loaded) == len(images) == 2
    check_screenshot(loaded, shot, wide)


def screenshot(html: str, images: dict[str, bytes], out: Path) -> tuple[list, Path, list]:
    """Render the e-mail's HTML in headless Chromium, 900 px wide and as tall as the page:
    ([complete, naturalWidth, naturalHeight, alt] of each image, the PNG screenshot, [heading, width,
    room] of each table wider than the body's content, which a reader would have to scroll sideways)."""
    from support.browser import chromium

    # Chromium fetches nothing: each cid: becomes the data: URI of its part, as a mail client resolves it.
    page = html
    for cid, data in images.items():
        page = page.replace(f"cid:{cid}", "data:image/png;base64," + base64.b64encode(data).decode())
    (out / "mail.html").write_text(page)
    with chromium(width=900, height=900) as driver:
        driver.get((out / "mail.html").as_uri())
        loaded = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])"
        )
        wide = driver.execute_script(WIDE_TABLES)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(900, min(height + 150, 6000))
        shot = out / "mail.png"
        driver.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    return loaded, shot, wide


# Each table wider than the body's content box (the viewport less the body's padding), with the
# heading before it: such a table is cut at the window's edge or makes the reader scroll sideways.
WIDE_TABLES = """
const body = document.body, style = getComputedStyle(body);
const room = body.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
return Array.from(document.querySelectorAll('table'))
  .filter(t => t.getBoundingClientRect().width > room || t.scrollWidth > room)
  .map(t => [(t.previousElementSibling || {}).textContent || '', t.getBoundingClientRect().width, room]);
"""


def check_screenshot(loaded: list, shot: Path, wide: list) -> None:
    """Every image loaded with its alt text, no table is wider than the body, and the screenshot is a
    full, inked page."""
    from PIL import Image

    assert not wide, f"tables wider than the 900 px e-mail body (heading, width, room): {wide}"

    for complete, width, image_height, alt in loaded:
        assert complete and width > 0 and image_height > 0 and len(alt) > 20
    with Image.open(shot) as picture:
        assert picture.size[0] >= 900 - 20 and picture.size[1] >= 900
        # Not a blank page: the charts' and headline's ink is there.
        colours = picture.convert("RGB").getcolors(1_000_000)
        assert colours is not None and len(colours) > 50
