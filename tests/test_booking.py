"""The booking service's outcomes, against real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import psycopg
import pytest

from bot.booking import BookingService, Outcome
from bot.db import Contention, make_engine, translate
from bot.settings import Settings
from bot.tokens import Identity

NY = ZoneInfo("America/New_York")
MONDAY = date(2030, 1, 7)
NOW = datetime(2030, 1, 1, 12, tzinfo=timezone.utc)
ADMIN = Identity("admin", "admin")


def at(h: int, m: int = 0, d: date = MONDAY) -> datetime:
    return datetime.combine(d, time(h, m), NY)


def patient(pid: int) -> Identity:
    return Identity("patient", f"patient:{pid}", patient_id=pid)


@pytest.fixture
def svc(engine, settings, db_url) -> BookingService:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'Dr A'), (2, 'Dr B')")
        conn.execute("INSERT INTO dentists (id, full_name, active) VALUES (3, 'Dr Gone', false)")
        conn.execute("INSERT INTO patients (id, full_name, phone) VALUES (1, 'Ann', '+12125550101'),"
                     " (2, 'Bob', '+12125550102')")
        conn.execute("INSERT INTO services (id, name, duration_minutes, price_cents, buffer_after_minutes)"
                     " VALUES (1, 'Cleaning', 30, 14000, 0), (2, 'Root canal', 60, 95000, 15)")
        for dentist in (1, 2):
            conn.execute("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time)"
                         " VALUES (%s, 1, '09:00', '12:00'), (%s, 1, '13:00', '17:00')", (dentist, dentist))
        conn.execute("SELECT setval('dentists_id_seq', 10), setval('patients_id_seq', 10)")
    return BookingService(engine, settings, clock=lambda: NOW)


def book(svc, who=ADMIN, **kw):
    args = dict(patient_id=1, dentist_id=1, service_id=1, starts_at=at(9))
    args.update(kw)
    return svc.book(who, **args)


def test_book_then_list_cancel(svc):
    r = book(svc, who=patient(1), notes="nervous patient")
    assert r.outcome is Outcome.BOOKED and r.ok
    assert r.appointment.ends_at - r.appointment.starts_at == timedelta(minutes=30)
    assert (r.appointment.dentist_name, r.appointment.service_name, r.appointment.status) == (
        "Dr A", "Cleaning", "pending")
    listed = svc.list_appointments(patient(1), 1)
    assert [a.id for a in listed.appointments] == [r.appointment.id]
    assert svc.cancel(patient(1), r.appointment.id).outcome is Outcome.CANCELLED
    assert svc.cancel(patient(1), r.appointment.id).outcome is Outcome.ALREADY_CANCELLED
    assert svc.list_appointments(patient(1), 1).appointments == []


def test_slot_taken_offers_nearest_alternatives(svc):
    assert book(svc).outcome is Outcome.BOOKED
    r = book(svc, patient_id=2, starts_at=at(9, 15))
    assert r.outcome is Outcome.SLOT_TAKEN
    assert [(s.starts_at.astimezone(NY).strftime("%H:%M"), s.dentist_id) for s in r.alternatives] == [
        ("09:30", 1), ("09:45", 1), ("10:00", 1)]


def test_buffer_after_a_root_canal_is_respected(svc):
    assert book(svc, service_id=2, starts_at=at(9)).outcome is Outcome.BOOKED  # 9:00–10:00 + 15 min
    assert book(svc, patient_id=2, starts_at=at(10)).outcome is Outcome.SLOT_TAKEN
    assert book(svc, patient_id=2, starts_at=at(10, 15)).outcome is Outcome.BOOKED


@pytest.mark.parametrize("when,outcome", [
    (at(8, 45), Outcome.OUTSIDE_HOURS),      # starts before opening
    (at(11, 45), Outcome.OUTSIDE_HOURS),     # runs into lunch
    (at(10, d=MONDAY + timedelta(days=1)), Outcome.OUTSIDE_HOURS),  # no hours on Tuesday
    (datetime(2029, 12, 31, 10, tzinfo=NY), Outcome.IN_PAST),
])
def test_time_refusals_come_with_alternatives(svc, when, outcome):
    r = book(svc, starts_at=when)
    assert r.outcome is outcome
    assert r.alternatives and all(s.starts_at >= NOW for s in r.alternatives)


def test_time_off_is_outside_hours(svc, db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO time_off (dentist_id, starts_at, ends_at) VALUES (1, %s, %s)", (at(9), at(12)))
    assert book(svc, starts_at=at(10)).outcome is Outcome.OUTSIDE_HOURS
    assert book(svc, starts_at=at(13)).outcome is Outcome.BOOKED


@pytest.mark.parametrize("field,kwargs", [
    ("dentist_id", {"dentist_id": 99}), ("dentist_id", {"dentist_id": 3}), ("service_id", {"service_id": 99}),
    ("patient_id", {"patient_id": 99}), ("dentist_id", {"dentist_id": -1}),
])
def test_unknown_references_are_not_found(svc, field, kwargs):
    r = book(svc, **kwargs)
    assert (r.outcome, r.field) == (Outcome.NOT_FOUND, field)


def test_bad_input_is_refused_clearly(svc):
    naive = book(svc, starts_at=datetime(2030, 1, 7, 9))
    assert (naive.outcome, naive.field) == (Outcome.INVALID, "starts_at")
    huge = book(svc, notes="n" * 70_000)
    assert (huge.outcome, huge.field) == (Outcome.INVALID, "notes")
    assert book(svc, status="completed").outcome is Outcome.INVALID


def test_40kb_note_is_booked_and_announced(svc, db_url):
    r = book(svc, notes="é" * 40_000)
    assert r.outcome is Outcome.BOOKED
    with psycopg.connect(db_url) as conn:
        [(kind, payload)] = conn.execute(
            "SELECT type, payload FROM realtime_events WHERE type LIKE 'appointment%'").fetchall()
    assert kind == "appointment_created" and payload["appointment"]["notes"] == "é" * 40_000


def test_patients_cannot_touch_each_others_visits(svc):
    mine = book(svc, who=patient(1)).appointment
    assert book(svc, who=patient(2), patient_id=1, starts_at=at(10)).outcome is Outcome.NOT_ALLOWED
    # a stranger's id looks exactly like a missing one
    assert svc.cancel(patient(2), mine.id).outcome is Outcome.NOT_FOUND
    assert svc.reschedule(patient(2), mine.id, at(14)).outcome is Outcome.NOT_FOUND
    assert svc.list_appointments(patient(2), 1).outcome is Outcome.NOT_ALLOWED
    assert svc.get(patient(2), mine.id).outcome is Outcome.NOT_FOUND
    assert svc.set_status(patient(1), mine.id, "confirmed").outcome is Outcome.NOT_ALLOWED
    other_dentist = Identity("dentist", "dentist:2", dentist_id=2)
    assert svc.set_status(other_dentist, mine.id, "confirmed").outcome is Outcome.NOT_ALLOWED
    own_dentist = Identity("dentist", "dentist:1", dentist_id=1)
    assert svc.set_status(own_dentist, mine.id, "confirmed").outcome is Outcome.UPDATED
    assert svc.get(patient(1), mine.id).appointment.status == "confirmed"


def test_reschedule_rechecks_and_keeps_own_slot_free(svc):
    first = book(svc).appointment
    book(svc, patient_id=2, starts_at=at(10))
    # moving by 15 minutes overlaps only itself: allowed
    moved = svc.reschedule(patient(1), first.id, at(9, 15))
    assert moved.outcome is Outcome.RESCHEDULED and moved.appointment.starts_at == at(9, 15)
    taken = svc.reschedule(patient(1), first.id, at(10))
    assert taken.outcome is Outcome.SLOT_TAKEN and taken.alternatives
    assert svc.reschedule(patient(1), first.id, at(12)).outcome is Outcome.OUTSIDE_HOURS
    to_b = svc.reschedule(ADMIN, first.id, at(10), dentist_id=2)
    assert to_b.outcome is Outcome.RESCHEDULED and to_b.appointment.dentist_id == 2
    svc.cancel(ADMIN, first.id)
    assert svc.reschedule(patient(1), first.id, at(14)).outcome is Outcome.ALREADY_CANCELLED


def test_find_or_create_patient_by_normalised_phone(svc):
    first = svc.find_or_create_patient("Ann", "(212) 555-0101")
    assert first.outcome is Outcome.FOUND and first.patient_id == 1
    new = svc.find_or_create_patient("  Robert'); DROP TABLE patients;--  ", "212.555.0199")
    again = svc.find_or_create_patient("Robert", "+1 212 555 0199")
    assert new.patient_id == again.patient_id and new.patient_id > 2
    with psycopg.connect(svc.settings.database_url.replace("+psycopg", "")) as conn:
        name = conn.execute("SELECT full_name, phone FROM patients WHERE id = %s", (new.patient_id,)).fetchone()
    assert name == ("Robert'); DROP TABLE patients;--", "+12125550199")
    bad = svc.find_or_create_patient("Ann", "555-01")
    assert (bad.outcome, bad.field) == (Outcome.INVALID, "phone")
    assert svc.find_or_create_patient("   ", "2125550101").field == "full_name"


def test_available_slots_from_sql(svc):
    book(svc, starts_at=at(9))
    slots = svc.available_slots(1, at(0), at(23, 59), dentist_id=1)
    labels = [s.starts_at.astimezone(NY).strftime("%H:%M") for s in slots]
    assert labels[:2] == ["09:30", "09:45"] and "09:00" not in labels and labels[-1] == "16:30"
    assert svc.available_slots(99, at(0), at(23)) == []


def test_database_down_is_an_outcome_not_an_exception(settings):
    dead = Settings(database_url="postgresql://postgres@127.0.0.1:9/nowhere", env="test",
                    jwt_secret="t" * 40, _env_file=None)
    engine = make_engine(dead.database_url, pool_pre_ping=False)
    try:
        r = BookingService(engine, dead, clock=lambda: NOW).book(
            ADMIN, patient_id=1, dentist_id=1, service_id=1, starts_at=at(9))
        assert r.outcome is Outcome.UNAVAILABLE and "unavailable" in r.message
    finally:
        engine.dispose()


def test_twenty_concurrent_bookings_of_overlapping_slots_one_wins(svc, engine, settings):
    """Through the service: whether the app check or the constraint refuses, exactly one books."""
    barrier = threading.Barrier(20)
    results = []

    def attempt(i: int):
        barrier.wait()
        results.append(book(svc, patient_id=1 + i % 2, starts_at=at(9, 5 * (i % 4))))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = sorted(r.outcome.value for r in results)
    assert outcomes.count("booked") == 1 and outcomes.count("slot_taken") == 19


def test_twenty_concurrent_raw_transactions_one_commits(svc, db_url):
    """The constraint alone, no application check: 20 writers, one survivor."""
    barrier = threading.Barrier(20)
    won, refused = [], []

    def attempt(i: int):
        with psycopg.connect(db_url) as conn:
            barrier.wait()
            try:
                conn.execute(
                    "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at)"
                    " VALUES (1, 1, 1, %s, %s)", (at(9, i), at(9, 30 + i)))
                conn.commit()
                won.append(i)
            except (psycopg.errors.ExclusionViolation, psycopg.errors.DeadlockDetected):
                # two inserts checking each other's overlap can deadlock: PostgreSQL aborts
                # one of them, which commits nothing either
                refused.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 19


def overlapping_deadlock(db_url: str) -> psycopg.Error:
    """A real deadlock on the no-overlap constraint: A inserts 9:00-9:30, B inserts 9:20-9:50
    (waits for A), A inserts 9:40-10:10 (waits for B). PostgreSQL aborts one; returns its error."""
    insert = ("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at)"
              " VALUES (1, 1, 1, %s, %s)")
    errors: list[psycopg.Error] = []
    with psycopg.connect(db_url) as a, psycopg.connect(db_url) as b, psycopg.connect(db_url) as watch:
        a.execute(insert, (at(9), at(9, 30)))

        def second():
            try:
                b.execute(insert, (at(9, 20), at(9, 50)))
            except psycopg.Error as exc:
                errors.append(exc)
            b.rollback()

        waiter = threading.Thread(target=second)
        waiter.start()
        for _ in range(500):  # until B waits on A's row
            if watch.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:
                break
            threading.Event().wait(0.01)
        try:
            a.execute(insert, (at(9, 40), at(10, 10)))
        except psycopg.Error as exc:
            errors.append(exc)
        a.rollback()
        waiter.join()
    (error,) = [e for e in errors if isinstance(e, psycopg.errors.DeadlockDetected)]
    return error


def test_a_deadlock_is_contention_not_an_outage(svc, db_url):  # svc: the clinic is seeded
    assert isinstance(translate(overlapping_deadlock(db_url)), Contention)


def test_a_deadlock_victim_runs_again_and_gets_an_answer(svc, db_url, monkeypatch):
    """The booking that PostgreSQL aborts to break a deadlock is run again, not reported as
    "unavailable": here the retry books (the competitor rolled back)."""
    error = overlapping_deadlock(db_url)
    real = BookingService._book
    calls = []

    def first_deadlocks(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise translate(error)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(BookingService, "_book", first_deadlocks)
    result = book(svc, patient_id=1, starts_at=at(11))
    assert len(calls) == 2 and result.outcome is Outcome.BOOKED


def abort_first_inserts(db_url: str, times: int, sqlstate: str) -> None:
    """A trigger in this test's database only: the first ``times`` inserts into appointments fail
    with ``sqlstate`` (40P01 deadlock_detected, 40001 serialization_failure), as when PostgreSQL
    picks the transaction as a deadlock's victim. Every insert is counted with a sequence:
    ``nextval`` is not undone when the transaction aborts, a counter row would be."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE test_insert_attempts")
        conn.execute(f"""
            CREATE FUNCTION test_abort_first_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('test_insert_attempts') <= {int(times)} THEN
                    RAISE EXCEPTION 'test: aborted insert %', currval('test_insert_attempts')
                        USING ERRCODE = '{sqlstate}';
                END IF;
                RETURN NEW;
            END $$""")
        conn.execute("CREATE TRIGGER test_abort_first_inserts BEFORE INSERT ON appointments"
                     " FOR EACH ROW EXECUTE FUNCTION test_abort_first_inserts()")


