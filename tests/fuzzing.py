"""Hypothesis settings, strategies and checks shared by the fuzz tests of the HTTP API."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from receiver.api.keys import SETTINGS

# Hypothesis writes caches (unicode tables, constants) even without an example database;
# keep them out of the checkout.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "receiver-hypothesis")
)

Client = TestClient[Any, web.Application]
Rows = dict[str, list[tuple[Any, ...]]]

# Deterministic, nothing written to disk, one client shared by every example of a test.
_FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def fuzz(examples: int) -> settings:
    """The fuzz settings with this many examples."""
    return settings(_FUZZ, max_examples=examples)


LIMIT = 1024 * 1024  # the default body limit, which the fuzzed apps keep
TABLES = ("incidents", "alerts", "timeline", "outbox", "timers", "slack_messages")

# Text with NULs, control characters and astral code points; lone surrogates cannot be
# encoded as UTF-8, so they come only as raw escapes (RAW_JSON).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\t\r\n",
        "😀🔥🚨",
        "\U0001d518\U0001d52b\U0001d526",
        "\u202eevil",
        "\ufeff",
        "\U0010ffff",
        "e\u0301",
        "ﷺ",
        "null",
        "4",
        "firing ",
        "FIRING",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        "1e400",
    ]
)
STRINGS = TEXT | ODD_TEXT
PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
HEADER_TEXT = st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=30)  # non-ASCII
NUMBERS = (
    st.integers(-(2**63), 2**63)
    | st.integers(2**63, 2**300)
    | st.integers(-(2**300), -(2**63))
    | st.floats(allow_nan=False, allow_infinity=False)
)
SCALARS = st.none() | st.booleans() | NUMBERS | STRINGS
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(STRINGS, inner, max_size=4),
    max_leaves=10,
)

DEEP = 10_000
# JSON text no encoder writes: non-finite numbers, huge numbers, lone surrogates, invalid
# UTF-8, deep nesting, syntax errors, byte order marks, other encodings.
RAW_JSON = st.sampled_from(
    [
        b"",
        b" ",
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"1e400",
        b"-1e400",
        b"1" * 5000,
        b"-0",
        b'"\\ud800"',
        b'"\\udc00\\ud800"',
        b'"\\u12"',
        b'"\\x41"',
        b'"\xed\xa0\x80"',
        b'"\xc0\x80"',
        b'"\xff\xfe"',
        b'"\x00"',
        b'"tab\tinside"',
        b"\x00",
        b"[1,]",
        b'{"a" 1}',
        b"{'a': 1}",
        b'{"a": 1, "a": 2}',
        b"tru",
        b'"unterminated',
        b"\xef\xbb\xbf{}",
        '{"v": "4"}'.encode("utf-16"),
        b"[" * DEEP + b"]" * DEEP,
        b'{"a":' * DEEP + b"1" + b"}" * DEEP,
        b"[" * DEEP,
    ]
)
MARKER = "@@raw@@"


def encode(value: Any, raw: bytes = b"") -> bytes:
    """JSON as UTF-8, with ``raw`` spliced in where the value holds MARKER."""
    return json.dumps(value, ensure_ascii=False).encode().replace(f'"{MARKER}"'.encode(), raw)


@st.composite
def huge_values(draw: st.DrawFn, item: Any = "x") -> Any:
    """A string, object or array of a size around or over the body limit, or deep nesting."""
    kind = draw(st.sampled_from(["text", "emoji", "object", "array", "nested"]))
    if kind == "text":
        return "x" * draw(st.sampled_from([65_537, 1_000_000, LIMIT + 1]))
    if kind == "emoji":
        return "🚨" * draw(st.sampled_from([20_000, 250_000, 300_000]))
    if kind == "object":
        return {f"k{i}": "v" for i in range(draw(st.sampled_from([10_000, 40_000, 100_000])))}
    if kind == "array":
        return [item] * draw(st.sampled_from([1_000, 2_000, 4_000]))
    value: Any = []
    for _ in range(draw(st.sampled_from([100, 500]))):  # deeper: RAW_JSON, past json.dumps
        value = [value]
    return value


def get_path(doc: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path`` of a JSON document."""
    for part in path:
        doc = doc[part]
    return doc


def set_path(doc: Any, path: tuple[str | int, ...], value: Any = None, drop: bool = False) -> Any:
    """Replace (or remove) the value at ``path`` of a JSON document, in place."""
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def stored(client: Client) -> Rows:
    """Every row of every table the receiver writes."""
    path = client.app[SETTINGS].database_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in TABLES}


async def answered(resp: ClientResponse, parser_errors: bool = False) -> tuple[int, Any]:
    """Status and JSON body; errors are 4xx ``{"error": ...}`` (these stores never fail).

    With ``parser_errors``, aiohttp's own plain-text 400 (a request refused before any
    handler runs) is accepted too.
    """
    text = await resp.read()
    assert 200 <= resp.status < 500, (resp.status, text[:500])
    if parser_errors and resp.status == 400 and resp.content_type == "text/plain":
        return resp.status, {"error": text.decode()}
    assert resp.content_type == "application/json", (resp.status, resp.content_type, text[:500])
    body = json.loads(text)
    if resp.status >= 400:
        assert isinstance(body, dict), body
        assert isinstance(body.get("error"), str) and body["error"], body
    return resp.status, body


async def exchange(
    client: Client,
    method: str,
    path: Any,
    parser_errors: bool = False,
    read_only: bool = False,
    **kwargs: Any,
) -> tuple[int, Any]:
    """Send one request; a refusal (any answer, if ``read_only``) must leave every row alone."""
    before = stored(client)
    async with client.request(method, path, **kwargs) as resp:
        status, body = await answered(resp, parser_errors)
    if status >= 400 or read_only:
        assert stored(client) == before, f"{method} {path} answered {status} and changed the store"
    return status, body
