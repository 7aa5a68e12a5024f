"""An in-process Slack Web API server for tests.

The real ``slack_sdk`` client, or any HTTP client, can talk to it::

    async with FakeSlack(users={"U0KIM": "kim"}, channels=["#beta-alert"]) as fake:
        client = AsyncWebClient(token=fake.token, base_url=fake.url, retry_handlers=[])
        await client.chat_postMessage(channel="#beta-alert", text="KISTokenRefreshFailed")
        assert fake.posted_to("#beta-alert")[0]["text"] == "KISTokenRefreshFailed"

``fake.url`` is the Web API base URL *including* the trailing ``/api/`` (like
``https://slack.com/api/``), so it can be passed straight to ``base_url=`` or used where a
service reads its Slack API URL setting. Every method is ``POST {url}{method}`` (``GET`` with
a query string works too) with a JSON, form-encoded or multipart body and
``Authorization: Bearer <token>``.

Implemented methods: ``auth.test``, ``chat.postMessage`` (with message ``metadata``),
``chat.update``, ``chat.postEphemeral``, ``conversations.open``, ``conversations.list``,
``conversations.history`` and ``conversations.replies``; anything else answers
``{"ok": false, "error": "unknown_method"}``. Errors follow Slack's convention: HTTP 200
with ``{"ok": false, "error": "..."}`` (``not_authed``, ``invalid_auth``,
``channel_not_found``, ``user_not_found``, ``no_text``, ``msg_too_long``,
``invalid_blocks`` (also for a section or context text over 3,000 characters),
``invalid_metadata_format``, ``message_not_found``,
``thread_not_found``, ``invalid_cursor``, ``invalid_ts_oldest``, ``invalid_ts_latest``);
injected failures (``fail_next``, ``down``, ``drop_next``) use real HTTP status codes, and a
429 carries ``Retry-After``; ``lose_next_answer`` does the work and then drops the answer.

``conversations.history`` gives a channel's or DM's top-level messages newest first (thread
replies only through ``conversations.replies``, the parent first, then replies oldest first),
each in its current version, with ``metadata`` only when ``include_all_metadata`` is set;
both take ``oldest``/``latest``/``inclusive`` (no ``latest`` means no upper bound), ``limit``
and ``cursor``, and need a conversation id, not a name.

Message timestamps follow the ``clock`` given to the constructor (the wall clock by
default), each at least 100 microseconds after the one before, as Slack's are unique.

All state lives on the event loop that called ``start()``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from aiohttp import web

from tests.fakes.server import LoopbackServer

JsonDict = dict[str, Any]

DEFAULT_CHANNELS = ("#beta-alert", "#beta-announcements")
TEXT_MAX = 40000
BLOCKS_MAX = 50
BLOCK_TEXT_MAX = 3000  # a section's text, a context element's text
TS_STEP_MICROS = 100
HISTORY_LIMIT = (100, 999)  # default and maximum of conversations.history
REPLIES_LIMIT = (1000, 1000)
LIST_LIMIT = (100, 1000)
TEAM_ID = "T0FAKE"
TEAM_NAME = "Fake Workspace"

_STATUS_ERRORS = {
    429: "ratelimited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


class Call(NamedTuple):
    """One request the server received: the API method name and its merged parameters
    (query string plus body; JSON values as sent, form values as strings)."""

    method: str
    params: JsonDict


class SlackError(Exception):
    """Raised inside handlers; answered as HTTP 200 ``{"ok": false, "error": error}``."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class _Failure:
    status: int
    remaining: int
    retry_after: int | None
    method: str | None
    error: str | None
    drop: bool = False
    after: bool = False  # do the work, then drop the answer

    def matches(self, method: str) -> bool:
        return self.method is None or self.method == method


@dataclass(frozen=True)
class _Target:
    """Where a message goes: a channel id plus, for a DM, the user it is with."""

    channel_id: str
    user: str | None

    @property
    def is_dm(self) -> bool:
        return self.user is not None


