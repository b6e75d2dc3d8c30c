"""Schemathesis against the published description: every operation of ``/api/openapi.json``,
as loaded from a running sync service, called with cases generated from it (valid and
invalid) by an admin, a dentist, a patient and nobody. Each answer must be no 5xx, a status
code the description lists for that operation, the content type it lists, and a body that
matches its schema; nobody gets past a secured operation without a token, and a patient
token changes nothing: every table of the database reads the same after each of the patient's
calls as before it, and a patient's write is refused — except their own waitlist requests and
offers, whose calls may change only the waitlist's tables (and, accepting, the visits), and only
the patient's own requests. The service's waitlist worker is kept out meanwhile (its advisory
lock is held), so nothing but the calls changes the database."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings as hsettings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from bot.db import make_engine
from bot.seed import seed
from bot.settings import Settings
from bot.waitlist import PASS_LOCK
from sync import openapi
from tests.api_helpers import pick_visit
from tests.sync_helpers import serve, token

pytestmark = pytest.mark.slow

EXAMPLES = 40  # per operation, mode and role: the whole file runs in about a minute
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class Server:
    """The sync service on its own event loop in a thread, so that schemathesis's blocking
    ``requests`` calls can reach it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.url = ""
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="sync-under-test", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self.settings) as (url, _app):
            self.url = url
            self._ready.set()
            await self._stop.wait()

    def start(self) -> "Server":
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None or not self.url:
            raise RuntimeError("the sync service did not start") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


@pytest.fixture(scope="module")
def clinic(pg_server: str, template_db: str) -> Iterator[dict]:
    name = f"clinic_st_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    db_url = pg_server.rpartition("/")[0] + "/" + name
    settings = Settings(database_url=db_url, env="test", jwt_secret="s" * 40, _env_file=None)
    engine = make_engine(settings.database_url, pool_size=1)
    seed(engine, settings)
    _visit, patient, dentist = pick_visit(engine)
    engine.dispose()
    worker_out = psycopg.connect(pg_server.rpartition("/")[0] + "/" + name, autocommit=True)
    assert worker_out.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (PASS_LOCK,)).fetchone()[0]
    server = Server(settings).start()
    try:
        # the patient goes first: after an admin's identical PUT or PATCH, the patient's would
        # change nothing even if it were allowed
        yield {"url": server.url, "db_url": db_url, "patient": patient, "tokens": {
            "patient": token(settings, "patient", patient),
            "nobody": None,
            "dentist": token(settings, "dentist", dentist),
            "admin": token(settings, "admin"),
        }}
    finally:
        server.stop()
        worker_out.close()
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _operations() -> list[tuple[str, str, bool]]:
    """(METHOD, path, takes input) of every operation the service describes (a test below checks
    that the document it serves names exactly these)."""
    doc = openapi.document(Settings(database_url="postgresql://x@localhost/x", env="test",
                                    jwt_secret="s" * 40, _env_file=None))
    return [(method.upper(), path, "parameters" in op or "requestBody" in op)
            for path, ops in doc["paths"].items() for method, op in ops.items() if path != SELF]


def snapshot(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every row of every table in the clinic's schema, as text, in a stable order."""
    tables = [r[0] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
    assert {"appointments", "patients", "working_hours", "time_off", "realtime_events"} <= set(tables)
    return {t: [r[0] for r in conn.execute(f'SELECT t::text FROM "{t}" t ORDER BY 1')] for t in tables}


def changed(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    """Per table that differs, the rows that went and the rows that came."""
    out = {}
    for table in sorted(set(before) | set(after)):
        old, new = before.get(table, []), after.get(table, [])
        if old != new:
            out[table] = {"gone": sorted(set(old) - set(new)), "new": sorted(set(new) - set(old))}
    return out


WAITLIST_TABLES = {"waitlist_entries", "waitlist_offers", "slot_holds", "realtime_events"}
# what a patient's own waitlist calls may change
PATIENT_WRITES = {
    ("POST", "/api/waitlist"): WAITLIST_TABLES,
    ("DELETE", "/api/waitlist/{id}"): WAITLIST_TABLES,
    ("POST", "/api/waitlist/offers/{id}/accept"): WAITLIST_TABLES | {"appointments"},
    ("POST", "/api/waitlist/offers/{id}/decline"): WAITLIST_TABLES,
    ("POST", "/api/feeds/me/renew"): {"calendar_feeds"},  # a new URL of the patient's own feed
}


def patients_own(diff: dict[str, dict[str, list[str]]], allowed: set[str], patient: int) -> bool:
    """Only ``allowed`` tables changed, every waitlist request that came or went is ``patient``'s,
    and so is every calendar feed renewed."""
    def rows(table: str) -> list[list[str]]:
        return [r.strip("()").split(",") for r in diff.get(table, {}).get("gone", []) + diff.get(table, {}).get("new", [])]
    return (set(diff) <= allowed and all(r[1] == str(patient) for r in rows("waitlist_entries"))
            and all(r[:2] == ["patient", str(patient)] for r in rows("calendar_feeds")))


SELF = "/api/openapi.json"  # schemathesis leaves out the operation that serves the document it loaded
OPERATIONS = _operations()


@pytest.fixture(scope="module")
def api_schema(clinic: dict):
    return schemathesis.openapi.from_url(f"{clinic['url']}/api/openapi.json")


def test_the_served_document_names_every_operation(api_schema):
    served = sorted((op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations())
    assert served == sorted((m, p) for m, p, _ in OPERATIONS) and len(served) >= 12


# invalid data only where there is input to make invalid (the tokens vary for every operation)
CASES = [pytest.param(m, p, mode, id=f"{m} {p} {mode.value}") for m, p, takes_input in OPERATIONS
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if takes_input or mode is GenerationMode.POSITIVE]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_every_operation_answers_as_described(api_schema, clinic, method, path, mode):
    operation = api_schema[path][method]
    secured = operation.definition.raw.get("security") != []

    @hsettings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
               suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(operation.as_strategy(generation_mode=mode))
    def check(case):
        with requests.Session() as session, psycopg.connect(clinic["db_url"], autocommit=True) as db:
            for role, tok in clinic["tokens"].items():
                headers = {"Authorization": f"Bearer {tok}"} if tok else {}
                before = snapshot(db) if role == "patient" else None
                response = case.call(session=session, headers=headers, timeout=30)
                own = PATIENT_WRITES.get((method, path))
                if before is not None:
                    diff = changed(before, snapshot(db))
                    assert not diff or (own and patients_own(diff, own, clinic["patient"])), \
                        f"a patient changed the database: {method} {response.request.url}" \
                        f" -> {response.status_code}: {diff}"
                try:
                    case.validate_response(response, checks=CHECKS, headers=headers)
                except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a group of failures
                    raise AssertionError(f"as {role}: {exc}") from exc
                status = response.status_code
                if role == "nobody" and secured:  # 404 only when the path itself is not an operation's
                    assert status == 401 or (status == 404 and mode is GenerationMode.NEGATIVE), status
                if role == "patient" and method != "GET" and not own:
                    assert status >= 400, f"a patient changed something: {method} {response.request.url}"

    check()
