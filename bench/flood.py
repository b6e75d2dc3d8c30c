"""What one script gets from the chat in a minute, and what one huge message costs others.

    .venv/bin/python bench/flood.py [--seconds 60] [--streams 8] [--no-report]

On the whole system as ``make run`` starts it (default limits, a seeded clinic):

* **bookings**: ``--streams`` concurrent anonymous conversations from one client address, each
  booking as fast as Rasa answers (request → first offer → name → a made-up phone → "yes", then a
  new conversation), for ``--seconds``; counts visits booked and turns refused by a limit;
* **holds**: the same, stopping at the pick (the slot held, never confirmed): how many live holds
  one client has at the end;
* **a 100 KB message** and a ``hi`` from another conversation sent at the same moment: the time
  of each (the long one is answered without the model), and of a 2,000-character message (the
  longest the model reads) with a ``hi`` beside it.

Writes the ``flood`` section of BENCHMARKS.md (unless ``--no-report``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import load_average, machine, revision, scratch_database, utc_now, write_section  # noqa: E402
from bot.db import make_engine  # noqa: E402
from bot.seed import seed  # noqa: E402
from bot.stack import Stack  # noqa: E402

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
LENGTHS = (20, 100, 250, 500, 1000, 2000)


def slot_payloads(replies: list[dict]) -> list[str]:
    return [b["payload"] for r in replies for b in r.get("buttons", []) if "slot_choice" in b["payload"]]


def joined(replies: list[dict]) -> str:
    return " ".join(r.get("text", "") for r in replies)


async def one_booking(stack: Stack, n: int, confirm: bool) -> str:
    sender = f"flood-{uuid.uuid4().hex}"
    replies = await stack.say(sender, f"I would like to book a cleaning with any dentist next {DAYS[n % 5]}")
    offered = slot_payloads(replies)
    if not offered:
        return "no_offer"
    replies = await stack.say(sender, offered[0])
    if "booked several visits" in joined(replies):
        return "limited"
    if not confirm:
        return "held"
    if "name" in joined(replies).lower():
        replies = await stack.say(sender, "Flood Script")
    if "phone" in joined(replies).lower():
        replies = await stack.say(sender, f"212 555 {1000 + n % 9000:04d}")
    if "Shall I book it?" in joined(replies):
        replies = await stack.say(sender, "yes")
    said = joined(replies)
    return "booked" if "You're booked" in said else "limited" if "booked several visits" in said else "other"


async def flood(stack: Stack, seconds: float, streams: int, confirm: bool) -> dict[str, int]:
    counts: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    serial = iter(range(10**9))

    async def stream() -> None:
        while time.monotonic() < deadline:
            outcome = await one_booking(stack, next(serial), confirm)
            counts[outcome] = counts.get(outcome, 0) + 1

    await asyncio.gather(*(stream() for _ in range(streams)))
    return counts


async def side_by_side(stack: Stack, big: str) -> tuple[float, float, str]:
    async def timed(sender: str, message: str) -> tuple[float, str]:
        start = time.perf_counter()
        replies = await stack.say(sender, message)
        return (time.perf_counter() - start) * 1000, joined(replies)

    (big_ms, big_text), (hi_ms, _) = await asyncio.gather(timed(f"big-{uuid.uuid4().hex}", big),
                                                         timed(f"hi-{uuid.uuid4().hex}", "hi"))
    return big_ms, hi_ms, big_text


def live_rows(db_url: str, sql: str) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql).fetchone()[0]


async def run(args) -> str:
    with scratch_database("bench_flood") as db_url:
        stack = Stack(db_url)
        engine = make_engine(stack.settings.database_url, pool_size=1)
        seed(engine, stack.settings)
        engine.dispose()
        stack.start()
        try:
            before = live_rows(db_url, "SELECT count(*) FROM appointments WHERE status <> 'cancelled'")
            booked = await flood(stack, args.seconds, args.streams, confirm=True)
            visits = live_rows(db_url, "SELECT count(*) FROM appointments WHERE status <> 'cancelled'") - before
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute("DELETE FROM slot_holds")
            held = await flood(stack, args.seconds, args.streams, confirm=False)
            holds = live_rows(db_url, "SELECT count(*) FROM slot_holds WHERE expires_at > now()")
            await stack.say("warm-up", "hi")
            big_ms, hi_ms, big_text = await side_by_side(stack, "book a cleaning " * 6400)  # 102,400 chars
            cap = stack.settings.chat_max_message_chars
            long_ms, hi2_ms, _ = await side_by_side(stack, ("please book me a cleaning next week " * 60)[:cap])
            alone = []
            for _ in range(5):
                start = time.perf_counter()
                await stack.say(f"alone-{uuid.uuid4().hex}", "hi")
                alone.append((time.perf_counter() - start) * 1000)
            by_length = {}  # a turn's time by the length of its message (what the model must read)
            for length in [n for n in LENGTHS if n <= cap]:
                text = ("please book me a cleaning next week with doctor chen " * 100)[:length]
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    await stack.say(f"len-{uuid.uuid4().hex}", text)
                    times.append((time.perf_counter() - start) * 1000)
                by_length[length] = sorted(times)[1]
        finally:
            stack.stop()
    s = stack.settings
    return f"""## Floods and big messages (bench/flood.py)

`{' '.join(['.venv/bin/python', 'bench/flood.py', *sys.argv[1:]])}` — {utc_now()}, {revision()},
{machine()}, load {load_average()}. Default limits: {s.chat_bookings_per_conversation} bookings per
conversation, {s.chat_bookings_per_phone} per phone, {s.chat_bookings_per_client} per client address
(per {s.chat_limit_window_minutes} minutes), {s.chat_holds_per_client} live holds per client address,
messages up to {cap} characters.

| one script, one client address, {args.streams} conversations at once, {args.seconds:.0f} s | result |
|---|---|
| visits booked (made-up phone numbers) | **{visits}** (attempts: {booked}) |
| live holds at the end (picks never confirmed) | **{holds}** (attempts: {held}) |

Before these limits the same kind of script booked 147–166 visits in under a minute, and 40 silent
conversations held 40 slots.

| message | its reply | a `hi` from another conversation at the same moment |
|---|---|---|
| 102,400 characters | {big_ms:.0f} ms ("{big_text[:40]}…", no model run) | {hi_ms:.0f} ms |
| {cap:,} characters (the longest the model reads) | {long_ms:.0f} ms | {hi2_ms:.0f} ms |
| (a `hi` alone, median of 5) | | {sorted(alone)[2]:.0f} ms |

Before the limit, a 100 KB message took 25–38 s and held an unrelated `hi` as long.

A turn's time by the length of its message (median of 3, one conversation each, nothing else
running): {", ".join(f"{n:,} characters {ms:.0f} ms" for n, ms in by_length.items())}. Rasa reads a
message in its one event loop, so this is also how long a message of that length holds every
other conversation's turn.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    print(report)
    if not args.no_report:
        write_section("flood", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
