"""Beta testers' e-mails, pure: what a message says, whether a machine wrote it, the report
it makes, what a reply adds, the reference it answers; and the IMAP mailbox URL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from email.message import EmailMessage

import pytest

from receiver.domain.mail import (
    CUT_NOTE,
    NO_SUBJECT,
    Inbound,
    as_report,
    attachments_of,
    html_text,
    new_text,
    read,
    reference_in,
    title_of,
)
from receiver.domain.reports import MAX_DESCRIPTION, MAX_TITLE, Attachment, Reporter
from receiver.intake.imap import ImapTarget, ImapUrlError, parse_imap_url
from tests.unit.test_reports import png

CATEGORIES = ["ui", "data"]
SUBJECT = "주문 버튼이 반응하지 않아요"
BODY = "매수 주문을 누르면 아무 일도 일어나지 않습니다.\n삼성전자 화면에서요."
SENDER = "김하늘 <sky@example.com>"
MESSAGE_ID = "<m1.20261201@example.com>"
EXE = b"MZ\x90\x00" + bytes(range(256)) * 4  # a Windows executable, whatever its name says


def message(
    body: str = BODY,
    *,
    subject: str | None = SUBJECT,
    sender: str | None = SENDER,
    message_id: str | None = MESSAGE_ID,
    headers: Sequence[tuple[str, str]] = (),
    subtype: str = "plain",
    cte: str | None = None,
) -> EmailMessage:
    """An e-mail as a beta tester's client would send it."""
    mail = EmailMessage()
    if sender is not None:
        mail["From"] = sender
    mail["To"] = "beta@example.com"
    if subject is not None:
        mail["Subject"] = subject
    if message_id is not None:
        mail["Message-ID"] = message_id
    for name, value in headers:
        mail[name] = value
    mail.set_content(body, subtype=subtype, cte=cte)
    return mail


def with_files(*files: tuple[str, str, bytes]) -> bytes:
    """A plain e-mail carrying these (file name, declared type, content) attachments."""
    mail = message()
    for filename, declared, data in files:
        maintype, subtype = declared.split("/")
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mail.as_bytes()


def inbound(*, answers: tuple[str, ...] = (), subject: str = "") -> Inbound:
    return Inbound(
        message_id="<reply1@example.com>",
        answers=answers,
        sender="sky@example.com",
        sender_name="김하늘",
        subject=subject,
        text="",
        files=(),
        automatic=False,
    )


# --- read: what an e-mail says ---------------------------------------------------------


@pytest.mark.parametrize("cte", [None, "base64", "quoted-printable"], ids=["8bit", "b64", "qp"])
def test_a_plain_korean_mail_is_read(cte: str | None) -> None:
    raw = message(cte=cte).as_bytes()
    assert b"Subject: =?utf-8?" in raw  # the subject and the name go RFC 2047 encoded
    assert b"From: =?utf-8?" in raw

    assert read(raw) == Inbound(
        message_id=MESSAGE_ID,
        answers=(),
        sender="sky@example.com",
        sender_name="김하늘",
        subject=SUBJECT,
        text=BODY,
        files=(),
        automatic=False,
    )


def test_a_plain_mail_makes_an_email_report_threaded_by_its_message_id() -> None:
    report, errors = as_report(read(message().as_bytes()), CATEGORIES)

    assert errors == []
    assert report is not None
    assert report.source == "email"
    assert report.thread == MESSAGE_ID
    assert report.title == SUBJECT
    assert report.description == BODY
    assert report.reporter == Reporter(name="김하늘", email="sky@example.com")
    assert report.attachments == ()
    assert report.category is None


def test_a_mail_without_message_id_makes_a_report_without_thread() -> None:
    report, _ = as_report(read(message(message_id=None).as_bytes()), CATEGORIES)

    assert report is not None
    assert report.thread is None


