"""Helpers for the sync service tests: an in-process server, recording clients, writes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone

import aiohttp
import psycopg
import socketio
from aiohttp import web

from bot.events import CLIENT_EVENTS
from bot.settings import Settings
from bot.tokens import mint
from sync import keys
from sync.app import create_app
from sync.serving import SyncRunner

BASE_TIME = datetime(2030, 1, 7, 9, 0, tzinfo=timezone.utc)  # a Monday
PATIENT_NAMES = ("One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def serve(settings: Settings, **kwargs) -> AsyncIterator[tuple[str, web.Application]]:
    """Run the sync app in this event loop on an ephemeral port; wait for the listener."""
    app = create_app(settings, **kwargs)
    runner = SyncRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        await asyncio.wait_for(app[keys.LISTENER].ready.wait(), 10)
        yield f"http://127.0.0.1:{port}", app
    finally:
        await runner.cleanup()


class Recorder:
    """A real python-socketio client that records every event it receives, in order."""

    def __init__(self, name: str = ""):
        self.name = name
        # a cookie given in ``connect(headers=...)`` goes into the client's cookie jar, which
        # aiohttp's default keeps from IP hosts such as 127.0.0.1: a jar that does not
        self.sio = socketio.AsyncClient(reconnection=False, http_session=lambda: aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True)))
        self.events: list[tuple[str, dict]] = []
        self._changed = asyncio.Event()
        self.refused = None  # the reason the server gave for refusing the connection
        for event in CLIENT_EVENTS:
            self.sio.on(event, self._handler(event))

        @self.sio.on("connect_error")
        async def refused(data):
            self.refused = data

    def _handler(self, event: str) -> Callable:
        async def record(data):
            self.events.append((event, data))
            self._changed.set()
        return record

    async def connect(self, url: str, token: str | None, since: int | None = None,
                      headers: dict | None = None) -> "Recorder":
        auth: dict = {}
        if token is not None:
            auth["token"] = token
        if since is not None:
            auth["since"] = since
        await self.sio.connect(url, auth=auth, headers=headers or {}, transports=["websocket"], wait_timeout=5)
        return self

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
        http = self.sio.eio.http  # left open by a refused handshake (engine.io closes it on disconnect only)
        if http is not None and not http.closed:
            await http.close()

    @property
    def ids(self) -> list[int]:
        return [data["id"] for event, data in self.events if event != "resync_required"]

    async def wait_for(self, predicate: Callable[["Recorder"], bool], timeout: float = 5.0) -> None:
        async def loop():
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()
        try:
            await asyncio.wait_for(loop(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.name}: condition not met in {timeout}s; got {self.ids}") from None

    async def wait_id(self, event_id: int, timeout: float = 5.0) -> None:
        await self.wait_for(lambda r: any(i >= event_id for i in r.ids), timeout)

    async def call(self, event: str, data, timeout: float = 5.0):
        return await self.sio.call(event, data, timeout=timeout)


def token(settings: Settings, role: str, ident=None, **kwargs) -> str:
    return mint(role, ident, settings=settings, **kwargs)


async def http_get(url: str, token: str | None = None, raw_auth: str | None = None) -> tuple[int, dict]:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if raw_auth is not None:
        headers["Authorization"] = raw_auth
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers) as resp:
            assert resp.content_type == "application/json", await resp.text()
            return resp.status, json.loads(await resp.text())


class Clinic:
    """Writes through plain psycopg (what psql would do): the triggers fill the outbox."""

    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn
        self._slot = 0

    @classmethod
    async def open(cls, db_url: str, people: int = 2) -> "Clinic":
        """A clinic with ``people`` dentists (ids 1..people) and as many patients."""
        conn = await psycopg.AsyncConnection.connect(db_url, autocommit=True)
        clinic = cls(conn)
        await clinic.seed(people)
        return clinic

    async def close(self) -> None:
        await self.conn.close()

    async def one(self, sql: str, *params):
        cur = await self.conn.execute(sql, params)
        row = await cur.fetchone()
        return row[0] if row else None

    async def seed(self, people: int = 2) -> None:
        for n in range(people):
            await self.conn.execute("INSERT INTO dentists (full_name) VALUES (%s)", (f"Dr {chr(65 + n)}",))
        for n in range(people):
            await self.conn.execute("INSERT INTO patients (full_name) VALUES (%s)", (f"Pat {PATIENT_NAMES[n]}",))
        await self.conn.execute(
            "INSERT INTO services (name, duration_minutes, price_cents) VALUES ('Checkup', 30, 5000)")
        # the catalogue's own availability events are not what these tests count: start at id 1
        await self.conn.execute("TRUNCATE realtime_events RESTART IDENTITY")

    async def last_event_id(self) -> int:
        return await self.one("SELECT coalesce(max(id), 0) FROM realtime_events")

    async def book(self, dentist: int, patient: int, slot: int | None = None) -> int:
        if slot is None:
            self._slot += 1
            slot = self._slot
        start = BASE_TIME + timedelta(minutes=30 * slot)
        return await self.one(
            "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at)"
            " VALUES (%s, %s, 1, %s, %s) RETURNING id", patient, dentist, start, start + timedelta(minutes=30))

    async def update(self, appointment: int, **changes) -> None:
        sets = ", ".join(f"{k} = %s" for k in changes)
        await self.conn.execute(f"UPDATE appointments SET {sets} WHERE id = %s",
                                (*changes.values(), appointment))

    async def cancel_delete(self, appointment: int) -> None:
        await self.conn.execute("DELETE FROM appointments WHERE id = %s", (appointment,))

    async def add_hours(self, dentist: int, weekday: int = 1) -> int:
        return await self.one("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time)"
                              " VALUES (%s, %s, '09:00', '17:00') RETURNING id", dentist, weekday)

    async def add_time_off(self, dentist: int) -> int:
        return await self.one("INSERT INTO time_off (dentist_id, starts_at, ends_at, reason)"
                              " VALUES (%s, %s, %s, 'leave') RETURNING id",
                              dentist, BASE_TIME, BASE_TIME + timedelta(days=1))
