"""The on-call schedule a console shows: periods over a span, agreeing with ``oncall_at``."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.cli import main
from receiver.config import RulesConfig, parse_rules
from receiver.domain.oncall import OnCall, in_business_hours, oncall_at, responder, rotations_now
from receiver.domain.schedule import MAX_SHIFTS, Shift, schedule

RULES = """\
defaults: {severity: P3, category: general}
severities:
  P3: {respond_within: 3d, ack_timeout: 24h, jira_priority: Low, page: never}
categories:
  general: {team: core}
teams:
  core: {rotation: weekly, lead: kim, channel: "#core"}
roles: {tech_lead: kim, project_manager: choi}
people:
  kim: {name: Kim}
  choi: {name: Choi}
  jung: {name: Jung}
  han: {name: Han}
  oh: {name: Oh}
  anna: {name: Anna}
  ben: {name: Ben}
rotations:
  weekly:
    timezone: Asia/Seoul
    members: [kim, choi, jung]
    shift: 1w
    handoff: "2026-11-23T09:00"
  covered:
    timezone: Asia/Seoul
    members: [kim, choi, jung]
    shift: 1w
    handoff: "2026-11-23T09:00"
    overrides:
      - {person: jung, from: "2026-11-25T18:00", to: "2026-11-26T09:00"}
      - {person: kim, from: "2026-12-05T00:00", to: "2026-12-08T12:00"}
  overlapping:  # the first override listed wins where two overlap, as in oncall_at
    timezone: Asia/Seoul
    members: [kim, choi]
    shift: 1w
    handoff: "2026-11-23T09:00"
    overrides:
      - {person: kim, from: "2026-12-02T00:00", to: "2026-12-03T00:00"}
      - {person: jung, from: "2026-12-01T00:00", to: "2026-12-05T00:00"}
      - {person: kim, from: "2026-12-10T00:00", to: "2026-12-11T00:00"}
  office:
    timezone: Asia/Seoul
    members: [han, oh]
    shift: 1w
    handoff: "2026-11-23T09:00"
    hours: business
    fallback: weekly
    holidays: KR
  lonely:
    timezone: Asia/Seoul
    members: [oh]
    shift: 1d
    handoff: "2026-11-23T09:00"
    hours: business
  newyork:
    timezone: America/New_York
    members: [anna, ben]
    shift: 1d
    handoff: "2026-10-01T09:00"
  berlin:
    timezone: Europe/Berlin
    members: [anna, ben]
    shift: 1d
    handoff: "2026-10-01T09:00"
    hours: business
    fallback: newyork
  folded:  # hands off at 01:30, a wall time that 1 November 2026 has twice in New York
    timezone: America/New_York
    members: [anna, ben]
    shift: 1d
    handoff: "2026-10-01T01:30"
    overrides:
      - {person: kim, from: "2026-11-01T01:15", to: "2026-11-01T01:45"}
  gapped:  # hands off at 02:30, a wall time that 8 March 2026 skips in New York
    timezone: America/New_York
    members: [anna, ben]
    shift: 1d
    handoff: "2026-03-01T02:30"
escalation:
  default: [{after: 0m, notify: [oncall]}]
