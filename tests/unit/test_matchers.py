"""Alertmanager-style label matchers: parsing and matching."""

from __future__ import annotations

import pytest

from receiver.config.matchers import Matcher, MatchType, matches_all, parse_matcher


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('alertname="ServiceDown"', "alertname", MatchType.EQUAL, "ServiceDown"),
        ('alertname!="ServiceDown"', "alertname", MatchType.NOT_EQUAL, "ServiceDown"),
        ('service=~"order-.*"', "service", MatchType.REGEX, "order-.*"),
        ('service!~"order-.*"', "service", MatchType.NOT_REGEX, "order-.*"),
        ('  env = "prod"  ', "env", MatchType.EQUAL, "prod"),
        ("env=prod", "env", MatchType.EQUAL, "prod"),
        ("env!=prod", "env", MatchType.NOT_EQUAL, "prod"),
        ("env=~prod|stage", "env", MatchType.REGEX, "prod|stage"),
        ("env!~dev.*", "env", MatchType.NOT_REGEX, "dev.*"),
        ("env=", "env", MatchType.EQUAL, ""),
        ('env=""', "env", MatchType.EQUAL, ""),
        ("_private=x", "_private", MatchType.EQUAL, "x"),
        ('msg="say \\"hi\\""', "msg", MatchType.EQUAL, 'say "hi"'),
        ('path="C:\\\\temp"', "path", MatchType.EQUAL, "C:\\temp"),
        ('multi="a\\nb"', "multi", MatchType.EQUAL, "a\nb"),
        ('url="a=b,c"', "url", MatchType.EQUAL, "a=b,c"),
    ],
)
def test_parse_matcher(text: str, name: str, op: MatchType, value: str) -> None:
    matcher = parse_matcher(text)
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        # equality
        ('alertname="ServiceDown"', {"alertname": "ServiceDown"}, True),
        ('alertname="ServiceDown"', {"alertname": "ServiceDownX"}, False),
        ('alertname="ServiceDown"', {"alertname": "servicedown"}, False),
        ('alertname="ServiceDown"', {}, False),
        # inequality
        ('alertname!="ServiceDown"', {"alertname": "ServiceDown"}, False),
        ('alertname!="ServiceDown"', {"alertname": "Other"}, True),
        ('alertname!="ServiceDown"', {}, True),
        # regex, anchored at both ends
        ('a=~"b"', {"a": "b"}, True),
        ('a=~"b"', {"a": "abc"}, False),
        ('a=~"b"', {"a": "ab"}, False),
        ('a=~"b"', {"a": "bc"}, False),
        ('a=~"b.*"', {"a": "bc"}, True),
        ('a=~"b.*"', {"a": "abc"}, False),
        ('a=~".*c"', {"a": "abc"}, True),
        ('a=~".*c"', {"a": "abcd"}, False),
        ('a=~"b|bc"', {"a": "bc"}, True),
        ('a=~"x|y"', {"a": "xy"}, False),
        ('a=~"order-api|kis-gateway"', {"a": "order-api-v2"}, False),
        ('a=~"order-api|kis-gateway"', {"a": "kis-gateway"}, True),
        # negative regex, anchored too
        ('a!~"b"', {"a": "abc"}, True),
        ('a!~"b"', {"a": "b"}, False),
        ('a!~"b.*"', {"a": "abc"}, True),
        ('a!~"b.*"', {"a": "bc"}, False),
        # a missing label equals the empty string
        ('foo=""', {}, True),
        ('foo=""', {"foo": "x"}, False),
        ('foo!=""', {}, False),
        ('foo!=""', {"foo": "x"}, True),
        ('foo=~".*"', {}, True),
        ('foo=~".+"', {}, False),
        ('foo!~".+"', {}, True),
        ('foo!~".*"', {}, False),
        ('foo="bar"', {"other": "bar"}, False),
        # escapes survive into the compared value
        ('msg="say \\"hi\\""', {"msg": 'say "hi"'}, True),
        ('msg="say \\"hi\\""', {"msg": "say \\hi\\"}, False),
        ('path="C:\\\\temp"', {"path": "C:\\temp"}, True),
        ('path="C:\\\\temp"', {"path": "C:\\\\temp"}, False),
        # unquoted values
        ("env=prod", {"env": "prod"}, True),
        ("env=prod", {"env": "production"}, False),
        ("env=~prod|stage", {"env": "stage"}, True),
    ],
)
def test_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize(
    "text",
    [
        "alertname",  # no operator
        'alertname"ServiceDown"',  # no operator
        "",  # nothing at all
        '=~"x"',  # no label name
        'a=~"("',  # bad regex
        'a=~"[a-"',  # bad regex
        'a!~"*"',  # bad regex
        '1a="x"',  # label name starts with a digit
        'a-b="x"',  # label name with a dash
        'a="x',  # unbalanced quote
        'a=x"',  # unbalanced quote
        'a="',  # a lone quote
        'a="x"y"',  # unescaped quote inside
        'a="x\\"',  # the closing quote is escaped
    ],
)
def test_malformed_matcher_raises(text: str) -> None:
    with pytest.raises(ValueError):
        parse_matcher(text)


