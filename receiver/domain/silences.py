"""Open incidents against what Alertmanager holds: alerts silenced there pause an
incident's paging (held like a maintenance window, until the silence ends), and alerts it
no longer holds are resolved. Pure; what the Alertmanagers hold is an argument.

Of an HA pair, an alert counts as held if either holds it, and as silenced only if every
one holding it has it silenced (silences are shared between the pair, so they agree but
for a moment).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from receiver.domain.delivery import Kind
from receiver.domain.incidents import Change
from receiver.domain.model import Event, Incident
from receiver.intake.alertmanager import HeldAlert, Silence, View

PREFIX = "silence:"  # the ``maintenance`` of an incident a silence holds: silence:<id>


@dataclass(frozen=True)
class Held:
    """What the Alertmanagers that answered hold, merged."""

    alerts: dict[str, HeldAlert]
    silences: dict[str, Silence]


def merge(views: Sequence[View]) -> Held:
    """The views of several Alertmanagers as one."""
    alerts: dict[str, HeldAlert] = {}
    silences: dict[str, Silence] = {}
    for view in views:
        silences.update(view.silences)
        for fp, alert in view.alerts.items():
            known = alerts.get(fp)
            if known is None or (known.silenced_by and not alert.silenced_by):
                alerts[fp] = alert  # not silenced somewhere: not silenced
    return Held(alerts, silences)


def gone(firing: Sequence[str], held: Held) -> list[str]:
    """The firing alerts no Alertmanager holds any more."""
    return [fp for fp in firing if fp not in held.alerts]


def silence_of(firing: Sequence[str], held: Held) -> Silence | None:
    """The silence holding every firing alert still held (the one of theirs ending last),
    if each is silenced; None if any is not."""
    present = [held.alerts[fp] for fp in firing if fp in held.alerts]
    if not present or any(not a.silenced_by for a in present):
        return None
    found = [held.silences[s] for a in present for s in a.silenced_by if s in held.silences]
    return max(found, key=lambda s: s.ends_at) if found else None


def silenced(incident: Incident, silence: Silence, now: datetime, zone: str) -> Change:
    """A triggered incident whose alerts are silenced: paging paused until the silence
    ends (or is lifted), with who silenced it and why."""
    data = {"silence": silence.id, "by": silence.created_by, "comment": silence.comment,
            "until": silence.ends_at.isoformat(), "zone": zone}  # fmt: skip
    return Change(
        replace(incident, maintenance=f"{PREFIX}{silence.id}"),
        events=(Event("silenced", now, data),),
        notifications=(Kind.SILENCED,),
    )


def held_by_silence(incident: Incident) -> str | None:
    """The id of the silence holding an incident's pages, if one does."""
    name = incident.maintenance
    return name.removeprefix(PREFIX) if name and name.startswith(PREFIX) else None
