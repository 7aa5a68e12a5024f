"""The fake Telegram Bot API server against the real ``python-telegram-bot`` client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import telegram
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.request import HTTPXRequest

from tests.fakes.telegram import Call, FakeTelegram
from tests.helpers import FakeClock

KIM = 1001
CHANNEL = "@beta_alerts"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
KEYBOARD = telegram.InlineKeyboardMarkup(
    [
        [
            telegram.InlineKeyboardButton("Ack", callback_data="ack:42"),
            telegram.InlineKeyboardButton("Runbook", url="https://example.org/rb"),
        ]
    ]
)
KEYBOARD_JSON = {
    "inline_keyboard": [
        [
            {"text": "Ack", "callback_data": "ack:42"},
            {"text": "Runbook", "url": "https://example.org/rb"},
        ]
    ]
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    clock = FakeClock(now=T0)
    async with FakeTelegram(chats=[KIM, 1002, CHANNEL], blocked={1002}, clock=clock) as server:
        yield server


def connect(fake: FakeTelegram, token: str | None = None) -> telegram.Bot:
    """The client as a service would build it: plain ``Bot`` (no rate limiter, no retries),
    short timeouts."""
    request = HTTPXRequest(connect_timeout=2.0, read_timeout=2.0, write_timeout=2.0)
    return telegram.Bot(token or fake.token, base_url=fake.url, request=request)


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    async with connect(fake) as client:  # initialize() calls getMe
        yield client


async def test_url_and_get_me(fake: FakeTelegram, bot: telegram.Bot) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/bot", fake.url)
    assert await fake.start() == fake.url  # idempotent
    me = await bot.get_me()
    assert me.is_bot and me.id == fake.bot_id == 123456789 and me.username == "receiver_test_bot"
    assert bot.username == "receiver_test_bot"  # cached by initialize()
    assert fake.calls("getMe") == [Call("getMe", {})] * 2


async def test_url_before_start_raises() -> None:
    with pytest.raises(RuntimeError):
        _ = FakeTelegram().url


async def test_send_without_initialize(fake: FakeTelegram) -> None:
    client = connect(fake)  # the httpx client exists from construction; no getMe needed
    try:
        message = await client.send_message(KIM, "hello")
    finally:  # shutdown() is a no-op on a Bot never initialized: close its request itself
        await client.request.shutdown()
    assert message.message_id == 1
    assert fake.call_count("getMe") == 0


async def test_send_message_with_keyboard(fake: FakeTelegram, bot: telegram.Bot) -> None:
    first = await bot.send_message(
        KIM, "<b>KISTokenRefreshFailed</b>", parse_mode="HTML", reply_markup=KEYBOARD
    )
    second = await bot.send_message(KIM, "again", reply_to_message_id=first.message_id)
    other = await bot.send_message(CHANNEL, "to the channel")

    assert (first.message_id, second.message_id, other.message_id) == (1, 2, 1)
    assert first.date == T0 and first.chat.type == "private" and first.chat.id == KIM
    assert first.from_user is not None and first.from_user.id == fake.bot_id
    assert first.reply_markup == KEYBOARD
    assert second.reply_to_message is not None and second.reply_to_message.message_id == 1
    assert other.chat.type == "channel" and other.chat.username == "beta_alerts"
    assert other.chat.id < 0

    sent = fake.sent(KIM)
    assert [m["text"] for m in sent] == ["<b>KISTokenRefreshFailed</b>", "again"]
    assert sent[0]["reply_markup"] == KEYBOARD_JSON and sent[0]["parse_mode"] == "HTML"
    assert sent[0]["date"] == int(T0.timestamp()) and sent[0]["edits"] == 0
    assert sent[1]["reply_to_message_id"] == 1
    assert fake.sent(CHANNEL) == fake.sent(other.chat.id) == [fake.message(CHANNEL, 1)]
    assert len(fake.sent()) == 3
    params = fake.calls("sendMessage")[0].params
    assert params["chat_id"] == KIM and params["reply_markup"] == KEYBOARD_JSON


async def test_send_errors(fake: FakeTelegram, bot: telegram.Bot) -> None:
    cases: list[tuple[Any, str, type[TelegramError], str]] = [
        (9999, "x", BadRequest, "Chat not found"),
        ("@nobody", "x", BadRequest, "Chat not found"),
        (1002, "x", Forbidden, "Forbidden: bot was blocked by the user"),
        (KIM, " ", BadRequest, "Message text is empty"),
        (KIM, "x" * 4097, BadRequest, "Message is too long"),
    ]
    for chat_id, text, error, description in cases:
        with pytest.raises(error) as caught:
            await bot.send_message(chat_id, text)
        assert caught.value.message == description, chat_id  # PTB drops "Bad Request: "
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await bot.send_message(KIM, "x", reply_to_message_id=77)
    assert fake.sent() == []
    await bot.send_message(KIM, "x" * 4096)


async def test_html_and_keyboard_checks(bot: telegram.Bot) -> None:
    for text in ("a < b", "<b>open", "<div>x</div>", "<b>x</i>", "AT&T"):
        with pytest.raises(BadRequest, match="Can't parse entities"):
            await bot.send_message(KIM, text, parse_mode="HTML")
    await bot.send_message(KIM, "a &lt; b &amp; <a href='https://x'>c</a> &#33;", parse_mode="HTML")
    await bot.send_message(KIM, "a < b")  # no parse mode, no check
    too_long = telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton("x", callback_data="x" * 65)]]
    )
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(KIM, "x", reply_markup=too_long)


async def test_edit_message(fake: FakeTelegram, bot: telegram.Bot) -> None:
    sent = await bot.send_message(KIM, "firing", reply_markup=KEYBOARD)
    edited = await bot.edit_message_text(
        "acked by kim", chat_id=KIM, message_id=sent.message_id, reply_markup=KEYBOARD
    )
    assert isinstance(edited, telegram.Message)
    assert edited.text == "acked by kim" and edited.edit_date == T0
    assert edited.reply_markup == KEYBOARD

    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text(
            "acked by kim", chat_id=KIM, message_id=1, reply_markup=KEYBOARD
        )
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", chat_id=KIM, message_id=99)

    bare = await bot.edit_message_text("resolved", chat_id=KIM, message_id=1)  # drops keyboard
    assert isinstance(bare, telegram.Message) and bare.reply_markup is None
    await bot.edit_message_reply_markup(chat_id=KIM, message_id=1, reply_markup=KEYBOARD)
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(chat_id=KIM, message_id=1, reply_markup=KEYBOARD)

    record = fake.message(KIM, 1)
    assert record["text"] == "resolved" and record["reply_markup"] == KEYBOARD_JSON
    assert record["edits"] == 3
    assert [(v["text"], v["reply_markup"] is not None) for v in record["versions"]] == [
        ("firing", True),
        ("acked by kim", True),
        ("resolved", False),
        ("resolved", True),
    ]
    assert fake.sent(KIM) == [record]


async def test_callback_round_trip(fake: FakeTelegram, bot: telegram.Bot) -> None:
    sent = await bot.send_message(KIM, "firing", reply_markup=KEYBOARD)
    data = fake.callback_update(KIM, "ack:42", message=(KIM, sent.message_id), username="kim")
    update = telegram.Update.de_json(data, bot)
    query = update.callback_query
    assert query is not None and query.data == "ack:42"
    assert query.from_user.id == KIM and query.from_user.username == "kim"
    assert isinstance(query.message, telegram.Message) and query.message.text == "firing"
    assert query.message.reply_markup == KEYBOARD

    assert await query.answer("Acknowledged", show_alert=True) is True  # a shortcut: needs bot
    assert fake.callback_answers == [
        {
            "callback_query_id": query.id,
            "text": "Acknowledged",
            "url": None,
            "cache_time": None,
            "show_alert": True,
        }
    ]
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query(query.id)

    later = fake.callback_update(KIM, "ack:42")
    assert later["update_id"] == data["update_id"] + 1
    assert later["callback_query"]["id"] != query.id and "message" not in later["callback_query"]
    assert telegram.Update.de_json(later).callback_query is not None  # no bot needed to parse


async def test_message_update(fake: FakeTelegram, bot: telegram.Bot) -> None:
    data = fake.message_update(KIM, "/ack 42", first_name="Kim", username="kim")
    update = telegram.Update.de_json(data)
    assert update.message is not None and update.message.text == "/ack 42"
    assert update.message.chat.type == "private" and update.message.chat.id == KIM
    assert update.message.from_user is not None and update.message.from_user.username == "kim"
    assert update.message.entities[0].type == telegram.MessageEntity.BOT_COMMAND
    assert update.message.date == T0

    reply = await bot.send_message(KIM, "ok", reply_to_message_id=update.message.message_id)
    assert reply.message_id == 2  # incoming and outgoing messages share the chat's ids
    answer = fake.message_update(KIM, "thanks", reply_to=reply.message_id)
    replied = telegram.Update.de_json(answer).message
    assert replied is not None and replied.reply_to_message is not None
    assert replied.reply_to_message.text == "ok" and replied.message_id == 3
    assert [m["text"] for m in fake.sent(KIM)] == ["ok"]
    with pytest.raises(BadRequest, match="Message can't be edited"):
        await bot.edit_message_text("x", chat_id=KIM, message_id=1)
    with pytest.raises(KeyError):
        fake.message_update(KIM, "x", reply_to=99)


async def test_webhook(fake: FakeTelegram, bot: telegram.Bot) -> None:
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.set_webhook(
        "https://receiver.example/telegram",
        secret_token="s3cret_Token",
        allowed_updates=["message", "callback_query"],
        drop_pending_updates=True,
    )
    assert fake.webhook is not None
    assert fake.webhook["url"] == "https://receiver.example/telegram"
    assert fake.webhook["secret_token"] == "s3cret_Token"
    assert fake.webhook["allowed_updates"] == ["message", "callback_query"]
    assert fake.webhook["drop_pending_updates"] is True
    info = await bot.get_webhook_info()
    assert info.url == "https://receiver.example/telegram"
    assert info.allowed_updates == ("message", "callback_query")
    with pytest.raises(BadRequest, match="Secret token contains unallowed characters"):
        await bot.set_webhook("https://x", secret_token="not allowed!")
    assert await bot.delete_webhook()
    assert fake.webhook is None and (await bot.get_webhook_info()).url == ""


async def test_rate_limited(fake: FakeTelegram, bot: telegram.Bot) -> None:
    fake.fail_next(429, retry_after=7, method="sendMessage")
    await bot.get_me()  # another method is not affected
    with (
        pytest.warns(telegram.warnings.PTBDeprecationWarning),  # an int, until PTB_TIMEDELTA
        pytest.raises(RetryAfter) as caught,
    ):
        await bot.send_message(KIM, "x")
    with pytest.warns(telegram.warnings.PTBDeprecationWarning):
        assert caught.value.retry_after == 7
    assert fake.sent() == [] and fake.call_count("sendMessage") == 1
    await bot.send_message(KIM, "x")


async def test_retry_after_as_timedelta(
    fake: FakeTelegram, bot: telegram.Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    fake.fail_next(429)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(KIM, "x")
    assert caught.value.retry_after == timedelta(seconds=1)


@pytest.mark.parametrize("status", [500, 502])
async def test_down(fake: FakeTelegram, bot: telegram.Bot, status: int) -> None:
    fake.down(status)
    with pytest.raises(NetworkError) as caught:
        await bot.send_message(KIM, "x")
    assert type(caught.value) is NetworkError  # not BadRequest, also a NetworkError
    fake.up()
    await bot.send_message(KIM, "x")
    assert len(fake.sent()) == 1 and fake.call_count("sendMessage") == 2


async def test_injected_errors(fake: FakeTelegram, bot: telegram.Bot) -> None:
    fake.fail_next(403, "Forbidden: bot was kicked from the group chat", count=2)
    for _ in range(2):
        with pytest.raises(Forbidden, match="bot was kicked"):
            await bot.get_me()
    fake.fail_next(400)
    fake.down()
    fake.clear_failures()
    await bot.get_me()


async def test_wrong_token(fake: FakeTelegram) -> None:
    client = connect(fake, "42:wrong")
    with pytest.raises(InvalidToken):
        await client.initialize()
    with pytest.raises(InvalidToken, match="Unauthorized"):
        await client.send_message(KIM, "x")
    await client.shutdown()


async def test_raw_http(fake: FakeTelegram) -> None:
    base = fake.url + fake.token
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/sendMessage", json={"chat_id": KIM, "text": "json"}) as r:
            body = await r.json()
            assert body["ok"] is True and body["result"]["text"] == "json"
        async with http.get(f"{base}/SENDMESSAGE?chat_id={KIM}&text=query") as r:
            assert (await r.json())["result"]["message_id"] == 2
        form = aiohttp.FormData({"chat_id": CHANNEL, "text": "multipart"})
        form.add_field("document", b"bytes", filename="x.txt")
        async with http.post(f"{base}/sendMessage", data=form) as r:
            assert (await r.json())["result"]["chat"]["username"] == "beta_alerts"
        async with http.post(f"{base}/sendPhoto", data={"chat_id": str(KIM)}) as r:
            assert r.status == 404
            assert await r.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with http.post(f"{fake.url}bad/getMe") as r:
            assert r.status == 401
            assert (await r.json())["description"] == "Unauthorized"
        async with http.post(
            f"{base}/sendMessage", data={"chat_id": KIM, "text": "x", "reply_markup": "{oops"}
        ) as r:
            assert r.status == 400
        fake.fail_next(429, retry_after=3)
        async with http.post(f"{base}/getMe") as r:
            assert r.status == 429
            assert await r.json() == {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 3",
                "parameters": {"retry_after": 3},
            }
    assert [m["text"] for m in fake.sent()] == ["json", "query", "multipart"]
