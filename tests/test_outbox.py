"""Every write, from any client, leaves one outbox row and a small NOTIFY naming it."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest

from bot.outbox_admin import parse_age, prune_events

START = "2030-01-07 15:00+00"


@pytest.fixture
def clinic(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'Dr A'), (2, 'Dr B')")
        conn.execute("INSERT INTO patients (id, full_name) VALUES (1, 'P1'), (2, 'P2')")
        conn.execute("INSERT INTO services (id, name, duration_minutes, price_cents) VALUES (1, 'S', 30, 100)")
        conn.execute("DELETE FROM realtime_events")  # the catalogue's own events (tested below)
    return db_url


class Listener:
    """A LISTEN connection of its own, like the sync service's."""

    def __init__(self, url: str):
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("LISTEN realtime_events")

    def drain(self, expected: int, timeout: float = 5.0) -> list[dict]:
        got = []
        for note in self.conn.notifies(timeout=timeout, stop_after=expected):
            assert note.channel == "realtime_events"
            got.append(json.loads(note.payload))
        return got

    def close(self):
        self.conn.close()


def outbox(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, type, dentist_id, patient_id, payload FROM realtime_events ORDER BY id").fetchall()


def test_appointment_insert_update_delete(clinic):
    listener = Listener(clinic)
    with psycopg.connect(clinic, autocommit=True) as conn:
        appt = conn.execute(
            "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at)"
            " VALUES (1, 1, 1, %s, %s::timestamptz + interval '30 min') RETURNING id", (START, START)
        ).fetchone()[0]
        conn.execute("UPDATE appointments SET dentist_id = 2, patient_id = 2, status = 'confirmed' WHERE id = %s",
                     (appt,))
        conn.execute("DELETE FROM appointments WHERE id = %s", (appt,))
    notes = listener.drain(3)
    listener.close()
    rows = outbox(clinic)
    assert [r[1] for r in rows] == ["appointment_created", "appointment_updated", "appointment_deleted"]
    assert notes == [{"type": r[1], "id": r[0]} for r in rows]
    assert [(r[2], r[3]) for r in rows] == [(1, 1), (2, 2), (2, 2)]
    created, updated, deleted = (r[4] for r in rows)
    assert created["appointment"]["id"] == appt and created["appointment"]["status"] == "pending"
    assert updated["appointment"]["dentist_id"] == 2
    assert updated["previous"]["dentist_id"] == 1 and updated["previous"]["patient_id"] == 1
    assert updated["previous"]["status"] == "pending"
    assert deleted["appointment"]["status"] == "confirmed"


def test_working_hours_and_time_off_announce_availability_without_patient_data(clinic):
    listener = Listener(clinic)
    with psycopg.connect(clinic, autocommit=True) as conn:
        wh = conn.execute("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time)"
                          " VALUES (1, 1, '09:00', '12:00') RETURNING id").fetchone()[0]
        conn.execute("UPDATE working_hours SET dentist_id = 2 WHERE id = %s", (wh,))
        conn.execute("DELETE FROM working_hours WHERE id = %s", (wh,))
        off = conn.execute("INSERT INTO time_off (dentist_id, starts_at, ends_at, reason)"
                           " VALUES (1, %s, %s::timestamptz + interval '1 day', 'Conference') RETURNING id",
                           (START, START)).fetchone()[0]
        conn.execute("DELETE FROM time_off WHERE id = %s", (off,))
    rows = outbox(clinic)
    notes = listener.drain(len(rows))
    listener.close()
    assert notes == [{"type": "availability_changed", "id": r[0]} for r in rows]
    # the move between dentists tells both of them
    assert [(r[2], r[4]["source"], r[4]["op"]) for r in rows] == [
        (1, "working_hours", "insert"), (2, "working_hours", "update"), (1, "working_hours", "update"),
        (2, "working_hours", "delete"), (1, "time_off", "insert"), (1, "time_off", "delete")]
    assert all(r[3] is None for r in rows)
    assert all("patient" not in json.dumps(r[4]) and "reason" not in r[4] for r in rows)


def test_dentist_and_service_changes_announce_availability(clinic):
    with psycopg.connect(clinic, autocommit=True) as conn:
        conn.execute("UPDATE dentists SET active = false WHERE id = 2")
        conn.execute("UPDATE services SET duration_minutes = 45 WHERE id = 1")
    rows = outbox(clinic)
    assert [(r[1], r[2], r[3], r[4]["source"], r[4]["op"]) for r in rows] == [
        ("availability_changed", 2, None, "dentists", "update"),
        ("availability_changed", None, None, "services", "update")]  # a service: clinic-wide


def test_a_40kb_note_still_produces_a_small_notification(clinic):
    listener = Listener(clinic)
    note = "x" * 40_000
    with psycopg.connect(clinic, autocommit=True) as conn:
        conn.execute("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, notes)"
                     " VALUES (1, 1, 1, %s, %s::timestamptz + interval '30 min', %s)", (START, START, note))
    [msg] = listener.drain(1)
    listener.close()
    [(event_id, kind, _, _, payload)] = outbox(clinic)
    assert msg == {"type": "appointment_created", "id": event_id}
    assert payload["appointment"]["notes"] == note


def test_rolled_back_write_leaves_no_event(clinic):
    listener = Listener(clinic)
    with psycopg.connect(clinic) as conn:
        conn.execute("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time)"
                     " VALUES (1, 2, '09:00', '12:00')")
        conn.rollback()
    assert listener.drain(1, timeout=0.5) == []
    listener.close()
    assert outbox(clinic) == []


def test_database_refuses_bad_rows(clinic):
    bad = [
        ("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at)"
         " VALUES (1, 1, 1, %s, %s::timestamptz - interval '1 min')", psycopg.errors.CheckViolation),
        ("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, status)"
         " VALUES (1, 1, 1, %s, %s::timestamptz + interval '1 h', 'maybe')", psycopg.errors.CheckViolation),
        ("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at)"
         " VALUES (1, 99, 1, %s, %s::timestamptz + interval '1 h')", psycopg.errors.ForeignKeyViolation),
    ]
    with psycopg.connect(clinic, autocommit=True) as conn:
        for sql, error in bad:
            with pytest.raises(error):
                conn.execute(sql, (START, START))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time)"
                         " VALUES (1, 8, '09:00', '12:00')")


