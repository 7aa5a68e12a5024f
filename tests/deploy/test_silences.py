"""Alertmanager's own silences, with a real Alertmanager: a silence created through its API
pauses the incident's paging and escalation (the timeline names who silenced it, why and
until when), and the alert resolving under the silence, of which Alertmanager sends no
resolve, resolves the incident. An Alertmanager that does not answer changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from receiver.config import load_rules
from receiver.domain.oncall import responder
from tests.api.test_slack_notify import slack as slack  # the token it expects: ours
from tests.conftest import API, AUTH, WEBHOOK_TOKEN, ClientFactory
from tests.deploy.harness import derived_alertmanager_config, eventually, running_alertmanager
from tests.e2e.harness import free_port
from tests.fakes.slack import FakeSlack
from tests.helpers import SHIPPED_RULES, FakeClock, alert, wait_for, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

STALE = {"alertname": "MarketDataStale", "feed": "kis-quotes"}  # P1, the data team's
CFG = load_rules(SHIPPED_RULES)


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def test_a_silence_pauses_escalation_and_a_resolve_under_it_resolves_the_incident(
    make_client: ClientFactory,
    slack: FakeSlack,
    clock: FakeClock,
    tmp_path: Path,
    session: aiohttp.ClientSession,
) -> None:
    clock.now = datetime.now(UTC)  # Alertmanager keeps real time; the receiver's is moved
    am_port = free_port()
    client = await make_client(
        slack_token="xoxb-receiver", slack_api_url=slack.url,
        alertmanager_url=f"http://127.0.0.1:{am_port}", alertmanager_poll_seconds=0.2,
        alertmanager_grace_seconds=0,
    )  # fmt: skip
    token_file = tmp_path / "webhook-token"
    token_file.write_text(WEBHOOK_TOKEN + "\n")
    config = derived_alertmanager_config(str(client.make_url("/webhook")), token_file)
    async with running_alertmanager(config, tmp_path, am_port) as am:
        started = datetime.now(UTC)
        fired = [{"labels": STALE, "annotations": {"summary": "KIS quotes stale"},
                  "startsAt": _rfc3339(started)}]  # fmt: skip
        async with session.post(f"{am}/api/v2/alerts", json=fired) as resp:
            assert resp.status == 200

        async def incidents() -> list[dict[str, Any]]:
            body = await (await client.get("/api/v1/incidents", headers=API)).json()
            found: list[dict[str, Any]] = body["incidents"]
            return found

        [opened] = await eventually(incidents, lambda found: len(found) == 1,
                                    "the incident from Alertmanager", lambda: "")  # fmt: skip
        on_call = responder(CFG, "data", clock.now).person
        user = CFG.people[on_call].slack_id
        assert user is not None
        await wait_for(lambda: bool(slack.dms_to(user)))  # paged at once
        silence = {
            "matchers": [{"name": "alertname", "value": "MarketDataStale", "isRegex": False,
                          "isEqual": True}],
            "startsAt": _rfc3339(started), "endsAt": _rfc3339(started + timedelta(hours=2)),
            "createdBy": "kang", "comment": "quote vendor maintenance",
        }  # fmt: skip
        async with session.post(f"{am}/api/v2/silences", json=silence) as resp:
            assert resp.status == 200
            silence_id = (await resp.json())["silenceID"]
        url = f"/api/v1/incidents/{opened['id']}"

        async def view() -> dict[str, Any]:
            found: dict[str, Any] = await (await client.get(url, headers=API)).json()
            return found

        held = await eventually(view, lambda v: v["maintenance"] == f"silence:{silence_id}",
                                "the incident held by the silence", lambda: "")  # fmt: skip
        [note] = [e for e in held["timeline"] if e["event"] == "silenced"]
        assert (note["by"], note["comment"], note["silence"]) == (
            "kang", "quote vendor maintenance", silence_id,
        )  # fmt: skip
        assert held["pages_held_until"] is not None

        clock.advance(minutes=35)  # past step 1 (15 min) and the ack deadline (30 min)
        await asyncio.sleep(1.0)
        paused = await view()
        events = [e["event"] for e in paused["timeline"]]
        assert "escalated" not in events and "ack_sla_breached" not in events
        assert len(slack.dms_to(user)) == 1

        ended = [{**fired[0], "endsAt": _rfc3339(datetime.now(UTC))}]  # resolved, silenced
        async with session.post(f"{am}/api/v2/alerts", json=ended) as resp:
            assert resp.status == 200
        done = await eventually(view, lambda v: v["status"] == "resolved",
                                "the incident resolved", lambda: "", within=30)  # fmt: skip
        gone = [e for e in done["timeline"] if e["event"] == "alerts_gone"]
        assert gone and gone[0]["count"] == 1
        assert [a["status"] for a in done["alerts"]] == ["resolved"]


async def test_an_unreachable_alertmanager_changes_nothing(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    client = await make_client(
        alertmanager_url=f"http://127.0.0.1:{free_port()}", alertmanager_poll_seconds=0.05,
        alertmanager_grace_seconds=0,
    )  # fmt: skip
    resp = await client.post("/webhook", json=webhook(alert(starts=clock.now)), headers=AUTH)
    [incident_id] = (await resp.json())["incidents"]
    await asyncio.sleep(0.5)  # several looks at nothing
    view = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=API)).json()
    assert view["status"] == "triggered" and view["maintenance"] is None
    assert [a["status"] for a in view["alerts"]] == ["firing"]
    assert not [e for e in view["timeline"] if e["event"] in ("alerts_gone", "silenced")]
