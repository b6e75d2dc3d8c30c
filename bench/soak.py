"""Soak (issue 6): the whole system under a steady clinic-chain load for ``--minutes`` (10), the
memory of each service sampled every ``--sample-seconds`` (10), and every dashboard event checked
against the outbox at the end.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 5] [--admins 240] [--dentist-clients 60]
                                   [--chat-users 3] [--no-report]

The stack is ``bot.stack.Stack`` (sync service, action server, Rasa, as ``make run`` starts them)
on a fresh database: the demo clinic plus ``--chain-dentists`` (20) dentists working Monday to
Saturday 08:00–18:00 and 2,000 patients, with ``--live`` (500) visits already booked. The load:

* a SQL writer (one autocommitted connection, as the admin desk or another clinic's system):
  ``--rate`` writes per second — bookings and cancellations (together 80 %: it books while fewer
  than ``--live`` visits of the soak are live, else cancels the oldest, so the diaries hold a
  steady amount), moves (10 %), weekly-hours edits (5 %), time off added or removed (5 %);
* ``--admins`` admin and ``--dentist-clients`` dentist dashboards: raw Engine.IO websocket
  clients (``bench/realtime/clients.py``) in two processes, connected before the load, each
  recording the id of every event it receives;
* ``--chat-users`` chat users through Rasa's REST channel, each booking one visit after another
  (request → first offered slot → name → phone → "yes", 3 s between conversations).

Every ``--sample-seconds``: VmRSS and CPU time of each service's process tree. The memory
trend is the least-squares slope of RSS over the second half of the run (the first half is
warm-up), reported per hour, with the change it predicts over that half; "flat" when the slope
is under 5 % of the service's mean RSS per hour, or the change it predicts over the half is
under 1 MiB (the sampling noise). At the end the writer and chat
users stop, the clients drain, and each client's ids are compared with the outbox rows it may
see (admins: every row after the load started; dentists: their visits, their availability and
clinic-wide availability): lost, duplicate, unexpected, out of order. The action server's
cache must have reached the outbox head too.

Plot: ``bench/plots/soak.png``. Markdown: stdout, ``bench/out/soak.md`` and the ``soak``
section of BENCHMARKS.md (unless ``--no-report``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import statistics
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, time as dtime, timedelta, timezone
from pathlib import Path

import aiohttp
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (ROOT, load_average, machine, pct, revision, scratch_database,  # noqa: E402
                          tree_cpu_seconds, tree_rss_kib, use_source, utc_now, write_section)
from bench.realtime.clients import worker_main  # noqa: E402
from bot.db import make_engine  # noqa: E402
from bot.seed import seed  # noqa: E402
from bot.stack import Stack, has_model  # noqa: E402
from bot.tokens import mint  # noqa: E402

UTC = timezone.utc
SERVICES = ("sync", "actions", "rasa")
REQUESTS = ["I'd like a cleaning with any dentist next week", "can I book a filling with any dentist next week?",
            "book a consultation with Dr Chen next week please", "I need a whitening with Dr Patel next week"]
FLAT_PER_HOUR, NOISE_MIB = 0.05, 1.0  # a trend: > 5 % of the mean RSS per hour, and > 1 MiB over the half


# --- the clinic ------------------------------------------------------------------------------

def build_clinic(db_url: str, stack: Stack, chain_dentists: int, patients: int) -> dict:
    engine = make_engine(stack.settings.database_url, pool_size=1)
    try:
        seed(engine, stack.settings)
    finally:
        engine.dispose()
    with psycopg.connect(db_url, autocommit=True) as conn:
        first = conn.execute("SELECT coalesce(max(id), 0) FROM dentists").fetchone()[0] + 1
        conn.execute("INSERT INTO dentists (full_name, specialty) SELECT 'Dr. Chain ' || g, 'General dentistry'"
                     " FROM generate_series(1, %s) g", (chain_dentists,))
        chain = [r[0] for r in conn.execute("SELECT id FROM dentists WHERE id >= %s ORDER BY id", (first,))]
        conn.execute("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time)"
                     " SELECT d, w, '08:00', '18:00' FROM unnest(%s::bigint[]) d, generate_series(1, 6) w", (chain,))
        conn.execute("INSERT INTO patients (full_name, phone) SELECT 'Soak Patient ' || g,"
                     " '+1646555' || lpad(g::text, 4, '0') FROM generate_series(1, %s) g", (patients,))
        service = conn.execute("SELECT id FROM services WHERE name = 'Consultation'").fetchone()[0]
        patient_ids = [r[0] for r in conn.execute("SELECT id FROM patients ORDER BY id")]
        hours = [r[0] for r in conn.execute("SELECT id FROM working_hours WHERE dentist_id = ANY(%s) ORDER BY id",
                                            (chain,))]
        seeded = conn.execute("SELECT coalesce(max(id), 0) FROM appointments").fetchone()[0]
        dentists = [r[0] for r in conn.execute("SELECT id FROM dentists ORDER BY id")]
    return {"chain": chain, "service": service, "patients": patient_ids, "hours": hours, "seeded": seeded,
            "dentists": dentists}


# --- the SQL writer ------------------------------------------------------------------------

class Writer:
    """Writes at a fixed rate from a thread; counts what it did."""

    def __init__(self, db_url: str, clinic: dict, tz, rate: float, live: int, seed_: int = 6):
        self.db_url, self.clinic, self.tz, self.rate, self.live = db_url, clinic, tz, rate, live
        self.rng = random.Random(seed_)
        self.stop = threading.Event()
        self.counts: dict[str, int] = {}
        self.error: str | None = None
        self.time_off: deque[int] = deque()
        self.behind_max = 0.0

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def _when(self) -> datetime:
        while True:
            day = datetime.now(self.tz).date() + timedelta(days=self.rng.randint(3, 60))
            if day.isoweekday() <= 6:
                break
        return datetime.combine(day, dtime(8), self.tz) + timedelta(minutes=30 * self.rng.randrange(20))

    def book(self, conn: psycopg.Connection) -> None:
        for _ in range(5):
            start = self._when()
            try:
                conn.execute("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at,"
                             " status) VALUES (%s, %s, %s, %s, %s, 'confirmed')",
                             (self.rng.choice(self.clinic["patients"]), self.rng.choice(self.clinic["chain"]),
                              self.clinic["service"], start, start + timedelta(minutes=30)))
                self.count("booked")
                return
            except psycopg.errors.ExclusionViolation:
                self.count("collisions")

    def live_count(self, conn) -> int:
        return conn.execute("SELECT count(*) FROM appointments WHERE id > %s AND status <> 'cancelled'",
                            (self.clinic["seeded"],)).fetchone()[0]

    def fill(self) -> None:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            while self.live_count(conn) < self.live:
                self.book(conn)
        self.counts.clear()

    def one(self, conn: psycopg.Connection) -> None:
        r = self.rng.random()
        if r < 0.8:
            if self.live_count(conn) < self.live:
                self.book(conn)
            else:  # the oldest live visit of the soak (the writer's or a chat user's)
                conn.execute("UPDATE appointments SET status = 'cancelled' WHERE id = (SELECT min(id) FROM"
                             " appointments WHERE id > %s AND status <> 'cancelled')", (self.clinic["seeded"],))
                self.count("cancelled")
        elif r < 0.9:
            start = self._when()
            try:
                conn.execute("UPDATE appointments SET starts_at = %s, ends_at = %s WHERE id = (SELECT id FROM"
                             " appointments WHERE id > %s AND status <> 'cancelled' AND dentist_id = ANY(%s)"
                             " ORDER BY random() LIMIT 1)",
                             (start, start + timedelta(minutes=30), self.clinic["seeded"], self.clinic["chain"]))
                self.count("moved")
            except psycopg.errors.ExclusionViolation:
                self.count("collisions")
        elif r < 0.95:
            conn.execute("UPDATE working_hours SET end_time = CASE WHEN end_time = '18:00' THEN '17:30'::time"
                         " ELSE '18:00'::time END WHERE id = %s", (self.rng.choice(self.clinic["hours"]),))
            self.count("hours_edited")
        else:
            if len(self.time_off) >= 40 or (self.time_off and self.rng.random() < 0.5):
                conn.execute("DELETE FROM time_off WHERE id = %s", (self.time_off.popleft(),))
                self.count("time_off_removed")
            else:
                start = self._when()
                self.time_off.append(conn.execute(
                    "INSERT INTO time_off (dentist_id, starts_at, ends_at, reason) VALUES (%s, %s, %s, 'soak')"
                    " RETURNING id", (self.rng.choice(self.clinic["chain"]), start, start + timedelta(hours=1))
                ).fetchone()[0])
                self.count("time_off_added")

    def run(self) -> None:
        try:
            with psycopg.connect(self.db_url, autocommit=True) as conn:
                t0, k = time.monotonic(), 0
                while not self.stop.is_set():
                    due = t0 + k / self.rate
                    late = time.monotonic() - due
                    if late < 0:
                        if self.stop.wait(-late):
                            break
                    else:
                        self.behind_max = max(self.behind_max, late)
                    self.one(conn)
                    k += 1
        except Exception as exc:  # reported, and the soak fails
            self.error = f"{type(exc).__name__}: {exc}"


# --- chat users ------------------------------------------------------------------------------

@dataclass
class Chat:
    turns: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the load, ms)
    conversations: int = 0
    booked: int = 0
    errors: list[str] = field(default_factory=list)


async def chat_user(stack: Stack, n: int, chat: Chat, stop: asyncio.Event, t_load: float) -> None:
    k = 0
    while not stop.is_set():
        sender = f"soak-{n}-{k}-{uuid.uuid4().hex[:6]}"

        async def turn(text: str) -> list[dict] | None:
            t0 = time.perf_counter()
            try:
                replies = await stack.say(sender, text)
            except Exception as exc:  # non-200 (AssertionError from Stack.say), timeouts
                chat.errors.append(f"{type(exc).__name__}: {str(exc)[:100]}")
                return None
            chat.turns.append((time.monotonic() - t_load, (time.perf_counter() - t0) * 1000))
            if not replies or "something went wrong" in " ".join(r.get("text", "") or "" for r in replies):
                chat.errors.append(f"empty or error reply to {text[:30]!r}")
                return None
            return replies

        chat.conversations += 1
        replies = await turn(REQUESTS[(n + k) % len(REQUESTS)])
        choices = [b for r in replies or [] for b in r.get("buttons", []) or [] if "slot_choice" in b["payload"]]
        if choices:
            steps = [choices[k % len(choices)]["payload"], f"Soak Chatter{n}", f"+1 917 555 {(n * 100 + k) % 10000:04d}",
                     "yes"]
            for text in steps:
                replies = await turn(text)
                if replies is None:
                    break
            if replies and "You're booked" in " ".join(r.get("text", "") or "" for r in replies):
                chat.booked += 1
        k += 1
        try:
            await asyncio.wait_for(stop.wait(), 3.0)  # think time between conversations
        except asyncio.TimeoutError:
            pass


# --- dashboards ------------------------------------------------------------------------------

class Dashboards:
    """Raw Engine.IO clients in ``workers`` processes (bench/realtime/clients.py)."""

    def __init__(self, url: str, tokens: list[str], workers: int = 2):
        ctx = mp.get_context("spawn")
        self.pipes, self.procs = [], []
        per = -(-len(tokens) // workers)
        for w in range(workers):
            part = tokens[w * per:(w + 1) * per]
            if not part:
                break
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, url, part), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def status(self) -> list[dict]:
        for pipe in self.pipes:
            pipe.send(("status",))
        return [pipe.recv() for pipe in self.pipes]

    def stop(self) -> list[dict]:
        for pipe in self.pipes:
            pipe.send(("stop",))
        out = []
        for pipe in self.pipes:
            if not pipe.poll(120):
                raise RuntimeError("a dashboard process did not report")
            out.append(pipe.recv())
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        return out

    def rss_kib(self) -> int:
        return sum(tree_rss_kib(p.pid) for p in self.procs)


def expected_ids(db_url: str, after: int, labels: list[tuple[str, int]]) -> tuple[list[list[int]], int]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT id, type, dentist_id, (payload->'previous'->>'dentist_id')::bigint"
                            " FROM realtime_events WHERE id > %s ORDER BY id", (after,)).fetchall()
    everything = [r[0] for r in rows]
    per_dentist: dict[int, list[int]] = {}
    out = []
    for role, ident in labels:
        if role == "admin":
            out.append(everything)
            continue
        if ident not in per_dentist:
            per_dentist[ident] = [
                i for i, kind, dentist, prev in rows
                if (kind == "availability_changed" and dentist in (ident, None))
                or (kind != "availability_changed" and ident in (dentist, prev))]
        out.append(per_dentist[ident])
    return out, (everything[-1] if everything else after)


def compare(expected: list[int], got: list[int]) -> dict:
    """Counts, and the ids missing from ``got`` (``lost_ids``)."""
    want, seen = set(expected), set()
    dup = unexpected = disorder = 0
    last = 0
    for i in got:
        if i in seen:
            dup += 1
        elif i not in want:
            unexpected += 1
        seen.add(i)
        if i < last:
            disorder += 1
        last = max(last, i)
    return {"expected": len(expected), "received": len(got), "lost": len(want - seen), "duplicates": dup,
            "unexpected": unexpected, "out_of_order": disorder, "lost_ids": sorted(want - seen)}


# --- analysis --------------------------------------------------------------------------------

def trend(samples: list[dict], name: str) -> dict:
    import numpy as np

    half = samples[len(samples) // 2:]
    t = np.array([s["t"] for s in half])
    mib = np.array([s["rss"][name] / 1024 for s in half])
    slope, intercept = np.polyfit(t, mib, 1) if len(half) >= 2 else (0.0, float(mib[0]))
    change = slope * (t[-1] - t[0])
    mean = float(mib.mean())
    flat = abs(slope * 3600) < FLAT_PER_HOUR * mean or abs(change) < NOISE_MIB
    return {"slope_mib_per_h": slope * 3600, "change_mib": change, "mean_mib": mean, "flat": bool(flat),
            "first_mib": samples[0]["rss"][name] / 1024, "max_mib": max(s["rss"][name] for s in samples) / 1024,
            "last_mib": samples[-1]["rss"][name] / 1024, "intercept": intercept, "t0": float(t[0]),
            "t1": float(t[-1])}


def plot(samples: list[dict], trends: dict, chat: Chat, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(SERVICES) + 1, 1, figsize=(9, 9), sharex=True,
                             gridspec_kw={"height_ratios": [2] * len(SERVICES) + [1.4]})
    minutes = [s["t"] / 60 for s in samples]
    middle = samples[len(samples) // 2]["t"] / 60
    for ax, name, colour in zip(axes, SERVICES, ("tab:blue", "tab:orange", "tab:green")):
        tr = trends[name]
        ax.plot(minutes, [s["rss"][name] / 1024 for s in samples], "o-", ms=3, color=colour, label=name)
        xs = [tr["t0"], tr["t1"]]
        ax.plot([x / 60 for x in xs], [tr["intercept"] + tr["slope_mib_per_h"] / 3600 * x for x in xs], "--",
                color="black", lw=1, label=f"fit over the second half: {tr['slope_mib_per_h']:+.1f} MiB/h "
                                          f"({100 * tr['slope_mib_per_h'] / tr['mean_mib']:+.1f} %/h)")
        ax.axvline(middle, color="grey", lw=0.8, ls=":")
        ax.set_ylabel(f"{name} RSS (MiB)")
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_title("Soak: RSS of each service's process tree (dotted: start of the fitted second half)")
    bx = axes[-1]
    if chat.turns:
        bx.plot([t / 60 for t, _ in chat.turns], [ms for _, ms in chat.turns], ".", ms=3, color="tab:purple")
    bx.set_ylabel("chat turn (ms)")
    bx.set_xlabel("minutes into the load")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --- the run ---------------------------------------------------------------------------------

async def health(stack: Stack) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{stack.url('actions')}/health") as resp:
            return await resp.json()


async def sync_stats(stack: Stack) -> dict:
    """The sync service's own counters (``/api/realtime/stats``, admin token)."""
    token = mint("admin", "soak-stats", settings=stack.settings)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{stack.url('sync')}/api/realtime/stats",
                               headers={"Authorization": f"Bearer {token}"}) as resp:
            return await resp.json() if resp.status == 200 else {"status": resp.status}


