"""The daily standup: due times in local wall-clock time on its days (Seoul, Berlin and New
York across their daylight-saving changes, holidays skipped), and what it says."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from receiver.config.models import RulesConfig, StandupConfig
from receiver.domain.model import Incident, Status
from receiver.domain.standup import next_standup, previous_standup, render_standup
from tests.unit.test_slack_render import CFG


def with_standup(**fields: object) -> RulesConfig:
    standup = StandupConfig.model_validate({"at": "09:30", **fields})
    channels = CFG.channels.model_copy(update={"standup": "#standup"})
    return CFG.model_copy(update={"standup": standup, "channels": channels})


SEOUL = with_standup(timezone="Asia/Seoul", holidays="KR")
BERLIN = with_standup(timezone="Europe/Berlin")
NEW_YORK = with_standup(timezone="America/New_York", days=["mon", "wed", "fri"])


@pytest.mark.parametrize(
    ("cfg", "after", "expected"),
    [
        pytest.param(SEOUL, "2026-11-26T09:00:00+09:00", "2026-11-26T09:30:00+09:00",
                     id="seoul same morning"),
        pytest.param(SEOUL, "2026-11-26T09:30:00+09:00", "2026-11-27T09:30:00+09:00",
                     id="seoul at the time: the next day"),
        pytest.param(SEOUL, "2026-11-27T10:00:00+09:00", "2026-11-30T09:30:00+09:00",
                     id="seoul friday: monday"),
        pytest.param(SEOUL, "2025-12-24T12:00:00+09:00", "2025-12-26T09:30:00+09:00",
                     id="seoul christmas skipped"),
        pytest.param(SEOUL, "2026-09-23T12:00:00+09:00", "2026-09-28T09:30:00+09:00",
                     id="seoul chuseok skipped"),
        pytest.param(BERLIN, "2027-03-26T12:00:00+01:00", "2027-03-29T09:30:00+02:00",
                     id="berlin across spring forward: 09:30 in summer time"),
        pytest.param(BERLIN, "2027-10-29T12:00:00+02:00", "2027-11-01T09:30:00+01:00",
                     id="berlin across fall back: 09:30 in winter time"),
        pytest.param(NEW_YORK, "2027-03-12T12:00:00-05:00", "2027-03-15T09:30:00-04:00",
                     id="new york friday to monday across spring forward"),
        pytest.param(NEW_YORK, "2027-03-15T09:30:00-04:00", "2027-03-17T09:30:00-04:00",
                     id="new york monday to wednesday"),
        pytest.param(NEW_YORK, "2027-11-05T10:00:00-04:00", "2027-11-08T09:30:00-05:00",
                     id="new york across fall back"),
    ],
)  # fmt: skip
def test_next_standup(cfg: RulesConfig, after: str, expected: str) -> None:
    due = next_standup(datetime.fromisoformat(after), cfg)
    assert due == datetime.fromisoformat(expected)
    assert due is not None and previous_standup(due + timedelta(seconds=1), cfg) == due


def test_no_standup_configured_is_never_due() -> None:
    assert next_standup(datetime(2026, 11, 26, tzinfo=UTC), CFG) is None
    assert previous_standup(datetime(2026, 11, 26, tzinfo=UTC), CFG) is None


T0 = datetime.fromisoformat("2026-11-26T09:30:00+09:00")
BASE = Incident(
    id=7, key="k", rule="r", severity="P1", category="api", team="backend",
    status=Status.TRIGGERED, summary="주문 API 오류 *굵게* <!channel>", group_labels={},
    opened_at=T0 - timedelta(hours=2), triggered_at=T0 - timedelta(hours=2),
    first_starts_at=T0 - timedelta(hours=2),
)  # fmt: skip


def test_a_mitigated_incident_is_being_fixed_and_without_phase_targets_respond_within_counts(
) -> None:  # fmt: skip
    mitigated = replace(BASE, status=Status.ACKNOWLEDGED, acknowledged_by="kim",
                        acknowledged_at=T0 - timedelta(minutes=100), mitigated_by="choi",
                        mitigated_at=T0 - timedelta(minutes=90))  # fmt: skip
    line = render_standup([mitigated], SEOUL, T0, None).splitlines()[2]
    assert line.endswith("2 h old, Choi Yuna, mitigated, being fixed")
    p1 = SEOUL.severities["P1"].model_copy(update={"phases": None})
    plain = SEOUL.model_copy(update={"severities": {**SEOUL.severities, "P1": p1}})
    late = replace(mitigated, first_starts_at=T0 - timedelta(hours=5))
    line = render_standup([late], plain, T0, None).splitlines()[2]
    assert line.endswith("acknowledged, being fixed — *fix overdue by 1 h*")


def test_the_standup_lists_what_is_active_oldest_first_with_what_is_overdue() -> None:
    acked = replace(BASE, id=8, status=Status.ACKNOWLEDGED, acknowledged_by="kim",
                    acknowledged_at=T0 - timedelta(minutes=90),
                    opened_at=T0 - timedelta(hours=5), first_starts_at=T0 - timedelta(hours=5),
                    summary="시세 지연")  # fmt: skip
    report = replace(BASE, id=9, severity="P3", source="report", summary="화면이 깨져요",
                     opened_at=T0 - timedelta(minutes=10), triggered_at=T0 - timedelta(minutes=10),
                     first_starts_at=T0 - timedelta(minutes=10))  # fmt: skip
    done = replace(BASE, id=6, status=Status.RESOLVED, resolved_at=T0 - timedelta(hours=1),
                   summary="로그인 지연")  # fmt: skip
    since = T0 - timedelta(days=1)
    text = render_standup([BASE, acked, report, done], SEOUL, T0, since)
    lines = text.splitlines()
    assert lines[0] == "*Daily standup*: Thu 26 Nov 2026 09:30 KST"
    assert lines[1] == "*Active:* 3"
    assert [line.split(":")[0] for line in lines[2:5]] == [
        "• #8 [P1][api] 시세 지연",  # opened 5 h ago: first
        f"• #7 [P1][api] {lines[3].split('] ')[1].split(':')[0]}",
        "• #9 [P3][report] 화면이 깨져요",
    ]
    # each phase against its deadline (P1: ack 30 min, mitigate 1 h from the ack)
    assert lines[2].endswith(
        "5 h old, Kim Minjun, acknowledged, being mitigated — *mitigate overdue by 30 min*"
    )
    assert lines[3].endswith(
        "(on call), waiting for an ack — *ack overdue by 1 h 30 min; mitigate overdue by 30 min*"
    )
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text  # shown as written
    assert "*Since the last standup* (Wed 09:30): 4 opened, 1 resolved" in text
    assert "• resolved: #6 [P1] 로그인 지연" in text
