"""The action server's in-memory availability cache: SQL once at start, events afterwards.

It answers exactly what ``BookingService.available_slots`` answers from SQL — working
hours or a date's override, minus clinic closures, time off, visits with their buffers
and other people's live slot holds, inside the bookable window (minimum notice, booking
horizon) — from memory (``bot.availability``'s pure functions over cached diaries).

Readers (``free_slots``, ``nearest``) never touch SQL inside the loaded horizon and never
take a lock: they read one immutable ``_State`` (a dict of frozen per-dentist schedules)
through a single attribute. Writers (events, reloads) build a new state under a lock and
swap it in, copying only the dentist they change.

Keeping it fresh:

* ``apply(event)`` takes a sync-service event. Appointment events set or remove one
  ``busy`` interval (with the service's buffers) — cheap, done inline, in id order;
  ids at or below ``last_event_id`` are ignored, so a replay never applies twice.
* ``availability_changed`` asks the background refresher to re-read that dentist's
  hours and time off from SQL (every dentist when ``dentist_id`` is null) — never on
  the caller's path. The refresher runs one reload at a time, in request order.
* A full reload (at start, on ``resync_required``, and every ``refresh_seconds`` to roll
  the horizon forward and pick up dentist/service table edits, which send no events)
  reads everything in one REPEATABLE READ transaction. Events that arrive while it runs
  are applied to the old state *and* recorded; once the new state is in, they are
  replayed on it. Re-applying an event the snapshot already holds is harmless: each
  appointment event carries the whole row, and later events for it follow in order.
* At the first load, ``last_event_id`` is the highest outbox id below which every id is
  visible in the snapshot (a recent gap may be a transaction still in flight), so the
  sync client's ``since`` can never skip an event the snapshot missed.

Horizon: the load covers [now − 1 day, now + cache_days]. A query ending past the
horizon minus one day (the margin keeps a long visit's tail covered) falls back to SQL,
counted in ``health()["sql_fallbacks"]``; with the hourly refresh this only happens for
questions about dates about ``cache_days`` ahead.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import re
import threading
import time as _time
from collections import deque
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from bot.availability import (DentistSchedule, Rules, Slot, buffered, iter_free_slots, load_schedules,
                              merge_intervals, nearest_slots)
from bot.booking import BookingService, Result
from bot.db import DatabaseUnavailable, session_scope
from bot.models import Dentist, Service
from bot.settings import Settings

log = logging.getLogger(__name__)

UTC = timezone.utc
APPOINTMENT_EVENTS = frozenset({"appointment_created", "appointment_updated", "appointment_deleted"})
AVAILABILITY_EVENT = "availability_changed"
NEAREST_WINDOW = timedelta(days=14)  # as BookingService's alternatives
GAP_LOOKBACK = 1000  # outbox ids checked for in-flight gaps at a full load
EDGE_MARGIN = timedelta(days=1)  # the end of the loaded horizon that queries may not reach

__all__ = ["AvailabilityCache", "CacheNotStarted", "DentistInfo", "ServiceInfo", "Slot", "get_cache",
           "set_cache"]


class CacheNotStarted(RuntimeError):
    """``get_cache()`` was called before the action server set the process-wide cache."""


@dataclass(frozen=True)
class ServiceInfo:
    """A service as the bot names it. ``buffer_*`` minutes surround a visit in the diary."""

    id: int
    name: str
    duration_minutes: int
    price_cents: int
    description: str | None = None
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    min_notice_minutes: int | None = None  # None: the clinic's default (settings)

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)

    @property
    def price(self) -> float:
        return self.price_cents / 100


@dataclass(frozen=True)
class DentistInfo:
    id: int
    name: str
    specialty: str | None = None


_FIELDS = tuple(f.name for f in fields(DentistSchedule))
_NO_HOLDS = datetime.max.replace(tzinfo=UTC)  # as "now": every hold has expired


class _FrozenSchedule(DentistSchedule):
    """A schedule that is never mutated once published: time off and visits are merged once;
    only live holds (few, and they expire) are merged in per query."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self._base = merge_intervals(sorted([*self.time_off.values(), *self.busy.values()]))
        # (service shape, local day) -> its free slots as (starts_at, dentist_id, ends_at, slot): tuples
        # sort in C with the same order as Slot's (slower, Python-level) dataclass comparisons
        self._days: dict[tuple, tuple[tuple, ...]] = {}

    def live_holds(self, now: datetime, holder: str | None) -> bool:
        return any(h.expires_at > now and (holder is None or h.holder != holder) for h in self.holds.values())

    def day_slots(self, day: date, duration: timedelta, *, tz, step: timedelta, buffer_before: timedelta,
                  buffer_after: timedelta) -> tuple[tuple, ...]:
        """Every free slot starting on local ``day``, holds aside — computed once per published
        schedule (a change publishes a new one), so repeated questions cost a lookup."""
        key = (duration, step, buffer_before, buffer_after, day)
        found = self._days.get(key)
        if found is None:
            lo = datetime.combine(day, datetime.min.time(), tz).astimezone(UTC)
            hi = datetime.combine(day + timedelta(days=1), datetime.min.time(), tz).astimezone(UTC)
            found = tuple((sl.starts_at, sl.dentist_id, sl.ends_at, sl) for sl in iter_free_slots(
                self, duration, lo, hi, tz=tz, step=step, buffer_before=buffer_before, buffer_after=buffer_after,
                now=_NO_HOLDS, holder=None))
            self._days[key] = found  # a racing writer computes the same tuple
        return found

    def blocked(self, *, now: datetime | None = None, holder: str | None = None):
        holds = [(h.starts_at, h.ends_at) for h in self.holds.values()
                 if (now is None or h.expires_at > now) and (holder is None or h.holder != holder)]
        if not holds:
            return self._base
        return merge_intervals(sorted([*self._base, *holds]))

    def evolve(self, **changes) -> "_FrozenSchedule":
        return _FrozenSchedule(**{**{name: getattr(self, name) for name in _FIELDS}, **changes})


