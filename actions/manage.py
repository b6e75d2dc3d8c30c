"""Listing, moving and cancelling the caller's own visits.

"Own" means: every upcoming visit of the patient the current message's verified token names,
or, in an anonymous chat, only the visits the database records as booked in this conversation
(``chat_bookings``).
An id typed or sent by the user is accepted only if it is among those; anything else
gets the same polite "can't find that among yours" (no probing of other people's ids),
and the booking service refuses it again anyway (a patient actor sees only their own).
"""

from __future__ import annotations

import re
from abc import abstractmethod
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.availability import Slot
from bot.booking import AppointmentView, Outcome, Result

from .asking import AnswersTheQuestion, entity_names, escalated_this_turn, not_understood
from .booking import AskSlotChoice, SlotChoiceMixin, announce, previous_value
from .caller import Caller
from .common import RETRY_OUTCOMES, ReadsUnreadableAnswers, changed_this_turn, guarded, reset_request
from .formatting import decode_choice, performer, when_label
from .gateway import Gateway, get_gateway
from .offers import store_offer
from .resolver import resolve_pick
from .session import caller
from .verify import CodeStep, needs_code_step
from .understanding import asks_to_book, cancels_not_moves, names_a_task


def own_appointments(gw: Gateway, who: Caller) -> list[AppointmentView] | None:
    """The caller's upcoming visits; None when the booking system could not answer."""
    result = gw.own_appointments(who)
    if result.outcome is not Outcome.LISTED:
        return None
    return result.appointments


def describe(gw: Gateway, a: AppointmentView) -> str:
    when = when_label(a.starts_at, gw.tz, now=gw.now())
    return f"{a.service_name} with {performer(a, short=True)}, {when}"


def no_visits(dispatcher: CollectingDispatcher, gw: Gateway, who: Caller) -> None:
    if who.authenticated:
        dispatcher.utter_message(response="utter_no_appointments")
    else:
        dispatcher.utter_message(response="utter_no_appointments_anonymous", phone=gw.settings.clinic_phone)


class ActionListAppointments(Action):
    def name(self) -> str:
        return "action_list_appointments"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        text = tracker.latest_message.get("text") or ""
        if (tracker.active_loop_name is None and not names_a_task(text) and asks_to_book(text)
                and "service" in entity_names(tracker)):
            return [FollowupAction("booking_form")]  # "could I get a filling with whoever is free?"
        gw = get_gateway()
        who = caller(tracker)
        visits = own_appointments(gw, who)
        if visits is None:
            dispatcher.utter_message(response="utter_unavailable")
        elif not visits:
            no_visits(dispatcher, gw, who)
        else:
            lines = "\n".join(f"• #{a.id} {describe(gw, a)}" for a in visits)
            dispatcher.utter_message(response="utter_your_appointments", appointments=lines)
        return []


