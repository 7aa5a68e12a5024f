"""What a PostgreSQL COMMIT decided, whatever happened to its connection around it.

Once COMMIT has returned, the transaction is committed: a connection that fails afterwards
(its backend terminated, so the pool's reset query fails) is only discarded. When the
connection fails during COMMIT, the server may have committed or not; the transaction's own
id, read before COMMIT, is then looked up with ``txid_status`` on fresh connections until
the server says which.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog

from receiver.store.base import StoreUnavailable

log = structlog.get_logger("receiver.store")

Connect = Callable[[], Awaitable[Any]]

# The id of the transaction, or NULL while it has written nothing (then its outcome does
# not matter): read last, so a transaction that only reads is not given one.
TRANSACTION_ID = "SELECT txid_current_if_assigned()"
_STATUS = "SELECT txid_status($1)"
# The backend still running the transaction whose client gave up on it: nothing but a COMMIT
# already on its way can finish it, and once it has waited long enough for that, ending the
# backend settles it (a COMMIT under way completes first).
_END_ORPHAN = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE backend_xid::text = ($1::bigint % 4294967296)::text"
)
ORPHAN_AFTER_SECONDS = 1.0
# How long a COMMIT whose answer was lost is looked up before it counts as unknown (503).
# Webhooks queue behind it, and while the database is down they must hear 503 promptly,
# well within Alertmanager's webhook timeout, rather than all wait for it to come back.
RESOLVE_SECONDS = 2.5

# A lookup that failed; the next one may find the server (or a new backend) again.
_LOOKUP_FAILED = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


async def release(pool: Any, conn: Any) -> None:
    """Give conn back to the pool; if resetting it fails, the pool has discarded it."""
    try:
        await pool.release(conn)
    except Exception as exc:  # whatever it did is decided already: committed or rolled back
        log.info("postgres_connection_discarded", error=f"{type(exc).__name__}: {exc}")


async def rollback(transaction: Any) -> None:
    """Roll back; if that fails, discarding the connection ends the transaction instead."""
    with contextlib.suppress(Exception):  # the failure that led here is the one to report
        await transaction.rollback()


async def commit(conn: Any, transaction: Any, transaction_id: int | None, connect: Connect) -> None:
    """COMMIT; if the connection fails during it, ask the server what became of it.

    Raises what COMMIT raised if the server rolled back, StoreUnavailable if it could not
    tell; returns if the transaction committed.
    """
    try:
        await transaction.commit()
    except Exception as exc:
        if transaction_id is None:
            raise  # it wrote nothing, so nothing was stored
        # Its backend, if alive, ends the transaction once its client is gone. A connection
        # that closed itself is already out of the pool's hands (terminate then refuses).
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()
        outcome = await transaction_committed(connect, transaction_id)
        if outcome is None:
            log.error("postgres_commit_outcome_unknown", transaction=transaction_id)
            raise StoreUnavailable("PostgreSQL: the outcome of a COMMIT is unknown") from exc
        if not outcome:
            raise
        log.info("postgres_commit_confirmed", transaction=transaction_id)


async def transaction_committed(
    connect: Connect, transaction_id: int, within: float = RESOLVE_SECONDS
) -> bool | None:
    """Whether the transaction committed (False: rolled back), asked on fresh connections;
    None if the server could not tell within that many seconds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    pause = 0.02
    while True:
        status = await _status(connect, transaction_id, loop.time() - started)
        if status in ("committed", "aborted"):
            return status == "committed"
        if loop.time() - started >= within:
            return None
        await asyncio.sleep(pause)
        pause = min(2 * pause, 0.5)


async def _status(connect: Connect, transaction_id: int, waited: float) -> str | None:
    """The server's answer for one lookup: committed, aborted, in progress, or None."""
    try:
        conn = await connect()
    except _LOOKUP_FAILED:
        return None
    try:
        status: str | None = await conn.fetchval(_STATUS, transaction_id)
        if status == "in progress" and waited >= ORPHAN_AFTER_SECONDS:
            await conn.execute(_END_ORPHAN, transaction_id)
        return status
    except _LOOKUP_FAILED:
        return None
    finally:
        try:
            await conn.close(timeout=5)
        except Exception:
            conn.terminate()
