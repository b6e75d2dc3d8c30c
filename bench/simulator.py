"""Simulated patients: people with a goal and a way of typing chat with the real assistant through
Rasa's REST channel, and only the database and the transcript say whether it worked.

**Goals** (``Goal``): book a visit; ask what is free, then book one of the times offered; move an
existing visit to a new time; cancel an existing visit. Each names a service, a dentist (or
"any"), a day/time preference as a person would say it ("next Tuesday afternoon", "Thursday
between 2 and 4", "asap"), and the patient's name and phone number.

**Personas** (``Persona``): ``clicker`` taps the buttons the bot sends (the baseline); everyone
else types, also where there are buttons: ``terse`` (few words, lower case, no punctuation),
``chatty`` (greetings, please and thanks, small talk), ``typo-prone`` (a seeded character swapped,
dropped or doubled in words that carry nothing the bot must read: never in a service, a dentist, a
time, a name, a phone number or a yes), ``types-instead-of-clicking`` (types the button's title),
``corrects-themselves`` (says a wrong dentist, service or time and corrects it in the next message,
or in the same one), ``all-at-once`` (service, dentist, day/time, name and phone in one message, no
punctuation, a couple of typos) and ``wrong-order`` (answers a later question first: the phone
number when asked the name, then the name). Every choice comes from one ``random.Random(seed)``.

**What the patient reads.** Every response of domain.yml is matched by its whole text, with its
``{placeholders}`` as wildcards, and ``RESPONSES`` (the one table) says what the patient takes it
for: a question for a detail, an offer, a confirmation summary, an outcome, or an error text (an
apology or a refusal). A patient answers the last question of a reply; to an offer it names the time
it chose in words derived from the button's title ("Tue Dec 8, 2:30 PM" → "2:30", "the 2:30 one",
"tuesday at 2:30 pm", "half past two", "the second one", "the one with Dr Chen"), using only
phrasings that single out that one offer among those shown. What it expects in the database is what
it chose: the exact start time and the dentist of the offer it named. It reads the summary as a
person would: one that differs from its choice, or shows its name or phone number wrong, gets a
correction ("no, my name is Ada Lovelace"), twice at most, then a no.

**Honesty.** The patient never adapts to the bot's weaknesses: a message the bot did not get is
said again in other words (people do that), never replaced by a button tap, except by the
``clicker``, who taps anyway. It never sees the bot's slots or intents.

**Who moves or cancels.** The visit being moved or cancelled was booked by the front desk:
``create_visits`` writes it with ``bot.booking.BookingService`` as an admin, before the chat starts
(sometimes a second visit too, so the bot has to ask which one). An anonymous chat may manage only
the visits booked in that same conversation, so a real patient does this signed in: from the
clinic's patient page, whose chat sends the page's token with every message (``metadata={"token":
...}``, as the web widget does with ``?token=``). The simulated patient does exactly that, with a
token minted by ``bot.tokens.mint("patient", id)``; booking patients chat anonymously and give a
name and phone number.

**The verdict** (``run_conversation`` → ``Result``): success only if the database holds what the
patient chose (booking: one live visit for that phone number, with the right dentist, service, exact
start time and name; moving: that visit at the exact new time with the same dentist; cancelling:
that visit cancelled; nothing else of the patient's changed), the bot never sent the same reply text
three times in a row (a loop), the bot sent no error text, and it took at most ``MAX_TURNS``
messages. A task (goal and persona) passes ``pass^3`` when three runs with different seeds, day/time
phrases and phrasings all succeed (``make_tasks``, ``goal_for``, ``run_tasks``). ``run_tasks`` runs one
conversation at a time and puts the clinic back after each (``forget_bookings``), so every run meets the
seeded diaries, not what earlier runs booked.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Protocol
from zoneinfo import ZoneInfo

import psycopg
import yaml

ROOT = Path(__file__).resolve().parent.parent
MAX_TURNS = 25
KINDS = ("book", "availability_then_book", "reschedule", "cancel")
BOOKING_KINDS = ("book", "availability_then_book")

# Every simulated chat comes from 127.0.0.1 and books in a few minutes what a clinic books in weeks:
# the anonymous chat's flood limits (bot/settings.py) would stop the run, not a patient.
SIM_LIMITS = {"chat_bookings_per_client": 100_000, "chat_bookings_per_phone": 100,
              "chat_bookings_per_conversation": 100, "chat_holds_per_client": 100_000,
              "verification_codes_per_client": 100_000, "verification_codes_per_recipient": 100,
              "verification_codes_per_subject": 100}


class Persona(str, Enum):
    CLICKER = "clicker"
    TERSE = "terse"
    CHATTY = "chatty"
    TYPO = "typo-prone"
    TYPER = "types-instead-of-clicking"
    CORRECTOR = "corrects-themselves"
    ALL_AT_ONCE = "all-at-once"
    WRONG_ORDER = "wrong-order"


@dataclass(frozen=True)
class Goal:
    kind: str     # one of KINDS
    service: str  # the canonical key: "cleaning", "root canal", ...
    dentist: str  # "alvarez", "chen", "patel" or "any"
    when: str     # the day/time preference, as the patient says it
    name: str
    phone: str    # ten digits; the persona chooses how to type them


# ------------------------------------------------------------------------------------------------
# How patients name things

@dataclass(frozen=True)
class Words:
    title: str                   # as the clinic writes it (buttons, summaries)
    inline: tuple[str, ...]      # inside a sentence: "I'd like to book {a cleaning}"
    answer: tuple[str, ...]      # alone, in reply to the question


SERVICES = {
    "cleaning": Words("Cleaning", ("a cleaning", "a teeth cleaning", "a check-up", "a scale and polish"),
                      ("cleaning", "a cleaning", "check-up", "scale and polish")),
    "consultation": Words("Consultation", ("a consultation", "a consult"),
                          ("consultation", "a consultation")),
    "filling": Words("Filling", ("a filling", "a filling for a cavity"),
                     ("filling", "a filling", "cavity filling")),
    "extraction": Words("Extraction", ("an extraction", "a tooth extraction"),
                        ("extraction", "an extraction", "tooth extraction")),
    "root canal": Words("Root canal", ("a root canal", "root canal treatment"),
                        ("root canal", "a root canal")),
    "crown": Words("Crown", ("a crown", "a crown fitting"), ("crown", "a crown")),
    "whitening": Words("Whitening", ("teeth whitening", "a whitening"), ("whitening", "teeth whitening")),
}
DENTISTS = {
    "alvarez": Words("Dr. Maria Alvarez", ("Dr Alvarez", "Dr. Alvarez", "Dr. Maria Alvarez", "dr alvarez"),
                     ("Dr Alvarez", "Dr. Alvarez", "alvarez", "Dr. Maria Alvarez")),
    "chen": Words("Dr. James Chen", ("Dr Chen", "Dr. Chen", "Dr. James Chen", "dr chen"),
                  ("Dr Chen", "Dr. Chen", "chen", "Dr. James Chen")),
    "patel": Words("Dr. Priya Patel", ("Dr Patel", "Dr. Patel", "Dr. Priya Patel", "dr patel"),
                   ("Dr Patel", "Dr. Patel", "patel", "Dr. Priya Patel")),
    "any": Words("Any dentist", ("any dentist", "anyone", "whoever is free"),
                 ("any", "anyone is fine", "any dentist", "no preference", "whoever is free",
                  "I don't mind")),
}
FIRST_NAMES = ("Ada", "Grace", "Alan", "Maya", "Omar", "Lena", "Diego", "Tom", "Zoë", "Sean", "Aisha",
               "Kenji", "Olga", "Marcus", "Inès", "Noah", "Hana", "Luis", "Fatima", "Eli", "Rosa", "Ivan",
               "June", "Carmen")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Okafor", "Nguyen", "Kowalski", "Ramirez", "Haddad", "O'Brien",
              "Müller", "Rossi", "Kim", "Schmidt", "Dubois", "Tanaka", "Silva", "Cohen", "Brennan", "Novak",
              "Chen")
AREA_CODES = ("212", "646", "917", "347", "718")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
NUMBER_WORDS = ("twelve", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")
# "the 4th" alone is a date: people picking from a list say "the 4th one"
ORDINALS = (("the first one", "the 1st one", "number 1", "option 1"),
            ("the second one", "the 2nd one", "number 2", "option 2"),
            ("the third one", "the 3rd one", "number 3", "option 3"),
            ("the fourth one", "the 4th one", "number 4", "option 4"),
            ("the fifth one", "the 5th one", "number 5", "option 5"),
            ("the sixth one", "the 6th one", "number 6", "option 6"))
GREETINGS = ("hi", "hello", "hey", "hi there", "good morning", "hello there")
SMALL_TALK = ("It's been a while since my last visit.", "My friend recommended you.",
              "I just moved to the area.", "Hope you're having a good day!",
              "My schedule is a bit busy these days.")


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def preference_phrases(today: date, rng: random.Random) -> list[str]:
    """Day/time preferences as patients say them, one of each shape, shuffled; every phrase names
    a time from tomorrow on (weekdays Monday to Friday, clock times inside a working day). A bare
    weekday is never today's: on a Tuesday, people say "next Tuesday" for that day of next week."""
    def weekday() -> str:
        return rng.choice([d for d in WEEKDAYS[:5] if d != WEEKDAYS[today.weekday()]])

    def part() -> str:
        return rng.choice(("morning", "afternoon"))

    later = today + timedelta(days=rng.randint(4, 25))
    while later.weekday() > 4:
        later += timedelta(days=1)
    phrases = [
        f"next {weekday()}", f"next {weekday()} {part()}", f"{weekday()} {part()}",
        f"{weekday()} at {rng.choice(('9', '10', '10:30', '11am', '2', '2:30', '3pm', '4pm', '9:30am'))}",
        "next week", rng.choice(("sometime next week", "any day next week", "early next week")),
        rng.choice(ASAP),
        f"tomorrow {part()}", f"the {ordinal(later.day)}", f"{MONTHS[later.month - 1]} {later.day}",
        "{} between {} and {}".format(weekday(), *rng.choice(
            (("9", "11"), ("10", "12"), ("1", "3"), ("2", "4"), ("2pm", "5pm"), ("9am", "noon")))),
        f"{weekday()} after {rng.choice(('1', '2', '3pm'))}",
        f"{weekday()} before {rng.choice(('noon', '11'))}",
        f"this {weekday()}", f"{weekday()} next week", f"{weekday()} in the {part()}",
    ]
    rng.shuffle(phrases)
    return phrases


