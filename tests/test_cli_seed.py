"""``python -m bot`` as a user runs it, and the demo clinic it seeds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest

from bot.seed import seed
from bot.tokens import verify
from tests.prereq import require

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, db_url: str | None = None, secret: str = "t" * 40) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "JWT_SECRET")}
    env["JWT_SECRET"] = secret
    if db_url:
        env["DATABASE_URL"] = db_url
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_seed_is_idempotent_and_realistic(engine, settings, db_url):
    first = seed(engine, settings)
    assert first["dentists"] >= 3 and first["services"] >= 6 and first["patients"] >= 20
    assert first["time_off"] >= 1 and first["appointments"] >= 3
    assert set(seed(engine, settings).values()) == {0}
    with psycopg.connect(db_url) as conn:
        hours = conn.execute("SELECT dentist_id, array_agg(weekday || ':' || start_time || '-' || end_time"
                             " ORDER BY weekday, start_time) FROM working_hours GROUP BY dentist_id").fetchall()
        lunch = conn.execute("SELECT count(DISTINCT dentist_id) FROM working_hours w1 WHERE EXISTS"
                             " (SELECT 1 FROM working_hours w2 WHERE w2.dentist_id = w1.dentist_id"
                             "  AND w2.weekday = w1.weekday AND w2.start_time > w1.end_time)").fetchone()[0]
        lowest = conn.execute("SELECT count(*) FROM appointments WHERE patient_id = (SELECT min(id) FROM patients)"
                              " AND starts_at > now() AND status <> 'cancelled'").fetchone()[0]
        prices = conn.execute("SELECT min(price_cents), max(duration_minutes) FROM services").fetchone()
    assert len({tuple(h) for _, h in hours}) == len(hours) >= 3  # every dentist's week differs
    assert lunch >= 3                                           # everyone has a lunch break
    assert lowest >= 1
    assert prices[0] > 0 and prices[1] >= 60


def test_cli_migrate_seed_prune(db_url):
    r = cli("migrate", db_url=db_url)
    assert r.returncode == 0 and "up to date" in r.stdout
    r = cli("seed", db_url=db_url)
    assert r.returncode == 0 and "dentists=3" in r.stdout
    assert "dentists=0" in cli("seed", db_url=db_url).stdout
    r = cli("prune-events", "--older-than", "7d", db_url=db_url)
    assert r.returncode == 0 and "deleted 0" in r.stdout
    r = cli("prune-events", "--older-than", "soon", db_url=db_url)
    assert r.returncode == 2 and "expected an age" in r.stderr


@pytest.mark.parametrize("args,role", [(("admin",), "admin"), (("dentist", "2"), "dentist"),
                                       (("patient", "1"), "patient"), (("service", "actions"), "service")])
def test_cli_token_prints_it_on_the_last_line(args, role, settings):
    r = cli("token", *args, secret=settings.jwt_secret)
    assert r.returncode == 0
    assert verify(r.stdout.strip().splitlines()[-1], settings=settings).role == role


def test_cli_errors_are_one_clear_line():
    r = cli("token", "patient", "abc")
    assert r.returncode == 2 and "needs a numeric patient id" in r.stderr and "Traceback" not in r.stderr
    r = cli("migrate", db_url="postgresql://postgres@127.0.0.1:9/none")
    assert r.returncode == 1 and "database error" in r.stderr and "Traceback" not in r.stderr
    env_prod = cli("token", "admin", secret="x")
    assert env_prod.returncode == 2 and "JWT_SECRET" in env_prod.stderr


def test_a_row_written_with_psql_produces_an_event(db_url):
    require(shutil.which("psql"), "psql is not installed (Debian: postgresql-client)")
    psql = subprocess.run(["psql", db_url, "-v", "ON_ERROR_STOP=1", "-c",
                           "INSERT INTO dentists (full_name) VALUES ('Dr P');"
                           "INSERT INTO time_off (dentist_id, starts_at, ends_at) VALUES"
                           " (currval('dentists_id_seq'), now(), now() + interval '1 h')"],
                          capture_output=True, text=True, timeout=30)
    assert psql.returncode == 0, psql.stderr
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT type, payload->>'source', created_at FROM realtime_events").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("availability_changed", "dentists"), ("availability_changed", "time_off")]
    assert rows[0][2] <= datetime.now(timezone.utc)


@pytest.mark.parametrize("command", [["migrate"], ["seed"], ["up", "--no-train", "--skip", "sync", "--skip",
                                                            "actions", "--skip", "rasa"]])
def test_an_edited_applied_migration_is_one_line_and_exit_code_2(db_url, command):
    # what an edited file looks like to bot.migrate: its checksum is not the one applied
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'before-the-edit' WHERE version = '003'")
    r = cli(*command, db_url=db_url)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1] == ("migration error: 003_scheduling_rules.sql was changed after it was "
                                         "applied; add a new migration instead")
    assert sum("003_scheduling_rules.sql" in line for line in r.stderr.splitlines()) == 1
