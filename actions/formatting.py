"""How times, prices and slots read in a chat (pure; clinic time zone given by the caller)."""

from __future__ import annotations

from datetime import datetime
from itertools import groupby
from zoneinfo import ZoneInfo

from bot.availability import Slot

SLOT_SEPARATOR = "|"


def when_label(instant: datetime, tz: ZoneInfo, *, now: datetime | None = None) -> str:
    """``Tue Dec 1, 2:30 PM``; ``today, 2:30 PM`` / ``tomorrow, 9:00 AM`` when close."""
    local = instant.astimezone(tz)
    clock = local.strftime("%I:%M %p").lstrip("0")
    if now is not None:
        days = (local.date() - now.astimezone(tz).date()).days
        if days == 0:
            return f"today, {clock}"
        if days == 1:
            return f"tomorrow, {clock}"
    return f"{local.strftime('%a %b')} {local.day}, {clock}"


def price_label(cents: int) -> str:
    dollars, rest = divmod(int(cents), 100)
    return f"${dollars:,}" if rest == 0 else f"${dollars:,}.{rest:02d}"


def encode_choice(slot: Slot) -> str:
    """The value a slot button carries: ``<ISO start>|<dentist id>``."""
    return f"{slot.starts_at.isoformat()}{SLOT_SEPARATOR}{slot.dentist_id}"


def decode_choice(value: object) -> tuple[datetime, int] | None:
    """``(starts_at, dentist_id)`` from a button value; None for anything else."""
    if not isinstance(value, str) or value.count(SLOT_SEPARATOR) != 1 or len(value) > 80:
        return None
    start, dentist = value.split(SLOT_SEPARATOR)
    try:
        instant = datetime.fromisoformat(start.strip())
        dentist_id = int(dentist.strip())
    except ValueError:
        return None
    if instant.tzinfo is None or dentist_id <= 0:
        return None
    return instant, dentist_id


def slot_button(slot: Slot, tz: ZoneInfo, dentist_names: dict[int, str], *, intent: str = "inform",
                now: datetime | None = None, show_dentist: bool = True, extra: str = "") -> dict:
    """A button choosing ``slot``; ``extra`` adds more entities to the payload (already JSON-quoted)."""
    title = when_label(slot.starts_at, tz, now=now)
    if show_dentist and slot.dentist_id in dentist_names:
        title += f" · {short_dentist(dentist_names[slot.dentist_id])}"
    payload = f'/{intent}{{"slot_choice": "{encode_choice(slot)}"{extra}}}'
    return {"title": title, "payload": payload}


def short_dentist(full_name: str) -> str:
    """``Dr. Maria Alvarez`` -> ``Dr. Alvarez``."""
    parts = full_name.split()
    if len(parts) >= 2 and parts[0].rstrip(".").lower() == "dr":
        return f"Dr. {parts[-1]}"
    return full_name


def performer(visit, *, short: bool = False) -> str:
    """Who the patient will see at a booked visit: its hygienist for a hygienist's service
    ("Maya Lee, hygienist"), else its dentist (``short``: "Dr. Alvarez")."""
    if getattr(visit, "hygienist_name", None):
        return f"{visit.hygienist_name}, hygienist"
    return short_dentist(visit.dentist_name) if short else visit.dentist_name


def spread(slots: list[Slot], count: int = 6, *, tz: ZoneInfo | None = None) -> list[Slot]:
    """At most ``count`` slots with distinct start times, spread evenly over the list, in time order.

    Given the clinic's ``tz``, spread over days first: one slot on each of as many days as there
    are (evenly chosen), a second on a day only once every day with a free slot has one, and so
    on; a day's share is spread over its hours, and a day's only slot is earlier on the first
    days and later on the last ones, so the offer shows mornings and afternoons too."""
    seen: set[datetime] = set()
    unique = []
    for slot in sorted(slots):
        if slot.starts_at not in seen:
            seen.add(slot.starts_at)
            unique.append(slot)
    if len(unique) <= count or tz is None:
        return _evenly(unique, count)
    days = [list(day) for _, day in groupby(unique, key=lambda s: s.starts_at.astimezone(tz).date())]
    shares = [0] * len(days)
    while sum(shares) < count:
        open_days = [i for i, day in enumerate(days) if shares[i] < len(day)]
        for i in _evenly(open_days, count - sum(shares)):
            shares[i] += 1
    last = max(len(days) - 1, 1)
    return [slot for i, (day, share) in enumerate(zip(days, shares))
            for slot in _evenly(day, share, i / last)]


def _evenly(items: list, count: int, phase: float = 0.0) -> list:
    """``count`` of ``items`` evenly apart, first and last included; one alone is at ``phase`` (0..1)."""
    if len(items) <= count:
        return list(items)
    if count <= 1:
        return [items[round(phase * (len(items) - 1))]] if count == 1 else []
    step = (len(items) - 1) / (count - 1)
    return [items[round(i * step)] for i in range(count)]
