"""Waiting in tests: poll the condition a wait stands for, with a timeout; never a bare sleep.

The timeout only bounds a test that would otherwise hang: it is generous on purpose (a shared
2-core machine is slow at times). How fast something happens is measured in bench/, not here.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

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
