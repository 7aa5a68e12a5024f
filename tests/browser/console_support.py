"""What the console's browser tests stand on: a real ``receiver serve`` with fake JIRA and
Slack served from a thread of their own (so the test may block on the browser while they
answer), plain HTTP to the receiver, bounded polling, the rules file and console passwords
set with the real ``receiver passwd``, and the screenshots folder.

Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import IO, Any, TypeVar
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import yaml
from itsdangerous import URLSafeSerializer
from selenium.webdriver.chromium.webdriver import ChromiumDriver
from selenium.webdriver.remote.webdriver import WebDriver

from receiver.config import load_rules
from receiver.domain.oncall import responder
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.helpers import SHIPPED_RULES, alert, webhook
from tests.reliability.harness import (
    API_TOKEN,
    REPO_ROOT,
    STARTUP_TIMEOUT,
    STOP_TIMEOUT,
    WEBHOOK_TOKEN,
    ReceiverProcess,
    fake_jira,
    fake_slack,
)

T = TypeVar("T")

SECRET = "console-browser-test-secret-0123456789abcdef"  # RECEIVER_UI_SECRET, >= 32 chars
PASSWORD = "correct horse battery staple"
SESSION_SALT = "receiver.console.session"  # receiver/console/session.py signs with it
SEOUL = ZoneInfo("Asia/Seoul")
HTTP_TIMEOUT = 20.0
PASSWD_TIMEOUT = 60.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 4000  # a blank page compresses below this; a rendered console page does not
MAX_SHOT_HEIGHT = 5000  # a full-page screenshot, cut off here


class FakeHost:
    """An event loop in a thread of its own, where the fakes live and answer the receiver
    while the test is busy driving the browser."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fakes", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def run(self, work: Awaitable[T], timeout: float = HTTP_TIMEOUT) -> T:
        """Run a coroutine on the fakes' loop and wait (bounded) for its result."""

        async def wrapped() -> T:
            return await work

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` on the fakes' loop: read or change a fake without racing it."""

        async def wrapped() -> T:
            return fn()

        return self.run(wrapped())

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(STOP_TIMEOUT)
        if not self._thread.is_alive():
            self.loop.close()


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, read to the end."""

    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def cookies(self) -> list[str]:
        """The Set-Cookie headers."""
        return list(self.headers.get_all("Set-Cookie") or [])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer to look at, not to follow."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


class Http:
    """Plain HTTP to one receiver: no proxy, no redirects followed, cookies given by hand."""

    def __init__(self, base: str) -> None:
        self.base = base
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        data: bytes | None = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        request = urllib.request.Request(self.base + path, data, sent, method=method)
        try:
            with self._opener.open(request, timeout=HTTP_TIMEOUT) as answer:
                return Answer(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as error:  # 3xx (not followed), 4xx, 5xx
            with error:
                return Answer(error.code, error.headers, error.read())

    def api(self, path: str) -> Any:
        """GET an API path with the API token; the JSON answer (200 expected)."""
        answer = self.request("GET", path, headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert answer.status == 200, f"GET {path}: {answer.status} {answer.text[:500]}"
        return answer.json()


def until(
    check: Callable[[], T | None], seconds: float, what: str, logs: Callable[[], str] = str
) -> T:
    """Poll ``check`` until it returns something truthy, at most ``seconds``; on failure the
    message ends with ``logs()`` (the receiver's log tail)."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:.0f}s\n{logs()}")
        time.sleep(0.1)


def rules_file(folder: Path, now: datetime) -> Path:
    """The shipped rules with kim covering the backend rotation from an hour ago to a day
    from now, whatever today's date is."""
    data: dict[str, Any] = yaml.safe_load(SHIPPED_RULES.read_text(encoding="utf-8"))
    local = now.astimezone(SEOUL).replace(tzinfo=None, second=0, microsecond=0)
    cover = {
        "person": "kim",
        "from": (local - timedelta(hours=1)).isoformat(timespec="minutes"),
        "to": (local + timedelta(days=1)).isoformat(timespec="minutes"),
    }
    data["rotations"]["backend"]["overrides"] = [cover]
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert responder(load_rules(path), "backend", now).person == "kim"
    return path


def child_env() -> dict[str, str]:
    """The environment of a receiver command: none of the caller's RECEIVER_ settings, but
    the shifted clock's (which moves the child's clock with the test's)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RECEIVER_") or k.startswith("RECEIVER_TEST_CLOCK")
    }


def set_password(person: str, rules: Path, database_url: str, password: str = PASSWORD) -> None:
    """``receiver passwd PERSON``, the password on standard input (not a terminal)."""
    done = subprocess.run(
        [sys.executable, "-m", "receiver", "passwd", person, "--rules", str(rules),
         "--database-url", database_url],
        input=password + "\n", capture_output=True, text=True, cwd=REPO_ROOT, env=child_env(),
        timeout=PASSWD_TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"receiver passwd {person}: {done.returncode}\n{done.stderr}"
    assert f"password set for {person}" in done.stdout, done.stdout


def forge(cookie: str, secret: str) -> str:
    """The same session cookie, content unchanged, signed with another secret."""
    _, payload = URLSafeSerializer("unused", salt=SESSION_SALT).loads_unsafe(cookie)
    assert isinstance(payload, list) and len(payload) == 5, payload
    forged = URLSafeSerializer(secret, salt=SESSION_SALT).dumps(payload)
    assert isinstance(forged, str) and forged != cookie
    return forged


@dataclass
class Stack:
    """One receiver process and the fakes it talks to."""

    host: FakeHost
    jira: FakeJira
    slack: FakeSlack
    receiver: ReceiverProcess
    rules: Path
    workdir: Path

    @property
    def url(self) -> str:
        return self.receiver.url

    @property
    def http(self) -> Http:
        return Http(self.receiver.url)

    def logs(self) -> str:
        return self.receiver.log_tail()

    def fire(self, service: str = "kis-gateway", alertname: str = "KISTokenRefreshFailed") -> int:
        """POST a firing alert starting now, with the webhook token; its incident's id. The
        default is KISTokenRefreshFailed: P1, category api, the backend team (kim)."""
        firing = alert(starts=datetime.now(UTC), alertname=alertname, service=service)
        answer = self.http.request(
            "POST", "/webhook", json_body=webhook(firing),
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )  # fmt: skip
        assert answer.status == 200, f"{answer.status} {answer.text[:500]}"
        [incident_id] = answer.json()["incidents"]
        return int(incident_id)

    def incident(self, incident_id: int) -> dict[str, Any]:
        view: dict[str, Any] = self.http.api(f"/api/v1/incidents/{incident_id}")
        return view

    def deliveries(self, incident_id: int | None = None, status: str = "") -> list[Any]:
        query = {"limit": "500", **({"status": status} if status else {})}
        if incident_id is not None:
            query["incident"] = str(incident_id)
        listed = self.http.api(f"/api/v1/deliveries?{urllib.parse.urlencode(query)}")
        found: list[Any] = listed["deliveries"]
        return found


async def _ready(*receivers: ReceiverProcess) -> None:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(r.ready(session) for r in receivers))


def start_receivers(host: FakeHost, *receivers: ReceiverProcess) -> None:
    """Start the processes and wait until each is ready."""
    for receiver in receivers:
        receiver.start()
    host.run(_ready(*receivers), timeout=STARTUP_TIMEOUT + 5)


def stop_receivers(host: FakeHost, *receivers: ReceiverProcess) -> None:
    """SIGTERM each (SIGKILL if it will not stop, or the loop is gone): none left running."""
    try:
        for receiver in receivers:
            if receiver.process is not None:
                host.run(receiver.terminate(), timeout=STOP_TIMEOUT + 5)
    finally:
        for receiver in receivers:
            receiver.kill()  # a no-op once it exited


@contextmanager
def serving(workdir: Path, people: tuple[str, ...] = ("kim", "lee")) -> Iterator[Stack]:
    """Fake JIRA and Slack in a thread, a rules file with kim on call for backend now, console
    passwords for ``people`` (the real ``receiver passwd``), then ``receiver serve`` on a
    SQLite file with RECEIVER_UI_SECRET; everything stopped on leaving."""
    with ExitStack() as stack:
        host = FakeHost()
        host.start()
        stack.callback(host.stop)

        async def start() -> tuple[FakeJira, FakeSlack]:
            jira, slack = fake_jira(), fake_slack()
            await jira.start()
            await slack.start()
            return jira, slack

        async def stop(jira: FakeJira, slack: FakeSlack) -> None:
            await jira.stop()
            await slack.stop()

        jira, slack = host.run(start())
        stack.callback(lambda: host.run(stop(jira, slack)))
        rules = rules_file(workdir, datetime.now(UTC))
        database_url = f"sqlite:///{workdir}/receiver.db"
        for person in people:
            set_password(person, rules, database_url)
        receiver = ReceiverProcess(
            "console", database_url, jira, slack, workdir, rules=str(rules), ui_secret=SECRET
        )
        stack.callback(lambda: stop_receivers(host, receiver))
        start_receivers(host, receiver)
        yield Stack(host, jira, slack, receiver, rules, workdir)


def screenshot_folder() -> Path:
    """``$RECEIVER_SCREENSHOTS``, else ``<repo>/artifacts/console-screenshots``; made."""
    given = os.environ.get("RECEIVER_SCREENSHOTS")
    folder = Path(given) if given else REPO_ROOT / "artifacts" / "console-screenshots"
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def korean_font_missing() -> str:
    """A note for the screenshots' reader when no font can show Korean (they show boxes)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return ""
    found = subprocess.run([fc_list, ":lang=ko", "family"], capture_output=True, text=True,
                           timeout=PASSWD_TIMEOUT, check=False)  # fmt: skip
    if found.stdout.strip():
        return ""
    return " (no Korean font installed: Korean text shows as boxes; apt-get install fonts-nanum)"


def announce(config: pytest.Config, line: str) -> None:
    """Print a line to the terminal even under pytest's output capture (plain ``-q``)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        print(f"\n{line}", flush=True)


class Screens:
    """Screenshots of the console's pages, one PNG per page, named after it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def shot(self, driver: WebDriver, name: str) -> Path:
        """The whole page (up to MAX_SHOT_HEIGHT) as ``<name>.png``; checked to be a PNG of a
        rendered page, not an empty one."""
        path = self.folder / f"{name}.png"
        path.unlink(missing_ok=True)
        path.write_bytes(_page_png(driver))
        check_png(path)
        return path


def _page_png(driver: WebDriver) -> bytes:
    if isinstance(driver, ChromiumDriver):
        width, height = driver.execute_script(
            "const e = document.documentElement;"
            "return [Math.max(e.scrollWidth, window.innerWidth),"
            " Math.max(e.scrollHeight, window.innerHeight)]"
        )
        clip = {"x": 0, "y": 0, "width": width, "height": min(height, MAX_SHOT_HEIGHT), "scale": 1}
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        return base64.b64decode(shot["data"])
    return driver.get_screenshot_as_png()


def check_png(path: Path) -> tuple[int, int]:
    """A PNG file of a plausible page: its signature, a real size, its width and height."""
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) >= MIN_PNG_BYTES, f"{path} is only {len(data)} bytes"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    assert width >= 300 and height >= 300, f"{path} is {width}x{height}"
    return width, height
