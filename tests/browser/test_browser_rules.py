"""Date overrides and clinic closures in real headless Chromium: the front desk closes the clinic
and changes a dentist's day on /admin, the dentist changes their own on /dentist; each page
follows the other without a reload, and the slots the booking service offers follow both."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest
from browser_helpers import collect_errors, running
from sqlalchemy import text

from bot.booking import BookingService
from bot.seed import seed
from bot.tokens import mint

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"><b>bold</b>'


async def open_page(browser, url: str):
    context = await browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
    page = await context.new_page()
    errors = await collect_errors(page)
    await page.goto(url)
    await page.wait_for_selector('#connection[data-state="live"]', timeout=10_000)
    return page, errors


def free_days(svc: BookingService, dentist_id: int, count: int, free_from: time, free_until: time) -> list[date]:
    """``count`` dates with free consultation time for ``dentist_id``, the last of them free at both
    ``free_from`` and ``free_until`` (which hours the seeded visits fill depends on the weekday the
    tests run: a Tuesday's 10:00 is a seeded filling)."""
    now = datetime.now(timezone.utc)
    by_day: dict[date, set[time]] = {}
    for slot in svc.available_slots(2, now, now + timedelta(days=21), dentist_id=dentist_id):
        local = slot.starts_at.astimezone(svc.tz)
        by_day.setdefault(local.date(), set()).add(local.time())
    whole = [day for day, times in by_day.items() if {free_from, free_until} <= times]
    assert whole and len(by_day) >= count, by_day
    others = [day for day in by_day if day != whole[0]]
    return [*others[:count - 1], whole[0]]


def day_slots(svc: BookingService, dentist_id: int, day: date) -> list[datetime]:
    start = datetime.combine(day, time(0), svc.tz)
    return [s.starts_at.astimezone(svc.tz) for s in
            svc.available_slots(2, start, start + timedelta(days=1), dentist_id=dentist_id)]


async def test_closures_and_overrides_set_on_the_pages_reach_each_other_and_the_slots(browser, shot, settings,
                                                                                       engine, db_url):
    seed(engine, settings)
    svc = BookingService(engine, settings)
    closed, off, short = free_days(svc, 1, 3, time(10), time(10, 30))
    async with running(settings) as server:
        admin, admin_errors = await open_page(browser, f"{server.url}/admin?token={mint('admin', settings=settings)}")
        dentist, dentist_errors = await open_page(browser,
                                                  f"{server.url}/dentist?token={mint('dentist', 1, settings=settings)}")
        await dentist.wait_for_selector("#closure-list li.empty")

        # the front desk closes the clinic for a day: the dentist's page shows it, nobody is offered it
        await admin.fill("#cl-from", closed.isoformat())
        await admin.fill("#cl-reason", HOSTILE)
        await admin.click("#add-closure")
        await admin.locator("#closure-list li[data-id]", has_text="window.__pwned=1").wait_for()
        shown = dentist.locator(f'#closure-list li[data-date="{closed.isoformat()}"]')
        await shown.wait_for()  # live, no reload
        assert await shown.locator(".appt-notes").inner_text() == HOSTILE
        assert await dentist.locator("#closure-list button").count() == 0  # a dentist only reads closures
        assert day_slots(svc, 1, closed) == [] and day_slots(svc, 3, closed) == []

        # the front desk takes dentist 1 off another day (the picker starts on dentist 1)
        assert await admin.locator("#override-dentist").input_value() == "1"
        await admin.fill("#ov-date", off.isoformat())
        await admin.check("#ov-off")
        await admin.click("#add-override")
        await dentist.locator(f'#override-list li[data-date="{off.isoformat()}"]', has_text="Not working") \
            .wait_for()
        assert day_slots(svc, 1, off) == []

        # the dentist works only 10:00-11:00 on a third day: the front desk's list follows
        await dentist.fill("#ov-date", short.isoformat())
        await dentist.fill("#ov-start", "10:00")
        await dentist.fill("#ov-end", "11:00")
        await dentist.click("#add-override")
        await admin.locator(f'#override-list li[data-date="{short.isoformat()}"]', has_text="10:00–11:00") \
            .wait_for()
        slots = day_slots(svc, 1, short)
        assert slots and all(time(10) <= s.time() and s.time() <= time(10, 30) for s in slots), slots
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT start_time, end_time FROM date_overrides WHERE on_date = :d"),
                                  {"d": short}).all()
        assert stored == [(time(10), time(11))]  # wall-clock times, as typed

        await shot(admin, "admin-rules")
        await shot(dentist, "dentist-rules")
        assert await admin.evaluate("window.__pwned === undefined")
        assert await dentist.evaluate("window.__pwned === undefined")
        assert await admin.locator("#closure-list img, #closure-list b").count() == 0

        # reopening the day on /admin gives its slots back and clears it from the dentist's page
        await admin.locator(f'#closure-list li[data-date="{closed.isoformat()}"] button').click()
        await shown.wait_for(state="detached")
        assert day_slots(svc, 1, closed)
        assert admin_errors == [] and dentist_errors == []
