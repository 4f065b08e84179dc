"""One retry policy for the HTTP hooks (Reddit, Google Sheets), built on tenacity.

Both hooks retry 429 and 5xx answers inside their transport: exponential back-off (optionally
with jitter, so parallel tasks spread out), ``Retry-After`` honoured (seconds or an HTTP date),
bounded attempts, a cap on one wait and on the total wait. When the budget is spent the call
raises :class:`RetriesExhausted`, which says why; each hook turns it into its own message.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
import random
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

R = TypeVar("R")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """``backoff_base * 2**(n-1)`` seconds before retry n, at most ``max_wait`` each.

    ``jitter``: the wait is half fixed, half random. A ``Retry-After`` beyond ``max_wait`` gives
    up at once (waiting that long inside a task is worse than the task's own retry later).
    """

    max_attempts: int = 5
    backoff_base: float = 1.0
    max_wait: float = 60.0
    max_total_wait: float = math.inf
    jitter: bool = True

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        ceiling = tenacity.wait_exponential(multiplier=self.backoff_base, max=self.max_wait)(_Attempt(retry))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2) if self.jitter else ceiling


@dataclass(frozen=True)
class _Attempt:
    attempt_number: int  # what tenacity's wait strategies read of a retry state


class RetriesExhausted(Exception):
    """The last answer was still 429/5xx when the retry budget ran out."""

    def __init__(
        self, status: int, attempts: int, waited: float, message: str, reason: str, *, limit: str,
        retry_after: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__(
            f"HTTP {status} after {attempts} attempt(s), {waited:.1f}s waited ({reason}): {message}"
        )
        self.status = status
        self.attempts = attempts
        self.waited = waited
        self.message = message
        self.reason = reason
        self.limit = limit  # which limit ended it: max_attempts, max_wait or max_total_wait
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def call_with_retries(
    send: Callable[[], R],
    policy: RetryPolicy,
    *,
    statuses: Collection[int],
    describe: Callable[[Any], str] = lambda response: "",
    sleep: Callable[[float], None] = time.sleep,
    what: str = "request",
) -> R:
    """``send()`` until its response's ``status_code`` is not in ``statuses``, within ``policy``.

    ``describe(response)`` gives the server's message for the final error (it may read the body).
    Responses that are retried are closed, so their connection can be reused.
    """
    reasons: list[tuple[str, str]] = []  # (limit, reason)

    def asked(state: tenacity.RetryCallState) -> float | None:
        return retry_after_seconds(state.outcome.result().headers.get("Retry-After"))

    def wait(state: tenacity.RetryCallState) -> float:
        seconds = asked(state)
        return seconds if seconds is not None else policy.backoff(state.attempt_number)

    def stop(state: tenacity.RetryCallState) -> bool:
        seconds, upcoming = asked(state), state.upcoming_sleep
        if state.attempt_number >= policy.max_attempts:
            reasons.append(("max_attempts", f"gave up after {policy.max_attempts} attempts"))
        elif seconds is not None and seconds > policy.max_wait:
            reasons.append(
                (
                    "max_wait",
                    f"the server asked to wait {seconds:.0f}s, more than max_wait={policy.max_wait:.0f}s",
                )
            )
        elif state.idle_for + upcoming > policy.max_total_wait:
            reasons.append(
                (
                    "max_total_wait",
                    f"waiting {upcoming:.1f}s more would exceed max_total_wait={policy.max_total_wait:.0f}s",
                )
            )
        return bool(reasons)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        response = state.outcome.result()
        log.warning("%s: HTTP %s, try %d of %d in %.1fs", what, response.status_code, state.attempt_number + 1,
                    policy.max_attempts, state.upcoming_sleep)  # fmt: skip
        response.close()

    def give_up(state: tenacity.RetryCallState) -> R:
        response = state.outcome.result()
        message = describe(response)
        response.close()
        limit, reason = reasons[-1]
        raise RetriesExhausted(response.status_code, state.attempt_number, state.idle_for, message, reason,
                               limit=limit, retry_after=asked(state))  # fmt: skip

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda response: response.status_code in statuses),
        wait=wait,
        stop=stop,
        sleep=sleep,
        before_sleep=before_sleep,
        retry_error_callback=give_up,
    )
    return retrying(send)