def test_overlap_refused_but_cancelled_and_adjacent_visits_allowed(clinic):
    ins = ("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, status)"
           " VALUES (1, %s, 1, %s::timestamptz + %s, %s::timestamptz + %s + interval '30 min', %s)")
    with psycopg.connect(clinic, autocommit=True) as conn:
        conn.execute(ins, (1, START, "0 min", START, "0 min", "pending"))
        with pytest.raises(psycopg.errors.ExclusionViolation):
            conn.execute(ins, (1, START, "15 min", START, "15 min", "confirmed"))
        conn.execute(ins, (1, START, "15 min", START, "15 min", "cancelled"))  # cancelled holds nothing
        conn.execute(ins, (1, START, "30 min", START, "30 min", "pending"))    # back-to-back is fine
        with pytest.raises(psycopg.errors.ExclusionViolation, match="appointments_patient_no_overlap"):
            conn.execute(ins, (2, START, "0 min", START, "0 min", "pending"))  # one patient, two chairs
        conn.execute(ins.replace("VALUES (1,", "VALUES (2,"),
                     (2, START, "0 min", START, "0 min", "pending"))  # another dentist, another patient
        with pytest.raises(psycopg.errors.ExclusionViolation):  # un-cancelling into a taken slot
            conn.execute("UPDATE appointments SET status = 'pending' WHERE status = 'cancelled'")


def test_prune_keeps_recent_and_the_newest(clinic):
    with psycopg.connect(clinic, autocommit=True) as conn:
        for day in range(1, 4):
            conn.execute("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time)"
                         " VALUES (1, %s, '09:00', '12:00')", (day,))
        conn.execute("UPDATE realtime_events SET created_at = now() - interval '30 days'")
    newest = outbox(clinic)[-1][0]
    assert prune_events(clinic, timedelta(days=7)) == 2
    assert [r[0] for r in outbox(clinic)] == [newest]
    assert prune_events(clinic, timedelta(days=7)) == 0


@pytest.mark.parametrize("text,expected", [("7d", timedelta(days=7)), ("12h", timedelta(hours=12)),
                                           ("30m", timedelta(minutes=30)), ("2w", timedelta(weeks=2))])
def test_parse_age(text, expected):
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d7", "-1d", "7 days", "1y"])
def test_parse_age_refuses(text):
    with pytest.raises(ValueError, match="expected an age"):
        parse_age(text)
