"""A report's headline: the report date's KPIs against the days a reader compares them with.

Declared in the report YAML (``headline:``): a query returning one row per day (the date column and
the KPI columns) from :data:`LOOKBACK_DAYS` days before the report date to the report date, and the
KPIs read from it. A KPI is the ``sum`` of a column over the days it covers or the ``ratio`` of two
such sums (average order value = revenue / orders), so a week or a month is weighted as one period.

For each KPI the headline gives the report date's value and its change against

* the previous day,
* the same weekday a week before,
* the trailing 7-day average (the seven days before the report date, not counting it),
* and month to date (the 1st to the report date) against the same days of the previous month
  (cut at that month's last day).

A day the query has no row for counts as a day with nothing (zeros). A report date whose
``empty_when`` column is 0 says so: "no orders on 2026-12-04 — last order 2026-12-01".
``freshness:`` (optional) names a query returning the newest row's time; when that is older than
``max_age_hours`` before the end of the report date, the e-mail says the sync is late.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nightshift_core.reports import blocks
from nightshift_core.reports.formats import KPI_FORMATS, display

#: Days of rows the headline query must return before the report date (month to date of the
#: previous month needs up to 62).
LOOKBACK_DAYS = 62
_KPI_KEYS = {"label", "sum", "ratio", "format"}
_HEADLINE_KEYS = {"sql", "date", "kpis", "empty_when", "nothing"}
_FRESHNESS_KEYS = {"sql", "max_age_hours"}
#: The comparisons, in the order the e-mail shows them.
COMPARISONS = ("previous day", "same weekday last week", "7-day average")


@dataclass(frozen=True)
class Kpi:
    label: str
    columns: tuple[str, ...]  # (column,) for a sum, (numerator, denominator) for a ratio
    format: str = "count"

    def of(self, days: Sequence[Mapping[str, Any]]) -> decimal.Decimal | None:
        """The KPI over these day rows: a sum, or the ratio of two sums (None when dividing by 0)."""
        sums = [sum((_number(d.get(c)) for d in days), decimal.Decimal(0)) for c in self.columns]
        if len(sums) == 1:
            return sums[0]
        return None if sums[1] == 0 else sums[0] / sums[1]


@dataclass(frozen=True)
class HeadlineSpec:
    sql: str  # under include/sql; @report_date is bound
    date: str
    kpis: tuple[Kpi, ...]
    empty_when: str  # a column; the report date has no data when it is 0
    nothing: str = "no data"  # "no orders" -> "no orders on <date> — last order <day>"


@dataclass(frozen=True)
class FreshnessSpec:
    sql: str  # one row, column ``freshest`` (timestamp of the newest synced row)
    max_age_hours: int


@dataclass(frozen=True)
class Change:
    """One comparison: the base value and the change against it."""

    against: str
    base: decimal.Decimal | None
    value: decimal.Decimal | None

    @property
    def delta(self) -> decimal.Decimal | None:
        return None if self.value is None or self.base is None else self.value - self.base

    @property
    def percent(self) -> decimal.Decimal | None:
        if self.delta is None or not self.base:
            return None
        return self.delta / abs(self.base) * 100


@dataclass(frozen=True)
class KpiLine:
    kpi: Kpi
    value: decimal.Decimal | None
    changes: tuple[Change, ...]  # COMPARISONS, in order
    month_to_date: Change  # against the same days of the previous month


@dataclass(frozen=True)
class Headline:
    report_date: dt.date
    lines: tuple[KpiLine, ...]
    no_data: str = ""  # "no orders on 2026-12-04 — last order 2026-12-01" when the date is empty
    late: str = ""  # the late-sync warning, when the sync is late
    month_span: str = ""  # "Dec 1-4": month to date
    previous_span: str = ""  # "Nov 1-4": the same days of the previous month


def compute(
    spec: HeadlineSpec,
    rows: Sequence[Mapping[str, Any]],
    report_date: dt.date,
    *,
    freshest: dt.datetime | None = None,
    freshness: FreshnessSpec | None = None,
) -> Headline:
    """The headline from the query's day rows (days missing from them count as zeros)."""
    by_day: dict[dt.date, Mapping[str, Any]] = {}
    for row in rows:
        day = _day(row.get(spec.date), spec.date)
        by_day[day] = row

    def days(first: dt.date, last: dt.date) -> list[Mapping[str, Any]]:
        count = (last - first).days + 1
        return [by_day.get(first + dt.timedelta(days=i), {}) for i in range(max(count, 0))]

    one = dt.timedelta(days=1)
    month_start = report_date.replace(day=1)
    prev_month_end = month_start - one
    prev_month_start = prev_month_end.replace(day=1)
    prev_same_day = prev_month_start.replace(day=min(report_date.day, prev_month_end.day))
    lines = []
    for kpi in spec.kpis:
        value = kpi.of(days(report_date, report_date))
        week = days(report_date - 7 * one, report_date - one)
        average = kpi.of(week)
        if average is not None and len(kpi.columns) == 1:
            average /= 7
        changes = (
            Change(COMPARISONS[0], kpi.of(days(report_date - one, report_date - one)), value),
            Change(COMPARISONS[1], kpi.of(days(report_date - 7 * one, report_date - 7 * one)), value),
            Change(COMPARISONS[2], average, value),
        )
        mtd = Change(
            "same days of the previous month",
            kpi.of(days(prev_month_start, prev_same_day)),
            kpi.of(days(month_start, report_date)),
        )
        lines.append(KpiLine(kpi, value, changes, mtd))
    no_data = ""
    if not _number(by_day.get(report_date, {}).get(spec.empty_when)):
        earlier = [d for d, r in by_day.items() if d < report_date and _number(r.get(spec.empty_when))]
        no_data = f"{spec.nothing} on {report_date.isoformat()}"
        last = _last_label(spec.nothing)
        no_data += (
            f" — {last} {max(earlier).isoformat()}"
            if earlier
            else f" — none in the {LOOKBACK_DAYS} days before either"
        )
    return Headline(
        report_date,
        tuple(lines),
        no_data,
        late_sync(report_date, freshest, freshness),
        f"{month_start:%b} 1-{report_date.day}",
        f"{prev_month_start:%b} 1-{prev_same_day.day}",
    )


