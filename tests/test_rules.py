"""Scheduling rules: minimum notice, horizon, date overrides, closures, holds, idempotency."""

from __future__ import annotations

import threading
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import psycopg
import pytest

from bot.booking import BookingService, Outcome
from bot.tokens import Identity

NY = ZoneInfo("America/New_York")
ADMIN = Identity("admin", "admin")
MONDAY = date(2030, 1, 7)


def at(h: int, m: int = 0, d: date = MONDAY) -> datetime:
    return datetime.combine(d, time(h, m), NY)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clinic(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'Dr A'), (2, 'Dr B')")
        conn.execute("INSERT INTO patients (id, full_name) VALUES (1, 'Ann'), (2, 'Bob')")
        conn.execute("INSERT INTO services (id, name, duration_minutes, price_cents, min_notice_minutes)"
                     " VALUES (1, 'Cleaning', 30, 100, NULL), (2, 'Emergency visit', 30, 100, 0)")
        for dentist in (1, 2):
            for weekday in range(1, 8):
                conn.execute("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time)"
                             " VALUES (%s, %s, '09:00', '12:00')", (dentist, weekday))
        conn.execute("DELETE FROM realtime_events")
    return db_url


@pytest.fixture
def clock():
    return Clock(at(8))  # Monday 08:00 local


@pytest.fixture
def svc(engine, settings, clinic, clock):
    return BookingService(engine, settings, clock=clock)


def labels(slots):
    return [s.starts_at.astimezone(NY).strftime("%m-%d %H:%M") for s in slots]


def book(svc, **kw):
    args = dict(patient_id=1, dentist_id=1, service_id=1, starts_at=at(11))
    args.update(kw)
    return svc.book(ADMIN, **args)


def events(url, source=None):
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT type, dentist_id, patient_id, payload FROM realtime_events ORDER BY id").fetchall()
    return [r for r in rows if source is None or r[3].get("source") == source]


def test_minimum_notice(svc):
    r = book(svc, starts_at=at(9, 30))
    assert r.outcome is Outcome.TOO_SOON
    assert r.earliest == at(10) and "earliest I can book is Monday 07 January at 10:00" in r.message
    assert labels(r.alternatives) == ["01-07 10:00", "01-07 10:15", "01-07 10:30"]
    assert labels(svc.available_slots(1, at(0), at(23), dentist_id=1))[0] == "01-07 10:00"
    # a service with its own notice (emergencies: none) is offered at once
    assert labels(svc.available_slots(2, at(0), at(23), dentist_id=1))[0] == "01-07 09:00"
    assert book(svc, service_id=2, starts_at=at(9)).outcome is Outcome.BOOKED


def test_horizon_last_day_across_dst(engine, settings, clinic):
    # 90 days after 2026-12-14 is 2027-03-14, the day clocks spring forward
    svc = BookingService(engine, settings, clock=lambda: datetime(2026, 12, 14, 12, tzinfo=NY))
    last, after = date(2027, 3, 14), date(2027, 3, 15)
    slots = svc.available_slots(1, at(0, d=last), at(0, d=after + timedelta(days=1)), dentist_id=1)
    assert labels(slots)[0] == "03-14 09:00" and labels(slots)[-1] == "03-14 11:30"
    assert slots[0].starts_at.astimezone(timezone.utc).hour == 13  # 09:00 EDT
    assert book(svc, starts_at=at(11, 30, d=last)).outcome is Outcome.BOOKED
    r = book(svc, starts_at=at(9, d=after))
    assert r.outcome is Outcome.TOO_FAR and "90 days" in r.message
    assert r.alternatives and all(s.starts_at < at(0, d=after) for s in r.alternatives)


def test_date_override_replaces_the_weekly_hours(svc, clinic):
    with psycopg.connect(clinic, autocommit=True) as conn:
        conn.execute("INSERT INTO date_overrides (dentist_id, on_date, start_time, end_time, reason)"
                     " VALUES (1, %s, '14:00', '15:00', 'Late start')", (MONDAY,))
        conn.execute("INSERT INTO date_overrides (dentist_id, on_date, reason) VALUES (2, %s, 'Sick')", (MONDAY,))
    assert labels(svc.available_slots(1, at(0), at(23), dentist_id=1)) == ["01-07 14:00", "01-07 14:15", "01-07 14:30"]
    assert svc.available_slots(1, at(0), at(23), dentist_id=2) == []
    assert book(svc, starts_at=at(11)).outcome is Outcome.OUTSIDE_HOURS
    assert book(svc, starts_at=at(14)).outcome is Outcome.BOOKED
    ev = events(clinic, "date_overrides")
    assert [(e[0], e[1], e[2], e[3]["op"]) for e in ev] == [
        ("availability_changed", 1, None, "insert"), ("availability_changed", 2, None, "insert")]
    assert "reason" not in ev[0][3]


def test_clinic_closure_closes_everyone_and_is_announced_clinic_wide(svc, clinic):
    with psycopg.connect(clinic, autocommit=True) as conn:
        conn.execute("INSERT INTO clinic_closures (on_date, reason) VALUES (%s, 'Holiday')", (MONDAY,))
    assert svc.available_slots(1, at(0), at(23)) == []
    assert labels(svc.available_slots(1, at(0), at(23, d=MONDAY + timedelta(days=1))))[0] == "01-08 09:00"
    r = book(svc, starts_at=at(11))
    assert r.outcome is Outcome.OUTSIDE_HOURS and labels(r.alternatives)[0].startswith("01-08")
    [ev] = events(clinic, "clinic_closures")
    assert ev[1] is None and ev[3]["on_date"] == MONDAY.isoformat()


