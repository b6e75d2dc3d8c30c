"""Hostile chat input end to end, through Rasa's REST channel to PostgreSQL, as ``make run`` starts the
system: a 10 KB message, emoji and right-to-left text as messages and as the patient's name,
SQL and HTML as the name, and dates far in the past and far in the future. The bot answers each
one sensibly, stores names exactly as typed, keeps every table, and never offers a time outside
the bookable window. (test_e2e_assistant.py has the first hostile name and the double yes;
pages render such names as text: tests/browser.)"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from bot.stack import Stack
from tests import test_e2e_assistant as e2e
from tests.chat_helpers import yes_and_code
from tests.test_e2e_assistant import book_anonymously, choice_start, offers, rows, slot_buttons, text

pytestmark = [pytest.mark.slow, pytest.mark.e2e,
              pytest.mark.usefixtures("trained_model")]
stack = e2e.stack  # the shared system (tests/conftest.py), its cache's SQL fallbacks checked over this module

APOLOGY = "something went wrong"  # utter_sorry_error: what the chat says when an action failed


def sender() -> str:
    return f"hostile-{uuid.uuid4().hex[:8]}"


def bookable(stack: Stack, start: datetime) -> bool:
    """Whether an offered start lies in the bookable window (now .. the booking horizon)."""
    now = datetime.now(timezone.utc)
    return now < start <= now + timedelta(days=stack.settings.horizon_days + 1)


async def answered(stack: Stack, who: str, message: str) -> list[dict]:
    replies = await stack.say(who, message)
    assert replies and text(replies).strip(), f"no answer to {message[:60]!r}"
    assert APOLOGY not in text(replies), text(replies)
    return replies


NOT_UNDERSTOOD = ("didn't quite get that", "can't help with that")  # utter_default / _please_rephrase / ...


async def test_a_10kb_message_gets_an_answer_and_the_next_turn_works(stack):
    who = sender()
    story = ("Let me tell you about my weekend: the weather, the long drive to the lake, my cousin's "
             "wedding, the band, the cake, and the endless arguments about football. ")
    message = (story * 80)[:10 * 1024]
    assert len(message.encode()) == 10 * 1024
    replies = await answered(stack, who, message)  # over CHAT_MAX_MESSAGE_CHARS: answered without the model
    assert "too long for me to read" in text(replies), text(replies)
    offered = await offers(stack, who, "I'd like a cleaning with Dr. Alvarez next Tuesday afternoon")
    assert all(bookable(stack, choice_start(b)) for b in offered)


@pytest.mark.parametrize("message", ["🦷🦷😬🙏", "مرحبا، أريد حجز موعد لتنظيف الأسنان",
                                     "שלום, אני רוצה לקבוע תור", "\u202eevil\u202c right-to-left override"])
async def test_emoji_and_right_to_left_messages_are_not_understood_politely(stack, message):
    who = sender()
    replies = await answered(stack, who, message)
    assert any(phrase in text(replies) for phrase in NOT_UNDERSTOOD), text(replies)
    assert not slot_buttons(replies)
    await offers(stack, who, "is Dr Chen free for a consultation next Monday?")


NAMES = [
    ("Zoë 🦷 Ångström-Núñez", "212 555 0190"),
    ("محمد عبد الله", "212 555 0191"),
    ("דוד כהן", "212 555 0192"),  # the model calls this "affirm": it used to be dropped as a yes
    # the model reads this as `stop`; the name question takes it all the same (actions/asking.py)
    ("Robert'); DROP TABLE appointments;--", "212 555 0193"),
    ("<script>alert(1)</script>", "212 555 0194"),
    ("<img src=x onerror=alert(1)>", "212 555 0195"),
]


@pytest.mark.parametrize(("name", "phone"), NAMES, ids=["emoji", "arabic", "hebrew", "sql", "script", "img"])
async def test_a_hostile_name_is_stored_verbatim_and_every_table_survives(stack, name, phone):
    before = rows(stack, "SELECT count(*) FROM appointments")[0][0]
    who = sender()
    offered = await offers(stack, who, "book a filling with dr chen next wednesday")
    await book_anonymously(stack, who, offered[0], name, phone)
    done = await yes_and_code(stack, who, phone)
    assert "You're booked" in text(done), text(done)
    digits = "+1" + phone.replace(" ", "")
    assert rows(stack, "SELECT p.full_name, count(a.id) FROM patients p"
                       " JOIN appointments a ON a.patient_id = p.id"
                       " WHERE p.phone = %s GROUP BY p.full_name", digits) == [(name, 1)]
    assert rows(stack, "SELECT count(*) FROM appointments")[0][0] == before + 1
    tables = {r[0] for r in rows(stack, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"appointments", "patients", "dentists", "services", "working_hours", "time_off"} <= tables


@pytest.mark.parametrize("answer", ["нет", "لا", "❌"])
async def test_no_in_a_language_the_model_never_learnt_books_nothing(stack, answer):
    who = sender()
    offered = await offers(stack, who, "book a whitening with dr patel next thursday")
    await book_anonymously(stack, who, offered[0], "Nadia Petrova", "212 555 0196")
    again = await stack.say(who, answer)  # the model reads each of these as "affirm", at about 0.9
    assert "You're booked" not in text(again), text(again)
    assert "Shall I book it?" in text(again), text(again)
    declined = await stack.say(who, "no")
    assert "haven't booked" in text(declined), text(declined)
    assert rows(stack, "SELECT count(*) FROM appointments a JOIN patients p ON p.id = a.patient_id"
                       " WHERE p.phone = '+12125550196'") == [(0,)]


async def test_a_date_far_in_the_past_is_explained_and_nothing_is_offered_for_it(stack):
    who = sender()
    replies = await answered(stack, who, "book a cleaning with dr alvarez on 3 March 1999")
    assert "already passed" in text(replies), text(replies)
    assert not slot_buttons(replies)
    # the conversation goes on: a real date gets real times
    offered = await offers(stack, who, "next Thursday")
    assert all(bookable(stack, choice_start(b)) for b in offered)


@pytest.mark.parametrize("message", ["book a cleaning with dr patel in 2099",
                                     "I'd like a cleaning with Dr. Alvarez on March 3, 2099"])
async def test_a_date_past_the_booking_horizon_is_explained_and_nothing_outside_is_offered(stack, message):
    who = sender()
    replies = await answered(stack, who, message)
    assert "that far ahead" in text(replies), text(replies)
    nearest = slot_buttons(replies)  # the nearest free times instead (utter_offer_nearest)
    assert nearest, f"no times offered instead: {text(replies)}"
    assert all(bookable(stack, choice_start(b)) for b in nearest), [b["title"] for b in nearest]
