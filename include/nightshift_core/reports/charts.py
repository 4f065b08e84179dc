"""Report charts as PNG, drawn with matplotlib's Agg backend (no browser, no display, no pyplot state).

Declared in the report YAML (``charts:``), each with a query (``@report_date`` bound) and a kind:

``line``    ``x`` a date column, ``y`` one or more columns: one line each, the report date marked
``bar``     ``x`` a category column, ``y`` columns side by side per category (the report date
            against its 7-day average)
``shares``  ``facet`` a column (one panel per value), ``x`` a date column, ``y`` share columns
            (0-1) stacked per day (positive / neutral / negative per subreddit)

The same PNG goes inline into the e-mail (a Content-ID, with alt text said from the data) and into
the workbook's ``charts`` sheet. Labels come from the warehouse and may hold anything: matplotlib
is told not to read ``$...$`` as maths, and a PNG carries no script or link.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nightshift_core.reports import blocks
from nightshift_core.reports.cells import truncate
from nightshift_core.reports.formats import KPI_FORMATS, display

Kind = Literal["line", "bar", "shares"]
KINDS = ("line", "bar", "shares")
_CHART_KEYS = {"name", "title", "kind", "sql", "x", "y", "facet", "format", "days"}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
#: Panels of a ``shares`` chart, categories of a ``bar`` chart: more are cut (the alt text says so).
MAX_PANELS = 12
MAX_CATEGORIES = 30
WIDTH_INCHES, DPI = 7.2, 100  # 720 px wide: fits a mail client's reading pane
_SHARE_COLOURS = {"positive": "#2e7d32", "neutral": "#9e9e9e", "negative": "#c62828"}
_COLOURS = ("#1f5fa8", "#f0a030", "#6a9f3a", "#8e44ad", "#c0392b")


@dataclass(frozen=True)
class ChartDef:
    name: str  # file name and Content-ID: charts/<name>.png
    title: str
    kind: str
    sql: str  # under include/sql
    x: str
    y: tuple[str, ...]
    facet: str | None = None
    format: str = "count"  # of the y values (axis and alt text)
    days: int | None = None  # line/shares: the date axis spans these days up to the report date


@dataclass(frozen=True)
class Rendered:
    chart: ChartDef
    png: bytes
    alt: str
    #: what was drawn: (facet or None, x, {y column: value}) in drawing order
    data: tuple[tuple[Any, Any, dict[str, float | None]], ...]

    @property
    def size(self) -> tuple[int, int]:
        """Width and height in pixels, from the PNG's header."""
        return int.from_bytes(self.png[16:20], "big"), int.from_bytes(self.png[20:24], "big")


