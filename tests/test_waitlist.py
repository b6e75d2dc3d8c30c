"""The waitlist (bot/waitlist.py) against real PostgreSQL: freed time offered first come first
served, one acceptance wins (the database decides), the others are told, holds and expiry."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from bot import events
from bot.booking import BookingService, Outcome
from bot.tokens import Identity
from bot.waitlist import Waitlist
from sync.outbox import FETCH_AFTER

ADMIN = Identity(role="admin", sub="admin")
FILLING = 1


def patient(pid: int) -> Identity:
    return Identity(role="patient", sub=f"patient:{pid}", patient_id=pid)


@pytest.fixture
def clinic(db_url) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'Dr Chen'), (2, 'Dr Okafor')")
        for pid in range(1, 7):
            conn.execute("INSERT INTO patients (id, full_name, phone) VALUES (%s, %s, %s)",
                         (pid, f"Patient {pid}", f"+1212555010{pid}"))
        conn.execute("INSERT INTO services (id, name, duration_minutes, price_cents) VALUES (1, 'Filling', 60, 9000)")
        for dentist in (1, 2):
            for weekday in range(1, 8):
                conn.execute("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time)"
                             " VALUES (%s, %s, '08:00', '18:00')", (dentist, weekday))
        yield conn


@pytest.fixture
def booking(engine, settings) -> BookingService:
    return BookingService(engine, settings)


@pytest.fixture
def waitlist(booking) -> Waitlist:
    return Waitlist(booking)


def outbox(conn: psycopg.Connection, type_: str) -> list[tuple[int | None, int | None, dict]]:
    return [(row[2], row[3], json.loads(row[7])) for row in conn.execute(FETCH_AFTER, (0, 10000)).fetchall()
            if row[1] == type_]


def taken_slot(booking: BookingService):
    """A time two days ahead that both dentists have booked (patients 5 and 6): the time the
    waiting patients want. Returns dentist 1's slot and visit."""
    start = datetime.now(timezone.utc) + timedelta(days=2)
    slot = booking.available_slots(FILLING, start, start + timedelta(days=1), dentist_id=1, limit=1)[0]
    visits = [booking.book(ADMIN, patient_id=pid, dentist_id=dentist, service_id=FILLING, starts_at=slot.starts_at)
              for pid, dentist in ((5, 1), (6, 2))]
    assert [v.outcome for v in visits] == [Outcome.BOOKED, Outcome.BOOKED]
    return slot, visits[0].appointment.id


def wait_for(waitlist: Waitlist, pid: int, slot, *, dentist: int | None = None):
    """Patient ``pid`` waits for exactly the slot's start (nothing else fits the range)."""
    result = waitlist.join(patient(pid), patient_id=pid, service_id=FILLING, dentist_id=dentist,
                           earliest=slot.starts_at, latest=slot.starts_at + timedelta(minutes=1),
                           conversation_id=f"chat-{pid}")
    assert result.outcome is Outcome.WAITLISTED, result
    return result.entry


def status(conn, table: str, row_id: int) -> str:
    return conn.execute(f"SELECT status FROM {table} WHERE id = %s", (row_id,)).fetchone()[0]


def test_a_freed_slot_is_offered_to_the_waiting_in_order_and_the_first_acceptance_wins(clinic, booking, waitlist):
    slot, visit = taken_slot(booking)
    first, second = wait_for(waitlist, 1, slot), wait_for(waitlist, 2, slot, dentist=1)
    wait_for(waitlist, 3, slot, dentist=2)  # waits for another dentist: not offered this one
    assert waitlist.run_once().offered == []  # the time is taken: nothing to offer

    assert booking.cancel(ADMIN, visit).outcome is Outcome.CANCELLED
    offered = waitlist.run_once().offered
    assert len(offered) == 2
    offers = [waitlist.offer(ADMIN, o) for o in offered]
    assert [(o.entry_id, o.patient_id, o.starts_at, o.status) for o in offers] == [
        (first.id, 1, slot.starts_at, "open"), (second.id, 2, slot.starts_at, "open")]
    # the slot is held for them: no one else is offered it, by SQL or by a booking
    assert slot not in booking.available_slots(FILLING, slot.starts_at, slot.ends_at, dentist_id=1)
    assert booking.book(patient(4), patient_id=4, dentist_id=1, service_id=FILLING,
                        starts_at=slot.starts_at).outcome is Outcome.SLOT_TAKEN
    # each offer went to its patient alone
    made = outbox(clinic, events.WAITLIST_OFFER)
    assert [(d, p, e["offer"]["status"]) for d, p, e in made] == [(None, 1, "open"), (None, 2, "open")]
    assert all("holder" not in e["offer"] for _, _, e in made)
    assert waitlist.run_once().offered == []  # offered once

    won = waitlist.accept(patient(2), offered[1])
    assert won.outcome is Outcome.BOOKED and won.appointment.starts_at == slot.starts_at
    assert won.appointment.patient_id == 2
    late = waitlist.accept(patient(1), offered[0])
    assert late.outcome is Outcome.OFFER_GONE
    assert [status(clinic, "waitlist_offers", o) for o in offered] == ["gone", "accepted"]
    assert [status(clinic, "waitlist_entries", e.id) for e in (first, second)] == ["waiting", "booked"]
    # the chat of the one who lost hears it; the winner answered in their own chat
    assert [(n.offer_id, n.conversation_id, n.status) for n in waitlist.chats_to_tell()] == [
        (offered[0], "chat-1", "gone")]
    changed = [e["entry"]["status"] for _, p, e in outbox(clinic, events.WAITLIST_CHANGED) if p == 2]
    assert changed == ["waiting", "offered", "booked"]


