"""The chat widget (sync/static/chat.js) in real Chromium.

Against the real assistant, as ``make run`` starts it (the sync service serving the page, Rasa
with the clinic's socketio channel from rasa_tools/channels.py, the action server, PostgreSQL):
a visitor asks for a cleaning, sees the assistant's offer and its times, picks one, gives a name
and a phone number and confirms; the visit is in the appointments table. After a reload the
widget presents the id the server issued and the same conversation lists that visit. Every text
waited for is the assistant's, never the page's echo of what was typed: with no answer from
Rasa these tests fail.

Against a stand-in for that channel (FakeRasa: ``session_request`` → ``session_confirm`` with an
id the server issues, accepting again only ids it issued; ``user_uttered`` → ``bot_uttered`` to
that conversation): what the model will not say on demand — hostile markup in a reply, the
typing indicator, the token in the metadata, and a message typed while the assistant is
unreachable, sent once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets

import pytest
import socketio
from aiohttp import web
from browser_helpers import REPLY_MS, answered, collect_errors, offered, running, typing

from bot.tokens import mint
from tests.chat_helpers import choice_start, rows, sent_code
from tests.sync_helpers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EVIL = "<img src=x onerror=\"window.__pwned=1\">Hello from the <b>assistant</b>"


# --- the real assistant ------------------------------------------------------------------------

@pytest.fixture
def stack(chat_stack):
    """The shared system (tests/conftest.py: the model of the current data, or a skip)."""
    return chat_stack


async def test_a_visitor_books_in_the_widget_and_the_visit_is_in_the_database(stack, browser, shot):
    context = await browser.new_context(viewport={"width": 420, "height": 900})
    page = await context.new_page()
    errors = await collect_errors(page)
    await page.goto(f"{stack.url('sync')}/")  # the page's own origin: the one CHAT_ORIGINS lists
    await page.wait_for_selector('#chat-status[data-state="ok"]', timeout=REPLY_MS)  # session_confirm came
    await page.locator(".msg.bot", has_text="booking assistant").wait_for(timeout=REPLY_MS)  # utter_greet
    session = await page.evaluate("localStorage.getItem('chat.session.guest')")
    assert session and "." in session  # an id the server issued and signed, not one the page made up

    offer = await answered(page, r"free times", typing(page, "I'd like a cleaning with Dr. Alvarez next week"))
    assert "Which one suits you?" in offer or "nearest free times" in offer, offer
    slots = [b for b in await offered(page) if "slot_choice" in b["payload"]]
    assert slots, "the offer came without times to pick"
    chosen = slots[0]
    await shot(page, "chat-offer")

    button = page.locator("#quick-replies button", has_text=chosen["title"]).first
    await answered(page, r"What name", button.click)
    await answered(page, r"phone number", typing(page, "Émile Zola-Brontë"))
    confirm = await answered(page, r"Shall I book it\?", typing(page, "212 555 0166"))
    assert "Cleaning" in confirm and "Alvarez" in confirm, confirm
    await answered(page, r"6-digit code", page.locator("#quick-replies button", has_text="Yes, book it").click)
    booked = await answered(page, r"You're booked", typing(page, sent_code(stack, "212 555 0166")))
    reference = int(re.search(r"Reference #(\d+)", booked).group(1))
    await shot(page, "chat-booked")

    assert rows(stack, "SELECT a.id, a.starts_at, a.status, p.full_name FROM appointments a"
                       " JOIN patients p ON p.id = a.patient_id WHERE p.phone = '+12125550166'") == [
        (reference, choice_start(chosen), "pending", "Émile Zola-Brontë")]
    assert rows(stack, "SELECT conversation_id FROM chat_bookings WHERE appointment_id = %s", reference) == [
        (session,)]  # booked in the conversation the server issued to this page

    # a reload keeps the transcript and the conversation: Rasa knows what this chat booked
    shown = await page.locator(".msg").all_inner_texts()
    await page.reload()
    await page.wait_for_selector('#chat-status[data-state="ok"]', timeout=REPLY_MS)
    assert await page.evaluate("localStorage.getItem('chat.session.guest')") == session
    assert await page.locator(".msg").all_inner_texts() == shown
    listed = await answered(page, r"upcoming visits", typing(page, "show my appointments"))
    assert f"#{reference}" in listed, listed
    assert errors == [], errors


# --- a stand-in for the channel ----------------------------------------------------------------

class FakeRasa:
    """ClinicSocketIOInput's protocol, with replies the test chooses."""

    def __init__(self):
        self.sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
        self.received: list[dict] = []
        self.asked: list[str | None] = []      # the session_id each session_request presented
        self.issued: set[str] = set()
        self.conversation: dict[str, str] = {}  # socket -> its conversation
        self.greet_after = asyncio.Event()  # the greeting waits for the test (to see the typing indicator)
        self.greet_after.set()
        self.sio.on("session_request", self.session_request)
        self.sio.on("user_uttered", self.user_uttered)

    async def session_request(self, sid, data):
        asked = (data or {}).get("session_id")
        self.asked.append(asked)
        session_id = asked if asked in self.issued else f"{secrets.token_urlsafe(24)}.fake"
        self.issued.add(session_id)
        self.conversation[sid] = session_id
        await self.sio.enter_room(sid, session_id)
        await self.sio.emit("session_confirm", session_id, room=sid)

    async def user_uttered(self, sid, data):
        self.received.append(data)
        room = self.conversation[sid]  # the socket's own conversation, whatever the message names
        if data["message"] == "/greet":
            await asyncio.wait_for(self.greet_after.wait(), 30)
            await self.sio.emit("bot_uttered", {"text": EVIL}, room=room)
            await self.sio.emit("bot_uttered", {"text": "What would you like to do?", "quick_replies": [
                {"content_type": "text", "title": "Book a visit", "payload": "/book"},
                {"content_type": "text", "title": "My appointments", "payload": "/list"}]}, room=room)
        else:
            await self.sio.emit("bot_uttered", {"text": f"Got {data['message']}"}, room=room)


