"""What the chat-level benchmarks (``race.py``, ``soak.py``, ``chat_turns.py``) share: a scratch
database, the machine's description, percentiles, process memory, the action server's
availability source, and the generated sections of ``BENCHMARKS.md``.

A generated section sits between ``<!-- bench:<key>:start ... -->`` and ``<!-- bench:<key>:end -->``;
a run replaces only the text between its own two markers (or appends the section when the
markers are missing), so hand-written notes around it stay as they are.
"""

from __future__ import annotations

import asyncio
import os
import platform
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
