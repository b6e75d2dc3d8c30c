"""The booking form: service, dentist (or "any"), time -> an offered slot -> (anonymous
callers) name and phone -> a confirmation summary -> the write.

The write happens when the patient says yes (``validate_confirmed``), so a slot taken
in the meantime keeps the form going: the patient is told and picks from the nearest
alternatives. ``action_finish_booking`` runs when the form ends and clears the request.
"""

from __future__ import annotations

from datetime import timedelta
import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.booking import Outcome, Result
from bot.phone import InvalidPhone, normalise_phone

from .availability import (buttons, chosen_slot, dentist_of, load_offer, offer_events, requested_time,
                           store_offer)
from .common import (OUTCOME_RESPONSES, RETRY_OUTCOMES, ReadsUnreadableAnswers, changed_this_turn, guarded,
                     holder_of, log, reset_request)
from .dates import PastTime, When, parse_when
from .formatting import decode_choice, price_label, when_label
from .gateway import Gateway, ServiceInfo, get_gateway
from .session import caller

MAX_NAME = 200
ANY_DENTIST = ("any", "anyone", "any dentist", "no preference")
NAME_PREFIX = re.compile(r"^\s*(my name is|my name's|name is|name's|i am|i'm|im|it's|its|this is|call me|"
                         r"under|book it under|put it under)\s+", re.IGNORECASE)


def giving_details(tracker: Tracker) -> bool:
    """Whether the latest message answered "your name?" / "your phone?" (then "Maria" is a name,
    not Dr. Alvarez)."""
    return tracker.get_slot("requested_slot") in ("full_name", "phone") and changed_this_turn(
        tracker, "full_name", "phone")


def announce(dispatcher: CollectingDispatcher, gw: Gateway, result: Result) -> None:
    """The response for a booking-service outcome, filled with the visit's details."""
    response = OUTCOME_RESPONSES.get(result.outcome, "utter_sorry_error")
    appt = result.appointment
    details: dict[str, Any] = {}
    if appt is not None:
        details = {"service": appt.service_name, "dentist": appt.dentist_name, "id": appt.id,
                   "when": when_label(appt.starts_at, gw.tz, now=gw.now())}
    if result.outcome is Outcome.LIMIT_REACHED:
        details["phone"] = gw.settings.clinic_phone
    dispatcher.utter_message(response=response, **details)


def window_events(gw: Gateway, dispatcher: CollectingDispatcher, text: str, *, quiet: bool) -> dict[str, Any]:
    """Validate a time phrase into ``time`` + ``time_window``; a complaint unless ``quiet``."""
    try:
        when = parse_when(text, gw.now(), gw.tz)
    except PastTime:
        dispatcher.utter_message(response="utter_time_in_past")
        return {"time": None}
    if when is None:
        if not quiet:
            dispatcher.utter_message(response="utter_time_not_understood")
        return {"time": None}
    return {"time": text, "time_window": when.encode()}


def previous_value(tracker: Tracker, name: str) -> Any:
    """``name``'s value before the latest user message."""
    seen_user = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            seen_user = True
        elif seen_user and event.get("event") == "slot" and event.get("name") == name:
            return event.get("value")
    return None


def picked_by_button(tracker: Tracker) -> bool:
    """Whether this turn brought a slot button (which carries its own service/dentist/time)."""
    return (changed_this_turn(tracker, "slot_choice")
            and decode_choice(tracker.get_slot("slot_choice")) is not None)


