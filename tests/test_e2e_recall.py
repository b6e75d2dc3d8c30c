"""The recall reminder end to end, through Rasa's REST channel on the whole stack: a signed-in
patient due for a cleaning who says hello hears so and books it with one tap; an anonymous chat
greeting the same way hears nothing of anyone's recalls."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from bot.tokens import mint
from tests.chat_helpers import rows, text

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.usefixtures("trained_model")]

DUE = "Henry Martin"  # a seeded patient without seeded visits


def sender() -> str:
    return f"recall-{uuid.uuid4().hex[:10]}"


def a_cleaning_long_ago(stack) -> int:
    """Henry Martin's cleaning, completed 200 days ago; his patient id."""
    [(patient,)] = rows(stack, "SELECT id FROM patients WHERE full_name = %s", DUE)
    at = datetime.now(timezone.utc) - timedelta(days=200)
    rows(stack, "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, status)"
                " SELECT %s, 1, s.id, %s, %s, 'completed' FROM services s WHERE s.name = 'Cleaning'"
                " RETURNING id", patient, at, at + timedelta(minutes=45))
    return patient


async def test_a_signed_in_patient_who_is_due_hears_it_and_books_with_one_tap(chat_stack):
    stack, who = chat_stack, sender()
    patient = a_cleaning_long_ago(stack)
    signed = {"token": mint("patient", patient, settings=stack.settings)}
    hello = await stack.say(who, "hi", signed)
    assert "booking assistant" in text(hello) and "you are due for the next one" in text(hello), text(hello)
    [button] = [b for reply in hello for b in reply.get("buttons") or []]
    assert button["title"] == "Book my cleaning"
    booking = await stack.say(who, button["payload"], signed)
    said = text(booking)
    assert "due" not in said and "Sorry" not in said and "dentist" in said.lower(), said


async def test_an_anonymous_hello_hears_nothing_of_recalls(chat_stack):
    stack = chat_stack
    a_cleaning_long_ago(stack)
    hello = await stack.say(sender(), "hi")
    assert "booking assistant" in text(hello) and "due" not in text(hello), text(hello)
    assert not [b for reply in hello for b in reply.get("buttons") or []]


async def test_a_greeting_that_asks_to_move_a_visit_goes_straight_to_it(chat_stack):
    """Said in one breath, the way people write: the model reads a greeting, the words ask to move
    a visit. The move starts at once (no welcome speech to answer first), for the visit named."""
    stack = chat_stack
    [(patient, service)] = rows(stack, "SELECT a.patient_id, min(s.name) FROM appointments a JOIN services s"
                                       " ON s.id = a.service_id WHERE a.status <> 'cancelled' AND a.starts_at > now()"
                                       " GROUP BY a.patient_id HAVING count(*) = 1 ORDER BY a.patient_id LIMIT 1")
    signed = {"token": mint("patient", patient, settings=stack.settings)}
    said = text(await stack.say(sender(), "Hey Hope you're having a good day Something came up could we move my "
                                          f"{service.lower()}", signed))
    assert "booking assistant" not in said, said
    assert "When would suit you?" in said or "Which one suits you?" in said, said
