"""The availability cache's background refresher: reloads from SQL, off the callers' path.

One reload runs at a time, in request order: a dentist's (after ``availability_changed``)
or everything (at ``resync_required``, after a failure, and every ``refresh_seconds`` to
roll the horizon forward). A request for everything supersedes queued dentist requests.
A failed reload is logged and retried as a full reload with capped back-off.

It knows the cache only by the callables it is given (no import of ``actions.cache``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.aio import cancel_and_wait

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


class Refresher:
    def __init__(self, reload_all: Callable[[], Awaitable[None]], reload_dentist: Callable[[int], None],
                 on_failure: Callable[[], None], refresh_seconds: float):
        """``reload_all`` runs on the loop; ``reload_dentist`` blocks (it runs in a thread);
        ``on_failure`` counts a failed reload."""
        self._load_all = reload_all
        self._load_dentist = reload_dentist
        self._on_failure = on_failure
        self.refresh_seconds = refresh_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._pending_all = False
        self._pending: dict[int, None] = {}  # dentist ids, in request order
        self._waiters: list[asyncio.Future] = []  # full_reload() callers
        self._task: asyncio.Task | None = None
        self._closing = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def busy(self) -> bool:
        return bool(self._pending_all or self._pending)

    def request(self, dentist_id: int | None) -> None:
        """Queue a dentist's reload (None: everything's). Safe from any thread."""
        if dentist_id is None:
            self._pending_all = True
            self._pending.clear()
        elif not self._pending_all:
            self._pending[int(dentist_id)] = None
        self._signal()

    def _signal(self) -> None:
        assert self._loop is not None and self._wake is not None and self._idle is not None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._idle.clear()
            self._wake.set()
        else:  # called from another thread
            self._loop.call_soon_threadsafe(self._idle.clear)
            self._loop.call_soon_threadsafe(self._wake.set)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._wake, self._idle = asyncio.Event(), asyncio.Event()
        self._idle.set()
        self._task = asyncio.create_task(self._run(), name="availability-cache-refresher")

    async def stop(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if self._wake is not None:
            self._wake.set()
        await cancel_and_wait(task)
        for w in self._waiters:
            if not w.done():
                w.cancel()

    async def full_reload(self) -> None:
        """Queue a full reload and wait until it is done."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self.request(None)
        await fut

    async def settled(self, timeout: float | None = None) -> None:
        """Wait until no reload is queued or running."""
        if self._idle is not None:
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def _run(self) -> None:
        assert self._wake is not None and self._idle is not None
        next_full = time.monotonic() + self.refresh_seconds
        backoff = 0.5
        # ``_closing`` as well as cancel(): Python 3.10's wait_for can swallow a cancellation
        # that lands just as the awaited event fires
        while not self._closing:
            if not self.busy:
                self._idle.set()
                try:
                    await asyncio.wait_for(self._wake.wait(), max(0.0, next_full - time.monotonic()))
                except asyncio.TimeoutError:
                    self._pending_all = True
            self._wake.clear()
            if self._closing:
                break
            try:
                if self._pending_all:
                    await self._reload_all()
                    next_full = time.monotonic() + self.refresh_seconds
                elif self._pending:
                    dentist_id = next(iter(self._pending))
                    del self._pending[dentist_id]
                    await asyncio.to_thread(self._load_dentist, dentist_id)
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception:
                self._on_failure()
                log.exception("availability reload failed; retrying everything in %.1fs", backoff)
                self._pending_all = True  # whatever was lost, a full reload covers it
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _reload_all(self) -> None:
        self._pending_all = False
        self._pending.clear()
        waiters, self._waiters = self._waiters, []
        try:
            await self._load_all()
        except BaseException as exc:
            for w in waiters:
                if not w.done():
                    w.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            raise
        for w in waiters:
            if not w.done():
                w.set_result(None)
