"""``receiver passwd PERSON`` against a real SQLite database, and the password helpers."""

from __future__ import annotations

import asyncio
import getpass
import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest
import time_machine
from argon2 import PasswordHasher

from receiver.cli import main
from receiver.console import passwords
from receiver.console.passwords import hash_password, needs_rehash, verify_password
from receiver.store import store_from_url
from tests.helpers import SHIPPED_RULES

RULES = str(SHIPPED_RULES)  # kim is Kim Minjun, kim@example.com
SET_AT = datetime(2026, 12, 24, 9, 30, tzinfo=UTC)
GOOD = "correct horse battery staple"
DONE = "password set for kim (Kim Minjun); their console sessions from before now end\n"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/receiver.db"


@pytest.fixture
def clock() -> Iterator[None]:
    """The command's clock, stopped at SET_AT (no test depends on today's date)."""
    with time_machine.travel(SET_AT, tick=False):
        yield


class Terminal(io.StringIO):
    """Standard input that is a terminal: the command asks with getpass instead of reading."""

    def isatty(self) -> bool:
        return True


def stored(url: str, person: str = "kim") -> tuple[str, datetime] | None:
    async def read() -> tuple[str, datetime] | None:
        store = store_from_url(url)
        await store.open()
        try:
            return await store.password(person)
        finally:
            await store.close()

    return asyncio.run(read())


def passwd(monkeypatch: pytest.MonkeyPatch, stdin: str | io.StringIO, *args: str) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin) if isinstance(stdin, str) else stdin)
    return main(["passwd", "--rules", RULES, *args])


def typed(monkeypatch: pytest.MonkeyPatch, *answers: str | BaseException) -> list[str]:
    """A terminal on which the person types ``answers``; the prompts it showed."""
    prompts: list[str] = []
    left = list(answers)

    def fake_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        prompts.append(prompt)
        answer = left.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    monkeypatch.setattr(sys, "stdin", Terminal(""))
    return prompts


# --- from standard input ----------------------------------------------------------------------


@pytest.mark.usefixtures("clock")
def test_a_password_from_stdin_is_stored_as_an_argon2id_hash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    assert passwd(monkeypatch, f"{GOOD}\nthe second line is not read\n", "kim",
                  "--database-url", url) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert (out, err) == (DONE, "")
    found = stored(url)
    assert found is not None
    hashed, set_at = found
    assert hashed.startswith("$argon2id$") and GOOD not in hashed
    assert set_at == SET_AT
    assert verify_password(hashed, GOOD)
    assert not verify_password(hashed, GOOD + "\n") and not verify_password(hashed, "wrong")
    assert not needs_rehash(hashed)
    assert stored(url, "lee") is None  # nobody else's


@pytest.mark.parametrize(
    ("line", "password"),
    [
        ("  spaces are kept \n", "  spaces are kept "),
        ("a line break from Windows\r\n", "a line break from Windows"),
        ("no line break at the end", "no line break at the end"),
    ],
)
def test_only_the_line_break_is_taken_off(
    monkeypatch: pytest.MonkeyPatch, url: str, line: str, password: str
) -> None:
    assert passwd(monkeypatch, line, "kim", "--database-url", url) == 0
    found = stored(url)
    assert found is not None and verify_password(found[0], password)


def test_the_database_url_may_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("RECEIVER_DATABASE_URL", url)
    assert passwd(monkeypatch, GOOD, "kim") == 0
    assert stored(url) is not None


def test_setting_again_replaces_the_hash_and_moves_set_at(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    with time_machine.travel(SET_AT, tick=False):
        assert passwd(monkeypatch, GOOD, "kim", "--database-url", url) == 0
    first = stored(url)
    later = SET_AT + timedelta(days=30)
    with time_machine.travel(later, tick=False):
        assert passwd(monkeypatch, "a brand new passphrase", "kim", "--database-url", url) == 0
    second = stored(url)
    assert first is not None and second is not None
    assert second[1] == later and first[1] == SET_AT
    assert not verify_password(second[0], GOOD)
    assert verify_password(second[0], "a brand new passphrase")


# --- refused: nothing stored ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("person", "said"),
    [
        ("kmi", f"no person 'kmi' in {RULES}; did you mean kim?"),
        ("Kim", f"no person 'Kim' in {RULES}; did you mean kim?"),
        ("zzz", f"no person 'zzz' in {RULES} (people: cho, choi, han, jang, jung, kang, kim, "
                "kwon, ... (15 in all))"),
    ],
)  # fmt: skip
def test_an_unknown_person_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    person: str,
    said: str,
) -> None:
    url = f"sqlite:///{tmp_path}/receiver.db"
    assert passwd(monkeypatch, GOOD, person, "--database-url", url) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == f"receiver passwd: {said}\n"
    assert not (tmp_path / "receiver.db").exists()  # not even opened


