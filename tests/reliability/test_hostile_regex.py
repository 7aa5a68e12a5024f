"""A rules regex that backtracks catastrophically elsewhere cannot hold a real receiver."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.helpers import SHIPPED_RULES, alert, webhook
from tests.reliability.harness import REPO_ROOT, ReceiverProcess, post_webhook

HOSTILE_RULE = """\
  - name: hostile-pattern
    matchers: ['alertname=~"(a+)+$"']
    severity: P3
    category: network
"""
# Each health check must answer within this. A backtracking engine never answers at all
# on this input (2^50 steps), so the bound only has to tell "answered" from "stuck"; it is
# generous because a loaded test machine may pause a process for a good fraction of it.
HEALTH_BOUND = 2.0
HEALTH_CHECKS = 10


def hostile_rules(tmp_path: Path) -> Path:
    """The shipped rules plus, last (so every earlier rule is tried first), the hostile one."""
    text = SHIPPED_RULES.read_text(encoding="utf-8")
    assert text.rstrip().splitlines()[-1].startswith("    category:"), "rules: must come last"
    path = tmp_path / "routing_rules.yaml"
    path.write_text(text.rstrip("\n") + "\n" + HOSTILE_RULE, encoding="utf-8")
    return path


async def test_catastrophic_regex_leaves_webhook_and_health_answering(
    tmp_path: Path, sqlite_url: str, jira: FakeJira, slack: FakeSlack
) -> None:
    receiver = ReceiverProcess(
        "hostile", sqlite_url, jira, slack, tmp_path, rules=str(hostile_rules(tmp_path))
    )
    receiver.start()
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await receiver.ready(session)

            async def health() -> list[tuple[int, float]]:
                answers = []
                for _ in range(HEALTH_CHECKS):
                    started = time.monotonic()
                    try:
                        async with session.get(
                            receiver.url + "/healthz",
                            timeout=aiohttp.ClientTimeout(total=HEALTH_BOUND * 2),
                        ) as answer:
                            status = answer.status
                    except (aiohttp.ClientError, TimeoutError):
                        status = 0
                    answers.append((status, time.monotonic() - started))
                    if status == 0:
                        break  # stuck: the assertion below fails without waiting on
                    await asyncio.sleep(0.05)
                return answers

            body = webhook(alert(alertname="a" * 50 + "b"))
            status, checks = await asyncio.gather(
                post_webhook(session, receiver.url, body), health()
            )
            assert status == 200, receiver.log_tail()
            for answered, took in checks:
                assert answered == 200 and took < HEALTH_BOUND, (checks, receiver.log_tail())
            assert await post_webhook(session, receiver.url, webhook(alert())) == 200
    finally:
        receiver.kill()


def test_check_config_refuses_a_backreference_with_file_and_line(tmp_path: Path) -> None:
    path = hostile_rules(tmp_path)
    text = path.read_text(encoding="utf-8").replace("(a+)+$", "(a+)\\\\1")
    path.write_text(text, encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "(a+)" in row)
    rules = text[text.index("\nrules:") :].count("\n  - name:")
    done = subprocess.run(
        [sys.executable, "-m", "receiver", "check-config", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert f"{path}:{line}: rules[{rules - 1}].matchers[0]: invalid regex" in output, output
    assert "\\1" in output
