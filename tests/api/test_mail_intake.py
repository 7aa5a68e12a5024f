"""E-mail in, against a real Dovecot started for the test (imaps with a CA of its own): a
message becomes a report with its attachment, the reporter's receipt answers in their own
thread (real SMTP server), a reply is a comment on the report's JIRA issue (real `jira`
client, fake JIRA), and each message is taken once across a restart, a recreated mailbox
and two replicas on one PostgreSQL database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from receiver.api.keys import MAIL, STORE
from receiver.domain.mail import MailboxError
from receiver.intake.imap import ImapMailbox, parse_imap_url
from receiver.store import PostgresStore
from tests.api.test_reports import live
from tests.api.test_slack_notify import jira as jira  # the fixtures, re-exported
from tests.api.test_slack_notify import slack as slack
from tests.conftest import API, ClientFactory
from tests.fakes.dovecot import Dovecot
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import FakeSmtp
from tests.helpers import metric, wait_for
from tests.postgres import POSTGRES_URL, postgres_schema
from tests.unit.test_reports import png

Client = TestClient[Any, web.Application]
SKY = "sky@example.com"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def dovecot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dovecot]:
    with Dovecot(tmp_path) as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.cafile))  # trust its own CA
        yield server


def a_mail(
    subject: str = "주문 버튼이 반응하지 않아요",
    text: str = "매수 주문을 누르면 아무 반응이 없어요.\n삼성전자, 10주.",
    *,
    sender: str = f"김하늘 <{SKY}>",
    answers: str | None = None,
    files: tuple[tuple[str, str, bytes], ...] = (),
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = "beta-feedback@trading.example"
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain="mail.example.com")
    if answers:
        mail["In-Reply-To"] = answers
        mail["References"] = answers
    mail.set_content(text)
    for name, kind, data in files:
        main, sub = kind.split("/")
        mail.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return mail


async def receiver(
    make_client: ClientFactory,
    dovecot: Dovecot,
    slack: FakeSlack,
    jira: FakeJira,
    smtp: FakeSmtp | None = None,
    **settings: Any,
) -> Client:
    mail = {"smtp_url": smtp.url, "smtp_from": "Beta <beta@trading.example>"} if smtp else {}
    return await make_client(
        **live(slack, jira),
        reports_imap_url=dovecot.url(tls=True),
        reports_imap_poll_seconds=0.1,
        **mail,
        **settings,
    )


async def reports(client: Client) -> list[dict[str, Any]]:
    body = await (await client.get("/api/v1/incidents", headers=API)).json()
    found: list[dict[str, Any]] = [i for i in body["incidents"] if i["source"] == "report"]
    return found


async def received(client: Client, outcome: str) -> float | None:
    text = await (await client.get("/metrics", headers=API)).text()
    return metric(text, "receiver_reports_received_total", source="email", outcome=outcome)


async def test_an_email_becomes_a_report_with_its_file_and_a_receipt_in_its_thread(
    make_client: ClientFactory,
    dovecot: Dovecot,
    slack: FakeSlack,
    jira: FakeJira,
    smtp: FakeSmtp,
) -> None:
    sent = a_mail(files=(("화면.png", "image/png", png()),))
    uid = await asyncio.to_thread(dovecot.deliver, sent)
    client = await receiver(make_client, dovecot, slack, jira, smtp)
    await wait_for(lambda: len(smtp.inbox) == 1, seconds=20)
    [incident] = await reports(client)
    filed = await client.app[STORE].get_report(incident["id"])
    assert filed is not None
    report = filed.report
    assert (report.source, report.title, report.reporter.email, report.reporter.name) == (
        "email", "주문 버튼이 반응하지 않아요", SKY, "김하늘",
    )  # fmt: skip
    assert report.description.startswith("매수 주문을 누르면")
    assert report.thread == sent["Message-ID"]
    assert [(a.filename, a.content_type, a.data) for a in report.attachments] == [
        ("화면.png", "image/png", png())
    ]
    # the receipt answers the tester's own e-mail, in Korean, with the reference
    [receipt] = smtp.inbox
    assert receipt["To"] == SKY
    assert receipt["In-Reply-To"] == sent["Message-ID"]
    assert receipt["References"] == sent["Message-ID"]
    assert receipt["Subject"] == "Re: 주문 버튼이 반응하지 않아요"
    body = receipt.get_content()
    assert filed.reference in body and "접수했습니다" in body
    # the JIRA issue has the file; the mailbox shows the message read
    await wait_for(lambda: bool(jira.issues) and bool(_files(jira)), seconds=20)
    assert _files(jira) == [("1-화면.png", png())]
    assert "\\Seen" in await asyncio.to_thread(dovecot.flags, uid)
    assert await received(client, "accepted") == 1
    assert SKY not in json_of(slack)  # the contact stays out of Slack


def _files(jira: FakeJira) -> list[tuple[str, bytes]]:
    return [
        (a["filename"], a["data"]) for i in jira.issues.values() for a in i.get("attachments", [])
    ]


def json_of(slack: FakeSlack) -> str:
    return json.dumps(slack.messages, ensure_ascii=False)


async def test_a_reply_is_a_comment_and_nothing_is_taken_twice_across_a_restart(
    make_client: ClientFactory,
    dovecot: Dovecot,
    slack: FakeSlack,
    jira: FakeJira,
    smtp: FakeSmtp,
) -> None:
    first = a_mail()
    await asyncio.to_thread(dovecot.deliver, first)
    client = await receiver(make_client, dovecot, slack, jira, smtp)
    await wait_for(lambda: len(smtp.inbox) == 1 and bool(jira.issues), seconds=20)
    [incident] = await reports(client)
    [key] = list(jira.issues)  # the first report's issue (the restarted one files another)
    await client.close()  # the receiver stops; mail keeps coming

    reply = a_mail(
        "Re: 주문 버튼이 반응하지 않아요",
        "지금 다시 해 봤는데 똑같아요.\n\n> 매수 주문을 누르면 아무 반응이 없어요.",
        answers=first["Message-ID"],
        files=(("again.png", "image/png", png()),),
    )
    receipt_id = smtp.inbox[0]["Message-ID"]
    to_receipt = a_mail("Re: 주문 버튼이 반응하지 않아요", "혹시 언제 고쳐지나요?",
                             answers=receipt_id)  # fmt: skip
    other = a_mail(
        "차트가 비어 있어요", "삼성전자 차트가 하얗게 나옵니다", sender="jun@example.com"
    )
    for mail in (reply, to_receipt, other):
        await asyncio.to_thread(dovecot.deliver, mail)

    again = await receiver(make_client, dovecot, slack, jira, smtp)  # the same database

    def comments() -> list[str]:
        return [c for c in jira.comments(key) if "The reporter wrote again" in c]

    await wait_for(lambda: len(comments()) == 2 and len(jira.issues) == 2, seconds=20)
    now_reports = await reports(again)
    assert len(now_reports) == 2  # the first mail was not filed again, the new one was
    assert {r["id"] for r in now_reports} > {incident["id"]}
    said, asked = comments()
    assert "지금 다시 해 봤는데 똑같아요." in said and "매수 주문을 누르면" not in said
    assert "[^1-again.png]" in said
    assert "혹시 언제 고쳐지나요" in asked  # (a "?" is escaped in wiki markup)
    await wait_for(lambda: len(_files(jira)) == 1, seconds=20)
    assert _files(jira) == [("1-again.png", png())]
    timeline = await (await again.get(f"/api/v1/incidents/{incident['id']}", headers=API)).json()
    wrote = [e for e in timeline["timeline"] if e["event"] == "reporter_comment"]
    assert len(wrote) == 2 and all(SKY not in str(e) for e in wrote)

    # the team hears of it in the report's thread in Slack; the words stay in JIRA
    def replies() -> list[str]:
        return [m["text"] for m in slack.messages if "The reporter wrote again" in m["text"]]

    await wait_for(lambda: len(replies()) == 2, seconds=20)
    assert all("지금 다시" not in r and SKY not in r for r in replies())
    # the new tester got a receipt; nobody got a second one
    await wait_for(lambda: len(smtp.inbox) == 2, seconds=20)
    assert [m["To"] for m in smtp.inbox] == [SKY, "jun@example.com"]

    # the mailbox recreated (a new UIDVALIDITY): the same messages again are seen before
    await again.close()
    old = await asyncio.to_thread(dovecot.uidvalidity)
    await asyncio.to_thread(dovecot.recreate_mailbox)
    assert await asyncio.to_thread(dovecot.uidvalidity) != old
    for mail in (first, other):
        await asyncio.to_thread(dovecot.deliver, mail)
    later = await receiver(make_client, dovecot, slack, jira, smtp)
    new_uids = await asyncio.to_thread(dovecot.uids)
    await wait_for(lambda: _seen(dovecot, new_uids), seconds=20)
    assert len(await reports(later)) == 2 and len(jira.issues) == 2
    await asyncio.sleep(0.3)
    assert len(smtp.inbox) == 2


def _seen(dovecot: Dovecot, uids: list[int]) -> bool:
    return all("\\Seen" in dovecot.flags(uid) for uid in uids)


async def test_machines_and_refused_mail_are_taken_and_left_alone(
    make_client: ClientFactory,
    dovecot: Dovecot,
    slack: FakeSlack,
    jira: FakeJira,
    smtp: FakeSmtp,
) -> None:
    away = a_mail("자동 응답: 휴가 중", "12월 10일까지 휴가입니다.")
    away["Auto-Submitted"] = "auto-replied"
    bounce = a_mail("Undelivered Mail", "550 no such user", sender="MAILER-DAEMON@mx.example")
    ours = a_mail("[접수 완료] x", "...", sender="beta@trading.example")
    nobody = a_mail("누구세요", "보낸 사람이 없는 메일", sender="undisclosed-recipients:;")
    exe = a_mail(
        "앱이 이상해요", "첨부 확인 부탁드립니다",
        files=(("screen.png", "image/png", b"MZ\x90\x00" + b"\x00" * 64),),
    )  # fmt: skip
    uids = [await asyncio.to_thread(dovecot.deliver, m) for m in (away, bounce, ours, nobody, exe)]
    client = await receiver(make_client, dovecot, slack, jira, smtp)
    await wait_for(lambda: _seen(dovecot, uids), seconds=20)
    # only the tester's report is filed, its disguised executable left out and said so
    [incident] = await reports(client)
    filed = await client.app[STORE].get_report(incident["id"])
    assert filed is not None and filed.report.attachments == ()
    assert "attachments not kept: screen.png" in filed.report.description
    await wait_for(lambda: len(smtp.inbox) == 1, seconds=20)
    assert [m["To"] for m in smtp.inbox] == [SKY]  # no answer to a machine, or to ourselves
    assert await received(client, "accepted") == 1


async def test_an_unreachable_mailbox_is_counted_and_tried_again(
    make_client: ClientFactory, dovecot: Dovecot, slack: FakeSlack, jira: FakeJira
) -> None:
    wrong = dovecot.url(tls=True).replace(dovecot.password, "wrong-password")
    client = await make_client(reports_imap_url=wrong, reports_imap_poll_seconds=0.1)

    async def failed() -> float | None:
        text = await (await client.get("/metrics", headers=API)).text()
        return metric(text, "receiver_reports_mailbox_polls_total", outcome="failed")

    for _ in range(200):
        if (await failed() or 0) >= 2:
            break
        await asyncio.sleep(0.05)
    assert (await failed() or 0) >= 2
    assert client.app[MAIL].mailbox.describe().endswith(f":{dovecot.ssl_port}/INBOX")
    assert "wrong-password" not in client.app[MAIL].mailbox.describe()


async def test_two_replicas_take_each_message_once(
    make_client: ClientFactory, dovecot: Dovecot, slack: FakeSlack, jira: FakeJira
) -> None:
    async with postgres_schema() as schema:
        one = await receiver(
            make_client, dovecot, slack, jira, store=PostgresStore(POSTGRES_URL, schema=schema)
        )
        two = await receiver(
            make_client, dovecot, slack, jira, store=PostgresStore(POSTGRES_URL, schema=schema)
        )
        senders = [f"tester{n}@example.com" for n in range(8)]
        for n, sender in enumerate(senders):
            await asyncio.to_thread(dovecot.deliver, a_mail(f"문제 {n}", "설명", sender=sender))

        async def filed() -> int:
            return len(await reports(one))

        for _ in range(400):
            if await filed() >= len(senders):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # time for a second filing, were there one
        assert await filed() == len(senders)
        found = [await one.app[STORE].get_report(i["id"], attachments=False)
                 for i in await reports(one)]  # fmt: skip
        assert sorted(f.report.reporter.email or "" for f in found if f) == sorted(senders)
        taken = [await received(c, "accepted") or 0 for c in (one, two)]
        assert sum(taken) == len(senders)
        await one.close()
        await two.close()


@pytest.mark.parametrize("how", ["imaps", "starttls", "plain on loopback"])
async def test_the_mailbox_is_read_as_its_url_says(dovecot: Dovecot, how: str) -> None:
    plain = dovecot.url(tls=False)  # imap://...?tls=none
    url = {
        "imaps": dovecot.url(tls=True),
        "starttls": plain.removesuffix("?tls=none"),
        "plain on loopback": plain,
    }[how]
    target = parse_imap_url(url)
    assert target.tls == {"imaps": "implicit", "starttls": "starttls"}.get(how, "none")
    first = await asyncio.to_thread(dovecot.deliver, a_mail())
    mailbox = ImapMailbox(target, timeout=10)
    try:
        assert await mailbox.open() == await asyncio.to_thread(dovecot.uidvalidity)
        assert await mailbox.uids_after(0) == [first]
        assert await mailbox.uids_after(first) == []  # "N:*" still matches the newest: not kept
        raw = await mailbox.fetch(first)
        assert raw is not None and b"Message-ID" in raw
        assert "\\Seen" not in await asyncio.to_thread(dovecot.flags, first)  # fetched, unread
        await mailbox.mark_seen(first)
        assert "\\Seen" in await asyncio.to_thread(dovecot.flags, first)
        assert await mailbox.fetch(first + 100) is None
    finally:
        await mailbox.close()
    await mailbox.close()  # twice: nothing happens


async def test_a_certificate_the_receiver_does_not_trust_is_refused(
    dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent")  # nothing trusts its CA
    mailbox = ImapMailbox(parse_imap_url(dovecot.url(tls=True)), timeout=10)
    with pytest.raises(MailboxError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        await mailbox.open()
    await mailbox.close()


async def test_in_log_only_mode_a_reply_is_logged_without_its_words_or_its_sender(
    make_client: ClientFactory, dovecot: Dovecot
) -> None:
    first = a_mail()
    reply = a_mail("Re: 주문 버튼이 반응하지 않아요", "제 번호는 010-1234-5678이에요",
                   answers=first["Message-ID"])  # fmt: skip
    with capture_logs() as events:
        client = await make_client(
            reports_imap_url=dovecot.url(tls=True), reports_imap_poll_seconds=0.1
        )  # no JIRA, Slack or SMTP: every channel only logs
        await asyncio.to_thread(dovecot.deliver, first)
        await wait_for(lambda: any(e.get("outcome") == "accepted" for e in events), seconds=20)
        await asyncio.to_thread(dovecot.deliver, reply)

        def commented() -> bool:
            return any(e.get("kind") == "report.comment" and e.get("channel") == "jira"
                       for e in events)  # fmt: skip

        await wait_for(commented, seconds=20)
    logged = repr(events)
    assert "010-1234-5678" not in logged and SKY not in logged and "김하늘" not in logged
    assert "not logged: private" in logged
    assert client.app[MAIL].mailbox.name.startswith("beta-feedback@127.0.0.1/")


async def test_another_person_in_the_thread_files_a_report_of_their_own(
    make_client: ClientFactory,
    dovecot: Dovecot,
    slack: FakeSlack,
    jira: FakeJira,
    smtp: FakeSmtp,
) -> None:
    first = a_mail()
    await asyncio.to_thread(dovecot.deliver, first)
    client = await receiver(make_client, dovecot, slack, jira, smtp)
    await wait_for(lambda: len(smtp.inbox) == 1, seconds=20)
    colleague = a_mail("Re: 주문 버튼이 반응하지 않아요", "저도 같은 문제가 있어요",
                       sender="jun@example.com", answers=first["Message-ID"])  # fmt: skip
    await asyncio.to_thread(dovecot.deliver, colleague)
    await wait_for(lambda: len(smtp.inbox) == 2, seconds=20)
    assert [m["To"] for m in smtp.inbox] == [SKY, "jun@example.com"]
    assert len(await reports(client)) == 2  # theirs, told on its own; not a comment on sky's
    forged = a_mail("급해요", "확인 부탁드립니다", sender="boss@trading.example")
    forged["Authentication-Results"] = "mx.trading.example; spf=fail; dmarc=fail"
    uid = await asyncio.to_thread(dovecot.deliver, forged)
    await wait_for(lambda: _seen(dovecot, [uid]), seconds=20)
    await asyncio.sleep(0.3)
    assert len(smtp.inbox) == 2 and len(await reports(client)) == 2  # nobody answered
