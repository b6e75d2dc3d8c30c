"""Chairs and hygienists (sql/008, bot/resources.py), against real PostgreSQL: the database
refuses a double-booked chair or hygienist whoever writes, the booking service picks a free one
and retries when a concurrent writer took it, and availability (SQL and the action server's
cache) offers a slot only when a chair (and, for a hygienist's service, a hygienist) is free."""

from __future__ import annotations

import threading
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import psycopg
import pytest

from actions.cache import AvailabilityCache
from bot.booking import BookingService, Outcome
from bot.tokens import Identity
from test_cache import outbox_events, pump

NY = ZoneInfo("America/New_York")
MONDAY = date(2030, 1, 7)
NOW = datetime(2030, 1, 1, 12, tzinfo=timezone.utc)
ADMIN = Identity("admin", "admin")
FILLING, SCALING, CALL = 1, 2, 3  # a dentist's service, a hygienist's, one without a chair
DENTISTS = 20


def at(h: int, m: int = 0, d: date = MONDAY) -> datetime:
    return datetime.combine(d, time(h, m), NY)


def run(db_url: str, statement: str, params=()) -> list:
    with psycopg.connect(db_url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def clinic(db_url: str) -> str:
    """20 dentists working Monday 9–17, 25 patients, one chair, one hygienist working Monday
    9–12; a filling (30 min, 10 min buffer after), a scale and polish by the hygienist (45 min)
    and a phone consultation that needs no chair."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        for d in range(1, DENTISTS + 1):
            conn.execute("INSERT INTO dentists (id, full_name) VALUES (%s, %s)", (d, f"Dr {d}"))
            conn.execute("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time)"
                         " VALUES (%s, 1, '09:00', '17:00')", (d,))
        for p in range(1, 26):
            conn.execute("INSERT INTO patients (id, full_name, phone) VALUES (%s, %s, %s)",
                         (p, f"Patient {p}", f"+1212555{p:04d}"))
        conn.execute("INSERT INTO services (id, name, duration_minutes, price_cents, buffer_after_minutes,"
                     " performed_by, needs_operatory) VALUES (1, 'Filling', 30, 18000, 10, 'dentist', true),"
                     " (2, 'Scale and polish', 45, 14000, 0, 'hygienist', true),"
                     " (3, 'Phone consultation', 30, 5000, 0, 'dentist', false)")
        conn.execute("INSERT INTO operatories (id, name) VALUES (1, 'Chair 1')")
        conn.execute("INSERT INTO hygienists (id, full_name) VALUES (1, 'Hana Hygienist')")
        conn.execute("INSERT INTO hygienist_working_hours (hygienist_id, weekday, start_time, end_time)"
                     " VALUES (1, 1, '09:00', '12:00')")
        conn.execute("SELECT setval('dentists_id_seq', 100), setval('patients_id_seq', 100),"
                     " setval('services_id_seq', 100), setval('operatories_id_seq', 100),"
                     " setval('hygienists_id_seq', 100)")
    return db_url


@pytest.fixture
def svc(clinic, engine, settings) -> BookingService:
    return BookingService(engine, settings, clock=lambda: NOW)


@pytest.fixture
def cache(svc, engine, settings) -> AvailabilityCache:
    c = AvailabilityCache(engine, settings, clock=lambda: NOW)
    c.load()
    return c


def book(svc: BookingService, **kw):
    args = dict(patient_id=1, dentist_id=1, service_id=FILLING, starts_at=at(9))
    args.update(kw)
    return svc.book(ADMIN, **args)


def starts(slots, dentist_id: int | None = None) -> set[str]:
    return {s.starts_at.astimezone(NY).strftime("%H:%M") for s in slots
            if dentist_id is None or s.dentist_id == dentist_id}


def offered(source, svc: BookingService, cache: AvailabilityCache, service_id: int, dentist_id: int,
            frm: datetime = at(9), to: datetime = at(12)) -> set[str]:
    if source == "sql":
        return starts(svc.available_slots(service_id, frm, to, dentist_id=dentist_id))
    pump(cache, svc_db(svc))
    return starts(cache.free_slots(service_id, frm, to, dentist_id=dentist_id))


def svc_db(svc: BookingService) -> str:
    return svc.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def test_twenty_concurrent_bookings_sharing_one_chair_one_wins(svc, clinic):
    """Twenty dentists, twenty patients, one chair: exactly one of them gets 9:00."""
    barrier = threading.Barrier(DENTISTS)
    results = []

    def attempt(i: int) -> None:
        barrier.wait()
        results.append(book(svc, patient_id=i, dentist_id=i))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(1, DENTISTS + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = sorted(r.outcome.value for r in results)
    assert outcomes.count("booked") == 1 and outcomes.count("slot_taken") == DENTISTS - 1, outcomes
    assert run(clinic, "SELECT count(*), min(operatory_id) FROM appointments WHERE status <> 'cancelled'") == [(1, 1)]
    loser = next(r for r in results if r.outcome is Outcome.SLOT_TAKEN)
    assert loser.alternatives and all(s.starts_at >= at(9, 40) for s in loser.alternatives)  # after 30 + 10


def test_a_second_chair_seats_the_second_dentist(svc, clinic):
    run(clinic, "INSERT INTO operatories (id, name) VALUES (2, 'Chair 2')")
    first, second, third = (book(svc, patient_id=p, dentist_id=p) for p in (1, 2, 3))
    assert (first.outcome, second.outcome, third.outcome) == (Outcome.BOOKED, Outcome.BOOKED, Outcome.SLOT_TAKEN)
    assert {first.appointment.operatory_id, second.appointment.operatory_id} == {1, 2}


def test_the_database_refuses_a_double_booked_chair_whoever_writes(clinic):
    insert = ("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, operatory_id)"
              " VALUES (%s, %s, 1, %s, %s, 1)")
    run(clinic, insert, (1, 1, at(9), at(9, 30)))
    # another dentist and patient, in the first visit's 10-minute buffer: the chair is still held
    with pytest.raises(psycopg.errors.ExclusionViolation, match="appointments_operatory_no_overlap"):
        run(clinic, insert, (2, 2, at(9, 35), at(10, 5)))
    run(clinic, insert, (2, 2, at(9, 40), at(10, 10)))  # once the buffer is over
    # a writer cannot shorten the held range: the trigger computes it from the service
    with pytest.raises(psycopg.errors.ExclusionViolation, match="appointments_operatory_no_overlap"):
        run(clinic, "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at,"
                    " operatory_id, held_from, held_until) VALUES (3, 3, 1, %s, %s, 1, %s, %s)",
            (at(10, 15), at(10, 45), at(10, 44), at(10, 45)))
    run(clinic, "UPDATE appointments SET status = 'cancelled' WHERE starts_at = %s", (at(9),))
    run(clinic, insert, (3, 3, at(9), at(9, 30)))  # a cancelled visit holds no chair


def test_the_database_refuses_a_double_booked_hygienist_but_not_their_dentist(clinic):
    insert = ("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at,"
              " operatory_id, hygienist_id) VALUES (%s, %s, 2, %s, %s, %s, 1)")
    run(clinic, "INSERT INTO operatories (id, name) VALUES (2, 'Chair 2')")
    run(clinic, insert, (1, 1, at(9), at(9, 45), 1))
    with pytest.raises(psycopg.errors.ExclusionViolation, match="appointments_hygienist_no_overlap"):
        run(clinic, insert, (2, 2, at(9, 30), at(10, 15), 2))
    # the dentist of record of the cleaning treats someone else meanwhile, in the other chair
    run(clinic, "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, operatory_id)"
                " VALUES (3, 1, 1, %s, %s, 2)", (at(9), at(9, 30)))


@pytest.mark.parametrize("source", ["sql", "cache"])
def test_no_slot_is_offered_while_every_chair_is_busy(source, svc, cache, clinic):
    assert offered(source, svc, cache, FILLING, 2) >= {"09:00", "09:30"}
    assert book(svc).outcome is Outcome.BOOKED  # Dr 1, 9:00–9:30, the chair held until 9:40
    free = offered(source, svc, cache, FILLING, 2)
    assert not free & {"09:00", "09:15", "09:30"} and "09:45" in free
    # a service that needs no chair is not limited by chairs
    assert "09:00" in offered(source, svc, cache, CALL, 2)
    run(clinic, "INSERT INTO operatories (id, name) VALUES (2, 'Chair 2')")  # the clinic adds a chair
    if source == "cache":
        pump(cache, clinic)  # availability_changed (operatories) → the chairs are read again
    assert "09:00" in offered(source, svc, cache, FILLING, 2)


@pytest.mark.parametrize("source", ["sql", "cache"])
def test_a_hygienists_service_needs_the_hygienist_on_duty_not_the_dentist_free(source, svc, cache, clinic):
    run(clinic, "INSERT INTO operatories (id, name) VALUES (2, 'Chair 2')")
    if source == "cache":
        pump(cache, clinic)
    assert book(svc, service_id=FILLING, starts_at=at(10)).outcome is Outcome.BOOKED  # Dr 1 busy 10:00–10:30
    assert "10:00" in offered(source, svc, cache, SCALING, 1)  # Dr 1 supervises; the hygienist is free
    assert not offered(source, svc, cache, SCALING, 1, at(12), at(17))  # the hygienist works mornings only
    cleaning = book(svc, patient_id=2, service_id=SCALING, starts_at=at(10))
    assert cleaning.outcome is Outcome.BOOKED
    assert (cleaning.appointment.hygienist_id, cleaning.appointment.operatory_id) == (1, 2)
    # one hygienist: nobody else's cleaning overlaps hers, whichever dentist supervises
    assert not offered(source, svc, cache, SCALING, 3) & {"09:30", "10:00", "10:30"}
    assert book(svc, patient_id=3, dentist_id=3, service_id=SCALING, starts_at=at(10, 30)).outcome \
        is Outcome.SLOT_TAKEN
    # and Dr 1's own diary is not held by a cleaning they supervise (only a chair and the hygienist are)
    later = book(svc, patient_id=4, service_id=SCALING, starts_at=at(10, 45))  # 10:45–11:30, chair 1
    assert later.outcome is Outcome.BOOKED and later.appointment.operatory_id == 1
    assert {"11:00", "11:15"} <= offered(source, svc, cache, FILLING, 1)  # in chair 2


def test_a_hold_keeps_its_chair_and_the_holder_books_it(svc, cache, clinic):
    held = svc.hold(holder="chat-a", dentist_id=1, service_id=FILLING, starts_at=at(9))
    assert held.outcome is Outcome.HELD
    assert run(clinic, "SELECT operatory_id FROM slot_holds") == [(1,)]
    pump(cache, clinic)
    assert "09:00" not in offered("cache", svc, cache, FILLING, 2)
    assert "09:00" not in offered("sql", svc, cache, FILLING, 2)
    assert book(svc, patient_id=2, dentist_id=2).outcome is Outcome.SLOT_TAKEN
    assert svc.hold(holder="chat-b", dentist_id=2, service_id=FILLING, starts_at=at(9)).outcome \
        is Outcome.SLOT_TAKEN
    mine = book(svc, holder="chat-a")
    assert mine.outcome is Outcome.BOOKED and mine.appointment.operatory_id == 1


def test_a_move_keeps_its_chair_when_it_is_free_and_events_name_it(svc, clinic):
    run(clinic, "INSERT INTO operatories (id, name) VALUES (2, 'Chair 2')")
    assert book(svc, patient_id=2, dentist_id=2).outcome is Outcome.BOOKED  # takes chair 1
    visit = book(svc, starts_at=at(11)).appointment
    assert visit.operatory_id == 1
    mark = run(clinic, "SELECT max(id) FROM realtime_events")[0][0]
    moved = svc.reschedule(ADMIN, visit.id, at(14))
    assert moved.outcome is Outcome.RESCHEDULED and moved.appointment.operatory_id == 1
    moved = svc.reschedule(ADMIN, visit.id, at(9, 15))  # chair 1 is taken then: chair 2
    assert moved.outcome is Outcome.RESCHEDULED and moved.appointment.operatory_id == 2
    events = [e for e in outbox_events(clinic, mark) if e["type"] == "appointment_updated"]
    assert [(e["appointment"]["operatory_id"], e["previous"]["operatory_id"]) for e in events] == [(1, 1), (2, 1)]
    assert all(e["appointment"]["hygienist_id"] is None for e in events)
    assert events[-1]["appointment"]["held_until"].startswith(str(at(9, 55).astimezone(timezone.utc).date()))


def test_availability_events_name_the_chair_and_the_hygienist(clinic):
    mark = run(clinic, "SELECT max(id) FROM realtime_events")[0][0]
    run(clinic, "INSERT INTO operatories (id, name) VALUES (7, 'Chair 7')")
    run(clinic, "INSERT INTO hygienist_time_off (hygienist_id, starts_at, ends_at) VALUES (1, %s, %s)",
        (at(9), at(10)))
    run(clinic, "INSERT INTO slot_holds (dentist_id, service_id, holder, starts_at, ends_at, expires_at,"
                " operatory_id) VALUES (1, 1, 'x', %s, %s, %s, 7)", (at(9), at(9, 30), at(9)))
    events = [(e["source"], e["dentist_id"], e["operatory_id"], e["hygienist_id"])
              for e in outbox_events(clinic, mark)]
    assert events == [("operatories", None, 7, None), ("hygienist_time_off", None, None, 1),
                      ("slot_holds", 1, 7, None)]


def test_the_cache_matches_sql_through_a_busy_morning(svc, cache, clinic):
    run(clinic, "INSERT INTO operatories (id, name) VALUES (2, 'Chair 2'), (3, 'Chair 3')")
    pump(cache, clinic)
    for i, (dentist, service, hour, minute) in enumerate([
            (1, FILLING, 9, 0), (2, FILLING, 9, 0), (3, SCALING, 9, 15), (4, FILLING, 10, 0),
            (5, SCALING, 10, 0), (6, CALL, 9, 0), (7, FILLING, 9, 30)], start=1):
        book(svc, patient_id=i, dentist_id=dentist, service_id=service, starts_at=at(hour, minute))
    svc.cancel(ADMIN, run(clinic, "SELECT id FROM appointments WHERE dentist_id = 2")[0][0])
    pump(cache, clinic)
    compared = 0
    for service in (FILLING, SCALING, CALL):
        for dentist in (None, 1, 2, 3, 8):
            want = svc.available_slots(service, at(8), at(17), dentist_id=dentist)
            got = cache.free_slots(service, at(8), at(17), dentist_id=dentist)
            assert got == want, (service, dentist, sorted(set(got) ^ set(want))[:5])
            compared += len(want)
        assert cache.nearest(service, at(9, 5), 1) == svc.slot_taken(service, 1, at(9, 5)).alternatives
    assert compared > 100
