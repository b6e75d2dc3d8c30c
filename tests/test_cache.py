"""The availability cache against the SQL answer (``BookingService.available_slots``), with the
real triggers' events fed straight from ``realtime_events`` (the sync service's body format)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from actions.cache import AvailabilityCache, CacheNotStarted, get_cache, parse_ts, set_cache
from bot.booking import BookingService, Outcome
from bot.db import session_scope
from bot.models import Service
from bot.seed import seed
from bot.tokens import Identity

UTC = timezone.utc
ADMIN = Identity(role="admin", sub="admin")
WINDOW = timedelta(days=14)

# the body the sync service emits for an outbox row
EVENTS_SQL = ("SELECT (jsonb_build_object('id', id, 'type', type, 'at', created_at) || payload) "
              "FROM realtime_events WHERE id > %s ORDER BY id")


def outbox_events(db_url: str, after: int = 0) -> list[dict]:
    with psycopg.connect(db_url) as conn:
        return [row[0] for row in conn.execute(EVENTS_SQL, (after,))]


def pump(cache: AvailabilityCache, db_url: str) -> int:
    """Feed the cache every outbox event after the ones it has seen; return how many applied."""
    return sum(cache.apply(ev) for ev in outbox_events(db_url, cache.last_event_id))


def sql(db_url: str, statement: str, *params) -> list[tuple]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def service_ids(engine) -> list[int]:
    with session_scope(engine) as s:
        return [sv.id for sv in s.query(Service).order_by(Service.id)]


def assert_matches_sql(cache: AvailabilityCache, booking: BookingService, *, start: datetime | None = None,
                       window: timedelta = WINDOW) -> int:
    """Every service × (any dentist, each dentist): the cache's slots equal SQL's. Returns how many
    slots were compared (so a caller can tell the comparison was not vacuous)."""
    start = start or booking.now()
    dentists = [None] + sorted({d for d in cache.schedules()} | {d.id for d in cache.dentists()})
    compared = 0
    for service_id in service_ids(booking.engine):
        for dentist_id in dentists:
            want = booking.available_slots(service_id, start, start + window, dentist_id=dentist_id)
            got = cache.free_slots(service_id, start, start + window, dentist_id=dentist_id)
            assert got == want, (service_id, dentist_id, sorted(set(got) ^ set(want))[:5])
            compared += len(want)
    return compared


def assert_equals_fresh_load(cache: AvailabilityCache, engine, settings, clock) -> None:
    """The cache's diaries equal a fresh load's (busy compared inside the fresh load's window)."""
    fresh = AvailabilityCache(engine, settings, clock=clock)
    fresh.load()
    mine, theirs = cache.schedules(), fresh.schedules()
    assert mine.keys() == theirs.keys()
    lo, hi = clock() - timedelta(days=1), clock() + timedelta(days=settings.cache_days)
    for d in theirs:
        for name in ("hours", "time_off", "overrides", "closures", "holds"):
            assert getattr(mine[d], name) == getattr(theirs[d], name), (d, name)
        inside = {a: iv for a, iv in mine[d].busy.items() if iv[1] > lo and iv[0] < hi}
        assert inside == theirs[d].busy, d
    assert cache.services() == fresh.services() and cache.dentists() == fresh.dentists()


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def clinic(engine, settings):
    seed(engine, settings)
    return engine


@pytest.fixture
def booking(clinic, settings, now) -> BookingService:
    return BookingService(clinic, settings, clock=lambda: now)


@pytest.fixture
def cache(clinic, settings, now) -> AvailabilityCache:
    c = AvailabilityCache(clinic, settings, clock=lambda: now)
    c.load()
    return c


def first_slot(booking: BookingService, service_id: int, dentist_id: int | None = None, skip: int = 0):
    slots = booking.available_slots(service_id, booking.now(), booking.now() + WINDOW, dentist_id=dentist_id)
    return slots[skip]


def free_for_visit_patient(booking: BookingService, db_url: str, appt: int, service_id: int,
                           dentist_id: int | None = None, skip: int = 0):
    """The ``skip``-th free slot that the patient of visit ``appt`` can move it to: one patient is
    never in two chairs at once, so a slot that overlaps another of their visits is left out (the
    seed's visits move with the clock, so which slots those are depends on the day)."""
    slots = booking.available_slots(service_id, booking.now(), booking.now() + WINDOW, dentist_id=dentist_id)
    (patient,), = sql(db_url, "SELECT patient_id FROM appointments WHERE id = %s", appt)
    theirs = sql(db_url, "SELECT starts_at, ends_at FROM appointments WHERE patient_id = %s AND id <> %s "
                 "AND status <> 'cancelled'", patient, appt)
    movable = [s for s in slots if not any(s.starts_at < end and start < s.ends_at for start, end in theirs)]
    return movable[skip]


def move_in_sql(db_url: str, appt: int, slot) -> None:
    """Move visit ``appt`` to ``slot`` as a direct SQL writer would: the dentist, the time and a
    chair free then (the visit's own chair may be taken at the new time; the database refuses a
    double-booked chair)."""
    sql(db_url, "UPDATE appointments a SET starts_at = %s, ends_at = %s, dentist_id = %s, operatory_id = ("
                " SELECT o.id FROM operatories o, services sv WHERE sv.id = a.service_id AND o.active"
                " AND NOT EXISTS (SELECT 1 FROM appointments b WHERE b.operatory_id = o.id AND b.id <> a.id"
                "  AND b.status <> 'cancelled' AND tstzrange(b.held_from, b.held_until) && tstzrange("
                "  %s - make_interval(mins => sv.buffer_before_minutes),"
                "  %s + make_interval(mins => sv.buffer_after_minutes)))"
                " ORDER BY o.id LIMIT 1) WHERE a.id = %s",
        slot.starts_at, slot.ends_at, slot.dentist_id, slot.starts_at, slot.ends_at, appt)


def book(booking: BookingService, db_url: str, service_id: int, slot) -> int:
    """Book ``slot`` for the first patient free then (one patient is never in two chairs at once,
    and the seed's visits move with the clock)."""
    for (patient,) in sql(db_url, "SELECT id FROM patients ORDER BY id"):
        result = booking.book(ADMIN, patient_id=patient, dentist_id=slot.dentist_id, service_id=service_id,
                              starts_at=slot.starts_at)
        if result.outcome is not Outcome.PATIENT_BUSY:
            break
    assert result.outcome is Outcome.BOOKED, result
    return result.appointment.id


# --- load ----------------------------------------------------------------------------------------

def test_load_matches_sql(cache, booking):
    assert assert_matches_sql(cache, booking) > 100
    svc, start = service_ids(cache.engine)[0], booking.now()
    for limit in (1, 5, 1000):
        for dentist_id in (None, 1):
            assert cache.free_slots(svc, start, start + WINDOW, dentist_id, limit=limit) == \
                booking.available_slots(svc, start, start + WINDOW, dentist_id=dentist_id, limit=limit)
    assert {d.full_name for d in cache.dentists()} == {"Dr. Maria Alvarez", "Dr. James Chen", "Dr. Priya Patel"}
    cleaning = next(s for s in cache.services() if s.name == "Cleaning")
    assert (cleaning.duration_minutes, cleaning.price_cents) == (45, 14000)
    # the seed's nine visits less its two cleanings, which hold a hygienist and a chair, not a dentist
    assert cache.health()["visits"] == 7 and cache.health()["dentists"] == 3


def test_load_sets_last_event_id_to_the_outbox_head(cache, db_url):
    head = sql(db_url, "SELECT max(id) FROM realtime_events")[0][0]
    assert head and cache.last_event_id == head
    assert pump(cache, db_url) == 0


def test_never_offers_the_past_nor_inside_the_minimum_notice(clinic, settings):
    # a clock before a Monday morning block of Dr. Alvarez (9:00-12:30, 13:30-17:00)
    monday = datetime(2031, 3, 3, 8, 7, tzinfo=settings.tz)
    c = AvailabilityCache(clinic, settings, clock=lambda: monday.astimezone(UTC))
    c.load()
    assert settings.min_notice_minutes == 120
    cleaning = next(s.id for s in c.services() if s.name == "Cleaning")
    slots = c.free_slots(cleaning, monday - timedelta(days=3), monday + timedelta(days=1))
    assert slots and all(s.starts_at >= monday + timedelta(hours=2) for s in slots)
    assert slots[0].starts_at == monday.replace(hour=10, minute=15)  # the first step after now + 2 h
    assert c.free_slots(cleaning, monday - timedelta(days=3), monday + timedelta(hours=1)) == []


def test_unknown_service_or_dentist_is_empty_and_naive_times_refused(cache, now):
    assert cache.free_slots(10_000, now, now + WINDOW) == []
    assert cache.free_slots(service_ids(cache.engine)[0], now, now + WINDOW, dentist_id=10_000) == []
    with pytest.raises(ValueError):
        cache.free_slots(1, now.replace(tzinfo=None), now + WINDOW)


def test_beyond_the_horizon_falls_back_to_sql(clinic, settings, booking, now):
    cache = AvailabilityCache(clinic, settings.model_copy(update={"cache_days": 30}), clock=lambda: now)
    cache.load()
    far = now + timedelta(days=cache.days + 5)  # past the cache, inside the booking horizon
    svc = service_ids(cache.engine)[0]
    before = cache.counts["sql_fallbacks"]
    assert cache.free_slots(svc, far, far + timedelta(days=3)) == booking.available_slots(
        svc, far, far + timedelta(days=3))
    assert cache.counts["sql_fallbacks"] == before + 1
    cache.free_slots(svc, now, now + WINDOW)
    assert cache.counts["sql_fallbacks"] == before + 1


def test_hot_path_runs_no_sql(cache, now):
    """free_slots and nearest inside the horizon never reach the database."""
    statements: list[str] = []
    from sqlalchemy import event

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(cache.engine, "before_cursor_execute", record)
    try:
        svc = service_ids(cache.engine)[0]
        statements.clear()
        assert cache.free_slots(svc, now, now + WINDOW)
        assert cache.nearest(svc, now + timedelta(days=3))
    finally:
        event.remove(cache.engine, "before_cursor_execute", record)
    assert statements == []


# --- events, one kind at a time --------------------------------------------------------------------

def test_booking_made_elsewhere(cache, booking, db_url):
    svc = service_ids(cache.engine)[3]  # Extraction: 15 minutes of buffer after
    slot = first_slot(booking, svc)
    assert slot in cache.free_slots(svc, booking.now(), booking.now() + WINDOW)
    appt = book(booking, db_url, svc, slot)
    assert slot in cache.free_slots(svc, booking.now(), booking.now() + WINDOW)  # not yet told
    assert pump(cache, db_url) == 1
    assert slot not in cache.free_slots(svc, booking.now(), booking.now() + WINDOW)
    busy = cache.schedules()[slot.dentist_id].busy[appt]
    assert busy == (slot.starts_at, slot.ends_at + timedelta(minutes=15))  # the buffer counts
    assert_matches_sql(cache, booking)


def test_update_moves_the_visit(cache, booking, db_url):
    svc = service_ids(cache.engine)[2]  # a filling: a dentist's visit (a cleaning holds a hygienist)
    slot = first_slot(booking, svc)
    appt = book(booking, db_url, svc, slot)
    later = free_for_visit_patient(booking, db_url, appt, svc, skip=40)
    pump(cache, db_url)
    move_in_sql(db_url, appt, later)
    assert pump(cache, db_url) == 1
    assert slot in cache.free_slots(svc, booking.now(), booking.now() + WINDOW)
    assert later not in cache.free_slots(svc, booking.now(), booking.now() + WINDOW)
    assert_matches_sql(cache, booking)


def test_visit_moved_to_another_dentist(cache, booking, db_url):
    svc = service_ids(cache.engine)[1]
    alvarez, chen = sorted(cache.schedules())[:2]
    slot = first_slot(booking, svc, dentist_id=alvarez)
    appt = book(booking, db_url, svc, slot)
    pump(cache, db_url)
    target = free_for_visit_patient(booking, db_url, appt, svc, dentist_id=chen)
    move_in_sql(db_url, appt, target)
    pump(cache, db_url)
    assert appt not in cache.schedules()[alvarez].busy and appt in cache.schedules()[chen].busy
    assert_matches_sql(cache, booking)


@pytest.mark.parametrize("how", ["cancel", "delete", "complete"])
def test_cancel_delete_and_status_changes(cache, booking, db_url, how):
    svc = service_ids(cache.engine)[2]  # a filling: it holds its dentist
    slot = first_slot(booking, svc)
    appt = book(booking, db_url, svc, slot)
    pump(cache, db_url)
    assert slot not in cache.free_slots(svc, booking.now(), booking.now() + WINDOW)
    if how == "cancel":
        assert booking.cancel(ADMIN, appt).outcome is Outcome.CANCELLED
    elif how == "delete":
        sql(db_url, "DELETE FROM appointments WHERE id = %s", appt)
    else:  # a completed visit still holds its time (as in SQL)
        sql(db_url, "UPDATE appointments SET status = 'completed' WHERE id = %s", appt)
    assert pump(cache, db_url) == 1
    assert (slot in cache.free_slots(svc, booking.now(), booking.now() + WINDOW)) is (how != "complete")
    assert_matches_sql(cache, booking)


def test_time_off_insert_and_delete(cache, booking, db_url):
    svc = service_ids(cache.engine)[1]
    slot = first_slot(booking, svc)
    day_start = slot.starts_at - timedelta(hours=1)
    (off_id,) = sql(db_url, "INSERT INTO time_off (dentist_id, starts_at, ends_at, reason) "
                            "VALUES (%s, %s, %s, 'dentist ill') RETURNING id",
                    slot.dentist_id, day_start, day_start + timedelta(hours=6))[0]
    assert pump(cache, db_url) == 1  # no refresher running: the dentist is re-read inline
    assert slot not in cache.free_slots(svc, booking.now(), booking.now() + WINDOW)
    assert_matches_sql(cache, booking)
    sql(db_url, "DELETE FROM time_off WHERE id = %s", off_id)
    pump(cache, db_url)
    assert slot in cache.free_slots(svc, booking.now(), booking.now() + WINDOW)
    assert_matches_sql(cache, booking)


def test_working_hours_change(cache, booking, db_url):
    svc = service_ids(cache.engine)[1]
    patel = max(cache.schedules())
    sql(db_url, "UPDATE working_hours SET end_time = '12:00' WHERE dentist_id = %s AND start_time = '11:00'", patel)
    sql(db_url, "INSERT INTO working_hours (dentist_id, weekday, start_time, end_time) VALUES (%s, 1, '07:00', '09:00')",
        patel)
    assert pump(cache, db_url) >= 3
    assert cache.schedules()[patel].hours[1][0][0].hour == 7
    assert_matches_sql(cache, booking)


def test_clinic_wide_change_reloads_everything(cache, booking, db_url):
    """A dentist deactivated (no trigger on dentists) is picked up by a clinic-wide event."""
    chen = sorted(cache.schedules())[1]
    sql(db_url, "UPDATE dentists SET active = false WHERE id = %s", chen)
    assert cache.apply({"id": cache.last_event_id + 1, "type": "availability_changed", "dentist_id": None,
                        "at": datetime.now(UTC).isoformat()})
    assert chen not in cache.schedules() and chen not in {d.id for d in cache.dentists()}
    assert_matches_sql(cache, booking)


def test_new_dentist_appears_with_their_hours(cache, booking, db_url):
    (new,) = sql(db_url, "INSERT INTO dentists (full_name) VALUES ('Dr. New') RETURNING id")[0]
    sql(db_url, "INSERT INTO working_hours (dentist_id, weekday, start_time, end_time) "
                "SELECT %s, d, '09:00', '17:00' FROM generate_series(1, 5) d", new)
    pump(cache, db_url)
    assert new in cache.schedules() and "Dr. New" in {d.full_name for d in cache.dentists()}
    assert_matches_sql(cache, booking)


def test_the_gateway_names_the_catalogue_the_events_keep(cache, settings, db_url, now):
    """One catalogue: the gateway answers with the cache's, so a service or a dentist edited a
    moment ago is named as it now is (no copy of its own to expire), and without a cache the
    gateway reads the same shape from SQL."""
    from actions.gateway import Gateway

    gw = Gateway(cache.engine, settings, clock=lambda: now)
    from_sql = gw.catalogue()
    set_cache(cache)
    try:
        assert gw.catalogue() is cache.catalogue() and gw.catalogue() == from_sql
        sql(db_url, "UPDATE services SET name = 'Deep cleaning', duration_minutes = 50 WHERE name = 'Cleaning'")
        sql(db_url, "UPDATE dentists SET full_name = 'Dr. James Chen-Okafor' WHERE full_name = 'Dr. James Chen'")
        pump(cache, db_url)
        catalogue = gw.catalogue()
        assert catalogue.service("deep cleaning").duration_minutes == 50 and catalogue.service("cleaning") is None
        assert catalogue.dentist("chen-okafor").full_name == "Dr. James Chen-Okafor"
    finally:
        set_cache(None)
    assert gw.catalogue() == catalogue  # SQL again, the same answer


def test_events_apply_exactly_once(cache, booking, db_url):
    svc = service_ids(cache.engine)[0]
    appt = book(booking, db_url, svc, first_slot(booking, svc))
    events = outbox_events(db_url, cache.last_event_id)
    booking.cancel(ADMIN, appt)
    cancel_events = outbox_events(db_url, events[-1]["id"])
    for ev in events + cancel_events:
        assert cache.apply(ev)
    for ev in events:  # a late replay of the booking must not resurrect the cancelled visit
        assert not cache.apply(ev)
    assert cache.counts["events_ignored"] == len(events)
    assert all(appt not in s.busy for s in cache.schedules().values())
    assert_matches_sql(cache, booking)


def test_a_bad_event_is_skipped_not_fatal(cache, booking, db_url):
    assert not cache.apply({"type": "appointment_created"})
    (spare,) = sql(db_url, "SELECT nextval('realtime_events_id_seq')")[0]  # an id no real event gets
    assert not cache.apply({"id": spare, "type": "appointment_created", "appointment": {}})
    assert cache.counts["events_failed"] == 2
    svc = service_ids(cache.engine)[0]
    book(booking, db_url, svc, first_slot(booking, svc))
    assert pump(cache, db_url) == 1
    assert_matches_sql(cache, booking)


# --- nearest ---------------------------------------------------------------------------------------

def test_nearest_matches_the_booking_services_alternatives(cache, booking, now):
    for svc_id in service_ids(cache.engine):
        for days in (0, 2, 9):
            around = now + timedelta(days=days, hours=3)
            for dentist_id in (None, *sorted(cache.schedules())):
                with session_scope(booking.engine) as s:
                    want = booking._alternatives(s, s.get(Service, svc_id), dentist_id, around)
                assert cache.nearest(svc_id, around, dentist_id=dentist_id) == want
    assert len(cache.nearest(service_ids(cache.engine)[0], now + timedelta(days=1), count=5)) == 5


# --- reloads with events arriving meanwhile -------------------------------------------------------

async def test_events_during_a_full_reload_are_not_lost(cache, booking, db_url, monkeypatch):
    """The snapshot is taken before a booking commits; its event arrives while the reload runs."""
    svc = service_ids(cache.engine)[2]  # a filling: it holds the dentist
    slot = first_slot(booking, svc)
    snapshot_taken, release = threading.Event(), threading.Event()
    real_read = cache._read_all

    def slow_read():
        result = real_read()
        snapshot_taken.set()
        release.wait(10)
        return result

    monkeypatch.setattr(cache, "_read_all", slow_read)
    reload = asyncio.create_task(cache.reload())
    assert await asyncio.to_thread(snapshot_taken.wait, 10)
    appt = await asyncio.to_thread(book, booking, db_url, svc, slot)
    assert pump(cache, db_url) == 1
    release.set()
    await asyncio.wait_for(reload, 10)
    assert appt in cache.schedules()[slot.dentist_id].busy
    assert slot not in cache.free_slots(svc, booking.now(), booking.now() + WINDOW)
    assert_matches_sql(cache, booking)


async def test_refresher_reloads_a_dentist_off_the_hot_path(cache, booking, db_url):
    await cache.start()
    try:
        svc = service_ids(cache.engine)[1]
        slot = first_slot(booking, svc)
        sql(db_url, "INSERT INTO time_off (dentist_id, starts_at, ends_at) VALUES (%s, %s, %s)",
            slot.dentist_id, slot.starts_at, slot.ends_at)
        assert pump(cache, db_url) == 1
        assert cache.health()["refreshing"]  # queued, not done inline
        await cache.settled(timeout=5)
        assert slot not in cache.free_slots(svc, booking.now(), booking.now() + WINDOW)
        assert cache.counts["dentist_reloads"] == 1
        assert_matches_sql(cache, booking)
    finally:
        await cache.stop()


async def test_periodic_refresh_picks_up_changes_that_send_no_events(clinic, settings, booking, db_url, now):
    c = AvailabilityCache(clinic, settings, clock=lambda: now, refresh_seconds=0.2)
    await c.start()
    try:
        sql(db_url, "UPDATE services SET duration_minutes = 50 WHERE name = 'Cleaning'")
        reloaded = asyncio.Event()
        real_reload = c.reload

        async def reload():
            await real_reload()
            reloaded.set()

        c.reload = reload
        await asyncio.wait_for(reloaded.wait(), 5)
        assert next(s for s in c.services() if s.name == "Cleaning").duration_minutes == 50
        assert_matches_sql(c, booking)
    finally:
        await c.stop()


# --- odds and ends -----------------------------------------------------------------------------------

def test_get_cache_before_start_raises_then_returns_the_set_instance(cache):
    set_cache(None)
    with pytest.raises(CacheNotStarted):
        get_cache()
    set_cache(cache)
    try:
        assert get_cache() is cache
    finally:
        set_cache(None)


@pytest.mark.parametrize("raw", ["2026-11-25T20:32:22.1234+00:00", "2026-11-25T15:32:22.1234-05:00",
                                 "2026-11-25 20:32:22.1234+00", "2026-11-25T20:32:22.123400Z"])
def test_parse_ts_reads_postgres_json_timestamps(raw):
    assert parse_ts(raw) == datetime(2026, 11, 25, 20, 32, 22, 123400, tzinfo=UTC)


def test_health_reports_age_lag_and_horizon(cache, booking, db_url):
    svc = service_ids(cache.engine)[0]
    book(booking, db_url, svc, first_slot(booking, svc))
    pump(cache, db_url)
    h = cache.health()
    assert h["loaded"] and h["last_event_id"] == sql(db_url, "SELECT max(id) FROM realtime_events")[0][0]
    assert h["event_lag_ms"] is not None and 0 <= h["event_lag_ms"] < 60_000
    assert cache.days - 2 < h["slots_horizon_days"] <= cache.days
    assert h["dentists"] == 3 and h["events_applied"] == 1


# --- scheduling rules: overrides, closures, holds ------------------------------------------------

def test_date_override_and_clinic_closure(cache, booking, db_url, settings):
    svc = service_ids(cache.engine)[1]
    slot = first_slot(booking, svc)
    day = slot.starts_at.astimezone(settings.tz).date()
    sql(db_url, "INSERT INTO date_overrides (dentist_id, on_date, reason) VALUES (%s, %s, 'course')",
        slot.dentist_id, day)
    assert pump(cache, db_url) == 1
    assert day in cache.schedules()[slot.dentist_id].overrides
    assert slot not in cache.free_slots(svc, booking.now(), booking.now() + WINDOW)
    assert_matches_sql(cache, booking)
    other_day = day + timedelta(days=2)
    sql(db_url, "INSERT INTO clinic_closures (on_date, reason) VALUES (%s, 'holiday')", other_day)
    assert pump(cache, db_url) == 1  # dentist_id NULL: everything reloaded
    assert all(other_day in s.closures for s in cache.schedules().values())
    assert_matches_sql(cache, booking)


def test_slot_holds_hide_a_slot_from_everyone_but_its_holder(cache, booking, db_url):
    svc = service_ids(cache.engine)[2]  # a filling: it holds its dentist
    slot = first_slot(booking, svc)
    held = booking.hold(holder="chat-1", dentist_id=slot.dentist_id, service_id=svc, starts_at=slot.starts_at)
    assert held.outcome is Outcome.HELD, held
    assert pump(cache, db_url) == 1
    window = (booking.now(), booking.now() + WINDOW)
    assert slot not in cache.free_slots(svc, *window)
    assert slot in cache.free_slots(svc, *window, holder="chat-1")
    assert cache.free_slots(svc, *window, holder="chat-1") == booking.available_slots(svc, *window, holder="chat-1")
    assert_matches_sql(cache, booking)
    booking.release_hold("chat-1")
    pump(cache, db_url)
    assert slot in cache.free_slots(svc, *window)
    assert_matches_sql(cache, booking)


def test_since_stays_below_an_event_still_in_flight_at_load(clinic, settings, booking, db_url, now):
    """A transaction that took outbox id N but commits after the load's snapshot (while N+1 is
    visible): the cache's position stays below N, so the replay delivers N."""
    svc = service_ids(clinic)[1]
    slot = first_slot(booking, svc)
    with psycopg.connect(db_url) as slow:  # not committed until the end of the block
        slow.execute("INSERT INTO time_off (dentist_id, starts_at, ends_at) VALUES (%s, %s, %s)",
                     (slot.dentist_id, slot.starts_at, slot.ends_at))
        (in_flight,) = slow.execute("SELECT max(id) FROM realtime_events").fetchone()
        sql(db_url, "INSERT INTO time_off (dentist_id, starts_at, ends_at) VALUES (%s, %s, %s)",
            slot.dentist_id, slot.starts_at + timedelta(days=1), slot.ends_at + timedelta(days=1))
        c = AvailabilityCache(clinic, settings, clock=lambda: now)
        c.load()
        assert c.last_event_id == in_flight - 1
        assert slot in c.free_slots(svc, now, now + WINDOW)
    assert pump(c, db_url) == 2  # the late one, and the visible one again (harmless)
    assert slot not in c.free_slots(svc, now, now + WINDOW)
    assert_matches_sql(c, booking)
