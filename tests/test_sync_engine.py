"""The lean websocket sessions (sync/engine.py) and the frames the hub writes to them: real
clients decode every frame size, packets keep their order, pings keep a live client and close a
silent one, a client that stops reading is dropped, and long-polling sessions still work."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import datetime, timezone

import aiohttp
import pytest
import socketio

from sync import keys
from sync.engine import LeanSocket
from sync.frames import binary_frame, text_frame
from sync.outbox import OutboxEvent
from tests.sync_helpers import Recorder, serve, token


def event(event_id: int, note: str) -> OutboxEvent:
    body = json.dumps({"id": event_id, "type": "appointment_created", "at": "2030-01-07T09:00:00+00:00",
                       "appointment": {"id": event_id, "dentist_id": 1, "patient_id": 1, "notes": note}})
    return OutboxEvent(id=event_id, type="appointment_created", dentist_id=1, patient_id=1,
                       prev_dentist_id=None, prev_patient_id=None,
                       created_at=datetime.now(timezone.utc), body=body)


@pytest.mark.parametrize("size, head", [(0, b"\x81\x00"), (125, b"\x81\x7d"),
                                        (126, b"\x81\x7e\x00\x7e"), (65535, b"\x81\x7e\xff\xff"),
                                        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00")])
def test_text_frame_header_carries_the_payload_length(size, head):
    frame = text_frame("x" * size)
    assert frame[:len(head)] == head and len(frame) == len(head) + size


def test_binary_frame_has_the_binary_opcode():
    assert binary_frame(b"\x00\x01") == b"\x82\x02\x00\x01"


async def raw_session(url: str, jwt: str, session: aiohttp.ClientSession, **kwargs):
    """A raw Engine.IO v4 websocket session, connected to the default namespace."""
    ws = await session.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket", **kwargs)
    opened = await ws.receive_str(timeout=5)
    assert opened.startswith("0")
    await ws.send_str("40" + json.dumps({"token": jwt}))
    assert (await ws.receive_str(timeout=5)).startswith("40")
    return ws, json.loads(opened[1:])


async def test_a_websocket_first_client_gets_a_lean_session(settings):
    async with serve(settings) as (url, app):
        sio = app[keys.SIO]
        admin = await Recorder("admin").connect(url, token(settings, "admin"), headers={"Cookie": "other=1"})
        (sock,) = sio.eio.sockets.values()
        assert isinstance(sock, LeanSocket)
        # the request's headers are gone from the environ once the session is up, a few stay
        # (the cookie until the Socket.IO connect has read it)
        environ = sio.get_environ(admin.sio.get_sid())
        assert "HTTP_SEC_WEBSOCKET_KEY" not in environ and "HTTP_COOKIE" not in environ
        assert "aiohttp.request" not in environ and "REMOTE_ADDR" in environ
        await admin.close()


def task_kinds() -> Counter:
    return Counter(t.get_coro().__qualname__ for t in asyncio.all_tasks())


async def settled(hub, clients: int) -> None:
    """Until ``clients`` are live and their connect-time tasks have finished."""
    async def live():
        while len(hub.clients) < clients or any(c.pending for c in hub.clients.values()) \
                or any(not t.done() for t in asyncio.all_tasks() if "_start" in repr(t.get_coro())):
            await asyncio.sleep(0.01)
    await asyncio.wait_for(live(), 5)


async def test_an_idle_lean_session_has_no_tasks_of_its_own(settings):
    async with serve(settings) as (url, app):
        async with aiohttp.ClientSession() as session:  # raw clients: no tasks of their own
            first, _ = await raw_session(url, token(settings, "admin"), session)
            await settled(app[keys.HUB], 1)
            before = task_kinds()
            more = [(await raw_session(url, token(settings, "admin"), session))[0] for _ in range(20)]
            await settled(app[keys.HUB], 21)
            # per connection only aiohttp's own two (the connection's and its request's, which
            # reads the websocket); no engine.io reader, writer, queue wait or ping task
            added = task_kinds() - before
            assert added == Counter({"RequestHandler.start": 20, "RequestHandler._handle_request": 20})
            for ws in [first, *more]:
                await ws.close()


async def test_every_frame_size_reaches_a_real_client_written_directly(settings):
    async with serve(settings) as (url, app):
        hub, stats = app[keys.HUB], app[keys.STATS]
        admin = await Recorder("admin").connect(url, token(settings, "admin"))
        # short, 16-bit and 64-bit length frames, and non-ASCII text (length counts bytes)
        notes = ["a", "é" * 200, "z" * 70_000, "مرحبا 🦷"]
        base = 10_000_000
        before = stats.direct_writes
        hub.dispatch([event(base + i, note) for i, note in enumerate(notes, start=1)])
        await admin.wait_id(base + len(notes))
        assert [d["appointment"]["notes"] for _, d in admin.events] == notes
        assert stats.direct_writes - before == len(notes)
        await admin.close()


async def test_server_messages_acks_and_events_keep_their_order(settings):
    async with serve(settings) as (url, app):
        hub = app[keys.HUB]
        admin = await Recorder("admin").connect(url, token(settings, "admin"))
        client = next(iter(hub.clients.values()))
        hub.send(client, "resync_required", {"reason": "test"})
        hub.dispatch([event(20_000_001, "after the server message")])
        ack = await admin.call("subscribe", {"topic": "availability", "dentist_id": 1})
        assert ack == {"ok": True, "channel": "availability:dentist:1"}
        hub.dispatch([event(20_000_002, "after the ack")])
        await admin.wait_id(20_000_002)
        assert [name for name, _ in admin.events] == ["resync_required", "appointment_created",
                                                      "appointment_created"]
        await admin.close()


async def test_a_long_polling_client_keeps_engine_io_own_session(settings):
    async with serve(settings) as (url, app):
        hub, sio = app[keys.HUB], app[keys.SIO]
        # a pending poll ends after ping_interval + ping_timeout; short, so the disconnect is quick
        sio.eio.ping_interval, sio.eio.ping_timeout = 1, 1
        client = socketio.AsyncClient(reconnection=False)
        got: list[int] = []
        client.on("appointment_created", lambda data: got.append(data["id"]))
        await client.connect(url, auth={"token": token(settings, "admin")}, transports=["polling"],
                             wait_timeout=5)
        (sock,) = sio.eio.sockets.values()
        assert not isinstance(sock, LeanSocket)
        # (python-engineio's client refuses a polling payload of more than 16 packets)
        for first in (1, 11):
            hub.dispatch([event(30_000_000 + i, "polled") for i in range(first, first + 10)])
            for _ in range(100):
                if len(got) == first + 9:
                    break
                await asyncio.sleep(0.05)
        assert got == [30_000_000 + i for i in range(1, 21)]
        await client.disconnect()


async def test_pings_keep_a_client_that_answers_and_close_one_that_does_not(settings):
    async with serve(settings) as (url, app):
        eio = app[keys.SIO].eio
        eio.ping_interval, eio.ping_timeout = 1, 1
        async with aiohttp.ClientSession() as session:
            live, opened = await raw_session(url, token(settings, "admin"), session)
            silent, _ = await raw_session(url, token(settings, "admin"), session)
            assert opened["pingInterval"] == 1000
            pings = 0
            while pings < 3:  # answered: the server keeps pinging, about once a second
                msg = await live.receive_str(timeout=4)
                if msg == "2":
                    pings += 1
                    await live.send_str("3")
            # the silent one got pings too, answered none, and was closed by the server
            seen = []
            while True:
                msg = await silent.receive(timeout=6)
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                seen.append(msg.data)
            assert "2" in seen
            assert silent.closed or msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert not live.closed and len(eio.sockets) == 1
            await live.close()


async def test_a_client_that_stops_reading_is_dropped_not_buffered_without_bound(settings):
    async with serve(settings) as (url, app):
        hub, stats = app[keys.HUB], app[keys.STATS]
        app[keys.SIO].eio.max_buffered_bytes = 256 * 1024
        async with aiohttp.ClientSession() as session:
            stuck, _ = await raw_session(url, token(settings, "admin"), session, max_msg_size=0)
            reader = await Recorder("reader").connect(url, token(settings, "admin"))
            note = "x" * 60_000
            for i in range(1, 401):  # 24 MB for each client; `stuck` never reads
                hub.dispatch([event(40_000_000 + i, note)])
                if i % 20 == 0:
                    await asyncio.sleep(0.01)  # let the reader read
            await reader.wait_id(40_000_400, timeout=20)
            assert stats.clients_dropped_slow == 1
            assert len(hub.clients) == 1  # the reader is still there
            # the stuck client's connection was cut (so its client reconnects by itself), not
            # closed with a Socket.IO disconnect packet (which tells a client not to reconnect)
            seen = []
            while True:
                msg = await stuck.receive(timeout=10)
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                seen.append(msg.data[:2])
            assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
            assert "41" not in seen and len(seen) < 400
            await reader.close()
            await stuck.close()


async def test_the_heartbeat_is_every_30_seconds(settings):
    async with serve(settings) as (url, app):
        async with aiohttp.ClientSession() as session:
            ws, opened = await raw_session(url, token(settings, "admin"), session)
            assert (opened["pingInterval"], opened["pingTimeout"]) == (30_000, 20_000)
            await ws.close()


async def test_a_bad_websocket_handshake_is_refused_and_leaves_nothing_behind(settings):
    async with serve(settings) as (url, app):
        eio = app[keys.SIO].eio
        async with aiohttp.ClientSession() as session:
            # an upgrade request without Sec-WebSocket-Key: engine.io accepts the transport, the
            # websocket handshake fails
            async with session.get(f"{url}/socket.io/?EIO=4&transport=websocket",
                                   headers={"Upgrade": "websocket", "Connection": "Upgrade"}) as resp:
                assert resp.status == 400
            assert eio.sockets == {} and eio.lean == set()
            ws, _ = await raw_session(url, token(settings, "admin"), session)  # others still served
            await ws.close()


async def test_a_long_polling_client_that_stops_polling_is_dropped_not_queued_without_bound(settings):
    async with serve(settings) as (url, app):
        hub, stats, eio = app[keys.HUB], app[keys.STATS], app[keys.SIO].eio
        eio.max_backlog = 50
        async with aiohttp.ClientSession() as session:
            base = f"{url}/socket.io/?EIO=4&transport=polling"
            async with session.get(base) as resp:  # the handshake; then it never polls again
                sid = json.loads((await resp.text())[1:])["sid"]
            async with session.post(f"{base}&sid={sid}", data="40" + json.dumps({"token": token(settings, "admin")})) as resp:
                assert resp.status == 200
            reader = await Recorder("reader").connect(url, token(settings, "admin"))
            await settled(hub, 2)
            for i in range(1, 201):
                hub.dispatch([event(50_000_000 + i, "queued")])
            await reader.wait_id(50_000_200)
            assert stats.clients_dropped_slow == 1
            for _ in range(100):  # the dropped session's disconnect runs as a task
                if len(hub.clients) == 1:
                    break
                await asyncio.sleep(0.02)
            assert len(hub.clients) == 1 and sid not in eio.sockets
            async with session.get(f"{base}&sid={sid}") as resp:  # its client must start anew
                assert resp.status == 400
            await reader.close()
