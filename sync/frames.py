"""Direct websocket writes for the fan-out hot path.

Engine.IO's own path puts a packet on the socket's queue and a writer task per
socket wakes up, encodes it and frames it: for one event and 1,000 recipients that
is 1,000 task wake-ups, and the last recipient waits for all of them. The hub builds
each event's websocket frame once (``text_frame``) and, when a socket's Engine.IO
queue is idle, hands that frame straight to the socket's TCP transport, which is
what aiohttp's writer would do in the end. The transport keeps the byte order, so a
frame written here can never overtake one written earlier by either path.

"Idle" means: the socket is on the websocket transport (not upgrading), its queue is
empty, and no packet the writer task took from the queue is still being sent (the
``Line`` wrapper counts sends in flight). Otherwise the caller falls back to the
queue, so ordering holds in every case. Frames are plain (uncompressed) text frames,
which RFC 7692 allows on a connection that negotiated permessage-deflate.

``install()`` wraps Engine.IO's websocket handler once per process; a server opts in
with ``enable(eio_server)``. Both are no-ops when the Engine.IO internals they rely on
are missing (a future version): delivery then simply stays on the queue path.
"""

from __future__ import annotations

import asyncio
import logging

from engineio import async_socket

log = logging.getLogger(__name__)

OPTED_IN = "_direct_frames"  # attribute set on an engineio.AsyncServer that uses this path


def text_frame(text: str) -> bytes:
    """One unmasked, final websocket text frame (server to client) carrying ``text``."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 65536:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return head + payload


class Line:
    """The websocket of one Engine.IO socket: its transport and the sends in flight."""

    __slots__ = ("ws", "transport", "busy", "_send")

    def __init__(self, ws) -> None:
        self.ws = ws
        request = ws.environ.get("aiohttp.request")
        self.transport: asyncio.Transport | None = getattr(request, "transport", None)
        self.busy = 0
        self._send = ws.send
        ws.send = self.send  # engine.io's writer task sends through this

    async def send(self, message) -> None:
        self.busy += 1
        try:
            await self._send(message)
        finally:
            self.busy -= 1

    def writable(self) -> asyncio.Transport | None:
        """The transport if a frame may be written now without reordering, else None."""
        if self.busy:
            return None
        response = getattr(self.ws, "_sock", None)  # aiohttp's WebSocketResponse
        if response is None or response.closed:
            return None
        transport = self.transport
        if transport is None or transport.is_closing():
            return None
        return transport


def line_for(sock) -> Line | None:
    return getattr(sock, "direct_line", None)


def idle(sock) -> bool:
    """The socket's Engine.IO queue holds nothing and its writer finished what it took."""
    queue = sock.queue
    return queue.empty() and not getattr(queue, "_unfinished_tasks", 1) and sock.upgraded \
        and not sock.upgrading


_installed = False


def install() -> bool:
    """Wrap Engine.IO's websocket handler so opted-in servers keep a ``Line`` per socket."""
    global _installed
    if _installed:
        return True
    original = getattr(async_socket.AsyncSocket, "_websocket_handler", None)
    if original is None:
        log.warning("engine.io has no websocket handler to wrap: direct frame writes disabled")
        return False

    async def _websocket_handler(self, ws):
        if getattr(self.server, OPTED_IN, False) and hasattr(ws, "environ"):
            self.direct_line = Line(ws)
        return await original(self, ws)

    async_socket.AsyncSocket._websocket_handler = _websocket_handler
    _installed = True
    return True


def enable(eio_server) -> bool:
    if install():
        setattr(eio_server, OPTED_IN, True)
        return True
    return False
