"""The acting endpoints end to end: note, reassign, unack and escalate through the HTTP API,
with the real JIRA and Slack clients against the fakes; each on the timeline with the person,
each refusal named."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.api.test_reports import live
from tests.api.test_slack_notify import jira as jira  # the fixtures, re-exported
from tests.api.test_slack_notify import slack as slack
from tests.conftest import API, AUTH, ClientFactory
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.fuzzing import jira_problems, slack_problems, slack_texts
from tests.helpers import T0, FakeClock, alert, metric, wait_for, webhook

Client = TestClient[Any, web.Application]
HOSTILE = "rolled back *v2.3* [see|http://evil.example] {code}\r\n# not a list\n<@U0LEE> @channel"


async def opened(client: Client) -> int:
    """An incident opened by one alert (KISTokenRefreshFailed: P1, backend, kim on call)."""
    resp = await client.post("/webhook", json=webhook(alert()), headers=AUTH)
    assert resp.status == 200, await resp.text()
    found: int = (await resp.json())["incidents"][0]
    return found


async def act(client: Client, incident_id: int, action: str, **body: Any) -> tuple[int, Any]:
    url = f"/api/v1/incidents/{incident_id}/{action}"
    async with client.post(url, json=body, headers=API) as resp:
        return resp.status, await resp.json()


async def timeline(client: Client, incident_id: int, event: str) -> list[dict[str, Any]]:
    body = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=API)).json()
    return [e for e in body["timeline"] if e["event"] == event]


async def as_text(client: Client, incident_id: int) -> str:
    url = f"/api/v1/incidents/{incident_id}/timeline?format=text"
    return await (await client.get(url, headers=API)).text()


async def pages_to(client: Client, person: str) -> int:
    """Pages queued for a person so far, whatever became of them."""
    body = await (await client.get("/api/v1/deliveries?limit=500", headers=API)).json()
    return sum(1 for d in body["deliveries"] if (d.get("page") or {}).get("person") == person)


def comments(jira: FakeJira, has: str) -> list[str]:
    """The comments of every issue that say ``has``."""
    return [c for issue in jira.issues.values() for c in jira.comments(issue["key"]) if has in c]


async def test_a_note_is_on_the_timeline_and_a_jira_comment_shown_as_written(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira
) -> None:
    client = await make_client(**live(slack, jira))
    incident_id = await opened(client)
    await wait_for(lambda: len(jira.issues) == 1)
    status, view = await act(client, incident_id, "note", by="kim", text=f"  {HOSTILE} ")
    assert status == 200, view
    assert (view["changed"], view["status"]) == (True, "triggered")
    kept = HOSTILE.replace("\r\n", "\n")
    [note] = await timeline(client, incident_id, "note")
    assert (note["by"], note["text"]) == ("kim", kept)
    await wait_for(lambda: bool(comments(jira, "Note by Kim Minjun")))
    [comment] = comments(jira, "Note by Kim Minjun")
    assert jira_problems(comment) == []  # no link, format or list from the note's text
    assert "http://evil.example" in comment and "v2.3" in comment
    assert f"Kim Minjun added a note: {kept}".splitlines()[0] in await as_text(client, incident_id)

    # the same request again (a retry, a double click) adds nothing
    status, view = await act(client, incident_id, "note", by="kim", text=HOSTILE)
    assert (status, view["changed"]) == (200, False)
    assert len(await timeline(client, incident_id, "note")) == 1
    # a resolved incident takes notes too
    assert (await act(client, incident_id, "resolve", by="kim"))[0] == 200
    status, view = await act(client, incident_id, "note", by="lee", text="postmortem Monday")
    assert (status, view["changed"], view["status"]) == (200, True, "resolved")
    await wait_for(lambda: bool(comments(jira, "Note by Lee Jihoon")))


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("note", {"by": "kim"}, "text"),
        ("note", {"by": "kim", "text": " \n "}, "text"),
        ("note", {"by": "kim", "text": "x" * 4001}, "text"),
        ("note", {"by": "kim", "text": "bell \x07"}, "text"),
        ("note", {"by": "kim", "text": ["a"]}, "text"),
        ("note", {"text": "hi"}, "by"),
        ("note", {"by": "nobody", "text": "hi"}, "by"),
        ("note", {"by": "kim", "text": "hi", "when": "now"}, "when"),
        ("reassign", {"by": "lee"}, "to"),
        ("reassign", {"by": "lee", "to": "nobody"}, "to"),
        ("reassign", {"by": "lee", "to": 7}, "to"),
        ("reassign", {"to": "choi"}, "by"),
        ("unack", {}, "by"),
        ("unack", {"by": "lee", "to": "choi"}, "to"),
        ("escalate", {"by": ""}, "by"),
        ("retry", {"by": None}, "by"),
    ],
)
async def test_bad_bodies_are_named(
    make_client: ClientFactory, action: str, body: dict[str, Any], field: str
) -> None:
    client = await make_client(run_worker=False)
    incident_id = await opened(client)
    status, answer = await act(client, incident_id, action, **body)
    assert (status, answer["field"]) == (400, field), answer
    assert len(await timeline(client, incident_id, "note")) == 0


@pytest.mark.parametrize("action", ["note", "reassign", "unack", "escalate", "retry"])
async def test_unknown_incidents_and_missing_tokens(
    make_client: ClientFactory, action: str
) -> None:
    client = await make_client(run_worker=False)
    body = {"by": "lee", "to": "choi", "text": "hi"}
    fields = {"note": ("by", "text"), "reassign": ("by", "to")}.get(action, ("by",))
    wanted = {k: v for k, v in body.items() if k in fields}
    status, answer = await act(client, 424242, action, **wanted)
    assert (status, answer["error"]) == (404, "no such incident")
    url = f"/api/v1/incidents/1/{action}"
    assert (await client.post(url, json=wanted)).status == 401
    bad = await client.post(f"/api/v1/incidents/x/{action}", json=wanted, headers=API)
    assert bad.status == 400


async def test_reassigning_hands_the_incident_and_its_issue_over_and_pages(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira
) -> None:
    client = await make_client(**live(slack, jira))
    incident_id = await opened(client)
    await wait_for(lambda: len(jira.issues) == 1 and bool(slack.dms_to("U0KIM")))
    [issue] = jira.issues.values()
    assert issue["fields"]["assignee"] == {"name": "kim"}  # the on-call at the open
    status, view = await act(client, incident_id, "reassign", by="lee", to="choi")
    assert status == 200, view
    assert (view["changed"], view["assignee"], view["status"]) == (True, "choi", "triggered")
    [event] = await timeline(client, incident_id, "reassigned")
    assert (event["by"], event["to"], "from" in event) == ("lee", "choi", False)
    await wait_for(lambda: bool(slack.dms_to("U0CHOI")))  # paged on their channel now
    await wait_for(lambda: issue["fields"]["assignee"] == {"name": "choi"})
    await wait_for(lambda: bool(comments(jira, "Reassigned to Choi Yuna by Lee Jihoon")))
    await wait_for(lambda: any("Reassigned to Choi Yuna" in t for t in slack_texts(slack)))
    assert all(slack_problems(t) == [] for t in slack_texts(slack))
    assert "Lee Jihoon reassigned it to Choi Yuna; paged Choi Yuna" in await as_text(
        client, incident_id
    )

    again = await act(client, incident_id, "reassign", by="lee", to="choi")
    assert (again[0], again[1]["changed"]) == (200, False)
    assert await pages_to(client, "choi") == 1  # not paged twice
    status, view = await act(client, incident_id, "reassign", by="kim", to="jung")
    assert (status, view["assignee"]) == (200, "jung")
    assert (await timeline(client, incident_id, "reassigned"))[-1]["from"] == "choi"
    listed = await (await client.get("/api/v1/incidents", headers=API)).json()
    assert listed["incidents"][0]["assignee"] == "jung"

    assert (await act(client, incident_id, "resolve", by="jung"))[0] == 200
    status, answer = await act(client, incident_id, "reassign", by="lee", to="choi")
    assert (status, answer["error"]) == (409, "incident is resolved")


async def alert_to_ack(client: Client) -> float | None:
    text = await (await client.get("/metrics")).text()
    return metric(text, "receiver_alert_to_ack_seconds_count", severity="P1", category="api")


async def test_unack_triggers_it_again_pages_step_0_and_the_next_ack_is_not_counted_twice(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    client = await make_client(**live(slack, jira))
    incident_id = await opened(client)
    await wait_for(lambda: len(jira.issues) == 1 and len(slack.dms_to("U0KIM")) == 1)
    clock.advance(minutes=5)
    assert (await act(client, incident_id, "ack", by="kim"))[0] == 200
    assert await alert_to_ack(client) == 1
    clock.advance(minutes=5)
    status, view = await act(client, incident_id, "unack", by="lee")
    assert status == 200, view
    assert (view["changed"], view["status"], view["acknowledged_by"]) == (True, "triggered", None)
    assert view["triggered_at"] == "2026-11-26T01:10:00Z"
    [event] = await timeline(client, incident_id, "unacknowledged")
    assert (event["by"], event["acknowledged_by"]) == ("lee", "kim")
    paged = await timeline(client, incident_id, "paged")
    assert [(p["step"], p["people"], p["at"]) for p in paged] == [
        (0, ["kim"], "2026-11-26T01:00:00Z"),
        (0, ["kim"], "2026-11-26T01:10:00Z"),  # the ladder from step 0 again
    ]
    await wait_for(lambda: len(slack.dms_to("U0KIM")) == 2)
    await wait_for(lambda: bool(comments(jira, "Acknowledgement by Kim Minjun taken back")))
    await wait_for(lambda: any("taken back by Lee Jihoon" in t for t in slack_texts(slack)))
    # the Slack messages show it triggered again, with the Acknowledge button back
    post = slack.posted_to("#beta-alert")[0]  # the incident's message; replies follow
    await wait_for(lambda: "Acknowledge" in json.dumps(FakeSlack.latest(post)["blocks"]))
    assert "Lee Jihoon took back the acknowledgement of Kim Minjun" in await as_text(
        client, incident_id
    )

    clock.advance(minutes=2)
    status, view = await act(client, incident_id, "ack", by="kim")
    assert (status, view["status"]) == (200, "acknowledged")
    assert await alert_to_ack(client) == 1  # measured once, at the first ack
    text = await (await client.get("/metrics")).text()
    labels = {"phase": "ack", "severity": "P1", "category": "api"}
    assert metric(text, "receiver_phase_duration_seconds_count", **labels) == 1


@pytest.mark.parametrize(("first", "status"), [(None, "triggered"), ("resolve", "resolved")])
async def test_unack_only_takes_an_ack_back(
    make_client: ClientFactory, first: str | None, status: str
) -> None:
    client = await make_client(run_worker=False)
    incident_id = await opened(client)
    if first is not None:
        assert (await act(client, incident_id, first, by="kim"))[0] == 200
    code, answer = await act(client, incident_id, "unack", by="lee")
    assert code == 409
    assert answer["error"] == (
        f"incident is {status}: only an acknowledged incident can be unacknowledged"
    )
    assert await timeline(client, incident_id, "unacknowledged") == []


async def test_escalate_pages_the_next_step_now_until_the_ladder_ends(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    client = await make_client(**live(slack, jira))
    incident_id = await opened(client)
    await wait_for(lambda: len(jira.issues) == 1 and len(slack.dms_to("U0KIM")) == 1)
    clock.advance(minutes=3)
    status, view = await act(client, incident_id, "escalate", by="lee")
    assert (status, view["changed"], view["status"]) == (200, True, "triggered")
    [event] = await timeline(client, incident_id, "escalated")
    assert (event["by"], event["step"], event["people"]) == ("lee", 1, ["kim"])  # the lead
    await wait_for(lambda: len(slack.dms_to("U0KIM")) == 2)
    await wait_for(lambda: bool(comments(jira, "Escalated by Lee Jihoon (step 1)")))
    assert "Lee Jihoon escalated it to Kim Minjun (step 1)" in await as_text(client, incident_id)

    assert (await act(client, incident_id, "ack", by="kim"))[0] == 200
    status, view = await act(client, incident_id, "escalate", by="kim")  # acknowledged too
    assert (status, view["status"]) == (200, "acknowledged")
    await wait_for(lambda: len(slack.dms_to("U0LEE")) == 1)  # step 2: the tech lead
    assert (await act(client, incident_id, "escalate", by="kim"))[0] == 200  # step 3: the PM
    await wait_for(lambda: len(slack.dms_to("U0PARK")) == 1)
    status, answer = await act(client, incident_id, "escalate", by="kim")
    assert status == 409 and "no such escalation step" in answer["error"]
    text = await (await client.get("/metrics")).text()
    for step in "123":
        assert metric(text, "receiver_escalations_total", severity="P1", step=step) == 1
    assert (await act(client, incident_id, "resolve", by="kim"))[0] == 200
    status, answer = await act(client, incident_id, "escalate", by="kim")
    assert (status, answer["error"]) == (409, "incident is resolved")
    assert len(await timeline(client, incident_id, "escalated")) == 3
    assert clock.now == T0.replace(minute=3)