_CLOCK = r"(?:noon|\d{1,2}(?::\d{2})?\s*(?:am|pm)?)"
ASAP = ("as soon as possible", "asap", "the earliest you have")


def _minutes(clock: str) -> int:
    """Minutes after midnight of "9am", "2:30", "3pm", "noon"; 1 to 7 without am/pm is the afternoon."""
    if clock.strip() == "noon":
        return 12 * 60
    m = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?\s*(am|pm)?", clock.strip())
    assert m, clock
    hour, suffix = int(m[1]), m[3] or ""
    if (suffix == "pm" and hour < 12) or (not suffix and 1 <= hour <= 7):
        hour += 12
    return hour * 60 + int(m[2] or 0)


def fits(phrase: str, at: datetime, today: date, tz: ZoneInfo) -> bool:
    """Whether a visit at ``at`` is what ``phrase`` (a shape ``preference_phrases`` makes) asks for,
    as its patient means it: the day (a weekday within two weeks, next week, tomorrow, the 15th,
    December 15, or any day for "asap") and the time of day (morning, afternoon, at, between, after,
    before). A patient offered such a time without being shown a list says yes to it."""
    p, local = phrase.lower(), at.astimezone(tz)
    day, minute = local.date(), local.hour * 60 + local.minute
    monday = today - timedelta(days=today.weekday()) + timedelta(days=7)  # of next week
    weekday = next((i for i, d in enumerate(WEEKDAYS) if d.lower() in p), None)
    ordinal_day = re.search(r"\bthe (\d{1,2})(?:st|nd|rd|th)\b", p)
    month = next((i + 1 for i, m in enumerate(MONTHS) if m.lower() in p), None)
    if p in ASAP:
        right_day = today <= day <= today + timedelta(days=14)
    elif p.startswith("tomorrow"):
        right_day = day == today + timedelta(days=1)
    elif weekday is not None:
        right_day = day.weekday() == weekday and today < day <= today + timedelta(days=14)
    elif "next week" in p:
        right_day = monday <= day < monday + timedelta(days=3 if p.startswith("early") else 7)
    elif month is not None:
        right_day = (day.month, day.day) == (month, int(re.search(r"\d+", p)[0]))
    elif ordinal_day:
        right_day = day.day == int(ordinal_day[1])
    else:
        return False
    ranges = {"morning": (8 * 60, 12 * 60), "afternoon": (12 * 60, 17 * 60)}
    low, high = next((r for part, r in ranges.items() if part in p), (0, 24 * 60))
    if m := re.search(f"between ({_CLOCK}) and ({_CLOCK})$", p):
        low, high = _minutes(m[1]), _minutes(m[2])
    elif m := re.search(f"after ({_CLOCK})$", p):
        low = _minutes(m[1])
    elif m := re.search(f"before ({_CLOCK})$", p):
        high = _minutes(m[1])
    elif m := re.search(f" at ({_CLOCK})$", p):
        low = high = _minutes(m[1])
        return right_day and minute == low
    return right_day and low <= minute < high


# ------------------------------------------------------------------------------------------------
# What the bot says

class Kind(str, Enum):
    WELCOME = "welcome"        # a fresh start: whatever was going on is over
    ASK_SERVICE = "ask_service"
    ASK_DENTIST = "ask_dentist"
    ASK_TIME = "ask_time"
    ASK_NAME = "ask_name"
    ASK_PHONE = "ask_phone"
    OFFER = "offer"            # times to choose from (buttons)
    ASK_VISIT = "ask_visit"    # which of your visits (buttons)
    CONFIRM = "confirm"        # a summary and a yes/no question
    ASK_CODE = "ask_code"      # type back the code texted to your phone
    DONE = "done"              # booked, moved, cancelled
    DEAD_END = "dead_end"      # nothing will happen now (declined, no free time)
    INFO = "info"              # an answer that asks nothing
    ERROR = "error"            # an apology or a refusal: an error text


# Every response in domain.yml (and those the assistant is getting): what a patient takes it for.
RESPONSES: dict[str, Kind] = {
    "utter_greet": Kind.WELCOME, "utter_youre_welcome": Kind.WELCOME, "utter_anything_else": Kind.WELCOME,
    "utter_recall_due": Kind.WELCOME, "utter_too_late_to_change": Kind.DEAD_END,
    "utter_stopped": Kind.WELCOME, "utter_nothing_to_stop": Kind.WELCOME,
    "utter_goodbye": Kind.INFO, "utter_iamabot": Kind.INFO, "utter_handoff": Kind.INFO,
    "utter_your_appointments": Kind.INFO, "utter_emergency_advice": Kind.INFO,
    "utter_emergency_slot": Kind.INFO, "utter_emergency_no_slot_today": Kind.INFO,
    "utter_ask_service": Kind.ASK_SERVICE, "utter_ask_dentist": Kind.ASK_DENTIST,
    "utter_ask_time": Kind.ASK_TIME,
    "utter_ask_full_name": Kind.ASK_NAME, "utter_ask_phone": Kind.ASK_PHONE,
    "utter_offer_slots": Kind.OFFER, "utter_offer_nearest": Kind.OFFER, "utter_pick_alternative": Kind.OFFER,
    "utter_all_offers_match": Kind.INFO,
    "utter_time_taken": Kind.OFFER,
    "utter_ask_appointment_id": Kind.ASK_VISIT,
    "utter_code_sent": Kind.ASK_CODE, "utter_code_resent": Kind.ASK_CODE,
    "utter_ask_verification_code": Kind.ASK_CODE, "utter_code_ok": Kind.INFO,
    "utter_code_new_number": Kind.ASK_PHONE,
    "utter_confirm_booking": Kind.CONFIRM, "utter_confirm_cancel": Kind.CONFIRM,
    "utter_confirm_reschedule": Kind.CONFIRM,
    "utter_booked": Kind.DONE, "utter_cancelled": Kind.DONE, "utter_rescheduled": Kind.DONE,
    "utter_booking_declined": Kind.DEAD_END, "utter_cancel_kept": Kind.DEAD_END,
    "utter_reschedule_kept": Kind.DEAD_END, "utter_no_slots": Kind.DEAD_END,
    # the waitlist: joined (nothing more now), an offer (a yes/no question), and its ends
    "utter_waitlist_joined": Kind.DEAD_END, "utter_waitlist_joined_move": Kind.DEAD_END,
    "utter_waitlist_nothing_earlier": Kind.DEAD_END, "utter_waitlist_which_service": Kind.ASK_SERVICE,
    "utter_waitlist_offer": Kind.CONFIRM, "utter_waitlist_offer_move": Kind.CONFIRM,
    "utter_waitlist_already_yours": Kind.DONE, "utter_waitlist_declined": Kind.DEAD_END,
    "utter_waitlist_no_offer": Kind.INFO, "utter_waitlist_gone": Kind.INFO, "utter_waitlist_expired": Kind.INFO,
    "utter_waitlist_let_go": Kind.INFO,
    **{name: Kind.ERROR for name in (
        "utter_sorry_error", "utter_default", "utter_please_rephrase", "utter_out_of_scope",
        "utter_invalid_service", "utter_invalid_dentist", "utter_time_not_understood", "utter_time_in_past",
        "utter_slot_not_offered", "utter_slot_not_understood", "utter_several_match", "utter_several_visits_match",
        "utter_yes_or_no", "utter_still_need", "utter_stuck", "utter_invalid_name", "utter_invalid_phone",
        "utter_slot_taken",
        "utter_patient_busy", "utter_limit_reached", "utter_message_too_long", "utter_outside_hours",
        "utter_in_past", "utter_too_soon", "utter_too_far", "utter_not_allowed", "utter_invalid_request",
        "utter_unavailable", "utter_no_appointments", "utter_no_appointments_anonymous",
        "utter_appointment_not_found", "utter_already_cancelled", "utter_code_wrong", "utter_code_expired",
        "utter_code_locked", "utter_code_too_soon", "utter_code_not_sent", "utter_code_no_phone",
        "utter_code_number_on_file", "utter_code_not_understood", "utter_code_needed",
        "utter_waitlist_who", "utter_waitlist_limit", "utter_waitlist_not_found", "utter_waitlist_offer_gone",
        "utter_waitlist_offer_expired")},
}
FAQ_PREFIX = "utter_faq/"  # every clinic answer: INFO
# "That time isn't free": right after the patient named one of the offers, an error text too.
NOT_FREE = ("utter_slot_not_offered", "utter_time_taken")


