"""The e2e pool sampler's coverage check (tests/support/sampling.py), on synthetic clocks."""

from __future__ import annotations

import re

import pytest
from support.sampling import coverage

LIMITS = {"max_median_gap_s": 0.5, "max_stalled_share": 0.05}


def steady(start: float, seconds: float, every: float = 0.1) -> list[float]:
    return [start + i * every for i in range(round(seconds / every) + 1)]


def test_a_steady_sampler_with_one_short_stall_covers_the_run():
    times = steady(0, 60) + steady(62.5, 60)  # one 2.5 s stall in two minutes
    got = coverage(times, stall_s=1.0)
    assert (got.stalls, round(got.stalled_s, 3), round(got.max_gap_s, 3)) == (1, 2.5, 2.5)
    assert got.problems(**LIMITS) == []


@pytest.mark.parametrize(
    ("times", "why"),
    [
        (steady(0, 30) + steady(40, 30), r"1 stall\(s\) hid 10.0 s of 70.0 s"),  # one long stall
        ([t for i, t in enumerate(steady(0, 60)) if i % 20 < 10], r"stall"),  # blind half of every 2 s
        (steady(0, 60, every=0.9), "median gap 0.900 s > 0.5 s"),  # under the stall limit, but slow
        ([0.0], r"only 1 sample"),
    ],
)
def test_a_sampler_that_missed_part_of_the_run_is_refused(times, why):
    problems = coverage(times, stall_s=1.0).problems(**LIMITS)
    assert any(re.search(why, p) for p in problems), problems


def test_a_clock_that_goes_back_is_refused():
    with pytest.raises(ValueError, match="monotonic"):
        coverage([0.0, 1.0, 0.5], stall_s=1.0)
