"""Connected clients, their channels, and who receives each outbox event.

The hub decides recipients and nothing else: for each event it takes the union of the
members of the event's channels (a set, so a client in several matching channels is counted
once), asks ``rooms.view_for`` which view of the event each may see, and hands each view's
body with its list of Engine.IO session ids to the transport (``LeanEngine.broadcast`` in
``sync/engine.py``), which alone encodes, writes and drops sessions that fall behind. No task
per recipient, and the hub never looks at a socket.
Every client also remembers the last id it was given, so an id is never sent to
it twice or out of order (replay and live delivery may overlap).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from bot.tokens import Identity

from . import rooms
from .outbox import OutboxEvent
from .stats import Stats

if TYPE_CHECKING:
    from .engine import LeanEngine

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
    def __init__(self, transport: "LeanEngine", stats: Stats, *, max_buffer: int = 50_000):
        self.transport = transport
        self.stats = stats
        self.max_buffer = max_buffer    # live events buffered for one client during its replay
        self.clients: dict[str, Client] = {}
        self.members: dict[str, set[str]] = {}
        self.per_identity: dict[tuple[str, str], int] = {}  # (role, sub) → open connections

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
                views: dict[str, list[str]] = {}
                for sid in self.recipients(ev):
                    client = self.clients.get(sid)
                    if client is None:
                        continue
                    if client.pending:
                        self._buffer(client, ev)
                        continue
                    view = self._admit(client, ev)
                    if view is not None:
                        views.setdefault(view, []).append(client.eio_sid)
                delivered = 0
                for view, sids in views.items():
                    delivered += self.transport.broadcast(ev.type, ev.body_for(view), sids)
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

    @staticmethod
    def _admit(client: Client, ev: OutboxEvent) -> str | None:
        """The view of ``ev`` that ``client`` gets, or None (already sent, or not its to see)."""
        if ev.id <= client.last_id:
            return None
        client.last_id = ev.id
        return rooms.view_for(client.who, ev)

    def deliver(self, client: Client, ev: OutboxEvent) -> bool:
        """One event to one client (replay, and the buffer flushed after it)."""
        view = self._admit(client, ev)
        if view is None:
            return False
        return self.transport.broadcast(ev.type, ev.body_for(view), (client.eio_sid,)) == 1

    def send(self, client: Client, name: str, data: dict) -> bool:
        """A server message (e.g. ``resync_required``) on the same ordered path as events."""
        return self.transport.send_event(client.eio_sid, name, data)

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
