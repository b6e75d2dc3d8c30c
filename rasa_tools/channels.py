"""Rasa's two chat channels with the clinic's boundaries (credentials.yml names these classes).

Same URLs and events as Rasa's own ``rest`` and ``socketio`` channels; what they add:

* **Identity travels per message.** Only ``token`` (a string of at most 4 KB) is kept of the
  metadata a caller sends, and ``client`` (the address this server saw, never one the caller
  wrote) is added. The action server verifies the token on every call; the tracker store drops
  both before it stores the message (rasa_tools/tracker_store.py).
* **Server-issued conversation ids on the socket.** ``session_request`` gets a new random id
  (192 bits, with an HMAC of ``CHAT_SESSION_SECRET``) unless the client presents one this
  server issued; the id is bound to that socket, and ``user_uttered`` always speaks in the
  socket's own conversation, whatever ``session_id`` it names. A REST caller chooses its
  ``sender`` (it must be 1-200 printable characters; no sender is refused, never the shared
  "default"); docs/security.md says what an integrator must do.
* **A long message costs nothing.** A text longer than ``CHAT_MAX_MESSAGE_CHARS`` (500) is
  answered with ``utter_message_too_long`` without running the model or any action.
* **A store that cannot answer says so.** When the tracker store (or anything under it) fails,
  the patient gets ``utter_unavailable``, and nothing replaces the stored conversation
  (rasa_tools.server stops Rasa from falling back to an empty in-memory tracker).
* **Origins are listed.** The socket accepts browser connections only from ``CHAT_ORIGINS``
  (python-engineio checks the Origin header); Rasa's HTTP CORS comes from ``--cors`` with the
  same list (bot/launcher.py).

Settings come from the environment the launcher gives Rasa (this process has no ``bot`` package).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from sanic.exceptions import SanicException
from sanic.request import Request
from socketio import AsyncServer

log = logging.getLogger(__name__)

DOMAIN = Path(__file__).resolve().parent.parent / "domain.yml"
MAX_TOKEN_CHARS = 4096
MAX_SENDER_CHARS = 200
MAX_CLIENT_CHARS = 100

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


def max_message_chars() -> int:
    return int(os.environ.get("CHAT_MAX_MESSAGE_CHARS") or 500)


def chat_origins() -> list[str]:
    """CHAT_ORIGINS (comma-separated), as the launcher passes it; empty: no browser origin."""
    return [o.strip().rstrip("/") for o in (os.environ.get("CHAT_ORIGINS") or "").split(",") if o.strip()]


@lru_cache(maxsize=None)
def _secret() -> bytes:
    value = os.environ.get("CHAT_SESSION_SECRET")
    if not value:
        log.warning("CHAT_SESSION_SECRET is not set: conversation ids will not survive a restart")
        value = secrets.token_hex(32)
    return value.encode()


def _mac(nonce: str) -> str:
    return hmac.new(_secret(), nonce.encode(), hashlib.sha256).hexdigest()[:32]


def new_session_id() -> str:
    """A conversation id for a socket: 192 random bits and this server's signature of them."""
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_mac(nonce)}"


def issued_here(session_id: Any) -> bool:
    if not isinstance(session_id, str) or len(session_id) > MAX_SENDER_CHARS or session_id.count(".") != 1:
        return False
    nonce, mac = session_id.split(".")
    return len(nonce) >= 32 and hmac.compare_digest(mac, _mac(nonce))


@lru_cache(maxsize=None)
def response_text(name: str) -> str:
    """The first text of a response in domain.yml (the channel answers a few things itself)."""
    import yaml

    texts = yaml.safe_load(DOMAIN.read_text())["responses"][name]
    return texts[0]["text"]


def clean_metadata(raw: Any, client: Optional[str]) -> Dict[str, Any]:
    """What of a caller's metadata goes on: the token only, plus the address this server saw."""
    if isinstance(raw, str):  # the socket channel allows a JSON string
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    out: Dict[str, Any] = {}
    token = raw.get("token") if isinstance(raw, dict) else None
    if isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_CHARS:
        out["token"] = token
    if client:
        out["client"] = client[:MAX_CLIENT_CHARS]
    return out


