"""Render failure alerts as plain data, independent of how they are delivered."""

from __future__ import annotations

import html
from dataclasses import dataclass

_MAX_ERROR_CHARS = 4000


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
