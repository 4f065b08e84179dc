"""Labelling in the Airflow UI: pick the texts, ask one person in one form, store the answers.

``pick_texts`` -> ``label_texts`` (a human-in-the-loop form under "Required Actions", one field per
text) -> ``store_labels`` (the answers into ``<dataset>.labels`` with who and when).

XComs can be edited over the REST API, so no label is made from one. ``pick_texts`` records the
request's texts in ``<dataset>.label_requests`` (the warehouse, whose connection only Admin
reaches); the form is built from that record. ``label_texts`` records the answer it is resumed
with: Airflow's server builds that event from the HITL detail it holds. ``store_labels`` cannot
read that detail itself (the Execution API lets a task read only its own: scope ``ti:self``), so
it stores the recorded answer, and fails, storing nothing, when an XCom of the run differs.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLEntryOperator
from airflow.sdk import BaseNotifier, BaseOperator

from nightshift.operators._fail_fast import fail_fast
from nightshift.operators.reddit import run_time

if TYPE_CHECKING:
    from airflow.sdk import Context

    from nightshift_core.ml.labelling import LabellingConfig
    from nightshift_core.warehouse import Warehouse

PICK_TASK = "pick_texts"
ASK_TASK = "label_texts"
BODY = """Label each text by the feeling it expresses: **positive**, **neutral** or **negative**; \
**skip** when unsure (a skip is not stored). {count} texts, picked where the scorers disagree, \
the champion is least sure or the words are new to every label so far.

The texts are scraped from Reddit and shown as plain text. Answers go into `{dataset}.labels`, \
with your login, and the next retrain counts them as new labels. Unanswered, the request \
closes on its own after {hours:g} hours and nothing is stored."""


REQUESTS = "label_requests"


def request_of(context: Context) -> str:
    """The request's key in ``<dataset>.label_requests``: "<dag_id>/<run_id>"."""
    ti = context["ti"]
    return f"{ti.dag_id}/{ti.run_id}"


class _Requests:
    """The warehouse connection, and the request records in ``<dataset>.label_requests``."""

    config: LabellingConfig
    warehouse_conn_id: str

    def warehouse(self) -> Warehouse:
        from nightshift.hooks.warehouse import WarehouseHook

        return WarehouseHook(self.warehouse_conn_id).get_conn()

    def table(self) -> str:
        return f"{self.config.dataset}.{REQUESTS}"

    def recorded(self, warehouse: Warehouse, request: str) -> list[dict[str, Any]]:
        """The rows of ``request``, one per text, in form order (none: not recorded)."""
        from nightshift_core.warehouse import TableRef
        from nightshift_core.warehouse.sql import render

        if not warehouse.table_exists(TableRef(self.config.dataset, REQUESTS)):
            return []
        sql = render("ml/label_request.sql", dataset=self.config.dataset)
        return warehouse.query(sql, {"request": request}).to_pylist()

    def record(self, warehouse: Warehouse, context: Context, rows: list[dict[str, Any]]) -> None:
        """Merge ``rows`` (LABEL_REQUEST_SCHEMA) into ``<dataset>.label_requests``."""
        import pyarrow as pa

        from nightshift.hooks.warehouse import job_key
        from nightshift_core.ml.records import LABEL_REQUEST_SCHEMA
        from nightshift_core.warehouse import TableRef

        target = TableRef(self.config.dataset, REQUESTS)
        warehouse.prepare_target(target, warehouse.arrow_columns(LABEL_REQUEST_SCHEMA))
        batch = pa.RecordBatch.from_pylist(rows, schema=LABEL_REQUEST_SCHEMA)
        staged = warehouse.stage(job_key(context), target, [batch], LABEL_REQUEST_SCHEMA)
        warehouse.publish(staged, "merge", key=["request", "field"])


