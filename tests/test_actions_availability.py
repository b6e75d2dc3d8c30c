"""What's free without booking, and the emergency offer."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from actions import gateway as gateway_module
from actions.availability import ActionCheckAvailability
from actions.dates import When
from actions.booking import ValidateBookingForm
from actions.emergency import ActionEmergency
from actions.formatting import decode_choice
from bot.seed import seed
from action_kit import Chat, make_gateway

TZ = ZoneInfo("America/New_York")
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=TZ)  # Monday


def gateway_at(engine, settings, now, source: str = "sql"):
    seed(engine, settings, today=NOW.date())
    gateway = make_gateway(engine, settings, now, source)
    gateway_module.use_gateway(gateway)
    return gateway


@pytest.fixture
def gw(engine, settings, availability_source):
    yield gateway_at(engine, settings, NOW, availability_source)
    gateway_module.use_gateway(None)


def choice_of(button: dict) -> str:
    return button["payload"].split('"slot_choice": "')[1].split('"')[0]


async def test_check_availability_offers_bookable_buttons_and_then_books_one(gw):
    chat = Chat()
    chat.say("any openings for a filling with dr patel on friday?", "check_availability",
             {"service": "filling", "dentist": "patel", "time": "on friday"},
             service="filling", dentist="patel", time="on friday")
    turn = await chat.run(ActionCheckAvailability())
    assert turn.responses == ["utter_offer_slots"]
    buttons = turn.buttons()
    assert 1 <= len(buttons) <= 6
    assert all(b["payload"].startswith('/book_appointment{"slot_choice": ') and
               b["payload"].endswith('"service": "filling", "dentist": "patel"}') for b in buttons)
    starts = [decode_choice(choice_of(b))[0].astimezone(TZ) for b in buttons]
    assert {s.date().isoweekday() for s in starts} == {5}
    assert [e["name"] for e in turn.events] == ["offered_slots", "service", "dentist", "time", "time_window"]

    # tapping a button starts the booking form with everything it implies
    chat.active_loop = "booking_form"
    picked = choice_of(buttons[-1])
    chat.say(buttons[-1]["payload"], "book_appointment", {"slot_choice": picked, "service": "filling",
                                                          "dentist": "patel"},
             slot_choice=picked, service="filling", dentist="patel")
    form = await chat.run(ValidateBookingForm())
    assert form.responses == []
    assert form.slots()["slot_choice"] == picked


async def test_check_availability_when_the_day_is_full_offers_the_nearest(gw):
    chat = Chat()
    chat.say("is dr chen free on sunday?", "check_availability", {"dentist": "chen", "time": "sunday"},
             dentist="chen", time="sunday")
    turn = await chat.run(ActionCheckAvailability())
    assert turn.responses == ["utter_offer_nearest"]
    assert turn.messages[0]["for_whom"] == " for a consultation with Dr. Chen"
    assert 1 <= len(turn.buttons()) <= 6


async def test_a_window_past_the_horizon_is_explained_and_the_last_bookable_times_offered(gw, settings):
    chat = Chat()
    chat.say("is dr chen free in four months?", "check_availability", {"dentist": "chen", "time": "in four months"},
             dentist="chen", time="in four months")
    turn = await chat.run(ActionCheckAvailability())
    assert turn.responses == ["utter_too_far", "utter_offer_nearest"]
    last_day = NOW.date() + timedelta(days=settings.horizon_days)
    starts = [decode_choice(choice_of(b))[0].astimezone(TZ) for b in turn.buttons()]
    assert starts and all(s.date() <= last_day for s in starts)
    assert max(starts).date() >= last_day - timedelta(days=7)  # the nearest to what was asked: the horizon's end


async def test_a_window_inside_the_services_notice_is_explained(gw, engine):
    with engine.begin() as conn:  # consultations need three days' notice
        conn.exec_driver_sql("UPDATE services SET min_notice_minutes = 3 * 24 * 60 WHERE name = 'Consultation'")
    chat = Chat()
    chat.say("is dr alvarez free tomorrow?", "check_availability", {"dentist": "alvarez", "time": "tomorrow"},
             dentist="alvarez", time="tomorrow")
    turn = await chat.run(ActionCheckAvailability())
    assert turn.responses == ["utter_too_soon", "utter_offer_nearest"]
    starts = [decode_choice(choice_of(b))[0] for b in turn.buttons()]
    assert starts and min(starts) >= NOW + timedelta(days=3)


async def test_a_time_in_the_past_is_refused(gw):
    chat = Chat()
    chat.say("anything yesterday?", "check_availability", {"time": "yesterday"}, time="yesterday")
    turn = await chat.run(ActionCheckAvailability())
    assert turn.responses == ["utter_time_in_past"]


async def test_emergency_gives_advice_and_todays_soonest_emergency_slot(gw):
    chat = Chat()
    chat.say("my tooth got knocked out and it's bleeding", "emergency")
    turn = await chat.run(ActionEmergency())
    assert turn.responses == ["utter_emergency_advice", "utter_emergency_slot"]
    [button] = turn.buttons()
    starts_at = decode_choice(choice_of(button))[0]
    assert starts_at.astimezone(TZ).date() == NOW.date()
    assert button["payload"].endswith('"service": "emergency visit", "dentist": "any"}')
    assert turn.events == []


async def test_emergency_late_in_the_day_offers_the_next_day(engine, settings):
    gateway_at(engine, settings, datetime(2027, 3, 1, 18, 30, tzinfo=TZ))
    try:
        chat = Chat()
        chat.say("terrible swelling", "emergency")
        turn = await chat.run(ActionEmergency())
    finally:
        gateway_module.use_gateway(None)
    assert turn.responses == ["utter_emergency_advice", "utter_emergency_no_slot_today"]
    [button] = turn.buttons()
    assert decode_choice(choice_of(button))[0].astimezone(TZ).date().day == 2


@pytest.mark.parametrize("source", ["cache", "sql"])
def test_availability_source_setting_picks_the_cache_or_sql(engine, settings, source):
    """AVAILABILITY_SOURCE=sql (the benchmarks' naive baseline) answers from SQL even with the
    action server's cache running; the default answers from the cache, with the same slots."""
    from actions.cache import AvailabilityCache, set_cache
    from actions.gateway import Gateway, SqlAvailability

    seed(engine, settings, today=NOW.date())
    cache = AvailabilityCache(engine, settings, clock=lambda: NOW)
    cache.load()
    set_cache(cache)
    try:
        gw = Gateway(engine, settings.model_copy(update={"availability_source": source}), clock=lambda: NOW)
        service = gw.catalogue().service("cleaning")
        source_used = gw.availability
        slots = gw.free_slots(service.id, NOW, NOW.replace(day=8))
    finally:
        set_cache(None)
    assert isinstance(source_used, AvailabilityCache if source == "cache" else SqlAvailability)
    assert cache.counts["queries"] == (1 if source == "cache" else 0)
    assert slots and slots == SqlAvailability(gw.booking).free_slots(service.id, NOW, NOW.replace(day=8))


async def test_a_typed_time_among_the_offers_starts_the_booking_with_it(gw):
    """ "fri at 3:15 please" after "what's free next week?" names one of the times just offered,
    whatever the model called it: the booking starts with that time (not a new search that
    reads "fri" as this Friday and says it isn't free)."""
    chat = Chat()
    chat.say("any openings for a filling with dr patel next week?", "check_availability",
             {"service": "filling", "dentist": "patel", "time": "next week"},
             service="filling", dentist="patel", time="next week")
    offer = await chat.run(ActionCheckAvailability())
    last = decode_choice(choice_of(offer.buttons()[-1]))[0].astimezone(TZ)
    typed = f"{last.strftime('%a').lower()} at {last.strftime('%-I:%M')} please"
    chat.say(typed, "check_availability", {"time": typed}, time=typed)
    again = await chat.run(ActionCheckAvailability())
    assert again.responses == [] and again.events == [{"event": "followup", "timestamp": None,
                                                       "name": "booking_form"}]
    chat.active_loop = "booking_form"
    form = await chat.run(ValidateBookingForm())
    assert decode_choice(form.slots()["slot_choice"])[0] == last


async def test_a_weekday_inside_the_dentist_s_span_still_narrows_the_search(gw):
    """ "a crown with dr chen Wednesday next week" tagged as dentist "dr chen Wednesday" and time
    "next week": Dr Chen's times on next week's Wednesday, not anyone's over the whole week."""
    chat = Chat()
    chat.say("Any openings for a crown fitting with dr chen Wednesday next week?", "check_availability",
             {"service": "crown", "dentist": "dr chen Wednesday", "time": "next week"},
             service="crown", dentist="dr chen Wednesday", time="next week")
    offer = await chat.run(ActionCheckAvailability())
    wednesday = datetime.combine(NOW.date() + timedelta(days=9), datetime.min.time(), tzinfo=TZ)
    assert When.decode(offer.slots()["time_window"]).start == wednesday  # its times, or the nearest
    starts = [decode_choice(choice_of(b)) for b in offer.buttons()]
    assert starts
    chen = gw.catalogue().dentist("chen")
    assert {s[1] for s in starts} == {chen.id} and offer.slots()["dentist"] == "chen"


async def test_a_new_time_the_model_called_out_of_scope_looks_again(gw):
    """ "hmm make that next week" after what's free (the model said out_of_scope and tagged "that"
    as a time too): what is free is looked up again for next week, with no "I can't help with that"."""
    from actions.asking import ActionOutOfScope
    chat = Chat()
    chat.say("what's free tomorrow for a filling?", "check_availability",
             {"service": "filling", "time": "tomorrow"}, service="filling", time="tomorrow")
    await chat.run(ActionCheckAvailability())
    text = "hmm make that next week"
    chat.say(text, "out_of_scope")
    chat.latest["entities"] = [{"entity": "time", "value": v, "start": text.index(v), "end": text.index(v) + len(v)}
                               for v in ("that", "next week")]
    again = await chat.run(ActionOutOfScope())  # looks again itself: no follow-up action the rules don't know
    assert not any(e.get("event") == "followup" for e in again.events)
    assert "utter_out_of_scope" not in again.responses and again.buttons()
    assert When.decode(again.slots()["time_window"]).start == datetime(2027, 3, 8, tzinfo=TZ)

    chat = Chat()
    chat.say("what's the weather like?", "out_of_scope")
    assert (await chat.run(ActionOutOfScope())).responses == ["utter_out_of_scope"]
    chat.active_loop = "booking_form"
    chat.say("hmm make that friday", "out_of_scope")
    assert (await chat.run(ActionOutOfScope())).responses == []  # the form reads the new day
