"""Free times: choosing which slots to offer, and "what's free?" without booking.

Offers come from the gateway's availability source (the cache when it runs), never
more than ``MAX_OFFERS`` buttons, spread over the window asked for; when the window
is full, the nearest free times around it are offered instead — after saying so when the
window lies wholly before the minimum notice or past the booking horizon.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.availability import Slot

from .catalogue import Catalogue, DentistInfo, ServiceInfo
from .common import entity_values, guarded
from .dates import WEEKDAYS, PastTime, When, parse_when
from .formatting import short_dentist, slot_button, spread
from .gateway import Gateway, get_gateway
from .offers import load_offer, store_offer
from .understanding import dentist_in
from .vocabulary import vocabulary

MAX_OFFERS = 6
SCAN_LIMIT = 2000  # free slots read from each week of a window before spreading
DEFAULT_SERVICE = "consultation"


@dataclass(frozen=True)
class Offer:
    slots: list[Slot]
    nearest: bool  # nothing in the window: these are the closest around it


def find_offer(gw: Gateway, service: ServiceInfo, dentist: DentistInfo | None, when: When) -> Offer:
    dentist_id = dentist.id if dentist else None
    found = [s for start, end in when.weeks()  # a week at a time: the limit never hides a window's end
             for s in gw.free_slots(service.id, start, end, dentist_id, limit=SCAN_LIMIT)
             if when.contains(s.starts_at, gw.tz)]
    if found:
        if when.at is not None:  # an exact time: the closest ones to it that day
            at = when.at
            closest = sorted(spread(found, len(found)), key=lambda s: (abs(s.starts_at - at), s.starts_at))
            return Offer(sorted(closest[:MAX_OFFERS]), False)
        if when.asap:
            return Offer(spread(found, len(found))[:MAX_OFFERS], False)
        return Offer(spread(found, MAX_OFFERS, tz=gw.tz), False)  # over days first
    if when.next_week is not None:  # "Tuesday", said on a Tuesday after today's last bookable time
        later = find_offer(gw, service, dentist, when.a_week_later(gw.tz))
        if not later.nearest:
            return later
    around = when.at or when.start
    return Offer(spread(gw.nearest(service.id, around, dentist_id, count=MAX_OFFERS * 2), MAX_OFFERS), True)


# Under every offer of times: none of them is early enough, wait for an earlier one (actions/waitlist.py).
JOIN_WAITLIST_BUTTON = {"title": "Tell me if an earlier time opens", "payload": "/join_waitlist"}


def buttons(gw: Gateway, slots: list[Slot], *, dentist: DentistInfo | None, intent: str = "inform",
            extra: str = "") -> list[dict]:
    """A button per offered slot, then the waitlist's."""
    names = {d.id: d.full_name for d in gw.catalogue().dentists.values()}
    return [slot_button(s, gw.tz, names, intent=intent, now=gw.now(), show_dentist=dentist is None,
                        extra=extra) for s in slots] + [dict(JOIN_WAITLIST_BUTTON)]


def for_whom(service: ServiceInfo, dentist: DentistInfo | None) -> str:
    who = f" with {short_dentist(dentist.full_name)}" if dentist else ""
    return f" for a {service.name.lower()}{who}"


def requested_time(tracker: Tracker) -> str | None:
    """The time phrase: every ``time`` entity of the latest message joined ("10am" + "on Wednesday"),
    after the weekday a dentist's or service's span swallowed ("dr chen Tuesday" + "next week")."""
    values = _after_a_correction(tracker, entity_values(tracker, "time"))
    spilled = [w for kind in ("dentist", "service") for v in entity_values(tracker, kind)
               for w in re.findall(r"[a-z]+", v.lower()) if w in WEEKDAYS]
    if spilled and values and not any(w in WEEKDAYS for v in values for w in re.findall(r"[a-z]+", v.lower())):
        return " ".join(spilled + values)
    if len(values) > 1:
        return " ".join(values)
    if values and len(entity_values(tracker, "time")) > 1:
        return values[0]  # the one meant, after a correction
    return tracker.get_slot("time")


# "December 21, no sorry, the 21st", "friday, I mean saturday": what comes after it is meant
_SELF_CORRECTION = re.compile(r"\b(?:no|sorry|i mean|i meant|actually|or rather|make (?:it|that)|scratch that|"
                              r"wait)\b", re.IGNORECASE)


