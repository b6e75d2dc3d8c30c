"""Per-turn latency of a full booking conversation through Rasa's REST channel, with
1 and with 20 concurrent chat users, on the whole system as ``make run`` starts it.

    .venv/bin/python bench/chat_turns.py [--users 1 20] [--think-users 20] [--think 1 3] [--rounds 3]
                                         [--sources cache sql] [--no-report]

Each user: a one-shot request → pick the first offered slot → name → phone → "yes" → the
6-digit code texted to that phone (read from ``notifications``, as the tests do).
Two ways of modelling "N concurrent users", both reported:

* closed loop (``--users``): every user sends its next message the instant the previous reply
  arrives, i.e. N back-to-back request streams, the harshest reading of "N users";
* with think time (``--think-users``, ``--think LOW HIGH``): every user waits a random
  LOW–HIGH seconds before each message (people read and type), starting at a random moment
  in the first HIGH seconds, so N users offer a few turns a second, not N at once.

Every scenario runs once per availability source of the action server, same stack, same run:
``cache`` (its in-memory cache) and ``sql`` (``AVAILABILITY_SOURCE=sql``, the naive baseline:
every question a query); the action server is restarted between the two and the visits the
first one booked are deleted. Prints markdown (figures, command, machine), writes
bench/out/chat_turns.md, the plot ``bench/plots/chat-turns.png`` (every turn's latency, a column
per scenario, cache against sql) and the ``chat_turns`` section of BENCHMARKS.md (unless
``--no-report``; the plot then goes to bench/out/).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (ROOT, bench_name, code_sent, pct, plot_latency, plot_path, revision, scratch_database,  # noqa: E402
                          tree_cpu_seconds, use_source, write_section)
from bot.db import make_engine  # noqa: E402
from bot.seed import seed  # noqa: E402
from bot.stack import Stack, has_model  # noqa: E402

REQUESTS = ["I'd like a cleaning with any dentist next week", "can I book a filling with any dentist next week?",
            "book a consultation with Dr Chen next week please", "I need a whitening with Dr Patel next week"]


async def conversation(stack: Stack, n: int, turns: list[float], outcomes: list[str],
                       think: tuple[float, float] | None = None) -> None:
    """One booking; with ``think`` = (low, high) seconds, a pause of that length before each message."""
    sender = f"bench-{uuid.uuid4().hex[:10]}"

    async def turn(text: str) -> list[dict]:
        if think:
            await asyncio.sleep(random.uniform(*think))
        t0 = time.perf_counter()
        replies = await stack.say(sender, text)
        turns.append((time.perf_counter() - t0) * 1000)
        return replies

    replies = await turn(REQUESTS[n % len(REQUESTS)])
    choices = [b for r in replies for b in r.get("buttons", []) if "slot_choice" in b["payload"]]
    if not choices:
        outcomes.append("no_offer")
        return
    replies = await turn(choices[min(n, len(choices) - 1)]["payload"])
    replies = await turn(bench_name(n))
    phone = f"+1212555{1000 + n % 9000:04d}"
    replies = await turn(phone)
    replies = await turn("yes")
    text = " ".join(r.get("text", "") for r in replies)
    if "6-digit code" in text:  # the code texted to the phone, read where the clinic records it
        code = await asyncio.to_thread(code_sent, stack.db_url, phone)
        replies = await turn(code or "000000")
        text = " ".join(r.get("text", "") for r in replies)
    outcomes.append("booked" if "You're booked" in text else "other")


async def start_conversation(stack: Stack, n: int, turns: list[float], outcomes: list[str],
                             think: tuple[float, float] | None) -> None:
    """A closed-loop user starts at once; a user with think time starts at a random moment in the
    first ``high`` seconds (the first message then waits its own think time too)."""
    if think:
        await asyncio.sleep(random.uniform(0, think[1]))
    await conversation(stack, n, turns, outcomes, think)


def seeded_stack(db_url: str) -> tuple[Stack, int]:
    """A stack (not started) on the demo clinic seeded into ``db_url``; the last seeded visit's id."""
    stack = Stack(db_url)
    engine = make_engine(stack.settings.database_url, pool_size=1)
    seed(engine, stack.settings)
    engine.dispose()
    with psycopg.connect(db_url) as conn:
        return stack, conn.execute("SELECT coalesce(max(id), 0) FROM appointments").fetchone()[0]


