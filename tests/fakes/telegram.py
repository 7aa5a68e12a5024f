"""An in-process Telegram Bot API server for tests.

The real ``python-telegram-bot`` client, or any HTTP client, can talk to it::

    async with FakeTelegram(chats=[1001, "@beta_alerts"]) as fake:
        bot = telegram.Bot(fake.token, base_url=fake.url)
        await bot.send_message(1001, "KISTokenRefreshFailed", reply_markup=keyboard)
        assert fake.sent(1001)[0]["text"] == "KISTokenRefreshFailed"

``fake.url`` is ``http://127.0.0.1:PORT/bot``; clients append the token: ``POST`` (or ``GET``)
``{url}{token}/{method}``, method names case-insensitive, parameters as a query string, JSON,
or a urlencoded or multipart form whose nested values (``reply_markup``...) are JSON strings,
as PTB sends them. Answers: ``{"ok": true, "result": ...}``; errors ``{"ok": false,
"error_code": N, "description": "..."}`` with HTTP status N: a wrong token 401
``Unauthorized``, an unknown method 404 ``Not Found``.

Methods: ``getMe``; ``sendMessage`` (text 1..4096 characters; ``parse_mode="HTML"`` is checked
for Telegram's tags and escaping; inline keyboards are checked, ``callback_data`` 1..64 bytes;
a reply needs its message); ``editMessageText`` and ``editMessageReplyMarkup`` (as in
Telegram, leaving out ``reply_markup`` removes the keyboard, and an edit changing nothing is
400 ``message is not modified``); ``answerCallbackQuery`` (once per query); ``setWebhook``,
``getWebhookInfo`` (without the secret, as Telegram) and ``deleteWebhook``. Texts are stored
as sent. Message ids count up per chat, shared with :meth:`FakeTelegram.message_update`'s.

Chats: ints (positive: private, negative: a group) or ``"@channelname"`` (a channel, with a
stable negative id that also addresses it). With ``chats`` given, others are 400 ``chat not
found``; chats in ``blocked`` are 403 ``bot was blocked by the user``. Failures:
:meth:`FakeTelegram.fail_next` (a 429 carries ``parameters.retry_after``), ``down()``/``up()``.
Message dates follow the constructor's ``clock`` (the wall clock by default).

All state lives on the event loop that called ``start()``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import responses
from typing import Any, NamedTuple

from aiohttp import web

from tests.fakes.server import LoopbackServer

JsonDict = dict[str, Any]
ChatRef = int | str

TEXT_MAX = 4096
CALLBACK_DATA_MAX = 64  # bytes
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "a", "code"}
HTML_TAGS |= {"pre", "blockquote", "tg-spoiler", "tg-emoji"}
_JSON_PARAMS = ("reply_markup", "reply_parameters", "link_preview_options", "allowed_updates")
_INT_PARAMS = ("message_id", "reply_to_message_id", "max_connections", "cache_time")
_BOOL_PARAMS = ("show_alert", "disable_web_page_preview", "drop_pending_updates")
_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)[^<>]*>|&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);|[<>&]")


class Call(NamedTuple):
    """One request: the canonical method name and its parameters, decoded (chat and message
    ids as ints where numeric, JSON fields as objects, flags as bools)."""

    method: str
    params: JsonDict


class ApiError(Exception):
    """Raised inside handlers; answered as ``{"ok": false, ...}`` with HTTP ``status``."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _bad(text: str) -> ApiError:
    return ApiError(400, f"Bad Request: {text}")


@dataclass
class _Failure:
    status: int
    description: str
    remaining: int
    retry_after: int | None
    method: str | None


