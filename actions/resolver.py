"""Which of the offered slots a typed answer names: "3:45 is good", "the 11 o'clock one",
"Friday at 10:15", "the 2nd", "chen at 9", "the morning one".

Pure and deterministic: the caller gives the offers, the clinic's zone, ``now`` and the
dentists' names. Hand-written rather than ``dateparser`` (which dates.py uses for free-standing
dates), measured on five typical answers (2026-12-02, this machine): dateparser read "the 11
o'clock one", "quarter past 9" and "Friday at 10:15 please" as nothing, "the 2nd one" as
2028-02-01 and "eleven" as November, at 11.5 ms a phrase; this module reads each against the
offers in 0.08 ms. The text is read into constraints (clock times, a day, a position, dentists,
a part of day, earlier/later) and the offers are narrowed by every one of them.

Where a phrase could be read two ways:
- A clock time without am/pm matches an offer at either 12-hour reading ("9" = 9:00 or 21:00).
- A number alone ("2", "the 11 one", "2 please": nothing else but filler words) is an offer's
  hour when an offer starts in that hour (at h:00 first), else a position in the list as shown,
  else nothing. Next to a day or a dentist ("friday 10", "chen 9") a number is a clock time.
- "the 3rd" is a date when it comes with a clock time, after "on", before "of", when it is past
  the number of offers, or when the offers span several days and one is on the 3rd; else a position.
- "first" .. "sixth", "last" count among the offers the other words leave ("the second Chen one");
  "number/option/#N" count in the list as shown; when one count finds nothing the other is tried.
- "Friday" is any Friday; "this Friday" the coming one; "next Friday" next week's (as in dates.py).
- A dentist by surname or first name; one typo (an edit or a swap) is forgiven on names of four
  letters or more when the first letter is right ("chenn", but not "then").
- morning < 12:00 <= afternoon < 17:00 <= evening: the offers are already inside opening hours.
- ``asked_at``: when no offer fits, exactly one clock time and at most one day were read. The
  day is the one named (the first such date from today; past that instant there is none), else
  the offers' days in order, then today and tomorrow: the first one still ahead of ``now``. A
  12-hour time without am/pm takes the reading inside that day's offered times (an hour either
  side), else dates.py's convention (1-7 is the afternoon). An instant that is offered (with
  another dentist, say) or that the clock skips (a DST gap) is never returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from itertools import chain
from typing import Callable, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from bot.availability import Slot

from .dates import WEEKDAYS, parse_clock
from .formatting import short_dentist

MAX_TEXT = 500  # longer texts are not read at all
SEARCH_DAYS = 400  # how far ahead a named day is looked for ("Jan 2" said on Dec 30, "the 31st")
PARTS = {"morning": (0, 12), "afternoon": (12, 17), "evening": (17, 24)}  # local hours [from, to)
UTC = timezone.utc


@dataclass(frozen=True)
class Pick:
    matches: tuple[Slot, ...] = ()  # the offered slots the text names, in offer order
    asked_at: datetime | None = None  # an instant named that is not offered (UTC), to check freshly
    understood: tuple[str, ...] = ()  # what was read, fit to quote back ("10:15", "Friday", "Dr. Chen")

    @property
    def unique(self) -> Slot | None:
        return self.matches[0] if len(self.matches) == 1 else None


@dataclass(frozen=True)
class _Clock:
    hour: int  # as said: 0-23
    minute: int
    suffix: str = ""  # "am", "pm" or "" when not said
    label: str = ""
    hour_only: bool = False  # a number alone: any offer in that hour, h:00 first

    @property
    def readings(self) -> tuple[time, ...]:
        h = self.hour
        if self.suffix == "am" and h <= 12:
            hours: tuple[int, ...] = (h % 12,)
        elif self.suffix == "pm" and h <= 12:
            hours = (h % 12 + 12,)
        elif 1 <= h <= 11:
            hours = (h, h + 12)
        else:
            hours = (h,)
        return tuple(time(x, self.minute) for x in hours)


def _clock(hour: int, minute: int, suffix: str = "", label: str = "",
           hour_only: bool = False) -> _Clock | None:
    if hour > 23 or minute > 59 or (hour == 0 and suffix == "pm"):
        return None
    suffix = suffix if hour <= 12 else ""
    if not label:
        if suffix or hour == 0 or hour > 12:
            h24 = hour % 12 + (12 if suffix == "pm" or hour > 12 else 0)
            label = f"{h24 % 12 or 12}:{minute:02d} {'PM' if h24 >= 12 else 'AM'}"
        else:
            label = f"{hour}:{minute:02d}"
    return _Clock(hour, minute, suffix, label, hour_only)


@dataclass(frozen=True)
class _Day:
    label: str
    fits: Callable[[date], bool]


@dataclass(frozen=True)
class _Position:
    index: int  # 0-based; -1 is the last, -2 the one before
    as_shown: bool  # "number 3" counts in the list as shown, "the third" among what the other words leave
    label: str


@dataclass
class _Read:
    clocks: list[_Clock] = field(default_factory=list)
    days: list[_Day] = field(default_factory=list)
    dentists: dict[int, str] = field(default_factory=dict)  # id -> "Dr. Chen"
    part: str | None = None
    position: _Position | None = None
    relative: str | None = None  # "the earliest" | "the latest"
    day_numbers: list[tuple[int, bool]] = field(default_factory=list)  # "the 3rd": (3, surely a date)
    numbers: list[int] = field(default_factory=list)  # numbers nothing else read
    stray: bool = False  # words left that are neither read nor filler: a number among them is not a pick

    def understood(self) -> tuple[str, ...]:
        pieces = [c.label for c in self.clocks] + [d.label for d in self.days] + list(self.dentists.values())
        pieces += [self.part] if self.part else []
        pieces += [self.position.label] if self.position else []
        pieces += [self.relative] if self.relative else []
        return tuple(dict.fromkeys(pieces))


_HOUR_WORDS = {w: i for i, w in enumerate(
    "one two three four five six seven eight nine ten eleven twelve".split(), start=1)}
_HW = "|".join(_HOUR_WORDS)
_MINUTES = {"five": 5, "ten": 10, "quarter": 15, "twenty": 20, "twenty-five": 25, "twenty five": 25,
            "half": 30, "fifteen": 15, "thirty": 30, "forty-five": 45, "forty five": 45}
_ORDINAL_WORDS = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "sixth": 5}
_MONTHS = {name: i for i, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
     ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
     ("oct", "october"), ("nov", "november"), ("dec", "december")], start=1) for name in names}
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_WEEKDAY = "(" + "|".join(sorted(WEEKDAYS, key=len, reverse=True)) + ")"
_DAY_NAMES = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_ABBR = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()

_PAST_TO = re.compile(r"(?<!from )(?<!between )\b(?:a )?(quarter|half|twenty[- ]five|twenty|ten|five|\d{1,2})"
                      rf"(?: minutes?)? (past|after|to|till|til|before) (\d{{1,2}}|{_HW})\b(?: ?(am|pm)\b)?")
_WORD_CLOCK = re.compile(rf"\b({_HW})[ -](fifteen|thirty|forty[- ]five)\b")
_WORD_HOUR = re.compile(rf"\b({'|'.join(w for w in _HOUR_WORDS if w != 'one')})\b"
                        r"|\bone\b(?= ?(?:o'? ?clock|am|pm)\b)|(?<=\bat )one\b")
_AS_SHOWN = re.compile(r"(?:\b(number|option|choice|slot|button)|#) ?(\d{1,2})\b")
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?\b")
_MONTH_DAY = re.compile(rf"\b{_MONTH} (?:the )?(\d{{1,2}})(?:st|nd|rd|th)?\b(?![:.]\d)(?:,? (\d{{4}})\b)?")
_DAY_MONTH = re.compile(rf"\b(?:the )?(\d{{1,2}})(?:st|nd|rd|th)? (?:of )?{_MONTH}(?![a-z])"
                        r"(?! (?:be|work|works|suit|suits|i|we)\b)(?:,? (\d{4})\b)?")
_RELATIVE_DAY = re.compile(r"\b(?:the )?(day after (?:tomorrow|tmrw)|tomorrow|tmrw|tmr|tomorow|tommorow|"
                           r"today|tonight|this (?=morning|afternoon|evening))\b")
_WEEKDAY_RE = re.compile(rf"\b(?:(this|next|coming) )?{_WEEKDAY}s?\b")
_CLOCK = re.compile(
    r"\b(?:12 )?(noon|midday)\b"
    r"|\b(\d{1,2})[:.](\d{2})(?: ?(am|pm)\b)?"
    r"|\b(\d{1,2})(\d{2})? ?(am|pm)\b"
    r"|\b(\d{1,2}) ?o'? ?clock\b"
    r"|(?:\b(?:at|around|about)|@) ?(\d{1,2})\b(?![:./]\d| ?(?:st|nd|rd|th)\b)")
_NOUN_ORDINAL = re.compile(r"\b(?:the )?(\d)(?:st|nd|rd|th) (?:one|option|slot|choice|time|button)\b")
_ON_WORD_ORDINAL = re.compile(r"\bon (?:the )?(first|second|third|fourth|fifth|sixth)\b"
                              r"(?! one\b| option\b)")
_DAY_ORDINAL = re.compile(r"\b(on )?(?:the )?(\d{1,2})(?:st|nd|rd|th)\b( of\b)?")
_NOT_POSITION = re.compile(rf"\b(?:just a|a|one) sec(?:ond)?\b|\blast (?:week|time|month|year|{_WEEKDAY})\b")
_BUT_LAST = re.compile(r"\b(?:the )?(?:second|2nd) (?:to |from )?last\b"
                       r"|\bpenultimate\b|\blast but one\b")
_WORD_POSITION = re.compile(r"\b(?:the )?(first|second|third|fourth|fifth|sixth|last)\b")
_PART = re.compile(r"\b(morning|afternoon|evening)s?\b")
_EARLIER = re.compile(r"\b(earlier|earliest|sooner|soonest|later|latest)\b")
_NUMBER = re.compile(r"\b\d+\b")
_FILLER = frozenset("""the one ones a an is it its that this please pls plz ok okay fine good great perfect
    nice lovely cool best works work would be for me i ill id take want like prefer go with lets let us do
    yes yeah yep sure how about around in maybe what at on or and then thanks thank you thx can could we
    book pick choose say sounds suits s dr hmm um""".split())
_WORD = re.compile(r"[a-z]+")


def _normal(text: str) -> str:
    s = text.lower().replace("\u2019", "'").replace("a.m.", "am").replace("p.m.", "pm")
    s = re.sub(r"[^a-z0-9:./#@'\- ]+", " ", s)
    s = re.sub(r"\.(?!\d)", " ", s)  # a full stop or "dr.", not "10.30"
    return " " + re.sub(r"\s+", " ", s).strip() + " "


def _take(pattern: re.Pattern, s: str, read: Callable[[re.Match], object]) -> str:
    """``s`` with the matches ``read`` accepts (anything but False) blanked out."""
    return pattern.sub(lambda m: m.group(0) if read(m) is False else " ", s)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _hour_number(word: str) -> int:
    return int(word) if word.isdigit() else _HOUR_WORDS[word]


def _month_day(read: _Read, month: int, day: int, year: int | None) -> bool:
    try:
        date(year or 2000, month, day)  # 2000: Feb 29 exists
    except ValueError:
        return False
    label = f"{_ABBR[month - 1]} {day}" + (f", {year}" if year else "")
    read.days.append(_Day(label, lambda d: (d.month, d.day) == (month, day) and year in (None, d.year)))
    return True


def _read(s: str, today: date, dentists: Mapping[int, str]) -> _Read:
    read = _Read()
    s = _NOT_POSITION.sub(" ", s)  # "just a second", "last week": neither a position nor a day
    s = _take(_BUT_LAST, s, lambda m: _position(read, -2))

    def past_to(m: re.Match) -> bool:
        minutes, direction, hour, suffix = m.groups()
        to = direction in ("to", "till", "til", "before")
        if minutes.isdigit() and (to or int(minutes) > 59) or (minutes == "half" and to):
            return False  # "10 to 11" is a span, "half to" nothing
        minute, h = int(minutes) if minutes.isdigit() else _MINUTES[minutes], _hour_number(hour)
        if to:
            h, minute = 12 if h == 1 else h - 1, 60 - minute
        return _add_clock(read, _clock(h, minute, suffix or ""))

    s = _take(_PAST_TO, s, past_to)
    s = _WORD_CLOCK.sub(lambda m: f" {_HOUR_WORDS[m.group(1)]}:{_MINUTES[m.group(2)]:02d} ", s)
    s = _WORD_HOUR.sub(lambda m: str(_HOUR_WORDS[m.group(0)]), s)

    def as_shown(m: re.Match) -> bool:
        n, word = int(m.group(2)), m.group(1) or "number"
        if n == 0:
            return False
        read.position = read.position or _Position(n - 1, True, f"{word} {n}")
        return True

    s = _take(_AS_SHOWN, s, as_shown)
    s = _take(_NUMERIC_DATE, s, lambda m: _month_day(read, int(m.group(1)), int(m.group(2)), (
        (2000 + int(m.group(3)) if len(m.group(3)) == 2 else int(m.group(3))) if m.group(3) else None)))
    s = _take(_MONTH_DAY, s, lambda m: _month_day(read, _MONTHS[m.group(1)], int(m.group(2)),
                                                  int(m.group(3)) if m.group(3) else None))
    s = _take(_DAY_MONTH, s, lambda m: _month_day(read, _MONTHS[m.group(2)], int(m.group(1)),
                                                  int(m.group(3)) if m.group(3) else None))

    def relative_day(m: re.Match) -> None:
        word = m.group(1)
        ahead = 2 if word.startswith("day after") else 0 if word in ("today", "tonight", "this ") else 1
        label = {0: "today", 1: "tomorrow", 2: "the day after tomorrow"}[ahead]
        read.days.append(_Day(label, lambda d: d == today + timedelta(days=ahead)))
        if word == "tonight":
            read.part = "evening"

    s = _take(_RELATIVE_DAY, s, relative_day)

    def weekday(m: re.Match) -> None:
        qualifier, target = m.group(1), WEEKDAYS[m.group(2)]
        if qualifier == "next":
            first = today - timedelta(days=today.weekday()) + timedelta(days=7)
        else:
            first = today if qualifier else date.min
        last = first + timedelta(days=6) if qualifier else date.max
        label = f"{qualifier + ' ' if qualifier else ''}{_DAY_NAMES[target]}"
        read.days.append(_Day(label, lambda d: d.weekday() == target and first <= d <= last))

    s = _take(_WEEKDAY_RE, s, weekday)

    def clock(m: re.Match) -> bool:
        g = m.groups()
        if g[0]:
            return _add_clock(read, _clock(12, 0, "pm", "noon"))
        if g[1]:  # "09:15" is the 24-hour clock
            return _add_clock(read, _clock(int(g[1]), int(g[2]), g[3] or ("am" if g[1][0] == "0" else "")))
        if g[4]:
            return _add_clock(read, _clock(int(g[4]), int(g[5] or 0), g[6]))
        return _add_clock(read, _clock(int(g[7] or g[8]), 0))

    s = _take(_CLOCK, s, clock)
    s = _take(_NOUN_ORDINAL, s, lambda m: _position(read, int(m.group(1)) - 1))
    s = _take(_ON_WORD_ORDINAL, s, lambda m: read.day_numbers.append((_ORDINAL_WORDS[m.group(1)] + 1, True)))
    s = _take(_DAY_ORDINAL, s, lambda m: read.day_numbers.append(
        (int(m.group(2)), bool(m.group(1) or m.group(3)))))
    s = _take(_WORD_POSITION, s, lambda m: _position(read, _ORDINAL_WORDS.get(m.group(1), -1)))

    def part(m: re.Match) -> None:
        read.part = read.part or m.group(1)

    s = _take(_PART, s, part)

    def relative(m: re.Match) -> None:
        latest = m.group(1) in ("later", "latest")
        read.relative = read.relative or ("the latest" if latest else "the earliest")

    s = _take(_EARLIER, s, relative)
    for word in _WORD.findall(s):
        named = [i for i, name in dentists.items() if _names(word, name)]
        for dentist_id in named:
            read.dentists.setdefault(dentist_id, short_dentist(dentists[dentist_id]))
        read.stray = read.stray or not named and word not in _FILLER
    read.numbers = [int(n) for n in _NUMBER.findall(s)]
    return read


def _add_clock(read: _Read, clock: _Clock | None) -> bool:
    if clock is None:
        return False  # not a time of day ("25:00"): left for the other readings
    read.clocks.append(clock)
    return True


def _position(read: _Read, index: int) -> None:
    label = {-1: "the last", -2: "the second to last"}.get(index) or f"the {_ordinal(index + 1)}"
    read.position = read.position or _Position(index, False, label)


def _names(word: str, full_name: str) -> bool:
    """Whether ``word`` is one of the dentist's names, or that name with one typo."""
    parts = [p for p in _WORD.findall(full_name.lower()) if p != "dr"]
    return any(word == p or (len(p) >= 4 and len(word) >= 4 and word[0] == p[0] and _one_edit(word, p))
               for p in parts)


