"""The scheduling rules end to end: what the assistant offers through Rasa's REST channel keeps
to clinic closures and date overrides set over the REST API, the minimum notice (the clinic's and
a service's own), the booking horizon, and the buffer after a visit booked in the same chat.

On the shared stack (``chat_stack`` in tests/conftest.py: sync service, action server with its
cache, Rasa), which gives each test the seeded clinic: the closures, overrides and visits of one
test are gone before the next. Every change is made the way the clinic makes it (REST, or SQL for a
service's notice), and the test waits until the action server's cache has taken it in before asking."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import date, datetime, time, timedelta, timezone

import aiohttp
import pytest

from actions.dates import parse_when
from bot.stack import Stack
from bot.tokens import mint
from tests.api_helpers import call
from tests.chat_helpers import yes_and_code
from tests.test_e2e_assistant import book_anonymously, choice_start, offers, rows, slot_buttons, text

pytestmark = [pytest.mark.slow, pytest.mark.e2e,
              pytest.mark.usefixtures("trained_model")]


@pytest.fixture
def stack(chat_stack):
    return chat_stack


def chat() -> str:
    return f"rules-{uuid.uuid4().hex[:8]}"


def day_of(stack: Stack, phrase: str) -> date:
    """The date the assistant reads ``phrase`` as, today."""
    when = parse_when(phrase, datetime.now(timezone.utc), stack.settings.tz)
    assert when is not None, phrase
    return when.start.astimezone(stack.settings.tz).date()


def local(stack: Stack, button: dict) -> datetime:
    return choice_start(button).astimezone(stack.settings.tz)


def dentist_id(stack: Stack, surname: str) -> int:
    return rows(stack, "SELECT id FROM dentists WHERE full_name LIKE %s", f"% {surname}")[0][0]


async def cache_health(stack: Stack) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{stack.url('actions')}/health") as resp:
            return (await resp.json())["cache"]


async def _settled(stack: Stack, *, reloads_above: int | None = None, timeout: float = 15) -> dict:
    """Until the cache has applied every outbox event written so far, with no re-read queued
    (and, given ``reloads_above``, at least one re-read finished since)."""
    target = rows(stack, "SELECT coalesce(max(id), 0) FROM realtime_events")[0][0]

    async def poll() -> dict:
        while True:
            cache = await cache_health(stack)
            reloads = cache["full_loads"] + cache["dentist_reloads"]
            if (cache["last_event_id"] >= target and not cache["refreshing"]
                    and (reloads_above is None or reloads > reloads_above)):
                return cache
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout)


@contextlib.asynccontextmanager
async def seen_by_the_assistant(stack: Stack):
    """Around one change of availability rules: afterwards, the action server has re-read it."""
    cache = await _settled(stack)
    yield
    await _settled(stack, reloads_above=cache["full_loads"] + cache["dentist_reloads"])


async def test_closures_and_date_overrides_set_over_rest_shape_the_offers(stack):
    tuesday, thursday, friday = (day_of(stack, p) for p in ("next Tuesday", "next Thursday", "next Friday"))
    sync = stack.url("sync")
    async with seen_by_the_assistant(stack):  # the front desk closes the clinic on Tuesday
        status, _ = await call("POST", f"{sync}/api/closures", mint("admin", settings=stack.settings),
                               {"on_date": tuesday.isoformat(), "reason": "e2e holiday"})
        assert status == 201
    patel, alvarez = dentist_id(stack, "Patel"), dentist_id(stack, "Alvarez")
    async with seen_by_the_assistant(stack):  # Dr Patel takes Thursday off herself
        status, _ = await call("POST", f"{sync}/api/dentists/{patel}/date-overrides",
                               mint("dentist", patel, settings=stack.settings), {"on_date": thursday.isoformat()})
        assert status == 201
    async with seen_by_the_assistant(stack):  # Dr Alvarez works only 10:00-11:00 on Friday
        status, _ = await call("POST", f"{sync}/api/dentists/{alvarez}/date-overrides",
                               mint("admin", settings=stack.settings),
                               {"on_date": friday.isoformat(), "start_time": "10:00", "end_time": "11:00"})
        assert status == 201

    # each of these was offered on that very day before (Dr Alvarez and Dr Patel work then)
    closed = await offers(stack, chat(), "is Dr Alvarez free for a cleaning next Tuesday?")
    assert tuesday not in {local(stack, b).date() for b in closed}, [b["title"] for b in closed]
    sender = chat()
    replies = await stack.say(sender, "can I book a cleaning next Tuesday?")
    if "dentist" in text(replies).lower():
        replies = await stack.say(sender, "any dentist")
    anyone = slot_buttons(replies)
    assert anyone, text(replies)
    assert tuesday not in {local(stack, b).date() for b in anyone}, [b["title"] for b in anyone]
    off = await offers(stack, chat(), "can I get a filling with Dr Patel next Thursday?")
    assert thursday not in {local(stack, b).date() for b in off}, [b["title"] for b in off]
    short = await offers(stack, chat(), "is Dr Alvarez free for a consultation next Friday?")
    assert [local(stack, b) for b in short] == [
        datetime.combine(friday, time(10, m), stack.settings.tz) for m in (0, 15, 30)]


async def test_offers_keep_the_clinics_and_a_services_minimum_notice(stack):
    before = datetime.now(timezone.utc)
    soonest = await offers(stack, chat(), "what's the earliest slot with any dentist?")
    notice = timedelta(minutes=stack.settings.min_notice_minutes)
    assert all(choice_start(b) >= before + notice for b in soonest), [b["title"] for b in soonest]

    async with seen_by_the_assistant(stack):  # consultations now need three days' notice
        rows(stack, "UPDATE services SET min_notice_minutes = 3 * 24 * 60 WHERE name = 'Consultation'"
                    " RETURNING id")
    try:
        before = datetime.now(timezone.utc)
        later = await offers(stack, chat(), "when is the earliest free slot for a consultation?")
        assert min(choice_start(b) for b in later) >= before + timedelta(days=3), [b["title"] for b in later]
        assert min(choice_start(b) for b in soonest) < before + timedelta(days=3)  # it did offer sooner before
        replies = await stack.say(chat(), "is Dr Alvarez free for a consultation tomorrow?")
        assert "too soon" in text(replies), text(replies)
        nearest = slot_buttons(replies)
        assert nearest and all(choice_start(b) >= before + timedelta(days=3) for b in nearest), text(replies)
    finally:
        async with seen_by_the_assistant(stack):
            rows(stack, "UPDATE services SET min_notice_minutes = NULL WHERE name = 'Consultation' RETURNING id")


async def test_nothing_past_the_horizon_is_offered_and_the_assistant_says_why(stack):
    tz = stack.settings.tz
    last_day = datetime.now(tz).date() + timedelta(days=stack.settings.horizon_days)
    sender = chat()
    replies = await stack.say(sender, "can I book a cleaning in four months?")
    if "dentist" in text(replies).lower():
        replies = await stack.say(sender, "any dentist")
    assert "can't book that far ahead" in text(replies), text(replies)
    found = slot_buttons(replies)
    assert found, text(replies)
    days = [local(stack, b).date() for b in found]
    assert max(days) <= last_day, [b["title"] for b in found]
    assert max(days) >= last_day - timedelta(days=7)  # the nearest to what was asked: the last bookable days


async def test_no_offer_starts_inside_the_buffer_after_a_visit_booked_in_chat(stack):
    tz = stack.settings.tz
    monday = day_of(stack, "next Monday")
    alvarez = dentist_id(stack, "Alvarez")
    async with seen_by_the_assistant(stack):  # a short day, so every free start is offered
        status, _ = await call("POST", f"{stack.url('sync')}/api/dentists/{alvarez}/date-overrides",
                               mint("admin", settings=stack.settings),
                               {"on_date": monday.isoformat(), "start_time": "10:00", "end_time": "12:00"})
        assert status == 201
    [(minutes, buffer_after)] = rows(stack, "SELECT duration_minutes, buffer_after_minutes FROM services"
                                            " WHERE name = 'Extraction'")
    assert buffer_after > 0
    sender = chat()
    offered = await offers(stack, sender, "I need an extraction with Dr. Alvarez next Monday")
    assert local(stack, offered[0]) == datetime.combine(monday, time(10), tz)
    await book_anonymously(stack, sender, offered[0], "Bea Buffer", "212 555 0191")
    assert "You're booked" in text(await yes_and_code(stack, sender, "212 555 0191"))
    await _settled(stack)

    starts = [local(stack, b) for b in await offers(stack, chat(), "is Dr Alvarez free for a consultation next Monday?")]
    free_from = datetime.combine(monday, time(10), tz) + timedelta(minutes=minutes + buffer_after)
    # 10:45 would fit the diary but for the 15 minutes after the extraction
    assert starts == [free_from + timedelta(minutes=15 * i) for i in range(3)], starts
