"""Operators that build a report from the warehouse and publish it to Google Sheets."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from nightshift.operators._fail_fast import fail_fast
from nightshift_core.reports.paths import report_path, reports_dir

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import Context

    from nightshift_core.reports.charts import ChartDef
    from nightshift_core.reports.config import ReportConfig, Section
    from nightshift_core.reports.summary import Lead
    from nightshift_core.reports.tables import ReportTable


def resolve_report_date(value: Any, context: Context) -> dt.date:
    """The report date: the ``report_date`` Param when given, else the day before the run.

    A daily run at 06:00 on the 23rd reports on the 22nd. Asset-triggered and manual runs have
    no logical date, so the run's ``run_after`` (always set) decides.
    """
    if isinstance(value, dt.date):
        return value
    if value and str(value).strip() not in ("", "None"):
        try:
            return dt.date.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError(f"report_date {value!r} is not a date like 2026-11-22 (YYYY-MM-DD)") from None
    dag_run = context.get("dag_run")
    moment = context.get("data_interval_end") or getattr(dag_run, "run_after", None)
    if moment is None:
        raise ValueError("the run has neither a data interval nor run_after: pass report_date explicitly")
    return moment.astimezone(dt.UTC).date() - dt.timedelta(days=1)


def section_table(section: Section, table: pa.Table, currency: str = "") -> ReportTable:
    """A query result shaped for the workbook: pivoted when the section says so."""
    from nightshift_core.reports.tables import ChartSpec, ReportTable, pivot

    spread: list[str] = []
    if section.pivot:
        table = pivot(table, index=list(section.pivot.index), columns=section.pivot.columns,
                      values=section.pivot.values)  # fmt: skip
        spread = [c for c in table.column_names if c not in section.pivot.index]

    def expand(columns: tuple[str, ...]) -> tuple[str, ...]:
        """Formats, totals and chart values named after the pivoted value apply to every spread column."""
        if not section.pivot or section.pivot.values not in columns:
            return columns
        return tuple(c for c in columns if c != section.pivot.values) + tuple(spread)

    chart = ChartSpec(section.chart.category, expand(section.chart.values)) if section.chart else None
    formats = {c: f for column, f in section.formats.items() for c in expand((column,))}
    return ReportTable.from_arrow(
        section.name, section.title, table, totals=expand(section.totals), chart=chart, formats=formats,
        currency=currency,
    )  # fmt: skip


#: Parquet schema metadata key of a section file: {"formats": {column: format}, "currency": code}.
FORMATS_METADATA = b"nightshift.formats"


def with_formats(table: pa.Table, section: ReportTable) -> pa.Table:
    """``table`` carrying the section's column formats, so the Sheets task formats what it writes."""
    meta = json.dumps({"formats": dict(section.formats), "currency": section.currency})
    return table.replace_schema_metadata({**(table.schema.metadata or {}), FORMATS_METADATA: meta})


def formats_of(table: pa.Table) -> tuple[dict[str, str], str]:
    """The column formats and currency :func:`with_formats` stored (none for an older file)."""
    meta = json.loads((table.schema.metadata or {}).get(FORMATS_METADATA, b"{}"))
    return dict(meta.get("formats", {})), str(meta.get("currency", ""))


@dataclass(frozen=True)
class ChartFile:
    """A rendered chart written to ``<build folder>/charts/<name>.png``."""

    chart: ChartDef
    path: Path
    alt: str
    content_id: str
    width: int
    height: int
    data: tuple = ()  # what was drawn (charts.Rendered.data)


def content_id(chart: str, report_id: str, day: dt.date) -> str:
    """The Content-ID of a chart's inline image; its first dot-part is the chart's name (its file)."""
    return f"{chart}.{report_id}.{day.isoformat()}@nightshift"


