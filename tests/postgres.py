"""The PostgreSQL server the tests use, and fresh schemas on it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
import pytest

POSTGRES_URL = os.environ.get(
    "RECEIVER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL schema, dropped with everything in it afterwards.

    An unreachable server fails the test: the PostgreSQL backend must not go untested.
    """
    try:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        pytest.fail(
            f"PostgreSQL for the store tests is unreachable at {POSTGRES_URL} ({exc!r}); "
            "start it or point RECEIVER_TEST_POSTGRES_URL at one",
            pytrace=False,
        )
    name = f"test_{uuid.uuid4().hex}"
    try:
        await admin.execute(f'CREATE SCHEMA "{name}"')
        yield name
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await admin.close()