channels: {alerts: "#a", announce: "#b", digest: "#a"}
jira: {project: OPS}
"""


@pytest.fixture(scope="module")
def cfg() -> RulesConfig:
    return parse_rules(RULES, "schedule.yaml")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


Row = tuple[str, str, str, str]  # person, starts, ends, flags ("" / "override" / "off")


def rows(shifts: list[Shift]) -> list[Row]:
    flags = {(False, False): "", (True, False): "override", (False, True): "off"}
    return [
        (s.person, s.starts.isoformat(), s.ends.isoformat(), flags[s.override, s.off_hours])
        for s in shifts
    ]


CASES: list[tuple[str, str, str, str, list[Row]]] = [
    ("a weekly handoff", "weekly", "2026-11-28T00:00:00+09:00", "2026-12-02T00:00:00+09:00", [
        ("kim", "2026-11-28T00:00:00+09:00", "2026-11-30T09:00:00+09:00", ""),
        ("choi", "2026-11-30T09:00:00+09:00", "2026-12-02T00:00:00+09:00", ""),
    ]),
    # the span given in another zone: the periods are in the rotation's
    ("asked in UTC", "weekly", "2026-11-29T15:00:00+00:00", "2026-11-30T03:00:00+00:00", [
        ("kim", "2026-11-30T00:00:00+09:00", "2026-11-30T09:00:00+09:00", ""),
        ("choi", "2026-11-30T09:00:00+09:00", "2026-11-30T12:00:00+09:00", ""),
    ]),
    ("an override inside a shift", "covered", "2026-11-25T00:00:00+09:00",
     "2026-11-27T00:00:00+09:00", [
        ("kim", "2026-11-25T00:00:00+09:00", "2026-11-25T18:00:00+09:00", ""),
        ("jung", "2026-11-25T18:00:00+09:00", "2026-11-26T09:00:00+09:00", "override"),
        ("kim", "2026-11-26T09:00:00+09:00", "2026-11-27T00:00:00+09:00", ""),
    ]),
    # kim covers across choi's handoff to jung on 7 December, and her own shift is marked
    ("an override over a handoff", "covered", "2026-12-04T00:00:00+09:00",
     "2026-12-10T00:00:00+09:00", [
        ("choi", "2026-12-04T00:00:00+09:00", "2026-12-05T00:00:00+09:00", ""),
        ("kim", "2026-12-05T00:00:00+09:00", "2026-12-08T12:00:00+09:00", "override"),
        ("jung", "2026-12-08T12:00:00+09:00", "2026-12-10T00:00:00+09:00", ""),
    ]),
    ("overlapping overrides", "overlapping", "2026-11-30T12:00:00+09:00",
     "2026-12-06T00:00:00+09:00", [
        ("choi", "2026-11-30T12:00:00+09:00", "2026-12-01T00:00:00+09:00", ""),
        ("jung", "2026-12-01T00:00:00+09:00", "2026-12-02T00:00:00+09:00", "override"),
        ("kim", "2026-12-02T00:00:00+09:00", "2026-12-03T00:00:00+09:00", "override"),
        ("jung", "2026-12-03T00:00:00+09:00", "2026-12-05T00:00:00+09:00", "override"),
        ("choi", "2026-12-05T00:00:00+09:00", "2026-12-06T00:00:00+09:00", ""),
    ]),
    # an override by the person whose shift it is anyway still shows as one
    ("an override of the shift's own", "overlapping", "2026-12-09T00:00:00+09:00",
     "2026-12-12T00:00:00+09:00", [
        ("kim", "2026-12-09T00:00:00+09:00", "2026-12-10T00:00:00+09:00", ""),
        ("kim", "2026-12-10T00:00:00+09:00", "2026-12-11T00:00:00+09:00", "override"),
        ("kim", "2026-12-11T00:00:00+09:00", "2026-12-12T00:00:00+09:00", ""),
    ]),
    # business hours: the nights and the weekend are off hours, one period each
    ("business hours over a weekend", "office", "2026-11-27T00:00:00+09:00",
     "2026-12-01T00:00:00+09:00", [
        ("han", "2026-11-27T00:00:00+09:00", "2026-11-27T09:00:00+09:00", "off"),
        ("han", "2026-11-27T09:00:00+09:00", "2026-11-27T18:00:00+09:00", ""),
        ("han", "2026-11-27T18:00:00+09:00", "2026-11-30T09:00:00+09:00", "off"),
        ("oh", "2026-11-30T09:00:00+09:00", "2026-11-30T18:00:00+09:00", ""),
        ("oh", "2026-11-30T18:00:00+09:00", "2026-12-01T00:00:00+09:00", "off"),
    ]),
    # Christmas 2026 is a Friday and a Korean public holiday: off from Thursday 18:00
    ("business hours over a holiday", "office", "2026-12-24T12:00:00+09:00",
     "2026-12-28T12:00:00+09:00", [
        ("han", "2026-12-24T12:00:00+09:00", "2026-12-24T18:00:00+09:00", ""),
        ("han", "2026-12-24T18:00:00+09:00", "2026-12-28T09:00:00+09:00", "off"),
        ("oh", "2026-12-28T09:00:00+09:00", "2026-12-28T12:00:00+09:00", ""),
    ]),
    # New York falls back on Sunday 1 November 2026: the shift holding it lasts 25 hours
    ("New York falling back", "newyork", "2026-10-31T00:00:00-04:00",
     "2026-11-03T00:00:00-05:00", [
        ("ben", "2026-10-31T00:00:00-04:00", "2026-10-31T09:00:00-04:00", ""),
        ("anna", "2026-10-31T09:00:00-04:00", "2026-11-01T09:00:00-05:00", ""),
        ("ben", "2026-11-01T09:00:00-05:00", "2026-11-02T09:00:00-05:00", ""),
        ("anna", "2026-11-02T09:00:00-05:00", "2026-11-03T00:00:00-05:00", ""),
    ]),
    # Berlin falls back on Sunday 25 October 2026; a business-hours rotation there
    ("Berlin falling back", "berlin", "2026-10-23T12:00:00+02:00",
     "2026-10-26T12:00:00+01:00", [
        ("anna", "2026-10-23T12:00:00+02:00", "2026-10-23T18:00:00+02:00", ""),
        ("anna", "2026-10-23T18:00:00+02:00", "2026-10-24T09:00:00+02:00", "off"),
        ("ben", "2026-10-24T09:00:00+02:00", "2026-10-25T09:00:00+01:00", "off"),
        ("anna", "2026-10-25T09:00:00+01:00", "2026-10-26T09:00:00+01:00", "off"),
        ("ben", "2026-10-26T09:00:00+01:00", "2026-10-26T12:00:00+01:00", ""),
    ]),
    # A handoff at 01:30 on the night 01:00-02:00 happens twice: oncall_at counts wall time,
    # so anna is back for the second 01:00-01:30 (and the override holds both 01:15-01:45).
    ("a handoff in the repeated hour", "folded", "2026-11-01T00:00:00-04:00",
     "2026-11-01T03:00:00-05:00", [
        ("anna", "2026-11-01T00:00:00-04:00", "2026-11-01T01:15:00-04:00", ""),
        ("kim", "2026-11-01T01:15:00-04:00", "2026-11-01T01:45:00-04:00", "override"),
        ("ben", "2026-11-01T01:45:00-04:00", "2026-11-01T01:00:00-05:00", ""),
        ("anna", "2026-11-01T01:00:00-05:00", "2026-11-01T01:15:00-05:00", ""),
        ("kim", "2026-11-01T01:15:00-05:00", "2026-11-01T01:45:00-05:00", "override"),
        ("ben", "2026-11-01T01:45:00-05:00", "2026-11-01T03:00:00-05:00", ""),
    ]),
    # A handoff at 02:30 on 8 March 2026, a wall time New York skips: it happens at 03:00.
    ("a handoff in the skipped hour", "gapped", "2026-03-08T00:00:00-05:00",
     "2026-03-08T05:00:00-04:00", [
        ("anna", "2026-03-08T00:00:00-05:00", "2026-03-08T03:00:00-04:00", ""),
        ("ben", "2026-03-08T03:00:00-04:00", "2026-03-08T05:00:00-04:00", ""),
    ]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rotation", "start", "end", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_schedule(
    cfg: RulesConfig, rotation: str, start: str, end: str, expected: list[Row]
) -> None:
    shifts = schedule(rotation, cfg.rotations[rotation], at(start), at(end))
    assert rows(shifts) == expected
    assert_agrees(cfg, rotation, shifts, at(start), at(end))


def test_a_shift_over_a_fall_back_lasts_25_hours(cfg: RulesConfig) -> None:
    start, end = at("2026-10-31T00:00:00-04:00"), at("2026-11-03T00:00:00-05:00")
    long_one = schedule("newyork", cfg.rotations["newyork"], start, end)[1]
    assert long_one.ends.astimezone(UTC) - long_one.starts.astimezone(UTC) == timedelta(hours=25)


# --- every instant agrees with oncall_at and responder --------------------------------------


def containing(shifts: list[Shift], instant: datetime) -> Shift:
    """The period holding an instant (compared in UTC: see Shift)."""
    found = [s for s in shifts if s.starts.astimezone(UTC) <= instant < s.ends.astimezone(UTC)]
    assert len(found) == 1, (instant, found)
    return found[0]


def check_instant(cfg: RulesConfig, rotation: str, shifts: list[Shift], instant: datetime) -> None:
    """What the schedule says at an instant is what ``receiver oncall --at`` computes."""
    rot = cfg.rotations[rotation]
    shift = containing(shifts, instant)
    now = oncall_at(rotation, rot, instant)
    off = rot.hours == "business" and not in_business_hours(rot, instant)
    assert (shift.person, shift.override, shift.off_hours) == (now.person, now.override, off)
    paged = responder(cfg, rotation, instant)
    if shift.off_hours and rot.fallback:
        assert paged == responder(cfg, rot.fallback, instant)
    else:
        assert paged == now
    [row] = rotations_now(cfg, instant, [rotation])
    assert (row.oncall, row.off_hours) == (now, off)


def assert_agrees(
    cfg: RulesConfig, rotation: str, shifts: list[Shift], start: datetime, end: datetime
) -> None:
    """Contiguous, from start to end, merged, and right on both sides of every boundary."""
    assert shifts[0].starts == start and shifts[-1].ends == end
    for before, after in itertools.pairwise(shifts):
        assert before.ends.astimezone(UTC) == after.starts.astimezone(UTC)
        assert before.ends.utcoffset() == after.starts.utcoffset()
        what = (before.person, before.override, before.off_hours)
        assert what != (after.person, after.override, after.off_hours)
    for shift in shifts:
        assert shift.starts.tzinfo == cfg.rotations[rotation].zone
        assert shift.starts.astimezone(UTC) < shift.ends.astimezone(UTC)
        check_instant(cfg, rotation, shifts, shift.starts.astimezone(UTC))
        last = shift.ends.astimezone(UTC) - timedelta(microseconds=1)
        check_instant(cfg, rotation, shifts, last)


ROTATIONS = [
    "weekly", "covered", "overlapping", "office", "lonely", "newyork", "berlin",
    "folded", "gapped",
]  # fmt: skip
EPOCH = datetime(2026, 2, 20, tzinfo=UTC)  # the spans run through both 2026 clock changes
YEAR = 300 * 24 * 3600


@settings(max_examples=150, deadline=None)
@given(
    rotation=st.sampled_from(ROTATIONS),
    offset=st.integers(0, YEAR),
    span=st.integers(1, 16 * 24 * 3600),
    probes=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=20),
)
def test_schedule_agrees_with_responder_at_every_instant(
    cfg: RulesConfig, rotation: str, offset: int, span: int, probes: list[float]
) -> None:
    start = EPOCH + timedelta(seconds=offset)
    end = start + timedelta(seconds=span)
    shifts = schedule(rotation, cfg.rotations[rotation], start, end)
    assert_agrees(cfg, rotation, shifts, start, end)
    for fraction in probes:
        instant = start + timedelta(seconds=span * fraction)
        check_instant(cfg, rotation, shifts, min(instant, end - timedelta(microseconds=1)))


def test_the_shipped_rules_agree_with_receiver_oncall(capsys: pytest.CaptureFixture[str]) -> None:
    """Each period's start, asked of the command itself."""
    from tests.helpers import SHIPPED_RULES

    shipped = parse_rules(SHIPPED_RULES.read_text(encoding="utf-8"), str(SHIPPED_RULES))
    start = at("2026-12-21T10:00:00+09:00")
    for name, rot in shipped.rotations.items():
        shifts = schedule(name, rot, start, start + timedelta(days=14))
        for shift in shifts[:4]:
            when = shift.starts.isoformat()
            rules = str(SHIPPED_RULES)
            assert main(["oncall", name, "--rules", rules, "--at", when, "--json"]) == 0
            [row] = json.loads(capsys.readouterr().out)["oncall"]
            assert (row["person"], row["off_hours"]) == (shift.person, shift.off_hours), when


