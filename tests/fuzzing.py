"""Hypothesis settings, strategies and checks shared by the fuzz tests of the HTTP API."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from receiver.api.keys import SETTINGS
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack

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

# Pieces of Slack mrkdwn and JIRA wiki markup, line breaks and odd addresses, strung
# together with ordinary text: what an alert's labels and annotations may carry.
MARKUP = st.sampled_from(
    [
        *("<!channel>", "<!here|here>", "<https://evil.example/login|Click>", "<@U0KIM>"),
        *("&", "&amp;", "&lt;", ">", "> ", ">>> ", "*", "*bold*", "_em_", "~s~", "`", "```"),
        *("@here", "@channel", ":red_circle:", "[x|javascript:alert(1)]", "[https://e.example]"),
        *("[", "]", "|", "||", "{code}", "{panel}", "{", "}", "\\", "\\\\", "!img.png!", "^s^"),
        *("??c??", "+i+", "-x-", "h1. ", "h6. ", "bq. ", "* ", "** ", "# ", "- ", "----", "\n"),
        *("\r\n", "\n\n", "\t", " ", "\u200b", "😀", "file:///etc/passwd", "mailto:a@b.example"),
        *("javascript:", "data:text/html,x", "ftp://f.example", "http://", "https://ok.example/"),
    ]
)
_PLAIN = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=6)
HOSTILE_TEXT = st.lists(MARKUP | _PLAIN, max_size=12).map("".join)
HOSTILE_URLS = (
    st.sampled_from(["javascript:alert(3)", "https://evil.example/a|b]c[d", " http://x.example "])
    | HOSTILE_TEXT.map(lambda text: "https://x.example/" + text)
    | HOSTILE_TEXT
)


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


# What reached the fake Slack and JIRA: text from alerts is shown, never read as markup.
SLACK_TEXT_MAX = 3000
_OWN_MENTION = re.compile(r"<@[UW][A-Z0-9]+>")  # the page's mention of the paged person
# A page's links: an http(s) address (nothing in it that ends or splits the link) under a
# label the receiver wrote, never one the alert chose.
_OWN_LINK = re.compile(
    r"<https?://[^\s|<>]+\|(?:Runbook|Prometheus graph|Alertmanager|JIRA [A-Z][A-Z0-9]*-\d+)>"
)
_GUARDED = re.compile("\u200b[*_~`]\u200b")
_HEADLINE_TAG = re.compile(r"\*\[[^\s*\[\]]*\]\[[^\s*\[\]]*\]\*")  # *[P1][api]*
_IN_WORD = re.compile(r"(?<=[^\W_])[*_~](?=[^\W_])")
JIRA_HEADINGS = frozenset(
    {
        "h3. Environment",
        "h3. What the alert says",
        "h3. Expected vs actual",
        "h3. Links",
        "h3. Timeline",
        "h3. Response against targets",
        "h3. Phases against their targets",
        "h3. Root cause",
        "h3. Response evaluation",
        "h3. Improvements",
        "h3. Prevention",
        "h3. Reporter",
        "h3. Description",
        "h3. Steps to reproduce",
    }
)
_COUNTED_HEADING = re.compile(
    r"h3\. ((Alerts|Attachments) \(\d+\)|Reopened and resolved again \(\d+ cycles in all\))"
)
_LINK_LINES = ("* [", "* Prometheus graph: ", "* Alertmanager: ")
_WEB_LINK = re.compile(r"https?://[^\s\[\]{}|]+", re.IGNORECASE)
_ATTACHMENT = re.compile(r"\^\d+-[\w.\-]+")  # a link to a file attached to the issue
_OTHER_SCHEME = re.compile(r"\b(?!https?:)[a-z][a-z0-9+.\-]*://|\bmailto:", re.IGNORECASE)


def slack_texts(fake: FakeSlack, since: int = 0) -> list[str]:
    """Every text of every chat.postMessage and chat.update (from call ``since`` on): the
    message's and its blocks'."""
    found: list[str] = []
    for call in fake.calls[since:]:
        if call.method not in ("chat.postMessage", "chat.update"):
            continue
        blocks = call.params.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        found.append(str(call.params.get("text") or ""))
        for block in blocks:
            parts = [block.get("text"), *(block.get("elements") or [])]
            if block.get("type") in ("section", "context"):
                found += [p["text"] for p in parts if isinstance(p, dict) and "text" in p]
    return found


def slack_problems(text: str) -> list[str]:
    """How a Slack text could link, mention, quote or format, or why Slack would refuse it."""
    problems = []
    if len(text.encode("utf-16-le")) // 2 > SLACK_TEXT_MAX:
        problems.append(f"{len(text)} characters")
    rest = _OWN_LINK.sub("", _OWN_MENTION.sub("", text))
    if "<" in rest:
        problems.append("a raw <")
    if re.search(r"@(?:here|channel|everyone)\b", rest):
        problems.append("a special mention")
    if re.search(r"^(?:&gt;|>)", rest, re.MULTILINE):
        problems.append("a quote")
    rest = _IN_WORD.sub("", _HEADLINE_TAG.sub("", _GUARDED.sub("", rest)))
    if re.search(r"[*_~`]", rest):
        problems.append("a formatting mark")
    return [f"{problem} in {text[:200]!r}" for problem in problems]


def jira_texts(fake: FakeJira, since: int = 0) -> list[str]:
    """Every description and comment the fake JIRA was sent (from request ``since`` on)."""
    found: list[str] = []
    for request in fake.requests[since:]:
        body: dict[str, Any] = request.json if isinstance(request.json, dict) else {}
        fields: dict[str, Any] = body["fields"] if isinstance(body.get("fields"), dict) else {}
        if isinstance(fields.get("description"), str):
            found.append(fields["description"])
        if request.path.endswith("/comment") and isinstance(body.get("body"), str):
            found.append(body["body"])
    return found


def jira_summaries(fake: FakeJira, since: int = 0) -> list[str]:
    """Every issue summary the fake JIRA was sent (from request ``since`` on)."""
    return [
        r.json["fields"]["summary"]
        for r in fake.requests[since:]
        if isinstance(r.json, dict) and isinstance(r.json.get("fields"), dict)
        if isinstance(r.json["fields"].get("summary"), str)
    ]


def jira_problems(text: str) -> list[str]:
    """How a description or comment could link anywhere but http(s), run a macro, or have a
    heading, list, quote or table row the receiver did not write."""
    problems = []
    bare = re.sub(r"\\.", " ", text, flags=re.DOTALL)  # escaped characters are only text
    links = re.findall(r"\[([^\[\]]*)\]", bare)
    problems += [f"link to {inner!r}" for inner in links
                 if not _WEB_LINK.fullmatch(inner.split("|")[-1])
                 and not _ATTACHMENT.fullmatch(inner)]  # fmt: skip
    unlinked = re.sub(r"\[[^\[\]]*\]", " ", bare)
    if re.search(r"[\[\]]", unlinked):
        problems.append("an unbalanced bracket")
    if re.search(r"[{}]", bare):
        problems.append("a macro brace")
    if _OTHER_SCHEME.search(unlinked):
        problems.append("an address JIRA would link")
    columns = 0
    lines = text.splitlines()
    if text.endswith("…"):  # cut to JIRA's limit: the last line may stop inside a table row
        lines[-1] = re.sub(r"^\|.*", "", lines[-1])
    for n, line in enumerate(lines):
        if re.match(r"(?:h[1-6]|bq)\.", line, re.IGNORECASE):
            ours = line in JIRA_HEADINGS or re.fullmatch(_COUNTED_HEADING, line)
            if not (ours or (n == 0 and line.startswith("h2. "))):
                problems.append(f"heading {line[:80]!r}")
        elif re.match(r"[*#\-]+ |----", line) and not line.startswith(_LINK_LINES):
            problems.append(f"list or rule {line[:80]!r}")
        elif line.startswith("||"):
            columns = line.count("||") - 1
        elif line.startswith("|"):
            cells = re.sub(r"\\.", "", line).count("|") - 1
            if cells != columns or not re.search(r"(?<!\\)\|$", line):
                problems.append(f"table row {line[:80]!r} of {cells} cells, not {columns}")
    return problems
