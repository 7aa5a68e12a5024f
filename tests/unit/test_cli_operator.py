"""An operator's first five minutes: ``python -m receiver ...`` as real processes.

Help that says what each command does, one startup line and one shutdown line from
``serve``, one-line errors with documented exit codes instead of tracebacks, YAML syntax
errors at their line and column, and a warning for a rule that can never match.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from receiver.api.serving import redact_url
from receiver.config.loader import ConfigError, load_rules, parse_rules, summarize

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "routing_rules.yaml"
RUN = 60  # seconds: only a guard against a hung process, never a measured limit


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without RECEIVER_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    return env | {"PYTHONUNBUFFERED": "1"} | extra


def receiver(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m receiver ARGS`` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "receiver", *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=RUN,
        check=False,
    )


# --- help ------------------------------------------------------------------------------------


def test_help_describes_every_command(tmp_path: Path) -> None:
    done = receiver("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "no business logic" not in out  # the module's docstring is not the help
    assert "Alertmanager webhooks" in out
    for command, words in [
        ("serve", "run the service"),
        ("check-config", "validate a rules file"),
        ("route-test", "what an alert with these labels becomes"),
        ("oncall", "who is on call"),
    ]:
        assert command in out
        assert words in out, command
    assert "first steps:" in out and "receiver check-config" in out


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("check-config", ["validate a rules file", "exit status", "can never match"]),
        ("route-test", ["rule, severity, category", "NAME=VALUE", "--at TIME", "exit status"]),
        ("oncall", ["who is on call", "ROTATION", "exit status"]),
    ],
)
def test_each_command_help_says_what_it_does(
    tmp_path: Path, command: str, words: list[str]
) -> None:
    done = receiver(command, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for word in words:
        assert word in done.stdout, (command, word)


def test_serve_help_shows_both_database_url_forms_and_exit_codes(tmp_path: Path) -> None:
    done = receiver("serve", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for text in [
        "sqlite:///relative/path.db",
        "sqlite:////absolute/path.db",
        "postgresql://user:pass@host:5432/db",
        "replicas",
        "log-only",
        "receiver_started",
        "RECEIVER_WEBHOOK_TOKEN",
    ]:
        assert text in out, text
    codes = out[out.index("exit status:") :]
    assert "0  stopped by SIGTERM" in codes
    assert "1  cannot run" in codes and "in use" in codes
    assert "2  bad configuration" in codes and "rules file" in codes


# --- serve: one line at startup, one at shutdown -----------------------------------------


def events(lines: list[str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        event = json.loads(line)
        assert isinstance(event, dict), line
        out.append(event)
    return out


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """``receiver serve`` on a free port with Slack configured and JIRA not, and the
    stderr lines read up to and including the startup line."""
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "receiver", "serve",
            "--rules", str(SHIPPED),
            "--port", "0",
            "--database-url", "sqlite:///data/receiver.db",
        ],
        cwd=tmp_path,
        env=clean_env(
            RECEIVER_SLACK_TOKEN="xoxb-not-a-real-token",
            RECEIVER_SLACK_API_URL="http://127.0.0.1:9/api/",  # never called at startup
            RECEIVER_LOG_FORMAT="json",
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        for line in proc.stderr:  # ends when the process exits
            lines.append(line)
            if '"receiver_started"' in line:
                break
        assert lines and '"receiver_started"' in lines[-1], "".join(lines)
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=RUN)
        proc.stderr.close()


def test_serve_logs_one_startup_line_and_one_shutdown_line(
    served: tuple[subprocess.Popen[str], list[str]], tmp_path: Path
) -> None:
    proc, lines = served
    before = events(lines)
    started = before[-1]
    # It replaces the separate store_opened and listening lines.
    assert [e["event"] for e in before if e["level"] == "info"] == ["receiver_started"]
    assert started["rules"] == str(SHIPPED)
    assert started["rules_summary"] == summarize(load_rules(SHIPPED))
    assert started["store"] == "sqlite"
    assert started["database"] == "sqlite:///data/receiver.db"
    assert started["database_file"] == str(tmp_path / "data" / "receiver.db")
    assert started["installation"]
    assert started["notifiers_live"] == ["slack", "pager", "announce", "digest"]
    assert started["notifiers_log_only"] == [
        "jira", "telegram", "email", "announce_telegram", "reporter"
    ]  # fmt: skip
    # The address is the bound one (port 0 asked for any): it answers.
    host, _, port = started["listen"].rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0
    with urllib.request.urlopen(f"http://{started['listen']}/healthz", timeout=RUN) as answer:
        assert answer.status == 200

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=RUN) == 0
    assert proc.stderr is not None
    after = events(proc.stderr.read().splitlines())
    stopped = [e for e in after if e["event"] == "receiver_stopped"]
    assert len(stopped) == 1, after
    assert stopped[0]["signal"] == "SIGTERM"
    everything = before + after
    assert [e["event"] for e in everything].count("receiver_started") == 1
    assert not {"store_opened", "listening"} & {e["event"] for e in everything}


def test_serve_on_the_shipped_defaults_from_the_repository(tmp_path: Path) -> None:
    """README's first command: ``receiver serve`` in the checkout, nothing configured.
    (On a copy of the checkout's rules file, so the real ./receiver.db is not touched.)"""
    (tmp_path / "routing_rules.yaml").write_text(SHIPPED.read_text(encoding="utf-8"))
    with socket.socket() as probe:  # the default port may be taken on a test machine
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "receiver", "serve"],
        cwd=tmp_path,
        env=clean_env(RECEIVER_PORT=str(port)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        line = proc.stderr.readline()
        started = json.loads(line)
        assert started["event"] == "receiver_started", line
        assert started["listen"] == f"127.0.0.1:{port}"
        assert started["rules"] == str(tmp_path / "routing_rules.yaml")
        assert started["database"] == "sqlite:///receiver.db"
        assert started["database_file"] == str(tmp_path / "receiver.db")
        assert started["notifiers_live"] == []
        assert started["notifiers_log_only"] == [
            "jira",
            "slack",
            "pager",
            "telegram",
            "email",
            "announce",
            "announce_telegram",
            "digest",
            "reporter",
        ]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=RUN) == 0
        assert '"signal":"SIGINT"' in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=RUN)
        proc.stderr.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///receiver.db", "sqlite:///receiver.db"),
        ("sqlite:////var/lib/receiver/r.db", "sqlite:////var/lib/receiver/r.db"),
        ("postgresql://receiver:s3cret@db:5432/alerts", "postgresql://receiver@db:5432/alerts"),
        ("postgres://:s3cret@db/alerts", "postgres://db/alerts"),
        ("postgresql://receiver@db/alerts", "postgresql://receiver@db/alerts"),
        ("postgresql://u:p%40ss@db/a?search_path=x", "postgresql://u@db/a?search_path=x"),
        ("postgresql://u@db/a?sslmode=require&password=s3cret", "postgresql://u@db/a?sslmode=require"),
        ("postgresql:///alerts?host=/run/pg&Password=s3cret", "postgresql:///alerts?host=/run/pg"),
        ("postgresql://u:a@b@db/a", "postgresql://u@db/a"),
    ],
)  # fmt: skip
def test_the_database_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# --- serve: one-line errors and exit codes -------------------------------------------------


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("receiver serve: ")
    return lines[0]


