"""The booking form's actions against a real, seeded PostgreSQL (pinned clock)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

from actions.booking import ActionFinishBooking, AskBookingConfirmed, AskSlotChoice, ValidateBookingForm
from actions.formatting import decode_choice
from actions.manage import describe
from bot.booking import AppointmentView, BookingService
from bot.db import session_scope
from bot.models import Appointment, Patient
from bot.tokens import Identity
from actions.verify import AskVerificationCode
from action_kit import DOMAIN, Chat, prove_phone, seeded_gateway, sent_code, type_code

TZ = ZoneInfo("America/New_York")
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=TZ)  # a Monday morning
FILLING = 3  # the seed's filling: a dentist's visit, unlike its cleaning (a hygienist's)


@pytest.fixture
def gw(engine, settings, availability_source):
    with seeded_gateway(engine, settings, NOW, availability_source) as gateway:
        yield gateway


def count_appointments(engine, **where) -> int:
    with session_scope(engine) as s:
        q = select(func.count()).select_from(Appointment)
        for k, v in where.items():
            q = q.where(getattr(Appointment, k) == v)
        return s.scalar(q)


async def fill_until_confirmation(chat: Chat, *, name: str = "Ada Lovelace", phone: str = "(212) 555-0199",
                                  service: str = "cleaning"):
    """One-shot request, pick the first offer, give name and phone: returns the chosen button value."""
    form = ValidateBookingForm()
    chat.active_loop = "booking_form"
    chat.say(f"I'd like a {service} with dr alvarez tomorrow afternoon", "book_appointment",
             {"service": service, "dentist": "alvarez", "time": "tomorrow afternoon"},
             service=service, dentist="alvarez", time="tomorrow afternoon")
    await chat.run(form)
    offer = await chat.run(AskSlotChoice())
    choice = offer.buttons()[0]["payload"].split('"slot_choice": "')[1].split('"')[0]
    chat.say(offer.buttons()[0]["payload"], "inform", {"slot_choice": choice}, slot_choice=choice)
    await chat.run(form)
    chat.say(name, "inform", full_name=name)
    await chat.run(form)
    chat.say(phone, "inform", {"phone": phone}, phone=phone)
    await chat.run(form)
    return choice


async def test_one_shot_booking_offers_spread_slots_and_books_after_confirmation(gw, engine):
    chat = Chat()
    form = ValidateBookingForm()
    chat.active_loop = "booking_form"
    chat.say("I'd like a cleaning with dr alvarez tomorrow afternoon", "book_appointment",
             {"service": "cleaning", "dentist": "alvarez", "time": "tomorrow afternoon"},
             service="cleaning", dentist="alvarez", time="tomorrow afternoon")
    turn = await chat.run(form)
    window = "2027-03-02T17:00:00+00:00|2027-03-02T22:00:00+00:00|||"  # 12-17 local, as UTC
    assert turn.events == [
        {"event": "slot", "timestamp": None, "name": "service", "value": "cleaning"},
        {"event": "slot", "timestamp": None, "name": "dentist", "value": "alvarez"},
        {"event": "slot", "timestamp": None, "name": "time", "value": "tomorrow afternoon"},
        {"event": "slot", "timestamp": None, "name": "time_window", "value": window},
        {"event": "slot", "timestamp": None, "name": "slot_choice", "value": None},
        {"event": "slot", "timestamp": None, "name": "offered_slots", "value": None},
        {"event": "slot", "timestamp": None, "name": "confirmed", "value": None},
    ]
    assert turn.responses == []

    offer = await chat.run(AskSlotChoice())
    assert offer.responses == ["utter_offer_slots"]
    buttons = offer.buttons()
    assert 2 <= len(buttons) <= 6
    starts = [decode_choice(b["payload"].split('"slot_choice": "')[1].split('"')[0])[0] for b in buttons]
    assert all(datetime(2027, 3, 2, 12, tzinfo=TZ) <= s < datetime(2027, 3, 2, 17, tzinfo=TZ) for s in starts)
    assert starts == sorted(starts) and starts[-1] - starts[0] >= (starts[1] - starts[0]) * (len(starts) - 1)
    assert buttons[0]["title"] == "tomorrow, 1:30 PM"  # Dr. Alvarez's lunch ends at 13:30
    assert [e["name"] for e in offer.events] == ["offered_slots"]

    choice = buttons[1]["payload"].split('"slot_choice": "')[1].split('"')[0]
    chat.say(buttons[1]["payload"], "inform", {"slot_choice": choice}, slot_choice=choice)
    turn = await chat.run(form)
    assert turn.events == [
        {"event": "slot", "timestamp": None, "name": "slot_choice", "value": choice},
        {"event": "slot", "timestamp": None, "name": "confirmed", "value": None},
    ]
    chat.say("Ada Lovelace", "inform", full_name="Ada Lovelace")
    assert (await chat.run(form)).slots() == {"full_name": "Ada Lovelace"}
    chat.say("212 555 0199", "inform", {"phone": "212 555 0199"}, phone="212 555 0199")
    assert (await chat.run(form)).slots() == {"phone": "+12125550199"}

    summary = await chat.run(AskBookingConfirmed())
    assert summary.responses == ["utter_confirm_booking"]
    assert summary.messages[0]["service"] == "Cleaning" and summary.messages[0]["price"] == "$140"
    assert summary.messages[0]["dentist"] == "Dr. Maria Alvarez"
    assert count_appointments(engine) == 9  # nothing written before the yes

    chat.say("yes", "affirm", confirmed=True)
    turn = await chat.run(form)
    assert turn.responses == ["utter_code_sent"]  # a code to the phone first: nothing booked yet
    assert turn.messages[0]["where"] == "(•••) •••-0199"
    assert turn.slots() == {"confirmed": True, "verification_code": None, "code_status": "sent"}
    assert count_appointments(engine) == 9
    asked = await chat.run(AskVerificationCode())
    assert asked.responses == []  # the message that the code was sent already asks for it

    code = sent_code(gw.settings.database_url, "+12125550199")
    turn = await type_code(chat, form, gw.settings.database_url, "+12125550199", f"{(int(code) + 1) % 10**6:06d}")
    assert turn.responses == ["utter_code_wrong"] and turn.messages[0]["tries"] == 4
    assert count_appointments(engine) == 9
    turn = await type_code(chat, form, gw.settings.database_url, "+12125550199")
    assert turn.responses == ["utter_code_ok", "utter_booked"]
    booked_id = chat.slots["booked_appointment_id"]
    assert turn.slots() == {"verification_code": "ok", "code_status": "verified", "patient_id": chat.slots["patient_id"],
                            "confirmed": True, "outcome": "done", "booked_appointment_id": booked_id,
                            "requested_slot": None}
    with session_scope(engine) as s:
        appt = s.get(Appointment, booked_id)
        assert appt.starts_at == decode_choice(choice)[0] and appt.service.name == "Cleaning"
        assert appt.patient.full_name == "Ada Lovelace" and appt.patient.phone == "+12125550199"

    done = await chat.run(ActionFinishBooking())
    assert done.responses == []
    assert {e["name"] for e in done.events} == {"service", "dentist", "time", "time_window", "offered_slots",
                                                  "slot_choice", "confirmed", "appointment_id", "outcome", "misunderstood",
                                                  "verification_code", "code_status"}
    assert all(e["value"] is None for e in done.events)


async def test_slot_taken_meanwhile_offers_nearest_alternatives_and_keeps_the_form(gw, engine, settings):
    chat = Chat()
    choice = await fill_until_confirmation(chat, service="filling")  # a dentist's: taken means taken
    prove_phone(gw, chat, "+12125550199")  # proved earlier in this conversation: asked once
    starts_at, dentist_id = decode_choice(choice)
    # the pick is held for a few minutes; the patient took longer, and someone else booked it
    rival = BookingService(engine, settings, clock=lambda: NOW + timedelta(minutes=settings.hold_minutes + 1))
    taken = rival.book(Identity("patient", "patient:2", patient_id=2), patient_id=2, dentist_id=dentist_id,
                       service_id=FILLING, starts_at=starts_at)
    assert taken.outcome.value == "booked"

    chat.say("yes", "affirm", confirmed=True)
    turn = await chat.run(ValidateBookingForm())
    assert turn.responses == ["utter_slot_taken"]
    slots = turn.slots()
    assert slots["confirmed"] is None and slots["slot_choice"] is None and "outcome" not in slots
    alternatives = slots["offered_slots"]
    assert alternatives and all(a["starts_at"] != starts_at.isoformat() for a in alternatives)
    assert count_appointments(engine, patient_id=chat.slots["patient_id"]) == 0

    again = await chat.run(AskSlotChoice())
    assert again.responses == ["utter_pick_alternative"]
    assert len(again.buttons()) == len(alternatives)


def booked_keys(engine) -> list[str]:
    """The idempotency keys of every visit (the seed's have none)."""
    with session_scope(engine) as s:
        return list(s.scalars(select(Appointment.idempotency_key).where(Appointment.idempotency_key.is_not(None))))


async def test_the_same_yes_delivered_twice_books_once_by_its_message_id(gw, engine):
    """A retried request: the same message (same message id) reaches the action again, with the
    conversation state from before the first delivery. The idempotency key answers it."""
    chat = Chat()
    await fill_until_confirmation(chat)
    prove_phone(gw, chat, "+12125550199")  # proved earlier in this conversation: asked once
    before = count_appointments(engine)
    chat.say("yes", "affirm", confirmed=True)
    message, tracker_slots, log = dict(chat.latest), dict(chat.slots), list(chat.turn_log)
    first = await chat.run(ValidateBookingForm())
    chat.slots, chat.latest, chat.extracted, chat.turn_log = tracker_slots, message, {"confirmed": True}, log
    second = await chat.run(ValidateBookingForm())
    assert first.responses == second.responses == ["utter_booked"]
    assert first.slots()["booked_appointment_id"] == second.slots()["booked_appointment_id"]
    assert count_appointments(engine) == before + 1
    assert booked_keys(engine) == [f"chat:{chat.sender_id}:{message['message_id']}"]


async def test_two_action_calls_racing_with_one_yes_book_once(gw, engine):
    """Two action-server calls with the same tracker at the same moment (two threads, each with
    its own event loop, as two server workers would run them): one visit, both told it is booked."""
    chat = Chat()
    await fill_until_confirmation(chat)
    prove_phone(gw, chat, "+12125550199")  # proved earlier in this conversation: asked once
    before = count_appointments(engine)
    chat.say("yes", "affirm", confirmed=True)
    tracker = chat.tracker()
    start = threading.Barrier(2)

    def call() -> list[str | None]:
        dispatcher = CollectingDispatcher()
        start.wait()
        asyncio.run(ValidateBookingForm().run(dispatcher, tracker, DOMAIN))
        return [m.get("response") for m in dispatcher.messages]

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: call(), range(2)))
    assert answers == [["utter_booked"], ["utter_booked"]]
    assert count_appointments(engine) == before + 1
    assert booked_keys(engine) == [f"chat:{chat.sender_id}:{chat.latest['message_id']}"]


