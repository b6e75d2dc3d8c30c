"""Freed slot → first waitlist offer delivered (issue 16): how long from the commit that frees a
booked time to the waiting patients' pages holding the offer, and to their chats being told.

    .venv/bin/python bench/waitlist.py [--rounds 100] [--waiting 0 50] [--no-report]

A fresh database: one dentist working every day, a 60-minute filling. The sync service runs as
``make run`` starts it (``python -m sync``, its own process), with Rasa's HTTP API stood in for by
a small aiohttp server in this process that records each ``trigger_intent`` call (the chat side's
figure is the sync service's, not Rasa's turn).

Each round: a visit is booked at a new time; two new patients wait for exactly that time (the
earlier request first) and connect their patient sockets (python-socketio clients, as the patient
page does); then the visit is cancelled by a plain SQL ``UPDATE`` (a direct writer: the front desk's
``psql``). Measured from just before that statement: the first and the second patient's socket
receiving ``waitlist_offer`` (status ``open``), and the stub Rasa receiving the first
``trigger_intent``. ``--waiting N`` adds N other requests that wait all along for times that stay
booked, so every pass of the worker also looks at them (a clinic's ASAP list).

Checked: every round offered the slot to both patients, the earlier request's offer made first
(lower id), and no other patient received an offer. Markdown goes to stdout, ``bench/out/waitlist.md``
and the ``waitlist`` section of BENCHMARKS.md (unless ``--no-report``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from datetime import datetime, time as dtime, timedelta, timezone
from pathlib import Path

import psycopg
import socketio
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, load_average, machine, pct, revision, scratch_database, utc_now, write_section  # noqa: E402
from bench.realtime.run import free_port, stop_server, wait_healthy  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.tokens import mint  # noqa: E402

SECRET = "waitlist-bench-" + "s" * 32
OUT = ROOT / "bench" / "out"


class StubRasa:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str, dict]] = []
        self.arrived = asyncio.Event()

    async def trigger(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append((time.perf_counter(), request.match_info["id"], body))
        self.arrived.set()
        return web.json_response({"messages": []})


def seed(db_url: str, rounds: int, waiting: int) -> list[int]:
    """The clinic; returns the background requests' patients."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'Dr Chen')")
        conn.execute("INSERT INTO services (id, name, duration_minutes, price_cents) VALUES (1, 'Filling', 60, 9000)")
        for weekday in range(1, 8):
            conn.execute("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time)"
                         " VALUES (1, %s, '00:00', '23:59')", (weekday,))
        people = 1 + waiting + 2 * rounds
        conn.execute("INSERT INTO patients (id, full_name) SELECT g, 'Patient ' || g FROM generate_series(1, %s) g",
                     (people,))
        background = list(range(2, 2 + waiting))
        for i, pid in enumerate(background):  # each waits for a time that stays booked (by patient 1)
            at = slot_time(rounds + i)
            conn.execute("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at)"
                         " VALUES (1, 1, 1, %s, %s)", (at, at + timedelta(hours=1)))
            conn.execute("INSERT INTO waitlist_entries (patient_id, service_id, earliest, latest)"
                         " VALUES (%s, 1, %s, %s)", (pid, at, at + timedelta(minutes=1)))
        return background


def slot_time(n: int) -> datetime:
    """The n-th bench time: ten a day, at 01:00, 03:00, ... 19:00 in the clinic's zone (inside the
    hours, whole slots), from three days ahead."""
    tz = Settings(_env_file=None).tz
    day = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=3 + n // 10)
    return datetime.combine(day.date(), dtime(1 + 2 * (n % 10)), tz).astimezone(timezone.utc)


async def offer_received(client: socketio.AsyncClient, got: dict, key: int) -> None:
    @client.on("waitlist_offer")
    async def _(data):
        if data["offer"]["status"] == "open":
            got.setdefault(key, (time.perf_counter(), data["offer"]["id"]))


