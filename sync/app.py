"""Build the aiohttp application: Socket.IO server, hub, outbox listener, REST, lifecycle.

Resources live in ``app.cleanup_ctx`` (the replay pool, the listener task, the hold sweeper, the
reminder worker and the waitlist worker) and
``on_shutdown`` (disconnecting clients), so ``python -m sync`` and tests share one
wiring. With ``REDIS_URL`` set, python-socketio's ``AsyncRedisManager`` is the client
manager; outbox events are still fanned out by each node to its own clients (see
docs/realtime.md, "Scale-out").
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator

import socketio
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from bot.settings import Settings, get_settings, libpq_url

from . import (api, feeds, holds, keys, login, patient_signin, reminders, rest, staff, visit_links, waitlist,
               web as pages)
from .handlers import SocketHandlers
from .hub import Hub
from .listener import OutboxListener
from .origins import cors_origins
from .server import SocketServer
from .stats import Stats

log = logging.getLogger(__name__)

PING_INTERVAL = 30  # seconds: the heartbeat (docs/realtime.md); clients answer within PING_TIMEOUT
PING_TIMEOUT = 20
MAX_MESSAGE_BYTES = 256 * 1024  # a bigger client message closes its socket (engine.io's own limit)


def create_app(settings: Settings | None = None, *, node_id: str | None = None,
               redis_channel: str | None = None, listener_options: dict | None = None) -> web.Application:
    settings = settings or get_settings()
    app = web.Application()
    app[keys.SETTINGS] = settings
    app[keys.NODE_ID] = node_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    manager = None
    if settings.redis_url:
        manager = socketio.AsyncRedisManager(
            settings.redis_url, channel=redis_channel or settings.sync_redis_channel)
    sio = SocketServer(
        async_mode="aiohttp", client_manager=manager,
        cors_allowed_origins=cors_origins(settings), cors_credentials=False,
        ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT, max_http_buffer_size=MAX_MESSAGE_BYTES,
        logger=False, engineio_logger=False)
    sio.attach(app)
    app[keys.SIO] = sio
    app[keys.STATS] = stats = Stats()
    sio.stats = sio.eio.stats = stats
    app[keys.HUB] = hub = Hub(sio.eio, stats)

    app[keys.REMINDER_WAKE] = wake = asyncio.Event()
    app[keys.WAITLIST_WAKE] = waitlist_wake = asyncio.Event()

    nudges = ((reminders.WAKING, wake), (waitlist.WAKING, waitlist_wake))

    def on_events(batch, started: float) -> None:  # the listener's batch: to clients, and nudges
        hub.dispatch(batch, started)
        for waking, event in nudges:
            if any(ev.type in waking for ev in batch):
                event.set()

    dsn = _dsn(settings)
    app[keys.LISTENER] = listener = OutboxListener(dsn, on_events, **(listener_options or {}))
    # check: a connection the database ended meanwhile (a restart, pg_terminate_backend) is
    # replaced before use, so a client's resume never fails on it (sync/handlers.py)
    app[keys.POOL] = pool = AsyncConnectionPool(dsn, min_size=1, max_size=4, open=False,
                                                kwargs={"autocommit": True}, name="sync-replay",
                                                check=AsyncConnectionPool.check_connection)
    handlers = SocketHandlers(sio, hub, listener, pool, settings)
    handlers.register()
    handlers.cookie_identity = staff.socket_identity(app)
    app[keys.HANDLERS] = handlers

    rest.setup(app)
    api.setup(app)
    pages.setup(app)
    login.setup(app)
    patient_signin.setup(app)
    visit_links.setup(app)  # after api: the booking service
    feeds.setup(app)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(staff.watch_sessions)  # after _database: the engine and the handlers
    holds.setup(app)  # after _database: the sweeper uses its pool
    reminders.setup(app)  # after api's engine: the worker and its notifier use it
    waitlist.setup(app)  # after api's booking service: the worker uses it
    app.on_shutdown.append(_disconnect_clients)
    return app


def _dsn(settings: Settings) -> str:
    if settings.database_url:
        return libpq_url(settings.database_url)
    from bot.db import conninfo, resolve_database_url  # starts the embedded server; imports SQLAlchemy

    return conninfo(resolve_database_url(settings))


async def _database(app: web.Application) -> AsyncIterator[None]:
    """The replay pool and the listener task: opened at start-up, closed at shutdown."""
    pool, listener = app[keys.POOL], app[keys.LISTENER]
    await pool.open(wait=False)
    listener.start()
    try:
        yield
    finally:
        await listener.stop()
        await app[keys.HANDLERS].close()
        await pool.close()
        thread = getattr(app[keys.SIO].manager, "thread", None)  # the Redis manager's reader
        if thread is not None:
            thread.cancel()
            await asyncio.gather(thread, return_exceptions=True)


async def _disconnect_clients(app: web.Application) -> None:
    """Graceful shutdown: stop reading the outbox, close every client's transport (clients
    then reconnect — to another node behind the balancer — and resume with ``since``)."""
    await app[keys.LISTENER].stop()
    sio = app[keys.SIO]
    closed = await sio.eio.close_all()
    if closed:
        log.info("shut down: closed %d client connection(s)", closed)
    await sio.shutdown()
