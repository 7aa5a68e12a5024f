"""Alertmanager label matchers: ``name="v"``, ``name!="v"``, ``name=~"re"``, ``name!~"re"``."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import re2

_MATCHER = re.compile(
    r"""^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$""",
    re.DOTALL,
)
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}
# RE2 bounds each compiled regex, its program and its DFA cache, by this much memory: a
# pattern needing more is refused, and a DFA outgrowing its cache falls back to the NFA,
# slower but still linear in the length of the label value.
REGEX_MAX_MEM = 1 << 20


class Regex:
    """A regex with Alertmanager's semantics: Go's RE2 syntax, anchored as ``^(?:re)$``.

    RE2 matches in time linear in the text, so no pattern and no label value can make
    routing backtrack; what RE2 does not accept (backreferences, lookarounds, possessive
    quantifiers) is refused when the rules are loaded, as Alertmanager refuses it.
    """

    def __init__(self, pattern: str) -> None:
        options = re2.Options()
        options.max_mem = REGEX_MAX_MEM
        options.log_errors = False  # the error is raised to the caller, not printed
        options.never_capture = True  # only whether it matches is ever asked
        try:
            # The very string Alertmanager compiles, so even a pattern with an unbalanced
            # parenthesis such as "a)|(b" means what it means there.
            self._compiled: Any = re2.compile(f"^(?:{pattern})$", options)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else "invalid"
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise ValueError(str(reason)) from None
        except UnicodeEncodeError:
            raise ValueError("pattern is not valid Unicode text") from None

    def matches(self, text: str) -> bool:
        """Whether the whole text matches."""
        # Encoded here: bytes skip the wrapper's offset bookkeeping for str, and a lone
        # surrogate (from a command line, never from JSON) cannot fail the match.
        return self._compiled.search(text.encode("utf-8", "surrogatepass")) is not None


class MatchType(enum.StrEnum):
    """The four operators Alertmanager knows."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True)
class Matcher:
    """One parsed matcher; regexes are anchored at both ends like Alertmanager's."""

    name: str
    op: MatchType
    value: str
    _regex: Regex | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this matcher; a missing label equals ''."""
        actual = labels.get(self.name, "")
        if self.op is MatchType.EQUAL:
            return actual == self.value
        if self.op is MatchType.NOT_EQUAL:
            return actual != self.value
        assert self._regex is not None
        hit = self._regex.matches(actual)
        return hit if self.op is MatchType.REGEX else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op.value}"{escaped}"'


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        body = raw[1:-1]
        out: list[str] = []
        i = 0
        while i < len(body):
            ch = body[i]
            if ch == "\\":
                if i + 1 < len(body) and body[i + 1] in _ESCAPES:
                    out.append(_ESCAPES[body[i + 1]])
                    i += 2
                    continue
                # Like Alertmanager, any other backslash is literal: db\d+ stays a regex.
                if i + 1 >= len(body):
                    raise ValueError(f"value {raw} ends in an unfinished escape")
                out.append(ch)
                i += 1
                continue
            if ch == '"':
                raise ValueError(f"unescaped quote inside {raw}")
            out.append(ch)
            i += 1
        return "".join(out)
    if '"' in raw:
        raise ValueError(f"unbalanced quotes in value {raw}")
    return raw


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher string, raising ValueError with the reason when it is malformed."""
    if not isinstance(text, str):
        raise ValueError(f"matcher must be a string, got {type(text).__name__}")
    found = _MATCHER.match(text)
    if not found:
        raise ValueError(f'invalid matcher {text!r}: expected name="value", !=, =~ or !~')
    op = MatchType(found["op"])
    value = _unquote(found["value"])
    regex = None
    if op in (MatchType.REGEX, MatchType.NOT_REGEX):
        try:
            regex = Regex(value)
        except ValueError as exc:
            raise ValueError(
                f"invalid regex in matcher {text!r}: {exc} (RE2 syntax, as in Alertmanager: "
                "no backreferences, lookarounds or possessive quantifiers)"
            ) from None
    return Matcher(found["name"], op, value, regex)


def matches_all(matchers: list[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher accepts the label set."""
    return all(m.matches(labels) for m in matchers)
