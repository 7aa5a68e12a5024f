"""The ``receiver`` command line; no business logic lives here."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from receiver.config.loader import ConfigError, load_rules, summarize
from receiver.config.models import RulesConfig
from receiver.domain.oncall import oncall_at, step_zero_pages
from receiver.domain.routing import route


def _time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give an offset, e.g. {text}+09:00")
    return value


def _label(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="receiver", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--rules", help="rules file (RECEIVER_RULES)")
    serve.add_argument("--host", help="listen address (RECEIVER_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (RECEIVER_PORT, default 9095)")
    serve.add_argument("--database-url", help="sqlite:///path (RECEIVER_DATABASE_URL)")

    check = sub.add_parser("check-config", help="validate a rules file")
    check.add_argument("path", nargs="?", default=None)

    test = sub.add_parser("route-test", help="show what an alert with these labels becomes")
    test.add_argument("--rules", default=None)
    test.add_argument("--at", type=_time, default=None, help="ISO 8601 time, default now")
    test.add_argument("--json", action="store_true")
    test.add_argument("labels", nargs="+", type=_label, metavar="NAME=VALUE")

    oncall = sub.add_parser("oncall", help="who is on call now or at --at")
    oncall.add_argument("rotation", nargs="?", default=None)
    oncall.add_argument("--rules", default=None)
    oncall.add_argument("--at", type=_time, default=None, help="ISO 8601 time, default now")
    oncall.add_argument("--json", action="store_true")
    return parser


def _default_rules() -> str:
    from receiver.settings import Settings

    return Settings().rules


def cmd_check_config(path: str | None) -> int:
    """Validate a rules file; print a summary or every error."""
    path = path or _default_rules()
    try:
        cfg = load_rules(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{path}: {len(exc.problems)} error(s)", file=sys.stderr)
        return 1
    print(f"{path}: OK: {summarize(cfg)}")
    return 0


def route_report(cfg: RulesConfig, labels: dict[str, str], at: datetime) -> dict[str, Any]:
    """The route-test answer as a JSON-ready object."""
    r = route(cfg, labels)

    return {
        "rule": r.rule,
        "severity": r.severity,
        "category": r.category,
        "team": r.team,
        "incident_key": r.key,
        "jira": {
            "project": r.jira_project,
            "priority": r.jira_priority,
            "issue_type": r.issue_type,
        },
        "pages": [p.as_json() for p in step_zero_pages(cfg, r.team, r.severity, at)],
    }


def cmd_route_test(
    rules: str | None, at: datetime | None, as_json: bool, labels: Sequence[tuple[str, str]]
) -> int:
    """Print what an alert with these labels becomes."""
    cfg = _load(rules)
    if cfg is None:
        return 1
    report = route_report(cfg, dict(labels), at or datetime.now(UTC))
    if as_json:
        print(json.dumps(report))
        return 0
    jira = report["jira"]
    print(f"rule:         {report['rule']}")
    print(f"severity:     {report['severity']}")
    print(f"category:     {report['category']}")
    print(f"team:         {report['team']}")
    print(f"incident key: {report['incident_key']}")
    print(
        f"jira:         project {jira['project']}, priority {jira['priority']}, "
        f"type {jira['issue_type']}"
    )
    if not report["pages"]:
        print("pages:        nobody (this severity never pages)")
    for page in report["pages"]:
        when = f"deferred until {page['at']}" if page["deferred"] else f"immediately ({page['at']})"
        print(f"page:         {page['person']} via {page['target']}, {when}")
    return 0


def _load(rules: str | None) -> RulesConfig | None:
    path = rules or _default_rules()
    try:
        return load_rules(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def cmd_oncall(rules: str | None, rotation: str | None, at: datetime | None, as_json: bool) -> int:
    """Print who holds each rotation (or one) at a time, with the shift end."""
    cfg = _load(rules)
    if cfg is None:
        return 1
    if rotation is not None and rotation not in cfg.rotations:
        known = ", ".join(sorted(cfg.rotations))
        print(f"unknown rotation {rotation!r} (known: {known})", file=sys.stderr)
        return 1
    when = at or datetime.now(UTC)
    names = [rotation] if rotation else list(cfg.rotations)
    rows = [oncall_at(name, cfg.rotations[name], when) for name in names]
    if as_json:
        print(
            json.dumps(
                {
                    "oncall": [
                        {
                            "rotation": r.rotation,
                            "person": r.person,
                            "shift_end": r.shift_end.isoformat(),
                        }
                        for r in rows
                    ]
                }
            )
        )
        return 0
    for r in rows:
        person = cfg.people[r.person].name
        note = " (override)" if r.override else ""
        print(f"{r.rotation:<12} {r.person:<10} {person:<20} until {r.shift_end.isoformat()}{note}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the service until SIGINT or SIGTERM."""
    import asyncio

    from pydantic import ValidationError

    from receiver.api.edge import CannotListen, serve
    from receiver.app import create_app, settle_heap
    from receiver.logging import configure_logging
    from receiver.settings import Settings

    overrides = {
        k: v
        for k, v in {
            "rules": args.rules,
            "host": args.host,
            "port": args.port,
            "database_url": args.database_url,
        }.items()
        if v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            print(f"setting {'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    if (problem := settings.startup_problem()) is not None:
        print(problem, file=sys.stderr)
        return 2
    try:
        app = create_app(settings, handle_signals=True)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 1
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    app.on_startup.append(settle_heap)  # after the store and every loop have started
    try:
        asyncio.run(
            serve(
                app,
                settings.host,
                settings.port,
                header_timeout=settings.header_timeout_seconds,
                keepalive_timeout=settings.keepalive_timeout_seconds,
                shutdown_timeout=10.0,
            )
        )
    except CannotListen as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch a subcommand; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        return cmd_check_config(args.path)
    if args.command == "route-test":
        return cmd_route_test(args.rules, args.at, args.json, args.labels)
    if args.command == "oncall":
        return cmd_oncall(args.rules, args.rotation, args.at, args.json)
    return cmd_serve(args)
