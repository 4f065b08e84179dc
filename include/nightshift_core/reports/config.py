"""Report definitions: ``include/config/reports/*.yaml``, one file per report.

Each report is a list of sections (a ``.sql`` file each, BigQuery SQL rendered with Jinja,
the report date bound as ``@report_date``) and the destinations it is published to: an
Excel workbook, Google Sheets worksheets and an e-mail. :class:`ReportConfig` is the file's
model (its JSON Schema is ``include/config/schemas/report.schema.json``); a bad file is an
error naming the file, the key and the fix; nothing is dropped silently.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import (
    BeforeValidator,
    Field,
    StrictInt,
    StrictStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from nightshift_core.reports.charts import ChartDef, parse_charts
from nightshift_core.reports.formats import FORMATS, Format
from nightshift_core.reports.headline import FreshnessSpec, HeadlineSpec, parse_freshness, parse_headline
from nightshift_core.yamlconf import (
    COLUMN_SCHEMA,
    CONFIG_DIR,
    IDENT_PATTERN,
    SQL_DIR,
    Catchup,
    Columns,
    ConfigError,
    ConfigModel,
    FileModel,
    Fix,
    Flag,
    StartDate,
    Tags,
    column_names,
    identifier,
    load_folder,
    parse,
    sql_file,
    text,
)

REPORT_DIR = CONFIG_DIR / "reports"
_REPORT_ID = re.compile(r"[a-z][a-z0-9_]{0,62}")
_SHEET_NAME = re.compile(r"[^\[\]:*?/\\]{1,31}")
_EMAIL = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+")
_CURRENCY = re.compile(r"[A-Z]{3}")
#: Rows of a section the e-mail shows when the section sets no ``limit``.
EMAIL_ROWS = 10
_LIMIT_MAX = 1000
_TOP_N = re.compile(r"\btop\s+(\d+)\b", re.IGNORECASE)
_SQL_LIMIT = re.compile(r"\{\{-?\s*limit\s*-?\}\}")
_SQL_LITERAL_LIMIT = re.compile(r"\bLIMIT\s+\d+", re.IGNORECASE)


class ReportConfigError(ConfigError):
    """A bad report definition."""


def _column(value: Any) -> str:
    return column_names(value)[0] if isinstance(value, str) else column_names([value])[0]


Column = Annotated[str, BeforeValidator(_column), WithJsonSchema(COLUMN_SCHEMA)]


class Pivot(ConfigModel):
    """A pivot table: one row per ``index``, one column per value of ``columns``, cells are ``values``."""

    index: Columns = Field(description="Row label column(s)")
    columns: Column = Field(description="Column whose values become the columns")
    values: Column = Field(description="Column summed into the cells")

    @classmethod
    def prepare(cls, data: dict, info: ValidationInfo) -> dict:
        missing = {"index", "columns", "values"} - set(data)
        if missing:
            raise ValueError(f"{{key}} is missing {sorted(missing)}; a pivot needs index, columns and values")
        return data


class Chart(ConfigModel):
    """A bar chart of the section's rows in the workbook."""

    category: Column = Field(description="Column on the category axis")
    values: Columns = Field(description="Column(s) drawn as bars")

    @classmethod
    def prepare(cls, data: dict, info: ValidationInfo) -> dict:
        if "category" not in data or not data.get("values"):
            raise ValueError("{key} needs 'category' (a column) and 'values' (one or more columns)")
        return data


