"""Recalls in the chat: a signed-in patient who greets the bot hears that they are due for a
recalled service (the six-month cleaning, ``bot/recalls.py``) and gets a button that books it."""

from __future__ import annotations

import asyncio
import json

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from .common import guarded
from .gateway import get_gateway
from .session import caller


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
