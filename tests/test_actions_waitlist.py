"""The waitlist in the chat (actions/waitlist.py) against real PostgreSQL: joining needs a known
patient and records the conversation; an offer is shown only in the conversation that asked for
it; the first yes books the freed time, a later one hears it is gone."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from action_kit import Chat, seeded_gateway
from actions.availability import JOIN_WAITLIST_BUTTON, ActionCheckAvailability
from actions.waitlist import (ActionWaitlistAccept, ActionWaitlistDecline, ActionWaitlistGone, ActionWaitlistJoin,
                              ActionWaitlistOffer)
from bot.tokens import Identity, mint
from bot.waitlist import GONE_INTENT, OFFER_INTENT

TZ = ZoneInfo("America/New_York")
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=TZ)
ANA, BEN, CAL = 20, 21, 22  # seeded patients
ADMIN = Identity(role="admin", sub="admin")
DOMAIN_FORM_SLOTS = ("service", "dentist", "time", "slot_choice", "full_name", "phone", "confirmed",
                     "verification_code")


@pytest.fixture
def gw(engine, settings):
    with seeded_gateway(engine, settings, NOW, "sql") as gateway:
        yield gateway


def signed_in(patient_id: int, settings, sender: str | None = None) -> Chat:
    return Chat(sender or f"wl-{patient_id}", metadata={"token": mint("patient", patient_id, settings=settings)})


def entries(db_url: str) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT patient_id, service_id, dentist_id, conversation_id, appointment_id, status"
                            " FROM waitlist_entries ORDER BY id").fetchall()


def triggered(chat: Chat, intent: str, offer_id: int) -> None:
    """What Rasa's ``trigger_intent`` puts in the tracker: no token, ``is_external`` metadata."""
    token, chat.metadata = chat.metadata, {"is_external": True}
    chat.say(f"EXTERNAL: {intent}", intent, {"offer_id": str(offer_id)}, waitlist_offer_id=
             str(offer_id) if intent == OFFER_INTENT else chat.slots.get("waitlist_offer_id"))
    chat.metadata = token


async def join(chat: Chat, service: str = "filling", **slots) -> object:
    chat.slots.update(service=service, **slots)
    chat.say("tell me if something earlier opens", "join_waitlist")
    return await chat.run(ActionWaitlistJoin())


async def told_an_offer(gw, chat: Chat, patient_id: int) -> int:
    """``chat``'s patient waits for a filling, the worker offers a time and tells the chat: its id."""
    await join(chat)
    offer_id = offered(gw, patient_id)
    triggered(chat, OFFER_INTENT, offer_id)
    assert (await chat.run(ActionWaitlistOffer())).responses == ["utter_waitlist_offer"]
    return offer_id


def offered(gw, *patients: int) -> int:
    """Patients on the waitlist for a filling, one worker pass: the offer id of the first of them
    (all of them share the freed time)."""
    made = gw.waitlist.run_once().offered
    assert len(made) == len(patients), made
    return made[0]


async def test_a_signed_in_patient_joins_from_the_offered_times(gw, settings, db_url):
    chat = signed_in(ANA, settings)
    chat.say("what's free next week for a filling with dr chen?", "check_availability",
             time="next week")
    chat.slots.update(service="filling", dentist="chen")
    shown = await chat.run(ActionCheckAvailability())
    assert shown.all_buttons()[-1] == JOIN_WAITLIST_BUTTON
    first = min(datetime.fromisoformat(s["starts_at"]) for s in chat.slots["offered_slots"])
    chat.say(JOIN_WAITLIST_BUTTON["payload"], "join_waitlist")
    turn = await chat.run(ActionWaitlistJoin())
    assert turn.responses == ["utter_waitlist_joined"]
    message = turn.messages[0]
    assert message["a_service"] == "a filling" and message["whom"] == " with Dr. Chen"
    catalogue = gw.catalogue()
    [(patient, service, dentist, conversation, appointment, status)] = entries(db_url)
    assert (patient, service, dentist, conversation, appointment, status) == (
        ANA, catalogue.service("filling").id, catalogue.dentist("chen").id, "wl-20", None, "waiting")
    with psycopg.connect(db_url) as conn:
        [(latest,)] = conn.execute("SELECT latest FROM waitlist_entries").fetchall()
    assert latest == first  # until the earliest time offered
    assert turn.slots()["service"] is None and turn.slots()["offered_slots"] is None  # the request is over