def test_an_html_only_mail_gives_its_visible_text() -> None:
    html = (
        "<html><head><title>Beta</title><style>p { color: red }</style></head><body>"
        "<script>alert('x')</script><p>차트가&nbsp;비어&amp;있어요</p>"
        "<div>새로고침해도<br>그대로입니다</div></body></html>"
    )
    mail = read(message(html, subtype="html").as_bytes())

    assert mail.text == "차트가 비어&있어요\n\n새로고침해도\n그대로입니다"
    for hidden in ("Beta", "color", "alert"):
        assert hidden not in mail.text


@pytest.mark.parametrize("html_first", [False, True], ids=["plain-first", "html-first"])
def test_multipart_alternative_prefers_the_plain_text(html_first: bool) -> None:
    plain, html = "평문 본문입니다.", "<p>HTML 본문입니다.</p>"
    mail = message(html if html_first else plain, subtype="html" if html_first else "plain")
    if html_first:
        mail.add_alternative(plain)
    else:
        mail.add_alternative(html, subtype="html")

    assert mail.get_content_type() == "multipart/alternative"
    assert read(mail.as_bytes()).text == plain


@pytest.mark.parametrize(
    ("html", "text"),
    [
        pytest.param("<p>a</p><p>b</p>", "a\n\nb", id="paragraphs"),
        pytest.param("line<br>next<br/>last", "line\nnext\n\nlast", id="breaks"),
        pytest.param("<ul><li>one</li><li>two</li></ul>", "one\n\ntwo", id="list"),
        pytest.param("<script>var a = '<p>no</p>';</script>yes", "yes", id="script"),
        pytest.param("<STYLE>b{}</STYLE><B>bold</B>", "bold", id="upper-case-style"),
        pytest.param("<head><title>t</title></head>body", "body", id="head"),
        pytest.param("a &lt;b&gt; &amp; &#54620;", "a <b> & 한", id="entities"),
        pytest.param("  many   \t spaces  ", "many spaces", id="spaces"),
        pytest.param("<p>a</p>\n\n\n\n<p>b</p>", "a\n\nb", id="blank-lines-folded"),
        pytest.param("", "", id="empty"),
    ],
)
def test_html_text(html: str, text: str) -> None:
    assert html_text(html) == text


# --- attachments -----------------------------------------------------------------------


def test_attachments_of_keeps_a_real_png() -> None:
    data = png()

    kept, left = attachments_of([("screen.png", "image/png", data)])

    assert kept == (Attachment("screen.png", "image/png", data),)
    assert left == []


@pytest.mark.parametrize(
    ("file", "line"),
    [
        pytest.param(
            ("setup.png", "image/png", EXE), "setup.png: is not an allowed type", id="exe"
        ),
        pytest.param(("", "image/png", EXE), "attachment 1: is not an allowed type", id="nameless"),
        pytest.param(("empty.txt", "text/plain", b""), "empty.txt: is empty", id="empty"),
        pytest.param(
            ("shot.txt", "text/plain", png()), "shot.txt: is image/png by its content", id="renamed"
        ),
    ],
)
def test_attachments_of_leaves_out_what_the_api_would_refuse(
    file: tuple[str, str, bytes], line: str
) -> None:
    kept, left = attachments_of([file])

    assert kept == ()
    assert len(left) == 1
    assert left[0].startswith(line)


def test_attachments_of_leaves_out_files_beyond_five() -> None:
    files = [(f"shot{i}.png", "image/png", png()) for i in range(1, 8)]

    kept, left = attachments_of(files)

    assert [a.filename for a in kept] == [f"shot{i}.png" for i in range(1, 6)]
    assert left == ["shot6.png: more than 5 attachments", "shot7.png: more than 5 attachments"]


def test_attachments_of_counts_only_kept_files_toward_five() -> None:
    files = [("setup.png", "image/png", EXE)] + [
        (f"s{i}.png", "image/png", png()) for i in range(5)
    ]

    kept, left = attachments_of(files)

    assert len(kept) == 5
    assert len(left) == 1
    assert left[0].startswith("setup.png: ")


