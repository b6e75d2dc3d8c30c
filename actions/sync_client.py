"""The action server's Socket.IO client of the sync service: events in, cache kept fresh.

* Connects with ``auth={"token": <service JWT>, "since": cache.last_event_id}`` — ``auth``
  is a callable, so every (re)connect sends the cache's current ``since`` and a fresh token
  (minted from JWT_SECRET, or ``SERVICE_TOKEN`` when set).
* A supervisor task owns the connection: it retries with capped, jittered back-off while
  the sync service is away (also when it is down at start) and reconnects after any drop.
  python-socketio's own reconnection is off so there is exactly one retry loop.
* Events are applied to the cache in the handler itself, with no ``await`` before the
  cache call, so they apply in arrival (= id) order; ids at or below ``last_event_id``
  are ignored by the cache (exactly once across replays).
* ``resync_required`` → ``last_event_id`` becomes the server's ``lastId`` and the cache
  reloads everything from the database (events arriving meanwhile are kept, see cache).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import socketio

from bot.aio import cancel_and_wait
from bot.events import OUTBOX_EVENTS, RESYNC_REQUIRED
from bot.settings import Settings
from bot.tokens import mint

from .cache import AvailabilityCache

log = logging.getLogger(__name__)


class SyncClient:
    def __init__(self, cache: AvailabilityCache, settings: Settings, *, url: str | None = None,
                 token: str | None = None, backoff_initial: float = 0.25, backoff_max: float = 5.0,
                 transports: list[str] | None = None):
        self.cache = cache
        self.settings = settings
        self.url = url or settings.resolved_sync_url
        self._fixed_token = token or settings.service_token or None
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.transports = transports or ["websocket"]

        self.sio = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.disconnected.set()
        self._lost = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._reload: asyncio.Task | None = None

        self.connects = 0
        self.reconnects = 0
        self.failed_attempts = 0
        self.resyncs = 0
        self.last_error: str | None = None
        self.connected_since: float | None = None
        self.disconnected_at: float | None = None

        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on(RESYNC_REQUIRED, self._on_resync)
        for name in OUTBOX_EVENTS:
            self.sio.on(name, self._on_event)

    # --- lifecycle -------------------------------------------------------------------------

    def auth(self) -> dict:
        """What each (re)connect sends; python-socketio calls it on every attempt."""
        token = self._fixed_token or mint("service", "actions", settings=self.settings)
        return {"token": token, "since": self.cache.last_event_id}

    async def start(self) -> None:
        """Start the supervisor; returns at once (the first connect happens in the background)."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name="sync-client")

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._reload is not None and not self._reload.done():
            self._reload.cancel()
        try:
            await asyncio.wait_for(self.sio.disconnect(), 5)
        except (asyncio.TimeoutError, Exception) as exc:  # shutting down: say it, carry on
            log.debug("sync client disconnect on stop: %r", exc)

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)

    async def wait_disconnected(self, timeout: float) -> None:
        await asyncio.wait_for(self.disconnected.wait(), timeout)

    async def _supervise(self) -> None:
        delay = self.backoff_initial
        while not self._stopping:
            self._lost.clear()
            try:
                if self.sio.eio.state != "disconnected":  # a server-side close may still be settling
                    await self.sio.eio.disconnect(abort=True)
                await self.sio.connect(self.url, auth=self.auth, transports=self.transports,
                                       wait_timeout=10)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # ConnectionError, refused auth, DNS...
                self.failed_attempts += 1
                error = str(exc) or type(exc).__name__
                changed, self.last_error = error != self.last_error, error
                if changed or self.failed_attempts % 20 == 0:
                    log.warning("sync service at %s unreachable (%s); retrying (attempt %d)",
                                self.url, self.last_error, self.failed_attempts)
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, self.backoff_max)
                continue
            delay = self.backoff_initial
            await self._lost.wait()
            if not self._stopping:
                await asyncio.sleep(self.backoff_initial * random.random())  # no thundering herd

    # --- handlers --------------------------------------------------------------------------

    async def _on_connect(self) -> None:
        # python-socketio marks the client connected only when ``connect()`` returns, and until then
        # drops a DISCONNECT (and runs no disconnect handler for a closed transport): a server that
        # refuses the session right after accepting it (a failed resume) would leave this client
        # connected to nothing, waiting for ``_lost`` forever. Connected from here on, a disconnect
        # that quick comes to ``_on_disconnect`` and the supervisor connects again.
        self.sio.connected = True
        self.connects += 1
        if self.connects > 1:
            self.reconnects += 1
        self.failed_attempts = 0
        self.connected_since = time.time()
        self.disconnected.clear()
        self.connected.set()
        log.info("connected to the sync service at %s (since=%d, reconnects=%d)", self.url,
                 self.cache.last_event_id, self.reconnects)

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.connected.clear()
        self.disconnected.set()
        self.connected_since = None
        self.disconnected_at = time.time()
        if not self._stopping:
            log.warning("lost the sync service (%s); reconnecting with since=%d", reason, self.cache.last_event_id)
        self._lost.set()

    async def _on_connect_error(self, data: Any = None) -> None:
        self.last_error = str(data)
        log.debug("sync connect_error: %s", data)

    async def _on_event(self, data: Any = None) -> None:
        if isinstance(data, dict):
            self.cache.apply(data)
        else:
            log.warning("sync event with a non-object payload ignored: %.200r", data)

    async def _on_resync(self, data: Any = None) -> None:
        self.resyncs += 1
        last = data.get("lastId") if isinstance(data, dict) else None
        log.warning("sync service asks for a resync (%s): reloading the cache", data)
        if isinstance(last, int) and not isinstance(last, bool) and last >= 0:
            self.cache.set_position(last)  # live events continue after the server's lastId
        self._reload = asyncio.create_task(self._resync_reload())

    async def _resync_reload(self) -> None:
        try:
            await self.cache.full_reload()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("cache reload after resync_required failed; the refresher retries")

    # --- health ----------------------------------------------------------------------------

    def status(self) -> dict:
        return {
            "connected": self.connected.is_set(),
            "reconnects": self.reconnects,
            "url": self.url,
            "connected_for_seconds": (round(time.time() - self.connected_since, 1)
                                      if self.connected_since else None),
            "failed_attempts": self.failed_attempts,
            "resyncs": self.resyncs,
            "last_error": self.last_error,
        }
