"""The code step of the chat (actions/verify.py) on a real database: nothing is booked, moved or
cancelled for an anonymous chat until it types back the code texted to the phone; a stranger who
knows an existing patient's number gets nowhere in that record."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from actions.booking import AskBookingConfirmed, ValidateBookingForm
from actions.caller import Caller
from actions.gateway import Gateway, SqlAvailability, use_gateway
from actions.manage import ActionListAppointments, ValidateCancelForm, ValidateRescheduleForm
from actions.verify import AskVerificationCode, code_in, masked
from bot.booking import Outcome
from bot.db import session_scope
from bot.models import Appointment, Patient
from bot.seed import seed
from action_kit import Chat, Turn, prove_phone, sent_code, type_code, yes_then_code
from test_actions_booking import fill_until_confirmation

TZ = ZoneInfo("America/New_York")
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=TZ)
EMMA = "+12125550101"  # a seeded patient with two visits


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gw(engine, settings, clock):
    seed(engine, settings, today=NOW.date())
    gateway = Gateway(engine, settings, clock=clock)
    gateway._availability = SqlAvailability(gateway.booking)
    use_gateway(gateway)
    yield gateway
    use_gateway(None)


def visits(engine, phone: str) -> int:
    with session_scope(engine) as s:
        return s.scalar(select(func.count()).select_from(Appointment).where(
            Appointment.patient.has(phone=phone), Appointment.status != "cancelled"))


def codes_sent(engine, recipient: str | None = None) -> int:
    with engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM notifications WHERE kind = 'verification_code'"
                              " AND (CAST(:r AS text) IS NULL OR recipient = :r)"), {"r": recipient}).scalar_one()


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def code_asked(chat: Chat, **fill) -> Turn:
    """A booking up to the yes: the code is texted (the turn of the yes)."""
    await fill_until_confirmation(chat, **fill)
    chat.slots["requested_slot"] = "confirmed"
    chat.say("yes", "affirm", confirmed=True)
    return await chat.run(ValidateBookingForm())


async def test_a_stranger_with_a_patients_number_books_nothing_in_that_record(gw, engine, clock):
    before = visits(engine, EMMA)
    chat = Chat("stranger")
    form = ValidateBookingForm()
    turn = await code_asked(chat, name="Not Emma", phone="212 555 0101")
    assert turn.responses == ["utter_code_sent"]  # to Emma's phone, which the stranger lacks
    code = sent_code(gw.settings.database_url, EMMA)
    for left in (4, 3, 2, 1):
        turn = await type_code(chat, form, gw.settings.database_url, EMMA, wrong(code))
        assert turn.responses == ["utter_code_wrong"] and turn.messages[0]["tries"] == left
        assert turn.messages[0]["tries_word"] == ("try" if left == 1 else "tries")  # "4 more tries left"
    clock.now += timedelta(seconds=31)
    turn = await type_code(chat, form, gw.settings.database_url, EMMA, wrong(code))
    assert turn.responses == ["utter_code_locked", "utter_code_resent"]  # five wrong: that code is dead
    turn = await type_code(chat, form, gw.settings.database_url, EMMA, code)
    assert "utter_booked" not in turn.responses
    assert visits(engine, EMMA) == before
    chat.active_loop = None
    chat.say("my appointments", "list_appointments")
    assert (await chat.run(ActionListAppointments())).responses == ["utter_no_appointments_anonymous"]


async def test_a_stranger_with_a_patients_number_cannot_move_her_visit(gw, engine):
    with session_scope(engine) as s:
        whitening = s.scalars(select(Appointment).where(Appointment.patient.has(phone=EMMA),
                                                        Appointment.service.has(name="Whitening"))).one()
        visit, was = whitening.id, whitening.starts_at
        free = gw.free_slots(whitening.service_id, NOW + timedelta(days=1), NOW + timedelta(days=8),
                             dentist_id=whitening.dentist_id, limit=1)[0]  # a time the move would get
    chat = Chat("stranger")
    assert (await code_asked(chat, name="Not Emma", phone="212 555 0101")).responses == ["utter_code_sent"]
    chat.slots.update(requested_slot=None, confirmed=None, outcome=None)  # the code is Emma's to read: never typed
    chat.active_loop = "reschedule_form"
    for text, named in ((f'/reschedule_appointment{{"appointment_id": "{visit}"}}', str(visit)),  # its number
                        ("move my whitening to thursday", "my whitening")):                      # in words
        chat.slots.update(requested_slot=None, appointment_id=None, outcome=None)
        chat.say(text, "reschedule_appointment", {"appointment_id": named}, appointment_id=named)
        turn = await chat.run(ValidateRescheduleForm())
        assert turn.responses == ["utter_no_appointments_anonymous"], text  # the form ends: nothing of hers
    # the slots set by hand (a crafted tracker): the yes still moves nothing and texts Emma nothing
    chat.slots.update(appointment_id=str(visit), slot_choice=f"{free.starts_at.isoformat()}|{free.dentist_id}",
                      requested_slot="confirmed", outcome=None)
    chat.say("yes", "affirm", confirmed=True)
    turn = await chat.run(ValidateRescheduleForm())
    assert turn.responses == ["utter_code_no_phone"] and turn.slots()["outcome"] == "failed"
    with session_scope(engine) as s:
        assert s.get(Appointment, visit).starts_at == was
    assert codes_sent(engine, EMMA) == 1  # only the booking's code, which the stranger never had


def test_the_gateway_gives_a_chat_a_patient_only_for_a_phone_it_proved(gw, engine):
    with session_scope(engine) as s:
        emma = s.scalar(select(Patient.id).where(Patient.phone == EMMA))
    web, other_tab = Caller(None, False, "web-42"), Caller(None, False, "web-43")
    refused = gw.chat_patient(web, "Not Emma", "212 555 0101")
    assert (refused.outcome, refused.patient_id, refused.field) == (Outcome.NOT_VERIFIED, None, "phone")
    prove_phone(gw, Chat(web.conversation_id), EMMA)  # this conversation typed back the code texted to her
    found = gw.chat_patient(web, "Emma", "(212) 555-0101")
    assert (found.outcome, found.patient_id) == (Outcome.FOUND, emma)
    assert gw.chat_patient(other_tab, "Emma", EMMA).outcome is Outcome.NOT_VERIFIED  # another conversation
    assert gw.chat_patient(web, "Someone Else", "212 555 0177").outcome is Outcome.NOT_VERIFIED  # another phone
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Patient).where(Patient.phone == "+12125550177")) == 0


async def test_resend_waits_its_turn_then_replaces_the_code(gw, engine, clock):
    chat = Chat()
    form = ValidateBookingForm()
    await code_asked(chat)
    first = sent_code(gw.settings.database_url, "+12125550199")
    chat.slots["requested_slot"] = "verification_code"
    chat.say("I didn't get it", "deny", verification_code="I didn't get it")
    turn = await chat.run(form)
    assert turn.responses == ["utter_code_too_soon"] and codes_sent(engine) == 1
    assert (await chat.run(AskVerificationCode())).responses == []  # what to do was just said
    clock.now += timedelta(seconds=40)
    chat.say("resend please", "inform", verification_code="resend please")
    assert (await chat.run(form)).responses == ["utter_code_resent"]
    second = sent_code(gw.settings.database_url, "+12125550199")
    if second != first:
        assert (await type_code(chat, form, gw.settings.database_url, "", first)).responses == ["utter_code_wrong"]
    done = await type_code(chat, form, gw.settings.database_url, "+12125550199")
    assert done.responses == ["utter_code_ok", "utter_booked"]
    assert visits(engine, "+12125550199") == 1


async def test_wrong_number_asks_the_number_again_and_the_code_goes_there(gw, engine):
    chat = Chat()
    form = ValidateBookingForm()
    await code_asked(chat, phone="212 555 0198")
    chat.slots["requested_slot"] = "verification_code"
    chat.say("oops wrong number", "inform", verification_code="oops wrong number")
    turn = await chat.run(form)
    assert turn.responses == ["utter_code_new_number"] and turn.slots()["phone"] is None
    chat.slots["requested_slot"] = "phone"
    chat.say("917 555 0123", "inform", {"phone": "917 555 0123"}, phone="917 555 0123")
    turn = await chat.run(form)
    assert turn.responses == ["utter_code_sent"] and turn.slots()["phone"] == "+19175550123"
    summary = await chat.run(AskBookingConfirmed())  # not asked: confirmed stays yes
    assert chat.slots["confirmed"] is True and summary.responses
    done = await type_code(chat, form, gw.settings.database_url, "+19175550123")
    assert done.responses == ["utter_code_ok", "utter_booked"]
    assert visits(engine, "+19175550123") == 1 and visits(engine, "+12125550198") == 0


async def test_a_new_number_typed_at_the_code_question_takes_the_code(gw, engine):
    chat = Chat()
    form = ValidateBookingForm()
    await code_asked(chat, phone="212 555 0198")
    chat.slots["requested_slot"] = "verification_code"
    chat.say("wrong number, it's 917 555 0124", "inform", verification_code="wrong number, it's 917 555 0124")
    turn = await chat.run(form)
    assert turn.responses == ["utter_code_sent"] and turn.slots()["phone"] == "+19175550124"
    assert turn.messages[0]["where"] == masked("+19175550124") == "(•••) •••-0124"
    done = await type_code(chat, form, gw.settings.database_url, "+19175550124")
    assert done.responses == ["utter_code_ok", "utter_booked"]


async def test_an_expired_code_sends_a_new_one(gw, engine, clock):
    chat = Chat()
    form = ValidateBookingForm()
    await code_asked(chat)
    old = sent_code(gw.settings.database_url, "+12125550199")
    clock.now += timedelta(minutes=11)
    turn = await type_code(chat, form, gw.settings.database_url, "", old)
    assert turn.responses == ["utter_code_expired", "utter_code_resent"]
    assert visits(engine, "+12125550199") == 0
    done = await type_code(chat, form, gw.settings.database_url, "+12125550199")
    assert "utter_booked" in done.responses


async def test_a_code_for_one_number_does_not_book_for_another_set_meanwhile(gw, engine, clock):
    chat = Chat("switcher")
    form = ValidateBookingForm()
    await code_asked(chat, phone="212 555 0198")  # their own number: they get this code
    own = sent_code(gw.settings.database_url, "+12125550198")
    chat.slots["phone"] = EMMA  # a payload or a mapping set the victim's number meanwhile
    turn = await type_code(chat, form, gw.settings.database_url, "", own)
    assert "utter_code_ok" not in turn.responses and "utter_booked" not in turn.responses
    assert turn.responses == ["utter_code_sent"]  # the code goes to the number the visit is for
    assert visits(engine, EMMA) == 2 and visits(engine, "+12125550198") == 0


async def test_typing_ok_at_the_code_question_is_no_code(gw, engine):
    chat = Chat()
    form = ValidateBookingForm()
    await code_asked(chat)
    chat.slots["requested_slot"] = "verification_code"
    chat.say("ok", "affirm", verification_code="ok")
    turn = await chat.run(form)
    assert turn.responses == ["utter_code_not_understood"] and turn.slots()["verification_code"] is None
    assert visits(engine, "+12125550199") == 0


async def test_something_else_at_the_code_question_escalates_and_keeps_the_booking(gw, engine):
    chat = Chat()
    form = ValidateBookingForm()
    await code_asked(chat)
    said = []
    for _ in range(3):
        chat.slots["requested_slot"] = "verification_code"
        chat.say("banana", "nlu_fallback", verification_code="banana")
        turn = await chat.run(form)
        ask = await chat.run(AskVerificationCode())
        said.append(turn.responses + ask.responses)
    assert said == [["utter_code_not_understood", "utter_ask_verification_code"], ["utter_still_need"],
                    ["utter_stuck"]]
    assert chat.slots["slot_choice"] and chat.slots["phone"] == "+12125550199"  # nothing given is lost
    assert (await type_code(chat, form, gw.settings.database_url, "+12125550199")).responses[-1] == "utter_booked"


async def test_a_flood_of_made_up_numbers_books_nothing_and_sends_few_codes(gw, engine, clock, settings):
    with session_scope(engine) as s:
        before = s.scalar(select(func.count()).select_from(Appointment))
    for i in range(30):
        chat = Chat(f"flood-{i}", metadata={"client": "203.0.113.7"})
        await fill_until_confirmation(chat, name=f"Bot {i}", phone=f"212 555 {1200 + i:04d}")
        chat.slots["requested_slot"] = "confirmed"
        chat.say("yes", "affirm", confirmed=True)
        turn = await chat.run(ValidateBookingForm())
        assert "utter_booked" not in turn.responses
        for guess in ("000000", "123456"):
            turn = await type_code(chat, ValidateBookingForm(), gw.settings.database_url, "", guess)
            assert "utter_booked" not in turn.responses
        clock.now += timedelta(seconds=1)
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Appointment)) == before
    assert codes_sent(engine) == settings.verification_codes_per_client  # then the client is told to call


async def test_a_signed_in_patient_and_a_kiosk_are_never_asked(gw, engine, settings, clock):
    from bot.tokens import mint

    chat = Chat(metadata={"token": mint("patient", 5, settings=settings)})
    chat.active_loop = "booking_form"
    form = ValidateBookingForm()
    assert "verification_code" not in await form.required_slots(
        ["service", "slot_choice", "full_name", "phone", "confirmed", "verification_code"], None, chat.tracker(), {})
    kiosk = Gateway(engine, settings.model_copy(update={"chat_verification": False}), clock=clock)
    kiosk._availability = gw._availability
    use_gateway(kiosk)
    chat = Chat("kiosk")
    assert (await code_asked(chat)).responses == ["utter_booked"]
    assert codes_sent(engine) == 0


async def test_a_proved_phone_lists_and_cancels_that_patients_visits_once_asked(gw, engine, clock):
    chat = Chat("emma-on-the-web")
    chat.say("my appointments", "list_appointments")
    assert (await chat.run(ActionListAppointments())).responses == ["utter_no_appointments_anonymous"]
    prove_phone(gw, chat, EMMA)  # she typed back the code texted to her phone
    listed = await chat.run(ActionListAppointments())
    assert listed.responses == ["utter_your_appointments"] and listed.messages[0]["appointments"].count("#") == 2

    with session_scope(engine) as s:
        whitening = s.scalar(select(Appointment.id).where(Appointment.patient.has(phone=EMMA),
                                                          Appointment.service.has(name="Whitening")))
    chat.active_loop = "cancel_form"
    chat.slots["requested_slot"] = "appointment_id"
    chat.say(f'/cancel_appointment{{"appointment_id": "{whitening}"}}', "cancel_appointment",
             {"appointment_id": str(whitening)}, appointment_id=str(whitening))
    await chat.run(ValidateCancelForm())
    assert chat.slots["appointment_id"] == str(whitening)
    chat.slots["requested_slot"] = "confirmed"  # proved a moment ago: no second code
    chat.say("yes", "affirm", confirmed=True)
    done = await chat.run(ValidateCancelForm())
    assert done.responses == ["utter_cancelled"] and visits(engine, EMMA) == 1


async def test_after_the_window_a_visit_booked_here_needs_a_code_to_its_phone_to_move(gw, engine, clock, settings):
    chat = Chat()
    await fill_until_confirmation(chat)
    done = await yes_then_code(chat, ValidateBookingForm(), gw.settings.database_url, "+12125550199")
    assert "utter_booked" in done.responses
    booked = chat.slots["booked_appointment_id"]
    clock.now += timedelta(minutes=settings.chat_verified_minutes + 1)
    chat.slots.update(requested_slot=None, confirmed=None, outcome=None, verification_code=None, code_status=None)
    chat.active_loop = "cancel_form"
    chat.say("cancel it", "cancel_appointment")
    await chat.run(ValidateCancelForm())
    assert chat.slots["appointment_id"] == str(booked)  # still this chat's own visit (chat_bookings)
    chat.slots["requested_slot"] = "confirmed"
    chat.say("yes", "affirm", confirmed=True)
    turn = await chat.run(ValidateCancelForm())
    assert turn.responses == ["utter_code_sent"]  # to the phone on file
    with session_scope(engine) as s:
        assert s.get(Appointment, booked).status != "cancelled"
    turn = await type_code(chat, ValidateCancelForm(), gw.settings.database_url, "+12125550199")
    assert turn.responses == ["utter_code_ok", "utter_cancelled"]


async def test_wrong_number_for_a_visit_on_file_sends_to_the_front_desk(gw, engine, clock, settings):
    chat = Chat()
    await fill_until_confirmation(chat)
    await yes_then_code(chat, ValidateBookingForm(), gw.settings.database_url, "+12125550199")
    clock.now += timedelta(minutes=settings.chat_verified_minutes + 1)
    chat.slots.update(requested_slot=None, confirmed=None, outcome=None, verification_code=None, code_status=None)
    chat.active_loop = "reschedule_form"
    chat.say("move it", "reschedule_appointment")
    await chat.run(ValidateRescheduleForm())
    chat.slots.update(slot_choice=f"{NOW.replace(day=4, hour=10).isoformat()}|1", requested_slot="confirmed")
    chat.say("yes", "affirm", confirmed=True)
    assert (await chat.run(ValidateRescheduleForm())).responses == ["utter_code_sent"]
    chat.slots["requested_slot"] = "verification_code"
    chat.say("that's not my number anymore", "inform", verification_code="that's not my number anymore")
    turn = await chat.run(ValidateRescheduleForm())
    assert turn.responses == ["utter_code_number_on_file"] and turn.slots()["outcome"] == "failed"


def test_code_in_reads_typed_codes():
    assert code_in("it's 004 211") == "004211" and code_in("212 555 0101") is None
