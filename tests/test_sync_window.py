"""The incremental read's arithmetic (nightshift_core.sync.window) on plain values: no database, no clock."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from nightshift_core.sync.window import (
    Window,
    bucket_width,
    integer_window,
    key_ranges,
    reconcile_due,
    time_window,
)

UTC = dt.UTC
T = dt.datetime(2026, 11, 20, 12, tzinfo=UTC)
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
ZERO = dt.timedelta(0)


@pytest.mark.parametrize(
    ("stored", "watermark", "lag", "expected"),
    [
        (41, None, ZERO, Window(41, None, True, T)),  # past the last id read
        (41, None, 5 * M, Window(41, None, False, T)),  # with a lag the last id is read again
        (None, 17, ZERO, Window(17, None, False, T)),  # no state: from the target's own MAX, inclusive
        (None, None, ZERO, Window(None, None, False, T)),  # nothing loaded yet: everything
    ],
    ids=["state", "state-with-lag", "target-max", "first-load"],
)
def test_an_integer_cursor_reads_past_the_last_value(stored, watermark, lag, expected):
    assert integer_window(stored, watermark, lag, clock_at=T) == expected


@pytest.mark.parametrize(
    ("mark", "start", "end", "lag", "clock_at", "expected"),
    [
        # no data interval (a manual run): from the mark, open upwards, as far as the source's clock
        (T - 3 * H, None, None, ZERO, T, Window(T - 3 * H, None, False, T)),
        (T - 3 * H, None, None, 10 * M, T, Window(T - 3 * H - 10 * M, None, False, T)),
        # the run's interval after the mark: a missed run's gap is read, never skipped
        (T - 3 * H, T - H, T, ZERO, T + M, Window(T - 3 * H, T, False, T)),
        # the mark past the interval's start (an earlier read of this interval): from the interval's start
        (T - 30 * M, T - H, T, 5 * M, T + M, Window(T - H - 5 * M, T, False, T)),
        # nothing read yet, with an interval: everything before the interval's end
        (None, T - H, T, 5 * M, T + M, Window(None, T, False, T)),
        # the source's clock behind the interval's end: the state stops at the clock
        (T - H, T - H, T, ZERO, T - 2 * M, Window(T - H, T, False, T - 2 * M)),
        # an empty interval counts as none
        (T - H, T, T, ZERO, T, Window(T - H, None, False, T)),
    ],
    ids=["manual", "manual-lag", "gap", "rerun-lag", "first-load", "clock-behind", "empty-interval"],
)
def test_a_timestamp_cursor_window(mark, start, end, lag, clock_at, expected):
    assert time_window(mark=mark, start=start, end=end, lag=lag, clock_at=clock_at) == expected


NY, TOKYO = ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo")
FALL_BACK = dt.datetime(2026, 11, 1, 6, tzinfo=UTC)  # New York: 02:00 EDT becomes 01:00 EST
SPRING = dt.datetime(2026, 3, 8, 7, tzinfo=UTC)  # New York: 02:00 EST becomes 03:00 EDT


def wall(*args: int) -> dt.datetime:
    return dt.datetime(*args)


@pytest.mark.parametrize(
    ("zone", "mark", "start", "end", "lower", "upper"),
    [
        # a plain zone: the instants' wall clock
        (TOKYO, T - 2 * H, T - H, T, wall(2026, 11, 20, 19), wall(2026, 11, 20, 21)),
        # the hour before the fall-back: 01:00 EDT up to the change, then the repeated 01:00-02:00 EST: the
        # wall window reaches 02:00 so no value of the first pass is left out
        (NY, FALL_BACK - H, FALL_BACK - H, FALL_BACK, wall(2026, 11, 1, 1), wall(2026, 11, 1, 2)),
        # the repeated hour itself: 01:00-02:00 EST, read again from its first wall value
        (NY, FALL_BACK, FALL_BACK, FALL_BACK + H, wall(2026, 11, 1, 1), wall(2026, 11, 1, 2)),
        # across the spring gap: two hours of instants, 01:00 EST to 04:00 EDT on the wall
        (NY, SPRING - H, SPRING - H, SPRING + H, wall(2026, 3, 8, 1), wall(2026, 3, 8, 4)),
        # a wall-clock mark in the repeated hour means two instants: the earlier (01:30 EDT) is taken, so
        # the window crosses the change and starts at the repeated hour's first wall value (the later
        # instant, 01:30 EST, would start it at 01:30)
        (NY, wall(2026, 11, 1, 1, 30), FALL_BACK + H, FALL_BACK + 2 * H, wall(2026, 11, 1, 1),
         wall(2026, 11, 1, 3)),
    ],
    ids=["tokyo", "before-fall-back", "repeated-hour", "spring-gap", "mark-in-repeated-hour"],
)  # fmt: skip
def test_a_datetime_cursor_gets_wall_clock_bounds_widened_across_dst(zone, mark, start, end, lower, upper):
    got = time_window(mark=mark, start=start, end=end, lag=ZERO, clock_at=end + H, wall_zone=zone)
    assert (got.lower, got.upper, got.read_until) == (lower, upper, end), "read_until stays an instant"


def test_an_open_wall_window_scans_to_now_but_stays_open():
    got = time_window(mark=T - H, start=None, end=None, lag=ZERO, clock_at=T, wall_zone=TOKYO, now=T)
    assert got == Window(wall(2026, 11, 20, 20), None, False, T)


DAY = dt.timedelta(days=1)
MIDNIGHT = dt.datetime(2026, 11, 21, tzinfo=UTC)


@pytest.mark.parametrize(
    ("detect_deletes", "every", "asked", "start", "end", "due"),
    [
        (True, DAY, False, MIDNIGHT - 2 * H, MIDNIGHT - H, True),  # detect_deletes: the key diff is every run
        (False, None, False, MIDNIGHT - 2 * H, MIDNIGHT - H, True),  # no schedule: every run
        (False, DAY, True, MIDNIGHT - 2 * H, MIDNIGHT - H, True),  # asked for by the run's Param
        (False, ZERO, False, MIDNIGHT - H, MIDNIGHT, False),  # reconcile: false: only when asked
        (False, ZERO, True, MIDNIGHT - H, MIDNIGHT, True),
        (False, DAY, False, MIDNIGHT - H, MIDNIGHT, True),  # (23:00, 00:00] holds midnight
        (False, DAY, False, MIDNIGHT, MIDNIGHT + H, False),  # (00:00, 01:00] does not
        (False, DAY, False, MIDNIGHT - 2 * H, MIDNIGHT - H, False),
        (False, DAY, False, None, None, False),  # no interval: nothing crosses
    ],
    ids=[
        "deletes",
        "every-run",
        "asked",
        "never",
        "never-but-asked",
        "crosses",
        "after",
        "before",
        "no-interval",
    ],
)
def test_when_a_reconciliation_is_due(detect_deletes, every, asked, start, end, due):
    assert reconcile_due(detect_deletes=detect_deletes, every=every, asked=asked, start=start, end=end) is due


@pytest.mark.parametrize(
    ("lo", "hi", "ranges", "width"),
    [(0, 0, 256, 1), (1, 1000, 256, 4), (1, 256, 256, 1), (1, 257, 256, 2), (-50, 49, 10, 10)],
)
def test_bucket_width_covers_the_key_span(lo, hi, ranges, width):
    assert bucket_width(lo, hi, ranges) == width
    assert lo + ranges * width - 1 >= hi, "the last range reaches the highest key"


@pytest.mark.parametrize(
    ("differing", "lo", "width", "expected"),
    [
        ([], 10, 5, []),
        ([0, 1, 3], 10, 5, [(10, 19), (25, 29)]),  # adjacent buckets joined
        ([-1, 0], 10, 5, [(5, 14)]),  # a warehouse key below the source's lowest
        ([2, 4, 5, 6], 0, 1, [(2, 2), (4, 6)]),
    ],
)
def test_key_ranges_of_differing_buckets(differing, lo, width, expected):
    assert key_ranges(differing, lo, width) == expected