def test_hold_hides_the_slot_from_others_not_from_its_holder(svc, clinic, clock):
    held = svc.hold(holder="chat-a", dentist_id=1, service_id=1, starts_at=at(11))
    assert held.outcome is Outcome.HELD and held.hold_expires_at == clock.now + timedelta(minutes=5)
    assert "01-07 11:00" not in labels(svc.available_slots(1, at(0), at(23), dentist_id=1, holder="chat-b"))
    assert "01-07 11:00" in labels(svc.available_slots(1, at(0), at(23), dentist_id=1, holder="chat-a"))
    # a second chat reaching the confirmation step for that slot is offered alternatives first
    second = svc.hold(holder="chat-b", dentist_id=1, service_id=1, starts_at=at(11))
    assert second.outcome is Outcome.SLOT_TAKEN and "01-07 11:00" not in labels(second.alternatives)
    assert book(svc, patient_id=2, holder="chat-b").outcome is Outcome.SLOT_TAKEN
    # the holder's confirmation turns the hold into the booking
    mine = book(svc, holder="chat-a")
    assert mine.outcome is Outcome.BOOKED
    with psycopg.connect(clinic) as conn:
        assert conn.execute("SELECT count(*) FROM slot_holds").fetchone() == (0,)
    ops = [e[3]["op"] for e in events(clinic, "slot_holds")]
    assert ops == ["insert", "delete"]


def test_expired_hold_frees_the_slot_and_is_announced(svc, clinic, clock):
    assert svc.hold(holder="chat-a", dentist_id=1, service_id=1, starts_at=at(11)).outcome is Outcome.HELD
    clock.now += timedelta(minutes=6)
    assert "01-07 11:00" in labels(svc.available_slots(1, at(0), at(23), dentist_id=1, holder="chat-b"))
    assert svc.expire_holds() == 1
    assert [(e[1], e[3]["op"]) for e in events(clinic, "slot_holds")] == [(1, "insert"), (1, "delete")]
    assert book(svc, patient_id=2, holder="chat-b").outcome is Outcome.BOOKED


def test_a_holder_keeps_one_hold_and_the_database_refuses_overlapping_holds(svc, clinic):
    svc.hold(holder="chat-a", dentist_id=1, service_id=1, starts_at=at(10))
    svc.hold(holder="chat-a", dentist_id=1, service_id=1, starts_at=at(11))
    with psycopg.connect(clinic) as conn:
        assert conn.execute("SELECT count(*) FROM slot_holds WHERE holder = 'chat-a'").fetchone() == (1,)
        with pytest.raises(psycopg.errors.ExclusionViolation):
            conn.execute("INSERT INTO slot_holds (dentist_id, service_id, holder, starts_at, ends_at, expires_at)"
                         " VALUES (1, 1, 'raw', %s, %s, now() + interval '5 min')", (at(11, 15), at(11, 45)))


def test_repeated_idempotency_key_returns_the_first_booking(svc, clinic):
    first = book(svc, idempotency_key="chat-a:msg-17")
    again = book(svc, idempotency_key="chat-a:msg-17", starts_at=at(11, 30))
    assert first.outcome is again.outcome is Outcome.BOOKED
    assert again.replayed and again.appointment.id == first.appointment.id and again.appointment.starts_at == at(11)
    stranger = book(svc, patient_id=2, idempotency_key="chat-a:msg-17")
    assert (stranger.outcome, stranger.field) == (Outcome.INVALID, "idempotency_key")
    with psycopg.connect(clinic) as conn:
        assert conn.execute("SELECT count(*) FROM appointments").fetchone() == (1,)


def test_concurrent_repeats_of_one_key_book_once(svc, clinic):
    barrier = threading.Barrier(10)
    results = []

    def attempt():
        barrier.wait()
        results.append(book(svc, idempotency_key="double-click"))

    threads = [threading.Thread(target=attempt) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.outcome for r in results} == {Outcome.BOOKED}
    assert len({r.appointment.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1


def test_reschedule_rechecks_notice_and_holds(svc, clinic):
    appt = book(svc, starts_at=at(11)).appointment
    assert svc.reschedule(ADMIN, appt.id, at(9, 15)).outcome is Outcome.TOO_SOON
    svc.hold(holder="chat-z", dentist_id=1, service_id=1, starts_at=at(10, 30))
    assert svc.reschedule(ADMIN, appt.id, at(10, 30)).outcome is Outcome.SLOT_TAKEN
    assert svc.reschedule(ADMIN, appt.id, at(10, 15)).outcome is Outcome.SLOT_TAKEN  # overlaps the hold
    assert svc.reschedule(ADMIN, appt.id, at(10)).outcome is Outcome.RESCHEDULED     # ends as it begins
    assert svc.reschedule(ADMIN, appt.id, at(11, 30)).outcome is Outcome.RESCHEDULED
    # the holder's own hold on the new time does not block the move, and the move consumes it
    moved = svc.reschedule(ADMIN, appt.id, at(10, 30), holder="chat-z")
    assert moved.outcome is Outcome.RESCHEDULED
    with psycopg.connect(clinic) as conn:
        assert conn.execute("SELECT count(*) FROM slot_holds").fetchone() == (0,)
