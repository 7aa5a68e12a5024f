"""``POST /slack/interactions``: Acknowledge, Mitigated and Resolve buttons pressed in Slack.

Slack signs each request; a forged, altered or stale one (over five minutes) is refused
with 401 and changes nothing. The Slack user is mapped to a person by ``slack_id``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk.signature import Clock, SignatureVerifier

from receiver.api.keys import CLOCK, RULES, SERVICE, SETTINGS
from receiver.api.middleware import LOG_FIELDS, error_response
from receiver.domain.incidents import Reason
from receiver.jsonfast import loads
from receiver.service import NotFound
from receiver.store.base import StoreUnavailable

ACK, MITIGATE, RESOLVE = "incident_ack", "incident_mitigate", "incident_resolve"
VERBS = {ACK: "acknowledged", MITIGATE: "mitigated", RESOLVE: "resolved"}


class _AppClock(Clock):
    """slack_sdk's clock, read from the receiver's (so tests can move time)."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now().timestamp()


def _verified(request: web.Request, body: bytes) -> bool:
    secret = request.app[SETTINGS].slack_signing_secret
    if secret is None:
        return False
    signature = request.headers.get("X-Slack-Signature")
    if signature is None or not signature.isascii():  # compare_digest raises on non-ASCII
        return False
    verifier = SignatureVerifier(secret.get_secret_value(), _AppClock(request.app[CLOCK]))
    try:
        return verifier.is_valid(body, request.headers.get("X-Slack-Request-Timestamp"), signature)
    except ValueError:  # a timestamp that is not a number
        return False


def _action(body: bytes) -> tuple[str, str, int] | None:
    """(slack user id, action id, incident id) of a block action, or None if malformed."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload: Any = loads(form["payload"][0])
        user = payload["user"]["id"]
        action = payload["actions"][0]
        incident_id = int(action["value"])
    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError):
        return None
    if not isinstance(user, str) or not isinstance(action, dict):
        return None
    if not isinstance(action.get("action_id"), str) or action["action_id"] not in VERBS:
        return None
    if not 0 < incident_id < 2**63:
        return None
    return user, action["action_id"], incident_id


async def interactions(request: web.Request) -> web.Response:
    """Acknowledge, mitigate or resolve from a Slack button."""
    body = await request.read()
    if not _verified(request, body):
        return error_response(401, "invalid or stale Slack signature")
    parsed = _action(body)
    if parsed is None:
        return error_response(400, "not a block action this receiver knows", field="payload")
    slack_user, action, incident_id = parsed
    people = request.app[RULES].current.people
    person = next((pid for pid, p in people.items() if p.slack_id == slack_user), None)
    request[LOG_FIELDS].update(slack_user=slack_user, action=action, incident_id=incident_id)
    if person is None:
        return web.json_response(
            {"response_type": "ephemeral", "text": "You are not in the on-call rules."}
        )
    try:
        text = await press(request, VERBS[action], incident_id, person)
    except NotFound:
        return web.json_response({"response_type": "ephemeral", "text": "No such incident."})
    except StoreUnavailable:
        return error_response(503, "store unavailable; press again")
    return web.json_response({"response_type": "ephemeral", "text": text})


async def press(request: web.Request, verb: str, incident_id: int, person: str) -> str:
    """A page's button pressed by a person of the rules (``verb``: acknowledged, mitigated
    or resolved): done, or why nothing changed, as the presser is told. Raises NotFound
    and StoreUnavailable."""
    service = request.app[SERVICE]
    act = {
        "acknowledged": service.acknowledge,
        "mitigated": service.mitigate,
        "resolved": service.resolve,
    }[verb]
    reason, incident = await act(incident_id, person)
    request[LOG_FIELDS].update(by=person, outcome=reason.value, incident_id=incident_id)
    if reason is Reason.APPLIED:
        return (
            f"Incident #{incident_id} {verb} by {request.app[RULES].current.people[person].name}."
        )
    if verb == "mitigated" and incident.mitigated_at is not None:
        return f"Incident #{incident_id} is already mitigated."
    return f"Incident #{incident_id} is already {incident.status.value}."
