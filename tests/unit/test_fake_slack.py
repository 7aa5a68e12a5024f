"""The fake Slack Web API server against the real ``slack_sdk`` async client."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import Call, FakeSlack

# slack_sdk warns when a message has blocks but no top-level text; some tests do that on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:The top-level `text` argument:UserWarning")

USERS = {"U0KIM": "kim", "U0LEE": "lee"}
TS = re.compile(r"^\d{10}\.\d{6}$")
BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*KISTokenRefreshFailed*"}}
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(users=USERS, channels=["#beta-alert", "#beta-announcements"]) as server:
        yield server


def connect(fake: FakeSlack, token: str | None = None) -> AsyncWebClient:
    """The client as a service would build it, without the client's own retries."""
    return AsyncWebClient(
        token=token if token is not None else fake.token, base_url=fake.url, retry_handlers=[]
    )


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return connect(fake)


async def test_url_is_the_api_base(fake: FakeSlack) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/", fake.url)
    assert await fake.start() == fake.url  # idempotent


async def test_url_before_start_raises() -> None:
    with pytest.raises(RuntimeError):
        _ = FakeSlack().url


async def test_auth_test(fake: FakeSlack, client: AsyncWebClient) -> None:
    response = await client.auth_test()
    assert response["ok"] is True
    assert response["user_id"] == fake.bot_user_id
    assert fake.calls == [Call("auth.test", {})]


async def test_post_to_channel_by_name_and_id(fake: FakeSlack, client: AsyncWebClient) -> None:
    channel_id = fake.channels["#beta-alert"]
    first = await client.chat_postMessage(channel="#beta-alert", text="fired", blocks=BLOCKS)
    second = await client.chat_postMessage(channel=channel_id, text="again")
    third = await client.chat_postMessage(channel="beta-alert", text="bare name")

    assert first["channel"] == second["channel"] == third["channel"] == channel_id
    assert TS.match(first["ts"])
    assert float(first["ts"]) < float(second["ts"]) < float(third["ts"])
    assert first["message"]["text"] == "fired"
    assert first["message"]["blocks"] == BLOCKS
    assert first["message"]["ts"] == first["ts"]

    posted = fake.posted_to("#beta-alert")
    assert [m["text"] for m in posted] == ["fired", "again", "bare name"]
    assert posted == fake.posted_to(channel_id) == fake.posted_to("beta-alert")
    assert posted[0]["channel"] == "#beta-alert"
    assert posted[0]["is_dm"] is False and posted[0]["user"] is None
    assert posted[0]["blocks"] == BLOCKS
    assert posted[0]["updates"] == []
    assert fake.posted_to("#beta-announcements") == []
    assert fake.calls_to("chat.postMessage")[0]["channel"] == "#beta-alert"


async def test_blocks_without_text(fake: FakeSlack, client: AsyncWebClient) -> None:
    await client.chat_postMessage(channel="#beta-alert", blocks=BLOCKS)
    assert fake.messages[0]["text"] == "" and fake.messages[0]["blocks"] == BLOCKS


async def api_error(client: AsyncWebClient, method: str, **kwargs: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await getattr(client, method)(**kwargs)
    return caught.value


async def test_post_errors(fake: FakeSlack, client: AsyncWebClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"channel": "#nope", "text": "x"}, "channel_not_found"),
        ({"channel": "C99999999", "text": "x"}, "channel_not_found"),
        ({"channel": "U0NOBODY", "text": "x"}, "channel_not_found"),
        ({"channel": "#beta-alert"}, "no_text"),
        ({"channel": "#beta-alert", "text": ""}, "no_text"),
        ({"channel": "#beta-alert", "text": "x" * 40001}, "msg_too_long"),
        ({"channel": "#beta-alert", "blocks": [{"text": "no type"}]}, "invalid_blocks"),
    ]
    for kwargs, error in cases:
        exc = await api_error(client, "chat_postMessage", **kwargs)
        assert exc.response.status_code == 200
        assert exc.response["ok"] is False
        assert exc.response["error"] == error, kwargs
    assert fake.messages == []
    with pytest.raises(KeyError):
        fake.posted_to("#nope")