async def test_invalid_phone_is_asked_again(gw):
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.slots["requested_slot"] = "phone"
    chat.say("12345", "inform", phone="12345")
    turn = await chat.run(ValidateBookingForm())
    assert turn.responses == ["utter_invalid_phone"]
    assert turn.events == [{"event": "slot", "timestamp": None, "name": "phone", "value": None},
                           {"event": "slot", "timestamp": None, "name": "misunderstood",
                            "value": {"slot": "phone", "count": 1}}]


async def test_hostile_name_is_stored_verbatim(gw, engine):
    hostile = "Robert'); DROP TABLE patients;--"
    chat = Chat()
    await fill_until_confirmation(chat, name=hostile, phone="+1 212 555 0177")
    prove_phone(gw, chat, "+12125550177")
    chat.say("yes", "affirm", confirmed=True)
    turn = await chat.run(ValidateBookingForm())
    assert turn.responses == ["utter_booked"]
    with session_scope(engine) as s:
        assert s.scalar(select(Patient.full_name).where(Patient.phone == "+12125550177")) == hostile
        assert s.scalar(select(func.count()).select_from(Patient)) == 25


async def test_a_question_at_the_name_prompt_is_not_taken_as_a_name(gw):
    chat = Chat()
    chat.slots["requested_slot"] = "full_name"
    chat.say("what are your opening hours?", "faq", full_name="what are your opening hours?")
    turn = await chat.run(ValidateBookingForm())
    assert turn.responses == ["utter_invalid_name"]
    assert turn.events == [{"event": "slot", "timestamp": None, "name": "full_name", "value": None},
                           {"event": "slot", "timestamp": None, "name": "misunderstood",
                            "value": {"slot": "full_name", "count": 1}}]


