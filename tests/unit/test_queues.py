"""The outbox queue plan: a unit's notifications as the rows both stores write, the same as
enqueueing them one at a time."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.store.queues import Folds, QueuedRow, plan, queues_to_read
from receiver.store.unit import NewNotification

AT = 1000.0
JOINED = "incident.alerts_joined"


def joined(n: int, channel: str = "jira") -> NewNotification:
    return NewNotification(channel, JOINED, {"n": n, "events": [{"n": n}]}, 60.0)


def now(kind: str, channel: str = "jira") -> NewNotification:
    return NewNotification(channel, kind, {"kind": kind})


def stored(row_id: int, kind: str = JOINED, incident: int = 1, channel: str = "jira") -> QueuedRow:
    return QueuedRow(incident, channel, kind, {"n": 0, "events": [{"n": 0}]}, AT + 30, id=row_id)


def rows(out: list[QueuedRow]) -> list[tuple[int | None, str, str, Any, float]]:
    return [(r.incident_id, r.channel, r.kind, r.payload.get("n"), r.due - AT) for r in out]


def test_only_queues_whose_first_note_coalesces_are_read() -> None:
    notes = [
        (1, joined(1)),
        (1, now("opened")),
        (2, now("opened")),
        (2, joined(2)),
        (None, joined(3)),
    ]
    assert queues_to_read(notes) == [("jira", 1), ("jira", 0)]


@pytest.mark.parametrize(
    ("notes", "waiting", "added", "folded", "release"),
    [
        (  # a coalescing note folds into the waiting row of its kind
            [(1, joined(1))],
            {("jira", 1): stored(7)},
            [],
            {7: 1},
            [],
        ),
        (  # not into one of another kind: a row of its own, due when its window ends
            [(1, joined(1))],
            {("jira", 1): stored(7, kind="incident.opened")},
            [(1, "jira", JOINED, 1, 60.0)],
            {},
            [],
        ),
        (  # a note due now releases what waits and goes after it; later ones fold into
            # the unit's own rows, never into a row queued before the release
            [(1, joined(1)), (1, now("incident.acknowledged")), (1, joined(2)), (1, joined(3))],
            {("jira", 1): stored(7)},
            [(1, "jira", "incident.acknowledged", None, 0.0), (1, "jira", JOINED, 3, 60.0)],
            {7: 1},
            [("jira", 1)],
        ),
        (  # a row the unit added and held is released by the unit's own later note
            [(1, joined(1)), (1, now("incident.resolved"))],
            {},
            [(1, "jira", JOINED, 1, 0.0), (1, "jira", "incident.resolved", None, 0.0)],
            {},
            [("jira", 1)],
        ),
        (  # queues are per incident and channel; rows without an incident are one queue
            [(1, joined(1)), (2, joined(2)), (1, joined(3, "slack")), (None, joined(4))],
            {("jira", 2): stored(9, incident=2)},
            [
                (1, "jira", JOINED, 1, 60.0),
                (1, "slack", JOINED, 3, 60.0),
                (None, "jira", JOINED, 4, 60.0),
            ],
            {9: 2},
            [],
        ),
    ],
)  # fmt: skip
def test_plan(
    notes: list[tuple[int | None, NewNotification]],
    waiting: dict[tuple[str, int], QueuedRow],
    added: list[tuple[int | None, str, str, Any, float]],
    folded: dict[int, int],
    release: list[tuple[str, int]],
) -> None:
    out = plan(notes, waiting, AT)
    assert rows(out.added) == added
    assert {row_id: row.payload["n"] for row_id, row in out.folded.items()} == folded
    assert out.release == release


def test_folded_rows_keep_every_event_in_order() -> None:
    out = plan([(1, joined(1)), (1, joined(2))], {("jira", 1): stored(7)}, AT)
    assert out.folded[7].payload["events"] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert out.folded[7].payload["coalesced"] == 3


def test_folds_trusts_its_cache_only_for_the_text_it_stored() -> None:
    folds = Folds()
    parsed = {"a": 1}
    folds.stored(5, '{"a":1}', parsed)
    assert folds.parsed(5, '{"a":1}') is parsed
    assert folds.parsed(5, '{"a":2}') == {"a": 2}  # changed by someone else: read as it is
    assert folds.parsed(6, '{"b":3}') == {"b": 3}
