"""``python -m bot up``: the database, migrated and seeded, then every service that exists.

Starts, in order: PostgreSQL (the embedded one when DATABASE_URL is unset), the
migrations, the demo seed when the clinic is empty, Rasa training when its data
changed, then the sync service, the action server and the Rasa server as child
processes. Prints the URLs, and on Ctrl-C (or when any child dies) stops them all.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from .settings import Settings, get_settings

log = logging.getLogger("bot.up")
ROOT = Path(__file__).resolve().parent.parent
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"


@dataclass
class Service:
    name: str
    argv: list[str]
    port: int
    url: str
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    # ready when `url` answers 200, not merely when the port accepts (Rasa with several workers
    # opens its port before the workers have loaded the model)
    ready_http: bool = False
    # variables of the shared environment this service must not see (Rasa needs no JWT key)
    withheld: tuple[str, ...] = ()


def service_env(settings: Settings, database_url: str) -> dict[str, str]:
    """Every setting as the environment variable a child process reads it from, so all
    services agree on the database, the secret, the ports and the clinic's rules."""
    env = {name.upper(): str(value) for name, value in settings.model_dump().items() if value is not None}
    env["DATABASE_URL"] = database_url
    env["SYNC_URL"] = settings.resolved_sync_url
    return env


def rasa_env(settings: Settings, database_url: str) -> dict[str, str]:
    """The variables endpoints.yml reads (the action server and its token, the SQL tracker store
    in the clinic's database, the Redis lock store when REDIS_URL is set) and those
    rasa_tools.channels reads (conversation-id secret, message limit, allowed origins)."""
    url = make_url(database_url)
    redis_url = settings.redis_url
    actions_host = "127.0.0.1" if settings.actions_host in ("0.0.0.0", "::", "") else settings.actions_host
    env = {"ACTION_ENDPOINT_URL": f"http://{actions_host}:{settings.actions_port}/webhook",
           "ACTIONS_TOKEN": settings.resolved_actions_token,
           "CHAT_SESSION_SECRET": settings.derived_secret("chat-session"),
           "CHAT_MAX_MESSAGE_CHARS": str(settings.chat_max_message_chars),
           "CHAT_ORIGINS": ",".join(settings.resolved_chat_origins),
           "DB_HOST": url.host or "127.0.0.1", "DB_PORT": str(url.port or 5432),
           "DB_NAME": url.database or "postgres", "DB_USER": url.username or "postgres",
           "DB_PASSWORD": url.password or ""}
    if redis_url:
        r = urlsplit(redis_url)
        env.update({"REDIS_HOST": r.hostname or "127.0.0.1", "REDIS_PORT": str(r.port or 6379),
                    "REDIS_DB": r.path.lstrip("/") or "0", "REDIS_PASSWORD": r.password or ""})
    return env


def plan(settings: Settings, database_url: str) -> list[Service]:
    """What exists in this checkout, in start order."""
    python = sys.executable
    services: list[Service] = []
    if (ROOT / "sync" / "__main__.py").exists():
        services.append(Service("sync", [python, "-m", "sync"], settings.sync_port,
                                f"http://127.0.0.1:{settings.sync_port}/"))
    if (ROOT / "actions" / "__main__.py").exists():
        services.append(Service("actions", [python, "-m", "actions"], settings.actions_port,
                                f"http://127.0.0.1:{settings.actions_port}/health"))
    if RASA.exists() and (ROOT / "domain.yml").exists() and any((ROOT / "models").glob("*.tar.gz")):
        shared_locks = bool(settings.redis_url) and (ROOT / "endpoints.redis.yml").exists()
        endpoints = "endpoints.redis.yml" if shared_locks else "endpoints.yml"
        env = rasa_env(settings, database_url)
        env["RASA_API_TOKEN"] = settings.resolved_rasa_api_token  # the API answers only with it
        # Several Sanic workers (processes) on the one port, each with its own model: turns of
        # different conversations run in parallel. Rasa allows it only with a shared lock store.
        env["SANIC_WORKERS"] = str(settings.rasa_workers if shared_locks else 1)
        # `rasa run` through rasa_tools.server: the same command line, with the custom actions'
        # answers checked by a validator built once (it was the largest cost of a turn), and the
        # HTTP API only with RASA_API_TOKEN. Loopback unless RASA_HOST says otherwise; CORS for
        # the listed origins only.
        services.append(Service(
            "rasa",
            [str(RASA_PYTHON), "-m", "rasa_tools.server", "run", "--interface", settings.rasa_host,
             "--cors", *settings.resolved_chat_origins,
             "--port", str(settings.rasa_port), "--endpoints", endpoints, "--credentials", "credentials.yml",
             "--model", "models"],
            settings.rasa_port, f"http://127.0.0.1:{settings.rasa_port}/", env=env, ready_http=True,
            withheld=("JWT_SECRET",)))
    return services


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (OSError, ValueError):
        return False


