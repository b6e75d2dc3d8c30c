"""actions.dates: natural phrases -> windows in the clinic's zone (clock pinned)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from actions.availability import MAX_OFFERS, SCAN_LIMIT, find_offer
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
    ("in two weeks", at(2026, 12, 7), at(2026, 12, 14)),  # a week: the Monday–Sunday two weeks on
    # a duration counts from today; a month alone is its first day
    ("in 3 months", at(2027, 2, 25), at(2027, 2, 26)),
    ("three months from now", at(2027, 2, 25), at(2027, 2, 26)),
    ("in a month", at(2026, 12, 25), at(2026, 12, 26)),
    ("in a week", at(2026, 11, 30), at(2026, 12, 7)),  # = "next week"
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


@pytest.mark.parametrize("text, day", [
    ("December 10 workks for me", at(2026, 12, 10)),
    ("dec 10 wrks", at(2026, 12, 10)),
    ("the 10th of december sounds gr8", at(2026, 12, 10)),
])
def test_a_date_among_typos_is_read(text, day):
    """Words dateparser does not know around a date ("workks", "gr8") do not hide the date."""
    when = window(text)
    assert (when.start, when.end) == (day, day + timedelta(days=1))


@pytest.mark.parametrize("text, day, clock", [
    ("mon dec 7, 9:00 am", at(2026, 12, 7), time(9, 0)),  # a button's title typed back
    ("Friday 11 December", at(2026, 12, 11), None),
    ("wed the 9th of december at 3pm", at(2026, 12, 9), time(15, 0)),
])
def test_a_weekday_beside_a_date_is_that_date(text, day, clock):
    """The date names the day; the weekday beside it is not this week's (today is a Wednesday)."""
    when = window(text)
    assert when.start.astimezone(NY).date() == day.date()
    assert (when.at.astimezone(NY).time() if when.at else None) == clock


@pytest.mark.parametrize("text, day", [
    ("Tuesday next week", at(2026, 12, 1)),
    ("monday next week", at(2026, 11, 30)),
    ("next week on friday at 3pm", at(2026, 12, 4)),
    ("in three weeks on friday", at(2026, 12, 18)),
])
def test_a_weekday_inside_a_named_week_is_that_day(text, day):
    """ "Tuesday next week" is next week's Tuesday, not the whole week (today is a Wednesday)."""
    when = window(text)
    assert when.start.astimezone(NY).date() == day.date() and when.end <= day + timedelta(days=1)


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


# --- ranges of days, repeated weekdays and hours --------------------------------------------------

SUN = at(2026, 11, 29, 9)   # a Sunday
SAT = at(2026, 11, 28, 9)   # a Saturday
JAN30, JAN31 = at(2027, 1, 30, 9), at(2027, 1, 31, 9)
FEB27, FEB28 = at(2027, 2, 27, 9), at(2027, 2, 28, 9)
DEC31 = at(2026, 12, 31, 9)
MORNING, LUNCH = (time(8), time(12)), (time(12), time(14))
BEFORE_WORK, AFTER_WORK = (time(7), time(9)), (time(17), time(20))
WORKDAYS, WEEKENDS = frozenset(range(5)), frozenset({5, 6})