class SlotChoiceMixin:
    """Validation of ``time`` and ``slot_choice``, shared by the booking and reschedule forms."""

    def service_for(self, gw: Gateway, tracker: Tracker) -> ServiceInfo | None:
        return gw.catalogue().service(tracker.get_slot("service"))

    def dentist_id_for(self, gw: Gateway, tracker: Tracker) -> int | None:
        d = dentist_of(gw.catalogue(), tracker.get_slot("dentist"))
        return d.id if d else None

    def hold(self, gw: Gateway, tracker: Tracker, dentist_id: int, service_id: int, starts_at) -> Result:
        """Keep the picked slot for this conversation until the yes (others don't get it meanwhile)."""
        return gw.hold(holder_of(tracker), dentist_id=dentist_id, service_id=service_id, starts_at=starts_at,
                       client=caller(tracker).client)

    def validate_time(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: dict) -> dict[str, Any]:
        if giving_details(tracker):
            return {"time": previous_value(tracker, "time")}
        gw = get_gateway()
        text = requested_time(tracker) or value
        if not isinstance(text, str):
            return {"time": None}
        # Text taken while asking for the time may really be a dentist or service: stay quiet then.
        quiet = any(e.get("entity") in ("dentist", "service")
                    for e in tracker.latest_message.get("entities", []))
        out = window_events(gw, dispatcher, text, quiet=quiet)
        if out.get("time_window") != tracker.get_slot("time_window") and not picked_by_button(tracker):
            out.update(slot_choice=None, offered_slots=None, confirmed=None)
        return out

    def validate_slot_choice(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: dict) -> dict[str, Any]:
        gw = get_gateway()
        is_button = decode_choice(value) is not None
        if not is_button and changed_this_turn(tracker, "time", "dentist", "service"):
            return {"slot_choice": None}  # a new request this turn: new offers, not a pick
        service = self.service_for(gw, tracker)
        picked = chosen_slot(value, load_offer(tracker.get_slot("offered_slots")), gw.tz)
        if picked is None or service is None:
            if not is_button and isinstance(value, str):
                # maybe a new time typed in reply to the offer ("friday instead")
                out = window_events(gw, dispatcher, value, quiet=True)
                if out.get("time"):
                    return {**out, "slot_choice": None, "offered_slots": None}
            dispatcher.utter_message(response="utter_slot_not_offered")
            return {"slot_choice": None}
        starts_at, dentist_id = picked
        wanted = self.dentist_id_for(gw, tracker)
        if (wanted is not None and wanted != dentist_id) or not gw.is_free(service.id, dentist_id, starts_at):
            dispatcher.utter_message(response="utter_slot_not_offered")
            return {"slot_choice": None, "offered_slots": None}
        held = self.hold(gw, tracker, dentist_id, service.id, starts_at)
        if held.outcome is Outcome.LIMIT_REACHED:  # this address holds too many times already
            announce(dispatcher, gw, held)
            return {"slot_choice": None}
        if held.outcome in RETRY_OUTCOMES:  # taken between the offer and the tap
            dispatcher.utter_message(response="utter_slot_not_offered")
            return {"slot_choice": None, "offered_slots": store_offer(held.alternatives) or None}
        if held.outcome is not Outcome.HELD:  # no hold (database trouble): the write will still check
            log.warning("could not hold %s for %s: %s", starts_at, tracker.sender_id, held.outcome.value)
        out: dict[str, Any] = {"slot_choice": f"{starts_at.isoformat()}|{dentist_id}", "confirmed": None}
        if tracker.get_slot("dentist") is None:
            out["dentist"] = "any"
        if not tracker.get_slot("time") or not tracker.get_slot("time_window"):
            # a tap on an offered button fills in the time it stands for
            out["time"] = when_label(starts_at, gw.tz)
            out["time_window"] = When(starts_at, starts_at + timedelta(minutes=1), at=starts_at).encode()
        return out