def test_serve_on_a_busy_port_says_so_and_exits_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = receiver(
            "serve", "--rules", str(SHIPPED), "--port", str(port),
            "--database-url", "sqlite:///r.db",
            cwd=tmp_path,
        )  # fmt: skip
    line = assert_one_line_error(done, 1)
    assert line.startswith(f"receiver serve: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in line.lower()


def _unknown_team(path: Path) -> str:
    text = SHIPPED.read_text(encoding="utf-8").replace(
        "  api: {team: backend}", "  api: {team: platform}"
    )
    path.write_text(text, encoding="utf-8")
    return f"{path}:{text.splitlines().index('  api: {team: platform}') + 1}: categories.api.team"


def _bad_yaml(path: Path) -> str:
    path.write_text("defaults: {severity: P3\nseverities: [\n", encoding="utf-8")
    return f"{path}:2:"


def _missing(path: Path) -> str:
    return f"{path}: <root>: cannot read file"


def _directory(path: Path) -> str:
    path.mkdir()  # readable by nobody as a file, root included
    return f"{path}: <root>: cannot read file"


def _not_text(path: Path) -> str:
    path.write_bytes(b"defaults: {severity: \xff}\n")
    return f"{path}: <root>: file is not UTF-8 text"


@pytest.mark.parametrize("make", [_unknown_team, _bad_yaml, _missing, _directory, _not_text])
def test_serve_with_a_bad_rules_file_says_so_and_exits_2(tmp_path: Path, make: Any) -> None:
    rules = tmp_path / "rules.yaml"
    start = make(rules)
    done = receiver(
        "serve", "--rules", str(rules), "--port", "0", "--database-url", "sqlite:///r.db",
        cwd=tmp_path,
    )  # fmt: skip
    line = assert_one_line_error(done, 2)
    assert line.startswith(f"receiver serve: {start}"), line
    assert not (tmp_path / "r.db").exists()  # refused before anything was opened


def test_serve_with_no_rules_file_here_tells_how_to_give_one(tmp_path: Path) -> None:
    done = receiver("serve", cwd=tmp_path)
    line = assert_one_line_error(done, 2)
    assert "routing_rules.yaml" in line and "--rules" in line and "RECEIVER_RULES" in line


def test_serve_with_many_rule_errors_names_the_first_and_check_config(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        SHIPPED.read_text(encoding="utf-8")
        .replace("  api: {team: backend}", "  api: {team: platform}")
        .replace("    members: [kim, choi, jung]", "    members: [kim, nobody, jung]"),
        encoding="utf-8",
    )
    line = assert_one_line_error(receiver("serve", "--rules", str(rules), cwd=tmp_path), 2)
    assert "(and 1 more: receiver check-config" in line


# --- check-config: YAML syntax errors at line and column ----------------------------------


def test_check_config_yaml_error_shows_line_column_and_the_line(tmp_path: Path) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    good = "    category: api\n  - name: kis-token-expiring\n"
    assert text.count(good) == 1
    bad_line = "  category: api"  # a rule's key dedented to the list's level
    text = text.replace(good, f"{bad_line}\n  - name: kis-token-expiring\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text(text, encoding="utf-8")
    number = text.splitlines().index(bad_line) + 1
    done = receiver("check-config", str(rules), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    first, shown, caret, total = done.stderr.splitlines()
    assert first.startswith(
        f"{rules}:{number}:3: invalid YAML: expected <block end>, but found '?'"
    ), first
    assert shown == f" {number} | {bad_line}"
    assert caret == " " * (len(str(number)) + 1) + " |   ^"
    assert caret.index("^") == shown.index("category")
    assert total == f"{rules}: 1 error(s)"


@pytest.mark.parametrize(
    ("text", "line", "column", "source"),
    [
        ("a: 1\n  b: 2\n", 2, 4, "  b: 2"),
        ("a: 1\nb:\n\tc: 2\n", 3, 1, "\tc: 2"),
        ("a: {b: 1\nc: 2\n", 2, 2, "c: 2"),
        ("a: 1\r\nb: {x: 1\r\n  y: 2: 3\r\n", 3, 4, "  y: 2: 3"),  # CRLF: lines as YAML counts
    ],
)
def test_yaml_syntax_problems_carry_column_and_line_text(
    text: str, line: int, column: int, source: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules(text, "r.yaml")
    [problem] = info.value.problems
    assert (problem.line, problem.column, problem.source) == (line, column, source)
    assert str(problem).startswith(f"r.yaml:{line}:{column}: invalid YAML: ")
    shown, caret = problem.excerpt()
    assert shown == f" {line} | {source}"
    # The caret sits under the column, tabs in the text kept as tabs.
    under = caret.split(" | ", 1)[1]
    assert len(under) == column and under.endswith("^")
    assert under[:-1] == "".join("\t" if c == "\t" else " " for c in source[: column - 1])


def test_a_yaml_error_at_the_end_of_the_file_says_so() -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules('channels: {alerts: "#a"\n', "r.yaml")
    [problem] = info.value.problems
    assert problem.message.endswith("at the end of the file")
    assert str(problem).startswith("r.yaml:2:1: invalid YAML: ")
    assert problem.excerpt() == []


# --- check-config: a rule that can never match --------------------------------------------


def test_check_config_warns_of_a_rule_that_can_never_match(tmp_path: Path) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    anchor = "  - name: high-error-rate\n"
    assert text.count(anchor) == 1
    added = (
        "  - name: order-api-slow\n"
        "    matchers: ['alertname=\"HighResponseTime\"', 'service=\"order-api\"']\n"
        "    severity: P1\n"
        "    category: performance\n"
    )
    text = text.replace(anchor, added + anchor)  # right after high-response-time
    rules = tmp_path / "routing_rules.yaml"
    rules.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    new = lines.index("  - name: order-api-slow") + 1
    old = lines.index("  - name: high-response-time") + 1
    names = [r.name for r in load_rules(rules).rules]
    index, by = names.index("order-api-slow"), names.index("high-response-time")

    done = receiver("check-config", str(rules), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{rules}: OK: {summarize(load_rules(rules))} (1 warning(s))"
    ]
    assert done.stderr.splitlines() == [
        f"{rules}:{new}: rules[{index}]: warning: rule 'order-api-slow' can never match: "
        f"the earlier rule 'high-response-time' ({rules}:{old}, rules[{by}]) matches every "
        "alert it matches, and the first match wins"
    ]


def test_check_config_on_the_shipped_rules_warns_of_nothing(tmp_path: Path) -> None:
    done = receiver("check-config", str(SHIPPED), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout == f"{SHIPPED}: OK: {summarize(load_rules(SHIPPED))}\n"
