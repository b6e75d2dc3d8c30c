"""How ``make run`` (bot.launcher.plan) starts Rasa: the command, the endpoints file, the number of
Sanic workers, and when a service counts as ready."""

from __future__ import annotations

import subprocess
import time
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from bot.launcher import RASA, Service, is_ready, kill_tree, plan
from bot.settings import Settings
from bot.stack import Stack, has_model
from tests.prereq import require

DB = "postgresql://postgres@127.0.0.1:5432/clinic"


@pytest.fixture
def _rasa_ready() -> None:
    require(RASA.exists(), ".venv-rasa is missing: run `make install`")
    require(has_model(), "no model for the current data in models/: run `make train` (make test does)")


needs_rasa = pytest.mark.usefixtures("_rasa_ready")


def rasa_service(**overrides) -> Service:
    settings = Settings(database_url=DB, env="test", jwt_secret="l" * 40, _env_file=None,
                        **{"redis_url": None, **overrides})
    return next(s for s in plan(settings, settings.database_url) if s.name == "rasa")


@needs_rasa
def test_rasa_runs_through_rasa_tools_server_with_one_worker_without_redis():
    svc = rasa_service(rasa_workers=4)
    assert svc.argv[1:6] == ["-m", "rasa_tools.server", "run", "--interface", "127.0.0.1"]
    assert "--enable-api" not in svc.argv  # Rasa's HTTP API only with RASA_API_TOKEN (docs/security.md)
    assert svc.argv[svc.argv.index("--cors") + 1:svc.argv.index("--port")] == [
        "http://127.0.0.1:5000", "http://localhost:5000"]  # never "*"
    assert "JWT_SECRET" in svc.withheld and svc.env["ACTIONS_TOKEN"]
    assert svc.argv[svc.argv.index("--endpoints") + 1] == "endpoints.yml"
    assert svc.env["SANIC_WORKERS"] == "1"  # the in-memory lock store is per process
    assert "REDIS_HOST" not in svc.env
    assert svc.ready_http


@needs_rasa
def test_with_redis_rasa_gets_its_workers_and_the_shared_lock_store():
    svc = rasa_service(redis_url="redis://:pw@10.0.0.7:6380/3", rasa_workers=3)
    assert svc.argv[svc.argv.index("--endpoints") + 1] == "endpoints.redis.yml"
    assert svc.env["SANIC_WORKERS"] == "3"
    assert (svc.env["REDIS_HOST"], svc.env["REDIS_PORT"], svc.env["REDIS_DB"], svc.env["REDIS_PASSWORD"]) == \
        ("10.0.0.7", "6380", "3", "pw")


@needs_rasa
def test_rasa_is_one_process_by_default_even_with_redis():
    svc = rasa_service(redis_url="redis://127.0.0.1:6379/1")
    assert svc.env["SANIC_WORKERS"] == "1"
    assert svc.argv[svc.argv.index("--endpoints") + 1] == "endpoints.redis.yml"  # locks still shared


@needs_rasa
def test_the_test_stack_keeps_rasa_to_one_process_whatever_the_environment_says(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/1")
    monkeypatch.setenv("RASA_WORKERS", "3")
    stack = Stack(DB)
    assert stack.settings.redis_url  # the environment is read ...
    assert stack.services["rasa"].env["SANIC_WORKERS"] == "1"  # ... but one copy of the model is enough
    assert Stack(DB, rasa_workers=2).services["rasa"].env["SANIC_WORKERS"] == "2"


def test_kill_tree_kills_the_children_too():
    """Rasa's Sanic workers are children of the process the launcher started; killing only that
    one would leave them holding the port."""
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time\n"
         "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
         "print(child.pid, flush=True)\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        kill_tree(parent)
        assert parent.returncode is not None
        # SIGKILL is sent, not yet acted on, when kill_tree returns: a loaded machine takes a moment
        deadline = time.monotonic() + 10
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(child)
    finally:
        parent.stdout.close()


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan stays one until init reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_rasa_workers_must_be_at_least_one():
    with pytest.raises(ValueError):
        Settings(database_url=DB, env="test", jwt_secret="l" * 40, _env_file=None, rasa_workers=0)


class _Status(BaseHTTPRequestHandler):
    status = 503

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


def test_an_http_service_is_ready_when_it_answers_200_not_when_its_port_opens():
    server = HTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        svc = Service("rasa", [], port, f"http://127.0.0.1:{port}/", ready_http=True)
        assert not is_ready(svc)  # listening, but e.g. the model is still loading
        assert is_ready(Service("other", [], port, f"http://127.0.0.1:{port}/"))  # port check only
        _Status.status = 200
        assert is_ready(svc)
    finally:
        server.shutdown()
        server.server_close()
        _Status.status = 503
