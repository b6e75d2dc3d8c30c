"""The chat widget in real Chromium against a stand-in for Rasa's socketio channel.

The stand-in follows Rasa 3.6's ``SocketIOInput`` with ``session_persistence: true``
(credentials.yml): ``session_request`` → ``session_confirm`` and joining the session's room,
``user_uttered`` {message, session_id, metadata} → ``bot_uttered`` {text, quick_replies}
emitted to that room. The conversation with the real assistant is the Rasa engineers' test.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import socketio
from aiohttp import web
from browser_helpers import collect_errors, running

from bot.tokens import mint
from tests.sync_helpers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EVIL = "<img src=x onerror=\"window.__pwned=1\">Hello from the <b>assistant</b>"


class FakeRasa:
    def __init__(self):
        self.sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
        self.received: list[dict] = []
        self.sessions: list[str | None] = []
        self.release = asyncio.Event()  # the greeting waits for the test (to see the typing indicator)
        self.sio.on("session_request", self.session_request)
        self.sio.on("user_uttered", self.user_uttered)

    async def session_request(self, sid, data):
        session_id = (data or {}).get("session_id") or f"s-{len(self.sessions) + 1}"
        self.sessions.append((data or {}).get("session_id"))
        await self.sio.enter_room(sid, session_id)
        await self.sio.emit("session_confirm", session_id, room=sid)

    async def user_uttered(self, sid, data):
        self.received.append(data)
        room = data["session_id"]
        if data["message"] == "/greet":
            await asyncio.wait_for(self.release.wait(), 10)
            await self.sio.emit("bot_uttered", {"text": EVIL}, room=room)
            await self.sio.emit("bot_uttered", {"text": "What would you like to do?", "quick_replies": [
                {"content_type": "text", "title": "Book a visit", "payload": "/book"},
                {"content_type": "text", "title": "My appointments", "payload": "/list"}]}, room=room)
        else:
            await self.sio.emit("bot_uttered", {"text": f"Got {data['message']}"}, room=room)


@contextlib.asynccontextmanager
async def fake_rasa():
    rasa = FakeRasa()
    app = web.Application()
    rasa.sio.attach(app)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield rasa, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_chat_widget_quick_replies_token_metadata_and_reload(browser, shot, settings, db_url):
    token = mint("patient", 3, settings=settings)
    async with running(settings) as server, fake_rasa() as (rasa, rasa_url):
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        errors = await collect_errors(page)
        await page.goto(f"{server.url}/?token={token}&rasa={rasa_url}")
        await page.wait_for_selector('#chat-status[data-state="ok"]', timeout=10_000)
        await page.wait_for_selector("#typing:not([hidden])", timeout=5000)  # the greeting is on its way
        rasa.release.set()
        await page.wait_for_selector("#quick-replies button", timeout=5000)
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
        session = rasa.received[-1]["session_id"]
        assert {m["session_id"] for m in rasa.received} == {session}
        await shot(page, "chat")
        shown = await page.locator(".msg").all_inner_texts()

        await page.reload()  # the same conversation continues: same session, same transcript
        await page.wait_for_selector('#chat-status[data-state="ok"]')
        assert rasa.sessions[-1] == session
        assert await page.locator(".msg").all_inner_texts() == shown
        await page.fill("#chat-input", "still there?")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("text=Got still there?")
        assert rasa.received[-1]["session_id"] == session and len(rasa.received) == 4  # no second greeting
        assert errors == [], errors


async def test_chat_widget_says_when_the_assistant_is_unreachable(browser, shot, settings, db_url):
    async with running(settings) as server:
        page = await browser.new_page(viewport={"width": 1024, "height": 700})
        await page.goto(f"{server.url}/?rasa=http://127.0.0.1:{free_port()}")
        await page.wait_for_selector('#chat-status[data-state="bad"]', timeout=10_000)
        problem = await page.locator("#chat-problem").inner_text()
        assert "can't be reached" in problem and settings.clinic_phone in problem
        await page.fill("#chat-input", "hello?")
        await page.keyboard.press("Enter")  # kept and sent once the assistant is back
        assert "hello?" in await page.locator(".msg.user").last.inner_text()
        await shot(page, "chat-unreachable")
