"""The end-to-end tests' system: a seeded clone of the template database and the services of
``make run`` (``bot.stack.Stack``) on it, stopped and dropped afterwards; and what lets several
modules share one such system (``chat_stack`` in tests/conftest.py): a test leaves the clinic as it
found it (``as_found``), and a module may run a service with settings of its own for a while
(``reconfigured``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from bot.db import make_engine
from bot.seed import seed
from bot.settings import Settings
from bot.stack import Stack

# The clinic's own tables, parents before children (a restore deletes in the reverse order).
# Not here: chat_bookings (gone with its visit), Rasa's tracker store (``events``: every test
# speaks in conversations of its own) and the outbox (``realtime_events``: it only grows).
# The codes texted in a test go with it, so the hourly code limits start afresh for the next; so do
# its waitlist requests, or the sync service's worker would go on holding freed time for them.
CLINIC_TABLES = ("dentists", "services", "working_hours", "patients", "time_off", "date_overrides",
                 "clinic_closures", "appointments", "slot_holds", "waitlist_entries", "waitlist_offers",
                 "notifications", "verification_codes")


@contextmanager
def running_stack(pg_server: str, template_db: str, prefix: str, *services: str,
                  **overrides) -> Iterator[Stack]:
    """``services`` (default: all) on a database of their own named ``<prefix>_<random>``;
    ``overrides``: settings of this stack (``chat_bookings_per_client=2``, ...)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    try:
        stack = Stack(pg_server.rpartition("/")[0] + "/" + name, overrides=overrides)
        engine = make_engine(stack.settings.database_url, pool_size=1)
        seed(engine, stack.settings)
        engine.dispose()
        stack.start(*services)
        try:
            yield stack
        finally:
            stack.stop()
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _snapshot(conn: psycopg.Connection) -> dict[str, dict[int, str]]:
    return {table: dict(conn.execute(f"SELECT id, row_to_json(t)::text FROM {table} t").fetchall())
            for table in CLINIC_TABLES}


def _columns(conn: psycopg.Connection, table: str) -> str:
    names = [r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s"
        " AND column_name <> 'id' ORDER BY ordinal_position", (table,))]
    return ", ".join(names)


def restore(conn: psycopg.Connection, before: dict[str, dict[int, str]]) -> int:
    """Put the clinic's tables back to ``before`` (a ``_snapshot``) in this transaction: rows added
    since are deleted, changed ones written back, deleted ones inserted again; how many rows that took.
    Every write goes through the tables' triggers, so the outbox tells the services about it."""
    after = _snapshot(conn)
    touched = 0
    for table in reversed(CLINIC_TABLES):
        added = [i for i in after[table] if i not in before[table]]
        if added:
            touched += conn.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", (added,)).rowcount
    for table in CLINIC_TABLES:
        for row_id, row in before[table].items():
            if after[table].get(row_id) == row:
                continue
            if row_id in after[table]:
                cols = _columns(conn, table)
                conn.execute(f"UPDATE {table} SET ({cols}) = (SELECT {cols} FROM"
                             f" json_populate_record(NULL::{table}, %s::json)) WHERE id = %s", (row, row_id))
            else:
                conn.execute(f"INSERT INTO {table} SELECT * FROM"
                             f" json_populate_record(NULL::{table}, %s::json)", (row,))
            touched += 1
    return touched


def wait_cache_caught_up(stack: Stack, timeout: float = 60.0) -> None:
    """Until the action server's cache has applied the outbox's newest event and finished the
    re-reads it asked for (``tests.polling.action_cache_caught_up``, for code outside an event loop)."""
    with psycopg.connect(stack.db_url) as conn:
        newest = conn.execute("SELECT coalesce(max(id), 0) FROM realtime_events").fetchone()[0]
    deadline = time.monotonic() + timeout
    while True:
        cache = stack.health()["cache"]
        if (cache.get("last_event_id") or 0) >= newest and not cache.get("refreshing"):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the action server's cache did not apply outbox event {newest}"
                                 f" within {timeout:g}s")
        time.sleep(0.05)  # another process: polling its /health is the only way to ask


@contextmanager
def as_found(stack: Stack) -> Iterator[Stack]:
    """Around one test on a shared stack: every service is up before it (one that an earlier test
    killed and left dead is started again), and afterwards the clinic's tables are as the test
    found them (its patients, visits, holds, time off, closures and date overrides gone, rows it
    changed written back) and the action server's cache has taken that in, so the next test
    sees the seeded clinic whatever this one booked or closed."""
    dead = [name for name, svc in stack.services.items() if svc.proc and svc.proc.poll() is not None]
    if dead:
        stack.start(*dead)
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        before = _snapshot(conn)
    yield stack
    with psycopg.connect(stack.db_url) as conn:
        touched = restore(conn, before)
    if touched and "actions" in stack.services and stack.services["actions"].proc:
        wait_cache_caught_up(stack)


@contextmanager
def reconfigured(stack: Stack, service: str, **overrides) -> Iterator[Stack]:
    """``service`` of ``stack`` restarted with ``overrides`` (``chat_bookings_per_client=4``, ...)
    for the block, then restarted with the stack's own settings. ``stack.settings`` says what
    runs meanwhile. Only for settings that ``service`` alone reads (the chat's flood limits are
    the action server's): the other services keep the ones they started with."""
    own = stack.settings
    stack.settings = Settings(**{**own.model_dump(), **overrides}, _env_file=None)
    try:
        stack.restart(service)
        yield stack
    finally:
        stack.settings = own
        stack.restart(service)
