"""The store under test, once per backend; the tests use only the Store interface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from receiver.store import SqliteStore, Store

# Every backend listed here runs the whole interface suite.
BACKENDS = ["sqlite"]


def make_store(backend: str, tmp_path: Path) -> Store:
    """A new, not yet opened store of one backend."""
    if backend == "sqlite":
        return SqliteStore(str(tmp_path / "s.db"))
    raise ValueError(f"unknown store backend {backend!r}")


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened = make_store(request.param, tmp_path)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
