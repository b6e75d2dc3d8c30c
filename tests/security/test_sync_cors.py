"""CORS on the sync service lists origins and never answers an arbitrary origin with credentials.

By default only the service's own origin may open Socket.IO connections from a browser;
SYNC_CORS_ORIGINS adds others, and ``*`` is refused. No answer, for any origin, says
``Access-Control-Allow-Credentials: true`` (tokens travel in the Socket.IO ``auth``, never in cookies).
"""

from __future__ import annotations

import aiohttp
import pytest
import socketio

from sync.app import create_app
from tests.sync_helpers import serve, token

EVIL = "https://evil.example"
DASHBOARD = "https://dashboard.clinic.example"
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


async def get(url: str, origin: str, method: str = "GET", **headers: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, headers={"Origin": origin, **headers}) as resp:
            await resp.read()
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}


def no_credentials(headers: dict) -> None:
    assert headers.get("access-control-allow-credentials", "false") != "true", headers


async def test_an_unlisted_origin_gets_no_cors_answer_and_no_socket(settings):
    async with serve(settings) as (url, app):
        for method, path, extra in [("GET", HANDSHAKE, {}),
                                    ("OPTIONS", HANDSHAKE, {"Access-Control-Request-Method": "GET"}),
                                    ("GET", "/api/realtime/health", {}), ("OPTIONS", "/api/realtime/health", {})]:
            status, headers = await get(url + path, EVIL, method, **extra)
            assert headers.get("access-control-allow-origin") in (None, ""), (method, path, headers)
            assert "*" not in headers.get("access-control-allow-origin", ""), (method, path, headers)
            no_credentials(headers)
        status, _ = await get(url + HANDSHAKE, EVIL)
        assert status == 400  # engine.io refuses the session itself, not only the browser's read of it
        async with aiohttp.ClientSession() as session:  # closed here: the refused client leaves it open
            client = socketio.AsyncClient(reconnection=False, http_session=session)
            with pytest.raises(socketio.exceptions.ConnectionError):
                await client.connect(url, auth={"token": token(settings, "admin")}, headers={"Origin": EVIL},
                                     transports=["websocket"], wait_timeout=5)


async def test_the_own_origin_and_listed_ones_work_without_credentials(settings):
    listed = settings.model_copy(update={"sync_cors_origins": f"{DASHBOARD}, https://other.example/"})
    async with serve(listed) as (url, app):
        for origin in (url, DASHBOARD, "https://other.example"):
            status, headers = await get(url + HANDSHAKE, origin)
            assert status == 200 and headers["access-control-allow-origin"] == origin, (origin, headers)
            no_credentials(headers)
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(url, auth={"token": token(listed, "admin")}, headers={"Origin": origin},
                                 transports=["websocket"], wait_timeout=5)
            assert client.connected
            await client.disconnect()
        status, headers = await get(url + HANDSHAKE, EVIL)
        assert status == 400 and "access-control-allow-origin" not in headers


def test_a_wildcard_is_refused(settings):
    for value in ("*", f"{DASHBOARD},*"):
        with pytest.raises(ValueError, match="SYNC_CORS_ORIGINS"):
            create_app(settings.model_copy(update={"sync_cors_origins": value}))
