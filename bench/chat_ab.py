"""Rasa set-ups compared back to back: the same chat turns as ``chat_turns.py`` against one stack
(sync service and action server started once), Rasa restarted for each variant, variants taken
in turn and the whole sequence repeated, so every variant sees the same machine and the same
neighbours' load (the 2-core machine is shared; see BENCHMARKS.md).

    .venv/bin/python bench/chat_ab.py --variant before=plain,model=models/rasa-d152e887216bca9b.tar.gz \\
                                      --variant after= [--variant two=workers=2] \\
                                      [--users 1 20] [--think-users 20] [--think 1 3] \
                                      [--rounds 2] [--repeat 2]

A variant is ``NAME=OPTIONS``, options comma-separated, none meaning "as ``make run`` starts Rasa":

* ``plain``       Rasa's own ``rasa run`` instead of ``python -m rasa_tools.server run``
* ``model=PATH``  this model file (or folder) instead of ``models``
* ``workers=N``   N Sanic workers (``SANIC_WORKERS``) with the Redis lock store (``endpoints.redis.yml``,
                  ``REDIS_URL`` or ``redis://127.0.0.1:6379/1``): Rasa refuses N > 1 with its
                  in-memory lock store
* ``env:K=V``     an environment variable for Rasa (e.g. ``env:TF_INTRA_OP_PARALLELISM_THREADS=1``)

Each variant is ready once it has answered (with several workers the port opens before the
models are loaded) and has run a few warm-up conversations. Prints a markdown table (per
variant, per scenario, per repeat: p50 / p95 / max, Rasa CPU per turn, load) and writes it to
bench/out/chat_ab.md; BENCHMARKS.md is left alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chat_turns import conversation, reset_diaries, seeded_stack, start_conversation  # noqa: E402
from bench.common import (machine, pct, revision, scratch_database, tree_cpu_seconds,  # noqa: E402
                          use_source, utc_now)
from bot.launcher import RASA, kill_tree, rasa_env  # noqa: E402
from bot.stack import Stack, has_model  # noqa: E402


def rasa_command(stack: Stack, options: str) -> tuple[list[str], dict[str, str]]:
    """The Rasa service's argv and extra environment for one variant's options."""
    svc = stack.services["rasa"]
    argv, env = list(svc.argv), dict(svc.env)
    for option in filter(None, (o.strip() for o in options.split(","))):
        if option == "plain":
            argv = [str(RASA), *argv[argv.index("rasa_tools.server") + 1:]]
        elif option.startswith("model="):
            argv[argv.index("--model") + 1] = option.removeprefix("model=")
        elif option.startswith("workers="):
            argv[argv.index("--endpoints") + 1] = "endpoints.redis.yml"
            redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/1"
            env.update(rasa_env(stack.settings.model_copy(update={"redis_url": redis_url}),
                                stack.settings.database_url))
            env["SANIC_WORKERS"] = option.removeprefix("workers=")
        elif option.startswith("env:") and "=" in option:
            name, _, value = option.removeprefix("env:").partition("=")
            env[name] = value
        else:
            raise SystemExit(f"unknown variant option {option!r}")
    return argv, env


async def answered(stack: Stack, timeout: float = 600) -> None:
    """Until Rasa answers a message (several workers open the port before loading the model)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await stack.say(f"ready-{time.monotonic_ns()}", "hello")
            return
        except Exception:  # refused, or the 60 s client timeout while the model loads
            if time.monotonic() > deadline or stack.services["rasa"].proc.poll() is not None:
                raise
            await asyncio.sleep(1)


def stop_rasa(stack: Stack) -> None:
    proc = stack.services["rasa"].proc
    proc.terminate()
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:  # a worker still loading ignores the parent's SIGTERM
        kill_tree(proc)
    stack.services["rasa"].proc = None


