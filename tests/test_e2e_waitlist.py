"""The waitlist end to end, through Rasa's REST channel on the whole stack: two signed-in patients
ask to be told if an earlier filling with Dr Chen opens; the time they want is booked by a third
patient, whose visit is then cancelled by a direct SQL writer. The sync service's worker offers
the freed time to both and tells both chats through Rasa's ``trigger_intent`` (and the second
patient's page, a Socket.IO client as /patient is, gets the offer live); the first "yes" books it,
the second hears it is gone — after the worker told that chat, and that page, so too."""

from __future__ import annotations

import uuid
from datetime import timedelta

import aiohttp
import pytest

from bot.stack import Stack
from bot.tokens import mint
from tests.chat_helpers import buttons, choice_start, rows, slot_buttons, text
from tests.polling import action_cache_caught_up, wait_until
from tests.sync_helpers import Recorder

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.usefixtures("trained_model")]

LOOK = '/check_availability{"service": "filling", "dentist": "chen"}'


def sender(who: str) -> str:
    return f"waitlist-{who}-{uuid.uuid4().hex[:8]}"


async def bot_texts(stack: Stack, conversation: str) -> list[str]:
    """What the bot said in ``conversation``, read from Rasa's tracker (its HTTP API, with the
    token the stack started it with): the worker's messages are there, not in any reply."""
    url = f"{stack.url('rasa')}/conversations/{conversation}/tracker"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, params={"token": stack.settings.resolved_rasa_api_token}) as resp:
            assert resp.status == 200, await resp.text()
            tracker = await resp.json()
    return [e.get("text") or "" for e in tracker["events"] if e.get("event") == "bot"]


def said(stack: Stack, conversation: str, words: str):
    async def check() -> bool:
        return any(words in t for t in await bot_texts(stack, conversation))
    check.__name__ = f"{words!r} in {conversation}"
    return check


async def test_two_waiting_patients_one_freed_time_the_first_yes_books_it(chat_stack):
    stack = chat_stack
    ana, ben, cal = (pid for (pid,) in rows(stack, "SELECT id FROM patients ORDER BY id LIMIT 3 OFFSET 3"))
    [(chen,)] = rows(stack, "SELECT id FROM dentists WHERE full_name LIKE '%%Chen%%'")
    [(filling, minutes)] = rows(stack, "SELECT id, duration_minutes FROM services WHERE name = 'Filling'")
    # the earliest free filling with Dr Chen, taken by a third patient before anyone looks
    wanted = choice_start(slot_buttons(await stack.say(sender("look"), LOOK))[0])
    [(visit,)] = rows(stack, "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at,"
                             " status) VALUES (%s, %s, %s, %s, %s, 'confirmed') RETURNING id",
                      cal, chen, filling, wanted, wanted + timedelta(minutes=minutes))
    await action_cache_caught_up(stack.url("actions"), stack.db_url)  # the offers see it taken

    chats = {pid: (sender(str(pid)), {"token": mint("patient", pid, settings=stack.settings)}) for pid in (ana, ben)}
    for pid, (conversation, signed) in chats.items():
        shown = await stack.say(conversation, LOOK, signed)
        assert choice_start(slot_buttons(shown)[0]) > wanted, text(shown)  # the wanted time is not offered
        [join] = [b for b in buttons(shown) if b["payload"] == "/join_waitlist"]
        joined = await stack.say(conversation, join["payload"], signed)
        assert "I'll message you here if a filling with Dr. Chen opens before" in text(joined), text(joined)
    assert rows(stack, "SELECT patient_id, conversation_id, status FROM waitlist_entries ORDER BY id") == [
        (ana, chats[ana][0], "waiting"), (ben, chats[ben][0], "waiting")]
    assert rows(stack, "SELECT count(*) FROM waitlist_offers") == [(0,)]  # nothing earlier is free yet

    page = await Recorder("ben-page").connect(stack.url("sync"), mint("patient", ben, settings=stack.settings))
    rows(stack, "UPDATE appointments SET status = 'cancelled' WHERE id = %s RETURNING id", visit)
    for conversation, _ in chats.values():
        await wait_until(said(stack, conversation, "Good news: a filling with Dr. Chen opened up"), 30)
    offers = rows(stack, "SELECT patient_id, starts_at, status FROM waitlist_offers ORDER BY id")
    assert offers == [(ana, wanted, "open"), (ben, wanted, "open")]

    (a_chat, a_token), (b_chat, b_token) = chats[ana], chats[ben]
    booked = await stack.say(a_chat, "yes", a_token)
    assert "You're booked: Filling with Dr. James Chen" in text(booked), text(booked)
    # this test's patients only: a seeded cleaning of Dr Chen's is a hygienist's, and may share the time
    ours = [ana, ben, cal]
    assert rows(stack, "SELECT patient_id, dentist_id, starts_at FROM appointments WHERE status <> 'cancelled'"
                       " AND starts_at = %s AND patient_id = ANY(%s)", wanted, ours) == [(ana, chen, wanted)]
    await wait_until(said(stack, b_chat, "has been taken by someone else"), 30)
    await page.wait_for(lambda r: [d["offer"]["status"] for e, d in r.events if e == "waitlist_offer"]
                        == ["open", "gone"], 30)
    assert {d["offer"]["patient_id"] for e, d in page.events if e == "waitlist_offer"} == {ben}
    await page.close()
    late = await stack.say(b_chat, "yes", b_token)
    assert "Sorry, someone else took that time a moment ago. You stay on the waitlist." in text(late), text(late)
    assert rows(stack, "SELECT patient_id FROM appointments WHERE status <> 'cancelled' AND starts_at = %s"
                       " AND patient_id = ANY(%s)", wanted, ours) == [(ana,)]
    assert rows(stack, "SELECT patient_id, status FROM waitlist_entries ORDER BY id") == [
        (ana, "booked"), (ben, "waiting")]
