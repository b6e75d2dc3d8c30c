"""One settings class for every process, read from the environment (and ``.env``).

This is the only module that reads environment variables: everything else receives a
``Settings`` (``get_settings()`` for the process's own). ``tests/test_structure.py`` checks it.
"""

from __future__ import annotations

import hashlib
import hmac
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

    log_level: str = "INFO"  # of every service's own log lines

    sync_port: int = 5000
    sync_host: str = "0.0.0.0"  # where python -m sync listens (--host overrides)
    # uvloop's event loop for the sync service (faster fan-out, smaller transports); false: asyncio's
    sync_uvloop: bool = True
    # python-socketio's Redis channel of the sync nodes sharing REDIS_URL
    sync_redis_channel: str = "realtime-sync"
    # where the chat page finds Rasa's socket; empty: the page's own host on RASA_PORT (set it behind
    # a proxy or TLS)
    rasa_public_url: str = ""
    actions_port: int = 5055
    rasa_port: int = 5005
    # Rasa server processes (Sanic workers) sharing the port; more than one needs REDIS_URL, because
    # Rasa's lock store (one message of a conversation at a time) must then live in Redis. One by
    # default: two did not lower the 20-user p95 on 2 cores (docs/assistant.md) and double the memory
    rasa_workers: int = Field(default=1, ge=1, le=16)
    sync_url: str | None = None  # where the action server finds the sync service
    # a fixed token the action server connects to the sync service with; unset: minted from JWT_SECRET
    service_token: str | None = None
    # where the action server's offers come from: its in-memory cache, or SQL on every question
    # (BookingService.available_slots: the naive baseline the benchmarks compare the cache with)
    availability_source: Literal["cache", "sql"] = "cache"

    slot_step_minutes: int = Field(default=15, gt=0, le=240)
    cache_days: int = Field(default=92, gt=0, le=740)  # the booking horizon and a little more
    # scheduling rules (per clinic; a service may set its own minimum notice)
    min_notice_minutes: int = Field(default=120, ge=0)
    horizon_days: int = Field(default=90, gt=0, le=730)
    hold_minutes: int = Field(default=5, gt=0, le=60)
    # the cancellation policy: a patient moves or cancels a visit themselves (the bot, the patient
    # page) up to this many hours before it starts; inside it only the front desk can
    cancel_notice_hours: int = Field(default=24, ge=0, le=24 * 14)
    # a patient with this many no-shows who books through the bot is reported to the front desk
    no_show_alert_count: int = Field(default=2, ge=1)
    front_desk_email: str = "frontdesk@clinic.example"
    # reminders (bot/reminders.py, run by the sync service): a pending or confirmed visit starting
    # within REMINDER_HOURS gets one email (with an .ics file) and one SMS; the worker looks every
    # REMINDER_POLL_SECONDS (and at once after a visit changes); a claim left unsent (a crash, a
    # refused send) is tried again after REMINDER_RETRY_MINUTES, at most REMINDER_MAX_ATTEMPTS times;
    # REMINDER_HOURS=0: no reminders (the worker does not run)
    reminder_hours: int = Field(default=24, ge=0, le=24 * 14)
    reminder_poll_seconds: float = Field(default=60.0, ge=1, le=3600)
    reminder_retry_minutes: int = Field(default=10, ge=1, le=24 * 60)
    reminder_max_attempts: int = Field(default=3, ge=1, le=20)
    # the waitlist (bot/waitlist.py, run by the sync service): freed time is offered to at most
    # WAITLIST_OFFER_TO waiting patients at once (the earliest requests first), held for them for
    # HOLD_MINUTES; the worker looks at once after a change and every WAITLIST_POLL_SECONDS; a
    # patient keeps at most WAITLIST_ENTRIES_PER_PATIENT waiting requests
    waitlist_offer_to: int = Field(default=3, ge=1, le=50)
    waitlist_poll_seconds: float = Field(default=30.0, ge=1, le=3600)
    waitlist_entries_per_patient: int = Field(default=3, ge=1, le=20)
    # where the sync service reaches Rasa's HTTP API to tell a waiting patient's chat of an offer
    # (trigger_intent); empty: http://127.0.0.1:RASA_PORT
    rasa_url: str = ""
    # where patients and calendar applications reach the sync service (the links in reminders, the
    # calendar feeds' URLs): e.g. https://book.clinic.example behind a proxy; empty: SYNC_URL, else
    # http://127.0.0.1:SYNC_PORT (right for development only)
    public_url: str = ""
    # how far back a calendar feed reaches (it holds every live visit from then on)
    feed_past_days: int = Field(default=30, ge=0, le=366)

    # sync service limits
    # Sockets open at once on one node per identity a token names (its role and `sub`: every token
    # of one patient counts together); admin and service tokens, shared by staff and services, get
    # more. docs/realtime.md
    sync_max_sockets_per_token: int = Field(default=20, ge=1)
    sync_max_sockets_per_staff_token: int = Field(default=200, ge=1)
    # a token larger than this is refused before it is decoded (ours are about 200 bytes)
    sync_max_token_bytes: int = Field(default=4096, ge=512, le=8000)
    # other origins (scheme://host[:port], comma-separated) whose pages may open Socket.IO
    # connections; empty: the sync service's own origin only. Never with credentials
    sync_cors_origins: str = ""

    embedded_pg_port: int = 5433
    embedded_pg_dir: str = ".pgdata"

    # --- the chat's boundaries (docs/security.md) ---
    # Rasa and the action server listen on loopback; a clinic that puts Rasa's chat channels
    # behind its own proxy on another host changes RASA_HOST (with a warning at start-up).
    rasa_host: str = "127.0.0.1"
    actions_host: str = "127.0.0.1"
    # Rasa's HTTP API (trackers, models, trigger_intent) answers only requests with ?token=<it>;
    # unset: a token derived from JWT_SECRET, known to the sync service alone (it tells a waiting
    # patient's chat of a freed slot through it)
    rasa_api_token: str | None = None
    # what Rasa sends the action server on every call (Authorization: Bearer ...); derived from
    # JWT_SECRET when unset, so both processes of one installation agree without more set-up
    actions_token: str | None = None
    # origins (scheme://host[:port], comma-separated) whose pages may use the chat channels;
    # empty: the sync service's own (http://127.0.0.1:SYNC_PORT and http://localhost:SYNC_PORT)
    chat_origins: str = ""
    # Rasa reads a message in its one event loop, so a long one holds every other chat's turn:
    # 500 characters cost about one ordinary turn (~115 ms), 2,000 about five (BENCHMARKS.md, flood)
    chat_max_message_chars: int = Field(default=500, ge=100, le=100_000)
    # flood limits on what the chat books and holds, over a sliding window
    chat_limit_window_minutes: int = Field(default=60, gt=0)
    chat_bookings_per_conversation: int = Field(default=3, ge=0)
    chat_bookings_per_phone: int = Field(default=3, ge=0)
    chat_bookings_per_client: int = Field(default=10, ge=0)
    chat_holds_per_client: int = Field(default=5, ge=0)

    # --- one-time codes and the notifier (docs/security.md, "Verified identity") ---
    # Off only for a clinic's own kiosk: then a chat books under any typed phone number (warned)
    chat_verification: bool = True
    verification_code_minutes: int = Field(default=10, gt=0, le=60)
    verification_max_tries: int = Field(default=5, ge=1, le=20)
    verification_resend_seconds: int = Field(default=30, ge=0, le=600)
    # codes sent per hour: to one recipient, from one chat client address, in one conversation
    verification_codes_per_recipient: int = Field(default=5, ge=1)
    verification_codes_per_client: int = Field(default=10, ge=1)
    verification_codes_per_subject: int = Field(default=5, ge=1)
    # codes sent per hour by the whole clinic: a ceiling on what any flood can cost in texts
    verification_codes_per_hour: int = Field(default=300, ge=1)
    # regions (ISO codes, comma-separated) whose numbers get texts; empty: PHONE_REGION only
    sms_regions: str = ""
    # patient-page code requests, and typed codes (counted before they are checked), per client
    # address per hour (in the sync service's memory, known numbers or not, so the answer never
    # tells who is a patient)
    patient_sign_in_per_client: int = Field(default=20, ge=1)
    # how long a code typed back in a chat lets it act for that phone's patient
    chat_verified_minutes: int = Field(default=60, gt=0, le=24 * 60)
    # how long the patient page's sign-in by code lasts (the token it gets)
    patient_sign_in_minutes: int = Field(default=60, gt=0, le=24 * 60)
    # where messages go: "console" logs them (development: `bot up` prints the codes)
    sms_sender: Literal["console", "http"] = "console"
    sms_http_url: str | None = None  # POST {"to", "body"} JSON; any 2xx is sent
    sms_http_token: str | None = None  # sent as Authorization: Bearer ...
    email_sender: Literal["console", "smtp"] = "console"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, gt=0, lt=65536)
    smtp_from: str = "Bright Smile Dental <no-reply@localhost>"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    notify_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    # --- staff accounts (docs/security.md) ---
    # a staff sign-in lasts this long (a working day), then the person signs in again
    staff_session_minutes: int = Field(default=8 * 60, gt=0, le=7 * 24 * 60)
    # consecutive wrong passwords before an account (or a typed unknown email) is locked; the lock
    # lasts the base, doubling with each further failure after it, up to the maximum
    staff_lockout_after: int = Field(default=5, ge=1, le=100)
    staff_lockout_base_seconds: int = Field(default=60, gt=0)
    staff_lockout_max_seconds: int = Field(default=3600, gt=0)
    staff_password_min_chars: int = Field(default=12, ge=8, le=128)
    # failed staff sign-ins from one client address an hour, then 429 before any password is
    # hashed; and how many sign-ins are hashed at once (as many again wait; beyond: 503 busy)
    staff_sign_in_failures_per_client: int = Field(default=30, ge=1)
    staff_sign_ins_at_once: int = Field(default=2, ge=1, le=64)
    # how often the sync service checks that the staff sessions of its open connections still
    # hold (a sign-out on this node closes them at once; passwd/disable or another node: by then)
    staff_session_check_seconds: float = Field(default=5, gt=0, le=3600)
    # the session cookie's Secure flag; unset: on when ENV=production (the pages behind TLS)
    session_cookie_secure: bool | None = None

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
        for name in ("actions_token", "rasa_api_token"):
            value = getattr(self, name)
            if value is not None and len(value) < 32:
                raise ValueError(f"{name.upper()} must be at least 32 characters")
        if self.sms_sender == "http" and not self.sms_http_url:
            raise ValueError("SMS_SENDER=http needs SMS_HTTP_URL")
        if not self.chat_verification:
            log.warning("CHAT_VERIFICATION is off: the chat books under any typed phone number "
                        "without a code (only for the clinic's own kiosk)")
        if self.env == "production" and "console" in (self.sms_sender, self.email_sender):
            log.warning("a message sender is 'console': codes and reminders are logged, not sent")
        if "*" in self.chat_origins:
            raise ValueError("CHAT_ORIGINS lists origins; '*' is not allowed")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.clinic_timezone)

    @property
    def resolved_sync_url(self) -> str:
        return self.sync_url or f"http://127.0.0.1:{self.sync_port}"

    @property
    def resolved_public_url(self) -> str:
        """The base of the URLs a patient or a calendar application follows."""
        return (self.public_url.strip() or self.resolved_sync_url).rstrip("/")

    def derived_secret(self, purpose: str) -> str:
        """A secret for one internal purpose, derived from JWT_SECRET (HMAC-SHA256): services of
        one installation agree on it without another variable, and it reveals nothing of the JWT key."""
        return hmac.new(self.jwt_secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()

    @property
    def resolved_actions_token(self) -> str:
        return self.actions_token or self.derived_secret("action-server")

    @property
    def resolved_rasa_api_token(self) -> str:
        """Rasa's HTTP API token: RASA_API_TOKEN, or one derived from JWT_SECRET, so the sync
        service can tell a waiting patient's chat of a freed slot (Rasa's trigger_intent)."""
        return self.rasa_api_token or self.derived_secret("rasa-api")

    @property
    def resolved_rasa_url(self) -> str:
        return (self.rasa_url or f"http://127.0.0.1:{self.rasa_port}").rstrip("/")

    @property
    def resolved_chat_origins(self) -> list[str]:
        given = [o.strip().rstrip("/") for o in self.chat_origins.split(",") if o.strip()]
        return given or [f"http://127.0.0.1:{self.sync_port}", f"http://localhost:{self.sync_port}"]


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; a configuration error stops the process with its reason."""
    try:
        return Settings()
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise SettingsError(str(exc)) from exc
