"""The greeting, and recalls in the chat: a signed-in patient who greets the bot hears that they
are due for a recalled service (the six-month cleaning, ``bot/recalls.py``) and gets a button that
books it. A greeting that also asks for something goes straight to it."""

from __future__ import annotations

import asyncio
import json

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from .asking import entity_names
from .common import guarded
from .gateway import get_gateway
from .session import caller
from .understanding import asks_to_book, changes_a_visit

FORM_OF = {"switch:cancel": "cancel_form", "switch:reschedule": "reschedule_form"}


def asked_with_a_greeting(tracker: Tracker) -> str | None:
    """The form a message the model read as a greeting asks for in so many words, if any: "Hey,
    hope you're having a good day. Something came up, could we move my extraction" moves a visit,
    "Hi! Could I get a cleaning next week?" books one; "hi", "hello, is this the clinic?" ask
    for nothing."""
    text = tracker.latest_message.get("text") or ""
    if text.startswith("/"):
        return None
    change = changes_a_visit(text)
    if change in FORM_OF:
        return FORM_OF[change]
    if "service" in entity_names(tracker) and asks_to_book(text):
        return "booking_form"
    return None


class ActionGreet(Action):
    """``utter_greet``, or, when the greeting also asks for something, that form at once (it reads
    the same message: the service, the day, the visit), without the welcome speech or the recall
    note: the patient has said what they came for."""

    def name(self) -> str:
        return "action_greet"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        form = asked_with_a_greeting(tracker)
        if form is not None:
            return [FollowupAction(form)]
        dispatcher.utter_message(response="utter_greet")
        return []


class ActionRecallCheck(Action):
    """After the greeting: nothing for an anonymous chat (who they are is not proved yet) or a
    patient who is not due; otherwise ``utter_recall_due`` with the service and the last visit's
    date, and a button that starts booking that service."""

    def name(self) -> str:
        return "action_recall_check"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        who = caller(tracker)
        if not who.authenticated or who.patient_id is None:
            return []
        gw = get_gateway()
        due = await asyncio.to_thread(gw.recalls_due, who.patient_id)
        if not due:
            return []
        first = due[0]
        service = first.service_name.lower()
        last = first.last_visit.astimezone(gw.tz)
        payload = "/book_appointment" + json.dumps({"service": service})
        dispatcher.utter_message(response="utter_recall_due", service=service,
                                 last_visit=f"{last:%B} {last.day}, {last.year}",
                                 buttons=[{"title": f"Book my {service}", "payload": payload}])
        return []
