"""The waitlist in the chat (``bot/waitlist.py``): "tell me if an earlier time opens", the offer
the sync service's worker sends into this conversation, and the patient's yes or no to it.

- ``action_waitlist_join``: a known patient (signed in with this message's token, or the phone this
  conversation proved with a code) waits for the service being booked — or for the visit being
  moved, which is then moved earlier — with the dentist chosen, from now until the earliest time
  just offered (the visit's start for a move), else for the next ``DEFAULT_DAYS`` days. The entry
  records this conversation, so the worker's offer comes back here.
- ``action_waitlist_offer`` / ``action_waitlist_gone`` answer the worker's external intents
  ``EXTERNAL_waitlist_offer`` / ``EXTERNAL_waitlist_gone`` (entity ``offer_id``; names shared with
  ``bot.waitlist``). They carry no token, so the database decides who may hear of an offer: only
  a conversation whose own request it answers (``Gateway.chat_offer``); for any other
  conversation, or a typed copy naming someone else's offer, nothing is said at all.
- ``action_waitlist_accept`` / ``action_waitlist_decline``: the patient's answer, for the patient
  this message proves (``Waitlist.accept`` checks the offer is theirs); the first acceptance of a
  freed time books it, a later one hears that it is gone.
"""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.booking import Outcome
from bot.waitlist import ACCEPTED, EXPIRED, GONE, OPEN, OfferView

from .availability import dentist_of
from .caller import Caller
from .booking import announce, previous_value
from .common import OUTCOME_RESPONSES, entity_values, guarded, holder_of, reset_request
from .formatting import short_dentist, when_label
from .gateway import Gateway, chat_identity, get_gateway
from .offers import load_offer
from .session import caller

DEFAULT_DAYS = 14  # how far ahead to wait when nothing was offered yet
OFFER_SLOT = "waitlist_offer_id"

JOIN_RESPONSES = {
    Outcome.LIMIT_REACHED: "utter_waitlist_limit",
    Outcome.INVALID: "utter_waitlist_nothing_earlier",
    Outcome.NOT_FOUND: "utter_waitlist_not_found",
    Outcome.NOT_ALLOWED: "utter_not_allowed",
    Outcome.UNAVAILABLE: "utter_unavailable",
}


def offer_id_in(tracker: Tracker) -> int | None:
    """The ``offer_id`` entity of the latest message (an external intent or a button)."""
    for value in entity_values(tracker, "offer_id"):
        try:
            return int(value)
        except ValueError:
            continue
    return None


def slot_offer_id(tracker: Tracker) -> int | None:
    try:
        return int(tracker.get_slot(OFFER_SLOT))
    except (TypeError, ValueError):
        return None


def with_article(name: str) -> str:
    word = name.lower()
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def offer_details(gw: Gateway, offer: OfferView) -> dict[str, Any]:
    return {"service": offer.service_name.lower(), "a_service": with_article(offer.service_name),
            "dentist": short_dentist(offer.dentist_name), "when": when_label(offer.starts_at, gw.tz, now=gw.now())}


def stop_request(tracker: Tracker, gw: Gateway) -> list[dict]:
    """Forget the booking or move in progress (a form the rules stopped), and free its held slot."""
    if tracker.get_slot("slot_choice") is not None:
        gw.release(holder_of(tracker))
    return reset_request()


class ForAKnownPatient:
    """For an action (before ``Action`` in its bases: rasa-sdk registers every ``Action`` subclass,
    and this one has no name): it acts for the patient this message proves (signed in, or a phone
    this conversation proved with a code); anyone else hears how to become known, and ``unknown``'s
    events."""

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        return await asyncio.to_thread(self.checked, dispatcher, tracker)

    def checked(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict]:
        gw = get_gateway()
        who = caller(tracker)
        patient_id = gw.known_patient(who)
        if patient_id is None:
            dispatcher.utter_message(response="utter_waitlist_who")
            return self.unknown(tracker, gw)
        return self.act(dispatcher, tracker, gw, who, patient_id)

    def unknown(self, tracker: Tracker, gw: Gateway) -> list[dict]:
        return []

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, gw: Gateway, who: Caller,
            patient_id: int) -> list[dict]:
        raise NotImplementedError


class ActionWaitlistJoin(ForAKnownPatient, Action):
    def name(self) -> str:
        return "action_waitlist_join"

    def unknown(self, tracker: Tracker, gw: Gateway) -> list[dict]:
        return stop_request(tracker, gw)

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, gw: Gateway, who: Caller,
            patient_id: int) -> list[dict]:
        catalogue = gw.catalogue()
        visit = self.visit_to_move(gw, tracker, who)
        service = (catalogue.services.get(visit.service_id) if visit is not None
                   else catalogue.service(tracker.get_slot("service")))
        if service is None:
            dispatcher.utter_message(response="utter_waitlist_which_service")
            return stop_request(tracker, gw)
        dentist = dentist_of(catalogue, tracker.get_slot("dentist"))
        offered = load_offer(tracker.get_slot("offered_slots"))
        if visit is not None:
            latest = visit.starts_at
        elif offered:
            latest = min(s.starts_at for s in offered)
        else:
            latest = gw.now() + timedelta(days=DEFAULT_DAYS)
        result = gw.waitlist.join(chat_identity(patient_id, who.conversation_id), patient_id=patient_id,
                                  service_id=service.id, dentist_id=dentist.id if dentist else None,
                                  latest=latest, appointment_id=visit.id if visit is not None else None,
                                  conversation_id=tracker.sender_id)
        if result.outcome is Outcome.WAITLISTED:
            until = when_label(result.entry.latest, gw.tz, now=gw.now())
            whom = f" with {short_dentist(dentist.full_name)}" if dentist else ""
            if visit is not None:
                dispatcher.utter_message(response="utter_waitlist_joined_move", service=service.name.lower(),
                                         until=until, whom=whom)
            else:
                dispatcher.utter_message(response="utter_waitlist_joined", a_service=with_article(service.name),
                                         until=until, whom=whom)
        else:
            dispatcher.utter_message(response=JOIN_RESPONSES.get(result.outcome, "utter_sorry_error"),
                                     count=gw.settings.waitlist_entries_per_patient,
                                     phone=gw.settings.clinic_phone)
        return stop_request(tracker, gw)

    @staticmethod
    def visit_to_move(gw: Gateway, tracker: Tracker, who):
        """The caller's own visit the move in progress is about, if any."""
        wanted = tracker.get_slot("appointment_id")
        if wanted is None:
            return None
        result = gw.own_appointments(who)
        return next((a for a in result.appointments if str(a.id) == str(wanted)), None)


