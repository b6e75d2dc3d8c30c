"""Simulated patients against the whole system, judged by the database and the transcript.

    .venv/bin/python bench/simulate.py [--tasks 100] [--runs 3] [--seed 1] [--show TASK:RUN ...] [--no-report]

``--tasks`` tasks (a goal and a persona each: bench/simulator.py, ``make_tasks``), each run ``--runs``
times with its own seed, day/time phrase, name and phone number, one conversation after another
(one user at a time), on a seeded clinic with the stack ``make run`` starts (bot/stack.py) and the
anonymous chat's flood limits raised (``SIM_LIMITS``: every conversation comes from 127.0.0.1).
Prints and writes the ``simulate`` section of BENCHMARKS.md (unless ``--no-report``): success and
pass^3 per persona and per goal, loops, error texts, turn latency, the most common failure reasons
with an example each, and every failure; bench/out/simulate.json has every transcript. ``--show``
prints whole transcripts of the conversations named.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (load_average, machine, pct, revision, scratch_database, utc_now,  # noqa: E402
                          write_section)
from bench.simulator import (KINDS, MAX_TURNS, PERSONAS, SIM_LIMITS, Result, describe,  # noqa: E402
                             make_tasks, pass_k, run_tasks, to_json)
from bot.db import make_engine  # noqa: E402
from bot.seed import seed as seed_clinic  # noqa: E402
from bot.stack import Stack, has_model  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "–"


def table_rows(groups: dict[str, list[Result]]) -> list[str]:
    rows = []
    for name, results in groups.items():
        if not results:
            continue
        tasks, passed = pass_k(results), sum(r.success for r in results)
        rows.append(f"| {name} | {len(results)} | {share(passed, len(results))} "
                    f"| {sum(tasks.values())}/{len(tasks)} ({share(sum(tasks.values()), len(tasks))}) "
                    f"| {sum(r.loop for r in results)} | {sum(bool(r.error_texts) for r in results)} "
                    f"| {sum(len(r.error_texts) for r in results)} "
                    f"| {statistics.median(r.turns for r in results):g} "
                    f"| {sum(r.reasked for r in results)} |")
    return rows


def quoted(result: Result, lines: int = 4) -> list[str]:
    return [f"    {who}: {text}" for who, text in result.transcript[-lines:]]


def report(results: list[Result], args: argparse.Namespace, wall: float, startup: float, load0: str) -> str:
    turns = [ms for r in results for ms in r.latencies_ms]
    header = ("| | conversations | success | pass^3 (tasks) | loops | with error texts | error texts "
              "| median turns | re-asked |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    by_persona = {p.value: [r for r in results if r.persona == p.value] for p in PERSONAS}
    by_kind = {k: [r for r in results if r.goal and r.goal.kind == k] for k in KINDS}
    failed = [r for r in results if not r.success]
    reasons = Counter(c for r in failed for c in r.categories())
    examples = {c: next(r for r in failed if c in r.categories()) for c in reasons}
    errors = Counter(e for r in results for e in r.error_responses)
    lines = [
        "### Simulated patients (bench/simulate.py)",
        "",
        f"`{' '.join(['.venv/bin/python', 'bench/simulate.py', *sys.argv[1:]])}` — {utc_now()}, "
        f"{revision()}, {machine()}, load average {load0} before, {load_average()} after; stack start-up "
        f"{startup:.0f} s, {len(results)} conversations in {wall:.0f} s ({args.tasks} tasks × {args.runs} "
        f"runs, seed {args.seed}, one conversation at a time).",
        "",
        "A conversation succeeds when the database holds exactly what the patient chose (the dentist, the "
        "service and the exact start time of the offer it named; a moved visit at the new time; a cancelled "
        "visit cancelled; nothing else of the patient's changed), the bot never sent the same reply "
        "three times in a row (*loops*), sent no apology or refusal (*error texts*: the domain.yml "
        f"responses bench/simulator.py lists) and it took at most {MAX_TURNS} messages. A task (goal + "
        "persona) passes *pass^3* when all its runs (different seeds, day/time phrases and phrasings) "
        "succeed. *re-asked*: questions the bot asked again although the patient had answered them (not a "
        "failure by itself).",
        "",
        header, *table_rows(by_persona), *table_rows({"**all**": results}),
        "",
        header.replace("| | conversations", "| goal | conversations"), *table_rows(by_kind),
        "",
        f"Turn latency, one user at a time: p50 {statistics.median(turns):.0f} ms, p95 "
        f"{pct(turns, 95):.0f} ms, max {max(turns):.0f} ms ({len(turns)} turns)." if turns else "No turns.",
        "",
    ]
    if reasons:
        lines += ["Most common failure reasons (conversations that show each; one can show several):",
                  "", "| reason | conversations | example |", "|---|---:|---|"]
        lines += [f"| {c} | {n} | task {examples[c].task} run {examples[c].run} ({examples[c].persona}) |"
                  for c, n in reasons.most_common(10)]
        lines.append("")
    if errors:
        by_count = ", ".join(f"`{name}` {n}" for name, n in errors.most_common())
        lines += [f"Error texts by response: {by_count}.", ""]
    if failed:
        lines += [f"<details><summary>Every failure ({len(failed)})</summary>", ""]
        for r in failed:
            g = r.goal
            assert g is not None
            lines += [f"- task {r.task} run {r.run} · {g.kind} {g.service} with {g.dentist}, \"{g.when}\" · "
                      f"{r.persona} · seed {r.seed} · {r.turns} turns", "",
                      *(f"  - {reason}" for reason in r.reasons), "", "  ```", *quoted(r), "  ```", ""]
        lines += ["</details>"]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> tuple[list[Result], float, float]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Rasa's TensorFlow: no info lines on our stderr
    with scratch_database("bench_sim") as db_url:
        stack = Stack(db_url, overrides=SIM_LIMITS)
        engine = make_engine(stack.settings.database_url, pool_size=1)
        seed_clinic(engine, stack.settings)
        engine.dispose()
        t0 = time.monotonic()
        stack.start()
        startup = time.monotonic() - t0
        try:
            def progress(r: Result) -> None:
                print("." if r.success else "F", end="", file=sys.stderr, flush=True)

            t0 = time.monotonic()
            tasks = make_tasks(args.tasks, args.seed)
            results = await run_tasks(stack, tasks, args.runs, args.seed, progress)
            wall = time.monotonic() - t0
            print(file=sys.stderr)
        finally:
            stack.stop()
    return results, wall, startup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", nargs="*", default=[], metavar="TASK:RUN",
                        help="print these whole transcripts")
    parser.add_argument("--no-report", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args()
    if not has_model():
        print("no model trained from the current data: run `make train` first", file=sys.stderr)
        return 1
    load0 = load_average()
    results, wall, startup = asyncio.run(run(args))
    text = report(results, args, wall, startup, load0)
    OUT.mkdir(exist_ok=True)
    (OUT / "simulate.md").write_text(text + "\n")
    (OUT / "simulate.json").write_text(json.dumps([to_json(r) for r in results], indent=1))
    print(text)
    for wanted in args.show:
        task, _, run_ = wanted.partition(":")
        for r in results:
            if (r.task, r.run) == (int(task), int(run_ or 0)):
                print(f"\n{describe(r, lines=len(r.transcript))}")
    if not args.no_report:
        write_section("simulate", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
