"""A fresh, migrated database for the benchmark, and the writers that book into it.

The clinic is purpose-built (the demo seed has 3 dentists and 24 patients): 50 dentists,
5,000 patients, one 30-minute service, no working hours (the bench writes appointments
straight into the table, so availability rules are not in the way; the outbox triggers
and the no-overlap constraint are).

Writers commit at a fixed rate: writer ``k`` of ``W`` books at ``t0 + (k + W·i) / rate``.
Each booking is one autocommitted ``INSERT ... RETURNING id, clock_timestamp()``: the
server's clock read as the row is written, just before COMMIT, is the commit time recorded
for that appointment (same machine, same clock as the clients). It can only be early, so
latencies are never flattered; the writer's own clock after the reply would be late by
however long the writer process waited for a core.
The outbox id of each appointment is read afterwards (:func:`outbox_ids`).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import psycopg

from bot.migrate import migrate

DENTISTS = 50
PATIENTS = 5000
SLOT = timedelta(minutes=30)
FAR_FUTURE = datetime(2031, 1, 6, 8, 0, tzinfo=timezone.utc)

INSERT = ("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, status)"
          " VALUES (%s, %s, 1, %s, %s, 'confirmed')"
          " RETURNING id, (extract(epoch FROM clock_timestamp()) * 1e6)::bigint * 1000")


def server_url(dbname: str = "postgres", host: str = "127.0.0.1", port: int = 5432) -> str:
    return f"postgresql://postgres@{host}:{port}/{dbname}"


def create_database(dbname: str, admin_url: str | None = None) -> str:
    """Drop/create ``dbname``, apply every migration and add the clinic; return its URL."""
    admin_url = admin_url or server_url()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    url = admin_url.rsplit("/", 1)[0] + "/" + dbname
    migrate(url)
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO services (id, name, duration_minutes, price_cents)"
                     " VALUES (1, 'Bench visit', 30, 0)")
        conn.execute("INSERT INTO dentists (id, full_name, specialty)"
                     " SELECT g, 'Dr. Bench ' || g, 'General dentistry' FROM generate_series(1, %s) g",
                     (DENTISTS,))
        conn.execute("INSERT INTO patients (id, full_name, phone)"
                     " SELECT g, 'Patient ' || g, '+1555' || lpad(g::text, 7, '0')"
                     " FROM generate_series(1, %s) g", (PATIENTS,))
        conn.execute("SELECT setval('dentists_id_seq', %s), setval('patients_id_seq', %s)",
                     (DENTISTS, PATIENTS))
    return url


def drop_database(dbname: str, admin_url: str | None = None) -> None:
    with psycopg.connect(admin_url or server_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@dataclass
class Booking:
    appointment_id: int
    dentist_id: int
    patient_id: int
    commit_ns: int
    late_ms: float  # how far behind its schedule the writer started it


@dataclass
class Slots:
    """Per-dentist next free slot, shared by every writer of the run (one event loop), and the
    starts each patient already has (a patient's visits may not overlap either)."""
    next_index: dict[int, int] = field(default_factory=dict)
    booked: set[tuple[int, datetime]] = field(default_factory=set)

    def patient_free_at(self, rng: random.Random, starts: datetime) -> int:
        while True:
            patient = rng.randint(1, PATIENTS)
            if (patient, starts) not in self.booked:
                self.booked.add((patient, starts))
                return patient

    def take(self, dentist_id: int) -> tuple[datetime, datetime]:
        i = self.next_index.get(dentist_id, 0)
        self.next_index[dentist_id] = i + 1
        starts = FAR_FUTURE + i * SLOT
        return starts, starts + SLOT


async def write(url: str, *, rate: float, duration: float, writers: int, slots: Slots,
                rng: random.Random) -> list[Booking]:
    """Book at ``rate`` per second for ``duration`` seconds from ``writers`` connections."""
    conns = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(writers)]
    bookings: list[Booking] = []
    total = int(round(rate * duration))
    t0 = time.monotonic() + 0.2

    async def run(k: int, conn: psycopg.AsyncConnection) -> None:
        for i in range(k, total, writers):
            due = t0 + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            late = max(0.0, -delay) * 1000.0
            dentist = rng.randint(1, DENTISTS)
            starts, ends = slots.take(dentist)
            patient = slots.patient_free_at(rng, starts)
            cur = await conn.execute(INSERT, (patient, dentist, starts, ends))
            appointment_id, committed = await cur.fetchone()
            bookings.append(Booking(appointment_id, dentist, patient, committed, late))

    try:
        await asyncio.gather(*(run(k, c) for k, c in enumerate(conns)))
    finally:
        for conn in conns:
            await conn.close()
    return bookings


def outbox_ids(url: str, appointment_ids: list[int]) -> dict[int, int]:
    """appointment id → id of its ``appointment_created`` outbox row."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT (payload->'appointment'->>'id')::bigint, id FROM realtime_events"
            " WHERE type = 'appointment_created' AND (payload->'appointment'->>'id')::bigint = ANY(%s)",
            (appointment_ids,)).fetchall()
    return dict(rows)
