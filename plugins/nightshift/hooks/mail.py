"""YagmailHook: send an HTML e-mail with attachments through the ``nightshift_smtp`` connection.

The connection is the one the failure notifier uses through the SMTP provider, read the same
way so one connection serves both:

``host``, ``port``       the server (port defaults: 465 for SSL, 587 for STARTTLS, 25 plain)
``login``, ``password``  AUTH credentials; no password means no AUTH (a local catcher)
extra ``from_email``     the From address, optionally with a name: ``Reports <r@example.com>``
                         (default: the login)
extra ``disable_ssl``    true: no implicit TLS (provider default false)
extra ``disable_tls``    true: no STARTTLS (provider default false)
extra ``timeout``        socket timeout in seconds (default 30)
extra ``retry_limit``    reconnects when the server drops the connection before the message
                         is sent (default 5, as in the provider)
extra ``ssl_ca_file``    PEM bundle of the CA that signed the server's certificate, for a
                         server with a private CA; verification always stays on

Security mode, as the provider decides it (``use_ssl = not disable_ssl``, ``starttls = not
disable_tls``):

=============  =============  =====================================================
disable_ssl    disable_tls    mode
=============  =============  =====================================================
false          true           implicit SSL (Gmail: port 465, a 16-char app password)
true           false          STARTTLS (Outlook/Office 365 and most others: port 587)
true           true           plain (the local mail catcher; AUTH only to a loopback host)
false          false          both asked for, which the provider cannot do (STARTTLS
                              inside TLS): implicit SSL on port 465, STARTTLS otherwise
=============  =============  =====================================================

Unlike the provider, the strings ``"false"``/``"0"``/``"no"`` count as false.

yagmail builds the message (From/To/Cc/Subject/Date, the deterministic Message-ID,
attachments) and opens the connection. Its own login is never used: it would append
``@gmail.com`` to a login without ``@`` and, without a password, ask the OS keyring or prompt
on a terminal; AUTH runs on its smtplib session with the connection's login instead. Nor is its
``send`` used: that retries a failed DATA three times and then returns False silently, which
could send a report twice or not at all without an error.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from email.utils import formataddr, parseaddr
from functools import cached_property
from ipaddress import ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from email.mime.multipart import MIMEMultipart

    import yagmail

SmtpMode = Literal["ssl", "starttls", "plain"]
DEFAULT_PORTS: dict[str, int] = {"ssl": 465, "starttls": 587, "plain": 25}
_MESSAGE_ID = re.compile(r"<[^<>@\s]+@[^<>@\s]+>")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


class MailError(RuntimeError):
    """Sending failed; the message names the connection and what to change."""


class MailConfigError(MailError):
    """The SMTP connection cannot work as configured."""


class MailConnectionError(MailError):
    """The server could not be reached or the secure channel not set up; nothing was sent."""


class MailAuthError(MailError):
    """The server refused the login; nothing was sent."""


class MailDeliveryError(MailError):
    """The server refused the message, or the session broke while sending it."""


@dataclass(frozen=True)
class SmtpSettings:
    """What the hook reads from the connection (never the password)."""

    conn_id: str
    host: str
    port: int
    mode: SmtpMode
    login: str
    from_email: str  # the address alone (the envelope sender)
    from_name: str  # display name, from an extra like "Nightshift Reports <reports@example.com>"
    timeout: float
    retry_limit: int
    ca_file: str | None

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"


def _flag(extra: Mapping[str, Any], name: str, conn_id: str) -> bool:
    value = extra.get(name, False)
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise MailConfigError(f"connection {conn_id!r}: extra {name!r} is {value!r}; use true or false")


def decide_mode(disable_ssl: bool, disable_tls: bool, port: int | None) -> SmtpMode:
    """The security mode from the provider's two switches (see the module docstring)."""
    if disable_ssl and disable_tls:
        return "plain"
    if disable_ssl:
        return "starttls"
    if disable_tls:
        return "ssl"
    return "ssl" if port == 465 else "starttls"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class YagmailHook(BaseHook):
    """One e-mail per :meth:`send`, over yagmail, with the ``nightshift_smtp`` connection."""

    conn_name_attr = "smtp_conn_id"
    default_conn_name = "nightshift_smtp"
    conn_type = "smtp"
    hook_name = "Nightshift mail (yagmail)"

    def __init__(self, smtp_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.smtp_conn_id = smtp_conn_id

    @cached_property
    def _connection(self) -> Any:
        conn = self.get_connection(self.smtp_conn_id)
        if conn.password:
            from airflow.sdk.log import mask_secret

            mask_secret(conn.password)
        return conn

    @cached_property
    def settings(self) -> SmtpSettings:
        conn, conn_id = self._connection, self.smtp_conn_id
        extra = conn.extra_dejson
        if not conn.host:
            raise MailConfigError(f"connection {conn_id!r} has no host: set it (e.g. smtp.gmail.com)")
        disable_ssl = _flag(extra, "disable_ssl", conn_id)
        disable_tls = _flag(extra, "disable_tls", conn_id)
        mode = decide_mode(disable_ssl, disable_tls, conn.port)
        login = conn.login or ""
        from_name, from_email = parseaddr(extra.get("from_email") or login)
        if "@" not in from_email:
            raise MailConfigError(
                f"connection {conn_id!r} has no sender address: set extra 'from_email' "
                "(e.g. reports@example.com) or a login that is an e-mail address"
            )
        if conn.password and not login:
            raise MailConfigError(f"connection {conn_id!r} has a password but no login: set the login")
        if conn.password and mode == "plain" and not _is_loopback(conn.host):
            raise MailConfigError(
                f"connection {conn_id!r}: refusing to send the password unencrypted to {conn.host}; "
                "use implicit SSL (port 465, extra disable_tls: true) or STARTTLS (port 587, "
                "extra disable_ssl: true)"
            )
        if extra.get("ssl_context") == "none":
            raise MailConfigError(
                f"connection {conn_id!r}: extra ssl_context 'none' turns certificate checks off, "
                "which this hook does not do; set extra 'ssl_ca_file' to the CA that signed the server"
            )
        ca_file = extra.get("ssl_ca_file") or None
        if ca_file and not Path(ca_file).is_file():
            raise MailConfigError(f"connection {conn_id!r}: extra ssl_ca_file {ca_file!r} is not a file")
        try:
            timeout = float(extra.get("timeout", 30))
            retry_limit = int(extra.get("retry_limit", 5))
        except (TypeError, ValueError) as exc:
            raise MailConfigError(f"connection {conn_id!r}: extra timeout/retry_limit: {exc}") from None
        return SmtpSettings(
            conn_id=conn_id,
            host=conn.host,
            port=int(conn.port or DEFAULT_PORTS[mode]),
            mode=mode,
            login=login,
            from_email=from_email,
            from_name=from_name,
            timeout=timeout,
            retry_limit=max(retry_limit, 0),
            ca_file=ca_file,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """Verifying context: system CAs, plus ``ssl_ca_file`` when set."""
        context = ssl.create_default_context()
        if self.settings.ca_file:
            context.load_verify_locations(cafile=self.settings.ca_file)
        return context

    # -- sending ---------------------------------------------------------------------------
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
        message_id: str,
        headers: Mapping[str, str] | None = None,
        on_accepted: Callable[[], None] | None = None,
        inline_images: Mapping[str, Path] | None = None,
    ) -> dict[str, Any]:
        """Send one message; return ``{"message_id", "recipients", "refused", "server", "mode"}``.

        ``on_accepted`` runs right after the server accepted the DATA and before QUIT, so the
        caller can record the delivery before anything else can fail. An error after that point
        (QUIT, closing) is logged, not raised: the message went out. Attachments must lie, symlinks
        followed, under ``attachments_under``; a path outside it is refused before connecting.
        """
        if not to:
            raise MailConfigError("no recipients: pass at least one address in to=")
        if not _MESSAGE_ID.fullmatch(message_id):
            raise ValueError(f"message_id {message_id!r} must look like <unique-part@domain>")
        settings = self.settings
        message = self.build_message(
            to=to,
            cc=cc,
            subject=subject,
            html=html,
            text=text,
            attachments=attachments,
            attachments_under=attachments_under,
            message_id=message_id,
            headers=headers,
            inline_images=inline_images,
        )
        recipients = [*to, *cc]
        client = self._open()
        try:
            refused = self._transmit(client, recipients, message.as_string())
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

    def build_message(
        self,
        *,
        to: Sequence[str],
        cc: Sequence[str],
        subject: str,
        html: str,
        text: str,
        attachments: Sequence[Path],
        attachments_under: Path | None = None,
        message_id: str,
        headers: Mapping[str, str] | None = None,
        inline_images: Mapping[str, Path] | None = None,
    ) -> MIMEMultipart:
        """The MIME message yagmail builds, with our exact HTML and text as the two alternatives.

        (yagmail would turn newlines of the HTML into <br> and use the HTML source as the text part.)
        ``inline_images`` ({Content-ID: PNG file}, each under ``attachments_under``) go into the HTML's
        multipart/related part, shown where the HTML says ``<img src="cid:...">``.
        """
        from yagmail.headers import resolve_addresses
        from yagmail.message import prepare_message
        from yagmail.validate import validate_email_with_regex

        sender = self.settings.from_email
        attachments = self._confined(attachments, attachments_under)
        missing = [str(p) for p in attachments if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"attachment(s) {missing} not found; the report-build task writes them")
        addresses = resolve_addresses(sender, sender, list(to), list(cc) or None, None)
        for address in addresses["recipients"]:
            validate_email_with_regex(address)
        message = prepare_message(
            sender,
            sender,
            addresses,
            subject,
            ["(body)"],
            [str(p) for p in attachments] or None,
            dict(headers or {}),
            "utf-8",
            prettify_html=False,
            message_id=message_id,
        )
        _replace_bodies(message, html=html, text=text)
        images = dict(inline_images or {})
        confined = self._confined(list(images.values()), attachments_under)
        _add_inline_images(message, dict(zip(images, confined, strict=True)))
        del message["From"]  # yagmail repeats the address as display name
        message["From"] = formataddr((self.settings.from_name, sender)) if self.settings.from_name else sender
        for part in message.get_payload()[1:]:
            # yagmail marks only application/* parts as attachments; a .csv would show inline.
            if part.get("Content-Disposition") is None and part.get_param("name"):
                part.add_header("Content-Disposition", "attachment", filename=part.get_param("name"))
        return message

    @staticmethod
    def _confined(attachments: Sequence[Path], folder: Path | None) -> list[Path]:
        """The attachments resolved, each checked to lie under ``folder`` (required when there are any)."""
        from nightshift_core.reports.paths import inside_folder

        if attachments and folder is None:
            raise MailConfigError(
                "attachments need attachments_under=<the folder they must lie in>, so a path handed "
                "to the task (an XCom, a Param) cannot attach any file the worker can read"
            )
        fix = "Attach only files from that folder (attachments_under)"
        return [inside_folder(p, folder, "attachment", fix) for p in attachments] if folder else []

    def _open(self) -> yagmail.SMTP:
        """Connect (and STARTTLS, AUTH); reconnect ``retry_limit`` times if the server hangs up."""
        settings = self.settings
        for attempt in range(settings.retry_limit + 1):
            client = self._client()
            try:
                client.login()  # connect + STARTTLS; yagmail's own AUTH is skipped
                password = self._connection.password
                if password:
                    client.smtp.login(settings.login, password)
                return client
            except smtplib.SMTPServerDisconnected as exc:
                self._close(client)
                if attempt == settings.retry_limit:
                    raise MailConnectionError(
                        f"connection {settings.conn_id!r}: {settings.server} closed the connection "
                        f"before the message was sent ({settings.mode}), {attempt + 1} time(s): {exc}"
                    ) from None
                self.log.warning("SMTP server %s hung up (%s); reconnecting", settings.server, exc)
                time.sleep(min(2**attempt, 10))
            except Exception as exc:
                self._close(client)
                raise self._explain(exc) from None
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

    def _transmit(self, client: yagmail.SMTP, recipients: list[str], message: str) -> dict[str, Any]:
        """MAIL/RCPT/DATA once. No retry here: if the reply to DATA was lost we cannot know
        whether the message went out, and the task retry (same Message-ID) is the caller's call."""
        settings = self.settings
        try:
            return client.smtp.sendmail(settings.from_email, recipients, message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise MailDeliveryError(
                f"connection {settings.conn_id!r}: {settings.server} refused every recipient "
                f"{sorted(exc.recipients)}; nothing was sent. Check the addresses"
            ) from None
        except smtplib.SMTPSenderRefused as exc:
            raise MailDeliveryError(
                f"connection {settings.conn_id!r}: {settings.server} refused sender {settings.from_email!r} "
                f"({exc.smtp_code} {self._reply(exc.smtp_error)}); nothing was sent. Set extra 'from_email' "
                "to an address this account may send as"
            ) from None
        except smtplib.SMTPDataError as exc:
            raise MailDeliveryError(
                f"connection {settings.conn_id!r}: {settings.server} rejected the message "
                f"({exc.smtp_code} {self._reply(exc.smtp_error)}); nothing was sent"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise MailDeliveryError(
                f"connection {settings.conn_id!r}: the session with {settings.server} broke while sending "
                f"({type(exc).__name__}: {exc}); the message may or may not have been delivered. "
                "A retry sends it again with the same Message-ID, which mail clients show once"
            ) from None

    def _close(self, client: yagmail.SMTP) -> None:
        try:
            client.close()
        except (smtplib.SMTPException, OSError) as exc:
            self.log.warning(
                "Closing the SMTP session with %s failed (ignored): %s", self.settings.server, exc
            )

    def _reply(self, raw: bytes | str | None) -> str:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
        password = self._connection.password
        return text.replace(password, "***") if password else text

    def _explain(self, exc: BaseException) -> BaseException:
        """Turn a connect/TLS/AUTH failure into an error saying which connection and what to fix."""
        s = self.settings
        where = f"connection {s.conn_id!r} ({s.mode} to {s.server})"
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return MailAuthError(
                f"{where}: the server refused login {s.login!r} ({exc.smtp_code} {self._reply(exc.smtp_error)}). "
                "Check the connection's login and password. Gmail needs a 16-character app password "
                "(Google account > Security > 2-Step Verification > App passwords), not the account "
                "password; Outlook/Office 365 needs SMTP AUTH enabled for the mailbox"
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            if "STARTTLS" in str(exc).upper():
                return MailConnectionError(
                    f"{where}: the server does not offer STARTTLS. Use port 465 with implicit SSL "
                    "(extra disable_tls: true, disable_ssl: false) or, for a local catcher only, set both"
                )
            return MailAuthError(
                f"{where}: the server offers no AUTH on this channel, so login {s.login!r} cannot be used. "
                "Servers announce AUTH only after TLS: use implicit SSL or STARTTLS"
            )
        if isinstance(exc, ssl.SSLCertVerificationError):
            return MailConnectionError(
                f"{where}: the server's certificate is not trusted ({exc.verify_message}). If it is signed "
                "by a private CA, set extra 'ssl_ca_file' to that CA's PEM file; check the host name"
            )
        if isinstance(exc, ssl.SSLError):
            return MailConnectionError(
                f"{where}: TLS failed ({exc.reason or exc}). Port 465 speaks implicit SSL "
                "(extra disable_tls: true); port 587 speaks STARTTLS (extra disable_ssl: true)"
            )
        if isinstance(exc, socket.gaierror):
            return MailConnectionError(f"{where}: unknown host {s.host!r} ({exc}); fix the connection's host")
        if isinstance(exc, TimeoutError | socket.timeout):
            return MailConnectionError(
                f"{where}: no answer within {s.timeout:g}s; check host, port and firewall "
                "(and that the mode matches the port)"
            )
        if isinstance(exc, ConnectionRefusedError):
            return MailConnectionError(
                f"{where}: connection refused; is an SMTP server listening on {s.server}?"
            )
        if isinstance(exc, OSError | smtplib.SMTPException):
            return MailConnectionError(f"{where}: {type(exc).__name__}: {self._reply(str(exc))}")
        return exc


def _replace_bodies(message: Message, *, html: str, text: str) -> None:
    """Put our bodies into yagmail's layout: mixed[alternative[text/plain, related[text/html]], ...]."""
    from email.mime.text import MIMEText

    alternative = message.get_payload()[0]
    parts = alternative.get_payload()
    related = parts[1] if len(parts) == 2 else None
    if (
        alternative.get_content_type() != "multipart/alternative"
        or parts[0].get_content_type() != "text/plain"
        or related is None
        or related.get_content_type() != "multipart/related"
        or related.get_payload()[0].get_content_type() != "text/html"
    ):
        raise MailError(
            "unexpected MIME layout from yagmail; pin the yagmail version this hook was written for"
        )
    parts[0] = MIMEText(text, "plain", "utf-8")
    related.get_payload()[0] = MIMEText(html, "html", "utf-8")


_CONTENT_ID = re.compile(r"[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+")


def _add_inline_images(message: Message, images: Mapping[str, Path]) -> None:
    """Each PNG as an inline part of the HTML's multipart/related, with its Content-ID."""
    from email.mime.image import MIMEImage

    related = message.get_payload()[0].get_payload()[1]
    for cid, path in images.items():
        if not _CONTENT_ID.fullmatch(cid):
            raise ValueError(
                f"inline image Content-ID {cid!r} must look like name@domain (letters, digits, '._-')"
            )
        data = Path(path).read_bytes()
        if not data.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ValueError(f"inline image {Path(path).name} is not a PNG; only PNG charts are sent inline")
        part = MIMEImage(data, "png")
        part.add_header("Content-ID", f"<{cid}>")
        part.add_header("Content-Disposition", "inline", filename=Path(path).name)
        related.attach(part)