class _LabellingStep(_Requests, BaseOperator):
    """The labelling definition and the warehouse connection."""

    def __init__(
        self, *, config: LabellingConfig, warehouse_conn_id: str = "nightshift_warehouse", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.warehouse_conn_id = warehouse_conn_id


class PickTextsOperator(_LabellingStep):
    """The ``items`` scraped texts of the last ``lookback_days`` where a label helps most, not yet
    in ``<dataset>.labels``; skips the rest of the run when there is none (no empty request).

    The picks are recorded as this run's request in ``<dataset>.label_requests``; a re-run keeps
    the recorded picks, so an open form and its record never disagree."""

    @fail_fast
    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow.sdk.exceptions import AirflowSkipException

        from nightshift_core.ml.labelling import pick_texts, recorded_picks, request_rows
        from nightshift_core.warehouse import TableRef
        from nightshift_core.warehouse.sql import render

        cfg = self.config
        now = run_time(context)
        request = request_of(context)
        with self.warehouse() as warehouse:
            if rows := self.recorded(warehouse, request):
                self.log.info("%s: request %s was picked already: keeping its %d texts", self.table(),
                              request, len(rows))  # fmt: skip
                return [p.to_dict() for p in recorded_picks(rows)]
            texts = cfg.texts_dataset
            if not all(
                warehouse.table_exists(TableRef(texts, t)) for t in ("posts", "comments", "sentiment")
            ):
                raise AirflowSkipException(
                    f"no {texts}.posts/comments/sentiment tables yet: nothing to label"
                )
            rows = warehouse.query(
                render("ml/scraped_texts.sql", dataset=texts),
                {"since": now - dt.timedelta(days=cfg.lookback_days), "until": now},
            ).to_pylist()
            labelled = []
            if warehouse.table_exists(TableRef(cfg.dataset, "labels")):
                labelled = [
                    r["text"]
                    for r in warehouse.query(render("ml/labels.sql", dataset=cfg.dataset)).to_pylist()
                ]
        picks = pick_texts(
            rows, labelled_texts=labelled, n=cfg.items, weights=cfg.weights,
            min_chars=cfg.min_chars, max_chars=cfg.max_chars,
        )  # fmt: skip
        self.log.info(
            "%d scored texts, %d labelled texts: picked %d from %s",
            len(rows), len(labelled), len(picks), sorted({p.subreddit for p in picks}),
        )  # fmt: skip
        if not picks:
            raise AirflowSkipException("every recent scraped text is labelled (or none fits): nothing to ask")
        with self.warehouse() as warehouse:
            self.record(warehouse, context, request_rows(request, picks, now))
        return [p.to_dict() for p in picks]


class LabelRequestNotifier(BaseNotifier):
    """E-mail the link to an open labelling request (``to``, else the Variable nightshift_alert_to).

    The message names the DAG and how many texts wait, never the texts themselves. A failure is
    logged by BaseNotifier and does not cost the request."""

    template_fields = ("to",)

    def __init__(self, *, to: str | None = None, smtp_conn_id: str = "nightshift_smtp") -> None:
        super().__init__()
        self.to = to
        self.smtp_conn_id = smtp_conn_id

    def notify(self, context: Context) -> None:
        import hashlib
        import html

        from airflow.sdk import Variable

        from nightshift.hooks.mail import MailHook
        from nightshift_core.alerts import parse_recipients

        recipients = parse_recipients(self.to or Variable.get("nightshift_alert_to", default=None))
        if not recipients:
            self.log.warning("no recipients for the labelling request: set notify.to or nightshift_alert_to")
            return
        ti = context["ti"]
        count = len(ti.xcom_pull(task_ids=PICK_TASK) or [])
        url = HITLEntryOperator.generate_link_to_ui_from_context(context=context)
        subject = f"[nightshift] {count} texts to label ({ti.dag_id})"
        text = f"{count} scraped texts wait for a label in Airflow's Required Actions:\n{url}\n"
        body = f'<p>{count} scraped texts wait for a label in Airflow\'s Required Actions:</p><p><a href="{html.escape(url)}">{html.escape(url)}</a></p>'
        digest = hashlib.sha256(f"{ti.dag_id}/{ti.run_id}/{ti.try_number}".encode()).hexdigest()[:24]
        MailHook(self.smtp_conn_id).send(
            to=recipients,
            subject=subject,
            html=body,
            text=text,
            message_id=f"<labelling.{digest}@nightshift>",
        )


def assignees(config: LabellingConfig, auth_manager: str | None = None) -> list[dict[str, str]]:
    """Who may answer: the users assigned by login, plus ``role:<name>`` for each assigned role
    when the auth manager honours roles (the production one); empty: anyone allowed to edit the DAG."""
    from nightshift_core.access import ROLE_PREFIX, understands_roles

    if auth_manager is None:
        from airflow.sdk.configuration import conf

        auth_manager = conf.get("core", "auth_manager")
    users = [dict(u) for u in config.assigned_users]
    if config.assigned_roles and understands_roles(auth_manager):
        users += [{"id": f"{ROLE_PREFIX}{role}", "name": f"{role} (role)"} for role in config.assigned_roles]
    return users


class LabelTextsOperator(_Requests, HITLEntryOperator):
    """One form with a field per recorded pick (positive / neutral / negative / skip, default skip),
    shown under "Required Actions"; records the answer Airflow resumes it with (from its HITL
    record: answers, who, when) in ``<dataset>.label_requests`` and returns it.

    Unanswered after ``response_timeout_hours`` the request takes its defaults -- every text
    skipped, nobody named -- and the task succeeds: a request nobody answers blocks nothing.
    An XCom of ``pick_texts`` that differs from the recorded picks fails the task at once.
    """

    def __init__(
        self, *, config: LabellingConfig, warehouse_conn_id: str = "nightshift_warehouse", **kwargs: Any
    ) -> None:
        notify = config.notify
        notifiers = (
            [LabelRequestNotifier(to=notify.to, smtp_conn_id=notify.smtp_conn_id)] if notify.email else []
        )
        kwargs.setdefault("subject", f"Label {config.items} scraped texts for the sentiment model")
        super().__init__(
            body=BODY.format(count=config.items, dataset=config.dataset, hours=config.response_timeout_hours),
            notifiers=notifiers,
            assigned_users=assignees(config) or None,
            response_timeout=dt.timedelta(hours=config.response_timeout_hours),
            **kwargs,
        )
        self.config = config
        self.warehouse_conn_id = warehouse_conn_id

    def _build_form(self, context: Context, warehouse: Warehouse) -> list[dict[str, Any]]:
        """Build the form from the recorded picks; returns their rows."""
        from airflow.sdk import Param
        from airflow.sdk.definitions.param import ParamsDict

        from nightshift_core.ml.labelling import (
            LabelRequestError,
            form_fields,
            pick_differences,
            recorded_picks,
        )

        request = request_of(context)
        rows = self.recorded(warehouse, request)
        if not rows:
            raise LabelRequestError(
                f"{self.table()}: no picks recorded for request {request!r}: {PICK_TASK} records them; "
                f"clear {PICK_TASK} to pick again"
            )
        if differences := pick_differences(rows, context["ti"].xcom_pull(task_ids=PICK_TASK)):
            raise LabelRequestError(
                f"{request}: the XCom of {PICK_TASK} differs from the picks recorded in {self.table()}: "
                f"{'; '.join(differences)}. The form shows the recorded texts only; restore the XCom "
                f"or clear {PICK_TASK} and this task"
            )
        picks = recorded_picks(rows)
        fields = form_fields(picks)
        self.params = ParamsDict(
            {name: Param(f.pop("default"), description=f.pop("description"), source="task", **f)
             for name, f in fields.items()}
        )  # fmt: skip
        self.subject = f"Label {len(picks)} scraped texts for the sentiment model"
        cfg = self.config
        self.body = BODY.format(count=len(picks), dataset=cfg.dataset, hours=cfg.response_timeout_hours)
        return rows

    @fail_fast
    def execute(self, context: Context) -> Any:
        with self.warehouse() as warehouse:
            self._build_form(context, warehouse)
        return super().execute(context)

    @fail_fast
    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """``event`` is the HITL record's response as Airflow's server resumes the task with it
        (``HITLDetail.as_resume_event_payload``), not an XCom: it is what gets recorded."""
        from nightshift_core.ml.labelling import answered_rows

        with self.warehouse() as warehouse:
            rows = self._build_form(context, warehouse)
            response = super().execute_complete(context, event)
            self.record(warehouse, context, answered_rows(
                rows, response["params_input"], responded_by=response["responded_by_user"],
                responded_at=response["responded_at"],
            ))  # fmt: skip
        return response


class StoreLabelsOperator(_LabellingStep):
    """Merge the answered texts of this run's recorded request into ``<dataset>.labels`` (by
    example_id ``ui:<text key>``), source ``airflow-ui``, ``labelled_by`` the responding user,
    ``first_seen_at``/``labelled_at`` the answer's time. Skips and a timed-out request store nothing.

    The texts, answers, who and when come from ``<dataset>.label_requests``, never from XCom; an
    XCom of ``pick_texts`` or ``label_texts`` that differs from that record fails the task at once,
    naming each difference, and nothing is stored."""

    @fail_fast
    def execute(self, context: Context) -> dict[str, Any]:
        import pyarrow as pa

        from nightshift.hooks.warehouse import job_key
        from nightshift_core.ml.labelling import (
            LabelRequestError,
            label_records,
            recorded_picks,
            recorded_response,
            responder,
            xcom_differences,
        )
        from nightshift_core.ml.records import LABEL_SCHEMA
        from nightshift_core.warehouse import TableRef
        from nightshift_core.warehouse.sql import render

        ti = context["ti"]
        request = request_of(context)
        with self.warehouse() as warehouse:
            rows = self.recorded(warehouse, request)
            response = recorded_response(request, self.table(), rows)
            differences = xcom_differences(
                rows, response, ti.xcom_pull(task_ids=PICK_TASK), ti.xcom_pull(task_ids=ASK_TASK)
            )
            if differences:
                raise LabelRequestError(
                    f"{request}: the XComs differ from the request recorded in {self.table()}: "
                    f"{'; '.join(differences)}. Nothing was stored: labels are stored only as the "
                    f"labeller answered. Restore the XComs, or clear {ASK_TASK} to ask again"
                )
            picks = recorded_picks(rows)
            answers, user, answered_at = response
            records = label_records(picks, answers, responded_by=user, responded_at=answered_at)
            result = {"asked": len(picks), "labels": len(records), "labelled_by": responder(user),
                      "answered_at": answered_at.isoformat()}  # fmt: skip
            if not records:
                self.log.info(
                    "nothing to store: %s", "every text skipped" if user else "nobody answered in time"
                )
                return result
            target = TableRef(self.config.dataset, "labels")
            warehouse.prepare_target(target, warehouse.arrow_columns(LABEL_SCHEMA))
            known = {
                r["example_id"]: r["first_seen_at"]
                for r in warehouse.query(render("ml/labels.sql", dataset=self.config.dataset)).to_pylist()
            }
            for record in records:  # a retried task keeps the time the label was first stored
                record["first_seen_at"] = known.get(record["example_id"], record["first_seen_at"])
            staged = warehouse.stage(
                job_key(context),
                target,
                [pa.RecordBatch.from_pylist(records, schema=LABEL_SCHEMA)],
                LABEL_SCHEMA,
            )
            warehouse.publish(staged, "merge", key=["example_id"])
        self.log.info(
            "stored %d labels from %s (%d texts asked)", len(records), result["labelled_by"], len(picks)
        )
        return result
