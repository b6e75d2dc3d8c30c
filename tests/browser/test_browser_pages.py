"""The pages in real headless Chromium: live updates without reload, status changes crossing
pages, time off taking slots away, catching up after a restart, escaping, screenshots."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest
from browser_helpers import collect_errors, running
from playwright.async_api import expect
from sqlalchemy import text

from bot.accounts import add_user, disable_user
from bot.booking import BookingService, Outcome
from bot.seed import seed
from bot.settings import Settings
from bot.tokens import Identity, mint
from tests.api_helpers import call, pick_visit
from tests.polling import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ADMIN = Identity(role="admin", sub="admin")
PASSWORD = "correct horse battery staple"
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"><b>bold</b>'
# a patient's name in Hebrew with emoji, a right-to-left override and markup: shown exactly as stored
HOSTILE_NAME = 'דוד כהן 🦷 \u202eevil\u202c <img src=x onerror="window.__pwned=3">'


async def open_page(browser, url: str, *, width: int = 1280, height: int = 900):
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    page = await context.new_page()
    errors = await collect_errors(page)
    await page.goto(url)
    return page, errors


async def wait_live(page) -> None:
    await page.wait_for_selector('#connection[data-state="live"]', timeout=10_000)


def free_slot(svc: BookingService, dentist_id: int, service_id: int = 2):
    now = datetime.now(timezone.utc)
    slots = svc.available_slots(service_id, now, now + timedelta(days=14), dentist_id=dentist_id, limit=40)
    assert slots, "the demo clinic has free time in the next two weeks"
    return slots[-1]


def book_free(svc: BookingService, patient_id: int, dentist_id: int, service_id: int = 2, **kwargs):
    """Book the latest of the dentist's free slots in the next two weeks that the patient is free
    for too (the demo seed's visits move with the clock, so a fixed one may overlap)."""
    now = datetime.now(timezone.utc)
    for slot in reversed(svc.available_slots(service_id, now, now + timedelta(days=14), dentist_id=dentist_id,
                                             limit=40)):
        result = svc.book(ADMIN, patient_id=patient_id, dentist_id=dentist_id, service_id=service_id,
                          starts_at=slot.starts_at, **kwargs)
        if result.outcome is not Outcome.PATIENT_BUSY:
            return result
    raise AssertionError(f"patient {patient_id} and dentist {dentist_id} have no common free time")


async def test_the_front_desk_sees_today_per_chair_live(browser, settings, engine):
    """A visit written straight into the database for today shows in its chair's column on
    /admin, and moves to another chair's column live when the database says so."""
    seed(engine, settings)
    today = datetime.now(settings.tz).replace(hour=12, minute=0, second=0, microsecond=0)
    with engine.begin() as conn:
        visit = conn.execute(text(
            "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, operatory_id)"
            " SELECT p.id, 1, 2, :at, :at + interval '30 minutes', 2 FROM patients p"
            " WHERE p.full_name = 'Logan Lopez' RETURNING id"), {"at": today}).scalar_one()
        due = conn.execute(text(  # a cleaning completed a year ago: due for its six-month recall
            "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, status)"
            " SELECT p.id, 1, s.id, :at, :at + interval '45 minutes', 'completed' FROM patients p, services s"
            " WHERE p.full_name = 'Emily Lee' AND s.name = 'Cleaning' RETURNING patient_id"),
            {"at": today - timedelta(days=365)}).scalar_one()
    async with running(settings) as server:
        page, errors = await open_page(browser, f"{server.url}/admin?token={mint('admin', settings=settings)}")
        await wait_live(page)
        chair2 = page.locator(f'#chairs section[data-column="2"] li[data-id="{visit}"]')
        await chair2.wait_for()
        assert await chair2.locator(".appt-who").inner_text() == "Logan Lopez · Dr. Maria Alvarez"
        assert await page.locator('#chairs section[aria-label]').count() == 4  # the seed's chairs
        recall = page.locator(f'#recalls li[data-patient="{due}"]')
        await recall.wait_for()
        assert "Emily Lee" in await recall.inner_text() and "Cleaning" in await recall.inner_text()
        with engine.begin() as conn:
            conn.execute(text("UPDATE appointments SET operatory_id = 4 WHERE id = :id"), {"id": visit})
        await page.locator(f'#chairs section[data-column="4"] li[data-id="{visit}"]').wait_for()
        assert await chair2.count() == 0
        assert not errors


async def test_booking_appears_on_admin_without_reload(browser, shot, settings, engine, db_url):
    seed(engine, settings)
    svc = BookingService(engine, settings)
    with engine.begin() as conn:  # hostile text in a seeded visit's notes: shown as text, never run
        conn.execute(text("UPDATE appointments SET notes = :n WHERE id = 1"), {"n": HOSTILE})
        conn.execute(text("UPDATE patients SET full_name = :n WHERE id = (SELECT patient_id FROM appointments"
                          " WHERE id = 1)"), {"n": HOSTILE_NAME})
    async with running(settings) as server:
        page, errors = await open_page(browser, f"{server.url}/admin?token={mint('admin', settings=settings)}")
        await wait_live(page)
        await page.wait_for_selector('li[data-id="1"]')
        assert "token=" not in page.url  # taken out of the address bar
        marker = await page.evaluate("window.__marker = Math.random()")

        result = await asyncio.to_thread(book_free, svc, patient_id=5, dentist_id=2, notes="Booked by phone")
        assert result.ok, result
        new = result.appointment.id
        row = page.locator(f'#board li[data-id="{new}"]')
        await row.wait_for()  # pushed live, no reload (how fast: bench/)
        assert await page.evaluate("window.__marker") == marker  # same document: not reloaded
        column = page.locator('section[data-dentist="2"]')
        assert await column.locator(f'li[data-id="{new}"]').count() == 1
        assert "flash" in (await row.get_attribute("class")) and await row.get_attribute("data-change") == "created"
        assert await row.locator(".appt-who").inner_text() == "Ava Jones"  # patient 5, read back over REST

        # the hostile note is text on the page, nothing ran and no element was injected
        note = page.locator('li[data-id="1"] .appt-notes')
        assert await note.inner_text() == HOSTILE
        assert await page.locator('li[data-id="1"] .appt-who').inner_text() == HOSTILE_NAME
        assert await page.evaluate("window.__pwned === undefined")
        assert await page.locator("#board img, #board script, #board b").count() == 0

        await page.wait_for_selector('#counters dd[data-counter="Events processed"]')
        await shot(page, "admin")
        # the token lives in sessionStorage, per tab: a new tab is sent to /login, and the front
        # desk signs in with an email and a password
        await asyncio.to_thread(add_user, engine, settings, "desk@clinic.example", "admin", PASSWORD,
                                full_name="Ana Front")
        phone, phone_errors = await open_page(browser, f"{server.url}/admin", width=390, height=844)
        assert phone.url == f"{server.url}/login?next=/admin"
        await phone.fill("#email", "desk@clinic.example")
        await phone.fill("#password", "not the password")
        await phone.click("#sign-in")
        await expect(phone.locator("#login-error")).to_have_text("Wrong email or password.")
        await shot(phone, "login")
        await phone.fill("#password", PASSWORD)
        await phone.click("#sign-in")
        await phone.wait_for_url(f"{server.url}/admin")
        await wait_live(phone)
        await expect(phone.locator("#who-name")).to_have_text("Ana Front")  # the person, not admin:...
        await phone.wait_for_selector(f'li[data-id="{new}"]')
        # a status clicked with the cookie session (its CSRF token) is written
        await phone.locator(f'li[data-id="{new}"] button[data-action="confirmed"]').click()
        await phone.wait_for_selector(f'li[data-id="{new}"][data-status="confirmed"]')
        await page.wait_for_selector(f'li[data-id="{new}"][data-status="confirmed"]')  # the other tab hears it
        await shot(phone, "admin-phone")
        await phone.reload()  # the cookie, not the tab, holds the sign-in
        await wait_live(phone)
        await phone.click("#sign-out")
        await phone.wait_for_url(f"{server.url}/login")
        await phone.goto(f"{server.url}/admin")
        assert phone.url == f"{server.url}/login?next=/admin"
        # the one console error of the phone tab: the browser's note on the wrong password's 401
        assert errors == [] and phone_errors == [
            "console: Failed to load resource: the server responded with a status of 401 (Unauthorized)"], \
            (errors, phone_errors)


async def test_status_clicked_on_admin_shows_on_patient(browser, shot, settings, engine, db_url):
    seed(engine, settings)
    visit, patient, dentist = pick_visit(engine)
    async with running(settings) as server:
        admin, admin_errors = await open_page(browser, f"{server.url}/admin?token={mint('admin', settings=settings)}")
        pat, pat_errors = await open_page(browser, f"{server.url}/patient?token={mint('patient', patient, settings=settings)}",
                                          width=390, height=844)
        await wait_live(admin)
        await wait_live(pat)
        row = pat.locator(f'li[data-id="{visit}"]')
        await row.wait_for()
        before = await row.get_attribute("data-status")
        assert before == "confirmed"
        await shot(pat, "patient-before")

        button = admin.locator(f'li[data-id="{visit}"] button[data-action="completed"]')
        await button.focus()
        await admin.keyboard.press("Enter")  # keyboard works, not only the mouse
        await pat.wait_for_selector(f'li[data-id="{visit}"][data-status="completed"]')
        assert await row.locator(".badge").inner_text() == "Completed"
        await admin.wait_for_selector(f'li[data-id="{visit}"][data-status="completed"]')
        await shot(pat, "patient")

        # a patient's page never shows anyone else's visit
        names = await pat.locator(".appt-who").all_inner_texts()
        assert names and all("Dr." in n for n in names)
        with engine.connect() as conn:
            own = conn.execute(text("SELECT count(*) FROM appointments WHERE patient_id = :p AND starts_at > now()"),
                               {"p": patient}).scalar()
        assert await pat.locator("li[data-id]").count() == own
        assert admin_errors == [] and pat_errors == []


async def test_time_off_added_on_dentist_page_takes_slots_away(browser, shot, settings, engine, db_url):
    seed(engine, settings)
    svc = BookingService(engine, settings)
    async with running(settings) as server:
        slot = free_slot(svc, dentist_id=1)
        local = slot.starts_at.astimezone(settings.tz)
        day_start = local.replace(hour=0, minute=0)
        page, errors = await open_page(browser, f"{server.url}/dentist?token={mint('dentist', 1, settings=settings)}")
        await wait_live(page)
        await page.wait_for_selector("#hours-form tbody tr")
        assert slot in svc.available_slots(2, slot.starts_at, slot.ends_at, dentist_id=1)
        await page.fill("#off-start", day_start.strftime("%Y-%m-%dT%H:%M"))
        await page.fill("#off-end", (day_start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"))
        await page.fill("#off-reason", HOSTILE)
        await page.click("#add-time-off")
        item = page.locator("#time-off-list li[data-id]", has_text="window.__pwned=1")
        await item.wait_for()
        assert await page.evaluate("window.__pwned === undefined")

        with engine.connect() as conn:
            starts, ends = conn.execute(text("SELECT starts_at, ends_at FROM time_off WHERE reason = :r"),
                                        {"r": HOSTILE}).one()
        assert starts == day_start and ends == day_start + timedelta(days=1)  # the clinic's wall clock
        window = (day_start, day_start + timedelta(days=1))
        assert svc.available_slots(2, *window, dentist_id=1) == []
        await shot(page, "dentist")

        # weekly hours: drop Friday, save, and the database holds exactly what the form shows
        rows = page.locator("#hours-form tbody tr")
        count = await rows.count()
        await page.locator('#hours-form tbody tr:has(select option[value="5"]:checked) button').first.click()
        await page.click("#save-hours")
        await page.wait_for_selector("text=Saved.")
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM working_hours WHERE dentist_id = 1")).scalar()
        assert stored == count - 1 == await rows.count()

        # the front desk changes this dentist's week and time off: the open page follows, no reload
        admin = mint("admin", settings=settings)
        status, _ = await call("PUT", f"{server.url}/api/dentists/1/working-hours", admin,
                               [{"weekday": 6, "start_time": "10:00", "end_time": "14:00"}])
        assert status == 200
        await expect(rows).to_have_count(1)
        await expect(rows.first.locator("select")).to_have_value("6")
        later = day_start + timedelta(days=3)
        status, made = await call("POST", f"{server.url}/api/dentists/1/time-off", admin,
                                  {"starts_at": later.isoformat(), "ends_at": (later + timedelta(hours=2)).isoformat(),
                                   "reason": "Set by the front desk"})
        assert status == 201
        await page.locator(f'#time-off-list li[data-id="{made["time_off"]["id"]}"]').wait_for()
        assert errors == [], errors


async def test_pages_catch_up_after_the_sync_service_restarts(browser, shot, settings, engine, db_url):
    seed(engine, settings)
    svc = BookingService(engine, settings)
    async with running(settings) as server:
        page, errors = await open_page(browser, f"{server.url}/admin?token={mint('admin', settings=settings)}")
        await wait_live(page)
        await server.stop()
        await page.wait_for_selector('#connection:not([data-state="live"])')
        await shot(page, "admin-reconnecting")

        # written while the service is down: only the outbox knows
        result = await asyncio.to_thread(book_free, svc, patient_id=7, dentist_id=3)
        assert result.ok, result
        await asyncio.to_thread(svc.set_status, ADMIN, 1, "no_show")

        await server.start()
        await wait_live(page)
        await page.wait_for_selector(f'li[data-id="{result.appointment.id}"]')
        await page.wait_for_selector('li[data-id="1"][data-status="no_show"]')
        resumed = await page.evaluate("window.clinicSync.lastEventId")
        with engine.connect() as conn:
            assert resumed == conn.execute(text("SELECT max(id) FROM realtime_events")).scalar()

        fresh, fresh_errors = await open_page(browser, f"{server.url}/admin?token={mint('admin', settings=settings)}")
        await wait_live(fresh)
        await fresh.wait_for_selector(f'li[data-id="{result.appointment.id}"]')
        connection_errors = [e for e in errors if "socket.io" not in e and "ERR_CONNECTION_REFUSED" not in e]
        assert connection_errors == [] and fresh_errors == []


async def test_a_refused_token_brings_back_the_sign_in_form(browser, shot, settings, engine, db_url):
    seed(engine, settings)
    expired = mint("patient", 1, settings=settings, ttl_minutes=1, now=time.time() - 3600)
    forged = mint("admin", settings=Settings(database_url=settings.database_url, env="test",
                                             jwt_secret="f" * 40, _env_file=None))
    async with running(settings) as server:
        for path, tok in (("patient", expired), ("admin", forged), ("dentist", mint("patient", 1, settings=settings))):
            page, errors = await open_page(browser, f"{server.url}/{path}?token={tok}", width=390, height=700)
            if path == "patient":  # an expired patient token: the sign-in by a code texted to the phone
                await page.locator("#code-signin").wait_for()
                assert await page.locator("#phone-input").evaluate("el => el === document.activeElement")
                await shot(page, "sign-in")
                await page.context.close()
                continue
            form = page.locator("#signin")
            await form.wait_for()
            message = await form.locator(".error").inner_text()
            assert ("not accepted" in message) if path != "dentist" else ("for dentist tokens" in message), message
            assert await page.locator("#token-input").evaluate("el => el === document.activeElement")
            await page.context.close()


async def test_a_patient_signs_in_with_the_code_texted_to_their_phone(browser, shot, settings, engine, db_url):
    seed(engine, settings)
    async with running(settings) as server:
        page, errors = await open_page(browser, f"{server.url}/patient", width=390, height=760)
        await page.locator("#phone-input").fill("(212) 555-0101")  # Emma Johnson's number on file
        await page.locator("#send-code").click()
        await page.locator("#code-verify").wait_for()

        def texted() -> str | None:  # the code is sent after the answer
            with engine.connect() as c:
                return c.execute(text("SELECT body FROM notifications WHERE recipient = '+12125550101'")).scalar()

        body = await wait_until(lambda: asyncio.to_thread(texted), 10, what="the code's text")
        code = next(w for w in body.replace(".", " ").split() if w.isdigit() and len(w) == 6)
        await page.locator("#code-input").fill("000000" if code != "000000" else "111111")
        await page.locator("#verify-code").click()
        await expect(page.locator("#signin-error")).to_contain_text("didn't sign you in")
        await page.locator("#code-input").fill(code)
        await page.locator("#verify-code").click()
        await wait_live(page)
        with engine.connect() as c:
            mine = c.execute(text("SELECT count(*) FROM appointments WHERE patient_id = 1"
                                  " AND starts_at > now() AND status <> 'cancelled'")).scalar_one()
        await expect(page.locator("#board li[data-id]")).to_have_count(mine)
        await expect(page.locator("#who-name")).to_have_text("Emma Johnson")  # the name, not patient:1
        await shot(page, "patient-signed-in-by-code")
        assert [e for e in errors if "401" not in e] == []


async def test_a_page_signed_in_by_cookie_stops_when_the_account_is_disabled(browser, settings, engine):
    """The front desk signed in at /login; the account is disabled from the command line: the
    live connection is closed within the service's check and the page says the sign-in ended."""
    seed(engine, settings)
    s = settings.model_copy(update={"staff_session_check_seconds": 0.2})
    await asyncio.to_thread(add_user, engine, s, "desk@clinic.example", "admin", PASSWORD, full_name="Ana Front")
    async with running(s) as server:
        page, errors = await open_page(browser, f"{server.url}/login?next=/admin")
        await page.fill("#email", "desk@clinic.example")
        await page.fill("#password", PASSWORD)
        await page.click("#sign-in")
        await page.wait_for_url(f"{server.url}/admin")
        await wait_live(page)
        assert errors == []
        await asyncio.to_thread(disable_user, engine, "desk@clinic.example")
        await page.wait_for_selector('#connection[data-state="refused"]', timeout=10_000)
        assert "sign-in has ended" in await page.locator("#notice").inner_text()
        # a request the page made meanwhile is refused as it should be; nothing else went wrong
        assert all("401 (Unauthorized)" in e for e in errors), errors