# --- the bound, and edges -------------------------------------------------------------------


def test_a_one_minute_shift_is_cut_at_the_bound(cfg: RulesConfig) -> None:
    rot = cfg.rotations["weekly"].model_copy(update={"shift": timedelta(minutes=1)})
    start = at("2026-11-23T09:00:00+09:00")
    end = start + timedelta(days=14)
    shifts = schedule("weekly", rot, start, end)
    assert len(shifts) == MAX_SHIFTS
    assert shifts[-1].ends == start + timedelta(minutes=MAX_SHIFTS)  # cut short of the end
    assert [s.person for s in shifts[:4]] == ["kim", "choi", "jung", "kim"]
    assert len(schedule("weekly", rot, start, end, limit=3)) == 3


def test_handoffs_to_the_same_person_are_merged(cfg: RulesConfig) -> None:
    # (the rules refuse a member listed twice; a rotation built in code may have it)
    rot = cfg.rotations["weekly"].model_copy(update={"members": ["kim", "kim", "choi"]})
    start = at("2026-11-23T09:00:00+09:00")
    shifts = schedule("weekly", rot, start, start + timedelta(weeks=4))
    assert rows(shifts) == [
        ("kim", "2026-11-23T09:00:00+09:00", "2026-12-07T09:00:00+09:00", ""),
        ("choi", "2026-12-07T09:00:00+09:00", "2026-12-14T09:00:00+09:00", ""),
        ("kim", "2026-12-14T09:00:00+09:00", "2026-12-21T09:00:00+09:00", ""),
    ]


