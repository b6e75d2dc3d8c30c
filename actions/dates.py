"""Turn what people type about time ("next Tuesday afternoon", "the 14th at 10:30",
"asap", "weekends only", "early January") into a window of aware datetimes in the
clinic's time zone.

Pure: every function takes ``now`` (aware) and the clinic zone, so tests pin the
clock. The structure of the phrase (parts of day, ranges of hours, clock times,
weekdays with "this"/"next", repeated weekdays, weeks, parts of a month, ordinals,
"tomorrow") is read here with small regular expressions; ``dateparser`` only reads
what is left ("Dec 3", "3/12", "in 3 months"), with PREFER_DATES_FROM=future and
RELATIVE_BASE = now in the clinic's zone.

Conventions:
- Parts of day: morning 08–12, afternoon 12–17, evening 17–20; "noon"/"lunchtime" 12–14.
- Ranges of hours: "before work" 07–09, "after work" 17–20, "before 9" 07–09 (07:00 is the
  earliest hour offered), "after 5" 17–20 (20:00 the latest), "before noon"/"before lunch"
  07–12, "after lunch" 14–17. With a part of day they narrow it ("afternoons after 3" 15–17).
- A clock time from 1 to 7 without am/pm means the afternoon ("tomorrow at 3" = 15:00,
  "after 5" = 17:00); "14:30" and "2:30pm" are the same time.
- "Tuesday", "this Tuesday", "on Tuesday", "coming Tuesday" = the coming Tuesday: today if
  today is Tuesday and the time or part of day asked for is still ahead, else a week later
  ("Tuesday 10am" said on a Tuesday at 11:00 is next week's, not a time in the past). When
  today's is still ahead but nothing of it can be booked any more (the minimum notice, the
  clinic closed for the day), the offers are next week's Tuesday (``When.next_week``).
- "next Tuesday" = the Tuesday of next calendar week, weeks starting on Sunday (US usage):
  on a Monday "next Friday" is 11 days away, on a Saturday 6 (the same day as "this Friday");
  it is never today. "next Sunday" is the Sunday that opens next calendar week.
- Weeks are Monday–Sunday windows (a clinic's weekend ends its week): "this week" (what is
  left of it), "next week", "the week after next", "in N weeks" (= N weeks after this week:
  "in a week" = "next week"). Which week is "this" follows the same Sunday-start calendar
  as "next Friday", so "next <weekday>" always lies in "next week": from Monday to Saturday
  "next week" is next Monday to the Sunday after (the Monday–Sunday week containing today
  + 7 days); on a Sunday "this week" is today and the coming Monday–Sunday, and "next week"
  begins eight days later. "this/next weekend" is Saturday–Sunday of this/next Monday–Sunday
  week (on a Sunday "this weekend" is today).
- Months: "this month" = the rest of it, "next month" = all of it. Early = days 1–10
  ("beginning of", "start of"), mid = 11–20 ("middle of"), late = 21 to the end, "end of" =
  the last 7 days. "the month" is this month, or next month once the part asked for is over
  ("end of the month" moves on when fewer than 2 days remain, today counted); a named month
  ("early January") is the next one whose part asked for is not over; "this month" never
  moves on (a part of it that is over is in the past). A month alone ("March") is its 1st.
- Repeats spread over several days: plural weekdays or "any/every <weekday>" ("tuesdays",
  "any Tuesday morning", "tuesday mornings"), "weekends (only)", "on a weekend", "weekdays
  (only)", "during the week", plural parts of day ("mornings"), ranges of hours ("after 5")
  and "any day"/"any time"/"whenever" with hours ("lunchtime any day"). Without dates they
  cover the next 4 weeks for one or two weekdays, else the next 14 days ("after 5 today" is
  today alone). A clock time over several days is the hour from it on each ("tuesdays at 3"
  = Tuesdays 15:00–16:00).
- A time or a part of day without a date means today, or tomorrow once it has passed.
- "asap", "next available", "soonest", "whenever", "any time" alone = from now, the next 14
  days, soonest first; with hours or weekdays "asap" and its kind still mean the soonest of
  those ("next available morning"), while "any day" and its kind spread.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from itertools import chain
from zoneinfo import ZoneInfo

import dateparser
from dateparser.search import search_dates

ASAP_DAYS = 14
REPEAT_WEEKS = 4  # one or two weekdays asked for again and again: the next four weeks
EARLIEST, LATEST = time(7), time(20)  # the first and last hours a range of hours reaches to
PARTS_OF_DAY = {
    "morning": (time(8), time(12)),
    "afternoon": (time(12), time(17)),
    "evening": (time(17), time(20)),
    "tonight": (time(17), time(20)),
    "noon": (time(12), time(14)),
    "midday": (time(12), time(14)),
    "lunchtime": (time(12), time(14)),
    "lunch": (time(12), time(14)),
}
HOUR_RANGES = {
    ("before", "work"): (EARLIEST, time(9)),
    ("after", "work"): (time(17), LATEST),
    ("before", "noon"): (EARLIEST, time(12)),
    ("after", "noon"): (time(12), time(17)),
    ("before", "lunch"): (EARLIEST, time(12)),
    ("after", "lunch"): (time(14), time(17)),
}
WEEKDAYS = {name: i for i, names in enumerate(
    [("monday", "mon"), ("tuesday", "tue", "tues"), ("wednesday", "wed"),
     ("thursday", "thu", "thur", "thurs"),
     ("friday", "fri"), ("saturday", "sat"), ("sunday", "sun")]) for name in names}
DAY_GROUPS = {"weekday": frozenset(range(5)), "week": frozenset(range(5)), "weekend": frozenset({5, 6})}
MONTHS = {name: i for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
MONTH_PARTS = {"early": "early", "beginning": "early", "start": "early", "mid": "mid", "middle": "mid",
               "late": "late", "end": "end"}
NUMBERS = {word: i for i, word in enumerate(
    ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"),
    start=1)}

_COUNT = r"(\d{1,3}|" + "|".join(NUMBERS) + r")"
_NOT_A_TIME = r"(?!\s*(?:st|nd|rd|th|days?|weeks?|months?|years?)\b)"  # "after the 5th", "by 2 weeks"
_MONTH_NAMES = (r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
                r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?")

_SOONEST = re.compile(r"\b(asap|a\.s\.a\.p|as soon as possible|soonest|earliest|next available|"
                      r"first available|next free|first free|next opening|first opening)\b")
_ANY_DAY = re.compile(r"\b(whenever|any ?time|any day|every ?day|no preference|don'?t mind)\b")
_PART = re.compile(r"\b(this |in the |tomorrow |)(" + "|".join(PARTS_OF_DAY) + r")(s?)\b")
_RANGE = re.compile(r"\b(before|after)\s+(?:(work|noon|lunch)(?:time)?|([01]?\d|2[0-3])(?:[:.]([0-5]\d))?"
                    r"\s*(am|pm|o'?clock)?)(?![\w:])" + _NOT_A_TIME)
_CLOCK = re.compile(
    r"(?:\b(?:at|@|around|about|by|from|after)\s+)?"
    r"\b(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm|a\.m\.?|p\.m\.?|o'?clock)(?![a-z])"
    r"|(?:\b(?:at|@|around|about|by|from|after)\s+)(\d{1,2})(?:[:.](\d{2}))?\b" + _NOT_A_TIME +
    r"|\b(\d{1,2})[:](\d{2})\b")
_WEEKDAY = re.compile(r"\b(?:(this|next|coming|this coming|on)\s+)?(" + "|".join(WEEKDAYS) + r")\b")
_FULL_WEEKDAYS = "|".join(name for name in WEEKDAYS if name.endswith("day"))
# "tuesdays", "any tuesday", "every tue", "weekends only", "on a weekend", "weekdays", "during the week"
_REPEAT = re.compile(r"\b(?:(?:any|every|all|a)\s+(" + "|".join(WEEKDAYS) + r"|weekday|weekend)s?"
                     r"|(" + _FULL_WEEKDAYS + r"|weekday|weekend)s|(weekday|weekend)(?=\s+only\b)"
                     r"|during the (week))\b(?:\s+only\b)?")
_ORDINAL = re.compile(r"\b(?:on\s+)?(?:the\s+)?(\d{1,2})(st|nd|rd|th)\b"
                      r"(?!\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|"
                      r"jul|aug|sep|oct|nov|dec))")
_MONTH = re.compile(r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\b")
# a month's name next to a day's number: "dec 7", "7th of December", "March 3rd"
_MONTH_DATE = re.compile(r"\b(?:(?:" + _MONTH_NAMES + r")\.?\s+\d{1,2}(?:st|nd|rd|th)?|\d{1,2}(?:st|nd|rd|th)?"
                         r"(?:\s+of)?\s+(?:" + _MONTH_NAMES + r"))\b")
_MONTH_PART = re.compile(r"\b(?:the\s+)?(" + "|".join(MONTH_PARTS) + r")(?:\s+(?:of|in))?(?:\s+|-)(?:the\s+)?"
                         r"(this month|next month|coming month|month|" + _MONTH_NAMES + r")\b")
_WHOLE_MONTH = re.compile(r"\b(this|next|coming) month\b")
_WEEKS = re.compile(r"\b(?:the\s+)?week after next\b|\b(?:in\s+)?" + _COUNT +
                    r"\s+weeks?(?:\s+from\s+(?:now|today))?\b")
_WEEK = re.compile(r"\b(this|next|coming) (week|weekend)\b|\b(?:on |at )?the weekend\b|\bweekend\b")
# "in 3 months", "two weeks from now": counted from today, so the day of the month is kept
_DURATION = re.compile(r"\b" + _COUNT + r"\s+(day|week|month|year)s?\b")
_FILLER = re.compile(r"\b(on|at|for|in|please|pls|maybe|around|about|sometime|some time|any|time|the|a|an|"
                     r"is|it|ok|okay|fine|how about|what about|or|and|would be|works|good|great|free|only)\b")


class PastTime(ValueError):
    """The phrase names a time that is already over ("yesterday", "this morning" at 3pm)."""


@dataclass(frozen=True)
class When:
    """A window to look for free slots in; ``at`` is the exact time asked for, if any."""

    start: datetime
    end: datetime
    at: datetime | None = None
    asap: bool = False
    daily: tuple[time, time] | None = None  # a part of day repeated over a multi-day window
    weekdays: frozenset[int] | None = None  # only these local weekdays (Monday = 0)
    # a day named by its weekday that is today ("Tuesday", said on a Tuesday): where the same
    # window starts next week, which is meant when nothing of today's can still be booked
    next_week: datetime | None = None

    def contains(self, instant: datetime, tz: ZoneInfo) -> bool:
        """Whether a slot starting at ``instant`` fits the window (its weekdays, its part of day)."""
        if not self.start <= instant < self.end:
            return False
        local = instant.astimezone(tz)
        if self.weekdays is not None and local.weekday() not in self.weekdays:
            return False
        return self.daily is None or self.daily[0] <= local.time() < self.daily[1]

    def weeks(self) -> list[tuple[datetime, datetime]]:
        """The window cut into spans of at most seven days, in order: a reader with a limit per
        call reads each, so a long window is seen to its end."""
        spans, start = [], self.start
        while start < self.end:
            spans.append((start, min(start + timedelta(days=7), self.end)))
            start = spans[-1][1]
        return spans

    def encode(self) -> str:
        """``start|end|at|asap|daily``, then ``|weekdays`` ("56") and ``|next_week`` only when
        there are some, so a window without them reads as it did before they existed."""
        daily = f"{self.daily[0].isoformat()}-{self.daily[1].isoformat()}" if self.daily else ""
        fields = [self.start.isoformat(), self.end.isoformat(), self.at.isoformat() if self.at else "",
                  "asap" if self.asap else "", daily]
        if self.weekdays or self.next_week:
            fields.append("".join(str(d) for d in sorted(self.weekdays or ())))
        if self.next_week:
            fields.append(self.next_week.isoformat())
        return "|".join(fields)

    @classmethod
    def decode(cls, value: str) -> "When":
        """The window ``encode`` wrote (five fields, six with weekdays, seven with next_week)."""
        start, end, at, asap, daily, weekdays, later = (value.split("|") + [""] * 7)[:7]
        span = tuple(time.fromisoformat(t) for t in daily.split("-")) if daily else None
        days = frozenset(int(d) for d in weekdays) if weekdays else None
        if days is not None and not days <= set(range(7)):
            raise ValueError(f"not weekdays: {weekdays!r}")
        return cls(datetime.fromisoformat(start), datetime.fromisoformat(end),  # type: ignore[arg-type]
                   datetime.fromisoformat(at) if at else None, asap == "asap", span, days,
                   datetime.fromisoformat(later) if later else None)

    def a_week_later(self, tz: ZoneInfo) -> "When":
        """The same window on the same weekday next week (``next_week`` on), wall-clock times kept
        across a DST change."""
        assert self.next_week is not None

        def later(instant: datetime) -> datetime:
            local = instant.astimezone(tz)
            return datetime.combine(local.date() + timedelta(days=7), local.time(), tzinfo=tz)

        return When(self.next_week, later(self.end), later(self.at) if self.at else None, self.asap,
                    self.daily, self.weekdays)


def _at(day: date, t: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, t, tzinfo=tz)


def _day_window(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return _at(first, time(0), tz), _at(last + timedelta(days=1), time(0), tz)


def _cut(pattern: re.Pattern, s: str) -> tuple[re.Match | None, str]:
    """The first match of ``pattern`` in ``s``, and ``s`` without it."""
    m = pattern.search(s)
    return (m, s[:m.start()] + " " + s[m.end():]) if m else (None, s)


def _clock(match: re.Match) -> time | None:
    g = match.groups()
    if g[0] is not None:
        return _clock_time(g[0], g[1], g[2])
    if g[3] is not None:
        return _clock_time(g[3], g[4], "")
    return _clock_time(g[5], g[6], "")


def _clock_time(hour_text: str, minute_text: str | None, suffix: str | None) -> time | None:
    hour, minute, suffix = int(hour_text), int(minute_text or 0), (suffix or "").replace(".", "")
    if minute > 59 or hour > 23:
        return None
    if suffix.startswith("p") and hour < 12:
        hour += 12
    elif suffix.startswith("a") and hour == 12:
        hour = 0
    elif not suffix.startswith(("a", "p")) and 1 <= hour <= 7:
        hour += 12  # nobody books a dental visit at 3 in the night
    return time(hour, minute)


def _range_hours(m: re.Match) -> tuple[time, time] | None:
    """ "before work" 07–09, "after 5" 17–20, "before 9" 07–09 ... (a range the clock allows)."""
    word, named = m.group(1), m.group(2)
    if named:
        return HOUR_RANGES[(word, named)]
    t = _clock_time(m.group(3), m.group(4), m.group(5))
    if t is None:
        return None
    if word == "before":
        return (EARLIEST, t) if t > EARLIEST else (time(0), t)
    return (t, LATEST) if t < LATEST else (t, time(23, 59))


def _hours(s: str) -> tuple[tuple[time, time] | None, str, str]:
    """The hours asked for (a part of day, a range such as "after 5", or the one narrowed by the
    other), how ("plural" for "mornings", "range" for "after 5", else ""), and ``s`` without them."""
    m, s = _cut(_RANGE, s)
    hours = _range_hours(m) if m else None
    kind = "range" if hours else ""
    m = _PART.search(s)
    if m:
        keep = {"tomorrow": " tomorrow ", "this": " today "}.get(m.group(1).strip(), " ")
        if m.group(2) == "tonight":
            keep = " today "
        s = s[:m.start()] + keep + s[m.end():]
        part = PARTS_OF_DAY[m.group(2)]
        if hours is None:
            hours = part
        elif max(part[0], hours[0]) < min(part[1], hours[1]):  # "afternoons after 3": 15–17
            hours = (max(part[0], hours[0]), min(part[1], hours[1]))
        kind = "plural" if m.group(3) else kind
    return hours, kind, s


def _repeated_days(s: str) -> tuple[frozenset[int] | None, str]:
    """The weekdays asked for again and again ("tuesdays", "weekends only"), and ``s`` without them."""
    found = list(_REPEAT.finditer(s))
    if not found:
        return None, s
    names = [next(g for g in m.groups() if g) for m in found]
    days = frozenset(chain.from_iterable(DAY_GROUPS.get(n) or (WEEKDAYS[n],) for n in names))
    return days, _REPEAT.sub(" ", s)


def _calendar_sunday(today: date) -> date:
    """The Sunday that begins today's calendar week (US weeks start on Sunday)."""
    return today - timedelta(days=(today.weekday() + 1) % 7)


