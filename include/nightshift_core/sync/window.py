"""The arithmetic of an incremental read: its cursor window, when it reconciles, its checksum ranges.

Pure functions of plain values (no database, no clock read here): the engine gathers the inputs
(the state the previous read left, the run's data interval, the source's clock) and these decide.
Zones and wall clocks are :mod:`nightshift_core.sync.clock`'s.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from nightshift_core.sync import clock

RANGES = 256  # the key span is cut into this many checksum ranges
MAX_RANGES = 128  # more differing ranges than this: compare every pair instead


@dataclass(frozen=True)
class Window:
    """Bounds of the cursor for one incremental read (None: unbounded), whether the lower bound is
    exclusive (an integer cursor past the last value read), and how far the read reaches on the
    source's clock (the state it leaves)."""

    lower: Any
    upper: Any
    after: bool
    read_until: dt.datetime


def integer_window(stored: Any, watermark: Any, lag: dt.timedelta, clock_at: dt.datetime) -> Window:
    """An ever-growing integer cursor: no time window applies; past the last value read (a lag, a
    duration, does not apply to ids: with one the last id is read again). A target without a state
    starts from its own highest value, inclusive."""
    if stored is not None:
        return Window(stored, None, not lag, clock_at)
    return Window(watermark, None, False, clock_at)


def time_window(
    *,
    mark: dt.datetime | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    lag: dt.timedelta,
    clock_at: dt.datetime,
    wall_zone: ZoneInfo | None = None,
    now: dt.datetime | None = None,
) -> Window:
    """The window of a timestamp cursor.

    ``mark`` is where the previous read got to (its state, or the target's ``MAX(cursor)``); a
    wall-clock mark of the repeated hour means two instants: the earlier is taken. With a data
    interval [``start``, ``end``) the window starts at the earlier of ``start`` and the mark (never
    skip a gap: a missed run) and ends at ``end`` (never read past this run's interval); without
    one it is open upwards. ``lag`` widens it downwards. The read reaches ``end``, at most
    ``clock_at``. ``wall_zone``: the cursor is a DATETIME holding that zone's wall clock: the bounds
    become wall-clock values, widened across DST changes so that no wall value of the window is
    left out (the open upper end is scanned to ``now``).
    """
    zone = wall_zone or clock.zone("UTC")
    if mark is not None and mark.tzinfo is None:
        mark = clock.earliest_instant(mark, zone)
    lower, upper = mark, None
    if start is not None and end is not None and start < end:
        lower = min(start, mark) if mark is not None else None
        upper = end
    read_until = clock_at if upper is None else min(upper, clock_at)
    if lower is not None:
        lower = lower - lag
    if wall_zone is not None:
        scan_end = upper if upper is not None else (now or dt.datetime.now(dt.UTC))
        low_wall, high_wall = clock.wall_window(lower, scan_end, wall_zone)
        lower, upper = low_wall, (high_wall if upper is not None else None)
    return Window(lower, upper, False, read_until)


def reconcile_due(
    *,
    detect_deletes: bool,
    every: dt.timedelta | None,
    asked: bool,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> bool:
    """Every run (``every`` None), when asked (the run's Param), or when the data interval (start, end]
    crosses a multiple of ``every`` (UTC, e.g. midnight for 1 day); ``every`` of zero: only when asked;
    always with ``detect_deletes``, whose key diff is the same pass."""
    if detect_deletes or every is None or asked:
        return True
    if every <= dt.timedelta(0):
        return False
    if start is None or end is None or not start < end:
        return False
    seconds = every.total_seconds()
    return end.timestamp() // seconds != start.timestamp() // seconds


def bucket_width(lo: int, hi: int, ranges: int = RANGES) -> int:
    """Width of each of ``ranges`` key ranges covering [lo, hi]."""
    return max(1, math.ceil((hi - lo + 1) / ranges))


def key_ranges(differing: list[int], lo: int, width: int) -> list[tuple[int, int]]:
    """The key ranges [start, end] of the sorted bucket numbers ``differing``, adjacent ones joined;
    a warehouse key below ``lo`` falls in a bucket below 0."""
    ranges: list[tuple[int, int]] = []
    for b in differing:
        start, end = lo + b * width, lo + (b + 1) * width - 1
        if ranges and ranges[-1][1] + 1 == start:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return ranges
