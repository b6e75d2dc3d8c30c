"""The question asked is the question answered; a misunderstanding is said, never looped.

``AnswersTheQuestion`` (first in a form validation action's bases) reads the latest message as
the answer to ``requested_slot`` before the intent classifier is believed (actions/understanding.py
reads it). A message that clearly does something else (stop, an emergency, a person, a clinic
question) fills nothing, so the form steps aside and the rules answer it; anything else is handed
to the slot's validation, which keeps it or refuses it.

Refusals go through ``not_understood``: it counts how many times in a row the same question
failed (slot ``misunderstood``) and escalates, so the same prompt is never sent three times:
1. the slot's own complaint, then the question again;
2. what was understood so far and what the answer may look like, with examples from the current
   offers (the question is not repeated);
3. an offer to start over, or to call the front desk (phone number and hours).
Then it starts again at 1. What the patient gave is never dropped by a misunderstanding.

The ``action_ask_<slot>`` actions here ask each question, and stay quiet at levels 2 and 3
(the escalation already said what is needed).
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from .availability import ActionCheckAvailability
from .common import changed_this_turn, entity_values, external, guarded, holder_of, reset_request, unreadable
from .dates import PastTime, parse_when
from .formatting import decode_choice, short_dentist, when_label
from .gateway import Gateway, get_gateway
from .handoff import OPENING_HOURS
from .offers import load_offer
from .understanding import (NEGATED, asks_to_book, date_span, dentist_in, interruption, is_start_over, name_in,
                            names_a_task, phone_in, reads_as_name, service_in, strip_name, yes_no)
from .vocabulary import vocabulary

# Slots a "start over" clears in each form (the patient's name and phone stay).
START_OVER = {
    "booking_form": ("service", "dentist", "time", "time_window", "offered_slots", "slot_choice", "confirmed",
                     "verification_code"),
    "reschedule_form": ("time", "time_window", "offered_slots", "slot_choice", "confirmed", "verification_code"),
    "cancel_form": ("appointment_id", "confirmed", "verification_code"),
}
ENTITY_SLOTS = ("service", "dentist", "time", "phone")
# Requests that start another task when the model is sure (rules in data/rules/*.yml switch).
TASKS = {"reschedule_appointment": "reschedule_form", "cancel_appointment": "cancel_form",
         "list_appointments": "list"}
SURE = 0.8
# Words that make "actually Dr Patel" at the name question a change of dentist, not a name.
CORRECTION = re.compile(r"\b(actually|instead|rather|change|make it|switch|prefer|dr|doctor|no)\b|^\s*no\b",
                        re.IGNORECASE)


def latest_text(tracker: Tracker) -> str | None:
    """The text the patient typed this turn (None for a button payload, an external intent or nothing)."""
    text = tracker.latest_message.get("text")
    if not isinstance(text, str) or not text.strip() or text.startswith("/") or external(tracker):
        return None
    return text


def entity_names(tracker: Tracker) -> set[str]:
    """The names of the entities the model found in the latest message."""
    return {e.get("entity") for e in tracker.latest_message.get("entities", [])}


def summary(gw: Gateway, tracker: Tracker, without: str | None = None) -> str:
    """What the patient has given so far, as a phrase ("a cleaning with Dr. Chen, Fri Dec 4, 10:15 AM").
    ``without``: the slot being asked, whose tracker value is the answer just refused ("yes" typed
    at the name question is not the name)."""
    catalogue = gw.catalogue()
    parts = []
    service = catalogue.service(tracker.get_slot("service"))
    if service is not None:
        parts.append(f"a {service.name.lower()}")
    dentist = catalogue.dentist(tracker.get_slot("dentist") or "") if tracker.get_slot("dentist") != "any" else None
    if dentist is not None:
        parts.append(f"with {short_dentist(dentist.full_name)}")
    elif tracker.get_slot("dentist") == "any":
        parts.append("with any dentist")
    choice = decode_choice(tracker.get_slot("slot_choice"))
    if choice is not None:
        parts.append(when_label(choice[0], gw.tz, now=gw.now()))
    elif tracker.get_slot("time"):
        parts.append(f"for {tracker.get_slot('time')}")
    if tracker.get_slot("full_name") and without != "full_name":
        parts.append(f"under the name {tracker.get_slot('full_name')}")
    return " ".join(parts)


def _offer_examples(gw: Gateway, tracker: Tracker) -> str:
    offered = load_offer(tracker.get_slot("offered_slots"))
    if not offered:
        return "“10:15”, “Friday at 10” or “the first one”"
    first, last = offered[0].starts_at.astimezone(gw.tz), offered[-1].starts_at.astimezone(gw.tz)
    clock = first.strftime("%I:%M").lstrip("0")
    day_clock = f"{last.strftime('%A')} {last.strftime('%I:%M %p').lstrip('0')}"
    return f"“{clock}”, “{day_clock}” or “the first one”"


def examples(gw: Gateway, tracker: Tracker, slot: str) -> tuple[str, str]:
    """What ``slot`` needs, and examples of an answer, for the second try."""
    if slot == "slot_choice":
        return "one of the times above", _offer_examples(gw, tracker)
    dentists = [short_dentist(d.full_name) for d in gw.catalogue().dentists.values()]
    table = {
        "service": ("what the visit is for", "“cleaning”, “filling”, “consultation” or “root canal”"),
        "dentist": ("which dentist", " ".join(f"“{d}”," for d in dentists[:3]) + " or “any”"),
        "time": ("when you'd like to come", "“tomorrow afternoon”, “Friday at 10”, “next week” or “asap”"),
        "full_name": ("your name", "“Maria Lopez”"),
        "phone": ("a phone number", "“212 555 0101”"),
        "confirmed": ("a yes or a no", "“yes” or “no”"),
        "appointment_id": ("which visit", "the visit's number, like “#12”, or tap one above"),
        "verification_code": ("the 6-digit code we texted you", "“123456”, “resend” for a new code, or “wrong number”"),
    }
    return table.get(slot, ("an answer", "a short answer"))


def misunderstood_level(tracker: Tracker, slot: str) -> int:
    """How many times in a row ``slot``'s question failed so far (before this turn's answer)."""
    value = tracker.get_slot("misunderstood")
    if isinstance(value, dict) and value.get("slot") == slot:
        try:
            return int(value.get("count", 0))
        except (TypeError, ValueError):
            return 0
    return 0


def not_understood(dispatcher: CollectingDispatcher, tracker: Tracker, slot: str, response: str,
                   **kwargs: Any) -> dict[str, Any]:
    """Say the answer to ``slot`` was not understood, escalating each time in a row (see the module
    docstring); the slot values to merge into a validation's output."""
    count = misunderstood_level(tracker, slot) + 1
    level = (count - 1) % 3 + 1
    gw = get_gateway()
    buttons = kwargs.pop("buttons", None)
    if level == 1:  # the question (with its buttons) follows
        dispatcher.utter_message(response=response, **kwargs)
    elif level == 2:
        what, shown = examples(gw, tracker, slot)
        so_far = summary(gw, tracker, without=slot)
        dispatcher.utter_message(response="utter_still_need", so_far=f"So far I have {so_far}. " if so_far else "",
                                 what=what, examples=shown, **({"buttons": buttons} if buttons else {}))
    else:
        dispatcher.utter_message(response="utter_stuck", phone=gw.settings.clinic_phone, hours=OPENING_HOURS,
                                 **({"buttons": buttons} if buttons else {}))
    return {"misunderstood": {"slot": slot, "count": count}}


