"""Connected clients, their channels, and the fan-out of outbox events to them.

Fan-out is synchronous and encodes once: for each event the hub takes the union of
the members of the event's channels (a set, so a client in several matching
channels is counted once) and hands each recipient the event's shared, pre-built
bytes — no task per recipient. A websocket-first session (``sync/engine.py``) gets
the websocket frame written straight to its transport; a session that started on
long-polling gets the shared Engine.IO packet on its queue.
Every client also remembers the last id it was given, so an id is never sent to
it twice or out of order (replay and live delivery may overlap).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

from engineio import packet as eio_packet

from bot.tokens import Identity

from . import rooms
from .engine import LeanSocket
from .outbox import OutboxEvent
from .stats import Stats

if TYPE_CHECKING:
    import socketio

log = logging.getLogger(__name__)


def identity(who: Identity) -> tuple[str, str]:
    """What the socket cap counts by: the role and subject a token names, so that every token of
    one patient (signed in again, or minted anew) counts together."""
    return who.role, who.sub


class Client:
    """One Socket.IO connection. ``pending`` until its resume replay is done: live events
    are buffered meanwhile and delivered after the replay, skipping ids already sent."""

    __slots__ = ("sid", "eio_sid", "who", "channels", "last_id", "pending", "buffer", "overflowed",
                 "connected_at")

    def __init__(self, sid: str, eio_sid: str, who: Identity, last_id: int):
        self.sid = sid
        self.eio_sid = eio_sid
        self.who = who
        self.channels: dict[str, str] = {}  # channel → "role" | "subscribe"
        self.last_id = last_id
        self.pending = True
        self.buffer: list[OutboxEvent] = []
        self.overflowed = False
        self.connected_at = time.time()


class Hub:
    def __init__(self, sio: "socketio.AsyncServer", stats: Stats, *, max_backlog: int = 10_000,
                 max_buffer: int = 50_000, max_buffered_bytes: int = 8 * 1024 * 1024):
        self.sio = sio
        self.stats = stats
        self.max_backlog = max_backlog  # packets queued for one socket before it is dropped
        self.max_buffered_bytes = max_buffered_bytes  # unsent bytes on one socket, likewise
        self.max_buffer = max_buffer    # live events buffered for one client during its replay
        self.clients: dict[str, Client] = {}
        self.members: dict[str, set[str]] = {}
        self.per_identity: dict[tuple[str, str], int] = {}  # (role, sub) → open connections
        self._tasks: set[asyncio.Task] = set()  # slow-client disconnects in flight

    # -- membership -------------------------------------------------------------------
    def add(self, client: Client) -> None:
        self.clients[client.sid] = client
        key = identity(client.who)
        self.per_identity[key] = self.per_identity.get(key, 0) + 1
        for channel in rooms.role_channels(client.who):
            self.join(client, channel, "role")

    def remove(self, sid: str) -> Client | None:
        client = self.clients.pop(sid, None)
        if client is not None:
            key = identity(client.who)
            left = self.per_identity.get(key, 1) - 1
            if left > 0:
                self.per_identity[key] = left
            else:
                self.per_identity.pop(key, None)
            for channel in list(client.channels):
                self._discard(channel, sid)
            client.buffer = []
        return client

    def open_for(self, who: Identity) -> int:
        """Connections this node holds for the identity ``who``'s token names."""
        return self.per_identity.get(identity(who), 0)

    def join(self, client: Client, channel: str, source: str = "subscribe") -> None:
        client.channels.setdefault(channel, source)
        self.members.setdefault(channel, set()).add(client.sid)

    def leave(self, client: Client, channel: str) -> bool:
        """Drop an explicit subscription; a role channel stays (the role grants it)."""
        source = client.channels.get(channel)
        if source is None:
            return False
        if source == "subscribe":
            del client.channels[channel]
            self._discard(channel, client.sid)
        return True

    def _discard(self, channel: str, sid: str) -> None:
        members = self.members.get(channel)
        if members is not None:
            members.discard(sid)
            if not members:
                del self.members[channel]

    def for_subject(self, who: Identity) -> list[Client]:
        return [c for c in self.clients.values() if c.who.sub == who.sub and c.who.role == who.role]

    def subscription_count(self) -> int:
        return sum(len(c.channels) for c in self.clients.values())

    def by_role(self) -> dict[str, int]:
        counts = {"admin": 0, "dentist": 0, "patient": 0, "service": 0}
        for c in self.clients.values():
            counts[c.who.role] = counts.get(c.who.role, 0) + 1
        return counts

    # -- fan-out ----------------------------------------------------------------------
    def recipients(self, ev: OutboxEvent) -> set[str]:
        sids: set[str] = set()
        for channel in rooms.event_channels(ev):
            if channel == rooms.ANY_DENTIST_AVAILABILITY:
                for name, members in self.members.items():
                    if name.startswith("availability:dentist:"):
                        sids.update(members)
            else:
                members = self.members.get(channel)
                if members:
                    sids.update(members)
        return sids

    def visible(self, client: Client, ev: OutboxEvent) -> bool:
        """Whether ``client`` may see ``ev`` (used by replay, which reads the outbox directly)."""
        for channel in rooms.event_channels(ev):
            if channel == rooms.ANY_DENTIST_AVAILABILITY:
                if any(c.startswith("availability:dentist:") for c in client.channels):
                    return True
            elif channel in client.channels:
                return True
        return False

    def dispatch(self, events: list[OutboxEvent], started: float | None = None) -> None:
        """Hand a batch (in id order) to every allowed recipient. Never raises."""
        started = started if started is not None else time.perf_counter()
        for ev in events:
            try:
                delivered = 0
                for sid in self.recipients(ev):
                    client = self.clients.get(sid)
                    if client is None:
                        continue
                    if client.pending:
                        self._buffer(client, ev)
                    elif self.deliver(client, ev):
                        delivered += 1
                self.stats.record_event(ev.created_at.timestamp(), delivered, started)
            except Exception:  # one bad event must not stop the stream
                self.stats.events_failed += 1
                log.exception("dispatching outbox event %s failed; skipped", ev.id)

    def _buffer(self, client: Client, ev: OutboxEvent) -> None:
        if len(client.buffer) >= self.max_buffer:
            client.overflowed = True
            client.buffer = []
        elif not client.overflowed:
            client.buffer.append(ev)

    def deliver(self, client: Client, ev: OutboxEvent) -> bool:
        if ev.id <= client.last_id:
            return False
        client.last_id = ev.id
        view = rooms.view_for(client.who, ev)
        if view is None:
            return False
        sock = self.sio.eio.sockets.get(client.eio_sid)
        if sock is None or sock.closed or sock.closing:
            return False
        if isinstance(sock, LeanSocket):
            unsent = sock.unsent()
            if unsent > self.max_buffered_bytes:
                self._drop_slow(client, f"{unsent} bytes", sock)
                return False
            if not sock.write_frame(ev.frame(view)):
                return False
            self.stats.direct_writes += 1
            return True
        return self._put(client, ev.packet(view), sock)

    def send(self, client: Client, name: str, data: dict) -> bool:
        """A server message (e.g. ``resync_required``) on the same ordered path as events."""
        body = json.dumps([name, data], separators=(",", ":"))
        return self._put(client, eio_packet.Packet(eio_packet.MESSAGE, "2" + body))

    def _put(self, client: Client, pkt: eio_packet.Packet, sock=None) -> bool:
        sock = sock or self.sio.eio.sockets.get(client.eio_sid)
        if sock is None or sock.closed or sock.closing:
            return False
        if isinstance(sock, LeanSocket):
            return sock.write(pkt)
        if sock.queue.qsize() >= self.max_backlog:
            self._drop_slow(client, f"{sock.queue.qsize()} packets")
            return False
        sock.queue.put_nowait(pkt)
        return True

    def _drop_slow(self, client: Client, behind: str, sock=None) -> None:
        """A client that cannot keep up is dropped; it resumes with ``since`` when it can."""
        self.stats.clients_dropped_slow += 1
        log.warning("client %s (%s) is %s behind: disconnecting it", client.sid, client.who.sub, behind)
        client.pending = True  # nothing more for it
        if isinstance(sock, LeanSocket):
            sock.drop()  # the transport closes at once: the client reconnects by itself
            return
        task = asyncio.get_running_loop().create_task(self.sio.disconnect(client.sid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def go_live(self, client: Client) -> bool:
        """Deliver what was buffered during the replay, then switch to live delivery.
        Returns False if the buffer overflowed (the caller must ask for a resync)."""
        buffered, client.buffer = client.buffer, []
        overflowed, client.overflowed = client.overflowed, False
        if not overflowed:
            for ev in buffered:
                self.deliver(client, ev)
        client.pending = False
        return not overflowed
