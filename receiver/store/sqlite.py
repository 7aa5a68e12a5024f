"""SQLite backend: WAL with synchronous=FULL; one writer connection, aiosqlite for API reads.

The writer's statements are CPU work of microseconds, so they run on the event loop (the
executor lets the loop run whenever a slice of them has taken its time); only the COMMIT,
which waits for the disk, goes to a thread. A transaction thus costs one hand-off however
many statements it holds, and the loop never blocks on the disk or on a lock held by
another process (BEGIN is retried asynchronously up to busy_timeout).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from receiver.jsonfast import dumps
from receiver.pacing import Pacer
from receiver.store.base import Conflict, StoreUnavailable
from receiver.store.core import SqlStore
from receiver.store.queues import Queue
from receiver.store.schema import SQLITE_MIGRATIONS
from receiver.store.sql import Body, Executor, Row, Table
from receiver.store.sqlite_sql import STATEMENTS

T = TypeVar("T")
# Rows per executemany, and list items per argument: between two chances for the loop to
# run, each step takes a few milliseconds.
ROWS_PER_CALL = 1000
# The id the database would give the next incident: above every id it ever handed out
# (sqlite_sequence) and every id stored (explicit ids of reserved incidents included).
_NEXT_ID = (
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'incidents'), 0), "
    "(SELECT coalesce(max(id), 0) FROM incidents)) + 1"
)
_PRAGMAS = ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON")


def _params(args: Sequence[Any]) -> list[Any]:
    """Arguments as SQLite takes them: lists and tables as JSON text (``json_each``)."""
    out: list[Any] = []
    for arg in args:
        if isinstance(arg, Table):
            out.append(dumps([list(row) for row in arg.rows]))
        elif isinstance(arg, list | tuple):
            out.append(dumps(list(arg)))
        else:
            out.append(arg)
    return out


def rollback(db: sqlite3.Connection) -> None:
    """ROLLBACK unless SQLite already rolled back by itself (disk full, I/O error)."""
    if db.in_transaction:
        db.execute("ROLLBACK")


def commit_durably(db: sqlite3.Connection) -> None:
    """COMMIT (run it off the event loop: it waits for the disk); a failed COMMIT is rolled
    back before it returns."""
    try:
        db.execute("COMMIT")
    except sqlite3.Error:
        rollback(db)
        raise


class _Executor:
    """Statements on the writer connection, run on the loop, which runs between slices."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.pacer = Pacer()

    async def _breathe(self) -> None:
        if self.pacer.due():
            await self.pacer.pause()

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        rows = self.db.execute(sql, _params(args)).fetchall()
        await self._breathe()
        return rows

    async def execute(self, sql: str, *args: Any) -> int:
        changed = self.db.execute(sql, _params(args)).rowcount
        await self._breathe()
        return changed

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)
        await self._breathe()

    async def apply(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        changed = self.db.executemany(sql, rows).rowcount
        await self._breathe()
        return changed


class _Writer:
    """The one connection that writes; the backend's lock keeps its use sequential."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        deadline = time.monotonic() + busy_timeout_ms / 1000
        for pragma in _PRAGMAS:
            while True:  # runs off the loop: sleeping here holds up nothing
                try:
                    self.db.execute(pragma)
                    break
                except sqlite3.OperationalError as exc:
                    # Switching a new file to WAL while another process opens it too can
                    # answer "locked" at once, without waiting on the busy timeout.
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.01)
        # The first id this process has not reserved yet (0: none reserved). Reserving
        # writes nothing, so the database does not know of it.
        self.reserved = 0

    def reserve(self, count: int) -> list[int]:
        """``count`` ids above both the database's next id and the ids reserved before."""
        first = max(self.reserved, self.db.execute(_NEXT_ID).fetchone()[0])
        self.reserved = first + count
        return list(range(first, first + count))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            rollback(self.db)
            raise
        commit_durably(self.db)

    def migrate(self) -> None:
        # One write transaction from reading the version to the last script: two processes
        # opening a new database together take turns instead of both applying the scripts.
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
            for version, script in enumerate(SQLITE_MIGRATIONS, start=1):
                if version <= current:
                    continue
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO schema_version VALUES (?)", (version,))


class SqliteBackend:
    """The embedded default: one file, one writing process at a time."""

    sql = STATEMENTS
    rows_per_call = ROWS_PER_CALL

    def __init__(self, path: str, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._writer: _Writer | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    def param(self, n: int) -> str:
        return f"?{n}"

    def _w(self) -> _Writer:
        if self._writer is None or self._executor is None:
            raise StoreUnavailable("store is not open")
        return self._writer

    async def _begin(self, writer: _Writer) -> None:
        """BEGIN IMMEDIATE, retried without blocking the loop while another process writes."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        delay = 0.001
        while True:
            try:
                writer.db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise StoreUnavailable(f"SQLite: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(f"SQLite: {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    @asynccontextmanager
    async def transaction(self, conflicts: bool = False) -> AsyncIterator[Executor]:
        # The writer is held from BEGIN to the COMMIT: SQLite has one writer.
        async with self._lock:
            writer = self._w()
            await self._begin(writer)
            try:
                yield _Executor(writer.db)
            except BaseException as exc:  # CancelledError too: the caller gave up
                rollback(writer.db)
                # Another open incident for the key appeared, or a reserved id was taken.
                if conflicts and isinstance(exc, sqlite3.IntegrityError):
                    raise Conflict(str(exc)) from exc
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailable(f"SQLite: {exc}") from exc
                raise
            await self._commit(writer)

    async def _commit(self, writer: _Writer) -> None:
        """COMMIT off the loop, held (with the lock) until the disk answers even if the
        caller is cancelled meanwhile."""
        loop = asyncio.get_running_loop()
        committing = loop.run_in_executor(self._executor, commit_durably, writer.db)
        cancelled = False
        while not committing.done():
            try:
                await asyncio.shield(committing)
            except asyncio.CancelledError:
                cancelled = True
            except sqlite3.Error:
                break
        failure = committing.exception()
        if cancelled:
            raise asyncio.CancelledError
        if failure is not None:
            raise StoreUnavailable(f"SQLite commit failed: {failure}") from failure

    async def run(self, body: Body[T], conflicts: bool = False) -> T:
        async with self.transaction(conflicts) as ex:
            return await body(ex)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Executor]:
        async with self._lock:  # never between a transaction's statements and its COMMIT
            try:
                yield _Executor(self._w().db)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite: {exc}") from exc

    async def query(self, sql: str, *args: Any) -> list[Row]:
        if self._reader is None:
            raise StoreUnavailable("store is not open")
        try:
            return list(await self._reader.execute_fetchall(sql, _params(args)))
        except (sqlite3.Error, ValueError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def reserve_incident_ids(self, count: int) -> list[int]:
        # A quick read, no write transaction (no fsync): another process on the file may
        # reserve the same ids, and the second commit inserting one raises Conflict.
        async with self._lock:
            try:
                return self._w().reserve(count)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite: {exc}") from exc

    async def lock_queues(self, ex: Executor, queues: Collection[Queue]) -> None:
        """One writer: its transactions take turns already."""

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-commit")
        loop = asyncio.get_running_loop()
        try:
            # Opening and migrating may wait on locks: keep that off the loop.
            self._writer = await loop.run_in_executor(
                self._executor, _Writer, self.path, self.busy_timeout_ms
            )
            await loop.run_in_executor(self._executor, self._writer.migrate)
            # From now on BEGIN runs on the loop: it must not block, _begin waits.
            self._writer.db.execute("PRAGMA busy_timeout = 0")
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            # First: the pragmas below wait for another opener's migration to finish.
            await self._reader.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            for pragma in _PRAGMAS:
                await self._reader.execute(pragma)
        except (sqlite3.Error, StoreUnavailable) as exc:
            await self.close()
            raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
        if self._executor is not None and self._writer is not None:
            writer = self._writer
            await asyncio.get_running_loop().run_in_executor(self._executor, writer.db.close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._reader = self._writer = self._executor = None


class SqliteStore(SqlStore):
    """The embedded default store."""

    backend: SqliteBackend

    def __init__(self, path: str, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        super().__init__(SqliteBackend(path, busy_timeout_ms))
