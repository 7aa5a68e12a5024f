"""PostgreSQL only: a commit's outcome is what the server did with its COMMIT.

Each session is cut at one point around its COMMIT by a relay between the store and the
server (tests.store.pgcut), its backend terminated as an operator would. Whatever the
store reports must match what is stored: success exactly when the unit's rows are there,
StoreUnavailable exactly when none of them is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from receiver.store import PostgresStore, StoreUnavailable, UnitOfWork
from receiver.store.base import Committed
from tests.postgres import POSTGRES_URL
from tests.store.builders import T0, alert_record, inserting, note, reserved, stored_id
from tests.store.pgcut import CommitCutter, Cut

# Refuses every new incident when its transaction commits (a deferred constraint trigger),
# so the server answers a COMMIT with an error and rolls back.
_REFUSE_AT_COMMIT = """
CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$;
CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON incidents
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse();
"""


@pytest.fixture
async def cutter() -> AsyncIterator[CommitCutter]:
    async with CommitCutter(POSTGRES_URL) as relay:
        yield relay


@pytest.fixture
async def store(schema: str, cutter: CommitCutter) -> AsyncIterator[PostgresStore]:
    """A store of one pooled connection, all of it through the relay."""
    opened = PostgresStore(
        cutter.url(), schema=schema, min_connections=1, max_connections=1, connect_timeout=5
    )
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def opening_unit(store: PostgresStore, key: str) -> UnitOfWork:
    """A new incident (under an id reserved from the store) with an alert and a
    notification."""
    incident = await reserved(store, key)
    incident_id = stored_id(incident)
    return inserting(
        incident,
        alerts=[(incident_id, alert_record(f"fp-{key}"))],
        outbox=[(incident_id, note("incident.opened"))],
    )


async def stored_rows(admin: Any, key: str) -> dict[str, int]:
    """How many rows of each kind the unit opening ``key`` left."""
    incidents = await admin.fetchval("SELECT count(*) FROM incidents WHERE key = $1", key)
    alerts = await admin.fetchval("SELECT count(*) FROM alerts WHERE fingerprint = $1", f"fp-{key}")
    outbox = await admin.fetchval(
        "SELECT count(*) FROM outbox o JOIN incidents i ON i.id = o.incident_id WHERE i.key = $1",
        key,
    )
    return {"incidents": incidents, "alerts": alerts, "outbox": outbox}


ALL = {"incidents": 1, "alerts": 1, "outbox": 1}
NONE = {"incidents": 0, "alerts": 0, "outbox": 0}


@pytest.mark.parametrize(
    ("cut", "refused", "committed"),
    [
        (Cut.AFTER, False, True),  # the pool's reset fails on the dead backend
        (Cut.DURING, False, True),  # committed, but the client never heard
        (Cut.DURING, True, False),  # rolled back, and the client never heard
        (Cut.BEFORE, False, False),  # the COMMIT was never sent
        (Cut.LOST, False, False),  # never sent, and its backend waits on until ended
        (None, True, False),  # the server answers the COMMIT with an error
    ],
)
async def test_a_commit_reports_what_the_server_did_with_it(
    store: PostgresStore,
    cutter: CommitCutter,
    admin: Any,
    cut: Cut | None,
    refused: bool,
    committed: bool,
) -> None:
    if refused:
        await admin.execute(_REFUSE_AT_COMMIT)
    unit = await opening_unit(store, "db/primary")
    [(incident_id, incident)] = unit.incidents.items()
    if cut is not None:
        cutter.arm(cut)
    with capture_logs() as events:
        if committed:
            assert await store.commit(unit, T0) == Committed({incident_id: 0})
        else:
            with pytest.raises(StoreUnavailable):
                await store.commit(unit, T0)
    # Decided by the server, not given up on as unknown.
    assert "postgres_commit_outcome_unknown" not in [e["event"] for e in events]
    found = await admin.fetchval("SELECT count(*) FROM incidents WHERE id = $1", incident_id)
    if committed:
        assert found == 1
        assert await store.get_incident(incident_id) == incident
        assert await stored_rows(admin, incident.key) == ALL
    else:
        assert found == 0
        assert await stored_rows(admin, incident.key) == NONE
    if cut is not None:  # the cut happened where it was meant to
        await asyncio.wait_for(cutter.fired.wait(), 30)

    # The broken connection was replaced: the store goes on as before.
    if refused:
        await admin.execute("DROP TRIGGER refuse ON incidents")
    after = await opening_unit(store, "db/replica")
    await store.commit(after, T0)
    assert await stored_rows(admin, "db/replica") == ALL
