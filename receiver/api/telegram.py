"""``POST /telegram/webhook``: updates from Telegram's Bot API.

Telegram sends the secret given to ``setWebhook`` in ``X-Telegram-Bot-Api-Secret-Token``;
an update without it (or with another) is refused with 401 and changes nothing. A button
pressed on a page acts as the Slack buttons do, for the person whose ``telegram_id`` is the
presser's (anyone else, or a stale button, changes nothing), and is answered in the webhook's
own response (``answerCallbackQuery``). A private message from anyone who is not a person
of the rules is a beta-tester report; the receipt with its reference goes back to that chat
through the outbox. Everything else is answered 200 and ignored, so Telegram does not send
it again.
"""

from __future__ import annotations

import hmac
from typing import Any

import structlog
from aiohttp import web

from receiver import i18n
from receiver.api.keys import REPORTS, RULES, SETTINGS
from receiver.api.middleware import LOG_FIELDS, error_response
from receiver.api.slack import press
from receiver.config.models import RulesConfig
from receiver.domain import page_render
from receiver.domain.jira_render import one_line
from receiver.domain.reports import Report, Reporter
from receiver.jsonfast import loads
from receiver.service import NotFound
from receiver.service.reports import RateLimited
from receiver.store.base import StoreUnavailable

log = structlog.get_logger("receiver.api.telegram")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TITLE_CHARS = 200
DESCRIPTION_CHARS = 20_000
VERBS = {"ack": "acknowledged", "mitigate": "mitigated", "resolve": "resolved"}


def _verified(request: web.Request) -> bool:
    secret = request.app[SETTINGS].telegram_webhook_secret
    given = request.headers.get(SECRET_HEADER, "")
    if secret is None or not given.isascii():  # compare_digest raises on non-ASCII
        return False
    return hmac.compare_digest(given.encode(), secret.get_secret_value().encode())


def _person(cfg: RulesConfig, user_id: Any) -> str | None:
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        return None
    return next((pid for pid, p in cfg.people.items() if p.telegram_id == user_id), None)


def _object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    found = parent.get(key)
    return found if isinstance(found, dict) else {}


def _answer(callback_id: str, text: str) -> web.Response:
    """Answer a button press in the webhook's response (no call of our own to Telegram)."""
    body = {"method": "answerCallbackQuery", "callback_query_id": callback_id, "text": text}
    return web.json_response(body)


def _reply(chat_id: int, text: str) -> web.Response:
    """Reply to a chat in the webhook's response."""
    return web.json_response({"method": "sendMessage", "chat_id": chat_id, "text": text})


async def webhook(request: web.Request) -> web.Response:
    """Take one update from Telegram."""
    if not _verified(request):
        return error_response(401, "missing or wrong X-Telegram-Bot-Api-Secret-Token")
    try:
        update = loads(await request.read())
    except ValueError:
        return error_response(400, "body must be a JSON Telegram update", field="body")
    if not isinstance(update, dict):
        return error_response(400, "body must be a JSON Telegram update", field="body")
    request[LOG_FIELDS].update(update_id=update.get("update_id"))
    try:
        if isinstance(update.get("callback_query"), dict):
            return await _button(request, update["callback_query"])
        if isinstance(update.get("message"), dict):
            return await _message(request, update["message"])
    except StoreUnavailable:
        return error_response(503, "store unavailable; Telegram will send the update again")
    return web.json_response({})


async def _button(request: web.Request, query: dict[str, Any]) -> web.Response:
    """Acknowledge, mitigate or resolve from a page's button."""
    callback_id = str(query.get("id", ""))
    parsed = page_render.parse_action(str(query.get("data", "")))
    sender = _object(query, "from")
    cfg = request.app[RULES].current
    person = _person(cfg, sender.get("id"))
    request[LOG_FIELDS].update(telegram_user=sender.get("id"), action=query.get("data"))
    if parsed is None:
        return _answer(callback_id, "This button is not one of the receiver's.")
    if person is None:
        return _answer(callback_id, "You are not in the on-call rules: nothing was changed.")
    action, incident_id = parsed
    try:
        return _answer(callback_id, await press(request, VERBS[action], incident_id, person))
    except NotFound:
        return _answer(callback_id, f"No incident #{incident_id}.")


async def _message(request: web.Request, message: dict[str, Any]) -> web.Response:
    """A private message to the bot: a beta tester's report (from anyone but the team)."""
    chat, sender = _object(message, "chat"), _object(message, "from")
    chat_id = chat.get("id")
    if chat.get("type") != "private" or not isinstance(chat_id, int) or not sender:
        return web.json_response({})  # groups and channels: the testers talk among themselves
    cfg = request.app[RULES].current
    locale = cfg.reports.locale
    if _person(cfg, sender.get("id")) is not None:
        return _reply(chat_id, "Pages come here. Use their buttons, or the API, to act on them.")
    text = str(message.get("text") or message.get("caption") or "").strip()
    if text.startswith("/start") or not text:
        return _reply(chat_id, i18n.text(locale, "chat.no_text"))
    name = " ".join(str(sender.get(k)) for k in ("first_name", "last_name") if sender.get(k)) or (
        f"@{sender['username']}" if sender.get("username") else None
    )
    report = Report(
        title=one_line(text.splitlines()[0])[:TITLE_CHARS],
        description=text[:DESCRIPTION_CHARS],
        reporter=Reporter(name=name, telegram=str(chat_id)),
        source="telegram",
    )
    reports = request.app[REPORTS]
    try:
        reports.check_rate(report, f"telegram:{sender.get('id')}")
    except RateLimited:
        return _reply(chat_id, i18n.text(locale, "chat.rate_limited"))
    filed = await reports.file(report)
    request[LOG_FIELDS].update(incident_id=filed.id, reference=filed.reference)
    if filed.duplicate:  # no second receipt is queued: say it here
        return _reply(chat_id, i18n.text(locale, "chat.duplicate", reference=filed.reference))
    return web.json_response({})  # the receipt, with the reference, goes through the outbox
