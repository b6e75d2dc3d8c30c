"""Waiting in tests: poll the condition a wait stands for, with a timeout; never a bare sleep.

The timeout only bounds a test that would otherwise hang: it is generous on purpose (a shared
2-core machine is slow at times). How fast something happens is measured in bench/, not here.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import psycopg

Condition = Callable[[], Any | Awaitable[Any]]


async def wait_until(condition: Condition, timeout: float = 30.0, *, what: str = "",
                     interval: float = 0.02) -> Any:
    """Call ``condition`` (plain or async) every ``interval`` seconds until it returns a true
    value, and return that value; after ``timeout`` seconds fail, saying ``what`` was awaited.
    A condition that blocks (a sync database query) should be wrapped in ``asyncio.to_thread``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            name = what or getattr(condition, "__name__", repr(condition))
            raise AssertionError(f"not met within {timeout:g}s: {name} (last value {value!r})")
        await asyncio.sleep(interval)


async def action_cache_caught_up(actions_url: str, db_url: str, timeout: float = 60.0) -> None:
    """Wait until the action server's availability cache (its ``GET /health``) has applied the
    outbox's newest event (``max(id)`` of ``realtime_events``) and finished the reloads it asked for."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute("SELECT coalesce(max(id), 0) FROM realtime_events")
        newest = (await cur.fetchone())[0]

    async def caught_up() -> bool:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{actions_url}/health") as resp:
                cache = (await resp.json())["cache"]
        return (cache.get("last_event_id") or 0) >= newest and not cache.get("refreshing")

    await wait_until(caught_up, timeout, what=f"the action server's cache applying outbox event {newest}")
