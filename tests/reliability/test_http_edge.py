"""The HTTP edge of a real ``receiver serve``: what aiohttp's parser refuses is answered in
JSON, every log line is one JSON object without a token or a traceback, and slow clients
are dropped.

Requests go over raw sockets (asyncio streams) where an HTTP client would refuse to send
them; every exchange is bounded by ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.helpers import alert, webhook
from tests.reliability.harness import API_TOKEN, WEBHOOK_TOKEN, ReceiverProcess, all_incidents

BOUND = 15.0  # seconds any one exchange may take before the test fails
SECRETS = (WEBHOOK_TOKEN, API_TOKEN)
JSON_TYPE = "application/json"


@contextlib.asynccontextmanager
async def receiver_running(
    tmp_path: Path,
    jira: FakeJira,
    slack: FakeSlack,
    session: aiohttp.ClientSession,
    **settings: str,
) -> AsyncIterator[ReceiverProcess]:
    """A receiver logging at debug; on exit it is stopped and every log line is checked."""
    receiver = ReceiverProcess(
        "edge",
        f"sqlite:///{tmp_path}/edge.db",
        jira,
        slack,
        tmp_path,
        log_level="debug",
        **settings,
    )
    receiver.start()
    try:
        await receiver.ready(session)
        yield receiver
        assert await receiver.terminate() == 0, receiver.log_tail()
    finally:
        receiver.kill()
    check_log(receiver)


def check_log(receiver: ReceiverProcess) -> list[dict[str, Any]]:
    """Every line one JSON object; no token, no traceback anywhere."""
    events = []
    for line in receiver.log_path.read_text(errors="replace").splitlines():
        if line.startswith("--- start "):  # the harness's own marker
            continue
        for secret in SECRETS:
            assert secret not in line, f"a token in the log: {line[:300]}"
        assert "Traceback" not in line, f"a traceback in the log: {line[:300]}"
        try:
            event = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line[:300]!r}") from None
        assert isinstance(event, dict), line[:300]
        events.append(event)
    return events


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-cased names) and body of a raw HTTP response."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def json_error(answer: bytes, statuses: set[int]) -> dict[str, Any]:
    """The answer is one of ``statuses`` with a JSON ``{"error": ...}`` body."""
    status, headers, body = parse(answer)
    assert status in statuses, answer[:300]
    assert headers.get("content-type", "").startswith(JSON_TYPE), answer[:300]
    error: dict[str, Any] = json.loads(body)
    assert isinstance(error.get("error"), str), error
    return error


async def exchange(port: int, request: bytes) -> bytes:
    """Send one request on a fresh connection and read until the receiver closes it."""
    async with asyncio.timeout(BOUND):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request)
            await writer.drain()
            return await reader.read()
        except ConnectionResetError:
            return b""
        finally:
            writer.close()


async def trickle(port: int, head: bytes, tail: bytes, pause: float = 0.05) -> tuple[int, bytes]:
    """Send ``head`` at once, then ``tail`` a byte at a time until the receiver answers or
    closes; how many bytes of ``tail`` went out, and the answer (empty when it closed)."""
    async with asyncio.timeout(BOUND):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = asyncio.create_task(reader.read())
        sent = 0
        try:
            with contextlib.suppress(ConnectionError):  # the receiver closed under a write
                writer.write(head)
                await writer.drain()
                for byte in tail:
                    if answer.done():
                        break
                    writer.write(bytes([byte]))
                    await writer.drain()
                    sent += 1
                    await asyncio.sleep(pause)
            try:
                received = await answer
            except ConnectionError:
                received = b""
        finally:  # nothing awaited here, so the timeout above bounds the whole exchange
            answer.cancel()
            writer.close()
        return sent, received


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response on a kept-alive connection: status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers, _ = parse(head)
    return status, await reader.readexactly(int(headers["content-length"]))


def webhook_head(length: int, *headers: str) -> bytes:
    """The request line and headers of a raw authenticated ``POST /webhook``."""
    lines = [
        "POST /webhook HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {WEBHOOK_TOKEN}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_oversized_secret_headers_get_json_errors_and_are_never_echoed_or_logged(
    tmp_path: Path, jira: FakeJira, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    padding = "q" * 9000
    oversized = {
        "Authorization": f"Bearer {WEBHOOK_TOKEN}{padding}",
        "Cookie": f"session={API_TOKEN}{padding}",
    }
    async with receiver_running(tmp_path, jira, slack, session) as receiver:
        for name, value in oversized.items():
            request = (
                f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n{name}: {value}\r\n"
                "Content-Length: 2\r\n\r\n{}"
            ).encode()
            answer = await exchange(receiver.port, request)
            json_error(answer, {400, 431})
            for secret in SECRETS:
                assert secret.encode() not in answer, answer[:300]
            assert b"qqqq" not in answer, answer[:300]
    assert "qqqq" not in receiver.log_path.read_text()


async def test_garbage_gzip_bodies_get_json_answers_and_no_traceback(
    tmp_path: Path, jira: FakeJira, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    garbage = b"\x1f\x8bnot really gzip at all" * 20
    gzip = {"Content-Encoding": "gzip", "Content-Type": JSON_TYPE}
    authorized = {**gzip, "Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    async with receiver_running(tmp_path, jira, slack, session) as receiver:
        url = receiver.url + "/webhook"
        # Credentials are checked before the body is read: no token, no decoding.
        async with session.post(url, data=garbage, headers=gzip) as answer:
            assert answer.status == 401
            assert "error" in await answer.json()
        async with session.post(url, data=garbage, headers=authorized) as answer:
            assert answer.status == 400
            assert (await answer.json())["field"] == "<body>"
        assert await all_incidents(session, receiver.url) == []


async def test_unsupported_content_encodings_get_415_and_store_nothing(
    tmp_path: Path, jira: FakeJira, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    async with receiver_running(tmp_path, jira, slack, session) as receiver:
        for n, encoding in enumerate(["br", "zstd", "x-unknown", "gzip, br"]):
            body = json.dumps(webhook(alert(service=f"svc-encoding-{n}"))).encode()
            head = webhook_head(len(body), f"Content-Encoding: {encoding}", "Connection: close")
            request = head + body
            error = json_error(await exchange(receiver.port, request), {415})
            assert "Content-Encoding" in error["error"]
        assert await all_incidents(session, receiver.url) == []


async def test_malformed_requests_on_a_raw_socket_get_json_or_a_closed_connection(
    tmp_path: Path, jira: FakeJira, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    many_headers = "".join(f"X-Filler-{i}: {i}\r\n" for i in range(300))
    malformed = [
        b"GARBAGE\x01 / HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/9.x\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {'b' * 9000}\r\n\r\n".encode(),
        f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{many_headers}\r\n".encode(),
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad: a\x00b\r\n\r\n",
        b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n{}",
    ]
    async with receiver_running(tmp_path, jira, slack, session) as receiver:
        for request in malformed:
            answer = await exchange(receiver.port, request)
            if answer:  # closing without an answer is fine too
                json_error(answer, {400, 414, 431})
                assert b"aaaa" not in answer and b"bbbb" not in answer, answer[:300]
        async with session.get(receiver.url + "/healthz") as healthy:
            assert healthy.status == 200


async def test_headers_trickled_past_the_header_timeout_are_dropped(
    tmp_path: Path, jira: FakeJira, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    head = b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    tail = b"X-Slow: " + b"s" * 1000 + b"\r\nContent-Length: 2\r\n\r\n{}"
    async with receiver_running(
        tmp_path, jira, slack, session, header_timeout_seconds="1"
    ) as receiver:
        sent, answer = await trickle(receiver.port, head, tail)
        assert sent < len(tail), "the receiver waited for every header byte"
        if answer:
            json_error(answer, {408})
        async with session.get(receiver.url + "/healthz") as healthy:
            assert healthy.status == 200


async def test_a_body_trickled_past_the_body_timeout_is_dropped_and_nothing_stored(
    tmp_path: Path, jira: FakeJira, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    body = json.dumps(webhook(alert(service="svc-slow-body"))).encode()
    async with receiver_running(
        tmp_path, jira, slack, session, body_timeout_seconds="1"
    ) as receiver:
        sent, answer = await trickle(receiver.port, webhook_head(len(body)), body)
        assert sent < len(body), "the receiver waited for every body byte"
        if answer:
            error = json_error(answer, {408})
            assert "time" in error["error"]
        assert await all_incidents(session, receiver.url) == []


async def test_idle_keepalive_connections_close_after_the_keepalive_timeout(
    tmp_path: Path, jira: FakeJira, slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    async with receiver_running(
        tmp_path,
        jira,
        slack,
        session,
        header_timeout_seconds="1",
        keepalive_timeout_seconds="4",
    ) as receiver:
        async with asyncio.timeout(BOUND):
            reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
            try:
                writer.write(request)
                assert (await read_response(reader))[0] == 200
                # Idle past the header timeout: an idle connection is kept until keep-alive.
                await asyncio.sleep(2)
                writer.write(request)
                assert (await read_response(reader))[0] == 200
                assert await reader.read() == b""  # then closed by the receiver
            finally:
                writer.close()
