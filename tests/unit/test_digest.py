"""The weekly digest: due times across time zones and DST, the week's figures, the text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from receiver.config import RulesConfig, parse_rules
from receiver.domain.digest import (
    LIST_LIMIT,
    SUMMARY_LIMIT,
    AckFigures,
    compute_digest,
    digest_zone,
    next_due,
    previous_due,
    render_digest,
    span_text,
    week_start,
)
from receiver.domain.model import Incident, Status

SEOUL = ZoneInfo("Asia/Seoul")


def rules(*rotations: tuple[str, str]) -> str:
    """A small rules file whose rotations are listed in the given order."""
    listed = "".join(
        f"  {name}:\n    timezone: {zone}\n    members: [kim]\n    shift: 1w\n"
        '    handoff: "2026-11-23T09:00"\n'
        for name, zone in rotations
    )
    return f"""\
defaults: {{severity: P3, category: api}}
severities:
  P0: {{respond_within: 1h, ack_timeout: 15m, jira_priority: Highest}}
  P1: {{respond_within: 4h, ack_timeout: 30m, jira_priority: High}}
  P3: {{respond_within: 3d, ack_timeout: 24h, jira_priority: Low, page: never}}
categories:
  functional: {{team: core}}
  api: {{team: core}}
  network: {{team: core}}
teams:
  core: {{rotation: {rotations[0][0]}, lead: kim, channel: "#core"}}
roles: {{tech_lead: kim, project_manager: kim}}
people:
  kim: {{name: Kim}}
rotations:
{listed}escalation:
  default: [{{after: 0m, notify: [oncall]}}]