def _json(body: JsonDict, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _flag(value: Any) -> bool:
    """A boolean parameter as JSON (``true``) or form/query (``"1"``, ``"true"``) sends it."""
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true"))


def _micros(ts: Any, error: str) -> int:
    """A Slack timestamp (``"1700000000.000100"``) in integer microseconds."""
    try:
        return int(Decimal(str(ts)) * 1_000_000)
    except (InvalidOperation, ValueError):
        raise SlackError(error) from None


def _limit(value: Any, bounds: tuple[int, int]) -> int:
    default, most = bounds
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SlackError("invalid_limit") from None
    return min(most, number) if number > 0 else default


def _cursor(position: int | None) -> str:
    """An opaque ``next_cursor`` for a position (an offset or a timestamp), "" at the end."""
    if position is None:
        return ""
    return base64.urlsafe_b64encode(f"next:{position}".encode()).decode()


def _position(value: Any) -> int | None:
    """The position a ``cursor`` parameter names, None for the first page."""
    if not value:
        return None
    try:
        text = base64.urlsafe_b64decode(str(value).encode()).decode()
        return int(text.removeprefix("next:"))
    except ValueError:
        raise SlackError("invalid_cursor") from None


def _block_texts(block: Any) -> list[str]:
    """The texts of a section (its text and fields) or a context block (its elements)."""
    if block.get("type") not in ("section", "context"):
        return []
    parts = [block.get("text"), *(block.get("fields") or []), *(block.get("elements") or [])]
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _decode_json_field(value: Any, error: str) -> Any:
    """Form bodies carry ``blocks``/``attachments`` as JSON strings; JSON bodies as lists."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise SlackError(error) from None
    return value


class FakeSlack(LoopbackServer):
    """A Slack Web API server on ``127.0.0.1`` with an ephemeral port.

    Constructor:

    * ``token`` -- the only bot token accepted (``Authorization: Bearer ...`` or a ``token``
      parameter); a missing token answers ``not_authed``, any other ``invalid_auth``.
    * ``users`` -- known user ids -> names, e.g. ``{"U0KIM": "kim"}``. Posting to a user id
      is a DM (Slack answers with the DM's ``D...`` channel id); unknown ids are
      ``channel_not_found`` (``user_not_found`` for ``conversations.open``).
    * ``channels`` -- known channels, as names (``"#beta-alert"``; ids are generated) or a
      mapping name -> id. Default: :data:`DEFAULT_CHANNELS`. ``chat.postMessage`` accepts a
      channel id, ``"#name"`` or bare ``"name"``; ``chat.update`` and the ``conversations.*``
      methods only an id, like Slack. All are public channels the bot is a member of.
    * ``clock`` -- what message timestamps follow, e.g. a test's fake clock; default the
      wall clock.

    Attributes for assertions:

    * ``messages`` -- every posted message, oldest first, as a dict: ``channel`` (as the
      caller wrote it), ``channel_id``, ``is_dm``, ``user`` (the DM's user id, else None),
      ``text``, ``blocks``, ``attachments``, ``metadata`` (as given, else None),
      ``thread_ts``, ``ts`` and ``updates`` (later
      versions from ``chat.update``, each with ``text``, ``blocks``, ``attachments``). The
      top-level fields keep the original post; :meth:`latest` gives the current version.
    * ``ephemerals`` -- ``chat.postEphemeral`` messages (``channel``, ``channel_id``,
      ``user``, ``text``, ``blocks``, ``ts``).
    * ``calls`` -- every request as ``Call(method, params)``, including those answered with
      an error or an injected failure.
    * ``channels`` (name -> id), ``users`` (id -> name), ``dm_channels`` (user id -> DM id).
    """

    url_suffix = "/api/"

    def __init__(
        self,
        *,
        token: str = "xoxb-test",
        users: Mapping[str, str] | None = None,
        channels: Mapping[str, str] | Iterable[str] | None = None,
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.token = token
        self._clock = clock or (lambda: datetime.now(UTC))
        self.users: dict[str, str] = dict(users or {})
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.channels: dict[str, str] = {}
        given: Iterable[tuple[str, str | None]]
        if channels is None:
            given = ((name, None) for name in DEFAULT_CHANNELS)
        elif isinstance(channels, Mapping):
            given = channels.items()
        else:
            given = ((name, None) for name in channels)
        for n, (name, channel_id) in enumerate(given, start=1):
            self.channels["#" + name.lstrip("#")] = channel_id or f"C{n:08d}"
        self.dm_channels: dict[str, str] = {}

        self.messages: list[JsonDict] = []
        self.ephemerals: list[JsonDict] = []
        self.calls: list[Call] = []

        self._by_key: dict[tuple[str, str], JsonDict] = {}
        self._failures: list[_Failure] = []
        self._down = False
        self._last_ts = 0
        super().__init__()

    # ----------------------------------------------------------------- lifecycle

    # --------------------------------------------------------- failure injection

    def fail_next(
        self,
        status: int = 429,
        retry_after: int | None = None,
        count: int = 1,
        method: str | None = None,
        error: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (of API ``method``, e.g. ``"chat.postMessage"``,
        or any) with HTTP ``status`` and ``{"ok": false, "error": ...}``; nothing is
        processed. A 429 says ``ratelimited`` and always carries ``Retry-After``
        (``retry_after`` or 1); other statuses carry it only when ``retry_after`` is given.
        ``error`` overrides the error string, so ``fail_next(200, error="account_inactive")``
        injects any Slack-level error. Rules queue up and are consumed in order."""
        if status == 429 and retry_after is None:
            retry_after = 1
        self._failures.append(_Failure(status, count, retry_after, method, error))

    def drop_next(self, count: int = 1, method: str | None = None) -> None:
        """Close the connection of the next ``count`` matching requests without answering
        (the client sees a connection error); nothing is processed."""
        self._failures.append(_Failure(0, count, None, method, None, drop=True))

    def lose_next_answer(self, count: int = 1, method: str | None = None) -> None:
        """Process the next ``count`` matching requests, then close the connection instead of
        answering: the work is done (a message posted) but the client sees a connection
        error."""
        self._failures.append(_Failure(0, count, None, method, None, after=True))

    def down(self) -> None:
        """Answer every request with HTTP 503 until :meth:`up`."""
        self._down = True

    def up(self) -> None:
        self._down = False

    def clear_failures(self) -> None:
        """Forget pending ``fail_next``/``drop_next`` rules and bring the server up."""
        self._failures.clear()
        self._down = False

    # -------------------------------------------------------------- assertions

    def posted_to(self, channel_or_user: str) -> list[JsonDict]:
        """Messages posted to a channel (``"#name"``, bare name or id), a DM channel id, or a
        user id (their DMs), oldest first. Raises ``KeyError`` for something unknown, so a
        typo cannot make an "unposted" assertion pass."""
        if channel_or_user in self.users:
            return self.dms_to(channel_or_user)
        channel_id = self._channel_id(channel_or_user)
        if channel_id is None:
            raise KeyError(f"unknown channel or user: {channel_or_user!r}")
        return [m for m in self.messages if m["channel_id"] == channel_id]

    def dms_to(self, user_id: str) -> list[JsonDict]:
        """Direct messages sent to ``user_id``, oldest first."""
        return [m for m in self.messages if m["is_dm"] and m["user"] == user_id]

    @staticmethod
    def latest(message: JsonDict) -> JsonDict:
        """The current version of a recorded message: its last update, else the original."""
        if message["updates"]:
            last: JsonDict = message["updates"][-1]
            return last
        return {key: message[key] for key in ("text", "blocks", "attachments")}

    def calls_to(self, method: str) -> list[JsonDict]:
        """The parameters of every request to API ``method``, oldest first."""
        return [call.params for call in self.calls if call.method == method]

    # ---------------------------------------------------------------- plumbing

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        method = request.path.removeprefix("/api/").strip("/")
        params: JsonDict = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    params.update(body)
                else:
                    self.calls.append(Call(method, params))
                    return _json({"ok": False, "error": "invalid_json"})
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        self.calls.append(Call(method, params))

        if self._down:
            return self._failure_response(503, None, None)
        lose = False
        for failure in self._failures:
            if failure.remaining > 0 and failure.matches(method):
                failure.remaining -= 1
                self._failures = [f for f in self._failures if f.remaining > 0]
                if failure.after:
                    lose = True
                    break
                if failure.drop:
                    return self._drop(request)
                return self._failure_response(failure.status, failure.retry_after, failure.error)
        response = self._answer(request, method, params)
        return self._drop(request) if lose else response

    def _answer(self, request: web.Request, method: str, params: JsonDict) -> web.Response:
        if not request.path.startswith("/api/"):
            return _json({"ok": False, "error": "unknown_method", "req_method": method}, 404)
        token = _bearer(request) or params.pop("token", None)
        if not token:
            return _json({"ok": False, "error": "not_authed"})
        if token != self.token:
            return _json({"ok": False, "error": "invalid_auth"})

        handlers = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "conversations.open": self._open,
            "conversations.list": self._list,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
        }
        handler = handlers.get(method)
        if handler is None:
            return _json({"ok": False, "error": "unknown_method", "req_method": method})
        try:
            return _json({"ok": True, **handler(params)})
        except SlackError as exc:
            return _json({"ok": False, "error": exc.error})

    def _failure_response(
        self, status: int, retry_after: int | None, error: str | None
    ) -> web.Response:
        text = error or _STATUS_ERRORS.get(status, "fatal_error")
        response = _json({"ok": False, "error": text}, status)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    def _drop(self, request: web.Request) -> web.Response:
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=500)

    def _new_ts(self) -> str:
        now = round(self._clock().timestamp() * 1_000_000)
        micros = self._last_ts = max(now, self._last_ts + TS_STEP_MICROS)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _channel_id(self, ref: str) -> str | None:
        """The id of a known channel or open DM given as an id, ``"#name"`` or bare name."""
        if ref in self.channels.values() or ref in self.dm_channels.values():
            return ref
        return self.channels.get("#" + ref.lstrip("#"))

    def _dm_id(self, user_id: str) -> str:
        if user_id not in self.dm_channels:
            self.dm_channels[user_id] = f"D{len(self.dm_channels) + 1:08d}"
        return self.dm_channels[user_id]

    def _dm_user(self, channel_id: str) -> str | None:
        return next((u for u, d in self.dm_channels.items() if d == channel_id), None)

    def _target(self, ref: Any, *, allow_user: bool) -> _Target:
        if not isinstance(ref, str) or not ref:
            raise SlackError("channel_not_found")
        if allow_user and ref in self.users:
            return _Target(self._dm_id(ref), ref)
        if ref in self.dm_channels.values():
            return _Target(ref, self._dm_user(ref))
        if not allow_user and ref not in self.channels.values():
            raise SlackError("channel_not_found")  # chat.update wants an id, not a name
        channel_id = self._channel_id(ref)
        if channel_id is None:
            raise SlackError("channel_not_found")
        return _Target(channel_id, None)

    def _content(self, params: JsonDict) -> JsonDict:
        text = params.get("text")
        if text is not None and not isinstance(text, str):
            text = str(text)
        blocks = _decode_json_field(params.get("blocks"), "invalid_blocks")
        attachments = _decode_json_field(params.get("attachments"), "invalid_attachments")
        if blocks is not None and (
            not isinstance(blocks, list)
            or len(blocks) > BLOCKS_MAX
            or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks)
            or any(len(t) > BLOCK_TEXT_MAX for b in blocks for t in _block_texts(b))
        ):
            raise SlackError("invalid_blocks")
        if attachments is not None and not isinstance(attachments, list):
            raise SlackError("invalid_attachments")
        if not text and not blocks and not attachments:
            raise SlackError("no_text")
        if text and len(text) > TEXT_MAX:
            raise SlackError("msg_too_long")
        return {"text": text or "", "blocks": blocks, "attachments": attachments}

    @staticmethod
    def _metadata(params: JsonDict) -> JsonDict | None:
        """``metadata`` of chat.postMessage: an object with ``event_type`` and
        ``event_payload``, as JSON or a form-encoded JSON string."""
        metadata = _decode_json_field(params.get("metadata"), "invalid_metadata_format")
        if metadata is None:
            return None
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            raise SlackError("invalid_metadata_format")
        return {"event_type": metadata["event_type"], "event_payload": metadata["event_payload"]}

    def _message_json(self, content: JsonDict, ts: str, thread_ts: str | None) -> JsonDict:
        message: JsonDict = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "team": TEAM_ID,
            "text": content["text"],
            "ts": ts,
        }
        for key in ("blocks", "attachments"):
            if content[key] is not None:
                message[key] = content[key]
        if thread_ts:
            message["thread_ts"] = thread_ts
        return message

    # ---------------------------------------------------------------- methods

    def _auth_test(self, params: JsonDict) -> JsonDict:
        return {
            "url": "https://fake-workspace.slack.com/",
            "team": TEAM_NAME,
            "user": "receiver-bot",
            "team_id": TEAM_ID,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, params: JsonDict) -> JsonDict:
        target = self._target(params.get("channel"), allow_user=True)
        content = self._content(params)
        metadata = self._metadata(params)
        thread_ts = params.get("thread_ts") or None
        ts = self._new_ts()
        record: JsonDict = {
            "channel": params["channel"],
            "channel_id": target.channel_id,
            "is_dm": target.is_dm,
            "user": target.user,
            **content,
            "metadata": metadata,
            "thread_ts": thread_ts,
            "ts": ts,
            "updates": [],
        }
        self.messages.append(record)
        self._by_key[(target.channel_id, ts)] = record
        message = self._message_json(content, ts, thread_ts)
        if metadata is not None:
            message["metadata"] = metadata
        return {"channel": target.channel_id, "ts": ts, "message": message}

    def _update(self, params: JsonDict) -> JsonDict:
        target = self._target(params.get("channel"), allow_user=False)
        ts = params.get("ts")
        record = self._by_key.get((target.channel_id, ts)) if isinstance(ts, str) else None
        if record is None:
            raise SlackError("message_not_found")
        content = self._content(params)
        record["updates"].append(content)
        return {
            "channel": target.channel_id,
            "ts": record["ts"],
            "text": content["text"],
            "message": self._message_json(content, record["ts"], record["thread_ts"]),
        }

    def _post_ephemeral(self, params: JsonDict) -> JsonDict:
        target = self._target(params.get("channel"), allow_user=True)
        user = params.get("user")
        if user not in self.users:
            raise SlackError("user_not_found")
        content = self._content(params)
        ts = self._new_ts()
        self.ephemerals.append(
            {
                "channel": params["channel"],
                "channel_id": target.channel_id,
                "user": user,
                "text": content["text"],
                "blocks": content["blocks"],
                "ts": ts,
            }
        )
        return {"message_ts": ts}

    def _open(self, params: JsonDict) -> JsonDict:
        channel = params.get("channel")
        if channel:
            if channel not in self.dm_channels.values():
                raise SlackError("channel_not_found")
            return {"no_op": True, "already_open": True, "channel": {"id": channel}}
        raw = params.get("users")
        users = [u.strip() for u in raw.split(",") if u.strip()] if isinstance(raw, str) else []
        if not users:
            raise SlackError("users_list_not_supplied")
        if len(users) > 1:
            raise SlackError("not_supported")  # group DMs are not modelled
        if users[0] not in self.users:
            raise SlackError("user_not_found")
        already = users[0] in self.dm_channels
        channel_id = self._dm_id(users[0])
        return {"no_op": already, "already_open": already, "channel": {"id": channel_id}}

    def _list(self, params: JsonDict) -> JsonDict:
        types = str(params.get("types") or "public_channel").split(",")
        listed = sorted(self.channels.items(), key=lambda item: item[1])
        if "public_channel" not in types:
            listed = []
        start = _position(params.get("cursor")) or 0
        limit = _limit(params.get("limit"), LIST_LIMIT)
        page = listed[start : start + limit]
        more = start + limit < len(listed)
        return {
            "channels": [
                {
                    "id": channel_id,
                    "name": name.lstrip("#"),
                    "is_channel": True,
                    "is_group": False,
                    "is_im": False,
                    "is_private": False,
                    "is_archived": False,
                    "is_member": True,
                }
                for name, channel_id in page
            ],
            "response_metadata": {"next_cursor": _cursor(start + limit if more else None)},
        }

    def _read_target(self, params: JsonDict) -> _Target:
        """The conversation a read names: a channel or open DM id, never a name."""
        channel = params.get("channel")
        if not isinstance(channel, str) or channel not in (
            *self.channels.values(),
            *self.dm_channels.values(),
        ):
            raise SlackError("channel_not_found")
        return _Target(channel, self._dm_user(channel))

    def _window(self, params: JsonDict) -> tuple[int | None, int | None, bool]:
        oldest, latest = params.get("oldest"), params.get("latest")
        return (
            _micros(oldest, "invalid_ts_oldest") if oldest not in (None, "") else None,
            _micros(latest, "invalid_ts_latest") if latest not in (None, "") else None,
            _flag(params.get("inclusive")),
        )

    @staticmethod
    def _within(ts: str, window: tuple[int | None, int | None, bool]) -> bool:
        oldest, latest, inclusive = window
        at = _micros(ts, "invalid_ts")
        if oldest is not None and (at < oldest or (at == oldest and not inclusive)):
            return False
        return latest is None or at < latest or (at == latest and inclusive)

    def _as_read(self, record: JsonDict, with_metadata: bool) -> JsonDict:
        """A recorded message as conversations.history and .replies show it: its current
        version, thread fields on parents and replies, metadata only when asked for."""
        message = self._message_json(self.latest(record), record["ts"], record["thread_ts"])
        replies = [
            m
            for m in self.messages
            if m["channel_id"] == record["channel_id"] and m["thread_ts"] == record["ts"]
        ]
        if replies and not record["thread_ts"]:
            message.update(thread_ts=record["ts"], reply_count=len(replies))
        if record["thread_ts"]:
            message["parent_user_id"] = self.bot_user_id
        if with_metadata and record["metadata"] is not None:
            message["metadata"] = record["metadata"]
        return message

    def _page(
        self, params: JsonDict, messages: list[JsonDict], limit: int, newest_first: bool
    ) -> JsonDict:
        """One page of messages after the ``cursor`` position, in Slack's answer shape."""
        position = _position(params.get("cursor"))
        if position is not None and newest_first:  # the next page holds older messages
            messages = [m for m in messages if _micros(m["ts"], "invalid_ts") < position]
        elif position is not None:
            messages = [m for m in messages if _micros(m["ts"], "invalid_ts") > position]
        page, more = messages[:limit], len(messages) > limit
        with_metadata = _flag(params.get("include_all_metadata"))
        return {
            "messages": [self._as_read(m, with_metadata) for m in page],
            "has_more": more,
            "response_metadata": {
                "next_cursor": _cursor(_micros(page[-1]["ts"], "invalid_ts") if more else None)
            },
        }

    def _history(self, params: JsonDict) -> JsonDict:
        target = self._read_target(params)
        window = self._window(params)
        found = [
            m
            for m in reversed(self.messages)
            if m["channel_id"] == target.channel_id
            and not m["thread_ts"]  # thread replies are only in conversations.replies
            and self._within(m["ts"], window)
        ]
        limit = _limit(params.get("limit"), HISTORY_LIMIT)
        return {**self._page(params, found, limit, newest_first=True), "pin_count": 0}

    def _replies(self, params: JsonDict) -> JsonDict:
        target = self._read_target(params)
        ts = params.get("ts")
        if not ts:
            raise SlackError("invalid_arguments")
        record = self._by_key.get((target.channel_id, str(ts)))
        if record is not None and record["thread_ts"]:  # a reply names its whole thread
            record = self._by_key.get((target.channel_id, record["thread_ts"]))
        if record is None:
            raise SlackError("thread_not_found")
        window = self._window(params)
        replies = [
            m
            for m in self.messages
            if m["channel_id"] == target.channel_id
            and m["thread_ts"] == record["ts"]
            and self._within(m["ts"], window)
        ]
        limit = _limit(params.get("limit"), REPLIES_LIMIT)
        return self._page(params, [record, *replies], limit, newest_first=False)
