"""The console's routes under /ui/, its static files and the language switch."""

from __future__ import annotations

from aiohttp import web

from receiver.api.pages import cached, static_file
from receiver.console import auth, incidents, team
from receiver.console.auth import BASE, is_secure, redirect
from receiver.console.session import LANG_COOKIE
from receiver.i18n import LOCALES

ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
ASSET_MAX_AGE = 86_400  # their URLs carry a digest of their content
LANG_MAX_AGE = 365 * 86_400


async def asset(request: web.Request) -> web.StreamResponse:
    """``GET /ui/static/console.js`` and ``console.css``."""
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    body, etag = static_file("console", name)
    return cached(request, body, etag, ASSETS[name], ASSET_MAX_AGE)


async def language(request: web.Request) -> web.StreamResponse:
    """``GET /ui/lang?to=en&next=/ui/…``: the reader's language, kept in a cookie (a
    preference, not an action: no session or token needed)."""
    chosen = request.query.get("to", "")
    back = auth.next_page(request.query.get("next"))
    response = redirect(back)
    if chosen in LOCALES:
        response.set_cookie(LANG_COOKIE, chosen, max_age=LANG_MAX_AGE, path=BASE,
                            httponly=True, samesite="Lax", secure=is_secure(request))  # fmt: skip
    return response


async def to_console(request: web.Request) -> web.StreamResponse:
    return redirect(BASE)


def setup(app: web.Application) -> None:
    """The console's signer and throttle, and its routes."""
    auth.setup(app)
    app.router.add_get("/ui", to_console)
    app.router.add_get("/ui/login", auth.login_form)
    app.router.add_post("/ui/login", auth.login)
    app.router.add_post("/ui/logout", auth.logout)
    app.router.add_get("/ui/lang", language)
    app.router.add_get(r"/ui/static/{name:console\.(?:js|css)}", asset)
    incidents.routes(app)
    team.routes(app)
