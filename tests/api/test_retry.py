"""Dead letters sent again through the API: one delivery, or every one of an incident; the
worker woken, the retry on the timeline with the person, each refusal named."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.domain.failures import DeliveryError
from receiver.metrics import CHANNELS
from receiver.notify.base import Notifier
from tests.api.test_actions import act, opened, timeline
from tests.conftest import API, ClientFactory
from tests.fakes.notifiers import RecordingNotifier
from tests.helpers import wait_for

Client = TestClient[Any, web.Application]


def refused() -> DeliveryError:
    return DeliveryError("400: the project is archived", retryable=False)


async def rig(make_client: ClientFactory) -> tuple[Client, dict[str, RecordingNotifier]]:
    """A receiver whose notifiers record what they deliver, failing when told to."""
    recorders = {channel: RecordingNotifier() for channel in CHANNELS}
    notifiers: dict[str, Notifier] = dict(recorders)
    return await make_client(notifiers=notifiers), recorders


async def deliveries(client: Client, query: str = "") -> list[dict[str, Any]]:
    body = await (await client.get(f"/api/v1/deliveries?{query}", headers=API)).json()
    found: list[dict[str, Any]] = body["deliveries"]
    return found


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll an asynchronous condition until it holds (bounded, like ``wait_for``)."""
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def until_dead(client: Client, count: int) -> list[dict[str, Any]]:
    """The dead letters, once there are ``count`` of them."""
    found: list[dict[str, Any]] = []

    async def dead() -> bool:
        found[:] = await deliveries(client, "status=dead")
        return len(found) >= count

    await until(dead)
    assert len(found) == count, found
    return found


async def retry(client: Client, delivery: int, **body: Any) -> tuple[int, Any]:
    async with client.post(
        f"/api/v1/deliveries/{delivery}/retry", json=body or {"by": "lee"}, headers=API
    ) as resp:
        return resp.status, await resp.json()


async def test_a_dead_letter_is_sent_again(make_client: ClientFactory) -> None:
    client, notifiers = await rig(make_client)
    notifiers["jira"].fail_next(refused())
    incident_id = await opened(client)
    [dead] = await until_dead(client, 1)
    assert (dead["channel"], dead["kind"], dead["attempts"]) == ("jira", "incident.opened", 1)

    status, body = await retry(client, dead["id"])
    assert status == 200, body
    assert body["changed"] is True
    assert (body["delivery"]["status"], body["delivery"]["attempts"]) == ("pending", 0)
    await wait_for(lambda: "incident.opened" in [i.kind for i in notifiers["jira"].delivered])
    [event] = await timeline(client, incident_id, "delivery_retried")
    assert (event["by"], event["delivery"], event["channel"]) == ("lee", dead["id"], "jira")
    url = f"/api/v1/incidents/{incident_id}/timeline?format=text"
    text = await (await client.get(url, headers=API)).text()
    assert f"Lee Jihoon retried dead delivery #{dead['id']} (jira)" in text

    async def sent() -> bool:
        return [d["status"] for d in await deliveries(client) if d["id"] == dead["id"]] == ["sent"]

    await until(sent)
    status, answer = await retry(client, dead["id"])  # sent now: not dead
    assert status == 409
    assert answer["error"] == "delivery is sent, not dead: only dead letters are retried"
    assert len(await timeline(client, incident_id, "delivery_retried")) == 1


async def test_retrying_what_cannot_be_retried(make_client: ClientFactory) -> None:
    client, notifiers = await rig(make_client)
    notifiers["pager"].fail_next(refused())
    incident_id = await opened(client)
    [dead] = await until_dead(client, 1)
    assert dead["kind"] == "page"
    assert (await act(client, incident_id, "ack", by="kim"))[0] == 200
    status, answer = await retry(client, dead["id"])  # kim acknowledged: nobody to wake
    assert status == 409 and "only while its incident waits for an ack" in answer["error"]
    status, body = await act(client, incident_id, "retry", by="lee")  # kept back too
    assert (status, body["retried"], body["changed"]) == (200, 0, False)

    assert (await retry(client, 424242))[0] == 404
    assert (await retry(client, dead["id"], by="nobody"))[1]["field"] == "by"
    assert (await retry(client, dead["id"], by="lee", why="x"))[1]["field"] == "why"
    bad = await client.post("/api/v1/deliveries/x/retry", json={"by": "lee"}, headers=API)
    assert (bad.status, (await bad.json())["field"]) == (400, "id")
    assert (await client.post(f"/api/v1/deliveries/{dead['id']}/retry", json={})).status == 401
    assert await timeline(client, incident_id, "delivery_retried") == []


async def test_every_dead_letter_of_an_incident_at_once(make_client: ClientFactory) -> None:
    client, notifiers = await rig(make_client)
    notifiers["jira"].fail_next(refused(), refused())
    notifiers["slack"].fail_next(refused())
    incident_id = await opened(client)
    assert (await act(client, incident_id, "ack", by="kim"))[0] == 200
    dead = await until_dead(client, 3)  # JIRA's open and first page's note, Slack's open
    status, body = await act(client, incident_id, "retry", by="lee")
    assert status == 200, body
    assert (body["changed"], body["retried"]) == (True, 3)
    assert body["deliveries"] == sorted(d["id"] for d in dead)
    [event] = await timeline(client, incident_id, "deliveries_retried")
    assert (event["by"], event["count"], event["deliveries"]) == ("lee", 3, body["deliveries"])

    async def all_sent() -> bool:
        return {d["status"] for d in await deliveries(client)} == {"sent"}

    await until(all_sent)
    assert {(i.channel, i.kind) for d in dead for i in [*notifiers["jira"].delivered,
            *notifiers["slack"].delivered] if i.id == d["id"]} == {
        (d["channel"], d["kind"]) for d in dead
    }  # fmt: skip

    status, body = await act(client, incident_id, "retry", by="lee")  # nothing dead now
    assert (status, body["changed"], body["retried"], body["deliveries"]) == (200, False, 0, [])
    assert len(await timeline(client, incident_id, "deliveries_retried")) == 1