class AppointmentMixin:
    """``appointment_id``: one of the caller's own visits, filled in when there is only one."""

    async def extract_appointment_id(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                     domain: dict) -> dict[str, Any]:
        if tracker.get_slot("requested_slot") is not None:
            return {}  # only when the form starts
        text = tracker.latest_message.get("text") or ""
        if not text.startswith("/") and not names_a_task(text) and (
                asks_to_book(text) or "service" in entity_names(tracker)):
            return {"outcome": "book"}  # "I just moved to the area. Could I get a cleaning?": a booking
        if self.name() == "validate_reschedule_form" and cancels_not_moves(text):
            return {"outcome": "cancel"}  # the model heard a move in "I just moved here. cancel my ...": cancel
        visits = own_appointments(get_gateway(), caller(tracker))
        if tracker.get_slot("appointment_id") is not None and visits:
            return {}  # the id named is checked by validate_appointment_id
        if visits is not None and len(visits) == 1:
            return {"appointment_id": str(visits[0].id)}
        named = [] if text.startswith("/") else of_service_named(text, visits or [])
        if len(named) == 1:  # "could we move my extraction": of two visits, the one that is an extraction
            return {"appointment_id": str(named[0].id)}
        if not visits:  # nothing to act on (or no answer): end the form at once
            gw = get_gateway()
            if visits is None:
                dispatcher.utter_message(response="utter_unavailable")
            else:
                no_visits(dispatcher, gw, caller(tracker))
            return {"outcome": "none"}
        return {}

    def validate_appointment_id(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                domain: dict) -> dict[str, Any]:
        if tracker.get_slot("outcome") == "none":
            return {"appointment_id": None}  # already told: nothing of yours to act on
        gw = get_gateway()
        visits = own_appointments(gw, caller(tracker)) or []
        wanted = visit_named(gw, str(value), visits)
        if wanted is None and changed_this_turn(tracker, "time") and not POINTS_AT_A_VISIT.search(str(value)):
            # "make that Wednesday morning", "make that December 10": the new time, kept; which visit?
            return {"appointment_id": None}
        several = visits_named(gw, str(value), visits) if wanted is None else []
        if len(several) > 1 and tracker.get_slot("requested_slot") == "appointment_id":
            # "friday's" when two visits are on a Friday: which of just those (the question follows)
            return {"appointment_id": None, **not_understood(
                dispatcher, tracker, "appointment_id", "utter_several_visits_match",
                visits=" or ".join(describe(gw, a) for a in several))}
        if wanted is None or wanted not in {a.id for a in visits}:
            if tracker.get_slot("requested_slot") != "appointment_id":
                dispatcher.utter_message(response="utter_appointment_not_found")
                return {"appointment_id": None}
            return {"appointment_id": None, **not_understood(dispatcher, tracker, "appointment_id",
                                                                "utter_appointment_not_found")}
        visit = next(a for a in visits if a.id == wanted)
        if gw.too_late_to_change(visit):  # the cancellation policy, said before any other question
            announce(dispatcher, gw, Result(Outcome.TOO_LATE, appointment=visit))
            return {"appointment_id": None, "outcome": "none"}
        return {"appointment_id": str(wanted)}


# how an answer to "which visit?" points at one: its number ("#12", "12"), "the 10:15 one",
# "the visit on ...", "friday's". A time without these ("make that December 10") is a new time.
POINTS_AT_A_VISIT = re.compile(r"^\s*(?:number\s+|no\.?\s*|#)?\d{1,12}\s*$|\b(?:one|visit|appointment)\b|'s\b",
                              re.IGNORECASE)


def visit_named(gw: Gateway, text: str, visits: list[AppointmentView]) -> int | None:
    """The id of the visit ``text`` names: its number ("#12", "12"), or in words ("the cleaning",
    "the one on Friday", "the 10:15 one") when exactly one of the caller's visits fits."""
    number = re.fullmatch(r"\s*(?:number\s+|no\.?\s*|#)?(\d{1,12})\s*", text, re.IGNORECASE)
    if number:
        return int(number.group(1))
    fits = visits_named(gw, text, visits)
    return fits[0].id if len(fits) == 1 else None


def of_service_named(text: str, visits: list[AppointmentView]) -> list[AppointmentView]:
    """The visits whose service ``text`` names ("my extraction")."""
    lowered = text.lower()
    return [a for a in visits if a.service_name.lower() in lowered]


def visits_named(gw: Gateway, text: str, visits: list[AppointmentView]) -> list[AppointmentView]:
    """The caller's visits that ``text`` describes in words: by service, then by day, time and dentist."""
    by_service = of_service_named(text, visits)
    if len(by_service) == 1:
        return by_service
    pool = by_service or visits
    slots = [Slot(a.starts_at, a.dentist_id, a.starts_at) for a in pool]
    names = {d.id: d.full_name for d in gw.catalogue().dentists.values()}
    pick = resolve_pick(text, slots, tz=gw.tz, now=gw.now(), dentists=names)
    return [a for a in pool if any(a.starts_at == s.starts_at and a.dentist_id == s.dentist_id
                                   for s in pick.matches)] or (by_service if len(by_service) > 1 else [])


def _visit(gw: Gateway, tracker: Tracker) -> AppointmentView | None:
    wanted = tracker.get_slot("appointment_id")
    for a in own_appointments(gw, caller(tracker)) or []:
        if str(a.id) == str(wanted):
            return a
    return None