def is_ready(svc: Service) -> bool:
    return _http_ok(svc.url) if svc.ready_http else _port_open(svc.port)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _train() -> None:
    script = ROOT / "scripts" / "train.sh"
    if RASA.exists() and script.exists():
        log.info("training the Rasa model if its data changed ...")
        subprocess.run(["bash", str(script)], cwd=ROOT, check=True)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc (children of the main thread, as fork makes them)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as fh:
                kids = [int(x) for x in fh.read().split()]
        except OSError:
            continue
        found += kids
        todo += kids
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a service and every process below it: Rasa's Sanic workers are its children, and
    killing only the parent would leave them serving the port."""
    for pid in [*_descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def stop_services(services: list[Service], timeout: float = 15.0) -> None:
    for svc in reversed(services):
        if svc.proc and svc.proc.poll() is None:
            svc.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for svc in reversed(services):
        if svc.proc and svc.proc.poll() is None:
            try:
                svc.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", svc.name)
                kill_tree(svc.proc)


def start_services(services: list[Service], env: dict[str, str]) -> None:
    for svc in services:
        log.info("starting %s: %s", svc.name, " ".join(svc.argv))
        child = {k: v for k, v in {**env, **svc.env}.items() if k not in svc.withheld}
        svc.proc = subprocess.Popen(svc.argv, cwd=ROOT, env=child)


def wait_ready(services: list[Service], *, timeout: float, stop=lambda: False) -> bool:
    """Until every service accepts connections on its port; False if one died or time ran out."""
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending and not stop() and time.monotonic() < deadline:
        pending = [s for s in pending if not is_ready(s)]
        if any(s.proc and s.proc.poll() is not None for s in services):
            return False
        time.sleep(0.3)
    return not pending


def run(*, train: bool = True, skip: frozenset[str] = frozenset()) -> int:
    from .db import conninfo, make_engine, resolve_database_url
    from .migrate import migrate
    from .seed import is_empty, seed

    settings = get_settings()
    embedded = not settings.database_url
    database_url = resolve_database_url(settings)
    log.info("database: %s%s", make_url(database_url).render_as_string(hide_password=True),
             " (embedded)" if embedded else "")
    applied = migrate(conninfo(database_url))
    log.info("migrations: %s", ", ".join(applied) or "up to date")
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        if is_empty(engine):
            log.info("empty clinic: seeding the demo data")
            seed(engine, settings)
    finally:
        engine.dispose()
    if train:
        _train()

    services = [s for s in plan(settings, database_url) if s.name not in skip]
    for svc in services:
        if svc.name == "rasa":
            workers = svc.env["SANIC_WORKERS"]
            log.info("Rasa: %s worker%s%s", workers, "" if workers == "1" else "s",
                     " (RASA_WORKERS > 1 needs REDIS_URL: the workers share Rasa's lock store there)"
                     if workers == "1" and settings.rasa_workers > 1 else "")
    for name, host in (("RASA_HOST", settings.rasa_host), ("ACTIONS_HOST", settings.actions_host)):
        if not is_loopback(host):
            log.warning("%s=%s: this service listens beyond this machine (docs/security.md: put it behind "
                        "a proxy or firewall; the action server still needs ACTIONS_TOKEN)", name, host)
    if settings.rasa_api_token:
        log.warning("RASA_API_TOKEN is set: Rasa's HTTP API (conversations, models) is enabled for that token")
    busy = [s for s in services if _port_open(s.port)]
    if busy:
        for s in busy:
            log.error("port %d (%s) is already in use; stop what runs there or set its port variable",
                      s.port, s.name)
        return 1
    stopping = False

    def _on_signal(signum, frame):  # noqa: ARG001
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    env = {**os.environ, **service_env(settings, database_url)}
    code = 0
    try:
        start_services(services, env)
        wait_ready(services, timeout=180, stop=lambda: stopping)
        print("\nDental booking backend is up:", flush=True)
        for svc in services:
            state = "ready" if is_ready(svc) else "starting"
            print(f"  {svc.name:8} {svc.url}  ({state})", flush=True)
        if not services:
            print("  (no services in this checkout yet: the database is ready)")
        print(f"  database {make_url(database_url).render_as_string(hide_password=True)}")
        print("Press Ctrl-C to stop.", flush=True)
        while not stopping:
            dead = [s for s in services if s.proc and s.proc.poll() is not None]
            if dead:
                for s in dead:
                    log.error("%s exited with code %s; stopping everything", s.name, s.proc.returncode)
                code = 1
                break
            time.sleep(0.5)
    finally:
        stop_services(services)
        if embedded:
            from . import embedded as emb

            emb.stop(settings.embedded_pg_dir)
            log.info("embedded PostgreSQL stopped")
    log.info("stopped")
    return code