def test_a_report_keeps_the_png_and_names_the_executable_it_left_out() -> None:
    raw = with_files(("screen.png", "image/png", png()), ("setup.png", "image/png", EXE))
    mail = read(raw)
    assert [(name, declared) for name, declared, _ in mail.files] == [
        ("screen.png", "image/png"),
        ("setup.png", "image/png"),
    ]

    report, errors = as_report(mail, CATEGORIES)

    assert errors == []
    assert report is not None
    assert [(a.filename, a.content_type) for a in report.attachments] == [
        ("screen.png", "image/png")
    ]
    assert report.description.startswith(BODY)
    assert "[attachments not kept: setup.png: is not an allowed type" in report.description
    assert report.description.endswith("]")
    assert "screen.png" not in report.description


def test_a_report_keeps_five_attachments_and_says_which_it_left_out() -> None:
    raw = with_files(*[(f"shot{i}.png", "image/png", png()) for i in range(1, 8)])

    report, _ = as_report(read(raw), CATEGORIES)

    assert report is not None
    assert len(report.attachments) == 5
    assert "shot6.png: more than 5 attachments; shot7.png: more than 5" in report.description


def test_a_long_body_with_left_out_files_still_fits_and_names_them() -> None:
    mail = read(with_files(("setup.png", "image/png", EXE)))
    long = replace(mail, text="가" * 30_000)

    report, _ = as_report(long, CATEGORIES)

    assert report is not None
    assert len(report.description) <= MAX_DESCRIPTION
    assert CUT_NOTE in report.description
    assert "[attachments not kept: setup.png" in report.description


# --- titles and descriptions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "title"),
    [
        pytest.param("Re: Fwd: 답장: 주문 오류", "주문 오류", id="re-fwd-korean"),
        pytest.param("RE: AW: 회신: 전달: FW: 주문 오류", "주문 오류", id="many-prefixes"),
        pytest.param("Re[2]: 주문 오류", "주문 오류", id="counted-re"),
        pytest.param("Re : re: 주문 오류", "주문 오류", id="spaced-colon"),
        pytest.param("  주문 오류  ", "주문 오류", id="trimmed"),
        pytest.param("Review: 차트가 비어요", "Review: 차트가 비어요", id="word-starting-re"),
        pytest.param("주문 오류 Re: 다시", "주문 오류 Re: 다시", id="re-inside-kept"),
        pytest.param(
            "Re: [접수 완료] 주문 오류 (R-2026-000123)",
            "[접수 완료] 주문 오류 (R-2026-000123)",
            id="answer-to-a-receipt",
        ),
        pytest.param("", NO_SUBJECT, id="empty"),
        pytest.param("Re: Fwd:", NO_SUBJECT, id="only-prefixes"),
        pytest.param("가" * MAX_TITLE, "가" * MAX_TITLE, id="exactly-200"),
        pytest.param("가" * 300, "가" * (MAX_TITLE - 1) + "…", id="300-cut-to-200"),
    ],
)
def test_title_of(subject: str, title: str) -> None:
    assert title_of(subject) == title
    assert len(title_of(subject)) <= MAX_TITLE


def test_a_300_character_subject_makes_a_200_character_title() -> None:
    report, _ = as_report(read(message(subject="오" * 300).as_bytes()), CATEGORIES)

    assert report is not None
    assert report.title == "오" * 199 + "…"
    assert len(report.title) == MAX_TITLE


def test_a_30000_character_body_is_cut_with_a_note() -> None:
    body = "로그 한 줄입니다 0123456789\n" * 1_500  # about 30,000 characters
    assert len(body) > 30_000

    report, _ = as_report(read(message(body).as_bytes()), CATEGORIES)

    assert report is not None
    assert len(report.description) == MAX_DESCRIPTION
    assert report.description.endswith(CUT_NOTE)
    assert report.description == body[: MAX_DESCRIPTION - len(CUT_NOTE)] + CUT_NOTE


@pytest.mark.parametrize(
    "subject",
    [pytest.param("", id="empty"), pytest.param(None, id="missing"), pytest.param("Re:", id="re")],
)
def test_a_mail_without_subject_is_titled_no_subject(subject: str | None) -> None:
    report, _ = as_report(read(message(subject=subject).as_bytes()), CATEGORIES)

    assert report is not None
    assert report.title == NO_SUBJECT