def _week(today: date, ahead: int) -> tuple[date, date]:
    """Monday–Sunday of the week ``ahead`` weeks after this one; this one is the week whose Monday
    is in today's calendar week (so on a Sunday, the one starting tomorrow)."""
    monday = _calendar_sunday(today) + timedelta(days=1 + 7 * ahead)
    return monday, monday + timedelta(days=6)


def _weekday(today: date, target: int, qualifier: str | None) -> date:
    if qualifier == "next":  # the one in next calendar week
        return _calendar_sunday(today) + timedelta(days=7 + (target + 1) % 7)
    return today + timedelta(days=(target - today.weekday()) % 7)


def _over(day: date, clock: time | None, hours: tuple[time, time] | None, now: datetime,
          tz: ZoneInfo) -> bool:
    """Whether the clock time asked for on ``day`` has begun, or the hours asked for have ended."""
    end = clock or (hours[1] if hours else None)
    return end is not None and _at(day, end, tz) <= now


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _month_days(year: int, month: int, part: str | None) -> tuple[date, date]:
    last = calendar.monthrange(year, month)[1]
    lo, hi = {None: (1, last), "early": (1, 10), "mid": (11, 20), "late": (21, last),
              "end": (last - 6, last)}[part]
    return date(year, month, lo), date(year, month, hi)


