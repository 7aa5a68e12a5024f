"""What people do to an incident besides acknowledging, mitigating, resolving and reporting
it: a note, a reassignment, taking an ack back, escalating now, and sending dead-lettered
deliveries again. Pure decisions over stored state, the rules and the clock, as
``receiver.domain.incidents`` decides the others; ``receiver.service.actions`` commits them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from receiver.config.models import RulesConfig
from receiver.domain.delivery import Kind
from receiver.domain.escalation import Fired, Page, Timer, TimerKind
from receiver.domain.fallback import trigger_tag
from receiver.domain.incidents import Change, Reason
from receiver.domain.model import Event, Incident, Status
from receiver.domain.oncall import page_time, resolve_targets

NOTE_MAX = 4_000  # characters of a note, once stripped
PAGED_AS = "assignee"  # the target a reassignment's page names
DELIVERIES_IN_EVENT = 50  # ids of retried deliveries a timeline entry lists
# A note repeated by its author within this is a retried request or a double click, not
# news; later, the same words ("still investigating") are a note of their own.
NOTE_REPEAT = timedelta(minutes=10)
# What beta testers are told of an outage: stale, and wrong, once the incident is resolved.
ANNOUNCEMENTS = frozenset({Kind.ANNOUNCE_OPENED})  # on Slack and on Telegram alike


def clean_note(text: object) -> str:
    """A note's text as it is kept: line breaks made ``\\n``, surrounding white space
    stripped. ValueError, saying why, for anything but 1 to NOTE_MAX characters of text
    whose only control characters are line breaks and tabs."""
    if not isinstance(text, str):
        raise ValueError("'text' must be the note, a string")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ValueError("'text' must not be empty")
    if len(text) > NOTE_MAX:
        raise ValueError(f"'text' is {len(text)} characters; at most {NOTE_MAX}")
    for char in text:
        if char not in "\n\t" and unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError(f"'text' has a control character (U+{ord(char):04X})")
    return text


def decide_note(
    incident: Incident, by: str, text: str, now: datetime, last: Event | None = None
) -> tuple[Reason, Change | None]:
    """A note on the timeline, and a comment on the issue; on any incident, resolved ones
    too. The same note by the same person as the newest note (``last``), within
    NOTE_REPEAT, is not added twice (a retried request, a double click)."""
    same = last is not None and last.event == "note" and last.data == {"by": by, "text": text}
    if same and last is not None and now - last.at < NOTE_REPEAT:
        return Reason.ALREADY, None
    note = Event("note", now, {"by": by, "text": text})
    return Reason.APPLIED, Change(incident, events=(note,), notifications=(Kind.NOTE,))


def decide_reassign(
    incident: Incident, by: str, to: str, now: datetime, page_now: bool = True
) -> tuple[Reason, Change | None, Fired]:
    """Hand an open incident to a person: its assignee (the issue's too), paged at once as
    step 0 of the current trigger would page them (their channels in order, moving on if
    they do not acknowledge) when its severity pages now (``page_now``; else they hear of
    it in JIRA and Slack, and nobody is woken for a P3). Handing it to its assignee again
    changes nothing."""
    if incident.status is Status.RESOLVED:
        return Reason.CONFLICT, None, Fired()
    if incident.assignee == to:
        return Reason.ALREADY, None, Fired()
    data: dict[str, Any] = {"by": by, "to": to}
    if incident.assignee is not None:
        data["from"] = incident.assignee
    change = Change(
        replace(incident, assignee=to),
        events=(Event("reassigned", now, {**data, "paged": page_now}),),
        notifications=(Kind.REASSIGNED,),
    )
    if not page_now:
        return Reason.APPLIED, change, Fired()
    # Said as a page event says it, so the page moves on to their next channel unanswered.
    data.update(step=0, people=[to], targets=[PAGED_AS], paged=True)
    change = replace(change, events=(Event("reassigned", now, data),))
    return Reason.APPLIED, change, Fired(pages=(Page(to, PAGED_AS, 0),))


def decide_unack(incident: Incident, by: str, now: datetime) -> tuple[Reason, Change | None]:
    """Take an acknowledgement back: the incident is triggered again from now, as if it had
    just opened (its ack and mitigation cleared, its phases and escalation ladder from step
    0 again, paging as its severity pages). Only an acknowledged incident."""
    if incident.status is not Status.ACKNOWLEDGED:
        return Reason.CONFLICT, None
    data: dict[str, Any] = {"by": by, "acknowledged_by": incident.acknowledged_by}
    if incident.mitigated_at is not None:
        data["mitigated_by"] = incident.mitigated_by
    again = replace(
        incident,
        status=Status.TRIGGERED,
        triggered_at=now,  # a new trigger: its own timers, pages and phase deadlines
        acknowledged_at=None,
        acknowledged_by=None,
        mitigated_at=None,
        mitigated_by=None,
        maintenance=None,  # someone asked for pages: no window holds them back
    )
    change = Change(
        again,
        events=(Event("unacknowledged", now, data),),
        notifications=(Kind.UNACKNOWLEDGED,),
    )
    return Reason.APPLIED, change


@dataclass(frozen=True)
class Escalation:
    """An escalation by hand: the step paged now, and the later steps' timers from now."""

    step: int
    fired: Fired
    timers: tuple[Timer, ...] = ()


def decide_escalate(
    incident: Incident,
    cfg: RulesConfig,
    paged: set[int],
    by: str,
    now: datetime,
    expected: int | None = None,
) -> tuple[Reason, Escalation | None]:
    """Page the step after the last one paged (``paged``: the steps of the ladder running
    now) at once, whatever the hour or the severity's paging policy (someone asked). While
    the incident is triggered the steps after it follow, each as long after this one as the
    ladder spaces them (paging as the severity pages); an acknowledged one escalates no
    further by itself. Not for a resolved incident, nor past the ladder's last step.

    ``expected``: the step the person saw as next (the console's button, the API's
    ``step``): ALREADY when it has been paged meanwhile (a double click, a retried request,
    two people at once), CONFLICT when the ladder is elsewhere; without it, the next step
    whatever it is."""
    steps = cfg.steps_for(incident.severity)
    step = max(paged, default=-1) + 1
    if expected is not None and expected in paged:
        return Reason.ALREADY, None
    if expected is not None and expected != step:
        return Reason.CONFLICT, None
    if incident.status is Status.RESOLVED or step >= len(steps):
        return Reason.CONFLICT, None
    if incident.team not in cfg.teams:
        return Reason.CONFLICT, None
    targets = resolve_targets(cfg, incident.team, steps[step].notify, now)
    pages = tuple(Page(person, target, step) for person, target in targets)
    data = {"step": step, "people": [p.person for p in pages],
            "targets": [p.target for p in pages], "by": by}  # fmt: skip
    fired = Fired(
        events=(Event("escalated", now, data),), notifications=(Kind.ESCALATED,), pages=pages
    )
    later: list[Timer] = []
    policy = cfg.severities.get(incident.severity)
    start = page_time(cfg, incident.team, incident.severity, now) if policy else None
    if incident.status is Status.TRIGGERED and start is not None:
        # Spaced from when paging may start (the next business morning, at night), as
        # ``escalation.plan`` spaces a trigger's. Timers of their own, named by this moment:
        # the trigger's stay, and whichever fires first pages the step; the other finds it
        # paged.
        for following in range(step + 1, len(steps)):
            spacing = steps[following].after - steps[step].after
            due = page_time(cfg, incident.team, incident.severity, start + spacing)
            if due is not None:
                later.append(Timer(TimerKind.ESCALATION, following, due, now))
    return Reason.APPLIED, Escalation(step, fired, tuple(later))


def refusal(action: str, incident: Incident) -> str:
    """Why an action (note, reassign, unack, escalate) was refused (409), in words."""
    status = incident.status.value
    if action == "unack":
        return f"incident is {status}: only an acknowledged incident can be unacknowledged"
    if action == "escalate" and incident.status is not Status.RESOLVED:
        return (
            "no such escalation step: the last step of its ladder has been paged, or the "
            "ladder has moved on from the step asked for"
        )
    return f"incident is {status}"


def retry_refusal(
    status: str, kind: str, page: dict[str, Any] | None, incident: Incident | None
) -> str | None:
    """Why a delivery (its ``status``, ``kind``, a page's facts, its incident) is not sent
    again, or None when it is: only dead letters are, and a page only while its incident
    still waits for an ack in the trigger it was for (else it would wake someone for
    nothing)."""
    if status != "dead":
        return f"delivery is {status}, not dead: only dead letters are retried"
    if kind in ANNOUNCEMENTS and incident is not None and incident.status is Status.RESOLVED:
        return "an outage announcement of an incident resolved since is not sent again"
    if kind != Kind.PAGE:
        return None
    if incident is None or incident.status is not Status.TRIGGERED:
        shown = incident.status.value if incident is not None else "gone"
        return f"a page of an incident that is {shown} is not sent again"
    trigger = (page or {}).get("trigger")
    if trigger is not None and trigger != trigger_tag(incident.triggered_at):
        return "a page of an earlier trigger of the incident is not sent again"
    return None


def retried_one(by: str, delivery: int, channel: str, now: datetime) -> Event:
    """The timeline entry of one dead letter sent again."""
    return Event("delivery_retried", now, {"by": by, "delivery": delivery, "channel": channel})


def retried_all(by: str, deliveries: Sequence[int], now: datetime) -> Event:
    """The timeline entry of an incident's dead letters sent again at once."""
    shown = list(deliveries[:DELIVERIES_IN_EVENT])
    data = {"by": by, "count": len(deliveries), "deliveries": shown}
    return Event("deliveries_retried", now, data)
