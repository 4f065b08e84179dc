"""E-mail as plain data: SMTP settings from a connection's fields, the MIME message, and what a
failure means. No Airflow import and no network: the hook (``nightshift.hooks.mail``) reads the
connection, opens the yagmail session and sends what :func:`build_message` returns.

Connection fields (one SMTP connection, ``nightshift_smtp``, for reports, alerts and every other
mail; the extras are the SMTP provider's names):

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
"""

from __future__ import annotations

import mimetypes
import re
import smtplib
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Literal

from nightshift_core.alerts import parse_recipients
from nightshift_core.errors import PermanentError
from nightshift_core.reports.paths import inside_folder

SmtpMode = Literal["ssl", "starttls", "plain"]
DEFAULT_PORTS: dict[str, int] = {"ssl": 465, "starttls": 587, "plain": 25}
MESSAGE_ID = re.compile(r"<[^<>@\s]+@[^<>@\s]+>")
CONTENT_ID = re.compile(r"[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+")
_PNG = b"\x89PNG\r\n\x1a\n"
_WIRE = policy.SMTP.clone(max_line_length=998)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


class MailError(RuntimeError):
    """Sending failed; the message names the connection and what to change."""


class MailConfigError(MailError, PermanentError):
    """The connection or the message cannot work as given; a retry gives the same answer."""


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

    @property
    def where(self) -> str:
        return f"connection {self.conn_id!r} ({self.mode} to {self.server})"


def decide_mode(disable_ssl: bool, disable_tls: bool, port: int | None) -> SmtpMode:
    """The security mode from the provider's two switches (see the module docstring)."""
    if disable_ssl and disable_tls:
        return "plain"
    if disable_ssl:
        return "starttls"
    if disable_tls:
        return "ssl"
    return "ssl" if port == 465 else "starttls"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


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


def smtp_settings(
    conn_id: str,
    *,
    host: str | None,
    port: int | None,
    login: str | None,
    has_password: bool,
    extra: Mapping[str, Any],
    from_email: str | None = None,
) -> SmtpSettings:
    """Check a connection's fields and decide how to reach the server; ``from_email`` overrides
    the extra of that name. Every problem is a :class:`MailConfigError` naming the fix."""
    if not host:
        raise MailConfigError(f"connection {conn_id!r} has no host: set it (e.g. smtp.gmail.com)")
    disable_ssl = _flag(extra, "disable_ssl", conn_id)
    disable_tls = _flag(extra, "disable_tls", conn_id)
    mode = decide_mode(disable_ssl, disable_tls, port)
    login = login or ""
    from_name, address = parseaddr(from_email or extra.get("from_email") or login)
    if "@" not in address:
        raise MailConfigError(
            f"connection {conn_id!r} has no sender address: set extra 'from_email' "
            "(e.g. reports@example.com) or a login that is an e-mail address"
        )
    if has_password and not login:
        raise MailConfigError(f"connection {conn_id!r} has a password but no login: set the login")
    if has_password and mode == "plain" and not is_loopback(host):
        raise MailConfigError(
            f"connection {conn_id!r}: refusing to send the password unencrypted to {host}; "
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
        host=host,
        port=int(port or DEFAULT_PORTS[mode]),
        mode=mode,
        login=login,
        from_email=address,
        from_name=from_name,
        timeout=timeout,
        retry_limit=max(retry_limit, 0),
        ca_file=ca_file,
    )


# -- the message ---------------------------------------------------------------------------------
def build_message(
    *,
    sender: str,
    from_name: str = "",
    to: Sequence[str],
    cc: Sequence[str] = (),
    subject: str,
    html: str,
    text: str,
    message_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    attachments: Sequence[Path] = (),
    attachments_under: Path | None = None,
    inline_images: Mapping[str, Path] | None = None,
) -> EmailMessage:
    """One e-mail: ``mixed[alternative[text/plain, related[text/html, PNG...]], attachments...]``.

    The HTML and the text are sent exactly as given (base64, so a client shows them byte for
    byte). ``inline_images`` ({Content-ID: PNG file}) are shown where the HTML says
    ``<img src="cid:...">``. Attachments and images must lie, symlinks followed, under
    ``attachments_under`` (required when there are any): a path from an XCom or a Param cannot
    attach a file the worker can read. Without ``message_id`` a unique one is made.
    """
    if not to:
        raise MailConfigError("no recipients: pass at least one address in to=")
    try:
        parse_recipients([*to, *cc])
    except ValueError as exc:
        raise MailConfigError(str(exc)) from None
    if message_id is None:
        message_id = make_msgid("nightshift", domain=sender.rpartition("@")[2])
    elif not MESSAGE_ID.fullmatch(message_id):
        raise ValueError(f"message_id {message_id!r} must look like <unique-part@domain>")
    images = dict(inline_images or {})
    for cid in images:
        if not CONTENT_ID.fullmatch(cid):
            raise ValueError(
                f"inline image Content-ID {cid!r} must look like name@domain (letters, digits, '._-')"
            )
    files = confined([*attachments, *images.values()], attachments_under)
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"attachment(s) {missing} not found; the report-build task writes them")
    attached, pictures = files[: len(attachments)], dict(zip(images, files[len(attachments) :], strict=True))

    message = EmailMessage(policy=policy.SMTP)
    message["From"] = formataddr((from_name, sender)) if from_name else sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        message[name] = value
    utf8 = {"charset": "utf-8"}  # bytes, so the bodies go out exactly as given (no added newline)
    message.set_content(text.encode(), "text", "plain", cte="base64", params=utf8)
    message.add_alternative(html.encode(), "text", "html", cte="base64", params=utf8)
    html_part = message.get_payload()[1]
    for cid, path in pictures.items():
        data = path.read_bytes()
        if not data.startswith(_PNG):
            raise ValueError(f"inline image {path.name} is not a PNG; only PNG charts are sent inline")
        html_part.add_related(data, "image", "png", cid=f"<{cid}>", disposition="inline", filename=path.name)
    for path in attached:
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, subtype = kind.split("/", 1)
        message.add_attachment(path.read_bytes(), maintype, subtype, filename=path.name)
    return message