def _after_a_correction(tracker: Tracker, values: list[str]) -> list[str]:
    """The time entities after the last self-correction between two of them ("December 21, no
    sorry, the 21st": just "the 21st"), else all of them."""
    text = tracker.latest_message.get("text") or ""
    spans = sorted((e for e in tracker.latest_message.get("entities", []) if e.get("entity") == "time"
                    and isinstance(e.get("start"), int) and isinstance(e.get("end"), int)),
                   key=lambda e: e["start"])
    if len(spans) != len(values) or len(spans) < 2:
        return values
    for i in range(len(spans) - 1, 0, -1):
        if _SELF_CORRECTION.search(text[spans[i - 1]["end"]:spans[i]["start"]]):
            return values[i:]
    return values


def dentist_of(catalogue: Catalogue, value: Any) -> DentistInfo | None:
    if value in (None, "any"):
        return None
    return catalogue.dentist(str(value))


def typed_dentist(catalogue: Catalogue, value: Any) -> DentistInfo | None:
    """The dentist a raw span names ("dr alvarez monday", "dr chenn"): the model's span is not
    checked by a form when only what is free is asked."""
    found = dentist_in(value, vocabulary(catalogue)) if isinstance(value, str) else None
    return dentist_of(catalogue, found)


def offer_events(gw: Gateway, dispatcher: CollectingDispatcher, service: ServiceInfo,
                 dentist: DentistInfo | None, when: When, *, intent: str = "inform", extra: str = "",
                 when_text: str = "then") -> list[dict]:
    """Say what is free (or nearest) with buttons; the events remember the offer."""
    offer = find_offer(gw, service, dentist, when)
    whom = for_whom(service, dentist)
    if offer.nearest:  # say why nothing in the window, when the rules are the reason
        earliest, latest = gw.bookable_window(service.id)
        if when.start >= latest:
            dispatcher.utter_message(response="utter_too_far")
        elif when.end <= earliest:
            dispatcher.utter_message(response="utter_too_soon")
    if not offer.slots:
        dispatcher.utter_message(response="utter_no_slots", for_whom=whom, phone=gw.settings.clinic_phone)
        return [SlotSet("offered_slots", [])]
    response = "utter_offer_nearest" if offer.nearest else "utter_offer_slots"
    dispatcher.utter_message(response=response, for_whom=whom, when=when_text,
                             buttons=buttons(gw, offer.slots, dentist=dentist, intent=intent, extra=extra))
    return [SlotSet("offered_slots", store_offer(offer.slots))]


def names_one_offer(gw: Gateway, tracker: Tracker) -> bool:
    """Whether the typed message names exactly one of the times just offered (the booking form's
    first turn then takes it, actions/booking.py), rather than asking what is free again."""
    from .resolver import resolve_pick

    offered = load_offer(tracker.get_slot("offered_slots"))
    text = tracker.latest_message.get("text") or ""
    if not offered or not text or text.startswith("/"):
        return False
    names = {d.id: d.full_name for d in gw.catalogue().dentists.values()}
    return len(resolve_pick(text, offered, tz=gw.tz, now=gw.now(), dentists=names).matches) == 1


class ActionCheckAvailability(Action):
    """ "What's free on Friday?": offer times; a tap on one starts the booking form with it."""

    def name(self) -> str:
        return "action_check_availability"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        gw = get_gateway()
        catalogue = gw.catalogue()
        service = catalogue.service(tracker.get_slot("service")) or catalogue.service(DEFAULT_SERVICE)
        named = tracker.get_slot("dentist")
        dentist = dentist_of(catalogue, named) or typed_dentist(catalogue, named)
        if service is None:
            dispatcher.utter_message(response="utter_invalid_service")
            return []
        if names_one_offer(gw, tracker):
            return [FollowupAction("booking_form")]  # "fri at 3:15 please": the booking starts with it
        text = requested_time(tracker) or "asap"
        try:
            when = parse_when(text, gw.now(), gw.tz)
            for span in reversed(entity_values(tracker, "time")):
                if when is None and span != text:  # "that" + "next week": one of the model's spans
                    text, when = span, parse_when(span, gw.now(), gw.tz)
            if when is None and tracker.latest_message.get("text"):
                # the model's span was not a time ("the earliest you have im diego"): the words may be
                when = parse_when(tracker.latest_message["text"], gw.now(), gw.tz)
        except PastTime:
            dispatcher.utter_message(response="utter_time_in_past")
            return [SlotSet("time", None)]
        if when is None:
            dispatcher.utter_message(response="utter_time_not_understood")
            return [SlotSet("time", None)]
        extra = f', "service": "{service.key}"'
        if dentist is not None:
            extra += f', "dentist": "{dentist.key}"'
        events = offer_events(gw, dispatcher, service, dentist, when, intent="book_appointment", extra=extra,
                              when_text=text)
        chosen = [SlotSet("service", service.key)] + ([SlotSet("dentist", dentist.key)] if dentist else [])
        return events + chosen + [SlotSet("time", text), SlotSet("time_window", when.encode())]
