"""The end-to-end tests' system: a seeded clone of the template database and the services of
``make run`` (``bot.stack.Stack``) on it, stopped and dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from bot.db import make_engine
from bot.seed import seed
from bot.stack import Stack


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