def kind_of(response: str) -> Kind | None:
    return Kind.INFO if response.startswith(FAQ_PREFIX) else RESPONSES.get(response)


@lru_cache(maxsize=4)
def domain_templates(domain: Path = ROOT / "domain.yml") -> tuple[tuple[str, re.Pattern], ...]:
    """Every response text of domain.yml as a pattern ({placeholders} match anything), the most
    specific (longest fixed text) first."""
    responses = yaml.safe_load(domain.read_text())["responses"]
    found = []
    for name, variants in responses.items():
        for variant in variants:
            if "text" not in variant:
                continue
            parts = re.split(r"\{(\w+)\}", variant["text"])
            fixed = sum(len(p) for p in parts[::2])
            pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.*?)" for i, p in enumerate(parts))
            found.append((fixed, name, re.compile(pattern, re.DOTALL)))
    found.sort(key=lambda item: -item[0])
    return tuple((name, pattern) for _, name, pattern in found)


@dataclass(frozen=True)
class BotMessage:
    text: str
    response: str | None  # the domain response it is (None: a text domain.yml does not have)
    kind: Kind
    fields: dict[str, str]
    buttons: tuple[dict, ...]


def read(reply: dict) -> BotMessage:
    text = reply.get("text") or ""
    buttons = tuple(reply.get("buttons") or ())
    for name, pattern in domain_templates():
        m = pattern.fullmatch(text)
        if m:
            return BotMessage(text, name, kind_of(name) or Kind.INFO, m.groupdict(), buttons)
    return BotMessage(text, None, Kind.INFO, {}, buttons)


def find_loop(bot_turns: list[str], times: int = 3) -> str | None:
    """The reply text the bot sent ``times`` turns in a row, if it did."""
    for i in range(len(bot_turns) - times + 1):
        run = bot_turns[i:i + times]
        if run[0] and all(t == run[0] for t in run):
            return run[0]
    return None


# ------------------------------------------------------------------------------------------------
# The clinic as the database has it, and the offers as the buttons show them

@dataclass(frozen=True)
class Clinic:
    tz: ZoneInfo
    dentists: dict[int, str]  # id -> full name ("Dr. James Chen")
    services: dict[int, str]  # id -> name ("Root canal")

    @classmethod
    def load(cls, db_url: str, tz: ZoneInfo) -> "Clinic":
        with psycopg.connect(db_url) as conn:
            dentists = dict(conn.execute("SELECT id, full_name FROM dentists ORDER BY id").fetchall())
            services = dict(conn.execute("SELECT id, name FROM services ORDER BY id").fetchall())
        return cls(tz, dentists, services)

    def dentist_id(self, key: str) -> int | None:
        return next((i for i, n in self.dentists.items() if n.split()[-1].lower() == key), None)

    def service_id(self, key: str) -> int | None:
        return next((i for i, n in self.services.items() if n.lower() == key), None)

    def today(self) -> date:
        return datetime.now(self.tz).date()


_WHEN = re.compile(r"^(?P<day>today|tomorrow|(?P<wd>[A-Z][a-z]{2}) (?P<mon>[A-Z][a-z]{2}) (?P<dom>\d{1,2})), "
                   r"(?P<h>\d{1,2}):(?P<m>\d{2}) (?P<ap>AM|PM)$")
_WHO = re.compile(r"for (?P<name>.+) \((?P<phone>[^()]*\d[^()]*)\)$")  # the summary's ", for NAME (PHONE)"
_CHOICE = re.compile(r'"slot_choice":\s*"([^"|]+)\|(\d+)"')


def label_time(label: str, today: date, tz: ZoneInfo) -> datetime | None:
    """The instant a bot's time label names ("Tue Dec 8, 2:30 PM", "tomorrow, 9:00 AM")."""
    m = _WHEN.match(label.strip())
    if not m:
        return None
    hour = int(m["h"]) % 12 + (12 if m["ap"] == "PM" else 0)
    if m["wd"]:
        month = [x[:3] for x in MONTHS].index(m["mon"]) + 1
        day = date(today.year, month, int(m["dom"]))
        if day < today:
            day = day.replace(year=today.year + 1)
    else:
        day = today + timedelta(days=1 if m["day"] == "tomorrow" else 0)
    return datetime.combine(day, clock_time(hour, int(m["m"])), tz)


@dataclass(frozen=True)
class Offer:
    title: str
    payload: str
    starts_at: datetime
    dentist_id: int
    when: str           # the title's time label
    doc: str | None     # "Dr. Chen" when the title names the dentist
    day: str            # "Tue Dec 8", "tomorrow"
    h: int
    m: int
    ap: str


def offers_in(buttons: tuple[dict, ...]) -> list[Offer]:
    found = []
    for b in buttons:
        choice = _CHOICE.search(b.get("payload", ""))
        if not choice:
            continue
        when, _, doc = b.get("title", "").partition(" · ")
        m = _WHEN.match(when)
        if not m:
            continue
        found.append(Offer(b["title"], b["payload"], datetime.fromisoformat(choice[1]), int(choice[2]), when,
                           doc or None, m["day"], int(m["h"]), int(m["m"]), m["ap"]))
    return found


@dataclass(frozen=True)
class Visit:
    """An appointment the patient already has (for moving or cancelling)."""
    id: int
    service: str  # key
    dentist_id: int
    starts_at: datetime


# ------------------------------------------------------------------------------------------------
# The patient

@dataclass(frozen=True)
class Style:
    greet: float      # greets at the start
    polite: float     # please / thanks, per message
    lower: float      # types in lower case (a habit: decided once per conversation)
    nopunct: float    # leaves punctuation out (a habit)
    typos: tuple[int, int]
    chatter: float    # small talk, per message


STYLES = {
    Persona.CLICKER: Style(0.3, 0.3, 0.2, 0.2, (0, 0), 0.1),
    Persona.TERSE: Style(0.05, 0.1, 0.85, 0.9, (0, 0), 0.0),
    Persona.CHATTY: Style(0.9, 0.9, 0.05, 0.0, (0, 0), 0.7),
    Persona.TYPO: Style(0.3, 0.4, 0.5, 0.5, (1, 2), 0.2),
    Persona.TYPER: Style(0.3, 0.3, 0.2, 0.2, (0, 0), 0.1),
    Persona.CORRECTOR: Style(0.3, 0.4, 0.3, 0.3, (0, 0), 0.2),
    Persona.ALL_AT_ONCE: Style(0.5, 0.2, 0.9, 1.0, (0, 1), 0.0),
    Persona.WRONG_ORDER: Style(0.3, 0.4, 0.3, 0.3, (0, 0), 0.2),
}
KEEP = "\x02", "\x03"  # around the words a typo must not touch
PROTECTED = {"yes", "yeah", "yep", "not", "don't", "dont", "no"}
# wrong-order: asked the first, the patient answers with the second
TRICKS = {"service": "dentist", "dentist": "time", "full_name": "phone"}


def keep(text: str) -> str:
    return f"{KEEP[0]}{text}{KEEP[1]}"


def typo(word: str, rng: random.Random) -> str:
    """One letter swapped with the next, dropped or doubled (never the first or the last character)."""
    inner = [i for i in range(1, len(word) - 1) if word[i].isalpha()]
    if not inner:
        return word
    i = rng.choice(inner)
    op = rng.randrange(3)
    if op == 0 and i + 2 < len(word) and word[i] != word[i + 1] and word[i + 1].isalpha():
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == 2:
        return word[:i] + word[i] + word[i:]
    return word[:i] + word[i + 1:]


@dataclass(frozen=True)
class Utterance:
    text: str
    act: str              # what the patient meant: "opening", "pick:clock", "name", ...
    payload: bool = False  # a button tapped


@dataclass
class Correction:
    field: str     # service, dentist, time or intent
    wrong: str     # the value said first
    inline: bool   # corrected in the same message
    stated: bool = False
    due: bool = False


