"""``python -m actions`` as a real process: starts without the sync service (degraded, cache
loaded from SQL), connects when it comes up, keeps the cache fresh, reports it on /health,
keeps rasa-sdk's endpoints, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from actions.server import Runtime
from bot.seed import seed
from test_cache import sql

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(module: str, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen, timeout: float = 15) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise AssertionError(f"{proc.args} did not stop within {timeout}s of SIGTERM") from None
    return proc.returncode


async def get_json(url: str, headers: dict | None = None) -> tuple[int, dict] | None:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            async with session.get(url, headers=headers) as resp:
                return resp.status, await resp.json()
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return None


async def until(check, timeout: float, what: str, interval: float = 0.05):
    """Poll an external process until ``check()`` returns something truthy (bounded)."""
    async def loop():
        while True:
            got = await check()
            if got:
                return got
            await asyncio.sleep(interval)  # the process is elsewhere: polling is the only way to ask
    try:
        return await asyncio.wait_for(loop(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


@pytest.fixture
def stack_env(engine, settings, db_url, tmp_path):
    seed(engine, settings)
    sync_port, actions_port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "JWT_SECRET": settings.jwt_secret, "ENV": "test",
           "SYNC_PORT": str(sync_port), "SYNC_URL": f"http://127.0.0.1:{sync_port}",
           "ACTIONS_PORT": str(actions_port), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"}
    env.pop("SERVICE_TOKEN", None)
    return env, f"http://127.0.0.1:{actions_port}", tmp_path


@pytest.mark.e2e
async def test_health_of_a_real_action_server(stack_env, db_url, settings):
    env, base, tmp = stack_env
    actions = start("actions", env, tmp / "actions.log")
    sync = None
    try:
        async def health():
            got = await get_json(base + "/health")
            return got if got and got[1]["cache"].get("loaded") else None

        status, body = await until(health, 60, "the action server's cache")
        assert status == 200 and body["status"] == "degraded"  # no sync service yet
        assert body["sync"] == {**body["sync"], "connected": False, "reconnects": 0}
        cache = body["cache"]
        for key in ("loaded_at", "age_seconds", "last_event_id", "event_lag_ms", "dentists", "slots_horizon_days"):
            assert key in cache
        days = settings.cache_days  # the horizon the cache loads, less the last day it keeps for safety
        assert cache["dentists"] == 3 and days - 2 <= cache["slots_horizon_days"] <= days
        assert cache["last_event_id"] == sql(db_url, "SELECT max(id) FROM realtime_events")[0][0]

        sync = start("sync", env, tmp / "sync.log")

        async def ok():
            got = await get_json(base + "/health")
            return got if got and got[1]["status"] == "ok" else None

        _, body = await until(ok, 30, "the action server to reach the sync service")
        assert body["sync"]["connected"] is True

        (appt,) = sql(db_url, "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at) "
                              "VALUES (1, 1, 1, date_trunc('day', now()) + interval '20 days 14 hours', "
                              "date_trunc('day', now()) + interval '20 days 14 hours 45 minutes') RETURNING id")[0]
        head = sql(db_url, "SELECT max(id) FROM realtime_events")[0][0]
        t0 = time.monotonic()

        async def applied():
            got = await get_json(base + "/health")
            return got if got and got[1]["cache"]["last_event_id"] >= head else None

        _, body = await until(applied, 5, f"event {head} at the action server", interval=0.02)
        assert time.monotonic() - t0 < 1.0
        assert body["cache"]["events_applied"] == 1 and body["cache"]["event_lag_ms"] < 1000
        assert body["cache"]["visits"] == cache["visits"] + 1

        # rasa-sdk's own endpoints are still there, for Rasa only (its shared secret)
        assert (await get_json(base + "/actions"))[0] == 401
        secret = {"Authorization": f"Bearer {settings.resolved_actions_token}"}
        listed = await get_json(base + "/actions", secret)
        assert listed and listed[0] == 200 and any(a["name"] == "action_check_availability" for a in listed[1])
    finally:
        code = stop(actions)
        if sync is not None:
            stop(sync)
    log = (tmp / "actions.log").read_text()
    assert code == 0, log[-3000:]
    assert "action server stopped cleanly" in log


def test_health_body_without_a_cache_is_degraded(settings):
    body = Runtime(settings).health()
    assert body["status"] == "degraded" and body["cache"] == {"loaded": False}
    assert body["sync"] == {"connected": False, "reconnects": 0}
