"""E-mail alerts for failed tasks, sent through the project's one mail hook and connection."""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from nightshift_core.alerts import FailureAlert, parse_recipients, redact_url_credentials
from nightshift_core.mail import MailConfigError

if TYPE_CHECKING:
    from airflow.sdk import Context

ALERT_TO_VARIABLE = "nightshift_alert_to"


class AlertConfigError(MailConfigError):
    """The alert cannot be addressed or sent; the message says what to configure."""


class FailureEmailNotifier(BaseNotifier):
    """Send one e-mail per failed task try naming DAG, task, run, try, log URL and exception.

    Recipients: ``to`` if given, else the Airflow Variable ``nightshift_alert_to``
    (comma-separated), read when the alert fires, never at DAG parse time.
    Delivery goes through :class:`~nightshift.hooks.mail.MailHook`, the same hook and
    ``smtp_conn_id`` connection as the report e-mails; ``from_email`` overrides the
    connection's sender.
    """

    template_fields = ("to",)

    def __init__(
        self,
        *,
        to: str | Sequence[str] | None = None,
        smtp_conn_id: str = "nightshift_smtp",
        from_email: str | None = None,
    ) -> None:
        super().__init__()
        self.to = to
        self.smtp_conn_id = smtp_conn_id
        self.from_email = from_email

    def notify(self, context: Context) -> None:
        self.send(alert_from_context(context))

    def send(self, alert: FailureAlert, *, subject: str | None = None) -> list[str]:
        """Deliver ``alert`` with secrets redacted; return the recipients it went to."""
        from nightshift.hooks.mail import MailHook

        alert = alert.redacted(_redact)
        subject = _redact(subject) if subject else None
        recipients = self._recipients()
        hook = MailHook(self.smtp_conn_id, from_email=self.from_email)
        try:
            hook.settings  # noqa: B018 - a connection that cannot send is an alert config error
        except MailConfigError as exc:
            raise AlertConfigError(str(exc)) from None
        hook.send(
            to=recipients,
            subject=subject or alert.subject,
            html=alert.html_body(title=subject),
            text=alert.text_body(),
            headers={
                "Auto-Submitted": "auto-generated",
                "X-Nightshift-Dag": alert.dag_id,
                "X-Nightshift-Task": alert.task_id,
            },
        )
        self.log.info("Sent failure alert for %s.%s to %s", alert.dag_id, alert.task_id, recipients)
        return recipients

    def _recipients(self) -> list[str]:
        value: Any = self.to
        if not value:
            from airflow.sdk import Variable

            value = Variable.get(ALERT_TO_VARIABLE, default=None)
        recipients = parse_recipients(value)
        if not recipients:
            raise AlertConfigError(
                f"no alert recipients: set the Airflow Variable {ALERT_TO_VARIABLE!r} "
                "(comma-separated addresses) or pass to= to FailureEmailNotifier"
            )
        return recipients


def alert_from_context(context: Context) -> FailureAlert:
    """Build the alert from a task callback context (works for partial contexts too)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    exception = context.get("exception")
    trace = ""
    if isinstance(exception, BaseException):
        error = f"{type(exception).__name__}: {exception}"
        trace = "".join(traceback.format_exception(exception)).strip()
    elif exception:
        error = str(exception)
    else:
        error = str(context.get("reason") or "no exception recorded")
    logical_date = context.get("logical_date")
    return FailureAlert(
        dag_id=getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "unknown"),
        task_id=getattr(ti, "task_id", None) or "(dag)",
        run_id=getattr(ti, "run_id", None) or getattr(dag_run, "run_id", "unknown"),
        try_number=getattr(ti, "try_number", None),
        log_url=_safe_log_url(ti),
        error=error,
        traceback=trace,
        logical_date=logical_date.isoformat() if logical_date else None,
    )


def _safe_log_url(ti: Any) -> str | None:
    try:
        return ti.log_url if ti is not None else None
    except Exception:  # a missing [api] base_url must not stop the alert itself
        return None


def _redact(text: str) -> str:
    """Credentials of URLs the text echoes, and every secret Airflow's masker knows, as ``***``.

    The masker knows what ``mask_secret`` was given in this process: connection passwords and
    sensitive extras fetched by the task, and whatever hooks registered.
    """
    from airflow.sdk.log import redact

    return str(redact(redact_url_credentials(text)))
