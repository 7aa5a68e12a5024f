"""POST /webhook: every answer of the contract, and nothing stored from a rejected request."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from receiver.store.sqlite import SqliteStore
from tests.conftest import API, AUTH, WEBHOOK_TOKEN, ClientFactory
from tests.helpers import SHIPPED_RULES, alert, lifecycle, metric, webhook


async def incident_count(client: Any) -> int:
    resp = await client.get("/api/v1/incidents", headers=API)
    assert resp.status == 200
    return len((await resp.json())["incidents"])


async def test_firing_alert_opens_incident(make_client: ClientFactory) -> None:
    client = await make_client()
    resp = await client.post("/webhook", json=webhook(alert()), headers=AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert body["opened"] == 1 and len(body["incidents"]) == 1
    incident = (await (await client.get("/api/v1/incidents", headers=API)).json())["incidents"][0]
    assert incident["rule"] == "kis-token-refresh-failure"
    assert incident["severity"] == "P1" and incident["category"] == "api"
    assert incident["team"] == "backend" and incident["status"] == "triggered"
    assert incident["alerts"][0]["starts_at"] == "2026-11-26T01:00:00Z"
    assert incident["alerts"][0]["ends_at"] is None  # Go's zero time means "no end"


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("malformed json", b'{"version": "4", "alerts": [', "<body>"),
    ("not an object", b"[1, 2, 3]", "<body>"),
    ("version 3", json.dumps({**webhook(alert()), "version": "3"}).encode(), "version"),
    ("no alerts", json.dumps({**webhook(alert()), "alerts": []}).encode(), "alerts"),
    (
        "alert without fingerprint",
        json.dumps(webhook({k: v for k, v in alert().items() if k != "fingerprint"})).encode(),
        "alerts[0].fingerprint",
    ),
    (
        "bad status",
        json.dumps(webhook({**alert(), "status": "pending"})).encode(),
        "alerts[0].status",
    ),
    (
        "bad startsAt",
        json.dumps(webhook({**alert(), "startsAt": "yesterday"})).encode(),
        "alerts[0].startsAt",
    ),
    (
        "zero startsAt",
        json.dumps(webhook({**alert(), "startsAt": "0001-01-01T00:00:00Z"})).encode(),
        "alerts[0].startsAt",
    ),
    (
        "null startsAt",
        json.dumps(webhook({**alert(), "startsAt": None})).encode(),
        "alerts[0].startsAt",
    ),
    (
        "labels not strings",
        json.dumps(
            {**webhook(alert()), "alerts": [{**alert(), "labels": {"alertname": 5}}]}
        ).encode(),
        "alerts[0].labels.alertname",
    ),
    ("deep nesting", b"[" * 100000 + b"]" * 100000, "<body>"),
    (
        "NUL in an annotation",
        json.dumps(
            webhook({**alert(), "annotations": {"summary": "down\u0000"}}, status="firing")
        ).encode(),
        "alerts[0].annotations.summary",
    ),
    (
        "NUL in a label name",
        json.dumps(
            webhook(alert(), {**alert(), "labels": {**alert()["labels"], "a\u0000": "x"}})
        ).encode(),
        "alerts[1].labels.[key]",
    ),
    (
        "NUL in a fingerprint",
        json.dumps(webhook(alert(), {**alert(), "fingerprint": "f\u0000"})).encode(),
        "alerts[1].fingerprint",
    ),
    (
        "NUL in the group key",
        json.dumps({**webhook(alert()), "groupKey": "{}:\u0000"}).encode(),
        "groupKey",
    ),
    (
        "endsAt out of range",
        json.dumps(webhook({**alert(), "endsAt": "9999-12-31T23:59:59Z"})).encode(),
        "alerts[0].endsAt",
    ),
    (
        "startsAt out of range in the second alert",
        json.dumps(webhook(alert(), {**alert(), "startsAt": "9000-01-01T00:00:00Z"})).encode(),
        "alerts[1].startsAt",
    ),
]


@pytest.mark.parametrize(("name", "body", "field"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_bad_payload_is_400_naming_the_field(
    make_client: ClientFactory, name: str, body: bytes, field: str
) -> None:
    client = await make_client(max_body_bytes=4 * 1024 * 1024)
    # One good alert first, to show a rejected request leaves accepted state alone.
    assert (await client.post("/webhook", json=webhook(alert()), headers=AUTH)).status == 200
    resp = await client.post(
        "/webhook", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status == 400
    answer = await resp.json()
    assert answer["field"] == field
    assert answer["error"]
    if name.startswith("NUL"):
        assert answer["errors"][0]["message"] == "must not contain NUL (\\u0000) characters"
    assert await incident_count(client) == 1


async def test_every_refused_field_is_listed_in_the_order_of_the_payload(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    first = {**alert(), "startsAt": "0001-01-01T00:00:00Z"}
    second = {**alert(instance="b"), "endsAt": "9999-01-01T00:00:00Z", "fingerprint": "f\u0000"}
    body = {**webhook(first, second), "groupKey": "{}:\u0000"}
    resp = await client.post("/webhook", json=body, headers=AUTH)
    assert resp.status == 400
    answer = await resp.json()
    assert answer["field"] == "groupKey"
    assert [(e["field"], e["message"]) for e in answer["errors"]] == [
        ("groupKey", "must not contain NUL (\\u0000) characters"),
        ("alerts[0].startsAt", "must be a real time, not empty or Go's zero time"),
        ("alerts[1].endsAt", "timestamp out of range (must be before 9000-01-01)"),
        ("alerts[1].fingerprint", "must not contain NUL (\\u0000) characters"),
    ]
    assert await incident_count(client) == 0


async def test_escaped_backslash_before_u0000_is_text_not_nul(make_client: ClientFactory) -> None:
    """The JSON text \\\\u0000 is a backslash and "u0000", which may be stored."""
    client = await make_client()
    summary = "path C:\\u0000\\x"
    body = json.dumps(webhook({**alert(), "annotations": {"summary": summary}})).encode()
    assert b"\\\\u0000" in body
    resp = await client.post(
        "/webhook", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status == 200
    incident_id = (await resp.json())["incidents"][0]
    stored = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=API)).json()
    assert stored["alerts"][0]["annotations"]["summary"] == summary


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


AUTH_CASES = [
    ("bearer", AUTH, 200),
    ("basic with token as password", basic("alertmanager", WEBHOOK_TOKEN), 200),
    ("missing", {}, 401),
    ("wrong bearer", {"Authorization": "Bearer nope"}, 401),
    ("wrong basic", basic("alertmanager", "nope"), 401),
    ("token as basic user", basic(WEBHOOK_TOKEN, ""), 401),
    ("garbage basic", {"Authorization": "Basic %%%"}, 401),
    ("api token is not the webhook token", API, 401),
]


@pytest.mark.parametrize(("name", "headers", "status"), AUTH_CASES, ids=[c[0] for c in AUTH_CASES])
async def test_webhook_auth(
    make_client: ClientFactory, name: str, headers: dict[str, str], status: int
) -> None:
    client = await make_client()
    resp = await client.post("/webhook", json=webhook(alert()), headers=headers)
    assert resp.status == status
    body = await resp.json()
    assert WEBHOOK_TOKEN not in json.dumps(body)
    assert await incident_count(client) == (1 if status == 200 else 0)


async def test_body_over_limit_is_413_and_stores_nothing(make_client: ClientFactory) -> None:
    client = await make_client(max_body_bytes=64 * 1024)
    big = webhook(*[alert(alertname="HighErrorRate", service=f"s{i}") for i in range(400)])
    resp = await client.post("/webhook", json=big, headers=AUTH)
    assert resp.status == 413
    assert (await resp.json())["error"] == "request body too large"
    assert await incident_count(client) == 0


async def test_chunked_body_over_limit_is_413(make_client: ClientFactory) -> None:
    client = await make_client(max_body_bytes=64 * 1024)
    payload = json.dumps(
        webhook(*[alert(alertname="HighErrorRate", service=f"s{i}") for i in range(400)])
    ).encode()

    async def chunks() -> Any:
        for i in range(0, len(payload), 8192):
            yield payload[i : i + 8192]

    resp = await client.post("/webhook", data=chunks(), headers=AUTH)
    assert resp.status == 413
    assert await incident_count(client) == 0


async def test_store_that_cannot_commit_answers_503_then_recovers(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    path = tmp_path / "locked.db"
    client = await make_client(store=SqliteStore(str(path), busy_timeout_ms=50))
    blocker = sqlite3.connect(path, isolation_level=None, timeout=10)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        resp = await client.post("/webhook", json=webhook(alert()), headers=AUTH)
        assert resp.status == 503
        assert "error" in await resp.json()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await incident_count(client) == 0
    # Alertmanager retries 5xx: the retry lands.
    assert (await client.post("/webhook", json=webhook(alert()), headers=AUTH)).status == 200
    assert await incident_count(client) == 1
    metrics = await (await client.get("/metrics")).text()
    assert metric(metrics, "receiver_webhook_requests_total", code="503") == 1
    assert metric(metrics, "receiver_webhook_requests_total", code="200") == 1


async def test_same_webhook_fifty_times_is_one_incident(make_client: ClientFactory) -> None:
    client = await make_client()
    body = webhook(alert(instance="a"), alert(instance="b"))
    for _ in range(50):
        assert (await client.post("/webhook", json=body, headers=AUTH)).status == 200
    incidents = (await (await client.get("/api/v1/incidents", headers=API)).json())["incidents"]
    assert len(incidents) == 1
    detail = await (await client.get(f"/api/v1/incidents/{incidents[0]['id']}", headers=API)).json()
    assert lifecycle(detail["timeline"]) == ["opened"]
    opened = [d for d in detail["deliveries"] if d["kind"] == "incident.opened"]
    assert sorted(d["channel"] for d in opened) == ["jira", "slack"]  # never repeated
    pages = [d for d in detail["deliveries"] if d["channel"] == "pager"]
    assert len(pages) <= 1  # the on-call page, once, if its timer has fired yet
    metrics = await (await client.get("/metrics")).text()
    assert metric(metrics, "receiver_duplicates_suppressed_total") == 98
    assert metric(metrics, "receiver_incidents_opened_total", severity="P1", category="api") == 1
    assert metric(metrics, "receiver_alerts_received_total", status="firing") == 100


async def test_storm_of_5000_alerts_is_one_incident(make_client: ClientFactory) -> None:
    client = await make_client(max_body_bytes=4 * 1024 * 1024)
    alerts = [
        alert(alertname="HighResponseTime", service="order-api", severity="warning", pod=f"p{i}")
        for i in range(5000)
    ]
    for start in range(0, 5000, 500):  # Alertmanager splits big groups over several posts
        resp = await client.post(
            "/webhook", json=webhook(*alerts[start : start + 500]), headers=AUTH
        )
        assert resp.status == 200
    incidents = (await (await client.get("/api/v1/incidents", headers=API)).json())["incidents"]
    assert len(incidents) == 1
    assert incidents[0]["alerts_total"] == 5000
    assert len(incidents[0]["alerts"]) == 50  # the list view caps alerts per incident
    detail = await (await client.get(f"/api/v1/incidents/{incidents[0]['id']}", headers=API)).json()
    assert len(detail["alerts"]) == 5000
    events = lifecycle(detail["timeline"])
    assert events == ["opened"] + ["alerts_joined"] * 9  # one entry per post, not per alert
    opened = [d for d in detail["deliveries"] if d["kind"] == "incident.opened"]
    assert len(opened) == 2


async def test_non_loopback_without_token_refuses_to_start(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from receiver.settings import Settings

    def settings(host: str, webhook: str | None = None, allow: bool = False) -> Settings:
        return Settings(
            host=host,
            rules="x",
            webhook_token=SecretStr(webhook) if webhook else None,
            api_token=None,
            allow_unauthenticated=allow,
        )

    problem = settings("0.0.0.0").startup_problem()
    assert problem is not None and "RECEIVER_WEBHOOK_TOKEN" in problem
    problem = settings("0.0.0.0", webhook="w").startup_problem()
    assert problem is not None and "RECEIVER_API_TOKEN" in problem
    assert settings("0.0.0.0", allow=True).startup_problem() is None
    assert settings("127.0.0.1").startup_problem() is None
    assert settings("::1").startup_problem() is None


@pytest.mark.parametrize("name", ["WEBHOOK_TOKEN", "API_TOKEN", "SLACK_SIGNING_SECRET"])
@pytest.mark.parametrize(("value", "host"), [("", "0.0.0.0"), (" \t", "127.0.0.1")])
def test_blank_secrets_refuse_to_start(tmp_path: Path, name: str, value: str, host: str) -> None:
    """An empty secret (what an empty secret file gives) is a startup error on any address,
    never a token that an empty password matches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")} | {
        "RECEIVER_WEBHOOK_TOKEN": "wh",
        "RECEIVER_API_TOKEN": "api",
        f"RECEIVER_{name}": value,
        "RECEIVER_RULES": str(SHIPPED_RULES),
        "RECEIVER_DATABASE_URL": f"sqlite:///{tmp_path}/r.db",
        "RECEIVER_HOST": host,
        "RECEIVER_PORT": "0",
    }
    try:  # a receiver that starts serves until killed: the timeout fails the test
        result = subprocess.run(
            [sys.executable, "-m", "receiver", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"started with a blank RECEIVER_{name}")
    assert result.returncode == 2, result.stderr
    assert name.lower() in result.stderr and "empty or blank" in result.stderr
    assert not (tmp_path / "r.db").exists()


def test_blank_secrets_are_refused_by_the_settings() -> None:
    from pydantic import ValidationError

    from receiver.settings import SECRETS, Settings

    for name in SECRETS:
        with pytest.raises(ValidationError, match="empty or blank"):
            Settings.model_validate({name: " \n"})
        assert Settings.model_validate({name: "x"}).model_dump()[name] is not None


async def test_hostile_inputs_are_refused_not_crashed(make_client: ClientFactory) -> None:
    client = await make_client()
    far = webhook({**alert(), "startsAt": "9999-12-31T23:59:59-01:00"})
    resp = await client.post("/webhook", json=far, headers=AUTH)
    assert resp.status == 400 and (await resp.json())["field"] == "alerts[0].startsAt"
    # Header bytes that are not UTF-8 are just wrong credentials.
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert b" 401 " in status_line
    assert await incident_count(client) == 0
