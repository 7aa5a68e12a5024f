"""PostgreSQL store: an asyncpg pool shared by replicas; the database keeps them consistent.

Every write is one READ COMMITTED transaction. What two replicas could both do is decided
by the database, never by a lock in this process: incident updates are version-checked,
the partial unique index on open keys lets one of two simultaneous opens win, claims take
rows with ``FOR UPDATE SKIP LOCKED`` plus a lease, and enqueues for one (channel, incident)
queue hold a transaction-scoped advisory lock, so that queue's ids follow commit order and
a waiting row is folded into by one transaction at a time. Commits are as durable as the
server's ``synchronous_commit`` makes them (on, by default), and a commit succeeds or fails
as its COMMIT did on the server, not as the connection fared afterwards (``pgcommit``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]

from receiver.store.base import Conflict, StoreUnavailable
from receiver.store.core import SqlStore
from receiver.store.pgcommit import TRANSACTION_ID, commit, release, rollback
from receiver.store.postgres_sql import STATEMENTS
from receiver.store.queues import Queue
from receiver.store.schema import POSTGRES_MIGRATIONS
from receiver.store.sql import Body, Executor, Row, Table

T = TypeVar("T")

MIGRATION_LOCK = 0x72637672  # advisory lock class of schema migrations ("rcvr")
# Rows per executemany, and list items per array argument.
ROWS_PER_CALL = 10_000
# Ids reserved ahead of a decision: nextval never hands them out again, committed or not.
_RESERVE_IDS = (
    "SELECT nextval(pg_get_serial_sequence('incidents', 'id')) FROM generate_series(1, $1)"
)
# Every enqueue holds the schema's queues lock shared and its queues' own locks; a unit with
# more queues than the server's lock table should hold for one transaction holds the queues
# lock alone, exclusively (it waits for and excludes every other enqueue meanwhile).
_LOCK_QUEUES = (
    "SELECT pg_advisory_xact_lock_shared($1), pg_advisory_xact_lock(k) "
    "FROM unnest($2::bigint[]) AS k"
)
_LOCK_ALL_QUEUES = "SELECT pg_advisory_xact_lock($1)"
# PostgreSQL's lock table holds max_locks_per_transaction (64 by default) per connection.
MAX_QUEUE_LOCKS = 32

# Raised by the connection or the server for reasons that a later attempt may not meet.
_UNAVAILABLE = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


def _where(url: str) -> str:
    """The server and database of a URL, without user or password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or '/'}"


@contextmanager
def _errors(conflicts: bool) -> Iterator[None]:
    """Database errors as Conflict (decide again) or StoreUnavailable (try later)."""
    try:
        yield
    except (Conflict, StoreUnavailable):
        raise
    except (
        asyncpg.IntegrityConstraintViolationError,
        asyncpg.TransactionRollbackError,  # serialization failure, deadlock
    ) as exc:
        if conflicts:
            raise Conflict(f"PostgreSQL: {exc}") from exc
        raise StoreUnavailable(f"PostgreSQL: {exc}") from exc
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc


def _params(args: Sequence[Any]) -> list[Any]:
    """Arguments as asyncpg takes them: a Table as one array per column."""
    out: list[Any] = []
    for arg in args:
        if isinstance(arg, Table):
            out += [list(column) for column in zip(*arg.rows, strict=True)]
        else:
            out.append(arg)
    return out


