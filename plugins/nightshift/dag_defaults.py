"""Defaults every Nightshift DAG starts from, so the policy holds without copy-paste."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from nightshift.notifiers.email import FailureEmailNotifier

OWNER = "nightshift"


def default_args(**overrides: Any) -> dict[str, Any]:
    """Task defaults: owner, 2+ retries with backoff, a timeout and the failure e-mail.

    Pass keyword overrides for a DAG that needs e.g. a longer ``execution_timeout``.
    """
    args: dict[str, Any] = {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": [FailureEmailNotifier()],
    }
    args.update(overrides)
    return args