def late_sync(report_date: dt.date, freshest: dt.datetime | None, spec: FreshnessSpec | None) -> str:
    """The late-sync warning, or "" when the newest row is recent enough (or nothing is checked).

    Measured from the end of the report date (midnight UTC after it), not from the clock, so a
    re-run of the same date says the same thing.
    """
    if spec is None:
        return ""
    end = dt.datetime.combine(report_date + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    if freshest is None:
        return "Late sync: the synced tables hold no rows, so these numbers are not the source's."
    if freshest.tzinfo is None:
        freshest = freshest.replace(tzinfo=dt.UTC)
    age = end - freshest
    if age <= dt.timedelta(hours=spec.max_age_hours):
        return ""
    hours = age.total_seconds() / 3600
    return (
        f"Late sync: the newest synced row is from {freshest.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{hours:,.0f} hours before the end of {report_date.isoformat()} (the schedule allows "
        f"{spec.max_age_hours}); later changes at the source are missing from this report."
    )


def value_text(value: decimal.Decimal | None, fmt: str, currency: str = "") -> str:
    """A KPI value in its format; "–" when there is none (a ratio over no orders)."""
    if value is None:
        return "–"
    return display(value, fmt, currency) or str(value)


def change_text(change: Change, fmt: str, currency: str = "") -> str:
    """``+12.5% (+1,234.00 USD)``, ``±0``, or ``n/a`` when there is nothing to compare with.

    A share changes by percentage points (``+3.5 pts``): 40% against 20% is not "+100%".
    """
    delta, percent = change.delta, change.percent
    if delta is None:
        return "n/a"
    if delta == 0:
        return "±0"
    sign = "+" if delta > 0 else "−"
    if fmt == "share":
        return f"{sign}{display(abs(delta), fmt)[:-1]} pts"
    amount = display(abs(delta), fmt, currency) or str(abs(delta))
    if percent is None:
        return f"{sign}{amount} (from 0)"
    return f"{sign}{abs(percent):,.1f}% ({sign}{amount})"


def direction(change: Change) -> int:
    """1 up, -1 down, 0 flat or unknown."""
    delta = change.delta
    return 0 if not delta else (1 if delta > 0 else -1)


# -- the YAML blocks -------------------------------------------------------------------------------
def parse_headline(raw: Any, sql_dir: Path) -> HeadlineSpec | None:
    """The ``headline:`` block (a ValueError names the key and the fix)."""
    if raw is None:
        return None
    blocks.mapping(raw, "headline", _HEADLINE_KEYS, "with sql, date, empty_when and kpis")
    sql = blocks.sql_file(raw, "sql", "headline.sql", sql_dir)
    date = blocks.ident(raw.get("date"), "headline.date", "column name (the day of each row)")
    empty = blocks.ident(raw.get("empty_when"), "headline.empty_when", "column name (0 means no data)")
    nothing = raw.get("nothing", "no data")
    if not isinstance(nothing, str) or not nothing.strip():
        blocks.fail("headline.nothing must be text such as 'no orders' (said when the report date is empty)")
    kpis_raw = raw.get("kpis")
    if not isinstance(kpis_raw, list) or not kpis_raw:
        blocks.fail(
            "headline.kpis must be a non-empty list of {label, sum: column} or {label, ratio: [a, b]}"
        )
    kpis = []
    for i, item in enumerate(kpis_raw):
        key = f"headline.kpis[{i}]"
        blocks.mapping(item, key, _KPI_KEYS, "such as {label: Revenue, sum: revenue, format: money}")
        label = blocks.text(item, "label", f"{key}.label")
        if ("sum" in item) == ("ratio" in item):
            blocks.fail(f"{key} needs exactly one of sum: <column> or ratio: [<numerator>, <denominator>]")
        if "sum" in item:
            columns = (blocks.ident(item["sum"], f"{key}.sum", "column name"),)
        else:
            ratio = item["ratio"]
            if not isinstance(ratio, list) or len(ratio) != 2:
                blocks.fail(
                    f"{key}.ratio must be two columns [numerator, denominator], e.g. [revenue, orders]"
                )
            columns = tuple(blocks.ident(c, f"{key}.ratio", "column name") for c in ratio)
        fmt = item.get("format", "count")
        if fmt not in KPI_FORMATS:
            blocks.fail(f"{key}.format is {fmt!r}; use count, money or share")
        kpis.append(Kpi(label, columns, fmt))
    return HeadlineSpec(sql, date, tuple(kpis), empty, nothing.strip())


def parse_freshness(raw: Any, sql_dir: Path) -> FreshnessSpec | None:
    """The ``freshness:`` block: {sql (one row, column freshest), max_age_hours}."""
    if raw is None:
        return None
    blocks.mapping(raw, "freshness", _FRESHNESS_KEYS, "with sql and max_age_hours")
    sql = blocks.sql_file(raw, "sql", "freshness.sql", sql_dir)
    hours = raw.get("max_age_hours")
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= 24 * 90:
        blocks.fail(
            f"freshness.max_age_hours is {hours!r}; use whole hours (1 to 2160) the newest row may be older "
            "than the end of the report date before the e-mail calls the sync late"
        )
    return FreshnessSpec(sql, hours)


def _last_label(nothing: str) -> str:
    """'no orders' -> 'last order'; anything else -> 'last data'."""
    words = nothing.split()
    if len(words) == 2 and words[0].lower() == "no":
        noun = words[1]
        return "last " + (noun[:-1] if noun.endswith("s") and not noun.endswith("ss") else noun)
    return "last data"


def _number(value: Any) -> decimal.Decimal:
    if value is None or isinstance(value, bool):
        return decimal.Decimal(0)
    if isinstance(value, decimal.Decimal):
        return value if value.is_finite() else decimal.Decimal(0)
    if isinstance(value, int | float):
        return decimal.Decimal(str(value))
    raise TypeError(f"headline: {value!r} is not a number; the KPI columns must be numeric")


def _day(value: Any, column: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    raise TypeError(f"headline: column {column!r} holds {value!r}, not a date; return one row per day")