async def test_dm_by_user_id(fake: FakeSlack, client: AsyncWebClient) -> None:
    response = await client.chat_postMessage(channel="U0KIM", text="you are paged")
    dm_id = response["channel"]
    assert dm_id.startswith("D")
    assert fake.dm_channels == {"U0KIM": dm_id}

    opened = await client.conversations_open(users="U0KIM")
    assert opened["channel"]["id"] == dm_id
    assert opened["already_open"] is True
    await client.chat_postMessage(channel=dm_id, text="via the DM id")

    lee = await client.conversations_open(users=["U0LEE"])
    assert lee["channel"]["id"] not in (dm_id, "")
    assert lee["already_open"] is False

    dms = fake.dms_to("U0KIM")
    assert [m["text"] for m in dms] == ["you are paged", "via the DM id"]
    assert all(m["is_dm"] and m["user"] == "U0KIM" and m["channel_id"] == dm_id for m in dms)
    assert dms[0]["channel"] == "U0KIM" and dms[1]["channel"] == dm_id
    assert fake.posted_to("U0KIM") == dms == fake.posted_to(dm_id)
    assert fake.dms_to("U0LEE") == []
    assert fake.posted_to("#beta-alert") == []


async def test_conversations_open_errors(client: AsyncWebClient) -> None:
    exc = await api_error(client, "conversations_open", users="U0NOBODY")
    assert exc.response["error"] == "user_not_found"


async def test_update(fake: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="#beta-alert", text="firing")
    await client.chat_postMessage(channel="#beta-alert", text="other")
    updated = await client.chat_update(
        channel=posted["channel"], ts=posted["ts"], text="acknowledged", blocks=BLOCKS
    )
    assert updated["ts"] == posted["ts"] and updated["channel"] == posted["channel"]
    assert updated["message"]["text"] == "acknowledged"

    record = fake.posted_to("#beta-alert")[0]
    assert record["text"] == "firing"  # the original post stays
    assert record["updates"] == [{"text": "acknowledged", "blocks": BLOCKS, "attachments": None}]
    assert FakeSlack.latest(record)["text"] == "acknowledged"
    assert FakeSlack.latest(fake.messages[1])["text"] == "other"
    assert fake.messages[1]["updates"] == []


async def test_update_errors(fake: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="#beta-alert", text="firing")
    channel_id, ts = posted["channel"], posted["ts"]
    other_id = fake.channels["#beta-announcements"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"channel": channel_id, "ts": "1700000099.000100", "text": "x"}, "message_not_found"),
        ({"channel": other_id, "ts": ts, "text": "x"}, "message_not_found"),
        ({"channel": "#beta-alert", "ts": ts, "text": "x"}, "channel_not_found"),
        ({"channel": channel_id, "ts": ts}, "no_text"),
    ]
    for kwargs, error in cases:
        exc = await api_error(client, "chat_update", **kwargs)
        assert exc.response.status_code == 200
        assert exc.response["error"] == error, kwargs
    assert fake.messages[0]["updates"] == []


async def test_update_dm_needs_the_dm_id(fake: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="U0KIM", text="paged")
    exc = await api_error(client, "chat_update", channel="U0KIM", ts=posted["ts"], text="x")
    assert exc.response["error"] == "channel_not_found"
    await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="acked")
    assert FakeSlack.latest(fake.dms_to("U0KIM")[0])["text"] == "acked"


async def test_post_ephemeral(fake: FakeSlack, client: AsyncWebClient) -> None:
    response = await client.chat_postEphemeral(channel="#beta-alert", user="U0KIM", text="psst")
    assert TS.match(response["message_ts"])
    assert fake.ephemerals[0]["user"] == "U0KIM" and fake.ephemerals[0]["text"] == "psst"
    assert fake.messages == []
    exc = await api_error(
        client, "chat_postEphemeral", channel="#beta-alert", user="U0NOBODY", text="x"
    )
    assert exc.response["error"] == "user_not_found"