def test_concurrent_acceptances_book_exactly_one(clinic, booking, waitlist):
    slot, visit = taken_slot(booking)
    for pid in (1, 2, 3):
        wait_for(waitlist, pid, slot)
    booking.cancel(ADMIN, visit)
    offered = waitlist.run_once().offered
    assert len(offered) == 3
    barrier, results = threading.Barrier(3), {}

    def take(pid: int, offer_id: int) -> None:
        barrier.wait()
        results[pid] = waitlist.accept(patient(pid), offer_id).outcome

    threads = [threading.Thread(target=take, args=(pid, o)) for pid, o in zip((1, 2, 3), offered)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values(), key=str) == sorted([Outcome.BOOKED, Outcome.OFFER_GONE, Outcome.OFFER_GONE],
                                                       key=str)
    live = clinic.execute("SELECT count(*) FROM appointments WHERE starts_at = %s AND dentist_id = 1 AND status <> 'cancelled'",
                          (slot.starts_at,)).fetchone()[0]
    assert live == 1


def test_nobody_but_the_offered_patient_can_take_or_see_an_offer(clinic, booking, waitlist):
    slot, visit = taken_slot(booking)
    wait_for(waitlist, 1, slot)
    booking.cancel(ADMIN, visit)
    (offer,) = waitlist.run_once().offered
    assert waitlist.offer(patient(2), offer) is None
    assert waitlist.accept(patient(2), offer).outcome is Outcome.NOT_FOUND
    assert waitlist.decline(patient(2), offer).outcome is Outcome.NOT_FOUND
    assert waitlist.join(patient(2), patient_id=1, service_id=FILLING,
                         latest=slot.starts_at).outcome is Outcome.NOT_ALLOWED
    assert status(clinic, "waitlist_offers", offer) == "open"


def test_a_declined_offer_frees_the_slot_and_is_not_offered_again(clinic, booking, waitlist):
    slot, visit = taken_slot(booking)
    entry = wait_for(waitlist, 1, slot)
    booking.cancel(ADMIN, visit)
    (offer,) = waitlist.run_once().offered
    assert waitlist.decline(patient(1), offer).outcome is Outcome.DECLINED
    assert status(clinic, "waitlist_entries", entry.id) == "waiting"
    assert slot in booking.available_slots(FILLING, slot.starts_at, slot.ends_at, dentist_id=1)  # hold released
    assert waitlist.run_once().offered == []  # not the same slot again
    assert waitlist.chats_to_tell() == []


def test_an_offer_nobody_answers_expires_with_its_hold(clinic, engine, settings):
    clock = [datetime.now(timezone.utc)]
    booking = BookingService(engine, settings, clock=lambda: clock[0])
    waitlist = Waitlist(booking)
    slot, visit = taken_slot(booking)
    entry = wait_for(waitlist, 1, slot)
    booking.cancel(ADMIN, visit)
    (offer,) = waitlist.run_once().offered
    clock[0] += timedelta(minutes=settings.hold_minutes, seconds=1)
    assert waitlist.run_once().expired == [offer]
    assert status(clinic, "waitlist_offers", offer) == "expired"
    assert status(clinic, "waitlist_entries", entry.id) == "waiting"
    assert waitlist.accept(patient(1), offer).outcome is Outcome.OFFER_GONE
    assert [(n.offer_id, n.status) for n in waitlist.chats_to_tell()] == [(offer, "expired")]