@pytest.mark.parametrize("value", [None, 3, ["a=b"]])
def test_non_string_matcher_raises(value: object) -> None:
    with pytest.raises(ValueError):
        parse_matcher(value)  # type: ignore[arg-type]


def test_spurious_backslash_is_literal_like_alertmanager() -> None:
    # Alertmanager's matcher parser keeps a backslash that is not followed by \, " or n
    # as a literal backslash, so the common regex `\d` works unescaped.
    matcher = parse_matcher('instance=~"db\\d+"')
    assert matcher.value == "db\\d+"
    assert matcher.matches({"instance": "db12"}) is True
    assert matcher.matches({"instance": "dbx"}) is False


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ('a="b"', 'a="b"'),
        ("a=b", 'a="b"'),
        ('a!~"x.*"', 'a!~"x.*"'),
        ('msg="say \\"hi\\""', 'msg="say \\"hi\\""'),
        ('path="C:\\\\temp"', 'path="C:\\\\temp"'),
        ('m="a\\nb"', 'm="a\\nb"'),
    ],
)
def test_str_round_trips(text: str, rendered: str) -> None:
    matcher = parse_matcher(text)
    assert str(matcher) == rendered
    assert parse_matcher(str(matcher)) == matcher


def test_equal_matchers_compare_equal() -> None:
    assert parse_matcher('a=~"b"') == parse_matcher('a =~ "b"')
    assert parse_matcher('a=~"b"') != parse_matcher('a!~"b"')
    assert isinstance(parse_matcher('a="b"'), Matcher)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"alertname": "ServiceDown", "service": "order-api"}, True),
        ({"alertname": "ServiceDown", "service": "foo"}, False),
        ({"alertname": "Other", "service": "order-api"}, False),
        ({"service": "order-api"}, False),
    ],
)
def test_matches_all(labels: dict[str, str], expected: bool) -> None:
    matchers = [parse_matcher('alertname="ServiceDown"'), parse_matcher('service=~"order-.*"')]
    assert matches_all(matchers, labels) is expected


def test_matches_all_empty_list_matches() -> None:
    assert matches_all([], {"a": "b"}) is True


@pytest.mark.parametrize(
    "pattern",
    [
        "(a)\\\\1",  # backreference
        "a(?=b)",  # lookahead
        "a(?!b)",  # negative lookahead
        "(?<=a)b",  # lookbehind
        "(?<!a)b",  # negative lookbehind
        "a++",  # possessive quantifier
        "(?>a+)",  # atomic group
        "a{1001}",  # repetition beyond RE2's (and Go's) limit of 1000
    ],
)
def test_what_re2_does_not_accept_is_refused(pattern: str) -> None:
    # Alertmanager compiles matchers with Go's RE2: these would never load there.
    with pytest.raises(ValueError, match="invalid regex"):
        parse_matcher(f'alertname=~"{pattern}"')


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('a=~"\\\\pL+"', {"a": "héllo"}, True),  # Unicode classes, as in Go
        ('a=~"[[:alpha:]]+"', {"a": "abc"}, True),  # POSIX classes, as in Go
        ('a=~"[[:alpha:]]+"', {"a": "ab1"}, False),
        ('a=~"(?P<x>b)c"', {"a": "bc"}, True),
        ('a=~"(?i)order"', {"a": "ORDER"}, True),
        ('a=~"b"', {"a": "b\n"}, False),  # $ is the end of the text, not before a newline
        ('a=~"b.c"', {"a": "b\nc"}, False),  # . does not match a newline
    ],
)
def test_go_regex_semantics(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize("length", [50, 1_000_000])
def test_catastrophic_pattern_matches_in_linear_time(length: int) -> None:
    # A backtracking engine takes 2^n steps on n a's and a b here; RE2 takes n.
    matcher = parse_matcher('alertname=~"(a+)+$"')
    negated = parse_matcher('alertname!~"(a+)+$"')
    value = "a" * length + "b"
    assert matcher.matches({"alertname": value}) is False
    assert negated.matches({"alertname": value}) is True
    assert matcher.matches({"alertname": "a" * length}) is True
