"""The chat widget against the real assistant: Rasa (the clinic's socketio channel, SQL tracker
store) and the action server, started as `make run` starts them (bot.launcher), with the sync
service: a signed-in patient asks a question, reloads, books; the visit shows on /admin live;
the dentist's time off on /dentist leaves that day out of the next offer.

The model is trained by scripts/train.sh when models/ has none for the current data (as the
NLU test does; a no-op otherwise)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import psycopg
import pytest
from browser_helpers import REPLY_MS, Server, answered, collect_errors, offered, typing

from bot.launcher import plan, service_env, start_services, stop_services, wait_ready
from bot.seed import seed
from bot.settings import Settings
from bot.tokens import mint
from tests.polling import action_cache_caught_up
from tests.sync_helpers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model() -> str:
    if not (ROOT / ".venv-rasa" / "bin" / "rasa").exists():
        pytest.fail(".venv-rasa is missing: run `make install`")
    trained = subprocess.run([str(ROOT / "scripts" / "train.sh")], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             timeout=25 * 60)
    assert trained.returncode == 0, "scripts/train.sh failed (its log is above)"
    return trained.stdout.strip().splitlines()[-1]


async def test_widget_talks_to_the_assistant_and_keeps_the_conversation(model, browser, shot, db_url, engine):
    settings = Settings(database_url=db_url, env="test", jwt_secret="t" * 40, _env_file=None,
                        sync_port=free_port(), actions_port=free_port(), rasa_port=free_port())
    seed(engine, settings)
    services = [s for s in plan(settings, settings.database_url) if s.name in ("actions", "rasa")]
    assert [s.name for s in services] == ["actions", "rasa"]
    env = {**os.environ, **service_env(settings, settings.database_url), "LOG_LEVEL": "WARNING",
           "RASA_TELEMETRY_ENABLED": "false"}
    server = Server(settings, settings.sync_port)
    await server.start()
    start_services(services, env)
    rasa_url = f"http://127.0.0.1:{settings.rasa_port}"
    try:
        # Rasa answers on its port once its model is loaded (its HTTP API, /status, is off)
        assert await asyncio.to_thread(wait_ready, services, timeout=300), "the action server or Rasa died"
        token = mint("patient", 1, settings=settings)
        context = await browser.new_context(viewport={"width": 420, "height": 900})
        page = await context.new_page()
        errors = await collect_errors(page)
        await page.goto(f"{server.url}/?token={token}&rasa={rasa_url}")
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
        await admin.goto(f"{server.url}/admin?token={mint('admin', settings=settings)}")
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
            async with http.get(f"{server.url}/api/appointments/{visit}",
                                headers={"Authorization": f"Bearer {mint('admin', settings=settings)}"}) as resp:
                day = datetime.fromisoformat((await resp.json())["appointment"]["starts_at"]).astimezone(settings.tz)
        dentist = await (await browser.new_context()).new_page()
        await dentist.goto(f"{server.url}/dentist?token={mint('dentist', 1, settings=settings)}")
        await dentist.wait_for_selector('#connection[data-state="live"]', timeout=10_000)
        await dentist.fill("#off-start", day.strftime("%Y-%m-%dT00:00"))
        await dentist.fill("#off-end", (day + timedelta(days=1)).strftime("%Y-%m-%dT00:00"))
        await dentist.click("#add-time-off")
        await dentist.wait_for_selector("text=Added.")
        await action_cache_caught_up(f"http://127.0.0.1:{settings.actions_port}", db_url)
        another = typing(page, "I'd like another cleaning with Dr. Alvarez next week")
        await answered(page, r"free times", another)
        again = [b["title"] for b in await offered(page, "patient:1") if "slot_choice" in b["payload"]]
        assert again and not any(t.startswith(day_label) for t in again), (day_label, times, again)
        assert any(t.startswith(day_label) for t in times)
        await shot(page, "chat-after-time-off")
        assert errors == [], errors
    finally:
        await asyncio.to_thread(stop_services, services)
        await server.stop()
