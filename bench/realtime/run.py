"""Run the realtime scenarios against the sync service and the naive baseline, same load, same run.

For each scenario and each server (``ours`` = ``python -m sync``, ``naive`` =
``bench/naive_server.py``): start the server on a free loopback port, measure its RSS with no
client, connect every client (generator processes), measure RSS again once idle, then commit
bookings at the scenario's rate, wait until every expected frame has arrived (or a bounded
drain), read the server's ``/api/realtime/stats`` and CPU time, stop everything, and score:
commit → receive latency of each (event, recipient), lost / duplicate / unexpected / out-of-order
frames against the recipients each event must reach.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import aiohttp

from bot.settings import Settings
from bot.tokens import mint

from . import fixture
from .clients import cpu_seconds, raise_nofile, rss_kib, worker_main

ROOT = Path(__file__).resolve().parents[2]
SECRET = "bench-secret-" + "x" * 32
NOFILE = 65536
DRAIN_CAP = 120.0   # seconds the last frames may take to arrive after the writers stop
DRAIN_STALL = 5.0   # ... or nothing arrived for this long
IDLE_SECONDS = 8.0  # connected, no events: RSS and idle CPU (pings) are read over this


@dataclass
class Scenario:
    key: str
    title: str
    admins: int
    dentists: int
    patients: int
    rate: float
    writers: int
    workers: int
    target_p99_ms: float
    duration: float = 40.0
    warmup: float = 3.0

    @property
    def connections(self) -> int:
        return self.admins + self.dentists + self.patients


SCENARIOS = {
    "case1": Scenario("case1", "1,000 admin clients, 20 events/s, every client receives every event",
                      admins=1000, dentists=0, patients=0, rate=20, writers=2, workers=4, target_p99_ms=50),
    "case1-5eps": Scenario("case1-5eps", "1,000 admin clients, 5 events/s (lower-rate point)",
                           admins=1000, dentists=0, patients=0, rate=5, writers=1, workers=4, target_p99_ms=50),
    "case2": Scenario("case2", "5,000 connections (4,930 patients, 50 dentists, 20 admins), 50 bookings/s "
                      "from 5 concurrent writers", admins=20, dentists=50, patients=4930, rate=50, writers=5,
                      workers=4, target_p99_ms=100),
}

SERVERS = {
    "ours": [sys.executable, "-m", "sync", "--host", "127.0.0.1", "--log-level", "WARNING", "--port"],
    "naive": [sys.executable, str(ROOT / "bench" / "naive_server.py"), "--host", "127.0.0.1", "--port"],
    # a modified copy of the service (--proto-root DIR): `python -m sync` run from that directory
    "proto": [sys.executable, "-m", "sync", "--host", "127.0.0.1", "--log-level", "WARNING", "--port"],
}
PROTO_ROOT: Path | None = None


@dataclass
class RunResult:
    scenario: str
    server: str
    connections_wanted: int
    connected: int
    connect_failed: int
    connect_errors: dict
    connect_seconds: float
    rss_empty_kib: int
    rss_idle_kib: int
    rss_per_conn_kib: float
    events: int
    expected_frames: int
    received_frames: int
    lost: int
    duplicates: int
    unexpected: int
    out_of_order: int
    closed_during_run: int
    id_check_failures: int
    latency_ms: dict
    worst_recipient_ms: dict
    server_cpu_s: float
    server_cpu_us_per_msg: float
    server_cpu_share: float
    server_idle_cpu_share: float
    server_cpu_us_per_msg_marginal: float
    generator_cpu_share: float
    writer_late_ms_max: float
    drain_seconds: float
    server_stats: dict
    load_seconds: float
    samples_file: str = ""
    loadavg_1min: tuple = ()  # at the start and at the end of the run (other work on the machine)
    notes: list = field(default_factory=list)


def percentiles(values: np.ndarray) -> dict:
    import numpy as np  # bench.lock; imported here so that --help needs none of it
    if values.size == 0:
        return {"count": 0}
    q = np.percentile(values, [50, 90, 99, 99.9])
    return {"count": int(values.size), "p50": round(float(q[0]), 2), "p90": round(float(q[1]), 2),
            "p99": round(float(q[2]), 2), "p999": round(float(q[3]), 2),
            "max": round(float(values.max()), 2), "mean": round(float(values.mean()), 2),
            "min": round(float(values.min()), 2), "negative": int((values < 0).sum())}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _limits() -> None:  # runs in the server child before exec: its own `ulimit -n`
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(NOFILE, hard) if hard != resource.RLIM_INFINITY
                                                else NOFILE, hard))


def start_server(kind: str, port: int, db_url: str, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=db_url, JWT_SECRET=SECRET, ENV="test", PYTHONUNBUFFERED="1",
               LOG_LEVEL="WARNING")
    env.pop("REDIS_URL", None)
    log = open(log_path, "ab")
    cwd = ROOT
    if kind == "proto":
        if PROTO_ROOT is None:
            raise SystemExit("--servers proto needs --proto-root DIR")
        cwd = PROTO_ROOT
        env["PYTHONPATH"] = str(PROTO_ROOT)
    return subprocess.Popen(SERVERS[kind] + [str(port)], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT, preexec_fn=_limits)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode} before becoming healthy")
            try:
                async with http.get(f"http://127.0.0.1:{port}/api/realtime/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("server did not become healthy in time")


async def server_stats(port: int, token: str) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/api/realtime/stats",
                            headers={"Authorization": f"Bearer {token}"}) as resp:
            return await resp.json() if resp.status == 200 else {"status": resp.status}


class Generator:
    """The client processes of one run."""

    def __init__(self, url: str, tokens: list[str], workers: int):
        ctx = mp.get_context("spawn")
        self.slices: list[tuple[int, int]] = []
        self.pipes = []
        self.procs = []
        per = -(-len(tokens) // workers)
        for w in range(workers):
            lo, hi = w * per, min(len(tokens), (w + 1) * per)
            if lo >= hi:
                break
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, url, tokens[lo:hi]), daemon=True)
            proc.start()
            self.slices.append((lo, hi))
            self.pipes.append(parent)
            self.procs.append(proc)

    def status(self) -> list[dict]:
        for pipe in self.pipes:
            pipe.send(("status",))
        return [pipe.recv() for pipe in self.pipes]

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def stop(self) -> list[dict]:
        for pipe in self.pipes:
            pipe.send(("stop",))
        out = []
        for pipe in self.pipes:
            if not pipe.poll(60):
                raise RuntimeError("a generator process did not report")
            out.append(pipe.recv())
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        return out


def labels_for(sc: Scenario) -> list[tuple[str, int]]:
    return ([("admin", i + 1) for i in range(sc.admins)] + [("dentist", i + 1) for i in range(sc.dentists)]
            + [("patient", i + 1) for i in range(sc.patients)])


def tokens_for(labels: list[tuple[str, int]], settings: Settings) -> list[str]:
    return [mint(role, f"bench{ident}" if role == "admin" else ident, settings=settings, ttl_minutes=240)
            for role, ident in labels]


def score(labels, results, bookings, outbox_of, load_start_ns: int, warmup: float):
    """Latencies and delivery counts against the recipients each event must reach."""
    import numpy as np  # bench.lock; imported here so that --help needs none of it
    events = {}  # outbox id → (commit_ns, dentist, patient)
    for b in bookings:
        oid = outbox_of.get(b.appointment_id)
        if oid is not None:
            events[oid] = (b.commit_ns, b.dentist_id, b.patient_id)
    by_dentist: dict[int, int] = {}
    by_patient: dict[int, int] = {}
    for _, d, p in events.values():
        by_dentist[d] = by_dentist.get(d, 0) + 1
        by_patient[p] = by_patient.get(p, 0) + 1
    warm_ns = load_start_ns + int(warmup * 1e9)
    counts = dict(expected=0, received=0, lost=0, duplicates=0, unexpected=0, out_of_order=0)
    latencies: list[float] = []
    at_s: list[float] = []  # commit time of each sample, seconds after the load started
    worst: dict[int, float] = {}
    offset = 0
    for res in results:
        ok = res["ok"]
        for j, (ids_b, times_b) in enumerate(zip(res["ids"], res["times"])):
            role, ident = labels[offset + j]
            if not ok[j]:
                continue
            expected = (len(events) if role == "admin" else by_dentist.get(ident, 0) if role == "dentist"
                        else by_patient.get(ident, 0))
            ids = np.frombuffer(ids_b, dtype=np.int64)
            times = np.frombuffer(times_b, dtype=np.int64)
            seen = set()
            prev = 0
            good = 0
            for oid, at in zip(ids.tolist(), times.tolist()):
                ev = events.get(oid)
                if oid in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(oid)
                if oid < prev:
                    counts["out_of_order"] += 1
                prev = oid
                if ev is None or (role == "dentist" and ev[1] != ident) or (role == "patient" and ev[2] != ident):
                    counts["unexpected"] += 1
                    continue
                good += 1
                if ev[0] >= warm_ns:
                    ms = (at - ev[0]) / 1e6
                    latencies.append(ms)
                    at_s.append((ev[0] - load_start_ns) / 1e9)
                    if ms > worst.get(oid, -1e9):
                        worst[oid] = ms
            counts["expected"] += expected
            counts["received"] += good
            counts["lost"] += expected - good
        offset += len(res["ids"])
    return events, counts, np.array(latencies), np.array(at_s), np.array(list(worst.values()))


async def run_one(sc: Scenario, kind: str, db_url: str, settings: Settings, slots: fixture.Slots,
                  labels, tokens, admin_token: str, out_dir: Path, seed: int,
                  profile: bool = False) -> tuple[RunResult, np.ndarray]:
    import numpy as np  # bench.lock; imported here so that --help needs none of it
    port = free_port()
    load_before = os.getloadavg()[0]
    proc = start_server(kind, port, db_url, out_dir / f"{sc.key}-{kind}.log")
    gen = None
    notes: list[str] = []
    try:
        await wait_healthy(port, proc)
        await asyncio.sleep(1.0)
        rss_empty = rss_kib(proc.pid)
        t = time.monotonic()
        gen = Generator(f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", tokens, sc.workers)
        deadline = time.monotonic() + 180
        while True:
            st = gen.status()
            done = sum(s["connected"] + s["failed"] for s in st)
            if done >= len(tokens) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        connect_seconds = time.monotonic() - t
        connected = sum(s["connected"] for s in st)
        failed = sum(s["failed"] for s in st)
        errors: dict[str, int] = {}
        for s in st:
            for k, v in s["errors"].items():
                errors[k] = errors.get(k, 0) + v
        idle_cpu0 = cpu_seconds(proc.pid)
        await asyncio.sleep(IDLE_SECONDS)  # idle: every connection's buffers settled
        idle_cpu_share = (cpu_seconds(proc.pid) - idle_cpu0) / IDLE_SECONDS
        rss_idle = rss_kib(proc.pid)
        # load
        received0 = sum(s["received"] for s in gen.status())
        spy = None
        if profile:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(proc.pid), "--rate", "250",
                 "--duration", str(int(sc.duration)), "--format", "raw", "--nonblocking",
                 "--output", str(out_dir / f"{sc.key}-{kind}.pyspy.txt")],
                stdout=subprocess.DEVNULL, stderr=open(out_dir / f"{sc.key}-{kind}.pyspy.log", "wb"))
        cpu0, gcpu0, t0 = cpu_seconds(proc.pid), gen.cpu(), time.monotonic()
        load_start_ns = time.time_ns()
        bookings = await fixture.write(db_url, rate=sc.rate, duration=sc.duration, writers=sc.writers,
                                       slots=slots, rng=random.Random(seed))
        # drain: until every expected frame arrived (each event's recipients are known)
        outbox_of = fixture.outbox_ids(db_url, [b.appointment_id for b in bookings])
        n_admin = sum(1 for role, _ in labels if role == "admin")
        ok_dentists = {ident for role, ident in labels if role == "dentist"}
        ok_patients = {ident for role, ident in labels if role == "patient"}
        want = sum(n_admin + (b.dentist_id in ok_dentists) + (b.patient_id in ok_patients) for b in bookings)
        want = int(want * connected / max(1, len(tokens)))  # approximate if some failed to connect
        # bounded: stop at the cap, or when nothing has arrived for `stall` seconds
        drain_t = last_progress = time.monotonic()
        got_before = -1
        while time.monotonic() - drain_t < DRAIN_CAP:
            got = sum(s["received"] for s in gen.status()) - received0
            if got >= want:
                break
            if got != got_before:
                got_before, last_progress = got, time.monotonic()
            elif time.monotonic() - last_progress > DRAIN_STALL:
                notes.append(f"drain stopped: nothing new for {DRAIN_STALL:g} s")
                break
            await asyncio.sleep(0.1)
        else:
            notes.append(f"drain stopped at its {DRAIN_CAP:g} s cap")
        drain_seconds = time.monotonic() - drain_t
        await asyncio.sleep(0.5)  # a late duplicate would show up now
        load_seconds = time.monotonic() - t0
        cpu1, gcpu1 = cpu_seconds(proc.pid), gen.cpu()
        stats = await server_stats(port, admin_token)
        results = gen.stop()
        gen = None
        if spy is not None:
            spy.wait(60)
    finally:
        if gen is not None:
            for p in gen.procs:
                p.kill()
        stop_server(proc)
    events, counts, lat, lat_at, worst = score(labels, results, bookings, outbox_of, load_start_ns, sc.warmup)
    if len(outbox_of) != len(bookings):
        notes.append(f"{len(bookings) - len(outbox_of)} bookings without an outbox row")
    delivered = counts["received"]
    res = RunResult(
        scenario=sc.key, server=kind, connections_wanted=len(tokens), connected=connected,
        connect_failed=failed, connect_errors=errors, connect_seconds=round(connect_seconds, 1),
        rss_empty_kib=rss_empty, rss_idle_kib=rss_idle,
        rss_per_conn_kib=round((rss_idle - rss_empty) / max(1, connected), 2),
        events=len(events), expected_frames=counts["expected"], received_frames=delivered,
        lost=counts["lost"], duplicates=counts["duplicates"], unexpected=counts["unexpected"],
        out_of_order=counts["out_of_order"],
        closed_during_run=sum(r["closed"] for r in results),
        id_check_failures=sum(r["check_failures"] for r in results),
        latency_ms=percentiles(lat), worst_recipient_ms=percentiles(worst),
        server_cpu_s=round(cpu1 - cpu0, 2),
        server_cpu_us_per_msg=round((cpu1 - cpu0) * 1e6 / max(1, delivered), 1),
        server_cpu_share=round((cpu1 - cpu0) / load_seconds, 3),
        server_idle_cpu_share=round(idle_cpu_share, 3),
        server_cpu_us_per_msg_marginal=round(max(0.0, (cpu1 - cpu0) - idle_cpu_share * load_seconds) * 1e6
                                             / max(1, delivered), 1),
        generator_cpu_share=round((gcpu1 - gcpu0) / load_seconds, 3),
        writer_late_ms_max=round(max((b.late_ms for b in bookings), default=0.0), 1),
        drain_seconds=round(drain_seconds, 2), server_stats=_stats_subset(stats),
        load_seconds=round(load_seconds, 1), notes=notes,
        loadavg_1min=(round(load_before, 2), round(os.getloadavg()[0], 2)))
    return res, np.stack([lat_at, lat]) if lat.size else np.zeros((2, 0))


def _stats_subset(stats: dict) -> dict:
    keep = ("eventsProcessed", "eventsDelivered", "slowClientsDropped", "deliveryLagMs", "fanoutMs", "listener",
            "connections", "status")
    return {k: stats[k] for k in keep if k in stats}


def machine() -> dict:
    mem_kib = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    model = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"cores": os.cpu_count(), "cpu": model, "ram_gib": round(mem_kib / 1048576, 1),
            "commit": git("rev-parse", "--short", "HEAD"),
            "sync_dirty": bool(git("status", "--porcelain", "--", "sync")),
            "python": platform.python_version(), "kernel": platform.release(),
            "loadavg_at_start": os.getloadavg()}


async def main_async(args) -> int:
    import numpy as np  # bench.lock; imported here so that --help needs none of it
    raise_nofile(NOFILE)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = Path(args.out) / f"realtime-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    dbname = f"bench_realtime_{stamp.lower()}"
    db_url = fixture.create_database(dbname)
    settings = Settings(database_url=db_url, jwt_secret=SECRET, env="test", _env_file=None)
    admin_token = mint("admin", "bench-stats", settings=settings, ttl_minutes=240)
    slots = fixture.Slots()
    report = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "command": " ".join(["python", "-m", "bench.realtime"] + sys.argv[1:]), "scenarios": []}
    try:
        for n, key in enumerate(args.scenario):
            sc = SCENARIOS[key]
            if args.duration:
                sc.duration = args.duration
            if args.scale != 1.0:
                sc.admins = max(1, round(sc.admins * args.scale)) if sc.admins else 0
                sc.dentists = round(sc.dentists * args.scale)
                sc.patients = round(sc.patients * args.scale)
            labels = labels_for(sc)
            tokens = tokens_for(labels, settings)
            entry = {"scenario": asdict(sc), "runs": {}}
            for kind in args.servers:
                print(f"[{datetime.now(timezone.utc):%H:%M:%S}] {key} / {kind}: {sc.connections} connections, "
                      f"{sc.rate:g}/s for {sc.duration:g}s (load {os.getloadavg()[0]:.2f})", flush=True)
                res, lat = await run_one(sc, kind, db_url, settings, slots, labels, tokens, admin_token,
                                         out_dir, seed=1000 + n, profile=args.profile)
                samples = out_dir / f"{key}-{kind}.npy"
                np.save(samples, lat.astype(np.float32))  # row 0: commit time (s into the load), row 1: ms
                res.samples_file = str(samples.relative_to(ROOT)) if samples.is_relative_to(ROOT) else str(samples)
                entry["runs"][kind] = asdict(res)
                print(json.dumps(_brief(res)), flush=True)
            report["scenarios"].append(entry)
            (out_dir / "results.json").write_text(json.dumps(report, indent=2))
    finally:
        if not args.keep_db:
            fixture.drop_database(dbname)
    report["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (out_dir / "results.json").write_text(json.dumps(report, indent=2))
    print(f"results: {out_dir / 'results.json'}", flush=True)
    if args.report:
        from . import report as rep
        rep.publish(out_dir / "results.json", plots_dir=Path(args.plots), markdown_path=Path(args.markdown))
    return 0


def _brief(res: RunResult) -> dict:
    return {"server": res.server, "connected": res.connected, "events": res.events,
            "expected": res.expected_frames, "received": res.received_frames, "lost": res.lost,
            "dup": res.duplicates, "unexpected": res.unexpected, "lat": res.latency_ms,
            "cpu_us_per_msg": res.server_cpu_us_per_msg, "marginal_us": res.server_cpu_us_per_msg_marginal,
            "idle_cpu": res.server_idle_cpu_share, "notes": res.notes, "rss_kib_per_conn": res.rss_per_conn_kib,
            "gen_cpu": res.generator_cpu_share, "srv_cpu": res.server_cpu_share,
            "fanout": res.server_stats.get("fanoutMs")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.realtime", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="repeatable; default: case1 case1-5eps case2")
    parser.add_argument("--servers", default="ours,naive", help="comma-separated: ours,naive")
    parser.add_argument("--duration", type=float, default=0, help="seconds of load per run (default 40)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply client counts (debug runs)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--plots", default=str(ROOT / "bench" / "plots"))
    parser.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--no-report", dest="report", action="store_false",
                        help="skip plots and BENCHMARKS.md (results.json only)")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--proto-root", help="directory holding a modified sync/ (and bot/, sql/) to measure "
                        "as server 'proto', e.g. --servers ours,proto --proto-root /tmp/sync-proto")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the server during the load (bench/out/.../<case>-<server>.pyspy.txt)")
    args = parser.parse_args(argv)
    args.scenario = args.scenario or ["case1", "case1-5eps", "case2"]
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if args.proto_root:
        global PROTO_ROOT
        PROTO_ROOT = Path(args.proto_root).resolve()
    return asyncio.run(main_async(args))