async def test_auth_errors(fake: FakeSlack) -> None:
    wrong = await api_error(connect(fake, "xoxb-wrong"), "chat_postMessage", channel="C1", text="x")
    assert wrong.response.status_code == 200
    assert wrong.response["error"] == "invalid_auth"
    missing = await api_error(connect(fake, ""), "auth_test")
    assert missing.response["error"] == "not_authed"
    assert fake.messages == []
    assert len(fake.calls) == 2


async def test_rate_limited_with_retry_after(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fail_next(status=429, retry_after=7)
    exc = await api_error(client, "chat_postMessage", channel="#beta-alert", text="x")
    assert exc.response.status_code == 429
    assert exc.response.headers["Retry-After"] == "7"
    assert exc.response["error"] == "ratelimited"
    assert fake.messages == []

    await client.chat_postMessage(channel="#beta-alert", text="after the wait")
    assert [m["text"] for m in fake.messages] == ["after the wait"]
    assert [c.method for c in fake.calls] == ["chat.postMessage", "chat.postMessage"]


async def test_rate_limit_defaults_and_method_filter(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.fail_next(429, count=2, method="chat.update")
    posted = await client.chat_postMessage(channel="#beta-alert", text="unaffected")
    for _ in range(2):
        exc = await api_error(
            client, "chat_update", channel=posted["channel"], ts=posted["ts"], text="x"
        )
        assert exc.response.status_code == 429
        assert exc.response.headers["Retry-After"] == "1"
    await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="through")
    assert FakeSlack.latest(fake.messages[0])["text"] == "through"


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors(fake: FakeSlack, client: AsyncWebClient, status: int) -> None:
    fake.fail_next(status=status)
    exc = await api_error(client, "chat_postMessage", channel="#beta-alert", text="x")
    assert exc.response.status_code == status
    assert "Retry-After" not in exc.response.headers
    assert fake.messages == []
    await client.chat_postMessage(channel="#beta-alert", text="recovered")
    assert len(fake.messages) == 1


async def test_injected_slack_error(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fail_next(200, error="account_inactive")
    exc = await api_error(client, "auth_test")
    assert exc.response.status_code == 200 and exc.response["error"] == "account_inactive"


async def test_down_and_up(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.down()
    for _ in range(2):
        exc = await api_error(client, "chat_postMessage", channel="#beta-alert", text="x")
        assert exc.response.status_code == 503
    fake.up()
    await client.chat_postMessage(channel="#beta-alert", text="back")
    assert [m["text"] for m in fake.messages] == ["back"]


async def test_drop_next(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.drop_next()
    with pytest.raises(aiohttp.ClientError):
        await client.chat_postMessage(channel="#beta-alert", text="x")
    await client.chat_postMessage(channel="#beta-alert", text="ok")
    assert [m["text"] for m in fake.messages] == ["ok"]


async def test_form_encoded_body(fake: FakeSlack) -> None:
    form = {"channel": "#beta-alert", "text": "form", "blocks": json.dumps(BLOCKS)}
    headers = {"Authorization": f"Bearer {fake.token}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(fake.url + "chat.postMessage", data=form, headers=headers) as r:
            assert r.status == 200
            body = await r.json()
        async with session.post(fake.url + "chat.delete", data={}, headers=headers) as r:
            unknown = await r.json()
    assert body["ok"] is True
    assert fake.messages[0]["blocks"] == BLOCKS
    assert unknown == {"ok": False, "error": "unknown_method", "req_method": "chat.delete"}


async def test_default_channels() -> None:
    async with FakeSlack(channels={"beta-alert": "C0ALERT"}) as fake:
        assert fake.channels == {"#beta-alert": "C0ALERT"}
    assert set(FakeSlack().channels) == {"#beta-alert", "#beta-announcements"}
