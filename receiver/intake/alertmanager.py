"""Alertmanager's API v2, read: the alerts it holds (active, silenced, inhibited) and its
silences. What they mean for incidents is the services' to decide."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

TIMEOUT_SECONDS = 10.0


class Unreachable(Exception):
    """An Alertmanager did not answer, or not with what API v2 answers."""


@dataclass(frozen=True)
class HeldAlert:
    """An alert as Alertmanager holds it: its fingerprint, state (``active``,
    ``suppressed``, ``unprocessed``) and the silences that suppress it."""

    fingerprint: str
    state: str
    silenced_by: tuple[str, ...]


@dataclass(frozen=True)
class Silence:
    """One of Alertmanager's silences."""

    id: str
    created_by: str
    comment: str
    ends_at: datetime
    state: str  # active, pending, expired


@dataclass(frozen=True)
class View:
    """What one Alertmanager holds at one moment."""

    url: str
    alerts: dict[str, HeldAlert]
    silences: dict[str, Silence]


def _time(text: Any) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def _alerts(body: Any) -> dict[str, HeldAlert]:
    if not isinstance(body, list):
        raise Unreachable("alerts: not a list")
    out = {}
    for item in body:
        status = item.get("status") or {}
        fp = item.get("fingerprint")
        if isinstance(fp, str):
            silenced = tuple(str(s) for s in status.get("silencedBy") or ())
            out[fp] = HeldAlert(fp, str(status.get("state", "active")), silenced)
    return out


def _silences(body: Any) -> dict[str, Silence]:
    if not isinstance(body, list):
        raise Unreachable("silences: not a list")
    out = {}
    for item in body:
        try:
            silence = Silence(
                str(item["id"]),
                str(item.get("createdBy", "")),
                str(item.get("comment", "")),
                _time(item["endsAt"]),
                str((item.get("status") or {}).get("state", "active")),
            )
        except (KeyError, ValueError, TypeError):
            continue
        out[silence.id] = silence
    return out


class AlertmanagerClient:
    """Reads several Alertmanagers (an HA pair) over HTTP."""

    def __init__(self, urls: list[str], timeout: float = TIMEOUT_SECONDS) -> None:
        self.urls = urls
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def _get(self, session: aiohttp.ClientSession, url: str) -> Any:
        try:
            async with session.get(url) as resp:
                if resp.status != 200:
                    raise Unreachable(f"{url}: HTTP {resp.status}")
                return await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise Unreachable(f"{url}: {type(exc).__name__}: {exc}") from None

    async def view(self, session: aiohttp.ClientSession, base: str) -> View:
        """What one Alertmanager holds now: every alert it has not seen resolved, in any
        state, and its silences."""
        query = "active=true&silenced=true&inhibited=true&unprocessed=true"
        alerts = _alerts(await self._get(session, f"{base}/api/v2/alerts?{query}"))
        silences = _silences(await self._get(session, f"{base}/api/v2/silences"))
        return View(base, alerts, silences)

    async def views(self) -> tuple[list[View], list[str]]:
        """The views of the Alertmanagers that answered, and why the others did not."""
        async with aiohttp.ClientSession(timeout=self.timeout) as session:
            found = await asyncio.gather(
                *(self.view(session, url) for url in self.urls), return_exceptions=True
            )
        views = [v for v in found if isinstance(v, View)]
        errors = [str(e) for e in found if isinstance(e, BaseException)]
        return views, errors
