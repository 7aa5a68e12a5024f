"""Phases through the whole app with fake Slack and JIRA over HTTP: a P0 mitigated late
counts one breach and escalates once; the API and the Slack "Mitigated" button mark the
phases; the incident JSON shows the deadlines ahead; the timeline, JIRA and the metrics
tell each phase."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from receiver.config import load_rules
from tests.api.test_reports import live
from tests.api.test_slack import SECRET, signed
from tests.api.test_slack_notify import jira as jira  # the fixtures, re-exported
from tests.api.test_slack_notify import slack as slack
from tests.conftest import API, AUTH, ClientFactory
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.helpers import SHIPPED_RULES, FakeClock, alert, metric, wait_for, webhook

CFG = load_rules(SHIPPED_RULES)
T0 = datetime.fromisoformat("2026-11-26T10:00:00+09:00")  # a Thursday morning in Seoul


def iso(at: datetime) -> str:
    return at.astimezone().isoformat().replace("+00:00", "Z")


async def _post(client: Any, path: str, by: str) -> dict[str, Any]:
    resp = await client.post(path, json={"by": by}, headers=API)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_a_p0_mitigated_late_counts_one_breach_and_escalates_once(
    make_client: ClientFactory, slack: FakeSlack, jira: FakeJira, clock: FakeClock
) -> None:
    clock.now = T0
    client = await make_client(**live(slack, jira), slack_signing_secret=SECRET)
    down = alert(starts=clock.now, alertname="ServiceDown", service="order-api")  # P0
    [incident_id] = (
        await (await client.post("/webhook", json=webhook(down), headers=AUTH)).json()
    )["incidents"]
    url = f"/api/v1/incidents/{incident_id}"
    view = await (await client.get(url, headers=API)).json()
    assert view["severity"] == "P0" and view["mitigated_at"] is None
    minute = timedelta(minutes=1)
    assert view["phase_deadlines"] == {
        "ack": "2026-11-26T01:15:00Z", "mitigate": "2026-11-26T01:45:00Z",
        "resolve": "2026-11-26T03:45:00Z", "report": "2026-11-26T04:45:00Z",
    }  # fmt: skip
    step_zero = {"han", "oh", "lee", "park"}
    users = {CFG.people[p].slack_id: p for p in step_zero}
    await wait_for(lambda: all(slack.dms_to(u) for u in users if u))

    clock.now = T0 + 5 * minute
    acked = await _post(client, f"{url}/ack", "han")
    assert acked["phase_deadlines"]["mitigate"] == "2026-11-26T01:35:00Z"  # 30 min from the ack
    assert "ack" not in acked["phase_deadlines"]

    clock.now = T0 + 35 * minute + timedelta(seconds=1)  # the mitigation is late
    await wait_for(lambda: len(slack.dms_to("U0HAN")) == 2)
    # one step up the ladder: P0 has one step, so its people are paged once more
    await wait_for(lambda: all(len(slack.dms_to(u)) == 2 for u in users if u))
    reminder = slack.dms_to("U0HAN")[-1]
    assert reminder["text"].startswith(
        "Page: Mitigate overdue: target 30m, due 2026-11-26 10:35 KST"
    )
    buttons = [e["action_id"] for b in reminder["blocks"] if b["type"] == "actions"
               for e in b["elements"]]  # fmt: skip
    assert buttons == ["incident_mitigate", "incident_resolve"]  # acknowledged already
    clock.now = T0 + 50 * minute
    await asyncio.sleep(0.5)  # no second breach of the same phase, whatever the timer loop does
    assert all(len(slack.dms_to(u)) == 2 for u in users if u)
    metrics = await (await client.get("/metrics")).text()
    assert metric(metrics, "receiver_phase_sla_breaches_total", phase="mitigate",
                  severity="P0") == 1  # fmt: skip
    assert metric(metrics, "receiver_phase_sla_breaches_total", phase="ack", severity="P0") == 0

    # Mitigated from the Slack button, by the person pressing it.
    body, headers = signed("incident_mitigate", incident_id, "U0HAN", clock.now.timestamp())
    pressed = await client.post("/slack/interactions", data=body, headers=headers)
    assert (await pressed.json())["text"] == f"Incident #{incident_id} mitigated by Han Jiwoo."
    again = await client.post("/slack/interactions", data=body, headers=headers)
    assert (await again.json())["text"].endswith("is already mitigated.")
    view = await (await client.get(url, headers=API)).json()
    assert view["mitigated_by"] == "han" and view["mitigated_at"] == "2026-11-26T01:50:00Z"
    assert view["status"] == "acknowledged"
    assert view["phase_deadlines"] == {
        "resolve": "2026-11-26T03:50:00Z", "report": "2026-11-26T04:50:00Z",
    }  # fmt: skip
    events = [e["event"] for e in view["timeline"]]
    assert events.count("phase_overdue") == 1
    [late] = [e for e in view["timeline"] if e["event"] == "phase_overdue"]
    assert late["phase"] == "mitigate" and late["owner"] == ["han"]

    clock.now = T0 + 80 * minute
    await _post(client, f"{url}/resolve", "han")
    clock.now = T0 + 110 * minute
    reported = await _post(client, f"{url}/report", "lee")
    assert reported["reported_by"] == "lee" and reported["phase_deadlines"] == {}
    assert (await _post(client, f"{url}/report", "lee"))["changed"] is False

    metrics = await (await client.get("/metrics")).text()
    for phase, seconds in (("ack", 300), ("mitigate", 2700), ("resolve", 1800),
                           ("report", 1800)):  # fmt: skip
        labels = {"phase": phase, "severity": "P0", "category": "functional"}
        assert metric(metrics, "receiver_phase_duration_seconds_count", **labels) == 1
        assert metric(metrics, "receiver_phase_duration_seconds_sum", **labels) == seconds
    text = await (await client.get(f"{url}/timeline?format=text", headers=API)).text()
    assert "Mitigate overdue (target 30m): reminded Han Jiwoo" in text
    assert "  Mitigate: target 30 min, due 2026-11-26 10:35 KST; done 2026-11-26 10:50 KST " \
        "(took 45 min): missed" in text  # fmt: skip
    assert "  Report: target 1 h" in text and "(took 30 min): met" in text

    await wait_for(lambda: len(jira.issues) == 2)  # the incident's and its postmortem
    [issue] = [k for k, i in jira.issues.items() if "postmortem" not in i["fields"]["labels"]]
    comments = jira.comments(issue)
    await wait_for(lambda: len(jira.comments(issue)) >= 5)
    comments = jira.comments(issue)
    assert any(c.startswith("Mitigate overdue: target 30m, due 2026-11-26 10:35 KST.") for c in
               comments)  # fmt: skip
    assert any(c.startswith("Mitigated by Han Jiwoo at 2026-11-26 10:50 KST. Next: resolve by")
               for c in comments)  # fmt: skip
    [postmortem] = [i for i in jira.issues.values() if "postmortem" in i["fields"]["labels"]]
    table = postmortem["fields"]["description"]
    assert "||Phase||Target||Due||Done||Verdict||" in table
    assert "|Mitigate|30 min|2026-11-26 10:35 KST|2026-11-26 10:50 KST (took 45 min)|missed|" \
        in table  # fmt: skip


async def test_mitigating_a_triggered_incident_acknowledges_it_at_the_same_moment(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    clock.now = T0
    client = await make_client()
    [incident_id] = (
        await (await client.post("/webhook", json=webhook(alert(starts=T0)), headers=AUTH)).json()
    )["incidents"]  # P1
    clock.now = T0 + timedelta(minutes=7)
    url = f"/api/v1/incidents/{incident_id}"
    done = await _post(client, f"{url}/mitigate", "kim")
    assert done["changed"] is True and done["status"] == "acknowledged"
    assert done["acknowledged_at"] == done["mitigated_at"] == "2026-11-26T01:07:00Z"
    assert done["acknowledged_by"] == done["mitigated_by"] == "kim"
    metrics = await (await client.get("/metrics")).text()
    assert metric(metrics, "receiver_alert_to_ack_seconds_count", severity="P1",
                  category="api") == 1  # fmt: skip
    # the report comes once resolved; a mitigation once resolved is refused
    early = await client.post(f"{url}/report", json={"by": "kim"}, headers=API)
    assert early.status == 409 and "once it is resolved" in (await early.json())["error"]
    await _post(client, f"{url}/resolve", "kim")
    late = await client.post(f"{url}/mitigate", json={"by": "kim"}, headers=API)
    assert late.status == 200 and (await late.json())["changed"] is False  # it was already
    bad = await client.post(f"{url}/mitigate", json={"by": "nobody"}, headers=API)
    assert bad.status == 400
    missing = await client.post("/api/v1/incidents/999/mitigate", json={"by": "kim"}, headers=API)
    assert missing.status == 404
