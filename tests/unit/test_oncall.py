"""On-call: rotations in wall-clock time, overrides, DST, business hours, fallbacks, pages."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from receiver.config import RulesConfig, parse_rules
from receiver.config.loader import ConfigError
from receiver.config.models import RotationConfig
from receiver.domain.oncall import (
    OnCall,
    Page,
    in_business_hours,
    next_business_start,
    oncall_at,
    page_time,
    resolve_targets,
    responder,
    step_zero_pages,
)

SEOUL = ZoneInfo("Asia/Seoul")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

RULES = """\
defaults: {severity: P3, category: general}
severities:
  P0: {respond_within: 1h, ack_timeout: 15m, jira_priority: Highest, page: always}
  P2: {respond_within: 24h, ack_timeout: 4h, jira_priority: Medium, page: business_hours}
  P3: {respond_within: 3d, ack_timeout: 24h, jira_priority: Low, page: never}
categories:
  general: {team: core}
  web: {team: web}
teams:
  core: {rotation: weekly, lead: jung, channel: "#core"}
  web: {rotation: office, lead: oh, channel: "#web"}
roles: {tech_lead: lee, project_manager: park}
people:
  kim: {name: Kim}
  choi: {name: Choi}
  jung: {name: Jung}
  han: {name: Han}
  oh: {name: Oh}
  anna: {name: Anna}
  ben: {name: Ben}
  lee: {name: Lee}
  park: {name: Park}
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
      - {person: kim, from: "2026-12-01T00:00", to: "2026-12-08T12:00"}
  berlin:
    timezone: Europe/Berlin
    members: [anna, ben]
    shift: 1d
    handoff: "2027-03-20T09:00"
  newyork:
    timezone: America/New_York
    members: [anna, ben]
    shift: 1d
    handoff: "2027-03-07T09:00"
  office:
    timezone: Asia/Seoul
    members: [han, oh]
    shift: 1w
    handoff: "2026-11-23T09:00"
    hours: business
    fallback: weekly
  lonely:
    timezone: Asia/Seoul
    members: [oh]
    shift: 1w
    handoff: "2026-11-23T09:00"
    hours: business
  chain:
    timezone: Asia/Seoul
    members: [anna]
    shift: 1w
    handoff: "2026-11-23T09:00"
    hours: business
    fallback: office
escalation:
  P0: [{after: 0m, notify: [oncall, team, team_lead, tech_lead, project_manager]}]
  default:
    - {after: 0m, notify: [oncall]}
    - {after: 15m, notify: [team_lead]}