async def test_declining_the_summary_books_nothing(gw, engine):
    chat = Chat()
    await fill_until_confirmation(chat)
    chat.say("no", "deny", confirmed=False)
    turn = await chat.run(ValidateBookingForm())
    assert turn.responses == ["utter_booking_declined"]
    assert turn.slots() == {"confirmed": False, "outcome": "declined", "requested_slot": None}
    assert count_appointments(engine) == 9


async def test_signed_in_patient_is_not_asked_for_name_or_phone(gw, engine, settings):
    from bot.tokens import mint

    chat = Chat(metadata={"token": mint("patient", 3, settings=settings)})
    form = ValidateBookingForm()
    chat.active_loop = "booking_form"
    chat.say("a filling next monday morning with anyone", "book_appointment",
             {"service": "filling", "dentist": "any", "time": "next monday morning"},
             service="filling", dentist="any", time="next monday morning")
    turn = await chat.run(form)
    assert turn.events[-1] == {"event": "slot", "timestamp": None, "name": "requested_slot",
                               "value": "slot_choice"}
    offer = await chat.run(AskSlotChoice())
    # the last offer: patient 3's own root canal fills Monday 8:00-9:30 (the first may overlap it)
    choice = offer.buttons()[-1]["payload"].split('"slot_choice": "')[1].split('"')[0]
    assert " · Dr. " in offer.buttons()[-1]["title"]  # "any dentist": the button says who
    chat.say("the last one", "inform", {"slot_choice": choice}, slot_choice=choice)
    turn = await chat.run(form)
    assert turn.events[-1] == {"event": "slot", "timestamp": None, "name": "requested_slot",
                               "value": "confirmed"}
    chat.say("yes", "affirm", confirmed=True)
    turn = await chat.run(form)
    assert turn.responses == ["utter_booked"]
    assert count_appointments(engine, patient_id=3, service_id=3) == 1


