"""``python -m bot up`` (what ``make run`` calls): database migrated and seeded, services
started, URLs printed, and everything stopped cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_up_migrates_seeds_starts_and_stops(pg_server):
    name = "clinic_up_test"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_server.rpartition("/")[0] + "/" + name
    sync_port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "JWT_SECRET": "u" * 40, "SYNC_PORT": str(sync_port),
           "ACTIONS_PORT": str(_free_port()), "RASA_PORT": str(_free_port())}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "up", "--no-train", "--skip", "rasa"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        out = "".join(lines)
        assert "Press Ctrl-C to stop." in out, out
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 2
            assert conn.execute("SELECT count(*) FROM dentists").fetchone()[0] == 3
        if (ROOT / "sync" / "__main__.py").exists():
            assert f"http://127.0.0.1:{sync_port}/" in out
            with urllib.request.urlopen(f"http://127.0.0.1:{sync_port}/api/realtime/health", timeout=10) as r:
                assert json.load(r)["service"] == "realtime-sync"
            # in development the codes go to the console: `bot up` prints the one a patient asked for
            ask = urllib.request.Request(f"http://127.0.0.1:{sync_port}/api/patient/sign-in/code", method="POST",
                                         data=json.dumps({"phone": "+12125550101"}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(ask, timeout=10) as r:
                assert r.status == 202
            found: list = []
            while not found and time.monotonic() < deadline:  # the code is sent after the answer
                with psycopg.connect(url) as conn:
                    found = conn.execute("SELECT body FROM notifications WHERE recipient = '+12125550101'").fetchall()
                time.sleep(0.1)  # another process: polling the table is the only way to ask
            [(body,)] = found
            while time.monotonic() < deadline and body not in "".join(lines):
                lines.append(proc.stdout.readline())
            assert body in "".join(lines) and "+12125550101" in "".join(lines)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        rest = proc.stdout.read()
        assert "stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
