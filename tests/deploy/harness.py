"""The shipped deploy files, the Prometheus tools, and Prometheus/Alertmanager processes
that tests start from configurations derived from the shipped ones.

Everything listens on 127.0.0.1 at free ports and lives in the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import yaml

from tests.e2e.harness import ManagedProcess, alertmanager_binary, clean_env, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER_CONFIG = PROMETHEUS_DIR / "alertmanager.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
DASHBOARD = REPO_ROOT / "grafana" / "dashboards" / "alert-response.json"

TOOL_TIMEOUT = 60.0
T = TypeVar("T")


def load_yaml(path: Path) -> Any:
    """A YAML file's content."""
    return yaml.safe_load(path.read_text())


def binary(name: str, env_var: str) -> str:
    """An executable from ``$env_var`` or PATH; fails (never skips) the test without it."""
    found = os.environ.get(env_var) or shutil.which(name)
    if not found:
        pytest.fail(
            f"{name} not found (set {env_var} or install the Debian packages prometheus "
            "and prometheus-alertmanager)"
        )
    return found


def prometheus_binary() -> str:
    """The Prometheus server."""
    return binary("prometheus", "PROMETHEUS_BIN")


def promtool_binary() -> str:
    """promtool, shipped with Prometheus."""
    return binary("promtool", "PROMTOOL_BIN")


def amtool_binary() -> str:
    """amtool, shipped with Alertmanager."""
    return binary("amtool", "AMTOOL_BIN")


def alertmanager() -> str:
    """The Alertmanager server (Debian calls it prometheus-alertmanager)."""
    found = alertmanager_binary()
    if found is None:
        pytest.fail("Alertmanager not found: install the Debian package prometheus-alertmanager")
    return found


def run_tool(argv: Sequence[str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """Run a checker to completion (bounded); the caller asserts on code and output."""
    return subprocess.run(
        list(argv),
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )


def tool_output(result: subprocess.CompletedProcess[str]) -> str:
    """Both streams of a finished tool, for assertion messages."""
    return (
        f"exit {result.returncode}\n--- stdout ---\n{result.stdout}\n"
        f"--- stderr ---\n{result.stderr}"
    )


def rule_files() -> list[Path]:
    """The shipped alert rule files."""
    return sorted(RULES_DIR.glob("*.yml"))


def alerting_rules() -> list[dict[str, Any]]:
    """Every alerting rule of every shipped rule file."""
    return [
        rule
        for path in rule_files()
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def heartbeat_alerts() -> dict[str, str]:
    """Alert name -> the heartbeat of the shipped routing_rules.yaml its label set (as its
    rule sets it) feeds: signs of life such as Watchdog, which open no incident."""
    from receiver.config import load_rules
    from receiver.domain.heartbeats import matching

    cfg = load_rules(REPO_ROOT / "routing_rules.yaml")
    found: dict[str, str] = {}
    for rule in alerting_rules():
        name = matching(cfg, {**rule.get("labels", {}), "alertname": rule["alert"]})
        if name is not None:
            found[rule["alert"]] = name
    return found


def rule_test_files() -> list[Path]:
    """The promtool unit test files."""
    return sorted(RULE_TESTS_DIR.glob("*.test.yml"))


def receiver_metric_names() -> set[str]:
    """Every series name the receiver exports (``_total``, ``_bucket``... included)."""
    from receiver.metrics import Metrics

    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "gauge": ("",),
    }
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def receiver_metrics_used(expr: str) -> set[str]:
    """The receiver_* series names a PromQL expression reads."""
    return set(re.findall(r"\breceiver_[a-z_]+", expr))


def derived_prometheus_config(
    jobs: Mapping[str, Sequence[str]],
    alertmanager_url: str | None = None,
    with_rules: bool = False,
    interval: str = "1s",
) -> dict[str, Any]:
    """The shipped prometheus.yml for a test: only ``jobs`` (job name -> targets, replacing
    the shipped targets, keeping their labels), every interval ``interval``, and, with
    ``with_rules``, the shipped rule files at their absolute paths."""
    config: dict[str, Any] = copy.deepcopy(load_yaml(PROMETHEUS_CONFIG))
    config["global"].update(
        scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval
    )
    shipped = {job["job_name"]: job for job in config["scrape_configs"]}
    unknown = set(jobs) - set(shipped)
    assert not unknown, f"jobs not in prometheus.yml: {sorted(unknown)}"
    scrape_configs = []
    for name, targets in jobs.items():
        job = shipped[name]
        labels: dict[str, str] = {}
        for static in job.get("static_configs", []):
            labels.update(static.get("labels", {}))
        static_config: dict[str, Any] = {"targets": list(targets)}
        if labels:
            static_config["labels"] = labels
        job["static_configs"] = [static_config]
        scrape_configs.append(job)
    config["scrape_configs"] = scrape_configs
    if with_rules:
        config["rule_files"] = [str(PROMETHEUS_DIR / pattern) for pattern in config["rule_files"]]
    else:
        config.pop("rule_files", None)
    if alertmanager_url is None:
        config.pop("alerting", None)
    else:
        host = alertmanager_url.removeprefix("http://")
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [host]}]}]}
    return config


