"""What beta testers read, from the message catalogs shipped in the package
(``receiver/locale/<locale>/LC_MESSAGES/receiver.po``, read with Babel), and times as the
reader's language writes them, in the team's time zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.lists import format_list
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from babel.units import format_unit

LOCALES = ("ko", "en")
DEFAULT_LOCALE = "ko"
# Times as each language writes them: 2026년 12월 3일 (목) 오후 7:30 KST; Dec 3, 2026, 7:30 PM KST
_TIME_FORMATS = {"ko": "yyyy년 M월 d일 (E) a h:mm", "en": "MMM d, yyyy, h:mm a"}


@cache
def catalog(locale: str) -> Catalog:
    """The catalog of a locale (the default's for one not shipped)."""
    name = locale if locale in LOCALES else DEFAULT_LOCALE
    found = resources.files("receiver") / "locale" / name / "LC_MESSAGES" / "receiver.po"
    with found.open("rb") as po:
        return read_po(po, locale=name)


def lookup(locale: str, key: str) -> str | None:
    """A message of the locale (else of the default locale) as written, or None."""
    for name in (locale, DEFAULT_LOCALE):
        message = catalog(name).get(key)
        if message is not None and message.string:
            return str(message.string)
    return None


def text(locale: str, key: str, **values: Any) -> str:
    """A message in the locale's words with its placeholders filled; a key the catalog
    lacks falls back to the default locale's, then to the key itself."""
    return (lookup(locale, key) or key).format(**values)


def duration(span: timedelta, locale: str) -> str:
    """A span in the locale's words, to the minute: 1시간 5분; 1 hour, 5 minutes."""
    minutes = int(span.total_seconds() // 60)
    if minutes < 1:
        return text(locale, "duration.under_a_minute")
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    units = (("duration-day", days), ("duration-hour", hours), ("duration-minute", mins))
    name = locale if locale in LOCALES else DEFAULT_LOCALE
    parts = [format_unit(n, unit, length="long", locale=name) for unit, n in units if n]
    return format_list(parts, style="unit", locale=name)


def when(moment: datetime, zone: ZoneInfo, locale: str) -> str:
    """A time as the locale writes it, in ``zone``, with the zone's abbreviation."""
    local = moment.astimezone(zone)
    pattern = _TIME_FORMATS.get(locale, _TIME_FORMATS[DEFAULT_LOCALE])
    shown = format_datetime(local, pattern, tzinfo=zone, locale=locale)
    return f"{shown} {local.tzname()}"
