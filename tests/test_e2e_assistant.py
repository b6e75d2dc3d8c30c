"""The assistant end to end: PostgreSQL, the sync service, the action server and the Rasa
server as ``make run`` starts them; real conversations through Rasa's REST channel."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import psycopg
import pytest
import socketio

from bot.tokens import mint
from tests.chat_helpers import (book_anonymously, choice_start, offers, rows, sent_code, slot_buttons, text,
                                yes_and_code)
from tests.polling import action_cache_caught_up

pytestmark = [pytest.mark.slow, pytest.mark.e2e,
              pytest.mark.usefixtures("trained_model")]


@pytest.fixture(scope="module")
def stack(chat_stack):
    """The shared system (tests/conftest.py); the action server's counters as this module found them."""
    before = chat_stack.health()
    yield chat_stack
    # every offer of this module came from the action server's cache, as in production: the
    # gateway's silent SQL fallback (cache not started or failing) was never taken meanwhile
    health = chat_stack.health()
    fallbacks = before["availability"]["gateway_sql_fallbacks"]
    assert health["availability"] == {"source": "cache", "gateway_sql_fallbacks": fallbacks}, health
    assert health["cache"]["sql_fallbacks"] == before["cache"]["sql_fallbacks"], (before, health)


async def test_booking_lands_in_the_database_and_reaches_an_admin(stack):
    admin = socketio.AsyncClient()
    created: list[dict] = []
    got = asyncio.Event()

    @admin.on("appointment_created")
    async def on_created(data):
        created.append(data)
        got.set()

    await admin.connect(stack.url("sync"), auth={"token": mint("admin", settings=stack.settings)},
                        transports=["websocket"])
    try:
        sender = f"e2e-{uuid.uuid4().hex[:8]}"
        offered = await offers(stack, sender, "I'd like a cleaning with Dr. Alvarez next Tuesday afternoon")
        await book_anonymously(stack, sender, offered[0], "Ada Lovelace", "212 555 0177")
        done = await yes_and_code(stack, sender, "212 555 0177")
        assert "You're booked" in text(done), text(done)
        [(appt_id, status, starts)] = rows(
            stack, "SELECT a.id, a.status, a.starts_at FROM appointments a JOIN patients p ON p.id = a.patient_id"
                   " WHERE p.phone = '+12125550177'")
        assert starts == choice_start(offered[0]) and status == "pending"
        await asyncio.wait_for(got.wait(), 30)
        assert any(e["appointment"]["id"] == appt_id for e in created)
    finally:
        await admin.disconnect()


async def test_time_off_written_in_sql_disappears_from_the_next_offer(stack):
    sender = f"e2e-{uuid.uuid4().hex[:8]}"
    first = await offers(stack, sender, "is Dr Chen free for a consultation next Monday?")
    taken = choice_start(first[0])
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        dentist = conn.execute("SELECT id FROM dentists WHERE full_name LIKE '%%Chen'").fetchone()[0]
        conn.execute("INSERT INTO time_off (dentist_id, starts_at, ends_at, reason) VALUES (%s, %s, %s, 'e2e')",
                     (dentist, taken - timedelta(minutes=1), taken + timedelta(hours=1)))
    await action_cache_caught_up(stack.url("actions"), stack.db_url)
    again = await offers(stack, f"e2e-{uuid.uuid4().hex[:8]}", "is Dr Chen free for a consultation next Monday?")
    assert taken not in [choice_start(b) for b in again]


async def test_two_users_racing_for_one_slot_get_one_booking_and_one_alternative(stack):
    a, b = f"race-a-{uuid.uuid4().hex[:6]}", f"race-b-{uuid.uuid4().hex[:6]}"
    request = "can I get a filling with Dr Patel next Thursday?"
    offered_a = await offers(stack, a, request)
    offered_b = await offers(stack, b, request)
    slot = offered_a[0]
    assert slot["payload"] in [x["payload"] for x in offered_b]
    await book_anonymously(stack, a, slot, "Race Winner", "212 555 0181")
    replies_b = await stack.say(b, slot["payload"])
    if "name" in text(replies_b).lower():
        replies_b = await stack.say(b, "Race Second")
    if "phone" in text(replies_b).lower():
        replies_b = await stack.say(b, "212 555 0182")
    done_a = await yes_and_code(stack, a, "212 555 0181")
    assert "You're booked" in text(done_a)
    if "Shall I book it?" in text(replies_b):
        replies_b = await yes_and_code(stack, b, "212 555 0182")
    assert "You're booked" not in text(replies_b)
    assert slot_buttons(replies_b), f"no alternatives offered: {text(replies_b)}"
    assert choice_start(slot) not in [choice_start(x) for x in slot_buttons(replies_b)]
    assert len(rows(stack, "SELECT a.id FROM appointments a JOIN dentists d ON d.id = a.dentist_id"
                           " WHERE a.starts_at = %s AND a.status <> 'cancelled' AND d.full_name LIKE '%%Patel%%'",
                    choice_start(slot))) == 1  # Dr Patel's (another dentist's seeded visit may share the time)


async def test_hostile_name_is_stored_verbatim_and_two_yeses_at_once_book_once(stack):
    """Two "yes" messages sent together, then two copies of the code: Rasa's per-conversation lock
    runs them one after the other; the first yes sends the code, the second is no code; the
    first code books and the form has closed, so the second books nothing. (The same message
    delivered twice, and two action calls racing, are test_actions_booking's: the idempotency key
    answers those.)"""
    sender = f"e2e-{uuid.uuid4().hex[:8]}"
    offered = await offers(stack, sender, "book a whitening with dr patel next friday")
    hostile = "Robert'); DROP TABLE patients;--"
    await book_anonymously(stack, sender, offered[0], hostile, "212 555 0183")
    first, second = await asyncio.gather(stack.say(sender, "yes"), stack.say(sender, "yes"))
    assert "6-digit code" in text(first) + text(second) and "You're booked" not in text(first) + text(second)
    code = sent_code(stack, "212 555 0183")
    first, second = await asyncio.gather(stack.say(sender, code), stack.say(sender, code))
    assert "You're booked" in text(first) + text(second)
    stored = rows(stack, "SELECT p.full_name, count(a.id) FROM patients p LEFT JOIN appointments a"
                         " ON a.patient_id = p.id WHERE p.phone = '+12125550183' GROUP BY p.full_name")
    assert stored == [(hostile, 1)]


async def test_conversation_survives_a_rasa_restart(stack):
    sender = f"e2e-{uuid.uuid4().hex[:8]}"
    offered = await offers(stack, sender, "I need an extraction with Dr. Alvarez next Wednesday")
    replies = await stack.say(sender, offered[0]["payload"])
    assert "name" in text(replies).lower()
    await asyncio.to_thread(stack.restart, "rasa")
    replies = await stack.say(sender, "Grace Hopper")
    assert "phone" in text(replies).lower(), text(replies)
    replies = await stack.say(sender, "212 555 0184")
    assert "Shall I book it?" in text(replies)
    assert "You're booked" in text(await yes_and_code(stack, sender, "212 555 0184"))