async def test_a_typed_pick_among_the_offers_and_an_unknown_service(gw):
    chat = Chat()
    form = ValidateBookingForm()
    chat.active_loop = "booking_form"
    chat.say("a facelift please", "book_appointment", {"service": "facelift"}, service="facelift")
    turn = await chat.run(form)
    assert turn.responses == ["utter_invalid_service"]
    chat.say("cleaning with chen on wednesday", "inform", {"service": "cleaning", "dentist": "chen"},
             service="cleaning", dentist="chen", time="on wednesday")
    await chat.run(form)
    offer = await chat.run(AskSlotChoice())
    second = offer.buttons()[1]
    chat.say("the second one", "inform", slot_choice="the second one")
    turn = await chat.run(form)
    assert turn.responses == []
    assert turn.slots()["slot_choice"] == second["payload"].split('"slot_choice": "')[1].split('"')[0]


async def test_a_forged_slot_button_is_refused(gw):
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.slots.update(service="cleaning", dentist="alvarez", time="tomorrow")
    forged = "2027-03-02T03:00:00-05:00|1"  # 3 in the night
    chat.say(f'/inform{{"slot_choice": "{forged}"}}', "inform", {"slot_choice": forged}, slot_choice=forged)
    turn = await chat.run(ValidateBookingForm())
    assert turn.responses == ["utter_slot_not_offered"]
    assert turn.slots()["slot_choice"] is None


