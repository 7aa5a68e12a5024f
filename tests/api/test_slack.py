"""Slack buttons: signed requests acknowledge or resolve; forged or stale ones change nothing."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from slack_sdk.signature import SignatureVerifier

from tests.conftest import API, AUTH, ClientFactory
from tests.helpers import FakeClock, alert, metric, webhook

SECRET = "slack-signing-secret"
Client = TestClient[Any, web.Application]


def signed(
    action: str, incident: int | str, user: str, at: float, secret: str = SECRET
) -> tuple[bytes, dict[str, str]]:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "actions": [{"action_id": action, "value": str(incident), "type": "button"}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(at))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    headers = {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return body, headers


async def opened(client: Client) -> dict[str, Any]:
    assert (await client.post("/webhook", json=webhook(alert()), headers=AUTH)).status == 200
    body = await (await client.get("/api/v1/incidents", headers=API)).json()
    incident: dict[str, Any] = body["incidents"][0]
    return incident


async def status_of(client: Client, incident_id: int) -> dict[str, Any]:
    found: dict[str, Any] = await (
        await client.get(f"/api/v1/incidents/{incident_id}", headers=API)
    ).json()
    return found


async def test_signed_ack_from_slack(make_client: ClientFactory, clock: FakeClock) -> None:
    client = await make_client(slack_signing_secret=SECRET)
    incident = await opened(client)
    clock.advance(minutes=3)
    body, headers = signed("incident_ack", incident["id"], "U0KIM", clock.now.timestamp())
    resp = await client.post("/slack/interactions", data=body, headers=headers)
    assert resp.status == 200
    assert (await resp.json())["text"] == f"Incident #{incident['id']} acknowledged by Kim Minjun."
    after = await status_of(client, incident["id"])
    assert after["status"] == "acknowledged" and after["acknowledged_by"] == "kim"
    metrics = await (await client.get("/metrics")).text()
    assert (
        metric(metrics, "receiver_alert_to_ack_seconds_count", severity="P1", category="api") == 1
    )
    again = await client.post("/slack/interactions", data=body, headers=headers)
    assert (await again.json())["text"].endswith("is already acknowledged.")


async def test_signed_resolve_from_slack(make_client: ClientFactory, clock: FakeClock) -> None:
    client = await make_client(slack_signing_secret=SECRET)
    incident = await opened(client)
    body, headers = signed("incident_resolve", incident["id"], "U0LEE", clock.now.timestamp())
    assert (await client.post("/slack/interactions", data=body, headers=headers)).status == 200
    after = await status_of(client, incident["id"])
    assert after["status"] == "resolved" and after["resolved_by"] == "lee"


REFUSED = [
    ("forged", {"secret": "not-the-secret"}, 401),
    ("stale", {"age": 6 * 60}, 401),
    ("from the future", {"age": -6 * 60}, 401),
    ("unsigned", {"drop": "X-Slack-Signature"}, 401),
    ("garbage timestamp", {"timestamp": "soon"}, 401),
    ("tampered body", {"tamper": True}, 401),
]


@pytest.mark.parametrize(("name", "how", "status"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_refused_requests_change_nothing(
    make_client: ClientFactory, clock: FakeClock, name: str, how: dict[str, Any], status: int
) -> None:
    client = await make_client(slack_signing_secret=SECRET)
    incident = await opened(client)
    at = clock.now.timestamp() - how.get("age", 0)
    body, headers = signed(
        "incident_ack", incident["id"], "U0KIM", at, secret=how.get("secret", SECRET)
    )
    if "drop" in how:
        del headers[how["drop"]]
    if "timestamp" in how:
        headers["X-Slack-Request-Timestamp"] = how["timestamp"]
    if how.get("tamper"):
        body = body.replace(b"incident_ack", b"incident_resolve")
    resp = await client.post("/slack/interactions", data=body, headers=headers)
    assert resp.status == status
    assert (await status_of(client, incident["id"]))["status"] == "triggered"


async def test_unknown_user_and_malformed_payload(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    client = await make_client(slack_signing_secret=SECRET)
    incident = await opened(client)
    body, headers = signed("incident_ack", incident["id"], "U0STRANGER", clock.now.timestamp())
    resp = await client.post("/slack/interactions", data=body, headers=headers)
    assert resp.status == 200 and "not in the on-call rules" in (await resp.json())["text"]
    body, headers = signed("launch_missiles", incident["id"], "U0KIM", clock.now.timestamp())
    assert (await client.post("/slack/interactions", data=body, headers=headers)).status == 400
    body, headers = signed("incident_ack", "not-a-number", "U0KIM", clock.now.timestamp())
    assert (await client.post("/slack/interactions", data=body, headers=headers)).status == 400
    assert (await status_of(client, incident["id"]))["status"] == "triggered"


async def test_without_a_signing_secret_nothing_is_accepted(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    client = await make_client()
    incident = await opened(client)
    body, headers = signed("incident_ack", incident["id"], "U0KIM", clock.now.timestamp())
    assert (await client.post("/slack/interactions", data=body, headers=headers)).status == 401


async def test_out_of_range_incident_id_is_a_bad_request(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    client = await make_client(slack_signing_secret=SECRET)
    body, headers = signed("incident_ack", "9" * 20, "U0KIM", clock.now.timestamp())
    assert (await client.post("/slack/interactions", data=body, headers=headers)).status == 400
