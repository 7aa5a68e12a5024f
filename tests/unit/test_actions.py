"""People's actions as pure decisions and what they render: notes, reassignment, taking an
ack back, escalating now, retrying dead letters; table-driven, the clock given."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from receiver.config import load_rules
from receiver.domain import action_render, instructions, phases
from receiver.domain.actions import (
    NOTE_MAX,
    clean_note,
    decide_escalate,
    decide_note,
    decide_reassign,
    decide_unack,
    refusal,
    retried_all,
    retried_one,
    retry_refusal,
)
from receiver.domain.delivery import Kind
from receiver.domain.escalation import Page, TimerKind
from receiver.domain.fallback import attempts, trigger_tag
from receiver.domain.incidents import Reason, decide_triage
from receiver.domain.model import Event, Incident, Status
from receiver.domain.timeline import as_text, describe
from tests.fuzzing import jira_problems, slack_problems
from tests.helpers import SHIPPED_RULES

CFG = load_rules(SHIPPED_RULES)
T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # Thursday 10:00 in Seoul
NOW = T0 + timedelta(minutes=5)


def incident(status: Status = Status.TRIGGERED, **kw: object) -> Incident:
    base = Incident(
        id=7,
        key="k",
        rule="high-response-time",
        severity="P2",
        category="performance",
        team="devops",
        status=status,
        summary="HighResponseTime firing — order-api",
        group_labels={},
        opened_at=T0,
        triggered_at=T0,
        first_starts_at=T0,
    )
    if status is Status.ACKNOWLEDGED:
        base = replace(base, acknowledged_at=T0, acknowledged_by="kang")
    if status is Status.RESOLVED:
        base = replace(base, resolved_at=T0, resolved_by="kang")
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("  rolled back v2.3  ", "rolled back v2.3"),
        ("line one\r\nline two\rline three", "line one\nline two\nline three"),
        ("tab\tkept", "tab\tkept"),
        ("x" * NOTE_MAX, "x" * NOTE_MAX),
        ("한국어 메모 😀", "한국어 메모 😀"),
    ],
)
def test_a_note_is_kept_stripped_with_line_breaks_made_one(raw: str, kept: str) -> None:
    assert clean_note(raw) == kept


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (None, "must be the note"),
        (42, "must be the note"),
        ("", "must not be empty"),
        (" \n\t ", "must not be empty"),
        ("x" * (NOTE_MAX + 1), "at most 4000"),
        ("bell\x07", "U+0007"),
        ("nul\x00", "U+0000"),
        ("del\x7f", "U+007F"),
        ("c1\x85c1", "U+0085"),
        ("surrogate \ud800", "U+D800"),
    ],
)
def test_a_note_that_is_not_text_is_refused(raw: object, said: str) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        clean_note(raw)


@pytest.mark.parametrize("status", list(Status))
def test_a_note_goes_on_any_incident_once(status: Status) -> None:
    reason, change = decide_note(incident(status), "kim", "looking", NOW)
    assert reason is Reason.APPLIED and change is not None
    assert change.incident == incident(status)
    assert change.events == (Event("note", NOW, {"by": "kim", "text": "looking"}),)
    assert change.notifications == (Kind.NOTE,)
    [last] = change.events
    assert decide_note(incident(status), "kim", "looking", NOW, last) == (Reason.ALREADY, None)
    # another person's, or another text: a note of its own
    assert decide_note(incident(status), "lee", "looking", NOW, last)[0] is Reason.APPLIED
    assert decide_note(incident(status), "kim", "still", NOW, last)[0] is Reason.APPLIED


def test_reassigning_hands_it_over_and_pages_the_new_assignee() -> None:
    reason, change, fired = decide_reassign(incident(), "lee", "choi", NOW)
    assert reason is Reason.APPLIED and change is not None
    assert change.incident.assignee == "choi"
    [event] = change.events
    assert event.data == {"by": "lee", "to": "choi", "step": 0, "people": ["choi"],
                          "targets": ["assignee"], "paged": True}  # fmt: skip
    assert fired.pages == (Page("choi", "assignee", 0),)
    # the page is where the fallback finds it: unanswered, it moves to choi's next channel
    assert attempts([event], T0)[0, "choi"] == (Page("choi", "assignee", 0), NOW)
    again = decide_reassign(change.incident, "lee", "jung", NOW)[1]
    assert again is not None and again.events[0].data["from"] == "choi"


@pytest.mark.parametrize(
    ("given", "to", "reason"),
    [
        (incident(assignee="choi"), "choi", Reason.ALREADY),
        (incident(Status.ACKNOWLEDGED, assignee="choi"), "choi", Reason.ALREADY),
        (incident(Status.RESOLVED), "choi", Reason.CONFLICT),
        (incident(Status.ACKNOWLEDGED), "choi", Reason.APPLIED),
    ],
)
def test_reassigning_when_it_does_not_apply(given: Incident, to: str, reason: Reason) -> None:
    found, change, fired = decide_reassign(given, "lee", to, NOW)
    assert found is reason
    assert (change is None, fired.pages == ()) == ((True, True) if reason is not Reason.APPLIED
                                                   else (False, False))  # fmt: skip


def test_taking_an_ack_back_is_a_new_trigger() -> None:
    acked = incident(Status.ACKNOWLEDGED, mitigated_at=T0, mitigated_by="kang", maintenance="w")
    reason, change = decide_unack(acked, "lee", NOW)
    assert reason is Reason.APPLIED and change is not None
    again = change.incident
    assert (again.status, again.triggered_at) == (Status.TRIGGERED, NOW)
    assert again.acknowledged_at is None and again.acknowledged_by is None
    assert again.mitigated_at is None and again.mitigated_by is None
    assert again.maintenance is None
    assert again.first_starts_at == T0 and not again.reopened  # alert-to-ack still from T0
    assert change.events == (
        Event("unacknowledged", NOW, {"by": "lee", "acknowledged_by": "kang",
                                      "mitigated_by": "kang"}),
    )  # fmt: skip
    assert change.notifications == (Kind.UNACKNOWLEDGED,)
    for status in (Status.TRIGGERED, Status.RESOLVED):
        assert decide_unack(incident(status), "lee", NOW) == (Reason.CONFLICT, None)


def test_a_phase_ended_again_in_its_cycle_is_not_observed_twice() -> None:
    opened = Event("opened", T0)
    acked = Event("acknowledged", T0, {"by": "kang"})
    taken = Event("unacknowledged", NOW, {"by": "lee"})
    assert phases.ended_in_cycle([opened]) == set()
    assert phases.ended_in_cycle([opened, acked, taken]) == {"ack"}
    # a reopen starts a new cycle: its ack is observed
    reopened = Event("reopened", NOW)
    assert phases.ended_in_cycle([opened, acked, Event("resolved", T0), reopened]) == set()


def test_escalating_pages_the_next_step_now_and_keeps_the_spacing_after_it() -> None:
    reason, done = decide_escalate(incident(), CFG, {0}, "lee", NOW)
    assert reason is Reason.APPLIED and done is not None
    assert done.step == 1
    assert done.fired.pages == (Page("kang", "team_lead", 1),)
    [event] = done.fired.events
    assert (event.event, event.data["by"], event.data["step"]) == ("escalated", "lee", 1)
    assert done.fired.notifications == (Kind.ESCALATED,)
    # steps 2 and 3 come 30 and 105 minutes after this one, as 45m and 2h after 15m
    assert [(t.kind, t.step, t.due_at, t.trigger) for t in done.timers] == [
        (TimerKind.ESCALATION, 2, NOW + timedelta(minutes=30), NOW),
        (TimerKind.ESCALATION, 3, NOW + timedelta(minutes=105), NOW),
    ]


def test_escalating_at_night_pages_now_and_spaces_the_rest_from_the_morning() -> None:
    night = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)  # 23:00 in Seoul; P2 waits for 09:00
    morning = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
    _, done = decide_escalate(incident(triggered_at=night), CFG, set(), "lee", night)
    assert done is not None and done.step == 0 and done.fired.pages  # asked: paged now
    assert [(t.step, t.due_at) for t in done.timers] == [
        (1, morning + timedelta(minutes=15)),
        (2, morning + timedelta(minutes=45)),
        (3, morning + timedelta(hours=2)),
    ]


@pytest.mark.parametrize(
    ("given", "paged", "step", "later"),
    [
        (incident(), set(), 0, 3),  # nothing paged yet (held for business hours): step 0
        (incident(), {0, 1, 2}, 3, 0),  # the last step: nothing after it
        (incident(Status.ACKNOWLEDGED), {0}, 1, 0),  # acknowledged: no ladder after it
        (incident(severity="P3"), set(), 0, 0),  # P3 pages nobody by itself: only this page
    ],
)
def test_escalating_from_where_the_ladder_is(
    given: Incident, paged: set[int], step: int, later: int
) -> None:
    reason, done = decide_escalate(given, CFG, paged, "lee", NOW)
    assert reason is Reason.APPLIED and done is not None
    assert (done.step, len(done.timers)) == (step, later)


@pytest.mark.parametrize(
    ("given", "paged"),
    [
        (incident(), {0, 1, 2, 3}),
        (incident(Status.RESOLVED), set()),
        (incident(team="nobody"), set()),
        (incident(severity="P0"), {0}),  # P0's ladder is one step
    ],
)
def test_escalating_past_the_ladder_or_once_resolved_is_refused(
    given: Incident, paged: set[int]
) -> None:
    assert decide_escalate(given, CFG, paged, "lee", NOW) == (Reason.CONFLICT, None)


def test_refusals_say_why() -> None:
    assert "no such escalation step" in refusal("escalate", incident())
    assert refusal("escalate", incident(Status.RESOLVED)) == "incident is resolved"
    assert "only an acknowledged incident" in refusal("unack", incident())
    assert refusal("reassign", incident(Status.RESOLVED)) == "incident is resolved"


@pytest.mark.parametrize(
    ("status", "kind", "page", "of", "refused"),
    [
        ("dead", "incident.opened", None, None, None),
        ("dead", "incident.opened", None, incident(Status.RESOLVED), None),
        ("pending", "incident.opened", None, incident(), "delivery is pending, not dead"),
        ("sent", "page", {}, incident(), "delivery is sent, not dead"),
        ("dead", "page", {"trigger": trigger_tag(T0)}, incident(), None),
        ("dead", "page", {}, incident(Status.ACKNOWLEDGED), "incident that is acknowledged"),
        ("dead", "page", {}, None, "incident that is gone"),
        ("dead", "page", {"trigger": trigger_tag(NOW)}, incident(), "an earlier trigger"),
    ],
)
def test_what_a_retry_sends_again(
    status: str, kind: str, page: dict[str, object] | None, of: Incident | None, refused: str | None
) -> None:
    found = retry_refusal(status, kind, page, of)
    assert (found is None) if refused is None else (found is not None and refused in found)


def test_triage_keeps_the_assignee_where_reassigning_does() -> None:
    report = incident(source="report")
    reason, change = decide_triage(report, "lee", NOW, assignee="kim")
    assert reason is Reason.APPLIED and change is not None
    assert change.incident.assignee == "kim"
    assert change.incident.triggered_at == T0  # an assignee alone changes no policy
    assert decide_triage(change.incident, "lee", NOW, assignee="kim") == (Reason.ALREADY, None)
    assert decide_reassign(change.incident, "lee", "kim", NOW)[0] is Reason.ALREADY


@pytest.mark.parametrize(
    ("event", "said"),
    [
        (Event("note", NOW, {"by": "kim", "text": "rolled back"}),
         "Kim Minjun added a note: rolled back"),
        (Event("reassigned", NOW, {"by": "lee", "to": "choi", "people": ["choi"]}),
         "Lee Jihoon reassigned it to Choi Yuna; paged Choi Yuna"),
        (Event("reassigned", NOW, {"by": "lee", "to": "choi", "from": "kim"}),
         "Lee Jihoon reassigned it to Choi Yuna (from Kim Minjun)"),
        (Event("unacknowledged", NOW, {"by": "lee", "acknowledged_by": "kim"}),
         "Lee Jihoon took back the acknowledgement of Kim Minjun: triggered again, escalation "
         "restarts from step 0"),
        (Event("escalated", NOW, {"by": "lee", "step": 2, "people": ["park"]}),
         "Lee Jihoon escalated it to Park Seoyeon (step 2)"),
        (Event("escalated", NOW, {"step": 2, "people": ["park"]}),
         "Escalated to Park Seoyeon (step 2)"),
        (Event("delivery_retried", NOW, {"by": "lee", "delivery": 12, "channel": "jira"}),
         "Lee Jihoon retried dead delivery #12 (jira)"),
        (retried_one("lee", 12, "jira", NOW), "Lee Jihoon retried dead delivery #12 (jira)"),
        (retried_all("lee", [3, 4], NOW), "Lee Jihoon retried 2 dead deliveries (#3, #4)"),
    ],
)  # fmt: skip
def test_the_timeline_names_the_person(event: Event, said: str) -> None:
    assert describe(event, CFG) == said


def test_a_note_of_several_lines_stays_readable_in_the_text_timeline() -> None:
    note = Event("note", NOW, {"by": "kim", "text": "first line\nsecond line"})
    text = as_text(incident(), [note], CFG)
    [line, more] = [x for x in text.splitlines() if "first line" in x or "second line" in x]
    assert line.endswith("Kim Minjun added a note: first line")
    assert more.strip() == "second line" and more.startswith(" " * 10)


HOSTILE = "*bold* _em_ [link|http://evil.example] {code} h1. head\n# list\n<@U0LEE> @channel"


@pytest.mark.parametrize("kind", sorted(action_render.ACTION_KINDS))
def test_what_jira_and_slack_are_told_is_escaped(kind: str) -> None:
    acted = incident(assignee="choi")
    data = {"by": "lee", "to": "choi", "text": HOSTILE, "acknowledged_by": "kang",
            "people": ["choi"]}  # fmt: skip
    event = Event(action_render.EVENTS[kind], NOW, data)
    order = instructions.jira(kind, acted, [event], CFG, "inst")
    assert jira_problems(order["comment"]) == []
    if kind == Kind.REASSIGNED:
        assert order["assign"] == "choi"
    slack = instructions.slack(kind, acted, CFG, [event])
    assert slack_problems(slack["reply"]) == []
    assert slack["update"] == ("all" if kind == Kind.UNACKNOWLEDGED else None)


@pytest.mark.parametrize(
    ("kind", "data", "said"),
    [
        (Kind.NOTE, {"by": "kim", "text": "rolled back\nwatching"},
         "Note by Kim Minjun at 2026-11-26 10:05 KST:\nrolled back\nwatching"),
        (Kind.REASSIGNED, {"by": "lee", "to": "choi", "from": "kim", "people": ["choi"]},
         "Reassigned to Choi Yuna by Lee Jihoon at 2026-11-26 10:05 KST (was Kim Minjun); Choi "
         "Yuna is paged."),
        (Kind.UNACKNOWLEDGED, {"by": "lee", "acknowledged_by": "kang"},
         "Acknowledgement by Kang Dohyun taken back by Lee Jihoon at 2026-11-26 10:05 KST: "
         "triggered again, escalation starts again from step 0."),
    ],
)  # fmt: skip
def test_jira_comments_of_actions(kind: str, data: dict[str, object], said: str) -> None:
    event = Event(action_render.EVENTS[kind], NOW, data)
    assert action_render.jira_comment(kind, incident(), [event], CFG) == said


def test_a_manual_escalation_says_who_asked_in_jira() -> None:
    _, done = decide_escalate(incident(), CFG, {0}, "lee", NOW)
    assert done is not None
    order = instructions.jira(Kind.ESCALATED, incident(), done.fired.events, CFG, "inst")
    assert order["comment"] == (
        "Escalated by Lee Jihoon (step 1) at 2026-11-26 10:05 KST to Kang Dohyun."
    )


def test_the_issue_is_created_for_the_assignee() -> None:
    assert instructions.jira_user(incident(assignee="choi"), CFG) == "choi"
    assert instructions.jira_user(incident(), CFG) == "kang"  # devops' on-call at the open


def test_reassigning_when_the_severity_does_not_page_now_wakes_nobody() -> None:
    reason, change, fired = decide_reassign(incident(severity="P3"), "lee", "choi", NOW, False)
    assert reason is Reason.APPLIED and change is not None
    assert change.incident.assignee == "choi"
    assert fired.pages == ()
    [event] = change.events
    assert event.data == {"by": "lee", "to": "choi", "paged": False}
    assert change.notifications == (Kind.REASSIGNED,)  # JIRA's assignee and Slack still told


@pytest.mark.parametrize(
    ("paged", "expected", "reason"),
    [
        ({0}, 1, Reason.APPLIED),  # the step the person saw as next
        ({0, 1}, 1, Reason.ALREADY),  # paged meanwhile: a double click climbs one step
        ({0}, 2, Reason.CONFLICT),  # the ladder is elsewhere than the person saw
        ({0, 1}, None, Reason.APPLIED),  # without a step: the next one, whatever it is
    ],
)
def test_escalating_the_step_the_person_meant(
    paged: set[int], expected: int | None, reason: Reason
) -> None:
    found, done = decide_escalate(incident(), CFG, paged, "lee", NOW, expected)
    assert found is reason
    assert (done is not None) is (reason is Reason.APPLIED)


def test_the_same_note_later_is_a_note_of_its_own() -> None:
    last = Event("note", NOW, {"by": "lee", "text": "still investigating"})
    soon = decide_note(incident(), "lee", "still investigating", NOW + timedelta(minutes=9), last)
    later = decide_note(incident(), "lee", "still investigating", NOW + timedelta(minutes=10), last)
    assert (soon[0], later[0]) == (Reason.ALREADY, Reason.APPLIED)


def test_an_outage_announcement_is_not_retried_once_resolved() -> None:
    for kind in (Kind.ANNOUNCE_OPENED,):
        assert retry_refusal("dead", kind, None, incident(Status.RESOLVED)) is not None
        assert retry_refusal("dead", kind, None, incident()) is None
    assert retry_refusal("dead", Kind.ANNOUNCE_RESOLVED, None, incident(Status.RESOLVED)) is None