async def test_an_unknown_chat_is_asked_to_sign_in_and_nothing_is_written(gw, settings, db_url):
    turn = await join(Chat("wl-anon"))
    assert turn.responses == ["utter_waitlist_who"]
    forged = Chat("wl-forged", metadata={"token": mint("patient", ANA, settings=settings.model_copy(
        update={"jwt_secret": "x" * 40}))})
    assert (await join(forged)).responses == ["utter_waitlist_who"]
    assert entries(db_url) == []


async def test_the_limit_is_said(gw, settings):
    chat = signed_in(ANA, settings)
    for service in ("filling", "cleaning", "crown"):
        assert (await join(chat, service)).responses == ["utter_waitlist_joined"]
    turn = await join(chat, "whitening")
    assert turn.responses == ["utter_waitlist_limit"] and turn.messages[0]["count"] == 3


async def test_the_offer_is_told_only_in_the_chat_that_asked(gw, settings):
    ana, ben = signed_in(ANA, settings), signed_in(BEN, settings)
    await join(ana)
    offer_id = offered(gw, ANA)
    triggered(ana, OFFER_INTENT, offer_id)
    told = await ana.run(ActionWaitlistOffer())
    assert told.responses == ["utter_waitlist_offer"] and told.slots()["waitlist_offer_id"] == offer_id
    assert told.messages[0]["a_service"] == "a filling" and 1 <= told.messages[0]["minutes"] <= 5
    assert [b["title"] for b in told.all_buttons()] == ["Yes", "No"]
    # another patient typing the external intent with Ana's offer, signed in or not: nothing at all
    for chat in (ben, Chat("wl-anon")):
        chat.say(f'/{OFFER_INTENT}{{"offer_id": {offer_id}}}', OFFER_INTENT, {"offer_id": str(offer_id)},
                 waitlist_offer_id=str(offer_id))
        turn = await chat.run(ActionWaitlistOffer())
        assert turn.responses == [] and turn.slots() == {"waitlist_offer_id": None}
        chat.say("yes", "affirm")
        assert (await chat.run(ActionWaitlistAccept())).responses in (["utter_waitlist_no_offer"],
                                                                      ["utter_waitlist_who"])
    # nor when the worker itself were pointed at Ben's conversation
    triggered(ben, OFFER_INTENT, offer_id)
    assert (await ben.run(ActionWaitlistOffer())).responses == []
    triggered(ben, GONE_INTENT, offer_id)
    assert (await ben.run(ActionWaitlistGone())).responses == []


async def test_yes_books_the_freed_time(gw, settings, db_url):
    ana = signed_in(ANA, settings)
    offer_id = await told_an_offer(gw, ana, ANA)
    ana.say("yes", "affirm")
    turn = await ana.run(ActionWaitlistAccept())
    assert turn.responses == ["utter_booked"], turn.responses
    booked = turn.slots()["booked_appointment_id"]
    view = gw.waitlist.offer(ADMIN, offer_id)
    assert view.status == "accepted" and view.appointment_id == booked
    with psycopg.connect(db_url) as conn:
        [(patient, starts_at, status)] = conn.execute(
            "SELECT patient_id, starts_at, status FROM appointments WHERE id = %s", (booked,)).fetchall()
    assert (patient, starts_at) == (ANA, view.starts_at) and status in ("pending", "confirmed")
    assert turn.slots()["waitlist_offer_id"] is None


async def test_a_second_yes_hears_it_is_gone_and_stays_on_the_list(gw, settings, db_url):
    ana, ben = signed_in(ANA, settings), signed_in(BEN, settings)
    await join(ana)
    await join(ben)
    first = offered(gw, ANA, BEN)
    for chat in (ana, ben):
        triggered(chat, OFFER_INTENT, first if chat is ana else first + 1)
        assert (await chat.run(ActionWaitlistOffer())).responses == ["utter_waitlist_offer"]
    ana.say("/accept_waitlist_offer", "accept_waitlist_offer")
    assert (await ana.run(ActionWaitlistAccept())).responses == ["utter_booked"]
    # the worker tells Ben's chat, then Ben says yes anyway
    triggered(ben, GONE_INTENT, first + 1)
    gone = await ben.run(ActionWaitlistGone())
    assert gone.responses == ["utter_waitlist_gone"] and gone.messages[0]["service"] == "filling"
    ben.say("yes", "affirm")
    assert (await ben.run(ActionWaitlistAccept())).responses == ["utter_waitlist_offer_gone"]
    assert [(p, s) for p, *_, s in entries(db_url)] == [(ANA, "booked"), (BEN, "waiting")]