def _month_part(m: re.Match, today: date) -> tuple[date, date]:
    """The days of "early January", "end of the month", "beginning of next month" ..."""
    part, target = MONTH_PARTS[m.group(1)], m.group(2)
    year, month = today.year, today.month
    if target in ("next month", "coming month"):
        year, month = _next_month(year, month)
    elif target not in ("this month", "month"):
        month = MONTHS[target[:3]]
    first, last = _month_days(year, month, part)
    if target == "month" and (last - today).days + 1 < (2 if part == "end" else 1):
        first, last = _month_days(*_next_month(year, month), part)
    elif target[:3] in MONTHS and last < today:
        first, last = _month_days(year + 1, month, part)
    return first, last


def _day_range(s: str, today: date) -> tuple[tuple[date, date] | None, str]:
    """The first and last day of a range named in ``s`` ("end of the month", "next month",
    "in 3 weeks", "next week", "this weekend"), and ``s`` without it."""
    m, s = _cut(_MONTH_PART, s)
    if m:
        return _month_part(m, today), s
    m, s = _cut(_WHOLE_MONTH, s)
    if m and m.group(1) == "this":
        return (today, _month_days(today.year, today.month, None)[1]), s
    if m:
        return _month_days(*_next_month(today.year, today.month), None), s
    m, s = _cut(_WEEKS, s)
    if m:
        return _week(today, 2 if m.group(1) is None else int(NUMBERS.get(m.group(1), m.group(1)))), s
    m, s = _cut(_WEEK, s)
    if m and m.group(2) == "week":
        return {"this": (today, _week(today, 0)[1]), "next": _week(today, 1),
                "coming": (today, today + timedelta(days=6))}[m.group(1)], s
    if m:  # a weekend: Saturday–Sunday of this (or next) Monday–Sunday week, from today
        nxt = m.group(1) == "next"
        sat = today - timedelta(days=today.weekday()) + timedelta(days=5 + (7 if nxt else 0))
        return (max(sat, today), sat + timedelta(days=1)), s
    return None, s


