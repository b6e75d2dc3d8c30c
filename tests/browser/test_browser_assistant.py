"""The chat widget against the real assistant: Rasa (socketio channel, SQL tracker store) and
the action server, started as `make run` starts them (bot.launcher), with the sync service.

The model is trained by scripts/train.sh when models/ has none for the current data (as the
NLU test does; a no-op otherwise)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from browser_helpers import Server, collect_errors

from bot.launcher import plan, service_env, start_services, stop_services, wait_ready
from bot.seed import seed
from bot.settings import Settings
from bot.tokens import mint
from tests.sync_helpers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
RASA_SITE = ROOT / ".venv-rasa" / "lib" / "python3.10" / "site-packages"


def rasa_room_bug() -> bool:
    """Rasa 3.6's stock socketio channel calls ``sio.enter_room(...)`` without ``await``; since
    python-socketio 5.10 that is a coroutine, so with ``session_persistence: true`` the widget's
    session room is never joined and no reply reaches it (RasaHQ/rasa#13027). True while the
    stock channel, an async ``enter_room`` and credentials.yml's ``socketio:`` all meet."""
    try:
        channel = (RASA_SITE / "rasa" / "core" / "channels" / "socketio.py").read_text()
    except OSError:
        return False
    server = "".join(f.read_text() for name in ("async_server.py", "asyncio_server.py")  # 5.10+ / older
                     if (f := RASA_SITE / "socketio" / name).exists())
    stock = "sio.enter_room(" in channel and "await sio.enter_room(" not in channel
    credentials = (ROOT / "credentials.yml").read_text()
    return (stock and "async def enter_room" in server and re.search(r"^socketio:", credentials, re.M) is not None
            and re.search(r"session_persistence:\s*true", credentials) is not None)


@pytest.fixture(scope="module")
def model() -> str:
    if not (ROOT / ".venv-rasa" / "bin" / "rasa").exists():
        pytest.fail(".venv-rasa is missing: run `make install`")
    trained = subprocess.run([str(ROOT / "scripts" / "train.sh")], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             timeout=25 * 60)
    assert trained.returncode == 0, "scripts/train.sh failed (its log is above)"
    return trained.stdout.strip().splitlines()[-1]


async def _rasa_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{url}/status") as resp:
                    if resp.status == 200 and (await resp.json()).get("model_file"):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise AssertionError(f"Rasa at {url} did not load its model in {timeout}s")


async def reply(page, act) -> None:
    """Do `act` (send a message, click a reply) and wait for the assistant's answer to finish."""
    before = await page.locator(".msg.bot").count()
    await act()
    await page.locator(".msg.bot").nth(before).wait_for(timeout=60_000)
    await page.wait_for_selector("#typing", state="hidden", timeout=60_000)
    await page.wait_for_timeout(500)  # a reply may come in several messages


async def say(page, text: str) -> None:
    async def send():
        await page.fill("#chat-input", text)
        await page.keyboard.press("Enter")
    await reply(page, send)


@pytest.mark.xfail(rasa_room_bug(), run=False, reason=(
    "Rasa 3.6's socketio channel does not await AsyncServer.enter_room (python-socketio >= 5.10): "
    "with session_persistence no reply reaches the widget (RasaHQ/rasa#13027); pin python-socketio<5.10 "
    "in requirements/rasa.in or use a channel that awaits it"))
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
        assert await asyncio.to_thread(wait_ready, services, timeout=300), "the action server or Rasa died"
        await _rasa_ready(rasa_url, 300)
        token = mint("patient", 1, settings=settings)
        context = await browser.new_context(viewport={"width": 420, "height": 900})
        page = await context.new_page()
        errors = await collect_errors(page)
        await page.goto(f"{server.url}/?token={token}&rasa={rasa_url}")
        await page.wait_for_selector('#chat-status[data-state="ok"]', timeout=90_000)
        await page.wait_for_selector(".msg.bot", timeout=60_000)  # the greeting
        session = await page.evaluate("localStorage.getItem('chat.session.patient:1')")
        assert session

        await page.fill("#chat-input", "what are your opening hours?")
        await page.keyboard.press("Enter")
        await page.locator(".msg.bot").nth(1).wait_for(timeout=60_000)
        await page.wait_for_selector("#typing", state="hidden", timeout=60_000)
        await shot(page, "chat-assistant")
        shown = await page.locator(".msg").all_inner_texts()

        await page.reload()  # the same conversation: same session id, transcript, Rasa tracker
        await page.wait_for_selector('#chat-status[data-state="ok"]', timeout=90_000)
        assert await page.evaluate("localStorage.getItem('chat.session.patient:1')") == session
        assert await page.locator(".msg").all_inner_texts() == shown
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{rasa_url}/conversations/{session}/tracker") as resp:
                tracker = await resp.json()
        users = [e for e in tracker["events"] if e["event"] == "user"]
        assert [e["text"] for e in users] == ["/greet", "what are your opening hours?"]
        assert all(e["metadata"].get("token") == token for e in users)  # the token travels as metadata

        # a booking made in the widget appears on /admin, without a reload
        admin = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
        await admin.goto(f"{server.url}/admin?token={mint('admin', settings=settings)}")
        await admin.wait_for_selector('#connection[data-state="live"]', timeout=10_000)
        await admin.wait_for_selector("li[data-id]")
        created = admin.locator('li[data-change="created"]')
        await say(page, "I'd like a cleaning with Dr. Alvarez next week")
        offered: list[str] = []
        for _ in range(8):
            if await created.count():
                break
            replies = page.locator("#quick-replies button")
            titles = await replies.all_inner_texts()
            last = (await page.locator(".msg.bot").last.inner_text()).lower()
            yes = [i for i, t in enumerate(titles) if re.search(r"\b(yes|confirm|book)", t, re.I)]
            if titles and not yes and not offered:
                offered = titles  # the free times offered
            if titles:
                await reply(page, lambda: replies.nth(yes[0] if yes else 0).click())
            elif "name" in last:
                await say(page, "Emma Johnson")
            elif "phone" in last or "number" in last:
                await say(page, "212 555 0101")
            elif "?" in last:
                await say(page, "yes")
            else:
                break
        await created.first.wait_for(timeout=5000)
        assert await created.first.locator(".appt-who").inner_text() == "Emma Johnson"  # patient 1, from the token
        await shot(page, "chat-booking")
        await shot(admin, "admin-after-chat-booking")

        # the dentist takes that whole day off on /dentist: the assistant stops offering it at once
        day_label = offered[0].split(",")[0]  # e.g. "Mon Nov 30"
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
        await say(page, "I'd like another cleaning with Dr. Alvarez next week")
        again = await page.locator("#quick-replies button").all_inner_texts()
        assert again and not any(t.startswith(day_label) for t in again), (day_label, offered, again)
        assert any(t.startswith(day_label) for t in offered)
        await shot(page, "chat-after-time-off")
        assert errors == [], errors
    finally:
        await asyncio.to_thread(stop_services, services)
        await server.stop()
