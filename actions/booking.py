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
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.availability import Slot
from bot.booking import Outcome, Result
from bot.phone import InvalidPhone, normalise_phone

from .asking import AnswersTheQuestion, escalated_this_turn, latest_text, not_understood
from .availability import buttons, dentist_of, offer_events, requested_time
from .catalogue import ServiceInfo
from .common import (OUTCOME_RESPONSES, RETRY_OUTCOMES, ReadsUnreadableAnswers, changed_this_turn, external,
                     guarded, holder_of, log, reset_request, unreadable)
from .dates import PastTime, When, parse_clock, parse_when
from .formatting import decode_choice, performer, price_label, spread, when_label
from .offers import load_offer, store_offer
from .resolver import Pick, resolve_pick
from .understanding import NEGATED, changes_a_visit, dentist_in, phone_in, reads_as_name, service_in, strip_name
from .vocabulary import vocabulary
from .gateway import Gateway, get_gateway
from .session import caller
from .verify import CodeStep, needs_code_step, send_code, typed_phone

MAX_NAME = 200
RANGE_WORDS = re.compile(r"\b(between|after|before|from|until|till|or|earliest|latest|around|about|ish)\b",
                         re.IGNORECASE)
NEW_RANGE = re.compile(r"\b(between|after|before|until|till)\b", re.IGNORECASE)
# A first message that changes a visit already booked, whatever the model said: the form it goes to.
SWITCHES = {"switch:cancel": "cancel_form", "switch:reschedule": "reschedule_form"}
# What a first message calls the visit without naming a service ("book a visit"): asked for next.
GENERIC_VISIT = frozenset({"visit", "appointment", "appt", "booking", "something", "dental", "dentist",
                           "a visit", "an appointment", "dental visit", "dentist appointment"})
BARE_HOUR = re.compile(r"\s*(?:(?:no|ok|oh|sorry|actually|hmm)[\s,]+)*(?:(?:make|change|move) it(?: to)?|how about|what about|"
                       r"rather|can we do|can you do|let'?s do|do)?\s*(?:at\s+)?(\d{1,2})(?:[:.](\d{2}))?\s*"
                       r"(?:instead|please|then|rather)?[\s.!]*", re.IGNORECASE)
ANY_DENTIST = ("any", "anyone", "any dentist", "no preference")
GREETING_TIME = re.compile(r"\bgood\s*(?:morning|afternoon|evening|night)\b", re.IGNORECASE)


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
        details = {"service": appt.service_name, "dentist": performer(appt), "id": appt.id,
                   "when": when_label(appt.starts_at, gw.tz, now=gw.now())}
    if result.outcome in (Outcome.LIMIT_REACHED, Outcome.TOO_LATE):
        details["phone"] = gw.settings.clinic_phone
    if result.outcome is Outcome.TOO_LATE:
        details["hours"] = gw.settings.cancel_notice_hours
    dispatcher.utter_message(response=response, **details)


