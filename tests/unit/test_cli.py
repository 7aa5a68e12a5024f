"""The ``receiver`` command line: check-config, route-test and oncall."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from receiver.cli import main

SHIPPED = Path(__file__).resolve().parents[2] / "routing_rules.yaml"
THURSDAY_10 = "2026-11-26T10:00:00+09:00"  # business hours in Seoul
THURSDAY_22 = "2026-11-26T22:00:00+09:00"  # off hours in Seoul
FRIDAY_22 = "2026-11-27T22:00:00+09:00"


def spec(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pages with the fields SPEC names (route-test adds the channels each tries)."""
    return [{k: p[k] for k in ("person", "target", "at", "deferred")} for p in pages]


def route_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(["route-test", "--json", "--rules", str(SHIPPED), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 1, out
    report = json.loads(lines[0])
    assert isinstance(report, dict)
    return report


# --- check-config ---------------------------------------------------------------------------


def test_check_config_shipped(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check-config", str(SHIPPED)])
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 1
    assert "OK" in lines[0]
    assert lines[0].startswith(f"{SHIPPED}: OK: ")
    assert "4 severities, 7 categories, 6 teams, 6 rotations, 15 people" in lines[0]


def test_check_config_default_path_from_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECEIVER_RULES", str(SHIPPED))
    assert main(["check-config"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith(f"{SHIPPED}: OK: ")


BAD_EDITS = [
    # (old text, new text, YAML path of the error); the error is on the last line holding new
    ("  api: {team: backend}", "  api: {team: platform}", "categories.api.team"),
    ("    members: [kim, choi, jung]", "    members: [kim, nobody, jung]",
     "rotations.backend.members[1]"),
    ("  - name: service-down\n", "  - name: trading-service-down\n", "rules[3].name"),
    ("    - {after: 45m, notify: [tech_lead]}", "    - {after: 45m, notify: [cto]}",
     "escalation.default[2].notify[0]"),
]  # fmt: skip


def write_bad_rules(tmp_path: Path) -> tuple[Path, list[tuple[str, int]]]:
    text = SHIPPED.read_text(encoding="utf-8")
    for old, new, _ in BAD_EDITS:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    lines = text.splitlines()
    expected: list[tuple[str, int]] = []
    for _, new, path in BAD_EDITS:
        hits = [n for n, line in enumerate(lines, start=1) if line == new.rstrip("\n")]
        expected.append((path, hits[-1]))
    bad = tmp_path / "bad_rules.yaml"
    bad.write_text(text, encoding="utf-8")
    return bad, expected


def test_check_config_bad_file_lists_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad, expected = write_bad_rules(tmp_path)
    code = main(["check-config", str(bad)])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    for path, line in expected:
        hits = [x for x in lines if x.startswith(f"{bad}:{line}: {path}: ")]
        assert len(hits) == 1, (path, line, err)
    assert len(lines) == len(expected) + 1
    assert lines[-1] == f"{bad}: {len(expected)} error(s)"


def test_check_config_invalid_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("defaults: {severity: P3\nseverities: [\n", encoding="utf-8")
    assert main(["check-config", str(bad)]) == 1
    _, err = capsys.readouterr()
    assert err.splitlines()[0].startswith(f"{bad}:2:")
    assert ": invalid YAML: " in err.splitlines()[0]


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["check-config", str(missing)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0].startswith(f"{missing}: ")
    assert "cannot read" in err


# --- route-test -----------------------------------------------------------------------------


def test_route_test_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    report = route_json(
        capsys,
        "alertname=KISTokenRefreshFailed",
        "service=kis-gateway",
        "--at",
        THURSDAY_10,
    )
    assert report == {
        "rule": "kis-token-refresh-failure",
        "severity": "P1",
        "category": "api",
        "team": "backend",
        "incident_key": (
            'kis-token-refresh-failure{alertname="KISTokenRefreshFailed",service="kis-gateway"}'
        ),
        "jira": {"project": "OPS", "priority": "High", "issue_type": "Incident"},
        "pages": [
            {
                "person": "kim",
                "target": "oncall",
                "at": THURSDAY_10,
                "deferred": False,
                "channels": ["slack"],
                "page_retry": "5m",
            },
        ],
        "maintenance": None,
        "heartbeat": None,
    }


def test_route_test_names_the_channels_a_page_tries_and_the_heartbeat_an_alert_feeds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = SHIPPED.read_text(encoding="utf-8").replace(
        "kim: {name: Kim Minjun, slack_id: U0KIM,",
        "kim: {name: Kim Minjun, slack_id: U0KIM, telegram_id: 1001, notify: [telegram, slack],",
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(text, encoding="utf-8")
    args = ["alertname=KISTokenRefreshFailed", "service=kis-gateway", "--at", THURSDAY_10]
    assert main(["route-test", "--rules", str(rules), *args]) == 0
    out = capsys.readouterr().out
    assert (
        f"page:         kim via oncall, immediately ({THURSDAY_10}), by telegram, then slack "
        "(each after 5m without an ack)"
    ) in out.splitlines()
    assert main(["route-test", "--rules", str(rules), "alertname=Watchdog"]) == 0
    assert capsys.readouterr().out == (
        "heartbeat:    watchdog: a sign of life, this alert opens no incident "
        "(expected every 5m, grace 2m)\n"
    )
    report = route_json(capsys, "alertname=Watchdog")
    assert (report["heartbeat"], report["pages"]) == ("watchdog", [])


WINDOW = """
maintenance:
  - name: kis-weekly
    matchers: ['service="kis-gateway"']
    from: "2026-11-19T09:30"
    to: "2026-11-19T11:00"
    every: 1w
    reason: KIS Open API weekly maintenance
"""


def test_route_test_says_when_a_maintenance_window_applies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SHIPPED.read_text(encoding="utf-8") + WINDOW, encoding="utf-8")
    labels = ["alertname=KISTokenRefreshFailed", "service=kis-gateway", "--at", THURSDAY_10]
    assert main(["route-test", "--json", "--rules", str(rules), *labels]) == 0
    report = json.loads(capsys.readouterr()[0])
    until = "2026-11-26T11:00:00+09:00"  # the second week's occurrence, 09:30-11:00 KST
    assert report["maintenance"] == {
        "name": "kis-weekly",
        "until": until,
        "reason": "KIS Open API weekly maintenance",
        "held": True,
    }
    assert spec(report["pages"]) == [{"person": "kim", "target": "oncall", "at": until,
                                "deferred": True}]  # fmt: skip
    down = ["alertname=ServiceDown", "service=kis-gateway", "--at", THURSDAY_10]
    assert main(["route-test", "--rules", str(rules), *down]) == 0
    out = capsys.readouterr()[0]
    assert f"maintenance:  window kis-weekly (KIS Open API weekly maintenance) until {until}: " \
        "pages anyway (ignore_maintenance)" in out  # fmt: skip
    assert "han via oncall, immediately" in out
    other = ["alertname=KISTokenRefreshFailed", "service=order-api", "--at", THURSDAY_10]
    assert main(["route-test", "--json", "--rules", str(rules), *other]) == 0
    assert json.loads(capsys.readouterr()[0])["maintenance"] is None


def test_route_test_p0_pages_everyone_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    report = route_json(capsys, "alertname=ServiceDown", "service=order-api", "--at", THURSDAY_10)
    assert (report["rule"], report["severity"], report["team"]) == (
        "trading-service-down",
        "P0",
        "features",
    )
    assert report["jira"] == {"project": "OPS", "priority": "Highest", "issue_type": "Incident"}
    pages = spec(report["pages"])
    assert pages == [
        {"person": "han", "target": "oncall", "at": THURSDAY_10, "deferred": False},
        {"person": "oh", "target": "team", "at": THURSDAY_10, "deferred": False},
        {"person": "lee", "target": "tech_lead", "at": THURSDAY_10, "deferred": False},
        {"person": "park", "target": "project_manager", "at": THURSDAY_10, "deferred": False},
    ]
    assert len({p["person"] for p in pages}) == 4


def test_route_test_p0_off_hours_uses_fallback(capsys: pytest.CaptureFixture[str]) -> None:
    report = route_json(capsys, "alertname=ServiceDown", "service=order-api", "--at", THURSDAY_22)
    assert [(p["person"], p["target"], p["deferred"]) for p in report["pages"]] == [
        ("kim", "oncall", False),
        ("han", "team", False),
        ("oh", "team", False),
        ("lee", "tech_lead", False),
        ("park", "project_manager", False),
    ]
    assert {p["at"] for p in report["pages"]} == {THURSDAY_22}


def test_route_test_p2_on_friday_night_is_deferred_to_monday(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = route_json(
        capsys,
        "alertname=HighResponseTime",
        "service=order-api",
        "severity=warning",
        "--at",
        FRIDAY_22,
    )
    assert (report["rule"], report["severity"], report["category"], report["team"]) == (
        "high-response-time",
        "P2",
        "performance",
        "devops",
    )
    assert report["jira"]["priority"] == "Medium"
    # Monday 09:00 is also the weekly handoff: cho takes over from kang.
    assert spec(report["pages"]) == [
        {
            "person": "cho",
            "target": "oncall",
            "at": "2026-11-30T09:00:00+09:00",
            "deferred": True,
        }
    ]
    assert datetime.fromisoformat(report["pages"][0]["at"]).weekday() == 0


def test_route_test_p2_in_business_hours_is_immediate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = route_json(
        capsys, "alertname=HighResponseTime", "service=order-api", "--at", THURSDAY_10
    )
    assert report["severity"] == "P2"
    assert spec(report["pages"]) == [
        {"person": "kang", "target": "oncall", "at": THURSDAY_10, "deferred": False}
    ]


@pytest.mark.parametrize(
    "labels",
    [
        ["alertname=HighNetworkLatency", "service=edge"],
        ["alertname=NothingMatchesThis"],
    ],
)
def test_route_test_p3_pages_nobody(capsys: pytest.CaptureFixture[str], labels: list[str]) -> None:
    report = route_json(capsys, *labels, "--at", THURSDAY_10)
    assert report["severity"] == "P3"
    assert report["jira"]["priority"] == "Low"
    assert report["pages"] == []


def test_route_test_unmatched_is_default(capsys: pytest.CaptureFixture[str]) -> None:
    report = route_json(capsys, "alertname=NothingMatchesThis", "--at", THURSDAY_10)
    assert report["rule"] == "default"
    assert report["category"] == "functional"
    assert report["team"] == "features"
    assert report["incident_key"] == 'default{alertname="NothingMatchesThis",service=""}'


def test_route_test_label_value_may_contain_equals(capsys: pytest.CaptureFixture[str]) -> None:
    report = route_json(capsys, "alertname=X", "service=a=b", "--at", THURSDAY_10)
    assert report["incident_key"] == 'default{alertname="X",service="a=b"}'


def test_route_test_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "route-test",
            "--rules",
            str(SHIPPED),
            "--at",
            FRIDAY_22,
            "alertname=HighResponseTime",
            "service=order-api",
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    assert "rule:         high-response-time" in out.splitlines()
    assert "severity:     P2" in out.splitlines()
    assert (
        "page:         cho via oncall, deferred until 2026-11-30T09:00:00+09:00" in out.splitlines()
    )


def test_route_test_text_output_p3(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["route-test", "--rules", str(SHIPPED), "--at", THURSDAY_10, "alertname=Nope"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "pages:        nobody (this severity never pages)" in out.splitlines()


def test_route_test_bad_rules_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad, expected = write_bad_rules(tmp_path)
    code = main(["route-test", "--json", "--rules", str(bad), "alertname=X"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    for path, line in expected:
        assert f"{bad}:{line}: {path}: " in err


@pytest.mark.parametrize(
    "argv",
    [
        ["route-test", "--rules", str(SHIPPED), "alertname"],
        ["route-test", "--rules", str(SHIPPED), "=value"],
        ["route-test", "--rules", str(SHIPPED), "alertname=X", "service"],
        ["route-test", "--rules", str(SHIPPED)],
        ["route-test", "--rules", str(SHIPPED), "--at", "tomorrow", "alertname=X"],
        ["route-test", "--rules", str(SHIPPED), "--at", "2026-11-26T10:00:00", "alertname=X"],
        ["no-such-command"],
        [],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err != ""


# --- oncall (SPEC §2: `receiver oncall [ROTATION] [--at TIME] [--json]`) --------------------


def test_oncall_one_rotation_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECEIVER_RULES", str(SHIPPED))
    code = main(["oncall", "backend", "--at", THURSDAY_10, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert [(e["rotation"], e["person"]) for e in report["oncall"]] == [("backend", "kim")]
    shift_end = datetime.fromisoformat(report["oncall"][0]["shift_end"])
    assert shift_end == datetime.fromisoformat("2026-11-30T09:00:00+09:00")


def test_oncall_every_rotation_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECEIVER_RULES", str(SHIPPED))
    code = main(["oncall", "--at", "2026-11-30T09:00:00+09:00", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert {e["rotation"]: e["person"] for e in report["oncall"]} == {
        "backend": "choi",
        "devops": "cho",
        "features": "oh",
        "frontend": "jang",
        "security": "seo",
        "data": "kwon",
    }
    for entry in report["oncall"]:
        end = datetime.fromisoformat(entry["shift_end"])
        assert end == datetime.fromisoformat("2026-12-07T09:00:00+09:00")


@pytest.mark.parametrize(
    ("args", "rule", "severity", "category", "team", "paged"),
    [
        (["--report", "로그인이 안 돼요"], "cannot-sign-in", "P1", "security", "security", True),
        (["--report", "Order stuck", "--description", "my 매수 order never fills"],
         "orders-failing", "P1", "api", "backend", True),
        (["--report", "글자가 잘려요", "--category", "ui", "--browser", "Mobile Safari 18"],
         "safari-display", "P3", "ui", "frontend", False),
        (["--report", "뭔가 이상해요", "--category", "performance"], None, "P3", "performance",
         "devops", False),
    ],
)  # fmt: skip
def test_route_test_triages_a_report(
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    rule: str | None,
    severity: str,
    category: str,
    team: str,
    paged: bool,
) -> None:
    report = route_json(capsys, *args, "--at", THURSDAY_10)
    assert (report["rule"], report["severity"], report["category"], report["team"]) == (
        rule, severity, category, team,
    )  # fmt: skip
    assert report["incident_key"] == "report:<id>"
    assert bool(report["pages"]) is paged


def test_route_test_refuses_what_it_cannot_answer(capsys: pytest.CaptureFixture[str]) -> None:
    for args in ([], ["alertname=X", "--report", "both"]):  # neither, or both
        with pytest.raises(SystemExit) as info:
            main(["route-test", "--rules", str(SHIPPED), *args])
        assert info.value.code == 2
        assert "--report TITLE" in capsys.readouterr().err
    assert main(["route-test", "--rules", str(SHIPPED), "--report", "x", "--category", "y"]) == 2
    assert capsys.readouterr().err.startswith("receiver route-test: unknown category 'y'")


def test_route_test_says_when_no_triage_rule_matched(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["route-test", "--rules", str(SHIPPED), "--report", "이상해요", "--at", THURSDAY_10])
        == 0
    )
    assert "rule:         (no triage rule matched: the defaults)" in capsys.readouterr().out


def test_oncall_says_who_is_paged_while_a_business_hours_rotation_is_off(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECEIVER_RULES", str(SHIPPED))
    christmas = "2025-12-25T10:00:00+09:00"  # a Thursday, and a public holiday in Korea
    assert main(["oncall", "--at", christmas, "--json"]) == 0
    rows = {e["rotation"]: e for e in json.loads(capsys.readouterr().out)["oncall"]}
    features, backend = rows["features"], rows["backend"]
    assert features["off_hours"] is True and backend["off_hours"] is False
    assert features["paged_instead"] == {"rotation": "backend", "person": backend["person"]}
    assert features["business_hours_from"] == "2025-12-26T09:00:00+09:00"
    assert main(["oncall", "features", "--at", christmas]) == 0
    text = capsys.readouterr().out
    assert "off hours until 2025-12-26T09:00:00+09:00: paged instead:" in text
    assert main(["oncall", "features", "--at", "2025-12-26T10:00:00+09:00", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["oncall"]
    assert row["off_hours"] is False and "paged_instead" not in row
