"""The console's session cookies and sign-in throttle, apart from HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from itsdangerous import URLSafeSerializer

from receiver.console.session import MAX_AGE, Signer, Throttle, new_session, same_token
from tests.helpers import T0


def test_a_session_reads_back_as_signed() -> None:
    signer = Signer("k" * 40)
    session = new_session("kim", "password", T0, 1234.5)
    assert signer.load(signer.dump(session)) == session
    assert Signer("another key, just as long as the first").load(signer.dump(session)) is None


@pytest.mark.parametrize(
    "payload",
    [
        ["kim", "password", 1.0, "tok"],  # a field short
        ["kim", "root", 1.0, "tok", None],  # an unknown way in
        [7, "password", 1.0, "tok", None],
        ["kim", "password", "yesterday", "tok", None],
        ["kim", "password", True, "tok", None],
        ["kim", "password", 1.0, "tok", "set"],
        {"person": "kim"},
    ],
)
def test_a_signed_but_malformed_cookie_is_no_session(payload: object) -> None:
    key = "k" * 40
    cookie = URLSafeSerializer(key, salt="receiver.console.session").dumps(payload)
    assert Signer(key).load(cookie) is None


def test_garbage_cookies_are_no_session() -> None:
    signer = Signer("k" * 40)
    for cookie in (None, "", "x", "a.b.c", "€" * 10, "a" * 5000):
        assert signer.load(cookie) is None
        assert signer.login_token_of(cookie) is None


def test_the_login_token_is_vouched_for_by_its_cookie() -> None:
    signer = Signer("k" * 40)
    token, cookie = signer.login_token()
    assert signer.login_token_of(cookie) == token
    assert Signer("z" * 40).login_token_of(cookie) is None


def test_a_session_lasts_twelve_hours_by_the_receivers_clock() -> None:
    session = new_session("kim", "password", T0, None)
    assert not session.expired(T0)
    assert not session.expired(T0 + MAX_AGE - timedelta(seconds=1))
    assert session.expired(T0 + MAX_AGE)
    assert session.expired(T0 - timedelta(hours=1))  # issued in the future: a clock gone wrong


def test_csrf_tokens_compare_exactly() -> None:
    assert same_token("abc", "abc")
    assert not same_token("abd", "abc")
    assert not same_token(None, "abc") and not same_token("", "")
    assert not same_token("\udcff", "abc")


def test_failures_are_counted_per_person_and_per_address() -> None:
    throttle = Throttle(per_person=3, per_address=5, window=timedelta(minutes=15))
    for n in range(3):
        assert throttle.check("kim", "10.0.0.1", T0) is None
        throttle.failed("kim", "10.0.0.1", T0 + timedelta(minutes=n))
    held = throttle.check("kim", "10.0.0.2", T0 + timedelta(minutes=3))
    assert held is not None and held.retry_after == timedelta(minutes=12)
    assert throttle.check("lee", "10.0.0.2", T0 + timedelta(minutes=3)) is None
    throttle.failed("lee", "10.0.0.1", T0 + timedelta(minutes=3))
    throttle.failed("park", "10.0.0.1", T0 + timedelta(minutes=3))
    assert throttle.check("cho", "10.0.0.1", T0 + timedelta(minutes=4)) is not None  # address
    assert throttle.check("kim", "10.0.0.9", T0 + timedelta(minutes=15)) is None  # first aged
    throttle.succeeded("lee", "10.0.0.1")
    assert throttle.check("lee", "10.0.0.9", T0 + timedelta(minutes=4)) is None


def test_the_throttle_remembers_a_bounded_number_of_keys() -> None:
    throttle = Throttle(max_keys=10)
    for n in range(50):
        throttle.failed(f"p{n}", f"a{n}", T0 + timedelta(seconds=n))
    assert len(throttle._failures) <= 10
    assert throttle.check("p49", "a49", T0 + timedelta(seconds=50)) is None