def _ordinal(today: date, day: int) -> date | None:
    """The next date (today or later) whose day of month is ``day``; months without it are skipped."""
    year, month = today.year, today.month
    for _ in range(13):
        try:
            candidate = date(year, month, day)
        except ValueError:
            candidate = None
        if candidate and candidate >= today:
            return candidate
        year, month = _next_month(year, month)
    return None


def _rest_date(rest: str, now_local: datetime, tz: ZoneInfo) -> date | None:
    # "March" is the 1st of March, but "in 3 months" is three months from today, not the 1st
    settings = {"PREFER_DATES_FROM": "future", "RELATIVE_BASE": now_local.replace(tzinfo=None),
                "TIMEZONE": str(tz.key), "RETURN_AS_TIMEZONE_AWARE": False,
                "PREFER_DAY_OF_MONTH": "current" if _DURATION.search(rest) else "first"}
    parsed = dateparser.parse(rest, languages=["en"], settings=settings)
    if parsed is None:
        parsed = _date_among_words(rest, settings)
    if parsed is None:
        return None
    found = parsed.date()
    if found < now_local.date() and re.search(r"\d", rest) and not re.search(r"\b\d{4}\b", rest):
        # "3/12" parsed into the past: the same date next year is what was meant
        try:
            found = found.replace(year=found.year + 1)
        except ValueError:
            return None
    return found


