"""Database access: the engine, sessions, and driver errors turned into our own.

Every other module goes through here; no psycopg or SQLAlchemy exception is
meant to travel further than the booking service.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .settings import Settings, get_settings, libpq_url, normalise_database_url


class DatabaseError(RuntimeError):
    """Base of the errors this package raises about the database."""


class DatabaseUnavailable(DatabaseError):
    """PostgreSQL cannot be reached (down, restarting, wrong URL)."""


class SlotTaken(DatabaseError):
    """The no-overlap constraint refused the write: someone else holds that time."""


class Contention(DatabaseError):
    """PostgreSQL aborted the transaction to break a deadlock or a serialization conflict (two
    writers waiting on each other, e.g. overlapping inserts checking the no-overlap constraint).
    Nothing was written; running the transaction again is safe."""


class InvalidData(DatabaseError):
    """A check, foreign key or unique constraint refused the write."""

    def __init__(self, constraint: str | None, message: str):
        super().__init__(message)
        self.constraint = constraint


def translate(exc: DBAPIError) -> DatabaseError:
    """Map a driver error to this package's exceptions (the one place that knows psycopg's)."""
    import psycopg.errors as pg

    orig = getattr(exc, "orig", exc)
    constraint = getattr(getattr(orig, "diag", None), "constraint_name", None)
    if isinstance(orig, pg.ExclusionViolation):
        return SlotTaken(str(constraint))
    if isinstance(orig, (pg.DeadlockDetected, pg.SerializationFailure)):  # before OperationalError, their base
        return Contention(str(orig).splitlines()[0])
    if isinstance(orig, (pg.CheckViolation, pg.ForeignKeyViolation, pg.UniqueViolation, pg.NotNullViolation,
                         pg.DataError)):
        return InvalidData(constraint, str(orig).splitlines()[0])
    if isinstance(exc, OperationalError) or isinstance(orig, pg.OperationalError):
        return DatabaseUnavailable(str(orig).splitlines()[0] if str(orig) else "database unavailable")
    if isinstance(exc, IntegrityError):
        return InvalidData(constraint, str(orig).splitlines()[0])
    return DatabaseError(str(orig).splitlines()[0])


def resolve_database_url(settings: Settings | None = None, *, start_embedded: bool = True) -> str:
    """The SQLAlchemy URL to use: DATABASE_URL, else the embedded server (started if needed,
    once per process). Child processes are given the URL explicitly (``bot.launcher.service_env``);
    nothing is written into this process's environment."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    if not start_embedded:
        raise DatabaseUnavailable("DATABASE_URL is not set and the embedded server was not started")
    return normalise_database_url(_embedded_url(settings.embedded_pg_dir, settings.embedded_pg_port))


@lru_cache
def _embedded_url(data_dir: str, port: int) -> str:
    from . import embedded

    return embedded.start(data_dir, port)


def conninfo(url: str | None = None) -> str:
    """A libpq URL for direct psycopg connections (LISTEN, bulk reads)."""
    return libpq_url(url or resolve_database_url())


def make_engine(url: str | None = None, **kwargs) -> Engine:
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(normalise_database_url(url or resolve_database_url()), **kwargs)


@lru_cache
def get_engine() -> Engine:
    return make_engine()


@lru_cache
def _factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A transaction: commits on success, rolls back on error, translates driver errors."""
    session = _factory(engine or get_engine())()
    try:
        yield session
        session.commit()
    except DBAPIError as exc:
        session.rollback()
        raise translate(exc) from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
