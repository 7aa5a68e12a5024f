"""Pages get through, with ``receiver serve`` as real processes on the real clock.

Two receivers run at once, each with its own database and its own fakes:

* Slack answering 500 for good: the P1 page reaches the on-call person on Telegram within
  ``page_retry``; their "Acknowledge" button, posted to the process's ``/telegram/webhook``,
  acknowledges the incident as them (JIRA hears of it, the Telegram page is edited in
  place) and no e-mail page follows; a forged webhook secret is refused and changes nothing.
* Slack fine but no ack: the Slack DM goes out at once, the page moves on to Telegram after
  ``page_retry`` and then to e-mail after another ``page_retry``.

The on-call person is fixed by an override in the written rules (kim covers the backend
rotation from an hour ago to a day ahead), so the test does not depend on today's date.
``page_retry`` is its minimum, 30s: the test waits about twice that in real time (both
scenarios in the same wall time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import yaml

from receiver.config import load_rules
from receiver.domain.oncall import responder
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import FakeSmtp
from tests.fakes.telegram import FakeTelegram
from tests.helpers import SHIPPED_RULES, alert, webhook
from tests.reliability.harness import (
    WEBHOOK_TOKEN,
    ReceiverProcess,
    api_get,
    fake_jira,
    fake_slack,
)

PAGE_RETRY = 30.0  # seconds; the smallest page_retry the rules accept
POLLING = 5.0  # the timer loop and the outbox poll every 0.2 s; the rest is margin
SETTLE = 10.0  # bound on waiting for a delivery that is due now (JIRA, Telegram edits)
KIM_TG = 1001
SECRET = "tg-reliability-secret"
PUBLIC_URL = "https://receiver.trading.example"
SEOUL = ZoneInfo("Asia/Seoul")


def rules_file(tmp_path: Path, now: datetime) -> Path:
    """The shipped rules; kim on call for backend now, paged by Slack, Telegram, e-mail."""
    data: dict[str, Any] = yaml.safe_load(SHIPPED_RULES.read_text(encoding="utf-8"))
    data["people"]["kim"].update(telegram_id=KIM_TG, notify=["slack", "telegram", "email"])
    data["page_retry"] = "30s"
    local = now.astimezone(SEOUL).replace(tzinfo=None, second=0, microsecond=0)
    cover = {
        "person": "kim",
        "from": (local - timedelta(hours=1)).isoformat(timespec="minutes"),
        "to": (local + timedelta(days=1)).isoformat(timespec="minutes"),
    }
    data["rotations"]["backend"]["overrides"] = [cover]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    cfg = load_rules(path)
    assert cfg.page_retry == timedelta(seconds=PAGE_RETRY)
    assert responder(cfg, "backend", now).person == "kim"
    return path


async def telegram_page_in_time(
    telegram: FakeTelegram, opened: float, incident_id: int, receiver: ReceiverProcess
) -> tuple[dict[str, Any], float]:
    """Kim's Telegram page, arrived within page_retry of the alert and not before it: the
    page, and when it came (monotonic)."""
    [page] = await until(
        lambda: pages_to_kim(telegram),
        PAGE_RETRY + POLLING - (time.monotonic() - opened),
        "the Telegram page",
        receiver,
    )
    paged = time.monotonic()
    assert paged - opened >= PAGE_RETRY - 2, "moved on to Telegram before page_retry"
    assert paged - opened <= PAGE_RETRY + POLLING
    assert f"#{incident_id} [P1][api]" in page["text"]
    assert "by Telegram: no ack within 30s" in page["text"]
    return page, paged


async def until(check: Callable[[], Any], seconds: float, what: str, logs: ReceiverProcess) -> Any:
    """Poll ``check`` (a plain function) until it returns something truthy; bounded."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:.0f}s\n{logs.log_tail()}")
        await asyncio.sleep(0.1)


async def incident(session: aiohttp.ClientSession, url: str, incident_id: int) -> Any:
    return await api_get(session, url, f"/api/v1/incidents/{incident_id}")


async def press(
    session: aiohttp.ClientSession, url: str, update: dict[str, Any], secret: str | None = SECRET
) -> tuple[int, Any]:
    """POST an update to the receiver's Telegram webhook, as Telegram would (or a forger)."""
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    async with session.post(url + "/telegram/webhook", json=update, headers=headers) as answer:
        return answer.status, await answer.json()


def pages_to_kim(telegram: FakeTelegram) -> list[dict[str, Any]]:
    return [m for m in telegram.sent(KIM_TG) if "You are paged" in m["text"]]


def acted(view: dict[str, Any]) -> list[str]:
    """Timeline entries a button press could have added."""
    return [e["event"] for e in view["timeline"] if e["event"] in ("acknowledged", "resolved")]


@dataclass
class Fakes:
    """The services one receiver talks to."""

    jira: FakeJira
    slack: FakeSlack
    telegram: FakeTelegram
    smtp: FakeSmtp


