"""Who is using the console: sign-in with a password (``receiver passwd``) or a trusted SSO
header, the session cookie, and the CSRF check of every form.

A console handler is wrapped with ``signed_in``: the request reaches it only with a valid
session (``request[SESSION]``), and a POST only with that session's CSRF token. A header
naming the person is honoured only from RECEIVER_UI_TRUSTED_PROXIES; from anywhere else it
is refused outright (403), not ignored, so a proxy set up wrong is noticed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network
from urllib.parse import quote, urlsplit

import structlog
from aiohttp import web

from receiver.api.keys import CLOCK, RULES, SETTINGS, STORE
from receiver.api.middleware import LOG_FIELDS
from receiver.config.models import RulesConfig
from receiver.console.passwords import hash_password, needs_rehash, verify_password
from receiver.console.render import SESSION, page
from receiver.console.session import (
    LOGIN_COOKIE,
    MAX_AGE,
    SESSION_COOKIE,
    Session,
    Signer,
    Throttle,
    new_session,
    same_token,
)
from receiver.store.base import StoreUnavailable

log = structlog.get_logger("receiver.console")

SIGNER = web.AppKey("console_signer", Signer)
THROTTLE = web.AppKey("console_throttle", Throttle)
PROXIES = web.AppKey("console_proxies", tuple[IPv4Network | IPv6Network, ...])
BASE = "/ui/"
MAX_PASSWORD = 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def setup(app: web.Application) -> None:
    """The signer (the settings' secret, else a random one for this process) and the
    sign-in throttle."""
    secret = app[SETTINGS].ui_secret  # unset: said once serve listens (ui_secret_ephemeral)
    key = secret.get_secret_value() if secret is not None else secrets.token_urlsafe(48)
    app[SIGNER] = Signer(key)
    app[PROXIES] = app[SETTINGS].trusted_proxies()  # checked at startup: they parse
    app[THROTTLE] = Throttle()
    app.on_startup.append(_warm)


async def _warm(app: web.Application) -> None:
    """Make the dummy hash now, so the first sign-in of an unknown name takes no longer
    than any other."""
    await asyncio.to_thread(verify_password, None, "")


def find_person(cfg: RulesConfig, name: str) -> str | None:
    """The person a sign-in name means: their id, or their e-mail (any case)."""
    name = name.strip()
    if name in cfg.people:
        return name
    folded = name.casefold()
    for person_id, person in cfg.people.items():
        if person.email and person.email.casefold() == folded:
            return person_id
    return None


def _peer_trusted(request: web.Request) -> bool:
    try:
        peer = ipaddress.ip_address((request.remote or "").split("%")[0])
    except ValueError:
        return False
    return any(peer in network for network in request.app[PROXIES])


def client_address(request: web.Request) -> str:
    """The browser's address: the peer, or what a trusted proxy says it forwarded for."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and _peer_trusted(request):
        return forwarded.split(",")[-1].strip()[:64] or "?"
    return request.remote or "?"


def is_secure(request: web.Request) -> bool:
    """Whether the browser reached us over TLS: directly, through a trusted proxy that says
    so, or as the public address says."""
    if request.secure:
        return True
    if request.headers.get("X-Forwarded-Proto", "").lower() == "https" and _peer_trusted(request):
        return True
    public = request.app[SETTINGS].public_url or ""
    return public.startswith("https://")


def set_session(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        request.app[SIGNER].dump(session),
        max_age=int(MAX_AGE.total_seconds()),
        path=BASE,
        httponly=True,
        samesite="Lax",
        secure=is_secure(request),
    )


def clear_session(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path=BASE)


def redirect(location: str) -> web.Response:
    """303 See Other: after a form, the browser GETs the page it lands on."""
    return web.Response(status=303, headers={"Location": location})


def _to_login(request: web.Request) -> web.Response:
    target = request.path_qs if request.method == "GET" else BASE
    return redirect(f"{BASE}login?next={quote(target, safe='')}")


def refused(request: web.Request, status: int, key: str) -> web.Response:
    """An error page in the reader's language: what went wrong and what to do."""
    return page(request, "error.html", status=status, message_key=key)


def _from_header(request: web.Request, name: str) -> Session | web.Response:
    """The session of a request carrying the SSO header."""
    if not _peer_trusted(request):
        log.warning("ui_untrusted_header", header=request.app[SETTINGS].ui_trusted_header,
                    peer=request.remote)  # fmt: skip
        return refused(request, 403, "error.untrusted_header")
    person = find_person(request.app[RULES].current, name)
    if person is None:
        log.warning("ui_unknown_sso_person", name=name[:64])
        return refused(request, 403, "error.unknown_person")
    now = request.app[CLOCK]()
    held = request.app[SIGNER].load(request.cookies.get(SESSION_COOKIE))
    if held is not None and held.via == "sso" and held.person == person and not held.expired(now):
        return held
    return new_session(person, "sso", now, None)


async def _from_cookie(request: web.Request) -> Session | None:
    held = request.app[SIGNER].load(request.cookies.get(SESSION_COOKIE))
    if held is None or held.via != "password" or held.expired(request.app[CLOCK]()):
        return None  # an SSO session needs its header on every request
    if held.person not in request.app[RULES].current.people:
        return None
    stored = await request.app[STORE].password(held.person)
    if stored is None or stored[1].timestamp() != held.password_set:
        return None  # the password changed (or was removed) since
    return held


def signed_in(handler: Handler) -> Handler:
    """Let a request through only with a session, and a POST only with its CSRF token."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        header = request.app[SETTINGS].ui_trusted_header
        sso = request.headers.get(header) if header else None
        try:
            found = _from_header(request, sso) if sso else await _from_cookie(request)
        except StoreUnavailable:
            return refused(request, 503, "error.store")
        if isinstance(found, web.Response):
            return found
        if found is None:
            return _to_login(request)
        if request.method == "POST":
            form = await request.post()
            token = form.get("csrf")
            if not same_token(token if isinstance(token, str) else None, found.csrf):
                log.warning("ui_csrf_refused", path=request.path, person=found.person)
                return refused(request, 403, "error.csrf")
        request[SESSION] = found
        request[LOG_FIELDS].update(person=found.person)
        response = await handler(request)
        if sso and request.cookies.get(SESSION_COOKIE) != request.app[SIGNER].dump(found):
            set_session(request, response, found)
        return response

    return guarded


def next_page(raw: str | None) -> str:
    """Where to go after signing in: a console page of ours, never another site."""
    if not raw:
        return BASE
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw) or len(raw) > 2000:
        return BASE  # nothing that could end a header line
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not raw.startswith(BASE) or "\\" in raw:
        return BASE
    return raw


def _login_page(request: web.Request, status: int = 200, error: str | None = None,
                name: str = "", retry: timedelta | None = None) -> web.Response:  # fmt: skip
    token, cookie = request.app[SIGNER].login_token()
    minutes = max(1, int(retry.total_seconds() + 59) // 60) if retry is not None else 0
    response = page(
        request, "login.html", status=status, token=token, error=error, entered=name,
        next=next_page(request.query.get("next")), minutes=minutes,
    )  # fmt: skip
    response.set_cookie(LOGIN_COOKIE, cookie, max_age=3600, path=BASE, httponly=True,
                        samesite="Strict", secure=is_secure(request))  # fmt: skip
    if retry is not None:
        response.headers["Retry-After"] = str(int(retry.total_seconds()) + 1)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    """``GET /ui/login``: the sign-in form (straight on to the console when signed in)."""
    header = request.app[SETTINGS].ui_trusted_header
    if header and request.headers.get(header):
        return redirect(BASE)  # the console's own check says yes or why not
    try:
        if await _from_cookie(request) is not None:
            return redirect(next_page(request.query.get("next")))
    except StoreUnavailable:
        return refused(request, 503, "error.store")
    return _login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    """``POST /ui/login``: person (id or e-mail) and password."""
    form = await request.post()
    token = request.app[SIGNER].login_token_of(request.cookies.get(LOGIN_COOKIE))
    given = form.get("csrf")
    if token is None or not same_token(given if isinstance(given, str) else None, token):
        return refused(request, 403, "error.csrf")
    name = str(form.get("person") or "")[:256]
    password = str(form.get("password") or "")
    address = client_address(request)
    now = request.app[CLOCK]()
    throttle = request.app[THROTTLE]
    person = find_person(request.app[RULES].current, name)
    counted = person or name.strip().casefold()  # one count for a person's id and e-mail
    wait = throttle.check(counted, address, now)
    if wait is not None:
        log.warning("ui_login_throttled", name=name[:64], peer=address)
        return _login_page(request, 429, "login.throttled", name, wait.retry_after)
    # Counted as failed before anything is awaited, so guesses sent at once are held like
    # guesses one after another; taken back if it succeeds.
    throttle.failed(counted, address, now)
    try:
        stored = await request.app[STORE].password(person) if person else None
    except StoreUnavailable:
        return refused(request, 503, "error.store")
    hashed = stored[0] if stored is not None else None
    ok = len(password) <= MAX_PASSWORD and await asyncio.to_thread(
        verify_password, hashed, password
    )
    if not ok or person is None or stored is None:
        log.info("ui_login_failed", name=name[:64], peer=address)
        return _login_page(request, 401, "login.failed", name)
    throttle.succeeded(counted, address)
    if needs_rehash(stored[0]):  # made with older parameters: made again, sessions kept
        fresh = await asyncio.to_thread(hash_password, password)
        with contextlib.suppress(StoreUnavailable):
            await request.app[STORE].set_password(person, fresh, stored[1])
    session = new_session(person, "password", now, stored[1].timestamp())
    log.info("ui_login", person=person, peer=address)
    response = redirect(next_page(str(form.get("next") or "")))
    set_session(request, response, session)
    response.del_cookie(LOGIN_COOKIE, path=BASE)
    return response


@signed_in
async def logout(request: web.Request) -> web.StreamResponse:
    """``POST /ui/logout``: the session cookie is dropped."""
    log.info("ui_logout", person=request[SESSION].person)
    response = redirect(f"{BASE}login")
    clear_session(response)
    return response