@contextlib.asynccontextmanager
async def fake_rasa(port: int | None = None):
    rasa = FakeRasa()
    app = web.Application()
    rasa.sio.attach(app)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield rasa, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_chat_widget_quick_replies_token_metadata_and_reload(browser, shot, settings, db_url):
    token = mint("patient", 3, settings=settings)
    async with running(settings) as server, fake_rasa() as (rasa, rasa_url):
        rasa.greet_after.clear()
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        errors = await collect_errors(page)
        await page.goto(f"{server.url}/?token={token}&rasa={rasa_url}")
        await page.wait_for_selector('#chat-status[data-state="ok"]', timeout=30_000)
        await page.wait_for_selector("#typing:not([hidden])")  # the greeting is on its way
        rasa.greet_after.set()
        await page.wait_for_selector("#quick-replies button")
        assert await page.locator("#typing").is_hidden()
        bot_text = await page.locator(".msg.bot").first.inner_text()
        assert EVIL in bot_text and await page.evaluate("window.__pwned === undefined")
        assert await page.locator(".chat-log img, .chat-log b").count() == 0
        assert rasa.received[0]["metadata"] == {"token": token}  # the patient's token travels as metadata

        await page.click("text=Book a visit")  # a quick reply sends its payload, shows its title
        await page.wait_for_selector("text=Got /book")
        assert rasa.received[-1]["message"] == "/book"
        await page.fill("#chat-input", "tomorrow at 10 <script>")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("text=Got tomorrow at 10 <script>")
        session = await page.evaluate("localStorage.getItem('chat.session.patient:3')")
        assert session in rasa.issued and rasa.asked == [None]  # the id came from the server
        await shot(page, "chat")
        shown = await page.locator(".msg").all_inner_texts()

        await page.reload()  # the same conversation continues: same session, same transcript
        await page.wait_for_selector('#chat-status[data-state="ok"]')
        assert rasa.asked == [None, session]
        assert await page.locator(".msg").all_inner_texts() == shown
        await page.fill("#chat-input", "still there?")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("text=Got still there?")
        assert len(rasa.received) == 4  # no second greeting
        assert errors == [], errors


async def test_a_message_typed_while_the_assistant_is_unreachable_is_sent_once_it_is_back(browser, shot, settings,
                                                                                         db_url):
    port = free_port()
    async with running(settings) as server:
        page = await browser.new_page(viewport={"width": 1024, "height": 700})
        await page.goto(f"{server.url}/?rasa=http://127.0.0.1:{port}")
        await page.wait_for_selector('#chat-status[data-state="bad"]')
        problem = await page.locator("#chat-problem").inner_text()
        assert "can't be reached" in problem and settings.clinic_phone in problem
        await page.fill("#chat-input", "hello?")
        await page.keyboard.press("Enter")
        assert "hello?" in await page.locator(".msg.user").last.inner_text()
        await shot(page, "chat-unreachable")

        async with fake_rasa(port) as (rasa, _):  # the assistant comes up: the widget reconnects
            await page.wait_for_selector("text=Got hello?", timeout=60_000)
            assert [m["message"] for m in rasa.received] == ["hello?"]  # kept, sent once, no greeting over it
            assert await page.locator("#chat-status").get_attribute("data-state") == "ok"
            assert await page.locator("#chat-problem").inner_text() == ""
