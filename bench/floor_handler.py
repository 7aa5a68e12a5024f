"""Floor for the ingest benchmark: the least work any receiver meeting the contract does.

POST /webhook validates the body with the receiver's own model (WebhookPayload, with its
checks of NUL characters and times) and answers 200 {"status": "ok", "alerts": N} only
once every alert of it is in a committed SQLite transaction; an invalid payload gets 400,
a failed transaction 503. Storage is the receiver's own scheme: one writer connection,
WAL, synchronous=FULL, group commit (every request waiting goes into one BEGIN IMMEDIATE
... COMMIT, the INSERT on the event loop, the COMMIT in a thread). Nothing else: no
routing, incidents, timeline, outbox, logging or metrics. It shows how much of the gap
between the receiver and the bare handler is inherent.

Usage: python bench/floor_handler.py --host 127.0.0.1 --port 18081 --db /tmp/floor.db
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import orjson
from aiohttp import web
from bare_handler import handler_args, serve
from pydantic import ValidationError

from receiver.api.payload import PayloadProblem, WebhookPayload
from receiver.domain.model import Alert
from receiver.store.sqlite import commit_durably, rollback

INVALID_BODY = orjson.dumps({"error": "invalid payload"})
UNAVAILABLE_BODY = orjson.dumps({"error": "store unavailable"})
CREATE = (
    "CREATE TABLE IF NOT EXISTS alerts (fingerprint TEXT PRIMARY KEY, status TEXT NOT NULL, "
    "labels TEXT NOT NULL, annotations TEXT NOT NULL, starts_at REAL NOT NULL, ends_at REAL, "
    "generator_url TEXT NOT NULL)"
)
INSERT = "INSERT OR IGNORE INTO alerts VALUES (?,?,?,?,?,?,?)"

Row = tuple[str, str, str, str, float, float | None, str]


def rows_of(alerts: list[Alert]) -> list[Row]:
    return [
        (
            a.fingerprint,
            a.status.value,
            orjson.dumps(a.labels).decode(),
            orjson.dumps(a.annotations).decode(),
            a.starts_at.timestamp(),
            None if a.ends_at is None else a.ends_at.timestamp(),
            a.generator_url,
        )
        for a in alerts
    ]


class GroupWriter:
    """Queues rows; one background task commits whatever is queued in one transaction."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(CREATE)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="floor-commit")
        self.pending: list[tuple[list[Row], asyncio.Future[bool]]] = []
        self.wake = asyncio.Event()

    async def write(self, rows: list[Row]) -> bool:
        """True once the rows are committed, False when their transaction failed."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.pending.append((rows, future))
        self.wake.set()
        return await future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            if not batch:
                continue
            ok = True
            try:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany(INSERT, [row for rows, _ in batch for row in rows])
            except sqlite3.Error:
                rollback(self.db)
                ok = False
            else:
                try:
                    await loop.run_in_executor(self.executor, commit_durably, self.db)
                except sqlite3.Error:
                    ok = False
            for _, future in batch:
                if not future.done():  # a request may have gone away meanwhile
                    future.set_result(ok)

    def close(self) -> None:
        self.executor.shutdown(wait=True)  # a COMMIT still running finishes first
        rollback(self.db)
        self.db.close()


WRITER = web.AppKey("writer", GroupWriter)


async def webhook(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        alerts = WebhookPayload.model_validate_json(body).domain_alerts(body)
    except (ValidationError, PayloadProblem):
        return web.Response(status=400, body=INVALID_BODY, content_type="application/json")
    rows = rows_of(alerts)
    if not await request.app[WRITER].write(rows):
        return web.Response(status=503, body=UNAVAILABLE_BODY, content_type="application/json")
    ok = orjson.dumps({"status": "ok", "alerts": len(rows)})
    return web.Response(body=ok, content_type="application/json")


def make_app(db_path: str) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)

    async def writer_ctx(app: web.Application) -> AsyncIterator[None]:
        writer = GroupWriter(db_path)
        app[WRITER] = writer
        task = asyncio.create_task(writer.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        writer.close()

    app.cleanup_ctx.append(writer_ctx)
    app.router.add_post("/webhook", webhook)
    return app


def main() -> None:
    args = handler_args(__doc__, db=True)
    serve(make_app(args.db), args)


if __name__ == "__main__":
    main()
