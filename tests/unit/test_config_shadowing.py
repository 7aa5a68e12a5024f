"""Rules that can never match because an earlier rule catches everything they match."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from receiver.config.loader import parse_rules_with_warnings
from receiver.config.matchers import Matcher, matches_all, parse_matcher
from receiver.config.shadowing import covers, shadowed_rules

SHIPPED = Path(__file__).resolve().parents[2] / "routing_rules.yaml"

# (earlier rule's matchers, later rule's matchers, whether the earlier one catches all of
# the later one's alerts as far as the analysis can tell)
CASES = [
    # the same matchers, in any order, or fewer of them on the earlier rule
    (['alertname="X"'], ['alertname="X"'], True),
    (['alertname="X"'], ['alertname="X"', 'service="order-api"'], True),
    (['a="1"', 'b="2"'], ['b="2"', 'c="3"', 'a="1"'], True),
    # the earlier rule is the narrower one: the order is right
    (['alertname="X"', 'service="order-api"'], ['alertname="X"'], False),
    (['alertname="ServiceDown"', 'service=~"order-api|kis-gateway"'],
     ['alertname="ServiceDown"'], False),
    # a constraint on a label the later rule leaves free, even "missing" (= ""), or ".*",
    # which does not match a value with a newline
    (['alertname="X"', 'env="prod"'], ['alertname="X"'], False),
    (['env=""'], ['alertname="X"'], False),
    (['env=~".*"'], ['alertname="X"'], False),
    (['service="a"'], ['alertname="a"'], False),
    # an earlier regex that fully matches the later rule's value
    (['alertname=~"HighCPUUsage|DiskSpaceLow"'], ['alertname="DiskSpaceLow"'], True),
    (['alertname=~"High.*"'], ['alertname="HighCPUUsage"', 'instance="db1"'], True),
    (['alertname=~"High"'], ['alertname="HighCPUUsage"'], False),  # regexes are anchored
    (['alertname=~"HighCPUUsage|DiskSpaceLow"'], ['alertname="HighMemoryUsage"'], False),
    (['alertname=~"DiskSpaceLow"'], ['alertname=~"DiskSpaceLow"'], True),
    (['alertname=~"DiskSpaceLow|HighCPUUsage"'], ['alertname=~"DiskSpaceLow"'], True),
    (['alertname=~"a|b"'], ['alertname=~"a|b|c"'], False),
    (['alertname=~"a.*"'], ['alertname=~"ab.*"'], False),  # true, but not known: no warning
    # plain words as regexes are plain values
    (['env="prod"'], ['env=~"prod"'], True),
    (['env=~"prod"'], ['env="prod"'], True),
    (['env!~"prod"'], ['env!="prod"'], True),
    (['env=~""'], ['env=""'], True),
    (['env=""'], ['env=""'], True),
    # negative matchers
    (['env!="prod"'], ['env="staging"'], True),
    (['env!="prod"'], ['env="prod"'], False),
    (['env!="prod"'], ['env!="prod"'], True),
    (['env!="prod"'], ['env!="staging"'], False),
    (['env!="prod"'], ['env=~"stag.*|dev"'], True),
    (['env!="prod"'], ['env=~"pro.*"'], False),
    (['env!="prod"'], ['env!~"prod|production"'], True),
    (['env!="prod"'], ['env!~"production"'], False),
    (['env!="prod"'], ['alertname="X"'], False),
    (['env!~"prod.*"'], ['env="staging"'], True),
    (['env!~"prod.*"'], ['env="production"'], False),
    (['env!~"prod|production"'], ['env!~"prod|production"'], True),
    (['env=~"a|b"'], ['env!~"c"'], False),
    (['env=~"a|b"'], ['env!="c"'], False),
    # escapes compare as the values they stand for
    (['summary="say \\"hi\\""'], ['summary="say \\"hi\\""', 'x="1"'], True),
    # a later rule that matches nothing at all is caught, vacuously, and dead either way
    (['alertname="X"'], ['alertname="X"', 'alertname!="X"'], True),
]  # fmt: skip


def _parsed(texts: list[str]) -> list[Matcher]:
    return [parse_matcher(t) for t in texts]


@pytest.mark.parametrize(("earlier", "later", "expected"), CASES)
def test_covers(earlier: list[str], later: list[str], expected: bool) -> None:
    assert covers(_parsed(earlier), _parsed(later)) is expected


def _values(matchers: list[Matcher]) -> list[str]:
    """Label values worth trying: each matcher's value, near misses, empty, a newline."""
    out = {"", "zzz", "a\nb"}
    for m in matchers:
        out.update({m.value, m.value + "x", m.value[:-1], m.value + "\n"})
        for word in m.value.replace(".*", "").split("|"):
            out.update({word, word + "x"})
    return sorted(out)


