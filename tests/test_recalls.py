"""Recalls (bot/recalls.py, GET /api/recalls) against real PostgreSQL: who is due for a service
again, with the interval added in the clinic's wall-clock time across a daylight-saving change."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import psycopg
import pytest

from bot import recalls
from bot.db import session_scope
from tests.api_helpers import call, seeded_clinic

NY = ZoneInfo("America/New_York")
UTC = timezone.utc
MAY_VISIT = datetime(2026, 5, 4, 9, 0, tzinfo=NY)  # EDT, UTC−4
DUE = datetime(2026, 11, 4, 9, 0, tzinfo=NY)  # six calendar months later, EST, UTC−5: 14:00 UTC


@pytest.fixture
def clinic(db_url: str) -> str:
    """A six-monthly cleaning, a filling with no recall, and five patients' histories."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'Dr A')")
        conn.execute("INSERT INTO services (id, name, duration_minutes, price_cents, recall_interval)"
                     " VALUES (1, 'Cleaning', 45, 14000, '6 months'), (2, 'Filling', 60, 18000, NULL)")
        for p in range(1, 6):
            conn.execute("INSERT INTO patients (id, full_name, phone) VALUES (%s, %s, %s)",
                         (p, f"Patient {p}", f"+1212555{p:04d}"))
        visit = ("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, status)"
                 " VALUES (%s, 1, %s, %s, %s + interval '45 minutes', %s)")
        for patient, service, at, status in [
                (1, 1, MAY_VISIT, "completed"),                                   # due on 4 November, 9:00
                (2, 1, MAY_VISIT.replace(day=5), "completed"),                    # due, but booked again:
                (2, 1, datetime(2026, 11, 20, 10, tzinfo=NY), "pending"),         # not on the list
                (3, 1, datetime(2026, 8, 1, 10, tzinfo=NY), "completed"),         # due only in February
                (4, 1, datetime(2025, 1, 10, 10, tzinfo=NY), "completed"),        # long overdue, but the
                (4, 1, datetime(2026, 9, 1, 10, tzinfo=NY), "completed"),         # latest visit counts
                (5, 2, datetime(2025, 1, 10, 12, tzinfo=NY), "completed"),        # no recall for a filling
                (5, 1, datetime(2025, 12, 1, 12, tzinfo=NY), "cancelled")]:       # a cancelled one is no visit
            conn.execute(visit, (patient, service, at, at, status))
    return db_url


def due_ids(engine, now: datetime) -> list[tuple[int, str]]:
    with session_scope(engine) as s:
        return [(d.patient_id, d.due_at.astimezone(UTC).isoformat()) for d in recalls.due(s, now, "America/New_York")]


def test_due_after_six_calendar_months_in_the_clinics_wall_clock(clinic, engine):
    assert DUE.astimezone(UTC) == datetime(2026, 11, 4, 14, tzinfo=UTC)
    # half an hour before 9:00 local: adding six months in UTC would already call it due (13:00 UTC)
    assert due_ids(engine, datetime(2026, 11, 4, 13, 30, tzinfo=UTC)) == []
    assert due_ids(engine, DUE) == [(1, DUE.astimezone(UTC).isoformat())]
    # a year on: patient 3 and 4 are due too, patient 2 still has their booking, patient 5 never
    later = [p for p, _ in due_ids(engine, datetime(2027, 6, 1, tzinfo=UTC))]
    assert later == [1, 3, 4]


def test_only_one_patient_when_asked(clinic, engine):
    with session_scope(engine) as s:
        assert [d.patient_id for d in recalls.due(s, datetime(2027, 6, 1, tzinfo=UTC), "America/New_York",
                                                   patient_id=3)] == [3]


async def test_the_front_desk_lists_who_is_due_and_nobody_else_may(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at,"
                         " status, operatory_id, hygienist_id) SELECT 20, 1, s.id, %s, %s, 'completed', 1, 1"
                         " FROM services s WHERE s.name = 'Cleaning'",
                         (datetime(2025, 3, 3, 14, tzinfo=UTC), datetime(2025, 3, 3, 14, 45, tzinfo=UTC)))
        tokens = c.tokens()
        status, body = await call("GET", f"{c.url}/api/recalls", tokens["admin"])
        assert status == 200
        assert [(d["patient_id"], d["service_name"]) for d in body["due"]] == [(20, "Cleaning")]
        assert body["due"][0]["due_at"].startswith("2025-09-03T")
        for who in ("dentist", "patient", "service"):
            status, body = await call("GET", f"{c.url}/api/recalls", tokens[who])
            assert (status, body["error"]) == (403, "forbidden")
