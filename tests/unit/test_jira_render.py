"""JIRA issue content: limits JIRA enforces, and what an engineer needs to act."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from receiver.config import load_rules
from receiver.domain import jira_render
from receiver.domain.model import AlertRecord, AlertStatus, Incident, Status
from receiver.notify.jira import jql_string
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
        "*Respond by:* 2026-11-26T05:00:00+00:00 (within 4h)",
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