class Patient:
    """One simulated patient: ``opening()``, then ``react(replies)`` until it returns None."""

    def __init__(self, goal: Goal, persona: Persona, rng: random.Random, clinic: Clinic,
                 visits: tuple[Visit, ...] = ()):
        self.goal, self.persona, self.rng, self.clinic = goal, Persona(persona), rng, clinic
        self.style = STYLES[self.persona]
        self.lower = rng.random() < self.style.lower
        self.nopunct = rng.random() < self.style.nopunct
        self.visits = visits
        self.target = visits[0] if visits else None
        self.given: set[str] = set()
        self.choice: Offer | None = None
        self.refused: set[str] = set()  # payloads of offers the bot said were not free
        self.reasons: list[str] = []
        self.notes: list[str] = []
        self.reasked = 0
        self.done: str | None = None
        self.last: Callable[[], Utterance] | None = None
        self.last_text = ""
        self.last_act = ""
        self.greeted_apart = False
        self.picks = 0
        self.fixes: dict[str, int] = {}  # corrections made at the summary, per detail
        self.correction = self._plan_correction() if self.persona is Persona.CORRECTOR else None
        self.tricks = self._plan_tricks() if self.persona is Persona.WRONG_ORDER else set()

    # --- plans ---------------------------------------------------------------------------------

    def _plan_correction(self) -> Correction:
        g, rng = self.goal, self.rng
        if g.kind == "cancel":
            return Correction("intent", "reschedule", inline=True)
        fields = ["time"] if g.kind == "reschedule" else ["dentist", "service", "time"]
        what = rng.choice(fields)
        if what == "dentist":
            wrong = rng.choice([k for k in DENTISTS if k not in (g.dentist, "any")])
        elif what == "service":
            wrong = rng.choice([k for k in SERVICES if k != g.service])
        else:
            wrong = next(p for p in preference_phrases(self.clinic.today(), rng) if p != g.when)
        return Correction(what, wrong, inline=rng.random() < 0.3)

    def _plan_tricks(self) -> set[str]:
        if self.goal.kind not in BOOKING_KINDS:
            return set()
        tricks = {"full_name"}
        if self.rng.random() < 0.5:
            tricks.add(self.rng.choice(("service", "dentist")))
        return tricks

    # --- how it types ----------------------------------------------------------------------------

    def _render(self, text: str, *, typos: int | None = None) -> str:
        """Typos outside the kept spans, the persona's case and punctuation habits, markers gone."""
        pieces = re.split(f"({KEEP[0]}.*?{KEEP[1]})", text)
        spots = [(i, m.start(), m.end()) for i, p in enumerate(pieces) if not p.startswith(KEEP[0])
                 for m in re.finditer(r"[A-Za-z']{4,}", p) if m.group().lower() not in PROTECTED]
        count = self.rng.randint(*self.style.typos) if typos is None else typos
        for i, start, end in sorted(self.rng.sample(spots, min(count, len(spots))), key=lambda s: -s[1]):
            word = pieces[i][start:end]
            pieces[i] = pieces[i][:start] + typo(word, self.rng) + pieces[i][end:]
        if self.nopunct:
            pieces = [p if p.startswith(KEEP[0]) else re.sub(r"[.,!?;:]", "", p) for p in pieces]
        out = "".join(pieces).replace(KEEP[0], "").replace(KEEP[1], "")
        out = re.sub(r"\s+", " ", out).strip()
        return out.lower() if self.lower else out

    def _dress(self, core: str, *, polite: bool = True, greet: bool = False, chatter: bool = True) -> str:
        """``core`` with the persona's greeting, small talk and please/thanks."""
        rng, style = self.rng, self.style
        text = core
        if polite and rng.random() < style.polite:
            if text.endswith("?"):
                text += rng.choice((" Thanks!", " Thank you."))
            else:
                text = rng.choice(("{}, please", "{} please", "{}, thanks", "{}. Thank you!")).format(text)
        if greet:
            opener = rng.choice(GREETINGS).capitalize() + "!"
            if rng.random() < style.chatter:
                opener += " " + rng.choice(SMALL_TALK)
            text = f"{opener} {text}"
        elif chatter and rng.random() < style.chatter:
            text = rng.choice(("Sure! ", "Great, ", "Perfect, ", "Oh lovely. ")) + text
        return text

    def _phrase(self, what: str, value: str, inline: bool) -> str:
        rng = self.rng
        if what == "service":
            words = SERVICES[value]
            return keep(rng.choice(words.inline if inline else words.answer))
        if what == "dentist":
            words = DENTISTS[value]
            return keep(rng.choice(words.inline if inline else words.answer))
        if what == "time":
            bare = value.split()[0].lower() in [d.lower() for d in WEEKDAYS] or value.startswith("the ") \
                or value.split()[0] in MONTHS
            return ("on " if inline and bare and rng.random() < 0.5 else "") + keep(value)
        if what == "full_name":
            return keep(self.goal.name)
        if what == "phone":
            d = self.goal.phone
            a, b, c = d[:3], d[3:6], d[6:]
            return keep(rng.choice((f"{a} {b} {c}", f"({a}) {b}-{c}", f"{a}-{b}-{c}", d, f"{a}.{b}.{c}",
                                    f"+1 {a} {b} {c}")))
        raise ValueError(what)

    def _goal_value(self, what: str) -> str:
        g = self.goal
        return {"service": g.service, "dentist": g.dentist, "time": g.when}.get(what, "")

    def _field(self, what: str, inline: bool) -> str:
        """The phrase for a detail, as said now: the wrong one first if this patient will correct it."""
        right = self._phrase(what, self._goal_value(what), inline)
        c = self.correction
        if c and c.field == what and c.stated and c.due:
            c.due = False  # said again (not understood): now it comes out right
        elif c and c.field == what and not c.stated:
            c.stated = True
            wrong = self._phrase(what, c.wrong, inline)
            if c.inline:
                self.given.add(what)
                return self.rng.choice(("{w}, no sorry, {r}", "{w}... no wait, {r}",
                                        "{w} - sorry, I mean {r}")).format(w=wrong, r=right)
            c.due = True
            return wrong
        self.given.add(what)
        return right

    def _say(self, make: Callable[[], Utterance], *, again: bool = False) -> Utterance:
        """A message from ``make`` (which only phrases: what to say is decided before); said
        ``again`` it comes out in other words when it can."""
        said = make()
        for _ in range(8 if again else 0):
            if said.payload or said.text != self.last_text:
                break
            said = make()
        self.last, self.last_text, self.last_act = make, said.text, said.act
        return said

    # --- the first message -------------------------------------------------------------------------

    def opening(self) -> Utterance:
        if self.persona is not Persona.ALL_AT_ONCE and self.rng.random() < self.style.greet / 3:
            self.greeted_apart = True
            return self._say(lambda: Utterance(self._render(self.rng.choice(GREETINGS)), "greeting"))
        return self._say(self._request)

    def _request(self) -> Utterance:
        greet = not self.greeted_apart and self.rng.random() < self.style.greet
        if self.persona is Persona.ALL_AT_ONCE:
            return Utterance(self._render(self._all_at_once(), typos=2), "all-at-once")
        if self.goal.kind == "book":
            return Utterance(self._render(self._dress(self._book_request(), greet=greet)), "opening")
        if self.goal.kind == "availability_then_book":
            return Utterance(self._render(self._dress(self._availability_request(), greet=greet)), "opening")
        return Utterance(self._render(self._dress(self._manage_request(), greet=greet, polite=False)),
                         "opening")

    def _book_request(self) -> str:
        rng = self.rng
        share = {Persona.TERSE: 0.4, Persona.CHATTY: 0.7, Persona.CLICKER: 0.2, Persona.TYPER: 0.3}.get(
            self.persona, 0.5)
        told = [w for w in ("service", "dentist", "time") if rng.random() < share]
        thing = (self._field("service", True) if "service" in told
                 else rng.choice(("an appointment", "a visit")))
        if self.persona is Persona.TERSE:
            text = rng.choice(("book {t}", "need {t}", "{t} pls", "appointment for {t}" if "service" in told
                               else "book {t}")).format(t=thing)
        else:
            text = rng.choice(("I'd like to book {t}", "Can I book {t}?", "I need {t}", "Could I get {t}?",
                               "I want to book {t}", "I'd like to come in for {t}")).format(t=thing)
        tail = ""
        if "dentist" in told:
            tail += " with " + self._field("dentist", True)
        if "time" in told:
            tail += " " + self._field("time", True)
        return text[:-1] + tail + "?" if text.endswith("?") else text + tail

    def _availability_request(self) -> str:
        rng = self.rng
        thing, when = self._field("service", True), self._field("time", True)
        who = ("" if self.goal.dentist == "any" and rng.random() < 0.6
               else " with " + self._field("dentist", True))
        if self.persona is Persona.TERSE:
            return rng.choice(("any openings {w} for {t}{d}", "free times {w} {t}{d}",
                               "whats free {w} for {t}{d}")).format(w=when, t=thing, d=who)
        return rng.choice(("What's free {w} for {t}{d}?", "Do you have anything {w} for {t}{d}?",
                           "Any openings for {t}{d} {w}?", "What times do you have {w} for {t}{d}?",
                           "Is there a free slot {w} for {t}{d}?")).format(w=when, t=thing, d=who)

    def _visit_ref(self) -> str:
        rng, v = self.rng, self.target
        assert v is not None
        local = v.starts_at.astimezone(self.clinic.tz)
        service = SERVICES[v.service].title.lower()
        return keep(rng.choice((f"my {service}", f"my {service} appointment", "my appointment",
                                f"my appointment on {WEEKDAYS[local.weekday()]}",
                                f"my {service} on {WEEKDAYS[local.weekday()]}", "my visit")))

    def _manage_request(self) -> str:
        rng, ref = self.rng, self._visit_ref()
        if self.goal.kind == "cancel":
            if self.correction:  # changes their mind in mid-sentence
                self.correction.stated = True
                return rng.choice(("I need to move {r}... actually no, just cancel it",
                                   "Can I reschedule {r}? No wait, I'd rather cancel it")).format(r=ref)
            if self.persona is Persona.WRONG_ORDER:
                return rng.choice(("{r} - I need to cancel it",
                                   "{r}, I can't make it, cancel please")).format(r=ref)
            return rng.choice(("I need to cancel {r}", "Please cancel {r}", "Can I cancel {r}?",
                               "I can't make {r}, please cancel it", "cancel {r}")).format(r=ref)
        if self.persona is Persona.WRONG_ORDER:
            return rng.choice(("{w} would suit me better, I need to move {r}",
                               "{w} please - it's about moving {r}")).format(w=self._field("time", False),
                                                                               r=ref)
        text = rng.choice(("I need to move {r}", "Can I reschedule {r}?",
                           "I'd like to change the time of {r}", "Something came up, could we move {r}?",
                           "reschedule {r}")).format(r=ref)
        if rng.random() < 0.4:
            text = text.rstrip("?") + " to " + self._field("time", True) + ("?" if text.endswith("?") else "")
        return text

    def _all_at_once(self) -> str:
        rng = self.rng
        if self.goal.kind in ("reschedule", "cancel"):
            what = "move {r} to {w}" if self.goal.kind == "reschedule" else "cancel {r}"
            return f"{rng.choice(GREETINGS)} need to " + what.format(
                r=self._visit_ref(), w=self._field("time", False)) + " thanks"
        for what in ("service", "dentist", "time", "full_name", "phone"):
            self.given.add(what)
        service, dentist = self._phrase("service", self.goal.service, True), self._phrase(
            "dentist", self.goal.dentist, True)
        when, name, phone = (self._phrase("time", self.goal.when, True), self._phrase("full_name", "", False),
                             self._phrase("phone", "", False))
        verb = "whats free" if self.goal.kind == "availability_then_book" else rng.choice(
            ("need", "want to book", "can i get", "please book"))
        who = rng.choice(("{n} {p}", "im {n} {p}", "name {n} phone {p}", "{n} number {p}")).format(n=name,
                                                                                                  p=phone)
        greeting = rng.choice(GREETINGS) + " " if rng.random() < self.style.greet else ""
        return f"{greeting}{verb} {service} with {dentist} {when} {who} please thanks"

    # --- replies -----------------------------------------------------------------------------------

    def react(self, messages: list[BotMessage]) -> Utterance | None:
        """The next message, or None when the patient is done (for better or worse)."""
        if self.done:
            return None
        for m in messages:
            if m.kind in (Kind.DONE, Kind.DEAD_END):
                return self._finish(m)
        prompts = [m for m in messages if m.kind not in (Kind.INFO, Kind.ERROR)]
        if self.choice and any(m.response in NOT_FREE for m in messages):
            self.refused.add(self.choice.payload)
        if not prompts:
            return self.again()
        prompt = prompts[-1]
        if self.correction and self.correction.due:
            return self._say(self._correct)
        if prompt.kind is Kind.WELCOME:
            if self.last_act != "greeting":
                self.notes.append(f"the bot started over ({prompt.response}) after {self.last_act}")
            return self._say(self._request)
        asked = {Kind.ASK_SERVICE: "service", Kind.ASK_DENTIST: "dentist", Kind.ASK_TIME: "time",
                 Kind.ASK_NAME: "full_name", Kind.ASK_PHONE: "phone"}.get(prompt.kind)
        if asked:
            return self._answer(asked, prompt)
        if prompt.kind is Kind.OFFER:
            return self._pick(prompt, messages)
        if prompt.kind is Kind.ASK_VISIT:
            return self._say(lambda: self._which_visit(prompt))
        if prompt.kind is Kind.ASK_CODE:
            return self._say(self._code)
        return self._confirm(prompt)

    def _code(self) -> Utterance:
        """The code from the text message, as people type it ({code}: the runner reads the phone)."""
        ways = {Persona.TERSE: ("{code}",), Persona.CHATTY: ("my code is {code}, thanks!", "It's {code} :)"),
                Persona.TYPO: ("{code}", "its {code}"), Persona.CLICKER: ("{code}",)}.get(
            self.persona, ("{code}", "{code}", "it's {code}", "code is {code}", "{spaced}"))
        return Utterance(self.rng.choice(ways), "code")

    def again(self) -> Utterance | None:
        """The last message once more, in other words (what people do when they are not understood)."""
        return self._say(self.last, again=True) if self.last else None

    def _finish(self, m: BotMessage) -> Utterance | None:
        if self.done:
            return None
        self.done = m.response
        wanted = {"book": "utter_booked", "availability_then_book": "utter_booked",
                  "reschedule": "utter_rescheduled", "cancel": "utter_cancelled"}[self.goal.kind]
        if m.response != wanted:
            self.reasons.append(f"dead end {m.response}: the bot said {m.text!r}")
            return None
        if self.persona is Persona.CHATTY and self.rng.random() < 0.5:
            return self._say(lambda: Utterance(self._render(self.rng.choice(
                ("Thanks so much!", "Perfect, thank you!", "Great, thanks a lot."))), "thanks"))
        return None

    def _correct(self) -> Utterance:
        c = self.correction
        assert c is not None
        c.due = False
        self.given.add(c.field)
        right = self._phrase(c.field, self._goal_value(c.field), False)
        wrong = self._phrase(c.field, c.wrong, False)
        templates = {
            "dentist": ("sorry, I meant {r}", "actually, can I see {r} instead?", "oh wait, make that {r}",
                        "no sorry, {r} not {w}"),
            "service": ("sorry, I meant {r}, not {w}", "actually it's {r} I need",
                        "oh wait, {r} please, not {w}"),
            "time": ("actually, could we do {r} instead?", "sorry, {r} would be better",
                     "hmm, make that {r}"),
        }[c.field]
        if c.field == "dentist" and self.goal.dentist == "any":
            templates = ("actually any dentist is fine", "actually I don't mind who",
                         "oh, anyone is fine actually")
        return Utterance(self._render(self.rng.choice(templates).format(r=right, w=wrong)),
                         f"correction:{c.field}")

    def _answer(self, asked: str, prompt: BotMessage) -> Utterance:
        if asked in self.tricks and TRICKS[asked] not in self.given:
            self.tricks.discard(asked)
            later = TRICKS[asked]
            return self._say(lambda: self._answer_text(later, act=f"wrong-order:{later}-for-{asked}"))
        if asked in self.given:
            self.reasked += 1
            self.notes.append(f"asked again for {asked}")
        self.given.add(asked)
        key = {"service": self.goal.service, "dentist": self.goal.dentist}.get(asked)
        button = next((b for b in prompt.buttons
                       if key and f'"{asked}": "{key}"' in b.get("payload", "")), None)
        if button and self.persona is Persona.CLICKER:
            return self._say(lambda: Utterance(button["payload"], asked, payload=True))
        if button and self.persona is Persona.TYPER:
            return self._say(lambda: Utterance(self._render(keep(self.rng.choice(
                (button["title"], button["title"].lower())))), asked))
        return self._say(lambda: self._answer_text(asked, act=asked))

    def _answer_text(self, what: str, act: str) -> Utterance:
        rng = self.rng
        detail = what in ("service", "dentist", "time")
        value = self._field(what, False) if detail else self._phrase(what, "", False)
        self.given.add(what)
        if what == "service":
            text = rng.choice(("{v}", "{v}", "I need {v}", "just {v}"))
        elif what == "dentist":
            text = ("{v}" if self.goal.dentist == "any"
                    else rng.choice(("{v}", "{v} if possible", "I'd like {v}")))
        elif what == "time":
            text = rng.choice(("{v}", "{v} would be good", "how about {v}?", "{v} works for me",
                               "ideally {v}"))
        elif what == "full_name":
            text = rng.choice(("{v}", "{v}", "it's {v}", "my name is {v}", "I'm {v}"))
            if self.persona is Persona.CHATTY:
                text = rng.choice(("Sure, it's {v}", "Of course! {v}", "{v}"))
        else:
            text = rng.choice(("{v}", "{v}", "it's {v}", "my number is {v}", "you can reach me on {v}"))
        return Utterance(self._render(self._dress(text.format(v=value), polite=detail, chatter=detail)), act)

    # --- offers ------------------------------------------------------------------------------------

    def _wanted_dentist(self) -> int | None:
        if self.goal.kind in ("reschedule", "cancel"):
            return self.target.dentist_id if self.target else None
        return None if self.goal.dentist == "any" else self.clinic.dentist_id(self.goal.dentist)

    def _pick(self, prompt: BotMessage, messages: list[BotMessage]) -> Utterance:
        offers = offers_in(prompt.buttons) or [o for m in messages for o in offers_in(m.buttons)]
        if not offers:
            return self.again() or self._say(self._request)
        whom = prompt.fields.get("for_whom", "")
        want_service = SERVICES[self.target.service if self.target else self.goal.service].title.lower()
        if whom and f" {want_service}" not in whom.lower():
            return self._say(lambda: Utterance(self._render(self.rng.choice(
                ("no, I need {s}", "I asked for {s}", "it's for {s}")).format(
                s=self._phrase("service", self.goal.service, True))), "restate:service"))
        wanted = self._wanted_dentist()
        fits = [o for o in offers if wanted is None or o.dentist_id == wanted]
        if not fits:
            self.notes.append("no offer with the dentist asked for")
            return self._say(lambda: Utterance(self._render(self.rng.choice(
                ("I wanted {d}", "no, with {d} please", "it has to be {d}")).format(
                d=self._phrase("dentist", self.clinic.dentists[wanted].split()[-1].lower(), False))),
                "restate:dentist"))
        fresh = [o for o in fits if o.payload not in self.refused] or fits
        again = [o for o in fresh if self.choice and o.payload == self.choice.payload]
        offer = again[0] if again else self.rng.choice(fresh)  # offered again, not refused: the same choice
        self.choice = offer
        self.picks += 1
        return self._say(lambda: self._name_offer(offer, offers))

    def _name_offer(self, offer: Offer, offers: list[Offer]) -> Utterance:
        rng = self.rng
        if self.persona is Persona.CLICKER:
            return Utterance(offer.payload, "pick:tap", payload=True)
        if self.persona is Persona.TYPER:
            return Utterance(self._render(keep(rng.choice((offer.title, offer.when, offer.title.lower())))),
                             "pick:title")
        same_clock = sum((o.h, o.m, o.ap) == (offer.h, offer.m, offer.ap) for o in offers) == 1
        same_day = sum(o.day == offer.day for o in offers) == 1
        by_doc = offer.doc is not None and sum(o.doc == offer.doc for o in offers) == 1
        weights = {"clock": 3 * same_clock, "day-clock": 2, "ordinal": 2, "words": same_clock,
                   "dentist": by_doc, "day": same_day}
        if self.persona is Persona.TERSE:
            weights.update(words=0, dentist=0)
        way = rng.choices(list(weights), weights=list(weights.values()))[0]
        clock, day, doc = self._clock(offer), self._day(offer), offer.doc or ""
        core = {
            "clock": lambda: clock,
            "day-clock": lambda: rng.choice(("{d} at {c}", "{d} {c}", "{c} on {d}")).format(d=day, c=clock),
            "ordinal": lambda: rng.choice(ORDINALS[offers.index(offer)] + (
                ("the last one",) if offer is offers[-1] and len(offers) > 2 else ())),
            "words": lambda: self._clock_words(offer),
            "dentist": lambda: "the one with " + rng.choice((doc, doc.replace(".", ""))),
            "day": lambda: rng.choice(("the {d} one", "{d}")).format(d=day),
        }[way]()
        forms = ["{x}", "{x} please", "{x} works for me", "I'll take {x}", "let's do {x}", "{x} is good",
                 "can I have {x}?", "{x} sounds good"]
        if way == "clock":
            forms += ["the {x} one", "the {x} slot"]
        if self.goal.kind == "availability_then_book" and self.picks == 1:  # no booking started yet
            forms = ["I'll take {x}", "can I book {x}?", "book {x} please", "I'd like {x}",
                     "could you book me in for {x}?", "{x} please"]
            if way == "clock":
                forms += ["I'll take the {x} one", "book the {x} one please"]
        text = rng.choice(forms).format(x=keep(core))
        return Utterance(self._render(self._dress(text, polite=False)), f"pick:{way}")

    def _clock(self, offer: Offer) -> str:
        hm, ap = f"{offer.h}:{offer.m:02d}", offer.ap.lower()
        forms = [hm, f"{hm} {ap}", f"{hm}{ap}"]
        if offer.m == 0:
            forms = [f"{offer.h}{ap}", f"{offer.h} {ap}", hm, f"{offer.h} o'clock"]
        return self.rng.choice(forms)

    def _clock_words(self, offer: Offer) -> str:
        word = NUMBER_WORDS[offer.h]
        if offer.m == 0:
            return "noon" if (offer.h, offer.ap) == (12, "PM") else f"{word} o'clock"
        return {15: f"quarter past {word}", 30: self.rng.choice((f"half past {word}", f"{word} thirty")),
                45: f"quarter to {NUMBER_WORDS[offer.h % 12 + 1]}"}.get(offer.m, f"{word} {offer.m}")

    def _day(self, offer: Offer) -> str:
        if offer.day in ("today", "tomorrow"):
            return offer.day
        wd, mon, dom = offer.day.split()
        weekday = next(d for d in WEEKDAYS if d.startswith(wd))
        return self.rng.choice((weekday, weekday.lower(), wd, f"{mon} {dom}", f"the {ordinal(int(dom))}",
                                f"{weekday} the {ordinal(int(dom))}"))

    def _asked_for(self, when: str, prompt: BotMessage) -> Offer | None:
        """The summary's time as the patient's choice, when it is a time the patient asked for
        (``fits``): a bot that goes straight to "Thursday 9:00 AM, shall I book it?" for "Thursday
        between 9am and noon" is right, and the patient says yes."""
        at = label_time(when, self.clinic.today(), self.clinic.tz)
        if at is None or not fits(self.goal.when, at, self.clinic.today(), self.clinic.tz):
            return None
        dentist = (prompt.fields.get("dentist") or "").strip()
        dentist_id = self._wanted_dentist() or next(
            (i for i, n in self.clinic.dentists.items() if n == dentist), 0)
        return Offer(when, "", at, dentist_id, when, None, when.split(",")[0], int(at.strftime("%I")),
                     at.minute, at.strftime("%p"))

    # --- which visit, and the summary ----------------------------------------------------------------

    def _which_visit(self, prompt: BotMessage) -> Utterance:
        rng, target = self.rng, self.target
        assert target is not None
        mine = next((b for b in prompt.buttons
                     if f'"appointment_id": "{target.id}"' in b.get("payload", "")), None)
        if mine and self.persona is Persona.CLICKER:
            return Utterance(mine["payload"], "visit:tap", payload=True)
        if mine and self.persona is Persona.TYPER:
            return Utterance(self._render(keep(mine["title"])), "visit:title")
        local = target.starts_at.astimezone(self.clinic.tz)
        service = SERVICES[target.service].title.lower()
        weekday = WEEKDAYS[local.weekday()]
        others = [v for v in self.visits if v is not target]
        ways = [f"the {service} on {weekday}", f"my {service} on {weekday}"]
        if all(v.service != target.service for v in others):
            ways += [f"the {service}", f"my {service}", f"the {service} one"]
        if all(v.starts_at.astimezone(self.clinic.tz).weekday() != local.weekday() for v in others):
            ways += [f"the one on {weekday}", f"{weekday}'s"]  # unambiguous only if no other is on that weekday
        if all(v.dentist_id != target.dentist_id for v in others):
            doc = self.clinic.dentists[target.dentist_id].split()[-1]
            ways += [f"the one with Dr {doc}"]
        return Utterance(self._render(self._dress(keep(rng.choice(ways)), polite=False)), "visit:words")

    def _confirm(self, prompt: BotMessage) -> Utterance:
        wrong = self._check_summary(prompt)
        if wrong:
            what, problem = wrong
            self.notes.append(f"summary: {problem}")
            self.fixes[what] = self.fixes.get(what, 0) + 1
            if what in ("visit", "unchosen") or self.fixes[what] > 2:  # nothing to correct, or no use
                self.reasons.append(f"summary mismatch: {problem}")
                return self._say(lambda: Utterance(self._render(self.rng.choice(
                    ("no, that's not what I asked for", "no, that's wrong", "no"))), "no"))
            return self._say(lambda: self._fix_summary(what), again=self.fixes[what] > 1)
        affirm = next((b for b in prompt.buttons if b.get("payload") == "/affirm"), None)
        if affirm and self.persona is Persona.CLICKER:
            return self._say(lambda: Utterance("/affirm", "yes:tap", payload=True))
        if affirm and self.persona is Persona.TYPER:
            return self._say(lambda: Utterance(self._render(keep(affirm["title"])), "yes:title"))
        yes = {Persona.TERSE: ("yes", "yep", "ok", "yes pls", "sure"),
               Persona.CHATTY: ("Yes please, that's perfect!", "That's great, yes please. Thanks!",
                                "Yes, that's right, thank you!", "Sounds good, yes please!")}.get(
            self.persona, ("yes", "yes please", "yep", "that's right", "correct", "sounds good",
                           "yes that's fine", "sure, go ahead", "ok"))
        return self._say(lambda: Utterance(self._render(keep(self.rng.choice(yes))), "yes"))

    def _fix_summary(self, what: str) -> Utterance:
        """A correction of the summary's ``what``, as a person makes it ("no, my name is Ada Lovelace")."""
        rng = self.rng
        if what == "name":
            text = rng.choice(("no, my name is {v}", "the name should be {v}", "no, it's just {v}"))
            value = keep(self.goal.name)
        elif what == "phone":
            text, value = rng.choice(("no, my number is {v}", "the number should be {v}")), self._phrase(
                "phone", "", False)
        elif what == "dentist":
            wanted = self._wanted_dentist() or (self.choice.dentist_id if self.choice else 0)
            key = self.clinic.dentists.get(wanted, "Dr. Any").split()[-1].lower()
            text, value = "no, with {v} please", self._phrase("dentist", key, False)
        elif what == "service":
            text, value = rng.choice(("no, it's for {v}", "no, I need {v}")), self._phrase(
                "service", self.goal.service, True)
        else:
            assert self.choice is not None
            text = rng.choice(("no, I picked {v}", "no, I wanted {v}"))
            value = keep(f"{self._day(self.choice)} at {self._clock(self.choice)}")
        return Utterance(self._render(text.format(v=value)), f"fix:{what}")

    def _check_summary(self, prompt: BotMessage) -> tuple[str, str] | None:
        """What in the summary differs from what the patient chose, and how (None: all is right)."""
        f = {k: (v or "").strip() for k, v in prompt.fields.items()}
        when = f.get("when", "")
        if prompt.response == "utter_confirm_cancel":
            t = self.target
            assert t is not None
            at = label_time(when, self.clinic.today(), self.clinic.tz)
            if at != t.starts_at or f.get("service", "").lower() != SERVICES[t.service].title.lower():
                return "visit", (f"asked to cancel {f.get('service')} {when}, the patient's visit is "
                                 f"{t.service} {t.starts_at}")
            return None
        if self.choice is None:
            self.choice = self._asked_for(when, prompt)
        if self.choice is None:
            return "unchosen", f"asked to confirm {when!r}, which is not {self.goal.when!r}"
        if when != self.choice.when:
            return "time", f"the summary says {when!r}, the patient picked {self.choice.when!r}"
        wanted = self.clinic.dentists.get(self._wanted_dentist() or self.choice.dentist_id)
        if f.get("dentist") != wanted:
            return "dentist", f"the summary says {f.get('dentist')!r}, the patient wants {wanted!r}"
        if prompt.response != "utter_confirm_booking":
            return None
        if f.get("service", "").lower() != SERVICES[self.goal.service].title.lower():
            return "service", (f"the summary says {f.get('service')!r}, the patient wants "
                               f"{self.goal.service!r}")
        who = _WHO.search(f.get("who", ""))
        if who and not _same_name(who["name"], self.goal.name):
            return "name", f"the summary says the name is {who['name']!r}, not {self.goal.name!r}"
        if who and not re.sub(r"\D", "", who["phone"]).endswith(self.goal.phone):
            return "phone", f"the summary says the phone is {who['phone']!r}, not {self.goal.phone!r}"
        return None