def _freeze(s: DentistSchedule, closures: frozenset[date]) -> _FrozenSchedule:
    kw = {name: getattr(s, name) for name in _FIELDS}
    kw.update(hours={d: sorted(b) for d, b in s.hours.items()}, time_off=dict(s.time_off), busy=dict(s.busy),
              overrides={d: sorted(b) for d, b in s.overrides.items()}, holds=dict(s.holds), closures=closures)
    return _FrozenSchedule(**kw)


@dataclass(frozen=True)
class _State:
    """Everything a reader needs, swapped as one reference."""

    schedules: Mapping[int, _FrozenSchedule]  # active dentists only, by id
    services: Mapping[int, ServiceInfo]
    dentists: Mapping[int, DentistInfo]
    window_start: datetime
    window_end: datetime
    closures: frozenset[date] = frozenset()
    # appointments of dentists not (yet) active: kept so a dentist who appears gets them
    orphans: Mapping[int, Mapping[int, tuple[datetime, datetime]]] = field(default_factory=dict)

    @property
    def usable_end(self) -> datetime:
        return self.window_end - EDGE_MARGIN


_FRACTION = re.compile(r"(\.\d+)")


def parse_ts(value: Any) -> datetime:
    """An ISO-8601 instant as PostgreSQL's JSON writes it (any fraction length, any offset)."""
    if isinstance(value, datetime):
        dt = value
    else:
        s = str(value).strip().replace(" ", "T", 1)
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        s = _FRACTION.sub(lambda m: (m.group(1) + "000000")[:7], s, count=1)
        if re.search(r"[+-]\d\d$", s):  # "+00" → "+00:00"
            s += ":00"
        dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {value!r}")
    return dt.astimezone(UTC)


