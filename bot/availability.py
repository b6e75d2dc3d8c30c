"""The availability engine: free slots = working hours (or that date's override) − clinic
closures − time off − booked visits and their buffers − other people's live holds −
what is too soon (minimum notice) or too far (booking horizon).

Pure functions over a ``DentistSchedule`` (what one dentist's diary holds), so the
same code answers from SQL (``load_schedules``) and from the action server's
in-memory cache. Working hours are wall-clock times in the clinic's zone; every
instant is an aware UTC datetime. A day's blocks are placed on that day's own
offset, so a DST change moves the UTC times, never the local ones.
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable, Iterable, Iterator, Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Appointment, ClinicClosure, DateOverride, Dentist, Service, SlotHold, TimeOff, WorkingHours

UTC = timezone.utc
Interval = tuple[datetime, datetime]
NO_HOLDS = datetime.max.replace(tzinfo=UTC)  # as "now": every hold has expired, so none blocks


@dataclass(frozen=True, order=True)
class Slot:
    starts_at: datetime
    dentist_id: int
    ends_at: datetime

    def as_dict(self) -> dict:
        return {"dentist_id": self.dentist_id, "starts_at": self.starts_at.isoformat(),
                "ends_at": self.ends_at.isoformat()}


@dataclass(frozen=True)
class Hold:
    starts_at: datetime
    ends_at: datetime
    expires_at: datetime
    holder: str


@dataclass(frozen=True)
class Rules:
    """Minimum notice, booking horizon and slot step, from the clinic's settings."""

    min_notice: timedelta = timedelta(hours=2)
    horizon_days: int = 90
    step: timedelta = timedelta(minutes=15)
    hold: timedelta = timedelta(minutes=5)

    @classmethod
    def from_settings(cls, settings) -> "Rules":
        return cls(timedelta(minutes=settings.min_notice_minutes), settings.horizon_days,
                   timedelta(minutes=settings.slot_step_minutes), timedelta(minutes=settings.hold_minutes))

    def notice_for(self, service=None) -> timedelta:
        minutes = getattr(service, "min_notice_minutes", None)
        return self.min_notice if minutes is None else timedelta(minutes=minutes)

    def window(self, now: datetime, tz: ZoneInfo, service=None) -> Interval:
        """[earliest, latest): from now + notice to the end of the horizon's last local day."""
        last_day = now.astimezone(tz).date() + timedelta(days=self.horizon_days)
        end = datetime.combine(last_day + timedelta(days=1), time(0), tz).astimezone(UTC)
        return now + self.notice_for(service), end

    def clamp(self, now: datetime, tz: ZoneInfo, service, start: datetime, end: datetime) -> Interval | None:
        """[start, end) cut to the bookable window; None when nothing of it is bookable."""
        earliest, latest = self.window(now, tz, service)
        start, end = max(start, earliest), min(end, latest)
        return (start, end) if start < end else None

    def nearest_search(self, now: datetime, tz: ZoneInfo, service, around: datetime) -> "NearestSearch":
        """Where to look for the slots nearest ``around``: ``around`` moved into the bookable
        window, and the part of that window within ``NEAREST_WINDOW`` of it."""
        earliest, latest = self.window(now, tz, service)
        around = min(max(around, earliest), latest)
        return NearestSearch(around, max(earliest, around - NEAREST_WINDOW), min(latest, around + NEAREST_WINDOW),
                             earliest, latest, now)


NEAREST_WINDOW = timedelta(days=14)  # how far from the asked time alternatives are looked for


@dataclass(frozen=True)
class NearestSearch:
    around: datetime
    lo: datetime
    hi: datetime
    earliest: datetime
    latest: datetime
    now: datetime


def closest(slots: Iterable["Slot"], around: datetime, count: int) -> list["Slot"]:
    """The ``count`` slots closest to ``around`` (earlier first on a tie), in time order."""
    best = heapq.nsmallest(count, slots, key=lambda s: (abs(s.starts_at - around), s.starts_at, s.dentist_id))
    return sorted(best)


def same_dentist_first(dentist_id: int | None, nearest: Callable[[int | None], list["Slot"]]) -> list["Slot"]:
    """The alternatives policy shared by the booking service and the action server's cache:
    the chosen dentist's nearest slots, or anyone's (``nearest(None)``) when they have none."""
    if dentist_id is not None:
        found = nearest(dentist_id)
        if found:
            return found
    return nearest(None)