def test_one_member_is_one_period(cfg: RulesConfig) -> None:
    rot = cfg.rotations["weekly"].model_copy(update={"members": ["kim"], "shift": timedelta(1)})
    start = at("2026-11-23T09:00:00+09:00")
    shifts = schedule("weekly", rot, start, start + timedelta(days=365))
    assert rows(shifts) == [("kim", start.isoformat(), "2027-11-23T09:00:00+09:00", "")]


def test_years_of_off_hours_stop_at_the_bound_not_hang(cfg: RulesConfig) -> None:
    # Every day a day off: 09:00 and 18:00 change nothing, each a step looked at.
    days = [datetime(2026, 11, 23).date() + timedelta(days=n) for n in range(3000)]
    rot = cfg.rotations["lonely"].model_copy(update={"days_off": days, "shift": timedelta(1000)})
    start = at("2026-11-23T00:00:00+09:00")
    shifts = schedule("lonely", rot, start, start + timedelta(days=3000), limit=10)
    assert len(shifts) == 1 and shifts[0].off_hours
    assert start < shifts[0].ends < start + timedelta(days=3000)


@pytest.mark.parametrize("span", [timedelta(0), timedelta(hours=-1)])
def test_an_empty_span_has_no_periods(cfg: RulesConfig, span: timedelta) -> None:
    start = at("2026-11-23T09:00:00+09:00")
    assert schedule("weekly", cfg.rotations["weekly"], start, start + span) == []


