"""Processes, HTTP and polling helpers for the end-to-end tests."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES_PATH = REPO_ROOT / "routing_rules.yaml"

STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
REQUEST_TIMEOUT = 5.0
LOG_TAIL_CHARS = 4000

T = TypeVar("T")

# Everything is on 127.0.0.1: never send it through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Response:
    """A finished HTTP exchange; 4xx and 5xx answers are returned, not raised."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> Response:
    """Send one request; a non-bytes body is sent as JSON."""
    all_headers = dict(headers or {})
    data: bytes | None = None
    if isinstance(body, bytes):
        data = body
    elif body is not None:
        data = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            return Response(answer.status, dict(answer.headers), answer.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, dict(error.headers), error.read())


def bearer(token: str) -> dict[str, str]:
    """An Authorization header carrying a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    """An Authorization header carrying basic credentials."""
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """The end of a log file, for failure messages."""
    if not path.exists():
        return "<no output>"
    text = path.read_text(errors="replace")
    return text[-chars:] if text else "<empty>"


class ManagedProcess:
    """A subprocess whose stdout and stderr go to files, so a chatty child never blocks."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log_dir: Path
    ) -> None:
        self.name = name
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )

    def output(self) -> str:
        """Everything the process has written so far, both streams."""
        return "".join(p.read_text(errors="replace") for p in (self.stdout_path, self.stderr_path))

    def logs(self) -> str:
        """Exit state and the tail of both output streams."""
        state = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        return (
            f"--- {self.name} ({state}) stderr ---\n{tail(self.stderr_path)}\n"
            f"--- {self.name} stdout ---\n{tail(self.stdout_path)}"
        )

    def wait_ready(self, url: str, timeout: float = STARTUP_TIMEOUT) -> None:
        """Poll url until it answers 200; fail with the logs if the process dies or stalls."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited before it was ready\n{self.logs()}")
            try:
                answer = http("GET", url, timeout=1.0)
            except OSError as error:
                last = repr(error)
            else:
                if answer.status == 200:
                    return
                last = f"HTTP {answer.status}: {answer.body[:200]!r}"
            time.sleep(0.1)
        pytest.fail(f"{self.name} not ready at {url} after {timeout:.0f}s ({last})\n{self.logs()}")

    def stop(self) -> None:
        """Terminate, give it a few seconds to shut down cleanly, then kill."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)


def poll(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    what: str,
    logs: Callable[[], str],
    timeout: float = 30.0,
    interval: float = 0.2,
) -> T:
    """Call fetch until done(result) holds; fail with the last result and the logs."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if done(result):
            return result
        if time.monotonic() >= deadline:
            shown = json.dumps(result, indent=1, default=str)[:LOG_TAIL_CHARS]
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{shown}\n{logs()}")
        time.sleep(interval)


@dataclass
class Receiver:
    """A running receiver and the secrets it was started with."""

    url: str
    webhook_token: str
    api_token: str
    proc: ManagedProcess

    def api_get(self, path: str) -> Any:
        """GET an API path with the API token; fail unless it answers 200."""
        answer = http("GET", self.url + path, headers=bearer(self.api_token))
        if answer.status != 200:
            pytest.fail(f"GET {path} answered {answer.status}: {answer.body[:500]!r}")
        return answer.json()

    def incidents(self) -> list[dict[str, Any]]:
        """Every incident, as the list endpoint returns them."""
        listed: list[dict[str, Any]] = self.api_get("/api/v1/incidents")["incidents"]
        return listed

    def post_webhook(self, payload: Any, headers: dict[str, str]) -> Response:
        """POST a notification to the webhook with the given credentials."""
        return http("POST", self.url + "/webhook", body=payload, headers=headers)

    def assert_secrets_not_logged(self) -> None:
        """Neither token appears anywhere in the receiver's output."""
        output = self.proc.output()
        assert output, "the receiver logged nothing"
        assert self.webhook_token not in output, "webhook token in the logs"
        assert self.api_token not in output, "API token in the logs"

    def metrics(self) -> str:
        """The /metrics page."""
        answer = http("GET", self.url + "/metrics")
        assert answer.status == 200, answer.body[:500]
        return answer.body.decode()


@dataclass
class Alertmanager:
    """A running Alertmanager whose only route is the receiver's webhook."""

    url: str
    proc: ManagedProcess

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Push alerts the way Prometheus does."""
        answer = http("POST", self.url + "/api/v2/alerts", body=alerts)
        assert answer.status == 200, f"{answer.status}: {answer.body[:500]!r}"

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds, with their fingerprints."""
        answer = http("GET", self.url + "/api/v2/alerts")
        assert answer.status == 200, f"{answer.status}: {answer.body[:500]!r}"
        held: list[dict[str, Any]] = answer.json()
        return held


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without inherited RECEIVER_* settings, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    env.update(extra)
    return env


def alertmanager_binary() -> str | None:
    """The Alertmanager executable: $ALERTMANAGER_BIN, or the Debian or upstream name."""
    return (
        os.environ.get("ALERTMANAGER_BIN")
        or shutil.which("prometheus-alertmanager")
        or shutil.which("alertmanager")
    )
