"""Small asyncio helpers the services share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


async def cancel_and_wait(*tasks: asyncio.Task | None, every: float = 1.0) -> None:
    """Cancel ``tasks`` and return once every one of them has finished.

    One ``cancel()`` is not always enough on Python 3.10: ``asyncio.wait_for`` swallows a
    cancellation that arrives just as the operation it waits for completes (python/cpython
    gh-86296, fixed in 3.12), and the task then carries on — a shutdown that awaits it hangs.
    So the cancellation is repeated every ``every`` seconds until the task is done. A task's
    own exception is retrieved (and dropped: the task logs what matters to it).
    """
    pending = {t for t in tasks if t is not None and not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every)
    for task in tasks:
        if task is not None and not task.cancelled():
            task.exception()


async def in_thread(fn: Callable[..., T], *args) -> T:
    """``fn(*args)`` in a thread (blocking work: SQLAlchemy, smtplib). A cancellation (shutdown)
    waits for the call to end first: a thread cannot be stopped, and what it uses (an engine) is
    disposed right after the task that awaited it."""
    running = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        while not running.done():  # cancel_and_wait cancels again every second: keep waiting
            try:
                await asyncio.wait({running})
            except asyncio.CancelledError:
                pass
        if not running.cancelled() and running.exception() is not None:
            log.warning("%s failed at shutdown: %s", getattr(fn, "__qualname__", fn), running.exception())
        raise


async def repeat(step: Callable[[], Awaitable[object]], wake: asyncio.Event, every: float, what: str) -> None:
    """Run ``step`` now, then whenever ``wake`` is set and at least every ``every`` seconds, until
    cancelled. A failing step is logged and run again next round (the database may be restarting)."""
    while True:
        wake.clear()
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed: %s", what, exc)
        try:
            await asyncio.wait_for(wake.wait(), every)
        except TimeoutError:
            pass


@asynccontextmanager
async def repeating(step: Callable[[], Awaitable[object]], wake: asyncio.Event, every: float,
                    what: str) -> AsyncIterator[asyncio.Task]:
    """``repeat`` as a background task for the body of the ``async with`` (an aiohttp
    ``cleanup_ctx``'s life), cancelled and awaited when it ends."""
    task = asyncio.get_running_loop().create_task(repeat(step, wake, every, what), name=what)
    try:
        yield task
    finally:
        await cancel_and_wait(task)