async def run(rounds: int, waiting: int) -> dict:
    stub = StubRasa()
    app = web.Application()
    app.router.add_post("/conversations/{id}/trigger_intent", stub.trigger)
    runner = web.AppRunner(app)
    await runner.setup()
    rasa_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", rasa_port).start()
    with scratch_database("bench_waitlist") as db_url:
        background = seed(db_url, rounds, waiting)
        port = free_port()
        env = dict(os.environ, DATABASE_URL=db_url, JWT_SECRET=SECRET, ENV="test", PYTHONUNBUFFERED="1",
                   LOG_LEVEL=os.environ.get("BENCH_SYNC_LOG_LEVEL", "WARNING"), RASA_URL=f"http://127.0.0.1:{rasa_port}", REMINDER_HOURS="0",
                   WAITLIST_POLL_SECONDS="3600", WAITLIST_OFFER_TO="3")
        env.pop("REDIS_URL", None)
        OUT.mkdir(parents=True, exist_ok=True)
        log = open(OUT / "waitlist-sync.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "sync", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        settings = Settings(jwt_secret=SECRET, env="test", _env_file=None)
        first, second, chat, problems = [], [], [], []
        try:
            await wait_healthy(port, proc)
            conn = await psycopg.AsyncConnection.connect(db_url, autocommit=True)
            for r in range(rounds):
                at = slot_time(r)
                pids = (2 + waiting + 2 * r, 3 + waiting + 2 * r)
                cur = await conn.execute("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at,"
                                         " ends_at) VALUES (1, 1, 1, %s, %s) RETURNING id", (at, at + timedelta(hours=1)))
                (visit,) = await cur.fetchone()
                for pid in pids:
                    await conn.execute("INSERT INTO waitlist_entries (patient_id, service_id, earliest, latest,"
                                       " conversation_id) VALUES (%s, 1, %s, %s, %s)",
                                       (pid, at, at + timedelta(minutes=1), f"chat-{pid}"))
                got: dict = {}
                clients = []
                for pid in pids:
                    client = socketio.AsyncClient(reconnection=False)
                    await offer_received(client, got, pid)
                    await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"],
                                         auth={"token": mint("patient", pid, settings=settings)})
                    clients.append(client)
                await asyncio.sleep(0.05)  # the joins' own passes are over
                calls_before = len(stub.calls)
                stub.arrived.clear()
                t0 = time.perf_counter()
                await conn.execute("UPDATE appointments SET status = 'cancelled' WHERE id = %s", (visit,))
                deadline = time.monotonic() + 10
                while (len(got) < 2 or len(stub.calls) <= calls_before) and time.monotonic() < deadline:
                    await asyncio.sleep(0.001)
                if len(got) < 2 or len(stub.calls) <= calls_before:
                    cur = await conn.execute(
                        "SELECT e.patient_id, e.status, o.status, o.id FROM waitlist_entries e"
                        " LEFT JOIN waitlist_offers o ON o.entry_id = e.id WHERE e.patient_id = ANY(%s)", (list(pids),))
                    problems.append(f"round {r}: offers {sorted(got)}, chat calls {len(stub.calls) - calls_before},"
                                    f" rows {await cur.fetchall()}")
                else:
                    times = sorted(t for t, _ in got.values())
                    first.append((times[0] - t0) * 1000)
                    second.append((times[1] - t0) * 1000)
                    chat.append((stub.calls[calls_before][0] - t0) * 1000)
                    if got[pids[0]][1] > got[pids[1]][1]:
                        problems.append(f"round {r}: the later request was offered first")
                for client in clients:
                    await client.disconnect()
            cur = await conn.execute("SELECT count(*) FROM waitlist_offers WHERE patient_id = ANY(%s)", (background,))
            (wrong,) = await cur.fetchone()
            if wrong:
                problems.append(f"{wrong} offers to requests whose time stayed booked")
            await conn.close()
        finally:
            stop_server(proc)
            log.close()
            await runner.cleanup()
    return {"waiting": waiting, "rounds": rounds, "first": first, "second": second, "chat": chat,
            "problems": problems}


def row(result: dict) -> str:
    def stats(values: list[float]) -> str:
        if not values:
            return "–"
        return f"{pct(values, 50):.1f} / {pct(values, 99):.1f} / {max(values):.1f}"
    return (f"| {result['waiting'] + 2} | {len(result['first'])} of {result['rounds']} | {stats(result['first'])} | "
            f"{stats(result['second'])} | {stats(result['chat'])} | {len(result['problems'])} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--waiting", type=int, nargs="+", default=[0, 50])
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args()
    results = [asyncio.run(run(args.rounds, w)) for w in args.waiting]
    lines = [
        f"Freed slot → waitlist offer, {utc_now()}, {machine()}, load {load_average()}, revision {revision()}.",
        f"Command: `.venv/bin/python bench/waitlist.py --rounds {args.rounds} --waiting {' '.join(map(str, args.waiting))}`",
        "",
        "Milliseconds from the `UPDATE ... SET status = 'cancelled'` that frees the time (its commit included) to:",
        "the first waiting patient's socket holding the `waitlist_offer`, the second's, and the chat being told",
        "(the sync service's `trigger_intent` call reaching Rasa's API, here a stub). p50 / p99 / max.",
        "",
        "| requests waiting | rounds measured | first offer delivered | second offer delivered | chat told | problems |",
        "|---|---|---|---|---|---|",
        *[row(r) for r in results],
    ]
    for r in results:
        lines += [f"- {p}" for p in r["problems"][:10]]
    text = "\n".join(lines)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "waitlist.md").write_text(text + "\n")
    if not args.no_report:
        write_section("waitlist", text)
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
