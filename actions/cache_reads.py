"""The availability cache's reads (the hot path): free slots and the nearest alternatives.

A mixin of ``AvailabilityCache``: it reads ``self._state`` (one immutable ``State``) through a
single attribute, never takes a lock and never runs SQL inside the loaded horizon. Past the
horizon, or before the first load, the same questions go to SQL (``sql_fallbacks``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Mapping

from bot.availability import (DentistSchedule, NearestSearch, Slot, closest, iter_free_slots, load_schedules,
                              same_dentist_first)
from bot.booking import Result
from bot.db import DatabaseUnavailable, session_scope
from bot.models import Service
from bot.resources import Needs, Resources, load_resources, on_duty

from .cache_state import SCHEDULE_FIELDS, FrozenSchedule
from .catalogue import Catalogue, DentistInfo, ServiceInfo, service_info

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from bot.availability import Rules
    from bot.booking import BookingService
    from sqlalchemy.engine import Engine

    from .cache_state import State


class SlotQueries:
    _state: "State | None"
    rules: "Rules"
    engine: "Engine"
    _sql: "BookingService"
    counts: dict[str, int]
    tz: "ZoneInfo"
    step: timedelta

    def now(self) -> datetime:
        raise NotImplementedError

    @staticmethod
    def _check(*values: datetime) -> None:
        for v in values:
            if not isinstance(v, datetime) or v.tzinfo is None or v.utcoffset() is None:
                raise ValueError(f"an aware datetime is needed, got {v!r}")

    def _kwargs(self, service: ServiceInfo, now: datetime, holder: str | None) -> dict:
        return {"tz": self.tz, "step": self.step, "now": now, "holder": holder,
                "buffer_before": timedelta(minutes=service.buffer_before_minutes),
                "buffer_after": timedelta(minutes=service.buffer_after_minutes)}

    @staticmethod
    def _pick(schedules: Mapping[int, DentistSchedule], dentist_id: int | None) -> list[DentistSchedule]:
        if dentist_id is None:
            return list(schedules.values())
        one = schedules.get(int(dentist_id))
        return [one] if one is not None else []

    def free_slots(self, service_id: int, start: datetime, end: datetime, dentist_id: int | None = None,
                   limit: int | None = None, *, holder: str | None = None) -> list[Slot]:
        """Free slots of a service starting in [start, end) ∩ the bookable window (now + the
        minimum notice .. the booking horizon), in time order; one dentist or any. ``holder``'s
        own slot hold does not hide its slot. Unknown service or dentist → []. Inside the
        loaded horizon no SQL runs; past it (or before the first load) SQL answers."""
        self._check(start, end)
        self.counts["queries"] += 1
        state = self._state
        if state is None:
            return self._sql_free_slots(service_id, start, end, dentist_id, limit, holder)
        service = state.services.get(int(service_id))
        if service is None:
            return []
        now = self.now()
        bookable = self.rules.clamp(now, self.tz, service, start, end)
        if bookable is None:
            return []
        start, end = bookable
        if end > state.usable_end:
            return self._sql_free_slots(service_id, start, end, dentist_id, limit, holder)
        return self._fast_free_slots(self._pick(state.schedules, dentist_id), service, start, end, now=now,
                                     holder=holder, limit=limit, resources=state.resources)

    def _fast_free_slots(self, schedules: list, service: ServiceInfo, start: datetime, end: datetime, *,
                         now: datetime, holder: str | None, resources: Resources,
                         limit: int | None = None) -> list[Slot]:
        """``bot.availability.free_slots`` over the per-day memo of each frozen schedule; a dentist
        with someone's live hold is computed directly (holds expire with time). The slots without a
        free chair (or hygienist, ``bot.resources``) are dropped: memoised per day on the chairs'
        snapshot too, unless one of them has someone's live hold."""
        kw = self._kwargs(service, now, holder)
        needs = Needs.of(service)
        if needs.hygienist:
            schedules = [sc.on_duty() if isinstance(sc, FrozenSchedule) else on_duty(sc) for sc in schedules]
        buffers = (kw["buffer_before"], kw["buffer_after"])
        limits = bool(resources.pools(needs))
        held_now = limits and resources.live_holds(needs, now, holder)
        pools = None  # the chairs as they are now, holds included: built only when the memo cannot serve

        def fits(r: tuple) -> bool:
            nonlocal pools
            if pools is None:
                pools = resources.view(needs, tz=self.tz, now=now, holder=holder, buffers=buffers)
            return pools.fits(r[0], r[2])
        first, last = start.astimezone(self.tz).date(), end.astimezone(self.tz).date()
        shape = dict(tz=self.tz, step=self.step, buffer_before=kw["buffer_before"], buffer_after=kw["buffer_after"])
        rows: list[tuple] = []
        for sched in schedules:
            if not isinstance(sched, FrozenSchedule) or sched.live_holds(now, holder):
                found = ((sl.starts_at, sl.dentist_id, sl.ends_at, sl)
                         for sl in iter_free_slots(sched, service.duration, start, end, **kw))
                rows.extend(r for r in found if not limits or fits(r))
                continue
            day = first
            while day <= last:
                slots = sched.day_slots(day, service.duration, **shape)
                if held_now:
                    slots = tuple(r for r in slots if fits(r))
                elif limits:
                    slots = resources.fitting(sched, (needs, buffers, service.duration, day), slots, self.tz)
                if first < day < last:  # a whole day inside [start, end)
                    rows.extend(slots)
                else:
                    rows.extend(r for r in slots if start <= r[0] < end)
                day += timedelta(days=1)
        rows.sort()  # (starts_at, dentist_id, ends_at) is unique: the Slot itself is never compared
        if limit is not None:
            rows = rows[:max(1, limit)]  # as bot.availability.free_slots: it checks the limit after adding
        return [r[3] for r in rows]

    def nearest(self, service_id: int, around: datetime, dentist_id: int | None = None,
                count: int = 3, *, holder: str | None = None) -> list[Slot]:
        """The ``count`` bookable free slots closest to ``around`` (within 14 days of it), in time
        order. With a dentist: theirs, or — when they have none — any dentist's (the policy
        BookingService's ``slot_taken`` alternatives follow too: ``same_dentist_first``)."""
        self._check(around)
        self.counts["queries"] += 1
        state = self._state
        if state is None:
            return self._sql_nearest(service_id, around, dentist_id, count, holder)
        service = state.services.get(int(service_id))
        if service is None:
            return []
        search = self.rules.nearest_search(self.now(), self.tz, service, around)
        if search.hi > state.usable_end:
            return self._sql_nearest(service_id, around, dentist_id, count, holder)
        return self._nearest_in(state.schedules, service, search, dentist_id, count, holder, state.resources)

    def _nearest_in(self, schedules: Mapping[int, DentistSchedule], service: ServiceInfo, search: NearestSearch,
                    dentist_id: int | None, count: int, holder: str | None, resources: Resources) -> list[Slot]:
        def nearest(one: int | None) -> list[Slot]:
            group = self._pick(schedules, one)
            # as bot.availability.nearest_slots, over the memoised slots (the SQL fallback's schedules
            # are computed directly)
            return closest(self._fast_free_slots(group, service, search.lo, search.hi, now=search.now,
                                                 holder=holder, resources=resources), search.around, count)

        return same_dentist_first(dentist_id, nearest)

    def catalogue(self) -> Catalogue | None:
        """The services and active dentists as of the last event applied; None before the first load."""
        state = self._state
        return state.catalogue if state is not None else None

    def services(self) -> list[ServiceInfo]:
        state = self._state
        return list(state.services.values()) if state is not None else []

    def dentists(self) -> list[DentistInfo]:
        """Active dentists."""
        state = self._state
        return list(state.dentists.values()) if state is not None else []

    def schedules(self) -> dict[int, DentistSchedule]:
        """A copy of every active dentist's diary as the cache holds it (tests, debugging)."""
        state = self._state
        if state is None:
            return {}
        return {i: DentistSchedule(**{name: getattr(sc, name) for name in SCHEDULE_FIELDS}) for i, sc in
                state.schedules.items()}

    # the SQL fallback (outside the horizon, or before the first load)

    def _sql_free_slots(self, service_id, start, end, dentist_id, limit, holder) -> list[Slot]:
        self.counts["sql_fallbacks"] += 1
        found = self._sql.available_slots(int(service_id), start, end, dentist_id=dentist_id, limit=limit,
                                          holder=holder)
        if isinstance(found, Result):  # the booking service's guard: the database is unreachable
            raise DatabaseUnavailable(found.message)
        return found

    def _sql_nearest(self, service_id, around, dentist_id, count, holder) -> list[Slot]:
        self.counts["sql_fallbacks"] += 1
        with session_scope(self.engine) as s:
            row = s.get(Service, int(service_id))
            if row is None:
                return []
            service = service_info(row)
            search = self.rules.nearest_search(self.now(), self.tz, service, around)
            schedules = load_schedules(s, search.lo, search.hi)
            resources = load_resources(s, search.lo, search.hi)
        return self._nearest_in(schedules, service, search, dentist_id, count, holder, resources)
