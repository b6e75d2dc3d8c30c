"""Chairs and hygienists: the resources a visit holds beside its dentist (sql/008).

A slot is offered only if its dentist is free (``bot.availability``) *and* every resource its
service needs has a free member for the visit's held range (its time plus the service's
buffers): a chair when the service needs one and the clinic has chairs, a hygienist on duty when
a hygienist performs the service. ``Resources`` is the clinic's chairs and hygienists, each a
``DentistSchedule`` (a chair has no hours: it is always there); the same pure code answers from
SQL (``load_resources``) and from the action server's cache, which keeps its own copy fresh
from the event stream.

A hygienist's visit still names a dentist (the dentist of record, who examines at the end): that
dentist must be on duty, but is not held by it, so their diary for such a service is read
without their visits and holds (``on_duty``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Iterator, Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .availability import NO_HOLDS, DentistSchedule, Hold, Interval, _overlaps, local_block
from .models import Appointment, Hygienist, HygienistTimeOff, HygienistWorkingHours, Operatory, SlotHold

DENTIST, HYGIENIST = "dentist", "hygienist"  # services.performed_by
# the tables whose availability_changed events concern chairs and hygienists, not a dentist
RESOURCE_TABLES = frozenset({"operatories", "hygienists", "hygienist_working_hours", "hygienist_time_off"})


@dataclass(frozen=True)
class Needs:
    """What a service holds beside its dentist."""

    chair: bool = True
    hygienist: bool = False

    @classmethod
    def of(cls, service) -> "Needs":
        return cls(bool(getattr(service, "needs_operatory", True)),
                   getattr(service, "performed_by", DENTIST) == HYGIENIST)


@dataclass
class Resources:
    """The clinic's active chairs and hygienists. No chairs at all means the clinic has not set
    them up: then chairs limit nothing (a clinic that has them always has at least one)."""

    chairs: dict[int, DentistSchedule] = field(default_factory=dict)
    hygienists: dict[int, DentistSchedule] = field(default_factory=dict)
    # the action server's cache never changes a published Resources (a change publishes a new one),
    # so what fits on it is memoised here: (id(dentist diary), query shape) -> (that diary, rows)
    _fits: dict = field(default_factory=dict, compare=False, repr=False)

    def live_holds(self, needs: Needs, now: datetime, holder: str | None) -> bool:
        """Whether a chair or hygienist ``needs`` asks for has someone else's live hold."""
        return any(h.expires_at > now and (holder is None or h.holder != holder)
                   for _, members in self.pools(needs) for diary in members.values() for h in diary.holds.values())

    def fitting(self, diary: DentistSchedule, key: tuple, rows: tuple, tz: ZoneInfo) -> tuple:
        """``rows`` (one day's free slots of ``diary``, as ``(starts_at, dentist_id, ends_at, slot)``)
        that have a free chair and hygienist, holds aside; memoised on this snapshot. ``key`` is
        (needs, buffers, duration, day)."""
        memo_key = (id(diary), key)
        hit = self._fits.get(memo_key)
        if hit is not None and hit[0] is diary:
            return hit[1]
        needs, buffers = key[0], key[1]
        view = self.view(needs, tz=tz, now=NO_HOLDS, holder=None, buffers=buffers)
        out = tuple(r for r in rows if view.fits(r[0], r[2]))
        self._fits[memo_key] = (diary, out)  # a racing reader computes the same tuple
        return out

    def pools(self, needs: Needs) -> list[tuple[str, Mapping[int, DentistSchedule]]]:
        pools = []
        if needs.chair and self.chairs:
            pools.append(("operatory_id", self.chairs))
        if needs.hygienist:
            pools.append(("hygienist_id", self.hygienists))
        return pools

    def view(self, needs: Needs, *, tz: ZoneInfo, now: datetime | None, holder: str | None,
             buffers: tuple[timedelta, timedelta] = (timedelta(0), timedelta(0)),
             ignore: int | None = None) -> "PoolView":
        """The pools ``needs`` asks for, with each member's blocked intervals merged once (``ignore``:
        a visit being moved, whose own time does not block it)."""
        prepared = []
        for column, members in self.pools(needs):
            rows = []
            for rid, diary in members.items():
                if ignore is not None and ignore in diary.busy:
                    diary = replace(diary, busy={k: v for k, v in diary.busy.items() if k != ignore})
                blocked = diary.blocked(now=now, holder=holder)
                rows.append((rid, diary, blocked, [e for _, e in blocked]))
            prepared.append((column, column == "hygienist_id", rows))
        return PoolView(prepared, tz, buffers)

    def add_busy(self, appt_id: int, chair: int | None, hygienist: int | None, held: Interval) -> None:
        if chair is not None and chair in self.chairs:
            self.chairs[chair].busy[appt_id] = held
        if hygienist is not None and hygienist in self.hygienists:
            self.hygienists[hygienist].busy[appt_id] = held

    def add_hold(self, hold: SlotHold) -> None:
        h = Hold(hold.held_from, hold.held_until, hold.expires_at, hold.holder)
        if hold.operatory_id is not None and hold.operatory_id in self.chairs:
            self.chairs[hold.operatory_id].holds[hold.id] = h
        if hold.hygienist_id is not None and hold.hygienist_id in self.hygienists:
            self.hygienists[hold.hygienist_id].holds[hold.id] = h