def build_lead(config: ReportConfig, warehouse: Any, day: dt.date, out: Path) -> tuple[Lead, list[ChartFile]]:
    """The headline, the late-sync line and the charts of ``config`` for ``day``; the PNGs under ``out``."""
    from nightshift_core.reports.charts import render as render_chart
    from nightshift_core.reports.headline import compute, late_sync
    from nightshift_core.reports.summary import Lead, Picture
    from nightshift_core.warehouse.sql import render

    def query(sql_file: str) -> list[dict[str, Any]]:
        sql = render(sql_file, **config.shape)
        return warehouse.query(sql, {"report_date": day} if "@report_date" in sql else {}).to_pylist()

    freshest = None
    if config.freshness is not None:
        found = query(config.freshness.sql)
        if found and "freshest" not in found[0]:
            raise ValueError(
                f"report {config.report_id!r}: include/sql/{config.freshness.sql} must return a column "
                "'freshest' (the newest synced row's time)"
            )
        freshest = found[0]["freshest"] if found else None
    headline = None
    if config.headline is not None:
        headline = compute(
            config.headline, query(config.headline.sql), day, freshest=freshest, freshness=config.freshness
        )
    charts: list[ChartFile] = []
    if config.charts:
        (out / "charts").mkdir(parents=True, exist_ok=True)
    for chart in config.charts:
        drawn = render_chart(chart, query(chart.sql), day, config.currency)
        path = out / "charts" / f"{chart.name}.png"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(drawn.png)
        os.replace(tmp, path)
        width, height = drawn.size
        cid = content_id(chart.name, config.report_id, day)
        charts.append(ChartFile(chart, path, drawn.alt, cid, width, height, drawn.data))
    pictures = [Picture(c.content_id, c.chart.title, c.alt, c.width, c.height) for c in charts]
    lead = Lead(headline, late_sync(day, freshest, config.freshness), pictures, config.currency)
    return lead, charts


def overview_rows(lead: Lead) -> list[list[str]]:
    """The headline for the workbook's overview sheet: the late-sync line, no-data line and KPI table."""
    from nightshift_core.reports.summary import headline_columns, headline_rows

    rows: list[list[str]] = []
    if lead.late:
        rows.append([lead.late])
    headline = lead.headline
    if headline is not None:
        if headline.no_data:
            rows.append([headline.no_data[:1].upper() + headline.no_data[1:]])
        rows.append(["KPI", *headline_columns(headline)[1:]])
        rows += headline_rows(headline, lead.currency)
    return rows


