"""50 concurrent chat users racing for 10 slots (issue 6), through Rasa's REST channel on the
whole system as ``make run`` starts it (``bot.stack.Stack``: sync service, action server, Rasa).

    .venv/bin/python bench/race.py [--users 50] [--slots 10] [--sources cache sql] [--no-report]

The clinic (a fresh database: the demo catalogue and patients, then every diary emptied) has
exactly ``--slots`` bookable consultations in the whole booking horizon: one dentist works one
day of next week, 09:00 for ``--slots`` × 30 minutes (a date override), slots every 30 minutes;
the other dentists have no hours. Every user, all at once: "I'd like a consultation with any
dentist next week" → taps one of the offered times (users spread over the buttons) → name →
phone → "yes" → the texted code. A user told the time is not free picks again from the alternatives offered (up
to ``--picks`` times); a user told there is no free time stops.

Checked in SQL afterwards: exactly ``--slots`` live appointments, all on the offered slots, no
two overlapping, one per winning user (the references the bot gave). Checked in the replies:
every user who did not book was told the time was taken and/or offered alternatives, or told
nothing is free; no HTTP error, no exception, no empty reply, no "something went wrong".

Run once per availability source of the action server, in the same invocation and against the
same stack: ``cache`` (its in-memory cache) and ``sql`` (``AVAILABILITY_SOURCE=sql``: every
question answered by ``BookingService.available_slots``, the naive baseline); the action server
is restarted between the two and the appointments are deleted. Markdown goes to stdout,
``bench/out/race.md`` and the ``race`` section of BENCHMARKS.md, every turn's latency (cache
against sql) to ``bench/plots/race.png`` (unless ``--no-report``: both then stay in bench/out/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, time as dtime, timedelta, timezone
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actions.dates import parse_when  # noqa: E402
from bench.common import (ROOT, bench_name, code_sent, have_plotting, load_average, machine, pct, plot_latency,  # noqa: E402
                          plot_path, revision, scratch_database, tree_cpu_seconds, use_source, utc_now,
                          write_section)
from bot.booking import BookingService  # noqa: E402
from bot.db import make_engine  # noqa: E402
from bot.seed import seed  # noqa: E402
from bot.stack import Stack, has_model  # noqa: E402

UTC = timezone.utc
REQUEST = "I'd like a consultation with any dentist next week"
SLOT_MINUTES = 30  # the consultation's length, and the slot step
TAKEN = ("that time isn't free", "just taken by someone else")
NO_TIME = "can't find any free time"
ERROR_TEXT = "something went wrong"


@dataclass
class User:
    index: int
    turns: list[float] = field(default_factory=list)
    outcome: str = "?"
    told_taken: int = 0  # "that time isn't free" / "just taken"
    alternatives: int = 0  # slot buttons offered again after a failed pick
    picks: int = 0
    reference: int | None = None
    errors: list[str] = field(default_factory=list)
    last_text: str = ""


def slot_buttons(replies: list[dict]) -> list[dict]:
    return [b for r in replies for b in r.get("buttons", []) or [] if "slot_choice" in b.get("payload", "")]


def text_of(replies: list[dict]) -> str:
    return " ".join(r.get("text", "") or "" for r in replies)


def phone(user: "User") -> str:
    return f"+1212555{2000 + user.index:04d}"


async def converse(stack: Stack, run: str, user: User, max_picks: int, max_turns: int = 30) -> None:
    sender = f"race-{run}-{user.index}-{uuid.uuid4().hex[:6]}"

    async def turn(message: str) -> list[dict] | None:
        t0 = time.perf_counter()
        try:
            replies = await stack.say(sender, message)
        except AssertionError as exc:  # Stack.say: a non-200 answer
            user.errors.append(f"http: {str(exc)[:120]}")
            return None
        except Exception as exc:  # timeouts, resets
            user.errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
            return None
        finally:
            user.turns.append((time.perf_counter() - t0) * 1000)
        if not replies:
            user.errors.append(f"empty reply to {message[:40]!r}")
        elif ERROR_TEXT in text_of(replies):
            user.errors.append(f"sorry_error after {message[:40]!r}")
        return replies

    replies = await turn(REQUEST)
    failed_pick = False
    for _ in range(max_turns):
        if replies is None or user.errors:
            user.outcome = "error"
            return
        text = text_of(replies)
        user.last_text = text[:200]
        buttons = slot_buttons(replies)
        if "You're booked" in text:
            found = re.search(r"Reference #(\d+)", text)
            user.reference = int(found.group(1)) if found else None
            user.outcome = "booked"
            return
        if any(t in text for t in TAKEN):
            user.told_taken += 1
            failed_pick = True
        if "Shall I book it?" in text:
            replies = await turn("yes")
        elif "6-digit code" in text:  # the code texted to the phone, as the patient reads it
            replies = await turn(await asyncio.to_thread(code_sent, stack.db_url, phone(user)) or "000000")
        elif "What name should" in text:
            replies = await turn(bench_name(user.index))
        elif "phone number" in text:
            replies = await turn(phone(user))
        elif buttons:
            if failed_pick or user.picks:
                user.alternatives += 1
            if user.picks >= max_picks:
                user.outcome = "gave_up"
                return
            pick = buttons[(user.index + user.picks) % len(buttons)]
            user.picks += 1
            failed_pick = False
            replies = await turn(pick["payload"])
        elif NO_TIME in text:
            user.outcome = "no_time_left"
            return
        else:
            user.outcome = "unexpected"
            user.errors.append(f"unexpected reply: {text[:120]!r}")
            return
    user.outcome = "too_many_turns"


def prepare(db_url: str, stack: Stack, slots: int) -> tuple[list[datetime], str]:
    """Empty every diary, open ``slots`` consultations on one day of next week; return them."""
    settings = stack.settings
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        seed(engine, settings)
        with psycopg.connect(db_url, autocommit=True) as conn:
            for table in ("slot_holds", "appointments", "time_off", "date_overrides", "clinic_closures",
                          "working_hours"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("UPDATE services SET buffer_before_minutes = 0, buffer_after_minutes = 0,"
                         " duration_minutes = %s WHERE name = 'Consultation'", (SLOT_MINUTES,))
            dentist, name = conn.execute("SELECT id, full_name FROM dentists ORDER BY id LIMIT 1").fetchone()
            service = conn.execute("SELECT id FROM services WHERE name = 'Consultation'").fetchone()[0]
            now = datetime.now(UTC)
            week = parse_when("next week", now, settings.tz)
            assert week is not None
            day = week.start.astimezone(settings.tz).date() + timedelta(days=2)  # Wednesday of next week
            start = dtime(9, 0)
            end = (datetime.combine(day, start) + timedelta(minutes=SLOT_MINUTES * slots)).time()
            conn.execute("INSERT INTO date_overrides (dentist_id, on_date, start_time, end_time, reason)"
                         " VALUES (%s, %s, %s, %s, 'race benchmark')", (dentist, day, start, end))
        booking = BookingService(engine, settings)
        found = booking.available_slots(service, now, now + timedelta(days=settings.horizon_days + 1))
        assert len(found) == slots and len({s.starts_at for s in found}) == slots, found
        return [s.starts_at for s in found], f"{name}, {day:%A %d %B %Y} 09:00–{end:%H:%M}"
    finally:
        engine.dispose()


def check_sql(db_url: str, slots: list[datetime], users: list[User]) -> dict:
    with psycopg.connect(db_url) as conn:
        live = conn.execute("SELECT id, patient_id, starts_at FROM appointments WHERE status <> 'cancelled'"
                            " ORDER BY starts_at").fetchall()
        overlaps = conn.execute(
            "SELECT count(*) FROM appointments a JOIN appointments b ON a.dentist_id = b.dentist_id"
            " AND a.id < b.id AND a.status <> 'cancelled' AND b.status <> 'cancelled'"
            " AND tstzrange(a.starts_at, a.ends_at) && tstzrange(b.starts_at, b.ends_at)").fetchone()[0]
    references = sorted(u.reference for u in users if u.outcome == "booked")
    return {
        "appointments": len(live),
        "overlaps": overlaps,
        "off_slot": sum(1 for r in live if r[2] not in set(slots)),
        "patients": len({r[1] for r in live}),
        "references_match": references == sorted(r[0] for r in live),
    }


async def race(stack: Stack, source: str, db_url: str, slots: list[datetime], n_users: int,
               max_picks: int, first: int = 0) -> dict:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM slot_holds")
        conn.execute("DELETE FROM appointments")
    await use_source(stack, source)
    for k in range(2):  # warm-up: an offer only (no tap, so no hold), not counted
        await stack.say(f"race-warmup-{source}-{k}-{uuid.uuid4().hex[:6]}", REQUEST)
    users = [User(first + i) for i in range(n_users)]  # phone(): one number per user, never reused
    run = f"{source}-{uuid.uuid4().hex[:4]}"
    procs = {name: stack.services[name].proc.pid for name in ("actions", "rasa")}
    cpu0 = {name: tree_cpu_seconds(pid) for name, pid in procs.items()}
    t0 = time.monotonic()
    await asyncio.gather(*(converse(stack, run, u, max_picks) for u in users))
    wall = time.monotonic() - t0
    cpu = {name: tree_cpu_seconds(pid) - cpu0[name] for name, pid in procs.items()}
    sql = check_sql(db_url, slots, users)
    turns = [t for u in users for t in u.turns]
    losers = [u for u in users if u.outcome not in ("booked", "error")]
    outcomes: dict[str, int] = {}
    for u in users:
        outcomes[u.outcome] = outcomes.get(u.outcome, 0) + 1
    return {
        "source": source, "users": n_users, "wall_s": wall, "turns": len(turns), "turn_ms": turns,
        "p50": statistics.median(turns), "p95": pct(turns, 95), "max": max(turns),
        "booked": outcomes.get("booked", 0), "outcomes": outcomes, "sql": sql,
        "losers": len(losers),
        "losers_told": sum(1 for u in losers if u.told_taken or u.alternatives or u.outcome == "no_time_left"),
        "losers_taken": sum(1 for u in losers if u.told_taken),
        "losers_alternatives": sum(1 for u in losers if u.alternatives),
        "told_taken": sum(u.told_taken for u in users),
        "alternatives": sum(u.alternatives for u in users),
        "errors": [e for u in users for e in u.errors],
        "picks": sum(u.picks for u in users),
        "cpu_actions_ms_per_turn": cpu["actions"] * 1000 / max(1, len(turns)),
        "cpu_rasa_ms_per_turn": cpu["rasa"] * 1000 / max(1, len(turns)),
    }


def verdict(r: dict, slots: int) -> list[str]:
    problems = []
    if r["sql"]["appointments"] != slots:
        problems.append(f"{r['sql']['appointments']} appointments, not {slots}")
    if r["sql"]["overlaps"] or r["sql"]["off_slot"]:
        problems.append(f"{r['sql']['overlaps']} overlaps, {r['sql']['off_slot']} off the slots")
    if not r["sql"]["references_match"] or r["booked"] != r["sql"]["appointments"]:
        problems.append("the bot's references differ from the appointments in SQL")
    if r["losers_told"] != r["losers"]:
        problems.append(f"{r['losers'] - r['losers_told']} losers neither told nor offered alternatives")
    if r["errors"]:
        problems.append(f"{len(r['errors'])} errors")
    return problems


def report(results: list[dict], args, where: str, startup: float, load_start: str, started: str, code: str,
           png: Path) -> str:
    rows = []
    for r in results:
        o = r["outcomes"]
        rows.append(
            f"| {r['source']} | {r['users']} | {r['turns']} | {r['p50']:.0f} | {r['p95']:.0f} | {r['max']:.0f} "
            f"| {r['wall_s']:.1f} | {r['sql']['appointments']} | {r['sql']['overlaps']} "
            f"| {r['losers']}: {r['losers_taken']} / {r['losers_alternatives']} / {o.get('no_time_left', 0)}"
            f"{' (' + str(o['gave_up']) + ' gave up)' if o.get('gave_up') else ''} "
            f"| {r['told_taken']} / {r['alternatives']} | {r['cpu_actions_ms_per_turn']:.1f} / "
            f"{r['cpu_rasa_ms_per_turn']:.0f} | {len(r['errors'])} |")
    lines = [
        f"### Race: {args.users} users for {args.slots} slots",
        "",
        f"- Command: `{' '.join(['.venv/bin/python', 'bench/race.py', *sys.argv[1:]])}`",
        f"- Code: {code}",
        f"- Machine: {machine()}; load average at start {load_start}, at the end {load_average()}",
        f"- Date: {started} (stack start-up {startup:.0f} s)",
        f"- Clinic: {args.slots} consultation slots in the whole horizon ({where}); {args.users} users at once, "
        f"each: \"{REQUEST}\" → a slot button → name → phone → \"yes\"; told it is taken, a user picks an "
        f"alternative (up to {args.picks} picks); told nothing is free, it stops.",
        "",
        "| availability source | users | turns | p50 ms | p95 ms | max ms | wall s | live appointments (SQL) "
        "| overlaps | losers: told taken / re-offered times / told nothing is left | 'taken' replies / re-offers "
        "| CPU ms per turn: action server / Rasa | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
        *rows,
    ]
    by = {r["source"]: r for r in results}
    if "cache" in by and "sql" in by:
        c, s = by["cache"], by["sql"]
        lines += ["", f"Naive baseline ÷ cache, same run: turn p50 {s['p50'] / c['p50']:.2f}×, "
                      f"p95 {s['p95'] / c['p95']:.2f}×, wall {s['wall_s'] / c['wall_s']:.2f}×, action server CPU "
                      f"per turn {s['cpu_actions_ms_per_turn'] / c['cpu_actions_ms_per_turn']:.2f}×."]
    lines.append("")
    for r in results:
        problems = verdict(r, args.slots)
        lines.append(f"- `{r['source']}`: " + ("**pass**: exactly " f"{args.slots} bookings, no overlap, every loser "
                                               "told or offered alternatives, zero errors" if not problems
                                               else "**fail**: " + "; ".join(problems)))
        for e in r["errors"][:5]:
            lines.append(f"  - {e}")
    lines += ["", "Losers: users who did not book; each counted once per kind of answer they got (a user may get "
              "several kinds: told the time is taken, then offered other times, then told nothing is left). "
              "Errors = HTTP errors, exceptions (timeouts), empty replies and \"something went wrong\". "
              "`cache` = the action server's in-memory cache; `sql` = `AVAILABILITY_SOURCE=sql` (each offer, "
              "alternative and free-check a query through `BookingService.available_slots`), action server "
              "restarted between the two, appointments deleted. CPU per turn: utime + stime of the process "
              "(and its children) over the race ÷ turns; PostgreSQL's share of the SQL path is not in it.",
              "", f"![race: every turn's latency, cache vs sql]({png.relative_to(ROOT)})"]
    return "\n".join(lines)


async def main_async(args) -> str:
    started, load_start, code = utc_now(), load_average(), revision()
    with scratch_database("bench_race", keep=args.keep_db) as db_url:
        stack = Stack(db_url)
        # every simulated user writes from this machine's one address: the per-client code limit
        # (meant for one person's browser) would stop the race after ten bookings
        stack.settings = stack.settings.model_copy(update={"slot_step_minutes": SLOT_MINUTES,
                                                           "availability_source": args.sources[0],
                                                           "verification_codes_per_client": 10_000})
        slots, where = prepare(db_url, stack, args.slots)
        try:
            t0 = time.monotonic()
            stack.start()
            startup = time.monotonic() - t0
            results = []
            for k, source in enumerate(args.sources):  # each source's users have phones of their own
                r = await race(stack, source, db_url, slots, args.users, args.picks, first=k * args.users)
                results.append(r)
                print(json.dumps({k: v for k, v in r.items() if k not in ("errors", "turn_ms")}, default=str),
                      flush=True)
        finally:
            stack.stop()
    panel = (f"{args.users} users at once for {args.slots} slots", {r["source"]: r["turn_ms"] for r in results})
    png = plot_latency(plot_path("race.png", args.no_report), [panel],
                       title="Race: every chat turn's latency\n(offers from the action server's cache vs SQL; "
                             "dashed: issue 4's p95 target at 20 users)", target_ms=150, target_label="p95 target")
    return report(results, args, where, startup, load_start, started, code, png)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--slots", type=int, default=10)
    parser.add_argument("--picks", type=int, default=12, help="taps one user makes before giving up")
    parser.add_argument("--sources", nargs="+", choices=["cache", "sql"], default=["cache", "sql"])
    parser.add_argument("--no-report", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if not has_model():
        print("no trained model: run `make train` first", file=sys.stderr)
        return 1
    if not have_plotting():
        return 1
    text = asyncio.run(main_async(args))
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "race.md").write_text(text + "\n")
    print(text)
    if not args.no_report:
        write_section("race", text)
    return 1 if "**fail**" in text else 0


if __name__ == "__main__":
    sys.exit(main())
