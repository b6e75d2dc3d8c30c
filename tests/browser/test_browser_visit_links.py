"""A reminder's link and the calendar feed link in real headless Chromium: the visit's page works
under the pages' CSP with no script, its Confirm button shows on the dentist's open diary without
a reload, and the dentist's and the patient's pages link their own private feed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from browser_helpers import collect_errors, running
from icalendar import Calendar

from bot.links import visit_token
from bot.tokens import mint

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def open_page(browser, url: str):
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US")
    page = await context.new_page()
    errors = await collect_errors(page)
    await page.goto(url)
    return page, errors


async def test_confirm_from_the_link_shows_on_the_dentists_diary_and_both_pages_link_their_feed(
        browser, shot, settings, db_url):
    start = (datetime.now(timezone.utc) + timedelta(days=3)).replace(microsecond=0)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'Dr Chen')")
        conn.execute("INSERT INTO patients (id, full_name) VALUES (1, 'Ana Lima')")
        conn.execute("INSERT INTO services (id, name, duration_minutes, price_cents) VALUES (1, 'Checkup', 30, 5000)")
        (visit,) = conn.execute("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at)"
                                " VALUES (1, 1, 1, %s, %s) RETURNING id",
                                (start, start + timedelta(minutes=30))).fetchone()
    async with running(settings) as server:
        diary, diary_errors = await open_page(browser, f"{server.url}/dentist?token={mint('dentist', 1, settings=settings)}")
        await diary.wait_for_selector('#connection[data-state="live"]', timeout=10_000)
        await diary.wait_for_selector(f'li[data-id="{visit}"][data-status="pending"]')

        link, link_errors = await open_page(browser, f"{server.url}/visit/{visit_token(visit, 1, start, settings)}")
        await link.wait_for_selector("#confirm")
        await shot(link, "visit-link")
        await link.click("#confirm")
        await link.wait_for_selector('#visit[data-status="confirmed"]')
        assert "your visit is confirmed" in await link.locator("#visit-message").inner_text()
        await diary.wait_for_selector(f'li[data-id="{visit}"][data-status="confirmed"]')  # live, no reload

        feed = diary.locator("#feed-link")
        await feed.wait_for()
        answer = await diary.request.get(await feed.get_attribute("href"))
        assert answer.ok and answer.headers["content-type"].startswith("text/calendar")
        (event,) = Calendar.from_ical(await answer.body()).walk("VEVENT")
        assert str(event["uid"]) == f"appointment-{visit}@clinic.invalid" and str(event["summary"]) == "Checkup: Ana"

        patient, patient_errors = await open_page(browser, f"{server.url}/patient?token={mint('patient', 1, settings=settings)}")
        await patient.locator("#feed-link").wait_for()
        assert "/feeds/" in await patient.locator("#feed-link").get_attribute("href")
        assert diary_errors == link_errors == patient_errors == []


async def test_a_new_feed_link_replaces_the_old_one_on_the_page(browser, settings, db_url):
    """"new link" beside "Calendar feed": after the confirmation, the link is the new URL, which
    works, and the old one is refused."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO patients (id, full_name) VALUES (1, 'Ana Lima')")
    async with running(settings) as server:
        page, errors = await open_page(browser, f"{server.url}/patient?token={mint('patient', 1, settings=settings)}")
        feed = page.locator("#feed-link")
        await feed.wait_for()
        old = await feed.get_attribute("href")
        page.once("dialog", lambda dialog: dialog.accept())
        await page.click("#feed-renew")
        await page.wait_for_function("old => document.getElementById('feed-link').href !== old", arg=old)
        new = await feed.get_attribute("href")
        assert "no longer works" in await page.locator("#notice").inner_text()
        assert (await page.request.get(new)).ok and (await page.request.get(old)).status == 404
        assert errors == []
