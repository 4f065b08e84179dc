"""When `dbt_classicmodels` starts its first timed run, on a clock the test sets.

The DAG goes through Airflow's own serialization, as the dag-processor stores it, and its next run is
computed the way the scheduler computes it for a DAG without runs (``next_dagrun_info`` with no last
run, restricted by the DAG's start_date and catchup). The clock is the timetable module's ``utcnow``,
set to both sides of midnight UTC: the outcome never depends on when the suite runs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "dbt_classicmodels"
UTC = dt.UTC


@pytest.fixture(scope="module")
def stored_dag():
    """The DAG as the scheduler reads it: serialized to JSON and back."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = DagBag(dag_folder=str(ROOT / "dags" / "nightshift_dbt.py"))
    assert not bag.import_errors, bag.import_errors
    return DagSerialization.from_dict(DagSerialization.to_dict(bag.dags[DAG_ID]))


def _first_run_at(dag, now: dt.datetime) -> dt.datetime:
    """run_after of the run the scheduler creates for a DAG without runs when the clock reads ``now``."""
    from airflow._shared.timezones.timezone import coerce_datetime

    with mock.patch("airflow.timetables.trigger.utcnow", lambda: coerce_datetime(now)):
        info = dag.next_dagrun_info(last_automated_run_info=None)
    assert info is not None
    return info.run_after


@pytest.mark.parametrize(
    "now",
    [
        dt.datetime(2026, 12, 5, 23, 59, 59, tzinfo=UTC),  # just before midnight
        dt.datetime(2026, 12, 6, 0, 0, 1, tzinfo=UTC),  # just after
        dt.datetime(2026, 12, 6, 0, 8, tzinfo=UTC),  # the failed CI run's start
        dt.datetime(2026, 12, 6, 0, 34, tzinfo=UTC),  # the stack that logged last midnight's run
        dt.datetime(2026, 12, 6, 2, 23, tzinfo=UTC),  # inside Airflow's 10 % "run immediately" window
        dt.datetime(2026, 12, 6, 2, 25, tzinfo=UTC),  # just outside it
        dt.datetime(2026, 12, 6, 13, 0, tzinfo=UTC),
    ],
    ids=lambda now: now.strftime("%H:%M:%S"),
)
def test_unpausing_never_starts_the_midnight_already_past(stored_dag, now):
    """Unpaused at any time of day, the first timed run is the coming midnight, never the last one:
    the sync's Assets start the first run, after the sources are loaded."""
    coming_midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), UTC)
    assert stored_dag.catchup is False and stored_dag.start_date is None
    assert _first_run_at(stored_dag, now) == coming_midnight


def test_airflows_run_immediately_false_still_runs_the_past_midnight():
    """Why the DAG sets run_immediately to a zero timedelta: Airflow 3.3 reads False like None and starts
    last midnight's run when unpaused up to 2 h 24 min after it. Should a release fix that, this fails
    and the workaround in dbt_dags.py can go."""
    from airflow._shared.timezones.timezone import coerce_datetime
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.trigger import CronTriggerTimetable

    stock = CronTriggerTimetable(
        "0 0 * * *", timezone="UTC", interval=dt.timedelta(days=1), run_immediately=False
    )
    now = dt.datetime(2026, 12, 6, 0, 8, tzinfo=UTC)
    with mock.patch("airflow.timetables.trigger.utcnow", lambda: coerce_datetime(now)):
        info = stock.next_dagrun_info(
            last_automated_data_interval=None, restriction=TimeRestriction(None, None, catchup=False)
        )
    assert info.run_after == dt.datetime(2026, 12, 6, tzinfo=UTC)


def test_a_midnight_after_the_last_run_is_the_next_run(stored_dag):
    """With a timed run behind it, the next is the following midnight (covering the day before)."""
    from airflow._shared.timezones.timezone import coerce_datetime
    from airflow.timetables.base import DagRunInfo

    last = DagRunInfo.interval(
        coerce_datetime(dt.datetime(2026, 12, 4, tzinfo=UTC)),
        coerce_datetime(dt.datetime(2026, 12, 5, tzinfo=UTC)),
    )
    now = dt.datetime(2026, 12, 5, 0, 30, tzinfo=UTC)
    with mock.patch("airflow.timetables.trigger.utcnow", lambda: coerce_datetime(now)):
        info = stored_dag.next_dagrun_info(last_automated_run_info=last)
    assert info.run_after == dt.datetime(2026, 12, 6, tzinfo=UTC)
    assert (info.data_interval.start, info.data_interval.end) == (
        dt.datetime(2026, 12, 5, tzinfo=UTC),
        dt.datetime(2026, 12, 6, tzinfo=UTC),
    )