async def soak(args) -> tuple[str, bool]:
    started, load_start, code = utc_now(), load_average(), revision()
    with scratch_database("bench_soak", keep=args.keep_db) as db_url:
        stack = Stack(db_url)
        clinic = build_clinic(db_url, stack, args.chain_dentists, 2000)
        writer = Writer(db_url, clinic, stack.settings.tz, args.rate, args.live)
        writer.fill()
        dash = None
        try:
            t0 = time.monotonic()
            stack.start()
            startup = time.monotonic() - t0
            await use_source(stack, "cache")
            await stack.say(f"soak-warmup-{uuid.uuid4().hex[:6]}", REQUESTS[0])
            labels = ([("admin", i + 1) for i in range(args.admins)]
                      + [("dentist", clinic["dentists"][i % len(clinic["dentists"])])
                         for i in range(args.dentist_clients)])
            tokens = [mint(role, f"soak{ident}" if role == "admin" else ident, settings=stack.settings,
                           ttl_minutes=args.minutes + 120) for role, ident in labels]
            dash = Dashboards(f"http://127.0.0.1:{stack.services['sync'].port}/socket.io/?EIO=4&transport=websocket",
                              tokens)
            deadline = time.monotonic() + 120
            while True:
                st = await asyncio.to_thread(dash.status)
                if sum(s["connected"] + s["failed"] for s in st) >= len(tokens) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            connected = sum(s["connected"] for s in st)
            with psycopg.connect(db_url) as conn:
                head0 = conn.execute("SELECT coalesce(max(id), 0) FROM realtime_events").fetchone()[0]

            pids = {name: stack.services[name].proc.pid for name in SERVICES}
            samples: list[dict] = []
            chat = Chat()
            stop = asyncio.Event()
            t_load, t_load_wall = time.monotonic(), datetime.now(UTC)
            cpu0 = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
            thread = threading.Thread(target=writer.run, name="soak-writer", daemon=True)
            thread.start()
            chats = [asyncio.create_task(chat_user(stack, n, chat, stop, t_load)) for n in range(args.chat_users)]
            duration = args.minutes * 60
            k = 0
            while True:
                due = t_load + k * args.sample_seconds
                if due > t_load + duration + 0.01:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))  # the sampling clock
                st = await asyncio.to_thread(dash.status)
                samples.append({"t": time.monotonic() - t_load,
                                "rss": {name: tree_rss_kib(pid) for name, pid in pids.items()},
                                "cpu": {name: tree_cpu_seconds(pid) for name, pid in pids.items()},
                                "dash_rss": dash.rss_kib(), "received": sum(s["received"] for s in st),
                                "closed": sum(s["closed"] for s in st), "writes": sum(writer.counts.values()),
                                "load": load_average()})
                print(json.dumps({"t": round(samples[-1]["t"]), **{n: v // 1024 for n, v in samples[-1]["rss"].items()},
                                  "received": samples[-1]["received"], "writes": samples[-1]["writes"],
                                  "chat_turns": len(chat.turns)}), flush=True)
                k += 1
            load_seconds = time.monotonic() - t_load
            cpu = {name: tree_cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
            stop.set()
            writer.stop.set()
            await asyncio.gather(*chats)
            await asyncio.to_thread(thread.join, 30)

            # drain: until every client holds what it may see (or the deadline)
            expected, head = expected_ids(db_url, head0, labels)
            want_total = sum(len(e) for e in expected)
            drain_deadline = time.monotonic() + 120
            while time.monotonic() < drain_deadline:
                st = await asyncio.to_thread(dash.status)
                if sum(s["received"] for s in st) >= want_total:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)  # anything sent twice would arrive now
            cache = (await health(stack))["cache"]
            server = await sync_stats(stack)
            results = await asyncio.to_thread(dash.stop)
            dash = None
            with psycopg.connect(db_url) as conn:  # for describing any lost event
                rows = conn.execute("SELECT id, type, dentist_id, created_at, payload->>'source', payload->>'op'"
                                    " FROM realtime_events WHERE id > %s", (head0,)).fetchall()
            outbox_info = {r[0]: (r[1] + (f" from {r[4]} {r[5]}" if r[4] else ""), r[2], r[3]) for r in rows}
        finally:
            if dash is not None:
                dash.stop()
            stack.stop()

    import numpy as np

    got: list[list[int]] = []
    for res in results:
        for ok, ids in zip(res["ok"], res["ids"]):
            got.append(np.frombuffer(ids, dtype=np.int64).tolist() if ok else [])
    totals = {"expected": 0, "received": 0, "lost": 0, "duplicates": 0, "unexpected": 0, "out_of_order": 0}
    complete = 0
    missed: dict[int, list[str]] = {}  # lost event id → the clients that missed it
    for (role, ident), want, have in zip(labels, expected, got):
        c = compare(want, have)
        for key in totals:
            totals[key] += c[key]
        complete += not (c["lost"] or c["duplicates"] or c["unexpected"] or c["out_of_order"])
        for i in c["lost_ids"]:
            missed.setdefault(i, []).append(f"{role}:{ident}")
    lost_events = []
    for i, who in sorted(missed.items()):
        kind, dentist, at = outbox_info.get(i, ("?", None, None))
        lost_events.append({"id": i, "type": kind, "dentist_id": dentist, "clients": len(who),
                            "roles": sorted({w.split(":")[0] for w in who}),
                            "seconds_into_load": None if at is None else round((at - t_load_wall).total_seconds(), 1)})
    trends = {name: trend(samples, name) for name in SERVICES}
    png = ROOT / "bench" / ("out" if args.no_report else "plots") / "soak.png"
    plot(samples, trends, chat, png)
    events = head - head0
    turns = [ms for _, ms in chat.turns]
    closed = sum(r["closed"] for r in results)
    ok = (not writer.error and not chat.errors and totals["lost"] == 0 and totals["duplicates"] == 0
          and totals["unexpected"] == 0 and totals["out_of_order"] == 0 and connected == len(labels)
          and cache["last_event_id"] >= head and all(t["flat"] for t in trends.values()))

    lines = [
        "### Soak: steady clinic-chain load, memory sampled",
        "",
        f"- Command: `{' '.join(['.venv/bin/python', 'bench/soak.py', *sys.argv[1:]])}`",
        f"- Code: {code}",
        f"- Machine: {machine()}; load average at start {load_start}, at the end {load_average()}; 1-minute load "
        f"during the load {min(float(x['load'].split()[0]) for x in samples):.2f}–"
        f"{max(float(x['load'].split()[0]) for x in samples):.2f} (the soak's own processes included)",
        f"- Date: {started}; stack start-up {startup:.0f} s; load {load_seconds / 60:.1f} min, RSS sampled every "
        f"{args.sample_seconds:g} s ({len(samples)} samples)",
        f"- Clinic: demo clinic + {args.chain_dentists} chain dentists (Mon–Sat 08:00–18:00), 2,000 patients, "
        f"{args.live} live visits kept steady by the writer",
        f"- Load: SQL writer at {args.rate:g} writes/s ({', '.join(f'{v} {k}' for k, v in sorted(writer.counts.items()))};"
        f" at most {writer.behind_max * 1000:.0f} ms behind schedule); {connected}/{len(labels)} dashboards "
        f"({args.admins} admin, {args.dentist_clients} dentist) on raw Engine.IO websockets in 2 processes; "
        f"{args.chat_users} chat users: {chat.conversations} conversations, {chat.booked} booked, {len(turns)} turns, "
        f"p50 {statistics.median(turns) if turns else 0:.0f} ms, p95 {pct(turns, 95) if turns else 0:.0f} ms",
        "",
        "| service | RSS first sample (MiB) | RSS last (MiB) | RSS max (MiB) | slope over the second half (MiB/h) "
        "| slope (% of mean RSS per hour) | fitted change over the second half (MiB) | trend "
        "| CPU (share of a core) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name in SERVICES:
        tr = trends[name]
        lines.append(f"| {name} | {tr['first_mib']:.1f} | {tr['last_mib']:.1f} | {tr['max_mib']:.1f} "
                     f"| {tr['slope_mib_per_h']:+.1f} | {100 * tr['slope_mib_per_h'] / tr['mean_mib']:+.1f} % "
                     f"| {tr['change_mib']:+.2f} "
                     f"| {'flat' if tr['flat'] else '**growing**' if tr['change_mib'] > 0 else 'shrinking'} "
                     f"| {cpu[name] / load_seconds:.2f} |")
    lines += [
        "",
        f"Events: {events:,} outbox rows during the load; dashboards received {totals['received']:,} of "
        f"{totals['expected']:,} expected frames: lost {totals['lost']}, duplicate {totals['duplicates']}, "
        f"unexpected {totals['unexpected']}, out of order {totals['out_of_order']}; {complete}/{len(labels)} "
        f"clients complete; {closed} connections closed before the end. The action server's cache applied "
        f"events up to id {cache['last_event_id']} (outbox head {head}); {cache.get('events_failed', 0)} failed. "
        f"The sync service's counters: {server.get('listener', {}).get('gapsSkipped', '?')} outbox ids skipped as "
        f"never committed (a gap older than its gap timeout), {server.get('slowClientsDropped', '?')} slow clients "
        f"dropped, {server.get('eventsFailed', '?')} events failed.",
        *([f"Lost events: {len(lost_events)} distinct ids missed by at least one client; the first ones: "
           + "; ".join(f"#{e['id']} {e['type']} (dentist {e['dentist_id']}, {e['seconds_into_load']} s into the "
                       f"load) missed by {e['clients']} {'/'.join(e['roles'])} client(s)" for e in lost_events[:8])
           + " (all of them in bench/out/soak.json)."] if lost_events else []),
        f"Errors: writer {writer.error or 'none'}; chat {len(chat.errors)}"
        + (f" (first: {chat.errors[0]})" if chat.errors else "") + ".",
        "",
        f"Verdict: {'**pass**' if ok else '**fail**'} (no memory trend: each slope under {FLAT_PER_HOUR:.0%} of "
        f"the mean RSS per hour, or its fitted change over the second half under {NOISE_MIB:g} MiB; no event "
        "lost, duplicated, unexpected or out of order; the cache at the head; no error).",
        "",
        f"![soak: RSS of each service over time]({png.relative_to(ROOT)})",
    ]
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "soak.json").write_text(json.dumps({"samples": samples, "trends": trends, "totals": totals,
                                               "writer": writer.counts, "turns": chat.turns,
                                               "lost_events": lost_events, "code": code, "sync_stats": server},
                                              default=str))
    return "\n".join(lines), ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--sample-seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=5, help="SQL writes per second")
    parser.add_argument("--live", type=int, default=500, help="visits the writer keeps live")
    parser.add_argument("--admins", type=int, default=240)
    parser.add_argument("--dentist-clients", type=int, default=60)
    parser.add_argument("--chat-users", type=int, default=3)
    parser.add_argument("--chain-dentists", type=int, default=20)
    parser.add_argument("--no-report", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if not has_model():
        print("no trained model: run `make train` first", file=sys.stderr)
        return 1
    try:
        import matplotlib  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        print("matplotlib and numpy are needed: uv pip install -p .venv/bin/python -r requirements/bench.lock",
              file=sys.stderr)
        return 1
    text, ok = asyncio.run(soak(args))
    (ROOT / "bench" / "out" / "soak.md").write_text(text + "\n")
    print(text)
    if not args.no_report:
        write_section("soak", text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
