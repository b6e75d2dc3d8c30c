"""Faults: the sync service is killed with SIGKILL in the middle of a burst of 1,000
writes and started again. Every connected client — admin, dentist, patient and the
action server's service role — reconnects by itself, resumes from the last id it saw,
and ends up holding every event it may see exactly once, in order."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
import psycopg
import pytest
import socketio

from sync_helpers import BASE_TIME, free_port, token

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.e2e]
EVENTS = ("appointment_created", "appointment_updated", "appointment_deleted", "availability_changed")


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
        for event in EVENTS:
            self.sio.on(event, self._record)
        self.sio.on("resync_required", self._resync)
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