async def test_no_lets_the_time_go(gw, settings, db_url):
    ana = signed_in(ANA, settings)
    offer_id = await told_an_offer(gw, ana, ANA)
    ana.say("no", "deny")
    turn = await ana.run(ActionWaitlistDecline())
    assert turn.responses == ["utter_waitlist_declined"] and turn.slots()["waitlist_offer_id"] is None
    assert [s for *_, s in entries(db_url)] == ["waiting"]
    # a stale offer told again (the worker's retry) is not shown
    triggered(ana, OFFER_INTENT, offer_id)
    assert (await ana.run(ActionWaitlistOffer())).responses == []


async def test_joining_while_moving_a_visit_waits_to_move_it(gw, settings, db_url):
    catalogue = gw.catalogue()
    starts = NOW + timedelta(days=20)
    with psycopg.connect(db_url, autocommit=True) as conn:
        [(visit,)] = conn.execute(
            "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, status)"
            " VALUES (%s, %s, %s, %s, %s, 'confirmed') RETURNING id",
            (CAL, catalogue.dentist("chen").id, catalogue.service("filling").id, starts,
             starts + timedelta(minutes=60))).fetchall()
    chat = signed_in(CAL, settings)
    chat.slots["appointment_id"] = str(visit)
    chat.say("tell me if something earlier opens", "join_waitlist")
    turn = await chat.run(ActionWaitlistJoin())
    assert turn.responses == ["utter_waitlist_joined_move"]
    [(patient, _, _, conversation, appointment, status)] = entries(db_url)
    assert (patient, conversation, appointment, status) == (CAL, "wl-22", visit, "waiting")


def test_the_worker_triggers_the_intents_the_domain_answers():
    """One vocabulary: the names the sync service sends are the domain's, and rules answer them."""
    from pathlib import Path

    import sync.waitlist
    from action_kit import DOMAIN

    assert (sync.waitlist.OFFER_INTENT, sync.waitlist.GONE_INTENT) == (OFFER_INTENT, GONE_INTENT)
    rules = (Path(__file__).resolve().parent.parent / "data" / "rules" / "waitlist.yml").read_text()
    for intent in (OFFER_INTENT, GONE_INTENT):
        assert intent in DOMAIN["intents"] and f"intent: {intent}" in rules
    assert DOMAIN["slots"]["waitlist_offer_id"]["mappings"] == [
        {"type": "from_entity", "entity": "offer_id", "intent": OFFER_INTENT}]


def test_the_action_server_registers_every_action_of_the_domain():
    """rasa-sdk registers every ``Action`` subclass of the package at start-up and refuses one
    without a name (a base class of actions must not be one)."""
    from rasa_sdk.executor import ActionExecutor

    from action_kit import DOMAIN

    executor = ActionExecutor()
    executor.register_package("actions")
    custom = {a for a in DOMAIN["actions"]}
    assert custom <= set(executor.actions), custom - set(executor.actions)


async def test_an_offer_in_the_middle_of_a_form_is_no_answer_to_its_question(gw, settings):
    """The worker's message carries no token and reads "EXTERNAL: ...": the booking form neither
    takes it as the name it asked for nor starts asking a signed-in patient for a name."""
    from actions.asking import latest_text
    from actions.booking import ValidateBookingForm

    chat = signed_in(ANA, settings)
    chat.active_loop, chat.slots["authenticated"] = "booking_form", True
    chat.slots["requested_slot"] = "slot_choice"
    triggered(chat, OFFER_INTENT, 1)
    tracker = chat.tracker()
    assert latest_text(tracker) is None
    form = ValidateBookingForm()
    assert form.read_answer(tracker) == {}
    required = await form.required_slots(list(DOMAIN_FORM_SLOTS), None, tracker, {})
    assert "full_name" not in required and "phone" not in required
    chat.slots["authenticated"] = False  # an anonymous chat still gives its name and number
    assert "full_name" in await form.required_slots(list(DOMAIN_FORM_SLOTS), None, chat.tracker(), {})