def window_events(gw: Gateway, dispatcher: CollectingDispatcher, text: str, *, quiet: bool) -> dict[str, Any]:
    """Validate a time phrase into ``time`` + ``time_window``; a complaint unless ``quiet``."""
    try:
        when = parse_when(text, gw.now(), gw.tz)
    except PastTime:
        dispatcher.utter_message(response="utter_time_in_past")
        return {"time": None, "past": True}
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
    """Validation of ``time`` and ``slot_choice``, shared by the booking and reschedule forms.

    A typed answer to the offers goes to ``actions.resolver`` before any date parsing: naming
    one offer picks it, naming several asks among just those, naming a free time that was not
    offered takes it, a taken one brings the nearest times around it."""

    def service_for(self, gw: Gateway, tracker: Tracker) -> ServiceInfo | None:
        return gw.catalogue().service(tracker.get_slot("service"))

    def dentist_id_for(self, gw: Gateway, tracker: Tracker) -> int | None:
        d = dentist_of(gw.catalogue(), tracker.get_slot("dentist"))
        return d.id if d else None

    def hold(self, gw: Gateway, tracker: Tracker, dentist_id: int, service_id: int, starts_at) -> Result:
        """Keep the picked slot for this conversation until the yes (others don't get it meanwhile)."""
        return gw.hold(holder_of(tracker), dentist_id=dentist_id, service_id=service_id, starts_at=starts_at,
                       client=caller(tracker).client)

    def pick_from(self, gw: Gateway, tracker: Tracker, text: str) -> Pick:
        """What ``text`` names among the offers; at the confirmation, a time alone ("make it 4")
        means that time on the day already chosen."""
        offered = load_offer(tracker.get_slot("offered_slots"))
        choice = decode_choice(previous_value(tracker, "slot_choice") or tracker.get_slot("slot_choice"))
        names = {d.id: d.full_name for d in gw.catalogue().dentists.values()}
        text = NEGATED.sub(" ", text)  # "Dr Patel not Dr Chen", "4 not 3": what is not meant names nothing
        if tracker.get_slot("requested_slot") == "confirmed" and choice is not None:
            # at the summary a number is an hour ("make it 4 instead"), not the 4th offer
            bare = BARE_HOUR.fullmatch(text)
            if bare:
                text = f"{bare.group(1)}:{bare.group(2) or '00'}"
            day = choice[0].astimezone(gw.tz).date()
            same_day = [s for s in offered if s.starts_at.astimezone(gw.tz).date() == day]
            if not any(s.starts_at == choice[0] for s in same_day):
                same_day.append(Slot(choice[0], choice[1], choice[0]))
            pick = resolve_pick(text, same_day, tz=gw.tz, now=gw.now(), dentists=names)
            if pick.matches or pick.asked_at:
                return pick
        return resolve_pick(text, offered, tz=gw.tz, now=gw.now(), dentists=names)

    def names_a_time(self, gw: Gateway, tracker: Tracker) -> bool:
        """Whether this turn's text, answering the offers or the confirmation, names an offered
        slot or an exact time (then it is a pick, not a new request)."""
        text = latest_text(tracker)
        requested = tracker.get_slot("requested_slot")
        if text is None or requested not in (None, "slot_choice", "confirmed") or NEW_RANGE.search(text):
            return False  # "make that Monday after 1": a new range, not one of the offers
        if requested is None and not tracker.get_slot("offered_slots"):
            return False  # the form starts: only offers made before it (what's free?) can be named
        pick = self.pick_from(gw, tracker, text)
        return bool(pick.matches or pick.asked_at)

    def validate_time(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: dict) -> dict[str, Any]:
        if value is None:
            return {"time": None}  # cleared ("start over", a new request): nothing to check
        if giving_details(tracker) or self.inside_the_name(tracker, value):
            return {"time": previous_value(tracker, "time")}  # "June" in "my name is June Turing"
        gw = get_gateway()
        if self.names_a_time(gw, tracker):
            return {"time": previous_value(tracker, "time")}  # "the 1pm one" picks; it is no new date
        if isinstance(value, str) and GREETING_TIME.search(latest_text(tracker) or "") and \
                value.strip().lower() in ("morning", "afternoon", "evening", "night"):
            return {"time": previous_value(tracker, "time")}  # "Good morning!" greets; it asks no time
        text = self.readable_time(gw, tracker, value)
        if text is None:
            return {"time": None}
        text = self.keep_the_hour(gw, tracker, text)
        # Text taken while asking for the time may really be a dentist or service: stay quiet then.
        quiet = any(e.get("entity") in ("dentist", "service")
                    for e in tracker.latest_message.get("entities", []))
        if tracker.get_slot("requested_slot") != "time":
            quiet = True
        out = window_events(gw, dispatcher, text, quiet=True)
        if out.get("time") is None and not quiet and not out.get("past"):
            out.update(not_understood(dispatcher, tracker, "time", "utter_time_not_understood"))
        out.pop("past", None)
        if out.get("time") is None and tracker.get_slot("requested_slot") != "time":
            return {"time": previous_value(tracker, "time")}  # a correction we could not read: keep it
        if out.get("time_window") != tracker.get_slot("time_window") and not picked_by_button(tracker):
            out.update(slot_choice=None, offered_slots=None, confirmed=None)
            asked = When.decode(out["time_window"]) if out.get("time_window") else None
            exact = asked.at if asked else None
            if RANGE_WORDS.search(text):
                exact = None  # "between 9am and noon", "after 2": a range, offered as one
            service = self.service_for(gw, tracker)
            free = self.free_dentist(gw, tracker, service, exact) if exact and service else None
            if free is None and exact and service and asked.next_week is not None and exact <= gw.now() + \
                    timedelta(minutes=gw.settings.min_notice_minutes):
                # "Tuesday at 7pm" said on a Tuesday at 6: too soon today, so next Tuesday's 7pm
                exact = asked.a_week_later(gw.tz).at
                free = self.free_dentist(gw, tracker, service, exact) if exact else None
            if free is not None:  # "Friday at 2pm" and 2pm is free: that is the pick (the summary still asks)
                out.update(self.take(gw, dispatcher, tracker, service, exact, free))
        return out

    def free_dentist(self, gw: Gateway, tracker: Tracker, service: ServiceInfo, at) -> int | None:
        """The dentist asked for (or any) who is free at ``at`` for ``service``."""
        wanted = self.dentist_id_for(gw, tracker)
        for dentist_id in [wanted] if wanted is not None else sorted(gw.catalogue().dentists):
            if gw.is_free(service.id, dentist_id, at):
                return dentist_id
        return None

    @staticmethod
    def readable_time(gw: Gateway, tracker: Tracker, value: Any) -> str | None:
        """The time phrase to read: the model's time entities joined ("10am" + "on Wednesday"), else
        the slot's value, else (when the time was asked for) the whole message — the first of
        them that reads as a time, or the first of them when none does."""
        candidates = [requested_time(tracker), value]
        if tracker.get_slot("requested_slot") == "time":
            candidates.append(latest_text(tracker))
        texts = [t for t in dict.fromkeys(c for c in candidates if isinstance(c, str) and c.strip())]
        for text in texts:
            try:
                if parse_when(text, gw.now(), gw.tz) is not None:
                    return text
            except PastTime:
                return text
        return texts[0] if texts else None

    @staticmethod
    def inside_the_name(tracker: Tracker, value: Any) -> bool:
        """Whether the time read this turn is a word of the name given with it."""
        name = tracker.get_slot("full_name")
        return (isinstance(value, str) and isinstance(name, str) and changed_this_turn(tracker, "full_name")
                and bool(re.search(rf"\b{re.escape(value.strip().lower())}\b", name.lower())))

    def keep_the_hour(self, gw: Gateway, tracker: Tracker, text: str) -> str:
        """ "No, Thursday" after 10:15 was chosen: Thursday around 10:15 (only the day changes)."""
        choice = decode_choice(previous_value(tracker, "slot_choice") or tracker.get_slot("slot_choice"))
        if choice is None or parse_clock(text) is not None:
            return text
        try:
            when = parse_when(text, gw.now(), gw.tz)
        except PastTime:
            return text
        if when is None or when.daily is not None or (when.end - when.start) > timedelta(days=1, hours=1):
            return text
        if any(p in text.lower() for p in ("morning", "afternoon", "evening", "noon", "lunch", "tonight")):
            return text
        clock = choice[0].astimezone(gw.tz).strftime("%H:%M")
        return f"{text} at {clock}"

    def validate_slot_choice(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: dict) -> dict[str, Any]:
        if value is None:
            return {"slot_choice": None}  # cleared ("start over", a new request): nothing to check
        gw = get_gateway()
        service = self.service_for(gw, tracker)
        offered = load_offer(tracker.get_slot("offered_slots"))
        picked = decode_choice(value)
        if picked is None and isinstance(value, str):
            pick = Pick() if NEW_RANGE.search(value) else self.pick_from(gw, tracker, value)
            if pick.unique is not None:
                picked = pick.unique.starts_at, pick.unique.dentist_id
            elif len(pick.matches) > 1 and len(pick.matches) >= len(offered):
                # "sorry, December 10 would be better" when every time offered is on December 10
                dispatcher.utter_message(response="utter_all_offers_match")
                return {"slot_choice": None}
            elif len(pick.matches) > 1:  # "10:00" offered on two days: ask among just those
                dispatcher.utter_message(response="utter_several_match")
                return {"slot_choice": None, "offered_slots": store_offer(list(pick.matches))}
            elif pick.asked_at is not None and service is not None:
                return self.asked_for(gw, dispatcher, tracker, service, pick.asked_at)
            elif changed_this_turn(tracker, "time", "dentist", "service") or (
                    tracker.get_slot("requested_slot") == "confirmed"):
                return {"slot_choice": previous_value(tracker, "slot_choice")
                        if tracker.get_slot("requested_slot") == "confirmed" else None}
            else:
                out = window_events(gw, dispatcher, value, quiet=True)
                out.pop("past", None)
                if out.get("time"):  # a new time typed in reply to the offer ("friday instead")
                    return {**out, "slot_choice": None, "offered_slots": None}
                target = self.dentist_id_for(gw, tracker)
                shown = buttons(gw, offered, dentist=gw.catalogue().dentists.get(target) if target else None)
                return {"slot_choice": None, **not_understood(dispatcher, tracker, "slot_choice",
                                                                 "utter_slot_not_understood", buttons=shown)}
        if picked is None or service is None:
            dispatcher.utter_message(response="utter_slot_not_offered")
            return {"slot_choice": None}
        return self.take(gw, dispatcher, tracker, service, *picked)

    def asked_for(self, gw: Gateway, dispatcher: CollectingDispatcher, tracker: Tracker, service: ServiceInfo,
                  at) -> dict[str, Any]:
        """A time that was not offered: take it when it is free, else offer the nearest around it."""
        wanted = self.dentist_id_for(gw, tracker)
        dentist_id = self.free_dentist(gw, tracker, service, at)
        if dentist_id is not None:
            return self.take(gw, dispatcher, tracker, service, at, dentist_id)
        nearest = spread(gw.nearest(service.id, at, wanted, count=12), 6)
        dispatcher.utter_message(response="utter_time_taken", when=when_label(at, gw.tz, now=gw.now()))
        return {"slot_choice": None, "offered_slots": store_offer(nearest) or None}

    def take(self, gw: Gateway, dispatcher: CollectingDispatcher, tracker: Tracker, service: ServiceInfo,
             starts_at, dentist_id: int) -> dict[str, Any]:
        """Hold the slot chosen (by a tap or in words) and fill in what it stands for."""
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