class AvailabilityCache:
    def __init__(self, engine: Engine, settings: Settings, *, clock: Callable[[], datetime] | None = None,
                 refresh_seconds: float = 3600.0):
        self.engine = engine
        self.settings = settings
        self.tz = settings.tz
        self.rules = Rules.from_settings(settings)
        self.step = self.rules.step
        self.days = settings.cache_days
        self.refresh_seconds = refresh_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._rr_engine = engine.execution_options(isolation_level="REPEATABLE READ")
        self._sql = BookingService(engine, settings, clock=self._clock)  # the fallback and reference

        self._state: _State | None = None
        self._lock = threading.RLock()  # writers only
        self._recording: list[dict] | None = None  # events seen during a full reload
        self._where: dict[int, int] = {}  # appointment id → dentist id whose busy holds it

        self.last_event_id = 0
        self.loaded_at: datetime | None = None
        self.last_event_at: datetime | None = None
        self.event_lag_ms: float | None = None
        self._lags: deque[float] = deque(maxlen=200)
        self.counts = {"events_applied": 0, "events_ignored": 0, "events_failed": 0, "full_loads": 0,
                       "dentist_reloads": 0, "reload_failures": 0, "queries": 0, "sql_fallbacks": 0}

        # background refresher (started by ``start``)
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._pending_all = False
        self._pending: dict[int, None] = {}  # dentist ids, in request order
        self._waiters: list[asyncio.Future] = []
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._event_waiters: list[tuple[int, asyncio.Future]] = []

    # --- loading ---------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._state is not None

    def now(self) -> datetime:
        return self._clock()

    def _read_all(self) -> tuple[_State, int]:
        """One consistent read of everything; returns the state and the safe ``since``."""
        now = self.now()
        start, end = now - timedelta(days=1), now + timedelta(days=self.days)
        with session_scope(self._rr_engine) as s:
            schedules = load_schedules(s, start, end)
            services = {sv.id: _service_info(sv) for sv in s.scalars(select(Service).order_by(Service.id))}
            dentists = {d.id: DentistInfo(d.id, d.full_name, d.specialty)
                        for d in s.scalars(select(Dentist).where(Dentist.active.is_(True)).order_by(Dentist.id))}
            hi, gap = s.execute(text(
                "WITH b AS (SELECT coalesce(max(id), 0) AS hi, coalesce(min(id), 1) AS lo FROM realtime_events) "
                "SELECT b.hi, (SELECT min(g) FROM generate_series(greatest(b.hi - :n, b.lo), b.hi) g "
                "              WHERE NOT EXISTS (SELECT 1 FROM realtime_events e WHERE e.id = g)) FROM b"),
                {"n": GAP_LOOKBACK}).one()
        since = int(hi) if gap is None else int(gap) - 1
        closures = frozenset(next(iter(schedules.values())).closures) if schedules else frozenset()
        state = _State({i: _freeze(sc, closures) for i, sc in sorted(schedules.items())}, services, dentists,
                       start, end, closures)
        return state, since

    def _install(self, state: _State) -> None:
        with self._lock:
            self._state = state
            self._where = {a: d for d, sc in state.schedules.items() for a in sc.busy}
            self.loaded_at = self.now()

    def load(self) -> None:
        """The first load (blocking): the state and ``last_event_id`` from one snapshot."""
        state, since = self._read_all()
        self._install(state)
        with self._lock:
            self.last_event_id = since
        self.counts["full_loads"] += 1
        log.info("availability cache loaded: %d dentists, %d services, %d visits, events up to %d",
                 len(state.schedules), len(state.services), len(self._where), since)

    async def reload(self) -> None:
        """A full reload off the event loop; events arriving meanwhile are replayed on it."""
        with self._lock:
            self._recording = []
        try:
            state, _ = await asyncio.to_thread(self._read_all)
        except BaseException:
            with self._lock:
                self._recording = None
            raise
        with self._lock:
            recorded, self._recording = self._recording, None
            self._install(state)
            replay = [ev for ev in recorded if ev.get("type") in APPOINTMENT_EVENTS]
            for ev in replay:
                self._apply_appointment(ev)
            again = {ev.get("dentist_id") for ev in recorded if ev.get("type") == AVAILABILITY_EVENT}
        self.counts["full_loads"] += 1
        for dentist_id in again:  # refreshed by the snapshot already, unless it changed during it
            self.request_refresh(dentist_id)
        log.info("availability cache reloaded (%d events replayed on the new snapshot)", len(recorded))

    def reload_dentist(self, dentist_id: int) -> None:
        """Re-read one dentist's hours, date overrides, time off, holds and active flag
        (blocking). Busy stays the event-maintained one; a dentist new to the cache also gets
        its visits from SQL. Clinic closures are clinic-wide: a full reload reads them."""
        state = self._state
        if state is None:
            return
        with session_scope(self.engine) as s:
            fresh = load_schedules(s, state.window_start, state.window_end, [dentist_id]).get(dentist_id)
            row = s.get(Dentist, dentist_id)
            info = DentistInfo(row.id, row.full_name, row.specialty) if row is not None and row.active else None
        with self._lock:
            state = self._state
            schedules = dict(state.schedules)
            dentists = dict(state.dentists)
            orphans = {k: v for k, v in state.orphans.items() if k != dentist_id}
            old = schedules.pop(dentist_id, None)
            dentists.pop(dentist_id, None)
            if fresh is not None and info is not None:
                if old is not None:
                    busy = dict(old.busy)
                else:
                    busy = {**fresh.busy, **state.orphans.get(dentist_id, {})}
                fresh.busy = busy
                schedules[dentist_id] = _freeze(fresh, state.closures)
                dentists[dentist_id] = info
                for a in busy:
                    self._where[a] = dentist_id
            elif old is not None:
                orphans[dentist_id] = dict(old.busy)
            else:
                orphans[dentist_id] = dict(state.orphans.get(dentist_id, {}))
            self._state = replace(state, schedules=dict(sorted(schedules.items())),
                                  dentists=dict(sorted(dentists.items())), orphans=orphans)
        self.counts["dentist_reloads"] += 1

    # --- events ----------------------------------------------------------------------------

    def set_position(self, last_event_id: int) -> None:
        """Where the stream continues (the sync service's ``lastId`` on ``resync_required``);
        it may go down as well as up (a recreated database restarts the ids)."""
        with self._lock:
            self.last_event_id = int(last_event_id)
        self._wake_waiters()

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Apply one sync-service event; False when it was a duplicate or could not be used.
        Never raises for a bad event (it is logged and counted)."""
        try:
            event_id = int(event["id"])
        except (KeyError, TypeError, ValueError):
            self.counts["events_failed"] += 1
            log.warning("event without a usable id ignored: %.200r", event)
            return False
        try:
            with self._lock:
                if self._state is None and self._recording is None:
                    return False  # nothing loaded yet: the first load's ``since`` will cover it
                if event_id <= self.last_event_id:
                    self.counts["events_ignored"] += 1
                    return False
                self.last_event_id = event_id
                if self._recording is not None:
                    self._recording.append(dict(event))
                kind = event.get("type")
                if kind in APPOINTMENT_EVENTS:
                    self._apply_appointment(event)
                elif kind == AVAILABILITY_EVENT:
                    self.request_refresh(event.get("dentist_id"))
                else:
                    log.warning("unknown event type %r (id %s) ignored", kind, event_id)
            self.counts["events_applied"] += 1
            self._note_lag(event.get("at"))
            self._wake_waiters()
            return True
        except Exception:
            self.counts["events_failed"] += 1
            log.exception("event %s could not be applied; skipped", event_id)
            return False

    async def wait_for_event(self, event_id: int, timeout: float) -> None:
        """Wait until the event ``event_id`` (or a later one) has been applied."""
        if self.last_event_id >= event_id:
            return
        fut = asyncio.get_running_loop().create_future()
        self._event_waiters.append((event_id, fut))
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        finally:
            self._event_waiters = [(i, f) for i, f in self._event_waiters if f is not fut]

    def _wake_waiters(self) -> None:
        for event_id, fut in self._event_waiters:
            if event_id <= self.last_event_id and not fut.done():
                fut.get_loop().call_soon_threadsafe(lambda f=fut: f.done() or f.set_result(None))

    def _note_lag(self, at: Any) -> None:
        if at is None:
            return
        try:
            at_dt = parse_ts(at)
        except (TypeError, ValueError):
            return
        self.last_event_at = at_dt
        self.event_lag_ms = max(0.0, (datetime.now(UTC) - at_dt).total_seconds() * 1000)
        self._lags.append(self.event_lag_ms)

    def _apply_appointment(self, event: Mapping[str, Any]) -> None:
        """Set or remove one visit in ``busy`` (caller holds the lock)."""
        row = event["appointment"]
        appt_id = int(row["id"])
        state = self._state
        if state is None:
            return
        schedules = dict(state.schedules)
        orphans = dict(state.orphans)

        def without(dentist_id: int | None) -> None:
            if dentist_id is None:
                return
            if dentist_id in schedules and appt_id in schedules[dentist_id].busy:
                busy = dict(schedules[dentist_id].busy)
                del busy[appt_id]
                schedules[dentist_id] = schedules[dentist_id].evolve(busy=busy)
            elif dentist_id in orphans and appt_id in orphans[dentist_id]:
                orphans[dentist_id] = {k: v for k, v in orphans[dentist_id].items() if k != appt_id}

        previous = event.get("previous") or {}
        for d in {self._where.pop(appt_id, None), previous.get("dentist_id"), row.get("dentist_id")}:
            without(None if d is None else int(d))
        if event["type"] != "appointment_deleted" and row.get("status") != "cancelled":
            dentist_id = int(row["dentist_id"])
            service = state.services.get(int(row["service_id"]))
            if service is None and row.get("service_id") is not None:
                self.request_refresh(None)  # a service newer than the cache: reload everything
            interval = buffered(parse_ts(row["starts_at"]), parse_ts(row["ends_at"]), service)
            if dentist_id in schedules:
                busy = dict(schedules[dentist_id].busy)
                busy[appt_id] = interval
                schedules[dentist_id] = schedules[dentist_id].evolve(busy=busy)
            else:
                orphans[dentist_id] = {**orphans.get(dentist_id, {}), appt_id: interval}
            self._where[appt_id] = dentist_id
        self._state = replace(state, schedules=schedules, orphans=orphans)

    # --- the background refresher -----------------------------------------------------------

    def request_refresh(self, dentist_id: int | None) -> None:
        """Ask for a dentist's (None: everything's) reload from SQL, off the caller's path.
        Without a running refresher (scripts, unit tests) the reload happens inline."""
        if self._task is None or self._task.done():
            if dentist_id is None:
                state, _ = self._read_all()
                self._install(state)
                self.counts["full_loads"] += 1
            else:
                self.reload_dentist(int(dentist_id))
            return
        if dentist_id is None:
            self._pending_all = True
            self._pending.clear()
        elif not self._pending_all:
            self._pending[int(dentist_id)] = None
        self._signal()

    def _signal(self) -> None:
        assert self._loop is not None and self._wake is not None and self._idle is not None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._idle.clear()
            self._wake.set()
        else:  # called from another thread
            self._loop.call_soon_threadsafe(self._idle.clear)
            self._loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        """Start the refresher (the cache must be loaded, or it loads now)."""
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._wake, self._idle = asyncio.Event(), asyncio.Event()
        self._idle.set()
        if self._state is None:
            await asyncio.to_thread(self.load)
        self._task = asyncio.create_task(self._refresher(), name="availability-cache-refresher")

    async def stop(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            if self._wake is not None:
                self._wake.set()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        for w in self._waiters:
            if not w.done():
                w.cancel()

    async def full_reload(self) -> None:
        """Queue a full reload and wait until it is done (``resync_required``)."""
        if self._task is None or self._task.done():
            await self.reload()
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self.request_refresh(None)
        await fut

    async def settled(self, timeout: float | None = None) -> None:
        """Wait until no reload is queued or running (tests, shutdown)."""
        if self._idle is not None:
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def _refresher(self) -> None:
        assert self._wake is not None and self._idle is not None
        next_full = _time.monotonic() + self.refresh_seconds
        backoff = 0.5
        # ``_closing`` as well as cancel(): Python 3.10's wait_for can swallow a cancellation
        # that lands just as the awaited event fires
        while not self._closing:
            if not (self._pending_all or self._pending):
                self._idle.set()
                try:
                    await asyncio.wait_for(self._wake.wait(), max(0.0, next_full - _time.monotonic()))
                except asyncio.TimeoutError:
                    self._pending_all = True
            self._wake.clear()
            if self._closing:
                break
            try:
                if self._pending_all:
                    self._pending_all = False
                    self._pending.clear()
                    waiters, self._waiters = self._waiters, []
                    try:
                        await self.reload()
                    except BaseException as exc:
                        for w in waiters:
                            if not w.done():
                                w.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                        raise
                    for w in waiters:
                        if not w.done():
                            w.set_result(None)
                    next_full = _time.monotonic() + self.refresh_seconds
                elif self._pending:
                    dentist_id = next(iter(self._pending))
                    del self._pending[dentist_id]
                    await asyncio.to_thread(self.reload_dentist, dentist_id)
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception:
                self.counts["reload_failures"] += 1
                log.exception("availability reload failed; retrying everything in %.1fs", backoff)
                self._pending_all = True  # whatever was lost, a full reload covers it
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    # --- reads (the hot path) ---------------------------------------------------------------

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
        earliest, latest = self.rules.window(now, self.tz, service)
        start, end = max(start, earliest), min(end, latest)
        if end <= start:
            return []
        if end > state.usable_end:
            return self._sql_free_slots(service_id, start, end, dentist_id, limit, holder)
        return self._fast_free_slots(self._pick(state.schedules, dentist_id), service, start, end, now=now,
                                     holder=holder, limit=limit)

    def _fast_free_slots(self, schedules: list, service: ServiceInfo, start: datetime, end: datetime, *,
                         now: datetime, holder: str | None, limit: int | None = None) -> list[Slot]:
        """``bot.availability.free_slots`` over the per-day memo of each frozen schedule; a dentist
        with someone's live hold is computed directly (holds expire with time)."""
        kw = self._kwargs(service, now, holder)
        first, last = start.astimezone(self.tz).date(), end.astimezone(self.tz).date()
        shape = dict(tz=self.tz, step=self.step, buffer_before=kw["buffer_before"], buffer_after=kw["buffer_after"])
        rows: list[tuple] = []
        for sched in schedules:
            if not isinstance(sched, _FrozenSchedule) or sched.live_holds(now, holder):
                rows.extend((sl.starts_at, sl.dentist_id, sl.ends_at, sl)
                            for sl in iter_free_slots(sched, service.duration, start, end, **kw))
                continue
            day = first
            while day <= last:
                slots = sched.day_slots(day, service.duration, **shape)
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
        order. With a dentist: theirs, or — when they have none — any dentist's (the same rule
        as BookingService's ``slot_taken`` alternatives)."""
        self._check(around)
        self.counts["queries"] += 1
        state = self._state
        if state is None:
            return self._sql_nearest(service_id, around, dentist_id, count, holder)
        service = state.services.get(int(service_id))
        if service is None:
            return []
        plan = self._nearest_plan(service, around)
        if plan[2] > state.usable_end:
            return self._sql_nearest(service_id, around, dentist_id, count, holder)
        return self._nearest_in(state.schedules, service, plan, dentist_id, count, holder)

    def _nearest_plan(self, service: ServiceInfo, around: datetime):
        """(around clamped into the bookable window, lo, hi, earliest, latest, now)."""
        now = self.now()
        earliest, latest = self.rules.window(now, self.tz, service)
        around = min(max(around, earliest), latest)
        lo, hi = max(earliest, around - NEAREST_WINDOW), min(latest, around + NEAREST_WINDOW)
        return around, lo, hi, earliest, latest, now

    def _nearest_in(self, schedules: Mapping[int, DentistSchedule], service: ServiceInfo, plan, dentist_id,
                    count: int, holder: str | None) -> list[Slot]:
        around, lo, hi, earliest, latest, now = plan
        kwargs = dict(not_before=earliest, not_after=latest, window=NEAREST_WINDOW, count=count,
                      **self._kwargs(service, now, holder))

        def pick(group: list) -> list[Slot]:
            if not all(isinstance(g, _FrozenSchedule) for g in group):  # the SQL fallback's schedules
                return nearest_slots(group, service.duration, around, **kwargs)
            # as bot.availability.nearest_slots, over the memoised slots
            slots = self._fast_free_slots(group, service, max(earliest, around - NEAREST_WINDOW),
                                          min(around + NEAREST_WINDOW, latest), now=now, holder=holder)
            best = heapq.nsmallest(count, slots, key=lambda s: (abs(s.starts_at - around), s.starts_at,
                                                               s.dentist_id))
            return sorted(best)

        if dentist_id is not None:
            found = pick(self._pick(schedules, dentist_id))
            if found:
                return found
        return pick(list(schedules.values()))

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
        return {i: DentistSchedule(**{name: getattr(sc, name) for name in _FIELDS}) for i, sc in
                state.schedules.items()}

    # --- the SQL fallback (outside the horizon, or before the first load) --------------------

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
            service = _service_info(row)
            plan = self._nearest_plan(service, around)
            schedules = load_schedules(s, plan[1], plan[2])
        return self._nearest_in(schedules, service, plan, dentist_id, count, holder)

    # --- health -----------------------------------------------------------------------------

    def health(self) -> dict:
        state = self._state
        now = self.now()
        lags = sorted(self._lags)
        return {
            "loaded": state is not None,
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "age_seconds": round((now - self.loaded_at).total_seconds(), 3) if self.loaded_at else None,
            "last_event_id": self.last_event_id,
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
            "event_lag_ms": None if self.event_lag_ms is None else round(self.event_lag_ms, 1),
            "event_lag_p95_ms": round(lags[int(0.95 * (len(lags) - 1))], 1) if lags else None,
            "dentists": len(state.schedules) if state is not None else 0,
            "services": len(state.services) if state is not None else 0,
            "visits": len(self._where),
            "slots_horizon_days": (round(max(0.0, (state.usable_end - now).total_seconds() / 86400), 2)
                                   if state is not None else 0),
            "refreshing": bool(self._pending_all or self._pending),
            **self.counts,
        }


def _service_info(sv: Service) -> ServiceInfo:
    return ServiceInfo(sv.id, sv.name, sv.duration_minutes, sv.price_cents, sv.description,
                       sv.buffer_before_minutes, sv.buffer_after_minutes, sv.min_notice_minutes)


# --- the process-wide instance ---------------------------------------------------------------

_cache: AvailabilityCache | None = None


def set_cache(cache: AvailabilityCache | None) -> None:
    """Set (or clear) the process-wide cache: the action server at start; tests with their own."""
    global _cache
    _cache = cache


def get_cache() -> AvailabilityCache:
    """The action server's cache. Raises ``CacheNotStarted`` outside a started server."""
    if _cache is None:
        raise CacheNotStarted("the availability cache is not started (python -m actions starts it)")
    return _cache