class Section(ConfigModel):
    """One query of the report: a worksheet, a Parquet file for Sheets and a block of the e-mail."""

    name: StrictStr = Field(description="Worksheet name: 1-31 characters without []:*?/\\")
    title: str = Field("", description="Heading; '{limit}' is replaced by the section's limit")
    sql: StrictStr = Field(description="Query file under include/sql (e.g. reports/top_customers.sql)")
    #: The one row limit: the query's ``LIMIT {{ limit }}``, ``{limit}`` in the title, the e-mail's rows.
    limit: Annotated[
        Annotated[StrictInt, Field(ge=1, le=_LIMIT_MAX)] | None,
        Fix(f"{{key}} is {{value}}; use a whole number from 1 to {_LIMIT_MAX} (the rows the section shows)"),
    ] = Field(None, description="Rows the section shows: the SQL's LIMIT {{ limit }}, {limit} in the title")
    pivot: Pivot | None = None
    money: Columns = Field((), description="Shorthand for formats: {column: money}")
    counts: Columns = Field((), description="Shorthand for formats: {column: count}")
    totals: Columns = Field((), description="Columns summed in a totals row")
    chart: Chart | None = None
    #: column -> format (formats.FORMATS); ``money`` and ``counts`` are shorthands folded in here
    formats: Annotated[
        dict[str, Format],
        Fix(
            "{key} must be a mapping of column to format, e.g. {employee_number: id, sales: money}; "
            f"the formats are {', '.join(FORMATS)}"
        ),
    ] = Field(default_factory=dict, description="Column -> format: " + ", ".join(FORMATS))

    @classmethod
    def prepare(cls, data: dict, info: ValidationInfo) -> dict:
        name = data.get("name")
        if not isinstance(name, str) or not _SHEET_NAME.fullmatch(name):
            raise ValueError(
                f"{{key}}.name {name!r} must be 1-31 characters without []:*?/\\ (it names a worksheet)"
            )
        data["title"] = str(data.get("title") or name)
        formats = data.get("formats") or {}
        if isinstance(formats, dict):
            for column, fmt in formats.items():
                identifier(column, "column name", "{key}.formats")
                if fmt not in FORMATS:
                    raise ValueError(
                        f"{{key}}.formats.{column} is {fmt!r}, not a format; use one of {', '.join(FORMATS)} "
                        "(e.g. id for employee_number, count for orders, money for sales)"
                    )
        return data

    @field_validator("sql", mode="after")
    @classmethod
    def _sql_under_include_sql(cls, sql: str) -> str:
        return sql_file(sql, SQL_DIR)

    @model_validator(mode="after")
    def _limit_and_formats(self) -> Section:
        """One limit decides the query's rows, the e-mail's rows and the number in the title.

        ``money`` and ``counts`` fold into ``formats``; a column declared both ways must agree.
        """
        formats = {**dict.fromkeys(self.money, "money"), **dict.fromkeys(self.counts, "count")}
        for column, fmt in self.formats.items():
            if formats.get(column, fmt) != fmt:
                raise ValueError(
                    f"{{key}}.formats.{column} is {fmt!r} but money/counts says {formats[column]!r}; keep one"
                )
            formats[column] = fmt
        text_ = (SQL_DIR / self.sql).read_text(encoding="utf-8")
        title, limit = self.title, self.limit
        if limit is not None:
            if not _SQL_LIMIT.search(text_) or _SQL_LITERAL_LIMIT.search(text_):
                raise ValueError(
                    f"{{key}}.limit is {limit} but include/sql/{self.sql} does not end with "
                    "'LIMIT {{ limit }}'; write the limit there as {{ limit }} so the query, the title "
                    "and the e-mail use the same value"
                )
            title = title.replace("{limit}", str(limit))
        elif "{limit}" in title or _SQL_LIMIT.search(text_):
            raise ValueError(
                f"{{key}}: the title or include/sql/{self.sql} uses the limit but the section sets none; "
                "add 'limit: N'"
            )
        stated = _TOP_N.search(title)
        if stated and int(stated.group(1)) != (limit or -1):
            raise ValueError(
                f"{{key}}.title {title!r} says {stated.group(0)!r} but the section's limit is {limit}; set "
                f"'limit: {stated.group(1)}' (and 'LIMIT {{{{ limit }}}}' in the SQL) or write the title as "
                "'Top {limit} ...'"
            )
        return self.model_copy(update={"title": title, "formats": formats})


class Excel(ConfigModel):
    """The Excel workbook."""

    split_by: Column | None = Field(None, description="Also one workbook per value of this column")


class SheetsDestination(ConfigModel):
    """Google Sheets worksheets, one per section (skipped while the key renders empty)."""

    spreadsheet_key: Annotated[str, Fix("sheets.spreadsheet_key must be a non-empty string")] = Field(
        description="Spreadsheet key; may be a template, e.g. \"{{ var.value.get('x', '') }}\"", min_length=1
    )
    worksheet_prefix: Annotated[
        StrictStr,
        Field(max_length=10),
        Fix("sheets.worksheet_prefix must be a string of at most 10 characters"),
    ] = Field("", description="Prefix of the worksheet names")
    gcp_conn_id: StrictStr = Field("google_cloud_default", description="Airflow connection of the Sheets API")


def _addresses(value: Any) -> tuple[str, ...]:
    value = [value] if isinstance(value, str) else (value or [])
    if not isinstance(value, list | tuple):
        raise ValueError("{key} must be an address or a list of addresses")
    for address in value:
        # A templated address ("{{ var.value.x }}") is checked when it is rendered.
        if not isinstance(address, str) or not (_EMAIL.fullmatch(address) or "{{" in address):
            raise ValueError(f"{{key}}: {address!r} is not an e-mail address")
    return tuple(value)