@pytest.mark.parametrize(
    ("body", "subtype"),
    [
        pytest.param("", "plain", id="empty"),
        pytest.param(" \n\n \t\n", "plain", id="blank"),
        pytest.param("<script>only()</script>", "html", id="html-without-text"),
    ],
)
def test_a_mail_without_text_is_described_by_its_title(body: str, subtype: str) -> None:
    report, _ = as_report(read(message(body, subtype=subtype).as_bytes()), CATEGORIES)

    assert report is not None
    assert report.description == SUBJECT


def test_a_mail_without_subject_or_text_is_described_as_no_subject() -> None:
    report, _ = as_report(read(message("", subject=None).as_bytes()), CATEGORIES)

    assert report is not None
    assert (report.title, report.description) == (NO_SUBJECT, NO_SUBJECT)


# --- which earlier messages a mail answers ---------------------------------------------


@pytest.mark.parametrize(
    ("headers", "answers"),
    [
        pytest.param([], (), id="none"),
        pytest.param([("In-Reply-To", "<a@x>")], ("<a@x>",), id="in-reply-to"),
        pytest.param([("References", "<a@x> <b@x> <c@x>")], ("<c@x>", "<b@x>", "<a@x>"), id="refs"),
        pytest.param(
            [("In-Reply-To", "<c@x>"), ("References", "<a@x> <b@x> <c@x>")],
            ("<c@x>", "<b@x>", "<a@x>"),
            id="usual-reply-deduplicated",
        ),
        pytest.param(
            [("References", "<a@x> <b@x>"), ("In-Reply-To", "<z@x>")],
            ("<z@x>", "<b@x>", "<a@x>"),
            id="in-reply-to-first-whatever-the-header-order",
        ),
        pytest.param(
            [("In-Reply-To", "<b@x>"), ("References", "<a@x> <b@x> <c@x> <a@x>")],
            ("<b@x>", "<a@x>", "<c@x>"),
            id="duplicates-keep-the-nearest",
        ),
        pytest.param(
            [("In-Reply-To", "<a@x> (김하늘's message of Mon)")], ("<a@x>",), id="comment-ignored"
        ),
        pytest.param([("In-Reply-To", "not a message id")], (), id="junk"),
    ],
)
def test_answers_in_reply_to_first_then_references_nearest_first(
    headers: list[tuple[str, str]], answers: tuple[str, ...]
) -> None:
    assert read(message(headers=headers).as_bytes()).answers == answers


def test_long_references_folded_over_lines_are_all_read() -> None:
    ids = [f"<r{i}.0123456789abcdef@example.com>" for i in range(8)]
    raw = message(headers=[("References", " ".join(ids))]).as_bytes()
    assert b"\n " in raw  # folded

    assert read(raw).answers == tuple(reversed(ids))


# --- mail written by machines ----------------------------------------------------------

BOUNCE = (
    b"From: Mail Delivery System <bounces@example.com>\r\n"
    b"To: beta@example.com\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\n"
    b"Message-ID: <bounce1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n'
    b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n"
    b"\r\nFinal-Recipient: rfc822; gone@example.com\r\nAction: failed\r\n"
    b"--b--\r\n"
)


def headed(*headers: tuple[str, str]) -> bytes:
    return message(headers=headers).as_bytes()


def sent_by(sender: str | None) -> bytes:
    return message(sender=sender).as_bytes()


