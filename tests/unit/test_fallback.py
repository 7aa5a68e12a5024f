"""Which pages move to the next channel, and when: pure, on the timeline and the rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from receiver.config import load_rules
from receiver.domain import fallback
from receiver.domain.escalation import Page, TimerKind
from receiver.domain.model import Event, Incident, Status
from tests.helpers import SHIPPED_RULES

BASE = load_rules(SHIPPED_RULES)
PEOPLE = {
    **BASE.people,
    "kim": BASE.people["kim"].model_copy(
        update={"telegram_id": 1001, "notify": ["slack", "telegram", "email"]}
    ),
    "choi": BASE.people["choi"].model_copy(update={"telegram_id": 1002, "notify": ["telegram"]}),
}
CFG = BASE.model_copy(update={"people": PEOPLE})
T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def incident(status: Status = Status.TRIGGERED, triggered: datetime = T0) -> Incident:
    return Incident(
        id=7, key="k", rule="r", severity="P1", category="api", team="backend", status=status,
        summary="s", group_labels={}, opened_at=T0, triggered_at=triggered, first_starts_at=T0,
    )  # fmt: skip


def paged(step: int, *people: str, at: datetime = T0) -> Event:
    data = {"step": step, "people": list(people), "targets": ["oncall"] * len(people)}
    return Event("paged" if step == 0 else "escalated", at, data)


def moved(person: str, step: int, attempt: int, at: datetime) -> Event:
    return Event("page_fallback", at, {"person": person, "step": step, "attempt": attempt})


def test_codes_round_trip() -> None:
    for step in range(4):
        for attempt in range(3):
            assert fallback.decode(fallback.code(step, attempt)) == (step, attempt)


def test_a_retry_timer_only_for_people_with_a_next_channel() -> None:
    [timer] = fallback.retry_timer(CFG, [Page("kim", "oncall", 1), Page("lee", "tl", 1)], T0, T0)
    assert (timer.kind, timer.step, timer.due_at) == (TimerKind.PAGE_RETRY, 11, T0 + 5 * MIN)
    assert fallback.retry_timer(CFG, [Page("lee", "tech_lead", 0)], T0, T0) == []
    assert fallback.retry_timer(CFG, [Page("choi", "oncall", 0)], T0, T0) == []  # one channel
    assert fallback.retry_timer(CFG, [Page("kim", "oncall", 0, attempt=2)], T0, T0) == []


def move(
    timeline: list[Event],
    at: datetime,
    step: int,
    attempt: int,
    person: str | None = None,
    status: Status = Status.TRIGGERED,
    waited: timedelta | None = None,
) -> fallback.Moved:
    return fallback.move_on(
        incident(status), CFG, timeline, at, step, attempt, "why", person, waited
    )


def test_no_ack_moves_each_page_of_the_step_once() -> None:
    timeline = [Event("opened", T0, {}), paged(0, "kim", "lee")]
    fired = move(timeline, T0 + 5 * MIN, 0, 1).fired
    assert fired.pages == (Page("kim", "oncall", 0, 1),)  # lee has Slack only
    [event] = fired.events
    assert event.data == {"person": "kim", "step": 0, "attempt": 1, "channel": "telegram",
                          "from": "slack", "why": "why"}  # fmt: skip
    # moved already (a failed delivery got there first): the timer moves nobody again
    later = [*timeline, moved("kim", 0, 1, T0 + MIN)]
    assert move(later, T0 + 5 * MIN, 0, 1).fired.pages == ()
    # and the next timer takes it on to e-mail
    fired = move(later, T0 + 6 * MIN, 0, 2).fired
    assert [(p.person, p.attempt) for p in fired.pages] == [("kim", 2)]
    assert fired.events[0].data["channel"] == "email"


def test_a_page_moved_lately_waits_its_own_page_retry() -> None:
    """One person's page failed for good at once and moved on; the step's timer, set then,
    must not cut short another's wait on the channel it reached later."""
    timeline = [paged(0, "kim", "choi"), moved("choi", 0, 1, T0 + 5 * MIN)]
    early = [*timeline, moved("kim", 0, 1, T0 + MIN)]
    found = move(early, T0 + 6 * MIN, 0, 2, waited=5 * MIN)
    assert [(p.person, p.attempt) for p in found.fired.pages] == [("kim", 2)]
    assert found.again is None  # choi has no channel after Telegram
    late = [paged(0, "kim"), moved("kim", 0, 1, T0 + 5 * MIN)]
    found = move(late, T0 + 6 * MIN, 0, 2, waited=5 * MIN)
    assert found.fired.pages == () and found.again == T0 + 10 * MIN


def test_a_page_sent_again_starts_at_the_first_channel_again() -> None:
    """Kim moved to Telegram, then a severity raise paged kim again at step 0 on Slack:
    that page moves on to Telegram in its turn."""
    timeline = [paged(0, "kim"), moved("kim", 0, 1, T0 + 5 * MIN), paged(0, "kim", at=T0 + 7 * MIN)]
    assert fallback.attempts(timeline, T0)[0, "kim"] == (Page("kim", "oncall", 0), T0 + 7 * MIN)
    fired = move(timeline, T0 + 12 * MIN, 0, 1).fired
    assert [(p.person, p.attempt) for p in fired.pages] == [("kim", 1)]


def test_nothing_moves_once_acknowledged_or_for_another_step_or_trigger() -> None:
    timeline = [paged(0, "kim"), paged(1, "kim", at=T0 + 15 * MIN)]
    for status in (Status.ACKNOWLEDGED, Status.RESOLVED):
        assert move(timeline, T0, 0, 1, status=status).fired.pages == ()
    fired = move(timeline, T0 + 20 * MIN, 1, 1).fired
    assert [(p.person, p.step) for p in fired.pages] == [("kim", 1)]
    # a page of an earlier trigger is not moved by this one's timer
    reopened = incident(triggered=T0 + 30 * MIN)
    assert fallback.move_on(reopened, CFG, timeline, T0 + 35 * MIN, 0, 1, "x").fired.pages == ()


def test_a_failed_page_moves_only_its_person() -> None:
    timeline = [paged(0, "kim", "choi")]
    fired = move(timeline, T0, 0, 1, person="kim").fired
    assert [p.person for p in fired.pages] == ["kim"]
    assert fallback.medium(CFG, fired.pages[0]) == "telegram"
    assert fallback.medium(CFG, Page("choi", "oncall", 0)) == "telegram"
    assert fallback.medium(CFG, Page("choi", "oncall", 0, attempt=1)) is None