def as_bytes(message: EmailMessage) -> bytes:
    """The message as sent: CRLF lines, headers unfolded up to SMTP's 998 characters (a folded
    Message-ID reads back with a leading space in some parsers); bodies keep their 76-char lines."""
    return message.as_bytes(policy=_WIRE)


def confined(paths: Sequence[Path], folder: Path | None) -> list[Path]:
    """``paths`` resolved, each checked to lie under ``folder`` (required when there are any)."""
    if paths and folder is None:
        raise MailConfigError(
            "attachments need attachments_under=<the folder they must lie in>, so a path handed "
            "to the task (an XCom, a Param) cannot attach any file the worker can read"
        )
    fix = "Attach only files from that folder (attachments_under)"
    return [inside_folder(p, folder, "attachment", fix) for p in paths] if folder else []


# -- what a failure means ------------------------------------------------------------------------
def reply_text(raw: bytes | str | None, secret: str | None) -> str:
    """A server reply as text, with ``secret`` (the password) replaced by ``***``."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
    return text.replace(secret, "***") if secret else text


def connect_error(exc: BaseException, s: SmtpSettings, secret: str | None = None) -> BaseException:
    """A connect/TLS/AUTH failure as an error saying which connection and what to fix."""
    where = s.where
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return MailAuthError(
            f"{where}: the server refused login {s.login!r} ({exc.smtp_code} "
            f"{reply_text(exc.smtp_error, secret)}). Check the connection's login and password. Gmail "
            "needs a 16-character app password (Google account > Security > 2-Step Verification > App "
            "passwords), not the account password; Outlook/Office 365 needs SMTP AUTH enabled for the mailbox"
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
            f"{where}: TLS failed ({getattr(exc, 'reason', None) or exc}). Port 465 speaks implicit SSL "
            "(extra disable_tls: true); port 587 speaks STARTTLS (extra disable_ssl: true)"
        )
    if isinstance(exc, socket.gaierror):
        return MailConnectionError(f"{where}: unknown host {s.host!r} ({exc}); fix the connection's host")
    if isinstance(exc, TimeoutError):
        return MailConnectionError(
            f"{where}: no answer within {s.timeout:g}s; check host, port and firewall "
            "(and that the mode matches the port)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return MailConnectionError(f"{where}: connection refused; is an SMTP server listening on {s.server}?")
    if isinstance(exc, OSError | smtplib.SMTPException):
        return MailConnectionError(f"{where}: {type(exc).__name__}: {reply_text(str(exc), secret)}")
    return exc


def delivery_error(exc: BaseException, s: SmtpSettings, secret: str | None = None) -> BaseException:
    """A failure of MAIL/RCPT/DATA as an error saying whether anything went out."""
    conn = f"connection {s.conn_id!r}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return MailDeliveryError(
            f"{conn}: {s.server} refused every recipient {sorted(exc.recipients)}; nothing was sent. "
            "Check the addresses"
        )
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return MailDeliveryError(
            f"{conn}: {s.server} refused sender {s.from_email!r} ({exc.smtp_code} "
            f"{reply_text(exc.smtp_error, secret)}); nothing was sent. Set extra 'from_email' to an "
            "address this account may send as"
        )
    if isinstance(exc, smtplib.SMTPDataError):
        return MailDeliveryError(
            f"{conn}: {s.server} rejected the message ({exc.smtp_code} "
            f"{reply_text(exc.smtp_error, secret)}); nothing was sent"
        )
    if isinstance(exc, smtplib.SMTPException | OSError):
        return MailDeliveryError(
            f"{conn}: the session with {s.server} broke while sending ({type(exc).__name__}: "
            f"{reply_text(str(exc), secret)}); the message may or may not have been delivered. "
            "A retry sends it again with the same Message-ID, which mail clients show once"
        )
    return exc