# ------------------------------------------------------------------------------------------------
# Judging

@dataclass(frozen=True)
class Row:
    """An appointment as the judge reads it."""
    id: int
    patient: str
    phone: str | None
    dentist_id: int
    service: str  # name, as in services
    starts_at: datetime
    status: str


@dataclass(frozen=True)
class Expected:
    kind: str
    service: str                 # key
    dentist_id: int | None
    starts_at: datetime | None   # None: the patient never chose a time
    name: str = ""
    visit_id: int | None = None  # moving / cancelling: the visit
    untouched: tuple[Row, ...] = ()  # the patient's other visits, as they were


def judge(expected: Expected, rows: list[Row]) -> list[str]:
    """What in the database differs from what the patient wanted (empty: all is right)."""
    found: list[str] = []
    by_id = {r.id: r for r in rows}
    for before in expected.untouched:
        after = by_id.get(before.id)
        if after is None or (after.starts_at, after.status) != (before.starts_at, before.status):
            found.append(f"db other visit changed: #{before.id} was {before.starts_at} {before.status}")
    known = {expected.visit_id, *(r.id for r in expected.untouched)}
    if expected.kind in BOOKING_KINDS:
        live = [r for r in rows if r.status != "cancelled"]
        if not live:
            return found + ["db no visit: nothing booked"]
        if len(live) > 1:
            found.append(f"db several visits: {len(live)} booked")
        visit = live[0]
        if expected.starts_at is None:
            return found + [f"db booked without a choice: {visit.starts_at}"]
        if not _same_name(visit.patient, expected.name):
            found.append(f"db wrong name: stored {visit.patient!r}, the patient said {expected.name!r}")
    else:
        new = [r for r in rows if r.id not in known]
        if new:
            found.append(f"db extra visits: {len(new)} new")
        visit = by_id.get(expected.visit_id)  # type: ignore[arg-type]
        if visit is None:
            return found + ["db no visit: the visit is gone"]
        if expected.kind == "cancel":
            if visit.status != "cancelled":
                found.append(f"db not cancelled: status {visit.status}")
            return found
        if visit.status == "cancelled":
            return found + ["db not moved: the visit was cancelled"]
        if expected.starts_at is None:
            return found + ["db not moved: the patient never chose a new time"]
    if visit.service.lower() != expected.service:
        found.append(f"db wrong service: {visit.service}, wanted {expected.service}")
    if expected.dentist_id is not None and visit.dentist_id != expected.dentist_id:
        found.append(f"db wrong dentist: #{visit.dentist_id}, wanted #{expected.dentist_id}")
    if visit.starts_at != expected.starts_at:
        label = "db not moved" if expected.kind == "reschedule" else "db wrong start"
        found.append(f"{label}: the visit starts {visit.starts_at}, the patient chose {expected.starts_at}")
    return found