@pytest.mark.parametrize(
    ("raw", "automatic"),
    [
        pytest.param(headed(("Auto-Submitted", "auto-replied")), True, id="auto-replied"),
        pytest.param(headed(("Auto-Submitted", "auto-generated")), True, id="auto-generated"),
        pytest.param(headed(("Precedence", "bulk")), True, id="precedence-bulk"),
        pytest.param(headed(("Precedence", "junk")), True, id="precedence-junk"),
        # a group forwarding testers' mail to the feedback address is not a machine
        pytest.param(headed(("Precedence", "list")), False, id="precedence-list"),
        pytest.param(headed(("List-Id", "Beta testers <beta.example.com>")), False, id="list-id"),
        pytest.param(headed(("X-Autoreply", "yes")), True, id="x-autoreply"),
        pytest.param(BOUNCE, True, id="multipart-report-bounce"),
        pytest.param(sent_by("MAILER-DAEMON@mx.example.com"), True, id="mailer-daemon"),
        pytest.param(sent_by("postmaster@example.com"), True, id="postmaster"),
        pytest.param(sent_by("No Reply <no-reply@example.com>"), True, id="no-reply"),
        pytest.param(sent_by("noreply@example.com"), True, id="noreply"),
        pytest.param(sent_by("do-not-reply@example.com"), True, id="do-not-reply"),
        pytest.param(sent_by(None), True, id="missing-from"),
        pytest.param(sent_by("undisclosed-recipients:;"), True, id="from-without-address"),
        pytest.param(headed(("Auto-Submitted", "no")), False, id="auto-submitted-no"),
        pytest.param(headed(("Precedence", "first-class")), False, id="precedence-other"),
        pytest.param(headed(), False, id="a-person"),
        pytest.param(sent_by("sky.noreply@example.com"), False, id="noreply-not-a-prefix"),
    ],
)
def test_automatic_mail(raw: bytes, automatic: bool) -> None:
    assert read(raw).automatic is automatic


# --- malformed mail never raises -------------------------------------------------------

MULTIPART = b'From: sky@example.com\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n'


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"garbage without headers", id="garbage"),
        pytest.param(b"\xff\xfe\x00\x01\x80", id="binary"),
        pytest.param(b"From: <<<@@@>>>\r\n\r\nbody", id="from-brackets"),
        pytest.param(b'From: "unterminated <sky@example.com\r\n\r\nbody', id="from-open-quote"),
        pytest.param(b"From: =?utf-8?q?broken\r\nSubject: =?utf-8?b?!!!?=\r\n\r\nx", id="bad-2047"),
        pytest.param(b"From: =?x-unknown?q?abc?= <sky@example.com>\r\n\r\nx", id="from-charset"),
        pytest.param(b"From: \xed\x95\x9c\xff <sky@example.com>\r\n\r\nx", id="from-raw-bytes"),
        pytest.param(b"From: list:; sky\r\n\r\nbody", id="from-group-then-text"),
        pytest.param(b"From: sky@example.com\r\nMessage-ID: <abc@\r\n\r\nx", id="message-id-cut"),
        pytest.param(b"From: sky@example.com\r\nMessage-ID: <\r\n\r\nx", id="message-id-bracket"),
        pytest.param(b"From: sky@example.com\r\nIn-Reply-To: <<>>\r\n\r\nx", id="in-reply-to"),
        pytest.param(
            b"From: sky@example.com\r\nContent-Type: text/plain; a*\r\n\r\nx",
            id="content-type-param",
        ),
        pytest.param(
            b"From: sky@example.com\r\nContent-Type: text/plain; charset=nope\r\n\r\nx",
            id="unknown-charset",
        ),
        pytest.param(
            b"From: sky@example.com\r\nContent-Transfer-Encoding: base64\r\n\r\n\xff!!",
            id="bad-b64",
        ),
        pytest.param(MULTIPART + b"no boundary at all", id="multipart-without-parts"),
        pytest.param(
            MULTIPART + b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x\r\n"
            b"Content-Disposition: attachment; filename*=bad''%ff%fe\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64\r\n--x--\r\n",
            id="attachment-bad-filename",
        ),
        pytest.param(
            MULTIPART + b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x\r\n"
            b"Content-Disposition: attachment; filename*\r\n\r\ndata\r\n--x--\r\n",
            id="attachment-filename-star",
        ),
    ],
)
def test_malformed_mail_never_raises(raw: bytes) -> None:
    mail = read(raw)

    assert isinstance(mail, Inbound)
    as_report(mail, CATEGORIES)  # a report, or the fields that are wrong: never an exception
    new_text(mail.text)
    reference_in(mail)


