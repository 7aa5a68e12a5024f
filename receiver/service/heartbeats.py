"""Watching the heartbeats: a heartbeat silent past ``every + grace`` opens the receiver's
own incident ``heartbeat:<name>``, paged through the people's channels (never through
Alertmanager, which may be what died); it resolves when signs of life return.

Every replica watches; the silence goes in as a synthetic alert through ingestion, so what
two replicas both see is one incident (the second is a duplicate), and a restart neither
loses nor repeats it: the store keeps each heartbeat's last sign of life and since when it
is missed.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from receiver.config.models import HeartbeatConfig
from receiver.domain import heartbeats
from receiver.domain.model import AlertStatus
from receiver.service.incidents import IncidentService
from receiver.service.loops import Poller

log = structlog.get_logger("receiver.heartbeats")


class UnknownHeartbeat(Exception):
    """No heartbeat of that name in the rules."""


class HeartbeatWatch:
    """Signs of life in, incidents for silences out."""

    def __init__(self, service: IncidentService) -> None:
        self.service = service
        self.loop: Poller | None = None
        # A receiver that was down (a deploy, an outage) heard nothing meanwhile: what it
        # stored is no silence of the heartbeat's until every + grace after it is back.
        self.started = service.clock()

    def silent(self, beat: HeartbeatConfig, last_seen: datetime, now: datetime) -> bool:
        """Whether a heartbeat last seen then is silent now, this receiver's own start
        counting as a sign of life (it heard nothing while it was down)."""
        return heartbeats.is_silent(beat, max(last_seen, self.started), now)

    async def ping(self, name: str) -> tuple[datetime, bool]:
        """A sign of life through the API: (when, whether it was missed until now)."""
        cfg, now = self.service.rules.current, self.service.clock()
        if name not in cfg.heartbeats:
            raise UnknownHeartbeat(name)
        await self.service.store.heartbeats_seen({name: now})
        missed = (await self.service.store.heartbeats()).get(name, (now, None))[1]
        if missed is not None and self.loop is not None:
            self.loop.wake()  # resolve its incident now, not at the next poll
        return now, missed is not None

    async def status(self) -> list[dict[str, object]]:
        """Every heartbeat of the rules with its last sign of life and state."""
        cfg, now = self.service.rules.current, self.service.clock()
        stored = await self.service.store.heartbeats()
        out: list[dict[str, object]] = []
        for name, beat in cfg.heartbeats.items():
            last, missed = stored.get(name, (None, None))
            state = "waiting" if last is None else "missed" if missed is not None else "alive"
            if last is not None and self.silent(beat, last, now):
                state = "missed"  # the loop opens its incident at its next look
            out.append({
                "name": name,
                "every_seconds": beat.every.total_seconds(),
                "grace_seconds": beat.grace.total_seconds(),
                "last_seen": last,
                "missed_since": missed,
                "state": state,
                "incident_key": heartbeats.rule_name(name),
            })  # fmt: skip
        return out

    async def step(self) -> int:
        """Open an incident for each heartbeat newly silent, resolve those alive again."""
        service = self.service
        cfg, now = service.rules.current, service.clock()
        stored = await service.store.heartbeats()
        changed = 0
        for name, beat in cfg.heartbeats.items():
            if name not in stored:
                continue  # not watched before its first sign of life
            last, missed = stored[name]
            service.metrics.heartbeat_last_seen.labels(name).set(last.timestamp())
            silent = self.silent(beat, last, now)
            if silent and missed is None:
                alert = heartbeats.missing_alert(name, beat, last, AlertStatus.FIRING, now)
                await service.ingest([alert])
                await service.store.heartbeat_missed(name, alert.starts_at)
                service.metrics.heartbeats_missed.labels(name).inc()
                log.warning("heartbeat_missed", heartbeat=name, last_seen=last.isoformat())
                changed += 1
            elif not silent and missed is not None:
                alert = heartbeats.missing_alert(name, beat, last, AlertStatus.RESOLVED, now)
                alert.starts_at = missed  # the same alert as fired: its start is its identity
                await service.ingest([alert])
                await service.store.heartbeat_missed(name, None)
                log.info("heartbeat_back", heartbeat=name, last_seen=last.isoformat())
                changed += 1
        return changed


def heartbeat_loop(watch: HeartbeatWatch, poll_seconds: float) -> Poller:
    """Looks at the heartbeats every ``poll_seconds`` (and when a ping brings one back)."""
    watch.loop = Poller("heartbeats", watch.step, poll_seconds)
    return watch.loop
