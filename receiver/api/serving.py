"""Serving the app: the HTTP edge bound, one startup line an operator can check at a glance,
and a shutdown that answers what is in flight before the app's loops and store stop."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
from aiohttp import web

from receiver.api.edge import CannotListen, EdgeSite
from receiver.api.keys import MAIL, RULES, SETTINGS, STORE, WORKER
from receiver.config.loader import summarize
from receiver.notify.base import log_only
from receiver.settings import Settings
from receiver.store import PostgresStore, SqliteStore, StoreUnavailable

log = structlog.get_logger("receiver")

SHUTDOWN_TIMEOUT = 10.0  # seconds to answer requests in flight once asked to stop
EPHEMERAL = (
    "RECEIVER_UI_SECRET is unset: web console sessions end when this process stops and are "
    "not valid on other replicas"
)


def redact_url(url: str) -> str:
    """The database URL without its password (in the user part or a ``password=`` query)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}@{hostport}" if user else hostport
    query = "&".join(
        pair
        for pair in parts.query.split("&")
        if unquote(pair.partition("=")[0]).lower() not in ("password", "sslpassword")
    )
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    slashes = "//" if url[len(parts.scheme) + 1 :].startswith("//") else ""
    tail = (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    return f"{parts.scheme}:{slashes}{netloc}{parts.path}{tail}"


def _address(sockname: Any) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen_error(host: str, port: int, exc: OSError) -> str:
    # asyncio's message repeats the address; the errno's own text is enough.
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    hint = {
        errno.EADDRINUSE: " (another process listens there: choose --port or RECEIVER_PORT)",
        errno.EADDRNOTAVAIL: " (not an address of this host: choose --host or RECEIVER_HOST)",
    }.get(exc.errno or 0, "")
    return f"cannot listen on {_address((host, port))}: {reason}{hint}"


def _startup_fields(
    app: web.Application, addresses: list[Any], installation: str
) -> dict[str, Any]:
    """What an operator checks first: where it listens, which rules, which database, and
    which notifiers really send (the others only log what they would send)."""
    rules, store = app[RULES], app[STORE]
    kinds: dict[type, str] = {SqliteStore: "sqlite", PostgresStore: "postgresql"}
    notifiers = app[WORKER].notifiers
    live = [name for name, notifier in notifiers.items() if not log_only(notifier)]
    fields: dict[str, Any] = {
        "listen": ",".join(_address(a) for a in addresses),
        "rules": str(rules.path.absolute()),
        "rules_summary": summarize(rules.current),
        "store": kinds.get(type(store), type(store).__name__),
        "database": redact_url(app[SETTINGS].database_url),
    }
    if isinstance(store, SqliteStore):
        fields["database_file"] = str(Path(store.path).absolute())
    fields["installation"] = installation
    fields["notifiers_live"] = live
    fields["notifiers_log_only"] = [name for name in notifiers if name not in live]
    if MAIL in app:  # the mailbox whose e-mails become reports, without its password
        fields["reports_mailbox"] = app[MAIL].mailbox.describe()
    return fields


PAGE_LANES = {"slack": "pager", "telegram": "telegram", "email": "email"}


def unheard_pages(app: web.Application) -> dict[str, Any]:
    """People paged on a channel that only logs while others send for real: their page
    there reaches nobody and waits out page_retry before the next channel is tried."""
    notifiers = app[WORKER].notifiers
    if all(log_only(n) for n in notifiers.values()):
        return {}  # a trial without accounts: everything only logs, as it says
    quiet = {m for m, lane in PAGE_LANES.items() if lane in notifiers and log_only(notifiers[lane])}
    people = {
        pid: [c for c in person.notify if c in quiet]
        for pid, person in app[RULES].current.people.items()
        if any(c in quiet for c in person.notify)
    }
    if not people:
        return {}
    return {"channels": sorted(quiet & {c for cs in people.values() for c in cs}),
            "people": sorted(people)}  # fmt: skip


async def serve(app: web.Application, settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM, logging one line once the port is bound and one once
    everything has stopped; on stop, requests in flight are answered first (up to
    SHUTDOWN_TIMEOUT), then the app's cleanup stops its loops and the store."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    caught: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        caught.append(sig.name)
        stop.set()

    stop_signals = (signal.SIGINT, signal.SIGTERM)
    for sig in stop_signals:
        loop.add_signal_handler(sig, on_signal, sig)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    try:
        try:
            await runner.setup()  # opens the store, starts the workers
        except OSError as exc:  # SQLite's directory cannot be made, say
            where = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
            url = redact_url(settings.database_url)
            raise StoreUnavailable(f"cannot open the database {url}: {where}") from None
        site = EdgeSite(
            runner,
            settings.host,
            settings.port,
            header_timeout=settings.header_timeout_seconds,
            keepalive_timeout=settings.keepalive_timeout_seconds,
            access_log=None,
        )
        try:
            await site.start()
        except OSError as exc:  # the address is taken, or not one of this host's
            raise CannotListen(_listen_error(settings.host, settings.port, exc)) from None
        installation = await app[STORE].installation_id()
        log.info("receiver_started", **_startup_fields(app, runner.addresses, installation))
        unheard = unheard_pages(app)
        if unheard:
            log.warning("pages_log_only", **unheard)
        if settings.ui_secret is None:
            log.warning("ui_secret_ephemeral", detail=EPHEMERAL)
        await stop.wait()
    finally:
        await runner.cleanup()
        for sig in stop_signals:
            loop.remove_signal_handler(sig)
    log.info("receiver_stopped", signal=caught[0] if caught else None)
