"""The incidents API and Slack interactions under fuzzing: no 5xx, refusals change nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Collection
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from slack_sdk.signature import SignatureVerifier
from yarl import URL

from receiver.api.keys import RULES
from receiver.domain.actions import clean_note
from tests.api.test_slack import SECRET, signed
from tests.conftest import API, API_TOKEN, AUTH, WEBHOOK_TOKEN, ClientFactory
from tests.fuzzing import (
    HEADER_TEXT,
    HOSTILE_TEXT,
    JSON_VALUES,
    LIMIT,
    MARKER,
    NUMBERS,
    PRINTABLE,
    RAW_JSON,
    STRINGS,
    TEXT,
    Client,
    encode,
    exchange,
    fuzz,
    huge_values,
    set_path,
)
from tests.helpers import T0, FakeClock, alert, webhook

INCIDENT = 1  # the fixture's open incident
NO_SUCH_INCIDENT = 424_242
ODD_NUMBERS = st.sampled_from(
    [
        *("0", "-1", "+1", " 1", "1 ", "1_0", "0x10", "1e3", "1.0", "١٢", "１", "2" * 30),
        *(str(2**63 - 1), str(2**63), str(-(2**63)), "1" * 5000, "", "%00", "null"),
    ]
)
NUMBER_TEXT = NUMBERS.map(str) | ODD_NUMBERS


@pytest.fixture
async def client(make_client: ClientFactory) -> Client:
    """An app with one triggered incident; no worker or timers, so only requests write."""
    client = await make_client(run_worker=False, slack_signing_secret=SECRET)
    async with client.post("/webhook", json=webhook(alert()), headers=AUTH) as resp:
        assert resp.status == 200
        assert (await resp.json())["incidents"] == [INCIDENT]
    return client


async def api_serves(client: Client) -> None:
    """The list answers and the incident is still untouched."""
    status, body = await exchange(client, "GET", "/api/v1/incidents", headers=API)
    assert status == 200 and [i["status"] for i in body["incidents"]] == ["triggered"]


async def slack_serves(client: Client, clock: FakeClock) -> None:
    """A signed button press for an incident that does not exist is answered."""
    body, headers = signed("incident_ack", NO_SUCH_INCIDENT, "U0KIM", clock.now.timestamp())
    status, answer = await exchange(
        client, "POST", "/slack/interactions", data=body, headers=headers
    )
    assert status == 200 and answer["text"] == "No such incident."


# Incidents API


LIST_PARAMS = ["status", "severity", "team", "category", "source", "limit", "before", "incident"]
LIST_VALUES = ["triggered", "resolved", "open", "dead", "P0", "backend", "api", "report", "alert"]


@fuzz(100)
@given(
    path=st.sampled_from(["/api/v1/incidents", "/api/v1/deliveries"]),
    params=st.lists(
        st.tuples(
            st.sampled_from(LIST_PARAMS) | TEXT,
            STRINGS | NUMBER_TEXT | st.sampled_from(LIST_VALUES),
        ),
        max_size=5,
    ),
)
async def test_list_queries(client: Client, path: str, params: list[tuple[str, str]]) -> None:
    status, body = await exchange(client, "GET", path, read_only=True, params=params, headers=API)
    assert status in (200, 400)
    if status == 400:
        assert body["field"] in {name[:64] for name, _ in params}  # the parameter at fault
    else:
        assert isinstance(body[path.rsplit("/", 1)[1]], list)
    await api_serves(client)


@fuzz(40)
@given(
    filters=st.dictionaries(
        st.sampled_from(["status", "severity", "team", "category", "source"]),
        st.sampled_from([*LIST_VALUES, "acknowledged", "P1", "features", "performance"]),
    )
)
async def test_list_filters_find_what_they_say(client: Client, filters: dict[str, str]) -> None:
    status, body = await exchange(
        client, "GET", "/api/v1/incidents", read_only=True, params=filters, headers=API
    )
    # the fixture's incident: triggered, P1, backend, api, from an alert
    mine = {"status": ("triggered", "open"), "severity": ("P1",), "team": ("backend",),
            "category": ("api",), "source": ("alert",)}  # fmt: skip
    cfg = client.app[RULES].current
    known = {"status": ("triggered", "acknowledged", "resolved", "open"),
             "severity": tuple(cfg.severities), "team": tuple(cfg.teams),
             "category": tuple(cfg.categories), "source": ("alert", "report")}  # fmt: skip
    if any(v not in known[k] for k, v in filters.items()):
        assert status == 400 and filters[body["field"]] not in known[body["field"]]
    else:
        assert status == 200
        listed = all(v in mine[k] for k, v in filters.items())
        assert [i["id"] for i in body["incidents"]] == ([INCIDENT] if listed else [])


@fuzz(60)
@given(
    path=st.sampled_from(["/api/v1/incidents", "/api/v1/deliveries"]),
    query=st.text(st.sampled_from("%&=;+?/#[]@!$'()*,:~-._09afAFzZ"), max_size=40),
)
async def test_raw_query_strings(client: Client, path: str, query: str) -> None:
    url = URL(f"{path}?{query}", encoded=True)
    status, _ = await exchange(client, "GET", url, read_only=True, headers=API)
    assert status in (200, 400)
    await api_serves(client)


@fuzz(100)
@given(
    segment=STRINGS | NUMBER_TEXT,
    action=st.sampled_from(
        ["", "/ack", "/resolve", "/note", "/reassign", "/unack", "/escalate", "/retry"]
    ),
    of=st.sampled_from(["incidents", "deliveries"]),
)
async def test_incident_ids(client: Client, segment: str, action: str, of: str) -> None:
    if of == "deliveries":
        action = "/retry"  # the only action on a delivery
    url = URL(f"/api/v1/{of}/{quote(segment, safe='')}{action}", encoded=True)
    method = "POST" if action else "GET"
    status, _ = await exchange(
        client, method, url, read_only=True, json={"by": "nobody"}, headers=API
    )
    assert status in ((200, 400, 404, 405) if method == "GET" else (400, 404, 405))
    await api_serves(client)


@st.composite
def ack_bodies(draw: st.DrawFn) -> bytes:
    """Bytes, JSON of any shape, or ``{"by": ...}`` holding something other than a person id."""
    kind = draw(st.sampled_from(["bytes", "raw", "json", "by", "by raw", "huge"]))
    if kind == "bytes":
        return draw(st.binary(max_size=500))
    if kind == "raw":
        return draw(RAW_JSON)
    if kind == "json":
        return encode(draw(JSON_VALUES))
    if kind == "by":
        return encode({"by": draw(JSON_VALUES), **draw(st.dictionaries(STRINGS, JSON_VALUES))})
    if kind == "by raw":
        return encode({"by": MARKER}, draw(RAW_JSON))
    field = draw(st.sampled_from(["by", "note"]))
    return encode(set_path({"by": "nobody", "note": None}, (field,), draw(huge_values())))


def names_a_person(body: bytes, people: Collection[str]) -> bool:
    """Whether the body is a well-formed ack or resolve by someone in the rules."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return False
    by = value.get("by") if isinstance(value, dict) else None
    return isinstance(by, str) and by in people


