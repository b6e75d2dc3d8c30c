"""Socket.IO events: connect (auth + resume), subscribe, unsubscribe, disconnect.

Resume: a client connecting with ``since`` is registered *pending* before anything
is read, with the listener's current last id as the replay's upper bound. Live
events that arrive meanwhile are buffered. The replay then reads the outbox rows
in ``(since, bound]`` it may see, in id order; afterwards the buffer is flushed
(skipping ids already sent) and the client goes live — all without an ``await``
between the last replayed packet and the switch, so nothing can slip between.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from psycopg_pool import AsyncConnectionPool

from bot.aio import cancel_and_wait
from bot.events import RESYNC_REQUIRED, SIGNED_OUT, ResyncReason, ResyncRequired
from bot.settings import Settings
from bot.tokens import MISSING_TOKEN, Identity, TokenError

from . import outbox, rooms
from .auth import identify
from .hub import Client, Hub
from .listener import OutboxListener

log = logging.getLogger(__name__)

MAX_SUBSCRIPTIONS = 64
REPLAY_BATCH = 1000


class SocketHandlers:
    def __init__(self, sio: socketio.AsyncServer, hub: Hub, listener: OutboxListener,
                 pool: AsyncConnectionPool, settings: Settings, *, connect_wait: float = 5.0):
        self.sio = sio
        self.hub = hub
        self.listener = listener
        self.pool = pool
        self.settings = settings
        self.connect_wait = connect_wait
        self._tasks: set[asyncio.Task] = set()
        # the identity a handshake's staff session cookie proves (sync.staff.socket_identity), set by
        # sync.app: a callable, so this module needs neither the database nor the cookie's rules
        self.cookie_identity: Callable[[dict], Awaitable[tuple[Identity, str] | None]] | None = None
        # sid -> the hash of the staff session a connection was opened with (sync.staff closes
        # it when that session ends)
        self.cookie_sessions: dict[str, str] = {}

    def register(self) -> None:
        self.sio.on("connect", self.connect)
        self.sio.on("disconnect", self.disconnect)
        self.sio.on("subscribe", self.subscribe)
        self.sio.on("unsubscribe", self.unsubscribe)
        self.sio.on("*", self.unknown)

    def _sent_by_client(self, sid: str) -> bool:
        """Whether a ``connect`` / ``disconnect`` call is really an event a connected client emitted
        under that name (python-socketio dispatches those to the same handlers). A real connect
        or disconnect runs while the connection is pending, never while it is connected."""
        return self.sio.manager.is_connected(sid, "/")

    # -- connect ----------------------------------------------------------------------
    async def connect(self, sid: str, environ: Any = None, auth: Any = None, *extra: Any) -> Any:
        if self._sent_by_client(sid):
            return await self.unknown("connect", sid)
        if auth is None:
            auth = {}
        if not isinstance(auth, dict):
            raise socketio.exceptions.ConnectionRefusedError(MISSING_TOKEN)
        who, session = await self._identify(auth.get("token"), environ if isinstance(environ, dict) else {})
        since = auth.get("since")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
            raise socketio.exceptions.ConnectionRefusedError("invalid since: expected a non-negative integer")
        bound = self.listener.last_id
        if bound is None:
            raise socketio.exceptions.ConnectionRefusedError("service unavailable: not connected to the database yet")
        cap = self.max_sockets(who)
        if self.hub.open_for(who) >= cap:  # checked and counted (hub.add) with no await between
            raise socketio.exceptions.ConnectionRefusedError(
                f"too many connections for this token: at most {cap} at once; close another tab or window")
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        client = Client(sid, eio_sid, who, last_id=bound if since is None else since)
        self.hub.add(client)  # pending: live events are buffered from here on
        if session is not None:
            self.cookie_sessions[sid] = session
        task = asyncio.get_running_loop().create_task(self._start(client, since, bound))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("connect %s %s since=%s", sid, who.sub, since)

    async def _identify(self, token: Any, environ: dict) -> tuple[Identity, str | None]:
        """A token in ``auth`` when there is one; else the staff session cookie of the handshake
        (read once: it is then dropped from the connection's environ), with its session's hash."""
        if (token is None or token == "") and self.cookie_identity is not None:
            try:
                signed = await self.cookie_identity(environ)
            except Exception as exc:  # sync.staff.SessionRefused: its message is the reason
                raise socketio.exceptions.ConnectionRefusedError(str(exc)) from None
            finally:
                environ.pop("HTTP_COOKIE", None)
            if signed is not None:
                return signed
        environ.pop("HTTP_COOKIE", None)
        try:
            return identify(token, self.settings), None
        except TokenError as exc:
            raise socketio.exceptions.ConnectionRefusedError(str(exc)) from None

    def max_sockets(self, who: Identity) -> int:
        """SYNC_MAX_SOCKETS_PER_TOKEN, or the staff cap for admin and service tokens (shared by
        every dashboard of the clinic's staff and by the action server's processes)."""
        if who.role in ("admin", "service"):
            return self.settings.sync_max_sockets_per_staff_token
        return self.settings.sync_max_sockets_per_token

    async def _start(self, client: Client, since: int | None, bound: int) -> None:
        """After the CONNECT packet is out: replay (if asked), flush the buffer, go live."""
        try:
            deadline = asyncio.get_running_loop().time() + self.connect_wait
            while not self.sio.manager.is_connected(client.sid, "/"):
                if client.sid not in self.hub.clients or asyncio.get_running_loop().time() > deadline:
                    return
                await asyncio.sleep(0.002)
            if since is not None:
                await self._replay(client, since, bound)
            if client.sid not in self.hub.clients:
                return
            if not self.hub.go_live(client):
                self._resync(client, "buffer_overflow", None, None, self.listener.last_id or 0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("resume for %s failed (%s); disconnecting it so it retries", client.sid, exc)
            self.hub.remove(client.sid)
            await self.sio.disconnect(client.sid)

    async def _replay(self, client: Client, since: int, bound: int) -> None:
        async with self.pool.connection() as conn:
            oldest, last_seq = await outbox.bounds(conn)
            if since > last_seq:
                self._resync(client, "since_ahead", oldest, since, bound)
                return
            if (oldest is None and since < bound) or (oldest is not None and since < oldest - 1):
                self._resync(client, "outbox_pruned", oldest, since, bound)
                return
            after = since
            while after < bound:
                rows = await outbox.fetch_range(conn, after, bound, REPLAY_BATCH)
                if not rows:
                    break
                for ev in rows:
                    if self.hub.visible(client, ev):
                        self.hub.deliver(client, ev)
                after = rows[-1].id
                if client.sid not in self.hub.clients:
                    return

    def _resync(self, client: Client, reason: ResyncReason, oldest: int | None, since: int | None,
                upto: int) -> None:
        """Tell the client to reload; it then gets live events after ``upto`` (its new ``since``)."""
        client.last_id = upto
        self.hub.send(client, RESYNC_REQUIRED,
                      ResyncRequired(reason=reason, since=since, oldestId=oldest, lastId=client.last_id))

    async def disconnect(self, sid: str, reason: Any = None, *extra: Any) -> Any:
        if self._sent_by_client(sid):
            return await self.unknown("disconnect", sid)
        client = self.hub.remove(sid)
        self.cookie_sessions.pop(sid, None)
        if client is not None:
            log.info("disconnect %s %s (%s)", sid, client.who.sub, reason)

    async def sign_out(self, sid: str, message: str) -> None:
        """The connection's staff session ended: say so (``signed_out``), then close it."""
        self.cookie_sessions.pop(sid, None)
        client = self.hub.remove(sid)
        if client is not None:
            self.hub.send(client, SIGNED_OUT, {"message": message})
            log.info("signed out %s %s: its staff session ended", sid, client.who.sub)
        await self.sio.disconnect(sid)

    # -- subscriptions ----------------------------------------------------------------
    async def subscribe(self, sid: str, *args: Any) -> dict:
        client = self.hub.clients.get(sid)
        if client is None:
            return {"ok": False, "error": "not_connected", "message": "connection is closing"}
        try:
            channel = rooms.channel_for(client.who, _one(args))
        except rooms.SubscribeError as exc:
            return exc.ack()
        if channel not in client.channels and len(client.channels) >= MAX_SUBSCRIPTIONS:
            return {"ok": False, "error": "too_many_subscriptions",
                    "message": f"at most {MAX_SUBSCRIPTIONS} channels per connection"}
        self.hub.join(client, channel)
        return {"ok": True, "channel": channel}

    async def unsubscribe(self, sid: str, *args: Any) -> dict:
        client = self.hub.clients.get(sid)
        if client is None:
            return {"ok": False, "error": "not_connected", "message": "connection is closing"}
        try:
            channel = rooms.channel_for(client.who, _one(args))
        except rooms.SubscribeError as exc:
            return exc.ack()
        if client.channels.get(channel) == "role":
            return {"ok": False, "error": "role_channel",
                    "message": f"{channel} comes with the {client.who.role} role and cannot be left"}
        if not self.hub.leave(client, channel):
            return {"ok": False, "error": "not_subscribed", "message": f"not subscribed to {channel}"}
        return {"ok": True, "channel": channel}

    async def unknown(self, *args: Any) -> dict:
        """Any other event name (called with the name, the sid and the arguments; an event named "*"
        without the name): answered, so a client waiting for an ack is not left hanging; ignored."""
        return {"ok": False, "error": "unknown_event",
                "message": "this service answers only subscribe and unsubscribe"}

    async def close(self) -> None:
        await cancel_and_wait(*self._tasks)


def _one(args: tuple) -> Any:
    """The request of a subscribe / unsubscribe: its only argument."""
    if len(args) > 1:
        raise rooms.SubscribeError("invalid_payload", "send the request as the only argument")
    return args[0] if args else None
