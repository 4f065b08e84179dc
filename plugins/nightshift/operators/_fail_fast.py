"""Fail a task at once, without retries, on errors a retry cannot heal."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from nightshift_core.errors import PermanentError

F = TypeVar("F", bound=Callable[..., Any])


def fail_fast(execute: F) -> F:
    """Decorate ``execute``: a PermanentError becomes AirflowFailException with the same message."""

    @functools.wraps(execute)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException

        try:
            return execute(*args, **kwargs)
        except PermanentError as exc:
            raise AirflowFailException(
                f"{type(exc).__name__}: {exc} (not retried: a retry cannot fix this)"
            ) from exc

    return wrapper  # type: ignore[return-value]
