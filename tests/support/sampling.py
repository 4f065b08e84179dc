"""How well a periodic sampler watched a stretch of time: its pace and the gaps it left.

A sampler on a loaded machine can stall now and then (a slow query, a descheduled thread); one long
gap says little about the run, but many, or one that hides much of it, mean the peak it reports
may have been missed. So gaps are counted and their share of the run measured, on a monotonic clock.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Coverage:
    samples: int
    span_s: float  # first to last sample
    median_gap_s: float
    max_gap_s: float
    stalls: int  # gaps longer than the stall limit
    stalled_s: float  # time inside those gaps

    @property
    def stalled_share(self) -> float:
        return self.stalled_s / self.span_s if self.span_s else 0.0

    def problems(self, *, max_median_gap_s: float, max_stalled_share: float) -> list[str]:
        """Why this sampling cannot vouch for a peak; empty when it can."""
        found = []
        if self.samples < 2:
            found.append(f"only {self.samples} sample(s)")
        if self.median_gap_s > max_median_gap_s:
            found.append(
                f"median gap {self.median_gap_s:.3f} s > {max_median_gap_s} s: the sampler lost its pace"
            )
        if self.stalled_share > max_stalled_share:
            found.append(
                f"{self.stalls} stall(s) hid {self.stalled_s:.1f} s of {self.span_s:.1f} s "
                f"({self.stalled_share:.1%} > {max_stalled_share:.0%})"
            )
        return found


def coverage(times: Sequence[float], *, stall_s: float) -> Coverage:
    """``times``: monotonic clock readings of the samples, in order; a gap over ``stall_s`` is a stall."""
    if any(b < a for a, b in zip(times, times[1:], strict=False)):
        raise ValueError("sample times must come from a monotonic clock (they went backwards)")
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    stalls = [g for g in gaps if g > stall_s]
    return Coverage(
        samples=len(times),
        span_s=(times[-1] - times[0]) if times else 0.0,
        median_gap_s=statistics.median(gaps) if gaps else 0.0,
        max_gap_s=max(gaps, default=0.0),
        stalls=len(stalls),
        stalled_s=sum(stalls),
    )
