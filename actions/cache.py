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
  visible in the snapshot (``bot.events.safe_mark``: a recent gap may be a transaction
  still in flight), so the sync client's ``since`` can never skip an event the snapshot
  missed.

Horizon: the load covers [now − 1 day, now + cache_days]. A query ending past the
horizon minus one day (the margin keeps a long visit's tail covered) falls back to SQL,
counted in ``health()["sql_fallbacks"]``; with the hourly refresh this only happens for
questions about dates about ``cache_days`` ahead.

Modules: this one loads and applies events (named in ``bot.events``); ``cache_state`` holds
the immutable snapshot types, ``cache_reads`` the queries, ``cache_refresher`` the background
reloads; the snapshot's catalogue (``actions.catalogue``) is the one the gateway answers with.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from sqlalchemy.engine import Engine

from bot.availability import Rules, Slot, buffered, load_schedules
from bot.booking import BookingService
from bot.db import session_scope
from bot.events import APPOINTMENT_DELETED, APPOINTMENT_EVENTS, AVAILABILITY_CHANGED, safe_mark
from bot.models import Dentist
from bot.resources import RESOURCE_TABLES, Resources, load_resources
from bot.settings import Settings

from .cache_reads import SlotQueries
from .cache_refresher import Refresher
from .cache_state import UTC, State, freeze, freeze_resources, parse_ts
from .catalogue import Catalogue, dentist_info, load_catalogue

log = logging.getLogger(__name__)

# The refresher queues dentist ids; this one stands for the chairs and hygienists (ids start at 1).
RESOURCES = -1


__all__ = ["AvailabilityCache", "CacheNotStarted", "Slot", "get_cache", "parse_ts", "set_cache"]


class CacheNotStarted(RuntimeError):
    """``get_cache()`` was called before the action server set the process-wide cache."""


class AvailabilityCache(SlotQueries):
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

        self._state: State | None = None
        self._lock = threading.RLock()  # writers only
        self._recording: list[dict] | None = None  # events seen during a full reload
        self._where: dict[int, int] = {}  # appointment id → dentist id whose busy holds it

        self.last_event_id = 0
        self.loaded_at: datetime | None = None
        self.last_event_at: datetime | None = None
        self.event_lag_ms: float | None = None
        self._lags: deque[float] = deque(maxlen=200)
        self.counts = {"events_applied": 0, "events_ignored": 0, "events_failed": 0, "full_loads": 0,
                       "dentist_reloads": 0, "resource_reloads": 0, "reload_failures": 0, "queries": 0,
                       "sql_fallbacks": 0}

        # late-bound: a test may replace a method on the instance
        self._refresher = Refresher(lambda: self.reload(), lambda key: self.reload_resources() if key == RESOURCES
                                    else self.reload_dentist(key), self._reload_failed, refresh_seconds)
        self._event_waiters: list[tuple[int, asyncio.Future]] = []

    # --- loading ---------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._state is not None

    def now(self) -> datetime:
        return self._clock()

    def _read_all(self) -> tuple[State, int]:
        """One consistent read of everything; returns the state and the safe ``since``."""
        now = self.now()
        start, end = now - timedelta(days=1), now + timedelta(days=self.days)
        with session_scope(self._rr_engine) as s:
            schedules = load_schedules(s, start, end)
            resources = load_resources(s, start, end)
            catalogue = load_catalogue(s)
            since = safe_mark(s)  # in the snapshot's own transaction (bot.events)
        closures = frozenset(next(iter(schedules.values())).closures) if schedules else frozenset()
        state = State({i: freeze(sc, closures) for i, sc in sorted(schedules.items())}, catalogue,
                      start, end, closures, resources=freeze_resources(resources, closures))
        return state, since

    def _install(self, state: State) -> None:
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
            again = {ev.get("dentist_id") for ev in recorded if ev.get("type") == AVAILABILITY_CHANGED}
            if any(_about_resources(ev) for ev in recorded if ev.get("type") == AVAILABILITY_CHANGED):
                again.add(RESOURCES)
        self.counts["full_loads"] += 1
        for dentist_id in again:  # refreshed by the snapshot already, unless it changed during it
            self.request_refresh(dentist_id)
        log.info("availability cache reloaded (%d events replayed on the new snapshot)", len(recorded))

    def reload_resources(self) -> None:
        """Re-read the chairs and hygienists: which are active, the hygienists' hours and time off,
        and their live holds (blocking). Their visits stay the event-maintained ones; a chair or
        hygienist new to the cache gets its visits from SQL."""
        state = self._state
        if state is None:
            return
        with session_scope(self.engine) as s:
            fresh = load_resources(s, state.window_start, state.window_end)
        with self._lock:
            state = self._state
            old = state.resources
            for mine, theirs in ((fresh.chairs, old.chairs), (fresh.hygienists, old.hygienists)):
                for rid, diary in mine.items():
                    if rid in theirs:
                        diary.busy = dict(theirs[rid].busy)
            self._state = replace(state, resources=freeze_resources(fresh, state.closures))
        self.counts["resource_reloads"] += 1

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
            info = dentist_info(row) if row is not None else None
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
                schedules[dentist_id] = freeze(fresh, state.closures)
                dentists[dentist_id] = info
                for a in busy:
                    self._where[a] = dentist_id
            elif old is not None:
                orphans[dentist_id] = dict(old.busy)
            else:
                orphans[dentist_id] = dict(state.orphans.get(dentist_id, {}))
            catalogue = Catalogue(state.services, dict(sorted(dentists.items())))
            self._state = replace(state, schedules=dict(sorted(schedules.items())), catalogue=catalogue,
                                  orphans=orphans)
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
                elif kind == AVAILABILITY_CHANGED:
                    if _about_resources(event):
                        self.request_refresh(RESOURCES)
                    if event.get("dentist_id") is not None or event.get("source") not in RESOURCE_TABLES:
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
        live = event["type"] != APPOINTMENT_DELETED and row.get("status") != "cancelled"
        resources = _place_visit(state.resources, appt_id, row, live)
        if live:
            dentist_id = int(row["dentist_id"])
            service = state.services.get(int(row["service_id"]))
            if service is None and row.get("service_id") is not None:
                self.request_refresh(None)  # a service newer than the cache: reload everything
            interval = buffered(parse_ts(row["starts_at"]), parse_ts(row["ends_at"]), service)
            if row.get("hygienist_id") is None:  # a hygienist's visit does not hold its dentist (sql/008)
                if dentist_id in schedules:
                    busy = dict(schedules[dentist_id].busy)
                    busy[appt_id] = interval
                    schedules[dentist_id] = schedules[dentist_id].evolve(busy=busy)
                else:
                    orphans[dentist_id] = {**orphans.get(dentist_id, {}), appt_id: interval}
            self._where[appt_id] = dentist_id
        self._state = replace(state, schedules=schedules, orphans=orphans, resources=resources)

    # --- the background refresher (actions/cache_refresher.py) --------------------------------

    def _reload_failed(self) -> None:
        self.counts["reload_failures"] += 1

    def request_refresh(self, dentist_id: int | None) -> None:
        """Ask for a dentist's (None: everything's) reload from SQL, off the caller's path.
        Without a running refresher (scripts, unit tests) the reload happens inline."""
        if self._refresher.running:
            self._refresher.request(dentist_id)
        elif dentist_id is None:
            state, _ = self._read_all()
            self._install(state)
            self.counts["full_loads"] += 1
        elif dentist_id == RESOURCES:
            self.reload_resources()
        else:
            self.reload_dentist(int(dentist_id))

    async def start(self) -> None:
        """Start the refresher (the cache must be loaded, or it loads now)."""
        if self._state is None:
            await asyncio.to_thread(self.load)
        self._refresher.start()

    async def stop(self) -> None:
        await self._refresher.stop()

    async def full_reload(self) -> None:
        """A full reload, queued behind the one running if any; returns when it is done
        (``resync_required``)."""
        if self._refresher.running:
            await self._refresher.full_reload()
        else:
            await self.reload()

    async def settled(self, timeout: float | None = None) -> None:
        """Wait until no reload is queued or running (tests, shutdown)."""
        await self._refresher.settled(timeout)

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
            "refreshing": self._refresher.busy,
            **self.counts,
        }


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


