"""What every action shares: the failure guard, outcome -> response, slot resets."""

from __future__ import annotations

import functools
import logging
from typing import Any, Awaitable, Callable

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.booking import Outcome

log = logging.getLogger("actions")

# One response per outcome of bot.booking.BookingService that a chat can meet.
OUTCOME_RESPONSES = {
    Outcome.BOOKED: "utter_booked",
    Outcome.RESCHEDULED: "utter_rescheduled",
    Outcome.CANCELLED: "utter_cancelled",
    Outcome.UPDATED: "utter_anything_else",
    Outcome.LISTED: "utter_your_appointments",
    Outcome.FOUND: "utter_anything_else",
    Outcome.SLOT_TAKEN: "utter_slot_taken",
    Outcome.PATIENT_BUSY: "utter_patient_busy",
    Outcome.LIMIT_REACHED: "utter_limit_reached",
    Outcome.OUTSIDE_HOURS: "utter_outside_hours",
    Outcome.IN_PAST: "utter_in_past",
    Outcome.TOO_SOON: "utter_too_soon",
    Outcome.TOO_FAR: "utter_too_far",
    Outcome.NOT_FOUND: "utter_appointment_not_found",
    Outcome.NOT_ALLOWED: "utter_not_allowed",
    Outcome.ALREADY_CANCELLED: "utter_already_cancelled",
    Outcome.INVALID: "utter_invalid_request",
    Outcome.UNAVAILABLE: "utter_unavailable",
    Outcome.NOT_VERIFIED: "utter_code_needed",
    Outcome.TOO_LATE: "utter_too_late_to_change",
    # the waitlist (actions/waitlist.py fills in the details)
    Outcome.WAITLISTED: "utter_waitlist_joined",
    Outcome.DECLINED: "utter_waitlist_declined",
    Outcome.OFFER_GONE: "utter_waitlist_offer_gone",
}
# HELD / RELEASED answer the slot-hold calls the form makes itself; they are never announced.
# WITHDRAWN: the chat never takes anyone off the waitlist (the patient page does).
INTERNAL_OUTCOMES = {Outcome.HELD, Outcome.RELEASED, Outcome.WITHDRAWN}
# Outcomes after which the patient picks another time from the alternatives offered.
RETRY_OUTCOMES = {Outcome.SLOT_TAKEN, Outcome.OUTSIDE_HOURS, Outcome.IN_PAST, Outcome.TOO_SOON,
                  Outcome.TOO_FAR}

# Slots one booking / change fills; cleared when it ends, however it ends. The caller's
# own details (full_name, phone) stay for the chat.
REQUEST_SLOTS = ("service", "dentist", "time", "time_window", "offered_slots", "slot_choice", "confirmed",
                 "appointment_id", "outcome", "misunderstood", "verification_code", "code_status")


def holder_of(tracker: Tracker) -> str:
    """Who holds a proposed slot while the patient finishes the form: this conversation."""
    return f"chat:{tracker.sender_id}"[:200]


def reset_request() -> list[dict[str, Any]]:
    return [SlotSet(name, None) for name in REQUEST_SLOTS]


def guarded(run: Callable[..., Awaitable[list]]) -> Callable[..., Awaitable[list]]:
    """No exception text reaches a chat: log it, apologise, carry on with no events."""

    @functools.wraps(run)
    async def wrapper(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        try:
            return await run(self, dispatcher, tracker, domain)
        except Exception:
            log.exception("%s failed (conversation %s)", self.name(), tracker.sender_id)
            dispatcher.messages.clear()
            dispatcher.utter_message(response="utter_sorry_error")
            return []

    return wrapper


def external(tracker: Tracker) -> bool:
    """Whether the latest "message" is an intent another service triggered (Rasa's
    ``trigger_intent``: the waitlist worker's offers), not something the patient typed. Rasa marks
    it ``is_external`` in the metadata, which a caller cannot send (rasa_tools/channels.py keeps
    only the token and the client address of what a channel receives)."""
    metadata = tracker.latest_message.get("metadata")
    return isinstance(metadata, dict) and metadata.get("is_external") is True


def entity_values(tracker: Tracker, entity: str) -> list[str]:
    """Every value of ``entity`` in the latest message, in the order typed."""
    found = [e for e in tracker.latest_message.get("entities", []) if e.get("entity") == entity]
    found.sort(key=lambda e: e.get("start") or 0)
    return [str(e.get("value")) for e in found if e.get("value") is not None]


def changed_this_turn(tracker: Tracker, *names: str) -> bool:
    """Whether any of ``names`` was set since the user's latest message."""
    return any(name in tracker.slots_to_validate() for name in names)


def unreadable(text: Any) -> bool:
    """Whether the NLU model cannot have read ``text``. It learnt English words and the letters in
    them, so for a message without one ASCII letter or digit (Hebrew, Arabic, Cyrillic, emoji, "?")
    it has nothing to go on but its bias, which says ``affirm`` at about 0.9 — for "нет", "لا" and
    "❌" as much as for "👍". Button payloads ("/affirm") do not go through the model."""
    if not isinstance(text, str) or text.startswith("/"):
        return False
    return not any(c.isascii() and c.isalnum() for c in text)


class ReadsUnreadableAnswers:
    """For a form's validation action (before ``FormValidationAction`` in the bases): a message the
    model cannot read is taken as the answer to the question the form asked — the slot's own
    validation keeps it (a name in Hebrew) or refuses it and the question is asked again ("🦷" as a
    phone number) — never as the intent the model guessed. To "Shall I ...?" it is no answer at
    all: nothing is booked, moved or cancelled on a guess, and the question is asked again."""

    async def get_extraction_events(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: dict) -> list[EventType]:
        events = await super().get_extraction_events(dispatcher, tracker, domain)  # type: ignore[misc]
        requested = tracker.get_slot("requested_slot")
        text = tracker.latest_message.get("text")
        if requested in (None, "confirmed") or changed_this_turn(tracker, requested):
            return events
        if unreadable(text):
            events.append(SlotSet(requested, text))
        return events

    async def get_validation_events(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: dict) -> list[EventType]:
        if (tracker.get_slot("requested_slot") == "confirmed" and changed_this_turn(tracker, "confirmed")
                and unreadable(tracker.latest_message.get("text"))):
            dispatcher.utter_message(response="utter_please_rephrase")
            return [SlotSet("confirmed", None)]
        return await super().get_validation_events(dispatcher, tracker, domain)  # type: ignore[misc]