@pytest.fixture
async def fine() -> AsyncIterator[Fakes]:
    """A second set of fakes, for the second receiver: Slack works normally."""
    async with (
        fake_jira() as jira,
        fake_slack() as slack,
        FakeTelegram() as telegram,
        FakeSmtp() as smtp,
    ):
        yield Fakes(jira, slack, telegram, smtp)


def receiver_process(name: str, workdir: Path, fakes: Fakes, now: datetime) -> ReceiverProcess:
    """``receiver serve`` on a SQLite file of its own in ``workdir``, with the rules there."""
    return ReceiverProcess(
        name,
        f"sqlite:///{workdir}/receiver.db",
        fakes.jira,
        fakes.slack,
        workdir,
        rules=str(rules_file(workdir, now)),
        telegram_token=fakes.telegram.token,
        telegram_api_url=fakes.telegram.url.removesuffix("/bot"),
        telegram_webhook_secret=SECRET,
        smtp_url=fakes.smtp.url,
        smtp_from="Alert receiver <receiver@trading.example>",
        public_url=PUBLIC_URL,
    )


async def open_p1(session: aiohttp.ClientSession, url: str) -> int:
    """The P1 page: kis-gateway's token refresh failing, routed to backend (kim on call)."""
    firing = alert(
        starts=datetime.now(UTC), alertname="KISTokenRefreshFailed", service="kis-gateway"
    )
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    async with session.post(url + "/webhook", json=webhook(firing), headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        [incident_id] = (await resp.json())["incidents"]
    view = await incident(session, url, incident_id)
    assert (view["severity"], view["status"]) == ("P1", "triggered"), view
    return int(incident_id)


async def slack_down(
    session: aiohttp.ClientSession, receiver: ReceiverProcess, fakes: Fakes
) -> None:
    """Slack answers 500 for good: Telegram within page_retry, its ack stops the e-mail."""
    jira, slack, telegram, smtp = fakes.jira, fakes.slack, fakes.telegram, fakes.smtp
    url = receiver.url
    opened = time.monotonic()
    incident_id = await open_p1(session, url)

    # Slack is tried for kim's page (and fails, and is retried); Telegram waits its turn.
    await until(
        lambda: [c for c in slack.calls if "U0KIM" in str(c.params)],
        SETTLE,
        "the Slack page to kim attempted",
        receiver,
    )
    assert pages_to_kim(telegram) == []

    # 3. A forged secret (wrong, or none) is refused and changes nothing.
    forged = telegram.callback_update(KIM_TG, f"resolve:{incident_id}")
    for secret in ("wrong-secret", None):
        status, _ = await press(session, url, forged, secret=secret)
        assert status == 401, secret
    view = await incident(session, url, incident_id)
    assert view["status"] == "triggered" and acted(view) == []

    # 1. No ack within page_retry: the page moves on to Telegram, in time.
    page, paged = await telegram_page_in_time(telegram, opened, incident_id, receiver)
    assert f"{PUBLIC_URL}/api/v1/incidents/{incident_id}" in page["text"]
    buttons = [b["callback_data"] for b in page["reply_markup"]["inline_keyboard"][0]]
    actions = ("ack", "mitigate", "resolve")
    assert buttons == [f"{action}:{incident_id}" for action in actions]
    view = await incident(session, url, incident_id)
    moved = [e for e in view["timeline"] if e["event"] == "page_fallback"]
    assert [(e["person"], e["from"], e["channel"], e["attempt"]) for e in moved] == [
        ("kim", "slack", "telegram", 1)
    ]
    assert view["status"] == "triggered" and acted(view) == []  # the forgery did nothing

    # A forged Acknowledge on the page itself: refused, the page is left as it is.
    on_page = (KIM_TG, page["message_id"])
    status, _ = await press(
        session, url, telegram.callback_update(KIM_TG, f"ack:{incident_id}", on_page), "x"
    )
    assert status == 401
    assert telegram.message(*on_page)["edits"] == 0

    # 2. kim presses Acknowledge on the Telegram page.
    update = telegram.callback_update(KIM_TG, f"ack:{incident_id}", message=on_page)
    status, answer = await press(session, url, update)
    assert status == 200, answer
    assert answer == {
        "method": "answerCallbackQuery",
        "callback_query_id": update["callback_query"]["id"],
        "text": f"Incident #{incident_id} acknowledged by Kim Minjun.",
    }
    view = await incident(session, url, incident_id)
    assert (view["status"], view["acknowledged_by"]) == ("acknowledged", "kim")
    key = view["jira_key"]
    assert key, view
    await until(
        lambda: [c for c in jira.comments(key) if c.startswith("Acknowledged by Kim Minjun")],
        SETTLE,
        "the ack comment in JIRA",
        receiver,
    )
    await until(
        lambda: telegram.message(*on_page)["edits"] >= 1,
        SETTLE,
        "the Telegram page edited",
        receiver,
    )
    edited = telegram.message(*on_page)
    assert edited["text"].startswith("🟡 Acknowledged by Kim Minjun"), edited["text"]
    left = [b["callback_data"] for b in edited["reply_markup"]["inline_keyboard"][0]]
    assert left == [f"mitigate:{incident_id}", f"resolve:{incident_id}"]

    # No e-mail page, even once another page_retry has passed since the Telegram one.
    await asyncio.sleep(max(0.0, paged + PAGE_RETRY + POLLING - time.monotonic()))
    assert smtp.inbox == [], [m["Subject"] for m in smtp.inbox]
    assert [m["message_id"] for m in telegram.sent(KIM_TG)] == [page["message_id"]]
    view = await incident(session, url, incident_id)
    assert view["status"] == "acknowledged"
    assert [e["channel"] for e in view["timeline"] if e["event"] == "page_fallback"] == ["telegram"]
    [kim] = [p for p in view["pages"] if p["person"] == "kim"]
    assert [a["channel"] for a in kim["attempts"]] == ["slack", "telegram"]
    assert kim["acknowledged"] is True
    assert await receiver.terminate() == 0, receiver.log_tail()


async def slack_fine_no_ack(
    session: aiohttp.ClientSession, receiver: ReceiverProcess, fakes: Fakes
) -> None:
    """Slack works but nobody acknowledges: the Slack DM at once, Telegram after page_retry,
    e-mail after another page_retry."""
    slack, telegram, smtp = fakes.slack, fakes.telegram, fakes.smtp
    url = receiver.url
    opened = time.monotonic()
    incident_id = await open_p1(session, url)

    # The Slack DM to kim goes out at once (chat.postMessage to kim's DM).
    [dm] = await until(lambda: slack.dms_to("U0KIM"), SETTLE, "the Slack page to kim", receiver)
    assert dm["text"].startswith("Page: New incident: [P1][api]"), dm["text"]
    assert "kis-gateway" in dm["text"], dm["text"]
    assert pages_to_kim(telegram) == [] and smtp.inbox == []

    # Nothing more until page_retry has passed; then Telegram, in time.
    _, paged = await telegram_page_in_time(telegram, opened, incident_id, receiver)
    assert smtp.inbox == [], [m["Subject"] for m in smtp.inbox]

    # Still no ack: another page_retry later, the e-mail page.
    [mail] = await until(
        lambda: list(smtp.inbox),
        paged + PAGE_RETRY + POLLING - time.monotonic(),
        "the e-mail page",
        receiver,
    )
    mailed = time.monotonic()
    assert mailed - paged >= PAGE_RETRY - 2, "moved on to e-mail before page_retry"
    assert mailed - opened >= 2 * PAGE_RETRY - 2
    assert mailed - opened <= 2 * PAGE_RETRY + 2 * POLLING
    assert mail["To"] == "kim@example.com", mail["To"]
    assert mail["Subject"].startswith(f"[P1] Page: #{incident_id}"), mail["Subject"]

    view = await incident(session, url, incident_id)
    assert view["status"] == "triggered"
    [kim] = [p for p in view["pages"] if p["person"] == "kim" and p["step"] == 0]
    assert [a["channel"] for a in kim["attempts"]] == ["slack", "telegram", "email"], kim
    assert kim["reached_by"] == "slack", kim
    assert kim["acknowledged"] is False
    moved = [e for e in view["timeline"] if e["event"] == "page_fallback"]
    assert [(e["person"], e["from"], e["channel"], e["attempt"], e["why"]) for e in moved] == [
        ("kim", "slack", "telegram", 1, "no ack within 30s"),
        ("kim", "telegram", "email", 2, "no ack within 30s"),
    ]
    assert len(slack.dms_to("U0KIM")) == 1  # Slack got through: kim was not DMed again
    assert await receiver.terminate() == 0, receiver.log_tail()


async def test_page_falls_back_when_slack_is_down_or_nobody_acks(
    tmp_path: Path,
    jira: FakeJira,
    slack: FakeSlack,
    telegram: FakeTelegram,
    smtp: FakeSmtp,
    fine: Fakes,
    session: aiohttp.ClientSession,
) -> None:
    now = datetime.now(UTC)
    slack.fail_next(500, count=10**6)  # Slack answers 500 for good: retried, never through
    down = Fakes(jira, slack, telegram, smtp)
    (tmp_path / "slack-down").mkdir()
    (tmp_path / "slack-fine").mkdir()
    receivers = [
        receiver_process("receiver-slack-down", tmp_path / "slack-down", down, now),
        receiver_process("receiver-slack-fine", tmp_path / "slack-fine", fine, now),
    ]
    try:
        for receiver in receivers:
            receiver.start()
        await asyncio.gather(*(receiver.ready(session) for receiver in receivers))
        # Both scenarios at once, in the same wall time; one failing cancels the other.
        async with asyncio.TaskGroup() as scenarios:
            scenarios.create_task(slack_down(session, receivers[0], down))
            scenarios.create_task(slack_fine_no_ack(session, receivers[1], fine))
    finally:
        for receiver in receivers:
            receiver.kill()


pytestmark = pytest.mark.timeout(150)
