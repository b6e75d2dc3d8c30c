"""Availability lookup: the action server's cache versus the same answer from SQL, one run.

    .venv/bin/python bench/cache_vs_sql.py [--iterations N] [--bookings N]

Builds a scratch database (migrated, demo clinic seeded, then ``--bookings`` visits spread
over the next 60 days so the diaries are realistically full), loads an
``AvailabilityCache``, checks that both paths give the same slots, then times:

1. one service, any dentist, the next 7 days (what "when can I come for a cleaning?" asks);
2. one service, one dentist, one day.

SQL = ``BookingService.available_slots`` (a transaction, the schedule reads, the same slot
computation); cache = ``AvailabilityCache.free_slots`` (no SQL). The table goes to stdout
and to its section of BENCHMARKS.md. PostgreSQL: BENCH_DATABASE_URL / TEST_DATABASE_URL
(a server URL; a scratch database is created and dropped) or 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from actions.cache import AvailabilityCache  # noqa: E402
from bench.common import (have_plotting, load_average, machine, pct, plot_latency, plot_path,  # noqa: E402
                          revision, scratch_database, utc_now, write_section)
from bot.booking import BookingService  # noqa: E402
from bot.db import make_engine  # noqa: E402
from bot.seed import seed  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.tokens import Identity  # noqa: E402

UTC = timezone.utc
ADMIN = Identity("admin", "bench")


def timed(fn, iterations: int) -> list[float]:
    fn()  # warm
    out = []
    for _ in range(iterations):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def fill(db_url: str, booking: BookingService, count: int, now: datetime) -> int:
    """Book ``count`` visits on free slots through the booking service, so each takes its chair
    (and hygienist) as a real booking does; a patient busy then is skipped."""
    rng = random.Random(7)
    with psycopg.connect(db_url, autocommit=True) as conn:
        services = [r[0] for r in conn.execute("SELECT id FROM services ORDER BY id")]
        patients = [r[0] for r in conn.execute("SELECT id FROM patients")]
    made = 0
    for service_id in services:
        slots = booking.available_slots(service_id, now, now + timedelta(days=60))
        rng.shuffle(slots)
        for slot in slots[: count // len(services)]:
            made += booking.book(ADMIN, patient_id=rng.choice(patients), dentist_id=slot.dentist_id,
                                 service_id=service_id, starts_at=slot.starts_at, status="confirmed").ok
    return made


def measure(cache: AvailabilityCache, booking: BookingService, settings: Settings, now: datetime,
            iterations: int) -> list[tuple[str, int, list[float], list[float]]]:
    """Each query: its label, the number of slots, cache and SQL timings (ms); same answer asserted."""
    svc = next(s.id for s in cache.services() if s.name == "Cleaning")
    midnight = now.astimezone(settings.tz).replace(hour=0, minute=0, second=0, microsecond=0)
    dentist, day = next((d.id, midnight + timedelta(days=k)) for k in range(2, 30) for d in cache.dentists()
                        if len(cache.free_slots(svc, midnight + timedelta(days=k),
                                                midnight + timedelta(days=k + 1), dentist_id=d.id)) >= 3)
    filling = next(s.id for s in cache.services() if s.name == "Filling")
    cases = [
        ("Cleaning, any dentist, next 7 days", dict(service_id=svc, start=now, end=now + timedelta(days=7))),
        ("Cleaning, one dentist, one day", dict(service_id=svc, start=day, end=day + timedelta(days=1),
                                                 dentist_id=dentist)),
        ("Filling, any dentist, next 7 days", dict(service_id=filling, start=now, end=now + timedelta(days=7))),
    ]
    rows = []
    for label, q in cases:
        want = booking.available_slots(q["service_id"], q["start"], q["end"], dentist_id=q.get("dentist_id"))
        got = cache.free_slots(**q)
        assert got == want, f"{label}: cache and SQL disagree"
        sql_ms = timed(lambda: booking.available_slots(q["service_id"], q["start"], q["end"],
                                                       dentist_id=q.get("dentist_id")), iterations)
        cache_ms = timed(lambda: cache.free_slots(**q), iterations * 10)
        rows.append((label, len(want), cache_ms, sql_ms))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=300, help="SQL iterations (the cache gets 10x)")
    parser.add_argument("--bookings", type=int, default=400)
    args = parser.parse_args()

    load_start = load_average()
    engine = None
    with scratch_database("bench_cache") as db_url:
        try:
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
            rows = measure(cache, booking, settings, now, args.iterations)
        finally:
            if engine is not None:
                engine.dispose()

    lines = [
        "### Availability lookup: cache vs SQL",
        "",
        f"- Command: `.venv/bin/python bench/cache_vs_sql.py --iterations {args.iterations} --bookings {args.bookings}`",
        f"- Code: {revision()}",
        f"- Machine: {machine()}; load average at start {load_start}, at the end {load_average()}",
        f"- Date: {utc_now()}",
        f"- Data: demo clinic (3 dentists, 2 hygienists, 4 chairs, 8 services) + {made} visits over 60 days, each in a chair; cache load {load_ms:.0f} ms;"
        f" cache {args.iterations * 10} / SQL {args.iterations} iterations per query, same slots asserted",
        "",
        "| Query | slots | cache p50 (ms) | cache p95 (ms) | SQL p50 (ms) | SQL p95 (ms) | ratio p50 | ratio p95 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, n, c, q in rows:
        lines.append(f"| {label} | {n} | {pct(c, 50):.3f} | {pct(c, 95):.3f} | {pct(q, 50):.2f} | {pct(q, 95):.2f} "
                     f"| {pct(q, 50) / pct(c, 50):.0f}× | {pct(q, 95) / pct(c, 95):.0f}× |")
    lines += ["", "Target: the cache at least 50× faster. The SQL path is the reference answer "
              "(`BookingService.available_slots`, the naive baseline); both run in this process against the "
              "same PostgreSQL."]
    if have_plotting():
        png = plot_latency(plot_path("cache-vs-sql.png", False),
                           [(label, {"cache": c, "sql (naive baseline)": q}) for label, _, c, q in rows],
                           title="Availability lookup: the action server's cache vs SQL, same answer",
                           unit="lookup latency", floor_ms=0.001)
        lines += ["", f"![cache vs SQL lookup latency](bench/plots/{png.name})"]
    text = "\n".join(lines)
    print(text)
    write_section("cache_vs_sql", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
