"""Receivers as real processes against fake JIRA and Slack, a load driver, and the checks.

Everything here talks to 127.0.0.1 only. The fakes run on the test's event loop, so the
test drives load with aiohttp while the fakes answer the receivers' notifiers.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from receiver.config import load_rules
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.helpers import SHIPPED_RULES, alert, resolved, webhook

REPO_ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_TOKEN = "wh-reliability-token"
API_TOKEN = "api-reliability-token"
JIRA_USER, JIRA_TOKEN = "receiver-bot", "jira-api-token"
SLACK_TOKEN = "xoxb-reliability"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
LOG_TAIL_CHARS = 3000

CFG = load_rules(SHIPPED_RULES)
SLACK_USERS = {p.slack_id: pid for pid, p in CFG.people.items() if p.slack_id}
SLACK_CHANNELS = [
    CFG.channels.alerts,
    CFG.channels.announce,
    *(t.channel for t in CFG.teams.values()),
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fake_jira() -> FakeJira:
    """The JIRA the receivers file issues in."""
    return FakeJira(user=JIRA_USER, token=JIRA_TOKEN)


def fake_slack() -> FakeSlack:
    """The Slack workspace the receivers post and page in."""
    return FakeSlack(token=SLACK_TOKEN, users=SLACK_USERS, channels=SLACK_CHANNELS)


class ReceiverProcess:
    """``python -m receiver serve`` in its own session, logging to a file."""

    def __init__(
        self,
        name: str,
        database_url: str,
        jira: FakeJira,
        slack: FakeSlack,
        log_dir: Path,
        **settings: str,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        # No setting of the caller's leaks in; the shifted clock's (RECEIVER_TEST_CLOCK*) is
        # no setting, and moves the receiver's clock with the test's.
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("RECEIVER_") or k.startswith("RECEIVER_TEST_CLOCK")
        }
        self.env.update(
            RECEIVER_RULES=str(SHIPPED_RULES),
            RECEIVER_HOST="127.0.0.1",
            RECEIVER_PORT=str(self.port),
            RECEIVER_DATABASE_URL=database_url,
            RECEIVER_WEBHOOK_TOKEN=WEBHOOK_TOKEN,
            RECEIVER_API_TOKEN=API_TOKEN,
            RECEIVER_JIRA_URL=jira.url,
            RECEIVER_JIRA_USER=JIRA_USER,
            RECEIVER_JIRA_TOKEN=JIRA_TOKEN,
            RECEIVER_SLACK_TOKEN=SLACK_TOKEN,
            RECEIVER_SLACK_API_URL=slack.url,
            RECEIVER_OUTBOX_POLL_SECONDS="0.2",
            RECEIVER_LOG_LEVEL="warning",
        )
        self.env.update({f"RECEIVER_{k.upper()}": v for k, v in settings.items()})
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start (or restart) the process; ``ready`` waits for it."""
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "receiver", "serve"],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def ready(self, session: aiohttp.ClientSession) -> None:
        """Wait until /readyz answers 200; fail with the log if it dies or stalls."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited at startup\n{self.log_tail()}")
            try:
                async with session.get(self.url + "/readyz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} not ready after {STARTUP_TIMEOUT}s\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT)

    async def terminate(self) -> int:
        """SIGTERM and wait for the exit code (SIGKILL if it will not stop)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            for _ in range(int(STOP_TIMEOUT / 0.05)):
                if self.process.poll() is not None or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.05)
            if self.process.poll() is None:
                self.kill()
                raise AssertionError(f"{self.name} ignored SIGTERM\n{self.log_tail()}")
        return self.process.returncode

    def log_tail(self) -> str:
        """The end of the process's output, for failure messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.name} log ---\n{text[-LOG_TAIL_CHARS:]}"


def service_alert(n: int, run: str, status: str = "firing") -> dict[str, Any]:
    """The n-th alert of a run: its own service, so its own P1 incident (page step 0)."""
    starts = datetime.now(UTC).replace(microsecond=0)
    firing = alert(
        starts=starts,
        alertname="HighResponseTime",
        service=f"svc-{run}-{n:05d}",
        severity="critical",
        annotations={"summary": f"p99 above 300ms on svc-{run}-{n:05d}"},
    )
    return firing if status == "firing" else resolved(firing, starts)


def firing_webhook(n: int, run: str) -> dict[str, Any]:
    """One Alertmanager notification opening incident n."""
    return webhook(service_alert(n, run))


def resolved_webhook(n: int, run: str) -> dict[str, Any]:
    """The notification resolving incident n (same fingerprint and start)."""
    firing = service_alert(n, run)
    return webhook({**service_alert(n, run, "resolved"), "startsAt": firing["startsAt"]})


@dataclass
class Sent:
    """What the load driver got back: per payload index, every status seen (0 = no answer)."""

    statuses: dict[int, list[int]] = field(default_factory=dict)

    def record(self, index: int, status: int) -> None:
        self.statuses.setdefault(index, []).append(status)

    def acknowledged(self) -> set[int]:
        """Payloads that got a 200 from at least one receiver."""
        return {i for i, seen in self.statuses.items() if 200 in seen}

    def counts(self) -> Counter[int]:
        return Counter(s for seen in self.statuses.values() for s in seen)


async def post_webhook(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> int:
    """POST one notification; 0 when there was no HTTP answer (refused, reset, timeout)."""
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    try:
        async with session.post(url + "/webhook", json=body, headers=headers) as answer:
            await answer.read()
            return answer.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return 0


async def drive(
    session: aiohttp.ClientSession,
    urls: Sequence[str] | Any,
    bodies: Sequence[dict[str, Any]],
    sent: Sent,
    concurrency: int = 16,
    offset: int = 0,
) -> None:
    """Send every body to every url at once (as an HA Alertmanager pair does); ``urls`` may
    be a callable returning the current list, so a test can swap receivers under load."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(bodies)):
        queue.put_nowait(i)

    async def one_at_a_time() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            targets = urls() if callable(urls) else urls
            statuses = await asyncio.gather(*(post_webhook(session, u, bodies[i]) for u in targets))
            for status in statuses:
                sent.record(offset + i, status)

    await asyncio.gather(*(one_at_a_time() for _ in range(concurrency)))


