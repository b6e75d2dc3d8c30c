"""The chat widget against the real assistant: Rasa (the clinic's socketio channel, SQL tracker
store), the action server and the sync service serving the pages, as `make run` starts them (the
shared stack, ``chat_stack`` in tests/conftest.py): a signed-in patient asks a question, reloads,
books; the visit shows on /admin live; the dentist's time off on /dentist leaves that day out of
the next offer.

The model is the one trained from the current data (``make test`` trains it first); without it
this test is skipped, or fails under CI."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import aiohttp
import psycopg
import pytest
from browser_helpers import REPLY_MS, answered, collect_errors, offered, typing

from bot.tokens import mint
from tests.polling import action_cache_caught_up

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_widget_talks_to_the_assistant_and_keeps_the_conversation(chat_stack, browser, shot):
    stack = chat_stack  # the shared system (tests/conftest.py): the sync service serves the pages
    settings, db_url = stack.settings, stack.db_url
    site, rasa_url = stack.url("sync"), stack.url("rasa")
    token = mint("patient", 1, settings=settings)
    context = await browser.new_context(viewport={"width": 420, "height": 900})
    page = await context.new_page()
    errors = await collect_errors(page)
    await page.goto(f"{site}/?token={token}&rasa={rasa_url}")
    await page.wait_for_selector('#chat-status[data-state="ok"]', timeout=REPLY_MS)
    await page.locator(".msg.bot", has_text="booking assistant").wait_for(timeout=REPLY_MS)  # utter_greet
    session = await page.evaluate("localStorage.getItem('chat.session.patient:1')")
    assert session

    await answered(page, r"open Monday to Friday", typing(page, "what are your opening hours?"))
    await shot(page, "chat-assistant")
    shown = await page.locator(".msg").all_inner_texts()

    await page.reload()  # the same conversation: same session id, transcript, Rasa tracker
    await page.wait_for_selector('#chat-status[data-state="ok"]', timeout=REPLY_MS)
    assert await page.evaluate("localStorage.getItem('chat.session.patient:1')") == session
    assert await page.locator(".msg").all_inner_texts() == shown
    async with await psycopg.AsyncConnection.connect(db_url) as conn:  # Rasa's SQL tracker store
        cur = await conn.execute("SELECT data FROM events WHERE sender_id = %s AND type_name = 'user'"
                                 " ORDER BY id", (session,))
        users = [row[0] for row in await cur.fetchall()]
    assert [json.loads(data)["text"] for data in users] == ["/greet", "what are your opening hours?"]
    assert not any(token in data for data in users)  # the token travels with each message, never stored

    # a booking made in the widget appears on /admin, without a reload
    admin = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
    await admin.goto(f"{site}/admin?token={mint('admin', settings=settings)}")
    await admin.wait_for_selector('#connection[data-state="live"]', timeout=10_000)
    await admin.wait_for_selector("li[data-id]")
    created = admin.locator('li[data-change="created"]')
    await answered(page, r"free times", typing(page, "I'd like a cleaning with Dr. Alvarez next week"))
    slots = [b for b in await offered(page, "patient:1") if "slot_choice" in b["payload"]]
    assert slots, "the offer came without times to pick"
    times = [b["title"] for b in slots]  # the free times offered
    # signed in: no name or phone asked, straight to the confirmation
    buttons = page.locator("#quick-replies button")
    await answered(page, r"Shall I book it\?", buttons.filter(has_text=times[0]).first.click)
    await answered(page, r"You're booked", buttons.filter(has_text="Yes, book it").click)
    await created.first.wait_for()
    assert await created.first.locator(".appt-who").inner_text() == "Emma Johnson"  # patient 1, from the token
    await shot(page, "chat-booking")
    await shot(admin, "admin-after-chat-booking")

    # the dentist takes that whole day off on /dentist: the assistant stops offering it
    day_label = times[0].split(",")[0]  # e.g. "Mon Nov 30"
    visit = int(await created.first.get_attribute("data-id"))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{site}/api/appointments/{visit}",
                            headers={"Authorization": f"Bearer {mint('admin', settings=settings)}"}) as resp:
            day = datetime.fromisoformat((await resp.json())["appointment"]["starts_at"]).astimezone(settings.tz)
    dentist = await (await browser.new_context()).new_page()
    await dentist.goto(f"{site}/dentist?token={mint('dentist', 1, settings=settings)}")
    await dentist.wait_for_selector('#connection[data-state="live"]', timeout=10_000)
    await dentist.fill("#off-start", day.strftime("%Y-%m-%dT00:00"))
    await dentist.fill("#off-end", (day + timedelta(days=1)).strftime("%Y-%m-%dT00:00"))
    await dentist.click("#add-time-off")
    await dentist.wait_for_selector("text=Added.")
    await action_cache_caught_up(stack.url("actions"), db_url)
    another = typing(page, "I'd like another cleaning with Dr. Alvarez next week")
    await answered(page, r"free times", another)
    again = [b["title"] for b in await offered(page, "patient:1") if "slot_choice" in b["payload"]]
    assert again and not any(t.startswith(day_label) for t in again), (day_label, times, again)
    assert any(t.startswith(day_label) for t in times)
    await shot(page, "chat-after-time-off")
    assert errors == [], errors
