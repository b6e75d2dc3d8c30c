"""Summarise a py-spy ``--format raw`` profile (collapsed stacks) into the hot functions.

``python -m bench.realtime.hotspots bench/out/realtime-<stamp>/case1-ours.pyspy.txt [top]``
prints the functions with the most samples on top of the stack (self) and anywhere in it
(inclusive), as a share of the event loop thread's samples (py-spy leaves out idle ones).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def summarise(path: Path, top: int = 25) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    other = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_name(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        if frames[0].startswith("_bootstrap ("):  # a helper thread (psycopg's resolver pool), not the loop
            other += n
            continue
        own[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n
    loop = total - other
    out = [f"{path.name}: {total} samples, {loop} on the event loop's thread (the shares below; "
           f"{other} in helper threads, mostly idle)", "", "self (top of stack):"]
    out += [f"  {100.0 * n / max(1, loop):5.1f} %  {name}" for name, n in own.most_common(top)]
    out += ["", "inclusive:"]
    out += [f"  {100.0 * n / max(1, loop):5.1f} %  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m bench.realtime.hotspots <profile.txt> [top]")
    print(summarise(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25))
