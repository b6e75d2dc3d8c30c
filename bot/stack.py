"""The whole system for end-to-end tests and benchmarks: the sync service, the action server and the
Rasa server, started exactly as ``make run`` starts them (``bot.launcher.plan``), on
free ports, against one test database. Rasa runs as one process (``rasa_workers=1``) whatever
``RASA_WORKERS`` and ``REDIS_URL`` say in the environment: every further Sanic worker loads its
own copy of the model (~1.2 GB, and its start-up), which no test needs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from .launcher import ROOT, Service, kill_tree, plan, service_env, start_services, stop_services, wait_ready
from .settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def has_model() -> bool:
    """Whether models/ holds the model trained from the current config, domain and data: the file
    ``scripts/train.sh`` names by its fingerprint of them (``--check``), not any older model."""
    check = subprocess.run(["bash", str(ROOT / "scripts" / "train.sh"), "--check"], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return check.returncode == 0


@dataclass
class Stack:
    db_url: str
    jwt_secret: str = "e" * 40
    settings: Settings = field(init=False)
    services: dict[str, Service] = field(init=False)
    log_dir: Path | None = None
    rasa_workers: int = 1
    overrides: dict = field(default_factory=dict)  # further settings (limits, tokens) for this stack

    def __post_init__(self):
        self.settings = Settings(database_url=self.db_url, env="test", jwt_secret=self.jwt_secret,
                                 sync_port=free_port(), actions_port=free_port(), rasa_port=free_port(),
                                 rasa_workers=self.rasa_workers, _env_file=None, **self.overrides)
        self.services = {s.name: s for s in plan(self.settings, self.settings.database_url)}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.services[name].port}"

    def env(self) -> dict[str, str]:
        env = {**os.environ, **service_env(self.settings, self.settings.database_url)}
        env["LOG_LEVEL"] = "WARNING"
        return env

    def start(self, *names: str, timeout: float = 300) -> None:
        chosen = [self.services[n] for n in (names or self.services)]
        start_services(chosen, self.env())
        if not wait_ready(chosen, timeout=timeout):
            dead = {s.name: s.proc.poll() for s in chosen if s.proc}
            self.stop()
            raise RuntimeError(f"services did not come up: {dead}")
        if "actions" in [s.name for s in chosen]:
            self.wait_cache_loaded(timeout=60)

    def health(self) -> dict:
        """The action server's ``GET /health``."""
        with urllib.request.urlopen(f"{self.url('actions')}/health", timeout=5) as resp:
            return json.load(resp)

    def wait_cache_loaded(self, timeout: float) -> None:
        """Until the action server answers from its cache (before that, its reads go to SQL)."""
        deadline = time.monotonic() + timeout
        while not self.health()["cache"].get("loaded"):
            if time.monotonic() > deadline:
                raise RuntimeError("the action server's cache did not load")
            time.sleep(0.1)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.services[name].proc
        assert proc is not None
        if sig == signal.SIGKILL:
            kill_tree(proc)  # with several Rasa workers, them too
            return
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def restart(self, name: str, *, sig: int = signal.SIGTERM, timeout: float = 300) -> None:
        self.kill(name, sig)
        deadline = time.monotonic() + 10
        while _port_open(self.services[name].port) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.start(name, timeout=timeout)

    def stop(self) -> None:
        stop_services([s for s in self.services.values() if s.proc])

    async def say(self, sender: str, text: str, metadata: dict | None = None, *,
                  source: str | None = None) -> list[dict]:
        """One user message through Rasa's REST channel; the bot's replies. ``source``: the
        loopback address to send from (127.0.0.2, ...), so one test can be several clients."""
        body: dict = {"sender": sender, "message": text}
        if metadata:
            body["metadata"] = metadata
        connector = aiohttp.TCPConnector(local_addr=(source, 0)) if source else None
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.post(f"{self.url('rasa')}/webhooks/rest/webhook", json=body,
                                    timeout=aiohttp.ClientTimeout(total=60)) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0
