"""Faults: the sync service is killed with SIGKILL and started again.

* In the middle of a burst of 1,000 writes: every connected client — admin, dentist,
  patient and the action server's service role — reconnects by itself, resumes from the
  last id it saw, and ends up holding every event it may see exactly once, in order.
* Issue 6, fault 3: the action server (its availability cache and sync client, wired as
  ``actions.server`` wires them, with their own back-off) loses the sync service for
  30 s while bookings, cancellations, moves and hours edits continue in SQL; once the
  service is back, the cache equals a fresh load from the database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import psycopg
import pytest
import socketio

from actions.cache import AvailabilityCache
from actions.sync_client import SyncClient
from bot.booking import BookingService, Outcome
from bot.events import OUTBOX_EVENTS, RESYNC_REQUIRED
from bot.seed import seed
from sync_helpers import BASE_TIME, free_port, token
from test_cache import ADMIN, assert_equals_fresh_load, assert_matches_sql, service_ids, sql
from test_cache_sync import caught_up, head

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


class ResumingClient:
    """What a dashboard does: reconnect forever, each time with ``since`` = last id seen."""

    def __init__(self, name: str, tok: str):
        self.name = name
        self.token = tok
        self.ids: list[int] = []
        self.resyncs = 0
        self.connects = 0
        self.sio = socketio.AsyncClient(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1,
                                        randomization_factor=0)
        for event in OUTBOX_EVENTS:
            self.sio.on(event, self._record)
        self.sio.on(RESYNC_REQUIRED, self._resync)
        self.sio.on("connect", self._connected)

    async def _record(self, data):
        self.ids.append(data["id"])

    async def _resync(self, data):
        self.resyncs += 1

    async def _connected(self):
        self.connects += 1

    def auth(self) -> dict:
        return {"token": self.token, "since": self.ids[-1] if self.ids else 0}

    async def connect(self, url: str) -> None:
        await self.sio.connect(url, auth=self.auth, transports=["websocket"], wait_timeout=10)


def start_sync(port: int, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sync", "--port", str(port), "--host", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_healthy(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{url}/api/realtime/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("sync service did not become healthy")
            await asyncio.sleep(0.1)


async def test_sigkill_mid_burst_every_client_resumes_exactly_once(db_url, settings):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'Dr A'), (2, 'Dr B')")
        conn.execute("INSERT INTO patients (id, full_name) VALUES (1, 'P1'), (2, 'P2'), (3, 'P3')")
        conn.execute("INSERT INTO services (id, name, duration_minutes, price_cents) VALUES (1, 'S', 30, 1)")
        base = conn.execute("SELECT coalesce(max(id), 0) FROM realtime_events").fetchone()[0]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": db_url, "JWT_SECRET": settings.jwt_secret, "LOG_LEVEL": "WARNING"}
    proc = start_sync(port, env)
    clients = {
        "admin": ResumingClient("admin", token(settings, "admin")),
        "dentist": ResumingClient("dentist", token(settings, "dentist", 1)),
        "patient": ResumingClient("patient", token(settings, "patient", 1)),
        "service": ResumingClient("service", token(settings, "service", "actions")),
    }
    try:
        await wait_healthy(url)
        for c in clients.values():
            c.ids.append(base)  # start from "now": no history before the test
            await c.connect(url)

        restarted: list[subprocess.Popen] = []

        def burst() -> None:
            with psycopg.connect(db_url, autocommit=True) as conn:
                for i in range(1000):
                    if i == 300:
                        proc.send_signal(signal.SIGKILL)
                    if i == 500:
                        restarted.append(start_sync(port, env))
                    start = BASE_TIME + timedelta(minutes=30 * i)
                    if i % 10 == 9:  # some availability changes among the bookings
                        conn.execute("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time)"
                                     " VALUES (%s, 1, '09:00', '10:00')", (1 + i % 2,))
                    else:
                        conn.execute(
                            "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at)"
                            " VALUES (%s, %s, 1, %s, %s)", (1 + i % 3, 1 + i % 2, start, start + timedelta(minutes=30)))

        await asyncio.to_thread(burst)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        proc = restarted[0]

        with psycopg.connect(db_url) as conn:
            rows = conn.execute("SELECT id, type, dentist_id, patient_id FROM realtime_events WHERE id > %s"
                                " ORDER BY id", (base,)).fetchall()
        assert len(rows) == 1000
        expected = {
            "admin": [r[0] for r in rows],
            "service": [r[0] for r in rows],
            "dentist": [r[0] for r in rows if r[2] == 1],
            "patient": [r[0] for r in rows if r[1].startswith("appointment") and r[3] == 1],
        }

        async def settled():
            while any(c.ids[-1] < expected[n][-1] for n, c in clients.items()):
                await asyncio.sleep(0.05)
        await asyncio.wait_for(settled(), 60)
        await asyncio.sleep(0.5)  # anything sent twice would arrive now
        for name, c in clients.items():
            got = c.ids[1:]
            assert got == expected[name], f"{name}: {len(got)} events, expected {len(expected[name])}"
            assert c.connects >= 2 and c.resyncs == 0, name
    finally:
        for c in clients.values():
            if c.sio.connected:
                await c.sio.disconnect()
        proc.terminate()
        proc.wait(timeout=10)


OUTAGE_SECONDS = 30.0


class ClinicWriter:
    """Another writer of the clinic's diary (the admin desk, the web widget): a booking every
    ~0.1 s, and among them cancellations, moves, weekly-hours edits, time off, date overrides,
    a clinic closure and a service edit, all straight into SQL. Runs in a thread."""

    def __init__(self, booking: BookingService, db_url: str, today: date, failed: asyncio.Event):
        self.booking, self.db_url, self.today = booking, db_url, today
        self.failed, self.loop = failed, asyncio.get_running_loop()
        self.stop = threading.Event()
        self.done: dict[str, int] = {}
        self.booked: list[int] = []
        self.special: list[str] = []  # one-off writes asked for by the test, done in order
        self.error: BaseException | None = None
        self.horizon = timedelta(days=45)  # room for a few hundred visits

    def count(self, kind: str) -> None:
        self.done[kind] = self.done.get(kind, 0) + 1

    def run(self) -> None:
        try:
            with psycopg.connect(self.db_url, autocommit=True) as conn:
                self._loop(conn)
        except BaseException as exc:  # reported by the test, never swallowed
            self.error = exc
            self.loop.call_soon_threadsafe(self.failed.set)

    def _loop(self, conn: psycopg.Connection) -> None:
        services = service_ids(self.booking.engine)
        hours = [r[0] for r in conn.execute("SELECT id FROM working_hours ORDER BY id")]
        dentists = [r[0] for r in conn.execute("SELECT id FROM dentists ORDER BY id")]
        now, i = self.booking.now(), 0
        while not self.stop.is_set():
            svc = services[i % len(services)]
            slots = self.booking.available_slots(svc, now, now + self.horizon)
            if slots:
                slot = slots[(i * 7) % len(slots)]
                result = self.booking.book(ADMIN, patient_id=1 + i % 20, dentist_id=slot.dentist_id,
                                           service_id=svc, starts_at=slot.starts_at)
                if result.outcome is Outcome.BOOKED:
                    self.booked.append(result.appointment.id)
                    self.count("booked")
            if i % 3 == 2 and len(self.booked) >= 2:
                if self.booking.cancel(ADMIN, self.booked.pop(-2)).outcome is Outcome.CANCELLED:
                    self.count("cancelled")
            if i % 5 == 4 and self.booked:
                appt = self.booked[len(self.booked) // 2]
                svc_of = sql(self.db_url, "SELECT service_id FROM appointments WHERE id = %s", appt)[0][0]
                free = self.booking.available_slots(svc_of, now, now + self.horizon)
                if free and self.booking.reschedule(ADMIN, appt, free[(i * 3) % len(free)].starts_at,
                                                    dentist_id=free[(i * 3) % len(free)].dentist_id
                                                    ).outcome is Outcome.RESCHEDULED:
                    self.count("moved")
            if i % 7 == 6:  # a block 15 minutes shorter, then back again
                row = hours[(i // 7) % len(hours)]
                sign = -1 if (i // (7 * len(hours))) % 2 == 0 else 1
                conn.execute("UPDATE working_hours SET end_time = end_time + %s WHERE id = %s",
                             (timedelta(minutes=15 * sign), row))
                self.count("hours_edited")
            if i % 11 == 10:
                day = self.today + timedelta(days=2 + i % 10)
                start = datetime.combine(day, datetime.min.time(), self.booking.tz) + timedelta(hours=10)
                conn.execute("INSERT INTO time_off (dentist_id, starts_at, ends_at, reason) VALUES (%s, %s, %s,"
                             " 'fault test')", (dentists[i % len(dentists)], start, start + timedelta(hours=1)))
                self.count("time_off_added")
            if i % 22 == 21:
                conn.execute("DELETE FROM time_off WHERE id = (SELECT min(id) FROM time_off WHERE reason ="
                             " 'fault test')")
                self.count("time_off_removed")
            if i % 13 == 12:
                day = self.today + timedelta(days=3 + (i // 13) % 11)
                off = (i // 13) % 2 == 0
                conn.execute("INSERT INTO date_overrides (dentist_id, on_date, start_time, end_time, reason)"
                             " VALUES (%s, %s, %s, %s, 'fault test')",
                             (dentists[(i // 13) % len(dentists)], day, None if off else "10:00",
                              None if off else "14:00"))
                self.count("override_added")
            while self.special:
                what = self.special.pop(0)
                if what == "closure":  # clinic-wide: the cache reloads everything for it
                    conn.execute("INSERT INTO clinic_closures (on_date, reason) VALUES (%s, 'fault test')",
                                 (self.today + timedelta(days=9),))
                elif what == "service":  # a catalogue edit (clinic-wide too)
                    conn.execute("UPDATE services SET buffer_after_minutes = buffer_after_minutes + 5"
                                 " WHERE id = %s", (services[0],))
                self.count(what)
            i += 1
            self.stop.wait(0.1)  # pacing the writer, not a check


async def test_action_server_loses_the_sync_service_for_30s_then_cache_equals_a_fresh_load(engine, settings,
                                                                                            db_url):
    """The sync service is SIGKILLed and comes back 30 s later on the same port; meanwhile the
    writer keeps booking, cancelling, moving and editing hours (and once closes the clinic for a
    day and edits a service, both clinic-wide). The cache is told nothing while it is away, the
    client keeps retrying on its own back-off, resumes with ``since`` (no resync), applies every
    event exactly once, and then equals a fresh load and answers what SQL answers."""
    seed(engine, settings)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    booking = BookingService(engine, settings, clock=lambda: now)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": db_url, "JWT_SECRET": settings.jwt_secret, "LOG_LEVEL": "WARNING"}
    proc = start_sync(port, env)
    # as actions.server.Runtime: load, refresher, then the sync client with its default back-off
    cache = AvailabilityCache(engine, settings, clock=lambda: now)
    await cache.start()
    client = SyncClient(cache, settings, url=url)
    writer_failed = asyncio.Event()
    writer = ClinicWriter(booking, db_url, now.astimezone(settings.tz).date(), writer_failed)
    thread = threading.Thread(target=writer.run, name="clinic-writer")
    try:
        await wait_healthy(url)
        await client.start()
        await client.wait_connected(15)
        applied0, since0 = cache.counts["events_applied"], cache.last_event_id
        thread.start()
        await cache.wait_for_event(since0 + 20, 20)  # live events flow first

        proc.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(proc.wait, 10) == -signal.SIGKILL
        await client.wait_disconnected(10)
        down_at, before = time.monotonic(), dict(writer.done)
        writer.special += ["closure", "service"]
        seen_when_lost = cache.last_event_id
        try:  # the outage: the writer keeps going, nobody relays its events (it ends early if the writer fails)
            await asyncio.wait_for(writer_failed.wait(), OUTAGE_SECONDS)
        except asyncio.TimeoutError:
            pass
        assert writer.error is None, writer.error
        during = {k: v - before.get(k, 0) for k, v in writer.done.items()}
        assert cache.last_event_id == seen_when_lost < head(db_url)  # told nothing while it was away
        assert not client.status()["connected"] and client.failed_attempts >= 3
        proc = start_sync(port, env)
        await wait_healthy(url)
        await client.wait_connected(15)  # the client's own back-off: at most 5 s between attempts
        outage = time.monotonic() - down_at
    finally:
        writer.stop.set()
        await asyncio.to_thread(thread.join, 30)
    try:
        assert writer.error is None, writer.error
        assert outage >= OUTAGE_SECONDS
        for kind, least in {"booked": 50, "cancelled": 15, "moved": 8, "hours_edited": 6, "time_off_added": 4,
                            "override_added": 4, "closure": 1, "service": 1}.items():
            assert during.get(kind, 0) >= least, (kind, during)
        await caught_up(cache, db_url, 30)
        assert client.reconnects == 1 and client.resyncs == 0
        assert cache.counts["events_applied"] - applied0 == head(db_url) - since0  # every event, once
        assert cache.counts["events_failed"] == 0
        assert_equals_fresh_load(cache, engine, settings, lambda: now)
        assert assert_matches_sql(cache, booking) > 100
    finally:
        await client.stop()
        await cache.stop()
        proc.terminate()
        proc.wait(timeout=10)
