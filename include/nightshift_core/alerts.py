"""Render failure alerts as plain data, independent of how they are delivered."""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Callable
from dataclasses import dataclass

_MAX_ERROR_CHARS = 4000
_URL = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<rest>\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class FailureAlert:
    """Everything an on-call engineer needs to find a failed task."""

    dag_id: str
    task_id: str
    run_id: str
    try_number: int | None
    log_url: str | None
    error: str
    traceback: str = ""
    logical_date: str | None = None

    @property
    def subject(self) -> str:
        attempt = f" (try {self.try_number})" if self.try_number else ""
        return f"[nightshift] FAILED {self.dag_id}.{self.task_id}{attempt}"

    def redacted(self, redact: Callable[[str], str]) -> FailureAlert:
        """This alert with ``redact`` applied to every text it shows."""
        texts = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **{k: redact(v) for k, v in texts.items() if isinstance(v, str)})

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("DAG", self.dag_id),
            ("Task", self.task_id),
            ("Run", self.run_id),
            ("Logical date", self.logical_date or "none (manual run)"),
            ("Try", str(self.try_number) if self.try_number is not None else "unknown"),
            ("Log", self.log_url or "not available"),
            ("Error", truncate(self.error, 1000)),
        ]

    def text_body(self) -> str:
        lines = [f"{k}: {v}" for k, v in self.rows()]
        if self.traceback:
            lines += ["", "Traceback (last lines):", truncate(self.traceback)]
        return "\n".join(lines)

    def html_body(self, title: str | None = None) -> str:
        cells = []
        for key, value in self.rows():
            shown = html.escape(value)
            if key == "Log" and self.log_url and self.log_url.startswith(("http://", "https://")):
                shown = f'<a href="{html.escape(self.log_url, quote=True)}">{shown}</a>'
            cells.append(f"<tr><th align='left'>{html.escape(key)}</th><td>{shown}</td></tr>")
        trace = ""
        if self.traceback:
            trace = f"<h4>Traceback (last lines)</h4><pre>{html.escape(truncate(self.traceback))}</pre>"
        return f"<h3>{html.escape(title or self.subject)}</h3><table>{''.join(cells)}</table>{trace}"


def truncate(text: str, limit: int = _MAX_ERROR_CHARS) -> str:
    """Keep alerts readable: cut the middle of long text, keeping its start and its end.

    The end of a traceback names the failing line and the error, so it is always kept.
    """
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    return f"{text[:head]}\n... [{len(text) - limit} characters cut] ...\n{text[-tail:]}"


def redact_url_credentials(text: str) -> str:
    """Replace the user and password of every URL in ``text`` with ``***:***``.

    Exceptions echo URLs with the password as typed, so it may hold '/', '@' or ':': the
    credentials run up to the URL's last '@'. Text before that '@' without a ':' carries no
    password (``mysql://etl@host``, ``https://host/?by=a@b``) and is kept.
    """

    def hide(url: re.Match[str]) -> str:
        userinfo, at, host_and_rest = url["rest"].rpartition("@")
        if not at or ":" not in userinfo:
            return url[0]
        return f"{url['scheme']}***:***@{host_and_rest}"

    return _URL.sub(hide, text)


def parse_recipients(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Accept 'a@x, b@y', 'a@x;b@y' or a list; drop blanks and duplicates, keep order."""
    if value is None:
        return []
    items = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
    seen: dict[str, None] = {}
    for item in items:
        address = item.strip()
        if address:
            if "@" not in address or any(c.isspace() for c in address):
                raise ValueError(f"invalid e-mail address {address!r}: expected name@domain")
            seen.setdefault(address, None)
    return list(seen)
