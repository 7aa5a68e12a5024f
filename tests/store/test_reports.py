"""Beta-tester reports in the store: stored with the incident they open, attachments byte for
byte, found again by their dedup key within a window."""

from __future__ import annotations

from dataclasses import replace

import pytest

from receiver.domain.model import Event, Status
from receiver.domain.reports import (
    Attachment,
    Environment,
    FiledReport,
    Report,
    Reporter,
    dedup_key,
    reference,
)
from receiver.store import Conflict, MailTaken, Store, UnitOfWork
from tests.store.builders import T0, at, new_incident

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # every byte value, NUL included


def filed(incident_id: int, title: str = "주문이 안 돼요", **changes: object) -> FiledReport:
    report = Report(
        title=title,
        description="매수 버튼이 반응하지 않음 <b>*x*</b>",
        reporter=Reporter("김하늘", "sky@example.com", None),
        source="web",
        category="ui",
        environment=Environment("iOS 18", "Safari", "iPhone 15", "1.4.2"),
        steps="1. 로그인\n2. 매수",
        expected="확인 창",
        actual=None,
        attachments=(
            Attachment("screen.png", "image/png", PNG),
            Attachment("a.log", "text/plain", b"ok\n"),
        ),
    )
    report = replace(report, **changes)  # type: ignore[arg-type]
    return FiledReport(incident_id, reference(T0, incident_id), report, dedup_key(report), T0)


async def open_report(store: Store, title: str = "주문이 안 돼요", when: int = 0) -> FiledReport:
    [incident_id] = await store.reserve_incident_ids(1)
    incident = replace(new_incident(f"report:{incident_id}", opened=at(when)), id=incident_id,
                       source="report")  # fmt: skip
    report = replace(filed(incident_id, title), created_at=at(when))
    unit = UnitOfWork(reports=[report])
    unit.open(incident)
    await store.commit(unit, at(when))
    return report


async def test_a_report_is_stored_with_its_incident_and_attachments(store: Store) -> None:
    report = await open_report(store)
    assert await store.get_report(report.incident_id) == report
    incident = await store.get_incident(report.incident_id)
    assert incident is not None and incident.source == "report"
    assert await store.get_report(report.incident_id + 1000) is None


async def test_alert_incidents_are_of_source_alert(store: Store) -> None:
    [incident_id] = await store.reserve_incident_ids(1)
    unit = UnitOfWork()
    unit.open(replace(new_incident("db/primary"), id=incident_id))
    await store.commit(unit, T0)
    incident = await store.get_incident(incident_id)
    assert incident is not None and incident.source == "alert"


async def test_reports_are_found_by_dedup_key_within_the_window(store: Store) -> None:
    first = await open_report(store, "Order button broken", when=0)
    later = await open_report(store, "order  BUTTON broken", when=600)
    other = await open_report(store, "quotes stale", when=700)
    assert first.dedup_key == later.dedup_key != other.dedup_key
    # the newest of those filed since the window's start
    assert await store.find_report(first.dedup_key, at(-3600)) == (
        later.incident_id,
        later.reference,
    )
    assert await store.find_report(first.dedup_key, at(601)) is None
    assert await store.find_report("0" * 32, at(-3600)) is None


async def test_a_reference_is_given_once(store: Store) -> None:
    report = await open_report(store)
    [incident_id] = await store.reserve_incident_ids(1)
    twin = replace(filed(incident_id), reference=report.reference)
    unit = UnitOfWork(reports=[twin])
    unit.open(replace(new_incident(f"report:{incident_id}"), id=incident_id, source="report"))
    with pytest.raises(Conflict):
        await store.commit(unit, T0)
    assert await store.get_incident(incident_id) is None  # nothing of it was stored


async def test_reports_follow_their_incident_when_renumbered() -> None:
    report = filed(-1)
    unit = UnitOfWork(reports=[report])
    unit.renumbered({-1: 42})
    assert [r.incident_id for r in unit.reports] == [42]


async def test_links_find_the_open_incidents_linked_into_others(store: Store) -> None:
    a, b, c = [await open_report(store, f"r{n}", when=n) for n in range(3)]
    [target_id] = await store.reserve_incident_ids(1)
    links = [(a.incident_id, target_id, "lee"), (b.incident_id, target_id, "lee")]
    unit = UnitOfWork(links=links)
    unit.open(replace(new_incident("db/primary"), id=target_id))
    await store.commit(unit, at(10))
    assert await store.link_of(a.incident_id) == target_id
    assert await store.link_of(c.incident_id) is None
    found = await store.linked_open([target_id, 123_456])
    assert [(t, i.id) for t, i in found] == [(target_id, a.incident_id), (target_id, b.incident_id)]
    # linked again elsewhere, the link moves; a resolved incident is no longer found
    [b_now] = [i for _, i in found if i.id == b.incident_id]
    moved = UnitOfWork(links=[(a.incident_id, c.incident_id, "kim")])
    moved.put(replace(b_now, status=Status.RESOLVED, resolved_at=at(20)))
    await store.commit(moved, at(20))
    assert await store.link_of(a.incident_id) == c.incident_id
    assert await store.linked_open([target_id]) == []


async def test_an_email_is_taken_once_and_known_by_its_message_id(store: Store) -> None:
    report = await open_report(store)
    taken = MailTaken("INBOX", 7, 3, "<a@mail.example>", report.incident_id, "accepted")
    await store.commit(UnitOfWork(mail=[taken]), at(1))
    assert await store.mail_last_uid("INBOX", 7) == 3
    assert await store.mail_last_uid("INBOX", 8) == 0  # another UIDVALIDITY: none yet
    assert await store.mail_last_uid("Other", 7) == 0
    # a second taker (a replica, a retry after a crash) fails its whole commit
    again = replace(taken, message_id="<b@mail.example>")
    unit = UnitOfWork(mail=[again], events=[(report.incident_id, Event("x", at(2), {}))])
    with pytest.raises(Conflict):
        await store.commit(unit, at(2))
    assert [e.event for e in await store.timeline(report.incident_id)].count("x") == 0
    ignored = MailTaken("INBOX", 7, 4, "<c@mail.example>", None, "automatic")
    await store.commit(UnitOfWork(mail=[ignored]), at(3))
    known = await store.mail_known(["<a@mail.example>", "<b@mail.example>", "<c@mail.example>"])
    assert known == {"<a@mail.example>": report.incident_id, "<c@mail.example>": None}
    assert await store.mail_known([]) == {}
    assert await store.report_of_reference(report.reference) == report.incident_id
    assert await store.report_of_reference("R-2026-999999") is None


async def test_files_added_to_a_report_follow_its_own(store: Store) -> None:
    report = await open_report(store)
    before = len(report.report.attachments)
    extra = Attachment("again.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\x01" * 8)
    unit = UnitOfWork(attachments=[(report.incident_id, before, extra)])
    await store.commit(unit, at(1))
    stored = await store.get_report(report.incident_id)
    assert stored is not None
    assert stored.report.attachments == (*report.report.attachments, extra)


async def test_a_report_by_email_keeps_its_thread(store: Store) -> None:
    [incident_id] = await store.reserve_incident_ids(1)
    incident = replace(new_incident(f"report:{incident_id}"), id=incident_id, source="report")
    report = filed(incident_id, source="email", thread="<first@mail.example>")
    unit = UnitOfWork(reports=[report])
    unit.open(incident)
    await store.commit(unit, at(0))
    stored = await store.get_report(incident_id)
    assert stored is not None and stored.report.thread == "<first@mail.example>"
