"""Helpers for the browser tests: a restartable in-process server, page error collection, the chat."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator

from aiohttp import web
from playwright.async_api import TimeoutError as PlaywrightTimeout

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


REPLY_MS = 120_000  # one turn of the real assistant on a busy 2-core machine; bounds a hang only


async def answered(page, pattern: str, act) -> str:
    """Do ``act`` (type, click) and wait for the assistant's next message in the chat widget that
    matches ``pattern`` (a regular expression, case-insensitive); its text. Only the assistant's
    messages count (``.msg.bot``), never the page's echo of what was typed."""
    matching = page.locator(".msg.bot", has_text=re.compile(pattern, re.I))
    before = await matching.count()
    await act()
    reply = matching.nth(before)
    try:
        await reply.wait_for(timeout=REPLY_MS)
    except PlaywrightTimeout:
        said = (await page.locator(".msg").all_inner_texts())[::-1][:6]
        raise AssertionError(f"no reply matching {pattern!r}; the chat shows, last first: {said}") from None
    return await reply.inner_text()


def typing(page, text: str):
    """An ``act`` for ``answered``: type ``text`` into the chat and press Enter."""
    async def act():
        await page.fill("#chat-input", text)
        await page.keyboard.press("Enter")
    return act


async def offered(page, who: str = "guest") -> list[dict]:
    """The buttons the chat widget shows, with the payloads it keeps for them in localStorage
    (``who``: the signed-in ``sub``, or ``guest``)."""
    buttons = page.locator("#quick-replies button")
    await buttons.first.wait_for(timeout=REPLY_MS)
    kept = json.loads(await page.evaluate(f"localStorage.getItem('chat.transcript.{who}.replies')") or "[]")
    assert [b["title"] for b in kept] == await buttons.all_inner_texts()
    return kept
