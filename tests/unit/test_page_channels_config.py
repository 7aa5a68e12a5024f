"""The rules file's channels per person, ``page_retry``, the testers' Telegram channel and
heartbeats: what check-config accepts, and each mistake named at its YAML path and line."""

from __future__ import annotations

from datetime import timedelta

import pytest

from receiver.config import parse_rules
from tests.unit.test_config import FILE, VALID, edit, line_of, problems_of

KIM = "  kim: {name: Kim}"


def test_people_channels_page_retry_and_heartbeats_are_read() -> None:
    text = edit(
        KIM,
        "  kim: {name: Kim, slack_id: U0KIM, telegram_id: 1001, email: kim@example.com,"
        " phone: '+821012345678', notify: [slack, telegram, email]}",
    )
    text += (
        "page_retry: 3m\n"
        "heartbeats:\n"
        "  watchdog: {matchers: ['alertname=\"Watchdog\"'], every: 5m, grace: 2m,"
        " severity: P0, category: api}\n"
    )
    text = text.replace('digest: "#alerts"}', 'digest: "#alerts", announce_telegram: "@beta"}')
    cfg = parse_rules(text, FILE)
    kim = cfg.people["kim"]
    assert kim.notify == ["slack", "telegram", "email"]
    assert [kim.address(c) for c in kim.notify] == ["U0KIM", "1001", "kim@example.com"]
    assert cfg.page_retry == timedelta(minutes=3)
    assert cfg.heartbeats["watchdog"].silent_after == timedelta(minutes=7)
    assert cfg.channels.announce_telegram == "@beta"
    assert cfg.people["choi"].notify == ["slack"]  # the default
    assert parse_rules(VALID, FILE).page_retry == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("person", "path", "message"),
    [
        ("{name: Kim, notify: [telegram]}", "people.kim.notify[0]",
         "kim is paged by telegram but has no telegram_id"),
        ("{name: Kim, slack_id: U1, notify: [slack, email]}", "people.kim.notify[1]",
         "kim is paged by email but has no email"),
        ("{name: Kim, slack_id: U1, notify: [slack, slack]}", "people.kim.notify",
         "a channel is listed twice"),
        ("{name: Kim, notify: []}", "people.kim.notify", "at least 1 item"),
        ("{name: Kim, notify: [pager]}", "people.kim.notify[0]", "'slack', 'telegram' or 'email'"),
        ("{name: Kim, phone: '010-1234-5678'}", "people.kim.phone", "should match pattern"),
        ("{name: Kim, email: not-an-address}", "people.kim.email", "should match pattern"),
        ("{name: Kim, telegram_id: kim}", "people.kim.telegram_id", "valid integer"),
    ],
)  # fmt: skip
def test_a_person_s_channels_must_reach_them(person: str, path: str, message: str) -> None:
    [problem] = problems_of(edit(KIM, f"  kim: {person}"))
    assert problem.path == path
    assert message in problem.message
    assert problem.line == line_of(VALID, KIM)


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        ("page_retry: 10s\n", "page_retry", "at least 30s"),
        ("heartbeats:\n  wd: {every: 5m, severity: P9, category: api}\n",
         "heartbeats.wd.severity", "unknown severity 'P9'"),
        ("heartbeats:\n  wd: {every: 5m, severity: P0, category: nope}\n",
         "heartbeats.wd.category", "unknown category 'nope'"),
        ("heartbeats:\n  wd: {every: 5s, severity: P0, category: api}\n",
         "heartbeats.wd", "at least 10s"),
        ("heartbeats:\n  wd: {every: 5m, severity: P0, category: api, matchers: ['a=~\"(\"']}\n",
         "heartbeats.wd.matchers[0]", ""),
        ("heartbeats:\n  wd: {every: 5m, severity: P0, category: api, matchers: ['job!=\"x\"']}\n",
         "heartbeats.wd.matchers", "match an alert without labels"),
        ("heartbeats:\n  wd: {every: 5m, severity: P0, category: api,"
         " matchers: ['heartbeat=\"wd\"']}\n",
         "heartbeats.wd.matchers", "match the receiver's own HeartbeatMissing alert"),
        ("heartbeats:\n  wd: {every: 5m, severity: P0, category: api, colour: red}\n",
         "heartbeats.wd.colour", "unknown key"),
    ],
)  # fmt: skip
def test_bad_paging_settings_are_named(extra: str, path: str, message: str) -> None:
    [problem] = problems_of(VALID + extra)
    assert problem.path == path
    assert message in problem.message


def test_the_testers_channel_must_be_a_chat() -> None:
    text = VALID.replace('digest: "#alerts"}', 'digest: "#alerts", announce_telegram: "#beta"}')
    [problem] = problems_of(text)
    assert problem.path == "channels.announce_telegram"
