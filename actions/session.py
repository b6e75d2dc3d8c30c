"""Who is typing: a patient signed in with a token, or an anonymous chat.

Identity comes from the *current* message only: its metadata ``{"token": "<JWT>"}`` is verified
with ``bot.tokens.verify`` on every action call, and only role ``patient`` counts. Nothing in the
tracker grants identity — not the slots ``authenticated`` / ``patient_id`` (kept for the
dialogue's conditions only), not an earlier message's metadata (the tracker store strips tokens
before it stores a message: rasa_tools/tracker_store.py). A message without a token is anonymous,
even in a conversation that was signed in a minute ago.

An anonymous chat may manage exactly the visits the database records as booked in this
conversation (``chat_bookings``, looked up by the sender id Rasa passes on; only Rasa can call this
server: actions/server.py checks its shared secret). The client address comes from the metadata
Rasa's channel writes itself (``client``; rasa_tools/channels.py overwrites whatever a caller sent).
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.tokens import TokenError, verify

from .caller import Caller
from .gateway import get_gateway

log = logging.getLogger(__name__)

# Slots that survive a new session (the dialogue's memory, never identity).
CARRIED_SLOTS = ("full_name", "phone")


def token_patient(metadata: Any) -> int | None:
    """The patient id a metadata token proves, or None (missing, invalid, not a patient)."""
    if not isinstance(metadata, dict) or not metadata.get("token"):
        return None
    token = metadata["token"]
    if not isinstance(token, str):
        return None
    try:
        identity = verify(token, settings=get_gateway().settings)
    except TokenError as exc:
        log.info("ignoring chat token: %s", exc)
        return None
    return identity.patient_id if identity.role == "patient" else None


def _client(metadata: Any) -> str | None:
    value = metadata.get("client") if isinstance(metadata, dict) else None
    return value[:100] if isinstance(value, str) and value else None


def caller(tracker: Tracker) -> Caller:
    """The caller of the latest message: its own token, verified now, or anonymous."""
    metadata = tracker.latest_message.get("metadata") or {}
    pid = token_patient(metadata)
    return Caller(pid, pid is not None, str(tracker.sender_id or ""), _client(metadata))


def identity_events(metadata: Any) -> list[dict]:
    """The dialogue's view of who is typing (slots); the actions check the token again anyway."""
    pid = token_patient(metadata)
    if pid is not None:
        return [SlotSet("authenticated", True), SlotSet("patient_id", pid)]
    return [SlotSet("authenticated", False), SlotSet("patient_id", None)]


class ActionSessionStart(Action):
    def name(self) -> str:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        # Not @guarded: a session must start even if something here fails (it then starts anonymous).
        events: list[dict] = [SessionStarted()]
        for name in CARRIED_SLOTS:
            value = tracker.get_slot(name)
            if value not in (None, []):
                events.append(SlotSet(name, value))
        # this message's metadata: Rasa passes it in the slot while the session starts
        metadata = tracker.get_slot("session_started_metadata") or tracker.latest_message.get("metadata")
        try:
            events += identity_events(metadata)
        except Exception:
            log.exception("could not establish the caller; starting anonymous")
            events += [SlotSet("authenticated", False), SlotSet("patient_id", None)]
        events.append(ActionExecuted("action_listen"))
        return events
