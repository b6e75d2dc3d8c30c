"""What the chat-level benchmarks (``race.py``, ``soak.py``, ``chat_turns.py``) share: a scratch
database, the machine's description, percentiles, process memory, the action server's
availability source, latency-distribution plots, and the generated sections of ``BENCHMARKS.md``.

A generated section sits between ``<!-- bench:<key>:start ... -->`` and ``<!-- bench:<key>:end -->``;
a run replaces only the text between its own two markers (or appends the section when the
markers are missing), so hand-written notes around it stay as they are.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import aiohttp
import psycopg

ROOT = Path(__file__).resolve().parent.parent
SERVER = (os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
          or "postgresql://postgres@127.0.0.1:5432/postgres")
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


@contextmanager
def scratch_database(prefix: str, keep: bool = False) -> Iterator[str]:
    """A new, empty database on the benchmark server (libpq URL), dropped afterwards."""
    from bot.migrate import migrate

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = SERVER.rpartition("/")[0] + "/" + name
    try:
        migrate(url)
        yield url
    finally:
        if not keep:
            with psycopg.connect(SERVER, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def machine() -> str:
    """Cores, RAM, CPU model, Python, and the load average right now."""
    try:
        mem_kb = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
        ram = f"{mem_kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        ram = "RAM unknown"
    cpu = platform.processor() or "CPU unknown"
    try:
        cpu = next(line for line in open("/proc/cpuinfo") if line.startswith("model name")).split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} cores, {ram}, {cpu}, {platform.python_implementation()} "
            f"{platform.python_version()}, {platform.system()}")


def revision(paths: tuple[str, ...] = ("actions", "bot", "sync", "sql", "data", "domain.yml", "config.yml")) -> str:
    """The commit measured, and whether the code the services run differs from it."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout  # not stripped: " M path" keeps its columns
    except (OSError, subprocess.CalledProcessError):
        return "commit unknown (not a git checkout)"
    changed = sorted({line[3:].split("/")[0] for line in dirty.splitlines()})
    return f"commit {head}" + (f" with uncommitted changes in {', '.join(changed)}" if changed else "")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def utc_now() -> str:
    return f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0–100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


def tree_rss_kib(pid: int) -> int:
    """VmRSS of a process and all its descendants (KiB); 0 once it is gone."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
        todo.extend(_children(p))
    return total


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its descendants (seconds)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
        todo.extend(_children(p))
    return total


async def action_server_ready(stack, timeout: float = 120) -> dict:
    """Wait until the action server's /health says ``ok`` (cache loaded, sync connected)."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{stack.url('actions')}/health") as resp:
                    body = await resp.json()
                    if body.get("status") == "ok":
                        return body
            except (aiohttp.ClientError, ValueError):
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"the action server did not become ready: {body}")


async def use_source(stack, source: str) -> None:
    """(Re)start the action server answering availability from ``source`` (``cache`` or ``sql``)."""
    stack.settings = stack.settings.model_copy(update={"availability_source": source})
    if stack.services["actions"].proc is not None and stack.services["actions"].proc.poll() is None:
        await asyncio.to_thread(stack.restart, "actions")
    await action_server_ready(stack)