@dataclass(frozen=True)
class PoolView:
    """The pools a service needs, each member's blocked intervals merged once; answers "is a chair
    (and a hygienist) free for this visit?" with a bisection per member. A hygienist's working
    blocks of a day are placed in UTC once per view (``_blocks``); their time off is among the
    blocked intervals already, and the held range covers the visit, so one overlap test covers
    both."""

    pools: list
    tz: ZoneInfo
    buffers: tuple[timedelta, timedelta] = (timedelta(0), timedelta(0))
    _days: dict = field(default_factory=dict, compare=False, repr=False)  # (rid, day) -> UTC blocks

    @property
    def limits(self) -> bool:
        return bool(self.pools)

    def _blocks(self, rid: int, diary: DentistSchedule, day) -> list[Interval]:
        key = (rid, day)
        found = self._days.get(key)
        if found is None:
            found = self._days[key] = [local_block(day, s, e, self.tz) for s, e in diary.blocks_for(day)]
        return found

    def _free(self, rows: list, hours: bool, starts_at: datetime, ends_at: datetime, held: Interval,
              day) -> Iterator[int]:
        for rid, diary, blocked, ends in rows:
            if hours and not any(bs <= starts_at and ends_at <= be for bs, be in self._blocks(rid, diary, day)):
                continue
            if not _overlaps(blocked, ends, held[0], held[1]):
                yield rid

    def pick(self, starts_at: datetime, ends_at: datetime, held: Interval) -> dict[str, int] | None:
        """One free member of each pool for a visit at [starts_at, ends_at) holding ``held``
        (the lowest id first), or None when some pool has none free."""
        day = starts_at.astimezone(self.tz).date()
        chosen: dict[str, int] = {}
        for column, hours, rows in self.pools:
            rid = next(self._free(rows, hours, starts_at, ends_at, held, day), None)
            if rid is None:
                return None
            chosen[column] = rid
        return chosen

    def members(self, starts_at: datetime, ends_at: datetime, held: Interval) -> Iterator[dict[str, int]]:
        """Every free combination, lowest ids first (a booking tries the next when a concurrent
        one took the first)."""
        day = starts_at.astimezone(self.tz).date()
        choices = []
        for column, hours, rows in self.pools:
            free = [(column, rid) for rid in self._free(rows, hours, starts_at, ends_at, held, day)]
            if not free:
                return
            choices.append(free)
        for combination in itertools.product(*choices):
            yield dict(combination)

    def held(self, starts_at: datetime, ends_at: datetime) -> Interval:
        return starts_at - self.buffers[0], ends_at + self.buffers[1]

    def fits(self, starts_at: datetime, ends_at: datetime) -> bool:
        """Whether every pool has a free member for a visit at [starts_at, ends_at)."""
        return not self.pools or self.pick(starts_at, ends_at, self.held(starts_at, ends_at)) is not None


def on_duty(schedule: DentistSchedule) -> DentistSchedule:
    """A dentist's diary as a hygienist's visit sees it: their hours and time off, not their visits
    or holds (they supervise, they are not held)."""
    return replace(schedule, busy={}, holds={})


def load_resources(session: Session, start: datetime, end: datetime, *, with_busy: bool = True) -> Resources:
    """The active chairs and hygienists with their hours, time off, live holds and (``with_busy``)
    visits' held ranges around [start, end), read in ``session``'s transaction."""
    res = Resources(
        {i: DentistSchedule(i) for i in session.scalars(
            select(Operatory.id).where(Operatory.active.is_(True)).order_by(Operatory.id))},
        {i: DentistSchedule(i) for i in session.scalars(
            select(Hygienist.id).where(Hygienist.active.is_(True)).order_by(Hygienist.id))})
    start, end = start - timedelta(days=1), end + timedelta(days=1)
    if res.hygienists:
        wanted = list(res.hygienists)
        for wh in session.scalars(select(HygienistWorkingHours).where(
                HygienistWorkingHours.hygienist_id.in_(wanted))):
            res.hygienists[wh.hygienist_id].hours.setdefault(wh.weekday, []).append((wh.start_time, wh.end_time))
        for off in session.scalars(select(HygienistTimeOff).where(
                HygienistTimeOff.hygienist_id.in_(wanted), HygienistTimeOff.ends_at > start,
                HygienistTimeOff.starts_at < end)):
            res.hygienists[off.hygienist_id].time_off[off.id] = (off.starts_at, off.ends_at)
        for sched in res.hygienists.values():
            for blocks in sched.hours.values():
                blocks.sort()
    if not (res.chairs or res.hygienists):
        return res
    if with_busy:
        rows = session.execute(
            select(Appointment.id, Appointment.operatory_id, Appointment.hygienist_id,
                   Appointment.held_from, Appointment.held_until)
            .where(Appointment.status != "cancelled", Appointment.held_until > start, Appointment.held_from < end,
                   (Appointment.operatory_id.is_not(None)) | (Appointment.hygienist_id.is_not(None))))
        for appt_id, chair, hygienist, held_from, held_until in rows:
            res.add_busy(appt_id, chair, hygienist, (held_from, held_until))
    for hold in session.scalars(select(SlotHold).where(
            SlotHold.expires_at > func.now(), SlotHold.held_until > start, SlotHold.held_from < end,
            (SlotHold.operatory_id.is_not(None)) | (SlotHold.hygienist_id.is_not(None)))):
        res.add_hold(hold)
    return res
