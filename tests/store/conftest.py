"""The store under test, once per backend; the tests use only the Store interface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from receiver.store import PostgresStore, SqliteStore, Store
from tests.postgres import POSTGRES_URL, postgres_schema

# Every backend listed here runs the whole interface suite.
BACKENDS = ["sqlite", "postgres"]


def make_store(backend: str, tmp_path: Path, schema: str | None = None) -> Store:
    """A new, not yet opened store of one backend (PostgreSQL in an existing schema)."""
    if backend == "sqlite":
        return SqliteStore(str(tmp_path / "s.db"))
    if backend == "postgres":
        return PostgresStore(POSTGRES_URL, schema=schema, connect_timeout=5)
    raise ValueError(f"unknown store backend {backend!r}")


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with AsyncExitStack() as stack:
        schema = None
        if request.param == "postgres":
            schema = await stack.enter_async_context(postgres_schema())
        opened = make_store(request.param, tmp_path, schema)
        await opened.open()
        stack.push_async_callback(opened.close)
        yield opened


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema, dropped afterwards (for the PostgreSQL-only tests)."""
    async with postgres_schema() as name:
        yield name


@pytest.fixture
async def admin(schema: str) -> AsyncIterator[Any]:
    """A plain connection to the schema, to look at rows and hold locks."""
    conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
    try:
        yield conn
    finally:
        await conn.close()
