"""actions.dates: natural phrases -> windows in the clinic's zone (clock pinned)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from actions.dates import ASAP_DAYS, PastTime, When, parse_clock, parse_when
from actions.formatting import spread
from bot.availability import Slot

NY = ZoneInfo("America/New_York")
WED = datetime(2026, 11, 25, 10, 0, tzinfo=NY)  # a Wednesday, 10:00


def at(y, m, d, hh=0, mm=0, tz=NY) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=tz)


def window(text: str, now: datetime = WED, tz: ZoneInfo = NY) -> When:
    when = parse_when(text, now, tz)
    assert when is not None, text
    return when


@pytest.mark.parametrize("text, start, end", [
    ("tomorrow", at(2026, 11, 26), at(2026, 11, 27)),
    ("tomorrow afternoon", at(2026, 11, 26, 12), at(2026, 11, 26, 17)),
    ("tomorrow morning", at(2026, 11, 26, 8), at(2026, 11, 26, 12)),
    ("Friday evening", at(2026, 11, 27, 17), at(2026, 11, 27, 20)),
    ("in the afternoon", at(2026, 11, 25, 12), at(2026, 11, 25, 17)),
    ("this morning", WED, at(2026, 11, 25, 12)),  # what is left of it
    ("tonight", at(2026, 11, 25, 17), at(2026, 11, 25, 20)),
    ("the day after tomorrow", at(2026, 11, 27), at(2026, 11, 28)),
    ("on Monday", at(2026, 11, 30), at(2026, 12, 1)),
    ("Saturday morning", at(2026, 11, 28, 8), at(2026, 11, 28, 12)),
    ("next week", at(2026, 11, 30), at(2026, 12, 7)),
    ("this weekend", at(2026, 11, 28), at(2026, 11, 30)),
    ("dec 3", at(2026, 12, 3), at(2026, 12, 4)),
    ("12/3", at(2026, 12, 3), at(2026, 12, 4)),
    ("in two weeks", at(2026, 12, 9), at(2026, 12, 10)),
    # a duration counts from today; a month alone is its first day
    ("in 3 months", at(2027, 2, 25), at(2027, 2, 26)),
    ("three months from now", at(2027, 2, 25), at(2027, 2, 26)),
    ("in a month", at(2026, 12, 25), at(2026, 12, 26)),
    ("in a week", at(2026, 12, 2), at(2026, 12, 3)),
    ("march", at(2027, 3, 1), at(2027, 3, 2)),
    ("3 March 2099", at(2099, 3, 3), at(2099, 3, 4)),  # the horizon is the offer's business
])
def test_days_and_parts_of_day(text, start, end):
    when = window(text)
    assert (when.start, when.end, when.at, when.asap) == (start, end, None, False)


@pytest.mark.parametrize("text, exact", [
    ("tomorrow at 3", at(2026, 11, 26, 15)),          # 1-7 without am/pm is the afternoon
    ("tomorrow at 9", at(2026, 11, 26, 9)),
    ("the 14th at 10:30", at(2026, 12, 14, 10, 30)),   # the 14th of November is over: December
    ("14th at 10.30am", at(2026, 12, 14, 10, 30)),
    ("friday 2pm", at(2026, 11, 27, 14)),
    ("2pm tomorrow", at(2026, 11, 26, 14)),
    ("monday 9am", at(2026, 11, 30, 9)),
    ("at 3pm", at(2026, 11, 25, 15)),                  # still ahead today
    ("10am", at(2026, 11, 26, 10)),                    # today's 10am has begun: tomorrow
    ("March 8 at 2:30", at(2027, 3, 8, 14, 30)),
    ("12 noon on Friday", None),
])
def test_exact_times_search_their_whole_day(text, exact):
    when = window(text)
    if exact is None:
        assert when.start == at(2026, 11, 27, 12) and when.end == at(2026, 11, 27, 14)
        return
    assert when.at == exact
    assert when.start == max(WED, datetime.combine(exact.date(), time(0), NY))
    assert when.end == datetime.combine(exact.date() + timedelta(days=1), time(0), NY)


@pytest.mark.parametrize("text, day", [
    # On a Wednesday: "Tuesday" and "this Tuesday" are the coming one, "next Tuesday" next week's.
    ("tuesday", 1), ("this tuesday", 1), ("next tuesday", 1),
    ("thursday", 26 - 30), ("this thursday", 26 - 30), ("next thursday", 3),
    ("wednesday", 25 - 30), ("next wednesday", 2),
])
def test_this_and_next_weekday_on_a_wednesday(text, day):
    expected = at(2026, 12, day) if day > 0 else at(2026, 11, day + 30)
    assert window(text).start == max(expected, WED)


def test_next_weekday_on_a_monday_is_next_weeks():
    monday = at(2026, 11, 23, 9)
    assert window("tuesday", monday).start == at(2026, 11, 24)
    assert window("this tuesday", monday).start == at(2026, 11, 24)
    assert window("next tuesday", monday).start == at(2026, 12, 1)


@pytest.mark.parametrize("text", ["asap", "ASAP please", "as soon as possible", "next available", "soonest",
                                  "the earliest you have", "whenever", "any time", "first available slot"])
def test_asap_is_the_next_two_weeks_from_now(text):
    when = window(text)
    assert (when.start, when.end, when.asap) == (WED, WED + timedelta(days=ASAP_DAYS), True)


def test_month_ends():
    jan30 = at(2027, 1, 30, 9)
    assert window("the 31st", jan30).start == at(2027, 1, 31)
    jan31_late = at(2027, 1, 31, 21)
    # February has no 30th or 31st: the next month that has one
    assert window("the 30th", jan31_late).start == at(2027, 3, 30)
    assert window("the 31st", at(2027, 2, 1, 9)).start == at(2027, 3, 31)
    assert window("tomorrow", jan31_late).start == at(2027, 2, 1)
    assert window("tomorrow", at(2027, 12, 31, 9)).start == at(2028, 1, 1)
    leap = at(2028, 2, 28, 9)
    assert window("tomorrow", leap).start == at(2028, 2, 29)
    assert window("the 29th", at(2027, 2, 1, 9)).start == at(2027, 3, 29)  # 2027 is not a leap year


def test_dst_days_keep_wall_clock_times():
    # 2027-03-14: clocks go forward in New York (EST -5 -> EDT -4)
    sat = at(2027, 3, 13, 10)
    sunday = window("tomorrow", sat)
    assert sunday.start.hour == 5 and sunday.end.hour == 4  # UTC: midnight EST, then midnight EDT
    assert sunday.end - sunday.start == timedelta(hours=23)
    monday_pm = window("monday afternoon", sat)
    assert monday_pm.start == at(2027, 3, 15, 12) and monday_pm.start.hour == 16
    assert window("monday at 3", sat).at.astimezone(NY).hour == 15
    # 2027-11-07: clocks go back (EDT -4 -> EST -5): a 25-hour day
    fall = window("tomorrow", at(2027, 11, 6, 10))
    assert fall.end - fall.start == timedelta(hours=25)
    assert window("tomorrow at 10", at(2027, 11, 6, 10)).at.hour == 15  # 10:00 EST


def test_another_clinic_zone():
    tokyo = ZoneInfo("Asia/Tokyo")
    now = datetime(2026, 11, 25, 23, 30, tzinfo=NY)  # already Thursday 13:30 in Tokyo
    when = window("tomorrow morning", now, tokyo)
    assert when.start == datetime(2026, 11, 27, 8, tzinfo=tokyo)


def test_parts_of_day_over_several_days_repeat_daily():
    when = window("next week mornings")
    assert when.daily == (time(8), time(12))
    assert when.contains(at(2026, 12, 2, 9), NY) and not when.contains(at(2026, 12, 2, 14), NY)


@pytest.mark.parametrize("text, now", [("yesterday", WED), ("this morning", at(2026, 11, 25, 13)),
                                       ("today at 9am", WED)])
def test_past_times_are_refused(text, now):
    with pytest.raises(PastTime):
        parse_when(text, now, NY)


def test_a_part_of_day_already_over_means_tomorrow():
    assert window("afternoon", at(2026, 11, 25, 18)).start == at(2026, 11, 26, 12)


@pytest.mark.parametrize("text", ["", "   ", "blah blah", "purple", "the 45th", "25:00"])
def test_nonsense_is_not_a_time(text):
    assert parse_when(text, WED, NY) is None


def test_windows_survive_a_slot_round_trip():
    for text in ("next week mornings", "asap", "tomorrow at 3", "friday"):
        when = window(text)
        assert When.decode(when.encode()) == when


@pytest.mark.parametrize("text, clock", [("2:30", time(14, 30)), ("3pm", time(15)), ("at 10", time(10)),
                                         ("9:15 a.m.", time(9, 15)), ("the second one", None)])
def test_parse_clock(text, clock):
    assert parse_clock(text) == clock


@pytest.mark.parametrize("text", ["3 March 1999", "on 3/3/1999", "March 3rd 1999", "in 1999", "1999"])
def test_a_date_years_ago_is_in_the_past(text):
    with pytest.raises(PastTime):
        parse_when(text, WED, NY)


# --- offers over a range land on several days -----------------------------------------------------

def slots_on(day: date, count: int, first: time = time(9), every: int = 15) -> list[Slot]:
    start = datetime.combine(day, first, NY)
    return [Slot(start + timedelta(minutes=every * i), 1, start + timedelta(minutes=every * i + 30))
            for i in range(count)]


def three_weeks_skewed() -> list[Slot]:
    """Three weeks of weekdays from Mon 2026-11-30: the first day wide open, the others nearly full."""
    days = [d for d in (date(2026, 11, 30) + timedelta(days=i) for i in range(21)) if d.weekday() < 5]
    return slots_on(days[0], 200, every=1) + [s for d in days[1:] for s in slots_on(d, 3)]


def local_days(slots: list[Slot]) -> set[date]:
    return {s.starts_at.astimezone(NY).date() for s in slots}


def test_spread_over_three_weeks_covers_distinct_days():
    offers = spread(three_weeks_skewed(), 6, tz=NY)
    assert len(offers) == 6 and len(local_days(offers)) == 6
    assert max(local_days(offers)) >= date(2026, 12, 14)  # the third week too
    assert offers == sorted(offers)


def test_spread_gives_a_day_a_second_slot_only_when_days_run_out():
    two_days = slots_on(date(2026, 12, 1), 60, every=5) + slots_on(date(2026, 12, 2), 4)
    offers = spread(two_days, 6, tz=NY)
    assert sorted(s.starts_at.astimezone(NY).day for s in offers) == [1, 1, 1, 2, 2, 2]
    one_slot_day = slots_on(date(2026, 12, 1), 1) + slots_on(date(2026, 12, 2), 50)
    assert len(spread(one_slot_day, 6, tz=NY)) == 6