@dataclass
class DentistSchedule:
    """One dentist's diary. ``busy``, ``time_off`` and ``holds`` are keyed by row id so a
    cache can apply single-row changes; busy intervals already include their service's
    buffers. ``overrides`` replace a date's weekly hours (an empty list: not working);
    ``closures`` are the clinic's closed dates."""

    dentist_id: int
    hours: dict[int, list[tuple[time, time]]] = field(default_factory=dict)  # ISO weekday -> blocks
    time_off: dict[int, Interval] = field(default_factory=dict)
    busy: dict[int, Interval] = field(default_factory=dict)
    overrides: dict[date, list[tuple[time, time]]] = field(default_factory=dict)
    closures: set[date] = field(default_factory=set)
    holds: dict[int, Hold] = field(default_factory=dict)

    def blocks_for(self, day: date) -> list[tuple[time, time]]:
        if day in self.closures:
            return []
        if day in self.overrides:
            return self.overrides[day]
        return self.hours.get(day.isoweekday(), [])

    def blocked(self, *, now: datetime | None = None, holder: str | None = None) -> list[Interval]:
        """Every interval that refuses a visit, sorted and merged. Holds count while live
        (``expires_at`` after ``now``) unless they belong to ``holder``."""
        holds = [(h.starts_at, h.ends_at) for h in self.holds.values()
                 if (now is None or h.expires_at > now) and (holder is None or h.holder != holder)]
        return merge_intervals(sorted([*self.time_off.values(), *self.busy.values(), *holds]))


def merge_intervals(intervals: list[Interval]) -> list[Interval]:
    """Sorted intervals with every overlapping or touching run joined into one."""
    merged: list[Interval] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _overlaps(blocked: list[Interval], ends: list[datetime], start: datetime, end: datetime) -> bool:
    i = bisect.bisect_right(ends, start)  # first blocked interval ending after `start`
    return i < len(blocked) and blocked[i][0] < end


def local_block(day: date, start: time, end: time, tz: ZoneInfo) -> Interval:
    """A working block of ``day`` as UTC instants, each end on its own offset."""
    return (datetime.combine(day, start, tzinfo=tz).astimezone(UTC),
            datetime.combine(day, end, tzinfo=tz).astimezone(UTC))


def within_hours(schedule: DentistSchedule, starts_at: datetime, ends_at: datetime, tz: ZoneInfo) -> bool:
    """Whether [starts_at, ends_at) lies inside one working block and outside all time off."""
    day = starts_at.astimezone(tz).date()
    inside = any(bs <= starts_at and ends_at <= be
                 for bs, be in (local_block(day, s, e, tz) for s, e in schedule.blocks_for(day)))
    if not inside:
        return False
    return not any(s < ends_at and starts_at < e for s, e in schedule.time_off.values())


