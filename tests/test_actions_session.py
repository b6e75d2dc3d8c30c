"""Who the caller is: tokens in message metadata, sessions, and stopping."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from actions import gateway as gateway_module
from actions.handoff import ActionHumanHandoff, ActionStop
from actions.session import ActionSessionStart
from bot.tokens import mint
from action_kit import Chat, make_gateway

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=ZoneInfo("America/New_York"))


@pytest.fixture
def gw(engine, settings):
    gateway = make_gateway(engine, settings, NOW)
    gateway_module.use_gateway(gateway)
    yield gateway
    gateway_module.use_gateway(None)


async def test_session_start_with_a_patient_token_signs_the_chat_in(gw, settings):
    chat = Chat()
    chat.slots["session_started_metadata"] = {"token": mint("patient", 7, settings=settings)}
    turn = await chat.run(ActionSessionStart())
    assert turn.events == [
        {"event": "session_started", "timestamp": None},
        {"event": "slot", "timestamp": None, "name": "authenticated", "value": True},
        {"event": "slot", "timestamp": None, "name": "patient_id", "value": 7},
        {"event": "action", "timestamp": None, "name": "action_listen", "policy": None, "confidence": None},
    ]


@pytest.mark.parametrize("token_of", [lambda s: mint("dentist", 1, settings=s),
                                      lambda s: mint("admin", settings=s),
                                      lambda s: "not-a-jwt", lambda s: mint("patient", 7, settings=s) + "x"])
async def test_session_start_ignores_tokens_that_are_not_a_valid_patient(gw, settings, token_of):
    chat = Chat()
    chat.slots["session_started_metadata"] = {"token": token_of(settings)}
    turn = await chat.run(ActionSessionStart())
    assert turn.slots() == {"authenticated": False, "patient_id": None}


async def test_a_new_session_keeps_the_details_given_but_no_identity(gw):
    """Only name and phone carry over; who the caller is comes from the new message alone."""
    chat = Chat()
    chat.slots.update(patient_id=12, full_name="Ada", phone="+12125550199")
    turn = await chat.run(ActionSessionStart())
    assert turn.slots() == {"full_name": "Ada", "phone": "+12125550199", "patient_id": None,
                            "authenticated": False}

    signed = Chat()
    signed.slots.update(patient_id=7, authenticated=True)
    turn = await signed.run(ActionSessionStart())
    assert turn.slots() == {"authenticated": False, "patient_id": None}


async def test_stop_ends_the_form_and_forgets_the_request(gw):
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.slots.update(service="cleaning", dentist="any", time="friday", requested_slot="slot_choice",
                      full_name="Ada")
    chat.say("never mind", "stop")
    turn = await chat.run(ActionStop())
    assert turn.responses == ["utter_stopped"]
    assert turn.events[0] == {"event": "active_loop", "timestamp": None, "name": None}
    assert turn.slots()["requested_slot"] is None and turn.slots()["service"] is None
    assert "full_name" not in turn.slots()  # who the caller is stays
    assert chat.active_loop is None


async def test_stop_with_nothing_going_on(gw):
    chat = Chat()
    chat.say("stop", "stop")
    assert (await chat.run(ActionStop())).responses == ["utter_nothing_to_stop"]


async def test_handoff_gives_the_clinic_phone_and_hours(gw, settings):
    chat = Chat()
    chat.say("can I talk to a person", "human_handoff")
    turn = await chat.run(ActionHumanHandoff())
    assert turn.responses == ["utter_handoff"]
    assert turn.messages[0]["phone"] == settings.clinic_phone and "Monday" in turn.messages[0]["hours"]
