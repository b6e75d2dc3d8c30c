"""A huge token, wherever it is sent, gets a short JSON refusal and at most one short log line.

A 266 KB ``Authorization: Bearer ...`` header is refused by aiohttp's HTTP parser before any
handler runs; the same token in ``?token=`` makes the request line too long; in the Socket.IO
``auth`` it reaches the connect handler. None of them may answer plain text, log a traceback,
or cost a JWT decode of the whole thing.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging

import aiohttp
import pytest
import socketio
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from sync.serving import JsonErrorHandler, SyncServer
from tests.sync_helpers import Recorder, serve, token

HUGE = "A" * (266 * 1024)


async def raw_request(url: str, headers: dict | None = None) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers or {}) as resp:
            return resp.status, resp.content_type, await resp.text()


def assert_quiet(caplog, sent: str) -> None:
    """No traceback, no more than one short line per refused request, and never the token itself."""
    for record in caplog.records:
        assert record.exc_info is None and record.exc_text is None, (record.name, record.getMessage()[:200])
        assert len(record.getMessage()) < 300, (record.name, record.getMessage()[:200])
        assert sent[:64] not in record.getMessage(), record.name


@pytest.mark.parametrize("path", ["/api/realtime/status", "/api/appointments", "/admin",
                                  "/socket.io/?EIO=4&transport=polling"])
async def test_a_266_kb_bearer_header_gets_431_json_and_no_traceback(settings, caplog, path):
    caplog.set_level(logging.DEBUG)
    async with serve(settings) as (url, app):
        started = len(caplog.records)
        status, kind, text = await raw_request(url + path, {"Authorization": f"Bearer {HUGE}"})
        refusals = [r for r in caplog.records[started:]  # the access log has its one line per request
                    if r.name not in ("aiohttp.access", "sync.listener")]
        assert len(refusals) <= 1, [r.getMessage()[:200] for r in refusals]
        assert (status, kind) == (431, "application/json"), (status, kind, text[:200])
        body = json.loads(text)
        assert body["error"] == "header_too_large" and body["message"] and HUGE[:64] not in text
        # the service is unharmed: a normal request on a new connection is answered
        status, kind, _ = await raw_request(url + "/api/realtime/status",
                                            {"Authorization": f"Bearer {token(settings, 'admin')}"})
        assert (status, kind) == (200, "application/json")
    assert_quiet(caplog, HUGE)


@pytest.mark.parametrize("path", ["/admin?token=", "/api/realtime/status?token=",
                                  "/socket.io/?EIO=4&transport=polling&token="])
async def test_a_266_kb_token_in_the_query_gets_414_json_and_no_traceback(settings, caplog, path):
    caplog.set_level(logging.DEBUG)
    async with serve(settings) as (url, app):
        status, kind, text = await raw_request(url + path + HUGE)
        assert (status, kind) == (414, "application/json"), (status, kind, text[:200])
        assert json.loads(text)["error"] == "uri_too_long" and HUGE[:64] not in text
    assert_quiet(caplog, HUGE)


async def test_a_token_over_the_cap_is_refused_before_it_is_decoded(settings, caplog):
    """Under aiohttp's header limit but far over any real token: 401 with its reason, on REST
    and in the Socket.IO auth (which may carry up to the 256 KB message limit)."""
    caplog.set_level(logging.DEBUG)
    big = token(settings, "admin") + "." + "B" * 6000
    async with serve(settings) as (url, app):
        status, kind, text = await raw_request(url + "/api/realtime/status", {"Authorization": f"Bearer {big}"})
        assert (status, kind) == (401, "application/json")
        body = json.loads(text)
        assert body["error"] == "invalid_token" and "too large" in body["message"], body
        for sent in (big, "C" * (200 * 1024)):
            client = Recorder("big")
            with pytest.raises(socketio.exceptions.ConnectionError):
                await client.connect(url, sent)
            assert "too large" in client.refused["message"], client.refused
    assert_quiet(caplog, "B" * 64)


async def test_the_aiohttp_hooks_sync_serving_overrides_are_still_there():
    """``sync/serving.py`` overrides aiohttp internals (aiohttp 3.14): fail here, not in production,
    when one disappears or changes shape."""
    assert list(inspect.signature(RequestHandler.handle_error).parameters) == [
        "self", "request", "status", "exc", "message"]
    assert inspect.iscoroutinefunction(web.AppRunner._make_server)
    server = web.Server(lambda request: None, max_field_size=1234)
    assert server._kwargs == {"max_field_size": 1234} and server._loop is asyncio.get_running_loop()
    assert isinstance(SyncServer(server.request_handler)(), JsonErrorHandler)
    assert LineTooLong(b"x", 10).args[1] == 10  # the limit that tells a request line from a header