def _same_name(stored: str, said: str) -> bool:
    return " ".join(stored.split()).casefold() == " ".join(said.split()).casefold()


def read_rows(db_url: str, *, phone: str | None = None, conversation: str = "",
              patient_id: int = 0) -> list[Row]:
    """The visits of the patient with ``phone`` or ``patient_id``, and those booked in ``conversation``."""
    with psycopg.connect(db_url) as conn:
        found = conn.execute(
            "SELECT a.id, p.full_name, p.phone, a.dentist_id, s.name, a.starts_at, a.status"
            " FROM appointments a"
            " JOIN patients p ON p.id = a.patient_id JOIN services s ON s.id = a.service_id"
            " WHERE p.phone = %s OR a.patient_id = %s"
            " OR a.id IN (SELECT appointment_id FROM chat_bookings WHERE conversation_id = %s) ORDER BY a.id",
            (phone, patient_id, conversation)).fetchall()
    return [Row(*r) for r in found]


# ------------------------------------------------------------------------------------------------
# Running conversations

class ChatStack(Protocol):
    """What a conversation needs of ``bot.stack.Stack``."""
    db_url: str
    settings: Any

    async def say(self, sender: str, text: str, metadata: dict | None = None) -> list[dict]: ...

    def health(self) -> dict: ...  # the action server's GET /health


