"""The sync service releases expired slot holds, and the release is announced."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg

from sync_helpers import Recorder, serve, token


async def test_expired_hold_is_swept_and_announced(db_url, settings):
    start = datetime(2030, 1, 7, 15, tzinfo=timezone.utc)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'Dr A')")
        conn.execute("INSERT INTO services (id, name, duration_minutes, price_cents) VALUES (1, 'S', 30, 1)")
    async with serve(settings) as (url, app):
        dentist = await Recorder("dentist").connect(url, token(settings, "dentist", 1))
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                hold_id = conn.execute(
                    "INSERT INTO slot_holds (dentist_id, service_id, holder, starts_at, ends_at, expires_at)"
                    " VALUES (1, 1, 'chat-1', %s, %s, now() + interval '1 second') RETURNING id",
                    (start, start + timedelta(minutes=30))).fetchone()[0]
            # created, then (within a sweep or two) deleted by the service itself
            await dentist.wait_for(lambda r: len(r.events) >= 2, timeout=15)
            kinds = [(e, d["source"], d["op"], d["row_id"]) for e, d in dentist.events]
            assert kinds == [("availability_changed", "slot_holds", "insert", hold_id),
                             ("availability_changed", "slot_holds", "delete", hold_id)]
            assert all("holder" not in d and "patient_id" not in d for _, d in dentist.events)
            with psycopg.connect(db_url) as conn:
                assert conn.execute("SELECT count(*) FROM slot_holds").fetchone() == (0,)
        finally:
            await dentist.close()