class ValidateBookingForm(AnswersTheQuestion, ReadsUnreadableAnswers, SlotChoiceMixin, CodeStep,
                          FormValidationAction):
    def name(self) -> str:
        return "validate_booking_form"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        return await super().run(dispatcher, tracker, domain)

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: dict) -> list[str]:
        if tracker.get_slot("outcome") in SWITCHES:
            return []
        who = caller(tracker)
        # an external intent (a waitlist offer in the middle of the form) carries no token: the
        # questions stay those of the patient's last message (the write checks the token again)
        if who.authenticated or (external(tracker) and tracker.get_slot("authenticated")):
            return [s for s in domain_slots if s not in ("full_name", "phone", "verification_code")]
        if not needs_code_step(get_gateway(), tracker, typed_phone(get_gateway(), tracker)):
            return [s for s in domain_slots if s != "verification_code"]
        return domain_slots

    async def get_extraction_events(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: dict) -> list[dict]:
        if tracker.get_slot("requested_slot") is None:
            other = changes_a_visit(latest_text(tracker) or "")
            if other is not None:  # "hey ned to canceel my extraction": not a booking, whatever the model said
                tracker.slots["outcome"] = other
                return []
        return await super().get_extraction_events(dispatcher, tracker, domain)

    async def get_validation_events(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: dict) -> list[dict]:
        if tracker.get_slot("outcome") in SWITCHES:
            return [SlotSet("outcome", tracker.get_slot("outcome"))]  # kept for action_finish_booking
        return await super().get_validation_events(dispatcher, tracker, domain)

    def validate_service(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                         domain: dict) -> dict[str, Any]:
        if value is None:
            return {"service": None}  # cleared ("start over", a new request): nothing to check
        if giving_details(tracker):
            return {"service": previous_value(tracker, "service")}
        catalogue = get_gateway().catalogue()
        service = catalogue.service(value) or catalogue.service(service_in(str(value), vocabulary(catalogue)))
        if service is None and tracker.get_slot("requested_slot") in (None, "service"):
            text = latest_text(tracker) or ""
            service = catalogue.service(service_in(text, vocabulary(catalogue)))
            if service is None and str(value).strip().lower() in GENERIC_VISIT:
                return {"service": None}  # "book a visit": the form asks what for
        if service is None:
            if tracker.get_slot("requested_slot") not in (None, "service"):  # a correction we can't read
                return {"service": previous_value(tracker, "service")}
            return {"service": None, **not_understood(dispatcher, tracker, "service", "utter_invalid_service")}
        out: dict[str, Any] = {"service": service.key}
        if previous_value(tracker, "service") not in (None, service.key) and not picked_by_button(tracker):
            out.update(slot_choice=None, offered_slots=None, confirmed=None)
        return out

    def validate_dentist(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                         domain: dict) -> dict[str, Any]:
        if value is None:
            return {"dentist": None}  # cleared ("start over", a new request): nothing to check
        if giving_details(tracker):
            return {"dentist": previous_value(tracker, "dentist")}
        catalogue = get_gateway().catalogue()
        typed = dentist_in(str(value), vocabulary(catalogue)) if isinstance(value, str) else None
        if isinstance(value, str) and (value.strip().lower() in ANY_DENTIST or (
                typed == "any" and catalogue.dentist(value) is None)):
            key = "any"
        else:
            dentist = catalogue.dentist(value) or catalogue.dentist(typed or "")
            if dentist is None and tracker.get_slot("requested_slot") == "dentist":
                # the model's span ("Great") was not the answer; the whole message may be ("any dentist")
                found = dentist_in(latest_text(tracker) or "", vocabulary(catalogue))
                if found == "any":
                    return {"dentist": "any"}
                dentist = catalogue.dentist(found or "")
            if dentist is None and tracker.get_slot("requested_slot") is None:
                # the first message: the model's span was no name of ours; the words may still say it
                text = latest_text(tracker) or ""
                name = tracker.get_slot("full_name") or ""
                found = dentist_in(text.replace(name, " ") if name else text, vocabulary(catalogue))
                if found == "any":
                    return {"dentist": "any"}
                dentist = catalogue.dentist(found or "")
                if dentist is None:
                    return {"dentist": None}  # not said after all: the form asks which dentist
            if dentist is None:
                if tracker.get_slot("requested_slot") not in (None, "dentist"):  # a correction we can't read
                    return {"dentist": previous_value(tracker, "dentist")}
                return {"dentist": None, **not_understood(dispatcher, tracker, "dentist", "utter_invalid_dentist")}
            key = dentist.key
        out: dict[str, Any] = {"dentist": key}
        if previous_value(tracker, "dentist") not in (None, key) and not picked_by_button(tracker) \
                and not self.picks_an_offer_of(catalogue.dentist(key), tracker):
            out.update(slot_choice=None, offered_slots=None, confirmed=None)
        return out

    def picks_an_offer_of(self, dentist: Any, tracker: Tracker) -> bool:
        """Whether the text picks offers of just this dentist ("mon dec 7, 9:00 am · dr. alvarez",
        a button's title typed): the dentist it names is the offer's, not a new search."""
        if dentist is None or not self.names_a_time(get_gateway(), tracker):
            return False
        matches = self.pick_from(get_gateway(), tracker, latest_text(tracker) or "").matches
        return bool(matches) and all(s.dentist_id == dentist.id for s in matches)

    def validate_full_name(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                           domain: dict) -> dict[str, Any]:
        if value is None:
            return {"full_name": None}  # a number given instead: the name is asked for again, no complaint
        name = strip_name(value) if isinstance(value, str) else ""
        if (not name or len(name) > MAX_NAME or not any(c.isalpha() for c in name) or name.startswith("/")
                or name.endswith("?") or (len(name.split()) <= 2 and not reads_as_name(name)
                                          and not unreadable(name) and not re.search(r"[^\w\s'’.\-]", name))):
            # a question asked at the name prompt, or "yes" / "hello", is not a name
            return {"full_name": None, **not_understood(dispatcher, tracker, "full_name", "utter_invalid_name")}
        return {"full_name": name}  # stored as typed: the data layer binds parameters, never splices

    def validate_phone(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                       domain: dict) -> dict[str, Any]:
        gw = get_gateway()
        region = gw.settings.phone_region
        try:
            phone = normalise_phone(phone_in(str(value), region) or str(value), region)
        except InvalidPhone:
            phone = None
        if phone is not None:
            if (tracker.get_slot("confirmed") is True and tracker.get_slot("requested_slot") == "phone"
                    and gw.needs_code(caller(tracker), phone)):
                # the new number after "wrong number": the code goes there, the summary stands
                return {"phone": phone, **send_code(dispatcher, gw, caller(tracker), phone)}
            return {"phone": phone}
        if tracker.get_slot("requested_slot") != "phone" and previous_value(tracker, "phone"):
            return {"phone": previous_value(tracker, "phone")}
        return {"phone": None, **not_understood(dispatcher, tracker, "phone", "utter_invalid_phone")}

    def validate_confirmed(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                           domain: dict) -> dict[str, Any]:
        if value is None:
            return {"confirmed": None}
        if not isinstance(value, bool):  # neither yes nor no: nothing is booked on a guess
            return {"confirmed": None, **not_understood(dispatcher, tracker, "confirmed", "utter_yes_or_no")}
        if value is not True:
            dispatcher.utter_message(response="utter_booking_declined")
            return {"confirmed": False, "outcome": "declined"}
        return self.confirmed_yes(dispatcher, tracker)

    def code_recipient(self, gw: Gateway, tracker: Tracker) -> str | None:
        return typed_phone(gw, tracker)

    def can_change_number(self) -> bool:
        return True

    def write(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        """Book the chosen slot for the caller (the code step has proved the phone, if needed)."""
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
            found = gw.chat_patient(who, tracker.get_slot("full_name") or "", tracker.get_slot("phone") or "")
            if found.outcome is Outcome.NOT_VERIFIED:  # never reached through the form: no write without it
                return {"confirmed": None, "verification_code": None}
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
        if service is None or escalated_this_turn(tracker):
            return []  # the escalation already showed the offers and what to type
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
        who = ""
        if not caller(tracker).authenticated and tracker.get_slot("full_name"):
            who = f", for {tracker.get_slot('full_name')}"
            if tracker.get_slot("phone"):
                who += f" ({tracker.get_slot('phone')})"
        dispatcher.utter_message(response="utter_confirm_booking", service=service.name,
                                 dentist=dentist.full_name if dentist else "a dentist",
                                 when=when_label(starts_at, gw.tz, now=gw.now()),
                                 price=price_label(service.price_cents), who=who)
        return []


class ActionFinishBooking(Action):
    """The booking form ended (booked, declined or refused): clear the request for the next one."""

    def name(self) -> str:
        return "action_finish_booking"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        if tracker.get_slot("outcome") in SWITCHES:  # it was about a visit already booked
            kept = ("time",) if tracker.get_slot("outcome") == "switch:reschedule" else ()  # "move it to Friday"
            return [e for e in reset_request() if e["name"] not in kept] + [
                FollowupAction(SWITCHES[tracker.get_slot("outcome")])]
        if tracker.get_slot("outcome") is None:
            dispatcher.utter_message(response="utter_sorry_error")
        if tracker.get_slot("outcome") != "done":
            get_gateway().release(holder_of(tracker))
        return reset_request()
