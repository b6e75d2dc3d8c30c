"""Lean Engine.IO websocket sessions: no tasks of their own, frames written in place.

python-engineio serves a websocket session with a reader task, a writer task draining an
``asyncio.Queue`` (with a ``wait_for`` task of its own) and a ping task sleeping between
pings — four to five tasks, their coroutine frames and timers for every idle connection, and
a task wake-up per recipient for every event. ``LeanEngine`` keeps engine.io's protocol and
everything else about it (handshake, long-polling, upgrades, the service task that closes
sockets whose pong is late) and changes only how a session that *starts* on the websocket
transport is served (``transports: ["websocket", ...]``, which the dashboards, the action
server and the benchmark clients use):

* the connection's own aiohttp request task reads frames (no reader or ``wait_for`` task);
* every packet — events, acks, pings — is encoded and written to the TCP transport at once,
  in the order it is sent, so there is no queue and no writer task. The hub builds each
  event's frame once and hands the same bytes to every recipient (``write_frame``);
* pings come from one task per server, which pings each socket ``ping_interval`` seconds
  after its last pong (sockets are kept in one-second buckets, so a tick touches only the
  sockets due);
* no permessage-deflate (a compressor per connection costs far more memory than the small
  JSON frames would save), and the request's headers are dropped from the Engine.IO
  ``environ`` once the session is up, but for the few the Socket.IO connect still reads
  (``ENVIRON_KEPT``).

A client that cannot keep up — more than ``max_buffered_bytes`` unsent on its socket — is
disconnected rather than buffered without bound; it reconnects and resumes with ``since``.
Sessions that start on long-polling (and upgrade later) keep engine.io's own machinery.

This module is also **the one place bytes are written** (the transport seam). The hub
(``sync/hub.py``) only decides who receives an event and which view of it; it hands
``LeanEngine.broadcast`` a name, a JSON body and a list of Engine.IO session ids. The engine
encodes that once (one Engine.IO packet for long-polling queues, one websocket frame for lean
sessions), writes it to every session of either kind, and applies the limits: a lean session
with more than ``max_buffered_bytes`` unsent, or a long-polling session with ``max_backlog``
packets queued, is dropped (its client reconnects and resumes with ``since``).

It follows **python-engineio 4.15** (pinned directly in ``requirements/``). It overrides or
calls these private parts of it, listed in ``PRIVATE_HOOKS``; ``tests/test_sync_engine_hooks.py``
fails loudly when one of them disappears or changes its signature, or when another minor
version is installed: ``AsyncServer._handle_connect`` (copied for websocket-first sessions),
``_trigger_event``, ``_upgrades``, ``_unauthorized``, ``_service_task``,
``start_service_task``/``service_task_handle``, and ``AsyncSocket._upgrade_websocket``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Iterable

import engineio
from aiohttp import WSMsgType
from aiohttp.web import WebSocketResponse
from engineio import exceptions
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket

from .frames import binary_frame, text_frame
from .stats import Stats

log = logging.getLogger(__name__)

ENGINEIO_VERSION = "4.15"  # the python-engineio minor this module follows (see the docstring)
# (owner, attribute) → signature this module relies on; None for a plain attribute
PRIVATE_HOOKS: dict[tuple[str, str], str | None] = {
    ("AsyncServer", "_handle_connect"): "(self, environ, transport, jsonp_index=None)",
    ("AsyncServer", "_trigger_event"): "(self, event, *args, **kwargs)",
    ("AsyncServer", "_service_task"): "(self)",
    ("BaseServer", "_upgrades"): "(self, sid, transport)",
    ("BaseServer", "_unauthorized"): "(self, message=None)",
    ("AsyncSocket", "_upgrade_websocket"): "(self, environ)",
    ("AsyncSocket", "close"): "(self, wait=True, abort=False, reason=None)",
    ("AsyncSocket", "send"): "(self, pkt)",
    ("AsyncSocket", "receive"): "(self, pkt)",
    ("AsyncSocket", "handle_get_request"): "(self, environ)",
    ("server", "start_service_task"): None,
    ("server", "service_task_handle"): None,
}

# what the Engine.IO environ keeps once a lean session is up (see the module docstring); the
# Socket.IO connect that follows reads the staff session cookie and checks the origin against
# the host (sync/staff.py), then drops the cookie (sync/handlers.py)
ENVIRON_KEPT = frozenset({"REMOTE_ADDR", "HTTP_X_FORWARDED_FOR", "HTTP_USER_AGENT", "HTTP_ORIGIN",
                          "QUERY_STRING", "PATH_INFO", "REQUEST_METHOD", "wsgi.url_scheme",
                          "HTTP_HOST", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_COOKIE"})


class LeanSocket(AsyncSocket):
    """An Engine.IO session served on one websocket without a queue or helper tasks."""

    def __init__(self, server: "LeanEngine", sid: str):
        super().__init__(server, sid)
        self.queue = server.no_queue  # nothing is ever queued (shared, always empty)
        self.last_ping = None  # set when a ping is sent, cleared by the pong (check_ping_timeout)
        self.next_ping = math.inf
        self.response: WebSocketResponse | None = None
        self.transport: asyncio.Transport | None = None
        self.early: list[bytes] | None = []  # frames sent before the websocket is open (OPEN)

    # -- writing -----------------------------------------------------------------------
    def write_frame(self, frame: bytes) -> bool:
        """Write one complete websocket frame now; False if the socket is closed, closing or
        too far behind (in which case it is being closed)."""
        if self.closed:
            return False
        if self.early is not None:
            self.early.append(frame)
            return True
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        unsent = transport.get_write_buffer_size()
        if unsent > self.server.max_buffered_bytes:
            self.server.drop_slow(self, f"{unsent} bytes")
            return False
        transport.write(frame)
        return True

    def drop(self) -> None:
        """Cut the connection now, unsent frames and all (a client too slow to read them). The
        client sees its transport close, reconnects by itself and resumes with ``since``;
        a Socket.IO disconnect packet instead would tell it not to reconnect."""
        if self.transport is not None:
            self.transport.abort()
        self.server.spawn(self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR))

    def write(self, pkt: eio_packet.Packet) -> bool:
        encoded = pkt.encode()
        return self.write_frame(text_frame(encoded) if isinstance(encoded, str) else binary_frame(encoded))

    async def send(self, pkt: eio_packet.Packet) -> None:
        if not self.closing or pkt.packet_type == eio_packet.CLOSE:
            self.write(pkt)

    # -- pings -------------------------------------------------------------------------
    def schedule_ping(self) -> None:
        """Called on connect and on every pong: the next ping is due ``ping_interval`` later."""
        self.last_ping = None
        self.server.due_ping(self, time.time() + self.server.ping_interval)

    def ping(self, now: float) -> None:
        if self.closing or self.closed:
            return
        self.next_ping = math.inf
        self.last_ping = now
        self.write(eio_packet.Packet(eio_packet.PING))

    # -- lifecycle ---------------------------------------------------------------------
    async def close(self, wait: bool = True, abort: bool = False, reason=None) -> None:
        if self.closed or self.closing:
            return
        self.closing = True
        await self.server._trigger_event("disconnect", self.sid,
                                         reason or self.server.reason.SERVER_DISCONNECT, run_async=False)
        if not abort:
            self.write(eio_packet.Packet(eio_packet.CLOSE))
        self.closed = True
        response = self.response
        if response is not None and not response.closed:
            self.server.spawn(self._hang_up(response))

    @staticmethod
    async def _hang_up(response: WebSocketResponse) -> None:
        try:
            await response.close()
        except Exception:  # the peer is gone: nothing left to tell it
            pass

    async def _upgrade_websocket(self, environ):
        if self.connected:
            raise OSError("the websocket session is already open")
        request = environ["aiohttp.request"]
        response = WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        try:
            await response.prepare(request)
        except BaseException:  # a bad handshake (aiohttp answers 400) or the client left
            self.server.lean.discard(self)
            await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
            raise
        self.response, self.transport = response, request.transport
        self.connected = self.upgraded = True
        early, self.early = self.early, None
        for frame in early or ():
            self.transport.write(frame)
        for key in [k for k in environ if k not in ENVIRON_KEPT]:
            del environ[key]
        try:
            await self._read(response)
        finally:
            self.server.lean.discard(self)
            await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        return response

    async def _read(self, response: WebSocketResponse) -> None:
        while not self.closed:
            msg = await response.receive()
            if msg.type is not WSMsgType.TEXT and msg.type is not WSMsgType.BINARY:
                return  # closed by either side, or a protocol error (aiohttp closed it)
            try:
                pkt = eio_packet.Packet(encoded_packet=msg.data)
            except Exception as exc:  # not an Engine.IO packet at all: the session ends (as in engine.io)
                log.debug("engine.io socket %s: undecodable frame (%s): closing it", self.sid, exc)
                return
            try:
                await self.receive(pkt)
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                return
            except Exception:  # one bad packet must not end the session
                log.exception("engine.io socket %s: receive error", self.sid)


class _NoQueue:
    """What engine.io code finds as a lean socket's queue: always empty, never waited on."""

    def empty(self) -> bool:
        return True

    def qsize(self) -> int:
        return 0

    async def join(self) -> None:
        return None

    def put_nowait(self, item) -> None:
        raise RuntimeError("lean engine.io sockets have no queue; use LeanSocket.write")

    async def put(self, item) -> None:
        self.put_nowait(item)


