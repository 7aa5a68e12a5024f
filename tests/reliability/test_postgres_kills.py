"""PostgreSQL backends terminated under load: every 503 left nothing, every 200 everything.

Webhooks go to an app on PostgreSQL while a connection of the test's own keeps terminating
the app's backends (picked by application_name) with ``pg_terminate_backend``, as an
operator or a failover would. A backend may die before, during or after a COMMIT; the
answer must say what the COMMIT did.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from receiver.store import PostgresStore
from tests.conftest import AUTH, ClientFactory
from tests.helpers import alert, webhook
from tests.postgres import POSTGRES_URL, postgres_schema

MIN_WEBHOOKS = 300
MAX_WEBHOOKS = 3000
ALERTS_PER_WEBHOOK = 2
CONCURRENCY = 8
# Webhooks keep coming until this many backends were terminated while running a COMMIT.
COMMIT_KILLS = 5
KILL_PAUSE_SECONDS = 0.001
EVERY_BACKEND_ROUNDS = 100  # every so many rounds, all the app's backends, whatever they do
MAX_KILL_ROUNDS = 50_000
# Terminates the app's backends running a COMMIT (or all of them, with $2), saying which
# were caught in one.
_TERMINATE = (
    "SELECT state = 'active' AND query LIKE 'COMMIT%' AS committing, "
    "pg_terminate_backend(pid) AS ended FROM pg_stat_activity "
    "WHERE application_name = $1 AND pid <> pg_backend_pid() "
    "AND ($2 OR (state = 'active' AND query LIKE 'COMMIT%'))"
)


def body(n: int) -> dict[str, Any]:
    """Webhook n: alerts of one service of its own, so one incident of its own."""
    return webhook(
        *(alert(service=f"svc-{n:04d}", instance=f"i-{k}") for k in range(ALERTS_PER_WEBHOOK))
    )


async def test_answers_match_what_is_stored_while_backends_are_terminated(
    make_client: ClientFactory,
) -> None:
    async with postgres_schema() as schema:
        name = f"kills-{schema}"
        store = PostgresStore(
            f"{POSTGRES_URL}?application_name={name}", schema=schema, connect_timeout=5
        )
        client = await make_client(run_worker=False, store=store)
        admin = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
        try:
            bodies: dict[int, dict[str, Any]] = {}
            answers: dict[int, int] = {}
            kills: Counter[str] = Counter()
            loaded = asyncio.Event()

            async def terminate() -> None:
                for n in range(MAX_KILL_ROUNDS):
                    if loaded.is_set():
                        return
                    everyone = n % EVERY_BACKEND_ROUNDS == EVERY_BACKEND_ROUNDS - 1
                    for committing, ended in await admin.fetch(_TERMINATE, name, everyone):
                        kills["commit" if committing else "other"] += ended
                    await asyncio.sleep(KILL_PAUSE_SECONDS)

            numbers = itertools.count()

            def more(n: int) -> bool:
                return n < MIN_WEBHOOKS or (n < MAX_WEBHOOKS and kills["commit"] < COMMIT_KILLS)

            async def send() -> None:
                while more(n := next(numbers)):
                    bodies[n] = body(n)
                    async with client.post("/webhook", json=bodies[n], headers=AUTH) as answer:
                        answers[n] = answer.status

            killer = asyncio.create_task(terminate())
            try:
                await asyncio.gather(*(send() for _ in range(CONCURRENCY)))
            finally:
                loaded.set()
                await killer

            assert kills["commit"] > 0, kills
            assert set(answers.values()) <= {200, 503}, answers
            rows = await admin.fetch(
                "SELECT a.fingerprint, count(DISTINCT t.id) AS events, "
                "count(DISTINCT o.id) AS deliveries FROM alerts a "
                "LEFT JOIN timeline t ON t.incident_id = a.incident_id "
                "LEFT JOIN outbox o ON o.incident_id = a.incident_id GROUP BY a.fingerprint"
            )
            stored = {r["fingerprint"]: (r["events"], r["deliveries"]) for r in rows}
            for n, status in sorted(answers.items()):
                fingerprints = [a["fingerprint"] for a in bodies[n]["alerts"]]
                present = [fp for fp in fingerprints if fp in stored]
                if status == 503:
                    assert not present, f"webhook {n} answered 503 but is stored"
                else:
                    assert present == fingerprints, f"webhook {n} answered 200 but is not stored"
                    # its incident's timeline and notifications came with it
                    assert all(min(stored[fp]) > 0 for fp in fingerprints), stored
        finally:
            await client.close()
            await admin.close()


pytestmark = pytest.mark.timeout(180)
