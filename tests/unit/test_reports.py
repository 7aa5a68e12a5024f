"""Beta-tester reports, pure: every bad field named, attachments judged by content, triage
by the rules' first match, rate limits per key."""

from __future__ import annotations

import json
import struct
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from receiver.config.loader import ConfigError, load_rules, parse_rules
from receiver.domain.ratelimit import SlidingWindow
from receiver.domain.report_render import attachment_names
from receiver.domain.reports import (
    MAX_ATTACHMENT_BYTES,
    Attachment,
    Environment,
    Report,
    Reporter,
    check_attachments,
    dedup_key,
    parse_report,
    reference,
    sniff,
    triage,
)

ROOT = Path(__file__).resolve().parents[2]
CFG = load_rules(ROOT / "routing_rules.yaml")
CATEGORIES = list(CFG.categories)
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def png() -> bytes:
    """A real one-pixel PNG."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def good(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "title": "주문 버튼이 반응하지 않아요",
        "description": "매수 주문을 누르면 아무 일도 일어나지 않습니다.",
        "category": "ui",
        "environment": {"os": "iOS 18.1", "browser": "Safari 18", "device": "iPhone 15"},
        "steps": "1. 로그인\n2. 삼성전자 선택\n3. 매수",
        "expected": "주문 확인 창",
        "actual": "아무 반응 없음",
        "reporter": {"name": "김하늘", "email": "sky@example.com"},
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


def test_a_good_report_is_accepted_with_every_field() -> None:
    report, errors = parse_report(good(), CATEGORIES)
    assert errors == []
    assert report is not None
    assert report.environment == Environment("iOS 18.1", "Safari 18", "iPhone 15", None)
    assert report.reporter == Reporter("김하늘", "sky@example.com", None)
    assert (report.steps, report.expected, report.actual) == (
        "1. 로그인\n2. 삼성전자 선택\n3. 매수",
        "주문 확인 창",
        "아무 반응 없음",
    )


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"title": None}, ["title"]),
        ({"title": "   "}, ["title"]),
        ({"title": "x" * 10_000}, ["title"]),
        ({"title": "two\nlines"}, ["title"]),
        ({"description": None}, ["description"]),
        ({"description": "y" * 20_001}, ["description"]),
        ({"title": 5, "description": ["a"]}, ["title", "description"]),
        ({"category": "nonsense"}, ["category"]),
        ({"environment": "Windows"}, ["environment"]),
        ({"environment": {"os": "x", "cpu": "arm"}}, ["environment.cpu"]),
        ({"reporter": None}, ["reporter"]),
        ({"reporter": {"name": "only a name"}}, ["reporter"]),
        ({"reporter": {"email": "not-an-address"}}, ["reporter.email"]),
        ({"reporter": {"telegram": "bad handle!"}}, ["reporter.telegram"]),
        ({"steps": "z" * 5_001}, ["steps"]),
        ({"severity": "P0"}, ["severity"]),  # not the reporter's to say
        # every bad field at once, in the order of the form
        ({"title": None, "category": "?", "reporter": {}}, ["title", "category", "reporter"]),
    ],
)
def test_every_bad_field_is_named(changes: dict[str, Any], fields: list[str]) -> None:
    sent = good() | changes  # a None is sent as null
    report, errors = parse_report(sent, CATEGORIES)
    assert report is None
    assert [e.field for e in errors] == fields
    assert all(e.message for e in errors)


def test_not_an_object_is_refused() -> None:
    assert parse_report(["title"], CATEGORIES)[1][0].message == "the report must be a JSON object"


def test_markup_in_report_text_is_kept_as_written() -> None:
    """Escaping is each channel's renderer's job; the report keeps what the tester wrote."""
    text = "<script>alert(1)</script> *bold* {code} <!channel>"
    report, errors = parse_report(good(title=text, description=text), CATEGORIES)
    assert errors == [] and report is not None
    assert report.title == text


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (png(), "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"RIFF\x1a\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"2026-03-02 09:30 order failed\n", "text/plain"),
        (json.dumps({"error": "timeout"}).encode(), "application/json"),
        ("로그 한 줄\n".encode(), "text/plain"),
        (b"MZ\x90\x00\x03\x00\x00\x00", None),  # a Windows executable
        (b"\x7fELF\x02\x01\x01", None),
        (b"%PDF-1.7", "text/plain"),
        (b"PK\x03\x04", None),  # a zip: not text (control bytes)
        (b"\xff\xfe\x00\x00", None),
    ],
)
def test_sniff_judges_by_content(data: bytes, kind: str | None) -> None:
    assert sniff(data) == kind


@pytest.mark.parametrize(
    ("files", "errors"),
    [
        ([("screen.png", "image/png", png())], []),
        ([("screen.PNG", None, png()), ("app.log", "text/plain", b"ok\n")], []),
        ([("notes.txt", "application/json", b'{"a": 1}')], []),  # text kinds are close kin
        ([("virus.png", "image/png", b"MZ\x90\x00binary\x00")], ["attachments[0]"]),
        ([("screen.jpg", "image/jpeg", png())], ["attachments[0]"]),  # named as another type
        ([("screen.png", "image/gif", png())], ["attachments[0]"]),  # sent as another type
        ([("empty.txt", "text/plain", b"")], ["attachments[0]"]),
        ([("big.txt", "text/plain", b"a" * (MAX_ATTACHMENT_BYTES + 1))], ["attachments[0]"]),
        ([("a.png", None, png())] * 6, ["attachments"]),
        ([("ok.png", None, png()), ("run.exe", None, b"MZ\x00")], ["attachments[1]"]),
    ],
)
def test_attachments_are_checked_by_content_name_and_type(
    files: list[tuple[str, str | None, bytes]], errors: list[str]
) -> None:
    accepted, problems = check_attachments(files)
    assert sorted({p.field for p in problems}) == errors
    if not errors:
        assert len(accepted) == len(files)


def test_attachment_names_lose_paths_and_control_characters() -> None:
    [attachment], _ = check_attachments([("../../etc/\x00pass\nwd.txt", None, b"x")])
    assert attachment.filename == "....etcpasswd.txt"
    assert attachment.content_type == "text/plain"


def report(title: str, description: str = "", **env: str) -> Report:
    return Report(title, description or title, Reporter(email="a@example.com"),
                  category=env.pop("category", None), environment=Environment(**env))  # fmt: skip


@pytest.mark.parametrize(
    ("made", "severity", "category", "rule"),
    [
        (report("로그인이 안 돼요"), "P1", "security", "cannot-sign-in"),
        (report("Cannot LOGIN since this morning"), "P1", "security", "cannot-sign-in"),
        (report("매도 주문이 체결되지 않음"), "P1", "api", "orders-failing"),
        (report("시세가 멈춰 있어요"), "P2", "data", "quotes-stale"),
        (report("글자가 잘려요", category="ui", browser="Mobile Safari 18"), "P3", "ui",
         "safari-display"),
        (report("글자가 잘려요", category="ui", browser="Chrome 131"), "P3", "ui", None),
        (report("앱이 느려요", category="performance"), "P3", "performance", None),
        (report("뭔가 이상해요"), "P3", "functional", None),  # defaults.category
    ],
)  # fmt: skip
def test_triage_takes_the_first_matching_rule(
    made: Report, severity: str, category: str, rule: str | None
) -> None:
    got = triage(made, CFG)
    assert (got.severity, got.category, got.rule) == (severity, category, rule)


def test_reference_and_dedup_key() -> None:
    assert reference(T0, 123) == "R-2026-000123"
    assert reference(T0, 1_234_567) == "R-2026-1234567"
    a = report("Order  Button broken")
    b = report("order button BROKEN")
    assert dedup_key(a) == dedup_key(b)
    assert dedup_key(a) != dedup_key(report("order button fixed?"))


def test_sliding_window_refuses_past_the_limit_and_says_when() -> None:
    limit = SlidingWindow(2, timedelta(hours=1))
    assert limit.hit("k", T0) is None
    assert limit.hit("k", T0 + timedelta(minutes=10)) is None
    assert limit.hit("k", T0 + timedelta(minutes=20)) == 40 * 60
    assert limit.hit("other", T0 + timedelta(minutes=20)) is None  # keys are apart
    assert limit.hit("k", T0 + timedelta(minutes=60, seconds=1)) is None  # the first expired
    assert limit.hit("k", T0 + timedelta(minutes=61)) == 9 * 60


RULES = (ROOT / "routing_rules.yaml").read_text()


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ("reports: {default_severity: P9}", "unknown severity 'P9'"),
        ("reports: {rotation: nobody}", "unknown rotation 'nobody'"),
        ("reports: {rate_limit: {per_reporter: lots}}", "rate must look like 10/h"),
        ("reports: {rate_limit: {per_client: 0/h}}", "at least 1"),
        ("reports: {locale: fr}", "locale"),
        ("reports: {rules: [{name: a, match: {category: nope}}]}", "unknown category 'nope'"),
        ("reports: {rules: [{name: a, match: {}}, {name: a, match: {}}]}", "duplicate rule name"),
        ("reports: {triage_within: soon}", "duration"),
        ("reports: {colour: red}", "unknown key"),
    ],
)
def test_check_config_names_what_is_wrong_in_reports(section: str, problem: str) -> None:
    start = RULES.index("\nreports:")
    end = RULES.index("\nrules:", start)
    text = RULES[:start] + "\n" + section + "\n" + RULES[end:]
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, "routing_rules.yaml")
    messages = [str(p) for p in caught.value.problems]
    assert any(problem in m and "reports" in m for m in messages), messages
    line = text.count("\n", 0, text.index(section)) + 1
    assert any(p.line == line for p in caught.value.problems), messages


@pytest.mark.parametrize(
    ("status", "triaged", "paged"),
    [("triggered", False, True), ("acknowledged", False, True), ("triggered", True, False),
     ("resolved", False, False)],
)  # fmt: skip
def test_a_report_untriaged_at_its_deadline_pages_the_triage_rotation(
    status: str, triaged: bool, paged: bool
) -> None:
    from receiver.domain.escalation import fire_triage, triage_timer
    from receiver.domain.model import Incident, Status
    from receiver.domain.oncall import responder

    made = Incident(7, "report:7", "report", "P3", "ui", "frontend", Status(status), "x", {},
                    T0, T0, T0, source="report")  # fmt: skip
    timer = triage_timer(CFG, T0)
    assert timer.due_at == T0 + CFG.reports.triage_within
    fired = fire_triage(made, CFG, timer.due_at, triaged)
    expected = [responder(CFG, "features", timer.due_at).person] if paged else []
    assert [p.person for p in fired.pages] == expected
    assert [e.event for e in fired.events] == (["triage_overdue"] if paged else [])


def test_notices_speak_the_rules_locale() -> None:
    from dataclasses import replace

    from receiver.domain.delivery import Kind
    from receiver.domain.model import Incident, Status
    from receiver.domain.reporter_notice import notice
    from receiver.domain.reports import FiledReport

    made = Incident(7, "report:7", "report", "P3", "ui", "frontend", Status.RESOLVED, "x", {},
                    T0, T0, T0, source="report")  # fmt: skip
    report, _ = parse_report(good(reporter={"email": "sky@example.com"}), CATEGORIES)
    assert report is not None
    filed = FiledReport(7, "R-2026-000007", report, dedup_key(report), T0)
    english = CFG.model_copy(update={"reports": CFG.reports.model_copy(update={"locale": "en"})})
    told = notice(Kind.REPORT_RESOLVED, filed, made, english, T0, "abc")
    assert told is not None
    assert told["subject"] == "[Fixed] 주문 버튼이 반응하지 않아요 (R-2026-000007)"
    assert told["text"].startswith("Hello tester,")  # no name given: the catalog's word
    assert "Mar 2, 2026, 6:30 PM KST" in told["text"]
    assert told["in_reply_to"] == "<R-2026-000007.receipt.abc@alert-receiver>"
    korean = notice(Kind.REPORT_RECEIVED, filed, made, CFG, T0, "abc")
    assert korean is not None and korean["text"].startswith("테스터님, 안녕하세요.")
    no_mail = replace(filed, report=replace(report, reporter=Reporter(telegram="@sky_tester")))
    assert notice(Kind.REPORT_RECEIVED, no_mail, made, CFG, T0, "abc") is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://u:p%40ss@mail.example:587", {"hostname": "mail.example", "port": 587,
         "username": "u", "password": "p@ss", "start_tls": True, "use_tls": False}),
        ("smtp://relay.local?tls=none", {"port": 587, "start_tls": False, "use_tls": False}),
        ("smtps://mail.example", {"port": 465, "start_tls": False, "use_tls": True}),
    ],
)  # fmt: skip
def test_smtp_urls(url: str, expected: dict[str, Any]) -> None:
    from receiver.notify.email import parse_smtp_url

    got = parse_smtp_url(url)
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "smtp://h?tls=maybe"])
def test_bad_smtp_urls_are_refused(url: str) -> None:
    from receiver.notify.email import SmtpUrlError, parse_smtp_url

    with pytest.raises(SmtpUrlError):
        parse_smtp_url(url)


@pytest.mark.parametrize(
    ("filename", "shown"),
    [
        ("screen.png", "1-screen.png"),
        ("스크린샷 1.png", "1-스크린샷_1.png"),  # letters of any script stay
        ("[x|y]{z}!.png", "1-x_y_z_.png"),  # nothing wiki markup would read
        ("a" * 300 + ".png", "1-" + "a" * 94 + ".png"),  # cut, keeping its type
        ("", "1-attachment"),
    ],
)
def test_attachments_get_numbered_names_safe_in_wiki_markup(filename: str, shown: str) -> None:
    [name] = attachment_names([Attachment(filename, "image/png", b"x")])
    assert name == shown and len(name) <= 100


def test_a_comments_files_go_on_numbering_after_the_reports() -> None:
    files = [Attachment("a.png", "image/png", b"x"), Attachment("a.png", "image/png", b"y")]
    assert attachment_names(files, start=3) == ["3-a.png", "4-a.png"]
