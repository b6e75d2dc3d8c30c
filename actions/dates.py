"""Turn what people type about time ("next Tuesday afternoon", "the 14th at 10:30",
"asap") into a window of aware datetimes in the clinic's time zone.

Pure: every function takes ``now`` (aware) and the clinic zone, so tests pin the
clock. The structure of the phrase (parts of day, clock times, weekdays with
"this"/"next", ordinals, "tomorrow") is read here with small regular expressions;
``dateparser`` only reads what is left ("Dec 3", "3/12", "in two weeks"), with
PREFER_DATES_FROM=future and RELATIVE_BASE = now in the clinic's zone.

Conventions:
- morning 08–12, afternoon 12–17, evening 17–20; "noon"/"lunchtime" 12–14.
- "Tuesday" and "this Tuesday" = the coming Tuesday (today if today is Tuesday);
  "next Tuesday" = the Tuesday of next week (weeks start on Monday).
- A clock time from 1 to 7 without am/pm means the afternoon ("tomorrow at 3" = 15:00).
- A time or a part of day without a date means today, or tomorrow once it has passed.
- "asap", "next available", "soonest", "whenever" = from now, the next 14 days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import dateparser

ASAP_DAYS = 14
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
WEEKDAYS = {name: i for i, names in enumerate(
    [("monday", "mon"), ("tuesday", "tue", "tues"), ("wednesday", "wed"),
     ("thursday", "thu", "thur", "thurs"),
     ("friday", "fri"), ("saturday", "sat"), ("sunday", "sun")]) for name in names}

_ASAP = re.compile(r"\b(asap|a\.s\.a\.p|as soon as possible|soonest|earliest|next available|first available|"
                   r"next free|first free|whenever|any ?time|anytime|any day|no preference|don'?t mind|"
                   r"next opening|first opening)\b")
_PART = re.compile(r"\b(this |in the |tomorrow |)(" + "|".join(PARTS_OF_DAY) + r")s?\b")
_CLOCK = re.compile(
    r"(?:\b(?:at|@|around|about|by|from|after)\s+)?"
    r"\b(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm|a\.m\.?|p\.m\.?|o'?clock)(?![a-z])"
    r"|(?:\b(?:at|@|around|about|by|from|after)\s+)(\d{1,2})(?:[:.](\d{2}))?\b(?!\s*(?:st|nd|rd|th)\b)"
    r"|\b(\d{1,2})[:](\d{2})\b")
_WEEKDAY = re.compile(r"\b(?:(this|next|coming|this coming|on)\s+)?(" + "|".join(WEEKDAYS) + r")\b")
_ORDINAL = re.compile(r"\b(?:on\s+)?(?:the\s+)?(\d{1,2})(st|nd|rd|th)\b"
                      r"(?!\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|"
                      r"jul|aug|sep|oct|nov|dec))")
_MONTH = re.compile(r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\b")
_WEEK = re.compile(r"\b(this|next|coming) (week|weekend)\b|\b(?:on |at )?the weekend\b|\bweekend\b")
# "in 3 months", "two weeks from now": counted from today, so the day of the month is kept
_DURATION = re.compile(r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\s+"
                       r"(day|week|month|year)s?\b")
_FILLER = re.compile(r"\b(on|at|for|in|please|pls|maybe|around|about|sometime|some time|any|time|the|a|an|"
                     r"is|it|ok|okay|fine|how about|what about|or|and|would be|works|good|great|free)\b")


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

    def contains(self, instant: datetime, tz: ZoneInfo) -> bool:
        """Whether a slot starting at ``instant`` fits the window (and its part of day)."""
        if not self.start <= instant < self.end:
            return False
        if self.daily is None:
            return True
        local = instant.astimezone(tz).time()
        return self.daily[0] <= local < self.daily[1]

    def encode(self) -> str:
        daily = f"{self.daily[0].isoformat()}-{self.daily[1].isoformat()}" if self.daily else ""
        return "|".join([self.start.isoformat(), self.end.isoformat(), self.at.isoformat() if self.at else "",
                         "asap" if self.asap else "", daily])

    @classmethod
    def decode(cls, value: str) -> "When":
        start, end, at, asap, daily = (value.split("|") + [""] * 5)[:5]
        span = tuple(time.fromisoformat(t) for t in daily.split("-")) if daily else None
        return cls(datetime.fromisoformat(start), datetime.fromisoformat(end),
                   datetime.fromisoformat(at) if at else None, asap == "asap", span)  # type: ignore[arg-type]


def _at(day: date, t: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, t, tzinfo=tz)


def _day_window(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return _at(first, time(0), tz), _at(last + timedelta(days=1), time(0), tz)


def _clock(match: re.Match) -> time | None:
    g = match.groups()
    if g[0] is not None:
        hour, minute, suffix = int(g[0]), int(g[1] or 0), g[2].replace(".", "")
    elif g[3] is not None:
        hour, minute, suffix = int(g[3]), int(g[4] or 0), ""
    else:
        hour, minute, suffix = int(g[5]), int(g[6]), ""
    if minute > 59 or hour > 23:
        return None
    if suffix.startswith("p") and hour < 12:
        hour += 12
    elif suffix.startswith("a") and hour == 12:
        hour = 0
    elif not suffix.startswith(("a", "p")) and 1 <= hour <= 7:
        hour += 12  # nobody books a dental visit at 3 in the night
    return time(hour, minute)


def _weekday(today: date, target: int, qualifier: str | None) -> date:
    ahead = (target - today.weekday()) % 7
    if qualifier == "next":
        week_start = today - timedelta(days=today.weekday())
        return week_start + timedelta(days=7 + target)
    return today + timedelta(days=ahead)


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
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return None


def _rest_date(rest: str, now_local: datetime, tz: ZoneInfo) -> date | None:
    # "March" is the 1st of March, but "in 3 months" is three months from today, not the 1st
    settings = {"PREFER_DATES_FROM": "future", "RELATIVE_BASE": now_local.replace(tzinfo=None),
                "TIMEZONE": str(tz.key), "RETURN_AS_TIMEZONE_AWARE": False,
                "PREFER_DAY_OF_MONTH": "current" if _DURATION.search(rest) else "first"}
    parsed = dateparser.parse(rest, languages=["en"], settings=settings)
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


def parse_when(text: str, now: datetime, tz: ZoneInfo) -> When | None:
    """The window ``text`` asks for (UTC instants), None when it cannot be read; raises
    PastTime if it is over."""
    when = _parse(text, now.astimezone(timezone.utc), tz)
    if when is None:
        return None
    utc = timezone.utc
    exact = when.at.astimezone(utc) if when.at else None
    return When(when.start.astimezone(utc), when.end.astimezone(utc), exact, when.asap, when.daily)


def _parse(text: str, now: datetime, tz: ZoneInfo) -> When | None:
    if not text or not text.strip():
        return None
    now_local = now.astimezone(tz)
    today = now_local.date()
    s = " " + re.sub(r"\s+", " ", text.lower().replace(",", " ").replace("?", " ").replace("!", " ")) + " "
    s = s.replace("a.m.", "am").replace("p.m.", "pm")
    s = re.sub(r"\b(?:a|an)\s+(day|week|month|year)\b", r"1 \1", s)  # "in a month": the filler drops "a"

    if _ASAP.search(s):
        return When(now, now + timedelta(days=ASAP_DAYS), asap=True)

    part = None
    m = _PART.search(s)
    if m:
        part = PARTS_OF_DAY[m.group(2)]
        keep = {"tomorrow": " tomorrow ", "this": " today "}.get(m.group(1).strip(), " ")
        if m.group(2) == "tonight":
            keep = " today "
        s = s[:m.start()] + keep + s[m.end():]
    clock = None
    m = _CLOCK.search(s)
    if m:
        clock = _clock(m)
        if clock is None:
            return None
        s = s[:m.start()] + " " + s[m.end():]

    first = last = None  # the day range asked for
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
        m = _WEEK.search(s)
        if m:
            week_start = today - timedelta(days=today.weekday())
            nxt = m.group(1) in ("next",)
            if m.group(2) == "week":
                first = week_start + timedelta(days=7) if nxt else today
                last = week_start + timedelta(days=13 if nxt else 6)
                if m.group(1) == "coming":
                    first, last = today, today + timedelta(days=6)
            else:  # weekend
                sat = week_start + timedelta(days=5 + (7 if nxt else 0))
                if not nxt and today > sat + timedelta(days=1):
                    sat += timedelta(days=7)
                first, last = max(sat, today), sat + timedelta(days=1)
            s = s[:m.start()] + " " + s[m.end():]
    if first is None:
        m = _WEEKDAY.search(s)
        if m:
            qualifier = m.group(1)
            first = last = _weekday(today, WEEKDAYS[m.group(2)], "next" if qualifier == "next" else None)
            s = s[:m.start()] + " " + s[m.end():]
    if first is None and not _MONTH.search(s):
        m = _ORDINAL.search(s)
        if m and not 1 <= int(m.group(1)) <= 31:
            return None
        if m:
            first = last = _ordinal(today, int(m.group(1)))
            if first is None:
                return None
            s = s[:m.start()] + " " + s[m.end():]
    rest = _FILLER.sub(" ", s).strip()
    rest = re.sub(r"\s+", " ", rest)
    if first is None and rest:
        found = _rest_date(rest, now_local, tz)
        if found is None:
            return None
        first = last = found
    # leftovers next to a date we understood ("tuesday works for me") are ignored

    if first is None:
        if clock is None and part is None:
            return None
        # a time or part of day alone: today, or tomorrow once it is over
        first = last = today
        end_t = clock or part[1]
        if _at(today, end_t, tz) <= now:
            first = last = today + timedelta(days=1)

    assert last is not None
    if clock is not None:
        at = _at(first, clock, tz)
        if at < now and first == last:
            raise PastTime(text)
        day_start, day_end = _day_window(first, last, tz)
        return When(max(day_start, now), day_end, at=at)
    if part is not None:
        start, end = _at(first, part[0], tz), _at(last, part[1], tz)
    else:
        start, end = _day_window(first, last, tz)
    if end <= now:
        raise PastTime(text)
    return When(max(start, now), end, daily=part if part is not None and last > first else None)


def parse_clock(text: str) -> time | None:
    """Just a clock time in ``text`` ("2:30", "3pm", "at 10"), or None."""
    m = _CLOCK.search(" " + text.lower().replace("a.m.", "am").replace("p.m.", "pm") + " ")
    return _clock(m) if m else None
