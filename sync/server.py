"""The Socket.IO server, hardened against packets no real client sends.

python-socketio decodes and dispatches each Engine.IO message; a malformed one (bad JSON, an
event name that is not a string, an unexpected packet type) raises inside that dispatch and
ends up as an ERROR traceback in the log — one per packet, which a hostile client can repeat
at will. Here such a packet is dropped, counted (``malformedPackets`` in ``/stats``) and
logged on one line at DEBUG level; the connection and its subscriptions stay as they were.
Exceptions of our own event handlers are not affected (they run as separate tasks and are
handled in ``sync/handlers.py``).
"""

from __future__ import annotations

import logging

import socketio

from .engine import LeanEngine
from .stats import Stats

log = logging.getLogger(__name__)


class SocketServer(socketio.AsyncServer):
    stats: Stats | None = None

    def _engineio_server_class(self):
        return LeanEngine  # websocket-first sessions without per-socket tasks (sync/engine.py)

    def _malformed(self, eio_sid: str, what: str) -> None:
        if self.stats is not None:
            self.stats.malformed_packets += 1
        log.debug("malformed Socket.IO packet from %s dropped: %s", eio_sid, what)

    async def _handle_eio_message(self, eio_sid, data):
        try:
            await super()._handle_eio_message(eio_sid, data)
        except Exception as exc:  # a packet that does not decode or has no meaning here
            self._malformed(eio_sid, f"{type(exc).__name__}: {exc}"[:200])

    async def _handle_event(self, eio_sid, namespace, id, data):
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            self._malformed(eio_sid, "an event packet without a name")
            return
        await super()._handle_event(eio_sid, namespace, id, data)
