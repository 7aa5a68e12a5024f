"""Loading and validating routing_rules.yaml: every error names file, YAML path and line."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from receiver.config import ConfigError, Problem, RulesConfig, load_rules, parse_rules, summarize

SHIPPED = Path(__file__).resolve().parents[2] / "routing_rules.yaml"
FILE = "rules.yaml"

# A small valid rules file; the error cases below each change one or more lines of it.
VALID = """\
defaults: {severity: P3, category: functional, group_by: [alertname, service]}
severities:
  P0: {respond_within: 1h, ack_timeout: 15m, jira_priority: Highest, page: always}
  P2: {respond_within: 24h, ack_timeout: 4h, jira_priority: Medium, page: business_hours}
  P3: {respond_within: 3d, ack_timeout: 24h, jira_priority: Low, page: never}
categories:
  functional: {team: backend}
  api: {team: backend}
teams:
  backend: {rotation: x, lead: kim, channel: "#team-backend", jira_project: OPS}
roles: {tech_lead: lee, project_manager: park}
people:
  kim: {name: Kim}
  choi: {name: Choi}
  lee: {name: Lee}
  park: {name: Park}
rotations:
  x:
    timezone: Asia/Seoul
    members: [kim, choi]
    shift: 1w
    handoff: "2026-11-23T09:00"
escalation:
  P0: [{after: 0m, notify: [oncall, team, tech_lead]}]
  default:
    - {after: 0m, notify: [oncall, team_lead]}
    - {after: 15m, notify: [project_manager]}
channels: {alerts: "#alerts", announce: "#announce", digest: "#alerts"}
jira: {project: OPS}
rules:
  - name: first
    matchers: ['alertname="A"']
    severity: P0
    category: api
  - name: second
    matchers: ['alertname="B"']
    severity: P2
  - name: third
    matchers: ['alertname="C"']
    severity_from: {label: severity, map: {critical: P0}, default: P2}
"""
CHANNELS_LINE = 'channels: {alerts: "#alerts", announce: "#announce", digest: "#alerts"}'


def line_of(text: str, snippet: str, occurrence: int = 1) -> int:
    """1-based number of the line holding the n-th occurrence of snippet."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if snippet in line]
    assert len(hits) >= occurrence, f"{snippet!r} not in the test YAML"
    return hits[occurrence - 1]


def edit(old: str, new: str, text: str = VALID) -> str:
    assert text.count(old) == 1, f"{old!r} must occur exactly once"
    return text.replace(old, new)


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        parse_rules(text, FILE)
    return info.value.problems


# --- the shipped file ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> RulesConfig:
    return load_rules(SHIPPED)


def test_shipped_file_is_valid(shipped: RulesConfig) -> None:
    assert list(shipped.severities) == ["P0", "P1", "P2", "P3"]
    assert set(shipped.categories) == {
        "functional",
        "ui",
        "performance",
        "security",
        "data",
        "api",
        "network",
    }


@pytest.mark.parametrize(
    ("severity", "respond_within", "ack_timeout", "priority", "page", "announce"),
    [
        ("P0", timedelta(hours=1), timedelta(minutes=15), "Highest", "always", True),
        ("P1", timedelta(hours=4), timedelta(minutes=30), "High", "always", True),
        ("P2", timedelta(hours=24), timedelta(hours=4), "Medium", "business_hours", False),
        ("P3", timedelta(days=3), timedelta(hours=24), "Low", "never", False),
    ],
)
def test_shipped_severity_policy(
    shipped: RulesConfig,
    severity: str,
    respond_within: timedelta,
    ack_timeout: timedelta,
    priority: str,
    page: str,
    announce: bool,
) -> None:
    policy = shipped.severities[severity]
    assert policy.respond_within == respond_within
    assert policy.ack_timeout == ack_timeout
    assert policy.jira_priority == priority
    assert policy.page == page
    assert policy.announce is announce


@pytest.mark.parametrize(
    ("category", "team"),
    [
        ("functional", "features"),
        ("ui", "frontend"),
        ("performance", "devops"),
        ("security", "security"),
        ("data", "data"),
        ("api", "backend"),
        ("network", "devops"),
    ],
)
def test_shipped_category_owner(shipped: RulesConfig, category: str, team: str) -> None:
    assert shipped.categories[category].team == team


