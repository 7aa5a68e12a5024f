"""Shared fixtures: an app on a temporary SQLite store with tokens and a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from receiver.app import create_app
from receiver.metrics import Metrics
from receiver.notify.base import Notifier
from receiver.settings import Settings
from receiver.store import Store
from tests.fakes.smtp import FakeSmtp
from tests.fakes.telegram import FakeTelegram
from tests.helpers import SHIPPED_RULES, FakeClock

WEBHOOK_TOKEN = "wh-secret-token"
API_TOKEN = "api-secret-token"
AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
API = {"Authorization": f"Bearer {API_TOKEN}"}

ClientFactory = Callable[..., Awaitable[TestClient[Any, web.Application]]]


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "rules": str(SHIPPED_RULES),
        "database_url": f"sqlite:///{tmp_path}/receiver.db",
        "webhook_token": SecretStr(WEBHOOK_TOKEN),
        "api_token": SecretStr(API_TOKEN),
        "outbox_poll_seconds": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def telegram(clock: FakeClock) -> AsyncIterator[FakeTelegram]:
    """A fake Telegram Bot API, its message dates on the test's clock."""
    async with FakeTelegram(clock=clock) as fake:
        yield fake


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 keeping what it accepts."""
    async with FakeSmtp() as fake:
        yield fake


@pytest.fixture
def make_client(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, web.Application]]],
    tmp_path: Path,
    clock: FakeClock,
) -> ClientFactory:
    """Build a test client around create_app; keyword arguments tune settings and wiring."""

    async def factory(
        notifiers: dict[str, Notifier] | None = None,
        run_worker: bool = True,
        store: Store | None = None,
        **settings: Any,
    ) -> TestClient[Any, web.Application]:
        app = create_app(
            make_settings(tmp_path, **settings),
            metrics=Metrics(),
            clock=clock,
            notifiers=notifiers,
            run_worker=run_worker,
            store=store,
        )
        return await aiohttp_client(app)

    return factory
