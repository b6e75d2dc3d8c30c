"""Messages the NLU model cannot read (another script, emoji only, bare punctuation). The model
classifies every one of them the same way — ``affirm``, at about 0.9 — so "нет" or "❌" at
"Shall I book it?" used to book, and a name in Hebrew at "What name...?" was dropped as a "yes".
Now such a message answers the question the form asked, and is never taken as a yes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from actions import gateway as gateway_module
from actions.booking import AskSlotChoice, ValidateBookingForm
from actions.common import unreadable
from actions.manage import ValidateCancelForm, ValidateRescheduleForm
from bot.db import session_scope
from bot.models import Appointment, Patient
from bot.seed import seed
from bot.tokens import mint
from action_kit import Chat, make_gateway, yes_then_code
from test_actions_booking import fill_until_confirmation

TZ = ZoneInfo("America/New_York")
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=TZ)  # a Monday morning
NO_IN_OTHER_WORDS = ["нет", "لا", "לא", "不要", "❌", "🤮", "?", "…"]


@pytest.fixture
def gw(engine, settings):
    seed(engine, settings, today=NOW.date())
    gateway = make_gateway(engine, settings, NOW)
    gateway_module.use_gateway(gateway)
    yield gateway
    gateway_module.use_gateway(None)


def appointments(engine) -> int:
    with session_scope(engine) as s:
        return s.scalar(select(func.count()).select_from(Appointment))


@pytest.mark.parametrize(("text", "expected"), [
    *[(t, True) for t in NO_IN_OTHER_WORDS], ("דוד כהן", True), ("🦷", True), ("", True), ("  ", True),
    ("no", False), ("👍 yes", False), ("Zoë", False), ("1", False), ("/affirm", False), ("/deny", False),
    (None, False),
])
def test_what_the_model_cannot_have_read(text, expected):
    assert unreadable(text) is expected


@pytest.mark.parametrize("answer", NO_IN_OTHER_WORDS)
async def test_an_unreadable_answer_to_shall_i_book_it_books_nothing_and_asks_again(gw, engine, answer):
    chat = Chat()
    await fill_until_confirmation(chat)
    before = appointments(engine)
    chat.slots["requested_slot"] = "confirmed"
    chat.say(answer, "affirm", confirmed=True)  # what the model and the slot mapping make of it
    turn = await chat.run(ValidateBookingForm())
    assert turn.responses == ["utter_please_rephrase"]
    assert turn.slots() == {"confirmed": None}
    assert appointments(engine) == before
    # a readable no still declines, a readable yes still books
    chat.say("no", "deny", confirmed=False)
    assert (await chat.run(ValidateBookingForm())).responses == ["utter_booking_declined"]
    assert appointments(engine) == before


async def test_the_yes_button_still_books(gw, engine):
    chat = Chat()
    await fill_until_confirmation(chat)
    done = await yes_then_code(chat, ValidateBookingForm(), gw.settings.database_url, "+12125550199", yes="/affirm")
    assert done.responses == ["utter_code_ok", "utter_booked"]


@pytest.mark.parametrize("name", ["דוד כהן", "Дмитрий Иванов", "王小明", "محمد عبد الله"])
async def test_a_name_in_another_script_is_the_name_whatever_intent_the_model_guessed(gw, engine, name):
    chat = Chat()
    form = ValidateBookingForm()
    chat.active_loop = "booking_form"
    chat.say("a cleaning with dr alvarez tomorrow afternoon", "book_appointment",
             {"service": "cleaning", "dentist": "alvarez", "time": "tomorrow afternoon"},
             service="cleaning", dentist="alvarez", time="tomorrow afternoon")
    await chat.run(form)
    offer = await chat.run(AskSlotChoice())
    choice = offer.buttons()[0]["payload"].split('"slot_choice": "')[1].split('"')[0]
    chat.say(offer.buttons()[0]["payload"], "inform", {"slot_choice": choice}, slot_choice=choice)
    await chat.run(form)

    chat.slots["requested_slot"] = "full_name"
    chat.say(name, "affirm")  # the full_name mapping leaves out affirm: Rasa extracted nothing
    turn = await chat.run(form)
    assert turn.responses == []
    assert turn.slots() == {"full_name": name}

    chat.slots["requested_slot"] = "phone"
    chat.say("212 555 0166", "inform", {"phone": "212 555 0166"}, phone="212 555 0166")
    await chat.run(form)
    done = await yes_then_code(chat, form, gw.settings.database_url, "+12125550166")
    assert done.responses == ["utter_code_ok", "utter_booked"]
    with session_scope(engine) as s:
        assert s.scalar(select(Patient.full_name).where(Patient.phone == "+12125550166")) == name


async def test_emoji_at_the_phone_prompt_is_refused_as_a_phone_number(gw):
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.slots["requested_slot"] = "phone"
    chat.say("📞📞", "affirm")
    turn = await chat.run(ValidateBookingForm())
    assert turn.responses == ["utter_invalid_phone"]
    assert turn.slots() == {"phone": None, "misunderstood": {"slot": "phone", "count": 1}}


async def test_a_yes_at_the_name_prompt_is_not_taken_as_a_name(gw):
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.slots["requested_slot"] = "full_name"
    chat.say("yes", "affirm")  # "yes" is not a name: the patient is told, and asked again
    turn = await chat.run(ValidateBookingForm())
    assert turn.responses == ["utter_invalid_name"]
    assert turn.slots() == {"full_name": None, "misunderstood": {"slot": "full_name", "count": 1}}


@pytest.mark.parametrize(("form", "active_loop"), [(ValidateCancelForm, "cancel_form"),
                                                   (ValidateRescheduleForm, "reschedule_form")])
async def test_an_unreadable_answer_neither_cancels_nor_moves_a_visit(gw, engine, settings, form,
                                                                      active_loop):
    with session_scope(engine) as s:
        visit = s.scalars(select(Appointment).where(Appointment.patient_id == 1)
                          .order_by(Appointment.starts_at)).first()
        before = (visit.status, visit.starts_at)
    chat = Chat(metadata={"token": mint("patient", 1, settings=settings)})
    chat.active_loop = active_loop
    chat.slots.update(appointment_id=str(visit.id), requested_slot="confirmed",
                      slot_choice=f"{NOW.replace(day=3, hour=10).isoformat()}|{visit.dentist_id}")
    chat.say("нет", "affirm", confirmed=True)
    turn = await chat.run(form())
    assert turn.responses == ["utter_please_rephrase"]
    assert {k: v for k, v in turn.slots().items() if k != "requested_slot"} == {"confirmed": None}
    with session_scope(engine) as s:
        again = s.get(Appointment, visit.id)
        assert (again.status, again.starts_at) == before
