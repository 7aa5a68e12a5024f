"""The Telegram webhook under fuzzing: updates of any shape with the right secret never answer
5xx; with a wrong or missing secret, nothing is stored; a stranger's button changes nothing."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import AUTH, ClientFactory
from tests.fuzzing import (
    HEADER_TEXT,
    JSON_VALUES,
    MARKER,
    RAW_JSON,
    Client,
    encode,
    exchange,
    fuzz,
    set_path,
)
from tests.helpers import alert, webhook

SECRET = "tg-webhook-secret"
STRANGER = 4242
BUTTON: dict[str, Any] = {
    "update_id": 1,
    "callback_query": {
        "id": "q1",
        "from": {"id": STRANGER, "is_bot": False, "first_name": "X"},
        "data": "ack:1",
        "message": {"message_id": 1, "chat": {"id": STRANGER, "type": "private"}, "date": 0},
    },
}
FIELDS = [
    ("update_id",), ("callback_query",), ("callback_query", "from"),
    ("callback_query", "from", "id"), ("callback_query", "data"), ("callback_query", "id"),
    ("callback_query", "message"),
]  # fmt: skip


async def fuzzed(make_client: ClientFactory) -> Client:
    client = await make_client(
        run_worker=False, telegram_token="1:x", telegram_webhook_secret=SECRET
    )
    async with client.post("/webhook", json=webhook(alert()), headers=AUTH) as resp:
        assert resp.status == 200
    return client


@st.composite
def updates(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        whole: bytes = draw(JSON_VALUES.map(encode) | RAW_JSON)
        return whole
    path = draw(st.sampled_from(FIELDS))
    how = draw(st.sampled_from(["drop", "value", "raw"]))
    update = copy.deepcopy(BUTTON)
    if how == "drop":
        return encode(set_path(update, path, drop=True))
    if how == "value":
        return encode(set_path(update, path, draw(JSON_VALUES)))
    return encode(set_path(update, path, MARKER), draw(RAW_JSON))


@fuzz(50)
@given(body=updates())
async def test_any_update_with_the_secret_is_answered_without_5xx(
    make_client: ClientFactory, body: bytes
) -> None:
    client = await fuzzed(make_client)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    # a stranger's button or malformed update: answered, nothing stored
    status, _ = await exchange(
        client, "POST", "/telegram/webhook", read_only=True, data=body, headers=headers
    )
    assert status in (200, 400)


@fuzz(30)
@given(secret=HEADER_TEXT | st.sampled_from(["", SECRET.upper(), SECRET + "x", SECRET[:-1]]))
async def test_a_wrong_secret_is_refused(make_client: ClientFactory, secret: str) -> None:
    client = await fuzzed(make_client)
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
    status, _ = await exchange(client, "POST", "/telegram/webhook", json=BUTTON, headers=headers)
    assert status == 401