def render(
    chart: ChartDef, rows: Sequence[Mapping[str, Any]], report_date: dt.date, currency: str = ""
) -> Rendered:
    """Draw ``chart`` from its query's rows; the alt text says what the picture shows.

    With ``days``, rows dated before the span (a query may return more days) are left out.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = _data(chart, rows)
    if chart.days:  # what the date axis spans, so the data and the alt text say what is drawn
        first = report_date - dt.timedelta(days=chart.days - 1)
        data = [d for d in data if first <= _as_date(d[1]) <= report_date]
    facets = list(dict.fromkeys(f for f, _, _ in data))[:MAX_PANELS] if chart.kind == "shares" else [None]
    with rc_context({"text.parse_math": False, "font.size": 9, "svg.hashsalt": "nightshift"}):
        height = 3.0 if chart.kind != "shares" else 0.8 + 1.6 * max(len(facets), 1)
        fig = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        if not data:
            ax = fig.add_subplot()
            ax.set_axis_off()
            ax.text(0.5, 0.5, "no data for this period", ha="center", va="center", color="#555")
        elif chart.kind == "line":
            _line(fig.add_subplot(), chart, data, report_date, currency)
        elif chart.kind == "bar":
            _bar(fig.add_subplot(), chart, data, report_date, currency)
        else:
            axes = fig.subplots(len(facets), 1, sharex=True, squeeze=False)[:, 0]
            for ax, facet in zip(axes, facets, strict=True):
                _shares(ax, chart, [d for d in data if d[0] == facet], facet, report_date)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return Rendered(chart, buffer.getvalue(), alt_text(chart, data, report_date, currency), tuple(data))


def _data(
    chart: ChartDef, rows: Sequence[Mapping[str, Any]]
) -> list[tuple[Any, Any, dict[str, float | None]]]:
    out = []
    for number, row in enumerate(rows, start=1):
        missing = [c for c in (chart.x, *chart.y, *([chart.facet] if chart.facet else [])) if c not in row]
        if missing:
            raise ValueError(
                f"chart {chart.name!r}: row {number} of include/sql/{chart.sql} has no column(s) {missing}; "
                "the query must return the chart's x, y (and facet) columns"
            )
        values = {c: _float(row[c]) for c in chart.y}
        out.append((row[chart.facet] if chart.facet else None, row[chart.x], values))
    if chart.kind == "bar":
        out = out[:MAX_CATEGORIES]
    return out


def _line(ax: Any, chart: ChartDef, data: list, report_date: dt.date, currency: str) -> None:
    xs = [_as_date(x) for _, x, _ in data]
    marked = []  # the report date's value of each line
    for i, column in enumerate(chart.y):
        ys = [v[column] for _, _, v in data]
        ax.plot(xs, ys, color=_COLOURS[i % len(_COLOURS)], linewidth=1.8, label=_column(column))
        if report_date in xs and ys[xs.index(report_date)] is not None:
            marked.append(ys[xs.index(report_date)])
            ax.plot([report_date], [marked[-1]], "o", color="#c62828", zorder=3)
    ax.axvline(report_date, color="#c62828", linestyle="--", linewidth=1)
    ax.set_ylim(bottom=0)
    # The date above the plot, centred on its line; each value inside the plot, left of the line and
    # below its point in the upper half (above it in the lower half), so neither meets the other or
    # leaves the picture, and a white box keeps the value readable where the line runs behind it.
    from matplotlib.dates import date2num

    ax.annotate(f"{report_date:%d %b}", (date2num(report_date), 1.0), xycoords=ax.get_xaxis_transform(),
                textcoords="offset points", xytext=(0, 3), ha="center", va="bottom", color="#c62828",
                fontsize=8)  # fmt: skip
    low, high = ax.get_ylim()
    for y in marked:
        upper = y > (low + high) / 2
        ax.annotate(
            _value(y, chart.format, currency), (report_date, y), textcoords="offset points",
            xytext=(-8, -6 if upper else 6), ha="right", va="top" if upper else "bottom", color="#c62828",
            fontsize=9, bbox={"boxstyle": "square,pad=0.15", "facecolor": "white", "edgecolor": "none"},
        )  # fmt: skip
    _axis_format(ax, chart.format, currency)
    _date_axis(ax, chart, report_date)
    ax.grid(axis="y", color="#e0e0e0")
    if len(chart.y) > 1:
        ax.legend(frameon=False)


def _bar(ax: Any, chart: ChartDef, data: list, report_date: dt.date, currency: str) -> None:
    categories = [_label(str(x), 20) for _, x, _ in data]
    width = 0.8 / len(chart.y)
    for i, column in enumerate(chart.y):
        positions = [n + (i - (len(chart.y) - 1) / 2) * width for n in range(len(data))]
        ax.bar(positions, [v[column] or 0 for _, _, v in data], width=width, label=_column(column, report_date),
               color=_COLOURS[i % len(_COLOURS)])  # fmt: skip
    ax.set_xticks(range(len(data)), categories, rotation=0 if len(data) <= 6 else 45,
                  ha="center" if len(data) <= 6 else "right")  # fmt: skip
    _axis_format(ax, chart.format, currency)
    ax.grid(axis="y", color="#e0e0e0")
    ax.set_axisbelow(True)  # grid lines behind the bars, not across them
    # Above the plot, in one row: inside it, the legend would cover a tall bar.
    ax.legend(frameon=False, ncols=len(chart.y), loc="lower left", bbox_to_anchor=(0, 1.0))


def _shares(ax: Any, chart: ChartDef, data: list, facet: Any, report_date: dt.date) -> None:
    xs = [_as_date(x) for _, x, _ in data]
    bottom = [0.0] * len(xs)
    for i, column in enumerate(chart.y):
        ys = [v[column] or 0.0 for _, _, v in data]
        ax.bar(xs, ys, bottom=bottom, width=0.85, label=_column(column),
               color=_SHARE_COLOURS.get(column, _COLOURS[i % len(_COLOURS)]))  # fmt: skip
        bottom = [b + y for b, y in zip(bottom, ys, strict=True)]
    ax.set_ylim(0, 1)
    ax.set_ylabel(_label(str(facet), 24), rotation=0, ha="right", va="center")
    _axis_format(ax, "share", "")
    _date_axis(ax, chart, report_date)
    ax.axvline(report_date, color="#222", linestyle=":", linewidth=1)
    if ax.get_subplotspec().is_first_row():
        ax.legend(frameon=False, ncols=len(chart.y), loc="lower left", bbox_to_anchor=(0, 1.0))


def alt_text(chart: ChartDef, data: Sequence, report_date: dt.date, currency: str = "") -> str:
    """What the chart shows, in a sentence or two, for readers who do not see the picture."""
    if not data:
        return f"{chart.title}: no data for this period."
    if chart.kind == "line":
        series = {c: [(_as_date(x), v[c]) for _, x, v in data if v[c] is not None] for c in chart.y}
        series = {c: points for c, points in series.items() if points}
        if not series:
            return f"{chart.title}: no values."
        days = sorted({day for points in series.values() for day, _ in points})
        one = len(chart.y) == 1

        def named(column: str, text: str) -> str:
            return text if one else f"{_column(column)} {text}"

        today = [
            named(c, _value(dict(points)[report_date], chart.format, currency))
            for c, points in series.items()
            if report_date in dict(points)
        ]
        said = f" {report_date.isoformat()}: {', '.join(today)}." if today else ""
        tops = [(c, max(points, key=lambda p: p[1])) for c, points in series.items()]
        highest = ", ".join(
            named(c, f"{_value(value, chart.format, currency)} on {day.isoformat()}")
            for c, (day, value) in tops
        )
        columns = [_column(c) for c in chart.y]
        what = columns[0] if one else ", ".join(columns[:-1]) + " and " + columns[-1]
        return (
            f"{chart.title}, {what} per day from {days[0].isoformat()} to {days[-1].isoformat()}, the report "
            f"date marked.{said} Highest{' ' if one else ': '}{highest}."
        )
    if chart.kind == "bar":
        parts = [
            f"{_label(str(x), 30)}: "
            + ", ".join(f"{_column(c, report_date)} {_value(v[c], chart.format, currency)}" for c in chart.y)
            for _, x, v in data[:8]
        ]
        more = f" ({len(data) - 8} more in the workbook)" if len(data) > 8 else ""
        return f"{chart.title}. " + "; ".join(parts) + "." + more
    facets = list(dict.fromkeys(f for f, _, _ in data))
    last: dict[Any, tuple[Any, dict]] = {}
    for f, x, v in data:
        if f not in last or _as_date(x) >= _as_date(last[f][0]):
            last[f] = (x, v)
    parts = [
        f"{_label(str(f), 30)} on {_as_date(last[f][0]).isoformat()}: "
        + ", ".join(f"{_column(c)} {_value(last[f][1][c], 'share')}" for c in chart.y)
        for f in facets[:MAX_PANELS]
    ]
    return f"{chart.title}, one panel per {_column(chart.facet or '')}. Latest day: " + "; ".join(parts) + "."


# -- the YAML block --------------------------------------------------------------------------------
def parse_charts(raw: Any, sql_dir: Path) -> tuple[ChartDef, ...]:
    """The ``charts:`` list (a ValueError names the key and the fix)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        blocks.fail("'charts' must be a list of {name, title, kind, sql, x, y} entries")
    charts, names = [], set()
    for i, item in enumerate(raw):
        key = f"charts[{i}]"
        blocks.mapping(item, key, _CHART_KEYS, "with name, title, kind, sql, x and y")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name in names:
            blocks.fail(
                f"{key}.name {name!r} must be unique, lower-case letters, digits and '_' (it names the PNG)"
            )
        names.add(name)
        key = f"{key} ({name})"
        kind = item.get("kind")
        if kind not in KINDS:
            blocks.fail(f"{key}.kind is {kind!r}; use one of {', '.join(KINDS)}")
        y = item.get("y")
        y = [y] if isinstance(y, str) else y
        if not isinstance(y, list) or not y:
            blocks.fail(f"{key}.y must be a column or a list of columns (the values drawn)")
        facet = item.get("facet")
        if (kind == "shares") != (facet is not None):
            blocks.fail(f"{key}: facet (one panel per value) is required for kind shares and only there")
        days = item.get("days")
        if days is not None and (kind == "bar" or isinstance(days, bool) or not isinstance(days, int)
                                 or not 2 <= days <= 366):  # fmt: skip
            blocks.fail(
                f"{key}.days is {days!r}; a line or shares chart may span 2 to 366 days up to the report date"
            )
        fmt = item.get("format", "share" if kind == "shares" else "count")
        if fmt not in KPI_FORMATS:
            blocks.fail(f"{key}.format is {fmt!r}; use count, money or share")
        charts.append(
            ChartDef(
                name=name,
                title=blocks.text(item, "title", f"{key}.title"),
                kind=kind,
                sql=blocks.sql_file(item, "sql", f"{key}.sql", sql_dir),
                x=blocks.ident(item.get("x"), f"{key}.x", "column name"),
                y=tuple(blocks.ident(c, f"{key}.y", "column name") for c in y),
                facet=blocks.ident(facet, f"{key}.facet", "column name") if facet is not None else None,
                format=fmt,
                days=days,
            )
        )
    return tuple(charts)


