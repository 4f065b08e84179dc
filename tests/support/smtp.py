"""Real SMTP servers for tests: aiosmtpd on a free port, in plain, STARTTLS or implicit-SSL mode,
with optional AUTH, and a private CA (made here with ``cryptography``) that signs its certificate."""

from __future__ import annotations

import contextlib
import datetime as dt
import email.policy
import ipaddress
import json
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from support.net import free_port

Mode = Literal["plain", "starttls", "ssl"]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    login: str | None  # the AUTH login of the session, None without AUTH

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=email.policy.default).parsebytes(self.raw)


@dataclass
class RecordingHandler:
    """Keeps every accepted message; can drop the connection instead of answering QUIT."""

    drop_at_quit: bool = False
    at_quit: Callable[[], Any] | None = None  # called when QUIT arrives; results kept in seen_at_quit
    messages: list[Received] = field(default_factory=list)
    seen_at_quit: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server, session: Session, envelope: Envelope) -> str:  # noqa: N802
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.messages.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content, login)
        )
        return "250 OK queued"

    async def handle_QUIT(self, server, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.at_quit is not None:
            self.seen_at_quit.append(self.at_quit())
        if self.drop_at_quit:
            server.transport.abort()  # the reply to QUIT never arrives
        return "221 Bye"


class Credentials:
    """aiosmtpd authenticator accepting one login/password."""

    def __init__(self, login: str, password: str) -> None:
        self.login, self.password = login.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.login
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_pki(directory: Path) -> Pki:
    """A private CA and a certificate it signs for localhost / 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nightshift test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pki


def start_server(
    handler: RecordingHandler,
    mode: Mode = "plain",
    *,
    pki: Pki | None = None,
    credentials: Credentials | None = None,
) -> Controller:
    """Start aiosmtpd on 127.0.0.1:<free port>. STARTTLS mode refuses mail before STARTTLS;
    with credentials, AUTH is required (and, except over implicit SSL, only offered after TLS)."""
    kwargs: dict = {}
    if mode != "plain":
        assert pki is not None, "TLS modes need a certificate"
    if mode == "starttls":
        kwargs.update(tls_context=pki.server_context(), require_starttls=True)
    if mode == "ssl":
        kwargs.update(ssl_context=pki.server_context())
    if credentials is not None:
        # aiosmtpd only counts STARTTLS as TLS; over implicit SSL the channel is already encrypted.
        kwargs.update(authenticator=credentials, auth_required=True, auth_require_tls=mode != "ssl")
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


@contextlib.contextmanager
def mailbox(monkeypatch) -> Iterator[RecordingHandler]:
    """A local SMTP server behind the ``nightshift_smtp`` connection; yields its recording handler."""
    handler = RecordingHandler()
    server = start_server(handler)
    try:
        conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": server.port,
                "extra": {"from_email": "ml@nightshift.test", "disable_ssl": True, "disable_tls": True}}  # fmt: skip
        monkeypatch.setenv("AIRFLOW_CONN_NIGHTSHIFT_SMTP", json.dumps(conn))
        yield handler
    finally:
        server.stop()