def test_garbage_is_read_as_an_automatic_mail_from_nobody() -> None:
    mail = read(b"garbage without headers")

    assert (mail.message_id, mail.sender, mail.subject) == (None, None, "")
    assert mail.automatic is True


# --- what a reply adds -----------------------------------------------------------------

NEW = "새로고침해도 여전히 안 돼요.\n스크린샷 첨부합니다."
QUOTED = "> 주문 버튼이 반응하지 않아요\n> 매수 주문을 누르면"


@pytest.mark.parametrize(
    ("text", "added"),
    [
        pytest.param(NEW, NEW, id="no-quote"),
        pytest.param(f"\n\n{NEW}\n\n", NEW, id="trimmed"),
        pytest.param(f"{NEW}\n\n{QUOTED}", NEW, id="quoted-lines"),
        pytest.param(f"{NEW}\n  >> 깊은 인용\n", NEW, id="nested-indented-quote"),
        pytest.param(f"{QUOTED}\n{NEW}", NEW, id="bottom-posted"),
        pytest.param(
            f"{NEW}\n\nOn Mon, 1 Dec 2026 at 10:00, Kim Haneul <sky@example.com> wrote:\n{QUOTED}",
            NEW,
            id="gmail-attribution",
        ),
        pytest.param(
            f"{NEW}\n\nOn Mon, 1 Dec 2026 at 10:00 AM Kim Haneul <\nsky@example.com> wrote:\n"
            f"{QUOTED}",
            NEW,
            id="gmail-attribution-wrapped",
        ),
        pytest.param(
            f"{NEW}\n\n2026년 12월 1일 (월) 오전 10:00, 김하늘 <sky@example.com>님이 작성:\n"
            f"{QUOTED}",
            NEW,
            id="korean-attribution",
        ),
        pytest.param(
            f"{NEW}\n\n-----Original Message-----\nFrom: 김하늘\nSent: Monday\n\n주문 버튼이",
            NEW,
            id="original-message",
        ),
        pytest.param(
            f"{NEW}\n\n-----원본 메시지-----\n보낸 사람: 김하늘\n\n주문 버튼이",
            NEW,
            id="korean-original",
        ),
        pytest.param(
            f"{NEW}\n\n---------- Forwarded message ---------\nFrom: 김하늘\n\n주문",
            NEW,
            id="forward",
        ),
        pytest.param(
            f"{NEW}\n\nFrom: 김하늘 <sky@example.com>\nSent: Monday, December 1, 2026 10:00 AM\n"
            "To: beta@example.com\nSubject: 주문 버튼이 반응하지 않아요\n\n매수 주문을 누르면",
            NEW,
            id="outlook-header-block",
        ),
        pytest.param(
            f"{NEW}\n\n보낸 사람: 김하늘 <sky@example.com>\n보낸 날짜: 2026년 12월 1일\n\n매수",
            NEW,
            id="korean-outlook-block",
        ),
        pytest.param(f"{QUOTED}\n", "", id="only-quoted"),
    ],
)
def test_new_text_keeps_what_the_reply_adds(text: str, added: str) -> None:
    assert new_text(text) == added


# --- the report reference an answer carries --------------------------------------------

NOTICE = "<R-2026-000123.receipt.abcdef@alert-receiver>"


@pytest.mark.parametrize(
    ("answers", "subject", "reference"),
    [
        pytest.param((NOTICE,), "Re: 주문 오류", "R-2026-000123", id="answers-a-receipt"),
        pytest.param(
            ("<R-2026-000777.resolved.abcdef@alert-receiver>",), "", "R-2026-000777", id="resolved"
        ),
        pytest.param(
            ("<x@gmail.com>", NOTICE), "", "R-2026-000123", id="notice-further-up-the-thread"
        ),
        pytest.param(
            (), "Re: [접수 완료] 주문 오류 (R-2026-000123)", "R-2026-000123", id="in-the-subject"
        ),
        pytest.param(
            (NOTICE,), "Re: (R-2026-000999)", "R-2026-000123", id="message-id-before-subject"
        ),
        pytest.param(
            ("<R-2026-000123@gmail.com>",), "Re: 주문 오류", None, id="not-our-message-id"
        ),
        pytest.param(
            ("<R-2026-000123@gmail.com>",), "Re: (R-2026-000456)", "R-2026-000456", id="foreign-id"
        ),
        pytest.param(("<abc.receipt@alert-receiver>",), "", None, id="our-id-without-reference"),
        pytest.param((), "Re: R-2026-0001234", None, id="too-many-digits"),
        pytest.param((), "Re: R-26-000123", None, id="short-year"),
        pytest.param((), "Re: 주문 오류", None, id="nothing"),
    ],
)
def test_reference_in(answers: tuple[str, ...], subject: str, reference: str | None) -> None:
    assert reference_in(inbound(answers=answers, subject=subject)) == reference


