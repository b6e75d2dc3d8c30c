"""Shared fixtures: a real PostgreSQL, a migrated template database, one clone per test.

The server is TEST_DATABASE_URL when set, else 127.0.0.1:5432 when it answers
(these machines run one), else the embedded server the project ships.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from bot.migrate import migrate
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

# The demo seed's visits move with the clock, so one may start within a day of the run: the tests
# that are not about the cancellation policy run without it, here and in every service they start
# (tests/test_policy.py sets it explicitly).
os.environ.setdefault("CANCEL_NOTICE_HOURS", "0")
# For the same reason no reminders are sent (a seeded visit within a day would text its patient,
# which tests that count a phone's messages would see), unless a test asks for them
# (tests/test_reminders.py, tests/test_sync_reminders.py).
os.environ.setdefault("REMINDER_HOURS", "0")


def _server_url() -> str:
    if os.environ.get("TEST_DATABASE_URL"):
        return os.environ["TEST_DATABASE_URL"]
    with socket.socket() as sock:
        sock.settimeout(0.5)
        if sock.connect_ex(("127.0.0.1", 5432)) == 0:
            return "postgresql://postgres@127.0.0.1:5432/postgres"
    from bot import embedded

    embedded.start(ROOT / ".pgdata", 5433)
    return "postgresql://postgres@127.0.0.1:5433/postgres"


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_server() -> str:
    return _server_url()


@pytest.fixture(scope="session")
def template_db(pg_server: str):
    name = f"clinic_tpl_{os.getpid()}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate(_with_db(pg_server, name))
    yield name
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(pg_server: str, template_db: str):
    """A fresh, migrated, empty database of its own for one test (libpq URL)."""
    name = f"clinic_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield _with_db(pg_server, name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, env="test", jwt_secret="t" * 40, _env_file=None)


@pytest.fixture
def engine(settings: Settings):
    from bot.db import make_engine

    eng = make_engine(settings.database_url, pool_size=25, max_overflow=5)
    yield eng
    eng.dispose()


@pytest.fixture(params=["sql", "cache"])
def availability_source(request) -> str:
    """Where an action test's offers come from: SQL, and the action server's production cache."""
    return request.param


@pytest.fixture(scope="session")
def trained_model() -> None:
    """The Rasa model of the current config, domain and data: skipped locally without it, a
    failure under CI (session-scoped, so it is checked before any module's stack starts)."""
    from bot.stack import has_model
    from tests.prereq import require

    require(has_model(), "no model trained from the current data: run `make train` (make test does)")


@pytest.fixture(scope="session")
def chat_stack(pg_server: str, template_db: str, trained_model: None):
    """The whole system (``make run``'s services on a seeded database of its own) for every
    end-to-end module that can share it: Rasa's start-up, its model load, is the largest cost of
    the suite (60-110 s on 2 cores), so it is paid once. Each test speaks in conversations of its
    own and finds the seeded clinic (``_chat_stack_as_found``); a module that needs other settings
    restarts the service that reads them (``tests.stack_helpers.reconfigured``) or, for Rasa's,
    starts a stack of its own."""
    from tests.stack_helpers import running_stack

    with running_stack(pg_server, template_db, "clinic_chat") as stack:
        yield stack


@pytest.fixture(autouse=True)
def _chat_stack_as_found(request: pytest.FixtureRequest):
    """A test on ``chat_stack`` leaves the clinic's tables as it found them (what it booked, held,
    closed or changed is undone, and the action server's cache has taken that in), and finds
    every service of the stack running."""
    if "chat_stack" not in request.fixturenames:
        yield
        return
    from tests.stack_helpers import as_found

    with as_found(request.getfixturevalue("chat_stack")):
        yield


@pytest.fixture(scope="session")
def rasa_evaluation(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The model of the current data on the held-out NLU set (with test_nlu's key phrases parsed)
    and on the conversation tests, in one process (rasa_tools/evaluate.py), so the model is loaded
    once (about 40 s) for tests/test_nlu.py and tests/test_rasa.py: the report both read. Trains
    first when models/ holds no model of the current data (a checkout without `make train`: those
    modules' own time limit, 30 minutes, allows a cold training)."""
    from tests.test_nlu import KEY_PHRASES

    rasa_python = ROOT / ".venv-rasa" / "bin" / "python"
    if not rasa_python.exists():
        pytest.fail(".venv-rasa is missing: run `make install`")
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
    trained = subprocess.run(["bash", "scripts/train.sh"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env=env, timeout=20 * 60)
    assert trained.returncode == 0, "scripts/train.sh failed (its log is above)"
    model = trained.stdout.strip().splitlines()[-1]
    out = tmp_path_factory.mktemp("rasa_evaluation")
    cmd = [str(rasa_python), "-m", "rasa_tools.evaluate", "--model", model, "--out", str(out),
           "--holdout", str(ROOT / "tests" / "nlu_holdout.yml"),
           "--stories", str(ROOT / "tests" / "test_stories.yml")]
    for text in KEY_PHRASES:
        cmd += ["--parse", text]
    evaluated = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env, timeout=15 * 60)
    print(evaluated.stdout)
    assert evaluated.returncode == 0, "rasa_tools.evaluate failed (its log is above)"
    return json.loads((out / "report.json").read_text())