def guarded(on_new_message: OnNewMessage) -> OnNewMessage:
    """Rasa's message handler behind the length limit and the "unavailable" answer."""

    async def handle(message: UserMessage) -> None:
        text = message.text if isinstance(message.text, str) else ""
        if len(text) > max_message_chars():
            log.info("message of %d characters in %s answered without the model", len(text),
                     message.sender_id)
            await message.output_channel.send_response(message.sender_id,
                                                       {"text": response_text("utter_message_too_long")})
            return
        try:
            await on_new_message(message)
        except Exception as exc:  # the tracker store, the lock store or the database under them
            log.warning("conversation %s: could not handle the message: %s: %s", message.sender_id,
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            await message.output_channel.send_response(message.sender_id,
                                                       {"text": response_text("utter_unavailable")})

    return handle


def _printable(value: str) -> bool:
    return value.isprintable() and value.strip() == value


class ClinicRestInput(RestInput):
    """``POST /webhooks/rest/webhook`` as Rasa's REST channel, with the boundaries above."""

    @classmethod
    def name(cls) -> Text:
        return "rest"

    async def _extract_sender(self, req: Request) -> Optional[Text]:
        body = req.json if isinstance(req.json, dict) else {}
        sender = body.get("sender")
        if not isinstance(sender, str) or not 0 < len(sender) <= MAX_SENDER_CHARS or not _printable(sender):
            raise SanicException("`sender` must be a conversation id of 1 to 200 printable characters",
                                 status_code=400)
        return sender

    def _extract_message(self, req: Request) -> Optional[Text]:
        body = req.json if isinstance(req.json, dict) else {}
        text = body.get("message")
        if not isinstance(text, str):
            raise SanicException("`message` must be a string", status_code=400)
        return text

    def get_metadata(self, request: Request) -> Optional[Dict[Text, Any]]:
        body = request.json if isinstance(request.json, dict) else {}
        return clean_metadata(body.get("metadata"), request.remote_addr or request.ip)

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        return super().blueprint(guarded(on_new_message))


class ClinicSocketIOInput(SocketIOInput):
    """Rasa's socket.io channel (the web chat widget), with server-issued, socket-bound ids."""

    @classmethod
    def name(cls) -> Text:
        return "socketio"

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        handle = guarded(on_new_message)
        origins = chat_origins()
        sio = AsyncServer(async_mode="sanic", cors_allowed_origins=origins)
        webhook = SocketBlueprint(sio, self.socketio_path, "socketio_webhook", __name__)
        self.sio = sio  # get_output_channel needs it
        conversation: Dict[str, str] = {}  # socket id -> its conversation id
        clients: Dict[str, str] = {}       # socket id -> the address it connected from
        namespace = self.namespace

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> response.HTTPResponse:
            return response.json({"status": "ok"})

        @sio.on("connect", namespace=namespace)
        async def connect(sid: Text, environ: Dict, auth: Optional[Dict] = None) -> bool:
            request = environ.get("sanic.request")
            if request is not None:
                clients[sid] = request.remote_addr or request.ip
            return True

        @sio.on("disconnect", namespace=namespace)
        async def disconnect(sid: Text) -> None:
            conversation.pop(sid, None)
            clients.pop(sid, None)

        @sio.on("session_request", namespace=namespace)
        async def session_request(sid: Text, data: Any = None) -> None:
            asked = data.get("session_id") if isinstance(data, dict) else None
            session_id = asked if self.session_persistence and issued_here(asked) else new_session_id()
            previous = conversation.get(sid)
            if previous and previous != session_id:
                sio.leave_room(sid, previous, namespace=namespace)
            conversation[sid] = session_id
            # python-socketio 5.9 (requirements/rasa.lock): enter/leave_room are plain calls;
            # from 5.10 on they are coroutines and need an await
            sio.enter_room(sid, session_id, namespace=namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=namespace)

        @sio.on(self.user_message_evt, namespace=namespace)
        async def handle_message(sid: Text, data: Any = None) -> None:
            session_id = conversation.get(sid)
            if session_id is None or not isinstance(data, dict):
                log.info("socket %s sent a message before session_request (or no object): ignored", sid)
                return
            text = data.get("message")
            message = UserMessage(text if isinstance(text, str) else "",
                                  SocketIOOutput(sio, self.bot_message_evt), session_id,
                                  input_channel=self.name(),
                                  metadata=clean_metadata(data.get(self.metadata_key), clients.get(sid)))
            await handle(message)

        return webhook
