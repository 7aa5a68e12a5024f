"""Who may use the console: passwords, sessions, CSRF, the SSO header, the throttle."""

from __future__ import annotations

import asyncio

import pytest
from argon2 import PasswordHasher
from itsdangerous import URLSafeSerializer
from pydantic import SecretStr, ValidationError

from receiver.api.keys import CLOCK, STORE
from receiver.console.passwords import hash_password, needs_rehash
from receiver.console.session import LOGIN_COOKIE, SESSION_COOKIE
from receiver.settings import Settings
from tests.conftest import AUTH, ClientFactory
from tests.console.helpers import PASSWORD, set_password, sign_in, signed_in, token_of
from tests.helpers import FakeClock, alert, webhook

SECRET = "s" * 40


async def test_the_console_needs_a_session(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    for path in ("/ui/", "/ui/incidents/1", "/ui/reports", "/ui/oncall", "/ui/deliveries"):
        answer = await client.get(path, allow_redirects=False)
        assert answer.status == 303
        assert answer.headers["Location"].startswith("/ui/login?next=")
    answer = await client.post("/ui/incidents/1/act", data={"action": "acknowledge"},
                               allow_redirects=False)  # fmt: skip
    assert answer.status == 303


async def test_sign_in_sets_a_signed_http_only_lax_cookie(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await set_password(client, "kim")
    page = await client.get("/ui/login")
    assert page.status == 200
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    answer = await sign_in(client, "kim")
    assert answer.status == 303 and answer.headers["Location"] == "/ui/"
    cookie = answer.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/ui/"
    assert not cookie["secure"]  # plain HTTP on 127.0.0.1
    assert PASSWORD not in cookie.value
    home = await client.get("/ui/")
    assert home.status == 200
    assert "Kim Minjun" in await home.text()


async def test_e_mail_signs_in_too(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await set_password(client, "kim")
    answer = await sign_in(client, "KIM@example.com")
    assert answer.status == 303


async def test_wrong_password_unknown_person_and_no_password_are_one_answer(
    make_client: ClientFactory,
) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await set_password(client, "kim")
    texts = set()
    for person, password in (("kim", "wrong"), ("nobody", PASSWORD), ("lee", PASSWORD)):
        answer = await sign_in(client, person, password)
        assert answer.status == 401
        assert SESSION_COOKIE not in answer.cookies
        texts.add("login-error" in await answer.text())
    assert texts == {True}
    assert (await client.get("/ui/", allow_redirects=False)).status == 303


async def test_sign_in_is_throttled_per_person(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await set_password(client, "kim")
    for _ in range(5):
        assert (await sign_in(client, "kim", "guess")).status == 401
    held = await sign_in(client, "kim")  # the right password, but too soon
    assert held.status == 429
    assert 0 < int(held.headers["Retry-After"]) <= 15 * 60 + 1
    assert SESSION_COOKIE not in held.cookies
    clock.advance(minutes=15, seconds=1)
    assert (await sign_in(client, "kim")).status == 303


async def test_the_sign_in_form_needs_its_token(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await set_password(client, "kim")
    answer = await client.post("/ui/login", data={"person": "kim", "password": PASSWORD},
                               allow_redirects=False)  # fmt: skip
    assert answer.status == 403
    assert SESSION_COOKIE not in answer.cookies


async def test_a_post_without_its_csrf_token_changes_nothing(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    assert (await client.post("/webhook", json=webhook(alert()), headers=AUTH)).status == 200
    token = await signed_in(client, "kim")
    for data in ({"action": "acknowledge"}, {"action": "acknowledge", "csrf": token[:-2] + "xx"}):
        answer = await client.post("/ui/incidents/1/act", data=data, allow_redirects=False)
        assert answer.status == 403
        assert "error-message" in await answer.text()
    incident = await client.app[STORE].get_incident(1)
    assert incident is not None and incident.acknowledged_by is None
    ok = await client.post("/ui/incidents/1/act", data={"action": "acknowledge", "csrf": token},
                           allow_redirects=False)  # fmt: skip
    assert ok.status == 303
    incident = await client.app[STORE].get_incident(1)
    assert incident is not None and incident.acknowledged_by == "kim"


async def test_a_cookie_signed_with_another_secret_is_refused(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await set_password(client, "kim")
    stored = await client.app[STORE].password("kim")
    assert stored is not None
    forged = URLSafeSerializer("another-secret-" * 3, salt="receiver.console.session").dumps(
        ["kim", "password", stored[1].timestamp(), "tok", stored[1].timestamp()]
    )
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: forged})
    answer = await client.get("/ui/", allow_redirects=False)
    assert answer.status == 303 and "/ui/login" in answer.headers["Location"]


async def test_a_new_password_ends_older_sessions(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await signed_in(client, "kim")
    app = client.app
    assert app is not None
    later = app[CLOCK]().replace(microsecond=123)
    await app[STORE].set_password("kim", hash_password("another long password"), later)
    answer = await client.get("/ui/", allow_redirects=False)
    assert answer.status == 303


async def test_a_session_ends_after_twelve_hours(
    make_client: ClientFactory, clock: FakeClock
) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await signed_in(client, "kim")
    clock.advance(hours=11, minutes=59)
    assert (await client.get("/ui/", allow_redirects=False)).status == 200
    clock.advance(minutes=2)
    assert (await client.get("/ui/", allow_redirects=False)).status == 303


async def test_sign_out_drops_the_cookie(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    token = await signed_in(client, "kim")
    answer = await client.post("/ui/logout", data={"csrf": token}, allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/ui/login"
    assert (await client.get("/ui/", allow_redirects=False)).status == 303


async def test_after_sign_in_only_a_console_page_is_a_destination(
    make_client: ClientFactory,
) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await set_password(client, "kim")
    form = await client.get("/ui/login")
    token = token_of(await form.text())
    for target, expected in (("https://evil.example/", "/ui/"), ("//evil.example/ui/", "/ui/"),
                             ("/ui/oncall", "/ui/oncall"), ("/metrics", "/ui/")):  # fmt: skip
        client.session.cookie_jar.clear_domain("127.0.0.1")
        form = await client.get("/ui/login")
        token = token_of(await form.text())
        answer = await client.post(
            "/ui/login", data={"csrf": token, "person": "kim", "password": PASSWORD,
                               "next": target}, allow_redirects=False,
        )  # fmt: skip
        assert answer.headers["Location"] == expected


async def test_the_sso_header_is_honoured_from_a_trusted_proxy(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET), ui_trusted_header="X-Forwarded-User",
                               ui_trusted_proxies="127.0.0.1/32")  # fmt: skip
    page = await client.get("/ui/", headers={"X-Forwarded-User": "lee@example.com"})
    assert page.status == 200
    assert "Lee" in await page.text()
    token = token_of(await page.text())
    assert (await client.post("/webhook", json=webhook(alert()), headers=AUTH)).status == 200
    acted = await client.post(
        "/ui/incidents/1/act", data={"action": "acknowledge", "csrf": token},
        headers={"X-Forwarded-User": "lee@example.com"}, allow_redirects=False,
    )  # fmt: skip
    assert acted.status == 303
    incident = await client.app[STORE].get_incident(1)
    assert incident is not None and incident.acknowledged_by == "lee"
    # Without the header (a request around the proxy) the SSO session is worth nothing.
    assert (await client.get("/ui/", allow_redirects=False)).status == 303
    unknown = await client.get("/ui/", headers={"X-Forwarded-User": "mallory"})
    assert unknown.status == 403


async def test_the_sso_header_from_anywhere_else_is_refused(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET), ui_trusted_header="X-Forwarded-User",
                               ui_trusted_proxies="10.0.0.0/8")  # fmt: skip
    answer = await client.get("/ui/", headers={"X-Forwarded-User": "kim"}, allow_redirects=False)
    assert answer.status == 403
    assert SESSION_COOKIE not in answer.cookies
    assert "error-message" in await answer.text()


async def test_the_cookies_are_secure_behind_tls(make_client: ClientFactory) -> None:
    tls = {"X-Forwarded-Proto": "https"}
    client = await make_client(ui_secret=SecretStr(SECRET), ui_trusted_proxies="127.0.0.1")
    assert (await client.get("/ui/login", headers=tls)).cookies[LOGIN_COOKIE]["secure"]
    assert not (await client.get("/ui/login")).cookies[LOGIN_COOKIE]["secure"]
    elsewhere = await make_client(ui_secret=SecretStr(SECRET), ui_trusted_proxies="10.0.0.0/8")
    assert not (await elsewhere.get("/ui/login", headers=tls)).cookies[LOGIN_COOKIE]["secure"]
    public = await make_client(ui_secret=SecretStr(SECRET), public_url="https://rx.example")
    await set_password(public, "kim")
    form = await public.get("/ui/login")
    assert form.cookies[LOGIN_COOKIE]["secure"]
    token = token_of(await form.text())
    answer = await public.post(  # the Secure cookie is not sent back over plain HTTP: 403
        "/ui/login", data={"csrf": token, "person": "kim", "password": PASSWORD},
        allow_redirects=False,
    )  # fmt: skip
    assert answer.status == 403


def test_console_settings_that_would_fail_open_are_refused(tmp_path: object) -> None:
    assert "RECEIVER_UI_TRUSTED_PROXIES" in (
        Settings(ui_trusted_header="X-User").startup_problem() or ""
    )
    assert "RECEIVER_UI_TRUSTED_PROXIES" in (
        Settings(ui_trusted_proxies="10.0.0.0/33").startup_problem() or ""
    )
    assert "at least 32" in (Settings(ui_secret=SecretStr("short")).startup_problem() or "")
    with pytest.raises(ValidationError):
        Settings(ui_secret=SecretStr("  "))
    fine = Settings(ui_secret=SecretStr(SECRET), ui_trusted_header="X-User",
                    ui_trusted_proxies="10.0.0.1, fd00::/8")  # fmt: skip
    assert fine.startup_problem() is None


async def test_guesses_sent_at_once_are_held_like_guesses_in_a_row(
    make_client: ClientFactory,
) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    await set_password(client, "kim")
    form = await client.get("/ui/login")
    token = token_of(await form.text())

    async def guess(n: int) -> int:
        data = {"csrf": token, "person": "kim", "password": f"guess {n}"}
        async with client.post("/ui/login", data=data, allow_redirects=False) as answer:
            return answer.status

    statuses = await asyncio.gather(*(guess(n) for n in range(12)))
    assert statuses.count(401) == 5 and statuses.count(429) == 7


async def test_a_next_page_with_line_breaks_goes_home(make_client: ClientFactory) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    answer = await client.get("/ui/lang?to=en&next=/ui/%0d%0aX-Evil:%201", allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/ui/"
    assert "X-Evil" not in answer.headers


async def test_a_hash_of_older_parameters_is_made_again_at_sign_in(
    make_client: ClientFactory,
) -> None:
    client = await make_client(ui_secret=SecretStr(SECRET))
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    set_at = client.app[CLOCK]()
    await client.app[STORE].set_password("kim", old, set_at)
    assert (await sign_in(client, "kim")).status == 303
    stored = await client.app[STORE].password("kim")
    assert stored is not None and stored[0] != old and stored[1] == set_at
    assert not needs_rehash(stored[0])
    assert (await client.get("/ui/", allow_redirects=False)).status == 200  # session kept
