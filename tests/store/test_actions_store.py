"""What the store does for the console's API, on every backend: the incident list's filters
(team, category, source, open), the assignee kept, one delivery read, and dead letters made
pending again only while they are dead."""

from __future__ import annotations

from dataclasses import replace

import pytest

from receiver.domain.delivery import Outcome
from receiver.domain.model import Event, Incident, Status
from receiver.store import Conflict, Store, UnitOfWork
from receiver.store.base import OPEN, DeliveryOutcome
from tests.store.builders import T0, at, enqueue, new_incident, note, read, seed


def ids(incidents: list[Incident]) -> list[int | None]:
    return [i.id for i in incidents]


def placed(key: str, status: Status, team: str, category: str, source: str) -> Incident:
    return replace(new_incident(key, status=status), team=team, category=category, source=source)


async def test_the_list_filters_by_team_category_source_and_open(store: Store) -> None:
    a, b, c, d, e = await seed(
        store,
        placed("a", Status.TRIGGERED, "backend", "api", "alert"),
        placed("b", Status.ACKNOWLEDGED, "backend", "data", "report"),
        placed("c", Status.RESOLVED, "devops", "network", "alert"),
        placed("d", Status.TRIGGERED, "devops", "performance", "report"),
        placed("e", Status.RESOLVED, "backend", "api", "report"),
    )

    async def listed(status: str | None = None, limit: int = 100, **by: str) -> list[int | None]:
        return ids(await store.list_incidents(status, None, limit, None, **by))

    assert await listed(OPEN) == ids([d, b, a])
    assert await listed(team="backend") == ids([e, b, a])
    assert await listed(category="api") == ids([e, a])
    assert await listed(source="report") == ids([e, d, b])
    assert await listed(OPEN, team="backend", source="report") == ids([b])
    assert await listed("resolved", team="devops", category="network", source="alert") == ids([c])
    assert await listed(team="frontend") == []
    assert await listed(OPEN, limit=1) == ids([d])
    found = await store.list_incidents(OPEN, "critical", 100, d.id, team="backend")
    assert ids(found) == ids([b, a])  # with the severity and the cursor as before


async def test_the_assignee_is_kept_and_changed_like_any_field(store: Store) -> None:
    [incident] = await seed(store, replace(new_incident("k"), assignee="choi"))
    stored = await read(store, incident.id or 0)
    assert stored.assignee == "choi"
    await store.commit(UnitOfWork([replace(stored, assignee="jung")]), at(1))
    assert (await read(store, incident.id or 0)).assignee == "jung"
    await store.commit(UnitOfWork([replace(await read(store, incident.id or 0), assignee=None)]),
                       at(2))  # fmt: skip
    assert (await read(store, incident.id or 0)).assignee is None


async def dead_letter(store: Store, incident_id: int | None) -> int:
    """A delivery of the incident, claimed and dead-lettered; its id."""
    await enqueue(store, T0, (incident_id, note("incident.opened")))
    [item] = await store.claim_outbox(T0, 1, 60)
    dead = DeliveryOutcome(item.id, Outcome.DEAD, "400: refused")
    await store.claim_outbox(at(1), 0, 60, [dead])
    return item.id


async def test_a_dead_letter_is_pending_again_once(store: Store) -> None:
    [incident] = await seed(store, new_incident("k"))
    delivery = await dead_letter(store, incident.id)
    found = await store.get_delivery(delivery)
    assert found is not None and (found.status, found.attempts) == ("dead", 1)
    assert await store.get_delivery(delivery + 1000) is None

    retried = Event("delivery_retried", at(5), {"by": "lee", "delivery": delivery})
    await store.commit(UnitOfWork(retried=[delivery], events=[(incident.id or 0, retried)]), at(5))
    again = await store.get_delivery(delivery)
    assert again is not None
    assert (again.status, again.attempts, again.done_at) == ("pending", 0, None)
    assert again.created_at == again.next_attempt_at == at(5)  # its max age counts from now
    assert again.last_error == "400: refused"  # until the next attempt says otherwise
    assert (await store.timeline(incident.id or 0))[-1] == retried
    [claimed] = await store.claim_outbox(at(5), 10, 60)
    assert (claimed.id, claimed.attempts) == (delivery, 0)
    assert claimed.maybe_delivered  # claimed before: the notifier checks before sending again

    # no longer dead: the unit conflicts and nothing of it is written
    with pytest.raises(Conflict):
        await store.commit(
            UnitOfWork(retried=[delivery], events=[(incident.id or 0, retried)]), at(6)
        )
    assert len(await store.timeline(incident.id or 0)) == 1


async def test_dead_letters_without_an_incident_are_retried_too(store: Store) -> None:
    delivery = await dead_letter(store, None)
    await store.commit(UnitOfWork(retried=[delivery]), at(5))
    found = await store.get_delivery(delivery)
    assert found is not None and found.status == "pending"