def insert_attempts(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        value, called = conn.execute("SELECT last_value, is_called FROM test_insert_attempts").fetchone()
    return value if called else 0


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
@pytest.mark.parametrize("aborted", [0, 1, 2])
def test_a_booking_aborted_up_to_twice_is_run_again_and_booked(svc, db_url, aborted, sqlstate):
    """README: a write PostgreSQL aborts to break a deadlock runs again, up to three times. Two
    aborted runs, then the third books; nothing of the aborted runs remains."""
    abort_first_inserts(db_url, aborted, sqlstate)
    result = book(svc, patient_id=1, starts_at=at(10))
    assert result.outcome is Outcome.BOOKED
    assert insert_attempts(db_url) == aborted + 1
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT id, starts_at FROM appointments").fetchall()
        created = conn.execute("SELECT count(*) FROM realtime_events WHERE type = 'appointment_created'").fetchone()[0]
    assert rows == [(result.appointment.id, at(10))] and created == 1


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_booking_aborted_three_times_is_busy_not_an_error(svc, db_url, sqlstate):
    """Three runs, all aborted: no fourth, nothing written, and the caller gets the "busy, try
    again" outcome instead of a driver error."""
    abort_first_inserts(db_url, 10, sqlstate)
    result = book(svc, patient_id=1, starts_at=at(10))
    assert (result.outcome, result.message) == (
        Outcome.UNAVAILABLE, "The booking system is busy right now; please try again.")
    assert insert_attempts(db_url) == 3
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM appointments").fetchone()[0] == 0