def derived_alertmanager_config(webhook_url: str, token_file: Path) -> dict[str, Any]:
    """The shipped alertmanager.yml pointed at a test receiver, with 1s group timings."""
    config: dict[str, Any] = copy.deepcopy(load_yaml(ALERTMANAGER_CONFIG))
    config["route"].update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
            hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    return config


async def eventually(
    fetch: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    what: str,
    logs: Callable[[], str],
    within: float = 60.0,
    interval: float = 0.25,
) -> T:
    """Await fetch() until done(result) holds; fail with the last result and the logs."""
    deadline = time.monotonic() + within
    while True:
        result = await fetch()
        if done(result):
            return result
        if time.monotonic() >= deadline:
            shown = json.dumps(result, indent=1, default=str)[:3000]
            pytest.fail(f"timed out after {within:.0f}s waiting for {what}\n{shown}\n{logs()}")
        await asyncio.sleep(interval)


@dataclass
class Prometheus:
    """A running Prometheus and its HTTP API."""

    url: str
    proc: ManagedProcess
    session: aiohttp.ClientSession

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """The result of an instant query at now; fails on a query error."""
        async with self.session.get(self.url + "/api/v1/query", params={"query": expr}) as answer:
            body = await answer.json()
        if answer.status != 200 or body.get("status") != "success":
            pytest.fail(f"query {expr!r} failed: HTTP {answer.status} {body}\n{self.proc.logs()}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def alerts(self) -> list[dict[str, Any]]:
        """The alerts its rules hold (pending and firing)."""
        async with self.session.get(self.url + "/api/v1/alerts") as answer:
            body = await answer.json()
        alerts: list[dict[str, Any]] = body["data"]["alerts"]
        return alerts

    async def scraped(self, job: str) -> bool:
        """Whether the job's targets have been scraped successfully."""
        return bool(await self.query(f'up{{job="{job}"}} == 1'))


@asynccontextmanager
async def running_prometheus(
    config: dict[str, Any], tmp_path: Path, session: aiohttp.ClientSession
) -> AsyncIterator[Prometheus]:
    """Prometheus on a free port with ``config``; stopped on exit. Alerts are re-sent every
    second, not every minute: those that fire before Prometheus has found its Alertmanager
    (Watchdog, at the first evaluation) are dropped, and would arrive a minute late."""
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    argv = [
        prometheus_binary(),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--rules.alert.resend-delay=1s",
        "--log.level=debug",
    ]
    proc = ManagedProcess("prometheus", argv, clean_env(), cwd=tmp_path, log_dir=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(proc.wait_ready, url + "/-/ready")
        yield Prometheus(url, proc, session)
    finally:
        await asyncio.to_thread(proc.stop)


@asynccontextmanager
async def running_alertmanager(
    config: dict[str, Any], tmp_path: Path, port: int | None = None
) -> AsyncIterator[str]:
    """Alertmanager on ``port`` (default a free one) with ``config`` and no clustering;
    yields its URL."""
    config_file = tmp_path / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = port or free_port()
    argv = [
        alertmanager(),
        f"--config.file={config_file}",
        f"--storage.path={tmp_path / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=debug",
    ]
    proc = ManagedProcess("alertmanager", argv, clean_env(), cwd=tmp_path, log_dir=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(proc.wait_ready, url + "/-/ready")
        yield url
    finally:
        await asyncio.to_thread(proc.stop)


# --- the dashboard ----------------------------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    """One query of one dashboard panel."""

    panel: str
    ref_id: str
    expr: str


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside rows included, rows themselves excluded."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every query of every panel, in dashboard order."""
    return [
        PanelQuery(panel["title"], target["refId"], target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def variable_values(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Each template variable's current value; "All" becomes its allValue."""
    values: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        current = variable.get("current", {}).get("value")
        if isinstance(current, list):
            current = current[0] if len(current) == 1 else "|".join(current)
        if current == "$__all":
            current = variable["allValue"]
        values[variable["name"]] = str(current)
    return values


def substitute(expr: str, dashboard: Mapping[str, Any], builtins: Mapping[str, str]) -> str:
    """The query Grafana would send: builtins (``$__rate_interval``...) and the template
    variables' current values in place of ``$name`` and ``${name}``."""
    values = {**variable_values(dashboard), **builtins}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise AssertionError(f"unknown variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)
