"""One summary log line per request, as a structured event, with no secrets in it; the
libraries' records rendered as JSON lines too."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from aiohttp.http_exceptions import LineTooLong
from structlog.testing import capture_logs

from receiver.logging import configure_logging
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


@pytest.fixture
def configured_logging() -> Iterator[None]:
    """Let a test call ``configure_logging``; the process's logging is put back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.captureWarnings(False)
        structlog.reset_defaults()


def test_library_records_are_json_lines_and_aiohttp_exceptions_lose_their_message(
    configured_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "info")
    logging.getLogger("aiohttp.access").info("below the libraries' level: dropped")
    try:
        raise ValueError("lost connection to the store")
    except ValueError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")
    try:  # aiohttp's parser quotes the offending header in the message
        raise LineTooLong(f"Bearer {WEBHOOK_TOKEN}".encode(), 8190)
    except LineTooLong:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "::1")
    structlog.get_logger("receiver.test").warning("own_event", n=1)
    lines = capsys.readouterr().err.splitlines()
    events = [json.loads(line) for line in lines]
    assert [(e["event"], e["level"], e.get("logger")) for e in events] == [
        ("Task exception was never retrieved", "error", "asyncio"),
        ("Error handling request from ::1", "error", "aiohttp.server"),
        ("own_event", "warning", None),
    ]
    assert "ValueError: lost connection to the store" in events[0]["exception"]
    assert events[1]["exception"].endswith("LineTooLong")
    assert all(WEBHOOK_TOKEN not in line for line in lines)