class ActionWaitlistOffer(Action):
    """The worker's ``EXTERNAL_waitlist_offer``: say what opened, with Yes / No buttons."""

    def name(self) -> str:
        return "action_waitlist_offer"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        gw = get_gateway()
        offer = await asyncio.to_thread(gw.chat_offer, caller(tracker), offer_id_in(tracker))
        if offer is None or offer.status != OPEN or offer.expires_at <= gw.now():
            # not this chat's, or decided already: nothing is said, the slot keeps its offer
            return [SlotSet(OFFER_SLOT, previous_value(tracker, OFFER_SLOT))]
        minutes = max(1, math.ceil((offer.expires_at - gw.now()).total_seconds() / 60))
        entity = f'{{"offer_id": {offer.id}}}'
        buttons = [{"title": "Yes", "payload": f"/accept_waitlist_offer{entity}"},
                   {"title": "No", "payload": f"/decline_waitlist_offer{entity}"}]
        response = "utter_waitlist_offer_move" if offer.appointment_id is not None else "utter_waitlist_offer"
        dispatcher.utter_message(response=response, minutes=minutes, buttons=buttons, **offer_details(gw, offer))
        return [SlotSet(OFFER_SLOT, offer.id)]


class ActionWaitlistGone(Action):
    """The worker's ``EXTERNAL_waitlist_gone``: the time offered here was taken or its hold ran out."""

    def name(self) -> str:
        return "action_waitlist_gone"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        gw = get_gateway()
        offer = await asyncio.to_thread(gw.chat_offer, caller(tracker), offer_id_in(tracker))
        if offer is None or offer.status not in (GONE, EXPIRED):
            return []  # not this chat's, or not gone (taken here, declined): nothing to tell
        response = "utter_waitlist_gone" if offer.status == GONE else "utter_waitlist_expired"
        dispatcher.utter_message(response=response, **offer_details(gw, offer))
        return []  # the slot keeps the offer: a "yes" now hears that it is gone


class ActionWaitlistAccept(ForAKnownPatient, Action):
    """Yes to the offer: book it (or move the visit there); the first acceptance wins."""

    def name(self) -> str:
        return "action_waitlist_accept"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, gw: Gateway, who: Caller,
            patient_id: int) -> list[dict]:
        identity = chat_identity(patient_id, who.conversation_id)
        offer_id = offer_id_in(tracker) or slot_offer_id(tracker)
        if offer_id is None:
            latest = gw.waitlist.open_offers(identity)
            offer_id = latest[0].id if latest else None
        if offer_id is None:
            dispatcher.utter_message(response="utter_waitlist_no_offer")
            return [SlotSet(OFFER_SLOT, None)]
        result = gw.waitlist.accept(identity, offer_id, origin=who.origin)
        if result.outcome is Outcome.OFFER_GONE:
            status = result.offer.status if result.offer is not None else GONE
            dispatcher.utter_message(response={ACCEPTED: "utter_waitlist_already_yours",
                                               EXPIRED: "utter_waitlist_offer_expired"}.get(
                status, OUTCOME_RESPONSES[Outcome.OFFER_GONE]))
        elif result.outcome is Outcome.NOT_FOUND:
            dispatcher.utter_message(response="utter_waitlist_no_offer")
        else:
            announce(dispatcher, gw, result)
        events = [SlotSet(OFFER_SLOT, None), *stop_request(tracker, gw)]
        if result.ok and result.appointment is not None:
            events.append(SlotSet("booked_appointment_id", result.appointment.id))
        return events


class ActionWaitlistDecline(ForAKnownPatient, Action):
    """No to the offer: the time is let go at once; the patient stays on the waitlist."""

    def name(self) -> str:
        return "action_waitlist_decline"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker, gw: Gateway, who: Caller,
            patient_id: int) -> list[dict]:
        offer_id = offer_id_in(tracker) or slot_offer_id(tracker)
        if offer_id is None:
            dispatcher.utter_message(response="utter_waitlist_no_offer")
            return [SlotSet(OFFER_SLOT, None)]
        result = gw.waitlist.decline(chat_identity(patient_id, who.conversation_id), offer_id)
        dispatcher.utter_message(response={Outcome.OFFER_GONE: "utter_waitlist_let_go",
                                           Outcome.NOT_FOUND: "utter_waitlist_no_offer"}.get(
            result.outcome, OUTCOME_RESPONSES.get(result.outcome, "utter_sorry_error")))
        return [SlotSet(OFFER_SLOT, None)]