@pytest.mark.parametrize(
    ("password", "said"),
    [
        ("", "is too short: at least 12 characters"),
        ("elevenchars", "is too short: at least 12 characters"),
        ("x" * 1025, "is too long: at most 1024 characters"),
        ("kim@example.com", "must not be the person's id or e-mail address"),
        ("KIM@Example.com", "must not be the person's id or e-mail address"),
    ],
)
def test_a_weak_password_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    password: str,
    said: str,
) -> None:
    assert passwd(monkeypatch, password + "\n", "kim", "--database-url", url) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"receiver passwd: the password {said}; nothing changed\n")
    assert stored(url) is None


@pytest.mark.parametrize("password", ["twelve chars", "y" * 1024])
def test_the_length_limits_are_inclusive(
    monkeypatch: pytest.MonkeyPatch, url: str, password: str
) -> None:
    assert passwd(monkeypatch, password, "kim", "--database-url", url) == 0
    found = stored(url)
    assert found is not None and verify_password(found[0], password)


def test_empty_stdin_stores_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    assert passwd(monkeypatch, "", "kim", "--database-url", url) == 1
    assert "no password on standard input" in capsys.readouterr().err
    assert stored(url) is None


def test_a_bad_database_url_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert passwd(monkeypatch, GOOD, "kim", "--database-url", "mysql://db/receiver") == 2
    assert "unsupported database URL scheme 'mysql'" in capsys.readouterr().err


# --- on a terminal ----------------------------------------------------------------------------


@pytest.mark.usefixtures("clock")
def test_on_a_terminal_it_asks_twice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    prompts = typed(monkeypatch, GOOD, GOOD)
    assert main(["passwd", "kim", "--rules", RULES, "--database-url", url]) == 0
    assert prompts == ["New password for Kim Minjun (kim): ", "Again: "]
    assert capsys.readouterr().out == DONE
    found = stored(url)
    assert found is not None and verify_password(found[0], GOOD) and found[1] == SET_AT


@pytest.mark.parametrize(
    ("answers", "said"),
    [
        ((GOOD, GOOD + "!"), "the passwords differ; nothing changed"),
        ((EOFError(),), "cancelled; nothing changed"),
        ((GOOD, KeyboardInterrupt()), "cancelled; nothing changed"),
    ],
)
def test_on_a_terminal_a_mismatch_or_cancel_stores_nothing(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    answers: tuple[str | BaseException, ...],
    said: str,
) -> None:
    typed(monkeypatch, *answers)
    assert main(["passwd", "kim", "--rules", RULES, "--database-url", url]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.strip().endswith(f"receiver passwd: {said}")
    assert stored(url) is None


# --- the real command -------------------------------------------------------------------------


def test_the_command_as_a_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/receiver.db"
    done = subprocess.run(
        [sys.executable, "-m", "receiver", "passwd", "kim", "--rules", RULES,
         "--database-url", url],
        input=GOOD + "\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, DONE, "")
    found = stored(url)
    assert found is not None and verify_password(found[0], GOOD)
    helped = subprocess.run(
        [sys.executable, "-m", "receiver", "passwd", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert helped.returncode == 0
    for words in ("PERSON", "first line of", "argon2id", "exit status"):
        assert words in helped.stdout


# --- the helpers the console signs in with ----------------------------------------------------


GARBLED = [
    "",
    "not a hash",
    "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$garbled",
    "$argon2id$v=19$m=65536,t=3,p=4$",
    "$2b$12$KIXQJ1mS0nQ8G5X1Yc6rUeV0wH0Jj6b1Q1R3dQk0n5cHq3y6yq7y.",  # bcrypt
    "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",  # refused parameters
]


@pytest.mark.parametrize("hashed", GARBLED)
def test_a_garbled_hash_verifies_nothing_and_raises_nothing(hashed: str) -> None:
    assert verify_password(hashed, GOOD) is False
    assert needs_rehash(hashed) is True


def test_no_hash_verifies_nothing_but_costs_a_verification(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked: list[str] = []

    class Recording(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            checked.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(passwords, "HASHER", Recording())
    assert verify_password(None, GOOD) is False
    assert verify_password(None, "") is False
    assert len(checked) == 2 and checked[0] == checked[1]  # one dummy hash, made once
    assert checked[0].startswith("$argon2id$")


def test_an_older_hash_needs_rehashing() -> None:
    older = PasswordHasher(time_cost=1, memory_cost=8192).hash(GOOD)
    assert verify_password(older, GOOD)
    assert needs_rehash(older)
    assert not needs_rehash(hash_password(GOOD))
