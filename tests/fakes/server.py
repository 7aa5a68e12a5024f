"""The lifecycle the fake servers share: one aiohttp app on 127.0.0.1 at a free port."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from aiohttp import web


class LoopbackServer:
    """Routes every request to ``_dispatch``; ``url`` is the root plus ``url_suffix``."""

    url_suffix = ""
    max_body = 1024 * 1024

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._root = ""

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def start(self) -> str:
        """Bind ``127.0.0.1:0`` (once) and return ``url``."""
        if self._runner is None:
            app = web.Application(client_max_size=self.max_body)
            app.router.add_route("*", "/{tail:.*}", self._dispatch)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            self._runner = runner
            self._root = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        """Close the listening socket and every connection; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Where clients point; only valid after ``start()``."""
        if not self._root:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._root + self.url_suffix
