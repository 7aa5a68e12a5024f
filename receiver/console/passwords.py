"""Console passwords: argon2id hashes (argon2-cffi's defaults), checked without raising."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error

# One hasher: its parameters are the library's current defaults (argon2id), and
# needs_rehash tells when a stored hash was made with older ones.
HASHER = PasswordHasher()


def hash_password(plain: str) -> str:
    """An argon2id hash of a password, with a fresh random salt."""
    return HASHER.hash(plain)


@cache
def _dummy_hash() -> str:
    # Made once, on first use (hashing takes tens of milliseconds: not at import).
    return HASHER.hash("nobody's password: verified against for people without one")


def _matches(hashed: str, plain: str) -> bool:
    try:
        return HASHER.verify(hashed, plain)
    except (Argon2Error, ValueError, TypeError):
        # A mismatch, or a hash that is garbled, of another scheme or with parameters the
        # library refuses (InvalidHashError and its kin are ValueErrors).
        return False


def verify_password(hashed: str | None, plain: str) -> bool:
    """Whether ``plain`` is the password of ``hashed``; False, never an exception, for a
    wrong password or a garbled hash. Without a hash (an unknown person, or one with no
    password) a verification against a dummy hash still runs, so the answer takes as long."""
    if hashed is None:
        _matches(_dummy_hash(), plain)
        return False
    return _matches(hashed, plain)


def needs_rehash(hashed: str) -> bool:
    """Whether a hash was made with other parameters than today's (or cannot be read):
    after a successful sign-in, store ``hash_password`` of the password again."""
    try:
        return HASHER.check_needs_rehash(hashed)
    except (Argon2Error, ValueError, TypeError):
        return True
