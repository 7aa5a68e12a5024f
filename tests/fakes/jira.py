"""An in-process JIRA REST server (API v2, Server/Data Center or Cloud flavour) for tests.

The real ``jira`` client, or any HTTP client, can talk to it::

    async with FakeJira(projects={"OPS"}, user="bot", token="t0ken") as fake:
        client = JIRA(fake.url, basic_auth=("bot", "t0ken"), max_retries=0)
        issue = await asyncio.to_thread(client.create_issue, fields={...})
        assert fake.issue_by_label("fp-1234") is not None

It answers with JIRA's JSON shapes, status codes and validation messages for the calls a
service makes (server info, create/read/edit issues, comments, transitions by id, issue
links, JQL search, projects/issue types/priorities/fields), records what it was sent, and
fails on command (``fail_next``, ``drop_next``, ``down``, ``fail_next_create_after_commit``)
and can be made slow to create issues (``create_delay``).

All state lives on the event loop that called ``start()``; handlers are coroutines, so a
synchronous client running in a worker thread is fine.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email
import email.policy
import functools
import json
import mimetypes
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal, NamedTuple

from aiohttp import web

from tests.fakes.server import LoopbackServer

JsonDict = dict[str, Any]

SUMMARY_MAX = 255
LABEL_MAX = 255
TEXT_MAX = 32767
SERVER_MAX_RESULTS = 1000
CLOUD_MAX_RESULTS = 5000

TEXT_TOO_LONG = "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
SEARCH_GONE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
UNBOUNDED_JQL = (
    "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
)


class RecordedRequest(NamedTuple):
    """One request the server received: method, path (no query string) and JSON body."""

    method: str
    path: str
    json: Any


@dataclass(frozen=True)
class Transition:
    """A workflow transition: JIRA addresses it by ``id``; it moves the issue to ``to``."""

    id: str
    name: str
    to: str


DEFAULT_WORKFLOW: Mapping[str, Sequence[Transition]] = {
    "Open": (Transition("31", "Done", "Done"),),
    "Reopened": (Transition("31", "Done", "Done"),),
    "Done": (Transition("41", "Reopen", "Reopened"),),
}

DONE_STATUSES = frozenset({"done", "closed", "resolved"})
IN_PROGRESS_STATUSES = frozenset({"in progress", "in review"})
WELL_KNOWN_STATUS_IDS = {
    "Open": "1",
    "In Progress": "3",
    "Reopened": "4",
    "Resolved": "5",
    "Closed": "6",
    "Done": "10001",
}
STATUS_CATEGORIES: Mapping[str, JsonDict] = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {
        "id": 4,
        "key": "indeterminate",
        "colorName": "yellow",
        "name": "In Progress",
    },
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
LINK_TYPES: Sequence[tuple[str, str, str, str]] = (
    ("10000", "Blocks", "is blocked by", "blocks"),
    ("10001", "Cloners", "is cloned by", "clones"),
    ("10002", "Duplicate", "is duplicated by", "duplicates"),
    ("10003", "Relates", "relates to", "relates to"),
)
SYSTEM_FIELDS: Sequence[tuple[str, str, Sequence[str], JsonDict]] = (
    ("issuekey", "Key", ("id", "issue", "issuekey", "key"), {}),
    ("summary", "Summary", ("summary",), {"type": "string", "system": "summary"}),
    ("description", "Description", ("description",), {"type": "string", "system": "description"}),
    ("project", "Project", ("project",), {"type": "project", "system": "project"}),
    (
        "issuetype",
        "Issue Type",
        ("issuetype", "type"),
        {"type": "issuetype", "system": "issuetype"},
    ),
    ("priority", "Priority", ("priority",), {"type": "priority", "system": "priority"}),
    ("labels", "Labels", ("labels",), {"type": "array", "items": "string", "system": "labels"}),
    ("status", "Status", ("status",), {"type": "status", "system": "status"}),
    ("resolution", "Resolution", ("resolution",), {"type": "resolution", "system": "resolution"}),
    ("resolutiondate", "Resolved", ("resolutiondate", "resolved"), {"type": "datetime"}),
    ("created", "Created", ("created", "createdDate"), {"type": "datetime", "system": "created"}),
    ("updated", "Updated", ("updated", "updatedDate"), {"type": "datetime", "system": "updated"}),
    ("assignee", "Assignee", ("assignee",), {"type": "user", "system": "assignee"}),
    ("reporter", "Reporter", ("reporter",), {"type": "user", "system": "reporter"}),
    ("comment", "Comment", ("comment",), {"type": "comments-page", "system": "comment"}),
    ("issuelinks", "Linked Issues", ("issueLink",), {"type": "array", "items": "issuelinks"}),
)


class ApiError(Exception):
    """Answered as JIRA's error document ``{"errorMessages": [...], "errors": {...}}``."""

    def __init__(
        self,
        status: int,
        messages: Sequence[str] = (),
        errors: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, list(messages), dict(errors or {}))
        self.status = status
        self.messages = list(messages)
        self.errors = dict(errors or {})


def error_body(messages: Sequence[str] = (), errors: Mapping[str, str] | None = None) -> JsonDict:
    return {"errorMessages": list(messages), "errors": dict(errors or {})}


def jira_time(moment: datetime) -> str:
    """JIRA's timestamp format: ``2026-11-26T01:00:00.000+0000``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _file_parts(content_type: str, raw: bytes) -> list[tuple[str, str, bytes]]:
    """(file name, declared type, content) of the ``file`` parts of a multipart body."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.message_from_bytes(head + raw, policy=email.policy.HTTP)
    found = []
    for part in message.iter_parts() if message.is_multipart() else ():
        if part.get_param("name", header="content-disposition") != "file":
            continue
        data = part.get_payload(decode=True)
        found.append((part.get_filename() or "", part.get_content_type(), bytes(data or b"")))
    return found


def _sniff_text(data: bytes) -> str:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain"


def _now() -> str:
    return jira_time(datetime.now(UTC))


def _key_order(key: str) -> tuple[str, int]:
    project, _, number = key.rpartition("-")
    return (project, int(number) if number.isdigit() else 0)


# --------------------------------------------------------------------------------------
# JQL: a tokenizer, a recursive-descent parser and an evaluator over stored issues.
# --------------------------------------------------------------------------------------


class JqlError(Exception):
    """A query JIRA would refuse; the message is what JIRA puts in ``errorMessages``."""


@dataclass(frozen=True)
class Token:
    kind: Literal["word", "string", "op", "lparen", "rparen", "comma", "end"]
    text: str
    pos: int  # 1-based character position, as in JIRA's messages

    def describe(self) -> str:
        return "the end of the query" if self.kind == "end" else f"'{self.text}'"


RESERVED_CHARS = frozenset("+;?*/%^$#@[]{}")
WORD_STOP = frozenset(" \t\r\n\"'(),=!<>~&|")
KEYWORDS = frozenset({"and", "or", "not", "in", "is", "empty", "null", "order", "by"})
JQL_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t", " ": " "}


def _read_escape(jql: str, i: int) -> tuple[str, int]:
    """Decode the escape sequence whose backslash is at ``jql[i]``; return (text, next index)."""
    nxt = jql[i + 1] if i + 1 < len(jql) else ""
    if nxt in JQL_ESCAPES and nxt:
        return JQL_ESCAPES[nxt], i + 2
    if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", jql[i + 2 : i + 6]):
        return chr(int(jql[i + 2 : i + 6], 16)), i + 6
    raise JqlError(
        f"Error in the JQL Query: '\\{nxt}' is an illegal JQL escape sequence. The valid escape "
        "sequences are \\', \\\", \\t, \\n, \\r, \\\\, '\\ ' and \\uXXXX. "
        f"(line 1, character {i + 1})"
    )


