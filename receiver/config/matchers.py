"""Alertmanager label matchers: ``name="v"``, ``name!="v"``, ``name=~"re"``, ``name!~"re"``."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_MATCHER = re.compile(
    r"""^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$""",
    re.DOTALL,
)
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}


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
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this matcher; a missing label equals ''."""
        actual = labels.get(self.name, "")
        if self.op is MatchType.EQUAL:
            return actual == self.value
        if self.op is MatchType.NOT_EQUAL:
            return actual != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(actual) is not None
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
            regex = re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex in matcher {text!r}: {exc}") from None
    return Matcher(found["name"], op, value, regex)


def matches_all(matchers: list[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher accepts the label set."""
    return all(m.matches(labels) for m in matchers)
