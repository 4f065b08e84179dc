"""Report definitions: ``include/config/reports/*.yaml``, one file per report.

Each report is a list of sections (a ``.sql`` file each, BigQuery SQL rendered with Jinja,
the report date bound as ``@report_date``) and the destinations it is published to: an
Excel workbook, Google Sheets worksheets and an e-mail. A bad file is an error naming the
file, the key and the fix; nothing is dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from nightshift_core.errors import PermanentError
from nightshift_core.reports.formats import FORMATS
from nightshift_core.yamlconf import Where, load_folder, read_mapping

REPORT_DIR = Path(__file__).resolve().parents[2] / "config" / "reports"
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
_REPORT_ID = re.compile(r"[a-z][a-z0-9_]{0,62}")
_SHEET_NAME = re.compile(r"[^\[\]:*?/\\]{1,31}")
_EMAIL = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+")
_CURRENCY = re.compile(r"[A-Z]{3}")

_TOP_KEYS = {"report_id", "title", "description", "schedule", "start_date", "catchup", "tags", "shape",
             "sections", "excel", "sheets", "email", "currency"}  # fmt: skip
_SECTION_KEYS = {"name", "title", "sql", "limit", "pivot", "money", "counts", "formats", "totals", "chart"}
#: Rows of a section the e-mail shows when the section sets no ``limit``.
EMAIL_ROWS = 10
_LIMIT_MAX = 1000
_TOP_N = re.compile(r"\btop\s+(\d+)\b", re.IGNORECASE)
_SQL_LIMIT = re.compile(r"\{\{-?\s*limit\s*-?\}\}")
_SQL_LITERAL_LIMIT = re.compile(r"\bLIMIT\s+\d+", re.IGNORECASE)
_PIVOT_KEYS = {"index", "columns", "values"}
_CHART_KEYS = {"category", "values"}
_EXCEL_KEYS = {"split_by"}
_SHEETS_KEYS = {"spreadsheet_key", "worksheet_prefix", "gcp_conn_id"}
_EMAIL_KEYS = {"to", "cc", "subject", "attach_workbook"}


class ReportConfigError(ValueError, PermanentError):
    """A bad report definition; the message names file, key and fix."""


@dataclass(frozen=True)
class Pivot:
    index: tuple[str, ...]
    columns: str
    values: str


@dataclass(frozen=True)
class Chart:
    category: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    sql: str  # path under include/sql
    #: The one row limit: the query's ``LIMIT {{ limit }}``, ``{limit}`` in the title, the e-mail's rows.
    limit: int | None = None
    pivot: Pivot | None = None
    money: tuple[str, ...] = ()
    counts: tuple[str, ...] = ()
    totals: tuple[str, ...] = ()
    chart: Chart | None = None
    #: column -> format (formats.FORMATS); ``money`` and ``counts`` are shorthands folded in here
    formats: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SheetsDestination:
    spreadsheet_key: str  # may be a Jinja template, e.g. "{{ var.value.get('x', '') }}"
    worksheet_prefix: str = ""
    gcp_conn_id: str = "google_cloud_default"


@dataclass(frozen=True)
class EmailDestination:
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    subject: str = "[nightshift] {title} {report_date}"
    attach_workbook: bool = True


@dataclass(frozen=True)
class ReportConfig:
    path: Path
    report_id: str
    title: str
    description: str
    schedule: str | None
    assets: tuple[str, ...]
    start_date: datetime
    catchup: bool
    tags: tuple[str, ...]
    shape: dict[str, Any]
    sections: tuple[Section, ...]
    split_by: str | None = None
    sheets: SheetsDestination | None = None
    email: EmailDestination | None = None
    currency: str = ""  # ISO 4217 code shown with every money column

    @property
    def dag_id(self) -> str:
        return f"report_{self.report_id}"


def load_all(directory: Path = REPORT_DIR) -> list[ReportConfig]:
    """Every definition in ``directory``; all problems of all files in one error."""
    return load_folder(directory, load, ReportConfigError, id_key="report_id", what="report")


def load(path: Path) -> ReportConfig:
    raw = read_mapping(path, ReportConfigError)
    where = Where(path, ReportConfigError)
    where.keys(raw, _TOP_KEYS, "top level")
    report_id = raw.get("report_id", path.stem)
    if not isinstance(report_id, str) or not _REPORT_ID.fullmatch(report_id):
        where.fail(f"report_id {report_id!r} must be lower-case letters, digits and '_' (e.g. daily_sales)")
    title = where.string(raw, "title", "title", required=True)
    sections_raw = raw.get("sections")
    if not isinstance(sections_raw, list) or not sections_raw:
        where.fail("'sections' must be a non-empty list of {name, sql, ...} entries")
    sections, names = [], set()
    for i, item in enumerate(sections_raw):
        section = _section(where, item, f"sections[{i}]")
        if section.name in names:
            where.fail(
                f"sections[{i}]: name {section.name!r} appears twice; section names become sheet names"
            )
        names.add(section.name)
        sections.append(section)
    schedule, assets = _schedule(where, raw.get("schedule", "@daily"))
    excel = where.mapping(raw, "excel", required=False)
    where.keys(excel, _EXCEL_KEYS, "excel")
    split_by = excel.get("split_by")
    if split_by is not None:
        split_by = where.ident(split_by, "excel.split_by", "column name")
    shape = where.mapping(raw, "shape", required=False)
    for key, value in shape.items():
        where.ident(key, "shape", "template variable name")
        where.ident(value, f"shape.{key}", "dataset or table name")
    currency = raw.get("currency", "")
    if currency and (not isinstance(currency, str) or not _CURRENCY.fullmatch(currency)):
        where.fail(f"currency {currency!r} is not an ISO 4217 code; use three capitals such as USD or EUR")
    money = [f"sections[{i}] ({s.name}).formats.{c}" for i, s in enumerate(sections)
             for c, f in s.formats.items() if f == "money"]  # fmt: skip
    if money and not currency:
        where.fail(
            f"{money[0]} is money but the report has no currency; add a top-level key such as "
            "'currency: USD' (the code printed after every amount)"
        )
    return ReportConfig(
        path=path,
        report_id=report_id,
        title=title,
        description=str(raw.get("description") or title),
        schedule=schedule,
        assets=assets,
        start_date=_start_date(where, raw.get("start_date", date(2026, 1, 1))),
        catchup=bool(raw.get("catchup", False)),
        tags=tuple(raw.get("tags", ["nightshift", "reports"])),
        shape=dict(shape),
        sections=tuple(sections),
        split_by=split_by,
        sheets=_sheets(where, raw.get("sheets")),
        email=_email(where, raw.get("email")),
        currency=currency or "",
    )


def _section(where: Where, item: Any, key: str) -> Section:
    if not isinstance(item, dict):
        where.fail(f"{key}: expected a mapping with at least name and sql")
    where.keys(item, _SECTION_KEYS, key)
    name = item.get("name")
    if not isinstance(name, str) or not _SHEET_NAME.fullmatch(name):
        where.fail(f"{key}.name {name!r} must be 1-31 characters without []:*?/\\ (it names a worksheet)")
    key = f"{key} ({name})"
    sql = where.sql_file(item, "sql", f"{key}.sql", SQL_DIR)
    limit, title = _limit(where, item, key, sql, str(item.get("title") or name))

    def columns(value: Any, sub: str) -> tuple[str, ...]:
        value = [value] if isinstance(value, str) else (value or [])
        if not isinstance(value, list):
            where.fail(f"{key}.{sub} must be a column name or a list of column names")
        return tuple(where.ident(c, f"{key}.{sub}", "column name") for c in value)

    pivot = None
    if item.get("pivot") is not None:
        raw = where.mapping(item, "pivot", required=True)
        where.keys(raw, _PIVOT_KEYS, f"{key}.pivot")
        missing = _PIVOT_KEYS - set(raw)
        if missing:
            where.fail(f"{key}.pivot is missing {sorted(missing)}; a pivot needs index, columns and values")
        pivot = Pivot(
            columns(raw["index"], "pivot.index"), *columns([raw["columns"], raw["values"]], "pivot")
        )
    chart = None
    if item.get("chart") is not None:
        raw = where.mapping(item, "chart", required=True)
        where.keys(raw, _CHART_KEYS, f"{key}.chart")
        if "category" not in raw or not raw.get("values"):
            where.fail(f"{key}.chart needs 'category' (a column) and 'values' (one or more columns)")
        chart = Chart(columns(raw["category"], "chart.category")[0], columns(raw["values"], "chart.values"))
    money, counts = columns(item.get("money"), "money"), columns(item.get("counts"), "counts")
    formats = {**dict.fromkeys(money, "money"), **dict.fromkeys(counts, "count")}
    declared = item.get("formats") or {}
    if not isinstance(declared, dict):
        where.fail(
            f"{key}.formats must be a mapping of column to format, e.g. {{employee_number: id, sales: money}}"
        )
    for column, fmt in declared.items():
        where.ident(column, f"{key}.formats", "column name")
        if fmt not in FORMATS:
            where.fail(
                f"{key}.formats.{column} is {fmt!r}, not a format; use one of {', '.join(FORMATS)} "
                "(e.g. id for employee_number, count for orders, money for sales)"
            )
        if formats.get(column, fmt) != fmt:
            where.fail(
                f"{key}.formats.{column} is {fmt!r} but money/counts says {formats[column]!r}; keep one"
            )
        formats[column] = fmt
    return Section(
        name=name,
        title=title,
        sql=sql,
        limit=limit,
        pivot=pivot,
        money=money,
        counts=counts,
        totals=columns(item.get("totals"), "totals"),
        chart=chart,
        formats=formats,
    )


def _limit(where: Where, item: dict, key: str, sql: str, title: str) -> tuple[int | None, str]:
    """A section's row limit and its title with ``{limit}`` filled in, checked against each other.

    One value decides the rows the query returns (``LIMIT {{ limit }}`` in its SQL), the rows the
    e-mail shows and the number in the title, so "Top 20" can no longer show 10 rows.
    """
    limit = item.get("limit")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= _LIMIT_MAX
    ):
        where.fail(
            f"{key}.limit is {limit!r}; use a whole number from 1 to {_LIMIT_MAX} (the rows the section shows)"
        )
    text = (SQL_DIR / sql).read_text(encoding="utf-8")
    if limit is not None:
        if not _SQL_LIMIT.search(text) or _SQL_LITERAL_LIMIT.search(text):
            where.fail(
                f"{key}.limit is {limit} but include/sql/{sql} does not end with 'LIMIT {{{{ limit }}}}'; "
                "write the limit there as {{ limit }} so the query, the title and the e-mail use the same value"
            )
        title = title.replace("{limit}", str(limit))
    elif "{limit}" in title or _SQL_LIMIT.search(text):
        where.fail(
            f"{key}: the title or include/sql/{sql} uses the limit but the section sets none; add 'limit: N'"
        )
    stated = _TOP_N.search(title)
    if stated and int(stated.group(1)) != (limit or -1):
        where.fail(
            f"{key}.title {title!r} says {stated.group(0)!r} but the section's limit is {limit}; set 'limit: "
            f"{stated.group(1)}' (and 'LIMIT {{{{ limit }}}}' in the SQL) or write the title as 'Top {{limit}} ...'"
        )
    return limit, title


def _schedule(where: Where, value: Any) -> tuple[str | None, tuple[str, ...]]:
    if value is None or isinstance(value, str):
        return value, ()
    if isinstance(value, dict) and set(value) == {"assets"} and isinstance(value["assets"], list):
        names = []
        for name in value["assets"]:
            parts = name.split(".") if isinstance(name, str) else []
            if len(parts) != 2:
                where.fail(f"schedule.assets: {name!r} is not 'dataset.table' (the Asset a sync publishes)")
            names.append(".".join(where.ident(p, "schedule.assets", "name") for p in parts))
        if names:
            return None, tuple(names)
    where.fail(
        "schedule must be a cron string, a preset like '@daily', null, or {assets: [dataset.table, ...]} "
        "to run when those tables are synced"
    )
    raise AssertionError  # unreachable: fail() raises


def _start_date(where: Where, value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    where.fail(f"start_date must be a date like 2026-01-01, got {value!r}")
    raise AssertionError


def _sheets(where: Where, raw: Any) -> SheetsDestination | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        where.fail("'sheets' must be a mapping with spreadsheet_key")
    where.keys(raw, _SHEETS_KEYS, "sheets")
    key = where.string(raw, "spreadsheet_key", "sheets.spreadsheet_key", required=True)
    prefix = raw.get("worksheet_prefix", "")
    if not isinstance(prefix, str) or len(prefix) > 10:
        where.fail("sheets.worksheet_prefix must be a string of at most 10 characters")
    return SheetsDestination(key, prefix, raw.get("gcp_conn_id", "google_cloud_default"))


def _email(where: Where, raw: Any) -> EmailDestination | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        where.fail("'email' must be a mapping with to (and optionally cc, subject, attach_workbook)")
    where.keys(raw, _EMAIL_KEYS, "email")

    def addresses(name: str, required: bool) -> tuple[str, ...]:
        value = raw.get(name) or []
        value = [value] if isinstance(value, str) else value
        if required and not value:
            where.fail(f"email.{name} needs at least one address")
        for address in value:
            # A templated address ("{{ var.value.x }}") is checked when it is rendered.
            if not isinstance(address, str) or not (_EMAIL.fullmatch(address) or "{{" in address):
                where.fail(f"email.{name}: {address!r} is not an e-mail address")
        return tuple(value)

    subject = raw.get("subject", EmailDestination.subject)
    if not isinstance(subject, str):
        where.fail("email.subject must be a string")
    attach = raw.get("attach_workbook", True)
    if not isinstance(attach, bool):
        where.fail("email.attach_workbook must be true or false")
    return EmailDestination(addresses("to", True), addresses("cc", False), subject, attach)
