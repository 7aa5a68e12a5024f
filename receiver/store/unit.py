"""A unit of work: everything one decision writes, by incident id, and the fold rule of
coalescing notifications that the unit and every store apply alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from receiver.domain.escalation import Timer
from receiver.domain.model import AlertRecord, Event, Incident
from receiver.domain.notifications import merge_payloads
from receiver.domain.reports import Attachment, FiledReport


@dataclass(frozen=True)
class NewNotification:
    """An outbox row to insert.

    With ``coalesce_seconds`` the row waits that long, and further notifications of the
    same kind for the same incident and channel fold into it while it waits (``fold``);
    any other notification for them sends it at once.
    """

    channel: str
    kind: str
    payload: dict[str, Any]
    coalesce_seconds: float = 0.0


def fold(
    waiting_kind: str, waiting: dict[str, Any], note: NewNotification
) -> dict[str, Any] | None:
    """The payload of a waiting row of ``waiting_kind`` once ``note`` is folded into it, or
    None when the note does not fold (it coalesces not, or is of another kind) and becomes
    a row of its own. The one rule of folding: the unit of work and the stores apply it."""
    if note.coalesce_seconds <= 0 or waiting_kind != note.kind:
        return None
    return merge_payloads(waiting, note.payload)


@dataclass(frozen=True)
class MailTaken:
    """An e-mail taken from the mailbox, once: by its UID within the mailbox's UIDVALIDITY
    (a second replica taking it too makes its commit a Conflict), with its Message-ID,
    the report it opened or was a comment on (None: it was neither), and what became of it."""

    mailbox: str
    uidvalidity: int
    uid: int
    message_id: str | None
    incident_id: int | None
    outcome: str  # accepted, duplicate, comment, rejected, rate_limited, automatic


@dataclass(frozen=True)
class Committed:
    """What a commit stored: the version each incident of the unit has now."""

    versions: Mapping[int, int]


def _id(incident: Incident) -> int:
    if incident.id is None:
        raise ValueError(
            "an incident in a unit of work needs its id: reserve one with "
            "Store.reserve_incident_ids"
        )
    return incident.id


class UnitOfWork:
    """Everything one decision writes, committed atomically in a single transaction.

    Rows refer to incidents by id. Each incident is stored as last put; those whose id is in
    ``new`` (reserved through ``Store.reserve_incident_ids``) are inserted, the others are
    updated only if their stored ``version`` is still the one the incident was read with,
    else the commit raises Conflict. The unit only records: nothing it is given is changed.
    """

    def __init__(
        self,
        incidents: Iterable[Incident] = (),
        *,
        new: Iterable[int] = (),
        alerts: Iterable[tuple[int, AlertRecord]] = (),
        events: Iterable[tuple[int, Event]] = (),
        outbox: Iterable[tuple[int | None, NewNotification]] = (),
        timers: Iterable[tuple[int, Timer]] = (),
        cancel_timers: Iterable[int] = (),
        fired_timers: Iterable[int] = (),
        advance_schedule: tuple[str, datetime, datetime] | None = None,
        reports: Iterable[FiledReport] = (),
        links: Iterable[tuple[int, int, str]] = (),
        mail: Iterable[MailTaken] = (),
        attachments: Iterable[tuple[int, int, Attachment]] = (),
        end_window: tuple[int, datetime, str] | None = None,
        retried: Iterable[int] = (),
    ) -> None:
        self.incidents: dict[int, Incident] = {}
        self.new: set[int] = set(new)
        self.alerts: list[tuple[int, AlertRecord]] = list(alerts)
        self.events: list[tuple[int, Event]] = list(events)
        self.outbox: list[tuple[int | None, NewNotification]] = []
        self.timers: list[tuple[int, Timer]] = list(timers)
        # Incidents whose pending timers stop (ack, resolve, or re-planned on a severity
        # raise); applied before the new timers above are added. A dict: ordered, once each.
        self.cancel_timers: dict[int, None] = dict.fromkeys(cancel_timers)
        # Timers this unit fires: each must still be pending, else the commit raises Conflict.
        self.fired_timers: list[int] = list(fired_timers)
        # (schedule, next_at as read, new next_at): the schedule must still be due at the
        # time read, else the commit raises Conflict (another replica ran it meanwhile).
        self.advance_schedule = advance_schedule
        # Beta-tester reports, each with the incident it opens (in this unit).
        self.reports: list[FiledReport] = list(reports)
        # (incident, the incident it is linked into, by whom): resolved with that one.
        self.links: list[tuple[int, int, str]] = list(links)
        # E-mails taken with this unit: each only once, whoever else tries.
        self.mail: list[MailTaken] = list(mail)
        # (report's incident, n, file) added to a report filed before (a comment's files).
        self.attachments: list[tuple[int, int, Attachment]] = list(attachments)
        # (API maintenance window, when, by whom) ended early with this unit: it must not
        # have ended before, else the commit raises Conflict.
        self.end_window = end_window
        # Dead-lettered outbox rows made pending again (attempts reset, due at the commit):
        # each must still be dead, else the commit raises Conflict.
        self.retried: list[int] = list(retried)
        # (incident, channel) -> index in outbox of the queue's last notification.
        self._last_note: dict[tuple[int | None, str], int] = {}
        for incident in incidents:
            self.put(incident)
        for owner, note in outbox:
            self.notify(owner, note)

    def put(self, incident: Incident) -> None:
        """The incident's state to store (replacing what the unit had for it); it must carry
        the version it was read with."""
        self.incidents[_id(incident)] = incident

    def open(self, incident: Incident) -> None:
        """A new incident to insert, under the id reserved for it."""
        self.new.add(_id(incident))
        self.put(incident)

    def notify(self, owner: int | None, note: NewNotification) -> None:
        """Queue a notification; one of a coalescing kind folds into the unit's previous
        one of that kind for the same incident and channel, as the store would fold it."""
        queue = (owner, note.channel)
        last = self._last_note.get(queue)
        if last is not None:
            waiting = self.outbox[last][1]
            if waiting.coalesce_seconds > 0:
                merged = fold(waiting.kind, waiting.payload, note)
                if merged is not None:
                    self.outbox[last] = (owner, replace(note, payload=merged))
                    return
        self._last_note[queue] = len(self.outbox)
        self.outbox.append((owner, note))

    def drop_timers(self, incident_id: int) -> None:
        """Forget the timers this unit was going to add for an incident."""
        self.timers = [t for t in self.timers if t[0] != incident_id]

    def add_timers(self, incident_id: int, timers: Iterable[Timer]) -> None:
        """Timers to add for an incident."""
        self.timers.extend((incident_id, timer) for timer in timers)

    def take_timers(self, due: Callable[[Timer], bool]) -> list[tuple[int, Timer]]:
        """Remove the timers to add that ``due`` selects and return them (to fire them in
        this unit instead of storing them)."""
        taken = [(owner, timer) for owner, timer in self.timers if due(timer)]
        if taken:
            self.timers = [(owner, timer) for owner, timer in self.timers if not due(timer)]
        return taken

    def cancel(self, incident_id: int) -> None:
        """Stop an incident's pending timers (once, however often it is asked)."""
        self.cancel_timers.setdefault(incident_id)

    def renumbered(self, ids: Mapping[int, int]) -> None:
        """Give incidents the unit knows under provisional ids (``ids``' keys) their real
        ids, in every row; only for a unit not rendered yet (its outbox is empty)."""
        assert not self.outbox, "instructions name incident ids: renumber before rendering"
        if not ids:
            return

        def real(incident_id: int) -> int:
            return ids.get(incident_id, incident_id)

        self.incidents = {
            real(k): replace(v, id=real(k)) if k in ids else v for k, v in self.incidents.items()
        }
        self.new = {real(i) for i in self.new}
        self.alerts = [(real(o), a) for o, a in self.alerts]
        self.events = [(real(o), e) for o, e in self.events]
        self.timers = [(real(o), t) for o, t in self.timers]
        self.cancel_timers = {real(i): None for i in self.cancel_timers}
        self.reports = [replace(r, incident_id=real(r.incident_id)) for r in self.reports]

    def committed(self) -> Committed:
        """What a commit of this unit stores: new incidents at version 0, the others one
        above the version they were read with."""
        return Committed(
            {
                i: 0 if i in self.new else incident.version + 1
                for i, incident in self.incidents.items()
            }
        )
