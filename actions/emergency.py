"""A dental emergency: the advice first, then the soonest emergency visit today as a button."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from .availability import buttons
from .common import guarded
from .formatting import when_label
from .gateway import Gateway, get_gateway

EMERGENCY_SERVICE = "emergency visit"
LOOKAHEAD_DAYS = 3  # when today is full: the soonest slot of the next days


def end_of_today(gw: Gateway) -> datetime:
    today = gw.now().astimezone(gw.tz).date()
    return datetime.combine(today + timedelta(days=1), time(0), tzinfo=gw.tz)


class ActionEmergency(Action):
    def name(self) -> str:
        return "action_emergency"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        dispatcher.utter_message(response="utter_emergency_advice")
        gw = get_gateway()
        service = gw.catalogue().service(EMERGENCY_SERVICE)
        phone = gw.settings.clinic_phone
        if service is None:
            dispatcher.utter_message(response="utter_handoff", phone=phone, hours="")
            return []
        extra = f', "service": "{service.key}", "dentist": "any"'
        today = gw.free_slots(service.id, gw.now(), end_of_today(gw), limit=1)
        if today:
            dentist = gw.catalogue().dentists.get(today[0].dentist_id)
            dispatcher.utter_message(
                response="utter_emergency_slot", phone=phone,
                when=when_label(today[0].starts_at, gw.tz, now=gw.now()),
                dentist=dentist.full_name if dentist else "our dentist",
                buttons=buttons(gw, today, dentist=None, intent="book_appointment", extra=extra))
            return []
        later = gw.free_slots(service.id, end_of_today(gw), end_of_today(gw) + timedelta(days=LOOKAHEAD_DAYS),
                              limit=1)
        dispatcher.utter_message(response="utter_emergency_no_slot_today", phone=phone,
                                 buttons=buttons(gw, later, dentist=None, intent="book_appointment",
                                                 extra=extra))
        return []
