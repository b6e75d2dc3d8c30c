"""The cache kept fresh by the real sync service (``sync.app`` in this event loop) through
``actions.sync_client.SyncClient``: live events, resume with ``since`` after an outage,
``resync_required`` → reload. Each wait is for a condition (the event applied, the client
connected), bounded by a generous ``WAIT``; how fast the cache follows is measured in bench/."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp import web

from actions.cache import AvailabilityCache
from actions.sync_client import SyncClient
from bot.booking import BookingService, Outcome
from bot.seed import seed
from sync import keys
from sync.app import create_app
from sync.handlers import SocketHandlers
from test_cache import ADMIN, WINDOW, assert_equals_fresh_load, assert_matches_sql, book, first_slot, service_ids, sql
from tests.polling import wait_until

UTC = timezone.utc
WAIT = 30.0  # seconds: bounds a wait that would otherwise hang; not a speed claim


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SyncServer:
    """The real sync app on a fixed port that can be stopped and started again."""

    def __init__(self, settings, port: int):
        self.settings, self.port = settings, port
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = create_app(self.settings)
        self.runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        await asyncio.wait_for(app[keys.LISTENER].ready.wait(), 10)

    async def stop(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def booking(engine, settings, now) -> BookingService:
    seed(engine, settings)
    return BookingService(engine, settings, clock=lambda: now)


@contextlib.asynccontextmanager
async def running(engine, settings, now, port: int | None = None, start_server: bool = True):
    """A loaded cache with its refresher, a sync client, and the sync server (started or not)."""
    server = SyncServer(settings, port or free_port())
    if start_server:
        await server.start()
    cache = AvailabilityCache(engine, settings, clock=lambda: now)
    await cache.start()
    client = SyncClient(cache, settings, url=server.url, backoff_initial=0.05, backoff_max=0.5)
    await client.start()
    try:
        yield server, cache, client
    finally:
        await client.stop()
        await cache.stop()
        await server.stop()


def head(db_url: str) -> int:
    return sql(db_url, "SELECT coalesce(max(id), 0) FROM realtime_events")[0][0]


async def caught_up(cache: AvailabilityCache, db_url: str, timeout: float) -> None:
    """Wait until the cache has applied the outbox head and finished the reloads it asked for."""
    deadline = time.monotonic() + timeout
    await cache.wait_for_event(head(db_url), timeout)
    await cache.settled(max(0.01, deadline - time.monotonic()))


async def test_a_booking_made_elsewhere_leaves_the_cache(engine, settings, booking, db_url, now):
    async with running(engine, settings, now) as (server, cache, client):
        await client.wait_connected(WAIT)
        svc = service_ids(engine)[2]  # a filling: it holds its dentist, so a taken time is gone
        slot = first_slot(booking, svc)
        assert slot in cache.free_slots(svc, now, now + WINDOW)
        applied = cache.counts["events_applied"]
        await asyncio.to_thread(book, booking, db_url, svc, slot)
        await cache.wait_for_event(head(db_url), WAIT)
        assert cache.counts["events_applied"] == applied + 1  # told by the event, not by a reload
        assert slot not in cache.free_slots(svc, now, now + WINDOW)
        assert cache.health()["event_lag_ms"] is not None
        assert client.status()["connected"] and client.reconnects == 0


async def test_time_off_written_in_sql_leaves_the_cache(engine, settings, booking, db_url, now):
    async with running(engine, settings, now) as (server, cache, client):
        await client.wait_connected(WAIT)
        svc = service_ids(engine)[1]
        slot = first_slot(booking, svc)
        assert slot in cache.free_slots(svc, now, now + WINDOW)
        sql(db_url, "INSERT INTO time_off (dentist_id, starts_at, ends_at) VALUES (%s, %s, %s)",
            slot.dentist_id, slot.starts_at - timedelta(hours=1), slot.ends_at + timedelta(hours=1))
        await caught_up(cache, db_url, WAIT)
        assert slot not in cache.free_slots(svc, now, now + WINDOW)
        assert_matches_sql(cache, booking)


async def test_starts_without_the_sync_service_and_resumes_with_since(engine, settings, booking, db_url, now):
    """Sync down at start: the cache answers from its SQL load; bookings continue elsewhere;
    once the sync service is up the client connects with ``since`` and replays what it missed."""
    async with running(engine, settings, now, start_server=False) as (server, cache, client):
        since = cache.last_event_id
        svc = service_ids(engine)[2]  # a filling: it holds its dentist, so a taken time is gone
        slots = [first_slot(booking, svc, skip=i * 8) for i in range(3)]
        appts = [await asyncio.to_thread(book, booking, db_url, svc, s) for s in slots]
        booking.cancel(ADMIN, appts[1])
        assert client.failed_attempts >= 1 and not client.status()["connected"]
        assert all(s in cache.free_slots(svc, now, now + WINDOW) for s in slots)  # not told yet
        await server.start()
        await client.wait_connected(WAIT)
        await caught_up(cache, db_url, WAIT)
        assert cache.counts["events_applied"] == head(db_url) - since == 4  # each once
        assert cache.counts["events_ignored"] == 0
        assert [s in cache.free_slots(svc, now, now + WINDOW) for s in slots] == [False, True, False]
        assert_equals_fresh_load(cache, engine, settings, lambda: now)
        assert_matches_sql(cache, booking)


async def test_resume_after_a_disconnect(engine, settings, booking, db_url, now):
    async with running(engine, settings, now) as (server, cache, client):
        await client.wait_connected(WAIT)
        svc = service_ids(engine)[2]
        await asyncio.to_thread(book, booking, db_url, svc, first_slot(booking, svc))
        await caught_up(cache, db_url, WAIT)
        await server.stop()
        await client.wait_disconnected(WAIT)
        applied = cache.counts["events_applied"]
        missed = [await asyncio.to_thread(book, booking, db_url, svc, first_slot(booking, svc, skip=i * 10))
                  for i in range(3)]
        sql(db_url, "INSERT INTO time_off (dentist_id, starts_at, ends_at) VALUES (%s, %s, %s)",
            sorted(cache.schedules())[0], now + timedelta(days=4), now + timedelta(days=5))
        await server.start()
        await client.wait_connected(WAIT)
        await caught_up(cache, db_url, WAIT)
        assert client.reconnects == 1
        assert cache.counts["events_applied"] - applied == len(missed) + 1
        assert all(any(a in s.busy for s in cache.schedules().values()) for a in missed)
        assert_equals_fresh_load(cache, engine, settings, lambda: now)
        assert_matches_sql(cache, booking)


async def test_resume_after_the_database_dropped_every_connection(engine, settings, booking, db_url, now):
    """The database ended every session (a restart, a failover, ``pg_terminate_backend``): the sync
    service's replay pool holds dead connections. A client that resumes then still gets its
    replay and the live events after it, instead of a failed resume and a socket that hears
    nothing more."""
    async with running(engine, settings, now) as (server, cache, client):
        await client.wait_connected(WAIT)
        app = server.runner.app
        pool, listener = app[keys.POOL], app[keys.LISTENER]
        async with pool.connection(), pool.connection(), pool.connection():
            pass  # three connections in the pool, so the hold sweeper's turn cannot use them all up
        sql(db_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        await wait_until(lambda: listener.reconnects >= 1 and listener.connected, WAIT,
                         what="the outbox listener back on the database")
        svc = service_ids(engine)[2]  # a filling: it holds its dentist (a cleaning holds a hygienist)
        missed = await asyncio.to_thread(book, booking, db_url, svc, first_slot(booking, svc))
        for sock in list(app[keys.SIO].eio.sockets.values()):
            sock.drop()  # the action server's socket is cut: it resumes with ``since``
        await wait_until(lambda: client.reconnects >= 1 and client.status()["connected"], WAIT,
                         what="the sync client reconnected")
        await caught_up(cache, db_url, WAIT)
        assert any(missed in s.busy for s in cache.schedules().values())
        live = first_slot(booking, svc)
        await asyncio.to_thread(book, booking, db_url, svc, live)
        await caught_up(cache, db_url, WAIT)
        assert live not in cache.free_slots(svc, now, now + WINDOW)
        assert client.reconnects == 1


async def test_a_resume_the_server_fails_at_once_is_tried_again(engine, settings, booking, db_url, now,
                                                                 monkeypatch):
    """The sync service accepts the socket, then its replay fails (the database away) and it ends
    the session at once — before the client's connect call has returned. The client still sees
    that disconnect and connects again, instead of staying on a socket that hears nothing."""
    replay, failures = SocketHandlers._replay, [RuntimeError("the database went away")]

    async def failing_once(self, client, since, bound):
        if failures:
            raise failures.pop()
        await replay(self, client, since, bound)

    monkeypatch.setattr(SocketHandlers, "_replay", failing_once)
    async with running(engine, settings, now) as (server, cache, client):
        await wait_until(lambda: not failures and server.runner.app[keys.HUB].clients, WAIT,
                         what="a second, successful resume")
        svc = service_ids(engine)[2]  # a filling: it holds its dentist, so a taken time is gone
        slot = first_slot(booking, svc)
        await asyncio.to_thread(book, booking, db_url, svc, slot)
        await caught_up(cache, db_url, WAIT)
        assert slot not in cache.free_slots(svc, now, now + WINDOW)


async def test_resync_required_reloads_the_cache(engine, settings, booking, db_url, now):
    """The outbox was pruned past the client's ``since`` while it was away: the sync service
    says ``resync_required`` and the cache reloads from the database."""
    async with running(engine, settings, now) as (server, cache, client):
        await client.wait_connected(WAIT)
        await server.stop()
        await client.wait_disconnected(WAIT)
        loads = cache.counts["full_loads"]
        svc = service_ids(engine)[2]  # a filling: it holds its dentist (a cleaning holds a hygienist)
        slots = [first_slot(booking, svc, skip=i * 8) for i in range(3)]
        for s in slots:
            await asyncio.to_thread(book, booking, db_url, svc, s)
        last = head(db_url)
        sql(db_url, "DELETE FROM realtime_events WHERE id < %s", last)  # retention ran
        await server.start()
        await client.wait_connected(WAIT)
        await cache.wait_for_event(last, WAIT)  # the resync moves the position to the server's lastId
        await asyncio.wait_for(client._reload, WAIT)
        await cache.settled(WAIT)
        assert client.resyncs == 1 and cache.counts["full_loads"] == loads + 1
        assert all(s not in cache.free_slots(svc, now, now + WINDOW) for s in slots)
        assert_equals_fresh_load(cache, engine, settings, lambda: now)
        # and the stream goes on after the resync
        more = first_slot(booking, svc)
        await asyncio.to_thread(book, booking, db_url, svc, more)
        await caught_up(cache, db_url, WAIT)
        assert more not in cache.free_slots(svc, now, now + WINDOW)
        assert_matches_sql(cache, booking)


@pytest.mark.slow
async def test_outage_while_bookings_continue_then_cache_equals_a_fresh_load(engine, settings, booking, db_url, now):
    """Issue 6, fault 3 (shortened, in-process server stopped cleanly, fast back-off): the sync
    service is gone while another writer books and cancels (at least 5 bookings nobody relays);
    after the reconnect the cache equals a fresh load. The full 30-second fault, with the service
    process killed and the client's own back-off, is in test_faults.py."""
    async with running(engine, settings, now) as (server, cache, client):
        await client.wait_connected(WAIT)
        svc = service_ids(engine)[0]
        stop_writing = asyncio.Event()
        written: list[int] = []

        async def writer():
            i = 0
            while not stop_writing.is_set():
                slots = await asyncio.to_thread(booking.available_slots, svc, now, now + WINDOW)
                slot = slots[(i * 7) % len(slots)]
                result = await asyncio.to_thread(booking.book, ADMIN, patient_id=1 + i % 20,
                                                 dentist_id=slot.dentist_id, service_id=svc,
                                                 starts_at=slot.starts_at)
                if result.outcome is Outcome.BOOKED:
                    written.append(result.appointment.id)
                    if i % 3 == 2:
                        await asyncio.to_thread(booking.cancel, ADMIN, written[-2])
                i += 1
                try:
                    await asyncio.wait_for(stop_writing.wait(), 0.05)  # pacing the writer, not a check
                except asyncio.TimeoutError:
                    pass

        task = asyncio.create_task(writer())
        try:
            await server.stop()
            await client.wait_disconnected(WAIT)
            before_outage = len(written)
            await wait_until(lambda: len(written) - before_outage >= 5 or task.done(), WAIT,
                             what="5 bookings written during the outage")
            await server.start()
            await client.wait_connected(WAIT)
        finally:
            stop_writing.set()
            await task
        assert len(written) - before_outage >= 5
        await caught_up(cache, db_url, WAIT)
        assert client.reconnects == 1
        assert_equals_fresh_load(cache, engine, settings, lambda: now)
        assert_matches_sql(cache, booking)