def _date_among_words(rest: str, settings: dict) -> datetime | None:
    """A date said among words dateparser does not know ("december 10 workks me", "the 10th of
    december sounds gr8"): the one date ``search_dates`` finds, if it names a month or a day's
    number (a lone "me" or "now" it might read is no date the patient said)."""
    found = search_dates(rest, languages=["en"], settings=settings) or []
    if len(found) != 1:
        return None
    said, parsed = found[0]
    return parsed if _MONTH.search(said) or re.search(r"\d", said) else None


def parse_when(text: str, now: datetime, tz: ZoneInfo) -> When | None:
    """The window ``text`` asks for (UTC instants), None when it cannot be read; raises
    PastTime if it is over."""
    when = _parse(text, now.astimezone(timezone.utc), tz)
    if when is None:
        return None
    utc = timezone.utc
    return replace(when, start=when.start.astimezone(utc), end=when.end.astimezone(utc),
                   at=when.at.astimezone(utc) if when.at else None,
                   next_week=when.next_week.astimezone(utc) if when.next_week else None)


def _parse(text: str, now: datetime, tz: ZoneInfo) -> When | None:
    if not text or not text.strip():
        return None
    now_local = now.astimezone(tz)
    today = now_local.date()
    s = " " + re.sub(r"\s+", " ", text.lower().replace(",", " ").replace("?", " ").replace("!", " ")) + " "
    s = s.replace("a.m.", "am").replace("p.m.", "pm")
    s = re.sub(r"\b(?:a|an)\s+(day|week|month|year)\b", r"1 \1", s)  # "in a month": the filler drops "a"

    soonest, s = _cut(_SOONEST, s)
    any_day, s = _cut(_ANY_DAY, s)
    hours, kind, s = _hours(s)
    weekdays, s = _repeated_days(s)
    if (soonest or any_day) and hours is None and weekdays is None:
        return When(now, now + timedelta(days=ASAP_DAYS), asap=True)
    # without a date, over several days: "mornings", "after 5", "lunchtime any day", "next available morning"
    several_days = bool(kind or any_day or soonest)
    clock = None
    m, s = _cut(_CLOCK, s)
    if m:
        clock = _clock(m)
        if clock is None:
            return None

    first = last = None  # the day range asked for
    named_today = False  # a weekday named that is today: next week's, if today's cannot be booked
    if re.search(r"\bday after tomorrow\b", s):
        first = last = today + timedelta(days=2)
        s = re.sub(r"\bday after tomorrow\b", " ", s)
    elif re.search(r"\b(tomorrow|tmrw|tmr|tomorow|tommorow)\b", s):
        first = last = today + timedelta(days=1)
        s = re.sub(r"\b(tomorrow|tmrw|tmr|tomorow|tommorow)\b", " ", s)
    elif re.search(r"\b(today|tdy)\b", s):
        first = last = today
        s = re.sub(r"\b(today|tdy)\b", " ", s)
    if re.search(r"\byesterday\b", s):
        raise PastTime(text)

    if first is None:
        days, s = _day_range(s, today)
        if days is not None:
            first, last = days
            named = list(_WEEKDAY.finditer(s))
            inside = [first + timedelta(days=i) for i in range((last - first).days + 1)]
            if len(named) == 1 and weekdays is None:
                inside = [d for d in inside if d.weekday() == WEEKDAYS[named[0].group(2)]]
                if len(inside) == 1:  # "Tuesday next week", "in three weeks on friday": that day
                    first = last = inside[0]
                    s = _WEEKDAY.sub(" ", s)
    if first is None and _MONTH_DATE.search(s):
        s = _WEEKDAY.sub(" ", s)  # "mon dec 7", "Friday 11 December": the date names the day
    if first is None:
        named = list(_WEEKDAY.finditer(s))
        if named and (weekdays is not None or kind == "plural") and all(n.group(1) != "next" for n in named):
            # "tuesday mornings", "tuesdays or a thursday": weekdays again and again
            weekdays = (weekdays or frozenset()) | {WEEKDAYS[n.group(2)] for n in named}
            s = _WEEKDAY.sub(" ", s)
        elif named:
            m, s = _cut(_WEEKDAY, s)
            qualifier = "next" if m.group(1) == "next" else None
            first = last = _weekday(today, WEEKDAYS[m.group(2)], qualifier)
            if qualifier is None and _over(first, clock, hours, now, tz):  # today's is over: next week's
                first = last = first + timedelta(days=7)
            named_today = first == today
    if first is None and not _MONTH.search(s):
        m, s = _cut(_ORDINAL, s)
        if m and not 1 <= int(m.group(1)) <= 31:
            return None
        if m:
            first = last = _ordinal(today, int(m.group(1)))
            if first is None:
                return None
    rest = _FILLER.sub(" ", s).strip()
    rest = re.sub(r"\s+", " ", rest)
    if first is None and rest:
        found = _rest_date(rest, now_local, tz)
        if found is None and not (soonest or any_day):  # "asap ..." and "any day ..." always read
            return None
        first = last = found
    # leftovers next to a date we understood ("tuesday works for me") are ignored

    if first is None:
        if weekdays is not None or several_days:
            days = REPEAT_WEEKS * 7 if weekdays is not None and len(weekdays) <= 2 else ASAP_DAYS
            first, last = today, today + timedelta(days=days - 1)
        elif clock is None and hours is None:
            return None
        else:  # a time or part of day alone: today, or tomorrow once it is over
            first = last = today + timedelta(days=1 if _over(today, clock, hours, now, tz) else 0)

    assert last is not None
    if clock is not None and (last > first or weekdays is not None):  # the hour from it, every day
        hours, clock = (clock, time(min(clock.hour + 1, 23), clock.minute)), None
    if clock is not None:
        at = _at(first, clock, tz)
        if at < now and first == last:
            raise PastTime(text)
        day_start, day_end = _day_window(first, last, tz)
        return When(max(day_start, now), day_end, at=at, next_week=_a_week_on(day_start, tz) if named_today else None)
    if hours is not None:
        start, end = _at(first, hours[0], tz), _at(last, hours[1], tz)
    else:
        start, end = _day_window(first, last, tz)
    if end <= now:
        raise PastTime(text)
    return When(max(start, now), end, asap=soonest is not None,
                daily=hours if hours is not None and last > first else None, weekdays=weekdays,
                next_week=_a_week_on(start, tz) if named_today and first == last else None)


def _a_week_on(instant: datetime, tz: ZoneInfo) -> datetime:
    local = instant.astimezone(tz)
    return datetime.combine(local.date() + timedelta(days=7), local.time(), tzinfo=tz)


def parse_clock(text: str) -> time | None:
    """Just a clock time in ``text`` ("2:30", "3pm", "at 10"), or None."""
    m = _CLOCK.search(" " + text.lower().replace("a.m.", "am").replace("p.m.", "pm") + " ")
    return _clock(m) if m else None