def test_shipped_defaults_and_escalation(shipped: RulesConfig) -> None:
    assert shipped.defaults.severity == "P3"
    assert shipped.defaults.category == "functional"
    assert shipped.defaults.group_by == ["alertname", "service"]
    assert shipped.roles.tech_lead == "lee"
    assert shipped.roles.project_manager == "park"
    p0 = shipped.steps_for("P0")
    assert [(s.after, s.notify) for s in p0] == [
        (timedelta(0), ["oncall", "team", "team_lead", "tech_lead", "project_manager"])
    ]
    default = [(s.after, s.notify) for s in shipped.steps_for("P1")]
    assert default == [
        (timedelta(0), ["oncall"]),
        (timedelta(minutes=15), ["team_lead"]),
        (timedelta(minutes=45), ["tech_lead"]),
        (timedelta(hours=2), ["project_manager"]),
    ]
    assert shipped.steps_for("P3") == shipped.escalation["default"]


def test_shipped_rotation_and_override(shipped: RulesConfig) -> None:
    backend = shipped.rotations["backend"]
    assert backend.timezone == "Asia/Seoul"
    assert backend.members == ["kim", "choi", "jung"]
    assert backend.shift == timedelta(weeks=1)
    assert backend.handoff == datetime(2026, 11, 23, 9, 0)
    assert [(o.person, o.start, o.end) for o in backend.overrides] == [
        ("choi", datetime(2026, 12, 24, 18, 0), datetime(2026, 12, 26, 9, 0))
    ]
    assert shipped.rotations["features"].hours == "business"
    assert shipped.rotations["features"].fallback == "backend"


def test_shipped_jira(shipped: RulesConfig) -> None:
    assert shipped.jira.project == "OPS"
    assert shipped.jira.issue_type == "Incident"
    assert shipped.jira.reopen_window == timedelta(hours=24)
    assert shipped.jira.postmortem is not None
    assert shipped.jira.postmortem.severities == ["P0", "P1"]


def test_shipped_summary(shipped: RulesConfig) -> None:
    assert summarize(shipped) == (
        f"{len(shipped.rules)} rules, 4 severities, 7 categories, 6 teams, 6 rotations, 15 people"
    )
    assert "\n" not in summarize(shipped)


def test_severity_rank(shipped: RulesConfig) -> None:
    assert [shipped.severity_rank(s) for s in ("P0", "P1", "P2", "P3")] == [0, 1, 2, 3]


# --- the small file -------------------------------------------------------------------------


def test_small_file_is_valid() -> None:
    cfg = parse_rules(VALID, FILE)
    assert [r.name for r in cfg.rules] == ["first", "second", "third"]
    assert summarize(cfg) == "3 rules, 3 severities, 2 categories, 1 teams, 1 rotations, 4 people"


def test_load_rules_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert [r.name for r in load_rules(path).rules] == ["first", "second", "third"]
    assert [r.name for r in load_rules(str(path)).rules] == ["first", "second", "third"]


