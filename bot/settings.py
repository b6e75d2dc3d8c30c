"""One settings class for every process, read from the environment (and ``.env``)."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

DEV_JWT_SECRET = "dev-only-secret-change-me-dev-only-secret"


class SettingsError(RuntimeError):
    """The configuration cannot be used (for example a placeholder secret in production)."""


def normalise_database_url(url: str) -> str:
    """Return a SQLAlchemy URL that uses psycopg 3, whatever spelling was given."""
    url = url.strip()
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got {url.split('://')[0]!r}://...")


def libpq_url(url: str) -> str:
    """The same URL as plain libpq understands it (for psycopg.connect and psql)."""
    return "postgresql://" + normalise_database_url(url)[len("postgresql+psycopg://"):]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str | None = None
    redis_url: str | None = None
    jwt_secret: str = DEV_JWT_SECRET
    jwt_ttl_minutes: int = Field(default=12 * 60, gt=0)
    clinic_timezone: str = "America/New_York"
    clinic_name: str = "Bright Smile Dental"
    clinic_phone: str = "+1 (212) 555-0142"
    clinic_address: str = "120 Madison Avenue, New York, NY 10016"
    phone_region: str = "US"

    sync_port: int = 5000
    actions_port: int = 5055
    rasa_port: int = 5005
    # Rasa server processes (Sanic workers) sharing the port; more than one needs REDIS_URL, because
    # Rasa's lock store (one message of a conversation at a time) must then live in Redis. One by
    # default: two did not lower the 20-user p95 on 2 cores (docs/assistant.md) and double the memory
    rasa_workers: int = Field(default=1, ge=1, le=16)
    sync_url: str | None = None  # where the action server finds the sync service
    # where the action server's offers come from: its in-memory cache, or SQL on every question
    # (BookingService.available_slots: the naive baseline the benchmarks compare the cache with)
    availability_source: Literal["cache", "sql"] = "cache"

    slot_step_minutes: int = Field(default=15, gt=0, le=240)
    cache_days: int = Field(default=92, gt=0, le=740)  # the booking horizon and a little more
    # scheduling rules (per clinic; a service may set its own minimum notice)
    min_notice_minutes: int = Field(default=120, ge=0)
    horizon_days: int = Field(default=90, gt=0, le=730)
    hold_minutes: int = Field(default=5, gt=0, le=60)
    embedded_pg_port: int = 5433
    embedded_pg_dir: str = ".pgdata"

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        return normalise_database_url(value) if value else None

    @field_validator("clinic_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _secret_policy(self) -> "Settings":
        if self.jwt_secret == DEV_JWT_SECRET:
            if self.env == "production":
                raise ValueError("JWT_SECRET is the development placeholder; set a real secret in production")
            log.warning("JWT_SECRET not set: using the development secret (never in production)")
        elif len(self.jwt_secret) < 32:
            raise ValueError("JWT_SECRET must be at least 32 characters")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.clinic_timezone)

    @property
    def resolved_sync_url(self) -> str:
        return self.sync_url or f"http://127.0.0.1:{self.sync_port}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; a configuration error stops the process with its reason."""
    try:
        return Settings()
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise SettingsError(str(exc)) from exc
