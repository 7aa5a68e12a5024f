"""POST /api/v1/reports end to end: JSON and multipart in, an incident of source "report"
with its JIRA issue (real `jira` client, fake JIRA) and Slack post (real slack_sdk, fake
Slack); every bad field named, nothing of a refused report stored, CORS, rate limits, and
the reporter's contact nowhere but in JIRA."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from receiver.api.keys import SERVICE, STORE, WORKER
from tests.api.test_slack_notify import jira as jira  # the fixtures, re-exported
from tests.api.test_slack_notify import slack as slack
from tests.conftest import API, AUTH, ClientFactory
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import FakeSmtp
from tests.fuzzing import jira_problems, jira_texts, slack_problems, slack_texts
from tests.helpers import T0, FakeClock, alert, metric, resolved, wait_for, webhook
from tests.unit.test_reports import CFG, good, png

Client = TestClient[Any, web.Application]
ORIGIN = "https://beta.trading.example"
EMAIL = "sky@example.com"


def live(slack: FakeSlack, jira: FakeJira) -> dict[str, Any]:
    """Settings of a receiver whose Slack and JIRA are the fakes."""
    return {
        "slack_token": "xoxb-receiver",
        "slack_api_url": slack.url,
        "jira_url": jira.url,
        "jira_user": "receiver-bot",
        "jira_token": "jira-api-token",
    }


async def receiver(make_client: ClientFactory, slack: FakeSlack, jira: FakeJira) -> Client:
    return await make_client(
        **live(slack, jira), reports_origins=f"{ORIGIN}, https://other.example/"
    )


async def received(client: Client, outcome: str) -> float | None:
    """receiver_reports_received_total of the web source with this outcome."""
    text = await (await client.get("/metrics", headers=API)).text()
    return metric(text, "receiver_reports_received_total", source="web", outcome=outcome)


async def incidents(client: Client) -> list[dict[str, Any]]:
    body = await (await client.get("/api/v1/incidents", headers=API)).json()
    found: list[dict[str, Any]] = body["incidents"]
    return found


async def test_a_json_report_opens_an_incident_with_a_full_jira_issue(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira
) -> None:
    client = await receiver(make_client, slack, jira)
    resp = await client.post("/api/v1/reports", json=good(), headers={"Origin": ORIGIN})
    assert resp.status == 201, await resp.text()
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    body = await resp.json()
    assert set(body) == {"id", "reference", "status"}
    assert body["reference"].startswith("R-20") and body["status"] == "triggered"

    [incident] = await incidents(client)
    assert incident["id"] == body["id"]
    assert (incident["source"], incident["severity"], incident["category"]) == (
        "report", "P1", "api",  # "주문"/"매수": the orders-failing rule
    )  # fmt: skip
    await wait_for(lambda: len(jira.issues) == 1)
    [issue] = jira.issues.values()
    text = issue["fields"]["description"]
    for shown in (
        body["reference"], "iOS 18.1", "Safari 18", "iPhone 15", "1. 로그인", "주문 확인 창",
        "아무 반응 없음", "김하늘", EMAIL, "매수 주문을 누르면",
    ):  # fmt: skip
        assert shown in text, shown
    assert "beta-report" in issue["fields"]["labels"]
    assert issue["fields"]["priority"] == "High"
    await wait_for(lambda: len(slack.posted_to("#beta-alert")) >= 1)
    posted = json.dumps(slack.messages, ensure_ascii=False)
    assert "주문 버튼이 반응하지 않아요" in posted
    assert EMAIL not in posted and "김하늘" not in posted  # the contact stays in JIRA
    assert await received(client, "accepted") == 1


async def test_a_multipart_report_keeps_its_attachments_and_uploads_them_to_jira(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    client = await receiver(make_client, slack, jira)
    # the second upload fails once: the retry uploads what the issue does not have yet
    jira.fail_next(500, path_contains="/attachments", count=1)
    form = FormData()
    form.add_field("title", "차트가 비어 있어요")
    form.add_field("description", "삼성전자 차트가 하얗게 나옵니다")
    form.add_field("environment.os", "Android 15")
    form.add_field("environment.browser", "Chrome 131")
    form.add_field("reporter.email", EMAIL)
    form.add_field("attachments", png(), filename="screen.png", content_type="image/png")
    form.add_field("attachments", b"12:00 chart load failed\n", filename="console.log",
                   content_type="text/plain")  # fmt: skip
    resp = await client.post("/api/v1/reports", data=form)
    assert resp.status == 201, await resp.text()
    incident_id = (await resp.json())["id"]
    filed = await client.app[STORE].get_report(incident_id)
    assert filed is not None
    assert [(a.filename, a.content_type) for a in filed.report.attachments] == [
        ("screen.png", "image/png"),
        ("console.log", "text/plain"),
    ]
    assert filed.report.attachments[0].data == png()
    assert filed.report.environment.os == "Android 15"

    def uploaded() -> list[tuple[str, str, bytes]]:
        issues = list(jira.issues.values())
        files = issues[0].get("attachments", []) if issues else []
        return [(a["filename"], a["mimeType"], a["data"]) for a in files]

    for _ in range(300):
        if len(uploaded()) == 2:
            break
        clock.advance(seconds=5)
        await asyncio.sleep(0.02)
    assert uploaded() == [
        ("1-screen.png", "image/png", png()),
        ("2-console.log", "text/plain", b"12:00 chart load failed\n"),
    ]
    posts = jira.requests_to("POST", "/attachments")
    assert len(posts) == 3  # the failed one, then each file once
    [issue] = jira.issues.values()
    description = issue["fields"]["description"]
    assert (
        "* [^1-screen.png] (image/png" in description and "!1-screen.png|thumbnail!" in description
    )
    assert "* [^2-console.log] (text/plain, 24 bytes)" in description


@pytest.mark.parametrize(
    ("send", "status", "fields"),
    [
        ({"json": good(title=None, reporter={"name": "x"})}, 400, ["title", "reporter"]),
        ({"json": good(title="x" * 10_000)}, 400, ["title"]),
        ({"json": good(category="sales", severity="P0")}, 400, ["severity", "category"]),
        ({"json": ["not", "an", "object"]}, 400, [""]),
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400,
         ["<body>"]),
        ({"data": b"title=x", "headers": {"Content-Type": "text/plain"}}, 415, None),
    ],
)  # fmt: skip
async def test_bad_reports_name_every_bad_field_and_store_nothing(
    make_client: ClientFactory,
    slack: FakeSlack,
    jira: FakeJira,
    send: dict[str, Any],
    status: int,
    fields: list[str] | None,
) -> None:
    client = await receiver(make_client, slack, jira)
    resp = await client.post("/api/v1/reports", **send)
    assert resp.status == status, await resp.text()
    body = await resp.json()
    if fields is not None:
        assert sorted(f["field"] for f in body["fields"]) == sorted(fields)
    assert await incidents(client) == []


def multipart(*files: tuple[str, str, bytes]) -> FormData:
    form = FormData()
    for key, value in good().items():
        form.add_field(key, json.dumps(value) if isinstance(value, dict) else value)
    for name, kind, data in files:
        form.add_field("attachments", data, filename=name, content_type=kind)
    return form


@pytest.mark.parametrize(
    ("files", "status", "field"),
    [
        ([("screen.png", "image/png", b"MZ\x90\x00\x03\x00binary\x00\x00")], 400,
         "attachments[0]"),  # an executable named .png
        ([("screen.png", "image/png", png())] * 6, 413, "attachments"),
        ([("big.log", "text/plain", b"a" * (5 * 1024 * 1024 + 1))], 413, "attachments[0]"),
    ],
)  # fmt: skip
async def test_bad_attachments_are_refused_by_content_count_and_size(
    make_client: ClientFactory,
    slack: FakeSlack,
    jira: FakeJira,
    files: list[tuple[str, str, bytes]],
    status: int,
    field: str,
) -> None:
    client = await receiver(make_client, slack, jira)
    resp = await client.post("/api/v1/reports", data=multipart(*files))
    assert resp.status == status, await resp.text()
    body = await resp.json()
    named = [f["field"] for f in body.get("fields", [])] or [body.get("field")]
    assert field in named
    assert await incidents(client) == []


async def test_cors_allows_the_configured_origins_only(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira
) -> None:
    client = await receiver(make_client, slack, jira)
    asked = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    resp = await client.options("/api/v1/reports", headers=asked)
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    other = {"Origin": "https://other.example"}  # listed with a trailing slash
    assert (await client.options("/api/v1/reports", headers=other)).status == 204
    evil = {"Origin": "https://evil.example"}
    resp = await client.options("/api/v1/reports", headers=evil)
    assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers
    # a form posted from a page elsewhere needs no preflight: refused all the same
    resp = await client.post("/api/v1/reports", data=multipart(), headers=evil)
    assert resp.status == 403
    # a page on another port of the receiver's host is another origin: refused too
    port = client.server.port
    assert port is not None
    elsewhere = {"Origin": f"http://{client.server.host}:{port + 1}"}
    resp = await client.post("/api/v1/reports", data=multipart(), headers=elsewhere)
    assert resp.status == 403
    assert await incidents(client) == []
    # the receiver's own /feedback page: its browser sends its origin, unlisted but its own
    own = {"Origin": str(client.server.make_url("/")).rstrip("/")}
    resp = await client.post("/api/v1/reports", json=good(), headers=own)
    assert resp.status == 201, await resp.text()


async def test_the_same_reporter_and_title_again_is_the_same_report(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira
) -> None:
    client = await receiver(make_client, slack, jira)
    first = await (await client.post("/api/v1/reports", json=good())).json()
    resp = await client.post("/api/v1/reports", json=good(title="  주문 버튼이  반응하지 않아요 "))
    assert resp.status == 200
    again = await resp.json()
    assert (again["id"], again["reference"], again["duplicate"]) == (
        first["id"], first["reference"], True,
    )  # fmt: skip
    other = good(reporter={"email": "someone.else@example.com"})
    assert (await client.post("/api/v1/reports", json=other)).status == 201  # linked, not merged
    assert len(await incidents(client)) == 2
    assert await received(client, "duplicate") == 1


async def test_a_flood_from_one_client_is_answered_429_with_retry_after(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira
) -> None:
    client = await receiver(make_client, slack, jira)
    statuses = []
    for n in range(12):  # the shipped rules allow 10 per reporter an hour
        sent = good(title=f"문제 {n}")
        statuses.append((await client.post("/api/v1/reports", json=sent)).status)
    assert statuses == [201] * 10 + [429] * 2
    resp = await client.post("/api/v1/reports", json=good(title="또 다른 문제"))
    assert resp.status == 429
    assert 0 < int(resp.headers["Retry-After"]) <= 3600
    assert len(await incidents(client)) == 10
    limited = await received(client, "rate_limited")
    assert limited == 3


async def test_the_reporters_contact_is_not_logged(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await receiver(make_client, slack, jira)
    assert (await client.post("/api/v1/reports", json=good())).status == 201
    await wait_for(lambda: len(jira.issues) == 1)
    await wait_for(lambda: len(slack.posted_to("#beta-alert")) >= 1)
    assert EMAIL not in caplog.text


async def test_log_only_mode_logs_what_it_would_send_without_the_contact(
    make_client: ClientFactory,
) -> None:
    client = await make_client()  # no JIRA, no Slack: every channel only logs
    with capture_logs() as events:
        assert (await client.post("/api/v1/reports", json=good())).status == 201
        await wait_for(lambda: any(e.get("channel") == "jira" for e in events))
    would = [e for e in events if e["event"] == "would_send" and e["channel"] == "jira"]
    assert would and "주문 버튼이 반응하지 않아요" in would[0]["text"]
    description = would[0]["payload"]["create"]["fields"]["description"]
    assert description.endswith("not logged: private>")
    assert EMAIL not in repr(events) and "김하늘" not in repr(events)


async def test_the_timeline_tells_how_the_report_came_and_came_again(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    filed = await (await client.post("/api/v1/reports", json=good())).json()
    assert (await client.post("/api/v1/reports", json=good())).status == 200
    url = f"/api/v1/incidents/{filed['id']}/timeline?format=text"
    text = await (await client.get(url, headers=API)).text()
    assert f"Reported by a beta tester via the feedback form as {filed['reference']}" in text
    assert "triage rule orders-failing" in text
    assert "Reported again by the same tester" in text
    assert EMAIL not in text


async def test_triage_sets_severity_category_and_assignee_and_pages_by_them(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira
) -> None:
    client = await receiver(make_client, slack, jira)
    sent = good(title="화면이 이상해요", description="글자가 겹쳐 보여요", category="ui")
    filed = await (await client.post("/api/v1/reports", json=sent)).json()
    [incident] = await incidents(client)
    assert (incident["severity"], incident["category"], incident["team"]) == (
        "P3",
        "ui",
        "frontend",
    )
    await wait_for(lambda: len(jira.issues) == 1)
    assigned_at_open = next(iter(jira.issues.values()))["fields"]["assignee"]
    next(iter(jira.issues.values()))["fields"]["labels"].append("customer-visible")  # by people
    assert assigned_at_open in ({"name": "yoon"}, {"name": "jang"})
    url = f"/api/v1/incidents/{filed['id']}/triage"
    body = {"severity": "P1", "category": "api", "assignee": "kim", "by": "lee"}
    resp = await client.post(url, json=body, headers=API)
    assert resp.status == 200, await resp.text()
    view = await resp.json()
    assert view["changed"] is True
    assert (view["severity"], view["category"], view["team"]) == ("P1", "api", "backend")
    [issue] = jira.issues.values()
    await wait_for(lambda: any("Triaged by" in c for c in jira.comments(issue["key"])))
    [note] = [c for c in jira.comments(issue["key"]) if "Triaged by" in c]
    assert "P3 → P1" in note and "ui → api" in note and "assigned to Kim Minjun" in note
    assert issue["fields"]["priority"] == "High"
    # the JIRA user of the person triage chose, no longer the frontend's on-call
    assert issue["fields"]["assignee"] == {"name": "kim"} != assigned_at_open
    assert issue["fields"]["summary"] == "[P1][api] 화면이 이상해요"  # was [P3][ui]
    labels = issue["fields"]["labels"]
    assert {"severity-p1", "category-api", "team-backend", "beta-report"} <= set(labels)
    assert not {"severity-p3", "category-ui", "team-frontend"} & set(labels)
    assert "customer-visible" in labels  # what people added stays
    # the P1 policy of the backend team from now on: its on-call is paged at once
    await wait_for(lambda: bool(slack.dms_to("U0KIM")))
    again = await client.post(url, json={"severity": "P1", "by": "lee"}, headers=API)
    assert (await again.json())["changed"] is False
    text = await (await client.get(f"{url[:-7]}/timeline?format=text", headers=API)).text()
    assert "Triaged by" in text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"severity": "P9", "by": "lee"}, "severity"),
        ({"category": "sales", "by": "lee"}, "category"),
        ({"assignee": "nobody", "by": "lee"}, "assignee"),
        ({"severity": "P1"}, "by"),
        ({"by": "lee"}, "<body>"),
        ({"severity": "P1", "by": "lee", "priority": "High"}, "priority"),
    ],
)
async def test_triage_names_the_bad_field(
    make_client: ClientFactory, body: dict[str, Any], field: str
) -> None:
    client = await make_client()
    filed = await (await client.post("/api/v1/reports", json=good())).json()
    resp = await client.post(f"/api/v1/incidents/{filed['id']}/triage", json=body, headers=API)
    assert resp.status == 400
    assert (await resp.json())["field"] == field


async def test_triage_needs_the_api_token_and_leaves_alert_incidents_to_their_rules(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    filed = await (await client.post("/api/v1/reports", json=good())).json()
    url = f"/api/v1/incidents/{filed['id']}/triage"
    assert (await client.post(url, json={"severity": "P1", "by": "lee"})).status == 401
    resp = await client.post("/webhook", json=webhook(alert()), headers=AUTH)
    assert resp.status == 200
    alert_id = (await resp.json())["incidents"][0]
    resp = await client.post(
        f"/api/v1/incidents/{alert_id}/triage", json={"severity": "P3", "by": "lee"}, headers=API
    )
    assert resp.status == 409
    missing = "/api/v1/incidents/999999/triage"
    assert (
        await client.post(missing, json={"severity": "P1", "by": "lee"}, headers=API)
    ).status == 404


async def test_a_report_linked_into_an_alert_incident_resolves_with_it(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira
) -> None:
    client = await receiver(make_client, slack, jira)
    firing = alert()
    resp = await client.post("/webhook", json=webhook(firing), headers=AUTH)
    alert_id = (await resp.json())["incidents"][0]
    filed = await (await client.post("/api/v1/reports", json=good())).json()
    await wait_for(lambda: len(jira.issues) == 2)
    url = f"/api/v1/incidents/{filed['id']}/link"
    resp = await client.post(url, json={"to": alert_id, "by": "lee"}, headers=API)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["changed"] is True
    again = await client.post(url, json={"to": alert_id, "by": "lee"}, headers=API)
    assert (await again.json())["changed"] is False

    later = resolved(firing, T0 + timedelta(minutes=5))
    assert (await client.post("/webhook", json=webhook(later), headers=AUTH)).status == 200
    report = await (await client.get(f"/api/v1/incidents/{filed['id']}", headers=API)).json()
    assert report["status"] == "resolved"
    [last] = [e for e in report["timeline"] if e["event"] == "resolved"]
    assert last["with"] == alert_id
    target = await (await client.get(f"/api/v1/incidents/{alert_id}", headers=API)).json()
    assert any(e["event"] == "report_linked" for e in target["timeline"])
    issue = next(i for i in jira.issues.values() if "beta-report" in i["fields"]["labels"])
    await wait_for(lambda: any("Resolved with incident" in c for c in jira.comments(issue["key"])))
    assert any(f"Linked into incident #{alert_id}" in c for c in jira.comments(issue["key"]))


async def test_link_refuses_what_cannot_be_linked(make_client: ClientFactory) -> None:
    client = await make_client()
    resp = await client.post("/webhook", json=webhook(alert()), headers=AUTH)
    alert_id = (await resp.json())["incidents"][0]
    report = (await (await client.post("/api/v1/reports", json=good())).json())["id"]

    async def link(incident: int, body: dict[str, Any]) -> int:
        url = f"/api/v1/incidents/{incident}/link"
        return (await client.post(url, json=body, headers=API)).status

    assert await link(alert_id, {"to": report, "by": "lee"}) == 409  # an alert's incident
    assert await link(report, {"to": report, "by": "lee"}) == 409  # itself
    assert await link(report, {"to": 999_999, "by": "lee"}) == 404
    assert await link(report, {"to": "1", "by": "lee"}) == 400
    assert await link(report, {"to": alert_id}) == 400
    assert await link(report, {"to": alert_id, "by": "lee", "why": "x"}) == 400
    resolve = f"/api/v1/incidents/{alert_id}/resolve"
    assert (await client.post(resolve, json={"by": "lee"}, headers=API)).status == 200
    assert await link(report, {"to": alert_id, "by": "lee"}) == 409  # into a resolved one


async def untriaged(client: Client) -> float | None:
    await client.app[SERVICE].refresh_gauges()
    text = await (await client.get("/metrics", headers=API)).text()
    return metric(text, "receiver_reports_untriaged")


async def test_a_report_untriaged_past_its_deadline_pages_the_triage_rotation(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    client = await receiver(make_client, slack, jira)
    service = client.app[SERVICE]
    sent = good(title="화면이 이상해요", description="글자가 겹쳐요", category="ui")
    late = await (await client.post("/api/v1/reports", json=sent)).json()
    other = good(title="다른 문제", description="글자가 작아요", category="ui")
    done = await (await client.post("/api/v1/reports", json=other)).json()
    triaged = {"assignee": "han", "by": "lee"}
    url = f"/api/v1/incidents/{done['id']}/triage"
    assert (await client.post(url, json=triaged, headers=API)).status == 200
    assert await untriaged(client) == 1
    assert await service.fire_due_timers() == 0  # not due yet
    clock.now += timedelta(hours=4, seconds=1)  # the shipped reports.triage_within
    while await service.fire_due_timers():
        pass
    features = CFG.rotations["features"].members  # the shipped reports.rotation
    slack_ids = {CFG.people[p].slack_id for p in features}
    await wait_for(lambda: any(m["is_dm"] and m["user"] in slack_ids for m in slack.messages))
    late_view = await (await client.get(f"/api/v1/incidents/{late['id']}", headers=API)).json()
    assert any(e["event"] == "triage_overdue" for e in late_view["timeline"])
    done_view = await (await client.get(f"/api/v1/incidents/{done['id']}", headers=API)).json()
    assert not any(e["event"] == "triage_overdue" for e in done_view["timeline"])
    paged = [m for m in slack.messages if m["is_dm"]]
    assert len(paged) == 1  # the triaged report paged nobody
    assert "화면이 이상해요" in paged[0]["text"]
    assert await untriaged(client) == 1  # still open, still untriaged: paged, not triaged


async def test_the_reporter_gets_a_receipt_and_word_when_it_is_fixed_in_korean(
    make_client: ClientFactory, smtp: FakeSmtp, clock: FakeClock
) -> None:
    client = await make_client(smtp_url=smtp.url, smtp_from="베타 지원 <beta@trading.example>")
    filed = await (await client.post("/api/v1/reports", json=good())).json()
    await wait_for(lambda: len(smtp.inbox) == 1)
    [receipt] = smtp.inbox
    ref = filed["reference"]
    assert receipt["To"] == EMAIL
    assert receipt["Subject"] == f"[접수 완료] 주문 버튼이 반응하지 않아요 ({ref})"
    body = receipt.get_content()
    assert "김하늘님, 안녕하세요." in body and f"접수 번호는 {ref}입니다" in body
    assert "2026년 11월 26일 (목) 오전 10:00 KST" in body  # the team's zone, as Koreans write it
    clock.now += timedelta(hours=2)
    url = f"/api/v1/incidents/{filed['id']}/resolve"
    assert (await client.post(url, json={"by": "lee"}, headers=API)).status == 200
    await wait_for(lambda: len(smtp.inbox) == 2)
    fixed = smtp.inbox[1]
    assert fixed["Subject"] == f"[해결 완료] 주문 버튼이 반응하지 않아요 ({ref})"
    assert fixed["In-Reply-To"] == receipt["Message-ID"]  # in the reporter's own thread
    assert "2026년 11월 26일 (목) 오후 12:00 KST에 해결되었습니다" in fixed.get_content()
    await client.app[WORKER].run_once()
    assert len(smtp.inbox) == 2  # each notice once


async def test_a_refused_address_is_dead_lettered_at_once(make_client: ClientFactory) -> None:
    async with FakeSmtp(refuse={EMAIL}) as smtp:
        client = await make_client(smtp_url=smtp.url, smtp_from="beta@trading.example")
        filed = await (await client.post("/api/v1/reports", json=good())).json()

        async def dead() -> list[dict[str, Any]]:
            url = f"/api/v1/deliveries?status=dead&incident={filed['id']}"
            found: list[dict[str, Any]] = (await (await client.get(url, headers=API)).json())[
                "deliveries"
            ]
            return found

        for _ in range(100):
            if await dead():
                break
            await asyncio.sleep(0.05)
        [letter] = await dead()
        assert (letter["channel"], letter["kind"]) == ("reporter", "report.received")
        assert "refused" in letter["last_error"] and EMAIL not in letter["last_error"]
        assert smtp.inbox == []


async def test_a_report_linked_into_a_p1_is_told_once_when_the_alert_resolves(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, smtp: FakeSmtp, clock: FakeClock
) -> None:
    sender = "베타 지원 <beta@trading.example>"
    client = await make_client(**live(slack, jira), smtp_url=smtp.url, smtp_from=sender)
    stale = alert(alertname="MarketDataStale", feed="krx")  # P1, data: announced to testers
    alert_id = (await (await client.post("/webhook", json=webhook(stale), headers=AUTH)).json())[
        "incidents"
    ][0]
    announced = "#beta-announcements"
    await wait_for(lambda: len(slack.posted_to(announced)) == 1)
    [opened] = [m["text"] for m in slack.posted_to(announced)]
    assert opened.startswith("실시간 시세와 차트 관련 문제를 확인하고 있습니다.")
    assert "2026년 11월 26일 (목) 오전 10:00 KST부터" in opened
    sent = good(title="시세가 멈췄어요", description="삼성전자 현재가가 10분째 그대로예요")
    filed = await (await client.post("/api/v1/reports", json=sent)).json()
    url = f"/api/v1/incidents/{filed['id']}/link"
    assert (await client.post(url, json={"to": alert_id, "by": "lee"}, headers=API)).status == 200
    await wait_for(lambda: len(smtp.inbox) == 1)  # the receipt

    clock.now += timedelta(minutes=40)
    later = resolved(stale, clock.now)
    assert (await client.post("/webhook", json=webhook(later), headers=AUTH)).status == 200
    await wait_for(lambda: len(smtp.inbox) == 2 and len(slack.posted_to(announced)) == 2)
    fixed = smtp.inbox[1]
    assert fixed["To"] == EMAIL and fixed["Subject"].startswith("[해결 완료] 시세가 멈췄어요")
    assert "오전 10:40 KST에 해결되었습니다" in fixed.get_content()
    closed = slack.posted_to(announced)[1]["text"]
    assert closed.startswith("해결: 실시간 시세와 차트 관련 문제가") and "40분 동안" in closed
    # the alert firing and resolving again, the worker run again: still one notice each
    await client.post("/webhook", json=webhook(later), headers=AUTH)
    await client.app[WORKER].run_once()
    await asyncio.sleep(0.2)
    assert len(smtp.inbox) == 2
    assert EMAIL not in json.dumps(slack.messages, ensure_ascii=False)


HOSTILE = (
    "<script>alert(1)</script> *굵게* _x_ ~y~ `z` <!channel> @here {code} [x|javascript:1] h1. "
)


async def test_markup_in_every_field_is_shown_as_text_everywhere(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira
) -> None:
    client = await receiver(make_client, slack, jira)
    text = {name: f"{name} {HOSTILE}" for name in ("description", "steps", "expected", "actual")}
    sent = good(
        title=f"제목 {HOSTILE}".strip(),
        environment={k: f"{k} {HOSTILE}"[:200] for k in ("os", "browser", "device", "app_version")},
        reporter={"name": f"이름 {HOSTILE}"[:200], "email": EMAIL},
        **text,
    )
    resp = await client.post("/api/v1/reports", json=sent)
    assert resp.status == 201, await resp.text()
    answer = await resp.text()
    assert set(json.loads(answer)) == {"id", "reference", "status"}  # nothing echoed back
    incident_id = json.loads(answer)["id"]
    triage_url = f"/api/v1/incidents/{incident_id}/triage"
    body = {"severity": "P2", "assignee": "kim", "by": "lee"}
    assert (await client.post(triage_url, json=body, headers=API)).status == 200
    await wait_for(lambda: any("Triaged by" in c for i in jira.issues for c in jira.comments(i)))
    await wait_for(lambda: len(slack_texts(slack)) >= 2)
    shown = slack_texts(slack)
    assert any("제목" in t for t in shown)
    for t in shown:
        assert slack_problems(t) == [], t
    described = jira_texts(jira)
    assert any("steps" in t and "actual" in t for t in described)
    for t in described:
        assert jira_problems(t) == [], t
    # the API shows the title as data (JSON), never as markup for a page
    view = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=API)).json()
    assert view["summary"].startswith("제목 <script>")


async def test_an_attachment_jira_refuses_for_good_holds_up_nothing(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira
) -> None:
    client = await receiver(make_client, slack, jira)
    jira.fail_next(403, path_contains="/attachments", count=10)  # attachments switched off
    form = FormData()
    for name, value in (("title", "차트가 비어요"), ("description", "하얀 화면"),
                        ("reporter.email", EMAIL)):  # fmt: skip
        form.add_field(name, value)
    form.add_field("attachments", png(), filename="screen.png", content_type="image/png")
    incident_id = (await (await client.post("/api/v1/reports", data=form)).json())["id"]

    async def opened() -> list[dict[str, Any]]:
        body = await (await client.get("/api/v1/deliveries", headers=API)).json()
        return [d for d in body["deliveries"]
                if d["channel"] == "jira" and d["incident_id"] == incident_id]  # fmt: skip

    for _ in range(200):
        if [d["status"] for d in await opened()] == ["sent"]:
            break
        await asyncio.sleep(0.05)
    assert [d["status"] for d in await opened()] == ["sent"]  # not dead, not retrying
    [issue] = jira.issues.values()
    assert issue.get("attachments", []) == [] and len(jira.requests_to("POST", "/attachments")) == 1