def escalated_this_turn(tracker: Tracker) -> bool:
    """Whether this turn's validation already said, at level 2 or 3, what the question needs."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return False
        if event.get("event") == "slot" and event.get("name") == "misunderstood":
            value = event.get("value")
            return isinstance(value, dict) and (int(value.get("count", 0)) - 1) % 3 + 1 >= 2
    return False


class AnswersTheQuestion:
    """For a form's validation action, first in its bases (before ``FormValidationAction``)."""

    async def get_extraction_events(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: dict) -> list[EventType]:
        events = await super().get_extraction_events(dispatcher, tracker, domain)  # type: ignore[misc]
        read = self.read_answer(tracker)
        return events + [SlotSet(name, value) for name, value in read.items()]

    def read_answer(self, tracker: Tracker) -> dict[str, Any]:
        """Slot values the latest message gives, read without the intent classifier."""
        requested = tracker.get_slot("requested_slot")
        raw = tracker.latest_message.get("text")
        if isinstance(raw, str) and unreadable(raw):
            # the model cannot have read it: it answers the question asked, whatever it guessed
            if requested not in (None, "confirmed") and not changed_this_turn(tracker, requested):
                return {requested: raw}
            return {}
        text = latest_text(tracker)
        if text is None:
            return {}
        form = tracker.active_loop_name or ""
        if is_start_over(text):
            get_gateway().release(holder_of(tracker))
            return {name: None for name in START_OVER.get(form, ())} | {"misunderstood": None}
        kind = interruption(text)
        if kind in ("stop", "emergency", "handoff"):
            return {}
        if requested == "verification_code":
            return {"verification_code": text}  # a code, "resend" or "wrong number": actions/verify.py reads it
        if self.switches_task(tracker, form):
            return {}  # "I need to move my appointment" in the middle of a booking: its rule runs
        out: dict[str, Any] = {}
        gw = get_gateway()
        region = gw.settings.phone_region
        needs_details = form == "booking_form" and not self.signed_in(tracker)
        if needs_details:
            out.update(self.details_in(tracker, text, requested, region))
        if needs_details and requested not in (None, "full_name") and "full_name" in out:
            # "no, it's just Sean Haddad", "the name should be Fatima Chen": the name, nothing else
            return out | ({"confirmed": None} if requested == "confirmed" else {})
        if requested in (None, "confirmed", "slot_choice") and form != "cancel_form":
            names_a_time = getattr(self, "names_a_time", None)
            if names_a_time is not None and names_a_time(gw, tracker):  # "make it 4 instead", "the 2nd"
                return out | {"slot_choice": text, "confirmed": None}
        if kind == "question" and not self.reads_as_time(gw, text):
            return out  # a clinic question: the FAQ rule answers it, then the form asks again
        if requested in ("slot_choice", "confirmed") and form == "booking_form" and "dentist" not in out \
                and not changed_this_turn(tracker, "dentist") and CORRECTION.search(text):
            named = dentist_in(NEGATED.sub(" ", text), vocabulary(gw.catalogue()))
            if named and named != tracker.get_slot("dentist"):  # "no sorry Dr Patel not Dr Chen"
                out["dentist"] = named
                return out | ({"confirmed": None} if requested == "confirmed" else {})
        if out and requested in ("slot_choice", "time"):
            return out  # a name or a number given early: taken, and the question is asked again
        if requested == "confirmed":
            if form != "cancel_form" and (entity_names(tracker) & set(ENTITY_SLOTS) or out):
                return out | {"confirmed": None}  # "no, Thursday": a correction, not a no
            if changed_this_turn(tracker, "confirmed"):
                return out
            answer = yes_no(text)
            if answer is not None:
                out["confirmed"] = answer
            elif kind is None:
                out["confirmed"] = text  # refused by validate_confirmed: "yes or no?"
            return out
        if requested is None or changed_this_turn(tracker, requested) or requested in out:
            return out | self.first_turn(tracker, text, requested)
        something_else = bool(entity_names(tracker) & {"time", "phone", "service", "dentist"}) or bool(out) or \
            changed_this_turn(tracker, "time", "phone")
        if requested == "service":
            found = service_in(text, vocabulary(gw.catalogue()))
            dentist = None if found else dentist_in(text, vocabulary(gw.catalogue()))
            if dentist is not None and not changed_this_turn(tracker, "dentist"):
                out["dentist"] = dentist  # "I don't mind" answers the next question: kept, this one asked again
            elif found or not something_else:  # "make that Thursday" at "what for?" changes the time
                out["service"] = found or text
        elif requested == "dentist":
            found = dentist_in(text, vocabulary(gw.catalogue()))
            service = None if found else service_in(NEGATED.sub(" ", text), vocabulary(gw.catalogue()))
            if service is not None and service != tracker.get_slot("service"):
                out["service"] = service  # "I meant a cleaning, not extraction": that changes, this is asked again
            elif found or not something_else:
                out["dentist"] = found or text
        elif requested == "phone":
            out["phone"] = phone_in(text, region) or text
        elif requested == "full_name" and "phone" in out:
            pass  # only a number: the name question comes again
        elif requested == "full_name":
            corrects = bool(entity_names(tracker) & {"service", "dentist", "time"}) and (
                CORRECTION.search(text) or not reads_as_name(strip_name(text)))
            if not corrects:
                out["full_name"] = text
        elif kind is None or requested in ("time", "slot_choice"):
            out[requested] = text
        return out

    async def get_validation_events(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: dict) -> list[EventType]:
        events = await super().get_validation_events(dispatcher, tracker, domain)  # type: ignore[misc]
        requested = tracker.get_slot("requested_slot")
        if (requested and tracker.get_slot(requested) is not None and tracker.get_slot("misunderstood")
                and not any(e.get("name") == "misunderstood" for e in events)):
            events.append(SlotSet("misunderstood", None))  # answered: the count starts again
        return events

    @staticmethod
    def switches_task(tracker: Tracker, form: str) -> bool:
        """Whether the model is sure the message asks for another task than the form's (moving or
        cancelling a visit, listing them) and the words name no answer (no time, no offer)."""
        intent = tracker.latest_message.get("intent") or {}
        other = TASKS.get(intent.get("name"))
        if other is None or other == form or float(intent.get("confidence") or 0) < SURE:
            return False
        text = tracker.latest_message.get("text") or ""
        return names_a_task(text) and not (entity_names(tracker) & {"time", "slot_choice", "phone"})

    @staticmethod
    def reads_as_time(gw: Gateway, text: str) -> bool:
        """ "What about Friday?" answers "when?"; "what time do you open?" does not."""
        try:
            return parse_when(text, gw.now(), gw.tz) is not None
        except PastTime:
            return True

    def signed_in(self, tracker: Tracker) -> bool:
        from .session import caller
        return caller(tracker).authenticated

    def details_in(self, tracker: Tracker, text: str, requested: str | None, region: str) -> dict[str, Any]:
        """A name and a phone number given in passing ("... I'm Ana Lima, 212 555 0101")."""
        out: dict[str, Any] = {}
        if requested != "phone":
            phone = phone_in(text, region)
            if phone and sum(c.isdigit() for c in phone) >= 10 and not changed_this_turn(tracker, "phone"):
                out["phone"] = phone
            elif phone and changed_this_turn(tracker, "phone"):
                out["phone"] = tracker.get_slot("phone")  # Rasa's mapping took it: the same number
        if requested in ("slot_choice", "time", "phone", "confirmed") and not tracker.get_slot("full_name"):
            alone = strip_name(text)
            if 2 <= len(alone.split()) <= 4 and reads_as_name(alone) and not entity_names(tracker):
                return out | {"full_name": alone}  # the name, given before it was asked for
        if requested == "full_name" and "phone" in out:
            rest = strip_name(text.replace(out["phone"], " ").strip(" ,.;"))
            rest = re.sub(r"[\s,;]+(?:and|my|phone|number|is|\W)*$", "", rest, flags=re.IGNORECASE).strip()
            rest = re.sub(r"^(?:(?:my|phone|number|is|it'?s|call|me|at|on)\b[\s:,]*)+$", "", rest,
                          flags=re.IGNORECASE)
            # the number given first: kept, and the name asked for again (no complaint)
            # (None replaces the number Rasa's mapping took as the name)
            out["full_name"] = rest if rest and reads_as_name(rest) else None
        elif requested != "full_name":
            name = name_in(text)
            if name:
                out["full_name"] = name
        return out

    def first_turn(self, tracker: Tracker, text: str, requested: str | None) -> dict[str, Any]:
        """When the form starts: a service or dentist typed with typos the model did not tag."""
        if requested is not None:
            return {}
        out: dict[str, Any] = {}
        form = tracker.active_loop_name or ""
        if form != "booking_form":
            return out
        vocab = vocabulary(get_gateway().catalogue())
        if tracker.get_slot("time") is None and not changed_this_turn(tracker, "time"):
            span = date_span(text)  # "on March 3, 2099", which the model may leave untagged
            if span:
                out["time"] = span
        name = name_in(text) or ""
        rest = text.replace(name, " ") if name else text
        if tracker.get_slot("service") is None and not changed_this_turn(tracker, "service"):
            found = service_in(rest, vocab)
            if found:
                out["service"] = found
        if tracker.get_slot("dentist") is None and not changed_this_turn(tracker, "dentist"):
            found = dentist_in(rest, vocab)
            if found and found != "any":
                out["dentist"] = found
        return out