def tokenize(jql: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(jql):
        ch = jql[i]
        start = i + 1
        if ch.isspace():
            i += 1
        elif ch in "\"'":
            quote, i = ch, i + 1
            chars: list[str] = []
            while True:
                if i >= len(jql):
                    raise JqlError(
                        f"Error in the JQL Query: The quoted string '{''.join(chars)}' has not "
                        f"been completed. (line 1, character {start})"
                    )
                if jql[i] == quote:
                    i += 1
                    break
                if jql[i] == "\\":
                    decoded, i = _read_escape(jql, i)
                    chars.append(decoded)
                else:
                    chars.append(jql[i])
                    i += 1
            tokens.append(Token("string", "".join(chars), start))
        elif ch == "(":
            tokens.append(Token("lparen", ch, start))
            i += 1
        elif ch == ")":
            tokens.append(Token("rparen", ch, start))
            i += 1
        elif ch == ",":
            tokens.append(Token("comma", ch, start))
            i += 1
        elif jql.startswith(("!=", "!~", "<=", ">=", "&&", "||"), i):
            pair = jql[i : i + 2]
            tokens.append(Token("word" if pair in ("&&", "||") else "op", pair, start))
            i += 2
        elif ch in "=~<>":
            tokens.append(Token("op", ch, start))
            i += 1
        elif ch in "&|!":
            tokens.append(Token("word", ch, start))
            i += 1
        elif ch in RESERVED_CHARS:
            raise JqlError(
                f"Error in the JQL Query: The character '{ch}' is a reserved JQL character. "
                "You must enclose it in a string or use the escape "
                f"'\\u{ord(ch):04x}' instead. (line 1, character {start})"
            )
        else:
            word: list[str] = []
            while i < len(jql) and jql[i] not in WORD_STOP:
                if jql[i] in RESERVED_CHARS:
                    raise JqlError(
                        f"Error in the JQL Query: The character '{jql[i]}' is a reserved JQL "
                        "character. You must enclose it in a string or use the escape "
                        f"'\\u{ord(jql[i]):04x}' instead. (line 1, character {i + 1})"
                    )
                if jql[i] == "\\":
                    decoded, i = _read_escape(jql, i)
                    word.append(decoded)
                else:
                    word.append(jql[i])
                    i += 1
            tokens.append(Token("word", "".join(word), start))
    tokens.append(Token("end", "", len(jql) + 1))
    return tokens


@dataclass(frozen=True)
class Clause:
    field: str  # canonical field name
    operator: str  # "=", "!=", "~", "!~", "in", "not in", "is", "is not"
    values: tuple[str, ...]  # empty for IS [NOT] EMPTY
    pos: int


@dataclass(frozen=True)
class BoolOp:
    op: Literal["and", "or"]
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Clause | BoolOp | Not


@dataclass(frozen=True)
class Query:
    where: Node | None
    order_by: tuple[tuple[str, bool], ...]  # (canonical field, descending)


JQL_FIELDS = {
    "labels": "labels",
    "project": "project",
    "key": "key",
    "issuekey": "key",
    "issue": "key",
    "id": "key",
    "status": "status",
    "statuscategory": "statusCategory",
    "issuetype": "issuetype",
    "type": "issuetype",
    "priority": "priority",
    "resolution": "resolution",
    "summary": "summary",
    "description": "description",
    "text": "text",
    "created": "created",
    "createddate": "created",
    "updated": "updated",
    "updateddate": "updated",
}
EQUALITY = ("=", "!=", "in", "not in")
EMPTINESS = ("is", "is not")
TEXTUAL = ("~", "!~")
FIELD_OPERATORS: Mapping[str, tuple[str, ...]] = {
    "labels": EQUALITY + EMPTINESS,
    "project": EQUALITY,
    "key": EQUALITY,
    "status": EQUALITY,
    "statusCategory": EQUALITY,
    "issuetype": EQUALITY,
    "priority": EQUALITY + EMPTINESS,
    "resolution": EQUALITY + EMPTINESS,
    "summary": TEXTUAL + EMPTINESS,
    "description": TEXTUAL + EMPTINESS,
    "text": TEXTUAL,
    "created": (),
    "updated": (),
}
ORDERABLE = frozenset({"key", "created", "updated", "priority", "status", "summary", "issuetype"})
ALL_OPERATORS = (
    "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', "
    "'IS' and 'IS NOT'."
)


class JqlParser:
    """``query := [or] [ORDER BY field [ASC|DESC] (, ...)*]``; ``or := and (OR and)*``;
    ``and := unary (AND unary)*``; ``unary := NOT unary | ( or ) | clause``."""

    def __init__(self, jql: str) -> None:
        self.tokens = tokenize(jql)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def _is_word(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.text.lower() in words

    def _at_order_by(self) -> bool:
        nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else self.tok
        return self._is_word("order") and nxt.kind == "word" and nxt.text.lower() == "by"

    def parse(self) -> Query:
        where: Node | None = None
        if self.tok.kind != "end" and not self._at_order_by():
            where = self._or()
        order_by: list[tuple[str, bool]] = []
        if self._at_order_by():
            self.i += 2
            while True:
                token = self._advance()
                if token.kind not in ("word", "string") or (
                    token.kind == "word" and token.text.lower() in KEYWORDS
                ):
                    raise JqlError(
                        "Error in the JQL Query: Expecting a field name but got "
                        f"{token.describe()}. (line 1, character {token.pos})"
                    )
                name = JQL_FIELDS.get(token.text.lower())
                if name is None:
                    raise JqlError(
                        f"Field '{token.text}' does not exist or you do not have permission "
                        "to view it."
                    )
                if name not in ORDERABLE:
                    raise JqlError(f"Field '{token.text}' does not support sorting.")
                descending = False
                if self._is_word("asc", "desc"):
                    descending = self._advance().text.lower() == "desc"
                order_by.append((name, descending))
                if self.tok.kind != "comma":
                    break
                self._advance()
        if self.tok.kind != "end":
            raise JqlError(
                "Error in the JQL Query: Expecting either 'OR' or 'AND' but got "
                f"{self.tok.describe()}. (line 1, character {self.tok.pos})"
            )
        return Query(where, tuple(order_by))

    def _or(self) -> Node:
        parts = [self._and()]
        while self._is_word("or", "||", "|"):
            self._advance()
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def _and(self) -> Node:
        parts = [self._unary()]
        while self._is_word("and", "&&", "&"):
            self._advance()
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def _unary(self) -> Node:
        if self._is_word("not", "!"):
            self._advance()
            return Not(self._unary())
        if self.tok.kind == "lparen":
            self._advance()
            inner = self._or()
            closing = self._advance()
            if closing.kind != "rparen":
                raise JqlError(
                    "Error in the JQL Query: Expecting ')' but got "
                    f"{closing.describe()}. (line 1, character {closing.pos})"
                )
            return inner
        return self._clause()

    def _clause(self) -> Clause:
        token = self._advance()
        if token.kind not in ("word", "string") or (
            token.kind == "word" and token.text.lower() in KEYWORDS | {"&&", "||", "&", "|", "!"}
        ):
            raise JqlError(
                "Error in the JQL Query: Expecting a field name but got "
                f"{token.describe()}. (line 1, character {token.pos})"
            )
        if self.tok.kind == "lparen":
            raise JqlError(f"Error in the JQL Query: Unsupported JQL function '{token.text}()'.")
        operator = self._operator()
        name = JQL_FIELDS.get(token.text.lower())
        if name is None:
            raise JqlError(
                f"Field '{token.text}' does not exist or you do not have permission to view it."
            )
        allowed = FIELD_OPERATORS[name]
        if operator in ("is", "is not"):
            empty = self._advance()
            if not (empty.kind == "word" and empty.text.lower() in ("empty", "null")):
                raise JqlError(
                    "Error in the JQL Query: Expecting 'EMPTY' or 'NULL' but got "
                    f"{empty.describe()}. (line 1, character {empty.pos})"
                )
            values: tuple[str, ...] = ()
        elif operator in ("in", "not in"):
            values = self._list()
        else:
            value = self._value()
            if value is None:  # "= EMPTY" is "IS EMPTY"
                operator = {"=": "is", "!=": "is not"}.get(operator, operator)
                values = ()
            else:
                values = (value,)
        if not allowed:
            raise JqlError(f"Searching by '{token.text}' is not supported by this test server.")
        if operator not in allowed:
            raise JqlError(
                f"The operator '{operator.upper()}' is not supported by the '{token.text}' field."
            )
        if name == "labels" and "" in values:
            raise JqlError("The field 'labels' does not support searching for an empty string.")
        return Clause(name, operator, values, token.pos)

    def _operator(self) -> str:
        token = self._advance()
        if token.kind == "op":
            return token.text
        if token.kind == "word" and token.text.lower() == "in":
            return "in"
        if token.kind == "word" and token.text.lower() in ("not", "is"):
            first = token.text.lower()
            if first == "not" and self._is_word("in"):
                self._advance()
                return "not in"
            if first == "is":
                if self._is_word("not"):
                    self._advance()
                    return "is not"
                return "is"
        raise JqlError(
            f"Error in the JQL Query: Expecting operator but got {token.describe()}. "
            f"{ALL_OPERATORS} (line 1, character {token.pos})"
        )

    def _value(self) -> str | None:
        token = self._advance()
        if token.kind == "string":
            return token.text
        if token.kind == "word":
            lowered = token.text.lower()
            if lowered in ("empty", "null"):
                return None
            if lowered in KEYWORDS or lowered in ("&&", "||", "&", "|", "!"):
                raise JqlError(
                    f"Error in the JQL Query: '{token.text}' is a reserved JQL word. You must "
                    "surround it in quotation marks to use it in a query. "
                    f"(line 1, character {token.pos})"
                )
            if self.tok.kind == "lparen":
                raise JqlError(
                    f"Error in the JQL Query: Unsupported JQL function '{token.text}()'."
                )
            return token.text
        raise JqlError(
            "Error in the JQL Query: Expecting either a value, list or function but got "
            f"{token.describe()}. (line 1, character {token.pos})"
        )

    def _list(self) -> tuple[str, ...]:
        token = self._advance()
        if token.kind != "lparen":
            raise JqlError(
                f"Error in the JQL Query: Expecting '(' but got {token.describe()}. "
                f"(line 1, character {token.pos})"
            )
        values: list[str] = []
        while True:
            value = self._value()
            if value is None:
                raise JqlError("Error in the JQL Query: EMPTY is not allowed inside a list.")
            values.append(value)
            token = self._advance()
            if token.kind == "rparen":
                return tuple(values)
            if token.kind != "comma":
                raise JqlError(
                    "Error in the JQL Query: Expecting ',' or ')' but got "
                    f"{token.describe()}. (line 1, character {token.pos})"
                )


def parse_jql(jql: str) -> Query:
    """Parse ``jql`` or raise :class:`JqlError` with JIRA's wording."""
    return JqlParser(jql).parse()


# --------------------------------------------------------------------------------------
# The server.
# --------------------------------------------------------------------------------------

Handler = Callable[[web.Request, re.Match[str], Any], Awaitable[web.StreamResponse]]


@dataclass
class _Failure:
    status: int
    remaining: int
    retry_after: int | None
    path_contains: str | None
    method: str | None
    drop: bool = False

    def matches(self, request: web.Request) -> bool:
        if self.method is not None and request.method.upper() != self.method.upper():
            return False
        return self.path_contains is None or self.path_contains in request.path_qs


@dataclass
class _AfterCommit:
    mode: Literal["error", "drop", "hang"]
    status: int
    hang_seconds: float


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    versions: frozenset[str] = field(default_factory=lambda: frozenset({"2", "latest"}))


class FakeJira(LoopbackServer):
    """A JIRA REST server on ``127.0.0.1`` with an ephemeral port.

    Attributes for assertions:

    * ``issues`` -- issue key -> stored issue (``id``, ``key``, ``fields`` with plain values
      such as ``fields["project"] == "OPS"`` and ``fields["priority"] == "High"``, ``status``,
      ``resolution``, ``comments`` (dicts with ``id``, ``body``, ``created``), ``links``,
      ``created``, ``updated``). Tests may edit it; responses are rendered from it.
    * ``requests`` -- every request received, as ``RecordedRequest(method, path, json)``,
      including those answered by injected failures or 401.
    * ``jql_log`` -- every JQL string that reached a search endpoint.

    ``create_delay`` (seconds, default 0) holds every ``POST .../issue`` that long before it
    is handled and answered, as a slow JIRA does; it may be changed while the server runs
    (a request reads it when it arrives). The server's stop cuts the wait short and drops
    the connection.
    """

    max_body = 8 * 1024 * 1024

    def __init__(
        self,
        *,
        cloud: bool = False,
        projects: Iterable[str] = ("OPS", "SEC"),
        priorities: Sequence[str] = ("Highest", "High", "Medium", "Low", "Lowest"),
        issue_types: Sequence[str] = ("Incident", "Task", "Bug"),
        workflow: Mapping[str, Sequence[Transition]] | None = None,
        initial_status: str = "Open",
        default_priority: str | None = "Medium",
        user: str | None = None,
        token: str | None = None,
        extra_fields: Iterable[str] = (),
        components: Iterable[str] = (
            "backend",
            "web",
            "trading",
            "infrastructure",
            "security",
            "market-data",
        ),
        create_delay: float = 0.0,
    ) -> None:
        """``user``/``token``: when ``token`` is set every request needs either basic auth
        ``user:token`` (any user name if ``user`` is None) or ``Authorization: Bearer token``.
        ``extra_fields``: further field ids (e.g. ``customfield_10010``) accepted on create
        and edit and stored as given."""
        self.cloud = cloud
        self.projects: dict[str, str] = {
            key: str(10000 + n) for n, key in enumerate(sorted(set(projects)))
        }
        self.priorities: dict[str, str] = {name: str(n + 1) for n, name in enumerate(priorities)}
        self.issue_types: dict[str, str] = {
            name: str(10001 + n) for n, name in enumerate(issue_types)
        }
        self.workflow: dict[str, tuple[Transition, ...]] = {
            status: tuple(moves) for status, moves in (workflow or DEFAULT_WORKFLOW).items()
        }
        self.initial_status = initial_status
        self.default_priority = default_priority
        self.user = user
        self.token = token
        self.extra_fields = frozenset(extra_fields)
        self.components = frozenset(components)
        self.create_delay = create_delay

        self.issues: dict[str, JsonDict] = {}
        self.requests: list[RecordedRequest] = []
        self.jql_log: list[str] = []

        self._failures: list[_Failure] = []
        self._after_commit: list[_AfterCommit] = []
        self._comment_failures: list[int] = []
        self._down = False
        self._speak = asyncio.Event()
        self._speak.set()
        self._next_issue_id = 10000
        self._next_comment_id = 10000
        self._next_link_id = 10000
        self._next_attachment_id = 10000
        self._project_counters: dict[str, int] = {}
        self._status_ids: dict[str, str] = {}
        super().__init__()
        self._stopping = asyncio.Event()
        self._routes = self._build_routes()

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> str:
        """Bind ``127.0.0.1:0`` and return the base URL (``http://127.0.0.1:PORT``)."""
        self._stopping.clear()
        return await super().start()

    async def stop(self) -> None:
        """Release hanging answers, then close; idempotent."""
        self._stopping.set()
        await super().stop()

    # --------------------------------------------------------- failure injection

    def fail_next(
        self,
        status: int,
        count: int = 1,
        retry_after: int | None = None,
        path_contains: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` and a JIRA-style error
        body (plus ``Retry-After`` when given). ``path_contains`` is matched against the path
        with its query string; rules queue up and are consumed in order."""
        self._failures.append(_Failure(status, count, retry_after, path_contains, method))

    def drop_next(
        self, count: int = 1, path_contains: str | None = None, method: str | None = None
    ) -> None:
        """Close the connection of the next ``count`` matching requests without answering
        (the client sees a connection error); nothing is processed."""
        self._failures.append(_Failure(0, count, None, path_contains, method, drop=True))

    def fail_next_create_after_commit(
        self,
        mode: Literal["error", "drop", "hang"] = "error",
        status: int = 500,
        hang_seconds: float = 30.0,
    ) -> None:
        """Make the next ``POST .../issue`` create the issue and then fail: ``error`` answers
        ``status``; ``drop`` closes the connection without an answer; ``hang`` holds the answer
        for ``hang_seconds`` (so a client timeout fires) and then sends the normal 201, or
        drops the connection if the server stops first."""
        self._after_commit.append(_AfterCommit(mode, status, hang_seconds))

    def fail_next_comment_after_commit(self, status: int = 500) -> None:
        """Make the next comment be stored and then answered with ``status`` (a timeout or a
        proxy error after JIRA did the work)."""
        self._comment_failures.append(status)

    def down(self) -> None:
        """Answer every request with 503 until :meth:`up`."""
        self._down = True

    def up(self) -> None:
        self._down = False

    def silent(self) -> None:
        """Answer nothing until :meth:`answer`: every request is held unprocessed, as behind
        a network that drops packets (clients time out); :meth:`answer` then handles the
        held ones as if they had just arrived, whether or not their client still waits."""
        self._speak.clear()

    def answer(self) -> None:
        self._speak.set()

    def clear_failures(self) -> None:
        """Forget pending ``fail_next``/``drop_next``/after-commit failures; bring it up."""
        self._failures.clear()
        self._after_commit.clear()
        self._down = False

    # -------------------------------------------------------------- assertions

    def issue_by_label(self, label: str) -> JsonDict | None:
        """The oldest stored issue carrying ``label``, or None."""
        found = self.issues_by_label(label)
        return found[0] if found else None

    def issues_by_label(self, label: str) -> list[JsonDict]:
        return sorted(
            (issue for issue in self.issues.values() if label in issue["fields"]["labels"]),
            key=lambda issue: int(issue["id"]),
        )

    def comments(self, key: str) -> list[str]:
        """The comment bodies of issue ``key``, oldest first."""
        return [str(comment["body"]) for comment in self.issues[key]["comments"]]

    def requests_to(self, method: str, path_contains: str = "") -> list[RecordedRequest]:
        """Recorded requests with this method whose path contains ``path_contains``."""
        return [r for r in self.requests if r.method == method and path_contains in r.path]

    def seed_issue(
        self,
        project: str = "OPS",
        summary: str = "seeded issue",
        *,
        issuetype: str | None = None,
        priority: str | None = None,
        labels: Sequence[str] = (),
        description: str | None = None,
        status: str | None = None,
    ) -> JsonDict:
        """Store an issue directly (no request, no field validation) and return it."""
        if project not in self.projects:
            raise ValueError(f"unknown project {project!r}")
        fields: JsonDict = {
            "project": project,
            "issuetype": issuetype or next(iter(self.issue_types)),
            "summary": summary,
            "description": description,
            "priority": priority or self.default_priority,
            "labels": list(labels),
            "assignee": None,
            "reporter": self._reporter(),
        }
        issue = self._store_issue(fields)
        if status is not None:
            self._set_status(issue, status)
        return issue

    # ----------------------------------------------------------------- plumbing

    def _build_routes(self) -> list[_Route]:
        def route(method: str, pattern: str, handler: Handler, *versions: str) -> _Route:
            return _Route(
                method,
                re.compile(pattern),
                handler,
                frozenset(versions) if versions else frozenset({"2", "latest"}),
            )

        issue = r"issue/(?P<issue>[^/]+)"
        return [
            route("GET", r"serverInfo", self._server_info, "2", "latest", "3"),
            route("GET", r"myself", self._myself, "2", "latest", "3"),
            route("GET", r"field", self._fields, "2", "latest", "3"),
            route("GET", r"project", self._project_list),
            route("GET", r"project/(?P<project>[^/]+)", self._project_get),
            route("GET", r"issuetype", self._issue_type_list),
            route("GET", r"priority", self._priority_list),
            route("GET", r"issueLinkType", self._link_type_list),
            route("POST", r"issue", self._issue_create),
            route("GET", issue, self._issue_get),
            route("PUT", issue, self._issue_edit),
            route("DELETE", issue, self._issue_delete),
            route("GET", issue + r"/comment", self._comment_list),
            route("POST", issue + r"/comment", self._comment_add),
            route("GET", issue + r"/transitions", self._transition_list),
            route("POST", issue + r"/transitions", self._transition_do),
            route("POST", issue + r"/attachments", self._attachment_add),
            route("POST", r"issueLink", self._link_create),
            route("GET", r"issueLink/(?P<link>[^/]+)", self._link_get),
            route("DELETE", r"issueLink/(?P<link>[^/]+)", self._link_delete),
            route("GET", r"search", self._search_legacy, "2", "latest", "3"),
            route("POST", r"search", self._search_legacy, "2", "latest", "3"),
            route("GET", r"search/jql", self._search_enhanced, "2", "latest", "3"),
            route("POST", r"search/jql", self._search_enhanced, "2", "latest", "3"),
        ]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if not self._speak.is_set():
            speak, stop = (
                asyncio.ensure_future(self._speak.wait()),
                asyncio.ensure_future(self._stopping.wait()),
            )
            await asyncio.wait({speak, stop}, return_when=asyncio.FIRST_COMPLETED)
            speak.cancel(), stop.cancel()
            if self._stopping.is_set():
                return self._drop(request)
        raw = await request.read()
        body: Any = None
        body_error: str | None = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                body, body_error = raw.decode("utf-8", "replace"), str(exc)
        self.requests.append(RecordedRequest(request.method, request.path, body))

        if self._down:
            return self._error(503, ["Service Unavailable"])
        for failure in self._failures:
            if failure.remaining > 0 and failure.matches(request):
                failure.remaining -= 1
                self._failures = [f for f in self._failures if f.remaining > 0]
                if failure.drop:
                    return self._drop(request)
                return self._error(failure.status, [_phrase(failure.status)], failure.retry_after)
        if not self._authenticated(request):
            response = self._error(401, [NOT_AUTHENTICATED])
            response.headers["WWW-Authenticate"] = 'Basic realm="protected-area"'
            if request.headers.get("Authorization"):
                response.headers["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
            return response

        if request.path.startswith("/rest/auth/1/session") and request.method == "GET":
            return _json(self._session_json())
        match = re.fullmatch(r"/rest/api/(?P<version>[^/]+)/(?P<rest>.+?)/?", request.path)
        if match is None:
            return self._not_found(request)
        version, rest = match["version"], match["rest"]
        if version == "3" and not self.cloud:
            return self._not_found(request)
        path_matched = False
        for candidate in self._routes:
            found = candidate.pattern.fullmatch(rest)
            if found is None or version not in candidate.versions:
                continue
            path_matched = True
            if candidate.method != request.method:
                continue
            if raw and request.method in ("POST", "PUT") and not rest.endswith("/attachments"):
                if request.content_type != "application/json":
                    return self._error(415, ["Unsupported Media Type"])
                if body_error is not None:
                    return self._error(400, [f"Unexpected character in JSON body: {body_error}"])
            try:
                return await candidate.handler(request, found, body)
            except ApiError as exc:
                return self._error(exc.status, exc.messages, errors=exc.errors)
        if path_matched:
            return web.Response(status=405)
        return self._not_found(request)

    def _authenticated(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            return credentials.strip() == self.token
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            name, sep, secret = decoded.partition(":")
            return bool(sep) and secret == self.token and self.user in (None, name)
        return False

    def _error(
        self,
        status: int,
        messages: Sequence[str] = (),
        retry_after: int | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> web.Response:
        response = _json(error_body(messages, errors), status)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    def _not_found(self, request: web.Request) -> web.Response:
        return _json({"message": f"null for uri: {request.url}", "status-code": 404}, 404)

    def _drop(self, request: web.Request) -> web.Response:
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=500)

    def _api(self, path: str) -> str:
        return f"{self._root}/rest/api/2/{path}"

    # ------------------------------------------------------------ JSON renderers

    def _user_json(self) -> JsonDict:
        name = self.user or "automation"
        if self.cloud:
            account = f"557058:{name}"
            return {
                "self": self._api(f"user?accountId={account}"),
                "accountId": account,
                "accountType": "atlassian",
                "emailAddress": f"{name}@example.com",
                "displayName": name,
                "active": True,
                "timeZone": "UTC",
            }
        return {
            "self": self._api(f"user?username={name}"),
            "key": f"JIRAUSER{10000 + len(name)}",
            "name": name,
            "emailAddress": f"{name}@example.com",
            "displayName": name,
            "active": True,
            "timeZone": "UTC",
        }

    def _reporter(self) -> JsonDict:
        user = self._user_json()
        return {"accountId": user["accountId"]} if self.cloud else {"name": user["name"]}

    def _session_json(self) -> JsonDict:
        name = self.user or "automation"
        return {
            "self": self._api(f"user?username={name}"),
            "name": name,
            "loginInfo": {"loginCount": 1, "previousLoginTime": _now()},
        }

    def _project_json(self, key: str, *, full: bool = False) -> JsonDict:
        project_id = self.projects[key]
        data: JsonDict = {
            "self": self._api(f"project/{project_id}"),
            "id": project_id,
            "key": key,
            "name": key,
            "projectTypeKey": "software",
            "avatarUrls": {"48x48": f"{self._root}/secure/projectavatar?pid={project_id}"},
        }
        if full:
            data["expand"] = "description,lead,issueTypes,url,projectKeys,permissions,insight"
            data["description"] = ""
            data["lead"] = self._user_json()
            data["issueTypes"] = [self._issue_type_json(name) for name in self.issue_types]
            data["simplified"] = False
        return data

    def _issue_type_json(self, name: str) -> JsonDict:
        type_id = self.issue_types[name]
        return {
            "self": self._api(f"issuetype/{type_id}"),
            "id": type_id,
            "description": "",
            "iconUrl": f"{self._root}/images/icons/issuetypes/{name.lower()}.png",
            "name": name,
            "subtask": False,
            "avatarId": 10300,
        }

    def _priority_json(self, name: str) -> JsonDict:
        priority_id = self.priorities[name]
        return {
            "self": self._api(f"priority/{priority_id}"),
            "iconUrl": f"{self._root}/images/icons/priorities/{name.lower()}.svg",
            "name": name,
            "id": priority_id,
        }

    def _status_id(self, name: str) -> str:
        if name not in self._status_ids:
            self._status_ids[name] = WELL_KNOWN_STATUS_IDS.get(
                name, str(10100 + len(self._status_ids))
            )
        return self._status_ids[name]

    def _status_category(self, name: str) -> str:
        if name.lower() in DONE_STATUSES:
            return "done"
        if name.lower() in IN_PROGRESS_STATUSES:
            return "indeterminate"
        return "new"

    def _status_json(self, name: str) -> JsonDict:
        status_id = self._status_id(name)
        category = dict(STATUS_CATEGORIES[self._status_category(name)])
        category["self"] = self._api(f"statuscategory/{category['id']}")
        return {
            "self": self._api(f"status/{status_id}"),
            "description": "",
            "iconUrl": f"{self._root}/images/icons/statuses/generic.png",
            "name": name,
            "id": status_id,
            "statusCategory": category,
        }

    def _comment_json(self, issue: JsonDict, comment: JsonDict) -> JsonDict:
        author = self._user_json()
        data: JsonDict = {
            "self": self._api(f"issue/{issue['id']}/comment/{comment['id']}"),
            "id": comment["id"],
            "author": author,
            "body": comment["body"],
            "updateAuthor": author,
            "created": comment["created"],
            "updated": comment["created"],
        }
        if self.cloud:
            data["jsdPublic"] = True
        return data

    def _link_type_json(self, name: str) -> JsonDict:
        for type_id, type_name, inward, outward in LINK_TYPES:
            if type_name == name:
                return {
                    "id": type_id,
                    "name": type_name,
                    "inward": inward,
                    "outward": outward,
                    "self": self._api(f"issueLinkType/{type_id}"),
                }
        raise KeyError(name)

    def _issue_ref_json(self, key: str) -> JsonDict:
        issue = self.issues[key]
        fields = issue["fields"]
        ref: JsonDict = {
            "id": issue["id"],
            "key": key,
            "self": self._api(f"issue/{issue['id']}"),
            "fields": {
                "summary": fields["summary"],
                "status": self._status_json(issue["status"]),
                "issuetype": self._issue_type_json(fields["issuetype"]),
            },
        }
        if fields.get("priority"):
            ref["fields"]["priority"] = self._priority_json(fields["priority"])
        return ref

    def _link_json(self, link: JsonDict, *, seen_from: str | None = None) -> JsonDict:
        data: JsonDict = {
            "id": link["id"],
            "self": self._api(f"issueLink/{link['id']}"),
            "type": self._link_type_json(link["type"]),
        }
        if seen_from != link["outward"] and link["outward"] in self.issues:
            data["outwardIssue"] = self._issue_ref_json(link["outward"])
        if seen_from != link["inward"] and link["inward"] in self.issues:
            data["inwardIssue"] = self._issue_ref_json(link["inward"])
        return data

    def _issue_json(
        self, issue: JsonDict, wanted: Sequence[str] | None, *, adf: bool = False
    ) -> JsonDict:
        stored = issue["fields"]
        resolution = issue.get("resolution")
        description: Any = stored.get("description")
        if adf and isinstance(description, str):
            description = _adf(description)
        comments = [self._comment_json(issue, c) for c in issue["comments"]]
        everything: JsonDict = {
            "summary": stored["summary"],
            "description": description,
            "project": self._project_json(stored["project"]),
            "issuetype": self._issue_type_json(stored["issuetype"]),
            "priority": self._priority_json(stored["priority"]) if stored.get("priority") else None,
            "labels": list(stored["labels"]),
            "status": self._status_json(issue["status"]),
            "resolution": (
                {"self": self._api("resolution/10000"), "id": "10000", "name": resolution}
                if resolution
                else None
            ),
            "resolutiondate": issue.get("resolutiondate"),
            "created": issue["created"],
            "updated": issue["updated"],
            "assignee": stored.get("assignee"),
            "reporter": stored.get("reporter"),
            "creator": stored.get("reporter"),
            "comment": {
                "comments": comments,
                "maxResults": len(comments),
                "total": len(comments),
                "startAt": 0,
            },
            "issuelinks": [
                self._link_json(link, seen_from=issue["key"]) for link in issue["links"]
            ],
            "attachment": [self._attachment_json(a) for a in issue.get("attachments", [])],
        }
        for name in sorted(self.extra_fields):
            everything[name] = stored.get(name)
        return {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,"
            "versionedRepresentations",
            "id": issue["id"],
            "self": self._api(f"issue/{issue['id']}"),
            "key": issue["key"],
            "fields": _select_fields(everything, wanted),
        }

    # --------------------------------------------------------- state mutation

    def _store_issue(self, fields: JsonDict) -> JsonDict:
        project = fields["project"]
        number = self._project_counters.get(project, 0) + 1
        self._project_counters[project] = number
        issue_id = str(self._next_issue_id)
        self._next_issue_id += 1
        now = _now()
        issue: JsonDict = {
            "id": issue_id,
            "key": f"{project}-{number}",
            "fields": fields,
            "status": self.initial_status,
            "resolution": None,
            "resolutiondate": None,
            "comments": [],
            "links": [],
            "created": now,
            "updated": now,
        }
        self.issues[issue["key"]] = issue
        return issue

    def _set_status(self, issue: JsonDict, status: str) -> None:
        issue["status"] = status
        issue["updated"] = _now()
        if self._status_category(status) == "done":
            issue["resolution"] = issue.get("resolution") or "Done"
            issue["resolutiondate"] = issue["updated"]
        else:
            issue["resolution"] = None
            issue["resolutiondate"] = None

    def _add_comment(self, issue: JsonDict, body: Any) -> JsonDict:
        comment: JsonDict = {
            "id": str(self._next_comment_id),
            "body": body,
            "created": _now(),
        }
        self._next_comment_id += 1
        issue["comments"].append(comment)
        issue["updated"] = comment["created"]
        return comment

    def _find_issue(self, id_or_key: str) -> JsonDict:
        issue = self.issues.get(id_or_key.upper())
        if issue is None:
            issue = next((i for i in self.issues.values() if i["id"] == id_or_key), None)
        if issue is None:
            message = (
                "Issue does not exist or you do not have permission to see it."
                if self.cloud
                else "Issue Does Not Exist"
            )
            raise ApiError(404, [message])
        return issue

    # ------------------------------------------------------------- validation

    def _validate_fields(self, given: Any, *, creating: bool) -> JsonDict:
        """Validate a ``fields`` object like JIRA; return plain values or raise ApiError(400)."""
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise ApiError(400, ["Can not deserialize 'fields': expected a JSON object."])
        errors: dict[str, str] = {}
        clean: JsonDict = {}
        known = {
            "project",
            "issuetype",
            "summary",
            "description",
            "priority",
            "labels",
            "assignee",
            "reporter",
            "components",
        }
        for name in given:
            if name not in known and name not in self.extra_fields:
                errors[name] = _cannot_set(name)
        for name in self.extra_fields & given.keys():
            clean[name] = given[name]

        if "project" in given or creating:
            if not creating:
                errors["project"] = _cannot_set("project")
            else:
                project = self._lookup(given.get("project"), "key", self.projects)
                if project is _MISSING:
                    errors["project"] = "project is required"
                elif project is None:
                    errors["project"] = "valid project is required"
                else:
                    clean["project"] = project

        if "issuetype" in given or creating:
            issue_type = self._lookup(given.get("issuetype"), "name", self.issue_types)
            if issue_type is _MISSING:
                errors["issuetype"] = "issue type is required"
            elif issue_type is None:
                errors["issuetype"] = "valid issue type is required"
            else:
                clean["issuetype"] = issue_type

        if "summary" in given or creating:
            summary = given.get("summary")
            if summary is not None and not isinstance(summary, str):
                errors["summary"] = "Operation value must be a string"
            elif not summary or not summary.strip():
                errors["summary"] = "You must specify a summary of the issue."
            elif "\n" in summary or "\r" in summary:
                errors["summary"] = "The summary is invalid because it contains newline characters."
            elif len(summary) > SUMMARY_MAX:
                errors["summary"] = "Summary must be less than 255 characters."
            else:
                clean["summary"] = summary

        if "description" in given:
            description = given["description"]
            if description is not None and not isinstance(description, str):
                errors["description"] = "Operation value must be a string"
            elif description is not None and len(description) > TEXT_MAX:
                errors["description"] = TEXT_TOO_LONG
            else:
                clean["description"] = description

        if "priority" in given:
            value = given["priority"]
            if value is None:
                clean["priority"] = None
            elif not isinstance(value, dict) or not ({"id", "name"} & value.keys()):
                errors["priority"] = "Could not find valid 'id' or 'name' in priority object."
            elif "id" in value:
                matched = [n for n, i in self.priorities.items() if i == str(value["id"])]
                if matched:
                    clean["priority"] = matched[0]
                else:
                    errors["priority"] = f"Priority with id '{value['id']}' does not exist."
            elif value["name"] in self.priorities:
                clean["priority"] = value["name"]
            else:
                errors["priority"] = f"Priority name '{value['name']}' is not valid"
        elif creating:
            clean["priority"] = self.default_priority

        if "labels" in given:
            labels = given["labels"]
            if labels is None:
                clean["labels"] = []
            elif not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                errors["labels"] = "data was not an array"
            else:
                problem = next((p for p in (_label_problem(label) for label in labels) if p), None)
                if problem:
                    errors["labels"] = problem
                else:
                    clean["labels"] = list(dict.fromkeys(labels))
        elif creating:
            clean["labels"] = []

        if "components" in given:
            wanted = given["components"]
            names = (
                [c.get("name") for c in wanted if isinstance(c, dict)]
                if isinstance(wanted, list)
                else None
            )
            if names is None or len(names) != len(wanted):
                errors["components"] = 'expected a list of {"name": ...} objects'
            elif bad := [n for n in names if n not in self.components]:
                errors["components"] = f"Component name '{bad[0]}' is not valid"
            else:
                clean["components"] = names

        for person in ("assignee", "reporter"):
            if person in given:
                value = given[person]
                if value is not None and not isinstance(value, dict):
                    errors[person] = f"expected Object for '{person}'"
                else:
                    clean[person] = value
        if creating and "reporter" not in clean:
            clean["reporter"] = self._reporter()
        if creating and "assignee" not in clean:
            clean["assignee"] = None
        if creating and "description" not in clean:
            clean["description"] = None

        if errors:
            raise ApiError(400, [], errors)
        return clean

    def _lookup(self, value: Any, name_key: str, known: Mapping[str, str]) -> Any:
        """Resolve ``{"id": ...}`` or ``{name_key: ...}`` to a known name; None if unknown,
        ``_MISSING`` if absent or without either key."""
        if value is None:
            return _MISSING
        if isinstance(value, dict):
            if "id" in value:
                wanted = str(value["id"])
                return next((n for n, i in known.items() if i == wanted), None)
            if name_key in value:
                return value[name_key] if value[name_key] in known else None
            return _MISSING
        return None

    def _apply_update(self, issue: JsonDict | None, update: Any, clean: JsonDict) -> list[str]:
        """Apply an ``update`` object (labels add/remove/set, summary/description/priority set,
        comment add) onto ``clean``; return comment bodies to add."""
        if update is None:
            return []
        if not isinstance(update, dict):
            raise ApiError(400, ["Can not deserialize 'update': expected a JSON object."])
        comments: list[str] = []
        errors: dict[str, str] = {}
        for name, operations in update.items():
            if not isinstance(operations, list) or not all(
                isinstance(op, dict) and len(op) == 1 for op in operations
            ):
                errors[name] = "Operation value must be a list of single-operation objects."
                continue
            for op in operations:
                verb, argument = next(iter(op.items()))
                if name == "labels":
                    current: list[str] = list(
                        clean.get("labels", issue["fields"]["labels"] if issue else [])
                    )
                    values = argument if verb == "set" else [argument]
                    if verb not in ("add", "remove", "set") or not isinstance(values, list):
                        errors[name] = f"Field 'labels' does not support operation '{verb}'."
                        continue
                    bad = [v for v in values if not isinstance(v, str)]
                    problem = "data was not an array" if bad else None
                    problem = problem or next(
                        (p for p in (_label_problem(v) for v in values) if p), None
                    )
                    if problem:
                        errors[name] = problem
                        continue
                    if verb == "set":
                        current = list(dict.fromkeys(values))
                    elif verb == "add":
                        current = list(dict.fromkeys([*current, argument]))
                    else:
                        current = [label for label in current if label != argument]
                    clean["labels"] = current
                elif name == "comment" and issue is not None and verb == "add":
                    body = argument.get("body") if isinstance(argument, dict) else None
                    problem = _comment_problem(body)
                    if problem:
                        errors["comment"] = problem
                    else:
                        comments.append(str(body))
                elif name in ("summary", "description", "priority") and verb == "set":
                    try:
                        clean.update(self._validate_fields({name: argument}, creating=False))
                    except ApiError as exc:
                        errors.update(exc.errors)
                else:
                    errors[name] = _cannot_set(name)
        if errors:
            raise ApiError(400, [], errors)
        return comments

    # --------------------------------------------------------------- handlers

    async def _server_info(self, request: web.Request, m: re.Match[str], body: Any) -> web.Response:
        if self.cloud:
            version, numbers, build = "1000.0.0", [1000, 0, 0], 100000
        else:
            version, numbers, build = "9.12.0", [9, 12, 0], 9120000
        return _json(
            {
                "baseUrl": self._root,
                "version": version,
                "versionNumbers": numbers,
                "deploymentType": "Cloud" if self.cloud else "Server",
                "buildNumber": build,
                "buildDate": "2026-01-01T00:00:00.000+0000",
                "serverTime": _now(),
                "scmInfo": "0" * 40,
                "serverTitle": "Jira",
            }
        )

    async def _myself(self, request: web.Request, m: re.Match[str], body: Any) -> web.Response:
        return _json(self._user_json())

    async def _fields(self, request: web.Request, m: re.Match[str], body: Any) -> web.Response:
        listing = [
            {
                "id": field_id,
                "key": field_id,
                "name": name,
                "custom": False,
                "orderable": field_id not in ("issuekey", "status", "created", "updated"),
                "navigable": True,
                "searchable": True,
                "clauseNames": list(clauses),
                **({"schema": schema} if schema else {}),
            }
            for field_id, name, clauses, schema in SYSTEM_FIELDS
        ]
        return _json(listing)

    async def _project_list(
        self, request: web.Request, m: re.Match[str], body: Any
    ) -> web.Response:
        return _json([self._project_json(key) for key in self.projects])

    async def _project_get(self, request: web.Request, m: re.Match[str], body: Any) -> web.Response:
        wanted = m["project"]
        key = next(
            (k for k, i in self.projects.items() if wanted in (i, k) or k == wanted.upper()), None
        )
        if key is None:
            raise ApiError(404, [f"No project could be found with key '{wanted}'."])
        return _json(self._project_json(key, full=True))

    async def _issue_type_list(
        self, request: web.Request, m: re.Match[str], body: Any
    ) -> web.Response:
        return _json([self._issue_type_json(name) for name in self.issue_types])

    async def _priority_list(
        self, request: web.Request, m: re.Match[str], body: Any
    ) -> web.Response:
        listing = []
        for name in self.priorities:
            data = self._priority_json(name)
            data["statusColor"] = "#cccccc"
            data["description"] = name
            listing.append(data)
        return _json(listing)

    async def _link_type_list(
        self, request: web.Request, m: re.Match[str], body: Any
    ) -> web.Response:
        return _json({"issueLinkTypes": [self._link_type_json(t[1]) for t in LINK_TYPES]})

    async def _issue_create(
        self, request: web.Request, m: re.Match[str], body: Any
    ) -> web.StreamResponse:
        if self.create_delay > 0:
            try:
                await asyncio.wait_for(self._stopping.wait(), self.create_delay)
            except TimeoutError:
                pass
            else:
                return self._drop(request)
        if not isinstance(body, dict):
            raise ApiError(400, ["Can not deserialize the request body: expected a JSON object."])
        fields = body.get("fields")
        if not isinstance(fields, dict) or not fields:
            raise ApiError(
                400,
                [],
                {
                    "project": "project is required",
                    "summary": "You must specify a summary of the issue.",
                    "issuetype": "issue type is required",
                },
            )
        clean = self._validate_fields(fields, creating=True)
        self._apply_update(None, body.get("update"), clean)
        issue = self._store_issue(clean)
        created = {
            "id": issue["id"],
            "key": issue["key"],
            "self": self._api(f"issue/{issue['id']}"),
        }
        if self._after_commit:
            after = self._after_commit.pop(0)
            if after.mode == "error":
                return self._error(after.status, [_phrase(after.status)])
            if after.mode == "drop":
                return self._drop(request)
            try:
                await asyncio.wait_for(self._stopping.wait(), after.hang_seconds)
            except TimeoutError:
                pass
            else:
                return self._drop(request)
        return _json(created, 201)

    async def _issue_get(self, request: web.Request, m: re.Match[str], body: Any) -> web.Response:
        issue = self._find_issue(m["issue"])
        return _json(self._issue_json(issue, _wanted_fields(request.query.getall("fields", []))))

    async def _issue_edit(self, request: web.Request, m: re.Match[str], body: Any) -> web.Response:
        issue = self._find_issue(m["issue"])
        if body is not None and not isinstance(body, dict):
            raise ApiError(400, ["Can not deserialize the request body: expected a JSON object."])
        body = body or {}
        clean = self._validate_fields(body.get("fields"), creating=False)
        comments = self._apply_update(issue, body.get("update"), clean)
        issue["fields"].update(clean)
        for comment in comments:
            self._add_comment(issue, comment)
        issue["updated"] = _now()
        return web.Response(status=204)

    async def _attachment_add(
        self, request: web.Request, m: re.Match[str], body: Any
    ) -> web.Response:
        """As JIRA does: only with ``X-Atlassian-Token: no-check`` (else the XSRF check
        fails), multipart with the files in ``file`` parts; answers the new attachments."""
        issue = self._find_issue(m["issue"])
        if request.headers.get("X-Atlassian-Token", "").lower() != "no-check":
            return web.Response(status=403, text="XSRF check failed")
        if request.content_type != "multipart/form-data":
            raise ApiError(415, ["Unsupported Media Type: attachments are multipart/form-data"])
        files = _file_parts(request.headers["Content-Type"], await request.read())
        if not files:
            raise ApiError(400, ["No file parts named 'file' in the request"])
        added = []
        for filename, mime, data in files:
            if not data:
                raise ApiError(400, [f"The file {filename} is empty"])
            if mime in ("", "application/octet-stream"):  # JIRA looks at name and content
                mime = mimetypes.guess_type(filename)[0] or _sniff_text(data)
            attachment: JsonDict = {
                "id": str(self._next_attachment_id),
                "filename": filename,
                "mimeType": mime,
                "data": data,
                "created": _now(),
            }
            self._next_attachment_id += 1
            issue.setdefault("attachments", []).append(attachment)
            added.append(self._attachment_json(attachment))
        issue["updated"] = _now()
        return _json(added)

    def _attachment_json(self, attachment: JsonDict) -> JsonDict:
        return {
            "self": self._api(f"attachment/{attachment['id']}"),
            "id": attachment["id"],
            "filename": attachment["filename"],
            "author": self._reporter(),
            "created": attachment["created"],
            "size": len(attachment["data"]),
            "mimeType": attachment["mimeType"],
            "content": (
                f"{self._root}/secure/attachment/{attachment['id']}/{attachment['filename']}"
            ),
        }

    async def _issue_delete(
        self, request: web.Request, m: re.Match[str], body: Any
    ) -> web.Response:
        issue = self._find_issue(m["issue"])
        del self.issues[issue["key"]]
        return web.Response(status=204)

    async def _comment_list(
        self, request: web.Request, m: re.Match[str], body: Any
    ) -> web.Response:
        issue = self._find_issue(m["issue"])
        comments = [self._comment_json(issue, c) for c in issue["comments"]]
        return _json(
            {
                "startAt": 0,
                "maxResults": len(comments),
                "total": len(comments),
                "comments": comments,
            }
        )

    async def _comment_add(self, request: web.Request, m: re.Match[str], body: Any) -> web.Response:
        issue = self._find_issue(m["issue"])
        text = body.get("body") if isinstance(body, dict) else None
        problem = _comment_problem(text)
        if problem:
            raise ApiError(400, [], {"comment": problem})
        comment = self._add_comment(issue, text)
        if self._comment_failures:
            return self._error(self._comment_failures.pop(0), ["Internal server error"])
        return _json(self._comment_json(issue, comment), 201)

    async def _transition_list(
        self, request: web.Request, m: re.Match[str], body: Any
    ) -> web.Response:
        issue = self._find_issue(m["issue"])
        only = request.query.get("transitionId")
        moves = [
            {
                "id": move.id,
                "name": move.name,
                "to": self._status_json(move.to),
                "hasScreen": False,
                "isGlobal": False,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
                "isLooped": False,
            }
            for move in self.workflow.get(issue["status"], ())
            if only is None or move.id == only
        ]
        return _json({"expand": "transitions", "transitions": moves})

    async def _transition_do(
        self, request: web.Request, m: re.Match[str], body: Any
    ) -> web.Response:
        issue = self._find_issue(m["issue"])
        body = body if isinstance(body, dict) else {}
        transition = body.get("transition")
        wanted = transition.get("id") if isinstance(transition, dict) else None
        if wanted is None:
            raise ApiError(400, ["Missing 'transition' identifier"])
        move = next(
            (t for t in self.workflow.get(issue["status"], ()) if t.id == str(wanted)), None
        )
        if move is None:
            raise ApiError(400, [f"Transition id '{wanted}' is not valid for this issue."])
        fields = body.get("fields") or {}
        if fields:
            raise ApiError(400, [], {name: _cannot_set(name) for name in fields})
        comments = self._apply_update(issue, body.get("update"), {})
        self._set_status(issue, move.to)
        for comment in comments:
            self._add_comment(issue, comment)
        return web.Response(status=204)

    async def _link_create(self, request: web.Request, m: re.Match[str], body: Any) -> web.Response:
        body = body if isinstance(body, dict) else {}
        link_type = body.get("type") or {}
        type_name = link_type.get("name") if isinstance(link_type, dict) else None
        if type_name is None and isinstance(link_type, dict) and "id" in link_type:
            type_name = next((t[1] for t in LINK_TYPES if t[0] == str(link_type["id"])), None)
        if type_name not in {t[1] for t in LINK_TYPES}:
            raise ApiError(404, [f"No issue link type with name '{type_name}' found."])
        keys = []
        for side in ("inwardIssue", "outwardIssue"):
            ref = body.get(side)
            ident = ref.get("key") or ref.get("id") if isinstance(ref, dict) else None
            if not ident:
                raise ApiError(400, [], {side: f"'{side}' is required"})
            keys.append(self._find_issue(str(ident))["key"])
        inward, outward = keys
        link = {
            "id": str(self._next_link_id),
            "type": type_name,
            "inward": inward,
            "outward": outward,
        }
        self._next_link_id += 1
        self.issues[inward]["links"].append(link)
        if outward != inward:
            self.issues[outward]["links"].append(link)
        comment = body.get("comment")
        if isinstance(comment, dict) and comment.get("body"):
            self._add_comment(self.issues[inward], comment["body"])
        return web.Response(status=201)

    def _find_link(self, link_id: str) -> JsonDict:
        for issue in self.issues.values():
            for link in issue["links"]:
                if link["id"] == link_id:
                    return dict(link)
        raise ApiError(404, [f"No issue link with id '{link_id}' exists."])

    async def _link_get(self, request: web.Request, m: re.Match[str], body: Any) -> web.Response:
        return _json(self._link_json(self._find_link(m["link"])))

    async def _link_delete(self, request: web.Request, m: re.Match[str], body: Any) -> web.Response:
        link = self._find_link(m["link"])
        for issue in self.issues.values():
            issue["links"] = [x for x in issue["links"] if x["id"] != link["id"]]
        return web.Response(status=204)

    async def _search_legacy(
        self, request: web.Request, m: re.Match[str], body: Any
    ) -> web.Response:
        if self.cloud or _api_version(request) == "3":
            raise ApiError(410, [SEARCH_GONE])
        params = _search_params(request, body)
        jql = _string_param(params, "jql", "")
        self.jql_log.append(jql)
        start_at = _int_param(params, "startAt", 0)
        max_results = min(_int_param(params, "maxResults", 50), SERVER_MAX_RESULTS)
        validate = str(params.get("validateQuery", "strict")).lower() not in (
            "false",
            "none",
            "warn",
        )
        matched, warnings = self._run_jql(jql, strict=validate)
        page = matched[start_at : start_at + max_results] if max_results > 0 else []
        wanted = _wanted_fields(params.get("fields"))
        result: JsonDict = {
            "expand": "schema,names",
            "startAt": start_at,
            "maxResults": max_results,
            "total": len(matched),
            "issues": [self._issue_json(issue, wanted) for issue in page],
        }
        if warnings:
            result["warningMessages"] = warnings
        return _json(result)

    async def _search_enhanced(
        self, request: web.Request, m: re.Match[str], body: Any
    ) -> web.Response:
        if not self.cloud:
            return self._not_found(request)
        params = _search_params(request, body)
        jql = _string_param(params, "jql", "")
        self.jql_log.append(jql)
        max_results = min(_int_param(params, "maxResults", 50), CLOUD_MAX_RESULTS)
        token = params.get("nextPageToken")
        offset = _decode_page_token(token) if token else 0
        matched, _ = self._run_jql(jql, strict=True, bounded=True)
        page = matched[offset : offset + max_results] if max_results > 0 else []
        wanted = _wanted_fields(params.get("fields"), default=("id",))
        adf = _api_version(request) == "3"
        result: JsonDict = {
            "issues": (
                [{"id": issue["id"]} for issue in page]  # Cloud's default: ids only
                if wanted == ["id"]
                else [self._issue_json(issue, wanted, adf=adf) for issue in page]
            )
        }
        end = offset + len(page)
        result["isLast"] = end >= len(matched)
        if end < len(matched):
            result["nextPageToken"] = _encode_page_token(end)
        return _json(result)

    def _run_jql(
        self, jql: str, *, strict: bool, bounded: bool = False
    ) -> tuple[list[JsonDict], list[str]]:
        try:
            query = parse_jql(jql)
        except JqlError as exc:
            raise ApiError(400, [str(exc)]) from exc
        if bounded and query.where is None:
            raise ApiError(400, [UNBOUNDED_JQL])
        warnings: list[str] = []
        problems = self._check_values(query.where)
        if problems and strict:
            raise ApiError(400, problems)
        warnings.extend(problems)
        matched = [i for i in self.issues.values() if self._matches(query.where, i)]
        matched.sort(key=lambda i: int(i["id"]), reverse=True)  # default: newest first
        for name, descending in reversed(query.order_by):
            matched.sort(key=functools.partial(self._sort_key, name=name), reverse=descending)
        return matched, warnings

    def _check_values(self, node: Node | None) -> list[str]:
        if node is None:
            return []
        if isinstance(node, BoolOp):
            return [p for part in node.parts for p in self._check_values(part)]
        if isinstance(node, Not):
            return self._check_values(node.part)
        known: Mapping[str, Iterable[str]] = {
            "project": [*self.projects, *self.projects.values()],
            "issuetype": [*self.issue_types, *self.issue_types.values()],
            "priority": [*self.priorities, *self.priorities.values()],
            "status": [
                self.initial_status,
                *self.workflow,
                *(t.to for ts in self.workflow.values() for t in ts),
            ],
            "statusCategory": [
                *(c["name"] for c in STATUS_CATEGORIES.values()),
                *STATUS_CATEGORIES,
            ],
            "resolution": ["Done", "Unresolved"],
        }
        problems = []
        if node.field in known:
            names = {str(n).lower() for n in known[node.field]}
            for value in node.values:
                if value.lower() not in names:
                    problems.append(
                        f"The value '{value}' does not exist for the field '{node.field}'."
                    )
        if node.field == "key":
            for value in node.values:
                if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*-\d+|\d+", value):
                    problems.append(f"The issue key '{value}' for field 'key' is invalid.")
                elif not any(value.upper() in (k, i["id"]) for k, i in self.issues.items()):
                    problems.append(f"An issue with key '{value}' does not exist for field 'key'.")
        return problems

    def _matches(self, node: Node | None, issue: JsonDict) -> bool:
        if node is None:
            return True
        if isinstance(node, BoolOp):
            results = (self._matches(part, issue) for part in node.parts)
            return all(results) if node.op == "and" else any(results)
        if isinstance(node, Not):
            return not self._matches(node.part, issue)
        return self._clause_matches(node, issue)

    def _clause_values(self, name: str, issue: JsonDict) -> list[str]:
        fields = issue["fields"]
        if name == "labels":
            return list(fields["labels"])
        if name == "project":
            return [fields["project"], self.projects.get(fields["project"], "")]
        if name == "key":
            return [issue["key"], issue["id"]]
        if name == "status":
            return [issue["status"], self._status_id(issue["status"])]
        if name == "statusCategory":
            category = STATUS_CATEGORIES[self._status_category(issue["status"])]
            return [category["name"], category["key"], str(category["id"])]
        if name == "issuetype":
            return [fields["issuetype"], self.issue_types.get(fields["issuetype"], "")]
        if name == "priority":
            priority = fields.get("priority")
            return [priority, self.priorities.get(priority, "")] if priority else []
        if name == "resolution":
            return [issue["resolution"]] if issue.get("resolution") else []
        if name in ("summary", "description"):
            return [fields[name]] if fields.get(name) else []
        if name == "text":
            texts = [fields.get("summary"), fields.get("description")]
            texts.extend(c["body"] for c in issue["comments"])
            return [t for t in texts if t]
        return []

    def _clause_matches(self, clause: Clause, issue: JsonDict) -> bool:
        present = self._clause_values(clause.field, issue)
        if clause.operator == "is":
            return not present
        if clause.operator == "is not":
            return bool(present)
        if clause.operator in ("~", "!~"):
            words = [w.lower() for w in re.findall(r"\w+", clause.values[0])]
            hit = any(all(w in text.lower() for w in words) for text in present)
            return hit if clause.operator == "~" else bool(present) and not hit
        if clause.field == "labels":
            hit = any(v in present for v in clause.values)  # label search is exact
        elif clause.field == "resolution":
            unresolved = any(v.lower() == "unresolved" for v in clause.values)
            lowered = {p.lower() for p in present}
            hit = (unresolved and not present) or any(v.lower() in lowered for v in clause.values)
            return hit if clause.operator in ("=", "in") else not hit
        else:
            lowered = {p.lower() for p in present}
            hit = any(v.lower() in lowered for v in clause.values)
        if clause.operator in ("=", "in"):
            return hit
        return bool(present) and not hit  # JQL's != and NOT IN skip empty fields

    def _sort_key(self, issue: JsonDict, *, name: str) -> Any:
        fields = issue["fields"]
        if name == "key":
            return _key_order(issue["key"])
        if name in ("created", "updated"):
            return (issue[name], int(issue["id"]))
        if name == "priority":
            return -int(self.priorities.get(fields.get("priority") or "", "0"))
        if name == "status":
            return issue["status"]
        return str(fields.get(name) or "")


_MISSING: Any = object()


def _phrase(status: int) -> str:
    if status == 429:
        return "Rate limit exceeded."
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _api_version(request: web.Request) -> str:
    return request.path.split("/")[3]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(data), content_type="application/json", charset="utf-8"
    )


def _adf(text: str) -> JsonDict:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


def _cannot_set(name: str) -> str:
    return f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."


def _label_problem(label: str) -> str | None:
    if label == "" or re.search(r"\s", label):
        return f"The label '{label}' contains spaces which is invalid."
    if len(label) > LABEL_MAX:
        return (
            f"The label '{label}' exceeds the maximum length for a single label of 255 characters."
        )
    return None


def _comment_problem(body: Any) -> str | None:
    if not isinstance(body, str) or not body.strip():
        return "Comment body can not be empty!"
    if len(body) > TEXT_MAX:
        return TEXT_TOO_LONG
    return None


def _wanted_fields(raw: Any, default: Sequence[str] | None = None) -> list[str] | None:
    """Flatten ``fields`` given as repeated or comma-separated parameters, or a JSON list."""
    if raw is None or raw == []:
        return list(default) if default is not None else None
    items = raw if isinstance(raw, list) else [raw]
    names = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    return names or (list(default) if default is not None else None)


def _select_fields(everything: JsonDict, wanted: Sequence[str] | None) -> JsonDict:
    """Apply a ``fields`` selection: ``*all``/``*navigable``, names, ``-name`` exclusions."""
    if wanted is None:
        return everything
    include_all = any(name in ("*all", "*navigable") for name in wanted)
    excluded = {name[1:] for name in wanted if name.startswith("-")}
    return {
        k: v for k, v in everything.items() if (include_all or k in wanted) and k not in excluded
    }


def _search_params(request: web.Request, body: Any) -> JsonDict:
    if request.method == "POST":
        if not isinstance(body, dict):
            raise ApiError(400, ["Can not deserialize the request body: expected a JSON object."])
        return dict(body)
    params: JsonDict = {}
    for name in set(request.query.keys()):
        values = request.query.getall(name)
        params[name] = values if name in ("fields", "expand", "properties") else values[-1]
    return params


def _string_param(params: Mapping[str, Any], name: str, default: str) -> str:
    value = params.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ApiError(400, [f"The '{name}' parameter must be a string."])
    return value


def _int_param(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, [f"The '{name}' parameter must be an integer."]) from None
    if number < 0:
        raise ApiError(400, [f"The '{name}' parameter must not be negative."])
    return number


def _encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_page_token(token: Any) -> int:
    try:
        text = base64.urlsafe_b64decode(str(token).encode()).decode()
        prefix, _, number = text.partition(":")
        if prefix != "offset" or not number.isdigit():
            raise ValueError(text)
        return int(number)
    except (ValueError, binascii.Error):
        raise ApiError(400, ["The provided next page token is invalid or expired."]) from None
