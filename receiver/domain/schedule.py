"""A rotation's schedule over a span: who holds it when, overrides and off hours marked.

It agrees with ``oncall_at`` (and so with ``receiver oncall --at``) at every instant, in
the rotation's wall-clock semantics: who holds a rotation depends only on the local wall
time, which runs at the speed of UTC between two changes of the zone's offset and jumps at
them. So the span is walked from one candidate change to the next, a candidate being the
next wall time at which a handoff, an override or business hours may change hands (turned
into an instant with the offset then in force) or the next change of offset, whichever
comes first. A wall time skipped by a clock change is thus crossed at the change; one
repeated by it is crossed twice, as ``oncall_at`` sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from receiver.config.models import RotationConfig
from receiver.domain.oncall import BUSINESS_END, BUSINESS_START, in_business_hours, oncall_at

MAX_SHIFTS = 500  # a bound on the periods returned: a 1-minute shift cannot blow it up
STEPS_PER_SHIFT = 10  # and on the candidates looked at (a change of nothing, e.g. weekends)
# Offsets are probed this far apart to find their changes: no zone changes its offset
# twice within it (tzdata's closest are months apart).
OFFSET_PROBE = timedelta(hours=3)
RESOLUTION = timedelta(microseconds=1)

State = tuple[str, bool, bool]  # person, override, off hours


@dataclass(frozen=True)
class Shift:
    """A period of a rotation's schedule: who holds it from ``starts`` until ``ends``
    (aware, in the rotation's zone: compare them after ``astimezone(UTC)``, since Python
    compares datetimes sharing a zone as wall times, which a repeated hour makes ambiguous).

    ``override``: an override's person holds it. ``off_hours``: outside a business-hours
    rotation's hours, when pages go to its fallback's responder (or, with no fallback,
    still to ``person``, as ``responder`` decides).
    """

    person: str
    starts: datetime
    ends: datetime
    override: bool = False
    off_hours: bool = False


def _state(name: str, rot: RotationConfig, at: datetime) -> State:
    now = oncall_at(name, rot, at)
    off = rot.hours == "business" and not in_business_hours(rot, at)
    return now.person, now.override, off


def _next_change(rot: RotationConfig, wall: datetime) -> datetime | None:
    """The first local wall time after ``wall`` at which the rotation may change hands."""
    found = [t for o in rot.overrides for t in (o.start, o.end) if t > wall]
    members = rot.members
    index = (wall - rot.handoff) // rot.shift
    # The next handoff to someone else (handoffs from kim to kim change nothing).
    for k in range(1, len(members)):
        if members[(index + k) % len(members)] != members[index % len(members)]:
            found.append(rot.handoff + (index + k) * rot.shift)
            break
    if rot.hours == "business":
        for day in (wall.date(), wall.date() + timedelta(days=1)):
            for clock in (BUSINESS_START, BUSINESS_END):
                if (edge := datetime.combine(day, clock)) > wall:
                    found.append(edge)
    return min(found, default=None)


def _next_offset_change(zone: ZoneInfo, at: datetime, until: datetime) -> datetime | None:
    """The first instant in (``at``, ``until``] with another UTC offset than ``at``'s."""
    offset = at.astimezone(zone).utcoffset()
    low = at
    while low < until:
        high = min(low + OFFSET_PROBE, until)
        if high.astimezone(zone).utcoffset() != offset:
            while high - low > RESOLUTION:
                middle = low + (high - low) // 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            return high
        low = high
    return None


def schedule(
    name: str, rot: RotationConfig, start: datetime, end: datetime, limit: int = MAX_SHIFTS
) -> list[Shift]:
    """The consecutive periods from ``start`` to ``end`` (aware instants), each with who
    holds rotation ``name``; adjacent periods differ in person, override or off hours.

    At most ``limit`` periods: when the bound cuts the span short, the last one ends
    before ``end``.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("schedule needs aware start and end times")
    at, end = start.astimezone(UTC), end.astimezone(UTC)
    if at >= end or limit < 1:
        return []
    zone = rot.zone
    shifts: list[Shift] = []
    since, state = at, _state(name, rot, at)

    def close(until: datetime) -> None:
        person, override, off = state
        starts, ends = since.astimezone(zone), until.astimezone(zone)
        shifts.append(Shift(person, starts, ends, override, off))

    for _ in range(limit * STEPS_PER_SHIFT):
        wall = at.astimezone(zone).replace(tzinfo=None)
        offset = wall - at.replace(tzinfo=None)
        change = _next_change(rot, wall)
        candidate = end if change is None else min(end, (change - offset).replace(tzinfo=UTC))
        at = _next_offset_change(zone, at, candidate) or candidate
        if at >= end:
            break
        if (new := _state(name, rot, at)) != state:
            close(at)
            if len(shifts) == limit:
                return shifts
            since, state = at, new
    if at > since:
        close(at)
    return shifts
