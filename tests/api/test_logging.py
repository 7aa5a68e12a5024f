"""One summary log line per request, as a structured event, with no secrets in it."""

from __future__ import annotations

from structlog.testing import capture_logs

from tests.conftest import API, API_TOKEN, AUTH, WEBHOOK_TOKEN, ClientFactory
from tests.helpers import alert, webhook


async def test_one_summary_line_per_request_without_secrets(make_client: ClientFactory) -> None:
    client = await make_client(run_worker=False)
    with capture_logs() as events:
        assert (await client.post("/webhook", json=webhook(alert()), headers=AUTH)).status == 200
        bad = {"Authorization": f"Bearer {WEBHOOK_TOKEN}x"}
        assert (await client.post("/webhook", json=webhook(alert()), headers=bad)).status == 401
        assert (await client.get("/api/v1/incidents", headers=API)).status == 200
    lines = [e for e in events if e["event"] == "request"]
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("POST", "/webhook", 200),
        ("POST", "/webhook", 401),
        ("GET", "/api/v1/incidents", 200),
    ]
    first = lines[0]
    assert first["alerts"] == 1 and first["opened"] == 1 and first["duplicates"] == 0
    assert isinstance(first["duration_ms"], float)
    assert all(WEBHOOK_TOKEN not in repr(e) and API_TOKEN not in repr(e) for e in events)
