"""Pages that get through: a page goes to the first channel of the person's ``notify``; when
that channel fails for good, or nobody acknowledges within ``page_retry``, the next one is
tried. Pure; the timeline, the rules and the clock are arguments.

Each move is a ``page_fallback`` entry on the timeline (person, step, attempt, channel and
why), which is also what tells the next retry who is where: a retry timer and a failed
delivery that race move a person on once. Retry timers are stored like escalation steps,
one per (escalation step, attempt), coded into the timer's step as ``step * SLOTS +
attempt``; an ack or resolve cancels them with the incident's other timers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from receiver.config.durations import format_duration
from receiver.config.models import RulesConfig
from receiver.domain.escalation import Fired, Page, Timer, TimerKind
from receiver.domain.model import Event, Incident, Status

SLOTS = 10  # attempts a step's code leaves room for (a person has at most 3 channels)
PAGE_EVENTS = frozenset({"paged", "escalated", "phase_overdue", "triage_overdue", "reassigned"})
# A retry timer fired this early still moves a page on (clock steps, timers claimed in a batch).
EARLY = timedelta(seconds=1)


def code(step: int, attempt: int) -> int:
    """A retry timer's step: the escalation step and the attempt it moves pages to."""
    return step * SLOTS + attempt


def decode(value: int) -> tuple[int, int]:
    """(escalation step, attempt) of a retry timer's step."""
    step, attempt = divmod(value, SLOTS)
    return step, attempt


def trigger_tag(at: datetime) -> str:
    """A trigger's moment as pages carry it: the same text however the time was read."""
    return at.astimezone(UTC).isoformat()


def channels(cfg: RulesConfig, person: str) -> list[str]:
    """The channels a person is paged on, in order."""
    found = cfg.people.get(person)
    return list(found.notify) if found is not None else ["slack"]


def medium(cfg: RulesConfig, page: Page) -> str | None:
    """The channel of a page's attempt, or None past the person's last one."""
    order = channels(cfg, page.person)
    return order[page.attempt] if page.attempt < len(order) else None


def retry_timer(
    cfg: RulesConfig, pages: Iterable[Page], start: datetime, trigger: datetime
) -> list[Timer]:
    """The retry timers for pages just sent: one per step whose people have a channel
    after this attempt, ``page_retry`` after ``start``."""
    timers = {}
    for page in pages:
        if page.attempt + 1 < len(channels(cfg, page.person)):
            at = code(page.step, page.attempt + 1)
            timers[at] = Timer(TimerKind.PAGE_RETRY, at, start + cfg.page_retry, trigger)
    return list(timers.values())


def attempts(
    timeline: Sequence[Event], since: datetime
) -> dict[tuple[int, str], tuple[Page, datetime]]:
    """The latest attempt of every page sent since the trigger ``since``, by (step, person),
    with when it was made: a page sent again (a raise, a phase's breach) starts again at
    its first channel."""
    out: dict[tuple[int, str], tuple[Page, datetime]] = {}
    for event in timeline:
        if event.at < since:
            continue
        data = event.data
        if event.event == "page_fallback":
            step, person = int(data.get("step", 0)), str(data.get("person"))
            target = out[step, person][0].target if (step, person) in out else "fallback"
            out[step, person] = (Page(person, target, step, int(data.get("attempt", 0))), event.at)
        elif event.event in PAGE_EVENTS:
            found = data.get("step")
            step = found if isinstance(found, int) else 0
            people = [str(p) for p in data.get("people") or []]
            targets = [str(t) for t in data.get("targets") or []] or ["" for _ in people]
            for person, target in zip(people, targets, strict=False):
                out[step, person] = (Page(person, target or "paged", step), event.at)
    return out


@dataclass(frozen=True)
class Moved:
    """Pages moved on (``fired``), and when the retry timer must look again for pages of
    its step that were moved too lately to be moved on yet (``again``)."""

    fired: Fired
    again: datetime | None = None


def move_on(
    incident: Incident,
    cfg: RulesConfig,
    timeline: Sequence[Event],
    now: datetime,
    step: int,
    attempt: int,
    why: str,
    person: str | None = None,
    waited: timedelta | None = None,
) -> Moved:
    """Move the pages of ``step`` still at ``attempt - 1`` (``person``'s only, when given;
    with ``waited``, only those that have waited that long on their channel: the rest are
    looked at again when they have) to their next channel: nothing once the incident is
    acknowledged or resolved."""
    if incident.status is not Status.TRIGGERED or attempt < 1:
        return Moved(Fired())
    latest = attempts(timeline, incident.triggered_at)
    pages, events, later = [], [], []
    for (s, who), (page, at) in latest.items():
        if s != step or page.attempt != attempt - 1 or (person is not None and who != person):
            continue
        order = channels(cfg, who)
        if attempt >= len(order):
            continue
        if waited is not None and now - at < waited - EARLY:
            later.append(at + waited)  # moved here by a failure after the timer was set
            continue
        pages.append(Page(who, page.target, step, attempt))
        data = {
            "person": who,
            "step": step,
            "attempt": attempt,
            "channel": order[attempt],
            "from": order[attempt - 1],
            "why": why,
        }
        events.append(Event("page_fallback", now, data))
    return Moved(Fired(events=tuple(events), pages=tuple(pages)), min(later, default=None))


def no_ack_reason(cfg: RulesConfig) -> str:
    """Why a retry timer moves a page on."""
    return f"no ack within {format_duration(cfg.page_retry)}"
