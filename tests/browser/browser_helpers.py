"""Helpers for the browser tests: a restartable in-process server, page error collection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from bot.settings import Settings
from sync import keys
from sync.app import create_app


class Server:
    """The sync service in this event loop on a fixed port, so it can be stopped and started again."""

    def __init__(self, settings: Settings, port: int):
        self.settings, self.port = settings, port
        self.url = f"http://127.0.0.1:{port}"
        self.runner: web.AppRunner | None = None
        self.app: web.Application | None = None

    async def start(self) -> None:
        self.app = create_app(self.settings)
        self.runner = web.AppRunner(self.app, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()
        await asyncio.wait_for(self.app[keys.LISTENER].ready.wait(), 10)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Server]:
    from tests.sync_helpers import free_port

    server = Server(settings, free_port())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def collect_errors(page) -> list[str]:
    """Console errors and uncaught exceptions of a page, gathered from now on."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    return errors