class AskQuestion(Action):
    """``action_ask_<slot>``: the slot's ``utter_ask_<slot>``, unless this turn's escalation
    already said what is needed."""

    slot = ""

    def name(self) -> str:
        return f"action_ask_{self.slot}"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        if not escalated_this_turn(tracker) and not self.asked_this_turn(tracker):
            dispatcher.utter_message(response=f"utter_ask_{self.slot}")
        return []

    def asked_this_turn(self, tracker: Tracker) -> bool:
        return False


class AskService(AskQuestion):
    slot = "service"


class AskDentist(AskQuestion):
    slot = "dentist"


class AskTime(AskQuestion):
    slot = "time"


class AskFullName(AskQuestion):
    slot = "full_name"


class AskPhone(AskQuestion):
    slot = "phone"

    def asked_this_turn(self, tracker: Tracker) -> bool:
        """After "wrong number" the code step already asked for the right one (actions/verify.py)."""
        for event in reversed(tracker.events):
            if event.get("event") == "user":
                return False
            if event.get("event") == "slot" and event.get("name") == "code_status":
                return event.get("value") == "new_number"
        return False


class ActionDropRequest(Action):
    """Another task asked for in the middle of one: forget the request (and its held slot) quietly."""

    def name(self) -> str:
        return "action_drop_request"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        get_gateway().release(holder_of(tracker))
        return reset_request()