def iter_free_slots(
    schedule: DentistSchedule,
    duration: timedelta,
    start: datetime,
    end: datetime,
    *,
    tz: ZoneInfo,
    step: timedelta = timedelta(minutes=15),
    buffer_before: timedelta = timedelta(0),
    buffer_after: timedelta = timedelta(0),
    now: datetime | None = None,
    holder: str | None = None,
    fits: Callable[[datetime, datetime], bool] | None = None,
) -> Iterator[Slot]:
    """Free slots of one dentist starting in [start, end), in time order.

    Slots start at a block's start and every ``step`` after it; a slot (with the
    service's buffers around it) must fit in the block and touch nothing blocked.
    ``start`` should already be the earliest bookable instant (``Rules.window``): nothing
    before it is offered. ``now`` decides which holds are still live; ``holder``'s own
    holds do not block it. ``fits(starts_at, ends_at)``, when given, must also accept the slot
    (``bot.resources``: a chair and, for a hygienist's service, a hygienist are free).
    """
    if duration <= timedelta(0) or step <= timedelta(0) or end <= start:
        return
    blocked = schedule.blocked(now=now, holder=holder)
    ends = [e for _, e in blocked]
    day = start.astimezone(tz).date() - timedelta(days=1)
    last_day = end.astimezone(tz).date()
    while day <= last_day:
        for block_start, block_end in sorted(local_block(day, s, e, tz)
                                             for s, e in schedule.blocks_for(day)):
            t = block_start
            if t < start:  # jump to the first step at or after `start`
                t += -(-(start - t) // step) * step
            while t < end and t + duration <= block_end:
                if not _overlaps(blocked, ends, t - buffer_before, t + duration + buffer_after) and (
                        fits is None or fits(t, t + duration)):
                    yield Slot(t, schedule.dentist_id, t + duration)
                t += step
        day += timedelta(days=1)


def free_slots(
    schedules: Iterable[DentistSchedule],
    duration: timedelta,
    start: datetime,
    end: datetime,
    *,
    tz: ZoneInfo,
    limit: int | None = None,
    **kwargs,
) -> list[Slot]:
    """Free slots of one or several dentists ("any dentist"), merged in time order."""
    merged = heapq.merge(*(iter_free_slots(s, duration, start, end, tz=tz, **kwargs) for s in schedules))
    out: list[Slot] = []
    for slot in merged:
        out.append(slot)
        if limit is not None and len(out) >= limit:
            break
    return out


def nearest_slots(
    schedules: Iterable[DentistSchedule],
    duration: timedelta,
    around: datetime,
    *,
    tz: ZoneInfo,
    not_before: datetime,
    not_after: datetime | None = None,
    window: timedelta = NEAREST_WINDOW,
    count: int = 3,
    **kwargs,
) -> list[Slot]:
    """The ``count`` free slots closest to ``around`` (before or after) within
    [not_before, not_after), in time order."""
    lo = max(not_before, around - window)
    hi = around + window if not_after is None else min(around + window, not_after)
    return closest(free_slots(schedules, duration, lo, hi, tz=tz, **kwargs), around, count)


# --- loading from PostgreSQL -------------------------------------------------------------------

def buffered(starts_at: datetime, ends_at: datetime, service: Service | None) -> Interval:
    if service is None:
        return starts_at, ends_at
    return (starts_at - timedelta(minutes=service.buffer_before_minutes),
            ends_at + timedelta(minutes=service.buffer_after_minutes))


def load_schedules(
    session: Session, start: datetime, end: datetime, dentist_ids: Iterable[int] | None = None,
) -> dict[int, DentistSchedule]:
    """Every (or the named) active dentist's diary for [start, end), read in one transaction."""
    ids_filter = list(dentist_ids) if dentist_ids is not None else None
    q = select(Dentist.id).where(Dentist.active.is_(True))
    if ids_filter is not None:
        q = q.where(Dentist.id.in_(ids_filter))
    schedules = {i: DentistSchedule(i) for i in session.scalars(q.order_by(Dentist.id))}
    if not schedules:
        return schedules
    wanted = list(schedules)
    for wh in session.scalars(select(WorkingHours).where(WorkingHours.dentist_id.in_(wanted))):
        schedules[wh.dentist_id].hours.setdefault(wh.weekday, []).append((wh.start_time, wh.end_time))
    # A slot starting just before ``end`` runs past it: read a day around the window.
    start, end = start - timedelta(days=1), end + timedelta(days=1)
    for off in session.scalars(select(TimeOff).where(
            TimeOff.dentist_id.in_(wanted), TimeOff.ends_at > start, TimeOff.starts_at < end)):
        schedules[off.dentist_id].time_off[off.id] = (off.starts_at, off.ends_at)
    rows = session.execute(
        select(Appointment.id, Appointment.dentist_id, Appointment.starts_at, Appointment.ends_at, Service)
        .join(Service, Service.id == Appointment.service_id)
        .where(Appointment.dentist_id.in_(wanted), Appointment.status != "cancelled",
               Appointment.hygienist_id.is_(None),  # a hygienist's visit does not hold its dentist (sql/008)
               Appointment.ends_at > start, Appointment.starts_at < end)
    )
    for appt_id, dentist_id, s, e, service in rows:
        schedules[dentist_id].busy[appt_id] = buffered(s, e, service)
    first_day, last_day = start.date(), end.date()
    for ov in session.scalars(select(DateOverride).where(
            DateOverride.dentist_id.in_(wanted), DateOverride.on_date.between(first_day, last_day))):
        blocks = schedules[ov.dentist_id].overrides.setdefault(ov.on_date, [])
        if ov.start_time is not None and ov.end_time is not None:
            blocks.append((ov.start_time, ov.end_time))
    closures = set(session.scalars(select(ClinicClosure.on_date).where(
        ClinicClosure.on_date.between(first_day, last_day))))
    for hold in session.scalars(select(SlotHold).where(
            SlotHold.dentist_id.in_(wanted), SlotHold.expires_at > func.now(), SlotHold.hygienist_id.is_(None),
            SlotHold.ends_at > start, SlotHold.starts_at < end)):
        schedules[hold.dentist_id].holds[hold.id] = Hold(hold.starts_at, hold.ends_at, hold.expires_at, hold.holder)
    for sched in schedules.values():
        sched.closures = closures
        for blocks in (*sched.hours.values(), *sched.overrides.values()):
            blocks.sort()
    return schedules


def service_buffers(service: Service) -> Mapping[str, timedelta]:
    return {"buffer_before": timedelta(minutes=service.buffer_before_minutes),
            "buffer_after": timedelta(minutes=service.buffer_after_minutes)}