@pytest.mark.parametrize("text, now, start, end, daily, weekdays", [
    # weeks are Monday–Sunday; "in N weeks" is N weeks after this one
    ("next week", WED, at(2026, 11, 30), at(2026, 12, 7), None, None),
    ("next week", SAT, at(2026, 11, 30), at(2026, 12, 7), None, None),
    ("next week", SUN, at(2026, 12, 7), at(2026, 12, 14), None, None),  # on a Sunday the coming one is "this"
    ("this week", SUN, SUN, at(2026, 12, 7), None, None),
    ("next week", DEC31, at(2027, 1, 4), at(2027, 1, 11), None, None),
    ("the week after next", WED, at(2026, 12, 7), at(2026, 12, 14), None, None),
    ("week after next", SUN, at(2026, 12, 14), at(2026, 12, 21), None, None),
    ("in three weeks", WED, at(2026, 12, 14), at(2026, 12, 21), None, None),  # holds WED + 21 days
    ("in 3 weeks", WED, at(2026, 12, 14), at(2026, 12, 21), None, None),
    ("three weeks from now", SAT, at(2026, 12, 14), at(2026, 12, 21), None, None),
    ("in 3 weeks", SUN, at(2026, 12, 21), at(2026, 12, 28), None, None),
    # parts of a month
    ("end of the month", WED, WED, at(2026, 12, 1), None, None),  # Nov 24–30, from now
    ("end of the month", SUN, SUN, at(2026, 12, 1), None, None),  # two days left: still this month's
    ("end of the month", JAN30, JAN30, at(2027, 2, 1), None, None),
    ("end of the month", JAN31, at(2027, 2, 22), at(2027, 3, 1), None, None),  # one day left: February's
    ("end of the month", FEB27, FEB27, at(2027, 3, 1), None, None),
    ("end of the month", FEB28, at(2027, 3, 25), at(2027, 4, 1), None, None),
    ("end of the month", DEC31, at(2027, 1, 25), at(2027, 2, 1), None, None),
    ("end of the month", at(2028, 2, 20, 9), at(2028, 2, 23), at(2028, 3, 1), None, None),  # a leap year
    ("end of this month", JAN31, JAN31, at(2027, 2, 1), None, None),  # "this month" never moves on
    ("end of January", WED, at(2027, 1, 25), at(2027, 2, 1), None, None),
    ("end of January", JAN31, JAN31, at(2027, 2, 1), None, None),
    ("end of feb", FEB28, FEB28, at(2027, 3, 1), None, None),
    ("early January", WED, at(2027, 1, 1), at(2027, 1, 11), None, None),
    ("early January", DEC31, at(2027, 1, 1), at(2027, 1, 11), None, None),
    ("early January", JAN31, at(2028, 1, 1), at(2028, 1, 11), None, None),  # this year's is over
    ("mid January", WED, at(2027, 1, 11), at(2027, 1, 21), None, None),
    ("mid-january", DEC31, at(2027, 1, 11), at(2027, 1, 21), None, None),
    ("middle of january", FEB28, at(2028, 1, 11), at(2028, 1, 21), None, None),
    ("late January", WED, at(2027, 1, 21), at(2027, 2, 1), None, None),
    ("late January", JAN31, JAN31, at(2027, 2, 1), None, None),
    ("late february", JAN31, at(2027, 2, 21), at(2027, 3, 1), None, None),  # 2027: 28 days
    ("beginning of next month", WED, at(2026, 12, 1), at(2026, 12, 11), None, None),
    ("beginning of next month", JAN31, at(2027, 2, 1), at(2027, 2, 11), None, None),
    ("start of the month", WED, at(2026, 12, 1), at(2026, 12, 11), None, None),  # November's is over
    ("sometime next month", WED, at(2026, 12, 1), at(2027, 1, 1), None, None),
    ("sometime next month", DEC31, at(2027, 1, 1), at(2027, 2, 1), None, None),
    ("sometime next month", FEB28, at(2027, 3, 1), at(2027, 4, 1), None, None),
    ("this month", WED, WED, at(2026, 12, 1), None, None),
    # weekdays again and again: the next 4 weeks (one or two weekdays), else 14 days
    ("any Tuesday morning", WED, WED, at(2026, 12, 22, 12), MORNING, frozenset({1})),
    ("tuesday mornings", WED, WED, at(2026, 12, 22, 12), MORNING, frozenset({1})),
    ("tuesdays", WED, WED, at(2026, 12, 23), None, frozenset({1})),
    ("tuesdays", SUN, SUN, at(2026, 12, 27), None, frozenset({1})),
    ("every tuesday", WED, WED, at(2026, 12, 23), None, frozenset({1})),
    ("mondays and wednesdays", WED, WED, at(2026, 12, 23), None, frozenset({0, 2})),
    ("tuesdays at 3", WED, at(2026, 11, 25, 15), at(2026, 12, 22, 16), (time(15), time(16)), frozenset({1})),
    ("weekends only", WED, WED, at(2026, 12, 23), None, WEEKENDS),
    ("weekends only", SAT, SAT, at(2026, 12, 26), None, WEEKENDS),
    ("on a weekend", WED, WED, at(2026, 12, 23), None, WEEKENDS),
    ("any weekend", WED, WED, at(2026, 12, 23), None, WEEKENDS),
    ("saturdays", WED, WED, at(2026, 12, 23), None, frozenset({5})),
    ("weekdays only", WED, WED, at(2026, 12, 9), None, WORKDAYS),
    ("weekdays only", SUN, SUN, at(2026, 12, 13), None, WORKDAYS),
    ("during the week", WED, WED, at(2026, 12, 9), None, WORKDAYS),
    ("weekdays next week", WED, at(2026, 11, 30), at(2026, 12, 7), None, WORKDAYS),
    # hours again and again: the next 14 days
    ("mornings", WED, WED, at(2026, 12, 8, 12), MORNING, None),
    ("after 5", WED, at(2026, 11, 25, 17), at(2026, 12, 8, 20), AFTER_WORK, None),
    ("after 5", SUN, at(2026, 11, 29, 17), at(2026, 12, 12, 20), AFTER_WORK, None),
    ("after 5pm", WED, at(2026, 11, 25, 17), at(2026, 12, 8, 20), AFTER_WORK, None),
    ("after work", WED, at(2026, 11, 25, 17), at(2026, 12, 8, 20), AFTER_WORK, None),
    ("after 5", at(2026, 11, 25, 21), at(2026, 11, 25, 21), at(2026, 12, 8, 20), AFTER_WORK, None),
    ("before work", WED, WED, at(2026, 12, 8, 9), BEFORE_WORK, None),
    ("before 9", WED, WED, at(2026, 12, 8, 9), BEFORE_WORK, None),
    ("before 9", at(2026, 11, 25, 6), at(2026, 11, 25, 7), at(2026, 12, 8, 9), BEFORE_WORK, None),
    ("lunchtime any day", WED, at(2026, 11, 25, 12), at(2026, 12, 8, 14), LUNCH, None),
    ("afternoons after 3", WED, at(2026, 11, 25, 15), at(2026, 12, 8, 17), (time(15), time(17)), None),
    ("next week after work", WED, at(2026, 11, 30, 17), at(2026, 12, 6, 20), AFTER_WORK, None),
    # one day: the hours of that day alone
    ("after 5 today", WED, at(2026, 11, 25, 17), at(2026, 11, 25, 20), None, None),
    ("tomorrow after 3", WED, at(2026, 11, 26, 15), at(2026, 11, 26, 20), None, None),
    ("friday before work", WED, at(2026, 11, 27, 7), at(2026, 11, 27, 9), None, None),
])
def test_ranges_are_windows_over_several_days(text, now, start, end, daily, weekdays):
    when = window(text, now)
    assert (when.start, when.end, when.daily, when.weekdays, when.at, when.asap) == (
        start, end, daily, weekdays, None, False)