Addresses = Annotated[
    tuple[str, ...],
    BeforeValidator(_addresses),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]


class EmailDestination(ConfigModel):
    """The e-mail: a summary of every section, the workbook attached."""

    to: Addresses = Field(description="Recipients (addresses or templates such as {{ var.value.x }})")
    cc: Addresses = Field((), description="Copy recipients")
    subject: Annotated[StrictStr, Fix("email.subject must be a string")] = Field(
        "[nightshift] {title} {report_date}", description="Subject; {title} and {report_date} are filled in"
    )
    attach_workbook: Flag = Field(True, description="Attach the Excel workbook")

    @field_validator("to")
    @classmethod
    def _someone(cls, to: tuple[str, ...]) -> tuple[str, ...]:
        if not to:
            raise ValueError("{key} needs at least one address")
        return to


def _schedule_assets(value: Any) -> tuple[str, ...]:
    names = []
    for name in value:
        parts = name.split(".") if isinstance(name, str) else []
        if len(parts) != 2:
            raise ValueError(f"schedule.assets: {name!r} is not 'dataset.table' (the Asset a sync publishes)")
        names.append(".".join(identifier(p, "name", "schedule.assets") for p in parts))
    return tuple(names)


_SCHEDULE_SCHEMA = {
    "description": "A cron string, a preset like '@daily', null, or {assets: [dataset.table, ...]} to run when "
    "those tables are refreshed",
    "anyOf": [
        {"type": "string"},
        {"type": "null"},
        {
            "type": "object",
            "properties": {
                "assets": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "pattern": r"^\w+\.\w+$"},
                }
            },
            "required": ["assets"],
            "additionalProperties": False,
        },
    ],
    "default": "@daily",
}


def _block(parse: Any) -> Any:
    """A ``headline:``/``freshness:``/``charts:`` block read by its module's parser (ValueError names the key)."""

    def check(value: Any) -> Any:
        if isinstance(value, HeadlineSpec | FreshnessSpec | tuple):
            return value
        return parse(value, SQL_DIR)

    return check


_KPI_SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string"},
        "sum": {"type": "string", "pattern": IDENT_PATTERN},
        "ratio": {
            "type": "array",
            "items": {"type": "string", "pattern": IDENT_PATTERN},
            "minItems": 2,
            "maxItems": 2,
        },
        "format": {"enum": ["count", "money", "share"]},
    },
    "required": ["label"],
    "additionalProperties": False,
}
_BLOCK_SCHEMA: dict[str, dict[str, Any]] = {
    "headline": {
        "description": "KPIs of the report date first in the e-mail (nightshift_core.reports.headline)",
        "type": "object",
        "properties": {
            "sql": {"type": "string"},
            "date": {"type": "string", "pattern": IDENT_PATTERN},
            "empty_when": {"type": "string", "pattern": IDENT_PATTERN},
            "nothing": {"type": "string"},
            "kpis": {"type": "array", "items": _KPI_SCHEMA, "minItems": 1},
        },
        "required": ["sql", "date", "empty_when", "kpis"],
        "additionalProperties": False,
    },
    "freshness": {
        "description": "When the sync counts as late: the newest row (sql: column freshest) older than max_age_hours",
        "type": "object",
        "properties": {
            "sql": {"type": "string"},
            "max_age_hours": {"type": "integer", "minimum": 1, "maximum": 2160},
        },
        "required": ["sql", "max_age_hours"],
        "additionalProperties": False,
    },
    "charts": {
        "description": "PNG charts in the e-mail and the workbook (nightshift_core.reports.charts)",
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,39}$"},
                "title": {"type": "string"},
                "kind": {"enum": ["line", "bar", "shares"]},
                "sql": {"type": "string"},
                "x": {"type": "string", "pattern": IDENT_PATTERN},
                "y": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "facet": {"type": "string", "pattern": IDENT_PATTERN},
                "format": {"enum": ["count", "money", "share"]},
                "days": {"type": "integer", "minimum": 2, "maximum": 366},
            },
            "required": ["name", "title", "kind", "sql", "x", "y"],
            "additionalProperties": False,
        },
    },
}


