"""Fake Reddit for tests: the local replay server (one implementation) plus fault injection."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from nightshift_core.local.reddit_replay import RedditReplay, Server, Snapshot

CLIENT_ID, CLIENT_SECRET = "local-test-client", "local-test-secret"
USER_AGENT = "test:com.example.nightshift:v0.1 (by /u/nightshift_tests)"


@dataclass
class Fault:
    """Answer the next ``times`` requests whose path matches ``path`` with this response."""

    path: str
    status: int
    body: str = '{"message": "injected", "error": 500}'
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    content_type: str = "application/json"


@dataclass
class FaultyReddit(RedditReplay):
    faults: list[Fault] = field(default_factory=list)

    def intercept(self, request: Request) -> Response | None:
        for fault in self.faults:
            if fault.times > 0 and re.search(fault.path, request.path):
                fault.times -= 1
                return Response(fault.body, status=fault.status, headers=fault.headers,
                                content_type=fault.content_type)  # fmt: skip
        return None

    def requests(self, path: str = "") -> list[Any]:
        return [e for e in self.log if re.search(path, e.path)]


class FakeReddit:
    """A running fake plus the ``reddit_default`` connection pointing at it."""

    def __init__(self, snapshot: dict[str, Any], anchor: float, monkeypatch: Any, **options: Any) -> None:
        options = {"tree_limit": 5, "max_depth": 4, "ratelimit_budget": 1_000_000, **options}
        self.app = FaultyReddit(Snapshot(snapshot, anchor), credentials={CLIENT_ID: CLIENT_SECRET}, **options)
        self.server = Server(self.app)
        self.monkeypatch = monkeypatch
        self.connect()

    @property
    def snapshot(self) -> Snapshot:
        return self.app.snapshot

    def connect(self, conn_id: str = "reddit_default", secret: str = CLIENT_SECRET, **extra: Any) -> None:
        url = self.server.url
        extra = {"user_agent": USER_AGENT, "oauth_url": url, "reddit_url": url, "short_url": url,
                 "retry_attempts": 3, "retry_backoff_seconds": 0.05, "timeout": 10, **extra}  # fmt: skip
        conn = {"conn_type": "generic", "login": CLIENT_ID, "password": secret, "extra": extra}
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))

    def fault(self, path: str, status: int, **kwargs: Any) -> Fault:
        fault = Fault(path, status, **kwargs)
        self.app.faults.append(fault)
        return fault

    def stop(self) -> None:
        self.server.stop()
