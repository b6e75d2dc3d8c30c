"""A cap on the sockets one identity may hold open on a node (SYNC_MAX_SOCKETS_PER_TOKEN).

Counted by the identity the token names (role and ``sub``), not by the token string: a patient
who signs in again, or mints many tokens, still counts as one. Up to the cap everything works
(many tabs); beyond it the connection is refused with a reason, and a closed socket frees its place.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import socketio

from bot.settings import Settings
from sync import keys
from tests.sync_helpers import Recorder, serve, token


def test_the_defaults_are_documented_ones():
    plain = Settings(_env_file=None, jwt_secret="s" * 40)
    assert (plain.sync_max_sockets_per_token, plain.sync_max_sockets_per_staff_token) == (20, 200)


async def until(predicate, timeout: float = 5.0) -> None:
    async def loop():
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(loop(), timeout)


async def test_sockets_beyond_the_cap_are_refused_with_a_reason(settings):
    capped = settings.model_copy(update={"sync_max_sockets_per_token": 3, "sync_max_sockets_per_staff_token": 5})
    async with serve(capped) as (url, app):
        hub = app[keys.HUB]
        # three tabs of patient 1, with three different tokens (signed in at different times)
        tabs = [await Recorder(f"tab{i}").connect(url, token(capped, "patient", 1, now=time.time() - 60 * i))
                for i in range(3)]
        assert all(t.sio.connected for t in tabs)
        fourth = Recorder("fourth")
        with pytest.raises(socketio.exceptions.ConnectionError):
            await fourth.connect(url, token(capped, "patient", 1, now=time.time() - 600))
        assert "too many connections" in fourth.refused["message"], fourth.refused
        assert "3" in fourth.refused["message"]
        # someone else is not affected
        other = await Recorder("other").connect(url, token(capped, "patient", 2))
        # staff tokens have their own, higher cap
        staff = [await Recorder(f"admin{i}").connect(url, token(capped, "admin")) for i in range(5)]
        extra = Recorder("admin6")
        with pytest.raises(socketio.exceptions.ConnectionError):
            await extra.connect(url, token(capped, "admin"))
        assert "too many connections" in extra.refused["message"]
        # closing a tab frees its place
        await tabs[0].close()
        await until(lambda: sum(c.who.sub == "patient:1" for c in hub.clients.values()) == 2)
        again = await Recorder("again").connect(url, token(capped, "patient", 1))
        assert again.sio.connected
        for client in (*tabs[1:], again, other, *staff):
            await client.close()
