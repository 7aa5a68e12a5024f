"""The console's sessions and sign-in attempts, apart from HTTP.

A session is a signed cookie (itsdangerous, keyed with RECEIVER_UI_SECRET) holding who
signed in, how, when, the set time of the password they signed in with (a new password ends
every session from before it) and the session's CSRF token. Its age is judged by the
receiver's clock, not the signer's, so tests and a shifted clock see the same expiry.
"""

from __future__ import annotations

import hmac
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from itsdangerous import BadSignature, URLSafeSerializer

SESSION_COOKIE = "receiver_session"
LOGIN_COOKIE = "receiver_login"  # the sign-in form's CSRF token, before there is a session
LANG_COOKIE = "receiver_lang"
# A session lasts a working day and a night on call; then the person signs in again.
MAX_AGE = timedelta(hours=12)
_SALT_SESSION = "receiver.console.session"
_SALT_LOGIN = "receiver.console.login"


@dataclass(frozen=True)
class Session:
    """Who is signed in, how (``password`` or ``sso``), since when, and the session's CSRF
    token; ``password_set`` is the set time of the password they signed in with."""

    person: str
    via: Literal["password", "sso"]
    issued: datetime
    csrf: str
    password_set: float | None = None

    def expired(self, now: datetime) -> bool:
        return not self.issued - timedelta(minutes=5) <= now < self.issued + MAX_AGE


def new_session(
    person: str, via: Literal["password", "sso"], now: datetime, password_set: float | None
) -> Session:
    return Session(person, via, now, secrets.token_urlsafe(32), password_set)


def same_token(given: str | None, expected: str) -> bool:
    """A CSRF token compared in constant time; a missing one never matches."""
    if not given or not expected:
        return False
    try:
        return hmac.compare_digest(given.encode(), expected.encode())
    except UnicodeEncodeError:
        return False


class Signer:
    """Signs and reads the console's cookies with the secret."""

    def __init__(self, secret: str) -> None:
        self._session = URLSafeSerializer(secret, salt=_SALT_SESSION)
        self._login = URLSafeSerializer(secret, salt=_SALT_LOGIN)

    def dump(self, session: Session) -> str:
        return self._session.dumps(
            [session.person, session.via, session.issued.timestamp(), session.csrf,
             session.password_set]
        )  # fmt: skip

    def load(self, cookie: str | None) -> Session | None:
        """The session of a cookie, or None for a missing, forged or malformed one."""
        if not cookie or len(cookie) > 4096:
            return None
        try:
            raw = self._session.loads(cookie)
        except BadSignature:
            return None
        if not (isinstance(raw, list) and len(raw) == 5):
            return None
        person, via, issued, csrf, password_set = raw
        if not (isinstance(person, str) and via in ("password", "sso") and isinstance(csrf, str)):
            return None
        if not isinstance(issued, int | float) or isinstance(issued, bool):
            return None
        if password_set is not None and not isinstance(password_set, int | float):
            return None
        return Session(person, via, datetime.fromtimestamp(issued, UTC), csrf,
                       password_set)  # fmt: skip

    def login_token(self) -> tuple[str, str]:
        """A fresh token for the sign-in form and the cookie that vouches for it."""
        token = secrets.token_urlsafe(32)
        return token, self._login.dumps(token)

    def login_token_of(self, cookie: str | None) -> str | None:
        if not cookie or len(cookie) > 512:
            return None
        try:
            token = self._login.loads(cookie)
        except BadSignature:
            return None
        return token if isinstance(token, str) else None


@dataclass(frozen=True)
class Throttled:
    """Sign-in refused for now: too many failures; try again after ``retry_after``."""

    retry_after: timedelta


class Throttle:
    """Failed sign-ins counted per person and per client address in a sliding window: the
    person's limit stops guessing one password, the address's limit stops trying many
    people from one place. In memory: each replica counts its own (a guesser spread over
    replicas gets their number times the limit). Bounded in the keys it remembers."""

    def __init__(
        self,
        per_person: int = 5,
        per_address: int = 20,
        window: timedelta = timedelta(minutes=15),
        max_keys: int = 10_000,
    ) -> None:
        self.per_person = per_person
        self.per_address = per_address
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, deque[datetime]] = {}

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        found = self._failures.get(key)
        if found is None:
            return deque()
        while found and found[0] <= now - self.window:
            found.popleft()
        if not found:
            del self._failures[key]
        return found

    def check(self, person: str, address: str, now: datetime) -> Throttled | None:
        """Whether a sign-in may be tried now."""
        for key, limit in ((f"p:{person}", self.per_person), (f"a:{address}", self.per_address)):
            recent = self._recent(key, now)
            if len(recent) >= limit:
                return Throttled(recent[0] + self.window - now)
        return None

    def failed(self, person: str, address: str, now: datetime) -> None:
        while self._failures and len(self._failures) > self.max_keys - 2:
            stalest = min(self._failures, key=lambda k: self._failures[k][-1])
            del self._failures[stalest]  # room for this failure's two keys
        for key in (f"p:{person}", f"a:{address}"):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, person: str, address: str) -> None:
        """A sign-in that worked: the person's count is cleared, and the address's last
        count (made before the check) taken back."""
        self._failures.pop(f"p:{person}", None)
        found = self._failures.get(f"a:{address}")
        if found:
            found.pop()
            if not found:
                del self._failures[f"a:{address}"]
