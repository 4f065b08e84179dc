"""E-mail a built report once per report and date: summary in the body, workbook attached."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from nightshift.operators._fail_fast import fail_fast

if TYPE_CHECKING:
    from airflow.sdk import Context

    from nightshift_core.warehouse import JobKey, Warehouse

LEDGER_TABLE = "nightshift_ops.report_deliveries"
#: ``<img src="cid:NAME.REPORT.DATE@nightshift">`` in a report's HTML: a chart attached inline.
_CID = re.compile(r'src="cid:([a-z][a-z0-9_]*\.[A-Za-z0-9_.-]+@nightshift)"')


@dataclass(frozen=True)
class Delivery:
    """One report e-mail the SMTP server accepted."""

    report_id: str
    report_date: dt.date
    message_id: str
    recipients: str  # comma-separated, for people reading the table
    sent_at: dt.datetime


class DeliveryLedger:
    """Delivery markers in the warehouse, one row per (report_id, report_date).

    Written with stage + merge on that key, so recording the same delivery again (a retry)
    leaves one row.
    """

    def __init__(self, warehouse: Warehouse, table: str = LEDGER_TABLE) -> None:
        from nightshift_core.warehouse import TableRef

        self.warehouse = warehouse
        self.table = TableRef.parse(table)

    def find(self, report_id: str, report_date: dt.date) -> Delivery | None:
        """The recorded delivery of this report for this date, if any."""
        if not self.warehouse.table_exists(self.table):
            return None
        rows = self.warehouse.query(
            f"SELECT message_id, recipients, sent_at FROM {self.table} "  # noqa: S608 - validated TableRef
            "WHERE report_id = @report_id AND report_date = @report_date ORDER BY sent_at DESC LIMIT 1",
            {"report_id": report_id, "report_date": report_date},
        ).to_pylist()
        if not rows:
            return None
        return Delivery(report_id=report_id, report_date=report_date, **rows[0])

    def record(self, job: JobKey, delivery: Delivery) -> None:
        import pyarrow as pa

        schema = pa.schema(
            [
                pa.field("report_id", pa.string(), nullable=False),
                pa.field("report_date", pa.date32(), nullable=False),
                pa.field("message_id", pa.string(), nullable=False),
                pa.field("recipients", pa.string()),
                pa.field("sent_at", pa.timestamp("us", tz="UTC"), nullable=False),
            ]
        )
        row = {
            "report_id": [delivery.report_id],
            "report_date": [delivery.report_date],
            "message_id": [delivery.message_id],
            "recipients": [delivery.recipients],
            "sent_at": [delivery.sent_at],
        }
        table = pa.Table.from_pydict(row, schema=schema)
        staged = self.warehouse.stage(job, self.table, table.to_batches(), schema)
        self.warehouse.publish(staged, "merge", key=["report_id", "report_date"])


def report_message_id(report_id: str, report_date: dt.date, domain: str, resend_of: str | None = None) -> str:
    """The Message-ID of a report e-mail: the same for every try of one delivery.

    A retry after a lost reply sends the same id, which mail clients show once; a forced
    resend derives a new one from the message it replaces.
    """
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", report_id).strip("-.") or "report"
    raw = "|".join((report_id, report_date.isoformat(), resend_of or ""))
    digest = hashlib.blake2b(raw.encode(), digest_size=8).hexdigest()
    return f"<nightshift.{slug}.{report_date.isoformat()}.{digest}@{domain}>"


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", "", "none"):
        return False
    raise ValueError(f"{name} is {value!r}; use true or false")


class EmailReportOperator(BaseOperator):
    """Send a built report by e-mail, at most once per ``report_id`` and ``report_date``.

    The report-build task writes the workbook and, next to it, the bodies
    ``<workbook>.summary.html`` / ``.summary.txt`` (``write_summary_files``); this task gets
    their paths, each of which must lie (symlinks followed) under the report's own folder
    ``<reports dir>/<report_id>/``, or the task fails sending nothing. Before sending it looks
    for a delivery marker in ``ledger_table``; after the SMTP server accepted the message, and
    before the session is closed, it writes one. So a retry or a re-run of a report that went
    out sends nothing, unless ``force_resend``.
    """

    template_fields: Sequence[str] = (
        "report_date",
        "title",
        "to",
        "cc",
        "subject",
        "workbook_path",
        "summary_html_path",
        "summary_text_path",
        "force_resend",
    )

    def __init__(
        self,
        *,
        report_id: str,
        title: str,
        to: str | Sequence[str],
        report_date: str = "{{ ds }}",
        cc: str | Sequence[str] = (),
        subject: str | None = None,
        workbook_path: str | None = None,
        summary_html_path: str | None = None,
        summary_text_path: str | None = None,
        force_resend: bool | str = False,
        smtp_conn_id: str = "nightshift_smtp",
        warehouse_conn_id: str = "nightshift_warehouse",
        ledger_table: str = LEDGER_TABLE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.report_id = report_id
        self.title = title
        self.to = to
        self.report_date = report_date
        self.cc = cc
        self.subject = subject
        self.workbook_path = workbook_path
        self.summary_html_path = summary_html_path
        self.summary_text_path = summary_text_path
        self.force_resend = force_resend
        self.smtp_conn_id = smtp_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.ledger_table = ledger_table

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from nightshift.hooks.mail import MailHook
        from nightshift.hooks.warehouse import WarehouseHook, job_key
        from nightshift_core.alerts import parse_recipients
        from nightshift_core.reports.paths import report_folder

        report_date = self._report_date()
        to, cc = parse_recipients(self.to), parse_recipients(self.cc)
        if not to:
            raise AirflowFailException(
                f"report {self.report_id!r}: no recipients; set to= (a list or 'a@x, b@y')"
            )
        html, text, attachments, images = self._bodies()
        force = _as_bool(self.force_resend, "force_resend")
        recipients = [*to, *cc]
        subject = self.subject or f"[nightshift] {self.title} {report_date.isoformat()}"
        hook = MailHook(self.smtp_conn_id)

        with WarehouseHook(self.warehouse_conn_id).get_conn() as warehouse:
            ledger = DeliveryLedger(warehouse, self.ledger_table)
            previous = ledger.find(self.report_id, report_date)
            if previous and not force:
                self.log.info(
                    "Report %s for %s was already sent (message-id %s at %s); not sending it again. "
                    "Set force_resend to send it anyway.",
                    self.report_id,
                    report_date,
                    previous.message_id,
                    previous.sent_at,
                )
                return {"sent": False, "message_id": previous.message_id, "recipients": len(recipients)}

            domain = hook.settings.from_email.rpartition("@")[2]
            message_id = report_message_id(
                self.report_id, report_date, domain, previous.message_id if previous else None
            )
            job = job_key(context)

            def record_delivery() -> None:
                delivery = Delivery(
                    report_id=self.report_id,
                    report_date=report_date,
                    message_id=message_id,
                    recipients=", ".join(recipients),
                    sent_at=dt.datetime.now(dt.UTC),
                )
                try:
                    ledger.record(job, delivery)
                except Exception as exc:
                    # A retry would send the report a second time: fail for good instead.
                    raise AirflowFailException(
                        f"report {self.report_id!r} for {report_date} WAS sent (message-id {message_id}) but "
                        f"the delivery marker could not be written to {self.ledger_table}: {exc}. Not retrying, "
                        "which would send it twice; fix the warehouse and insert the marker row by hand if "
                        "a later run must not send it again"
                    ) from exc

            self.log.info(
                "Sending report %s for %s to %d recipient(s), %d attachment(s)",
                self.report_id,
                report_date,
                len(recipients),
                len(attachments),
            )
            result = hook.send(
                to=to,
                cc=cc,
                subject=subject,
                html=html,
                text=text,
                attachments=attachments,
                attachments_under=report_folder(self.report_id),
                inline_images=images,
                message_id=message_id,
                headers={
                    "Auto-Submitted": "auto-generated",
                    "X-Nightshift-Report": f"{self.report_id} {report_date.isoformat()}",
                },
                on_accepted=record_delivery,
            )
        self.log.info("Report %s for %s sent as %s", self.report_id, report_date, message_id)
        return {"sent": True, "message_id": message_id, "recipients": len(result["recipients"])}

    def _report_date(self) -> dt.date:
        value: Any = self.report_date
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value).strip()[:10])
        except ValueError:
            raise ValueError(
                f"report {self.report_id!r}: report_date is {value!r}; expected YYYY-MM-DD (e.g. '{{{{ ds }}}}')"
            ) from None

    def _bodies(self) -> tuple[str, str, list[Path], dict[str, Path]]:
        """Read the summary files and check the attachment; paths default to next to the workbook.

        Each ``cid:`` image of the HTML is the chart ``charts/<name>.png`` beside the HTML (``name``
        is the Content-ID's first dot-part), checked like the other files; a missing one fails.
        """
        from nightshift_core.reports.paths import report_path
        from nightshift_core.reports.summary import summary_file_paths

        workbook = Path(self.workbook_path) if self.workbook_path else None
        html_path = Path(self.summary_html_path) if self.summary_html_path else None
        text_path = Path(self.summary_text_path) if self.summary_text_path else None
        if workbook is not None and (html_path is None or text_path is None):
            default_html, default_text = summary_file_paths(workbook)
            html_path, text_path = html_path or default_html, text_path or default_text
        if html_path is None or text_path is None:
            raise ValueError(
                f"report {self.report_id!r}: pass workbook_path (the bodies are read from "
                "<workbook>.summary.html/.txt) or both summary_html_path and summary_text_path"
            )
        # The paths come from the build task's XCom: only files in this report's folder are sent.
        html_path = report_path(html_path, self.report_id, "summary_html_path")
        text_path = report_path(text_path, self.report_id, "summary_text_path")
        if workbook is not None:
            workbook = report_path(workbook, self.report_id, "workbook_path")
        missing = [str(p) for p in (html_path, text_path, workbook) if p is not None and not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"report {self.report_id!r}: {missing} not found; the report-build task writes them "
                "(nightshift_core.reports.summary.write_summary_files) before this task runs"
            )
        html = html_path.read_text(encoding="utf-8")
        text = text_path.read_text(encoding="utf-8")
        images = {}
        for cid in dict.fromkeys(_CID.findall(html)):
            png = report_path(
                html_path.parent / "charts" / f"{cid.split('.')[0]}.png", self.report_id, "chart"
            )
            if not png.is_file():
                raise FileNotFoundError(
                    f"report {self.report_id!r}: the HTML shows cid:{cid} but {png} is missing; the "
                    "report-build task writes the charts before this task runs"
                )
            images[cid] = png
        return html, text, [workbook] if workbook is not None else [], images