def test_a_reply_to_a_receipt_carries_its_reference() -> None:
    raw = message(
        "네, 지금도 그래요.",
        subject="Re: [접수 완료] 주문 오류",
        headers=[("In-Reply-To", NOTICE), ("References", f"{MESSAGE_ID} {NOTICE}")],
    ).as_bytes()

    mail = read(raw)

    assert mail.answers == (NOTICE, MESSAGE_ID)
    assert reference_in(mail) == "R-2026-000123"


# --- the mailbox URL -------------------------------------------------------------------

PASSWORD = "Hunter2-s3cret"


@pytest.mark.parametrize(
    ("url", "target"),
    [
        pytest.param(
            f"imaps://beta:{PASSWORD}@mail.example.com",
            ImapTarget("mail.example.com", 993, "beta", PASSWORD, "INBOX", "implicit"),
            id="imaps-defaults",
        ),
        pytest.param(
            f"imaps://beta:{PASSWORD}@mail.example.com:10993/Archive",
            ImapTarget("mail.example.com", 10993, "beta", PASSWORD, "Archive", "implicit"),
            id="imaps-port-mailbox",
        ),
        pytest.param(
            f"imap://beta:{PASSWORD}@mail.example.com/INBOX",
            ImapTarget("mail.example.com", 143, "beta", PASSWORD, "INBOX", "starttls"),
            id="imap-starttls-default-143",
        ),
        pytest.param(
            f"imap://beta:{PASSWORD}@localhost:3143/INBOX?tls=none",
            ImapTarget("localhost", 3143, "beta", PASSWORD, "INBOX", "none"),
            id="imap-tls-none",
        ),
        pytest.param(
            f"imap://beta:{PASSWORD}@127.0.0.1?tls=none",
            ImapTarget("127.0.0.1", 143, "beta", PASSWORD, "INBOX", "none"),
            id="imap-tls-none-defaults",
        ),
        pytest.param(
            "imaps://beta%40example.com:p%40ss%3Aw%2Frd%25@mail.example.com/Beta%20Feedback",
            ImapTarget(
                "mail.example.com",
                993,
                "beta@example.com",
                "p@ss:w/rd%",
                "Beta Feedback",
                "implicit",
            ),
            id="percent-encoded",
        ),
        pytest.param(
            f"imaps://beta:{PASSWORD}@mail.example.com/INBOX/Beta",
            ImapTarget("mail.example.com", 993, "beta", PASSWORD, "INBOX/Beta", "implicit"),
            id="nested-mailbox",
        ),
        pytest.param(
            f"imaps://beta:{PASSWORD}@MAIL.Example.COM/",
            ImapTarget("mail.example.com", 993, "beta", PASSWORD, "INBOX", "implicit"),
            id="host-case-and-empty-path",
        ),
    ],
)
def test_parse_imap_url(url: str, target: ImapTarget) -> None:
    assert parse_imap_url(url) == target


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param(
            f"http://beta:{PASSWORD}@mail.example.com/INBOX", "must be imaps://", id="http"
        ),
        pytest.param("", "must be imaps://", id="empty"),
        pytest.param("mail.example.com", "must be imaps://", id="no-scheme"),
        pytest.param(f"imaps://beta:{PASSWORD}@/INBOX", "must be imaps://", id="no-host"),
        pytest.param("imaps:///INBOX", "must be imaps://", id="nothing-but-path"),
        pytest.param("imaps://mail.example.com/INBOX", "the user and the password", id="no-user"),
        pytest.param(
            "imaps://beta@mail.example.com/INBOX", "the user and the password", id="no-pw"
        ),
        pytest.param(
            f"imaps://:{PASSWORD}@mail.example.com/INBOX", "the user and the password", id="no-name"
        ),
        pytest.param(
            f"imaps://beta:{PASSWORD}@mail.example.com/INBOX?tls=none",
            "tls may only be 'none', with imap://",
            id="imaps-tls-none",
        ),
        pytest.param(
            f"imap://beta:{PASSWORD}@mail.example.com/INBOX?tls=maybe",
            "tls may only be 'none'",
            id="tls-maybe",
        ),
        pytest.param(
            f"imaps://beta:{PASSWORD}@mail.example.com:99999/INBOX", "port", id="port-out-of-range"
        ),
        pytest.param(f"imaps://beta:{PASSWORD}@mail.example.com:abc/INBOX", "port", id="port-text"),
    ],
)
def test_parse_imap_url_refuses(url: str, message: str) -> None:
    with pytest.raises(ImapUrlError) as refused:
        parse_imap_url(url)

    assert "RECEIVER_REPORTS_IMAP_URL" in str(refused.value)
    assert message.casefold() in str(refused.value).casefold()
    assert PASSWORD not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "described"),
    [
        pytest.param(
            f"imaps://beta:{PASSWORD}@mail.example.com",
            "imaps://beta@mail.example.com:993/INBOX",
            id="imaps",
        ),
        pytest.param(
            f"imap://beta:{PASSWORD}@mail.example.com/Beta%20Feedback",
            "imap://beta@mail.example.com:143/Beta Feedback",
            id="starttls",
        ),
        pytest.param(
            f"imap://beta:{PASSWORD}@localhost:3143/INBOX?tls=none",
            "imap://beta@localhost:3143/INBOX",
            id="tls-none",
        ),
    ],
)
def test_describe_never_shows_the_password(url: str, described: str) -> None:
    target = parse_imap_url(url)

    assert target.describe() == described
    assert PASSWORD not in target.describe()