def _chat_ref(value: Any) -> ChatRef:
    """A chat id as an int, or a channel's ``"@name"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if isinstance(value, str) and value.startswith("@") and len(value) > 1:
        return value
    raise _bad("chat not found" if value else "chat_id is empty")


def _normalize(params: JsonDict) -> JsonDict:
    out = dict(params)
    for key in _JSON_PARAMS:
        if isinstance(out.get(key), str):
            try:
                out[key] = json.loads(out[key])
            except ValueError:
                raise _bad(f"can't parse {key} JSON object") from None
    for key in (k for k in _INT_PARAMS if isinstance(out.get(k), str)):
        out[key] = int(out[key]) if re.fullmatch(r"-?\d+", out[key]) else out[key]
    for key in (k for k in _BOOL_PARAMS if k in out):
        out[key] = out[key] is True or str(out[key]).lower() in ("1", "true")
    if "chat_id" in out:
        with contextlib.suppress(ApiError):  # a bad chat_id is the handler's to answer
            out["chat_id"] = _chat_ref(out["chat_id"])
    return out


def _check_html(text: str) -> None:
    """Telegram's HTML parse mode: only its tags, properly nested, ``<>&`` escaped."""
    open_tags: list[str] = []
    for match in _TAG.finditer(text):
        closing, name, at = match.group(1), match.group(2), len(text[: match.start()].encode())
        if name is None and match.group(0) in "<>&":
            raise _bad(f"can't parse entities: Unexpected {match.group(0)!r} at byte offset {at}")
        if name is not None and name.lower() not in HTML_TAGS:
            raise _bad(f'can\'t parse entities: Unsupported tag "{name}" at byte offset {at}')
        if name is not None and not closing:
            open_tags.append(name.lower())
        elif name is not None and (not open_tags or open_tags.pop() != name.lower()):
            raise _bad(f'can\'t parse entities: Unmatched end tag "{name}" at byte offset {at}')
    if open_tags:
        raise _bad(f"can't parse entities: Can't find end tag for \"{open_tags[-1]}\"")


def _check_markup(markup: Any) -> None:
    """Inline keyboards: rows of buttons with a text, ``callback_data`` of 1..64 bytes."""
    if markup is not None and not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    rows = (markup or {}).get("inline_keyboard", [])
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad("can't parse inline keyboard markup: expected an Array")
    for button in (b for row in rows for b in row):
        if not isinstance(button, dict) or not button.get("text"):
            raise _bad("can't parse inline keyboard button: Text must be non-empty")
        data = button.get("callback_data")
        if data is not None and not 1 <= len(str(data).encode()) <= CALLBACK_DATA_MAX:
            raise _bad("BUTTON_DATA_INVALID")


