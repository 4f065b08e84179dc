"""The source's clock: which zone DATETIME values are written in, and DST-safe cursor windows.

A TIMESTAMP (``timestamptz``) column holds an instant: the session reads it in UTC, exactly. A
DATETIME (``timestamp without time zone``) column holds a wall-clock value in whatever zone the
writer's session ran (``DEFAULT CURRENT_TIMESTAMP`` writes the server's local time). Windows are
computed as instants and converted to that zone's wall clock; because the wall clock repeats an
hour when DST ends, the wall-clock bounds are the lowest and highest value any instant of the
window can carry, so a row is re-read (and merged) rather than skipped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nightshift_core.errors import PermanentError

UTC_NAMES = frozenset(
    {"utc", "+00:00", "-00:00", "etc/utc", "gmt", "etc/gmt", "z", "universal", "zulu", "uct", "etc/uct",
     "etc/universal", "etc/zulu", "gmt0", "etc/gmt0", "etc/gmt+0", "etc/gmt-0", "greenwich", "etc/greenwich"}
)  # fmt: skip
_STEP = dt.timedelta(hours=1)  # zones change offset at most every few hours; scan in hours, then bisect


class SourceClockError(ValueError, PermanentError):
    """The zone of a DATETIME cursor is unknown or contradicts the server."""


@dataclass(frozen=True)
class ServerZone:
    """What the source server says about its clock."""

    name: str  # as the server reports it: an IANA name, an offset like '+09:00' or an abbreviation
    offset: dt.timedelta  # the server's current UTC offset (local NOW() minus UTC)

    @property
    def is_utc(self) -> bool:
        return self.name.strip().lower() in UTC_NAMES


def zone(name: str) -> ZoneInfo:
    """An IANA zone by name; raises ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as 'America/New_York'") from None


def check_zone(server: ServerZone, declared: str | None, *, where: str) -> str | None:
    """The zone DATETIME cursors are read in (None: UTC); fail at once when it cannot be known.

    Nothing declared and a server in UTC: None. Nothing declared and any other zone: an error
    naming the zone found and the key to set. A declared zone is returned as it is.
    """
    if declared is not None:
        return declared
    if server.is_utc:
        return None
    raise SourceClockError(
        f"{where}: the source server's time zone is {server.name!r} (UTC offset now "
        f"{_offset(server.offset)}), not UTC, and a DATETIME column is the cursor: its values are that "
        "zone's wall clock, so windows computed in UTC would read rows hours late or skip them across a "
        "DST change. Set `source.timezone` in the sync definition to the zone the values are written in "
        "(an IANA name, e.g. `timezone: America/New_York`), or use a TIMESTAMP cursor"
    )


def contradiction(server: ServerZone, declared: str, now: dt.datetime | None = None) -> str | None:
    """Why a declared zone disagrees with the server's own (None when they agree)."""
    declared_utc = declared.strip().lower() in UTC_NAMES
    if server.is_utc or declared_utc:
        return None if server.is_utc and declared_utc else f"the server reports zone {server.name!r}"
    if "/" in server.name:  # an IANA name
        return None if server.name == declared else f"the server reports zone {server.name!r}"
    expected = (now or dt.datetime.now(dt.UTC)).astimezone(zone(declared)).utcoffset()
    if expected == server.offset:
        return None
    return (
        f"the server's clock is at UTC{_offset(server.offset)} now ({server.name!r}), "
        f"{declared!r} is at UTC{_offset(expected)}"
    )


def _offset(delta: dt.timedelta | None) -> str:
    minutes = int((delta or dt.timedelta(0)).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def earliest_instant(wall: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The earliest instant a wall-clock value can mean in ``tz`` (the first pass of a repeated hour)."""
    first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    return min(first.astimezone(dt.UTC), second.astimezone(dt.UTC))


def _wall(instant: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def transitions(tz: ZoneInfo, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Instants in (start, end] where ``tz`` changes its UTC offset (to the microsecond)."""
    out = []
    t = start
    while t < end:
        nxt = min(t + _STEP, end)
        if t.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            lo, hi = t, nxt  # offset(lo) != offset(hi): bisect to the first instant with the new offset
            while hi - lo > dt.timedelta(microseconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        t = nxt
    return out


def wall_window(
    lower: dt.datetime | None, upper: dt.datetime | None, tz: ZoneInfo
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Wall-clock bounds [lo, hi) in ``tz`` that hold every wall value of the instants in [lower, upper).

    Wall time rises with the instant except where DST ends, when it falls back an hour: the
    lowest value is then the start of the repeated hour, the highest the end of the first pass.
    """
    lo = _wall(lower, tz) if lower is not None else None
    hi = _wall(upper, tz) if upper is not None else None
    if lower is not None and upper is not None and lower < upper:
        for change in transitions(tz, lower, upper):
            after = _wall(change, tz)
            before = _wall(change - dt.timedelta(microseconds=1), tz) + dt.timedelta(microseconds=1)
            lo = min(lo, after)
            hi = max(hi, before)
    return lo, hi