class ReportConfig(FileModel):
    """A report definition: ``include/config/reports/<report_id>.yaml``."""

    top_level: ClassVar[str] = " in top level"
    derived: ClassVar[frozenset[str]] = frozenset({"path", "assets"})

    report_id: StrictStr = Field(
        description="Lower-case letters, digits and '_'; the DAG is report_<report_id>"
    )
    title: text("Title of the workbook and the e-mail", "title must be a non-empty string")
    description: str = Field("", description="One line shown in the UI (default: the title)")
    schedule: Annotated[StrictStr | None, WithJsonSchema(_SCHEDULE_SCHEMA)] = "@daily"
    assets: SkipJsonSchema[tuple[str, ...]] = ()
    start_date: StartDate
    catchup: Catchup
    tags: Tags = ("nightshift", "reports")
    shape: dict[str, str] = Field(
        default_factory=dict, description="Names substituted into the SQL, e.g. {dataset: classicmodels}"
    )
    sections: tuple[Section, ...] = Field(
        description="The queries of the report, in order", json_schema_extra={"minItems": 1}
    )
    excel: Excel = Excel()
    sheets: SheetsDestination | None = None
    email: EmailDestination | None = None
    currency: Annotated[
        StrictStr,
        Field(pattern="^([A-Z]{3})?$"),
        Fix("currency {value} is not an ISO 4217 code; use three capitals such as USD or EUR"),
    ] = Field("", description="ISO 4217 code printed after every money value (needed when a column is money)")

    headline: Annotated[
        HeadlineSpec | None,
        BeforeValidator(_block(parse_headline)),
        WithJsonSchema(_BLOCK_SCHEMA["headline"]),
    ] = None
    freshness: Annotated[
        FreshnessSpec | None,
        BeforeValidator(_block(parse_freshness)),
        WithJsonSchema(_BLOCK_SCHEMA["freshness"]),
    ] = None
    charts: Annotated[
        tuple[ChartDef, ...], BeforeValidator(_block(parse_charts)), WithJsonSchema(_BLOCK_SCHEMA["charts"])
    ] = ()

    @property
    def dag_id(self) -> str:
        return f"report_{self.report_id}"

    @classmethod
    def prepare(cls, data: dict, info: ValidationInfo) -> dict:
        data = super().prepare(data, info)
        report_id = data.setdefault("report_id", data["path"].stem)
        if not isinstance(report_id, str) or not _REPORT_ID.fullmatch(report_id):
            raise ValueError(
                f"report_id {report_id!r} must be lower-case letters, digits and '_' (e.g. daily_sales)"
            )
        data["description"] = str(data.get("description") or data.get("title") or "")
        sections = data.get("sections")
        if not isinstance(sections, list) or not sections:
            raise ValueError("'sections' must be a non-empty list of {name, sql, ...} entries")
        schedule = data.get("schedule", "@daily")
        if (
            isinstance(schedule, dict)
            and set(schedule) == {"assets"}
            and isinstance(schedule["assets"], list)
        ):
            data["schedule"], data["assets"] = None, _schedule_assets(schedule["assets"])
        if data.get("assets") == () or not isinstance(data.get("schedule", ""), str | None):
            raise ValueError(
                "schedule must be a cron string, a preset like '@daily', null, or {assets: [dataset.table, ...]} "
                "to run when those tables are synced"
            )
        return data

    @field_validator("shape")
    @classmethod
    def _shape_names(cls, shape: dict[str, str]) -> dict[str, str]:
        for key, value in shape.items():
            identifier(key, "template variable name")
            identifier(value, "dataset or table name", f"{{key}}.{key}")
        return shape

    @model_validator(mode="after")
    def _across_sections(self) -> ReportConfig:
        names: set[str] = set()
        for i, section in enumerate(self.sections):
            if section.name in names:
                raise ValueError(
                    f"sections[{i}]: name {section.name!r} appears twice; section names become sheet names"
                )
            names.add(section.name)
        money = [f"sections[{i}] ({s.name}).formats.{c}" for i, s in enumerate(self.sections)
                 for c, f in s.formats.items() if f == "money"]  # fmt: skip
        if money and not self.currency:
            raise ValueError(
                f"{money[0]} is money but the report has no currency; add a top-level key such as "
                "'currency: USD' (the code printed after every amount)"
            )
        return self

    @model_validator(mode="after")
    def _headline_currency(self) -> ReportConfig:
        money = [k.label for k in (self.headline.kpis if self.headline else ()) if k.format == "money"]
        money += [c.name for c in self.charts if c.format == "money"]
        if money and not self.currency:
            raise ValueError(
                f"{money[0]!r} is money but the report has no currency; add a top-level key such as "
                "'currency: USD' (the code printed after every amount)"
            )
        return self


def load_all(directory: Path = REPORT_DIR) -> list[ReportConfig]:
    """Every definition in ``directory``; all problems of all files in one error."""
    return load_folder(directory, load, ReportConfigError, id_key="report_id", what="report")


def load(path: Path) -> ReportConfig:
    """Read and validate ``path``; every problem is a :class:`ReportConfigError`."""
    return parse(ReportConfig, path, ReportConfigError)