def test_a_repeated_window_holds_only_its_weekdays_and_hours():
    when = window("any Tuesday morning")
    assert when.contains(at(2026, 12, 1, 9), NY) and when.contains(at(2026, 12, 22, 11, 45), NY)
    assert not when.contains(at(2026, 12, 2, 9), NY)    # a Wednesday
    assert not when.contains(at(2026, 12, 1, 13), NY)   # a Tuesday afternoon
    weekends = window("weekends only")
    assert weekends.contains(at(2026, 11, 28, 10), NY) and weekends.contains(at(2026, 11, 29, 10), NY)
    assert not weekends.contains(at(2026, 11, 30, 10), NY)


@pytest.mark.parametrize("text", ["next available morning", "next available morning that suits you"])
def test_asap_words_keep_meaning_the_soonest_with_hours(text):
    when = window(text)
    assert (when.asap, when.daily, when.start, when.end) == (True, MORNING, WED, at(2026, 12, 8, 12))


def test_any_day_with_hours_and_words_around_it_still_reads():
    when = window("lunchtime any day that suits")
    assert (when.asap, when.daily, when.end) == (False, LUNCH, at(2026, 12, 8, 14))


@pytest.mark.parametrize("text, now", [("after 5 today", at(2026, 11, 25, 21)),
                                       ("beginning of this month", WED), ("early this month", WED)])
