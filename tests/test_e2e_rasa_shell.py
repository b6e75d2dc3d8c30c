"""Talking to the bot with ``rasa shell``, exactly as the README says: the sync service and the
action server running (as ``make run`` starts them), ``eval "$(python -m bot rasa-env)"``, then
``.venv-rasa/bin/rasa shell --model models --endpoints endpoints.yml --port 5006`` in a terminal
(here on a free port, with a known ``--conversation-id`` to find its hold in the database).

``rasa shell`` reads its input with prompt_toolkit / questionary, which need a terminal, so it runs
in a pseudo-terminal here; the test types as a person would (Enter picks the highlighted button)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import shlex
import struct
import subprocess
import sys
import termios
import time
import uuid
from datetime import datetime

import psycopg
import pytest

from bot.launcher import ROOT, RASA
from bot.stack import Stack, free_port

pytestmark = [pytest.mark.slow, pytest.mark.e2e,
              pytest.mark.skipif(not RASA.exists(), reason=".venv-rasa is missing: run `make install`"),
              pytest.mark.usefixtures("trained_model")]

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>]|\r")
CURSOR_POSITION_REQUEST = "\x1b[6n"


@pytest.fixture
def stack(chat_stack):
    """The shared system's sync service and action server (its Rasa server stays out of this:
    ``rasa shell`` is a Rasa of its own, on the same database and action server)."""
    return chat_stack


class Terminal:
    """A process on a pseudo-terminal: type into it, wait for text on its screen."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 240, 0, 0))
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.raw = ""
        self.seen = 0  # what expect() has matched so far, as an offset into text()

    def text(self) -> str:
        return ANSI.sub("", self.raw)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536).decode("utf-8", "replace")
        except OSError:  # the process closed the terminal
            return False
        if CURSOR_POSITION_REQUEST in chunk:  # prompt_toolkit asks where the cursor is
            os.write(self.master, b"\x1b[1;1R")
        self.raw += chunk
        return bool(chunk)

    def expect(self, pattern: str, timeout: float) -> re.Match:
        """Wait until ``pattern`` shows up after what the last expect() matched."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.compile(pattern).search(self.text(), self.seen)
            if found:
                self.seen = found.end()
                return found
            if self.proc.poll() is not None and not self._read(0.1):
                raise AssertionError(f"rasa shell exited ({self.proc.returncode}) before {pattern!r}:\n"
                                     f"{self.text()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {timeout:.0f} s:\n{self.text()[-4000:]}")
            self._read(min(1.0, max(0.05, deadline - time.monotonic())))

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        return self.proc.wait(timeout=1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def readme_environment(stack: Stack) -> dict[str, str]:
    """``eval "$(.venv/bin/python -m bot rasa-env)"``, for the stack's database and action server."""
    env = {**os.environ, "DATABASE_URL": stack.db_url, "ACTIONS_PORT": str(stack.settings.actions_port),
           "JWT_SECRET": stack.jwt_secret, "ENV": "test"}
    env.pop("REDIS_URL", None)
    out = subprocess.run([sys.executable, "-m", "bot", "rasa-env"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    exports = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in out.splitlines())
    assert exports["ACTION_ENDPOINT_URL"] == f"http://127.0.0.1:{stack.settings.actions_port}/webhook"
    return exports


def test_rasa_shell_greets_offers_times_holds_the_chosen_one_and_stops(stack):
    env = {**os.environ, **readme_environment(stack), "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    conversation = f"shell-{uuid.uuid4().hex[:8]}"
    term = Terminal([str(RASA), "shell", "--model", "models", "--endpoints", "endpoints.yml",
                     "--port", str(free_port()), "--conversation-id", conversation], env)
    try:
        term.expect(r"Bot loaded\. Type a message and press enter \(use '/stop' to exit\)", timeout=300)
        term.expect(r"Your input ->", timeout=60)

        term.type("hello\r")
        term.expect(r"I'm the booking assistant of the clinic", timeout=120)
        term.expect(r"Your input ->", timeout=60)

        term.type("I'd like a cleaning with any dentist next week\r")
        # the offered times are buttons: a list to pick from, the first one highlighted (»)
        term.expect(r"Which one suits you\?", timeout=120)
        first = term.expect(r"» \d+: (.+?) \(/inform\{\"slot_choice\": \"([^\"|]+)\|(\d+)\"\}\)", timeout=10)
        term.expect(r"\d+: .+\(/inform\{\"slot_choice\"", timeout=10)  # and more times after it
        term.expect(r"Type out your own message", timeout=10)
        with psycopg.connect(stack.db_url) as conn:
            assert conn.execute("SELECT count(*) FROM slot_holds").fetchone()[0] == 0

        term.type("\r")  # Enter: take the first offered time
        term.expect(r"What name should the appointment be under\?", timeout=120)  # the booking form goes on
        term.expect(r"Your input ->", timeout=60)
        with psycopg.connect(stack.db_url) as conn:
            held = conn.execute("SELECT holder, starts_at, dentist_id FROM slot_holds").fetchall()
        # the choice went from the terminal through Rasa and the action server to the database
        assert held == [(f"chat:{conversation}", datetime.fromisoformat(first.group(2)), int(first.group(3)))]

        term.type("/stop\r")
        assert term.wait(timeout=120) == 0, term.text()[-3000:]
    finally:
        term.close()