@fuzz(160)
@given(
    body=ack_bodies(),
    action=st.sampled_from(
        ["ack", "resolve", "note", "reassign", "unack", "escalate", "retry", "delivery"]
    ),
    content_type=st.sampled_from(["application/json", "text/plain", ""]) | PRINTABLE,
)
async def test_ack_and_resolve_bodies(
    client: Client, body: bytes, action: str, content_type: str
) -> None:
    assume(not names_a_person(body, client.app[RULES].current.people))
    headers = {**API, "Content-Type": content_type}
    path = f"/api/v1/incidents/{INCIDENT}/{action}"
    if action == "delivery":
        path = "/api/v1/deliveries/1/retry"
    status, answer = await exchange(client, "POST", path, data=body, headers=headers)
    assert status == (413 if len(body) > LIMIT else 400), answer
    await api_serves(client)


@fuzz(120)
@given(text=JSON_VALUES | HOSTILE_TEXT | huge_values() | st.sampled_from(["\r\n", "a\x7f"]))
async def test_note_texts(client: Client, text: Any) -> None:
    """A note is stored when it is text (1 to 4000 characters, no control character but line
    breaks and tabs), and refused, storing nothing, otherwise."""
    body = encode({"by": "kim", "text": text})
    try:
        clean_note(text)
    except ValueError:
        wanted = 400
    else:
        wanted = 200
    if len(body) > LIMIT:
        wanted = 413
    status, answer = await exchange(
        client, "POST", f"/api/v1/incidents/{INCIDENT}/note", data=body, headers=API
    )
    assert status == wanted, answer
    if status == 400:
        assert answer["field"] == "text"


