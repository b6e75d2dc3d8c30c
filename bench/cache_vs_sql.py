"""Availability lookup: the action server's cache versus the same answer from SQL, one run.

    .venv/bin/python bench/cache_vs_sql.py [--iterations N] [--bookings N]

Builds a scratch database (migrated, demo clinic seeded, then ``--bookings`` visits spread
over the next 60 days so the diaries are realistically full), loads an
``AvailabilityCache``, checks that both paths give the same slots, then times:

1. one service, any dentist, the next 7 days (what "when can I come for a cleaning?" asks);
2. one service, one dentist, one day.

SQL = ``BookingService.available_slots`` (a transaction, the schedule reads, the same slot
computation); cache = ``AvailabilityCache.free_slots`` (no SQL). Markdown goes to stdout
and to ``bench/out/cache_vs_sql.md``. PostgreSQL: BENCH_DATABASE_URL / TEST_DATABASE_URL
(a server URL; a scratch database is created and dropped) or 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from actions.cache import AvailabilityCache  # noqa: E402
from bot.booking import BookingService  # noqa: E402
from bot.db import make_engine  # noqa: E402
from bot.migrate import migrate  # noqa: E402
from bot.seed import seed  # noqa: E402
from bot.settings import Settings  # noqa: E402

UTC = timezone.utc


def machine() -> str:
    cores = os.cpu_count()
    try:
        mem_kb = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
        ram = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        ram = "unknown"
    cpu = platform.processor() or "unknown"
    try:
        cpu = next(line for line in open("/proc/cpuinfo") if line.startswith("model name")).split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{cores} cores (nproc), {ram} RAM, {cpu}, Python {platform.python_version()}, {platform.system()};"
            f" load average at the end {load} (the machine is shared)")


def timed(fn, iterations: int) -> list[float]:
    fn()  # warm
    out = []
    for _ in range(iterations):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def fill(db_url: str, booking: BookingService, count: int, now: datetime) -> int:
    """Book ``count`` visits (direct INSERTs, as another client would) on free slots."""
    rng = random.Random(7)
    with psycopg.connect(db_url, autocommit=True) as conn:
        services = [r for r in conn.execute("SELECT id, duration_minutes FROM services ORDER BY id")]
        patients = [r[0] for r in conn.execute("SELECT id FROM patients")]
        made = 0
        for service_id, minutes in services:
            slots = booking.available_slots(service_id, now, now + timedelta(days=60))
            rng.shuffle(slots)
            for slot in slots[: count // len(services)]:
                try:
                    conn.execute("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at,"
                                 " status) VALUES (%s, %s, %s, %s, %s, 'confirmed')",
                                 (rng.choice(patients), slot.dentist_id, service_id, slot.starts_at,
                                  slot.starts_at + timedelta(minutes=minutes)))
                    made += 1
                except psycopg.errors.ExclusionViolation:
                    pass
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=300, help="SQL iterations (the cache gets 10x)")
    parser.add_argument("--bookings", type=int, default=400)
    args = parser.parse_args()

    server = (os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
              or "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bench_cache_{uuid.uuid4().hex[:8]}"
    db_url = server.rpartition("/")[0] + "/" + name
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = None
    try:
        migrate(db_url)
        settings = Settings(database_url=db_url, env="test", jwt_secret="b" * 40, _env_file=None)
        engine = make_engine(settings.database_url)
        seed(engine, settings)
        now = datetime.now(UTC)
        booking = BookingService(engine, settings, clock=lambda: now)
        made = fill(db_url, booking, args.bookings, now)
        cache = AvailabilityCache(engine, settings, clock=lambda: now)
        t0 = time.perf_counter()
        cache.load()
        load_ms = (time.perf_counter() - t0) * 1000
        svc = next(s.id for s in cache.services() if s.name == "Cleaning")
        midnight = now.astimezone(settings.tz).replace(hour=0, minute=0, second=0, microsecond=0)
        dentist, day = next((d.id, midnight + timedelta(days=k)) for k in range(2, 30) for d in cache.dentists()
                            if len(cache.free_slots(svc, midnight + timedelta(days=k),
                                                    midnight + timedelta(days=k + 1), dentist_id=d.id)) >= 3)
        cases = [
            ("Cleaning, any dentist, next 7 days", dict(service_id=svc, start=now, end=now + timedelta(days=7))),
            ("Cleaning, one dentist, one day", dict(service_id=svc, start=day, end=day + timedelta(days=1),
                                                     dentist_id=dentist)),
        ]
        rows = []
        for label, q in cases:
            want = booking.available_slots(q["service_id"], q["start"], q["end"], dentist_id=q.get("dentist_id"))
            got = cache.free_slots(**q)
            assert got == want, f"{label}: cache and SQL disagree"
            sql_ms = timed(lambda: booking.available_slots(q["service_id"], q["start"], q["end"],
                                                           dentist_id=q.get("dentist_id")), args.iterations)
            cache_ms = timed(lambda: cache.free_slots(**q), args.iterations * 10)
            rows.append((label, len(want), cache_ms, sql_ms))
    finally:
        if engine is not None:
            engine.dispose()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    lines = [
        "## Availability lookup: cache vs SQL",
        "",
        f"- Command: `.venv/bin/python bench/cache_vs_sql.py --iterations {args.iterations} --bookings {args.bookings}`",
        f"- Machine: {machine()}",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Data: demo clinic (3 dentists, 8 services) + {made} visits over 60 days; cache load {load_ms:.0f} ms;"
        f" cache {args.iterations * 10} / SQL {args.iterations} iterations per query, same slots asserted",
        "",
        "| Query | slots | cache p50 (ms) | cache p95 (ms) | SQL p50 (ms) | SQL p95 (ms) | ratio p50 | ratio p95 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, n, c, s in rows:
        lines.append(f"| {label} | {n} | {pct(c, .5):.3f} | {pct(c, .95):.3f} | {pct(s, .5):.2f} | {pct(s, .95):.2f} "
                     f"| {pct(s, .5) / pct(c, .5):.0f}× | {pct(s, .95) / pct(c, .95):.0f}× |")
    lines += ["", "Target: the cache at least 50× faster (issue 4). The SQL path is the reference answer "
              "(`BookingService.available_slots`); both run in this process against the same PostgreSQL.", ""]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cache_vs_sql.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
