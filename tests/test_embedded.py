"""The embedded PostgreSQL a fresh machine gets when DATABASE_URL is unset: the whole
schema (no contrib extensions there) and its rules work on it."""

from __future__ import annotations

import socket

import psycopg
import pytest

from bot import embedded
from bot.migrate import migrate

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_embedded_server_runs_the_schema(tmp_path):
    port = _free_port()
    data = tmp_path / "pgdata"
    url = embedded.start(data, port)
    try:
        assert url == f"postgresql://postgres@127.0.0.1:{port}/clinic"
        assert embedded.start(data, port) == url  # idempotent while running
        assert migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'btree_gist'").fetchone() == (0,)
            conn.execute("LISTEN realtime_events")
            conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'A');"
                         "INSERT INTO patients (id, full_name) VALUES (1, 'P');"
                         "INSERT INTO services (id, name, duration_minutes, price_cents) VALUES (1, 'S', 30, 1)")
            ins = ("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at)"
                   " VALUES (1, 1, 1, %s, %s)")
            conn.execute(ins, ("2030-01-01 10:00Z", "2030-01-01 10:30Z"))
            with pytest.raises(psycopg.errors.ExclusionViolation):
                conn.execute(ins, ("2030-01-01 10:15Z", "2030-01-01 10:45Z"))
            appt_event = conn.execute("SELECT id FROM realtime_events WHERE type = 'appointment_created'").fetchone()[0]
            payloads = [n.payload for n in conn.notifies(timeout=5, stop_after=3)]
            # the dentist and the service announce themselves too (availability), then the visit
            assert payloads[-1] == f'{{"type" : "appointment_created", "id" : {appt_event}}}'
    finally:
        assert embedded.stop(data)
    assert not embedded.stop(data)
