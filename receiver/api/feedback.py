"""``GET /feedback``: the beta testers' report form, and ``GET /feedback/widget.js``: the
script the trading web app includes to show a feedback button that opens the form.

The page is rendered with Jinja2 (autoescape on) in the reporter's language and sends the
report to ``POST /api/v1/reports`` from its own script file. It carries no inline script
(its Content-Security-Policy allows scripts from the receiver only), and it may be framed
only by the receiver itself and the origins of RECEIVER_REPORTS_ORIGINS, the widget's
hosts: the widget shows the page in an iframe, so the host page's styles and scripts cannot
reach into the form, and there is one form to maintain.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from functools import cache
from typing import Any

from aiohttp import web

from receiver import i18n
from receiver.api.keys import RULES, SETTINGS
from receiver.api.pages import cached, static_file, templates, version_of
from receiver.domain.reports import (
    ALLOWED_TYPES,
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    MAX_DESCRIPTION,
    MAX_FIELD,
    MAX_TEXT,
    MAX_TITLE,
)
from receiver.i18n import LOCALES

PAGE_PATH = "/feedback"
REPORTS_PATH = "/api/v1/reports"
# The page's own files: name -> content type. Anything else under /feedback/ is a 404.
ASSETS = {
    "feedback.js": "text/javascript; charset=utf-8",
    "feedback.css": "text/css; charset=utf-8",
}
# Static files change only with a release: cached for a day (their URLs carry a digest of
# their content), revalidated by ETag after that. widget.js has a fixed URL: an hour.
ASSET_MAX_AGE = 86_400
WIDGET_MAX_AGE = 3_600
# What the page's script says, by the key it looks the message up with (feedback.<key>).
SCRIPT_MESSAGES = (
    "sending",
    "done.text",
    "done.duplicate",
    "error.invalid",
    "error.too_many",
    "error.file_too_big",
    "error.too_large",
    "error.rate_limited",
    "error.forbidden",
    "error.server",
    "error.network",
    "environment.unknown",
)
WIDGET_MESSAGES = ("widget.button", "widget.close", "widget.dialog")
# An origin as RECEIVER_REPORTS_ORIGINS gives it, checked before it goes into a CSP header.
# No spaces, quotes, commas or semicolons: nothing that could end the directive.
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")


def message(locale: str, key: str) -> str:
    """A message as written in the catalog (placeholders left for the script to fill)."""
    return i18n.lookup(locale, key) or key


def _messages(locale: str, keys: Iterable[str]) -> dict[str, str]:
    return {key: message(locale, f"feedback.{key}") for key in keys}


def asset_url(name: str) -> str:
    """A static file's URL, with a digest of its content to bust caches on release."""
    return f"{PAGE_PATH}/{name}?v={version_of('feedback', name)}"


def _category_label(locale: str, name: str) -> str:
    """A category as the tester reads it; the rules' name when the catalog has none."""
    key = f"feedback.category.{name}"
    label = message(locale, key)
    return name if label == key else label


def locale_of(request: web.Request) -> str:
    """``?lang=ko|en`` if given, else the rules' ``reports.locale``."""
    lang = request.query.get("lang", "")
    return lang if lang in LOCALES else request.app[RULES].current.reports.locale


def frame_ancestors(origins: Iterable[str]) -> str:
    """Who may frame the page: the receiver and the widget's hosts."""
    return " ".join(["'self'", *sorted(o for o in origins if _ORIGIN.match(o))])


def content_security_policy(origins: Iterable[str]) -> str:
    """The page's policy: its own scripts, styles and API only; framed by the widget's
    hosts only."""
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            f"frame-ancestors {frame_ancestors(origins)}",
        )
    )


async def page(request: web.Request) -> web.Response:
    """``GET /feedback[?lang=ko|en][&app_version=...][&embed=1]``: the report form."""
    locale = locale_of(request)
    cfg = request.app[RULES].current
    categories = [(name, _category_label(locale, name)) for name in cfg.categories]

    def t(key: str, **values: Any) -> str:
        return message(locale, f"feedback.{key}").format(**values)

    html = (
        templates()
        .get_template("feedback/page.html")
        .render(
            t=t,
            locale=locale,
            embed=request.query.get("embed") == "1",
            app_version=request.query.get("app_version", "")[:MAX_FIELD],
            categories=categories,
            endpoint=REPORTS_PATH,
            asset=asset_url,
            accept=",".join(
                [*ALLOWED_TYPES, *(s for ends in ALLOWED_TYPES.values() for s in ends)]
            ),
            limits={
                "title": MAX_TITLE,
                "description": MAX_DESCRIPTION,
                "text": MAX_TEXT,
                "field": MAX_FIELD,
                "files": MAX_ATTACHMENTS,
                "file_bytes": MAX_ATTACHMENT_BYTES,
                "file_mib": MAX_ATTACHMENT_BYTES // (1024 * 1024),
            },
            messages=_messages(locale, SCRIPT_MESSAGES),
        )
    )
    response = web.Response(text=html, content_type="text/html", charset="utf-8")
    response.headers.update(
        {
            "Content-Security-Policy": content_security_policy(
                request.app[SETTINGS].report_origins()
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Content-Language": locale,
            "Cache-Control": "no-cache",
        }
    )
    return response


async def asset(request: web.Request) -> web.Response:
    """``GET /feedback/feedback.js`` and ``/feedback/feedback.css``."""
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    body, etag = static_file("feedback", name)
    return cached(request, body, etag, ASSETS[name], ASSET_MAX_AGE)


@cache
def _widget(default_locale: str) -> tuple[bytes, str]:
    """widget.js with every language's texts: one file for every host page and language
    (``data-lang`` picks one at run time), so it caches as a static file does."""
    config = {
        "locale": default_locale,
        "path": PAGE_PATH,
        "messages": {loc: _messages(loc, WIDGET_MESSAGES) for loc in LOCALES},
    }
    script = templates().get_template("feedback/widget.js").render(config=config)
    body = script.encode()
    return body, f'"{hashlib.sha256(body).hexdigest()[:20]}"'


async def widget(request: web.Request) -> web.Response:
    """``GET /feedback/widget.js``: the floating feedback button for the web app."""
    body, etag = _widget(request.app[RULES].current.reports.locale)
    return cached(request, body, etag, ASSETS["feedback.js"], WIDGET_MAX_AGE)


def routes(app: web.Application) -> None:
    """Register the form page, its files and the widget."""
    app.router.add_get(PAGE_PATH, page)
    app.router.add_get(f"{PAGE_PATH}/widget.js", widget)
    app.router.add_get(PAGE_PATH + r"/{name:feedback\.(?:js|css)}", asset)