class WarehouseToReportOperator(BaseOperator):
    """Run every section query of a report for one date and write its files.

    Files land in ``<reports_dir>/<report_id>/<date>/``: the workbook (plus one per value of
    ``excel.split_by``), each section as Parquet (read by the Sheets task) and the e-mail
    bodies. Each file is replaced atomically, and files of an earlier run of the same date
    that this run did not write are removed, so re-running a date never leaves duplicates.
    Returns the paths (XCom carries references, never data).
    """

    template_fields: Sequence[str] = ("report_date",)

    def __init__(
        self,
        *,
        config_path: str,
        report_date: str = "",
        warehouse_conn_id: str = "nightshift_warehouse",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.config_path = config_path
        self.report_date = report_date
        self.warehouse_conn_id = warehouse_conn_id

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        import pyarrow.parquet as pq

        from nightshift.hooks.warehouse import WarehouseHook
        from nightshift_core.reports.config import EMAIL_ROWS, load
        from nightshift_core.reports.excel import build_workbook, build_workbooks_by, workbook_name
        from nightshift_core.reports.summary import Block, write_summary_files
        from nightshift_core.warehouse.sql import render

        config = load(Path(self.config_path))
        day = resolve_report_date(self.report_date, context)
        # Checked like every path a report task uses: a symlinked date folder must not send the
        # files (and the clean-up of stale ones) somewhere else.
        out = report_path(
            reports_dir() / config.report_id / day.isoformat(), config.report_id, "build folder"
        )
        (out / "sections").mkdir(parents=True, exist_ok=True)
        tables, rows = [], {}
        with WarehouseHook(self.warehouse_conn_id).get_conn() as warehouse:
            for section in config.sections:
                sql = render(section.sql, **config.shape, limit=section.limit)
                # Bound only where used: engines reject parameters a statement does not have.
                result = warehouse.query(sql, {"report_date": day} if "@report_date" in sql else {})
                tables.append(section_table(section, result, config.currency))
                rows[section.name] = len(tables[-1].rows)
                parquet = out / "sections" / f"{section.name}.parquet"
                tmp = parquet.with_name(f".{parquet.name}.tmp")
                # The shaped (maybe pivoted) result, with its column formats for the Sheets task.
                pq.write_table(with_formats(tables[-1].rows.table, tables[-1]), tmp)
                os.replace(tmp, parquet)
                self.log.info("section %s: %d row(s)", section.name, rows[section.name])
            lead, charts = build_lead(config, warehouse, day, out)
        if lead.late:
            self.log.warning("%s", lead.late)
        if lead.headline is not None and lead.headline.no_data:
            self.log.info("headline: %s", lead.headline.no_data)
        subtitle = f"Report date {day.isoformat()} · warehouse data as synced · times in UTC"
        workbook = build_workbook(
            out / workbook_name(config.report_id, day), title=config.title, subtitle=subtitle, tables=tables,
            overview=overview_rows(lead), charts=[(c.chart.title, c.path) for c in charts],
        )  # fmt: skip
        written = {workbook} | {c.path for c in charts}
        parts: dict[str, str] = {}
        if config.excel.split_by:
            by = build_workbooks_by(
                out, report_id=config.report_id, report_date=day, title=config.title, subtitle=subtitle,
                tables=tables, split_column=config.excel.split_by,
            )  # fmt: skip
            parts = {str(k): str(v) for k, v in by.items()}
            written |= set(by.values())
        html_path, text_path = write_summary_files(
            workbook, config.title, subtitle,
            # Only the shown rows become Python; a section with a limit shows that many.
            [Block(t.title, t.columns, t.rows, t.formats, s.limit)
             for t, s in zip(tables, config.sections, strict=True)],
            max_rows=EMAIL_ROWS, note=f"The full report is attached: {workbook.name}.", currency=config.currency,
            lead=lead,
        )  # fmt: skip
        written |= {html_path, text_path} | {out / "sections" / f"{s.name}.parquet" for s in config.sections}
        for stale in [p for p in out.rglob("*") if p.is_file() and p not in written]:
            self.log.info("removing %s left by an earlier run of this date", stale.name)
            stale.unlink()
        return {
            "report_id": config.report_id,
            "report_date": day.isoformat(),
            "folder": str(out),
            "workbook": str(workbook),
            "parts": parts,
            "summary_html": str(html_path),
            "summary_text": str(text_path),
            "rows": rows,
            "charts": {c.chart.name: str(c.path) for c in charts},
            "no_data": lead.headline.no_data if lead.headline else "",
            "late": lead.late,
        }


class ReportToSheetsOperator(BaseOperator):
    """Publish each section of a built report to its own worksheet of one spreadsheet.

    Skipped (with the reason in the log) when no spreadsheet key is set or the Google
    connection has no service-account key: the embedded default has no Sheets. ``folder`` (the
    build task's output, from its XCom) and every section file in it must lie under the report's
    own folder, ``<reports dir>/<report_id>/``; otherwise the task fails before writing anything.
    """

    template_fields: Sequence[str] = ("spreadsheet_key", "folder")

    def __init__(
        self,
        *,
        report_id: str,
        spreadsheet_key: str,
        folder: str,
        sections: Sequence[str],
        worksheet_prefix: str = "",
        gcp_conn_id: str = "google_cloud_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.report_id = report_id
        self.spreadsheet_key = spreadsheet_key
        self.folder = folder
        self.sections = list(sections)
        self.worksheet_prefix = worksheet_prefix
        self.gcp_conn_id = gcp_conn_id

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        import pyarrow.parquet as pq
        from airflow.sdk.exceptions import AirflowSkipException

        from nightshift.hooks.sheets import GoogleSheetsHook, SheetsNotConfigured
        from nightshift_core.reports.tables import ArrowRows

        folder = report_path(self.folder, self.report_id, "folder")
        files = {
            name: report_path(
                folder / "sections" / f"{name}.parquet", self.report_id, f"section file of {name!r}"
            )
            for name in self.sections
        }  # all checked before the first write
        key = (self.spreadsheet_key or "").strip()
        if not key:
            raise AirflowSkipException(
                "Google Sheets is not configured for this report: set the spreadsheet key (see the "
                "report's sheets.spreadsheet_key; docs/reports.md 'Publishing to Google Sheets'), share the "
                f"spreadsheet with the service account of connection {self.gcp_conn_id!r}"
            )
        hook = GoogleSheetsHook(gcp_conn_id=self.gcp_conn_id)
        written = []
        try:
            for name in self.sections:
                table = pq.read_table(files[name])
                formats, currency = formats_of(table)
                result = hook.write_table(
                    key, self.worksheet_prefix + name, table.column_names, ArrowRows(table),
                    formats=formats, currency=currency,
                )  # fmt: skip
                self.log.info("worksheet %s: %s rows in %s request(s)", result["worksheet"], result["rows"],
                              result["requests"])  # fmt: skip
                written.append(result)
        except SheetsNotConfigured as exc:
            raise AirflowSkipException(str(exc)) from None
        return {"spreadsheet": key, "worksheets": written}
