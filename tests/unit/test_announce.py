"""Which incidents beta testers hear of, and in which language: the severity announces, the
rule (when it says) or else the category may keep an incident from them, reports are never
announced; every placeholder is written in ``announcements.locale``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from receiver.config.models import AnnouncementsConfig, HeartbeatConfig, RulesConfig
from receiver.domain.announce import announcement, announces
from receiver.domain.model import Incident, Status
from tests.unit.test_slack_render import CFG

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def incident(**fields: object) -> Incident:
    base: dict[str, object] = {
        "id": 1, "key": "k", "rule": "stale-market-data", "severity": "P1", "category": "data",
        "team": "data", "status": Status.TRIGGERED, "summary": "s", "group_labels": {},
        "opened_at": T0, "triggered_at": T0, "first_starts_at": T0,
    }  # fmt: skip
    base.update(fields)
    return Incident(**base)  # type: ignore[arg-type]


def with_rule_announce(cfg: RulesConfig, name: str, value: bool | None) -> RulesConfig:
    rules = [r.model_copy(update={"announce": value}) if r.name == name else r for r in cfg.rules]
    return cfg.model_copy(update={"rules": rules})


def with_category_announce(cfg: RulesConfig, name: str, value: bool) -> RulesConfig:
    categories = dict(cfg.categories)
    categories[name] = categories[name].model_copy(update={"announce": value})
    return cfg.model_copy(update={"categories": categories})


@pytest.mark.parametrize(
    ("case", "cfg", "fields", "expected"),
    [
        ("a P1 of an announcing category", CFG, {}, True),
        ("a P2: its severity does not announce", CFG, {"severity": "P2"}, False),
        ("a report: its reporters hear back themselves", CFG, {"source": "report"}, False),
        ("the receiver's own health rule", CFG, {"rule": "receiver-backlog"}, False),
        (
            "a security incident (category says no)",
            CFG,
            {"rule": "unauthorized-access-spike", "category": "security"},
            False,
        ),
        (
            "a rule saying yes wins over its category's no",
            with_rule_announce(CFG, "unauthorized-access-spike", True),
            {"rule": "unauthorized-access-spike", "category": "security"},
            True,
        ),
        (
            "a rule saying no wins over its category's yes",
            with_rule_announce(CFG, "stale-market-data", False),
            {},
            False,
        ),
        (
            "the category says no and the rule does not say",
            with_category_announce(CFG, "data", False),
            {},
            False,
        ),
        (
            "a rule no longer in the rules file: the category decides",
            CFG,
            {"rule": "renamed-since"},
            True,
        ),
    ],
)
def test_who_is_announced(
    case: str, cfg: RulesConfig, fields: dict[str, object], expected: bool
) -> None:
    assert announces(incident(**fields), cfg) is expected, case


def in_language(locale: str, **wording: object) -> RulesConfig:
    raw: dict[str, object] = {"locale": locale, **wording}
    return CFG.model_copy(update={"announcements": AnnouncementsConfig.model_validate(raw)})


def test_every_placeholder_is_written_in_the_announcements_language() -> None:
    done = incident(category="api", resolved_at=T0 + timedelta(hours=2, minutes=3))
    korean = announcement("resolved", done, in_language("ko"))
    assert korean == (
        "해결: 증권사 연동을 통한 주문과 잔고 관련 문제가 2026년 11월 26일 (목) 오후 12:03 KST에 "
        "해결되었습니다. 2026년 11월 26일 (목) 오전 10:00 KST에 시작되어 2시간 3분 동안 "
        "이어졌습니다. 기다려 주셔서 감사합니다."
    )
    english = announcement("resolved", done, in_language("en"))
    assert english == (
        "Fixed: the problem affecting orders and balances sent through our brokerage partner "
        "is resolved as of Nov 26, 2026, 12:03 PM KST. It started at Nov 26, 2026, 10:00 AM "
        "KST and lasted 2 hours, 3 minutes. Thank you for your patience."
    )
    own = in_language("ko", default={"resolved": "{since}부터 {until}까지 ({duration})"})
    assert announcement("resolved", done, own) == (
        "2026년 11월 26일 (목) 오전 10:00 KST부터 "
        "2026년 11월 26일 (목) 오후 12:03 KST까지 (2시간 3분)"
    )


def test_a_category_the_catalog_does_not_know_reads_as_part_of_the_service() -> None:
    text = announcement("opened", incident(category="billing"), in_language("ko"))
    assert text.startswith("거래 서비스 일부 관련 문제를 확인하고 있습니다.")
    under = incident(resolved_at=T0 + timedelta(seconds=20))
    assert "1분 미만 동안" in announcement("resolved", under, in_language("ko"))


def test_a_heartbeat_s_silence_is_announced_only_when_its_heartbeat_says_so() -> None:
    beat: dict[str, object] = {"every": "5m", "severity": "P1", "category": "network"}
    silent = incident(severity="P1", category="network", rule="heartbeat:watchdog")
    quiet = {"watchdog": HeartbeatConfig.model_validate(beat)}
    assert not announces(silent, CFG.model_copy(update={"heartbeats": quiet}))
    loud = {"watchdog": HeartbeatConfig.model_validate({**beat, "announce": True})}
    assert announces(silent, CFG.model_copy(update={"heartbeats": loud}))
    assert not announces(silent, CFG)  # a heartbeat the rules no longer have
