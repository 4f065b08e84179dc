"""One run per DAG from one ``local_stack.trigger_all``: what the stack tests check it by."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

# trigger_all prints "    <dag_id>: <run_id>" for the run it stands by, "(how it started)" after some
_STARTED = re.compile(r"^ {4}([\w.-]+): ((?:manual|scheduled|asset_triggered)__\S+)", re.MULTILINE)


def started_runs(output: str) -> dict[str, str]:
    """DAG id -> the run id ``trigger_all`` printed for it, from ``local_stack.py up``'s output."""
    return dict(_STARTED.findall(output))


def _at(timestamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(timestamp)


def extra_runs(runs: Iterable[dict[str, Any]], started: str, until: dt.datetime) -> list[str]:
    """The runs of one DAG, besides ``started`` (the one trigger_all stood by), that were there by
    ``until`` (trigger_all's end), as "run_id (run_type)"; empty when the trigger ran it once.

    A scheduled run for a later time than ``started``'s (its logical date, else when it was
    triggered) is no extra: a scheduled time that came while the runs went on. One for an earlier
    time is: unpausing a DAG starts its latest scheduled time's run, so a manual run beside it runs
    the DAG twice.
    """
    runs = list(runs)
    first = next(r for r in runs if r["dag_run_id"] == started)
    since = _at(first["logical_date"] or first["run_after"])
    return [
        f"{r['dag_run_id']} ({r['run_type']})"
        for r in runs
        if r["dag_run_id"] != started
        and _at(r["run_after"]) <= until
        and not (r["run_type"] == "scheduled" and r["logical_date"] and _at(r["logical_date"]) > since)
    ]
