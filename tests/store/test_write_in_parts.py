"""One transaction written a unit at a time, and the big webhook that uses it: everything
or nothing is stored, and a webhook worked through in parts gives what it gives at once."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from receiver.api.payload import WebhookPayload
from receiver.metrics import Metrics
from receiver.service import IncidentService
from receiver.service.rules import RulesHolder
from receiver.store import Conflict, Store, UnitOfWork
from tests.helpers import SHIPPED_RULES, alert, webhook
from tests.postgres import postgres_schema
from tests.store.builders import (
    T0,
    alert_record,
    as_committed,
    inserting,
    new_incident,
    note,
    reserved,
    seed,
    stored_id,
)
from tests.store.conftest import make_store

STARTS = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


async def opening(store: Store, key: str) -> tuple[UnitOfWork, int]:
    """A unit inserting one new incident under a reserved id, with an alert and a row."""
    incident = await reserved(store, key)
    incident_id = stored_id(incident)
    unit = inserting(
        incident,
        alerts=[(incident_id, alert_record(f"fp-{key}"))],
        outbox=[(incident_id, note("incident.opened"))],
    )
    return unit, incident_id


async def test_parts_commit_together(store: Store) -> None:
    first, one = await opening(store, "a")
    second, two = await opening(store, "b")
    async with store.write_in_parts(T0) as tx:
        await tx.write(first)
        await tx.write(second)
    assert {i.key for i in await store.list_incidents(None, None, 10, None)} == {"a", "b"}
    alerts = await store.incident_alerts([one, two])
    assert {a.fingerprint for rows in alerts.values() for a in rows} == {"fp-a", "fp-b"}
    assert len(await store.claim_outbox(T0, 10, 60)) == 2


async def test_a_failure_after_a_part_stores_nothing(store: Store) -> None:
    first, _ = await opening(store, "a")
    with pytest.raises(RuntimeError):
        async with store.write_in_parts(T0) as tx:
            await tx.write(first)
            raise RuntimeError("the caller failed after the first part")
    assert await store.list_incidents(None, None, 10, None) == []
    assert await store.claim_outbox(T0, 10, 60) == []


async def test_a_conflict_in_a_later_part_undoes_the_earlier_ones(store: Store) -> None:
    [old] = await seed(store, new_incident("old"))
    changed = await store.commit(UnitOfWork([old]), T0)  # changed meanwhile: version moves on
    first, _ = await opening(store, "a")
    stale = replace(old, summary="decided on what was read before the change")
    with pytest.raises(Conflict):
        async with store.write_in_parts(T0) as tx:
            await tx.write(first)
            await tx.write(UnitOfWork([stale]))
    assert await store.list_incidents(None, None, 10, None) == [as_committed(old, changed)]
    assert await store.claim_outbox(T0, 10, 60) == []


def storm(count: int) -> list[dict[str, Any]]:
    """``count`` alerts on count // 2 keys (two instances each), one key seen before."""
    return [
        alert(starts=STARTS, alertname="BigStorm", service=f"s-{n // 2:04d}", instance=f"i{n}")
        for n in range(count)
    ]


async def outcome(store: Store, part_alerts: int) -> tuple[Any, ...]:
    """Ingest a storm (after one of its keys opened on its own) with parts of
    ``part_alerts``; what was answered and stored, without ids."""
    metrics = Metrics()
    service = IncidentService(
        store,
        RulesHolder(SHIPPED_RULES, metrics),
        metrics,
        lambda: STARTS,
        part_alerts=part_alerts,
    )
    alerts = storm(400)
    first = WebhookPayload.model_validate(webhook(alerts[0])).domain_alerts()
    await service.ingest(first)
    payload = WebhookPayload.model_validate(webhook(*alerts))
    answer = await service.ingest(payload.domain_alerts())
    incidents = await store.list_incidents(None, None, 1000, None)
    alerts_of = await store.incident_alerts([i.id for i in incidents if i.id is not None])
    rows = await store.deliveries(None, None, 5000)
    events: Counter[str] = Counter()
    for incident in incidents:
        assert incident.id is not None
        events.update(e.event for e in await store.timeline(incident.id))
    opened = sum(
        sample.value
        for family in metrics.incidents_opened.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )
    return (
        (answer.opened, answer.duplicates, len(answer.incidents)),
        sorted((i.key, i.firing_alerts, i.status.value) for i in incidents),
        sum(len(v) for v in alerts_of.values()),
        Counter((r.channel, r.kind) for r in rows),
        events,
        opened,
    )


async def test_a_webhook_worked_through_in_parts_gives_what_it_gives_at_once(
    store: Store, tmp_path: Any
) -> None:
    """The same storm on a second store of the same backend, at once: the same answer,
    incidents, alerts, outbox rows and timeline."""
    in_parts = await outcome(store, part_alerts=50)  # 8 parts
    backend = "sqlite" if type(store).__name__ == "SqliteStore" else "postgres"
    if backend == "sqlite":
        other = make_store(backend, tmp_path / "at-once")
        await other.open()
        try:
            at_once = await outcome(other, part_alerts=10_000)
        finally:
            await other.close()
    else:
        async with postgres_schema() as schema:
            other = make_store(backend, tmp_path, schema)
            await other.open()
            try:
                at_once = await outcome(other, part_alerts=10_000)
            finally:
                await other.close()
    assert in_parts == at_once
    (opened, duplicates, answered), incidents, alerts, *_ = in_parts
    assert (opened, duplicates, answered) == (199, 1, 200)  # the first alert was known
    assert len(incidents) == 200 and alerts == 400