@dataclass
class Result:
    success: bool
    reasons: list[str]
    transcript: list[tuple[str, str]]
    turns: int
    loop: bool
    error_texts: list[str]
    goal: Goal | None = None
    persona: str = ""
    seed: int = 0
    task: int = -1
    run: int = -1
    latencies_ms: list[float] = field(default_factory=list)
    error_responses: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reasked: int = 0

    def categories(self) -> list[str]:
        """Each reason's kind ("error text utter_default after pick:clock", "db wrong start"), once."""
        return list(dict.fromkeys(r.split(": ", 1)[0] for r in self.reasons))


_BOOKING: dict[str, Any] = {}
_CLINICS: dict[str, Clinic] = {}


def _booking_service(stack: ChatStack):
    from bot.booking import BookingService
    from bot.db import make_engine

    if stack.db_url not in _BOOKING:
        engine = make_engine(stack.settings.database_url, pool_size=1)
        _BOOKING[stack.db_url] = BookingService(engine, stack.settings)
    return _BOOKING[stack.db_url]


def create_visits(stack: ChatStack, clinic: Clinic, goal: Goal,
                  rng: random.Random) -> tuple[int, tuple[Visit, ...]]:
    """The patient (by name and phone) and the visits the front desk booked for them: the goal's,
    and with a chance of one in three another one, so the bot has to ask which."""
    from bot.booking import Outcome
    from bot.tokens import Identity

    service = _booking_service(stack)
    found = service.find_or_create_patient(goal.name, goal.phone)
    assert found.patient_id is not None, found
    wants = [(goal.service, goal.dentist)]
    if rng.random() < 1 / 3:
        wants.append((rng.choice([k for k in SERVICES if k != goal.service]), "any"))
    visits = []
    today = clinic.today()
    for key, dentist in wants:
        dentist_id = clinic.dentist_id(dentist) or rng.choice(sorted(clinic.dentists))
        service_id = clinic.service_id(key)
        for _ in range(40):
            day = today + timedelta(days=rng.randint(2, 21))
            start = datetime.combine(day, clock_time(0), clinic.tz)
            slots = service.available_slots(service_id, start, start + timedelta(days=1),
                                            dentist_id=dentist_id)
            if not slots:
                continue
            slot = rng.choice(slots)
            done = service.book(Identity(role="admin", sub="admin"), patient_id=found.patient_id,
                                dentist_id=dentist_id, service_id=service_id, starts_at=slot.starts_at,
                                status="confirmed")
            if done.outcome is Outcome.BOOKED and done.appointment is not None:
                visits.append(Visit(done.appointment.id, key, dentist_id, slot.starts_at))
                break
    assert visits, f"no free time for the patient's existing {goal.service}"
    return found.patient_id, tuple(visits)


