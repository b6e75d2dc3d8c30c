"""Who is typing: a patient signed in with a token, or an anonymous chat.

A token comes as message metadata ``{"token": "<JWT>"}`` and is verified with
``bot.tokens.verify``; only role ``patient`` counts. The slots ``authenticated`` and
``patient_id`` are set by actions only (no entity or text maps to them), so a user
cannot type their way into someone else's identity. An anonymous chat gets a
``patient_id`` when it books (name + phone) and may then manage only the visits
listed in ``my_appointment_ids``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.tokens import TokenError, verify

from .gateway import get_gateway

log = logging.getLogger(__name__)

# Slots that survive a new session; identity is re-checked from the token every session.
CARRIED_SLOTS = ("full_name", "phone", "my_appointment_ids")


@dataclass(frozen=True)
class Caller:
    patient_id: int | None
    authenticated: bool
    own_ids: tuple[int, ...] = ()  # for an anonymous caller: the visits booked in this chat

    @property
    def only_ids(self) -> list[int] | None:
        """The narrowing of the caller's visits: None (all) when signed in."""
        return None if self.authenticated else list(self.own_ids)


def token_patient(metadata: Any) -> int | None:
    """The patient id a metadata token proves, or None (missing, invalid, not a patient)."""
    if not isinstance(metadata, dict) or not metadata.get("token"):
        return None
    try:
        identity = verify(metadata["token"], settings=get_gateway().settings)
    except TokenError as exc:
        log.info("ignoring chat token: %s", exc)
        return None
    return identity.patient_id if identity.role == "patient" else None


def _ids(value: Any) -> tuple[int, ...]:
    out = []
    for v in value or ():
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            continue
    return tuple(out)


def caller(tracker: Tracker) -> Caller:
    """The caller of the latest message: its token first, else what this chat established."""
    metadata = tracker.latest_message.get("metadata") or {}
    if isinstance(metadata, dict) and metadata.get("token"):
        pid = token_patient(metadata)
        if pid is not None:
            return Caller(pid, True)
    own = _ids(tracker.get_slot("my_appointment_ids"))
    pid = tracker.get_slot("patient_id")
    if tracker.get_slot("authenticated") and pid is not None:
        return Caller(int(pid), True)
    return Caller(int(pid) if pid is not None else None, False, own)


def identity_events(tracker: Tracker, metadata: Any) -> list[dict]:
    pid = token_patient(metadata)
    if pid is not None:
        return [SlotSet("authenticated", True), SlotSet("patient_id", pid)]
    if tracker.get_slot("authenticated"):  # signed in last session, not now: forget who it was
        return [SlotSet("authenticated", False), SlotSet("patient_id", None),
                SlotSet("my_appointment_ids", [])]
    return [SlotSet("authenticated", False)]


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
        anonymous_pid = None if tracker.get_slot("authenticated") else tracker.get_slot("patient_id")
        if anonymous_pid is not None:
            events.append(SlotSet("patient_id", anonymous_pid))
        metadata = tracker.get_slot("session_started_metadata") or tracker.latest_message.get("metadata")
        try:
            events += identity_events(tracker, metadata)
        except Exception:
            log.exception("could not establish the caller; starting anonymous")
            events += [SlotSet("authenticated", False), SlotSet("patient_id", anonymous_pid)]
        events.append(ActionExecuted("action_listen"))
        return events