channels: {{alerts: "#alerts", announce: "#announce", digest: "#digest"}}
jira: {{project: OPS}}
"""


@pytest.fixture(scope="module")
def cfg() -> RulesConfig:
    return parse_rules(rules(("seoul", "Asia/Seoul"), ("berlin", "Europe/Berlin")), "d.yaml")


def iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- when the digest is due -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "zone"),
    [
        ("Asia/Seoul", "Europe/Berlin", "Asia/Seoul"),
        ("Europe/Berlin", "Asia/Seoul", "Europe/Berlin"),
        ("America/New_York", "America/New_York", "America/New_York"),
    ],
)
def test_zone_is_the_first_rotation_s(first: str, second: str, zone: str) -> None:
    parsed = parse_rules(rules(("one", first), ("two", second)), "d.yaml")
    assert digest_zone(parsed) == ZoneInfo(zone)


@pytest.mark.parametrize(
    ("zone", "at", "previous", "following"),
    [
        # Thursday, in the zone and as a UTC instant
        ("Asia/Seoul", "2026-11-26T10:00+09:00",
         "2026-11-23T09:00+09:00", "2026-11-30T09:00+09:00"),
        ("Asia/Seoul", "2026-11-26T01:00+00:00",
         "2026-11-23T09:00+09:00", "2026-11-30T09:00+09:00"),
        # Sunday night, a second before, at, and after the due time
        ("Asia/Seoul", "2026-11-29T23:00+09:00",
         "2026-11-23T09:00+09:00", "2026-11-30T09:00+09:00"),
        ("Asia/Seoul", "2026-11-30T08:59:59+09:00",
         "2026-11-23T09:00+09:00", "2026-11-30T09:00+09:00"),
        ("Asia/Seoul", "2026-11-29T23:59:59+00:00",
         "2026-11-23T09:00+09:00", "2026-11-30T09:00+09:00"),
        ("Asia/Seoul", "2026-11-30T09:00+09:00",
         "2026-11-30T09:00+09:00", "2026-12-07T09:00+09:00"),
        ("Asia/Seoul", "2026-11-30T00:00+00:00",
         "2026-11-30T09:00+09:00", "2026-12-07T09:00+09:00"),
        ("Asia/Seoul", "2026-11-30T09:00:01+09:00",
         "2026-11-30T09:00+09:00", "2026-12-07T09:00+09:00"),
        # Monday early morning: still last week's
        ("Asia/Seoul", "2026-11-30T03:00+09:00",
         "2026-11-23T09:00+09:00", "2026-11-30T09:00+09:00"),
        # across the year
        ("Asia/Seoul", "2026-12-31T23:00+09:00",
         "2026-12-28T09:00+09:00", "2027-01-04T09:00+09:00"),
        # Berlin springs forward on Sunday 29 March 2026, falls back on 25 October 2026
        ("Europe/Berlin", "2026-03-27T12:00+01:00",
         "2026-03-23T09:00+01:00", "2026-03-30T09:00+02:00"),
        ("Europe/Berlin", "2026-03-29T03:30+02:00",
         "2026-03-23T09:00+01:00", "2026-03-30T09:00+02:00"),
        ("Europe/Berlin", "2026-10-24T12:00+02:00",
         "2026-10-19T09:00+02:00", "2026-10-26T09:00+01:00"),
        ("Europe/Berlin", "2026-10-26T08:30+01:00",
         "2026-10-19T09:00+02:00", "2026-10-26T09:00+01:00"),
        # New York falls back on Sunday 1 November 2026
        ("America/New_York", "2026-10-31T12:00-04:00",
         "2026-10-26T09:00-04:00", "2026-11-02T09:00-05:00"),
    ],
)  # fmt: skip
def test_due_times(zone: str, at: str, previous: str, following: str) -> None:
    tz = ZoneInfo(zone)
    before, after = previous_due(iso(at), tz), next_due(iso(at), tz)
    assert (before, after) == (iso(previous), iso(following))
    for due in (before, after):
        local = due.astimezone(tz)
        assert (local.weekday(), local.hour, local.minute, local.second) == (0, 9, 0, 0)


@pytest.mark.parametrize(
    ("zone", "due", "start", "hours"),
    [
        ("Asia/Seoul", "2026-11-30T09:00+09:00", "2026-11-23T09:00+09:00", 168),
        ("Europe/Berlin", "2026-03-30T09:00+02:00", "2026-03-23T09:00+01:00", 167),
        ("Europe/Berlin", "2026-10-26T09:00+01:00", "2026-10-19T09:00+02:00", 169),
    ],
)
def test_a_week_is_seven_wall_clock_days(zone: str, due: str, start: str, hours: int) -> None:
    since = week_start(iso(due), ZoneInfo(zone))
    assert since == iso(start)
    assert iso(due) - since == timedelta(hours=hours)


# --- the week's figures ---------------------------------------------------------------------

DUE = iso("2026-11-30T09:00+09:00")  # the week runs from 2026-11-23T00:00Z to 2026-11-30T00:00Z


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def incident(
    n: int = 1,
    *,
    severity: str = "P1",
    category: str = "api",
    opened: str = "2026-11-25T00:00",
    starts: str | None = None,
    acked: str | None = None,
    resolved: str | None = None,
    triggered: str | None = None,
    summary: str = "KIS token refresh failing",
) -> Incident:
    """An incident as the store returns it; times are UTC."""
    status = Status.RESOLVED if resolved else Status.ACKNOWLEDGED if acked else Status.TRIGGERED
    return Incident(
        id=n,
        key=f"k{n}",
        rule="r",
        severity=severity,
        category=category,
        team="core",
        status=status,
        summary=summary,
        group_labels={},
        opened_at=utc(opened),
        triggered_at=utc(triggered or opened),
        first_starts_at=utc(starts or opened),
        acknowledged_at=utc(acked) if acked else None,
        acknowledged_by="kim" if acked else None,
        resolved_at=utc(resolved) if resolved else None,
    )


NO = "no breach"
UNACKED = "not acknowledged"
M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("fields", "opened", "resolved", "still_open", "ack", "breach"),
    [
        pytest.param({"resolved": "2026-11-25T00:20"}, True, True, None, None, NO,
                     id="opened and resolved unacknowledged before the ack timeout"),
        pytest.param({"opened": "2026-11-23T00:00", "resolved": "2026-11-23T00:10"},
                     True, True, None, None, NO, id="opened as the week starts"),
        pytest.param({"opened": "2026-11-30T00:00"}, False, False, None, None, NO,
                     id="opened at the due time: next week's"),
        pytest.param({"opened": "2026-11-20T00:00", "acked": "2026-11-20T00:05",
                      "resolved": "2026-11-23T01:00"}, False, True, None, None, NO,
                     id="opened last week, resolved this week"),
        pytest.param({"opened": "2026-11-20T00:00", "acked": "2026-11-20T00:05"},
                     False, False, "acknowledged", None, NO, id="open since last week"),
        pytest.param({"opened": "2026-11-29T00:00", "acked": "2026-11-29T00:10",
                      "resolved": "2026-11-30T01:00"}, True, False, "acknowledged", 10 * M, NO,
                     id="resolved after the due time: open at it"),
        pytest.param({"starts": "2026-11-24T23:55", "acked": "2026-11-25T00:12"},
                     True, False, "acknowledged", 17 * M, NO,
                     id="alert-to-ack counts from the first alert's start"),
        pytest.param({"acked": "2026-11-25T01:00"}, True, False, "acknowledged", 60 * M, 30 * M,
                     id="acknowledged half an hour after the 30m timeout"),
        pytest.param({"acked": "2026-11-25T00:30"}, True, False, "acknowledged", 30 * M, NO,
                     id="acknowledged as the timeout passes"),
        pytest.param({}, True, False, "not acknowledged", None, UNACKED,
                     id="never acknowledged"),
        pytest.param({"resolved": "2026-11-25T02:00"}, True, True, None, None, UNACKED,
                     id="resolved unacknowledged after the timeout"),
        pytest.param({"opened": "2026-11-20T00:00", "triggered": "2026-11-25T00:00"},
                     False, False, "not acknowledged", None, UNACKED,
                     id="reopened this week: the timeout runs from the new trigger"),
        pytest.param({"severity": "P3", "opened": "2026-11-29T12:00"},
                     True, False, "not acknowledged", None, NO,
                     id="ack timeout passes after the due time: next week's breach"),
        pytest.param({"severity": "P3", "opened": "2026-11-21T12:00", "acked": "2026-11-23T12:00"},
                     False, False, "acknowledged", 48 * 60 * M, NO,
                     id="timeout passed last week: last week's breach"),
        pytest.param({"opened": "2026-11-29T23:00", "acked": "2026-11-30T00:10"},
                     True, False, "not acknowledged", None, UNACKED,
                     id="acknowledged after the due time: as the week ended, not yet"),
        pytest.param({"opened": "2026-11-25T00:00", "starts": "2026-11-25T00:01",
                      "acked": "2026-11-25T00:00:30"}, True, False, "acknowledged", 0 * M, NO,
                     id="an ack before the alert's start counts as zero"),
        pytest.param({"severity": "P9"}, True, False, "not acknowledged", None, NO,
                     id="a severity without a policy has no ack timeout"),
    ],
)  # fmt: skip
def test_one_incident_s_figures(
    cfg: RulesConfig,
    fields: dict[str, Any],
    opened: bool,
    resolved: bool,
    still_open: str | None,
    ack: timedelta | None,
    breach: str | timedelta,
) -> None:
    inc = incident(**fields)
    digest = compute_digest([inc], cfg, DUE)
    sev, cat = inc.severity, inc.category
    assert (digest.since, digest.until) == (utc("2026-11-23T00:00"), DUE)
    assert digest.opened_by_severity == ({sev: 1} if opened else {})
    assert digest.opened_by_category == ({cat: 1} if opened else {})
    assert digest.resolved_by_severity == ({sev: 1} if resolved else {})
    assert digest.resolved_by_category == ({cat: 1} if resolved else {})
    shown = [("acknowledged" if o.acknowledged else "not acknowledged") for o in digest.still_open]
    assert shown == ([still_open] if still_open else [])
    if still_open:
        assert digest.still_open[0].age == DUE - inc.opened_at
    assert digest.ack == ({sev: AckFigures(1, ack, ack)} if ack is not None else {})
    late = [UNACKED if b.late_by is None else b.late_by for b in digest.breaches]
    assert late == ([] if breach == NO else [breach])


def week() -> list[Incident]:
    """A busy week, listed out of order."""
    return [
        incident(1, severity="P3", category="network", opened="2026-11-24T00:00",
                 summary="Latency <high> & rising"),
        incident(2, opened="2026-11-25T00:00", acked="2026-11-25T00:10",
                 resolved="2026-11-25T01:00"),
        incident(3, severity="P0", category="functional", opened="2026-11-26T03:00",
                 starts="2026-11-26T02:55", acked="2026-11-26T03:20",
                 summary="Order API down"),
        incident(4, opened="2026-11-27T00:00", acked="2026-11-27T00:20",
                 resolved="2026-11-27T02:00"),
        incident(5, severity="P9", category="legacy", opened="2026-11-28T00:00",
                 resolved="2026-11-28T00:05"),
        incident(6, opened="2026-11-16T00:00", acked="2026-11-16T00:05",
                 summary="Left over from an earlier week"),
    ]  # fmt: skip


def test_a_week_s_figures_are_ordered_as_the_rules_list_them(cfg: RulesConfig) -> None:
    digest = compute_digest(week(), cfg, DUE)
    assert digest.opened_by_severity == {"P0": 1, "P1": 2, "P3": 1, "P9": 1}
    assert list(digest.opened_by_category) == ["functional", "api", "network", "legacy"]
    assert digest.opened_by_category == {"functional": 1, "api": 2, "network": 1, "legacy": 1}
    assert digest.resolved_by_severity == {"P1": 2, "P9": 1}
    assert digest.resolved_by_category == {"api": 2, "legacy": 1}
    assert [o.id for o in digest.still_open] == [6, 1, 3]  # oldest first
    assert digest.ack == {
        "P0": AckFigures(1, 25 * M, 25 * M),
        "P1": AckFigures(2, 15 * M, 20 * M),  # the median of two is their mean
    }
    assert [(b.id, b.late_by) for b in digest.breaches] == [(1, None), (3, 5 * M)]
    assert not digest.quiet


def test_median_of_an_odd_count_is_the_middle_one(cfg: RulesConfig) -> None:
    acks = [("00:10", 1), ("00:02", 2), ("00:45", 3)]
    incidents = [incident(n, acked=f"2026-11-25T{at}") for at, n in acks]
    assert compute_digest(incidents, cfg, DUE).ack == {"P1": AckFigures(3, 10 * M, 45 * M)}


def test_rendered_week(cfg: RulesConfig) -> None:
    assert render_digest(compute_digest(week(), cfg, DUE)) == "\n".join(
        [
            "*Weekly incident digest*: Mon 23 Nov 09:00 to Mon 30 Nov 2026 09:00 KST",
            "*Opened:* 5 (P0 1, P1 2, P3 1, P9 1); "
            "by category: functional 1, api 2, network 1, legacy 1",
            "*Resolved:* 3 (P1 2, P9 1); by category: api 2, legacy 1",
            "*Still open:* 3",
            "• #6 [P1][api] Left over from an earlier week: acknowledged, open 14d",
            "• #1 [P3][network] Latency &lt;high&gt; &amp; rising: not acknowledged, open 6d",
            "• #3 [P0][functional] Order API down: acknowledged, open 3d 21h",
            "*Alert-to-ack* (median / worst):",
            "• P0: 25m / 25m (1 incident)",
            "• P1: 15m / 20m (2 incidents)",
            "*Ack SLA breaches:* 2",
            "• #1 [P3][network] Latency &lt;high&gt; &amp; rising: "
            "not acknowledged within the 1d ack timeout",
            "• #3 [P0][functional] Order API down: acknowledged 5m after the 15m ack timeout",
        ]
    )


@pytest.mark.parametrize(
    "incidents",
    [
        pytest.param([], id="no incidents at all"),
        pytest.param(
            [incident(opened="2026-11-16T00:00", resolved="2026-11-16T00:10")],
            id="only incidents of earlier weeks",
        ),
    ],
)
def test_a_quiet_week_says_so(cfg: RulesConfig, incidents: list[Incident]) -> None:
    digest = compute_digest(incidents, cfg, DUE)
    assert digest.quiet
    assert render_digest(digest) == (
        "*Weekly incident digest*: Mon 23 Nov 09:00 to Mon 30 Nov 2026 09:00 KST\n"
        "A quiet week: no incidents opened, resolved, acknowledged or open."
    )


def test_a_week_with_only_old_open_incidents(cfg: RulesConfig) -> None:
    old = incident(opened="2026-11-16T00:00", acked="2026-11-16T00:05")
    assert render_digest(compute_digest([old], cfg, DUE)).splitlines()[1:] == [
        "*Opened:* none",
        "*Resolved:* none",
        "*Still open:* 1",
        "• #1 [P1][api] KIS token refresh failing: acknowledged, open 14d",
        "*Alert-to-ack:* no incidents acknowledged",
        "*Ack SLA breaches:* none",
    ]


def test_long_lists_and_summaries_are_cut(cfg: RulesConfig) -> None:
    many = [
        incident(n, opened="2026-11-16T00:00", acked="2026-11-16T00:05", summary="x\n" * 100)
        for n in range(1, LIST_LIMIT + 4)
    ]
    lines = render_digest(compute_digest(many, cfg, DUE)).splitlines()
    bullets = [line for line in lines if line.startswith("• ")]
    assert len(bullets) == LIST_LIMIT + 1
    assert bullets[-1] == "• … and 3 more"
    assert (
        bullets[0] == f"• #1 [P1][api] {'x ' * (SUMMARY_LIMIT // 2 - 1)}x…: acknowledged, open 14d"
    )


def test_the_zone_s_abbreviation_follows_daylight_saving() -> None:
    berlin = parse_rules(rules(("berlin", "Europe/Berlin")), "d.yaml")
    text = render_digest(compute_digest([], berlin, iso("2026-03-30T09:00+02:00")))
    assert text.startswith(
        "*Weekly incident digest*: Mon 23 Mar 09:00 to Mon 30 Mar 2026 09:00 CEST"
    )


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=-5), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=12, seconds=30), "12m 30s"),
        (timedelta(minutes=15), "15m"),
        (timedelta(hours=1, seconds=59), "1h"),
        (timedelta(hours=2, minutes=5), "2h 5m"),
        (timedelta(days=1), "1d"),
        (timedelta(days=3, hours=21, minutes=59), "3d 21h"),
        (timedelta(days=14, minutes=5), "14d"),
    ],
)
def test_span_text(span: timedelta, text: str) -> None:
    assert span_text(span) == text


def test_a_busy_week_fits_one_slack_section(cfg: RulesConfig) -> None:
    busy = [
        incident(n, category="functional", opened="2026-11-24T00:00", summary="y" * 500)
        for n in range(1000, 1100)
    ]
    text = render_digest(compute_digest(busy, cfg, DUE))
    assert "*Still open:* 100" in text and "*Ack SLA breaches:* 100" in text
    assert len(text) <= 3000
