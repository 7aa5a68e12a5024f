"""The shipped Prometheus and Alertmanager files pass promtool and amtool, and every alert
has unit tests that show it firing and staying quiet (a heartbeat's always-firing alert,
such as Watchdog, only firing)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.deploy.harness import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    RULES_DIR,
    alerting_rules,
    amtool_binary,
    heartbeat_alerts,
    load_yaml,
    promtool_binary,
    receiver_metric_names,
    receiver_metrics_used,
    rule_files,
    rule_test_files,
    run_tool,
    tool_output,
)

pytestmark = pytest.mark.timeout(90)

SEVERITIES = {"critical", "warning"}
HEARTBEAT_SEVERITY = "none"  # signs of life: no severity_from or inhibit rule reads them
ANNOTATIONS = {"summary", "description", "runbook_url"}


def test_promtool_check_config() -> None:
    """prometheus.yml is valid and its rule files (relative to it) load."""
    result = run_tool([promtool_binary(), "check", "config", str(PROMETHEUS_CONFIG)])
    assert result.returncode == 0, tool_output(result)
    assert f"{len(rule_files())} rule files found" in result.stdout, tool_output(result)


def test_promtool_check_rules() -> None:
    result = run_tool([promtool_binary(), "check", "rules", *map(str, rule_files())])
    assert result.returncode == 0, tool_output(result)
    assert result.stdout.count("SUCCESS") == len(rule_files()), tool_output(result)


def test_promtool_test_rules() -> None:
    """The unit tests in prometheus/tests pass."""
    tests = rule_test_files()
    assert tests, "no promtool test files"
    result = run_tool([promtool_binary(), "test", "rules", *map(str, tests)])
    assert result.returncode == 0, tool_output(result)
    assert result.stdout.count("SUCCESS") == len(tests), tool_output(result)


def test_promtool_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    """With one threshold changed, the unit tests fail: they pin the behaviour."""
    shutil.copytree(PROMETHEUS_DIR, tmp_path / "prometheus")
    trading = tmp_path / "prometheus" / "rules" / "trading.yml"
    original = "increase(kis_token_refresh_failures_total[15m])) > 0"
    text = trading.read_text()
    assert original in text
    trading.write_text(text.replace(original, original[:-1] + "5"))
    test_file = tmp_path / "prometheus" / "tests" / "trading.test.yml"
    result = run_tool([promtool_binary(), "test", "rules", str(test_file)])
    assert result.returncode != 0, tool_output(result)
    assert "KISTokenRefreshFailed" in result.stdout + result.stderr, tool_output(result)


def test_amtool_check_config() -> None:
    result = run_tool([amtool_binary(), "check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, tool_output(result)
    assert "SUCCESS" in result.stdout, tool_output(result)


def test_prometheus_config_loads_every_rule_file_and_points_at_the_stack() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    loaded = {p for pattern in config["rule_files"] for p in PROMETHEUS_DIR.glob(pattern)}
    assert loaded == set(RULES_DIR.glob("*.yml"))
    [alertmanagers] = config["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"] == ["alertmanager:9093"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["receiver"]["static_configs"][0]["targets"] == ["receiver:9095"]
    for name in ("order-api", "trading-engine", "kis-gateway", "account-api", "market-data"):
        assert name in jobs, f"no scrape job {name}"


def test_every_alert_is_documented_and_labelled() -> None:
    """summary, description and runbook_url on every alert; a severity the receiver's
    severity_from maps (severity none on a heartbeat's sign of life); no group interval
    (tests set the evaluation interval)."""
    for path in rule_files():
        for group in load_yaml(path)["groups"]:
            assert "interval" not in group, f"{path.name}: {group['name']} sets its own interval"
    heartbeats = heartbeat_alerts()
    assert "Watchdog" in heartbeats, "Watchdog feeds no heartbeat of routing_rules.yaml"
    for rule in alerting_rules():
        name = rule["alert"]
        assert set(rule.get("annotations", {})) >= ANNOTATIONS, name
        assert re.fullmatch(r"https://\S+", rule["annotations"]["runbook_url"]), name
        severity = rule.get("labels", {}).get("severity")
        if name in heartbeats:
            assert severity == HEARTBEAT_SEVERITY, name
        else:
            assert severity in SEVERITIES, name


def test_every_alert_has_unit_tests_that_fire_it_and_keep_it_quiet() -> None:
    """Each (alertname, severity) fires in some promtool test, and each alertname has a
    case where it must stay quiet, except a heartbeat's alert, which always fires."""
    fired: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for path in rule_test_files():
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                if not case.get("exp_alerts"):
                    quiet.add(case["alertname"])
                for alert in case.get("exp_alerts") or []:
                    fired.add((case["alertname"], alert["exp_labels"]["severity"]))
    shipped = {(rule["alert"], rule["labels"]["severity"]) for rule in alerting_rules()}
    assert shipped - fired == set(), "alerts never shown firing"
    assert fired - shipped == set(), "tests of alerts that do not exist"
    always_firing = set(heartbeat_alerts())
    assert {name for name, _ in shipped} - always_firing - quiet == set(), (
        "alerts never shown quiet"
    )
    assert always_firing & quiet == set(), "a heartbeat's alert shown quiet"


def test_receiver_alerts_read_metrics_the_receiver_exports() -> None:
    exported = receiver_metric_names()
    used = {name for rule in alerting_rules() for name in receiver_metrics_used(rule["expr"])}
    assert used, "no rule reads receiver metrics"
    assert used - exported == set(), f"not exported by the receiver: {sorted(used - exported)}"
