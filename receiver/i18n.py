"""What beta testers read, from the message catalogs shipped in the package
(``receiver/locale/<locale>/LC_MESSAGES/receiver.po``, read with Babel), and times as the
reader's language writes them, in the team's time zone."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

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


def text(locale: str, key: str, **values: Any) -> str:
    """A message in the locale's words with its placeholders filled; a key the catalog
    lacks falls back to the default locale's, then to the key itself."""
    for name in (locale, DEFAULT_LOCALE):
        message = catalog(name).get(key)
        if message is not None and message.string:
            return str(message.string).format(**values)
    return key.format(**values)


def when(moment: datetime, zone: ZoneInfo, locale: str) -> str:
    """A time as the locale writes it, in ``zone``, with the zone's abbreviation."""
    local = moment.astimezone(zone)
    pattern = _TIME_FORMATS.get(locale, _TIME_FORMATS[DEFAULT_LOCALE])
    shown = format_datetime(local, pattern, tzinfo=zone, locale=locale)
    return f"{shown} {local.tzname()}"