def _axis_format(ax: Any, fmt: str, currency: str) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _value(v, fmt, currency, short=True)))
    ax.spines[["top", "right"]].set_visible(False)


def _date_axis(ax: Any, chart: ChartDef, report_date: dt.date) -> None:
    """Day labels; with ``days``, the axis spans exactly those days (a day without data stays empty)."""
    from matplotlib.dates import AutoDateLocator, DateFormatter

    if chart.days:
        half = dt.timedelta(hours=12)
        first = dt.datetime.combine(report_date - dt.timedelta(days=chart.days - 1), dt.time()) - half
        ax.set_xlim(first, dt.datetime.combine(report_date, dt.time()) + half)
    ax.xaxis.set_major_locator(AutoDateLocator(minticks=3, maxticks=8))
    ax.xaxis.set_major_formatter(DateFormatter("%d %b"))


def _value(value: float | None, fmt: str, currency: str = "", short: bool = False) -> str:
    if value is None:
        return "–"
    if short and fmt == "money":
        return f"{value:,.0f}"
    return display(decimal.Decimal(str(value)), fmt, currency) or f"{value:,}"


def _label(text: str, limit: int = 40) -> str:
    """Text from a query or the YAML, cut and stripped of control characters."""
    from nightshift_core.reports.summary import plain

    return truncate(plain(str(text)), limit)


def _column(name: str, report_date: dt.date | None = None) -> str:
    """A column name as words (``average_7_days`` -> ``average 7 days``); ``report_date`` as the date."""
    if name == "report_date" and report_date is not None:
        return report_date.isoformat()
    return name.replace("_", " ")


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | decimal.Decimal):
        return float(value)
    raise TypeError(f"chart value {value!r} is not a number")


def _as_date(value: Any) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value
