"""The code step end to end, through Rasa's REST channel on the whole stack: a stranger who types
an existing patient's phone number books, lists and cancels nothing in that record; the code
typed back books; "resend" and "wrong number" work in words."""

from __future__ import annotations

import uuid

import pytest

from tests.chat_helpers import book_anonymously, offers, rows, sent_code, text, yes_and_code

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.usefixtures("trained_model")]

AVA = "+12125550105"  # a seeded patient


def sender() -> str:
    return f"verify-{uuid.uuid4().hex[:10]}"


def visits_of(stack, phone: str) -> list[tuple]:
    return rows(stack, "SELECT a.id, a.status FROM appointments a JOIN patients p ON p.id = a.patient_id"
                       " WHERE p.phone = %s ORDER BY a.id", phone)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def test_a_stranger_with_a_patients_number_gets_nowhere_in_that_record(chat_stack):
    stack, who = chat_stack, sender()
    before = visits_of(stack, AVA)
    offered = await offers(stack, who, "I'd like a cleaning with Dr Chen next Thursday")
    await book_anonymously(stack, who, offered[0], "Not Ava", "(212) 555-0105")
    asked = await stack.say(who, "yes")
    assert "6-digit code" in text(asked) and "•••-0105" in text(asked), text(asked)
    code = sent_code(stack, AVA)  # on Ava's phone: the stranger guesses
    for guess in ("000000", "123456", "111111", "999999"):
        replies = await stack.say(who, guess if guess != code else wrong(code))
        assert "isn't right" in text(replies), text(replies)
    assert visits_of(stack, AVA) == before
    listed = await stack.say(who, "what appointments do I have?")
    assert text(listed) == ("Sorry, I need the 6-digit code from the text message. Please type the 6-digit code "
                            "we texted to (•••) •••-0105, or say \"resend\" or \"wrong number\"."), text(listed)
    held = await stack.say(who, "cancel my appointment")  # at the code question the code is still asked
    assert text(held).startswith("So far I have a cleaning with Dr. Chen ") and text(held).endswith(
        " under the name Not Ava. I still need the 6-digit code we texted you. You can type, for example, "
        "“123456”, “resend” for a new code, or “wrong number”."), text(held)
    assert text(await stack.say(who, "stop")) == "No problem, I've stopped. Anything else I can do?"
    cancel = await stack.say(who, "cancel my appointment")
    assert text(cancel) == ("I can't find any upcoming visits booked in this chat. If you booked another way, "
                            f"please sign in or call us at {stack.settings.clinic_phone}."), text(cancel)
    assert visits_of(stack, AVA) == before
    assert rows(stack, "SELECT count(*) FROM notifications WHERE recipient = %s", AVA) == [(1,)]


async def test_the_code_typed_back_books_and_is_asked_once(chat_stack):
    stack, who = chat_stack, sender()
    offered = await offers(stack, who, "can I get a filling with dr patel next wednesday")
    await book_anonymously(stack, who, offered[0], "Ines Okafor", "212 555 0161")
    done = await yes_and_code(stack, who, "212 555 0161")
    assert "right code" in text(done) and "You're booked" in text(done), text(done)
    [(appt, status)] = visits_of(stack, "+12125550161")
    # a second visit in the same conversation: the phone is proved, no second code
    again = await offers(stack, who, "and a whitening with dr patel the week after next")
    replies = await stack.say(who, again[0]["payload"])
    assert "Shall I book it?" in text(replies), text(replies)
    booked = await stack.say(who, "yes")
    assert "You're booked" in text(booked) and "code" not in text(booked), text(booked)
    assert len(visits_of(stack, "+12125550161")) == 2
    assert rows(stack, "SELECT count(*) FROM notifications WHERE recipient = '+12125550161'") == [(1,)]


async def test_wrong_number_in_words_sends_the_code_to_the_right_one(chat_stack):
    stack, who = chat_stack, sender()
    offered = await offers(stack, who, "book a consultation with dr alvarez next friday")
    await book_anonymously(stack, who, offered[0], "Tomas Rivera", "212 555 0162")
    asked = await stack.say(who, "yes")
    assert "•••-0162" in text(asked), text(asked)
    replies = await stack.say(who, "oh no that's the wrong number, it's 917 555 0163")
    assert "•••-0163" in text(replies), text(replies)
    done = await stack.say(who, f"my code is {sent_code(stack, '917 555 0163')}")
    assert "You're booked" in text(done), text(done)
    assert visits_of(stack, "+19175550163") and not visits_of(stack, "+12125550162")


async def test_resend_in_words_replaces_the_code(chat_stack):
    stack, who = chat_stack, sender()
    offered = await offers(stack, who, "I need a cleaning with Dr Chen next Tuesday")
    await book_anonymously(stack, who, offered[0], "Ruth Baker", "212 555 0164")
    await stack.say(who, "yes")
    replies = await stack.say(who, "I didn't get any code")
    assert "moments ago" in text(replies), text(replies)  # within 30 s: the first is on its way
    with_code = sent_code(stack, "212 555 0164")
    rows(stack, "UPDATE verification_codes SET created_at = created_at - interval '1 minute',"
                " expires_at = expires_at - interval '1 minute' WHERE recipient = '+12125550164' RETURNING id")
    replies = await stack.say(who, "can you resend it")
    assert "new 6-digit code" in text(replies), text(replies)
    fresh = sent_code(stack, "212 555 0164")
    if fresh != with_code:
        assert "isn't right" in text(await stack.say(who, with_code))
    done = await stack.say(who, fresh)
    assert "You're booked" in text(done), text(done)