class FakeTelegram(LoopbackServer):
    """Constructor (keyword-only): ``token`` (the only one accepted; the bot's id is its numeric
    prefix), ``chats`` (the chats that exist; default: any), ``blocked`` (chats that blocked
    the bot), ``bot_username``, ``bot_name``, ``clock`` (returns the current ``datetime``).

    Attributes: ``token``, ``bot_id``, ``bot_user`` (getMe's answer), ``chats`` (a set, or
    None for any), ``blocked`` (a set tests may change), ``callback_answers`` (dicts of
    ``callback_query_id``, ``text``, ``show_alert``, ``url``, ``cache_time``), ``webhook``
    (the last ``setWebhook`` parameters, ``secret_token`` included; None when unset).
    """

    url_suffix = "/bot"

    def __init__(
        self,
        *,
        token: str = "123456789:AAFakeTelegramBotTokenForTests-0123",
        chats: Iterable[ChatRef] | None = None,
        blocked: Iterable[ChatRef] = (),
        bot_username: str = "receiver_test_bot",
        bot_name: str = "Receiver",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.token = token
        prefix = token.partition(":")[0]
        self.bot_id = int(prefix) if prefix.isdigit() else 1
        self.bot_user: JsonDict = {"id": self.bot_id, "is_bot": True, "first_name": bot_name}
        self.bot_user.update(username=bot_username, can_join_groups=True)
        self.chats: set[ChatRef] | None = None if chats is None else {_chat_ref(c) for c in chats}
        self.blocked: set[ChatRef] = {_chat_ref(c) for c in blocked}
        self.callback_answers: list[JsonDict] = []
        self.webhook: JsonDict | None = None
        self._clock = clock or (lambda: datetime.now(UTC))
        self._calls: list[Call] = []
        self._messages: dict[tuple[ChatRef, int], JsonDict] = {}
        self._last_id: dict[ChatRef, int] = {}
        self._channel_ids: dict[str, int] = {}
        self._failures: list[_Failure] = []
        self._down: int | None = None
        self._update_ids = itertools.count(100_000_001)
        self._query_ids = itertools.count(1)
        super().__init__()

    # --------------------------------------------------------- failure injection

    def fail_next(
        self,
        status: int = 429,
        description: str | None = None,
        count: int = 1,
        retry_after: int | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` calls (of ``method``, e.g. ``"sendMessage"``, or any) with
        HTTP ``status`` and Telegram's error body; nothing is processed. A 429 always carries
        ``"parameters": {"retry_after": N}`` (``retry_after`` or 1), other statuses only when
        ``retry_after`` is given. Rules queue up and are consumed in order."""
        if status == 429:
            retry_after = retry_after or 1
            description = description or f"Too Many Requests: retry after {retry_after}"
        description = description or responses.get(status, "Error")
        wanted = method.lower() if method else None
        self._failures.append(_Failure(status, description, count, retry_after, wanted))

    def down(self, status: int = 500) -> None:
        """Answer every call with HTTP ``status`` (500, 502...) until :meth:`up`."""
        self._down = status

    def up(self) -> None:
        self._down = None

    def clear_failures(self) -> None:
        """Forget pending ``fail_next`` rules and bring the server up."""
        self._failures.clear()
        self._down = None

    # -------------------------------------------------------------- assertions

    def calls(self, method: str | None = None) -> list[Call]:
        """Every request (of ``method``), oldest first, including those that failed."""
        return [c for c in self._calls if method is None or c.method.lower() == method.lower()]

    def call_count(self, method: str | None = None) -> int:
        return len(self.calls(method))

    def sent(self, chat_id: ChatRef | None = None) -> list[JsonDict]:
        """The bot's messages (to ``chat_id``), oldest first, each a live dict of its current
        version: ``chat_id`` (an int or ``"@name"``), ``message_id``, ``text``, ``parse_mode``,
        ``reply_markup``, ``reply_to_message_id``, ``date``, ``edit_date``, ``edits`` and
        ``versions`` (each ``text``, ``parse_mode``, ``reply_markup``; the original first)."""
        key = None if chat_id is None else self._key(_chat_ref(chat_id))
        messages = self._messages.values()
        return [m for m in messages if m["outgoing"] and key in (None, m["chat_id"])]

    def message(self, chat_id: ChatRef, message_id: int) -> JsonDict:
        """One message (the bot's or an incoming one); ``KeyError`` when there is none."""
        return self._messages[(self._key(_chat_ref(chat_id)), message_id)]

    # ------------------------------------------------------------ update builders

    def callback_update(
        self,
        from_id: int,
        data: str,
        message: tuple[ChatRef, int] | None = None,
        first_name: str = "Kim",
        username: str | None = None,
    ) -> JsonDict:
        """An Update with a ``callback_query`` from user ``from_id`` pressing a button with
        ``data`` on ``message`` (chat id, message id; its current version when the fake holds
        it). Each query gets a fresh id; ``answerCallbackQuery`` accepts an id once."""
        query: JsonDict = {
            "id": f"{self.bot_id}{next(self._query_ids):010d}",
            "from": self._user(from_id, first_name, username),
            "chat_instance": f"{from_id}{message[0] if message else ''}".replace("@", "-"),
            "data": data,
        }
        if message is not None:
            key = self._key(_chat_ref(message[0]))
            stored = self._messages.get((key, message[1]))
            minimal = {"message_id": message[1], "date": self._now(), "chat": self._chat(key)}
            query["message"] = self._message_json(stored) if stored else minimal
        return {"update_id": next(self._update_ids), "callback_query": query}

    def message_update(
        self,
        from_id: int,
        text: str,
        chat_id: ChatRef | None = None,
        first_name: str = "Kim",
        username: str | None = None,
        reply_to: int | None = None,
    ) -> JsonDict:
        """An Update with a text ``message`` from user ``from_id`` in ``chat_id`` (default
        their private chat), replying to message ``reply_to`` if given. A leading ``/command``
        gets its ``bot_command`` entity. The message is stored, so the bot may reply to it."""
        key = self._key(_chat_ref(from_id if chat_id is None else chat_id))
        if reply_to is not None and (key, reply_to) not in self._messages:
            raise KeyError(f"no message {reply_to} in chat {key!r} to reply to")
        record = self._store(key, text, None, None, reply_to, outgoing=False)
        record["from"] = self._user(from_id, first_name, username)
        return {"update_id": next(self._update_ids), "message": self._message_json(record)}

    # ---------------------------------------------------------------- plumbing

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        token, _, name = request.path.removeprefix("/bot").partition("/")
        params: JsonDict = dict(request.query)
        if request.can_read_body and request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return self._error(400, "Bad Request: can't parse JSON object")
            params.update(body)
        elif request.can_read_body:  # urlencoded or multipart; file parts are left out
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        handlers: dict[str, Callable[[JsonDict], Any]] = {
            "getMe": lambda _: self.bot_user,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_text,
            "editMessageReplyMarkup": self._edit_markup,
            "answerCallbackQuery": self._answer_callback,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._webhook_info,
            "deleteWebhook": self._delete_webhook,
        }
        method = next((m for m in handlers if m.lower() == name.lower()), name)
        problem: ApiError | None = None
        try:
            params = _normalize(params)
        except ApiError as exc:
            problem = exc
        self._calls.append(Call(method, params))
        if self._down is not None:
            return self._error(self._down, responses.get(self._down, "Error"))
        for failure in self._failures:
            if failure.remaining > 0 and failure.method in (None, method.lower()):
                failure.remaining -= 1
                self._failures = [f for f in self._failures if f.remaining > 0]
                return self._error(failure.status, failure.description, failure.retry_after)
        if not request.path.startswith("/bot") or method not in handlers:
            return self._error(404, "Not Found")
        if token != self.token:
            return self._error(401, "Unauthorized")
        try:
            if problem is not None:
                raise problem
            return web.json_response({"ok": True, "result": handlers[method](params)})
        except ApiError as exc:
            return self._error(exc.status, exc.description)

    @staticmethod
    def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
        body: JsonDict = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return web.json_response(body, status=status)

    def _now(self) -> int:
        return int(self._clock().timestamp())

    def _key(self, ref: ChatRef) -> ChatRef:
        """The chat's key: an int, or ``"@name"`` for a channel (by name or by its id)."""
        if isinstance(ref, int):
            return next((n for n, i in self._channel_ids.items() if i == ref), ref)
        return ref

    def _chat(self, key: ChatRef) -> JsonDict:
        if isinstance(key, str):
            number = self._channel_ids.setdefault(key, -1_001_000_000_000 - len(self._channel_ids))
            return {"id": number, "type": "channel", "title": key[1:], "username": key[1:]}
        if key > 0:
            return {"id": key, "type": "private"}
        return {"id": key, "type": "group", "title": f"Group {-key}"}

    @staticmethod
    def _user(user_id: int, first_name: str, username: str | None) -> JsonDict:
        user: JsonDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        return {**user, "username": username} if username else user

    def _target(self, params: JsonDict) -> ChatRef:
        key = self._key(_chat_ref(params.get("chat_id")))
        if self.chats is not None and key not in {self._key(c) for c in self.chats}:
            raise _bad("chat not found")
        if key in self.blocked or (isinstance(key, str) and self._chat(key)["id"] in self.blocked):
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return key

    def _store(
        self, key: ChatRef, text: str, mode: Any, markup: Any, reply_to: Any, *, outgoing: bool
    ) -> JsonDict:
        if reply_to is not None and (key, reply_to) not in self._messages:
            raise _bad("message to be replied not found")
        message_id = self._last_id[key] = self._last_id.get(key, 0) + 1
        version = {"text": text, "parse_mode": mode, "reply_markup": markup}
        record = {"chat_id": key, "message_id": message_id, **version, "from": self.bot_user}
        record.update(reply_to_message_id=reply_to, date=self._now(), edit_date=None, edits=0)
        record.update(versions=[version], outgoing=outgoing)
        self._messages[(key, message_id)] = record
        return record

    def _message_json(self, record: JsonDict, nested: bool = False) -> JsonDict:
        message = {k: record[k] for k in ("message_id", "from", "date", "text")}
        message["chat"] = self._chat(record["chat_id"])
        if record["text"].startswith("/"):
            length = len(record["text"].split()[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        message.update({k: record[k] for k in ("edit_date", "reply_markup") if record[k]})
        if record["reply_to_message_id"] is not None and not nested:
            replied = self._messages[(record["chat_id"], record["reply_to_message_id"])]
            message["reply_to_message"] = self._message_json(replied, nested=True)
        return message

    @staticmethod
    def _text(params: JsonDict) -> tuple[str, str | None]:
        text, mode = params.get("text"), params.get("parse_mode") or None
        if not isinstance(text, str) or not text.strip():
            raise _bad("message text is empty")
        if len(text) > TEXT_MAX:
            raise _bad("message is too long")
        if isinstance(mode, str) and mode.lower() == "html":
            _check_html(text)
        return text, mode

    # ---------------------------------------------------------------- methods

    def _send_message(self, params: JsonDict) -> JsonDict:
        key = self._target(params)
        text, mode = self._text(params)
        _check_markup(params.get("reply_markup"))
        reply = params.get("reply_parameters")
        reply_to = params.get(
            "reply_to_message_id", reply.get("message_id") if isinstance(reply, dict) else None
        )
        record = self._store(key, text, mode, params.get("reply_markup"), reply_to, outgoing=True)
        return self._message_json(record)

    def _edited(self, params: JsonDict) -> JsonDict:
        message_id: Any = params.get("message_id")
        record = self._messages.get((self._target(params), message_id))
        if record is None:
            raise _bad("message to edit not found")
        if not record["outgoing"]:
            raise _bad("message can't be edited")
        return record

    def _apply(self, record: JsonDict, text: str, mode: str | None, markup: Any) -> JsonDict:
        _check_markup(markup)
        if text == record["text"] and markup == record["reply_markup"]:
            raise _bad(NOT_MODIFIED)
        version = {"text": text, "parse_mode": mode, "reply_markup": markup}
        record.update(version, edit_date=self._now(), edits=record["edits"] + 1)
        record["versions"].append(version)
        return self._message_json(record)

    def _edit_text(self, params: JsonDict) -> JsonDict:
        record = self._edited(params)
        text, mode = self._text(params)
        return self._apply(record, text, mode, params.get("reply_markup"))

    def _edit_markup(self, params: JsonDict) -> JsonDict:
        record = self._edited(params)
        return self._apply(record, record["text"], record["parse_mode"], params.get("reply_markup"))

    def _answer_callback(self, params: JsonDict) -> bool:
        query_id = params.get("callback_query_id")
        if not query_id or any(a["callback_query_id"] == query_id for a in self.callback_answers):
            raise _bad(QUERY_INVALID)
        answer = {k: params.get(k) for k in ("callback_query_id", "text", "url", "cache_time")}
        self.callback_answers.append({**answer, "show_alert": params.get("show_alert", False)})
        return True

    def _set_webhook(self, params: JsonDict) -> bool:
        url, secret = str(params.get("url") or ""), params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise _bad("secret token contains unallowed characters")
        if url and not re.match(r"https?://", url):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = {k: v for k, v in params.items() if k != "certificate"} if url else None
        return True

    def _webhook_info(self, params: JsonDict) -> JsonDict:
        info: JsonDict = {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
        if self.webhook is not None:
            info.update(url=self.webhook["url"], max_connections=40)
            keys = ("max_connections", "allowed_updates", "ip_address")
            info.update({k: self.webhook[k] for k in keys if k in self.webhook})
        return info

    def _delete_webhook(self, params: JsonDict) -> bool:
        self.webhook = None
        return True
