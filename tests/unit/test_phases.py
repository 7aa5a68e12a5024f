"""Phase deadlines and breaches, table-driven with an injected clock: a P0 through its four
phases (ack 15m, mitigate 30m, resolve 2h, report 1h) on time, each phase late in turn, an
ack and a mitigation at the same moment, and a reopen that starts the clocks again."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from receiver.config.models import PHASES
from receiver.domain import phases
from receiver.domain.escalation import (
    Timer,
    TimerKind,
    after_breach,
    fire,
    phase_timer,
)
from receiver.domain.incidents import Reason, decide_mitigate, decide_report, decide_resolve
from receiver.domain.model import Incident, Status
from receiver.domain.phase_render import rows, text_table
from tests.unit.test_slack_render import CFG

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # Thursday 10:00 in Seoul
MIN = timedelta(minutes=1)
P0 = Incident(
    id=7, key="k", rule="r", severity="P0", category="api", team="backend",
    status=Status.TRIGGERED, summary="orders failing", group_labels={}, opened_at=T0,
    triggered_at=T0, first_starts_at=T0 - MIN,
)  # fmt: skip


def through(ack: int | None, mitigate: int | None, resolve: int | None,
            report: int | None) -> Incident:  # fmt: skip
    """The P0 with each phase ended that many minutes after the open (None: not yet)."""
    at = {k: (T0 + v * MIN if v is not None else None) for k, v in
          dict(ack=ack, mitigate=mitigate, resolve=resolve, report=report).items()}  # fmt: skip
    status = Status.TRIGGERED
    if at["ack"] or at["mitigate"]:
        status = Status.ACKNOWLEDGED
    if at["resolve"]:
        status = Status.RESOLVED
    return replace(
        P0, status=status, acknowledged_at=at["ack"], acknowledged_by="kim" if ack else None,
        mitigated_at=at["mitigate"], mitigated_by="kim" if mitigate else None,
        resolved_at=at["resolve"], resolved_by="kim" if resolve else None,
        reported_at=at["report"], reported_by="lee" if report else None,
    )  # fmt: skip


def test_deadlines_count_from_the_end_of_the_phase_before() -> None:
    fresh = phases.deadlines(P0, CFG)
    # none begun: each counts from its predecessor's deadline, the latest it may begin
    assert fresh == {"ack": T0 + 15 * MIN, "mitigate": T0 + 45 * MIN,
                     "resolve": T0 + 165 * MIN, "report": T0 + 225 * MIN}  # fmt: skip
    early = phases.deadlines(through(5, None, None, None), CFG)
    assert early["mitigate"] == T0 + 35 * MIN  # an early ack brings the rest earlier
    assert early["resolve"] == T0 + 155 * MIN
    late = phases.deadlines(through(20, 60, None, None), CFG)
    assert late["mitigate"] == T0 + 50 * MIN and late["resolve"] == T0 + 180 * MIN


@pytest.mark.parametrize(
    ("ends", "verdicts"),
    [
        pytest.param((10, 30, 100, 140), ["met", "met", "met", "met"], id="all on time"),
        pytest.param((20, 40, 100, 140), ["missed", "met", "met", "met"], id="ack late"),
        pytest.param((10, 50, 100, 140), ["met", "missed", "met", "met"], id="mitigate late"),
        pytest.param((10, 30, 200, 240), ["met", "met", "missed", "met"], id="resolve late"),
        pytest.param((10, 30, 100, 170), ["met", "met", "met", "missed"], id="report late"),
        pytest.param((10, 10, 100, None), ["met", "met", "met", "due"],
                     id="ack and mitigate at once, the postmortem still due"),
        pytest.param((None, None, 10, None), ["skipped (within its target)",
                     "skipped (within its target)", "met", "overdue"], id="resolved by itself"),
        pytest.param((None, None, 50, None), ["missed", "missed", "met", "overdue"],
                     id="resolved without an ack, past the ack's deadline"),
    ],
)  # fmt: skip
def test_each_phase_against_its_target(ends: tuple[int | None, ...], verdicts: list[str]) -> None:
    incident = through(*ends)
    now = T0 + 150 * MIN
    table = rows(incident, CFG, now)
    assert [r[0] for r in table] == ["Acknowledge", "Mitigate", "Resolve", "Report"]
    assert [r[4] for r in table] == verdicts
    assert [r[1] for r in table] == ["15 min", "30 min", "2 h", "1 h"]


def test_durations_are_observed_from_the_end_of_the_phase_before() -> None:
    reason, change = decide_mitigate(P0, "kim", T0 + 12 * MIN)  # ack and mitigate at once
    assert reason is Reason.APPLIED and change is not None
    done = change.incident
    assert done.status is Status.ACKNOWLEDGED
    assert done.acknowledged_at == done.mitigated_at == T0 + 12 * MIN
    assert phases.durations(done, change.events) == [("ack", 780.0), ("mitigate", 0.0)]
    _, resolved = decide_resolve(done, "kim", T0 + 72 * MIN)
    assert resolved is not None
    assert phases.durations(resolved.incident, resolved.events) == [("resolve", 3600.0)]
    _, reported = decide_report(resolved.incident, "lee", T0 + 100 * MIN)
    assert reported is not None
    assert phases.durations(reported.incident, reported.events) == [("report", 1680.0)]
    assert decide_report(reported.incident, "lee", T0 + 101 * MIN) == (Reason.ALREADY, None)
    assert decide_mitigate(done, "kim", T0 + 13 * MIN) == (Reason.ALREADY, None)
    assert decide_report(done, "kim", T0 + 13 * MIN) == (Reason.CONFLICT, None)  # still open


def test_the_phase_deadlines_ahead_and_the_timer_of_the_phase_now_running() -> None:
    acked = through(10, None, None, None)
    assert set(phases.ahead(acked, CFG)) == {"mitigate", "resolve", "report"}
    assert phase_timer(acked, CFG) == Timer(TimerKind.PHASE, 1, T0 + 40 * MIN, T0)
    resolved = through(10, 30, 100, None)
    assert phases.ahead(resolved, CFG) == {"report": T0 + 160 * MIN}
    assert phase_timer(resolved, CFG) == Timer(TimerKind.PHASE, 3, T0 + 160 * MIN, T0)
    assert phase_timer(through(10, 30, 100, 120), CFG) is None  # all done
    assert phase_timer(P0, CFG) is None  # the ack's deadline is the ack timeout's timer


@pytest.mark.parametrize(
    ("ends", "phase", "owner"),
    [
        pytest.param((10, None, None, None), "mitigate", "kim", id="mitigate"),
        pytest.param((10, 30, None, None), "resolve", "kim", id="resolve"),
        pytest.param((10, 30, 100, None), "report", "kim", id="report"),
    ],
)  # fmt: skip
def test_a_phase_past_its_deadline_reminds_the_owner_and_escalates_one_step(
    ends: tuple[int | None, ...], phase: str, owner: str
) -> None:
    incident = replace(through(*ends), team="data")  # on call: shin; lead: shin
    due = phases.deadlines(incident, CFG)[phase]
    timer = Timer(TimerKind.PHASE, PHASES.index(phase), due, T0)
    fired = fire(incident, timer, CFG, due, {0})
    assert fired.phase_breach == phase
    [event] = fired.events
    assert event.event == "phase_overdue" and event.data["phase"] == phase
    assert event.data["owner"] == [owner]
    # P0 has one step: past the ladder's end, its last step again (everyone of step 0)
    assert fired.escalated_step == 0
    assert fired.pages[0].person == owner
    assert {"lee", "park"} <= {p.person for p in fired.pages}
    # finished meanwhile, or the timer of an earlier cycle: nothing
    finished = {"mitigate": "mitigated_at", "resolve": "resolved_at", "report": "reported_at"}
    done = replace(incident, **{finished[phase]: due - MIN, "status": Status.RESOLVED}
                   if phase != "mitigate" else {finished[phase]: due - MIN})  # fmt: skip
    assert fire(done, timer, CFG, due, {0}).phase_breach is None
    reopened = replace(incident, triggered_at=T0 + MIN)
    assert fire(reopened, timer, CFG, due, {0}).phase_breach is None


def test_a_missed_deadline_starts_the_next_phase_clock_from_it() -> None:
    acked = through(10, None, None, None)
    following = after_breach(acked, CFG, "mitigate")
    assert following == Timer(TimerKind.PHASE, 2, T0 + 160 * MIN, T0)  # 40 min + 2 h
    assert after_breach(through(10, 30, None, None), CFG, "resolve") is None  # report waits


def test_the_ack_deadline_counts_a_breach_of_the_ack_phase_too() -> None:
    timer = Timer(TimerKind.ACK_SLA, 0, T0 + 15 * MIN, T0)
    fired = fire(P0, timer, CFG, T0 + 15 * MIN, {0})
    assert fired.breach and fired.phase_breach == "ack"
    assert [e.event for e in fired.events] == ["ack_sla_breached", "phase_overdue"]
    oncall = fired.events[1].data["owner"]
    assert oncall == ["kim"]  # nobody acknowledged: the on-call is reminded


def test_a_reopen_starts_every_clock_again() -> None:
    done = through(10, 30, 100, 150)
    again = replace(
        done, status=Status.TRIGGERED, triggered_at=T0 + 200 * MIN, acknowledged_at=None,
        acknowledged_by=None, mitigated_at=None, mitigated_by=None, resolved_at=None,
        resolved_by=None, reported_at=None, reported_by=None,
    )  # fmt: skip
    assert phases.ahead(again, CFG)["ack"] == T0 + 215 * MIN
    old = Timer(TimerKind.PHASE, 3, T0 + 160 * MIN, T0)
    assert fire(again, old, CFG, T0 + 216 * MIN).events == ()


def test_the_plain_text_table() -> None:
    lines = text_table(through(10, 50, None, None), CFG, T0 + 60 * MIN)
    assert lines[0].startswith("Phases")
    assert lines[1] == (
        "  Acknowledge: target 15 min, due 2026-11-26 10:15 KST; "
        "done 2026-11-26 10:10 KST (took 11 min): met"
    )
    assert lines[2].endswith("(took 40 min): missed")
    assert lines[3] == "  Resolve: target 2 h, due 2026-11-26 12:50 KST; done not yet: due"