async def api_get(session: aiohttp.ClientSession, url: str, path: str) -> Any:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with session.get(url + path, headers=headers) as answer:
        assert answer.status == 200, f"GET {path}: {answer.status} {await answer.text()}"
        return await answer.json()


async def api_post(
    session: aiohttp.ClientSession, url: str, path: str, body: dict[str, Any]
) -> tuple[int, Any]:
    """POST JSON to an API path with the API token (an ack, a resolve): status and answer."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with session.post(url + path, json=body, headers=headers) as answer:
        return answer.status, await answer.json()


async def all_incidents(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    """Every incident, paging through the list endpoint."""
    found: list[dict[str, Any]] = []
    path = "/api/v1/incidents?limit=500"
    while True:
        page = await api_get(session, url, path)
        found.extend(page["incidents"])
        if "next_before" not in page:
            return found
        path = f"/api/v1/incidents?limit=500&before={page['next_before']}"


async def deliveries(session: aiohttp.ClientSession, url: str, status: str) -> list[Any]:
    listed: list[Any] = (
        await api_get(session, url, f"/api/v1/deliveries?status={status}&limit=500")
    )["deliveries"]
    return listed


async def settle(
    session: aiohttp.ClientSession, url: str, within: float = 120.0, logs: str = ""
) -> None:
    """Wait until no delivery is pending, and check none was dead-lettered."""
    deadline = time.monotonic() + within
    while True:
        pending = await deliveries(session, url, "pending")
        if not pending:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} deliveries still pending\n{pending[:5]}\n{logs}")
        await asyncio.sleep(0.25)
    dead = await deliveries(session, url, "dead")
    assert dead == [], f"dead-lettered deliveries: {dead[:5]}"


def service_of(incident: dict[str, Any]) -> str:
    return str(incident["group_labels"]["service"])


# receiver-incident-<installation>-<incident id>, receiver-postmortem-<installation>-<id>
RECEIVER_LABEL = re.compile(r"receiver-(incident|postmortem)-([0-9a-f]{12})-([0-9]+)")


def label_of(issue: dict[str, Any]) -> str:
    """The receiver's incident label of a fake JIRA issue."""
    labels: Iterable[str] = issue["fields"]["labels"]
    [label] = [x for x in labels if x.startswith("receiver-incident-")]
    return label


