"""Handing over to people, and stopping whatever is going on."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from .common import guarded, holder_of, reset_request
from .gateway import get_gateway

# The front desk's hours, as in the FAQ answer (responses utter_faq/opening_hours).
OPENING_HOURS = "Monday to Friday 8am–7pm and Saturday 9am–1pm"


class ActionHumanHandoff(Action):
    def name(self) -> str:
        return "action_human_handoff"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        dispatcher.utter_message(response="utter_handoff", phone=get_gateway().settings.clinic_phone,
                                 hours=OPENING_HOURS)
        return []


class ActionStop(Action):
    """ "Never mind": end any form cleanly and forget the request (not who the caller is)."""

    def name(self) -> str:
        return "action_stop"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        was_busy = tracker.active_loop_name is not None or any(
            tracker.get_slot(s) is not None
            for s in ("service", "dentist", "time", "slot_choice", "appointment_id"))
        dispatcher.utter_message(response="utter_stopped" if was_busy else "utter_nothing_to_stop")
        if tracker.get_slot("slot_choice") is not None:
            get_gateway().release(holder_of(tracker))
        return [ActiveLoop(None), SlotSet("requested_slot", None), *reset_request()]
