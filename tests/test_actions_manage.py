"""Listing, cancelling and moving visits: only the caller's own, whatever id is typed."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.manage import (ActionListAppointments, AskAppointmentId, AskConfirmCancel,
                            AskRescheduleSlotChoice, ValidateCancelForm, ValidateRescheduleForm)
from actions.formatting import decode_choice
from bot.db import session_scope
from bot.models import Appointment
from bot.tokens import mint
from action_kit import Chat, prove_phone, seeded_gateway, without_requested_slot

TZ = ZoneInfo("America/New_York")
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=TZ)


@pytest.fixture
def gw(engine, settings, availability_source):
    with seeded_gateway(engine, settings, NOW, availability_source) as gateway:
        yield gateway


def visits_of(engine, patient_id: int) -> list[Appointment]:
    with session_scope(engine) as s:
        return list(s.scalars(select(Appointment).where(Appointment.patient_id == patient_id)
                              .order_by(Appointment.starts_at)))


def status(engine, appointment_id: int) -> str:
    with session_scope(engine) as s:
        return s.get(Appointment, appointment_id).status


async def test_token_patient_lists_only_their_own_visits(gw, engine, settings):
    own = visits_of(engine, 1)
    assert len(own) == 2  # the seed gives patient 1 a cleaning and a whitening
    chat = Chat(metadata={"token": mint("patient", 1, settings=settings)})
    chat.say("what appointments do I have?", "list_appointments")
    turn = await chat.run(ActionListAppointments())
    assert turn.responses == ["utter_your_appointments"]
    assert without_requested_slot(turn.events) == []
    text = turn.messages[0]["appointments"]
    assert [line.split()[1] for line in text.splitlines()] == [f"#{a.id}" for a in own]
    others = [a.id for p in range(2, 9) for a in visits_of(engine, p)]
    assert not any(f"#{i} " in text for i in others)


async def test_a_forged_or_expired_token_counts_as_anonymous(gw, engine, settings):
    chat = Chat(metadata={"token": mint("patient", 1, settings=settings)[:-3] + "abc"})
    chat.say("my appointments", "list_appointments")
    turn = await chat.run(ActionListAppointments())
    assert turn.responses == ["utter_no_appointments_anonymous"]
    assert turn.messages[0]["phone"] == settings.clinic_phone


async def test_anonymous_cancel_of_a_strangers_appointment_is_refused(gw, engine):
    stranger = visits_of(engine, 1)[0]
    chat = Chat()
    chat.active_loop = "cancel_form"
    chat.say(f"cancel appointment {stranger.id}", "cancel_appointment", {"appointment_id": str(stranger.id)},
             appointment_id=str(stranger.id))
    turn = await chat.run(ValidateCancelForm())
    assert turn.responses == ["utter_no_appointments_anonymous"]
    # the form ends at once (action_finish_cancel then clears the id that was named)
    assert turn.events == [{"event": "slot", "timestamp": None, "name": "requested_slot", "value": None}]
    assert status(engine, stranger.id) == "confirmed"


async def test_a_signed_in_patient_cannot_name_someone_elses_id(gw, engine, settings):
    stranger = visits_of(engine, 2)[0]
    chat = Chat(metadata={"token": mint("patient", 1, settings=settings)})
    chat.active_loop = "cancel_form"
    chat.slots["requested_slot"] = "appointment_id"
    chat.say(f"/cancel_appointment{{\"appointment_id\": \"{stranger.id}\"}}", "cancel_appointment",
             {"appointment_id": str(stranger.id)}, appointment_id=str(stranger.id))
    turn = await chat.run(ValidateCancelForm())
    assert turn.responses == ["utter_appointment_not_found"]
    assert without_requested_slot(turn.events) == [{"event": "slot", "timestamp": None, "name": "appointment_id", "value": None},
                           {"event": "slot", "timestamp": None, "name": "misunderstood",
                            "value": {"slot": "appointment_id", "count": 1}}]
    assert status(engine, stranger.id) == "confirmed"


async def test_signed_in_patient_picks_and_cancels_one_of_two(gw, engine, settings):
    own = visits_of(engine, 1)
    chat = Chat(metadata={"token": mint("patient", 1, settings=settings)})
    chat.active_loop = "cancel_form"
    chat.say("cancel my appointment", "cancel_appointment")
    turn = await chat.run(ValidateCancelForm())
    assert without_requested_slot(turn.events) == []  # two visits: which one is asked, nothing guessed
    ask = await chat.run(AskAppointmentId())
    assert [b["payload"] for b in ask.buttons()] == [
        f'/cancel_appointment{{"appointment_id": "{a.id}"}}' for a in own]

    chat.slots["requested_slot"] = "appointment_id"
    chat.say(ask.buttons()[1]["payload"], "cancel_appointment", {"appointment_id": str(own[1].id)},
             appointment_id=str(own[1].id))
    turn = await chat.run(ValidateCancelForm())
    assert without_requested_slot(turn.events) == [
        {"event": "slot", "timestamp": None, "name": "appointment_id", "value": str(own[1].id)}]
    confirm = await chat.run(AskConfirmCancel())
    assert confirm.responses == ["utter_confirm_cancel"] and confirm.messages[0]["service"] == "Whitening"

    chat.slots["requested_slot"] = "confirmed"
    chat.say("yes", "affirm", confirmed=True)
    turn = await chat.run(ValidateCancelForm())
    assert turn.responses == ["utter_cancelled"]
    assert without_requested_slot(turn.events) == [
        {"event": "slot", "timestamp": None, "name": "confirmed", "value": True},
        {"event": "slot", "timestamp": None, "name": "outcome", "value": "done"},
    ]
    assert status(engine, own[1].id) == "cancelled" and status(engine, own[0].id) == "confirmed"


async def test_anonymous_chat_may_cancel_what_it_booked_itself(gw, engine):
    from test_actions_booking import fill_until_confirmation
    from actions.booking import ActionFinishBooking, ValidateBookingForm

    chat = Chat()
    await fill_until_confirmation(chat)
    prove_phone(gw, chat, "+12125550199")  # the code step of the booking (test_actions_booking)
    chat.say("yes", "affirm", confirmed=True)
    await chat.run(ValidateBookingForm())
    await chat.run(ActionFinishBooking())
    booked = chat.slots["booked_appointment_id"]

    chat.active_loop = "cancel_form"
    chat.slots["requested_slot"] = None
    chat.say("cancel it", "cancel_appointment")
    turn = await chat.run(ValidateCancelForm())
    assert turn.slots() == {"appointment_id": str(booked), "requested_slot": "confirmed"} or \
        turn.slots() == {"appointment_id": str(booked)}
    chat.slots["requested_slot"] = "confirmed"
    chat.say("yes", "affirm", confirmed=True)
    turn = await chat.run(ValidateCancelForm())
    assert turn.responses == ["utter_cancelled"]
    assert status(engine, booked) == "cancelled"


async def test_reschedule_offers_the_same_dentist_and_moves_the_visit(gw, engine, settings):
    visit = visits_of(engine, 2)[0]  # a filling with Dr. Alvarez
    chat = Chat(metadata={"token": mint("patient", 2, settings=settings)})
    form = ValidateRescheduleForm()
    chat.active_loop = "reschedule_form"
    chat.say("move my appointment to thursday morning", "reschedule_appointment",
             {"time": "thursday morning"},
             time="thursday morning")
    turn = await chat.run(form)
    assert turn.slots()["appointment_id"] == str(visit.id)
    offer = await chat.run(AskRescheduleSlotChoice())
    assert offer.responses == ["utter_offer_slots"]
    choices = [b["payload"].split('"slot_choice": "')[1].split('"')[0] for b in offer.buttons()]
    assert all(decode_choice(c)[1] == visit.dentist_id for c in choices)
    chat.slots["requested_slot"] = "slot_choice"
    chat.say(offer.buttons()[0]["payload"], "inform", {"slot_choice": choices[0]}, slot_choice=choices[0])
    await chat.run(form)
    chat.slots["requested_slot"] = "confirmed"
    chat.say("yes", "affirm", confirmed=True)
    turn = await chat.run(form)
    assert turn.responses == ["utter_rescheduled"]
    with session_scope(engine) as s:
        assert s.get(Appointment, visit.id).starts_at == decode_choice(choices[0])[0]


@pytest.mark.parametrize("text, cancels", [
    ("Hello there! I just moved to the area. cancel my appointment", True),
    ("I need to cancel my consultation", True),
    ("can I move my appointment instead of cancelling it?", False),
    ("I'd like to reschedule my appointment", False),
])
async def test_a_cancellation_the_model_took_for_a_move_cancels(gw, settings, text, cancels):
    """The words over the model: "cancel my appointment" in a first message the model classed as a
    move ends the move form at once and starts the cancel form; a message that also asks to move
    stays a move."""
    from actions.manage import ActionFinishReschedule

    chat = Chat(metadata={"token": mint("patient", 1, settings=settings)})
    chat.active_loop = "reschedule_form"
    chat.say(text, "reschedule_appointment")
    turn = await chat.run(ValidateRescheduleForm())
    assert (turn.slots().get("outcome") == "cancel") is cancels, turn.events
    if not cancels:
        return
    assert turn.responses == [] and turn.slots().get("requested_slot") is None
    finish = await ActionFinishReschedule().run(CollectingDispatcher(), chat.tracker(), {})
    assert [e["name"] for e in finish if e["event"] == "followup"] == ["cancel_form"], finish
    assert {"event": "slot", "timestamp": None, "name": "outcome", "value": None} in finish


@pytest.mark.parametrize("typed, time", [("hmm make that March 10", "March 10"),
                                          ("make that Wednesday morning", "Wednesday morning")])
async def test_a_new_day_typed_while_asked_which_visit_is_kept_without_a_complaint(gw, engine, settings, typed,
                                                                                   time):
    """Asked which of two visits to move, the patient corrects the new time instead ("make that
    March 10", a date with a number in it): no "I can't find that appointment", the time is
    kept for the move, and which visit is asked again."""
    chat = Chat(metadata={"token": mint("patient", 1, settings=settings)})
    chat.active_loop = "reschedule_form"
    chat.say("can I move my visit to Thursday between 1 and 3", "reschedule_appointment",
             {"time": "Thursday between 1 and 3"}, time="Thursday between 1 and 3")
    turn = await chat.run(ValidateRescheduleForm())
    assert turn.slots().get("appointment_id") is None and turn.responses == []
    chat.slots["requested_slot"] = "appointment_id"
    chat.say(typed, "inform", {"time": time}, time=time)
    turn = await chat.run(ValidateRescheduleForm())
    assert "utter_appointment_not_found" not in turn.responses, turn.events
    slots = turn.slots()
    assert slots.get("appointment_id") is None and slots.get("time", time) == time, turn.events
    assert slots.get("requested_slot") == "appointment_id", turn.events


async def test_a_visit_number_not_yours_typed_with_a_time_is_still_not_found(gw, engine, settings):
    chat = Chat(metadata={"token": mint("patient", 1, settings=settings)})
    chat.active_loop = "reschedule_form"
    chat.slots["requested_slot"] = "appointment_id"
    chat.say("#999999", "inform", {"time": "999999"}, time="999999")
    turn = await chat.run(ValidateRescheduleForm())
    assert turn.responses == ["utter_appointment_not_found"], turn.events



@pytest.mark.parametrize("typed, entities, form", [
    ("Hey Hope you're having a good day Something came up could we move my extraction", {"service": "extraction"},
     "reschedule_form"),
    ("Hi there! I need to cancel my cleaning", {"service": "cleaning"}, "cancel_form"),
    ("Hello! Could I get a cleaning next week?", {"service": "cleaning", "time": "next week"}, "booking_form"),
    ("hi", {}, None),
    ("hello, is this the booking line?", {}, None),
    ("good morning, I moved here last month", {}, None),
])
async def test_a_greeting_that_asks_for_something_starts_it(gw, settings, typed, entities, form):
    """The model read a greeting; the words ask for a task: its form follows at once, without the
    welcome (rule greet: action_greet)."""
    from actions.recall import ActionGreet

    chat = Chat(metadata={"token": mint("patient", 1, settings=settings)})
    chat.say(typed, "greet", entities)
    turn = await chat.run(ActionGreet())
    followups = [e["name"] for e in turn.events if e["event"] == "followup"]
    if form is None:
        assert turn.responses == ["utter_greet"] and followups == []
    else:
        assert turn.responses == [] and followups == [form], turn.events


@pytest.mark.parametrize("form, typed", [(ValidateRescheduleForm, "Something came up, could we move my whitening"),
                                         (ValidateCancelForm, "I need to cancel my whitening")])
async def test_the_service_named_picks_the_visit_of_two(gw, engine, settings, form, typed):
    """Of two visits, the message that starts the move or the cancellation names one by its service:
    that one is taken, and which visit is not asked."""
    own = visits_of(engine, 1)
    whitening = [a for a in own if a.service.name == "Whitening"]
    assert len(own) == 2 and len(whitening) == 1
    chat = Chat(metadata={"token": mint("patient", 1, settings=settings)})
    chat.active_loop = "reschedule_form" if form is ValidateRescheduleForm else "cancel_form"
    chat.say(typed, "reschedule_appointment" if form is ValidateRescheduleForm else "cancel_appointment",
             {"service": "whitening"}, service="whitening")
    turn = await chat.run(form())
    assert turn.slots().get("appointment_id") == str(whitening[0].id), turn.events
    assert turn.slots().get("requested_slot") != "appointment_id"