async def test_an_error_in_the_data_layer_never_reaches_the_chat(gw, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("psycopg.OperationalError: secret connection string")

    monkeypatch.setattr(gw, "free_slots", boom)
    chat = Chat()
    chat.slots.update(service="cleaning", dentist="alvarez", time="tomorrow")
    turn = await chat.run(AskSlotChoice())
    assert turn.responses == ["utter_sorry_error"]
    assert turn.events == []
    assert "secret" not in repr(turn.messages)


def test_the_pinned_clock_is_a_monday_morning():
    assert NOW.isoweekday() == 1 and NOW.timetz() == time(8, 0, tzinfo=TZ)


async def test_a_name_that_looks_like_a_dentist_does_not_change_the_booking(gw):
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.slots.update(service="cleaning", dentist="chen", time="tomorrow", requested_slot="full_name",
                      slot_choice="2027-03-02T09:00:00-05:00|2")
    chat.say("my name is Maria Santos", "inform", {"dentist": "alvarez"},
             dentist="alvarez", full_name="my name is Maria Santos")
    history = [{"event": "slot", "name": "dentist", "value": "chen"}]
    tracker = chat.tracker()
    tracker.events[:0] = history
    from rasa_sdk.executor import CollectingDispatcher
    from action_kit import DOMAIN

    events = await ValidateBookingForm().run(CollectingDispatcher(), tracker, DOMAIN)
    slots = {e["name"]: e["value"] for e in events}
    assert slots["dentist"] == "chen" and slots["full_name"] == "Maria Santos"
    assert "slot_choice" not in slots


async def test_a_new_time_typed_at_the_offers_brings_new_offers(gw):
    chat = Chat()
    form = ValidateBookingForm()
    chat.active_loop = "booking_form"
    chat.say("cleaning with alvarez tomorrow afternoon", "book_appointment",
             {"service": "cleaning", "dentist": "alvarez", "time": "tomorrow afternoon"},
             service="cleaning", dentist="alvarez", time="tomorrow afternoon")
    await chat.run(form)
    first = await chat.run(AskSlotChoice())
    chat.slots["requested_slot"] = "slot_choice"
    chat.say("thursday morning instead", "inform", {"time": "thursday morning"},
             time="thursday morning", slot_choice="thursday morning instead")
    turn = await chat.run(form)
    assert turn.slots()["slot_choice"] is None and turn.slots()["offered_slots"] is None
    again = await chat.run(AskSlotChoice())
    assert again.responses == ["utter_offer_slots"]
    assert again.buttons() != first.buttons()
    assert all(b["title"].startswith("Thu Mar 4") for b in again.buttons())


async def test_a_picked_slot_is_held_from_other_chats_until_the_booking(gw, engine):
    chat = Chat("chat-a")
    choice = await fill_until_confirmation(chat, service="filling")  # a dentist's: one patient at a time
    prove_phone(gw, chat, "+12125550199")  # proved earlier in this conversation: asked once
    starts_at, dentist_id = decode_choice(choice)
    assert not gw.is_free(FILLING, dentist_id, starts_at)  # nobody else is offered it meanwhile

    other = Chat("chat-b")
    other.active_loop = "booking_form"
    other.slots.update(service="filling", dentist="alvarez", time="tomorrow afternoon")
    other.say(f'/inform{{"slot_choice": "{choice}"}}', "inform", {"slot_choice": choice}, slot_choice=choice)
    turn = await other.run(ValidateBookingForm())
    assert turn.responses == ["utter_slot_not_offered"]

    chat.say("yes", "affirm", confirmed=True)
    assert (await chat.run(ValidateBookingForm())).responses == ["utter_booked"]


async def test_stopping_releases_the_hold(gw):
    from actions.handoff import ActionStop

    chat = Chat()
    choice = await fill_until_confirmation(chat)
    starts_at, dentist_id = decode_choice(choice)
    chat.say("never mind", "stop")
    assert (await chat.run(ActionStop())).responses == ["utter_stopped"]
    assert gw.is_free(1, dentist_id, starts_at)


def test_every_outcome_a_chat_can_meet_has_a_response():
    from actions.common import INTERNAL_OUTCOMES, OUTCOME_RESPONSES
    from bot.booking import Outcome
    from action_kit import DOMAIN

    for outcome in Outcome:
        if outcome in INTERNAL_OUTCOMES:
            continue
        assert OUTCOME_RESPONSES[outcome] in DOMAIN["responses"], outcome


async def test_todays_weekday_after_the_last_bookable_time_offers_next_weeks(engine, settings):
    """ "Monday", said on a Monday evening: nothing of today's can be booked, so next Monday's
    times (docs/assistant.md), not "that's too soon" and not Tuesday's."""
    evening = datetime(2027, 3, 1, 18, 30, tzinfo=TZ)
    with seeded_gateway(engine, settings, evening, "sql"):
        chat = Chat()
        chat.active_loop = "booking_form"
        chat.say("a cleaning with dr alvarez on monday", "book_appointment",
                 {"service": "cleaning", "dentist": "alvarez", "time": "on monday"},
                 service="cleaning", dentist="alvarez", time="on monday")
        await chat.run(ValidateBookingForm())
        offer = await chat.run(AskSlotChoice())
    assert offer.responses == ["utter_offer_slots"]
    days = {decode_choice(b["payload"].split('"slot_choice": "')[1].split('"')[0])[0].astimezone(TZ).date()
            for b in offer.buttons()}
    assert days == {datetime(2027, 3, 8).date()}


async def test_good_morning_greets_and_asks_no_time(gw):
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.say("Good morning! Could I get a crown fitting? Thank you.", "book_appointment",
             {"service": "crown", "time": "morning"}, service="crown", time="morning")
    turn = await chat.run(ValidateBookingForm())
    assert turn.slots().get("time") is None and not turn.slots().get("time_window")
    assert turn.responses == []


async def test_a_cleaning_booked_names_the_hygienist_who_performs_it(gw, engine):
    """A cleaning is a hygienist's service (the seed): the booking's answer, the list of visits
    and the cancel question name the hygienist the database assigned, not the dentist of record."""
    chat = Chat()
    await fill_until_confirmation(chat, name="Ada Lovelace", phone="+1 212 555 0177")
    prove_phone(gw, chat, "+12125550177")
    chat.say("yes", "affirm", confirmed=True)
    turn = await chat.run(ValidateBookingForm())
    assert turn.responses == ["utter_booked"]
    with session_scope(engine) as s:
        appt = s.scalars(select(Appointment).join(Patient).where(Patient.phone == "+12125550177")).one()
        hygienist = appt.hygienist.full_name
        assert appt.service.name == "Cleaning" and appt.hygienist_id is not None
    (said,) = turn.messages
    assert said["dentist"] == f"{hygienist}, hygienist"
    with session_scope(engine) as s:
        view = AppointmentView.of(s.get(Appointment, appt.id))
    assert describe(gw, view).startswith(f"Cleaning with {hygienist}, hygienist, ")
