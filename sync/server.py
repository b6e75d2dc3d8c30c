"""The Socket.IO server, hardened against packets no real client sends.

python-socketio decodes and dispatches each Engine.IO message; a malformed one (bad JSON, an
event name that is not a string, an unexpected packet type) raises inside that dispatch and
ends up as an ERROR traceback in the log — one per packet, which a hostile client can repeat
at will. Here such a packet is dropped, counted (``malformedPackets`` in ``/stats``) and
logged on one line at DEBUG level; the connection and its subscriptions stay as they were.
A CONNECT packet that does not decode is refused instead (CONNECT_ERROR, the reason a non-object
``auth`` gets from the connect handler), or the client would wait for an answer that never
comes: a bare number as ``auth`` is such a packet, since Socket.IO reads the leading digits
of ``01.0`` as an ack id and ``.0`` is no JSON. Exceptions of our own event handlers are not
affected (they run as separate tasks and are handled in ``sync/handlers.py``).
"""

from __future__ import annotations

import logging

import socketio
from socketio import packet

from bot.tokens import MISSING_TOKEN

from .engine import LeanEngine
from .stats import Stats

log = logging.getLogger(__name__)


# python-socketio's private methods overridden or called here (5.18): name → signature there.
# tests/test_sync_engine_hooks.py fails by name when a release renames or re-shapes one.
PRIVATE_HOOKS = {"_engineio_server_class": "(self)", "_handle_eio_message": "(self, eio_sid, data)",
                 "_handle_event": "(self, eio_sid, namespace, id, data)", "_send_packet": "(self, eio_sid, pkt)"}


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
            if isinstance(data, str) and data[:1] == str(packet.CONNECT):
                await self._refuse_connect(eio_sid, data)

    async def _refuse_connect(self, eio_sid: str, data: str) -> None:
        """Answer a CONNECT that did not decode, unless its namespace is connected already."""
        namespace = data[1:].split(",", 1)[0] if data[1:2] == "/" else "/"
        if self.manager.sid_from_eio_sid(eio_sid, namespace) is not None:
            return
        await self._send_packet(eio_sid, self.packet_class(
            packet.CONNECT_ERROR, data={"message": MISSING_TOKEN}, namespace=namespace))

    async def _handle_event(self, eio_sid, namespace, id, data):
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            self._malformed(eio_sid, "an event packet without a name")
            return
        await super()._handle_event(eio_sid, namespace, id, data)