def _about_resources(event: Mapping[str, Any]) -> bool:
    """Whether an ``availability_changed`` concerns a chair or a hygienist (sql/008)."""
    return (event.get("operatory_id") is not None or event.get("hygienist_id") is not None
            or event.get("source") in RESOURCE_TABLES)


def _place_visit(res: Resources, appt_id: int, row: Mapping[str, Any], live: bool) -> Resources:
    """``res`` with the visit ``appt_id`` out of every chair and hygienist and, when ``live``, in
    its own for its held range (the event's row carries it)."""
    chair, hygienist = row.get("operatory_id"), row.get("hygienist_id")
    held = None
    if live and (chair is not None or hygienist is not None):
        held = (parse_ts(row.get("held_from") or row["starts_at"]), parse_ts(row.get("held_until") or row["ends_at"]))

    def moved(pool: Mapping[int, Any], mine: Any) -> dict:
        out = dict(pool)
        for rid, diary in pool.items():
            here = appt_id in diary.busy
            wanted = held is not None and mine is not None and int(mine) == rid
            if here or wanted:
                busy = {k: v for k, v in diary.busy.items() if k != appt_id}
                if wanted:
                    busy[appt_id] = held
                out[rid] = diary.evolve(busy=busy)
        return out

    if not any(appt_id in d.busy for d in (*res.chairs.values(), *res.hygienists.values())) and held is None:
        return res
    return Resources(moved(res.chairs, chair), moved(res.hygienists, hygienist))
