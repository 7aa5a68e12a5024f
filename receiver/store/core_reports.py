"""The store core's part for beta-tester reports and links (``SqlStore`` mixes it in)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from receiver.domain.model import Incident
from receiver.domain.reports import Attachment, FiledReport
from receiver.store.rows import (
    UNTRIAGED_REPORTS,
    incident_from_row,
    report_from_row,
    report_values,
)
from receiver.store.sql import Backend, Executor, Row, Statements
from receiver.store.unit import UnitOfWork


class ReportsPart:
    """Reports, their attachments and links: written with a unit, read for the API."""

    backend: Backend
    sql: Statements

    async def _by_ids(self, sql: str, ids: Sequence[Any], *args: Any) -> list[Row]:
        """A read over many incidents: one query, the ids one argument however many."""
        return await self.backend.query(sql, list(ids), *args) if ids else []

    async def _write_reports(self, ex: Executor, unit: UnitOfWork) -> None:
        """Reports and their attachments (after the incidents they belong to)."""
        await ex.executemany(self.sql.insert_report, [report_values(r) for r in unit.reports])
        files = [
            (r.incident_id, n, a.filename, a.content_type, a.data)
            for r in unit.reports
            for n, a in enumerate(r.report.attachments)
        ]
        if files:
            await ex.executemany(self.sql.insert_attachment, files)

    async def _write_attachments(self, ex: Executor, unit: UnitOfWork) -> None:
        """Files added to reports filed before."""
        rows = [(i, n, a.filename, a.content_type, a.data) for i, n, a in unit.attachments]
        await ex.executemany(self.sql.insert_attachment, rows)

    async def _write_mail(self, ex: Executor, unit: UnitOfWork, at: float) -> None:
        """The e-mails taken: a second taker's insert violates the key, a Conflict."""
        rows = [
            (m.mailbox, m.uidvalidity, m.uid, m.message_id, m.incident_id, m.outcome, at)
            for m in unit.mail
        ]
        await ex.executemany(self.sql.insert_mail, rows)

    async def mail_last_uid(self, mailbox: str, uidvalidity: int) -> int:
        [(last,)] = await self.backend.query(self.sql.mail_last_uid, mailbox, uidvalidity)
        return int(last or 0)

    async def mail_known(self, message_ids: Sequence[str]) -> dict[str, int | None]:
        rows = await self._by_ids(self.sql.mail_known, message_ids)
        return {str(r[0]): (int(r[1]) if r[1] is not None else None) for r in rows}

    async def report_of_reference(self, reference: str) -> int | None:
        rows = await self.backend.query(self.sql.report_of_reference, reference)
        return int(rows[0][0]) if rows else None

    async def linked_open(self, target_ids: Sequence[int]) -> list[tuple[int, Incident]]:
        rows = await self._by_ids(self.sql.linked_open, target_ids)
        return [(int(r[0]), incident_from_row(r[1:])) for r in rows]

    async def link_of(self, incident_id: int) -> int | None:
        rows = await self.backend.query(self.sql.link_of, incident_id)
        return int(rows[0][0]) if rows else None

    async def find_report(self, dedup_key: str, since: datetime) -> tuple[int, str] | None:
        rows = await self.backend.query(self.sql.find_report, dedup_key, since.timestamp())
        return (rows[0][0], rows[0][1]) if rows else None

    async def get_report(self, incident_id: int, attachments: bool = True) -> FiledReport | None:
        rows = await self.backend.query(self.sql.get_report, incident_id)
        if not rows:
            return None
        if not attachments:
            return report_from_row(rows[0])
        files = await self.backend.query(self.sql.report_attachments, incident_id)
        return report_from_row(rows[0], [Attachment(f[0], f[1], bytes(f[2])) for f in files])

    async def untriaged_reports(self) -> int:
        [(count,)] = await self.backend.query(UNTRIAGED_REPORTS)
        return int(count)
