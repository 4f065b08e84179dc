"""RedditHook: the ``reddit_default`` connection -> an authenticated praw client.

Connection fields (extras read by name):

``login`` / ``password``   the app's client id / client secret (https://www.reddit.com/prefs/apps)
``user_agent``             required, in Reddit's form ``<platform>:<app id>:<version> (by /u/<user>)``
``username``, ``password`` optional script-app account (extras); without them: read-only app auth
``oauth_url``, ``reddit_url``, ``short_url``  API base URLs (a local replay server in tests and `make run`)
``timeout``                seconds per HTTP request (default 16)
``retry_attempts``         tries per request on 429/5xx (default 5)
``retry_backoff_seconds``  first back-off, doubled per try (default 2)
``retry_max_wait_seconds`` longest single wait, also for ``Retry-After`` (default 120)

Rate limits: prawcore paces requests from Reddit's ``x-ratelimit-*`` headers (the 100
queries/min budget is per client id, so parallel tasks see the shared count); the DAG's pool
caps how many scrapes run at once. 429 and 5xx answers are retried here with back-off,
honouring ``Retry-After``; after the last try the request fails with a message saying so.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from nightshift_core.errors import PermanentError
from nightshift_core.http_retry import RetriesExhausted, RetryPolicy, call_with_retries

if TYPE_CHECKING:
    import praw
    from praw.models import Submission

log = logging.getLogger(__name__)

USER_AGENT_FORM = "<platform>:<app id>:<version> (by /u/<reddit username>)"
USER_AGENT_EXAMPLE = "linux:com.example.nightshift:v1.0.0 (by /u/your_reddit_name)"
_USER_AGENT = re.compile(r"[\w.\-]+:[\w.\-]+:v?\d[\w.\-]* \(by /u/[\w\-]{3,20}\)")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 520, 522})


class RedditConfigError(ValueError, PermanentError):
    """The Reddit connection is incomplete or wrong; the message names the field to fix."""


class RedditApiError(RuntimeError):
    """Reddit (or the server at the connection's URLs) answered in a way we cannot use."""


def check_user_agent(user_agent: Any, conn_id: str = "reddit_default") -> str:
    """``user_agent`` if it follows Reddit's required form; generic agents are refused."""
    if not isinstance(user_agent, str) or not _USER_AGENT.fullmatch(user_agent.strip()):
        raise RedditConfigError(
            f"connection {conn_id!r}: extra 'user_agent' is {user_agent!r}; Reddit throttles or bans generic "
            f"user agents: use the form {USER_AGENT_FORM}, e.g. {USER_AGENT_EXAMPLE!r}"
        )
    return user_agent.strip()


@functools.cache
def retrying_requestor() -> type:
    """A prawcore Requestor that retries 429/5xx itself (praw's documented ``requestor_class`` hook)."""
    from prawcore.requestor import Requestor

    class RetryingRequestor(Requestor):
        def __init__(self, *args: Any, policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep,
                     **kwargs: Any) -> None:  # fmt: skip
            super().__init__(*args, **kwargs)
            self.policy = policy
            self.sleep = sleep

        def request(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
            method, url = (list(args) + ["?", "?"])[:2]
            try:
                return call_with_retries(
                    lambda: super(RetryingRequestor, self).request(*args, timeout=timeout, **kwargs),
                    self.policy, statuses=RETRY_STATUSES, sleep=self.sleep, what=f"{method.upper()} {url}",
                )  # fmt: skip
            except RetriesExhausted as exc:
                if exc.limit == "max_wait":
                    raise RedditApiError(
                        f"{method.upper()} {url}: HTTP {exc.status}, Reddit asks to wait {exc.retry_after:.0f}s "
                        f"(Retry-After), more than retry_max_wait_seconds={self.policy.max_wait:g}; the task will "
                        "retry later"
                    ) from None
                what = "rate limited" if exc.status == 429 else "unavailable"
                raise RedditApiError(
                    f"{method.upper()} {url}: HTTP {exc.status} ({what}) on all {exc.attempts} tries; nothing was "
                    "written. Reddit is down or throttling this client id: the task retries later (raise extra "
                    "'retry_attempts' on the connection to wait longer per run)"
                ) from None

    return RetryingRequestor


class RedditHook(BaseHook):
    conn_name_attr = "reddit_conn_id"
    default_conn_name = "reddit_default"
    conn_type = "generic"
    hook_name = "Reddit"

    def __init__(self, reddit_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.reddit_conn_id = reddit_conn_id

    @cached_property
    def _connection(self) -> Any:
        return self.get_connection(self.reddit_conn_id)

    def _extra(self, name: str, default: Any = None) -> Any:
        value = self._connection.extra_dejson.get(name)
        return default if value in (None, "") else value

    def _number(self, name: str, default: float) -> float:
        value = self._extra(name, default)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise RedditConfigError(
                f"connection {self.reddit_conn_id!r}: extra {name!r} is {value!r}; give a number"
            ) from None

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=max(int(self._number("retry_attempts", 5)), 1),
            backoff_base=self._number("retry_backoff_seconds", 2.0),
            max_wait=self._number("retry_max_wait_seconds", 120.0),
            jitter=False,
        )

    def get_conn(self) -> praw.Reddit:
        return self.client

    @cached_property
    def client(self) -> praw.Reddit:
        import praw
        from airflow.sdk.log import mask_secret

        conn = self._connection
        if not conn.login or not conn.password:
            raise RedditConfigError(
                f"connection {self.reddit_conn_id!r}: set login (the app's client id) and password (its client "
                "secret), from https://www.reddit.com/prefs/apps"
            )
        mask_secret(conn.password)
        user_agent = check_user_agent(self._extra("user_agent"), self.reddit_conn_id)
        account = {}
        username, password = self._extra("username"), self._extra("password")
        if bool(username) != bool(password):
            raise RedditConfigError(
                f"connection {self.reddit_conn_id!r}: set both extras 'username' and 'password' (script app) "
                "or neither (read-only app access)"
            )
        if username:
            mask_secret(password)
            account = {"username": username, "password": password}
        urls = {k: self._extra(k) for k in ("oauth_url", "reddit_url", "short_url") if self._extra(k)}
        return praw.Reddit(
            client_id=conn.login,
            client_secret=conn.password,
            user_agent=user_agent,
            check_for_updates=False,
            timeout=int(self._number("timeout", 16)),
            requestor_class=retrying_requestor(),
            requestor_kwargs={"policy": self.retry_policy},
            **account,
            **urls,
        )

    @contextmanager
    def _explain(self, what: str) -> Iterator[None]:
        """Turn prawcore's exceptions into errors naming the request, the answer and the fix."""
        import prawcore

        try:
            yield
        except prawcore.BadJSON as exc:
            body = exc.response.text[:120]
            raise RedditApiError(
                f"{what}: {exc.response.url} answered HTTP {exc.response.status_code} with a body that is not "
                f"JSON ({body!r}...): an error page from Reddit or a proxy; nothing was written, the task "
                "retries"
            ) from None
        except (prawcore.NotFound, prawcore.Redirect) as exc:
            raise RedditApiError(
                f"{what}: not found (HTTP {exc.response.status_code}): the subreddit or post does not exist "
                "or was banned; fix the name in include/config/reddit.yaml or the run's Params"
            ) from None
        except prawcore.Forbidden as exc:
            raise RedditApiError(
                f"{what}: forbidden (HTTP {exc.response.status_code}): the subreddit is private or quarantined, "
                f"or connection {self.reddit_conn_id!r}'s app may not read it"
            ) from None
        except prawcore.OAuthException as exc:
            raise RedditConfigError(
                f"{what}: Reddit refused the credentials of connection {self.reddit_conn_id!r} ({exc}); check "
                "login (client id), password (client secret) and the username/password extras"
            ) from None
        except prawcore.ResponseException as exc:
            status = exc.response.status_code
            if status == 401:
                raise RedditConfigError(
                    f"{what}: Reddit refused the credentials of connection {self.reddit_conn_id!r} (HTTP 401 "
                    f"from {exc.response.url}); check login (client id) and password (client secret)"
                ) from None
            raise RedditApiError(f"{what}: unexpected HTTP {status} from {exc.response.url}") from None

    def fetch_listing(self, subreddit: str, listing: str, time_filter: str, limit: int) -> list[Submission]:
        """The posts of one listing (``top`` in ``time_filter``, ``hot`` or ``new``), at most ``limit``."""
        with self._explain(f"r/{subreddit}/{listing}"):
            sub = self.client.subreddit(subreddit)
            if listing == "top":
                return list(sub.top(time_filter=time_filter, limit=limit))
            if listing in ("hot", "new"):
                return list(getattr(sub, listing)(limit=limit))
            raise ValueError(f"listing {listing!r}: use 'top', 'hot' or 'new'")

    def fetch_comments(self, submission: Submission, replace_more_limit: int) -> tuple[list[Any], int]:
        """The post's comment forest with up to ``replace_more_limit`` "load more" stubs resolved
        (each costs one query); returns the top-level comments and how many stubs were left."""
        with self._explain(f"comments of {submission.fullname}"):
            forest = submission.comments
            skipped = forest.replace_more(limit=replace_more_limit)
            return list(forest), len(skipped)
