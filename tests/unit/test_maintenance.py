"""Maintenance windows matched with an injected clock: the edges (start in, end out),
weekly repeats kept at local wall-clock time across daylight-saving changes (Seoul, Berlin,
New York), overlaps (the one ending last holds), a window from the API ended early, every
alert of a trigger having to match, and what a window does to a trigger."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from receiver.config.loader import ConfigError, parse_rules
from receiver.domain.delivery import Kind
from receiver.domain.incidents import Change
from receiver.domain.maintenance import (
    Window,
    applying,
    around,
    from_rules,
    mark,
    occurrence,
    released,
)
from receiver.domain.model import AlertRecord, AlertStatus, Incident, Status
from tests.helpers import SHIPPED_RULES
from tests.unit.test_slack_render import CFG

SEOUL, BERLIN, NEW_YORK = (ZoneInfo(z) for z in ("Asia/Seoul", "Europe/Berlin", "America/New_York"))
KIS = ('service="kis-gateway"',)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def weekly(zone: ZoneInfo, start: str, end: str) -> Window:
    return Window("weekly", KIS, local(start), local(end), zone, "vendor", timedelta(weeks=1))


@pytest.mark.parametrize(
    ("window", "at", "active"),
    [
        # one-off, Seoul (no DST): 02:00-04:00 KST is 17:00-19:00 UTC the day before
        pytest.param(Window("once", KIS, local("2026-12-05T02:00"), local("2026-12-05T04:00"),
                            SEOUL), "2026-12-04T16:59:59", False, id="just before"),
        pytest.param(Window("once", KIS, local("2026-12-05T02:00"), local("2026-12-05T04:00"),
                            SEOUL), "2026-12-04T17:00:00", True, id="the start is in"),
        pytest.param(Window("once", KIS, local("2026-12-05T02:00"), local("2026-12-05T04:00"),
                            SEOUL), "2026-12-04T18:59:59", True, id="just before the end"),
        pytest.param(Window("once", KIS, local("2026-12-05T02:00"), local("2026-12-05T04:00"),
                            SEOUL), "2026-12-04T19:00:00", False, id="the end is out"),
        # weekly, Seoul: the fifth week
        pytest.param(weekly(SEOUL, "2026-12-05T02:00", "2026-12-05T04:00"),
                     "2027-01-01T17:30:00", True, id="Seoul, five weeks on"),
        pytest.param(weekly(SEOUL, "2026-12-05T02:00", "2026-12-05T04:00"),
                     "2027-01-01T19:30:00", False, id="Seoul, five weeks on, after"),
        # weekly, Berlin 02:00-04:00 local: 00:00-02:00 UTC in summer, 01:00-03:00 in winter
        pytest.param(weekly(BERLIN, "2026-10-17T02:00", "2026-10-17T04:00"),
                     "2026-10-24T00:00:00", True, id="Berlin summer time"),
        pytest.param(weekly(BERLIN, "2026-10-17T02:00", "2026-10-17T04:00"),
                     "2026-10-31T00:30:00", False, id="Berlin after the change: 01:30 CET"),
        pytest.param(weekly(BERLIN, "2026-10-17T02:00", "2026-10-17T04:00"),
                     "2026-10-31T02:59:00", True, id="Berlin winter time: 03:59 CET"),
        # weekly, New York 22:00-23:00 local across the change on 1 November (EDT -4, EST -5)
        pytest.param(weekly(NEW_YORK, "2026-10-27T22:00", "2026-10-27T23:00"),
                     "2026-10-28T02:30:00", True, id="New York EDT: 22:30"),
        pytest.param(weekly(NEW_YORK, "2026-10-27T22:00", "2026-10-27T23:00"),
                     "2026-11-04T02:30:00", False, id="New York after the change: 21:30 EST"),
        pytest.param(weekly(NEW_YORK, "2026-10-27T22:00", "2026-10-27T23:00"),
                     "2026-11-04T03:30:00", True, id="New York EST: 22:30"),
        pytest.param(weekly(NEW_YORK, "2026-10-27T22:00", "2026-10-27T23:00"),
                     "2026-10-27T01:00:00", False, id="before the first occurrence"),
    ],
)  # fmt: skip
def test_window_edges_and_repeats(window: Window, at: str, active: bool) -> None:
    moment = utc(at)
    assert (occurrence(window, moment) is not None) is active
    found = around(window, moment)
    if window.every is None and moment >= window.end.replace(tzinfo=window.zone):
        assert found is None  # a one-off window is over
        return
    assert found is not None and found[1] > moment  # the one in force, or the next one
    # every occurrence ends at the same local time, whatever the offset that day
    assert found[1].astimezone(window.zone).strftime("%H:%M") == window.end.strftime("%H:%M")


def test_a_one_off_window_past_is_over() -> None:
    once = Window("once", KIS, local("2026-12-05T02:00"), local("2026-12-05T04:00"), SEOUL)
    assert around(once, utc("2026-12-04T19:00:00")) is None


def test_an_api_window_ended_early_no_longer_applies() -> None:
    start, end = utc("2026-12-04T10:00:00"), utc("2026-12-04T12:00:00")
    planned = Window("api-1", KIS, start, end, ZoneInfo("UTC"), "deploy", id=1, by="kim")
    labels = [{"service": "kis-gateway"}]
    at = utc("2026-12-04T11:00:00")
    assert applying([planned], labels, at) == (planned, end)
    ended = replace(planned, end=utc("2026-12-04T10:30:00"), ended_by="kim")
    assert applying([ended], labels, at) is None
    assert applying([ended], labels, utc("2026-12-04T10:29:00")) is not None


def test_overlapping_windows_the_one_ending_last_holds_and_every_alert_must_match() -> None:
    short = Window("short", KIS, utc("2026-12-04T10:00:00"), utc("2026-12-04T11:00:00"),
                   SEOUL)  # fmt: skip
    long = replace(short, name="long", end=utc("2026-12-04T13:00:00"))
    other = replace(short, name="other", matchers=('service="order-api"',),
                    end=utc("2026-12-04T15:00:00"))  # fmt: skip
    at = utc("2026-12-04T10:30:00")
    kis, orders = {"service": "kis-gateway"}, {"service": "order-api"}
    assert applying([short, long, other], [kis], at) == (long, long.end)
    assert applying([short, long, other], [orders], at) == (other, other.end)
    assert applying([short, long, other], [kis, orders], at) is None  # no window covers both
    assert applying([short, long], [], at) is None
    regex = replace(short, matchers=('service=~"kis-.*"', 'env!="staging"'))
    assert applying([regex], [kis], at) is not None
    assert applying([regex], [{**kis, "env": "staging"}], at) is None


T0 = utc("2026-12-04T17:30:00")  # 02:30 on Saturday in Seoul
INCIDENT = Incident(
    id=3, key="k", rule="kis-token-refresh-failure", severity="P1", category="api",
    team="backend", status=Status.TRIGGERED, summary="s", group_labels={}, opened_at=T0,
    triggered_at=T0, first_starts_at=T0,
)  # fmt: skip
RECORD = AlertRecord(
    "fp", AlertStatus.FIRING, "P1", {"alertname": "KISTokenRefreshFailed",
    "service": "kis-gateway"}, {}, T0, None, "", T0, T0,
)  # fmt: skip


def test_a_trigger_during_a_window_is_held_unless_its_severity_ignores_maintenance() -> None:
    window = Window("kis-weekly", KIS, local("2026-12-05T02:00"), local("2026-12-05T04:00"),
                    SEOUL, "KIS weekly", timedelta(weeks=1))  # fmt: skip
    opened = Change(INCIDENT, True, (RECORD,), (), (Kind.OPENED,))
    held = mark(opened, [window], CFG, T0)
    assert held.incident.maintenance == "kis-weekly"
    [event] = held.events
    assert event.event == "maintenance" and event.data["held"] is True
    assert event.data["until"] == "2026-12-05T04:00:00+09:00"
    p0 = mark(replace(opened, incident=replace(INCIDENT, severity="P0")), [window], CFG, T0)
    assert p0.incident.maintenance is None and p0.events[0].data["held"] is False
    later = mark(opened, [window], CFG, T0 + timedelta(hours=2))  # 04:30: over
    assert later is opened
    joined = Change(INCIDENT, False, (RECORD,), (), (Kind.ALERTS_JOINED,))
    assert mark(joined, [window], CFG, T0) is joined  # only a trigger is held
    over = released(held.incident, T0 + timedelta(hours=1), "kim")
    assert over.incident.maintenance is None
    assert over.events[0].data == {"window": "kis-weekly", "ended_by": "kim"}


def test_rules_windows_are_checked() -> None:
    text = SHIPPED_RULES.read_text()
    good = text + (
        "\nmaintenance:\n  - {name: kis-weekly, matchers: ['service=\"kis-gateway\"'], "
        "from: '2026-12-05T02:00', to: '2026-12-05T04:00', every: 1w, timezone: Europe/Berlin,"
        " reason: KIS}\n"
    )
    [window] = from_rules(parse_rules(good, "r.yaml"))
    assert window.zone.key == "Europe/Berlin" and window.every == timedelta(weeks=1)
    for bad, message in [
        ("from: '2026-12-05T04:00', to: '2026-12-05T02:00'", "'to' must come after 'from'"),
        ("from: '2026-12-05T02:00', to: '2026-12-05T04:00', every: 1h",
         "'every' must be at least as long"),
        ("from: '2026-12-05T02:00+09:00', to: '2026-12-05T04:00'", "without an offset"),
        ("name: api-3, from: '2026-12-05T02:00', to: '2026-12-05T04:00'", "the receiver's own"),
    ]:  # fmt: skip
        name = "" if "name:" in bad else "name: w, "
        broken = text + f"\nmaintenance:\n  - {{{name}matchers: ['service=\"x\"'], {bad}}}\n"
        with pytest.raises(ConfigError, match=message):
            parse_rules(broken, "r.yaml")
    twice = good + "  - {name: kis-weekly, matchers: ['a=\"b\"'], from: '2026-12-05T02:00', " \
        "to: '2026-12-05T03:00'}\n"  # fmt: skip
    with pytest.raises(ConfigError, match="duplicate window name 'kis-weekly'"):
        parse_rules(twice, "r.yaml")