class ManageFormValidation(AnswersTheQuestion, ReadsUnreadableAnswers, AppointmentMixin, CodeStep,
                           FormValidationAction):
    """End the form at once when there is nothing of the caller's to act on; before the change,
    an anonymous chat types back the code texted to the visit's phone on file (actions/verify.py)."""

    @abstractmethod
    def name(self) -> str: ...

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: dict) -> list[str]:
        if tracker.get_slot("outcome") in ("none", "book", "cancel"):
            return []
        gw = get_gateway()
        if tracker.get_slot("appointment_id") is None or not needs_code_step(gw, tracker,
                                                                             self.code_recipient(gw, tracker)):
            return [s for s in domain_slots if s != "verification_code"]
        return domain_slots

    def code_recipient(self, gw: Gateway, tracker: Tracker) -> str | None:
        visit = _visit(gw, tracker)
        return gw.patient_phone(visit.patient_id) if visit is not None else None

    async def get_validation_events(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: dict) -> list[dict]:
        events = await super().get_validation_events(dispatcher, tracker, domain)
        if tracker.get_slot("outcome") in ("book", "cancel"):  # kept for action_finish_*: that form follows
            events.append(SlotSet("outcome", tracker.get_slot("outcome")))
        return events


class ValidateCancelForm(ManageFormValidation):
    def name(self) -> str:
        return "validate_cancel_form"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        return await super().run(dispatcher, tracker, domain)

    def validate_confirmed(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                           domain: dict) -> dict[str, Any]:
        if value is None:
            return {"confirmed": None}
        if not isinstance(value, bool):  # neither yes nor no: nothing is cancelled on a guess
            return {"confirmed": None, **not_understood(dispatcher, tracker, "confirmed", "utter_yes_or_no")}
        if value is not True:
            dispatcher.utter_message(response="utter_cancel_kept")
            return {"confirmed": False, "outcome": "declined"}
        return self.confirmed_yes(dispatcher, tracker)

    def write(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        gw = get_gateway()
        visit = _visit(gw, tracker)
        if visit is None:
            dispatcher.utter_message(response="utter_appointment_not_found")
            return {"confirmed": False, "outcome": "failed"}
        result = gw.cancel(visit.patient_id, visit.id)  # one of the caller's own (see _visit)
        announce(dispatcher, gw, result)
        return {"confirmed": True, "outcome": "done" if result.outcome is Outcome.CANCELLED else "failed"}


class ValidateRescheduleForm(SlotChoiceMixin, ManageFormValidation):
    def name(self) -> str:
        return "validate_reschedule_form"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        return await super().run(dispatcher, tracker, domain)

    def validate_time(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: dict) -> dict[str, Any]:
        text = tracker.latest_message.get("text") or ""
        if (tracker.get_slot("requested_slot") in (None, "appointment_id") and not text.startswith("/")
                and isinstance(value, str) and not re.search(
                    rf"\b(?:to|for|into|till|until)\s+(?:\w+\s+)?{re.escape(value.strip())}", text, re.IGNORECASE)):
            visits = own_appointments(get_gateway(), caller(tracker)) or []
            if visit_named(get_gateway(), text, visits) is not None:
                # "my crown on Tuesday", "move my appointment on Tuesday": the day names the visit,
                # it is no new time for it ("move it to Friday" is)
                return {"time": previous_value(tracker, "time")}
        return super().validate_time(value, dispatcher, tracker, domain)

    def hold(self, gw, tracker, dentist_id, service_id, starts_at) -> Result:
        # BookingService.reschedule takes no holder yet, so a hold would block our own move.
        return Result(Outcome.HELD)

    def service_for(self, gw, tracker):
        visit = _visit(gw, tracker)
        return gw.catalogue().services.get(visit.service_id) if visit else None

    def dentist_id_for(self, gw, tracker):
        visit = _visit(gw, tracker)
        return visit.dentist_id if visit else None

    def validate_confirmed(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                           domain: dict) -> dict[str, Any]:
        if value is None:
            return {"confirmed": None}
        if not isinstance(value, bool):  # neither yes nor no: nothing is moved on a guess
            return {"confirmed": None, **not_understood(dispatcher, tracker, "confirmed", "utter_yes_or_no")}
        if value is not True:
            dispatcher.utter_message(response="utter_reschedule_kept")
            return {"confirmed": False, "outcome": "declined"}
        return self.confirmed_yes(dispatcher, tracker)

    def write(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        gw = get_gateway()
        visit = _visit(gw, tracker)
        choice = decode_choice(tracker.get_slot("slot_choice"))
        if visit is None or choice is None:
            dispatcher.utter_message(response="utter_appointment_not_found")
            return {"confirmed": False, "outcome": "failed"}
        result = gw.reschedule(visit.patient_id, visit.id, choice[0])  # one of the caller's own
        announce(dispatcher, gw, result)
        if result.outcome is Outcome.RESCHEDULED:
            return {"confirmed": True, "outcome": "done"}
        if result.outcome in RETRY_OUTCOMES and result.alternatives:
            same = [s for s in result.alternatives if s.dentist_id == visit.dentist_id]
            if same:
                return {"confirmed": None, "slot_choice": None, "offered_slots": store_offer(same)}
        return {"confirmed": False, "outcome": "failed"}


class AskAppointmentId(Action):
    """Which visit? The caller's own, as buttons."""

    def name(self) -> str:
        return "action_ask_appointment_id"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        gw = get_gateway()
        moving = tracker.active_loop_name == "reschedule_form"
        intent = "reschedule_appointment" if moving else "cancel_appointment"
        visits = own_appointments(gw, caller(tracker)) or []
        if escalated_this_turn(tracker):
            return []
        dispatcher.utter_message(response="utter_ask_appointment_id", buttons=[
            {"title": describe(gw, a), "payload": f'/{intent}{{"appointment_id": "{a.id}"}}'}
            for a in visits])
        return []


class AskRescheduleSlotChoice(AskSlotChoice):
    form = "reschedule_form"

    def target(self, gw, tracker):
        visit = _visit(gw, tracker)
        if visit is None:
            return None, None
        catalogue = gw.catalogue()
        return catalogue.services.get(visit.service_id), catalogue.dentists.get(visit.dentist_id)


class AskConfirmCancel(Action):
    def name(self) -> str:
        return "action_ask_cancel_form_confirmed"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        gw = get_gateway()
        visit = _visit(gw, tracker)
        if visit is None:
            dispatcher.utter_message(response="utter_appointment_not_found")
            return [SlotSet("appointment_id", None)]
        dispatcher.utter_message(response="utter_confirm_cancel", service=visit.service_name,
                                 dentist=performer(visit),
                                 when=when_label(visit.starts_at, gw.tz, now=gw.now()))
        return []


class AskConfirmReschedule(Action):
    def name(self) -> str:
        return "action_ask_reschedule_form_confirmed"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        gw = get_gateway()
        visit = _visit(gw, tracker)
        choice = decode_choice(tracker.get_slot("slot_choice"))
        if visit is None or choice is None:
            dispatcher.utter_message(response="utter_sorry_error")
            return []
        dentist = gw.catalogue().dentists.get(choice[1])
        dispatcher.utter_message(response="utter_confirm_reschedule", service=visit.service_name,
                                 dentist=dentist.full_name if dentist else visit.dentist_name,
                                 when=when_label(choice[0], gw.tz, now=gw.now()))
        return []


class ActionFinishCancel(Action):
    """The cancel form ended (done, kept, refused or nothing to cancel): clear the request."""

    def name(self) -> str:
        return "action_finish_cancel"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        if tracker.get_slot("outcome") == "book":  # it asked for a visit: the booking, with what it said
            return [SlotSet("outcome", None), SlotSet("appointment_id", None), FollowupAction("booking_form")]
        if tracker.get_slot("outcome") == "cancel":  # a cancellation the model took for a move
            return [*reset_request(), FollowupAction("cancel_form")]
        return reset_request()


class ActionFinishReschedule(ActionFinishCancel):
    def name(self) -> str:
        return "action_finish_reschedule"