async def scenario(stack: Stack, count: int, think: tuple[float, float] | None, rounds: int) -> dict:
    turns: list[float] = []
    outcomes: list[str] = []
    pid = stack.services["rasa"].proc.pid
    cpu0, load0, t0 = tree_cpu_seconds(pid), os.getloadavg()[0], time.monotonic()
    for r in range(rounds):
        await asyncio.gather(*(start_conversation(stack, 1000 * r + count * 10 + i, turns, outcomes, think)
                               for i in range(count)))
    return {"turns": len(turns), "p50": statistics.median(turns), "p95": pct(turns, 95), "max": max(turns),
            "booked": f"{outcomes.count('booked')}/{len(outcomes)}", "wall": time.monotonic() - t0,
            "rasa_cpu": (tree_cpu_seconds(pid) - cpu0) * 1000 / len(turns),
            "load": f"{load0:.1f} → {os.getloadavg()[0]:.1f}"}


async def run_variant(stack: Stack, name: str, rep: int, scenarios: list, rounds: int) -> list[str]:
    """Start Rasa as the service's argv/env say, warm it up, run every scenario, stop it."""
    rows = []
    t0 = time.monotonic()
    stack.start("rasa")
    try:
        await answered(stack)
        startup = time.monotonic() - t0
        for _ in range(2):  # warm-up, not counted: every worker traces its TF functions
            await asyncio.gather(*(conversation(stack, 0, [], []) for _ in range(4)))
        for count, pause in scenarios:
            f = await scenario(stack, count, pause, rounds)
            mode = "closed loop" if pause is None else f"think {pause[0]:g}–{pause[1]:g} s"
            rows.append(f"| {name} | {rep + 1} | {count} | {mode} | {f['turns']} | {f['p50']:.0f} "
                        f"| {f['p95']:.0f} | {f['max']:.0f} | {f['booked']} | {f['wall']:.1f} "
                        f"| {f['rasa_cpu']:.0f} | {f['load']} | {startup:.0f} |")
            print(rows[-1], flush=True)
    finally:
        stop_rasa(stack)
    return rows


async def run(variants: list[tuple[str, str]], users: list[int], think_users: list[int],
              think: tuple[float, float], rounds: int, repeat: int) -> str:
    rows = []
    load_start = os.getloadavg()
    scenarios = [(c, None) for c in users] + [(c, think) for c in think_users]
    with scratch_database("bench_chat_ab") as db_url:
        stack, seeded = seeded_stack(db_url)
        base = (list(stack.services["rasa"].argv), dict(stack.services["rasa"].env))
        stack.start("sync", "actions")
        try:
            await use_source(stack, "cache")
            for rep in range(repeat):
                for name, options in variants:
                    stack.services["rasa"].argv, stack.services["rasa"].env = base
                    stack.services["rasa"].argv, stack.services["rasa"].env = rasa_command(stack, options)
                    reset_diaries(db_url, seeded)
                    rows += await run_variant(stack, name, rep, scenarios, rounds)
        finally:
            stack.stop()
    return "\n".join([
        "### Rasa set-ups back to back",
        "",
        f"`{' '.join(['.venv/bin/python', 'bench/chat_ab.py', *sys.argv[1:]])}` — {utc_now()}, {machine()}; "
        f"{revision()}; load average at start {' '.join(f'{x:.2f}' for x in load_start)}.",
        "",
        "Variants: " + "; ".join(f"`{name}` = {options or 'as make run starts Rasa'}"
                                 for name, options in variants)
        + ". A conversation is 5 turns (request, slot button, name, phone, yes). *closed loop*: each user "
        "sends its next message the instant the reply arrives; *think*: each user pauses that long before "
        "every message.",
        "",
        "| variant | repeat | users | users send | turns | p50 ms | p95 ms | max ms | booked | wall s "
        "| Rasa CPU ms per turn | load 1 min | Rasa ready after s |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        *rows,
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, metavar="NAME=OPTIONS")
    parser.add_argument("--users", type=int, nargs="*", default=[1, 20])
    parser.add_argument("--think-users", type=int, nargs="*", default=[20])
    parser.add_argument("--think", type=float, nargs=2, default=[1.0, 3.0], metavar=("LOW", "HIGH"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if not has_model():
        print("no trained model: run `make train` first", file=sys.stderr)
        return 1
    variants = [tuple(v.split("=", 1)) if "=" in v else (v, "") for v in args.variant]
    report = asyncio.run(run(variants, args.users, args.think_users, tuple(args.think), args.rounds,
                             args.repeat))
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / "chat_ab.md").write_text(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