@fuzz(60)
@given(to=JSON_VALUES)
async def test_reassign_to_nobody_known(client: Client, to: Any) -> None:
    assume(not (isinstance(to, str) and to in client.app[RULES].current.people))
    status, answer = await exchange(
        client, "POST", f"/api/v1/incidents/{INCIDENT}/reassign", json={"by": "kim", "to": to},
        headers=API,
    )  # fmt: skip
    assert (status, answer["field"]) == (400, "to")
    await api_serves(client)


def grants_access(credentials: str) -> bool:
    """Whether an Authorization header carries the API token."""
    scheme, _, value = credentials.partition(" ")
    return scheme.lower() == "bearer" and value.strip() == API_TOKEN


@fuzz(80)
@given(
    credentials=PRINTABLE
    | HEADER_TEXT
    | st.sampled_from(
        [
            "Bearer",
            "Bearer ",
            f"Bearer {API_TOKEN}x",
            f"Bearer {API_TOKEN[:-1]}",
            f"Bearer {WEBHOOK_TOKEN}",
            f"Basic {API_TOKEN}",
            f"Token {API_TOKEN}",
            f"Bearer\t{API_TOKEN}",
            f"Bearer {API_TOKEN.upper()}",
            f"Bearer {API_TOKEN}\u00e9",
            "Bearer \u00e9\u00e8",
        ]
    ),
    request=st.sampled_from(
        [
            ("GET", "/api/v1/incidents"),
            ("GET", f"/api/v1/incidents/{INCIDENT}"),
            ("GET", "/api/v1/deliveries"),
            ("POST", f"/api/v1/incidents/{INCIDENT}/ack"),
            ("POST", f"/api/v1/incidents/{INCIDENT}/resolve"),
            ("POST", f"/api/v1/incidents/{INCIDENT}/note"),
            ("POST", f"/api/v1/incidents/{INCIDENT}/reassign"),
            ("POST", f"/api/v1/incidents/{INCIDENT}/unack"),
            ("POST", f"/api/v1/incidents/{INCIDENT}/escalate"),
            ("POST", f"/api/v1/incidents/{INCIDENT}/retry"),
            ("POST", "/api/v1/deliveries/1/retry"),
        ]
    ),
)
async def test_api_credentials(client: Client, credentials: str, request: tuple[str, str]) -> None:
    assume(not grants_access(credentials))
    method, path = request
    status, _ = await exchange(
        client, method, path, json={"by": "kim"}, headers={"Authorization": credentials}
    )
    assert status == 401
    await api_serves(client)


# Slack interactions

SLACK_FIELDS: list[tuple[str | int, ...]] = [
    ("user",),
    ("user", "id"),
    ("actions",),
    ("actions", 0),
    ("actions", 0, "action_id"),
    ("actions", 0, "value"),
]


