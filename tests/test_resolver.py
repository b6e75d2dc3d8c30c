"""actions.resolver: a typed answer -> the offered slots it names (clock pinned, no database)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actions.resolver import MAX_TEXT, Pick, names_offer, resolve_pick
from bot.availability import Slot

NY = ZoneInfo("America/New_York")
UTC = timezone.utc
ALVAREZ, CHEN, PATEL = 1, 2, 3
DENTISTS = {ALVAREZ: "Dr. Maria Alvarez", CHEN: "Dr. James Chen", PATEL: "Dr. Priya Patel"}
WED_8AM = datetime(2026, 11, 25, 8, 0, tzinfo=NY)  # a Wednesday


def at(y, m, d, hh=0, mm=0, tz=NY) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=tz)


def slot(y, m, d, hh, mm=0, dentist=ALVAREZ, tz=NY) -> Slot:
    """An offer as the cache gives it: UTC instants."""
    start = at(y, m, d, hh, mm, tz).astimezone(UTC)
    return Slot(start, dentist, start + timedelta(minutes=30))


def pick(text, offers, now=WED_8AM, tz=NY, dentists=DENTISTS) -> Pick:
    return resolve_pick(text, offers, tz=tz, now=now, dentists=dentists)


def picked(text, offers, **kw) -> tuple[int, ...]:
    return tuple(offers.index(s) for s in pick(text, offers, **kw).matches)


# six offers over a week, as the buttons show them
WEEK = [
    slot(2026, 11, 25, 11, 0, ALVAREZ),  # 0 today, 11:00 AM
    slot(2026, 11, 26, 9, 0, CHEN),  # 1 tomorrow, 9:00 AM
    slot(2026, 11, 26, 15, 45, PATEL),  # 2 tomorrow, 3:45 PM
    slot(2026, 11, 27, 10, 15, CHEN),  # 3 Fri Nov 27, 10:15 AM
    slot(2026, 11, 27, 14, 0, ALVAREZ),  # 4 Fri Nov 27, 2:00 PM
    slot(2026, 12, 3, 10, 0, PATEL),  # 5 Thu Dec 3, 10:00 AM
]
# one day's offers (Fri Nov 27)
FRIDAY = [
    slot(2026, 11, 27, 9, 0, ALVAREZ),  # 0
    slot(2026, 11, 27, 9, 15, CHEN),  # 1
    slot(2026, 11, 27, 10, 30, PATEL),  # 2
    slot(2026, 11, 27, 10, 45, CHEN),  # 3
    slot(2026, 11, 27, 12, 0, ALVAREZ),  # 4
    slot(2026, 11, 27, 15, 30, PATEL),  # 5
]
TWO = [slot(2026, 11, 26, 9, 0, CHEN), slot(2026, 11, 26, 15, 0, PATEL)]
EARLY = [slot(2026, 11, 27, 7, 30), slot(2026, 11, 27, 7, 45), slot(2026, 11, 27, 8, 0)]
NINES = [slot(2026, 12, 1, 9, 0, CHEN), slot(2026, 12, 1, 21, 0, CHEN)]
TENS = [slot(2026, 12, 1, 10, 0, ALVAREZ), slot(2026, 12, 2, 10, 0, CHEN), slot(2026, 12, 2, 10, 0, PATEL)]


@pytest.mark.parametrize("text, expected", [
    # clock times, 12 h and 24 h, with and without am/pm
    ("3:45 is good", (2,)),
    ("3.45", (2,)),
    ("3:45pm", (2,)),
    ("15:45", (2,)),
    ("quarter to 4", (2,)),
    ("the 11 o'clock one", (0,)),
    ("11 oclock", (0,)),
    ("eleven o'clock", (0,)),
    ("11", (0,)),
    ("11:00", (0,)),
    ("eleven", (0,)),
    ("11am", (0,)),
    ("11 a.m.", (0,)),
    ("at 11", (0,)),
    ("@11", (0,)),
    ("Friday at 10:15 please", (3,)),
    ("fri 10.15", (3,)),
    ("quarter past 10", (3,)),
    ("a quarter past ten", (3,)),
    ("ten fifteen", (3,)),
    ("1015am", (3,)),
    ("2pm", (4,)),
    ("14:00", (4,)),
    ("2", (4,)),  # a number alone that is an offer's hour
    ("two", (4,)),
    ("at 2", (4,)),
    ("2 o'clock", (4,)),
    ("10am", (5,)),
    ("10", (5,)),  # 10:00 rather than 10:15: h:00 first
    # positions
    ("the first", (0,)),
    ("first one", (0,)),
    ("1st", (0,)),
    ("2nd", (1,)),
    ("the second one", (1,)),
    ("third", (2,)),
    ("the 4th one", (3,)),
    ("fifth", (4,)),
    ("the sixth", (5,)),
    ("the last one", (5,)),
    ("last", (5,)),
    ("the second to last", (4,)),
    ("2nd last", (4,)),
    ("penultimate", (4,)),
    ("number 3", (2,)),
    ("option 2", (1,)),
    ("#4", (3,)),
    ("choice 5", (4,)),
    ("number two", (1,)),
    ("4", (3,)),  # no offer in the 4 o'clock hour: the 4th button
    ("the 4 one", (3,)),
    ("4 please", (3,)),
    ("11 works for me", (0,)),
    # dentists, first name or surname, one typo
    ("the one with Dr Chen", (1, 3)),
    ("dr. chen", (1, 3)),
    ("Chen's", (1, 3)),
    ("CHEN", (1, 3)),
    ("chenn", (1, 3)),
    ("james", (1, 3)),
    ("alvarez", (0, 4)),
    ("alvarex", (0, 4)),
    ("alvaerz", (0, 4)),
    ("maria", (0, 4)),
    ("patel", (2, 5)),
    ("patell", (2, 5)),
    ("priya", (2, 5)),
    ("chen or patel", (1, 2, 3, 5)),
    ("chen at 9", (1,)),
    ("chen 9", (1,)),  # a number next to a dentist is a clock time
    ("james at 10:15", (3,)),
    ("Dr. Patel's 3:45", (2,)),
    ("dr chen friday", (3,)),
    ("patel on the 3rd", (5,)),
    ("the earlier chen one", (1,)),
    ("the later one with chen", (3,)),
    ("the second chen one", (3,)),  # a position counts among what the other words leave
    ("option 2 with Dr Chen", (1,)),  # "option N" counts in the list as shown
    # days
    ("today", (0,)),
    ("this morning", (0,)),
    ("tomorrow", (1, 2)),
    ("tomorrow at 9", (1,)),
    ("tmrw 9am", (1,)),
    ("tomorrow afternoon", (2,)),
    ("the day after tomorrow", (3, 4)),
    ("Thursday", (1, 2, 5)),  # any Thursday
    ("thurs", (1, 2, 5)),
    ("this thursday", (1, 2)),
    ("next thursday", (5,)),  # next week's, as dates.py reads it
    ("thu afternoon", (2,)),
    ("friday 2", (4,)),  # a number next to a day is a clock time
    ("fri 2pm", (4,)),
    ("Dec 3", (5,)),
    ("Dec 3 at 10", (5,)),
    ("3 Dec", (5,)),
    ("December 3rd", (5,)),
    ("3rd of december", (5,)),
    ("12/3", (5,)),  # US month/day
    ("12/3 10:00", (5,)),
    ("12/3/2026", (5,)),
    ("the 3rd", (5,)),  # the offers span several days, one on the 3rd: a date
    ("on the 3rd", (5,)),
    ("the 27th", (3, 4)),
    ("the 27th at 2", (4,)),
    ("nov 26 3:45pm", (2,)),
    # part of day, earlier / later
    ("the morning one", (0, 1, 3, 5)),
    ("the afternoon one", (2, 4)),
    ("friday morning", (3,)),
    ("the earlier one", (0,)),
    ("earliest", (0,)),
    ("the later one", (5,)),
    ("latest", (5,)),
    ("the later one tomorrow", (2,)),
    ("the earlier one on friday", (3,)),
])
def test_a_week_of_offers(text, expected):
    assert picked(text, WEEK) == expected


@pytest.mark.parametrize("text, expected", [
    ("quarter past 9", (1,)),
    ("quarter past nine", (1,)),
    ("9:15", (1,)),
    ("09:15", (1,)),
    ("nine fifteen", (1,)),
    ("915am", (1,)),
    ("half past ten", (2,)),
    ("half past 10", (2,)),
    ("ten thirty", (2,)),
    ("10.30am", (2,)),
    ("quarter to 11", (3,)),
    ("quarter to eleven", (3,)),
    ("10:45", (3,)),
    ("noon", (4,)),
    ("midday", (4,)),
    ("12 noon", (4,)),
    ("12pm", (4,)),
    ("12", (4,)),
    ("twelve o'clock", (4,)),
    ("15:30", (5,)),
    ("3:30", (5,)),
    ("3:30 pm", (5,)),
    ("half past 3", (5,)),
    ("half past three in the afternoon", (5,)),
    ("9", (0,)),  # 9:00, not 9:15
    ("nine", (0,)),
    ("9 in the morning", (0,)),
    ("10", (2, 3)),  # nothing at 10:00: both offers in that hour
    ("the first", (0,)),
    ("the 2nd", (1,)),  # all offers on one day: a position, not the 2nd of a month
    ("the 6th", (5,)),
])
def test_one_day_of_offers(text, expected):
    assert picked(text, FRIDAY) == expected


@pytest.mark.parametrize("text, expected", [
    ("the morning one", (0,)),
    ("the afternoon one", (1,)),
    ("the earlier one", (0,)),
    ("the later one", (1,)),
    ("the first", (0,)),
    ("the last", (1,)),
    ("9", (0,)),
    ("3", (1,)),
    ("2", (1,)),  # no offer in the 2 o'clock hour: the 2nd button
])
def test_two_offers(text, expected):
    assert picked(text, TWO) == expected


@pytest.mark.parametrize("offers, text, expected", [
    (NINES, "9", (0, 1)),  # either 12-hour reading
    (NINES, "9:00", (0, 1)),
    (NINES, "9am", (0,)),
    (NINES, "9 am", (0,)),
    (NINES, "9pm", (1,)),
    (NINES, "09:00", (0,)),  # a leading zero is the 24-hour clock
    (NINES, "21:00", (1,)),
    (NINES, "9 in the evening", (1,)),
    (TENS, "10:00", (0, 1, 2)),
    (TENS, "tuesday at 10", (0,)),
    (TENS, "wednesday at 10", (1, 2)),
    (TENS, "10:00 on the 2nd", (1, 2)),
    (TENS, "10:00 with patel", (2,)),
    (TENS, "the earlier one", (0,)),
    (TENS, "the later one", (1, 2)),  # two dentists at the same time
])
def test_several_matches_are_all_returned(offers, text, expected):
    result = pick(text, offers)
    assert picked(text, offers) == expected
    assert result.unique == (offers[expected[0]] if len(expected) == 1 else None)
    assert result.asked_at is None


# not offered: the instant asked for, for the caller to check
@pytest.mark.parametrize("offers, now, text, expected", [
    (WEEK, WED_8AM, "tomorrow at 2", at(2026, 11, 26, 14)),  # 1-7 without am/pm: the afternoon
    (WEEK, WED_8AM, "friday at 9", at(2026, 11, 27, 9)),
    (WEEK, WED_8AM, "monday at 11", at(2026, 11, 30, 11)),  # on the weekday named
    (WEEK, WED_8AM, "next friday at 10:15", at(2026, 12, 4, 10, 15)),  # this Friday's 10:15 is offered
    (WEEK, WED_8AM, "the 4th at 9am", at(2026, 12, 4, 9)),
    (WEEK, WED_8AM, "Dec 3 at 9", at(2026, 12, 3, 9)),
    (WEEK, WED_8AM, "12/3 9:00", at(2026, 12, 3, 9)),
    (WEEK, WED_8AM, "the 31st at 10", at(2026, 12, 31, 10)),  # November has no 31st
    (WEEK, WED_8AM, "tonight at 7", at(2026, 11, 25, 19)),
    (WEEK, WED_8AM, "8:30", at(2026, 11, 25, 8, 30)),  # the earliest offered day still ahead
    (WEEK, at(2026, 11, 25, 9), "8:30", at(2026, 11, 26, 8, 30)),
    (FRIDAY, WED_8AM, "10am", at(2026, 11, 27, 10)),  # on the offers' one day, not today
    (FRIDAY, WED_8AM, "3pm", at(2026, 11, 27, 15)),
    (FRIDAY, WED_8AM, "at 3", at(2026, 11, 27, 15)),
    (FRIDAY, WED_8AM, "at 4", at(2026, 11, 27, 16)),
    (FRIDAY, WED_8AM, "8:30", at(2026, 11, 27, 8, 30)),
    (FRIDAY, WED_8AM, "9:30", at(2026, 11, 27, 9, 30)),
    (FRIDAY, WED_8AM, "5:30", at(2026, 11, 27, 17, 30)),
    (FRIDAY, WED_8AM, "7:15", at(2026, 11, 27, 19, 15)),  # dates.py's convention
    (FRIDAY, WED_8AM, "half past 11", at(2026, 11, 27, 11, 30)),
    (FRIDAY, WED_8AM, "quarter to 9", at(2026, 11, 27, 8, 45)),
    (FRIDAY, WED_8AM, "saturday at 10", at(2026, 11, 28, 10)),
    (FRIDAY, WED_8AM, "tomorrow at 10", at(2026, 11, 26, 10)),
    (FRIDAY, WED_8AM, "10am on the 30th", at(2026, 11, 30, 10)),
    (EARLY, WED_8AM, "at 7", at(2026, 11, 27, 7)),  # the early offers make the morning obvious
    (EARLY, WED_8AM, "7:15", at(2026, 11, 27, 7, 15)),
    ([], WED_8AM, "3pm", at(2026, 11, 25, 15)),  # nothing offered: today
    ([], WED_8AM, "at 7", at(2026, 11, 25, 19)),
    ([], at(2026, 11, 25, 16), "3pm", at(2026, 11, 26, 15)),  # ... or tomorrow once it is over
    ([slot(2026, 11, 25, 14), slot(2026, 11, 25, 15)], at(2026, 11, 25, 10), "at 9", at(2026, 11, 26, 9)),
    ([slot(2026, 12, 31, 9), slot(2027, 1, 2, 9)], at(2026, 12, 30, 10), "Jan 2 at 10", at(2027, 1, 2, 10)),
    ([slot(2026, 12, 31, 9)], at(2026, 12, 30, 10), "jan 5 at 10", at(2027, 1, 5, 10)),
    ([slot(2026, 12, 31, 9)], at(2026, 12, 30, 10), "1/5 10:00", at(2027, 1, 5, 10)),
])
def test_not_offered_gives_the_instant_asked_for(offers, now, text, expected):
    result = pick(text, offers, now=now)
    assert result.matches == ()
    assert result.asked_at == expected.astimezone(UTC)
    assert result.asked_at.tzinfo == UTC
    assert not names_offer(text, offers, tz=NY, now=now, dentists=DENTISTS)


@pytest.mark.parametrize("offers, now, text", [
    (WEEK, WED_8AM, "today at 7:30am"),  # over
    ([slot(2026, 12, 3, 14)], at(2026, 12, 3, 10), "Dec 3 at 9"),  # over, and not next year's
    ([slot(2026, 12, 4, 14)], at(2026, 12, 4, 10), "friday at 9"),  # today is that Friday
    (WEEK, WED_8AM, "chen at 11"),  # 11:00 is offered, with Dr. Alvarez
    (WEEK, WED_8AM, "the 3rd at 10 with alvarez"),  # Dec 3 10:00 is offered, with Dr. Patel
    (FRIDAY, WED_8AM, "10:00 or 11:00"),  # two times: nothing exact to check
    (FRIDAY, WED_8AM, "10am friday or saturday"),
    (WEEK, WED_8AM, "7"),  # a number alone is never asked for
    ([slot(2026, 3, 8, 9)], at(2026, 3, 7, 12), "mar 8 at 2:30am"),  # the clock skips 2:30 that night
    (WEEK, WED_8AM, "12/3/2020 10:00"),  # a year gone
])
def test_no_instant_in_the_past_or_offered(offers, now, text):
    result = pick(text, offers, now=now)
    assert (result.matches, result.asked_at) == ((), None)


def test_a_time_asked_for_reads_what_it_read():
    result = pick("today at 7:30am", WEEK)
    assert result.understood == ("7:30 AM", "today")


# DST: offers at 9:00 and 13:30 local on the days the clocks change
@pytest.mark.parametrize("day, now, ten_utc", [
    ((2026, 3, 8), at(2026, 3, 7, 12), datetime(2026, 3, 8, 14, tzinfo=UTC)),  # EDT from 2:00
    ((2026, 11, 1), at(2026, 10, 31, 12), datetime(2026, 11, 1, 15, tzinfo=UTC)),  # EST from 2:00
])
def test_dst_days(day, now, ten_utc):
    offers = [slot(*day, 9, 0, CHEN), slot(*day, 13, 30, ALVAREZ)]
    assert picked("9", offers, now=now) == (0,)
    assert picked("9am", offers, now=now) == (0,)
    assert picked("1:30", offers, now=now) == (1,)
    assert picked("13:30", offers, now=now) == (1,)
    assert pick("at 10", offers, now=now).asked_at == ten_utc


def test_offers_in_any_zone_are_read_in_the_clinics():
    tokyo = ZoneInfo("Asia/Tokyo")
    offers = [Slot(s.starts_at.astimezone(tokyo), s.dentist_id, s.ends_at.astimezone(tokyo)) for s in WEEK]
    assert picked("3:45", offers) == (2,)
    assert picked("tomorrow", offers) == (1, 2)
    london = ZoneInfo("Europe/London")  # the same instants at the clinic in London are 5 hours later
    assert picked("4pm", WEEK, tz=london) == (0,)


@pytest.mark.parametrize("text, expected", [
    ("Jan 31", (0,)),
    ("31 jan", (0,)),
    ("1/31", (0,)),
    ("the 31st", (0,)),
    ("january 31st at 10", (0,)),
    ("feb 1", (1, 2)),
    ("the 1st", (1, 2)),  # the offers span several days, one on the 1st: a date
    ("the first", (0,)),  # a word ordinal is a position
    ("on the first", (1, 2)),
])
def test_month_ends(text, expected):
    offers = [slot(2027, 1, 31, 10), slot(2027, 2, 1, 10), slot(2027, 2, 1, 11)]
    assert picked(text, offers, now=at(2027, 1, 29, 10)) == expected


@pytest.mark.parametrize("text, expected", [
    ("Jan 2", (1,)),
    ("1/2", (1,)),
    ("the 2nd", (1,)),
    ("dec 31", (0,)),
    ("jan 2 at 9am", (1,)),
])
def test_a_date_in_the_next_year(text, expected):
    offers = [slot(2026, 12, 31, 9), slot(2027, 1, 2, 9)]
    assert picked(text, offers, now=at(2026, 12, 30, 10)) == expected


def test_us_month_day_not_day_month():
    offers = [slot(2027, 3, 12, 10), slot(2026, 12, 3, 10)]
    assert picked("3/12 10:00", offers) == (0,)
    assert picked("12/3 10:00", offers) == (1,)


@pytest.mark.parametrize("text, understood", [
    ("option 4", ("option 4",)),
    ("#7", ("number 7",)),
    ("the sixth", ("the 6th",)),
    ("the 5th one", ("the 5th",)),
    ("the 6th", ("the 6th",)),  # past the offers: the 6th of a month
    ("the evening one", ("evening",)),
    ("the 2nd with chen", ("Dr. Chen", "the 2nd")),  # Dr. Chen has one; the 2nd offer is Dr. Patel's
])
def test_positions_and_filters_that_name_nothing(text, understood):
    result = pick(text, TWO)
    assert (result.matches, result.asked_at, result.understood) == ((), None, understood)


@pytest.mark.parametrize("text", ["5", "13", "the 5 one"])  # not an offer's hour, not a button
def test_a_number_that_is_neither_hour_nor_position_reads_nothing(text):
    assert pick(text, TWO) == Pick()


@pytest.mark.parametrize("text", [
    "", "   ", "hello", "what?", "John Smith", "yes please", "that one", "then", "when", "games",
    "just a second", "one sec", "last time", "???", "\x00\n\t", "🦷🦷 😀", "１１:００",
    "'; DROP TABLE appointments; --", "1 OR 1=1", "Robert'); DROP TABLE students;--",
    "SELECT * FROM slots WHERE 1=1", "<script>alert(1)</script>", "((((((((((", "a" * MAX_TEXT,
    "9" * MAX_TEXT, "number 0", "I have 2 kids", "call me in 5", "13/45", "25:00", "99:99", "feb 30", "0 pm",
])
def test_text_naming_nothing_gives_an_empty_pick(text):
    assert pick(text, WEEK) == Pick()
    assert not names_offer(text, WEEK, tz=NY, now=WED_8AM, dentists=DENTISTS)


def test_long_text_is_not_read():
    text = "11:00 " + "x" * (MAX_TEXT - 6)
    assert len(text) == MAX_TEXT and picked(text, WEEK) == (0,)
    assert pick(text + "x", WEEK) == Pick()
    assert pick("11:00 " * 10_000, WEEK) == Pick()


def test_not_a_string_gives_an_empty_pick():
    assert pick(None, WEEK) == Pick()  # type: ignore[arg-type]


@pytest.mark.parametrize("text, understood", [
    ("chen at 10:15 on friday", ("10:15", "Friday", "Dr. Chen")),
    ("Friday at 10:15 please", ("10:15", "Friday")),
    ("the 2nd", ("the 2nd",)),
    ("3pm", ("3:00 PM",)),
    ("15:30", ("3:30 PM",)),
    ("09:15", ("9:15 AM",)),
    ("quarter past 9", ("9:15",)),
    ("noon", ("noon",)),
    ("option 2", ("option 2",)),
    ("#2", ("number 2",)),
    ("4", ("number 4",)),
    ("the last one", ("the last",)),
    ("the second to last", ("the second to last",)),
    ("Dec 3", ("Dec 3",)),
    ("12/3", ("Dec 3",)),
    ("3/12/2027", ("Mar 12, 2027",)),
    ("the 31st", ("the 31st",)),
    ("next thursday", ("next Thursday",)),
    ("tomorrow morning", ("tomorrow", "morning")),
    ("the later one", ("the latest",)),
    ("chenn", ("Dr. Chen",)),
    ("maria", ("Dr. Alvarez",)),
])
def test_understood_is_fit_to_quote(text, understood):
    assert pick(text, WEEK).understood == understood


def test_a_number_alone_in_an_hour_without_an_exact_offer():
    result = pick("10", FRIDAY)
    assert result.understood == ("around 10",)
    assert result.asked_at is None


def test_unique():
    assert pick("3:45", WEEK).unique == WEEK[2]
    assert pick("chen", WEEK).unique is None
    assert pick("hello", WEEK).unique is None


def test_names_offer():
    assert names_offer("11", WEEK, tz=NY, now=WED_8AM, dentists=DENTISTS)
    assert names_offer("the one with Dr Chen", WEEK, tz=NY, now=WED_8AM, dentists=DENTISTS)
    assert not names_offer("tomorrow at 2", WEEK, tz=NY, now=WED_8AM, dentists=DENTISTS)
    assert not names_offer("hello", WEEK, tz=NY, now=WED_8AM, dentists=DENTISTS)
    assert not names_offer("the first", [], tz=NY, now=WED_8AM, dentists=DENTISTS)


def test_short_names_match_exactly_only():
    dentists = {7: "Dr. Li Wu", 8: "Dr. Anna Lee"}
    offers = [slot(2026, 11, 26, 9, 0, 7), slot(2026, 11, 26, 10, 0, 8)]
    assert picked("wu", offers, dentists=dentists) == (0,)
    assert picked("lee", offers, dentists=dentists) == (1,)
    assert picked("wo", offers, dentists=dentists) == ()  # three letters or fewer: no typo forgiven
    assert picked("ana", offers, dentists=dentists) == ()
    assert picked("annna", offers, dentists=dentists) == (1,)


VOCABULARY = ["at", "the", "one", "on", "of", "3", "11", "12", "31", "2nd", "4th", "10:15", "3:45", "9am",
              "pm", "noon", "quarter", "past", "to", "half", "friday", "next", "this", "tomorrow", "today",
              "dec", "12/3", "jan", "first", "last", "number", "option", "#", "chen", "chenn", "dr.",
              "alvarez", "morning", "evening", "earlier", "later", "o'clock", "eleven", "twelve", "/", ":"]


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=80), st.lists(st.sampled_from(VOCABULARY), max_size=8).map(" ".join)))
def test_never_raises_and_stays_within_the_offers(text):
    result = pick(text, WEEK)
    assert set(result.matches) <= set(WEEK)
    assert list(result.matches) == sorted(result.matches, key=WEEK.index)
    if result.asked_at is not None:
        assert result.matches == ()
        assert result.asked_at > WED_8AM
        assert result.asked_at not in {s.starts_at for s in WEEK}
    if result.matches or result.asked_at:
        assert result.understood