def reset_diaries(db_url: str, seeded: int) -> None:
    """Holds and the visits booked since the seed removed: the same diaries for every variant."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM slot_holds")
        conn.execute("DELETE FROM appointments WHERE id > %s", (seeded,))


def mode_of(pause: tuple[float, float] | None) -> str:
    return "closed loop" if pause is None else f"think {pause[0]:g}–{pause[1]:g} s"


async def run(users: list[int], rounds: int, sources: list[str], think_users: list[int],
              think: tuple[float, float], png: Path) -> str:
    lines = []
    figures: dict[tuple[str, int, tuple[float, float] | None], tuple[float, float, float]] = {}
    samples: dict[tuple[str, int, tuple[float, float] | None], list[float]] = {}
    load_start = os.getloadavg()[0]
    scenarios = [(count, None) for count in users] + [(count, think) for count in think_users]
    with scratch_database("bench_chat") as db_url:
        stack, seeded = seeded_stack(db_url)
        try:
            stack.settings = stack.settings.model_copy(update={"availability_source": sources[0]})
            t0 = time.monotonic()
            stack.start()
            startup = time.monotonic() - t0
            for source in sources:
                reset_diaries(db_url, seeded)
                await use_source(stack, source)
                await conversation(stack, 0, [], [])  # warm-up, not counted
                actions_pid = stack.services["actions"].proc.pid
                rasa_pid = stack.services["rasa"].proc.pid
                for count, pause in scenarios:
                    turns: list[float] = []
                    outcomes: list[str] = []
                    cpu0, rasa0 = tree_cpu_seconds(actions_pid), tree_cpu_seconds(rasa_pid)
                    load0 = os.getloadavg()[0]
                    t0 = time.monotonic()
                    for r in range(rounds):
                        await asyncio.gather(*(start_conversation(stack, 1000 * r + count * 10 + i, turns,
                                                                  outcomes, pause) for i in range(count)))
                    wall = time.monotonic() - t0
                    cpu_ms = (tree_cpu_seconds(actions_pid) - cpu0) * 1000 / max(1, len(turns))
                    rasa_ms = (tree_cpu_seconds(rasa_pid) - rasa0) * 1000 / max(1, len(turns))
                    p50, p95 = statistics.median(turns), pct(turns, 95)
                    figures[(source, count, pause)] = (p50, p95, cpu_ms)
                    samples[(source, count, pause)] = turns
                    lines.append(f"| {source} | {count} | {mode_of(pause)} | {len(turns)} | {p50:.0f} "
                                 f"| {p95:.0f} | {max(turns):.0f} "
                                 f"| {outcomes.count('booked')}/{len(outcomes)} | {wall:.1f} "
                                 f"| {len(turns) / wall:.1f} | {rasa_ms:.0f} | {cpu_ms:.1f} "
                                 f"| {load0:.1f} → {os.getloadavg()[0]:.1f} |")
        finally:
            stack.stop()
    plot_latency(png, [(f"{count} user{'s' if count > 1 else ''}, {mode_of(pause)}",
                        {source: samples.get((source, count, pause), []) for source in sources})
                       for count, pause in scenarios],
                 title="Chat turns through the REST channel: every turn's latency, the action server's cache "
                       "vs SQL (dashed: the 150 ms p95 target)", target_ms=150, target_label="p95 target")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    rasa = stack.services["rasa"]
    workers = rasa.env.get("SANIC_WORKERS", "1")
    rasa_setup = (f"{workers} Sanic worker{'' if workers == '1' else 's'}, "
                  f"`{rasa.argv[rasa.argv.index('--endpoints') + 1]}`")
    ratios = []
    for count, pause in [(c, None) for c in users] + [(c, think) for c in think_users]:
        if ("cache", count, pause) in figures and ("sql", count, pause) in figures:
            c, q = figures[("cache", count, pause)], figures[("sql", count, pause)]
            mode = "" if pause is None else " with think time"
            ratios.append(f"{count} user{'s' if count > 1 else ''}{mode}: p50 {q[0] / c[0]:.2f}×, "
                          f"p95 {q[1] / c[1]:.2f}×, action server CPU per turn {q[2] / c[2]:.2f}×")
    return "\n".join([
        "### Chat turns through the REST channel",
        "",
        f"`{' '.join(['.venv/bin/python', 'bench/chat_turns.py', *sys.argv[1:]])}` — "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {revision()}, {os.cpu_count()} cores, {mem:.1f} GiB, "
        f"{platform.python_implementation()} {platform.python_version()}, load before start "
        f"{load_start:.1f}, at the end {os.getloadavg()[0]:.1f}; stack start-up {startup:.0f} s; Rasa: "
        f"{rasa_setup} (several workers: `bench/chat_ab.py`). A conversation "
        "is 6 turns (request, slot button, name, phone, yes, the texted code); every turn runs the NLU model, the policies and a "
        "custom action. *closed loop*: each user sends its next message the instant the reply arrives "
        "(N back-to-back request streams); *think a–b s*: each user pauses a random a–b s before every "
        "message, as people read and type (N chatting people). Availability source: `cache` = the action "
        "server's in-memory cache, `sql` = "
        "`AVAILABILITY_SOURCE=sql` (the naive baseline: a query per question), same stack, action server "
        "restarted between the two, the first source's bookings deleted before the second.",
        "",
        "| source | concurrent users | users send | turns | p50 ms | p95 ms | max ms | booked | wall s "
        "| turns/s | Rasa CPU ms per turn | action server CPU ms per turn | load 1 min (start → end) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *lines,
        "",
        *([f"Naive baseline ÷ cache, same run: {'; '.join(ratios)}."] if ratios else []),
        "",
        f"![chat turns: latency distribution per scenario, cache vs sql]({png.relative_to(ROOT)})",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--think-users", type=int, nargs="*", default=[20],
                        help="user counts to run again with think time between messages")
    parser.add_argument("--think", type=float, nargs=2, default=[1.0, 3.0], metavar=("LOW", "HIGH"),
                        help="think time before each message, seconds (uniform)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sources", nargs="+", choices=["cache", "sql"], default=["cache", "sql"])
    parser.add_argument("--no-report", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args()
    if not has_model():
        print("no trained model: run `make train` first", file=sys.stderr)
        return 1
    report = asyncio.run(run(args.users, args.rounds, args.sources, args.think_users, tuple(args.think),
                             plot_path("chat-turns.png", args.no_report)))
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / "chat_turns.md").write_text(report + "\n")
    print(report)
    if not args.no_report:
        write_section("chat_turns", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