class Wire:
    """One Socket.IO event as it goes out: the Engine.IO packet (shared by every long-polling
    queue) and, built on first use, the websocket frame (the same bytes for every lean session;
    a frame from server to client is never masked)."""

    __slots__ = ("packet", "_frame")

    def __init__(self, name: str, body: str):
        # a Socket.IO EVENT packet on the default namespace: 2["name",{...}]
        self.packet = eio_packet.Packet(eio_packet.MESSAGE, f"2[{json.dumps(name)},{body}]")
        self._frame: bytes | None = None

    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = text_frame(self.packet.encode())
        return self._frame


class LeanEngine(engineio.AsyncServer):
    """engine.io's server, creating ``LeanSocket`` sessions for websocket-first clients, and the
    one writer of outgoing events for sessions of both kinds (``broadcast``)."""

    def __init__(self, *args, max_buffered_bytes: int = 8 * 1024 * 1024, max_backlog: int = 10_000,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.max_buffered_bytes = max_buffered_bytes  # unsent bytes on a lean session before it is dropped
        self.max_backlog = max_backlog  # packets queued for a long-polling session, likewise
        self.stats = Stats()  # the service's counters (sync/app.py shares its own)
        self.no_queue = _NoQueue()
        self.lean: set[LeanSocket] = set()
        self._buckets: dict[int, list[LeanSocket]] = {}
        self._pinger: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    async def _handle_connect(self, environ, transport, jsonp_index=None):
        """engine.io's connect (``AsyncServer._handle_connect``) for a websocket-first session,
        with a ``LeanSocket``; long-polling sessions go to engine.io unchanged."""
        if transport != "websocket":
            return await super()._handle_connect(environ, transport, jsonp_index)
        if self.start_service_task:  # engine.io's sweep for sockets whose pong is late
            self.start_service_task = False
            self.service_task_handle = self.start_background_task(self._service_task)
        sid = self.generate_id()
        sock = self.sockets[sid] = LeanSocket(self, sid)
        await sock.send(eio_packet.Packet(eio_packet.OPEN, {
            "sid": sid,
            "upgrades": self._upgrades(sid, transport),
            "pingTimeout": int(self.ping_timeout * 1000),
            "pingInterval": int(self.ping_interval + self.ping_interval_grace_period) * 1000,
            "maxPayload": self.max_http_buffer_size,
        }))
        ret = await self._trigger_event("connect", sid, environ, run_async=False)
        if ret is not None and ret is not True:
            del self.sockets[sid]
            return self._unauthorized(ret or None)
        sock.schedule_ping()
        try:
            return await sock.handle_get_request(environ)
        finally:
            if sock.closed:
                self.sockets.pop(sid, None)

    # -- the transport seam: every outgoing event is written here ------------------------
    def broadcast(self, name: str, body: str, sids: Iterable[str]) -> int:
        """Send the event ``name`` with the JSON text ``body`` to the Engine.IO sessions ``sids``,
        encoded once for all of them. Returns how many it was written to; a session that is gone
        or closing is skipped, one too far behind is dropped."""
        wire = Wire(name, body)
        sent = 0
        for sid in sids:
            if self._write(sid, wire):
                sent += 1
        return sent

    def send_event(self, sid: str, name: str, data: dict) -> bool:
        """A server message (e.g. ``resync_required``) on the same ordered path as events."""
        return self.broadcast(name, json.dumps(data, separators=(",", ":")), (sid,)) == 1

    def _write(self, sid: str, wire: Wire) -> bool:
        sock = self.sockets.get(sid)
        if sock is None or sock.closed or sock.closing:
            return False
        if type(sock) is LeanSocket:
            if not sock.write_frame(wire.frame()):
                return False
            self.stats.direct_writes += 1
            return True
        queued = sock.queue.qsize()
        if queued >= self.max_backlog:
            self.drop_slow(sock, f"{queued} packets")
            return False
        sock.queue.put_nowait(wire.packet)
        return True

    def drop_slow(self, sock: AsyncSocket, behind: str) -> None:
        """A session that cannot keep up is cut, not buffered without bound: its client sees the
        transport fail, reconnects by itself and resumes with ``since``."""
        self.stats.clients_dropped_slow += 1
        log.warning("engine.io session %s is %s behind: dropping it", sock.sid, behind)
        if isinstance(sock, LeanSocket):
            sock.drop()
            return
        self.sockets.pop(sock.sid, None)  # at once: nothing more is written to it
        self.spawn(self._drop_polling(sock))

    async def _drop_polling(self, sock: AsyncSocket) -> None:
        await sock.close(wait=False, abort=True, reason=self.reason.TRANSPORT_ERROR)
        sock.queue.put_nowait(None)  # ends a poll in flight (engine.io's own end-of-queue mark)

    async def close_all(self, drain: float = 1.0) -> int:
        """Graceful shutdown: close every session (long-polling ones get ``drain`` seconds to
        hand out what they have queued). Returns how many there were."""
        sockets = list(self.sockets.values())
        for sock in sockets:
            # wait=False: engine.io's own close waits for each queue to drain, which never
            # happens for a socket whose transport is already gone
            await sock.close(wait=False, reason=self.reason.SERVER_DISCONNECT)
        deadline = asyncio.get_running_loop().time() + drain
        while any(not s.queue.empty() for s in sockets) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        return len(sockets)

    def spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def due_ping(self, sock: LeanSocket, when: float) -> None:
        self.lean.add(sock)
        sock.next_ping = when
        self._buckets.setdefault(math.ceil(when), []).append(sock)
        if self._pinger is None:
            self._pinger = asyncio.ensure_future(self._ping_loop())

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.time()
            for second in [s for s in self._buckets if s <= now]:
                for sock in self._buckets.pop(second):
                    if sock.next_ping <= now and sock in self.lean:
                        try:
                            sock.ping(now)
                        except Exception:  # one broken socket must not stop everyone's pings
                            log.exception("engine.io socket %s: ping failed", sock.sid)

    async def shutdown(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            await asyncio.gather(self._pinger, return_exceptions=True)
            self._pinger = None
        await super().shutdown()
