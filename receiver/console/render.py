"""The console's pages as HTML: the reader's language, times in the team's time zone, the
security headers every page carries, and the template context the pages share."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from babel.core import negotiate_locale

from receiver import i18n
from receiver.api.keys import CLOCK, RULES
from receiver.api.pages import templates, version_of
from receiver.console.session import LANG_COOKIE, Session
from receiver.domain.digest import digest_zone
from receiver.domain.model import Event
from receiver.domain.timeline import describe
from receiver.i18n import LOCALES
from receiver.store.base import Delivery

# Scripts, styles and requests from the receiver only; no inline script, never framed.
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC = "/ui/static"
# The session of the request, once signed in (set by auth.signed_in).
SESSION = web.RequestKey("console_session", Session)


def locale_of(request: web.Request) -> str:
    """The language switch's choice, else the browser's Accept-Language, else the rules'
    ``reports.locale``."""
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LOCALES:
        return chosen
    wanted: list[tuple[float, str]] = []
    for part in request.headers.get("Accept-Language", "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            wanted.append((-q, tag.strip()))
    found = negotiate_locale([t for _, t in sorted(wanted)], list(LOCALES), sep="-")
    return found or request.app[RULES].current.reports.locale


def zone_of(request: web.Request) -> ZoneInfo:
    """The team's time zone: the first rotation's (the daily digest's)."""
    return digest_zone(request.app[RULES].current)


def asset(name: str) -> str:
    return f"{STATIC}/{name}?v={version_of('console', name)}"


def page(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    """A console page rendered in the reader's language, with the console's headers."""
    locale = locale_of(request)
    zone = zone_of(request)
    cfg = request.app[RULES].current
    session: Session | None = request.get(SESSION)

    def t(key: str, **fill: Any) -> str:
        return i18n.text(locale, f"console.{key}", **fill)

    def raw(key: str) -> str:  # placeholders left for the page's script to fill
        return i18n.lookup(locale, f"console.{key}") or key

    def when(moment: datetime | None) -> str:
        return i18n.when(moment, zone, locale) if moment is not None else "—"

    def name(person: str | None) -> str:
        found = cfg.people.get(person or "")
        return found.name if found is not None and found.name else (person or "—")

    def event_detail(event: Event) -> str:
        """What else an entry says: the timeline's own sentence in English; in another
        language, the people it names and its step (the sentences are English only)."""
        if locale == "en":
            return describe(event, cfg)
        d = event.data
        people = [d.get("person"), d.get("to") if isinstance(d.get("to"), str) else None]
        found = d.get("people")
        if isinstance(found, list):
            people += [p for p in found if isinstance(p, str)]
        parts = [name(p) for p in people if isinstance(p, str) and p]
        if isinstance(d.get("step"), int):
            parts.append(t("pages.step", step=d["step"]))
        return " · ".join(parts)

    def shown_error(delivery: Delivery) -> str:
        """A delivery's last error; a notice to a reporter's is not shown (a mail server's
        or Telegram's words may name the reporter's address or chat)."""
        if not delivery.last_error:
            return ""
        return (
            t("deliveries.reporter_error")
            if delivery.channel == "reporter"
            else (delivery.last_error)
        )

    def event_label(event: str) -> str:
        key = f"console.event.{event}"
        found = i18n.lookup(locale, key)
        return found if found is not None else event.replace("_", " ")

    html = (
        templates()
        .get_template(f"console/{template}")
        .render(
            t=t,
            raw=raw,
            when=when,
            name=name,
            event_label=event_label,
            event_detail=event_detail,
            shown_error=shown_error,
            asset=asset,
            locale=locale,
            other=[loc for loc in LOCALES if loc != locale],
            session=session,
            path=request.path,
            path_qs=request.path_qs,
            now=request.app[CLOCK](),
            zone=zone.key,
            **{"notice": None, "nav": None, **values},
        )
    )
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    response.headers.update(HEADERS)
    response.headers["Content-Language"] = locale
    return response
