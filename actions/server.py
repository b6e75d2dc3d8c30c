"""The action server process: rasa-sdk's Sanic app + the availability cache + the sync client.

``create_app`` builds rasa-sdk's own app (``/webhook``, ``/actions``) around an
``ActionExecutor`` holding the ``actions`` package — an action module that cannot be imported
stops the process (rasa-sdk exits with status 1) — and adds:

* ``after_server_start``: a start-up task loads the cache from SQL (retrying with back-off
  while PostgreSQL is away), installs it as the process-wide cache, starts its refresher,
  then starts the sync client (which itself keeps retrying while the sync service is away).
  The server answers from the first moment; until the cache is in, actions read SQL.
* ``before_server_stop``: the sync client, the refresher and the engine are closed.
* a request middleware that refuses every call but ``GET /health`` without the shared secret
  Rasa sends (``Authorization: Bearer <ACTIONS_TOKEN>``, from endpoints.yml): 401 JSON. Only
  Rasa can run actions, so the tracker an action reads is the one Rasa built.
* ``GET /health``: cache age, last event id, event lag, sync connection, and how many reads
  the gateway answered from SQL although the cache was asked for
  (``availability.gateway_sql_fallbacks``); ``"ok"`` when the
  cache is loaded and the sync service connected, else ``"degraded"`` (HTTP 200 either
  way: the server still answers, from SQL where the cache cannot).

Nothing here runs at import time: rasa-sdk imports every module of the package.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Any

from bot.aio import cancel_and_wait
from bot.settings import Settings

log = logging.getLogger(__name__)


class Runtime:
    """What the server owns while it runs (kept on ``app.ctx.runtime``)."""

    def __init__(self, settings: Settings, *, sync_url: str | None = None):
        self.settings = settings
        self.sync_url = sync_url
        self.engine: Any = None
        self.cache: Any = None
        self.sync: Any = None
        self.started_at = time.time()
        self.load_attempts = 0
        self.load_error: str | None = None
        self._startup: asyncio.Task | None = None

    async def start(self) -> None:
        self._startup = asyncio.create_task(self._start(), name="action-server-startup")

    async def _start(self) -> None:
        from bot.db import get_engine, make_engine

        from .cache import AvailabilityCache, set_cache
        from .sync_client import SyncClient

        self.engine = make_engine(self.settings.database_url) if self.settings.database_url else get_engine()
        self.cache = AvailabilityCache(self.engine, self.settings)
        delay = 0.5
        while True:
            self.load_attempts += 1
            try:
                await asyncio.to_thread(self.cache.load)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL not up yet: actions use SQL (and fail politely)
                self.load_error = str(exc) or type(exc).__name__
                log.warning("availability cache load failed (%s); retrying in %.1fs", self.load_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.load_error = None
        await self.cache.start()
        set_cache(self.cache)
        self.sync = SyncClient(self.cache, self.settings, url=self.sync_url)
        await self.sync.start()

    async def stop(self) -> None:
        from .cache import set_cache

        await cancel_and_wait(self._startup)
        set_cache(None)
        if self.sync is not None:
            await self.sync.stop()
        if self.cache is not None:
            await self.cache.stop()
        if self.engine is not None and self.settings.database_url:
            self.engine.dispose()
        log.info("action server stopped cleanly")

    def health(self) -> dict:
        cache = self.cache.health() if self.cache is not None else {"loaded": False}
        sync = self.sync.status() if self.sync is not None else {"connected": False, "reconnects": 0}
        ok = bool(cache.get("loaded")) and bool(sync.get("connected"))
        from .gateway import get_gateway

        body = {"status": "ok" if ok else "degraded", "cache": cache, "sync": sync,
                "availability": {"source": self.settings.availability_source,
                                 "gateway_sql_fallbacks": get_gateway().sql_fallbacks},
                "uptime_seconds": round(time.time() - self.started_at, 1)}
        if self.load_error:
            body["cache"]["load_error"] = self.load_error
        return body


def create_app(settings: Settings, *, sync_url: str | None = None, action_package: str = "actions"):
    from rasa_sdk.endpoint import create_app as sdk_create_app
    from rasa_sdk.executor import ActionExecutor
    from sanic import response

    executor = ActionExecutor()
    executor.register_package(action_package)
    # No browser calls this server: no CORS origin at all (rasa-sdk's default would be "*").
    app = sdk_create_app(executor, cors_origins="")
    runtime = Runtime(settings, sync_url=sync_url)
    app.ctx.runtime = runtime
    expected = f"Bearer {settings.resolved_actions_token}".encode()

    async def health(request):
        # rasa-sdk's app has its own GET /health ({"status": "ok"}); ours answers first
        if request.path == "/health" and request.method in ("GET", "HEAD"):
            return response.json(runtime.health())
        given = (request.headers.get("authorization") or "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning("refused %s %s from %s: no valid action server token", request.method, request.path,
                        request.ip)
            return response.json({"error": "unauthorized",
                                  "message": "This server answers only the clinic's Rasa server."}, status=401)
        return None

    async def after_start(app_, loop):
        await runtime.start()

    async def before_stop(app_, loop):
        await runtime.stop()

    app.register_middleware(health, "request")
    app.register_listener(after_start, "after_server_start")
    app.register_listener(before_stop, "before_server_stop")
    return app


def run(settings: Settings) -> None:
    """Serve on ``settings.actions_port`` in this process: Sanic's single-process mode, no worker
    manager (one cache per process, and the launcher's signals reach the server itself)."""
    app = create_app(settings)
    host = settings.actions_host
    log.info("action server on http://%s:%d (sync service %s)", host, settings.actions_port,
             settings.resolved_sync_url)
    app.run(host=host, port=settings.actions_port, single_process=True, access_log=False, motd=False)
