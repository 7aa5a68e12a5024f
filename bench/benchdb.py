"""The receiver's database in a benchmark: a fresh SQLite file or a fresh PostgreSQL schema."""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

DEFAULT_POSTGRES_URL = os.environ.get(
    "RECEIVER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
_PG_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class DatabaseError(Exception):
    """The database could not be created, read or dropped."""


@dataclass
class Database:
    """Where receivers store: a SQLite file, or a schema on a PostgreSQL server."""

    backend: str  # "sqlite" | "postgres"
    url: str  # what the receivers get
    sqlite_path: Path | None = None
    server_url: str | None = None
    schema: str | None = None

    def describe(self) -> str:
        if self.sqlite_path is not None:
            return f"SQLite file {self.sqlite_path}"
        return f"PostgreSQL schema {self.schema} on {redact(self.server_url or '')}"


def redact(url: str) -> str:
    """A database URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def schema_url(url: str, schema: str) -> str:
    """The URL with ``search_path=<schema>``; asyncpg sends unknown query parameters to the
    server as settings of every connection."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"]
    query.append(("search_path", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


def quote(name: str) -> str:
    """An SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


async def _connect(url: str) -> Any:
    try:
        return await asyncpg.connect(url, timeout=10)
    except _PG_ERRORS as exc:
        raise DatabaseError(f"PostgreSQL unreachable at {redact(url)}: {exc!r}") from exc


async def _pg_run(url: str, statements: list[str]) -> list[list[tuple[Any, ...]]]:
    conn = await _connect(url)
    results: list[list[tuple[Any, ...]]] = []
    try:
        for statement in statements:
            try:
                results.append([tuple(r) for r in await conn.fetch(statement)])
            except asyncpg.PostgresError as exc:
                raise DatabaseError(f"PostgreSQL: {statement[:200]}: {exc}") from exc
    finally:
        await conn.close()
    return results


def new_database(backend: str, workdir: Path, name: str, server_url: str) -> Database:
    """A fresh SQLite file ``<workdir>/<name>.db``, or a fresh schema ``bench_<name>_<hex>``."""
    if backend == "sqlite":
        path = workdir / f"{name}.db"
        return Database("sqlite", f"sqlite:///{path}", sqlite_path=path)
    schema = f"bench_{name}_{secrets.token_hex(4)}"
    asyncio.run(_pg_run(server_url, [f"CREATE SCHEMA {quote(schema)}"]))
    return Database(
        "postgres", schema_url(server_url, schema), server_url=server_url, schema=schema
    )


def drop_database(db: Database) -> None:
    """Drop a PostgreSQL schema and everything in it (a SQLite file goes with its directory)."""
    if db.server_url is not None and db.schema is not None:
        asyncio.run(_pg_run(db.server_url, [f"DROP SCHEMA IF EXISTS {quote(db.schema)} CASCADE"]))


def run_sql(db: Database, statements: list[str]) -> list[list[tuple[Any, ...]]]:
    """Run statements one at a time, each committed on its own; the rows of each.

    On PostgreSQL they run in the database's schema (so VACUUM works too)."""
    if db.sqlite_path is None:
        return asyncio.run(_pg_run(db.url, statements))
    conn = sqlite3.connect(db.sqlite_path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        return [[tuple(r) for r in conn.execute(s).fetchall()] for s in statements]
    except sqlite3.Error as exc:
        raise DatabaseError(f"SQLite {db.sqlite_path}: {exc}") from exc
    finally:
        conn.close()