def incident_of_label(label: str) -> int:
    """The incident id a receiver label names."""
    found = RECEIVER_LABEL.fullmatch(label)
    assert found is not None, f"not a receiver label: {label}"
    return int(found[3])


def installations(jira: FakeJira) -> set[str]:
    """The installation ids the receiver labels of every issue carry."""
    return {
        found[2]
        for issue in jira.issues.values()
        for label in issue["fields"]["labels"]
        if (found := RECEIVER_LABEL.fullmatch(label))
    }


def check_once_each(
    incidents: list[dict[str, Any]], expected_services: set[str], jira: FakeJira, slack: FakeSlack
) -> None:
    """One incident per service, one JIRA issue and one create call per incident, one page
    (DM) and one channel announcement per incident."""
    services = Counter(service_of(i) for i in incidents)
    doubled = {s: n for s, n in services.items() if n > 1}
    assert not doubled, f"services with more than one incident: {list(doubled.items())[:5]}"
    assert set(services) == expected_services, (
        f"missing {sorted(expected_services - set(services))[:5]}, "
        f"unexpected {sorted(set(services) - expected_services)[:5]}"
    )
    issues = [i for i in jira.issues.values() if i["fields"]["issuetype"] == "Incident"]
    by_label = Counter(label_of(issue) for issue in issues)
    assert max(by_label.values(), default=0) <= 1, "an incident has two JIRA issues"
    assert len(installations(jira)) == 1, "replicas labelled as different installations"
    assert {incident_of_label(x) for x in by_label} == {i["id"] for i in incidents}
    # Postmortems: exactly one per resolved incident (all incidents here are P1).
    resolved = {i["id"] for i in incidents if i["status"] == "resolved"}
    postmortems = Counter(
        incident_of_label(label)
        for issue in jira.issues.values()
        if issue["fields"]["issuetype"] == "Task"
        for label in issue["fields"]["labels"]
        if label.startswith("receiver-postmortem-")
    )
    assert postmortems == Counter(dict.fromkeys(resolved, 1)), "not one postmortem each"
    creates = [r for r in jira.requests if r.method == "POST" and r.path.endswith("/issue")]
    assert len(creates) == len(incidents) + len(resolved), f"{len(creates)} create calls"
    # Announcements for beta testers: one opening per incident, one per resolve.
    announced = Counter(
        "resolved" if m["text"].startswith("해결:") else "opened"  # in Korean, as shipped
        for m in slack.posted_to(CFG.channels.announce)
    )
    expected = Counter({"opened": len(incidents)})
    if resolved:
        expected["resolved"] = len(resolved)
    assert announced == expected, announced
    for incident in incidents:
        assert incident["jira_key"], f"incident {incident['id']} has no JIRA key"
    # Pages: one DM per incident to its on-call engineer; one post in the alerts channel.
    pattern = re.compile(r"svc-[a-z0-9]+-\d{5}")

    def per_service(messages: Iterable[dict[str, Any]]) -> Counter[str]:
        return Counter(m for msg in messages for m in set(pattern.findall(str(msg["text"]))))

    once = Counter(dict.fromkeys(expected_services, 1))
    dms = [m for m in slack.messages if m["is_dm"]]
    pages = per_service(dms)
    assert pages == once, f"pages per service: {_diff(pages, once)}"
    opened = [m for m in slack.posted_to(CFG.channels.alerts) if not m["thread_ts"]]
    posts = per_service(opened)
    assert posts == once, f"alerts-channel posts per service: {_diff(posts, once)}"


def _diff(seen: Counter[str], expected: Counter[str]) -> str:
    wrong = {k: seen.get(k, 0) for k in set(seen) | set(expected) if seen.get(k) != expected.get(k)}
    return f"{len(wrong)} wrong, e.g. {sorted(wrong.items())[:5]}"
