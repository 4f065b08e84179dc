"""Build one report DAG per ``include/config/reports/*.yaml`` (parse time: files only, no I/O)."""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import DAG, Asset, Param

from nightshift.dag_defaults import default_args
from nightshift.operators.email_report import EmailReportOperator
from nightshift.operators.reports import ReportToSheetsOperator, WarehouseToReportOperator
from nightshift_core.reports.config import ReportConfig, load_all

DOC = """
### {title}

{description}. Definition: `include/config/reports/{file}`.

| section | query | shaped |
|---|---|---|
{rows}

1. **build** runs every query for the report date (bound as `@report_date`) and writes the
   workbook, one Parquet file per section and the e-mail bodies to
   `<reports folder>/{report_id}/<date>/` (re-running a date replaces them).
2. **to_sheets** writes each section to its worksheet; skipped, with the reason in its log,
   when no spreadsheet is configured (the local default).
3. **email** sends the summary and the workbook once per report date (a delivery marker in
   `nightshift_ops.report_deliveries`); `force_resend` sends it again.

Every path **to_sheets** and **email** get from build's XCom must lie, symlinks followed, under
`<reports folder>/{report_id}/`; any other path fails the task before anything is sent.

Schedule: {schedule}. The report date is the day before the run unless the `report_date`
Param says otherwise.
"""

BUILD_XCOM = "ti.xcom_pull(task_ids='build')"


def build(config: ReportConfig) -> DAG:
    rows = "\n".join(
        f"| {s.name} | `include/sql/{s.sql}` | {'pivot' if s.pivot else 'as is'} |" for s in config.sections
    )
    schedule: object = config.schedule
    if config.assets:
        schedule = [Asset(name=name) for name in config.assets]
    when = f"when {', '.join(config.assets)} are refreshed" if config.assets else f"`{config.schedule}`"
    doc = DOC.format(
        title=config.title, description=config.description, file=config.path.name, rows=rows,
        report_id=config.report_id, schedule=when,
    )  # fmt: skip
    with DAG(
        dag_id=config.dag_id,
        description=config.description,
        schedule=schedule,
        start_date=config.start_date,
        catchup=config.catchup,
        max_active_runs=1,
        tags=list(config.tags),
        doc_md=doc,
        default_args=default_args(),
        params={
            "report_date": Param(
                "",
                type="string",
                title="Report date",
                description="YYYY-MM-DD; empty: the day before the run.",
                pattern=r"^(\d{4}-\d{2}-\d{2})?$",
            ),
            "force_resend": Param(
                False,
                type="boolean",
                title="Send the e-mail again",
                description="Send even if this report date was already delivered.",
            ),
        },
    ) as dag:
        built = WarehouseToReportOperator(
            task_id="build",
            config_path=str(config.path),
            report_date="{{ params.report_date }}",
        )
        if config.sheets:
            built >> ReportToSheetsOperator(
                task_id="to_sheets",
                report_id=config.report_id,
                spreadsheet_key=config.sheets.spreadsheet_key,
                folder="{{ " + BUILD_XCOM + "['folder'] }}",
                sections=[s.name for s in config.sections],
                worksheet_prefix=config.sheets.worksheet_prefix,
                gcp_conn_id=config.sheets.gcp_conn_id,
            )
        if config.email:
            email = config.email
            built >> EmailReportOperator(
                task_id="email",
                report_id=config.report_id,
                title=config.title,
                to=list(email.to),
                cc=list(email.cc),
                report_date="{{ " + BUILD_XCOM + "['report_date'] }}",
                subject=email.subject.replace("{title}", config.title).replace(
                    "{report_date}", "{{ " + BUILD_XCOM + "['report_date'] }}"
                ),
                workbook_path=("{{ " + BUILD_XCOM + "['workbook'] }}") if email.attach_workbook else None,
                summary_html_path="{{ " + BUILD_XCOM + "['summary_html'] }}",
                summary_text_path="{{ " + BUILD_XCOM + "['summary_text'] }}",
                force_resend="{{ params.force_resend }}",
            )
    return dag


def build_all() -> list[DAG]:
    """All report DAGs; NIGHTSHIFT_REPORT_DIR points at another definitions folder (tests)."""
    directory = os.environ.get("NIGHTSHIFT_REPORT_DIR")
    return [build(config) for config in (load_all(Path(directory)) if directory else load_all())]