class _Executor:
    """Statements on one connection (or, for quick reads, on the pool)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(await self.conn.fetch(sql, *_params(args)))

    async def execute(self, sql: str, *args: Any) -> int:
        status: str = await self.conn.execute(sql, *_params(args))  # e.g. "UPDATE 3"
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self.conn.executemany(sql, rows)

    async def apply(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        columns = [list(column) for column in zip(*rows, strict=True)]
        return len(await self.conn.fetch(sql, *columns))


class PostgresBackend:
    """A schema several replicas share; ``schema``, if given, must exist and becomes the
    search path of every connection."""

    sql = STATEMENTS
    rows_per_call = ROWS_PER_CALL

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_connections: int = 1,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        command_timeout: float | None = 30.0,
    ) -> None:
        self.url = url
        self.schema = schema
        self.min_connections = min_connections
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._pool: Any = None
        # The schema the connections work in, however it was chosen (``schema`` or a
        # search_path in the URL): queue locks of two schemas on one server never meet.
        # The default schema keeps the empty scope that earlier versions used for every
        # schema, so that replicas of both versions exclude each other during an upgrade.
        self._lock_scope = schema or ""

    def param(self, n: int) -> str:
        return f"${n}"

    def _p(self) -> Any:
        if self._pool is None:
            raise StoreUnavailable("store is not open")
        return self._pool

    def queue_key(self, channel: str, incident_id: int | None) -> int:
        """The advisory lock of one (channel, incident) queue of this schema."""
        name = f"{self._lock_scope}\0{channel}\0{incident_id or 0}".encode()
        return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big", signed=True)

    async def lock_queues(self, ex: Executor, queues: Collection[Queue]) -> None:
        keys = {self.queue_key(channel, incident) for channel, incident in queues}
        every = self.queue_key("*", None)  # no channel is named "*"
        if len(keys) > MAX_QUEUE_LOCKS:
            await ex.execute(_LOCK_ALL_QUEUES, every)
        else:
            await ex.execute(_LOCK_QUEUES, every, sorted(keys))

    async def open(self) -> None:
        settings: dict[str, str] = {}
        if self.schema is not None:
            settings["search_path"] = '"' + self.schema.replace('"', '""') + '"'
        try:
            with _errors(conflicts=False):
                self._pool = await asyncpg.create_pool(
                    self.url,
                    min_size=self.min_connections,
                    max_size=self.max_connections,
                    timeout=self.connect_timeout,
                    command_timeout=self.command_timeout,
                    server_settings=settings,
                )
                async with self._pool.acquire() as conn:
                    await self._migrate(conn)
                    if self.schema is None:
                        current = await conn.fetchval("SELECT current_schema()")
                        self._lock_scope = "" if current in (None, "public") else current
        except (StoreUnavailable, ValueError) as exc:
            await self.close()
            raise StoreUnavailable(
                f"cannot open PostgreSQL database {_where(self.url)}: {exc}"
            ) from exc

    @staticmethod
    async def _migrate(conn: Any) -> None:
        """Apply missing migrations in one transaction; concurrent openers wait their turn."""
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))",
                MIGRATION_LOCK,
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
            )
            current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            for version, script in enumerate(POSTGRES_MIGRATIONS, start=1):
                if version > current:
                    await conn.execute(script)
                    await conn.execute("INSERT INTO schema_version VALUES ($1)", version)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:  # waits for connections in use to be released
            await asyncio.wait_for(pool.close(), self.connect_timeout)
        except TimeoutError:
            pool.terminate()

    async def _connect(self) -> Any:
        """A connection of its own, outside the pool (whose connections may all be dead)."""
        return await asyncpg.connect(
            self.url, timeout=self.connect_timeout, command_timeout=self.command_timeout
        )

    @asynccontextmanager
    async def transaction(self, conflicts: bool = False) -> AsyncIterator[Executor]:
        pool = self._p()
        with _errors(conflicts):
            conn = await pool.acquire()
        try:
            with _errors(conflicts):
                transaction = conn.transaction(isolation="read_committed")
                await transaction.start()
                try:
                    yield _Executor(conn)
                    transaction_id = await conn.fetchval(TRANSACTION_ID)
                except BaseException:
                    await rollback(transaction)
                    raise
                # the COMMIT finishes, and is settled, even if the caller is cancelled
                await asyncio.shield(commit(conn, transaction, transaction_id, self._connect))
        finally:
            await release(pool, conn)  # a failure here cannot undo the COMMIT

    async def _run(self, body: Body[T], conflicts: bool) -> T:
        async with self.transaction(conflicts) as ex:
            return await body(ex)

    async def run(self, body: Body[T], conflicts: bool = False) -> T:
        # In a task of its own: a cancelled caller never interrupts a statement midway
        # (asyncpg would have to cancel it on the server), the transaction just finishes.
        task = asyncio.ensure_future(self._run(body, conflicts))
        cancelled = False
        while not task.done():
            try:
                await asyncio.wait((task,))
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            if not task.cancelled():
                task.exception()  # retrieved: the caller hears of the cancel instead
            raise asyncio.CancelledError
        return task.result()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Executor]:
        pool = self._p()  # a closed store is unavailable even when there is nothing to read
        with _errors(conflicts=False):
            yield _Executor(pool)

    async def query(self, sql: str, *args: Any) -> list[Row]:
        with _errors(conflicts=False):
            return list(await self._p().fetch(sql, *_params(args)))

    async def reserve_incident_ids(self, count: int) -> list[int]:
        return sorted(r[0] for r in await self.query(_RESERVE_IDS, count))


class PostgresStore(SqlStore):
    """The store several replicas share; see PostgresBackend for the arguments."""

    backend: PostgresBackend

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        super().__init__(PostgresBackend(url, **options))
