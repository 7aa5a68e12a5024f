"""Pages that get through, through the whole app with fake Slack, JIRA and Telegram over HTTP
and a real SMTP server: a page moves to the person's next channel when Slack fails for good or
nobody acknowledges within ``page_retry``; Telegram's buttons act for the person who presses
them and nobody else; testers write to the bot and hear back there."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.api.serving import unheard_pages
from receiver.cli import main
from tests.api.test_reports import live
from tests.api.test_slack_notify import jira as jira  # the fixtures, re-exported
from tests.api.test_slack_notify import slack as slack
from tests.conftest import API, AUTH, ClientFactory
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import FakeSmtp
from tests.fakes.telegram import FakeTelegram
from tests.helpers import SHIPPED_RULES, FakeClock, alert, metric, wait_for, webhook

T0 = datetime.fromisoformat("2026-11-26T10:00:00+09:00")  # Thursday: kim is backend's on-call
KIM_TG = 1001
SECRET = "tg-webhook-secret"
TESTERS = "@beta_testers"
MINUTE = timedelta(minutes=1)


def rules_file(tmp_path: Path) -> str:
    """The shipped rules, kim paged by Slack, then Telegram, then e-mail."""
    data: dict[str, Any] = yaml.safe_load(SHIPPED_RULES.read_text(encoding="utf-8"))
    data["people"]["kim"].update(telegram_id=KIM_TG, notify=["slack", "telegram", "email"])
    data["channels"]["announce_telegram"] = TESTERS
    data["page_retry"] = "5m"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(path)


@dataclass
class Fakes:
    """The services a receiver talks to."""

    slack: FakeSlack
    jira: FakeJira
    telegram: FakeTelegram
    smtp: FakeSmtp


@pytest.fixture
def fakes(slack: FakeSlack, jira: FakeJira, telegram: FakeTelegram, smtp: FakeSmtp) -> Fakes:
    return Fakes(slack, jira, telegram, smtp)


async def receiver(make_client: ClientFactory, tmp_path: Path, fakes: Fakes) -> Any:
    telegram, smtp = fakes.telegram, fakes.smtp
    return await make_client(
        **live(fakes.slack, fakes.jira),
        rules=rules_file(tmp_path),
        telegram_token=telegram.token,
        telegram_api_url=telegram.url.removesuffix("/bot"),
        telegram_webhook_secret=SECRET,
        smtp_url=smtp.url,
        smtp_from="Alert receiver <receiver@trading.example>",
        public_url="https://receiver.trading.example",
    )


RUNBOOK = "https://wiki.trading.example/runbooks/kis-token"


async def open_p1(client: Any) -> int:
    notes = {"summary": "KIS token refresh failing", "runbook_url": RUNBOOK,
             "description": "The access token could not be renewed <3 times>."}  # fmt: skip
    token = alert(starts=T0, annotations=notes, alertname="KISTokenRefreshFailed",
                  service="kis-gateway")  # fmt: skip
    resp = await client.post("/webhook", json=webhook(token), headers=AUTH)
    assert resp.status == 200
    [incident_id] = (await resp.json())["incidents"]
    return int(incident_id)


def pages_to(telegram: FakeTelegram) -> list[dict[str, Any]]:
    return [m for m in telegram.sent(KIM_TG) if "You are paged" in m["text"]]


async def press(client: Any, telegram: FakeTelegram, update: dict[str, Any],
                secret: str = SECRET) -> Any:  # fmt: skip
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
    return await client.post("/telegram/webhook", json=update, headers=headers)


async def test_slack_down_for_good_the_page_reaches_telegram_within_page_retry(
    make_client: ClientFactory, tmp_path: Path, fakes: Fakes, clock: FakeClock
) -> None:
    slack, telegram, smtp = fakes.slack, fakes.telegram, fakes.smtp
    clock.now = T0
    slack.fail_next(500, count=10**6)  # Slack answers 500 for good: retried, never through
    client = await receiver(make_client, tmp_path, fakes)
    incident_id = await open_p1(client)
    await asyncio.sleep(0.3)
    assert pages_to(telegram) == []  # Slack is still the first channel, and still retried

    clock.now = T0 + 5 * MINUTE
    await wait_for(lambda: len(pages_to(telegram)) == 1)
    [page] = pages_to(telegram)
    assert f"#{incident_id} [P1][api]" in page["text"]
    assert "by Telegram: no ack within 5m" in page["text"]
    assert f"https://receiver.trading.example/api/v1/incidents/{incident_id}" in page["text"]
    keyboard = page["reply_markup"]["inline_keyboard"]
    assert [b["callback_data"] for b in keyboard[0]] == [
        f"ack:{incident_id}", f"mitigate:{incident_id}", f"resolve:{incident_id}"
    ]  # fmt: skip
    view = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=API)).json()
    moved = [e for e in view["timeline"] if e["event"] == "page_fallback"]
    assert [(e["person"], e["from"], e["channel"], e["attempt"]) for e in moved] == [
        ("kim", "slack", "telegram", 1)
    ]
    plain = await (
        await client.get(f"/api/v1/incidents/{incident_id}/timeline?format=text", headers=API)
    ).text()
    assert "Paged Kim Minjun by Telegram instead of Slack (step 0): no ack within 5m" in plain
    # a delivery's outcome is recorded with its lane's next claim: looked at until it is
    expected = [("slack", "pending"), ("telegram", "sent")]
    for _ in range(200):
        view = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=API)).json()
        kim = next(p for p in view["pages"] if p["person"] == "kim")
        if [(a["channel"], a["status"]) for a in kim["attempts"]] == expected:
            break
        await asyncio.sleep(0.02)
    assert [(a["channel"], a["status"]) for a in kim["attempts"]] == expected
    assert (kim["reached_by"], kim["acknowledged"]) == ("telegram", False)
    text = await (await client.get("/metrics")).text()
    assert metric(text, "receiver_page_latency_seconds_count", channel="telegram",
                  severity="P1") == 1  # fmt: skip
    assert smtp.inbox == []  # e-mail only after another page_retry


async def test_no_ack_moves_on_to_telegram_then_email_and_a_telegram_ack_stops_it(
    make_client: ClientFactory, tmp_path: Path, fakes: Fakes, clock: FakeClock
) -> None:
    slack, jira, telegram, smtp = fakes.slack, fakes.jira, fakes.telegram, fakes.smtp
    clock.now = T0
    client = await receiver(make_client, tmp_path, fakes)
    incident_id = await open_p1(client)
    await wait_for(lambda: len(slack.dms_to("U0KIM")) == 1)
    clock.now = T0 + 5 * MINUTE
    await wait_for(lambda: len(pages_to(telegram)) == 1)
    clock.now = T0 + 10 * MINUTE
    await wait_for(lambda: len(smtp.inbox) == 1)
    [mail] = smtp.inbox
    assert mail["To"] == "kim@example.com"
    assert mail["Subject"].startswith(f"[P1] Page: #{incident_id} [P1][api]")
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    content = body.get_content()
    assert "by Email: no ack within 5m" in content
    assert f"https://receiver.trading.example/api/v1/incidents/{incident_id}" in content
    assert f"Runbook: {RUNBOOK}" in content
    assert "The access token could not be renewed <3 times>." in content  # plain text as is

    # kim presses Acknowledge on the Telegram page
    [page] = pages_to(telegram)
    update = telegram.callback_update(
        KIM_TG, f"ack:{incident_id}", message=(KIM_TG, page["message_id"])
    )
    resp = await press(client, telegram, update)
    assert resp.status == 200
    answer = await resp.json()
    assert answer["method"] == "answerCallbackQuery"
    assert answer["text"] == f"Incident #{incident_id} acknowledged by Kim Minjun."
    view = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=API)).json()
    assert view["status"] == "acknowledged" and view["acknowledged_by"] == "kim"
    # Slack's page and JIRA hear of it; the Telegram page shows it, without Acknowledge
    await wait_for(lambda: "Acknowledged by Kim Minjun" in str(FakeSlack.latest(
        slack.dms_to("U0KIM")[0])["blocks"]))  # fmt: skip
    key = view["jira_key"]
    await wait_for(lambda: any("acknowledged" in c.lower() for c in jira.comments(key)))
    await wait_for(lambda: telegram.message(KIM_TG, page["message_id"])["edits"] >= 1)
    edited = telegram.message(KIM_TG, page["message_id"])
    assert edited["text"].startswith("🟡 Acknowledged by Kim Minjun")
    data = [b["callback_data"] for b in edited["reply_markup"]["inline_keyboard"][0]]
    assert data == [f"mitigate:{incident_id}", f"resolve:{incident_id}"]
    # pressing it again, or anyone else pressing, changes nothing
    again = await press(client, telegram, telegram.callback_update(KIM_TG, f"ack:{incident_id}"))
    assert "already acknowledged" in (await again.json())["text"]
    stranger = await press(
        client, telegram, telegram.callback_update(4242, f"resolve:{incident_id}")
    )
    assert "not in the on-call rules" in (await stranger.json())["text"]
    view = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=API)).json()
    assert view["status"] == "acknowledged"
    kim = next(p for p in view["pages"] if p["person"] == "kim" and p["step"] == 0)
    assert [a["channel"] for a in kim["attempts"]] == ["slack", "telegram", "email"]
    assert kim["acknowledged"] is True


async def test_a_forged_webhook_secret_changes_nothing(
    make_client: ClientFactory, tmp_path: Path, fakes: Fakes, clock: FakeClock
) -> None:
    telegram = fakes.telegram
    clock.now = T0
    client = await receiver(make_client, tmp_path, fakes)
    incident_id = await open_p1(client)
    update = telegram.callback_update(KIM_TG, f"resolve:{incident_id}")
    for secret in ("wrong-secret", ""):
        resp = await press(client, telegram, update, secret=secret)
        assert resp.status == 401
    hello = telegram.message_update(777, "앱이 멈춰요")
    assert (await press(client, telegram, hello, secret="nope")).status == 401
    view = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=API)).json()
    assert view["status"] == "triggered"
    listed = await (await client.get("/api/v1/incidents", headers=API)).json()
    assert [i["id"] for i in listed["incidents"]] == [incident_id]  # no report was filed


async def test_a_page_refused_for_good_moves_on_at_once(
    make_client: ClientFactory, tmp_path: Path, fakes: Fakes, clock: FakeClock
) -> None:
    slack, telegram = fakes.slack, fakes.telegram
    clock.now = T0
    slack.fail_next(200, error="account_inactive", count=50, method="chat.postMessage")
    client = await receiver(make_client, tmp_path, fakes)
    incident_id = await open_p1(client)
    await wait_for(lambda: len(pages_to(telegram)) == 1)  # no page_retry to wait for
    view = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=API)).json()
    [moved] = [e for e in view["timeline"] if e["event"] == "page_fallback"]
    assert moved["why"].startswith("slack failed: Slack answered 200: account_inactive")


async def test_testers_write_to_the_bot_and_hear_back_there(
    make_client: ClientFactory, tmp_path: Path, fakes: Fakes, clock: FakeClock
) -> None:
    telegram = fakes.telegram
    clock.now = T0
    client = await receiver(make_client, tmp_path, fakes)
    text = "주문 버튼이 안 눌려요\n매수 주문 화면에서 버튼을 눌러도 반응이 없습니다."
    resp = await press(client, telegram, telegram.message_update(777, text, first_name="민지"))
    assert resp.status == 200
    await wait_for(lambda: len(telegram.sent(777)) == 1)
    [receipt] = telegram.sent(777)
    listed = await (await client.get("/api/v1/incidents", headers=API)).json()
    [report] = listed["incidents"]
    assert report["source"] == "report"
    full = await (await client.get(f"/api/v1/incidents/{report['id']}", headers=API)).json()
    reference = next(e["reference"] for e in full["timeline"] if e["event"] == "opened")
    assert reference in receipt["text"] and "민지님" in receipt["text"]
    assert full["summary"] == "주문 버튼이 안 눌려요"
    # the same again is the same report, answered at once with its reference
    again = await press(client, telegram, telegram.message_update(777, text, first_name="민지"))
    assert reference in (await again.json())["text"]
    # a team member writing is no report
    await press(client, telegram, telegram.message_update(KIM_TG, "test"))
    assert (
        len((await (await client.get("/api/v1/incidents", headers=API)).json())["incidents"]) == 1
    )
    resolved = await client.post(
        f"/api/v1/incidents/{report['id']}/resolve", json={"by": "kim"}, headers=API
    )
    assert resolved.status == 200
    await wait_for(lambda: len(telegram.sent(777)) == 2)
    assert "해결되었습니다" in telegram.sent(777)[1]["text"]
    text_metrics = await (await client.get("/metrics")).text()
    assert metric(text_metrics, "receiver_reports_received_total", source="telegram",
                  outcome="accepted") == 1  # fmt: skip
    assert "777" not in str(await (await client.get(f"/api/v1/incidents/{report['id']}/timeline",
                                                    headers=API)).json())  # fmt: skip


async def test_outages_are_announced_to_the_testers_channel_too(
    make_client: ClientFactory, tmp_path: Path, fakes: Fakes, clock: FakeClock
) -> None:
    slack, telegram = fakes.slack, fakes.telegram
    clock.now = T0
    client = await receiver(make_client, tmp_path, fakes)
    incident_id = await open_p1(client)
    await wait_for(lambda: len(telegram.sent(TESTERS)) == 1)
    opened = telegram.sent(TESTERS)[0]["text"]
    assert opened == FakeSlack.latest(slack.posted_to("#beta-announcements")[0])["text"]
    await client.post(f"/api/v1/incidents/{incident_id}/resolve", json={"by": "kim"}, headers=API)
    await wait_for(lambda: len(telegram.sent(TESTERS)) == 2)
    assert "kis-gateway" not in telegram.sent(TESTERS)[1]["text"]  # no internal labels


async def test_people_paged_on_a_channel_that_only_logs_are_named_at_startup(
    make_client: ClientFactory, tmp_path: Path, fakes: Fakes
) -> None:
    # Slack and JIRA send for real, Telegram and e-mail have no settings: kim's page there
    # would reach nobody
    client = await make_client(**live(fakes.slack, fakes.jira), rules=rules_file(tmp_path))
    assert unheard_pages(client.app) == {"channels": ["email", "telegram"], "people": ["kim"]}
    everything = await receiver(make_client, tmp_path, fakes)
    assert unheard_pages(everything.app) == {}


async def test_receiver_points_the_bot_s_webhook_at_itself(
    telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "https://receiver.trading.example/telegram/webhook"
    assert await asyncio.to_thread(main, ["telegram-webhook", url]) == 2  # no settings
    assert "RECEIVER_TELEGRAM_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("RECEIVER_TELEGRAM_TOKEN", telegram.token)
    monkeypatch.setenv("RECEIVER_TELEGRAM_API_URL", telegram.url.removesuffix("/bot"))
    monkeypatch.setenv("RECEIVER_TELEGRAM_WEBHOOK_SECRET", SECRET)
    assert await asyncio.to_thread(main, ["telegram-webhook", "http://receiver.example/x"]) == 2
    assert await asyncio.to_thread(main, ["telegram-webhook", url]) == 0
    assert capsys.readouterr().out == f"webhook: {url} (pending updates: 0)\n"
    assert telegram.webhook is not None
    assert (telegram.webhook["url"], telegram.webhook["secret_token"]) == (url, SECRET)
    assert telegram.webhook["allowed_updates"] == ["message", "callback_query"]
    telegram.fail_next(400, "Bad Request: bad webhook: HTTPS url must be provided for webhook")
    assert await asyncio.to_thread(main, ["telegram-webhook", url]) == 1
    assert "bad webhook" in capsys.readouterr().err.lower()