def test_load_rules_errors_name_the_real_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(edit("ack_timeout: 15m", "ack_timeout: 15x"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    [problem] = info.value.problems
    assert problem.file == str(path)
    assert problem.path == "severities.P0.ack_timeout"
    assert problem.line == 3
    assert str(problem).startswith(f"{path}:3: severities.P0.ack_timeout: ")


def test_load_rules_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    [problem] = info.value.problems
    assert problem.file == str(path)
    assert problem.line is None
    assert "cannot read" in problem.message


def test_load_rules_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"defaults: {severity: \xff}\n")
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    [problem] = info.value.problems
    assert problem.file == str(path)
    assert "UTF-8" in problem.message


# Each case: (id, text, expected YAML path, expected line, words in the message).
ERROR_CASES = [
    (
        "unknown key in a rule",
        edit("    category: api\n", "    category: api\n    colour: red\n"),
        "rules[0].colour",
        line_of(VALID, "    category: api") + 1,
        "unknown key",
    ),
    (
        "unknown top-level key",
        VALID + "extra: 1\n",
        "extra",
        VALID.count("\n") + 1,
        "unknown key",
    ),
    (
        "unknown key in a severity",
        edit("jira_priority: Low, page: never}", "jira_priority: Low, page: never, color: red}"),
        "severities.P3.color",
        5,
        "unknown key",
    ),
    (
        "bad matcher",
        edit("""['alertname="B"']""", """['alertname=~"("']"""),
        "rules[1].matchers[0]",
        line_of(VALID, 'alertname="B"'),
        "regex",
    ),
    (
        "regex RE2 refuses: backreference",
        edit("""['alertname="B"']""", """['alertname=~"(a)\\\\1"']"""),
        "rules[1].matchers[0]",
        line_of(VALID, 'alertname="B"'),
        "invalid regex",
    ),
    (
        "regex RE2 refuses: lookahead in a block list",
        edit(
            """    matchers: ['alertname="B"']\n""",
            """    matchers:\n      - 'alertname="B"'\n      - 'service=~"api(?!-canary)"'\n""",
        ),
        "rules[1].matchers[1]",
        line_of(VALID, 'alertname="B"') + 2,
        "invalid regex",
    ),
    (
        "malformed matcher without operator",
        edit("""['alertname="C"']""", """['alertname']"""),
        "rules[2].matchers[0]",
        line_of(VALID, 'alertname="C"'),
        "invalid matcher",
    ),
    (
        "bad matcher in a block list",
        edit(
            """    matchers: ['alertname="B"']\n""",
            """    matchers:\n      - 'alertname="B"'\n      - 'service=~"["'\n""",
        ),
        "rules[1].matchers[1]",
        line_of(VALID, 'alertname="B"') + 2,
        "regex",
    ),
    (
        "bad duration",
        edit("ack_timeout: 15m", "ack_timeout: 15x"),
        "severities.P0.ack_timeout",
        3,
        "invalid duration",
    ),
    (
        "duration out of order",
        edit("respond_within: 24h", "respond_within: 1m1h"),
        "severities.P2.respond_within",
        4,
        "invalid duration",
    ),
    (
        "bad step duration",
        edit("{after: 15m, notify: [project_manager]}", "{after: 1.5h, notify: [project_manager]}"),
        "escalation.default[1].after",
        line_of(VALID, "after: 15m"),
        "invalid duration",
    ),
    (
        "unknown team in a category",
        edit("api: {team: backend}", "api: {team: platform}"),
        "categories.api.team",
        8,
        "unknown team 'platform'",
    ),
    (
        "unknown person as rotation member",
        edit("members: [kim, choi]", "members: [kim, nobody]"),
        "rotations.x.members[1]",
        line_of(VALID, "members: [kim, choi]"),
        "unknown person 'nobody'",
    ),
    (
        "unknown person as team lead",
        edit("lead: kim", "lead: ghost"),
        "teams.backend.lead",
        10,
        "unknown person 'ghost'",
    ),
    (
        "unknown rotation for a team",
        edit("rotation: x,", "rotation: y,"),
        "teams.backend.rotation",
        10,
        "unknown rotation 'y'",
    ),
    (
        "unknown tech lead",
        edit("tech_lead: lee", "tech_lead: leee"),
        "roles.tech_lead",
        11,
        "unknown person 'leee'",
    ),
    (
        "unknown severity in rule",
        edit("    severity: P2\n", "    severity: P1\n"),
        "rules[1].severity",
        line_of(VALID, "    severity: P2"),
        "unknown severity 'P1'",
    ),
    (
        "unknown severity in severity_from map",
        edit("map: {critical: P0}", "map: {critical: P9}"),
        "rules[2].severity_from.map.critical",
        line_of(VALID, "severity_from:"),
        "unknown severity 'P9'",
    ),
    (
        "unknown category in rule",
        edit("    category: api\n", "    category: billing\n"),
        "rules[0].category",
        line_of(VALID, "    category: api"),
        "unknown category 'billing'",
    ),
    (
        "unknown default severity",
        edit("defaults: {severity: P3,", "defaults: {severity: P4,"),
        "defaults.severity",
        1,
        "unknown severity 'P4'",
    ),
    (
        "duplicate rule names",
        edit("  - name: third\n", "  - name: first\n"),
        "rules[2].name",
        line_of(VALID, "- name: third"),
        "duplicate rule name 'first'",
    ),
    (
        "unknown notify target",
        edit("notify: [oncall, team_lead]", "notify: [oncall, everyone]"),
        "escalation.default[0].notify[1]",
        line_of(VALID, "notify: [oncall, team_lead]"),
        "unknown notify target 'everyone'",
    ),
    (
        "unknown person notify target",
        edit("notify: [oncall, team_lead]", "notify: [oncall, 'person:nobody']"),
        "escalation.default[0].notify[1]",
        line_of(VALID, "notify: [oncall, team_lead]"),
        "unknown person 'nobody'",
    ),
    (
        "unknown rotation notify target",
        edit("notify: [oncall, team_lead]", "notify: ['rotation:zz', team_lead]"),
        "escalation.default[0].notify[0]",
        line_of(VALID, "notify: [oncall, team_lead]"),
        "unknown rotation 'zz'",
    ),
    (
        "escalation for an unknown severity",
        edit("  P0: [{after: 0m,", "  P7: [{after: 0m,"),
        "escalation.P7",
        line_of(VALID, "P0: [{after: 0m"),
        "unknown severity 'P7'",
    ),
    (
        "severity and severity_from together",
        edit(
            "    severity_from: {label: severity,",
            "    severity: P0\n    severity_from: {label: severity,",
        ),
        "rules[2]",
        line_of(VALID, "- name: third"),
        "not both",
    ),
    (
        "unknown time zone",
        edit("timezone: Asia/Seoul", "timezone: Asia/Atlantis"),
        "rotations.x.timezone",
        line_of(VALID, "timezone: Asia/Seoul"),
        "unknown IANA time zone 'Asia/Atlantis'",
    ),
    (
        "duplicate YAML key",
        edit("  choi: {name: Choi}\n", "  choi: {name: Choi}\n  kim: {name: Kim Again}\n"),
        "people.kim",
        line_of(VALID, "choi: {name: Choi}") + 1,
        "duplicate key",
    ),
    (
        "duplicate YAML key in a flow mapping",
        edit("jira: {project: OPS}", "jira: {project: OPS, project: SEC}"),
        "jira.project",
        line_of(VALID, "jira: {project: OPS}"),
        "duplicate key",
    ),
    (
        "handoff with an offset",
        edit('handoff: "2026-11-23T09:00"', 'handoff: "2026-11-23T09:00+09:00"'),
        "rotations.x.handoff",
        line_of(VALID, "handoff:"),
        "without an offset",
    ),
    (
        "rotation falls back to itself",
        edit("    shift: 1w\n", "    shift: 1w\n    fallback: x\n"),
        "rotations.x.fallback",
        line_of(VALID, "shift: 1w") + 1,
        "itself",
    ),
    (
        "unknown fallback rotation",
        edit("    shift: 1w\n", "    shift: 1w\n    fallback: nowhere\n"),
        "rotations.x.fallback",
        line_of(VALID, "shift: 1w") + 1,
        "unknown rotation 'nowhere'",
    ),
    (
        "zero shift",
        edit("shift: 1w", "shift: 0s"),
        "rotations.x.shift",
        line_of(VALID, "shift: 1w"),
        "longer than 0s",
    ),
    (
        "member listed twice",
        edit("members: [kim, choi]", "members: [kim, kim]"),
        "rotations.x.members",
        line_of(VALID, "members: [kim, choi]"),
        "twice",
    ),
    (
        "bad page mode",
        edit("page: never}", "page: sometimes}"),
        "severities.P3.page",
        5,
        "",
    ),
    (
        "bad rule name",
        edit("  - name: second\n", "  - name: 'has space'\n"),
        "rules[1].name",
        line_of(VALID, "- name: second"),
        "",
    ),
    (
        "rule without matchers",
        edit("""    matchers: ['alertname="B"']\n""", "    matchers: []\n"),
        "rules[1].matchers",
        line_of(VALID, 'alertname="B"'),
        "",
    ),
    (
        "bad group_by label name",
        edit("group_by: [alertname, service]}", "group_by: [alertname, 9lives]}"),
        "defaults.group_by[1]",
        1,
        "invalid label name",
    ),
    (
        "override ends before it starts",
        edit(
            '    handoff: "2026-11-23T09:00"\n',
            '    handoff: "2026-11-23T09:00"\n'
            '    overrides: [{person: choi, from: "2026-12-02T09:00", to: "2026-12-01T09:00"}]\n',
        ),
        "rotations.x.overrides[0].to",
        line_of(VALID, "handoff:") + 1,
        "later than",
    ),
    (
        "steps out of order",
        edit(
            "{after: 15m, notify: [project_manager]}", "{after: 0s, notify: [project_manager]}"
        ).replace("{after: 0m, notify: [oncall, team_lead]}", "{after: 5m, notify: [oncall]}"),
        "escalation.default",
        line_of(VALID, "  default:"),
        "increasing",
    ),
    (
        "announcement placeholder unknown",
        edit(
            "jira: {project: OPS}\n",
            "jira: {project: OPS}\nannouncements:\n  api: {opened: 'Down: {host}'}\n",
        ),
        "announcements.api.opened",
        line_of(VALID, "jira: {project: OPS}") + 2,
        "unknown placeholder {host}",
    ),
    (
        "announcement for an unknown category",
        edit(
            "jira: {project: OPS}\n",
            "jira: {project: OPS}\nannouncements:\n  billing: {affected: bills}\n",
        ),
        "announcements.billing",
        line_of(VALID, "jira: {project: OPS}") + 2,
        "unknown category 'billing'",
    ),
    (
        "announcement language not shipped",
        edit(
            "jira: {project: OPS}\n",
            "jira: {project: OPS}\nannouncements:\n  locale: fr\n",
        ),
        "announcements.locale",
        line_of(VALID, "jira: {project: OPS}") + 2,
        "'ko' or 'en'",
    ),
    (
        "announcement wording that is not text",
        edit(
            "jira: {project: OPS}\n",
            "jira: {project: OPS}\nannouncements:\n  api: {affected: x, opened: [1]}\n",
        ),
        "announcements.api.opened",
        line_of(VALID, "jira: {project: OPS}") + 2,
        "string",
    ),
    (
        "a category's announce that is not yes or no",
        edit("  api: {team: backend}", "  api: {team: backend, announce: sometimes}"),
        "categories.api.announce",
        line_of(VALID, "  api: {team: backend}"),
        "boolean",
    ),
    (
        "a standup with nowhere to go",
        edit("jira: {project: OPS}\n", "jira: {project: OPS}\nstandup: {at: '09:30'}\n"),
        "standup",
        line_of(VALID, "jira: {project: OPS}") + 1,
        "set channels.standup",
    ),
    (
        "a standup time YAML reads as a number",
        edit("jira: {project: OPS}\n", "jira: {project: OPS}\nstandup: {at: 9:30}\n").replace(
            CHANNELS_LINE,
            CHANNELS_LINE.replace("}", ', standup: "#s"}'),
        ),
        "standup.at",
        line_of(VALID, "jira: {project: OPS}") + 1,
        "write the time in quotes",
    ),
    (
        "a standup on a day that is not one",
        edit(
            "jira: {project: OPS}\n", "jira: {project: OPS}\nstandup: {at: '9:30', days: [mo]}\n"
        ).replace(
            CHANNELS_LINE,
            CHANNELS_LINE.replace("}", ', standup: "#s"}'),
        ),
        "standup.days[0]",
        line_of(VALID, "jira: {project: OPS}") + 1,
        "'mon'",
    ),
    (
        "missing required section",
        edit('channels: {alerts: "#alerts", announce: "#announce", digest: "#alerts"}\n', ""),
        "channels",
        1,
        "required",
    ),
]


@pytest.mark.parametrize(
    ("text", "path", "line", "words"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_config_error_names_path_and_line(text: str, path: str, line: int, words: str) -> None:
    problems = problems_of(text)
    assert [p.path for p in problems] == [path], [str(p) for p in problems]
    [problem] = problems
    assert problem.file == FILE
    assert problem.line == line
    assert words in problem.message
    assert str(problem) == f"{FILE}:{line}: {path}: {problem.message}"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("defaults: [\n", 2),
        ("defaults: {severity: P3\nseverities: x\n", 2),
        ("a: b\n  c: d\n", 2),
        ("a: 1\nb:\n\tc: 2\n", 3),
        (VALID.replace("  choi: {name: Choi}\n", "  choi: {name: Choi\n"), None),
    ],
)
def test_invalid_yaml_reports_line(text: str, line: int | None) -> None:
    problems = problems_of(text)
    assert len(problems) == 1
    [problem] = problems
    assert problem.message.startswith("invalid YAML")
    if line is None:
        assert problem.line is not None
        assert problem.line >= line_of(VALID, "choi: {name: Choi}")
    else:
        assert problem.line == line
    assert problem.column is not None
    assert str(problem).startswith(f"{FILE}:{problem.line}:{problem.column}: invalid YAML")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("- a\n- b\n", 1),
        ("just a string\n", 1),
        ("42\n", 1),
    ],
)
def test_file_that_is_not_a_mapping(text: str, line: int) -> None:
    problems = problems_of(text)
    assert [(p.path, p.line) for p in problems] == [("", line)]
    assert "mapping" in problems[0].message
    assert str(problems[0]) == f"{FILE}:{line}: <root>: {problems[0].message}"