def write_section(key: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the generated section ``key`` of BENCHMARKS.md with ``body``."""
    start = f"<!-- bench:{key}:start (generated by bench/{key}.py; edits here are overwritten) -->"
    end = f"<!-- bench:{key}:end -->"
    section = f"{start}\n\n{body.strip()}\n\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if f"<!-- bench:{key}:start" in text and end in text:
        head, _, rest = text.partition(f"<!-- bench:{key}:start")
        _, _, tail = rest.partition(end)
        text = head + section + tail
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
    print(f"bench: wrote the {key} section of {path.name}")


COLOURS = {"cache": "#1f77b4", "ours": "#1f77b4", "sql": "#d62728", "naive": "#d62728"}
FLOOR_MS = 0.1  # the left edge of a latency plot at most: below it a log scale shows only clock noise


def _ms(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2g}"


def plot_latency(path: Path, panels: list[tuple[str, dict[str, list[float]]]], *, title: str,
                 unit: str = "turn latency", target_ms: float | None = None, target_label: str = "target",
                 same_scale: bool = True, floor_ms: float = FLOOR_MS) -> Path:
    """One PNG of latency distributions: a column per panel (a scenario), each comparing its
    series (e.g. ``cache`` and ``sql``): a histogram (% of samples per bin) above, the cumulative
    distribution (p50 and p95 marked) below, both on a log scale of milliseconds; values at or
    below zero (a frame can arrive before its writer has read the clock) are drawn at the left
    edge: the smallest positive value, never below ``floor_ms`` (lower it for sub-0.1 ms timings). ``target_ms``: a dashed line. With
    ``same_scale`` every column shares the x axis (scenarios of one kind), else each has its own.
    A series' colour follows its name's first word (``COLOURS``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker as ticker
    import numpy as np

    def scale(groups) -> tuple[float, float, np.ndarray]:
        positive = [np.asarray(vs, dtype=float) for vs in groups if len(vs)]
        positive = [a[a > 0] for a in positive]
        positive = [a for a in positive if a.size]
        lo = max(floor_ms, min(float(a.min()) for a in positive)) if positive else 1.0
        hi = max(float(a.max()) for a in positive) if positive else 1000.0
        return lo, hi, np.logspace(np.log10(lo * 0.9), np.log10(hi * 1.1), 50)

    everything = scale([vs for _, series in panels for vs in series.values()])
    fig, axes = plt.subplots(2, len(panels), figsize=(max(8.0, 4.6 * len(panels) + 0.6), 7), dpi=80,
                             squeeze=False, sharex=True if same_scale else "col")
    for col, (name, series) in enumerate(panels):
        lo, hi, bins = everything if same_scale else scale(list(series.values()))
        hist_ax, cdf_ax = axes[0][col], axes[1][col]
        for k, (label, vs) in enumerate(series.items()):
            if not vs:
                continue
            data = np.clip(np.asarray(vs, dtype=float), lo, None)
            colour = COLOURS.get(label.split()[0], f"C{k + 2}")
            p50, p95 = statistics.median(vs), pct(vs, 95)  # as the tables compute them
            weights = np.full(data.size, 100.0 / data.size)
            hist_ax.hist(data, bins=bins, weights=weights, histtype="stepfilled", alpha=0.3, color=colour)
            hist_ax.hist(data, bins=bins, weights=weights, histtype="step", color=colour,
                         label=f"{label}: p50 {_ms(p50)}, p95 {_ms(p95)} ms (n={data.size:,})")
            ordered = np.sort(data)
            cdf_ax.step(ordered, np.arange(1, ordered.size + 1) * 100.0 / ordered.size, where="post",
                        color=colour, label=label)
            cdf_ax.plot([p50, p95], [50, 95], "o", color=colour, ms=4)
        for ax in (hist_ax, cdf_ax):
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.grid(True, which="both", alpha=0.25)
            if target_ms:
                ax.axvline(target_ms, color="black", ls="--", lw=1)
        if target_ms:
            hist_ax.text(target_ms, 0.03, f" {target_label} {target_ms:g} ms", va="bottom", ha="right",
                         rotation=90, fontsize=8, transform=hist_ax.get_xaxis_transform())
        hist_ax.set_title(name, fontsize=10)
        hist_ax.legend(fontsize=7, loc="upper left")
        hist_ax.set_ylabel("% of samples per bin")
        cdf_ax.set_ylabel("% at or below")
        cdf_ax.set_ylim(0, 100.5)
        for level in (50, 95):
            cdf_ax.axhline(level, color="grey", lw=0.8, ls=":")
        cdf_ax.set_xlabel(f"{unit} (ms, log scale)")
        cdf_ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_path(name: str, no_report: bool) -> Path:
    """Where a benchmark's PNG goes: ``bench/plots/`` (committed, referenced from BENCHMARKS.md), or
    ``bench/out/`` when the run leaves BENCHMARKS.md alone (``--no-report``)."""
    return ROOT / "bench" / ("out" if no_report else "plots") / name


def have_plotting() -> bool:
    """matplotlib and numpy importable (``requirements/bench.lock``); says how to get them if not."""
    try:
        import matplotlib  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        print("matplotlib and numpy are needed: make install-bench (requirements/bench.lock)",
              file=sys.stderr)
        return False
    return True


FIRST = ["Ana", "Omar", "Mei", "Lukas", "Priya", "Tomás", "Zoe", "Kwame", "Ines", "Yuki"]
LAST = ["Benchley", "Okafor", "Lindqvist", "Moreau", "Haddad", "Novak", "Quispe", "Sato", "Duarte", "Keane"]


def bench_name(n: int) -> str:
    """A name as a patient types it (a name has no digits: the name question refuses them)."""
    return f"{FIRST[n % len(FIRST)]} {LAST[(n // len(FIRST)) % len(LAST)]}"


def code_sent(db_url: str, phone: str) -> str | None:
    """The code last texted to ``phone`` (E.164), read where the clinic records what it sends."""
    import psycopg

    from bot.otp import last_code_sent

    with psycopg.connect(db_url) as conn:
        return last_code_sent(conn, phone)
