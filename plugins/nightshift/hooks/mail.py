"""MailHook: every e-mail of the project (reports, failure alerts, labelling and retraining notes)
goes out here, over yagmail, with the ``nightshift_smtp`` connection.

The connection's fields, the security modes and the MIME message are in ``nightshift_core.mail``
(plain data, unit-tested without a server); this hook reads the connection, masks its password,
opens the session and sends once.

yagmail opens the connection (implicit SSL or STARTTLS with a verifying context). Its own login
is never used: it would append ``@gmail.com`` to a login without ``@`` and, without a password,
ask the OS keyring or prompt on a terminal; AUTH runs on its smtplib session with the
connection's login instead. Nor is its ``send`` used: that retries a failed DATA three times and
then returns False silently, which could send a message twice or not at all without an error.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from nightshift_core.mail import (
    MESSAGE_ID,
    MailAuthError,
    MailConfigError,
    MailConnectionError,
    MailDeliveryError,
    MailError,
    SmtpSettings,
    as_bytes,
    build_message,
    connect_error,
    delivery_error,
    smtp_settings,
)

if TYPE_CHECKING:
    import yagmail

__all__ = [
    "MailAuthError",
    "MailConfigError",
    "MailConnectionError",
    "MailDeliveryError",
    "MailError",
    "MailHook",
    "YagmailHook",
]


class MailHook(BaseHook):
    """One e-mail per :meth:`send`, over yagmail, with the ``nightshift_smtp`` connection.

    ``from_email`` overrides the connection's extra of that name (e.g. a separate alerts sender).
    """

    conn_name_attr = "smtp_conn_id"
    default_conn_name = "nightshift_smtp"
    conn_type = "smtp"
    hook_name = "Nightshift mail (yagmail)"

    def __init__(self, smtp_conn_id: str = default_conn_name, from_email: str | None = None) -> None:
        super().__init__()
        self.smtp_conn_id = smtp_conn_id
        self.from_email = from_email

    @cached_property
    def _connection(self) -> Any:
        conn = self.get_connection(self.smtp_conn_id)
        if conn.password:
            from airflow.sdk.log import mask_secret

            mask_secret(conn.password)
        return conn

    @cached_property
    def settings(self) -> SmtpSettings:
        conn = self._connection
        return smtp_settings(
            self.smtp_conn_id,
            host=conn.host,
            port=conn.port,
            login=conn.login,
            has_password=bool(conn.password),
            extra=conn.extra_dejson,
            from_email=self.from_email,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """Verifying context: system CAs, plus ``ssl_ca_file`` when set."""
        context = ssl.create_default_context()
        if self.settings.ca_file:
            context.load_verify_locations(cafile=self.settings.ca_file)
        return context

    def build_message(self, **kwargs: Any) -> EmailMessage:
        """The message :meth:`send` would send (``nightshift_core.mail.build_message``), from this
        connection's sender."""
        return build_message(sender=self.settings.from_email, from_name=self.settings.from_name, **kwargs)

    def send(
        self,
        *,
        to: Sequence[str],
        cc: Sequence[str] = (),
        subject: str,
        html: str,
        text: str,
        attachments: Sequence[Path] = (),
        attachments_under: Path | None = None,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        on_accepted: Callable[[], None] | None = None,
        inline_images: Mapping[str, Path] | None = None,
    ) -> dict[str, Any]:
        """Send one message; return ``{"message_id", "recipients", "refused", "server", "mode"}``.

        The message is built (and its files checked) before connecting. ``on_accepted`` runs
        right after the server accepted the DATA and before QUIT, so the caller can record the
        delivery before anything else can fail. An error after that point (QUIT, closing) is
        logged, not raised: the message went out.
        """
        if message_id is not None and not MESSAGE_ID.fullmatch(message_id):
            # the caller's mistake: refused before the connection is looked up
            raise ValueError(f"message_id {message_id!r} must look like <unique-part@domain>")
        settings = self.settings
        message = self.build_message(
            to=to, cc=cc, subject=subject, html=html, text=text, message_id=message_id, headers=headers,
            attachments=attachments, attachments_under=attachments_under, inline_images=inline_images,
        )  # fmt: skip
        message_id = message["Message-ID"]
        recipients = [*to, *cc]
        client = self._open()
        try:
            refused = self._transmit(client, recipients, as_bytes(message))
            self.log.info(
                "SMTP server %s accepted message %s for %d recipient(s)",
                settings.server,
                message_id,
                len(recipients) - len(refused),
            )
            if refused:
                self.log.warning("Server refused these recipients: %s", sorted(refused))
            if on_accepted is not None:
                on_accepted()
        finally:
            self._close(client)
        return {
            "message_id": message_id,
            "recipients": [r for r in recipients if r not in refused],
            "refused": sorted(refused),
            "server": settings.server,
            "mode": settings.mode,
        }

    def _open(self) -> yagmail.SMTP:
        """Connect (and STARTTLS, AUTH); reconnect ``retry_limit`` times if the server hangs up."""
        settings = self.settings
        password = self._connection.password
        for attempt in range(settings.retry_limit + 1):
            client = self._client()
            try:
                client.login()  # connect + STARTTLS; yagmail's own AUTH is skipped
                if password:
                    client.smtp.login(settings.login, password)
                return client
            except smtplib.SMTPServerDisconnected as exc:
                self._close(client)
                if attempt == settings.retry_limit:
                    raise MailConnectionError(
                        f"{settings.where}: the server closed the connection before the message was "
                        f"sent, {attempt + 1} time(s): {exc}"
                    ) from None
                self.log.warning("SMTP server %s hung up (%s); reconnecting", settings.server, exc)
                time.sleep(min(2**attempt, 10))
            except Exception as exc:
                self._close(client)
                raise connect_error(exc, settings, password) from None
        raise AssertionError("unreachable")

    def _client(self) -> yagmail.SMTP:
        import yagmail

        settings = self.settings
        kwargs: dict[str, Any] = {"timeout": settings.timeout}
        if settings.mode == "ssl":
            kwargs["context"] = self.ssl_context()
        client = yagmail.SMTP(
            user=settings.from_email,
            password=None,
            host=settings.host,
            port=settings.port,
            smtp_ssl=settings.mode == "ssl",
            smtp_starttls={"context": self.ssl_context()} if settings.mode == "starttls" else False,
            smtp_skip_login=True,
            oauth2_file=None,
            **kwargs,
        )
        client.set_logging(None)  # its logger would print its own view of errors we raise
        return client

    def _transmit(self, client: yagmail.SMTP, recipients: list[str], message: bytes) -> dict[str, Any]:
        """MAIL/RCPT/DATA once. No retry here: if the reply to DATA was lost we cannot know
        whether the message went out, and the task retry (same Message-ID) is the caller's call."""
        try:
            return client.smtp.sendmail(self.settings.from_email, recipients, message)
        except (smtplib.SMTPException, OSError) as exc:
            raise delivery_error(exc, self.settings, self._connection.password) from None

    def _close(self, client: yagmail.SMTP) -> None:
        try:
            client.close()
        except (smtplib.SMTPException, OSError) as exc:
            self.log.warning(
                "Closing the SMTP session with %s failed (ignored): %s", self.settings.server, exc
            )


#: The name the hook had while only reports used it.
YagmailHook = MailHook
