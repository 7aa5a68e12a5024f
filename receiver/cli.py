"""The ``receiver`` command line; no business logic lives here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from receiver import passwd
from receiver.config.durations import format_duration
from receiver.config.loader import ConfigError, Problem, check_rules, load_rules, summarize
from receiver.config.models import RulesConfig
from receiver.domain.explain import route_report, triage_report
from receiver.domain.oncall import rotations_now


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


DESCRIPTION = """\
The alert receiver: takes Prometheus Alertmanager webhooks (POST /webhook) and turns
them into incidents, classified by routing_rules.yaml (severity P0-P3, category, owning
team), with a JIRA issue, Slack messages and pages that escalate until acknowledged."""

EPILOG = """\
first steps:
  receiver check-config            is routing_rules.yaml valid?
  receiver route-test alertname=HighResponseTime service=order-api severity=warning
                                   what would such an alert become, and whom would it page?
  receiver oncall                  who is on call now, and until when
  receiver serve                   run on 127.0.0.1:9095 with SQLite in ./receiver.db;
                                   JIRA and Slack only log until their settings are given

Settings come from RECEIVER_* environment variables (RECEIVER_RULES, RECEIVER_HOST,
RECEIVER_PORT, RECEIVER_DATABASE_URL, tokens for the webhook, the API, JIRA and Slack);
the flags of serve win. "receiver COMMAND --help" tells more about each command."""

SERVE_EPILOG = """\
database URLs (--database-url, RECEIVER_DATABASE_URL):
  sqlite:///relative/path.db   a SQLite file relative to the working directory
                               (the default is sqlite:///receiver.db)
  sqlite:////absolute/path.db  a SQLite file at an absolute path (four slashes)
  postgresql://user:pass@host:5432/db
                               PostgreSQL (also postgres://), which several replicas
                               may share; the password may instead come from PGPASSWORD

JIRA runs for real with RECEIVER_JIRA_URL and RECEIVER_JIRA_TOKEN (and RECEIVER_JIRA_USER
for JIRA Cloud); Slack messages, pages, announcements and the digest with
RECEIVER_SLACK_TOKEN. Without them a channel is log-only: it logs what it would send.
Listening on a non-loopback address needs RECEIVER_WEBHOOK_TOKEN and RECEIVER_API_TOKEN
(or RECEIVER_ALLOW_UNAUTHENTICATED=true).

Logs are JSON lines on stderr (RECEIVER_LOG_FORMAT=console for people): one
"receiver_started" line once the port is bound, with the address, the rules, the
database and the live and log-only notifiers; one "receiver_stopped" line on exit.
SIGTERM or SIGINT stops it gracefully, SIGHUP reloads the rules file.

exit status:
  0  stopped by SIGTERM or SIGINT
  1  cannot run: the address is in use or not this host's, the database cannot be opened
  2  bad configuration: the rules file is missing, unreadable or invalid, a setting or
     the database URL is malformed, or a non-loopback address lacks its tokens"""

CHECK_EPILOG = """\
exit status:
  0  valid: one summary line on stdout; warnings (a rule that can never match because
     an earlier one catches all it matches) on stderr
  1  invalid: every error on stderr, with file, line and YAML path"""

ROUTE_TEST_EPILOG = """\
examples:
  receiver route-test alertname=ServiceDown service=order-api --at 2026-12-24T23:00:00+09:00
  receiver route-test --report "로그인이 안 돼요" --browser "Safari 18"

A maintenance window of the rules file that applies at --at is shown, with its end; windows
made through the API are the server's: GET /api/v1/maintenance?at=...

exit status: 0 answered, 1 invalid rules file, 2 bad arguments"""

ONCALL_EPILOG = """\
exit status: 0 answered, 1 invalid rules file or unknown rotation, 2 bad arguments"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="receiver", description=DESCRIPTION, epilog=EPILOG, formatter_class=raw
    )
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")
    rules_help = "rules file (default: RECEIVER_RULES, else routing_rules.yaml)"
    at_help = "ISO 8601 time with an offset, e.g. 2026-12-24T23:00:00+09:00 (default: now)"

    what = "run the service: the webhook, the API, /metrics and the delivery workers"
    serve = sub.add_parser(
        "serve", help=what, description=what, epilog=SERVE_EPILOG, formatter_class=raw
    )
    serve.add_argument("--rules", metavar="PATH", help=rules_help)
    serve.add_argument("--host", help="listen address (RECEIVER_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (RECEIVER_PORT, default 9095)")
    serve.add_argument(
        "--database-url",
        metavar="URL",
        help="where incidents are kept (RECEIVER_DATABASE_URL, default sqlite:///receiver.db)",
    )

    what = "validate a rules file: a summary, or every error with its line"
    check = sub.add_parser(
        "check-config", help=what, description=what, epilog=CHECK_EPILOG, formatter_class=raw
    )
    check.add_argument("path", nargs="?", default=None, metavar="PATH", help=rules_help)

    what = "show what an alert with these labels becomes, and whom it pages"
    test = sub.add_parser(
        "route-test",
        help=what,
        description="show what an alert with these labels becomes: rule, severity, category,\n"
        "team, incident key, JIRA project and priority, and whom the first escalation step\n"
        "pages at --at, at once or deferred (and until when)",
        epilog=ROUTE_TEST_EPILOG,
        formatter_class=raw,
    )
    test.add_argument("--rules", metavar="PATH", default=None, help=rules_help)
    test.add_argument("--at", type=_time, default=None, metavar="TIME", help=at_help)
    test.add_argument("--json", action="store_true", help="one JSON object on stdout")
    test.add_argument(
        "labels", nargs="*", type=_label, metavar="NAME=VALUE", help="the alert's labels"
    )
    tried = test.add_argument_group(
        "a beta-tester report instead of an alert (its triage by the rules' reports section)"
    )
    tried.add_argument("--report", metavar="TITLE", help="the report's title")
    tried.add_argument("--description", metavar="TEXT", default=None, help="its description")
    tried.add_argument("--category", metavar="NAME", default=None, help="the category chosen")
    tried.add_argument("--os", metavar="OS", default=None, help="the reported OS")
    tried.add_argument("--browser", metavar="BROWSER", default=None, help="the reported browser")

    what = "show who is on call now (or at --at) for every rotation or one, until when"
    oncall = sub.add_parser(
        "oncall", help=what, description=what, epilog=ONCALL_EPILOG, formatter_class=raw
    )
    oncall.add_argument(
        "rotation", nargs="?", default=None, metavar="ROTATION", help="default: every rotation"
    )
    oncall.add_argument("--rules", metavar="PATH", default=None, help=rules_help)
    oncall.add_argument("--at", type=_time, default=None, metavar="TIME", help=at_help)
    oncall.add_argument("--json", action="store_true", help="one JSON object on stdout")

    passwd.add_parser(sub, rules_help)

    what = "point the Telegram bot's webhook at this receiver (RECEIVER_TELEGRAM_* settings)"
    hook = sub.add_parser("telegram-webhook", help=what, description=what)
    hook.add_argument("url", metavar="URL", help="https://.../telegram/webhook as Telegram sees it")
    return parser


def _default_rules() -> str:
    from receiver.settings import Settings

    return Settings().rules


def _print_problems(problems: Sequence[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)
        for line in problem.excerpt():
            print(line, file=sys.stderr)


def cmd_check_config(path: str | None) -> int:
    """Validate a rules file; print a summary (and warnings) or every error."""
    path = path or _default_rules()
    try:
        cfg, warnings = check_rules(path)
    except ConfigError as exc:
        _print_problems(exc.problems)
        print(f"{path}: {len(exc.problems)} error(s)", file=sys.stderr)
        return 1
    _print_problems(warnings)
    note = f" ({len(warnings)} warning(s))" if warnings else ""
    print(f"{path}: OK: {summarize(cfg)}{note}")
    return 0


def cmd_route_test(
    rules: str | None, at: datetime | None, as_json: bool, labels: Sequence[tuple[str, str]],
    args: argparse.Namespace | None = None,
) -> int:  # fmt: skip
    """Print what an alert with these labels (or a report, with --report) becomes."""
    cfg = _load(rules)
    if cfg is None:
        return 1
    when = at or datetime.now(UTC)
    if args is not None and args.report is not None:
        if args.category is not None and args.category not in cfg.categories:
            known = ", ".join(cfg.categories)
            print(f"receiver route-test: unknown category {args.category!r} ({known})",
                  file=sys.stderr)  # fmt: skip
            return 2
        report = triage_report(
            cfg, args.report, when, description=args.description, category=args.category,
            os=args.os, browser=args.browser,
        )  # fmt: skip
    else:
        report = route_report(cfg, dict(labels), when)
    if as_json:
        print(json.dumps(report))
        return 0
    if report.get("heartbeat"):
        beat = cfg.heartbeats[report["heartbeat"]]
        print(f"heartbeat:    {report['heartbeat']}: a sign of life, this alert opens no incident "
              f"(expected every {format_duration(beat.every)}, "
              f"grace {format_duration(beat.grace)})")  # fmt: skip
        return 0
    jira = report["jira"]
    print(f"rule:         {report['rule'] or '(no triage rule matched: the defaults)'}")
    print(f"severity:     {report['severity']}")
    print(f"category:     {report['category']}")
    print(f"team:         {report['team']}")
    print(f"incident key: {report['incident_key']}")
    print(
        f"jira:         project {jira['project']}, priority {jira['priority']}, "
        f"type {jira['issue_type']}"
    )
    window = report.get("maintenance")
    if window:
        what = "pages held until it ends" if window["held"] else "pages anyway (ignore_maintenance)"
        reason = f" ({window['reason']})" if window["reason"] else ""
        print(f"maintenance:  window {window['name']}{reason} until {window['until']}: {what}")
    if not report["pages"]:
        print("pages:        nobody (this severity never pages)")
    for page in report["pages"]:
        due = f"deferred until {page['at']}" if page["deferred"] else f"immediately ({page['at']})"
        how = ""
        if page["channels"] != ["slack"]:  # said when it is not the default
            how = f", by {', then '.join(page['channels'])}"
            if page["channels"][1:]:
                how += f" (each after {page['page_retry']} without an ack)"
        print(f"page:         {page['person']} via {page['target']}, {due}{how}")
    return 0


def _load(rules: str | None) -> RulesConfig | None:
    path = rules or _default_rules()
    try:
        return load_rules(path)
    except ConfigError as exc:
        _print_problems(exc.problems)
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
    rows = rotations_now(cfg, at or datetime.now(UTC), [rotation] if rotation else None)
    if as_json:
        print(json.dumps({"oncall": [r.as_json() for r in rows]}))
        return 0
    for r in rows:
        o, note = r.oncall, " (override)" if r.oncall.override else ""
        name, until = cfg.people[o.person].name, o.shift_end.isoformat()
        print(f"{o.rotation:<12} {o.person:<10} {name:<20} until {until}{note}")
        if (who := r.paged_instead) is not None and r.business_hours_from is not None:
            paged = f"{who.person} ({cfg.people[who.person].name}) of {who.rotation}"
            back = r.business_hours_from.isoformat()
            print(f"{'':<12} off hours until {back}: paged instead: {paged}")
    return 0


# Exit codes of serve (the ones check-config, route-test and oncall use are in their help).
EXIT_CANNOT_RUN = 1
EXIT_BAD_CONFIG = 2


def _serve_error(message: str) -> None:
    print(f"receiver serve: {message}", file=sys.stderr)


def _rules_error(problems: Sequence[Problem]) -> str:
    """Every rules problem in one line: the first one, and how to see the rest."""
    first = problems[0]
    if len(problems) > 1:
        return (
            f"{first} (and {len(problems) - 1} more: "
            f"receiver check-config {first.file} lists them all)"
        )
    if first.message.startswith("cannot read file") and not os.path.lexists(first.file):
        return f"{first} (give --rules PATH or RECEIVER_RULES)"
    return str(first)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the service until SIGINT or SIGTERM."""
    import asyncio

    from pydantic import ValidationError

    from receiver.api.edge import CannotListen
    from receiver.api.serving import serve
    from receiver.app import create_app, settle_heap
    from receiver.logging import configure_logging
    from receiver.settings import Settings
    from receiver.store import StoreUnavailable

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
            _serve_error(f"setting {'.'.join(map(str, err['loc']))}: {err['msg']}")
        return EXIT_BAD_CONFIG
    configure_logging(settings.log_format, settings.log_level)
    if (problem := settings.startup_problem()) is not None:
        _serve_error(problem)
        return EXIT_BAD_CONFIG
    try:
        app = create_app(settings, handle_signals=True)
    except ConfigError as exc:
        _serve_error(_rules_error(exc.problems))
        return EXIT_BAD_CONFIG
    except ValueError as exc:  # the database URL
        _serve_error(str(exc))
        return EXIT_BAD_CONFIG
    app.on_startup.append(settle_heap)  # after the store and every loop have started
    try:
        asyncio.run(serve(app, settings))
    except (CannotListen, StoreUnavailable) as exc:
        _serve_error(str(exc))
        return EXIT_CANNOT_RUN
    return 0


def cmd_telegram_webhook(url: str) -> int:
    """Set the bot's webhook to ``url`` with the receiver's secret; print what Telegram says."""
    import asyncio

    from receiver.notify.telegram import TelegramClient, WebhookRefused
    from receiver.settings import Settings

    settings = Settings()
    token, secret = settings.telegram_token, settings.telegram_webhook_secret
    if token is None or secret is None:
        print("receiver telegram-webhook: set RECEIVER_TELEGRAM_TOKEN and "
              "RECEIVER_TELEGRAM_WEBHOOK_SECRET first", file=sys.stderr)  # fmt: skip
        return EXIT_BAD_CONFIG
    if not url.startswith("https://") and not url.startswith("http://127.0.0.1"):
        print("receiver telegram-webhook: Telegram calls only https:// addresses", file=sys.stderr)
        return EXIT_BAD_CONFIG
    client = TelegramClient(token.get_secret_value(), settings.telegram_api_url)
    try:
        info = asyncio.run(client.set_webhook(url, secret.get_secret_value()))
    except WebhookRefused as exc:
        print(f"receiver telegram-webhook: {exc}", file=sys.stderr)
        return 1
    print(f"webhook: {info['url']} (pending updates: {info['pending']})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch a subcommand; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "route-test" and (args.report is None) == (not args.labels):
        parser.error("route-test: give an alert's labels (NAME=VALUE) or --report TITLE")
    if args.command == "check-config":
        return cmd_check_config(args.path)
    if args.command == "route-test":
        return cmd_route_test(args.rules, args.at, args.json, args.labels, args)
    if args.command == "oncall":
        return cmd_oncall(args.rules, args.rotation, args.at, args.json)
    if args.command == "passwd":
        return passwd.cmd_passwd(args)
    if args.command == "telegram-webhook":
        return cmd_telegram_webhook(args.url)
    return cmd_serve(args)
