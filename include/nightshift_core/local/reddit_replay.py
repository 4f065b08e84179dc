"""A local server speaking the part of Reddit's API that Nightshift uses, replaying a snapshot.

The embedded default for the ``reddit_default`` connection: `make run` starts it, so the
real praw client scrapes real-looking listings and comment trees without a Reddit account.
The tests' fake Reddit is this server with fault injection on top (one implementation).

    python -m nightshift_core.local.reddit_replay --port 8026 --snapshot include/data/reddit_snapshot.json

Served: ``POST /api/v1/access_token`` (HTTP Basic client credentials), the listings
``/r/<sub>/top|hot|new`` (``t``, ``limit``, ``after``), ``/comments/<id>`` (a tree cut into
"load more" stubs past ``tree_limit`` siblings and "continue this thread" stubs past
``max_depth``), ``/comments/<id>/_/<comment>`` and ``POST /api/morechildren``. Responses carry
Reddit's ``x-ratelimit-*`` headers, counted per client id over a 600 s window.

Snapshot format (JSON): ``{"subreddits": {"<name>": [post, ...]}}``; a post has ``id``,
``title``, ``selftext``, ``author``, ``score``, ``age_hours`` (or ``created_utc``), optional
``edited_age_hours``/``url`` and ``comments``; a comment has ``id``, ``author``, ``body``,
``score``, ``age_hours`` (or ``created_utc``), optional ``edited_age_hours`` and ``replies``.
Ages are counted back from the server's anchor time (start-up, rounded down to the hour), so
the week's top posts stay in the week however old the snapshot is.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import re
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

WINDOWS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400, "year": 365 * 86400}
RATELIMIT_WINDOW = 600
_LISTING = re.compile(r"/r/(?P<sub>[A-Za-z0-9_]+)/(?P<kind>top|hot|new)/?(\.json)?")
_COMMENTS = re.compile(r"/comments/(?P<post>[a-z0-9]+)(?:/_/(?P<comment>[a-z0-9]+))?/?(\.json)?")


def anchor_now() -> float:
    """The current time rounded down to the hour: stable for a whole run of the server."""
    return float(int(time.time()) // 3600 * 3600)


class Snapshot:
    """Posts and comment trees with absolute times, indexed by fullname."""

    def __init__(self, data: dict[str, Any], anchor: float) -> None:
        self.anchor = anchor
        self.subreddits: dict[str, list[dict[str, Any]]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        for sub, posts in (data.get("subreddits") or {}).items():
            self.subreddits[sub.lower()] = [self._post(sub, p) for p in posts]

    @classmethod
    def load(cls, path: Path, anchor: float | None = None) -> Snapshot:
        return cls(json.loads(Path(path).read_text()), anchor_now() if anchor is None else anchor)

    def _time(self, raw: dict[str, Any], key: str) -> float | None:
        if f"{key}_utc" in raw:
            return raw[f"{key}_utc"]
        hours = raw.get("age_hours" if key == "created" else f"{key}_age_hours")
        return None if hours is None else self.anchor - float(hours) * 3600

    def _edited(self, raw: dict[str, Any]) -> float | bool:
        """Reddit's ``edited``: the edit time, ``False``, or (older objects) a bare ``true``."""
        if raw.get("edited") is True:
            return True
        return self._time(raw, "edited") or False

    def _post(self, sub: str, raw: dict[str, Any]) -> dict[str, Any]:
        post_id = raw["id"]
        permalink = f"/r/{sub}/comments/{post_id}/{_slug(raw['title'])}/"
        node = {
            "id": post_id, "name": f"t3_{post_id}", "subreddit": sub, "title": raw["title"],
            "selftext": raw.get("selftext", ""), "author": raw.get("author", "[deleted]"),
            "score": raw.get("score", 1), "created_utc": self._time(raw, "created"),
            "edited": self._edited(raw), "permalink": permalink,
            "url": raw.get("url") or f"https://www.reddit.com{permalink}", "children": [],
        }  # fmt: skip
        if node["created_utc"] is None:
            raise ValueError(f"snapshot post {post_id}: give 'age_hours' or 'created_utc'")
        self._register(node)
        node["children"] = [self._comment(node, node["name"], c, 0) for c in raw.get("comments", [])]
        node["num_comments"] = sum(1 for _ in self.descendants(node))
        return node

    def _comment(self, post: dict[str, Any], parent: str, raw: dict[str, Any], depth: int) -> dict[str, Any]:
        node = {
            "id": raw["id"], "name": f"t1_{raw['id']}", "parent_id": parent, "link_id": post["name"],
            "subreddit": post["subreddit"], "body": raw["body"], "author": raw.get("author", "[deleted]"),
            "score": raw.get("score", 1), "created_utc": self._time(raw, "created"),
            "edited": self._edited(raw), "depth": depth,
        }  # fmt: skip
        if node["created_utc"] is None:
            raise ValueError(f"snapshot comment {raw['id']}: give 'age_hours' or 'created_utc'")
        self._register(node)
        node["children"] = [self._comment(post, node["name"], r, depth + 1) for r in raw.get("replies", [])]
        return node

    def _register(self, node: dict[str, Any]) -> None:
        if node["name"] in self.nodes:
            raise ValueError(f"snapshot: id {node['id']} used twice; every post/comment id must be unique")
        self.nodes[node["name"]] = node

    def descendants(self, node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        stack = list(node["children"])
        while stack:
            child = stack.pop()
            yield child
            stack.extend(child["children"])

    def edit(self, fullname: str, text: str, edited_utc: float) -> None:
        """Change a comment body or post selftext, as an author editing it would."""
        node = self.nodes[fullname]
        node["body" if fullname.startswith("t1_") else "selftext"] = text
        node["edited"] = edited_utc


@dataclass
class Logged:
    method: str
    path: str
    args: dict[str, str]
    at: float
    user_agent: str
    status: int = 0


@dataclass
class RedditReplay:
    """The WSGI app. ``tree_limit``: siblings shown before a "load more" stub; ``max_depth``:
    deepest comment shown before a "continue this thread" stub; ``ratelimit_budget``: queries
    per 600 s window per client id before the headers say 0 remain (Reddit: 1000)."""

    snapshot: Snapshot
    credentials: dict[str, str] | None = None  # client id -> secret; None accepts any
    tree_limit: int = 20
    max_depth: int = 8
    ratelimit_budget: int = 1000
    log: list[Logged] = field(default_factory=list)
    _tokens: dict[str, str] = field(default_factory=dict)
    _usage: dict[str, tuple[float, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        entry = Logged(request.method, request.path, dict(request.args), time.time(),
                       request.headers.get("User-Agent", ""))  # fmt: skip
        with self._lock:
            self.log.append(entry)
        response = self.intercept(request) or self.dispatch(request)
        entry.status = response.status_code
        return response(environ, start_response)

    def intercept(self, request: Request) -> Response | None:
        """Override to inject faults (the tests do); ``None`` serves the request normally."""
        return None

    def dispatch(self, request: Request) -> Response:
        if request.path.rstrip("/") == "/api/v1/access_token":
            return self._token(request) if request.method == "POST" else _error(405, "Method Not Allowed")
        client = self._client(request)
        if client is None:
            return _error(401, "Unauthorized")
        if match := _LISTING.fullmatch(request.path):
            response = self._listing(request, match["sub"], match["kind"])
        elif match := _COMMENTS.fullmatch(request.path):
            response = self._comments(request, match["post"], match["comment"])
        elif request.path.rstrip("/") == "/api/morechildren" and request.method == "POST":
            response = self._morechildren(request)
        else:
            response = _error(404, "Not Found")
        response.headers.update(self._ratelimit(client))
        return response

    # -- auth and rate limit ---------------------------------------------------------
    def _token(self, request: Request) -> Response:
        header = request.headers.get("Authorization", "")
        try:
            client_id, _, secret = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
        except ValueError:
            return _error(401, "Unauthorized")
        if not header.startswith("Basic ") or (
            self.credentials is not None and self.credentials.get(client_id) != secret
        ):
            return _error(401, "Unauthorized")
        if request.form.get("grant_type") not in ("client_credentials", "password"):
            return _json({"error": "unsupported_grant_type"}, 400)
        token = "replay-" + secrets.token_hex(12)
        with self._lock:
            self._tokens[token] = client_id
        return _json({"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"})

    def _client(self, request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        return self._tokens.get(header[7:]) if header.lower().startswith("bearer ") else None

    def _ratelimit(self, client: str) -> dict[str, str]:
        now = time.time()
        with self._lock:
            start, used = self._usage.get(client, (now, 0))
            if now - start >= RATELIMIT_WINDOW:
                start, used = now, 0
            used += 1
            self._usage[client] = (start, used)
        return {
            "x-ratelimit-used": str(used),
            "x-ratelimit-remaining": f"{max(self.ratelimit_budget - used, 0):.1f}",
            "x-ratelimit-reset": str(max(int(start + RATELIMIT_WINDOW - now), 0)),
        }

    # -- listings ----------------------------------------------------------------------
    def _listing(self, request: Request, sub: str, kind: str) -> Response:
        posts = self.snapshot.subreddits.get(sub.lower())
        if posts is None:
            return _error(404, "Not Found")
        now = self.snapshot.anchor
        window = request.args.get("t", "day")
        if kind == "top" and window != "all":
            if window not in WINDOWS:
                return _error(400, "Bad Request")
            posts = [p for p in posts if p["created_utc"] > now - WINDOWS[window]]
        if kind == "top":
            posts = sorted(posts, key=lambda p: (-p["score"], p["name"]))
        elif kind == "new":
            posts = sorted(posts, key=lambda p: (-p["created_utc"], p["name"]))
        else:
            posts = sorted(posts, key=lambda p: (-_hot(p, now), p["name"]))
        after = request.args.get("after")
        if after:
            names = [p["name"] for p in posts]
            posts = posts[names.index(after) + 1 :] if after in names else []
        limit = min(max(_int(request.args.get("limit"), 25), 1), 100)
        page = posts[:limit]
        return _json(_listing([_thing("t3", _post_data(p)) for p in page],
                              after=page[-1]["name"] if len(posts) > limit else None))  # fmt: skip

    # -- comment trees -----------------------------------------------------------------
    def _comments(self, request: Request, post_id: str, comment_id: str | None) -> Response:
        post = self.snapshot.nodes.get(f"t3_{post_id}")
        if post is None:
            return _error(404, "Not Found")
        sort = request.args.get("sort", "confidence")
        if comment_id is None:
            children = self._render_level(post["children"], post["name"], sort, self.max_depth)
        else:
            focus = self.snapshot.nodes.get(f"t1_{comment_id}")
            if focus is None or focus["link_id"] != post["name"]:
                return _error(404, "Not Found")
            children = [self._render(focus, sort, focus["depth"] + self.max_depth)]
        return _json([_listing([_thing("t3", _post_data(post))]), _listing(children)])

    def _render_level(self, nodes: list[dict], parent: str, sort: str, last_depth: int) -> list[dict]:
        ordered = _sorted(nodes, sort)
        shown = [self._render(n, sort, last_depth) for n in ordered[: self.tree_limit]]
        rest = ordered[self.tree_limit :]
        if rest:
            shown.append(self._more(rest, parent, rest[0]["depth"]))
        return shown

    def _render(self, node: dict[str, Any], sort: str, last_depth: int) -> dict[str, Any]:
        data = _comment_data(node)
        if node["children"]:
            if node["depth"] >= last_depth:
                data["replies"] = _listing([self._continue(node)])
            else:
                data["replies"] = _listing(
                    self._render_level(node["children"], node["name"], sort, last_depth)
                )
        return _thing("t1", data)

    def _more(self, rest: list[dict], parent: str, depth: int) -> dict[str, Any]:
        count = len(rest) + sum(sum(1 for _ in self.snapshot.descendants(n)) for n in rest)
        return _thing("more", {"count": count, "name": f"t1_{rest[0]['id']}", "id": rest[0]["id"],
                               "parent_id": parent, "depth": depth, "children": [n["id"] for n in rest]})  # fmt: skip

    @staticmethod
    def _continue(node: dict[str, Any]) -> dict[str, Any]:
        return _thing("more", {"count": 0, "name": "t1__", "id": "_", "parent_id": node["name"],
                               "depth": node["depth"] + 1, "children": []})  # fmt: skip

    def _morechildren(self, request: Request) -> Response:
        link = request.form.get("link_id", "")
        sort = request.form.get("sort", "confidence")
        things: list[dict[str, Any]] = []
        for child_id in filter(None, request.form.get("children", "").split(",")):
            node = self.snapshot.nodes.get(f"t1_{child_id}")
            if node is None or node["link_id"] != link:
                continue
            self._flat(node, sort, things)
        return _json({"json": {"errors": [], "data": {"things": things}}})

    def _flat(self, node: dict[str, Any], sort: str, out: list[dict[str, Any]]) -> None:
        """Reddit's morechildren shape: the comment, then its descendants, all flat."""
        out.append(_thing("t1", _comment_data(node)))
        if not node["children"]:
            return
        if node["depth"] >= self.max_depth:
            out.append(self._continue(node))
            return
        ordered = _sorted(node["children"], sort)
        for child in ordered[: self.tree_limit]:
            self._flat(child, sort, out)
        rest = ordered[self.tree_limit :]
        if rest:
            out.append(self._more(rest, node["name"], node["depth"] + 1))


# -- JSON shapes -------------------------------------------------------------------------
def _thing(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "data": data}


def _listing(children: list[dict[str, Any]], after: str | None = None) -> dict[str, Any]:
    return _thing("Listing", {"after": after, "before": None, "dist": len(children), "children": children})


def _post_data(node: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in node.items() if k != "children"}
    data.update(subreddit_name_prefixed=f"r/{node['subreddit']}", is_self=node["url"].endswith(node["permalink"]),
                over_18=False, stickied=False)  # fmt: skip
    return data


def _comment_data(node: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in node.items() if k != "children"}
    data.update(replies="", permalink=f"/r/{node['subreddit']}/comments/{node['link_id'][3:]}/_/{node['id']}/",
                stickied=False, is_submitter=False)  # fmt: skip
    return data


def _sorted(nodes: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    if sort in ("new",):
        return sorted(nodes, key=lambda n: (-n["created_utc"], n["name"]))
    if sort == "old":
        return sorted(nodes, key=lambda n: (n["created_utc"], n["name"]))
    return sorted(nodes, key=lambda n: (-n["score"], n["name"]))


def _hot(post: dict[str, Any], now: float) -> float:
    return post["score"] / math.pow((now - post["created_utc"]) / 3600 + 2, 1.5)


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:50] or "post"


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"message": message, "error": status}, status)


# -- serving -----------------------------------------------------------------------------
class Server:
    """A running replay server on a background thread."""

    def __init__(self, app: RedditReplay, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self.host, self.port = host, self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="reddit-replay", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(snapshot: Path | Snapshot, host: str = "127.0.0.1", port: int = 0, **options: Any) -> Server:
    if not isinstance(snapshot, Snapshot):
        snapshot = Snapshot.load(snapshot)
    return Server(RedditReplay(snapshot, **options), host, port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=Path, required=True, help="snapshot JSON to replay")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8026)
    args = parser.parse_args()
    server = serve(args.snapshot, args.host, args.port)
    posts = sum(len(p) for p in server.app.snapshot.subreddits.values())
    print(f"reddit replay listening on {server.url}: {posts} posts from {args.snapshot}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
