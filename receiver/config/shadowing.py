"""Rules that can never match: an earlier rule catches every alert a later one matches.

Routing takes the first rule whose matchers all accept an alert, so a rule B after a rule
A is dead when every label set B accepts is also accepted by A. That is undecidable in
general (regexes), so this is conservative: it says "shadowed" only when each of A's
matchers is implied by one of B's matchers on the same label. A missed case is
acceptable; a false warning is not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from receiver.config.matchers import Matcher, MatchType, parse_matcher
from receiver.config.models import HEARTBEAT_ALERTNAME, HEARTBEAT_LABEL, RuleConfig

# A regex of word characters only has no metacharacters: it matches exactly itself.
_LITERAL = re.compile(r"[A-Za-z0-9_]*")


@dataclass(frozen=True)
class Shadow:
    """Rule ``rules[index]`` can never match: ``rules[by]`` comes first and catches it all."""

    index: int
    by: int


def _plain(m: Matcher) -> Matcher:
    """``name=~"word"`` is ``name="word"`` (and ``!~`` is ``!=``): compare them alike."""
    if m.op is MatchType.REGEX and _LITERAL.fullmatch(m.value):
        return Matcher(m.name, MatchType.EQUAL, m.value)
    if m.op is MatchType.NOT_REGEX and _LITERAL.fullmatch(m.value):
        return Matcher(m.name, MatchType.NOT_EQUAL, m.value)
    return m


def implies(b: Matcher, a: Matcher) -> bool:
    """Whether every label set that ``b`` accepts is accepted by ``a`` (``b`` => ``a``).

    Only matchers on the same label are compared; False means "not known to", not "no".
    """
    if b.name != a.name:
        return False
    if b.op is MatchType.EQUAL:  # b admits exactly one value: ask a about it
        return a.matches({a.name: b.value})
    if _plain(b) == _plain(a):  # same operator and value (or pattern)
        return True
    if a.op is MatchType.NOT_EQUAL:  # a refuses one value: b must refuse it too
        return not b.matches({b.name: a.value})
    return False


def covers(earlier: Sequence[Matcher], later: Sequence[Matcher]) -> bool:
    """Whether a rule with matchers ``earlier`` accepts every alert ``later`` accepts."""
    b = [_plain(m) for m in later]
    return all(any(implies(m, _plain(a)) for m in b) for a in earlier)


def shadowed_rules(rules: Sequence[RuleConfig]) -> list[Shadow]:
    """Every rule that can never match, with the first earlier rule that catches it all."""
    found: list[Shadow] = []
    for i, rule in enumerate(rules):
        for j in range(i):
            if covers(rules[j].matchers, rule.matchers):
                found.append(Shadow(i, j))
                break
    return found


def swallows(matchers: Sequence[str], heartbeat: str) -> str | None:
    """Why a heartbeat's matchers would take what must never be a sign of life, or None:
    an alert with no labels (every alert of some kind would be one), or the receiver's own
    alert of this heartbeat's silence (the silence would end itself)."""
    parsed = [parse_matcher(m) for m in matchers]
    if parsed and all(m.matches({}) for m in parsed):
        return 'they match an alert without labels: add one that names it, like alertname="…"'
    own = {"alertname": HEARTBEAT_ALERTNAME, HEARTBEAT_LABEL: heartbeat}
    if parsed and all(m.matches(own) for m in parsed):
        return f"they match the receiver's own {HEARTBEAT_ALERTNAME} alert"
    return None