@pytest.mark.parametrize(("earlier", "later", "expected"), CASES)
def test_covers_is_never_wrong_on_any_tried_label_set(
    earlier: list[str], later: list[str], expected: bool
) -> None:
    """Wherever ``covers`` claims a shadow, no label set matches the later rule and not
    the earlier one (tried over every combination of likely values)."""
    a, b = _parsed(earlier), _parsed(later)
    if not covers(a, b):
        return
    names = sorted({m.name for m in a + b})
    values = _values(a + b)
    for combo in itertools.product(values, repeat=len(names)):
        labels = dict(zip(names, combo, strict=True))
        assert not matches_all(b, labels) or matches_all(a, labels), labels


@pytest.mark.parametrize(("earlier", "later", "expected"), CASES)
def test_a_claimed_non_shadow_has_a_witness_where_one_is_easy_to_find(
    earlier: list[str], later: list[str], expected: bool
) -> None:
    """The cases marked False mostly are real non-shadows: a label set the later rule
    takes and the earlier one does not exists among the tried values (the known misses,
    true shadows the analysis cannot prove, are left out)."""
    a, b = _parsed(earlier), _parsed(later)
    if expected or (earlier, later) == (['alertname=~"a.*"'], ['alertname=~"ab.*"']):
        return
    names = sorted({m.name for m in a + b})
    values = _values(a + b)
    witnesses = (
        labels
        for combo in itertools.product(values, repeat=len(names))
        if matches_all(b, labels := dict(zip(names, combo, strict=True)))
        and not matches_all(a, labels)
    )
    assert next(witnesses, None) is not None


def _rules_with(extra: str, after: str = "high-response-time") -> str:
    """The shipped rules with ``extra`` (a rule's YAML lines) inserted after a rule."""
    text = SHIPPED.read_text(encoding="utf-8")
    start = text.index(f"  - name: {after}\n")
    end = text.find("\n  - name: ", start + 1) + 1 or len(text)  # or it is the last rule
    return text[:end] + extra + text[end:]


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line == needle)


def test_the_shipped_rules_have_no_dead_rule() -> None:
    cfg, warnings = parse_rules_with_warnings(SHIPPED.read_text(encoding="utf-8"))
    assert warnings == []
    assert shadowed_rules(cfg.rules) == []


def test_a_rule_after_a_broader_one_is_reported_with_both_lines() -> None:
    extra = (
        "  - name: order-api-slow\n"
        "    matchers: ['alertname=\"HighResponseTime\"', 'service=\"order-api\"']\n"
        "    severity: P1\n"
        "    category: performance\n"
    )
    text = _rules_with(extra)
    cfg, warnings = parse_rules_with_warnings(text, "rules.yaml")
    names = [r.name for r in cfg.rules]
    index, by = names.index("order-api-slow"), names.index("high-response-time")
    [warning] = warnings
    assert warning.path == f"rules[{index}]"
    assert warning.line == _line_of(text, "  - name: order-api-slow")
    earlier = _line_of(text, "  - name: high-response-time")
    assert str(warning) == (
        f"rules.yaml:{warning.line}: rules[{index}]: warning: rule 'order-api-slow' can never "
        f"match: the earlier rule 'high-response-time' (rules.yaml:{earlier}, rules[{by}]) "
        "matches every alert it matches, and the first match wins"
    )


def test_a_broad_rule_last_is_not_reported() -> None:
    extra = "  - name: all-high\n    matchers: ['alertname=~\"High.*\"']\n    severity: P3\n"
    _, warnings = parse_rules_with_warnings(_rules_with(extra, after="network-latency"))
    assert warnings == []


def test_a_broad_rule_early_is_reported_by_the_rules_it_hides() -> None:
    extra = "  - name: all-high\n    matchers: ['alertname=~\"High.*\"']\n    severity: P3\n"
    cfg, _ = parse_rules_with_warnings(_rules_with(extra))
    found = {(cfg.rules[s.index].name, cfg.rules[s.by].name) for s in shadowed_rules(cfg.rules)}
    # high-response-time comes before it; these two come after and start with "High".
    assert {("high-error-rate", "all-high"), ("network-latency", "all-high")} <= found
    assert {by for _, by in found} == {"all-high"}


def test_each_dead_rule_names_the_first_rule_that_catches_it() -> None:
    extra = (
        "  - name: cpu-again\n"
        "    matchers: ['alertname=\"HighCPUUsage\"']\n"
        "  - name: cpu-on-db1\n"
        "    matchers: ['alertname=\"HighCPUUsage\"', 'instance=\"db1\"']\n"
    )
    cfg, warnings = parse_rules_with_warnings(_rules_with(extra, after="resource-saturation"))
    names = [r.name for r in cfg.rules]
    found = [(cfg.rules[s.index].name, cfg.rules[s.by].name) for s in shadowed_rules(cfg.rules)]
    assert found == [
        ("cpu-again", "resource-saturation"),
        ("cpu-on-db1", "resource-saturation"),
    ]
    assert [w.path for w in warnings] == [
        f"rules[{names.index('cpu-again')}]",
        f"rules[{names.index('cpu-on-db1')}]",
    ]
