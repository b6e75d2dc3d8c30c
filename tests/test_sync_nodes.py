"""`python -m sync` as real processes: two nodes sharing Redis, and graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.prereq import require
from tests.sync_helpers import Clinic, Recorder, free_port, http_get, token

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _redis_up(url: str = REDIS_URL) -> bool:
    """Whether the Redis of ``url`` (TEST_REDIS_URL) accepts a connection."""
    parts = urlsplit(url)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 6379), 1)
        writer.close()
        return True
    except (OSError, asyncio.TimeoutError):
        return False


async def start_node(settings, port: int, redis: bool, channel: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "JWT_SECRET": settings.jwt_secret,
           "ENV": "test", "SYNC_PORT": str(port), "LOG_LEVEL": "WARNING", "SYNC_REDIS_CHANNEL": channel}
    env.pop("REDIS_URL", None)
    if redis:
        env["REDIS_URL"] = REDIS_URL
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sync", "--host", "127.0.0.1", cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"

    async def healthy():
        while True:
            try:
                status, _ = await http_get(f"{url}/api/realtime/health")
                if status == 200:
                    return
            except aiohttp.ClientError:
                pass
            if proc.returncode is not None:
                raise AssertionError(f"node on {port} exited with {proc.returncode}")
            await asyncio.sleep(0.1)

    await asyncio.wait_for(healthy(), 30)
    return proc


async def stop_node(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), 15)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise


@pytest.mark.slow
@pytest.mark.e2e
async def test_two_nodes_with_redis_deliver_each_event_once(settings, db_url):
    require(await _redis_up(), f"no Redis at {REDIS_URL} (set TEST_REDIS_URL)")
    clinic = await Clinic.open(db_url)
    channel = f"sync-test-{uuid.uuid4().hex[:8]}"
    port_a, port_b = free_port(), free_port()
    node_a, node_b = await asyncio.gather(start_node(settings, port_a, True, channel),
                                          start_node(settings, port_b, True, channel))
    url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    clients = []
    try:
        admin_a = await Recorder("admin@A").connect(url_a, token(settings, "admin"))
        admin_b = await Recorder("admin@B").connect(url_b, token(settings, "admin"))
        patient_b = await Recorder("patient1@B").connect(url_b, token(settings, "patient", 1))
        dentist_a = await Recorder("dentist2@A").connect(url_a, token(settings, "dentist", 2))
        clients = [admin_a, admin_b, patient_b, dentist_a]
        for i in range(20):
            await clinic.book(dentist=1 + i % 2, patient=1 + i % 2)
        await clinic.add_hours(dentist=2)
        last = await clinic.last_event_id()
        assert last == 21
        for client in clients:
            await client.wait_id(last if client is not patient_b else 19)
        await clinic.book(dentist=1, patient=1)  # sentinel: nothing else can still be in flight
        for client in (admin_a, admin_b, patient_b):
            await client.wait_id(22)
        assert admin_a.ids == admin_b.ids == list(range(1, 23))
        assert patient_b.ids == [*range(1, 20, 2), 22]
        assert dentist_a.ids == [*range(2, 21, 2), 21]
        for url in (url_a, url_b):
            status, body = await http_get(f"{url}/api/realtime/stats", token(settings, "admin"))
            assert status == 200 and body["clientManager"] == "redis"
            assert body["connections"]["total"] == 2

        # graceful shutdown of node A: its clients are dropped, node B carries on
        assert await stop_node(node_a) == 0
        await asyncio.wait_for(_until(lambda: not admin_a.sio.connected), 5)
        await clinic.book(dentist=2, patient=2)
        await admin_b.wait_id(23)
        assert admin_b.ids[-1] == 23 and admin_b.ids.count(23) == 1
    finally:
        for client in clients:
            await client.close()
        await stop_node(node_a)
        await stop_node(node_b)
        await clinic.close()


async def _until(predicate, interval: float = 0.02):
    while not predicate():
        await asyncio.sleep(interval)