def test_describe_never_shows_a_percent_encoded_password() -> None:
    target = parse_imap_url("imaps://beta:p%40ss%3Aw0rd@mail.example.com/INBOX")

    assert target.password == "p@ss:w0rd"
    assert "p@ss:w0rd" not in target.describe()
    assert "p%40ss%3Aw0rd" not in target.describe()


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        pytest.param("<a@mail.example.com>", True, id="ordinary"),
        pytest.param("<a\x00b@mail.example.com>", False, id="nul"),
        pytest.param("<" + "x" * 300 + "@mail.example.com>", False, id="too-long"),
        pytest.param("<a b@mail.example.com>", False, id="space"),
    ],
)
def test_only_message_ids_the_store_can_keep_are_remembered(value: str, kept: bool) -> None:
    raw = f"From: sky@example.com\r\nSubject: x\r\nMessage-ID: {value}\r\n\r\nbody\r\n"
    mail = read(raw.encode("utf-8", "surrogateescape"))
    assert (mail.message_id == value) is kept


@pytest.mark.parametrize(
    ("results", "forged"),
    [
        pytest.param("mx.google.com; dkim=pass; spf=pass; dmarc=pass", False, id="pass"),
        pytest.param("mx.google.com; spf=fail smtp.mailfrom=x; dmarc=fail", True, id="fail"),
        pytest.param("mx.example.com; spf=softfail", True, id="softfail"),
        pytest.param(None, False, id="none"),
    ],
)
def test_a_sender_the_receiving_server_found_forged_is_flagged(
    results: str | None, forged: bool
) -> None:
    head = f"Authentication-Results: {results}\r\n" if results else ""
    raw = f"From: sky@example.com\r\n{head}Subject: x\r\n\r\nbody\r\n"
    assert read(raw.encode()).forged is forged
