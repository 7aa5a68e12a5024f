"""What the outbox worker asks of the application after the store: follow-ups of recorded
effects (an incident's JIRA issue now exists) and instructions for rows an earlier version
wrote."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from receiver.config.models import RulesConfig
from receiver.domain import instructions, legacy
from receiver.domain.delivery import Channel, Kind, OutboxItem, page_purpose
from receiver.domain.escalation import Page
from receiver.domain.model import Event, Incident, Status
from receiver.service.rendering import Context
from receiver.service.rules import RulesHolder
from receiver.store.base import NewNotification, Store, UnitOfWork

PAGING_EVENTS = frozenset({"paged", "escalated"})


def pages_of(timeline: Sequence[Event]) -> dict[tuple[int, str], tuple[Page, datetime]]:
    """Every page an incident's timeline records since its last trigger, by (step, person),
    with when it was sent."""
    pages: dict[tuple[int, str], tuple[Page, datetime]] = {}
    for event in timeline:
        if event.event in ("opened", "reopened", "severity_raised"):
            pages.clear()  # a new trigger pages afresh
        if event.event not in PAGING_EVENTS:
            continue
        step = int(event.data.get("step", 0))
        people = [str(p) for p in event.data.get("people") or []]
        targets = [str(t) for t in event.data.get("targets") or []]
        for person, target in zip(people, targets or ["" for _ in people], strict=False):
            pages[step, person] = (Page(person, target, step), event.at)
    return pages


class FollowUp:
    """Turns the effects the worker recorded into the deliveries that follow from them, and
    renders the rows of earlier versions as instructions when they are claimed."""

    def __init__(
        self,
        store: Store,
        rules: RulesHolder,
        clock: Callable[[], datetime],
        context: Callable[[], Awaitable[Context]],
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.clock = clock
        self.context = context  # the service's rendering context: installation, jira_url
        self.on_commit = on_commit

    async def issue_linked(self, incident_ids: Sequence[int]) -> None:
        """These incidents' JIRA issues exist now: the timeline says so (and so the
        postmortem), and their Slack messages are brought up to date: the channel post and
        the pages still waiting for an ack show the issue (they said "JIRA pending")."""
        cfg, now, ctx = self.rules.current, self.clock(), await self.context()
        unit = UnitOfWork()
        for incident_id in incident_ids:
            incident = await self.store.get_incident(incident_id)
            if incident is None or incident.jira_key is None:
                continue
            unit.events.append((incident_id, Event("jira_issue", now, {"key": incident.jira_key})))
            order = instructions.slack(Kind.JIRA_LINKED, incident, cfg)
            if incident.status is Status.TRIGGERED:
                order["pages"] = await self._pages(incident, cfg, ctx.jira_url)
            unit.notify(incident_id, NewNotification(Channel.SLACK, Kind.JIRA_LINKED, order))
        if unit.outbox:
            await self.store.commit(unit, now)
            self.on_commit()

    async def _pages(
        self, incident: Incident, cfg: RulesConfig, jira_url: str | None
    ) -> dict[str, dict[str, Any]]:
        """The pages sent for the incident's current trigger, rendered again now that its
        issue is known, by the purpose their messages were recorded with."""
        assert incident.id is not None
        pages = pages_of(await self.store.timeline(incident.id))
        if not pages:
            return {}
        alerts = (await self.store.incident_alerts([incident.id], 1)).get(incident.id) or []
        out = {}
        for (step, person), (page, at) in pages.items():
            order = instructions.page(page, incident, cfg, at, alerts[0] if alerts else None,
                                      jira_url)  # fmt: skip
            out[page_purpose(step, person)] = {
                "text": order["text"],
                "blocks": order["blocks"],
            }
        return out

    async def translate(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        """The claimed items, those an earlier version wrote given their instructions."""
        old = [item for item in items if legacy.is_legacy(item.channel, item.payload)]
        if not old:
            return list(items)
        cfg, ctx = self.rules.current, await self.context()
        done: dict[int, OutboxItem] = {}
        for item in old:
            incident = await self.store.get_incident(item.incident_id) if item.incident_id else None
            if incident is None:
                continue  # the adapter refuses what it cannot read: dead-lettered, not lost
            timeline = (
                await self.store.timeline(incident.id)
                if item.kind == Kind.POSTMORTEM and incident.id is not None
                else []
            )
            order = legacy.render(
                item.channel, item.kind, item.payload, incident, cfg, ctx.installation,
                timeline, ctx.jira_url,
            )  # fmt: skip
            done[item.id] = replace(item, payload=order)
        return [done.get(item.id, item) for item in items]
