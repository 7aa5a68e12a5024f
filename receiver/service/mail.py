"""E-mail in: the beta-feedback mailbox polled for new messages, each taken once, in UID
order, whatever restarts or replicas do. A new message is filed as a report; an answer to
a report's e-mail (or to a notice about it) is a comment on that report; mail written by
machines, and our own, is taken and left alone.

Once: every message taken is recorded with what became of it (``MailTaken``) in the same
transaction as the report or comment it made, keyed by the mailbox, its UIDVALIDITY and
the UID, so a second replica taking it too fails its commit and learns it was taken. When
the mailbox is recreated (a new UIDVALIDITY) its messages come again under new UIDs: their
Message-IDs are known, and they are taken as seen before.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Protocol

import structlog

from receiver.domain import mail as mails
from receiver.domain.mail import MailboxError
from receiver.domain.reports import dedup_key
from receiver.metrics import Metrics
from receiver.service.loops import Poller
from receiver.service.reports import MailTakenAlready, RateLimited, ReportService
from receiver.service.rules import RulesHolder
from receiver.store.base import MailTaken, Store, StoreUnavailable

log = structlog.get_logger("receiver.service.mail")
BATCH = 50  # messages taken per poll at most; the next poll follows at once


class Mailbox(Protocol):
    """The beta-feedback mailbox, one session at a time (see ``receiver.intake.imap``)."""

    name: str

    def describe(self) -> str:
        """Where it is, for logs (no password)."""

    async def open(self) -> int:
        """Connect and select the mailbox: its UIDVALIDITY (MailboxError if it cannot)."""

    async def uids_after(self, last: int) -> list[int]:
        """The UIDs above ``last``, in order."""

    async def fetch(self, uid: int) -> bytes | None:
        """A message, or None when it is gone."""

    async def mark_seen(self, uid: int) -> None:
        """Flag it read, for people who read the mailbox too."""

    async def close(self) -> None:
        """End the session; never raises."""


class MailIntake:
    """Takes the mailbox's new messages; ``loop`` runs it."""

    def __init__(
        self,
        mailbox: Mailbox,
        store: Store,
        reports: ReportService,
        rules: RulesHolder,
        metrics: Metrics,
        *,
        own_address: str | None,
        poll_seconds: float,
    ) -> None:
        self.mailbox = mailbox
        self.store = store
        self.reports = reports
        self.rules = rules
        self.metrics = metrics
        self.own = (own_address or "").casefold()
        self.loop = Poller("mail", self.step, poll_seconds)

    async def step(self) -> int:
        """One poll: the messages taken."""
        try:
            validity = await self.mailbox.open()
            last = await self.store.mail_last_uid(self.mailbox.name, validity)
            uids = (await self.mailbox.uids_after(last))[:BATCH]
            for uid in uids:
                raw = await self.mailbox.fetch(uid)
                await self.take(MailTaken(self.mailbox.name, validity, uid, None, None, ""), raw)
                with contextlib.suppress(MailboxError):  # taken all the same: the store says so
                    await self.mailbox.mark_seen(uid)
        except MailboxError as exc:
            self.metrics.mailbox_polls.labels("failed").inc()
            log.warning("mailbox_unavailable", mailbox=self.mailbox.name, error=str(exc)[:300])
            return 0
        finally:
            await self.mailbox.close()
        self.metrics.mailbox_polls.labels("ok").inc()
        return len(uids)

    async def take(self, key: MailTaken, raw: bytes | None) -> str:
        """Take one message: what became of it. A store that is down stops the poll (the
        message is taken at the next); anything else wrong with a message is recorded, so
        one bad message never blocks the mailbox."""
        try:
            outcome = await self._take(key, raw)
        except MailTakenAlready:
            outcome = "taken elsewhere"
        except (StoreUnavailable, MailboxError):
            raise
        except Exception as exc:  # a bug, or a message like none before: never a blocker
            log.error("mail_not_taken", mailbox=key.mailbox, uid=key.uid, error=type(exc).__name__)
            with contextlib.suppress(MailTakenAlready):
                await self.reports.record_mail(replace(key, outcome="failed"))
            outcome = "failed"
        log.info("mail_taken", mailbox=key.mailbox, uid=key.uid, outcome=outcome)
        return outcome

    async def _take(self, key: MailTaken, raw: bytes | None) -> str:
        if raw is None:
            await self.reports.record_mail(replace(key, outcome="gone"))
            return "gone"
        mail = await asyncio.to_thread(mails.read, raw)  # a big message: off the loop
        key = replace(key, message_id=mail.message_id)
        if mail.message_id is not None:
            known = await self.store.mail_known([mail.message_id])
            if mail.message_id in known:  # the mailbox recreated, or the message copied
                seen = replace(key, incident_id=known[mail.message_id], outcome="seen before")
                await self.reports.record_mail(seen)
                return "seen before"
        if mail.automatic or (mail.sender or "").casefold() == self.own:
            await self.reports.record_mail(replace(key, outcome="automatic"))
            return "automatic"
        if mail.forged:  # answering it would write to someone who never wrote to us
            await self.reports.record_mail(replace(key, outcome="forged"))
            return "forged"
        answered = await self._answered(mail)
        if answered is not None:
            files, left = mails.attachments_of(mail.files)
            text = mails.new_text(mail.text)
            if await self.reports.comment(answered, text, files, left, key):
                return "comment"
        return await self._file(mail, key)

    async def _file(self, mail: mails.Inbound, key: MailTaken) -> str:
        cfg = self.rules.current
        report, errors = mails.as_report(mail, list(cfg.categories))
        if report is None:
            self.metrics.reports_received.labels("email", "rejected").inc()
            log.info("mail_report_refused", uid=key.uid, fields=[e.field for e in errors])
            await self.reports.record_mail(replace(key, outcome="rejected"))
            return "rejected"
        since = self.reports.clock() - cfg.reports.dedup_window
        again = await self.store.find_report(dedup_key(report), since)
        if again is not None:  # the same title again (a reply that lost its headers)
            files, left = mails.attachments_of(mail.files)
            if await self.reports.comment(again[0], mail.text, files, left, key):
                return "comment"
        try:
            self.reports.check_rate(report, f"email:{(mail.sender or '').casefold()}")
        except RateLimited:
            await self.reports.record_mail(replace(key, outcome="rate_limited"))
            return "rate_limited"
        filed = await self.reports.file(report, key)
        log.info("mail_report_filed", incident_id=filed.id, reference=filed.reference)
        return "duplicate" if filed.duplicate else "accepted"

    async def _answered(self, mail: mails.Inbound) -> int | None:
        """The report a message answers: one whose e-mail (or a comment's) it names, else
        the reference of a notice it answers or its subject carries; only when it comes
        from that report's reporter (anyone else in the thread files a report of their
        own, and hears back themselves)."""
        candidates: list[int] = []
        if mail.answers:
            known = await self.store.mail_known(list(mail.answers))
            candidates += [i for m in mail.answers if (i := known.get(m)) is not None]
        reference = mails.reference_in(mail)
        if reference and (found := await self.store.report_of_reference(reference)):
            candidates.append(found)
        for incident_id in dict.fromkeys(candidates):
            filed = await self.store.get_report(incident_id, attachments=False)
            if filed is not None and _same_address(filed.report.reporter.email, mail.sender):
                return incident_id
        return None


def _same_address(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.casefold() == b.casefold()
