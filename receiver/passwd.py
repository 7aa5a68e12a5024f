"""``receiver passwd PERSON``: set a person's console password (SPEC §2, §11)."""

from __future__ import annotations

import argparse
import difflib
import getpass
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from receiver.config.loader import ConfigError, load_rules
from receiver.config.models import PersonConfig

MIN_LENGTH = 12
MAX_LENGTH = 1024
SHOWN_IDS = 8  # of the known people, when a name resembles none

EPILOG = f"""\
The password is asked twice on a terminal; otherwise it is the first line of standard
input (without its line break), e.g. from a secrets manager:
  pass show receiver/kim | receiver passwd kim
It must be {MIN_LENGTH} to {MAX_LENGTH} characters and not the person's id or e-mail address.
It is stored as an argon2id hash, replacing the person's old one: their console sessions
from before end.

exit status: 0 set, 1 not set (unknown person, password refused or mistyped, invalid
rules file, database not reachable), 2 bad arguments, settings or database URL"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], rules_help: str) -> None:
    """The ``passwd`` subcommand's arguments."""
    what = "set the console password of a person of the rules file"
    parser = sub.add_parser(
        "passwd",
        help=what,
        description=what,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("person", metavar="PERSON", help="a person id of the rules file")
    parser.add_argument("--rules", metavar="PATH", default=None, help=rules_help)
    parser.add_argument(
        "--database-url",
        metavar="URL",
        default=None,
        help="the service's database (RECEIVER_DATABASE_URL, default sqlite:///receiver.db)",
    )


def _error(message: str) -> None:
    print(f"receiver passwd: {message}", file=sys.stderr)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def unknown_person(person: str, known: list[str], path: str) -> str:
    """Why ``person`` cannot be given a password: the ids it resembles, or some known ones."""
    same = [k for k in known if k.casefold() == person.casefold()]  # Kim for kim
    close = same or difflib.get_close_matches(person, known, n=3, cutoff=0.6)
    if close:
        return f"no person {person!r} in {path}; did you mean {', '.join(close)}?"
    shown = ", ".join(sorted(known)[:SHOWN_IDS])
    more = f", ... ({len(known)} in all)" if len(known) > SHOWN_IDS else ""
    return f"no person {person!r} in {path} (people: {shown}{more})"


def password_problem(plain: str, person: str, who: PersonConfig) -> str | None:
    """Why a password is refused, or None when it will do."""
    if len(plain) < MIN_LENGTH:
        return f"the password is too short: at least {MIN_LENGTH} characters"
    if len(plain) > MAX_LENGTH:
        return f"the password is too long: at most {MAX_LENGTH} characters"
    guessable = {person.casefold()} | ({who.email.casefold()} if who.email else set())
    if plain.strip().casefold() in guessable:
        return "the password must not be the person's id or e-mail address"
    return None


def read_password(prompt_name: str) -> str | None:
    """The new password: asked twice on a terminal, else standard input's first line.
    None (after saying why on stderr) when it was not given or mistyped."""
    try:
        if sys.stdin.isatty():
            first = getpass.getpass(f"New password for {prompt_name}: ")
            if getpass.getpass("Again: ") != first:
                _error("the passwords differ; nothing changed")
                return None
            return first
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        _error("cancelled; nothing changed")
        return None
    line = sys.stdin.readline()
    if not line:
        _error("no password on standard input (give it as the first line); nothing changed")
        return None
    return line.removesuffix("\n").removesuffix("\r")


def cmd_passwd(args: argparse.Namespace, now: Callable[[], datetime] = _utcnow) -> int:
    """Set ``args.person``'s console password; the exit code."""
    import asyncio

    from pydantic import ValidationError

    from receiver.console.passwords import hash_password
    from receiver.settings import Settings
    from receiver.store import StoreUnavailable, store_from_url

    given = {"rules": args.rules, "database_url": args.database_url}
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            _error(f"setting {'.'.join(map(str, err['loc']))}: {err['msg']}")
        return 2
    try:
        cfg = load_rules(settings.rules)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    person = args.person
    who = cfg.people.get(person)
    if who is None:
        _error(unknown_person(person, list(cfg.people), settings.rules))
        return 1
    try:
        store = store_from_url(settings.database_url)
    except ValueError as exc:
        _error(str(exc))
        return 2
    plain = read_password(f"{who.name} ({person})")
    if plain is None:
        return 1
    if (refused := password_problem(plain, person, who)) is not None:
        _error(f"{refused}; nothing changed")
        return 1
    hashed = hash_password(plain)

    async def save() -> None:
        await store.open()
        try:
            await store.set_password(person, hashed, now())
        finally:
            await store.close()

    try:
        asyncio.run(save())
    except StoreUnavailable as exc:
        _error(f"{exc}; nothing changed")
        return 1
    print(f"password set for {person} ({who.name}); their console sessions from before now end")
    return 0