channels: {alerts: "#a", announce: "#b", digest: "#a"}
jira: {project: OPS}
"""


@pytest.fixture(scope="module")
def cfg() -> RulesConfig:
    return parse_rules(RULES, "oncall.yaml")


def kst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SEOUL)


# --- regular weekly shifts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "person", "shift_end"),
    [
        ("2026-11-23T09:00:00+09:00", "kim", "2026-11-30T09:00:00+09:00"),
        ("2026-11-26T10:00:00+09:00", "kim", "2026-11-30T09:00:00+09:00"),
        ("2026-11-30T08:59:59+09:00", "kim", "2026-11-30T09:00:00+09:00"),
        ("2026-11-29T23:59:59+00:00", "kim", "2026-11-30T09:00:00+09:00"),
        ("2026-11-30T09:00:00+09:00", "choi", "2026-12-07T09:00:00+09:00"),
        ("2026-11-30T00:00:00+00:00", "choi", "2026-12-07T09:00:00+09:00"),
        ("2026-12-06T18:00:00-05:00", "choi", "2026-12-07T09:00:00+09:00"),
        ("2026-12-07T09:00:00+09:00", "jung", "2026-12-14T09:00:00+09:00"),
        ("2026-12-14T09:00:00+09:00", "kim", "2026-12-21T09:00:00+09:00"),
        ("2026-12-21T09:00:00+09:00", "choi", "2026-12-28T09:00:00+09:00"),
        ("2027-11-22T09:00:00+09:00", "choi", "2027-11-29T09:00:00+09:00"),
        # before the first handoff the rotation runs backwards
        ("2026-11-23T08:59:00+09:00", "jung", "2026-11-23T09:00:00+09:00"),
        ("2026-11-16T09:00:00+09:00", "jung", "2026-11-23T09:00:00+09:00"),
        ("2026-11-09T09:00:00+09:00", "choi", "2026-11-16T09:00:00+09:00"),
    ],
)
def test_weekly_rotation(cfg: RulesConfig, at: str, person: str, shift_end: str) -> None:
    result = oncall_at("weekly", cfg.rotations["weekly"], datetime.fromisoformat(at))
    expected_end = datetime.fromisoformat(shift_end)
    assert (result.rotation, result.person, result.override) == ("weekly", person, False)
    assert result.shift_end == expected_end
    assert result.shift_end.utcoffset() == timedelta(hours=9)
    assert result.shift_end.astimezone(SEOUL).replace(tzinfo=None) == expected_end.replace(
        tzinfo=None
    )


# --- overrides ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "person", "shift_end", "override"),
    [
        # an override coming up cuts the regular shift short
        ("2026-11-25T12:00", "kim", "2026-11-25T18:00", False),
        ("2026-11-25T17:59", "kim", "2026-11-25T18:00", False),
        # inside the override window it wins
        ("2026-11-25T18:00", "jung", "2026-11-26T09:00", True),
        ("2026-11-26T08:59", "jung", "2026-11-26T09:00", True),
        # after it the regular member is back until the regular handoff
        ("2026-11-26T09:00", "kim", "2026-11-30T09:00", False),
        ("2026-11-30T12:00", "choi", "2026-12-01T00:00", False),
        # an override spanning a regular handoff holds across it
        ("2026-12-03T00:00", "kim", "2026-12-08T12:00", True),
        ("2026-12-07T09:00", "kim", "2026-12-08T12:00", True),
        ("2026-12-08T11:59", "kim", "2026-12-08T12:00", True),
        ("2026-12-08T12:00", "jung", "2026-12-14T09:00", False),
    ],
)
def test_overrides(cfg: RulesConfig, at: str, person: str, shift_end: str, override: bool) -> None:
    result = oncall_at("covered", cfg.rotations["covered"], kst(at))
    assert result == OnCall("covered", person, kst(shift_end), override)


def test_override_window_in_another_zone(cfg: RulesConfig) -> None:
    # 09:00 UTC is 18:00 in Seoul: the override has started.
    result = oncall_at("covered", cfg.rotations["covered"], datetime(2026, 11, 25, 9, tzinfo=UTC))
    assert (result.person, result.override) == ("jung", True)
    assert result.shift_end == datetime(2026, 11, 26, 0, 0, tzinfo=UTC)


def test_without_overrides_the_shift_is_not_cut(cfg: RulesConfig) -> None:
    # Without overrides nobody's shift is cut.
    result = oncall_at("weekly", cfg.rotations["weekly"], kst("2026-11-25T12:00"))
    assert result.shift_end == kst("2026-11-30T09:00")


# --- daylight-saving time -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rotation", "zone", "at", "person", "shift_end_utc", "offset"),
    [
        # Europe/Berlin springs forward on 2027-03-28 02:00 (+01:00 -> +02:00).
        ("berlin", BERLIN, "2027-03-26T12:00:00+01:00", "anna", "2027-03-27T08:00", 1),
        ("berlin", BERLIN, "2027-03-27T08:00:00+01:00", "anna", "2027-03-27T08:00", 1),
        ("berlin", BERLIN, "2027-03-27T09:00:00+01:00", "ben", "2027-03-28T07:00", 2),
        ("berlin", BERLIN, "2027-03-27T23:30:00+01:00", "ben", "2027-03-28T07:00", 2),
        ("berlin", BERLIN, "2027-03-28T08:59:00+02:00", "ben", "2027-03-28T07:00", 2),
        ("berlin", BERLIN, "2027-03-28T07:00:00+00:00", "anna", "2027-03-29T07:00", 2),
        ("berlin", BERLIN, "2027-03-28T12:00:00+02:00", "anna", "2027-03-29T07:00", 2),
        # ... and falls back on 2027-10-31 03:00 (+02:00 -> +01:00).
        ("berlin", BERLIN, "2027-10-30T12:00:00+02:00", "anna", "2027-10-31T08:00", 1),
        ("berlin", BERLIN, "2027-10-31T08:00:00+00:00", "ben", "2027-11-01T08:00", 1),
        # America/New_York springs forward on 2027-03-14 02:00 (-05:00 -> -04:00).
        ("newyork", NEW_YORK, "2027-03-13T12:00:00-05:00", "anna", "2027-03-14T13:00", -4),
        ("newyork", NEW_YORK, "2027-03-14T08:59:00-04:00", "anna", "2027-03-14T13:00", -4),
        ("newyork", NEW_YORK, "2027-03-14T13:00:00+00:00", "ben", "2027-03-15T13:00", -4),
        ("newyork", NEW_YORK, "2027-03-12T12:00:00-05:00", "ben", "2027-03-13T14:00", -5),
        # ... and falls back on 2027-11-07 02:00 (-04:00 -> -05:00).
        ("newyork", NEW_YORK, "2027-11-06T12:00:00-04:00", "anna", "2027-11-07T14:00", -5),
    ],
)
def test_daily_handoff_stays_at_nine_across_dst(
    cfg: RulesConfig,
    rotation: str,
    zone: ZoneInfo,
    at: str,
    person: str,
    shift_end_utc: str,
    offset: int,
) -> None:
    result = oncall_at(rotation, cfg.rotations[rotation], datetime.fromisoformat(at))
    assert result.person == person
    assert result.shift_end == datetime.fromisoformat(shift_end_utc).replace(tzinfo=UTC)
    local_end = result.shift_end.astimezone(zone)
    assert (local_end.hour, local_end.minute) == (9, 0)
    assert local_end.utcoffset() == timedelta(hours=offset)
    assert result.shift_end.utcoffset() == timedelta(hours=offset)


@pytest.mark.parametrize(
    ("rotation", "zone", "before", "after", "hours"),
    [
        ("berlin", BERLIN, "2027-03-26T12:00:00+01:00", "2027-03-27T12:00:00+01:00", 23),
        ("berlin", BERLIN, "2027-10-29T12:00:00+02:00", "2027-10-30T12:00:00+02:00", 25),
        ("newyork", NEW_YORK, "2027-03-12T12:00:00-05:00", "2027-03-13T12:00:00-05:00", 23),
        ("newyork", NEW_YORK, "2027-11-05T12:00:00-04:00", "2027-11-06T12:00:00-04:00", 25),
    ],
)
def test_shift_over_dst_change_is_short_or_long(
    cfg: RulesConfig, rotation: str, zone: ZoneInfo, before: str, after: str, hours: int
) -> None:
    rot = cfg.rotations[rotation]
    first = oncall_at(rotation, rot, datetime.fromisoformat(before)).shift_end
    second = oncall_at(rotation, rot, datetime.fromisoformat(after)).shift_end
    # the shift holding the clock change lasts 23 or 25 real hours, both ends at 09:00 local
    # (subtract in UTC: aware datetimes sharing a tzinfo subtract as wall-clock times)
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=hours)
    assert second.replace(tzinfo=None) - first.replace(tzinfo=None) == timedelta(days=1)
    assert first.astimezone(zone).hour == second.astimezone(zone).hour == 9
    assert first.utcoffset() != second.utcoffset()


# --- business hours -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2026-11-26T10:00:00+09:00", True),  # Thursday
        ("2026-11-26T09:00:00+09:00", True),
        ("2026-11-26T08:59:59+09:00", False),
        ("2026-11-26T17:59:59+09:00", True),
        ("2026-11-26T18:00:00+09:00", False),
        ("2026-11-27T17:00:00+09:00", True),  # Friday
        ("2026-11-27T22:00:00+09:00", False),
        ("2026-11-28T12:00:00+09:00", False),  # Saturday
        ("2026-11-29T12:00:00+09:00", False),  # Sunday
        ("2026-11-30T09:00:00+09:00", True),  # Monday
        ("2026-11-26T01:00:00+00:00", True),  # 10:00 in Seoul
        ("2026-11-26T10:00:00+00:00", False),  # 19:00 in Seoul
        ("2026-11-29T23:30:00+00:00", False),  # Monday 08:30 in Seoul
        ("2026-11-30T00:30:00+00:00", True),  # Monday 09:30 in Seoul, Monday 00:30 UTC
        ("2026-11-28T01:00:00+00:00", False),  # Saturday 10:00 in Seoul
    ],
)
def test_in_business_hours(cfg: RulesConfig, at: str, expected: bool) -> None:
    assert in_business_hours(cfg.rotations["office"], datetime.fromisoformat(at)) is expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2026-11-27T22:00:00+09:00", "2026-11-30T09:00:00+09:00"),  # Friday night -> Monday
        ("2026-11-27T18:00:00+09:00", "2026-11-30T09:00:00+09:00"),  # Friday close -> Monday
        ("2026-11-28T12:00:00+09:00", "2026-11-30T09:00:00+09:00"),  # Saturday -> Monday
        ("2026-11-28T08:00:00+09:00", "2026-11-30T09:00:00+09:00"),
        ("2026-11-29T23:59:00+09:00", "2026-11-30T09:00:00+09:00"),  # Sunday -> Monday
        ("2026-11-26T08:00:00+09:00", "2026-11-26T09:00:00+09:00"),  # weekday morning
        ("2026-11-26T00:00:00+09:00", "2026-11-26T09:00:00+09:00"),
        ("2026-11-30T07:00:00+09:00", "2026-11-30T09:00:00+09:00"),  # Monday morning
        ("2026-11-25T20:00:00+09:00", "2026-11-26T09:00:00+09:00"),  # Wednesday evening
        ("2026-11-26T10:00:00+09:00", "2026-11-26T10:00:00+09:00"),  # inside: itself
        ("2026-11-27T13:00:00+00:00", "2026-11-30T09:00:00+09:00"),  # Friday 22:00 Seoul
        ("2026-11-26T23:30:00+00:00", "2026-11-27T09:00:00+09:00"),  # Friday 08:30 Seoul
    ],
)
def test_next_business_start(cfg: RulesConfig, at: str, expected: str) -> None:
    result = next_business_start(cfg.rotations["office"], datetime.fromisoformat(at))
    assert result == datetime.fromisoformat(expected)


def with_days_off(cfg: RulesConfig, country: str | None, *days: str) -> RotationConfig:
    office = cfg.rotations["office"]
    dates = [date.fromisoformat(d) for d in days]
    return office.model_copy(update={"holidays": country, "days_off": dates})


@pytest.mark.parametrize(
    ("country", "days_off", "at", "expected"),
    [
        # a P2 at 23:00 on Christmas Eve in Seoul goes out on 26 December, not on Christmas
        ("KR", (), "2025-12-24T23:00:00+09:00", "2025-12-26T09:00:00+09:00"),
        ("KR", (), "2025-12-25T10:00:00+09:00", "2025-12-26T09:00:00+09:00"),
        # Christmas on a Friday: the Monday after
        ("KR", (), "2026-12-24T23:00:00+09:00", "2026-12-28T09:00:00+09:00"),
        # Chuseok 2026 (24-26 Sep, Thursday to Saturday): the Monday after
        ("KR", (), "2026-09-23T19:00:00+09:00", "2026-09-28T09:00:00+09:00"),
        # without a country, Christmas is a business day
        (None, (), "2025-12-24T23:00:00+09:00", "2025-12-25T09:00:00+09:00"),
        # a day off of the team's own, on top of the country's
        ("KR", ("2025-12-26",), "2025-12-24T23:00:00+09:00", "2025-12-29T09:00:00+09:00"),
        # Germany's second Christmas day is a holiday there, and not in Korea
        ("DE", (), "2025-12-24T23:00:00+09:00", "2025-12-29T09:00:00+09:00"),
    ],
)
def test_holidays_and_days_off_are_not_business_days(
    cfg: RulesConfig, country: str | None, days_off: tuple[str, ...], at: str, expected: str
) -> None:
    rotation = with_days_off(cfg, country, *days_off)
    assert next_business_start(rotation, datetime.fromisoformat(at)) == datetime.fromisoformat(
        expected
    )
    christmas = datetime.fromisoformat("2025-12-25T10:00:00+09:00")
    assert in_business_hours(rotation, christmas) is (country is None)


def test_a_rotation_of_days_off_only_still_answers(cfg: RulesConfig) -> None:
    start = date(2026, 1, 1)
    every = [(start + timedelta(days=n)).isoformat() for n in range(400)]
    rotation = with_days_off(cfg, None, *every)
    found = next_business_start(rotation, datetime.fromisoformat("2026-01-01T10:00:00+09:00"))
    assert found.date() - start <= timedelta(days=367)  # bounded: no hang


def test_an_unknown_country_is_refused_with_its_line() -> None:
    office = "    hours: business\n    fallback: weekly\n"
    text = RULES.replace(office, office + "    holidays: XX\n")
    assert text != RULES
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, "rules.yaml")
    [problem] = caught.value.problems
    assert problem.path == "rotations.office.holidays" and "unknown country 'XX'" in problem.message
    assert problem.line == text.splitlines().index("    holidays: XX") + 1


@pytest.mark.parametrize(
    "at",
    ["2026-11-27T22:00:00+09:00", "2026-11-28T12:00:00+09:00", "2026-11-26T08:00:00+09:00"],
)
def test_next_business_start_is_in_rotation_zone(cfg: RulesConfig, at: str) -> None:
    result = next_business_start(cfg.rotations["office"], datetime.fromisoformat(at))
    assert result.utcoffset() == timedelta(hours=9)
    assert result.astimezone(SEOUL).isoformat().endswith("T09:00:00+09:00")
    assert in_business_hours(cfg.rotations["office"], result) is True


def test_next_business_start_across_dst(cfg: RulesConfig) -> None:
    # Friday evening before the spring change in Berlin: Monday 09:00 is already CEST.
    result = next_business_start(
        cfg.rotations["berlin"], datetime.fromisoformat("2027-03-26T20:00:00+01:00")
    )
    assert result == datetime(2027, 3, 29, 7, 0, tzinfo=UTC)
    assert result.astimezone(BERLIN).isoformat() == "2027-03-29T09:00:00+02:00"


# --- responder and fallbacks ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rotation", "at", "expected_rotation", "person", "shift_end"),
    [
        ("office", "2026-11-26T10:00", "office", "han", "2026-11-30T09:00"),
        ("office", "2026-11-26T20:00", "weekly", "kim", "2026-11-30T09:00"),
        ("office", "2026-11-28T12:00", "weekly", "kim", "2026-11-30T09:00"),
        ("office", "2026-11-30T08:00", "weekly", "kim", "2026-11-30T09:00"),
        ("office", "2026-11-30T09:00", "office", "oh", "2026-12-07T09:00"),
        ("office", "2026-12-05T03:00", "weekly", "choi", "2026-12-07T09:00"),
        # no fallback: its own on-call even off hours
        ("lonely", "2026-11-28T12:00", "lonely", "oh", "2026-11-30T09:00"),
        # a fallback that is itself off hours falls back further
        ("chain", "2026-11-26T10:00", "chain", "anna", "2026-11-30T09:00"),
        ("chain", "2026-11-26T20:00", "weekly", "kim", "2026-11-30T09:00"),
        # a 24/7 rotation always answers itself
        ("weekly", "2026-11-28T12:00", "weekly", "kim", "2026-11-30T09:00"),
    ],
)
def test_responder(
    cfg: RulesConfig,
    rotation: str,
    at: str,
    expected_rotation: str,
    person: str,
    shift_end: str,
) -> None:
    result = responder(cfg, rotation, kst(at))
    assert (result.rotation, result.person, result.shift_end) == (
        expected_rotation,
        person,
        kst(shift_end),
    )


# --- pages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("team", "severity", "at", "expected"),
    [
        ("core", "P0", "2026-11-27T22:00", "2026-11-27T22:00"),
        ("core", "P2", "2026-11-27T22:00", "2026-11-30T09:00"),
        ("core", "P2", "2026-11-26T10:00", "2026-11-26T10:00"),
        ("core", "P3", "2026-11-26T10:00", None),
        ("web", "P2", "2026-11-28T12:00", "2026-11-30T09:00"),
    ],
)
def test_page_time(
    cfg: RulesConfig, team: str, severity: str, at: str, expected: str | None
) -> None:
    due = page_time(cfg, team, severity, kst(at))
    assert due == (kst(expected) if expected else None)


@pytest.mark.parametrize(
    ("team", "targets", "at", "expected"),
    [
        ("core", ["oncall"], "2026-11-26T10:00", [("kim", "oncall")]),
        (
            "core",
            ["oncall", "team", "team_lead", "tech_lead", "project_manager"],
            "2026-11-26T10:00",
            [
                ("kim", "oncall"),
                ("choi", "team"),
                ("jung", "team"),
                ("lee", "tech_lead"),
                ("park", "project_manager"),
            ],
        ),
        ("web", ["oncall"], "2026-11-26T10:00", [("han", "oncall")]),
        ("web", ["oncall"], "2026-11-26T20:00", [("kim", "oncall")]),
        (
            "web",
            ["oncall", "team_lead"],
            "2026-11-26T20:00",
            [("kim", "oncall"), ("oh", "team_lead")],
        ),
        ("core", ["person:ben", "person:ben"], "2026-11-26T10:00", [("ben", "person:ben")]),
        ("core", ["rotation:office"], "2026-11-26T20:00", [("kim", "rotation:office")]),
        ("core", ["rotation:berlin"], "2026-11-26T10:00", [("ben", "rotation:berlin")]),
    ],
)
def test_resolve_targets(
    cfg: RulesConfig,
    team: str,
    targets: list[str],
    at: str,
    expected: list[tuple[str, str]],
) -> None:
    assert resolve_targets(cfg, team, targets, kst(at)) == expected


@pytest.mark.parametrize(
    ("team", "severity", "at", "expected"),
    [
        (
            "core",
            "P0",
            "2026-11-27T22:00",
            [
                ("kim", "oncall", "2026-11-27T22:00", False),
                ("choi", "team", "2026-11-27T22:00", False),
                ("jung", "team", "2026-11-27T22:00", False),
                ("lee", "tech_lead", "2026-11-27T22:00", False),
                ("park", "project_manager", "2026-11-27T22:00", False),
            ],
        ),
        # deferred to Monday 09:00, when choi has taken over the weekly rotation
        ("core", "P2", "2026-11-27T22:00", [("choi", "oncall", "2026-11-30T09:00", True)]),
        ("core", "P2", "2026-11-26T10:00", [("kim", "oncall", "2026-11-26T10:00", False)]),
        ("web", "P2", "2026-11-28T12:00", [("oh", "oncall", "2026-11-30T09:00", True)]),
        ("core", "P3", "2026-11-26T10:00", []),
    ],
)
def test_step_zero_pages(
    cfg: RulesConfig,
    team: str,
    severity: str,
    at: str,
    expected: list[tuple[str, str, str, bool]],
) -> None:
    pages = step_zero_pages(cfg, team, severity, kst(at))
    assert pages == [Page(p, t, kst(when), d) for p, t, when, d in expected]


def test_page_as_json() -> None:
    page = Page("kim", "oncall", kst("2026-11-30T09:00"), True)
    assert page.as_json() == {
        "person": "kim",
        "target": "oncall",
        "at": "2026-11-30T09:00:00+09:00",
        "deferred": True,
    }
