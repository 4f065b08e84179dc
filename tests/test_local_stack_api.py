"""The local stack's REST client: a 500 from the SQLite-backed API server (a locked database) is tried
again for reads and PATCHes, never for a POST, which could start a second run."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import local_stack
import pytest


class _Flaky(http.server.BaseHTTPRequestHandler):
    failures: dict[str, int] = {}
    seen: list[str] = []

    def _answer(self) -> None:
        self.seen.append(self.command)
        if self.failures.get(self.command, 0) > 0:
            self.failures[self.command] -= 1
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b'{"detail": "database is locked"}')
            return
        body = json.dumps({"ok": self.command}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PATCH = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[local_stack.Api]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = local_stack.Api.__new__(local_stack.Api)  # no login: the handler takes any token
    client.url, client.token = f"http://127.0.0.1:{server.server_port}", "t"
    _Flaky.seen.clear()
    try:
        yield client
    finally:
        server.shutdown()


def test_a_patch_answered_500_is_tried_again(api):
    _Flaky.failures = {"PATCH": 2}
    assert api.patch("/api/v2/x", {"note": "n"}) == {"ok": "PATCH"}
    assert _Flaky.seen == ["PATCH", "PATCH", "PATCH"]


def test_a_get_gives_up_after_three_500s(api):
    _Flaky.failures = {"GET": 3}
    with pytest.raises(RuntimeError, match=r"GET /api/v2/x -> HTTP 500: .*database is locked"):
        api.get("/api/v2/x")
    assert _Flaky.seen == ["GET", "GET", "GET"]


def test_a_post_is_never_repeated(api):
    _Flaky.failures = {"POST": 1}
    with pytest.raises(RuntimeError, match=r"POST /api/v2/x -> HTTP 500"):
        api.post("/api/v2/x", {})
    assert _Flaky.seen == ["POST"]
