"""The waitlist on the pages, in real headless Chromium: a patient joins and withdraws from the
/patient card's form; a visit cancelled straight in SQL frees a time that the sync service's
waitlist worker offers at once, the offer shows live on the waiting patient's page (and the
request on /admin's card), and Accept books it (the database says so) and the visit shows."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from browser_helpers import collect_errors, running
from playwright.async_api import expect
from sqlalchemy import text

from bot.booking import BookingService
from bot.seed import seed
from bot.tokens import mint
from tests.api_helpers import call
from tests.polling import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def open_page(browser, url: str, *, width: int = 1280, height: int = 900):
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    page = await context.new_page()
    errors = await collect_errors(page)
    await page.goto(url)
    await page.wait_for_selector('#connection[data-state="live"]', timeout=10_000)
    return page, errors


def one(engine, sql: str, **params):
    with engine.begin() as conn:
        return conn.execute(text(sql), params).scalar_one()


def taken_filling(engine, settings):
    """A filling 40 to 60 days ahead (past the seed's visits), booked by the last patient:
    (service id, slot, visit id)."""
    filling = one(engine, "SELECT id FROM services WHERE name = 'Filling'")
    start = datetime.now(timezone.utc) + timedelta(days=40)
    slot = BookingService(engine, settings).available_slots(filling, start, start + timedelta(days=20), limit=1)[0]
    visit = one(engine, "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at,"
                " operatory_id) VALUES ((SELECT max(id) FROM patients), :d, :s, :a, :b,"
                " (SELECT min(id) FROM operatories)) RETURNING id",
                d=slot.dentist_id, s=filling, a=slot.starts_at, b=slot.ends_at)
    return filling, slot, visit


async def wait_for_slot(url: str, tok: str, filling: int, slot) -> int:
    """Join the waitlist for exactly the slot's time, as the page's own REST call does; the entry id."""
    status, body = await call("POST", f"{url}/api/waitlist", tok, {
        "service_id": filling, "dentist_id": slot.dentist_id, "earliest": slot.starts_at.isoformat(),
        "latest": (slot.starts_at + timedelta(minutes=1)).isoformat()})
    assert status == 201, body
    return body["entry"]["id"]


async def test_a_waiting_patient_gets_the_freed_time_live_and_books_it(browser, shot, settings, engine):
    seed(engine, settings)
    patient = one(engine, "SELECT min(id) FROM patients")
    name = one(engine, "SELECT full_name FROM patients WHERE id = :p", p=patient)
    filling, slot, visit = taken_filling(engine, settings)
    dentist = one(engine, "SELECT full_name FROM dentists WHERE id = :d", d=slot.dentist_id)
    s = settings.model_copy(update={"waitlist_poll_seconds": 3600})  # only a change wakes the worker
    async with running(s) as server:
        tok = mint("patient", patient, settings=s)
        page, errors = await open_page(browser, f"{server.url}/patient?token={tok}", width=390, height=844)
        admin, admin_errors = await open_page(browser, f"{server.url}/admin?token={mint('admin', settings=s)}")
        card = page.locator("#waitlist")
        await expect(card.locator(".empty")).to_have_text("You are not on the waitlist.")

        # the form: join (a whitening, any dentist), see it listed, withdraw it
        await page.locator("#wl-service").select_option(label="Whitening")
        await page.click("#join-waitlist")
        await expect(page.locator("#waitlist-status")).to_have_text("You are on the waitlist.")
        row = card.locator("li[data-entry]")
        await expect(row).to_have_count(1)
        assert "Whitening · any dentist" in await row.inner_text()
        await admin.locator("#waitlist li[data-entry]", has_text=name).wait_for()  # live on /admin
        joined = int(await row.get_attribute("data-entry"))
        await row.locator("button", has_text="Withdraw").click()
        await expect(card.locator(".empty")).to_have_text("You are not on the waitlist.")
        assert one(engine, "SELECT status FROM waitlist_entries WHERE id = :e", e=joined) == "withdrawn"
        await expect(admin.locator("#waitlist li[data-entry]")).to_have_count(0)

        entry = await wait_for_slot(server.url, tok, filling, slot)  # exactly the filling's time
        await card.locator(f'li[data-entry="{entry}"]').wait_for()  # the page heard waitlist_changed
        await admin.locator(f'#waitlist li[data-entry="{entry}"]', has_text="Filling").wait_for()
        assert await page.locator(".offer").count() == 0

        one(engine, "UPDATE appointments SET status = 'cancelled' WHERE id = :v RETURNING id", v=visit)
        banner = page.locator('.offer[data-status="open"]')
        await banner.wait_for(timeout=15_000)  # pushed: the worker's pass woke on the cancellation
        said = await banner.locator(".offer-text").inner_text()
        assert re.fullmatch(rf"A Filling with {re.escape(dentist)} opened on .+ \d\d:\d\d — held for you until \d\d:\d\d",
                            said), said
        await admin.locator(f'#waitlist li[data-entry="{entry}"][data-status="offered"]').wait_for()
        await shot(page, "patient-waitlist-offer")

        await banner.locator("button", has_text="Accept").click()
        await expect(page.locator(".offer").first).to_have_attribute("data-status", "accepted")
        assert (await page.locator(".offer-text").first.inner_text()).startswith("Booked: Filling with")
        booked = await wait_until(lambda: one(
            engine, "SELECT coalesce(max(id), 0) FROM appointments WHERE patient_id = :p AND starts_at = :a"
            " AND dentist_id = :d AND status IN ('pending', 'confirmed')", p=patient, a=slot.starts_at,
            d=slot.dentist_id), what="the visit booked")
        await page.locator(f'#board li[data-id="{booked}"]').wait_for()  # in their visits, as an event
        assert one(engine, "SELECT status FROM waitlist_entries WHERE id = :e", e=entry) == "booked"
        await expect(admin.locator("#waitlist li[data-entry]")).to_have_count(0)  # booked: no longer live
        await expect(card.locator(".empty")).to_have_text("You are not on the waitlist.")
        await shot(page, "patient-waitlist-booked")
        assert errors == [] and admin_errors == [], (errors, admin_errors)


async def test_an_offer_someone_else_took_says_so_on_the_page(browser, settings, engine):
    """Two patients are offered the same freed time; the other accepts first (over REST): the
    page's banner says the time was taken, without buttons, and the request waits again."""
    seed(engine, settings)
    patient, rival = one(engine, "SELECT min(id) FROM patients"), one(engine, "SELECT min(id) + 1 FROM patients")
    filling, slot, visit = taken_filling(engine, settings)
    s = settings.model_copy(update={"waitlist_poll_seconds": 3600})
    async with running(s) as server:
        tok, rival_tok = mint("patient", patient, settings=s), mint("patient", rival, settings=s)
        entry = await wait_for_slot(server.url, tok, filling, slot)
        await wait_for_slot(server.url, rival_tok, filling, slot)
        one(engine, "UPDATE appointments SET status = 'cancelled' WHERE id = :v RETURNING id", v=visit)

        async def rivals_offer():
            return (await call("GET", f"{server.url}/api/waitlist/offers", rival_tok))[1]["offers"]

        (theirs,) = await wait_until(rivals_offer, what="the rival's offer")
        page, errors = await open_page(browser, f"{server.url}/patient?token={tok}")
        banner = page.locator('.offer[data-status="open"]')
        await banner.wait_for()  # read at start from GET /api/waitlist/offers
        status, _ = await call("POST", f"{server.url}/api/waitlist/offers/{theirs['id']}/accept", rival_tok)
        assert status == 201
        gone = page.locator('.offer[data-status="gone"]')
        await expect(gone).to_have_text("That time was taken by someone else; you stay on the waitlist.")
        assert await gone.locator("button").count() == 0
        await page.locator(f'#waitlist li[data-entry="{entry}"][data-status="waiting"]').wait_for()
        assert errors == [], errors


async def test_an_offer_made_between_the_pages_first_reads_still_shows(browser, settings, engine):
    """The page reads its open offers at once, and its visits (the snapshot the live connection
    resumes from) when the socket is up. An offer made between the two is in neither the first
    read nor, being older than the snapshot, the live stream: the page reads its offers again
    when the snapshot moves the mark. The first read is answered empty here, as if it had come
    just before the offer."""
    seed(engine, settings)
    patient = one(engine, "SELECT min(id) FROM patients")
    filling, slot, visit = taken_filling(engine, settings)
    s = settings.model_copy(update={"waitlist_poll_seconds": 3600})
    async with running(s) as server:
        tok = mint("patient", patient, settings=s)
        await wait_for_slot(server.url, tok, filling, slot)
        one(engine, "UPDATE appointments SET status = 'cancelled' WHERE id = :v RETURNING id", v=visit)

        async def my_offers():
            return (await call("GET", f"{server.url}/api/waitlist/offers", tok))[1]["offers"]

        (offer,) = await wait_until(my_offers, what="the offer")
        context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US")
        page = await context.new_page()
        errors = await collect_errors(page)
        reads = []

        async def first_read_before_the_offer(route):
            reads.append(route.request.url)
            if len(reads) == 1:
                await route.fulfill(json={"offers": []})
            else:
                await route.continue_()

        await page.route("**/api/waitlist/offers", first_read_before_the_offer)
        await page.goto(f"{server.url}/patient?token={tok}")
        await page.locator(f'.offer[data-offer="{offer["id"]}"][data-status="open"]').wait_for(timeout=10_000)
        assert len(reads) >= 2 and errors == [], (reads, errors)