def sign(body: bytes, timestamp: str, secret: str = SECRET) -> str:
    """Slack's v0 signature; bytes that are not UTF-8 are signed as they are."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        base = b"v0:" + timestamp.encode() + b":" + body
        return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=text)
    assert signature is not None
    return signature


@st.composite
def slack_bodies(draw: st.DrawFn) -> bytes:
    """Form bodies Slack would never send, and near-valid button presses by a stranger."""
    kind = draw(st.sampled_from(["bytes", "form", "fields", "json", "action", "huge"]))
    if kind == "bytes":
        return draw(st.binary(max_size=500))
    if kind == "form":
        return draw(
            st.text(st.sampled_from('payload=%&+;{}[]":,01ab \x00é😀'), max_size=80)
        ).encode()
    if kind == "fields":
        return urlencode(draw(st.lists(st.tuples(STRINGS, STRINGS), max_size=4))).encode()
    if kind == "json":
        return urlencode({"payload": draw(JSON_VALUES.map(encode) | RAW_JSON)}).encode()
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U0STRANGER"},
        "actions": [{"action_id": "incident_ack", "value": str(INCIDENT), "type": "button"}],
    }
    path = draw(st.sampled_from(SLACK_FIELDS))
    if kind == "huge":
        return urlencode({"payload": encode(set_path(payload, path, draw(huge_values())))}).encode()
    how = draw(st.sampled_from(["drop", "value", "raw", "number"]))
    if how == "drop":
        text = encode(set_path(payload, path, drop=True))
    elif how == "value":
        text = encode(set_path(payload, path, draw(JSON_VALUES)))
    elif how == "number":
        text = encode(set_path(payload, path, draw(NUMBER_TEXT)))
    else:
        text = encode(set_path(payload, path, MARKER), draw(RAW_JSON))
    return urlencode({"payload": text}).encode()


@fuzz(120)
@given(body=slack_bodies(), age=st.integers(-299, 299))
async def test_signed_garbage_from_slack(
    client: Client, clock: FakeClock, body: bytes, age: int
) -> None:
    people = client.app[RULES].current.people.values()
    assume(not any(p.slack_id and p.slack_id.encode() in body for p in people))  # strangers only
    timestamp = str(int(clock.now.timestamp()) - age)
    headers = {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": sign(body, timestamp),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    status, _ = await exchange(
        client, "POST", "/slack/interactions", read_only=True, data=body, headers=headers
    )
    if len(body) > LIMIT:
        assert status == 413
    elif utf8(body):
        assert status in (200, 400)  # 200: the stranger is told they are not in the rules
    else:
        assert status == 401  # Slack signs text; bytes that are not UTF-8 do not verify
    await slack_serves(client, clock)


def utf8(body: bytes) -> bool:
    """Whether the bytes decode as UTF-8."""
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


NOW = int(T0.timestamp())
ARABIC_NOW = str(NOW).translate({ord(d): 0x660 + int(d) for d in "0123456789"})  # int() takes it
# Fresh ones (half the draws) reach the signature check; the rest must fail before it.
FRESH_TIMESTAMPS = st.integers(NOW - 300, NOW + 300).map(str) | st.sampled_from(
    [f" {NOW}", f"+{NOW}", f"{NOW}\t", f"0{NOW}", ARABIC_NOW]
)
STALE_TIMESTAMPS = (
    st.integers(NOW - 10**6, NOW + 10**6).map(str)
    | NUMBER_TEXT
    | HEADER_TEXT
    | st.sampled_from([str(NOW - 301), str(NOW + 301), f"{NOW}.0", f"{NOW}e0", "missing"])
)
FORGERIES = (
    st.sampled_from(["right", "other secret", "upper", "truncated", "extended", "v1", "missing"])
    | PRINTABLE
    | HEADER_TEXT
    | st.text(st.characters(min_codepoint=0x80, exclude_categories=["Cs", "Cc"]), min_size=1)
    | st.text(st.sampled_from("0123456789abcdef"), min_size=64, max_size=64).map("v0={}".format)
)


def fresh(timestamp: str) -> bool:
    """Whether Slack's verifier takes the timestamp as within five minutes of now."""
    try:
        return abs(NOW - int(timestamp)) <= 300
    except ValueError:
        return False


@fuzz(150)
@given(
    timestamp=FRESH_TIMESTAMPS | STALE_TIMESTAMPS,
    forgery=FORGERIES,
    action=st.sampled_from(["incident_ack", "incident_mitigate", "incident_resolve"]),
)
# hmac.compare_digest raises TypeError on non-ASCII text: this once answered 500.
@example(timestamp=str(NOW), forgery="v0=\u00e9", action="incident_ack")
async def test_forged_and_stale_slack_requests(
    client: Client, clock: FakeClock, timestamp: str, forgery: str, action: str
) -> None:
    """A press that would change the incident, with a signature or timestamp that is wrong."""
    assert int(clock.now.timestamp()) == NOW
    body, _ = signed(action, INCIDENT, "U0KIM", NOW)
    right = sign(body, timestamp)
    signature = {
        "right": right,
        "other secret": sign(body, timestamp, secret="not-the-secret"),
        "upper": right.upper(),
        "truncated": right[:-1],
        "extended": right + "0",
        "v1": "v1=" + right[3:],
    }.get(forgery, forgery)
    assume(not (fresh(timestamp) and signature == right))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if timestamp != "missing":
        headers["X-Slack-Request-Timestamp"] = timestamp
    if signature != "missing":
        headers["X-Slack-Signature"] = signature
    status, _ = await exchange(
        client, "POST", "/slack/interactions", read_only=True, data=body, headers=headers
    )
    assert status == 401
    await slack_serves(client, clock)
