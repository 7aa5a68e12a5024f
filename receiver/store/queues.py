"""How a unit's notifications join the outbox's queues, worked out before any row is written:
pure, so both stores write the same rows in a few statements whatever their SQL.

A queue is one (channel, incident) pair, incident 0 for rows without one. A notification of
a coalescing kind folds into the newest waiting row of its queue when that row is of its
kind (``unit.fold``), else it becomes a row due when its coalescing window ends; any other
notification is due at once and releases whatever waits in its queue, so nothing overtakes
what was queued before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from receiver.jsonfast import loads
from receiver.store.unit import NewNotification, fold

Queue = tuple[str, int]


@dataclass
class QueuedRow:
    """An outbox row as the unit leaves it: new, or stored before and waiting (``id``)."""

    incident_id: int | None
    channel: str
    kind: str
    payload: dict[str, Any]
    due: float
    id: int | None = None


@dataclass
class Plan:
    """The writes that enqueue a unit's notifications: queues whose stored waiting rows go
    now, stored rows folded into (by id), and the rows to insert, in order."""

    release: list[Queue] = field(default_factory=list)
    folded: dict[int, QueuedRow] = field(default_factory=dict)
    added: list[QueuedRow] = field(default_factory=list)


def queue_of(incident_id: int | None, note: NewNotification) -> Queue:
    """The queue a notification joins."""
    return (note.channel, incident_id or 0)


def queues_to_read(notes: Sequence[tuple[int | None, NewNotification]]) -> list[Queue]:
    """The queues whose newest stored waiting row the plan needs: those whose first
    notification in the unit coalesces (later ones meet the unit's own rows first)."""
    firsts: dict[Queue, NewNotification] = {}
    for incident_id, note in notes:
        firsts.setdefault(queue_of(incident_id, note), note)
    return [queue for queue, note in firsts.items() if note.coalesce_seconds > 0]


def plan(
    notes: Sequence[tuple[int | None, NewNotification]],
    waiting: Mapping[Queue, QueuedRow],
    at: float,
) -> Plan:
    """The result of enqueueing the notes one at a time at ``at``, given each queue's newest
    stored waiting row (as read for ``queues_to_read``)."""
    newest = dict(waiting)
    out = Plan()
    held: dict[Queue, list[QueuedRow]] = {}  # added rows due later than now
    released: set[Queue] = set()
    for incident_id, note in notes:
        queue = queue_of(incident_id, note)
        if note.coalesce_seconds > 0:
            row = newest.get(queue)
            merged = None if row is None else fold(row.kind, row.payload, note)
            if row is not None and merged is not None:
                row.payload = merged
                if row.id is not None:
                    out.folded[row.id] = row
                continue
            due = at + note.coalesce_seconds
        else:
            # Whatever waits to be coalesced goes now, ahead of this row, in order.
            released.add(queue)
            for row in held.pop(queue, []):
                row.due = at
            due = at
        row = QueuedRow(incident_id, note.channel, note.kind, note.payload, due)
        out.added.append(row)
        newest[queue] = row
        if due > at:
            held.setdefault(queue, []).append(row)
    out.release = sorted(released)
    return out


class Folds:
    """The payloads this process last stored in waiting (coalescing) rows, parsed.

    Folding a notification into a waiting row reads the row's payload back; when the text
    read is exactly the text stored here, its parsed form is taken instead of parsing it
    again. The text is compared, never trusted: a row changed by anything else (another
    process, a transaction that did not commit) is parsed as read.
    """

    MAX_ROWS = 256

    def __init__(self) -> None:
        self._rows: dict[int, tuple[str, dict[str, Any]]] = {}

    def parsed(self, row_id: int, text: str) -> dict[str, Any]:
        known = self._rows.get(row_id)
        if known is not None and known[0] == text:
            return known[1]
        payload: dict[str, Any] = loads(text)
        return payload

    def stored(self, row_id: int, text: str, payload: dict[str, Any]) -> None:
        if len(self._rows) >= self.MAX_ROWS and row_id not in self._rows:
            self._rows.clear()
        self._rows[row_id] = (text, payload)