class ActionAnswerWithoutQuestion(Action):
    """An answer, or a message the model did not understand, when no question is open ("the 10:15
    one" after "what's free?", "a cleaning tomorrow", "Hi there! Could I get a tooth extraction
    tomorrow morning? Thanks!"): when it names one of the times just offered or something to book,
    the booking starts with it; anything else is asked again."""

    def name(self) -> str:
        return "action_answer_without_question"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        text = latest_text(tracker) or ""
        if tracker.active_loop_name is None and (tracker.get_slot("offered_slots") or entity_names(tracker) & {"service", "dentist", "time", "slot_choice"}
                or service_in(text, vocabulary(get_gateway().catalogue())) or asks_to_book(text)):
            return [FollowupAction("booking_form")]
        dispatcher.utter_message(response="utter_please_rephrase")
        return []


# "hmm make that next week": words that say a message changes what was asked for
_CHANGE_WORDS = re.compile(r"\b(?:make|instead|actually|rather|change|move|switch|how about|what about)\b",
                           re.IGNORECASE)


class ActionOutOfScope(Action):
    """What the model calls out of scope may still be an answer ("hmm make that next week" at the
    offers): a short message, or one that changes the request, that reads as a time is a new time
    (the form reads it, or what is free is looked up again while offers are open); anything else
    gets the polite redirect."""

    def name(self) -> str:
        return "action_out_of_scope"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        gw = get_gateway()
        text = latest_text(tracker) or ""
        timely = (len(text.split()) <= 6 or _CHANGE_WORDS.search(text)) and any(
            AnswersTheQuestion.reads_as_time(gw, t) for t in [text, *entity_values(tracker, "time")])
        if timely and tracker.active_loop_name:
            return []  # the form, which runs next (data/rules), reads it as the new time
        if timely and tracker.get_slot("offered_slots"):
            # looked up here, not as a follow-up action: the rule that ran this one then listens
            return await ActionCheckAvailability().run(dispatcher, tracker, domain)
        dispatcher.utter_message(response="utter_out_of_scope")
        return []
