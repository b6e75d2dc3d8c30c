"""What one code costs to issue, with codes asked for at once (bot/otp.py ``Verifier.send``).

    .venv/bin/python bench/otp_issue.py [--codes 400] [--senders 1 4 16] [--no-report]

``Verifier.send`` reads the hourly counts (per number, conversation, client and the clinic) and
writes the new code's row under one clinic-wide advisory lock, so codes asked for at once cannot
all pass one count; the message is sent after that transaction. This measures what the lock
costs: ``--codes`` codes to as many different numbers, from ``--senders`` threads at once (each
its own client address, a botnet's shape), every hourly limit raised out of the way, through
the real notifier (each message recorded in ``notifications``) with a sender that hands the
message to nobody (the provider's time is the provider's). A scratch database on
127.0.0.1:5432 (or BENCH_DATABASE_SERVER), dropped afterwards.

Per sender count: codes issued a second, and the milliseconds one ``send`` took (p50 / p99 /
max). Checked: every code was sent, and as many rows are in ``verification_codes`` and
``notifications``. Markdown goes to stdout and the ``otp_issue`` section of BENCHMARKS.md
(unless ``--no-report``).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.common import load_average, machine, pct, revision, scratch_database, utc_now, write_section  # noqa: E402
from bot.db import make_engine  # noqa: E402
from bot.notify import Message, Notifier  # noqa: E402
from bot.otp import CodeOutcome, Verifier  # noqa: E402
from bot.settings import Settings  # noqa: E402


class Nobody:
    """A sender that hands the message to nobody: what is measured is the clinic's side."""
    name = "nobody"

    def deliver(self, message: Message) -> None:
        return None


def run(db_url: str, codes: int, senders: int, base: int) -> dict:
    settings = Settings(database_url=db_url, env="test", verification_codes_per_hour=10 ** 6,
                        verification_codes_per_client=10 ** 6, verification_codes_per_recipient=10 ** 6,
                        verification_codes_per_subject=10 ** 6, verification_resend_seconds=0)
    engine = make_engine(db_url, pool_size=senders + 2)
    verifier = Verifier(engine, settings, Notifier(engine, {"sms": Nobody(), "email": Nobody()}))
    took: list[list[float]] = [[] for _ in range(senders)]
    outcomes: list[CodeOutcome] = []
    start = threading.Barrier(senders)

    def sender(i: int) -> None:
        start.wait()
        for n in range(i, codes, senders):
            began = time.perf_counter()
            result = verifier.send("chat", f"bench-{base + n}", f"+1212{2000000 + base + n:07d}",
                                   client=f"198.51.{(n // 250) % 250}.{n % 250 + 1}")
            took[i].append((time.perf_counter() - began) * 1000)
            outcomes.append(result.outcome)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(senders)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    engine.dispose()
    times = [t for per in took for t in per]
    return {"senders": senders, "codes": codes, "per_second": codes / elapsed,
            "p50": pct(times, 50), "p99": pct(times, 99), "max": max(times),
            "sent": sum(o is CodeOutcome.SENT for o in outcomes)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codes", type=int, default=400)
    ap.add_argument("--senders", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args()
    rows, problems = [], []
    with scratch_database("bench_otp") as db_url:
        for k, senders in enumerate(args.senders):
            rows.append(run(db_url, args.codes, senders, base=k * args.codes))
        with psycopg.connect(db_url) as conn:
            stored = conn.execute("SELECT (SELECT count(*) FROM verification_codes),"
                                  " (SELECT count(*) FROM notifications)").fetchone()
    expected = args.codes * len(args.senders)
    for row in rows:
        if row["sent"] != row["codes"]:
            problems.append(f"{row['senders']} senders: {row['sent']} of {row['codes']} codes sent")
    if tuple(stored) != (expected, expected):
        problems.append(f"stored {stored[0]} codes and {stored[1]} notifications, expected {expected} of each")
    command = "`.venv/bin/python bench/otp_issue.py " + " ".join(
        [f"--codes {args.codes}", "--senders " + " ".join(map(str, args.senders))]) + "`"
    lines = [f"Issuing codes at once, {utc_now()}, {machine()}, load {load_average()}, revision {revision()}.",
             f"Command: {command}", "",
             "Each code to its own number from its own client address; hourly limits raised; the sender hands the",
             "message to nobody. Milliseconds per `Verifier.send` (its counts, the code's row, the notification's).", "",
             "| senders at once | codes | codes a second | p50 ms | p99 ms | max ms |",
             "|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['senders']} | {row['codes']} | {row['per_second']:.0f} | {row['p50']:.2f} |"
                     f" {row['p99']:.2f} | {row['max']:.2f} |")
    lines += ["", "Problems: " + ("; ".join(problems) if problems else "none")]
    body = "\n".join(lines)
    print(body)
    if not args.no_report:
        write_section("otp_issue", body)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
