"""The fake Slack's message metadata, clock, lost answers and conversation reads, against the
real ``slack_sdk`` async client."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import FakeSlack
from tests.unit.test_fake_slack import USERS, api_error, connect

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
EPOCH = f"{T0.timestamp():.6f}"


def tagged(tag: str) -> dict[str, Any]:
    return {"event_type": "alert_receiver_delivery", "event_payload": {"delivery": tag}}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def fake(clock: Clock) -> AsyncIterator[FakeSlack]:
    channels = ["#beta-alert", "#beta-announcements"]
    async with FakeSlack(users=USERS, channels=channels, clock=clock) as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return connect(fake)


async def post(client: AsyncWebClient, channel: str, text: str, **kwargs: Any) -> tuple[str, str]:
    answer = await client.chat_postMessage(channel=channel, text=text, **kwargs)
    return str(answer["channel"]), str(answer["ts"])


async def test_timestamps_follow_the_clock(
    fake: FakeSlack, client: AsyncWebClient, clock: Clock
) -> None:
    _, first = await post(client, "#beta-alert", "one")
    _, second = await post(client, "#beta-alert", "two")  # same instant: still unique
    clock.now += timedelta(minutes=5)
    _, third = await post(client, "#beta-alert", "three")
    assert first == EPOCH
    assert second == f"{T0.timestamp():.0f}.000100"
    assert third == f"{(T0 + timedelta(minutes=5)).timestamp():.6f}"


async def test_default_clock_is_the_wall_clock() -> None:
    async with FakeSlack() as fake:
        _, ts = await post(connect(fake), "#beta-alert", "now")
    assert abs(float(ts) - time.time()) < 60


async def test_metadata_is_recorded_and_answered(fake: FakeSlack, client: AsyncWebClient) -> None:
    answer = await client.chat_postMessage(
        channel="#beta-alert", text="tagged", metadata=tagged("7:alerts")
    )
    await post(client, "#beta-alert", "plain")
    assert answer["message"]["metadata"] == tagged("7:alerts")
    assert [m["metadata"] for m in fake.messages] == [tagged("7:alerts"), None]


async def test_form_encoded_metadata(fake: FakeSlack) -> None:
    form = {"channel": "#beta-alert", "text": "form", "metadata": json.dumps(tagged("8:dm"))}
    headers = {"Authorization": f"Bearer {fake.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.url + "chat.postMessage", data=form, headers=headers) as r,
    ):
        body = await r.json()
    assert body["ok"] is True
    assert fake.messages[0]["metadata"] == tagged("8:dm")


@pytest.mark.parametrize(
    "metadata",
    [{"event_type": "x"}, {"event_payload": {}}, {"event_type": "x", "event_payload": "y"}],
)
async def test_malformed_metadata(
    fake: FakeSlack, client: AsyncWebClient, metadata: dict[str, Any]
) -> None:
    exc = await api_error(
        client, "chat_postMessage", channel="#beta-alert", text="x", metadata=metadata
    )
    assert exc.response["error"] == "invalid_metadata_format"
    assert fake.messages == []


async def test_history_newest_first_without_replies(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    channel, parent = await post(client, "#beta-alert", "parent", metadata=tagged("1:alerts"))
    await post(client, "#beta-alert", "reply", thread_ts=parent, metadata=tagged("2:thread"))
    await post(client, "#beta-announcements", "elsewhere")
    await post(client, "#beta-alert", "later")
    await client.chat_update(channel=channel, ts=parent, text="parent, updated")

    plain = await client.conversations_history(channel=channel)
    assert plain["has_more"] is False
    assert plain["response_metadata"]["next_cursor"] == ""
    assert [m["text"] for m in plain["messages"]] == ["later", "parent, updated"]
    later, first = plain["messages"]
    assert later["type"] == "message" and later["bot_id"] == fake.bot_id
    assert later["user"] == fake.bot_user_id and "thread_ts" not in later
    assert first["ts"] == first["thread_ts"] == parent and first["reply_count"] == 1
    assert all("metadata" not in m for m in plain["messages"])

    full = await client.conversations_history(channel=channel, include_all_metadata=True)
    assert [m.get("metadata") for m in full["messages"]] == [None, tagged("1:alerts")]


async def test_history_window(fake: FakeSlack, client: AsyncWebClient, clock: Clock) -> None:
    channel, early = await post(client, "#beta-alert", "early")
    clock.now += timedelta(minutes=1)
    _, middle = await post(client, "#beta-alert", "middle")
    clock.now += timedelta(minutes=1)
    await post(client, "#beta-alert", "late")

    async def texts(**window: Any) -> list[str]:
        answer = await client.conversations_history(channel=channel, **window)
        return [m["text"] for m in answer["messages"]]

    assert await texts(oldest=early) == ["late", "middle"]
    assert await texts(oldest=early, inclusive=True) == ["late", "middle", "early"]
    assert await texts(latest=middle) == ["early"]
    assert await texts(oldest=early, latest=middle, inclusive=True) == ["middle", "early"]
    assert await texts(oldest=f"{T0.timestamp() - 30:.6f}") == ["late", "middle", "early"]
    exc = await api_error(client, "conversations_history", channel=channel, oldest="soon")
    assert exc.response["error"] == "invalid_ts_oldest"


async def test_history_pages(fake: FakeSlack, client: AsyncWebClient) -> None:
    for n in range(5):
        channel, _ = await post(client, "#beta-alert", f"m{n}")
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(3):
        page = await client.conversations_history(channel=channel, limit=2, cursor=cursor)
        seen += [m["text"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] is bool(cursor)
        if not cursor:
            break
    assert seen == ["m4", "m3", "m2", "m1", "m0"]
    exc = await api_error(client, "conversations_history", channel=channel, cursor="%%%")
    assert exc.response["error"] == "invalid_cursor"


async def test_history_of_a_dm(fake: FakeSlack, client: AsyncWebClient) -> None:
    await post(client, "U0KIM", "paged", metadata=tagged("4:dm"))
    opened = await client.conversations_open(users="U0KIM")
    answer = await client.conversations_history(
        channel=opened["channel"]["id"], include_all_metadata=True
    )
    assert [(m["text"], m["metadata"]) for m in answer["messages"]] == [("paged", tagged("4:dm"))]
    lee = await client.conversations_open(users="U0LEE")  # open, never written to
    empty = await client.conversations_history(channel=lee["channel"]["id"])
    assert empty["messages"] == []


@pytest.mark.parametrize("channel", ["#beta-alert", "beta-alert", "C99999999", "U0KIM", ""])
async def test_history_wants_a_known_id(client: AsyncWebClient, channel: str) -> None:
    exc = await api_error(client, "conversations_history", channel=channel)
    assert exc.response["error"] == "channel_not_found"


async def test_replies(fake: FakeSlack, client: AsyncWebClient, clock: Clock) -> None:
    channel, parent = await post(client, "#beta-alert", "parent")
    _, first = await post(client, "#beta-alert", "ack", thread_ts=parent, metadata=tagged("5:t"))
    await post(client, "#beta-alert", "not in the thread")
    clock.now += timedelta(minutes=1)
    await post(client, "#beta-alert", "resolve", thread_ts=parent)

    answer = await client.conversations_replies(
        channel=channel, ts=parent, include_all_metadata=True
    )
    assert [m["text"] for m in answer["messages"]] == ["parent", "ack", "resolve"]
    head, ack, _ = answer["messages"]
    assert head["thread_ts"] == parent and head["reply_count"] == 2
    assert ack["thread_ts"] == parent and ack["metadata"] == tagged("5:t")
    assert "metadata" not in head

    by_reply = await client.conversations_replies(channel=channel, ts=first, oldest=first)
    assert [m["text"] for m in by_reply["messages"]] == ["parent", "resolve"]
    assert all("metadata" not in m for m in by_reply["messages"])

    one = await client.conversations_replies(channel=channel, ts=parent, limit=2)
    assert one["has_more"] is True
    rest = await client.conversations_replies(
        channel=channel, ts=parent, limit=2, cursor=one["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in one["messages"] + rest["messages"]] == ["parent", "ack", "resolve"]
    assert rest["has_more"] is False


async def test_replies_errors(fake: FakeSlack, client: AsyncWebClient) -> None:
    channel, parent = await post(client, "#beta-alert", "parent")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"channel": channel, "ts": "1700000099.000100"}, "thread_not_found"),
        ({"channel": fake.channels["#beta-announcements"], "ts": parent}, "thread_not_found"),
        ({"channel": "#beta-alert", "ts": parent}, "channel_not_found"),
    ]
    for kwargs, error in cases:
        exc = await api_error(client, "conversations_replies", **kwargs)
        assert exc.response["error"] == error, kwargs


async def test_conversations_list(fake: FakeSlack, client: AsyncWebClient) -> None:
    first = await client.conversations_list(limit=1)
    assert [c["name"] for c in first["channels"]] == ["beta-alert"]
    assert first["channels"][0]["id"] == fake.channels["#beta-alert"]
    rest = await client.conversations_list(
        limit=1, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [c["name"] for c in rest["channels"]] == ["beta-announcements"]
    assert rest["response_metadata"]["next_cursor"] == ""
    private = await client.conversations_list(types="private_channel")
    assert private["channels"] == []


async def test_lose_next_answer(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.lose_next_answer(method="chat.postMessage")
    await client.auth_test()  # other methods answer
    with pytest.raises(aiohttp.ClientError):
        await client.chat_postMessage(channel="#beta-alert", text="posted all the same")
    await post(client, "#beta-alert", "answered")
    assert [m["text"] for m in fake.messages] == ["posted all the same", "answered"]