class ValidateBookingForm(ReadsUnreadableAnswers, SlotChoiceMixin, FormValidationAction):
    def name(self) -> str:
        return "validate_booking_form"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        return await super().run(dispatcher, tracker, domain)

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: dict) -> list[str]:
        if caller(tracker).authenticated:
            return [s for s in domain_slots if s not in ("full_name", "phone")]
        return domain_slots

    def validate_service(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                         domain: dict) -> dict[str, Any]:
        if giving_details(tracker):
            return {"service": previous_value(tracker, "service")}
        service = get_gateway().catalogue().service(value)
        if service is None:
            dispatcher.utter_message(response="utter_invalid_service")
            return {"service": None}
        out: dict[str, Any] = {"service": service.key}
        if previous_value(tracker, "service") not in (None, service.key) and not picked_by_button(tracker):
            out.update(slot_choice=None, offered_slots=None, confirmed=None)
        return out

    def validate_dentist(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                         domain: dict) -> dict[str, Any]:
        if giving_details(tracker):
            return {"dentist": previous_value(tracker, "dentist")}
        if isinstance(value, str) and value.strip().lower() in ANY_DENTIST:
            key = "any"
        else:
            dentist = get_gateway().catalogue().dentist(value)
            if dentist is None:
                dispatcher.utter_message(response="utter_invalid_dentist")
                return {"dentist": None}
            key = dentist.key
        out: dict[str, Any] = {"dentist": key}
        if previous_value(tracker, "dentist") not in (None, key) and not picked_by_button(tracker):
            out.update(slot_choice=None, offered_slots=None, confirmed=None)
        return out

    def validate_full_name(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                           domain: dict) -> dict[str, Any]:
        name = NAME_PREFIX.sub("", value).strip() if isinstance(value, str) else ""
        if (not name or len(name) > MAX_NAME or not any(c.isalpha() for c in name) or name.startswith("/")
                or name.endswith("?")):  # a question asked at the name prompt is not a name
            dispatcher.utter_message(response="utter_invalid_name")
            return {"full_name": None}
        return {"full_name": name}  # stored as typed: the data layer binds parameters, never splices

    def validate_phone(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                       domain: dict) -> dict[str, Any]:
        try:
            return {"phone": normalise_phone(str(value), get_gateway().settings.phone_region)}
        except InvalidPhone:
            dispatcher.utter_message(response="utter_invalid_phone")
            return {"phone": None}

    def validate_confirmed(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                           domain: dict) -> dict[str, Any]:
        if value is not True:
            dispatcher.utter_message(response="utter_booking_declined")
            return {"confirmed": False, "outcome": "declined"}
        gw = get_gateway()
        service = self.service_for(gw, tracker)
        choice = decode_choice(tracker.get_slot("slot_choice"))
        if service is None or choice is None:
            return {"confirmed": None, "slot_choice": None}
        starts_at, dentist_id = choice
        who = caller(tracker)
        patient_id = who.patient_id if who.authenticated else None
        out: dict[str, Any] = {}
        if patient_id is None:
            found = gw.find_or_create_patient(tracker.get_slot("full_name") or "",
                                              tracker.get_slot("phone") or "")
            if found.outcome is not Outcome.FOUND or found.patient_id is None:
                if found.field in ("phone", "full_name"):
                    which = "phone" if found.field == "phone" else "name"
                    dispatcher.utter_message(response=f"utter_invalid_{which}")
                    return {found.field: None, "confirmed": None}
                announce(dispatcher, gw, found)
                return {"confirmed": False, "outcome": "failed"}
            patient_id = found.patient_id
            out["patient_id"] = patient_id
        message_id = tracker.latest_message.get("message_id")
        key = f"chat:{tracker.sender_id}:{message_id}"[:200] if message_id else None
        result = gw.book(patient_id, dentist_id=dentist_id, service_id=service.id, starts_at=starts_at,
                         idempotency_key=key, holder=holder_of(tracker), origin=who.origin)
        announce(dispatcher, gw, result)
        if result.outcome is Outcome.BOOKED and result.appointment is not None:
            log.info("booked appointment %s in conversation %s", result.appointment.id, tracker.sender_id)
            return {**out, "confirmed": True, "outcome": "done", "booked_appointment_id": result.appointment.id}
        if result.outcome is Outcome.PATIENT_BUSY:  # their own visit is then: pick another offer
            return {**out, "confirmed": None, "slot_choice": None}
        if result.outcome in RETRY_OUTCOMES:
            if result.alternatives:
                return {**out, "confirmed": None, "slot_choice": None,
                        "offered_slots": store_offer(result.alternatives)}
            return {**out, "confirmed": None, "slot_choice": None, "offered_slots": None, "time": None,
                    "time_window": None}
        return {**out, "confirmed": False, "outcome": "failed"}


class AskSlotChoice(Action):
    """Offer free slots as buttons (or the alternatives already chosen for the patient)."""

    form = "booking_form"

    def name(self) -> str:
        return f"action_ask_{self.form}_slot_choice"

    def target(self, gw: Gateway, tracker: Tracker):
        catalogue = gw.catalogue()
        return (catalogue.service(tracker.get_slot("service")),
                dentist_of(catalogue, tracker.get_slot("dentist")))

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        gw = get_gateway()
        service, dentist = self.target(gw, tracker)
        offered = load_offer(tracker.get_slot("offered_slots"))
        if service is None:
            return []
        if offered:
            dispatcher.utter_message(response="utter_pick_alternative",
                                     buttons=buttons(gw, offered, dentist=dentist))
            return []
        window = tracker.get_slot("time_window")
        text = tracker.get_slot("time") or "asap"
        when = When.decode(window) if window else parse_when(text, gw.now(), gw.tz)
        if when is None:
            when = parse_when("asap", gw.now(), gw.tz)
        assert when is not None
        return offer_events(gw, dispatcher, service, dentist, when,
                            when_text=tracker.get_slot("time") or "then")


class AskBookingConfirmed(Action):
    def name(self) -> str:
        return "action_ask_booking_form_confirmed"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        gw = get_gateway()
        catalogue = gw.catalogue()
        service = catalogue.service(tracker.get_slot("service"))
        choice = decode_choice(tracker.get_slot("slot_choice"))
        if service is None or choice is None:
            dispatcher.utter_message(response="utter_sorry_error")
            return []
        starts_at, dentist_id = choice
        dentist = catalogue.dentists.get(dentist_id)
        dispatcher.utter_message(response="utter_confirm_booking", service=service.name,
                                 dentist=dentist.full_name if dentist else "a dentist",
                                 when=when_label(starts_at, gw.tz, now=gw.now()),
                                 price=price_label(service.price_cents))
        return []


class ActionFinishBooking(Action):
    """The booking form ended (booked, declined or refused): clear the request for the next one."""

    def name(self) -> str:
        return "action_finish_booking"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        if tracker.get_slot("outcome") is None:
            dispatcher.utter_message(response="utter_sorry_error")
        if tracker.get_slot("outcome") != "done":
            get_gateway().release(holder_of(tracker))
        return reset_request()