def sent_code(db_url: str, phone: str) -> str:
    """The last code texted to ``phone`` (the notifications row: what the patient's phone shows)."""
    from bot.otp import last_code_sent

    with psycopg.connect(db_url) as conn:
        return last_code_sent(conn, phone) or "no code came"


def _clinic(stack: ChatStack) -> Clinic:
    if stack.db_url not in _CLINICS:
        _CLINICS[stack.db_url] = Clinic.load(stack.db_url, stack.settings.tz)
    return _CLINICS[stack.db_url]


def _shown(m: BotMessage) -> str:
    titles = [b.get("title", "") for b in m.buttons]
    return m.text + (f" [{' | '.join(titles)}]" if titles else "")


async def run_conversation(stack: ChatStack, goal: Goal, persona: Persona | str, seed: int, *,
                           max_turns: int = MAX_TURNS) -> Result:
    """One patient with ``goal`` and ``persona`` chats until done or ``max_turns`` messages; the verdict."""
    from bot.phone import normalise_phone
    from bot.tokens import mint

    rng = random.Random(seed)
    persona = Persona(persona)
    clinic = _clinic(stack)
    patient_id, visits, metadata = 0, (), None
    if goal.kind in ("reschedule", "cancel"):
        patient_id, visits = create_visits(stack, clinic, goal, rng)
        metadata = {"token": mint("patient", patient_id, settings=stack.settings)}
    before = read_rows(stack.db_url, patient_id=patient_id) if patient_id else []
    patient = Patient(goal, persona, rng, clinic, visits)
    sender = f"sim-{uuid.uuid4().hex[:16]}"
    result = Result(False, [], [], 0, False, [], goal, persona.value, seed)
    bot_turns: list[str] = []
    said = patient.opening()
    while said is not None:
        if result.turns >= max_turns:
            result.reasons.append(f"too many turns: still going after {max_turns} messages "
                                  f"(last: {said.act})")
            break
        typed = said.text
        if "{code}" in typed or "{spaced}" in typed:  # the patient reads the text message on their phone
            code = sent_code(stack.db_url, normalise_phone(goal.phone))
            typed = typed.replace("{code}", code).replace("{spaced}", f"{code[:3]} {code[3:]}")
        t0 = time.perf_counter()
        try:
            replies = await stack.say(sender, typed, metadata)
        except Exception as exc:  # the stack itself failed: say so, judge what is there
            result.reasons.append(f"transport: {type(exc).__name__}: {exc}")
            break
        result.latencies_ms.append((time.perf_counter() - t0) * 1000)
        result.turns += 1
        result.transcript.append(("patient", typed))
        messages = [read(r) for r in replies]
        result.transcript.extend(("bot", _shown(m)) for m in messages)
        for m in messages:
            if m.kind is Kind.ERROR or (m.response in NOT_FREE and said.act.startswith("pick:")):
                result.error_texts.append(m.text)
                result.error_responses.append(m.response or "?")
                result.reasons.append(f"error text {m.response} after {said.act}: "
                                      f"the patient said {said.text!r}")
            elif m.response is None:
                result.notes.append(f"a text domain.yml does not have: {m.text!r}")
        bot_turns.append(" ".join(m.text for m in messages))
        repeated = find_loop(bot_turns)
        if repeated is not None:
            result.loop = True
            result.reasons.append(f"loop: the bot said {repeated!r} three times in a row")
            break
        said = patient.react(messages)
    result.reasons += patient.reasons
    choice = patient.choice
    if goal.kind in BOOKING_KINDS:
        wanted = clinic.dentist_id(goal.dentist) or (choice.dentist_id if choice else None)
        expected = Expected(goal.kind, goal.service, wanted, choice.starts_at if choice else None, goal.name)
        rows = read_rows(stack.db_url, phone=normalise_phone(goal.phone), conversation=sender)
    else:
        target = visits[0]
        moved_to = (choice.starts_at if choice else None) if goal.kind == "reschedule" else target.starts_at
        expected = Expected(goal.kind, target.service, target.dentist_id, moved_to, visit_id=target.id,
                            untouched=tuple(r for r in before if r.id != target.id))
        rows = read_rows(stack.db_url, patient_id=patient_id, conversation=sender)
    result.reasons += judge(expected, rows)
    result.notes += patient.notes
    result.reasked = patient.reasked
    result.success = not result.reasons
    return result


# ------------------------------------------------------------------------------------------------
# Tasks and runs

PERSONAS = tuple(Persona)
KIND_CYCLE = ("book", "availability_then_book", "reschedule", "book", "cancel")


@dataclass(frozen=True)
class Task:
    kind: str
    service: str
    dentist: str
    persona: Persona


def make_tasks(count: int, seed: int) -> list[Task]:
    """``count`` tasks: personas and goal kinds in turn (every pairing within 40 tasks: 8 and 5 share no
    factor), services and dentists drawn from ``seed``."""
    rng = random.Random(seed)
    return [Task(KIND_CYCLE[i % len(KIND_CYCLE)], rng.choice(sorted(SERVICES)), rng.choice(sorted(DENTISTS)),
                 PERSONAS[i % len(PERSONAS)]) for i in range(count)]


def goal_for(task: Task, index: int, run: int, seed: int, today: date) -> Goal:
    """Run ``run`` of task ``index``: each run of a task gets its own day/time phrase (drawn once per
    task, so runs never share one), name and phone number."""
    phrases = preference_phrases(today, random.Random(f"{seed}:{index}"))
    rng = random.Random(f"{seed}:{index}:{run}")
    number = 1000 + (index * 7 + run) % 9000
    return Goal(task.kind, task.service, task.dentist, phrases[run % len(phrases)],
                f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                f"{rng.choice(AREA_CODES)}555{number:04d}")


def conversation_seed(seed: int, index: int, run: int) -> int:
    return seed * 1_000_000 + index * 10 + run


async def run_tasks(stack: ChatStack, tasks: list[Task], runs: int, seed: int,
                    progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Every task ``runs`` times, one conversation after another (one user at a time), each on the
    clinic as it was before the first: a run of a task never depends on what another run booked."""
    today = _clinic(stack).today()
    with psycopg.connect(stack.db_url) as conn:
        known = conn.execute("SELECT coalesce(max(id), 0) FROM appointments").fetchone()[0]
    results = []
    for run in range(runs):
        for index, task in enumerate(tasks):
            goal = goal_for(task, index, run, seed, today)
            result = await run_conversation(stack, goal, task.persona, conversation_seed(seed, index, run))
            result.task, result.run = index, run
            results.append(result)
            await forget_bookings(stack, known)
            if progress:
                progress(result)
    return results


async def forget_bookings(stack: ChatStack, known: int, timeout: float = 30) -> None:
    """The visits after id ``known`` and every slot hold deleted, once the action server's cache has
    taken that in (its /health names the last outbox event it applied)."""
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM slot_holds")
        conn.execute("DELETE FROM appointments WHERE id > %s", (known,))
        newest = conn.execute("SELECT coalesce(max(id), 0) FROM realtime_events").fetchone()[0]
    deadline = time.monotonic() + timeout
    while True:
        cache = (await asyncio.to_thread(stack.health))["cache"]
        if (cache.get("last_event_id") or 0) >= newest and not cache.get("refreshing"):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the action server's cache did not apply outbox event {newest} "
                               f"in {timeout:g} s")
        await asyncio.sleep(0.02)  # another process: its /health is the only way to ask


def pass_k(results: list[Result]) -> dict[int, bool]:
    """Per task: whether every one of its runs succeeded."""
    tasks: dict[int, bool] = {}
    for r in results:
        tasks[r.task] = tasks.get(r.task, True) and r.success
    return tasks


def describe(result: Result, lines: int = 4) -> str:
    """A failure in a few lines: the goal, persona, seed, why, and the end of the transcript."""
    g = result.goal
    head = (f"task {result.task} run {result.run}: {g.kind if g else '?'} {g.service if g else ''} with "
            f"{g.dentist if g else ''}, {g.when if g else ''!r} · {result.persona} · seed {result.seed}")
    tail = "\n".join(f"    {who}: {text}" for who, text in result.transcript[-lines:])
    return f"{head}\n  " + "\n  ".join(result.reasons) + f"\n{tail}"


def to_json(result: Result) -> dict:
    out = {k: v for k, v in result.__dict__.items() if k != "goal"}
    out["goal"] = result.goal.__dict__ if result.goal else None
    return json.loads(json.dumps(out, default=str))
