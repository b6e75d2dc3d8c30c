"""Applying every migration from zero gives the expected schema; re-running is a no-op."""

from __future__ import annotations

import psycopg
import pytest

from bot.migrate import discover, migrate

EXPECTED_TABLES = {
    "dentists", "patients", "services", "working_hours", "time_off", "appointments",
    "realtime_events", "schema_migrations",
}


def test_from_empty_database_and_idempotent(db_url):
    # db_url is cloned from a template migrated once; running again applies nothing
    assert migrate(db_url) == []
    with psycopg.connect(db_url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        triggers = {r[0] for r in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
        constraints = {r[0] for r in conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'appointments'::regclass")}
    assert EXPECTED_TABLES <= tables
    assert versions == [m.version for m in discover()]
    assert {"appointments_outbox", "working_hours_outbox", "time_off_outbox"} <= triggers
    assert {"appointments_no_overlap", "appointments_status_check", "appointments_time_check"} <= constraints


def test_fresh_database_gets_every_migration(pg_server):
    name = "clinic_fresh_migrate"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_server.rpartition("/")[0] + "/" + name
    try:
        assert migrate(url) == [m.name for m in discover()]
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_edited_migration_is_refused(db_url, tmp_path):
    for m in discover():
        (tmp_path / m.name).write_text(m.sql)
    first = discover()[0]
    (tmp_path / first.name).write_text(first.sql + "\n-- edited\n")
    with pytest.raises(RuntimeError, match="changed after it was applied"):
        migrate(db_url, tmp_path)