def test_empty_file_is_an_error() -> None:
    problems = problems_of("")
    assert [p.path for p in problems] == [""]
    assert "mapping" in problems[0].message


def test_several_reference_errors_at_once() -> None:
    text = edit("api: {team: backend}", "api: {team: platform}")
    text = edit("members: [kim, choi]", "members: [kim, nobody]", text)
    text = edit("  - name: third\n", "  - name: first\n", text)
    text = edit("notify: [oncall, team_lead]", "notify: [oncall, everyone]", text)
    text = edit("    category: api\n", "    category: billing\n", text)
    problems = problems_of(text)
    found = {(p.path, p.line) for p in problems}
    assert found == {
        ("categories.api.team", 8),
        ("rotations.x.members[1]", line_of(VALID, "members:")),
        ("escalation.default[0].notify[1]", line_of(VALID, "notify: [oncall, team_lead]")),
        ("rules[0].category", line_of(VALID, "    category: api")),
        ("rules[2].name", line_of(VALID, "- name: third")),
    }
    assert len(problems) == 5
    for problem in problems:
        assert f"{FILE}:{problem.line}: {problem.path}: " in str(problem)


def test_several_schema_errors_at_once() -> None:
    text = edit("ack_timeout: 15m", "ack_timeout: 15x")
    text = edit("    category: api\n", "    category: api\n    colour: red\n", text)
    text = edit("""['alertname="B"']""", """['alertname=~"("']""", text)
    text = edit("timezone: Asia/Seoul", "timezone: Mars/Olympus", text)
    problems = problems_of(text)
    lines = {p.path: p.line for p in problems}
    assert lines == {
        "severities.P0.ack_timeout": 3,
        "rotations.x.timezone": line_of(VALID, "timezone:"),
        "rules[0].colour": line_of(VALID, "    category: api") + 1,
        "rules[1].matchers[0]": line_of(VALID, 'alertname="B"') + 1,
    }
    for problem in problems:
        assert str(problem).startswith(f"{FILE}:{problem.line}: {problem.path}: ")