def test_naive_times_are_refused(cfg: RulesConfig) -> None:
    with pytest.raises(ValueError, match="aware"):
        schedule("weekly", cfg.rotations["weekly"], datetime(2026, 11, 23), datetime(2026, 12, 1))


# --- now, for every rotation ------------------------------------------------------------------


def test_rotations_now(cfg: RulesConfig) -> None:
    friday_night = at("2026-11-27T22:00:00+09:00")
    found = {r.oncall.rotation: r for r in rotations_now(cfg, friday_night)}
    assert list(found) == list(cfg.rotations)
    office = found["office"]
    assert office.oncall == OnCall("office", "han", at("2026-11-30T09:00:00+09:00"))
    assert office.off_hours and office.paged_instead == responder(cfg, "weekly", friday_night)
    assert office.business_hours_from == at("2026-11-30T09:00:00+09:00")
    assert office.as_json() == {
        "rotation": "office",
        "person": "han",
        "shift_end": "2026-11-30T09:00:00+09:00",
        "off_hours": True,
        "paged_instead": {"rotation": "weekly", "person": "kim"},
        "business_hours_from": "2026-11-30T09:00:00+09:00",
    }
    weekly = found["weekly"]
    assert not weekly.off_hours and weekly.paged_instead is None
    assert weekly.as_json() == {
        "rotation": "weekly",
        "person": "kim",
        "shift_end": "2026-11-30T09:00:00+09:00",
        "off_hours": False,
    }
    assert [r.oncall.rotation for r in rotations_now(cfg, friday_night, ["lonely"])] == ["lonely"]
