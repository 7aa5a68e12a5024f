"""JIRA issue content: limits JIRA enforces, and what an engineer needs to act."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from receiver.config import load_rules
from receiver.domain import jira_render, postmortem_render
from receiver.domain.model import AlertRecord, AlertStatus, Event, Incident, Status
from receiver.notify.jira import jql_string
from tests.fuzzing import jira_problems
from tests.helpers import SHIPPED_RULES

CFG = load_rules(SHIPPED_RULES)
T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def incident(**kw: object) -> Incident:
    base = Incident(
        id=42,
        key='kis-token-refresh-failure{alertname="KISTokenRefreshFailed",service="kis-gateway"}',
        rule="kis-token-refresh-failure",
        severity="P1",
        category="api",
        team="backend",
        status=Status.TRIGGERED,
        summary="KIS token refresh failing — kis-gateway",
        group_labels={"alertname": "KISTokenRefreshFailed", "service": "kis-gateway"},
        opened_at=T0,
        triggered_at=T0,
        first_starts_at=T0,
        alertmanager_url="http://alertmanager.example:9093",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def alert(n: int, **labels: str) -> AlertRecord:
    return AlertRecord(
        fingerprint=f"fp{n}",
        status=AlertStatus.FIRING,
        severity="P1",
        labels={"alertname": "KISTokenRefreshFailed", "service": "kis-gateway", **labels},
        annotations={
            "summary": "KIS token refresh failing",
            "description": "3 refreshes failed in 5m",
            "runbook_url": "https://runbooks.example/kis-token",
            "expected": "refresh succeeds",
            "actual": "HTTP 500 from KIS",
        },
        starts_at=T0,
        ends_at=None,
        generator_url="http://prometheus.example:9090/graph?g0.expr=x",
        first_seen=T0,
        last_seen=T0,
    )


def test_fields_of_a_p1_issue() -> None:
    fields = jira_render.issue_fields(
        incident(), [alert(1, env="beta")], CFG, 1, {"name": "kim"}, "0a1b2c3d4e5f"
    )
    assert fields["summary"] == "[P1][api] KIS token refresh failing — kis-gateway"
    assert fields["project"] == {"key": "OPS"}
    assert fields["issuetype"] == {"name": "Incident"}
    assert fields["priority"] == {"name": "High"}
    assert fields["components"] == [{"name": "backend"}]
    assert fields["assignee"] == {"name": "kim"}
    assert fields["labels"][0] == "receiver-incident-0a1b2c3d4e5f-42"
    assert {"severity-p1", "category-api", "team-backend"} <= set(fields["labels"])
    text = fields["description"]
    for needle in (
        "*Respond by:* 2026-11-26 14:00 KST (within 4h)",  # the team's zone, to the minute
        "*First alert:* 2026-11-26 10:00 KST",
        "owning team *backend*",
        "|env|beta|",
        "3 refreshes failed in 5m",
        "https://runbooks.example/kis-token",
        "*Expected:* refresh succeeds",
        "*Actual:* HTTP 500 from KIS",
        "[Prometheus graph|http://prometheus.example:9090/graph?g0.expr=x]",
        "[Alertmanager|http://alertmanager.example:9093]",
    ):
        assert needle in text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("line one\nline two", "[P1][api] line one line two"),
        ("tabs\tand\r\nreturns", "[P1][api] tabs and returns"),
        ("x" * 400, "[P1][api] " + "x" * 244 + "…"),
    ],
)
def test_summary_is_one_line_of_at_most_255(raw: str, expected: str) -> None:
    got = jira_render.summary(incident(summary=raw))
    assert got == expected and len(got) <= 255 and "\n" not in got


def test_labels_have_no_spaces_and_fit() -> None:
    got = jira_render.labels(incident(rule="a rule", team="t" * 300), "0a1b2c3d4e5f")
    assert all(" " not in lab and 0 < len(lab) <= 255 for lab in got)
    assert "rule-a-rule" in got


def test_description_of_a_storm_fits_and_says_what_it_left_out() -> None:
    alerts = [alert(n, pod=f"pod-{n}-" + "z" * 200) for n in range(2000)]
    text = jira_render.description(incident(), alerts, CFG, 5000)
    assert len(text) <= jira_render.TEXT_MAX
    listed = text.count("|firing|")
    assert 0 < listed < 2000
    assert f"{5000 - listed} more alert(s) not listed here" in text


def test_alert_text_cannot_inject_markup() -> None:
    hostile = alert(1)
    hostile.annotations["description"] = "[click|http://evil.example] *bold* {code}"
    text = jira_render.description(incident(), [hostile], CFG, 1)
    assert "\\[click\\|http://evil.example\\] \\*bold\\* \\{code\\}" in text


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("receiver-incident-1", '"receiver-incident-1"'),
        ('x" OR project = "SEC', '"x\\" OR project = \\"SEC"'),
        ("back\\slash", '"back\\\\slash"'),
    ],
)
def test_jql_literals_are_quoted_and_escaped(value: str, literal: str) -> None:
    assert jql_string(value) == literal


COMMENTS = [
    (
        "incident.alerts_joined",
        {"events": [{"event": "alerts_joined", "count": 3, "at": "t1"},
                    {"event": "alerts_joined", "count": 2, "at": "t2"}]},
        "5 more alert(s) joined this incident, last at t2.",
    ),
    (
        "incident.severity_raised",
        {"events": [{"event": "severity_raised", "from": "P2", "to": "P0", "at": "t"}]},
        "Severity raised from P2 to P0 at t; priority set to Highest.",
    ),
    (
        "incident.acknowledged",
        {"incident": {"acknowledged_by": "kim"}, "events": [{"event": "acknowledged", "at": "t"}]},
        "Acknowledged by Kim Minjun at t. Escalation stopped.",
    ),
    (
        "incident.escalated",
        {"events": [{"event": "escalated", "step": 1, "people": ["kim"], "at": "t"}]},
        "Escalated (step 1) at t to Kim Minjun.",
    ),
    (
        "incident.resolved",
        {"incident": {"resolved_by": None}, "events": [{"event": "resolved", "at": "t"}]},
        "Resolved — all alerts resolved at t.",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "payload", "text"), COMMENTS, ids=[c[0] for c in COMMENTS])
def test_comments(kind: str, payload: dict[str, object], text: str) -> None:
    assert jira_render.comment(kind, payload, CFG) == text


WIKI = [
    ("[x|javascript:alert(1)]", "\\[x\\|javascript:alert(1)\\]"),
    ("[click|http://evil.example]", "\\[click\\|http://evil.example\\]"),
    ("{code}x{code} {panel}", "\\{code\\}x\\{code\\} \\{panel\\}"),
    ("*bold* !image.png! ^sup^ ~sub~", "\\*bold\\* \\!image.png\\! \\^sup\\^ \\~sub\\~"),
    ("-struck- _em_ +ins+ ??cite??", "\\-struck\\- \\_em\\_ \\+ins\\+ \\?\\?cite\\?\\?"),
    ("kis-gateway http_requests_total a+b", "kis-gateway http_requests_total a+b"),
    ("back\\slash \\\\ end\\", "back&#92;slash &#92;&#92; end&#92;"),
    ("a|b", "a\\|b"),
    ("one\nh1. two\r\n* three", "one h1. two \\* three"),
    ("file:///etc/passwd", "file&#58;///etc/passwd"),
    ("ftp://x mailto:kim@example.com", "ftp&#58;//x mailto&#58;kim@example.com"),
    ("see http://ok.example/a", "see http://ok.example/a"),
]


@pytest.mark.parametrize(("raw", "escaped"), WIKI, ids=[raw for raw, _ in WIKI])
def test_wiki_shows_text_as_written_on_one_line(raw: str, escaped: str) -> None:
    assert jira_render.wiki(raw) == escaped
    assert jira_problems(escaped) == []


LINES = [
    ("h1. Heading", "&#104;1. Heading"),
    ("H6. shout", "&#72;6. shout"),
    ("bq. quoted", "&#98;q. quoted"),
    ("* item", "\\* item"),
    ("** nested", "\\*\\* nested"),
    ("# step", "&#35; step"),
    ("- dash", "&#45; dash"),
    ("----", "&#45;\\-\\-\\-"),
    ("|a|b|", "\\|a\\|b\\|"),
    ("||head||", "\\|\\|head\\|\\|"),
    ("{panel}", "\\{panel\\}"),
    ("   h2. indented", "&#104;2. indented"),
    ("plain words", "plain words"),
]


@pytest.mark.parametrize(("line", "escaped"), LINES, ids=[line for line, _ in LINES])
def test_no_line_of_a_value_starts_markup(line: str, escaped: str) -> None:
    assert jira_render.wiki_lines(f"first\n{line}") == f"first\n{escaped}"
    assert jira_problems(f"first\n{escaped}") == []


LINKS = [
    ("https://runbooks.example/kis", "[L|https://runbooks.example/kis]"),
    ("HTTP://ok.example", "[L|HTTP://ok.example]"),
    (" http://ok.example/a b ", "[L|http://ok.example/a%20b]"),
    ("https://evil.example/a|b]c[d{e}", "[L|https://evil.example/a%7Cb%5Dc%5Bd%7Be%7D]"),
    ("https://x.example/?q=%41&a=1#f", "[L|https://x.example/?q=%41&a=1#f]"),
    ("https://x.example/é", "[L|https://x.example/%C3%A9]"),
    ("javascript:alert(3)", "L: javascript:alert(3)"),
    ("data:text/html,<b>x</b>", "L: data:text/html,<b>x</b>"),
    ("file:///etc/passwd", "L: file&#58;///etc/passwd"),
    ("https:javascript:x", "L: https:javascript:x"),
    ("http://", "L: http://"),
    ("[x|javascript:1]", "L: \\[x\\|javascript:1\\]"),
    ("", "L: not given"),
    (None, "L: not given"),
]


@pytest.mark.parametrize(("url", "shown"), LINKS, ids=[str(url) for url, _ in LINKS])
def test_only_http_addresses_become_links(url: str | None, shown: str) -> None:
    assert jira_render.link(url, "L") == shown
    assert jira_problems(shown) == []


def hostile_alert() -> AlertRecord:
    bad = alert(1, env="beta\nh1. pwned", instance="db|1]\n* x", pod="p\\")
    bad.annotations.update(
        summary="[Open runbook|https://evil.example/phish] {code}",
        description="ok\nh1. Heading\n* item\n# step\n|a|b|\nbq. q\n{panel}x\n----\nend\\",
        runbook_url="javascript:alert(2)",
        expected="x\n|y|",
    )
    return replace(bad, generator_url="https://g.example/x|y] [a|javascript:alert(4)")


def test_a_hostile_alert_makes_a_well_formed_description() -> None:
    hostile = incident(alertmanager_url="javascript:alert(3)", summary="line\nh1. x")
    text = jira_render.description(hostile, [hostile_alert(), alert(2)], CFG, 2)
    assert jira_problems(text) == []
    assert "*Runbook:* javascript:alert(2)" in text
    assert "* Alertmanager: javascript:alert(3)" in text
    assert "* [Prometheus graph|https://g.example/x%7Cy%5D%20%5Ba%7Cjavascript:alert(4)]" in text
    assert "|env|beta h1. pwned|" in text
    assert "\n&#104;1. Heading\n\\* item\n&#35; step\n" in text


@pytest.mark.parametrize("filler", ["\\", "x\\", "\\|"])
def test_a_description_cut_to_fit_ends_on_no_half_escape(filler: str) -> None:
    long = alert(1, **{k: filler * 2000 for k in jira_render.ENVIRONMENT_LABELS})
    long.annotations["description"] = filler * 40_000
    text = jira_render.description(incident(), [long], CFG, 1)
    assert len(text) <= jira_render.TEXT_MAX and text.endswith("…")
    assert jira_problems(text) == []
    rest = text.removesuffix("…").replace("&#92;", "")
    assert not rest.endswith("\\") and not re.search(r"&#?\d*$", rest)


def test_comments_and_the_postmortem_escape_names_and_events() -> None:
    people = {"kim": CFG.people["kim"].model_copy(update={"name": "Kim\nh1. [x|file:///a]"})}
    cfg = CFG.model_copy(update={"people": {**CFG.people, **people}})
    events = [{"event": "escalated", "step": 1, "people": ["kim", "*who*"], "at": "t"}]
    escalated = jira_render.comment("incident.escalated", {"events": events}, cfg)
    assert escalated == "Escalated (step 1) at t to Kim h1. \\[x\\|file&#58;///a\\], \\*who\\*."
    ack = {"incident": {"acknowledged_by": "{panel}"}, "events": [{"at": "t"}]}
    assert jira_render.comment("incident.acknowledged", ack, cfg).startswith("Acknowledged by \\{")
    timeline = [
        Event("acknowledged", T0, {"by": "kim"}),
        Event("resolved", T0, {"reason": "x\n|y|[z|javascript:1]"}),
    ]
    text = postmortem_render.postmortem_description(
        incident(summary="{code}"), timeline, cfg, "OPS-1"
    )
    assert jira_problems(text) == []
    assert "Acknowledged by Kim h1. \\[x\\|file&#58;///a\\]|" in text


def test_comment_times_are_in_the_teams_zone_to_the_minute() -> None:
    payload = {
        "incident": {"team": "backend", "acknowledged_by": "kim"},
        "events": [{"event": "acknowledged", "at": "2026-11-26T01:07:42.123456+00:00"}],
    }
    text = jira_render.comment("incident.acknowledged", payload, CFG)
    assert "at 2026-11-26 10:07 KST." in text and "42.123456" not in text