def test_config_error_message_lists_every_problem() -> None:
    text = edit("api: {team: backend}", "api: {team: platform}")
    text = edit("tech_lead: lee", "tech_lead: leee", text)
    with pytest.raises(ConfigError) as info:
        parse_rules(text, FILE)
    assert str(info.value).splitlines() == [str(p) for p in info.value.problems]
    assert len(info.value.problems) == 2


def test_duplicate_key_reported_with_other_errors() -> None:
    text = edit("  choi: {name: Choi}\n", "  choi: {name: Choi}\n  kim: {name: Kim Again}\n")
    text = edit("api: {team: backend}", "api: {team: platform}", text)
    problems = problems_of(text)
    assert [(p.path, p.line) for p in problems] == [
        ("people.kim", line_of(VALID, "choi: {name: Choi}") + 1),
        ("categories.api.team", 8),
    ]


def test_fallback_cycle_is_a_config_error() -> None:
    # a -> b -> a: outside business hours neither rotation can ever answer.
    text = edit(
        '    handoff: "2026-11-23T09:00"\n',
        '    handoff: "2026-11-23T09:00"\n'
        "    hours: business\n"
        "    fallback: y\n"
        "  y:\n"
        "    timezone: Asia/Seoul\n"
        "    members: [choi]\n"
        "    shift: 1w\n"
        '    handoff: "2026-11-23T09:00"\n'
        "    hours: business\n"
        "    fallback: x\n",
    )
    problems = problems_of(text)
    assert problems, "a fallback cycle must be refused"
    assert all(p.path in {"rotations.x.fallback", "rotations.y.fallback"} for p in problems)
    assert all(p.line is not None for p in problems)


def test_parse_rules_default_file_name() -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules(edit("ack_timeout: 15m", "ack_timeout: 15x"))
    assert str(info.value.problems[0]).startswith("<string>:3: ")