def test_a_visit_is_moved_earlier_when_its_patient_takes_the_offer(clinic, booking, waitlist):
    slot, visit = taken_slot(booking)
    later = booking.book(ADMIN, patient_id=1, dentist_id=2, service_id=FILLING,
                         starts_at=slot.starts_at + timedelta(days=3))
    joined = waitlist.join(patient(1), patient_id=1, service_id=FILLING, earliest=slot.starts_at,
                           latest=slot.starts_at + timedelta(days=30), appointment_id=later.appointment.id)
    assert joined.outcome is Outcome.WAITLISTED
    assert joined.entry.latest == later.appointment.starts_at  # only earlier than the visit it moves
    booking.cancel(ADMIN, visit)
    offered = waitlist.run_once().offered
    offer = waitlist.offer(patient(1), offered[0])
    assert offer.starts_at < later.appointment.starts_at
    moved = waitlist.accept(patient(1), offer.id)
    assert moved.outcome is Outcome.RESCHEDULED and moved.appointment.id == later.appointment.id
    assert moved.appointment.starts_at == offer.starts_at
    assert clinic.execute("SELECT count(*) FROM appointments WHERE patient_id = 1").fetchone()[0] == 1


def test_join_refuses_what_cannot_be_waited_for(clinic, booking, waitlist):
    now = datetime.now(timezone.utc)
    me = patient(1)
    assert waitlist.join(me, patient_id=1, service_id=99, latest=now + timedelta(days=2)).field == "service_id"
    assert waitlist.join(me, patient_id=1, service_id=FILLING, latest=now - timedelta(days=1)).field == "latest"
    assert waitlist.join(me, patient_id=1, service_id=FILLING, dentist_id=42,
                         latest=now + timedelta(days=2)).field == "dentist_id"
    first = waitlist.join(me, patient_id=1, service_id=FILLING, latest=now + timedelta(days=2))
    again = waitlist.join(me, patient_id=1, service_id=FILLING, latest=now + timedelta(days=5))
    assert first.entry.id == again.entry.id and again.entry.latest > first.entry.latest  # one request, updated
    assert waitlist.withdraw(patient(2), first.entry.id).outcome is Outcome.NOT_FOUND
    assert waitlist.withdraw(me, first.entry.id).outcome is Outcome.WITHDRAWN
    assert [e.id for e in waitlist.entries(me)] == []


def test_a_pass_that_straddles_the_change_still_offers_the_earlier_request_first(clinic, booking, settings):
    """The time is freed while a pass is between two requests: the earlier one, already passed
    over, is offered it too, and first (the fair order holds across a concurrent change)."""
    slot, visit = taken_slot(booking)

    class Straddling(Waitlist):
        looked: list[int] = []

        def _candidates(self, entry, slots):
            self.looked.append(entry.id)
            if len(self.looked) == 1:  # right after the first request found nothing, the time frees
                assert booking.cancel(ADMIN, visit).outcome is Outcome.CANCELLED
            return super()._candidates(entry, slots)

    waitlist = Straddling(booking)
    # any dentist, then Dr Chen: the pass reads their free time separately, before and after the change
    first, second = wait_for(waitlist, 1, slot), wait_for(waitlist, 2, slot, dentist=1)
    offered = waitlist.run_once().offered
    assert [waitlist.offer(ADMIN, o).entry_id for o in offered] == [first.id, second.id]


def test_hours_that_widen_are_offered_to_the_waiting(clinic, booking, waitlist, settings):
    """A request for an evening time no one works: when Dr Chen stays late that day (a date
    override, written in SQL), the new time is offered."""
    day = (datetime.now(settings.tz) + timedelta(days=3)).date()
    evening = datetime.combine(day, datetime.min.time().replace(hour=19), settings.tz)
    joined = waitlist.join(patient(1), patient_id=1, service_id=FILLING, dentist_id=1, earliest=evening,
                           latest=evening + timedelta(minutes=1))
    assert joined.outcome is Outcome.WAITLISTED
    assert waitlist.run_once().offered == []
    clinic.execute("INSERT INTO date_overrides (dentist_id, on_date, start_time, end_time)"
                   " VALUES (1, %s, '08:00', '21:00')", (day,))
    (offer,) = waitlist.run_once().offered
    assert waitlist.offer(patient(1), offer).starts_at == evening
