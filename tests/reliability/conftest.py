"""Fixtures for the process-level reliability tests: fakes, an HTTP session, databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack
from tests.postgres import POSTGRES_URL, postgres_schema
from tests.reliability.harness import fake_jira, fake_slack
from tests.reliability.postgres import PrivateCluster, with_search_path


@pytest.fixture
async def jira() -> AsyncIterator[FakeJira]:
    async with fake_jira() as fake:
        yield fake


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with fake_slack() as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as client:
        yield client


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/receiver.db"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh schema on the shared PostgreSQL server, as a database URL for receivers."""
    async with postgres_schema() as schema:
        yield with_search_path(POSTGRES_URL, schema)


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[PrivateCluster]:
    """A PostgreSQL cluster of this test's own, which it may stop and start."""
    cluster = PrivateCluster.create()
    try:
        yield cluster
    finally:
        cluster.drop()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each backend in turn: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/receiver.db"
        return
    async with postgres_schema() as schema:
        yield with_search_path(POSTGRES_URL, schema)