def _one_edit(a: str, b: str) -> bool:
    """One letter changed, added, dropped, or two neighbours swapped."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and (a[diff[0]], a[diff[1]]) == (b[diff[1]], b[diff[0]]))
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def _settle(read: _Read, local: list[datetime]) -> None:
    """Decide what the numbers nothing else claimed are: "the 3rd", and a number alone."""
    if read.day_numbers:
        n, surely_date = read.day_numbers[0]
        several_days = len({t.date() for t in local}) > 1
        if (surely_date or read.clocks or read.position or n > min(6, len(local))
                or several_days and any(t.day == n for t in local)):
            if 1 <= n <= 31:
                read.days.append(_Day(f"the {_ordinal(n)}", lambda d: d.day == n))
        else:
            _position(read, n - 1)
    if len(read.numbers) != 1 or read.clocks or read.stray:
        return
    n = read.numbers[0]
    at_hour = _clock(n, 0)
    if at_hour is None:
        return
    if read.days or read.dentists:
        read.clocks.append(at_hour)
    elif any(t.hour in {r.hour for r in at_hour.readings} for t in local):
        if not any(t.time() in at_hour.readings for t in local):  # none at h:00: any offer in that hour
            at_hour = _Clock(n, 0, label=f"around {n}", hour_only=True)
        read.clocks.append(at_hour)
    elif 1 <= n <= len(local) and read.position is None:
        read.position = _Position(n - 1, True, f"number {n}")


def _narrow(read: _Read, offers: Sequence[Slot], local: list[datetime]) -> list[int]:
    """The indexes of the offers that fit everything read."""
    def fits(i: int) -> bool:
        t = local[i]
        return ((not read.days or any(d.fits(t.date()) for d in read.days))
                and (not read.dentists or offers[i].dentist_id in read.dentists)
                and (read.part is None or PARTS[read.part][0] <= t.hour < PARTS[read.part][1]))

    pool = [i for i in range(len(offers)) if fits(i)]
    if read.clocks:
        readings = {r for c in read.clocks for r in c.readings}
        exact = [i for i in pool if local[i].time().replace(second=0, microsecond=0) in readings]
        hours = {r.hour for c in read.clocks if c.hour_only for r in c.readings}
        pool = exact or [i for i in pool if local[i].hour in hours]
    if read.position is not None:
        shown = list(range(len(offers)))
        lists = (shown, pool) if read.position.as_shown else (pool, shown)
        pool = next(([i] for i in (_nth(lst, read.position.index) for lst in lists) if i in pool), [])
    if read.relative and pool:
        edge = (max if read.relative == "the latest" else min)(offers[i].starts_at for i in pool)
        pool = [i for i in pool if offers[i].starts_at == edge]
    return pool


def _nth(indexes: list[int], index: int) -> int | None:
    return indexes[index] if -len(indexes) <= index < len(indexes) else None


def _reading(clock: _Clock, day: date, local: list[datetime], part: str | None) -> time:
    """The one reading of ``clock`` meant on ``day``."""
    options = list(clock.readings)
    if part is not None:
        options = [t for t in options if PARTS[part][0] <= t.hour < PARTS[part][1]] or options
    if len(options) == 1:
        return options[0]
    times = [t.time() for t in local if t.date() == day] or [t.time() for t in local]
    if times:
        lo, hi = _minutes(min(times)) - 60, _minutes(max(times)) + 60
        near = [t for t in options if lo <= _minutes(t) <= hi]
        if len(near) == 1:
            return near[0]
    usual = parse_clock(f"{clock.hour}:{clock.minute:02d}")  # dates.py's convention for a bare hour
    return usual if usual in options else options[0]


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def _asked_at(read: _Read, offers: Sequence[Slot], local: list[datetime], tz: ZoneInfo,
              now: datetime) -> datetime | None:
    clock, today = read.clocks[0], now.astimezone(tz).date()
    days: Iterable[date | None]
    if read.days:  # the first such day from today, and that one only
        ahead = (today + timedelta(days=n) for n in range(SEARCH_DAYS))
        days = [next((d for d in ahead if read.days[0].fits(d)), None)]
    else:
        days = chain(sorted({t.date() for t in local}), (today, today + timedelta(days=1)))
    for day in days:
        if day is None:
            break
        wanted = _reading(clock, day, local, read.part)
        instant = datetime.combine(day, wanted, tzinfo=tz).astimezone(UTC)
        if instant.astimezone(tz).time() == wanted and instant > now:  # not skipped by DST, not past
            return None if any(s.starts_at == instant for s in offers) else instant
    return None


def resolve_pick(text: str, offered: Sequence[Slot], *, tz: ZoneInfo, now: datetime,
                 dentists: Mapping[int, str]) -> Pick:
    """What ``text`` says about the ``offered`` slots (see the module's rules); never raises."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        return Pick()
    offers = list(offered)
    local = [s.starts_at.astimezone(tz) for s in offers]
    read = _read(_normal(text), now.astimezone(tz).date(), dentists)
    _settle(read, local)
    understood = read.understood()
    if not understood:
        return Pick()
    matches = tuple(offers[i] for i in _narrow(read, offers, local))
    asked_at = None
    if not matches and len(read.clocks) == 1 and not read.clocks[0].hour_only and len(read.days) <= 1:
        asked_at = _asked_at(read, offers, local, tz, now)
    return Pick(matches, asked_at, understood)


def names_offer(text: str, offered: Sequence[Slot], *, tz: ZoneInfo, now: datetime,
                dentists: Mapping[int, str]) -> bool:
    """Whether ``text`` names at least one of the offered slots."""
    return bool(resolve_pick(text, offered, tz=tz, now=now, dentists=dentists).matches)