def test_ranges_already_over_are_refused(text, now):
    with pytest.raises(PastTime):
        parse_when(text, now, NY)


# --- "this" and "next" on every day of the week ---------------------------------------------------

WEEK = {name: at(2026, 11, 22 + i, 9) for i, name in enumerate(
    ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"))}
NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# days from today to "<weekday>" / "this <weekday>" (the coming one, today included), Monday..Sunday
THIS = {"sunday": (1, 2, 3, 4, 5, 6, 0), "monday": (0, 1, 2, 3, 4, 5, 6),
        "tuesday": (6, 0, 1, 2, 3, 4, 5), "wednesday": (5, 6, 0, 1, 2, 3, 4),
        "thursday": (4, 5, 6, 0, 1, 2, 3), "friday": (3, 4, 5, 6, 0, 1, 2), "saturday": (2, 3, 4, 5, 6, 0, 1)}
# days from today to "next <weekday>": that day of next calendar week, weeks starting on Sunday
NEXT = {"sunday": (8, 9, 10, 11, 12, 13, 7), "monday": (7, 8, 9, 10, 11, 12, 6),
        "tuesday": (6, 7, 8, 9, 10, 11, 5), "wednesday": (5, 6, 7, 8, 9, 10, 4),
        "thursday": (4, 5, 6, 7, 8, 9, 3), "friday": (3, 4, 5, 6, 7, 8, 2), "saturday": (2, 3, 4, 5, 6, 7, 1)}


def day_of(when: When) -> date:
    return when.start.astimezone(NY).date()


@pytest.mark.parametrize("today", list(WEEK))
@pytest.mark.parametrize("target", NAMES)
def test_this_and_next_weekday_on_every_day_of_the_week(today, target):
    now = WEEK[today]
    this = now.date() + timedelta(days=THIS[today][NAMES.index(target)])
    following = now.date() + timedelta(days=NEXT[today][NAMES.index(target)])
    assert day_of(window(target, now)) == this
    assert day_of(window(f"this {target}", now)) == this
    assert day_of(window(f"on {target}", now)) == this
    assert day_of(window(f"next {target}", now)) == following


def test_next_friday_in_us_usage():
    assert day_of(window("next friday", WEEK["monday"])) - WEEK["monday"].date() == timedelta(days=11)
    assert day_of(window("next friday", WEEK["saturday"])) - WEEK["saturday"].date() == timedelta(days=6)
    assert day_of(window("next friday", WEEK["sunday"])) - WEEK["sunday"].date() == timedelta(days=12)


@pytest.mark.parametrize("today", list(WEEK))
def test_next_weekday_lies_in_next_week(today):
    now = WEEK[today]
    week = window("next week", now)
    for name in NAMES[:6]:
        assert week.start <= window(f"next {name}", now).start < week.end, name
    # "next Sunday" opens next calendar week: the Sunday that ends this Monday–Sunday week
    assert window("next sunday", now).end == window("this week", now).end


# --- the asked hour already passed today: next week's ---------------------------------------------

TUE = at(2026, 11, 24, 11)  # a Tuesday, 11:00


@pytest.mark.parametrize("text, now, exact", [
    ("tuesday 10am", TUE, at(2026, 12, 1, 10)),            # not PastTime
    ("this tuesday at 10", TUE, at(2026, 12, 1, 10)),
    ("on tuesday at 10:00", TUE, at(2026, 12, 1, 10)),
    ("tuesday at 11", TUE, at(2026, 12, 1, 11)),           # begun is passed (as "10am" at 10:00)
    ("7am tuesday", TUE, at(2026, 12, 1, 7)),
    ("next tuesday 10am", TUE, at(2026, 12, 1, 10)),
    ("tuesday at 3pm", TUE, at(2026, 11, 24, 15)),         # still ahead: today
    ("tuesday 10am", at(2026, 11, 24, 9), at(2026, 11, 24, 10)),
    ("this friday 10am", at(2026, 11, 27, 9), at(2026, 11, 27, 10)),
    ("this friday 10am", at(2026, 11, 27, 11), at(2026, 12, 4, 10)),
])
def test_a_weekday_whose_time_has_passed_today_is_next_weeks(text, now, exact):
    assert window(text, now).at == exact


@pytest.mark.parametrize("text, now, start, end", [
    ("tuesday morning", TUE, TUE, at(2026, 11, 24, 12)),   # what is left of it
    ("tuesday morning", at(2026, 11, 24, 12, 30), at(2026, 12, 1, 8), at(2026, 12, 1, 12)),
    ("tuesday after 5", at(2026, 11, 24, 21), at(2026, 12, 1, 17), at(2026, 12, 1, 20)),
    ("tuesday", at(2026, 11, 24, 23), at(2026, 11, 24, 23), at(2026, 11, 25)),  # a whole day is not over
])
def test_a_weekday_whose_part_of_day_has_passed_is_next_weeks(text, now, start, end):
    when = window(text, now)
    assert (when.start, when.end) == (start, end)


def test_today_named_is_still_refused_once_passed():
    with pytest.raises(PastTime):
        parse_when("today at 10am", TUE, NY)


# --- 12-hour and 24-hour clocks read the same, exact or as a range -------------------------------

@pytest.mark.parametrize("clock, hour", [
    ("14:30", time(14, 30)), ("2:30pm", time(14, 30)), ("2:30 pm", time(14, 30)), ("2.30 p.m.", time(14, 30)),
    ("9", time(9)), ("9am", time(9)), ("09:00", time(9)),
    ("7", time(19)), ("7am", time(7)), ("19:00", time(19)),
    ("12pm", time(12)), ("12:30", time(12, 30)), ("5", time(17)), ("17:00", time(17)), ("5 pm", time(17)),
])
def test_clocks_exact_and_as_ranges(clock, hour):
    assert window(f"friday at {clock}").at == datetime.combine(date(2026, 11, 27), hour, NY)
    after = window(f"friday after {clock}")
    assert after.at is None and after.start == datetime.combine(date(2026, 11, 27), hour, NY)
    assert window(f"after {clock}").daily == (hour, max(hour, time(20)))
    assert window(f"before {clock}").daily[1] == hour


# --- DST: repeated hours are wall-clock hours every day --------------------------------------------

def utc(y, m, d, hh, mm=0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ZoneInfo("UTC"))


def test_repeated_hours_keep_local_time_over_the_spring_change():
    # 2026-03-08: New York goes from EST (-5) to EDT (-4)
    mornings = window("mornings", at(2026, 3, 6, 10))
    assert mornings.contains(utc(2026, 3, 7, 13), NY)        # 08:00 EST
    assert not mornings.contains(utc(2026, 3, 7, 12), NY)    # 07:00 EST
    assert mornings.contains(utc(2026, 3, 8, 12), NY)        # 08:00 EDT: the same UTC hour, now inside
    assert not mornings.contains(utc(2026, 3, 8, 16), NY)    # 12:00 EDT
    assert mornings.end == at(2026, 3, 19, 12) and mornings.end.hour == 16
    early = window("early March", at(2026, 2, 20, 10))
    assert (early.start, early.end) == (at(2026, 3, 1), at(2026, 3, 11))
    assert (early.start.hour, early.end.hour) == (5, 4)       # UTC: midnight EST, then midnight EDT
    weekends = window("weekends only", at(2026, 3, 4, 10))
    assert weekends.contains(utc(2026, 3, 8, 4, 30), NY)      # 00:30 EDT Sunday
    assert not weekends.contains(utc(2026, 3, 9, 4, 30), NY)  # 00:30 EDT Monday


def test_repeated_hours_keep_local_time_over_the_fall_change():
    # 2026-11-01: New York goes from EDT (-4) back to EST (-5)
    evenings = window("after work", at(2026, 10, 30, 10))
    assert evenings.contains(utc(2026, 10, 31, 21, 30), NY)      # 17:30 EDT
    assert not evenings.contains(utc(2026, 11, 1, 21, 30), NY)   # 16:30 EST: the same UTC hour, outside
    assert evenings.contains(utc(2026, 11, 1, 22), NY)           # 17:00 EST
    assert evenings.start == at(2026, 10, 30, 17) and evenings.start.hour == 21
    assert evenings.end == at(2026, 11, 12, 20) and evenings.end.hour == 1
    week = window("this week", at(2026, 10, 28, 10))
    assert week.end == at(2026, 11, 2) and week.end.hour == 5    # Sunday's end, midnight EST


# --- the encoded window, and reading a long one week by week --------------------------------------

@pytest.mark.parametrize("text", ["any Tuesday morning", "weekends only", "weekdays only", "after 5",
                                  "sometime next month", "mondays and wednesdays"])
def test_repeated_windows_survive_a_slot_round_trip(text):
    when = window(text)
    assert When.decode(when.encode()) == when
    fields = when.encode().split("|")
    if when.weekdays is None:  # as before weekdays existed
        assert len(fields) == 5
    else:
        assert len(fields) == 6 and fields[5] == "".join(str(d) for d in sorted(when.weekdays))


def test_a_window_encoded_before_weekdays_existed_still_decodes():
    old = "2026-11-25T15:00:00+00:00|2026-12-09T15:00:00+00:00||asap|"
    assert When.decode(old) == When(utc(2026, 11, 25, 15), utc(2026, 12, 9, 15), asap=True)
    old_daily = "2026-11-25T15:00:00+00:00|2026-12-09T15:00:00+00:00|||08:00:00-12:00:00"
    assert When.decode(old_daily).daily == MORNING and When.decode(old_daily).weekdays is None


@pytest.mark.parametrize("weekdays", ["7", "1x", "-1"])
def test_a_window_with_impossible_weekdays_is_refused(weekdays):
    with pytest.raises(ValueError):
        When.decode(f"2026-11-25T15:00:00+00:00|2026-12-09T15:00:00+00:00||||{weekdays}")


def test_a_window_is_read_week_by_week():
    month = window("sometime next month")
    spans = month.weeks()
    assert [end - start for start, end in spans] == [timedelta(days=7)] * 4 + [timedelta(days=3)]
    assert spans[0][0] == month.start and spans[-1][1] == month.end
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


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


class Diary:
    """A gateway stand-in over a fixed list of free slots; like the real ones, a read stops at ``limit``."""

    tz = NY

    def __init__(self, slots: list[Slot]):
        self.slots, self.reads = sorted(slots), 0

    def free_slots(self, service_id, start, end, dentist_id=None, limit=None) -> list[Slot]:
        self.reads += 1
        found = [s for s in self.slots if start <= s.starts_at < end]
        return found[:limit] if limit is not None else found

    def nearest(self, service_id, around, dentist_id=None, count=3) -> list[Slot]:
        return []


SERVICE = SimpleNamespace(id=1)


def test_find_offer_over_three_weeks_offers_distinct_days():
    when = When(at(2026, 11, 30), at(2026, 12, 21))
    offer = find_offer(Diary(three_weeks_skewed()), SERVICE, None, when)
    assert not offer.nearest and len(offer.slots) == MAX_OFFERS
    assert len(local_days(offer.slots)) >= 4


def test_find_offer_scans_a_long_window_to_its_end():
    # a free slot every minute 07:00–20:00: the first read of SCAN_LIMIT would stop on the third day
    minute = [Slot(t, 1, t + timedelta(minutes=30)) for d in range(21)
              for t in (at(2026, 11, 30, 7) + timedelta(days=d, minutes=i) for i in range(13 * 60))]
    assert minute[SCAN_LIMIT].starts_at < at(2026, 12, 3)
    diary = Diary(minute)
    offer = find_offer(diary, SERVICE, None, When(at(2026, 11, 30), at(2026, 12, 21)))
    assert diary.reads == 3
    assert len(local_days(offer.slots)) >= 4 and max(local_days(offer.slots)) >= date(2026, 12, 14)


def test_find_offer_over_a_repeated_window_keeps_to_its_weekdays():
    every_day = [s for d in range(28) for s in slots_on(date(2026, 11, 26) + timedelta(days=d), 12, time(8))]
    offer = find_offer(Diary(every_day), SERVICE, None, window("any Tuesday morning"))
    assert {s.starts_at.astimezone(NY).weekday() for s in offer.slots} == {1}
    assert len(local_days(offer.slots)) == 4  # every Tuesday of the four weeks
    assert all(time(8) <= s.starts_at.astimezone(NY).time() < time(12) for s in offer.slots)


# --- a weekday that is today, when nothing of today can be booked any more ------------------------

@pytest.mark.parametrize("text, now, next_week", [
    ("tuesday", at(2026, 11, 24, 19), at(2026, 12, 1)),
    ("this tuesday", at(2026, 11, 24, 16), at(2026, 12, 1)),
    ("tuesday after 5", at(2026, 11, 24, 16), at(2026, 12, 1, 17)),
    ("tuesday at 7pm", at(2026, 11, 24, 18), at(2026, 12, 1)),
])
def test_a_weekday_named_today_knows_its_next_weeks_window(text, now, next_week):
    when = window(text, now)
    assert when.start.astimezone(NY).date() == date(2026, 11, 24) and when.next_week == next_week
    assert When.decode(when.encode()) == when


@pytest.mark.parametrize("text", ["today", "tonight", "tomorrow", "next tuesday", "wednesday", "after 5",
                                  "tuesdays", "this week"])
def test_only_a_weekday_named_today_has_a_next_week(text):
    assert window(text, at(2026, 11, 24, 15)).next_week is None


def test_next_weeks_window_keeps_wall_clock_times_over_a_dst_change():
    # Sunday 2026-10-25 is EDT; the next Sunday, 2026-11-01, EST: the same wall-clock hours
    when = window("sunday after 5", at(2026, 10, 25, 9))
    later = when.a_week_later(NY)
    assert later.start == at(2026, 11, 1, 17) and later.end == at(2026, 11, 1, 20)
    assert later.start.utcoffset() != when.start.astimezone(NY).utcoffset()


def test_nothing_left_today_offers_next_weeks_day():
    tuesday_evening = at(2026, 11, 24, 19)
    free = slots_on(date(2026, 11, 25), 6) + slots_on(date(2026, 12, 1), 6)  # Wednesday, and next Tuesday
    offer = find_offer(Diary(free), SERVICE, None, window("tuesday", tuesday_evening))
    assert not offer.nearest and local_days(offer.slots) == {date(2026, 12, 1)}
    # nothing next week either: the nearest to today's, as before
    offer = find_offer(Diary(slots_on(date(2026, 11, 25), 6)), SERVICE, None, window("tuesday", tuesday_evening))
    assert offer.nearest
