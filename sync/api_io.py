"""The REST API's request handling: error answers, body reading and validation, the pydantic
models of request bodies, and small parsers. The handlers are in ``sync.api``."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import (AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, TypeAdapter,
                      ValidationError, model_validator)

from bot.booking import Outcome, Result
from bot.db import DatabaseError, DatabaseUnavailable
from bot.tokens import Identity

from .rest import _caller, error

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024          # bytes of a request body
MAX_ID = 2**63 - 1            # PostgreSQL bigint
MAX_BLOCKS = 50               # working-hours blocks in one weekly schedule
MAX_RANGE = timedelta(days=366)
MAX_AHEAD = timedelta(days=730)  # how far ahead an override or closure may be set (the longest horizon)


async def run(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    """A handler's database work (synchronous SQLAlchemy), in a worker thread."""
    return await asyncio.to_thread(fn, *args)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra

    def response(self) -> web.Response:
        body = {"error": self.code, "message": str(self), **self.extra}
        return web.json_response(body, status=self.status)


# --- request bodies ------------------------------------------------------------------------------

def _storable(value: str) -> str:
    """Refuse what PostgreSQL's text cannot hold: the NUL character, and a lone surrogate (which
    JSON's ``\\ud83d`` escapes can spell but UTF-8 cannot encode)."""
    if "\x00" in value:
        raise ValueError("text must not contain the NUL character (U+0000), which the database cannot store")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (it holds a lone surrogate, half a character)") from None
    return value


def text(max_length: int) -> Any:
    """Free text in a request body, stored as given except what PostgreSQL would refuse (a 422
    here, never a database error); the pattern tells the OpenAPI document's readers the same."""
    return Annotated[str, Field(max_length=max_length), AfterValidator(_storable),
                     Field(json_schema_extra={"pattern": "^[^\\u0000]*$"})]


Reason = text(500)


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["pending", "confirmed", "cancelled", "completed", "no_show"]


class HoursBlock(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weekday: Annotated[StrictInt, Field(ge=1, le=7, description="ISO weekday, 1 = Monday")]
    start_time: time = Field(description="wall-clock time in the clinic's zone, HH:MM")
    end_time: time

    @model_validator(mode="after")
    def _ordered(self) -> "HoursBlock":
        if self.start_time.tzinfo or self.end_time.tzinfo:
            raise ValueError("times are wall-clock times in the clinic's zone, without an offset")
        if self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        return self


WeeklyHours = TypeAdapter(Annotated[list[HoursBlock], Field(max_length=MAX_BLOCKS)])


class TimeOffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: Reason | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "TimeOffIn":
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.ends_at - self.starts_at > MAX_RANGE:
            raise ValueError("time off is at most 366 days at a time")
        return self


class DateOverrideIn(BaseModel):
    """One block of a dentist's hours on one date, or (no times) "not working that day"."""
    model_config = ConfigDict(extra="forbid")
    on_date: date = Field(description="the date, in the clinic's zone (today or later)")
    start_time: time | None = Field(default=None, description="wall-clock HH:MM; omit both times: not working")
    end_time: time | None = None
    reason: Reason | None = None

    @model_validator(mode="after")
    def _shape(self) -> "DateOverrideIn":
        if (self.start_time is None) != (self.end_time is None):
            raise ValueError("give both start_time and end_time, or neither (not working that day)")
        if self.start_time is not None and self.end_time is not None:
            if self.start_time.tzinfo or self.end_time.tzinfo:
                raise ValueError("times are wall-clock times in the clinic's zone, without an offset")
            if self.end_time <= self.start_time:
                raise ValueError("end_time must be after start_time")
        return self


class ClosureIn(BaseModel):
    """The clinic closed on one date, or on every date from ``on_date`` to ``last_date``."""
    model_config = ConfigDict(extra="forbid")
    on_date: date = Field(description="the first closed date, in the clinic's zone (today or later)")
    last_date: date | None = Field(default=None, description="the last closed date (inclusive); omit for one day")
    reason: Reason | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "ClosureIn":
        if self.last_date is not None:
            if self.last_date < self.on_date:
                raise ValueError("last_date must not be before on_date")
            if self.last_date - self.on_date >= MAX_RANGE:
                raise ValueError("a closure is at most 366 days at a time")
        return self

    @property
    def dates(self) -> list[date]:
        last = self.last_date or self.on_date
        return [self.on_date + timedelta(days=i) for i in range((last - self.on_date).days + 1)]


RowId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]


class WaitlistIn(BaseModel):
    """Ask to be offered a freed time for a service (``bot.waitlist``). The range is clipped to
    the booking horizon, and for a visit to move earlier it ends at that visit's start."""
    model_config = ConfigDict(extra="forbid")
    service_id: RowId
    dentist_id: RowId | None = Field(default=None, description="one dentist; omit or null: any dentist")
    earliest: AwareDatetime | None = Field(default=None, description="from this instant; omit: from now")
    latest: AwareDatetime = Field(description="until this instant (with an offset)")
    appointment_id: RowId | None = Field(default=None, description="the caller's visit to move earlier")
    patient_id: RowId | None = Field(default=None, description="admin: the patient; a patient: omit (or their own)")

    @model_validator(mode="after")
    def _ordered(self) -> "WaitlistIn":
        if self.earliest is not None and self.latest <= self.earliest:
            raise ValueError("latest must be after earliest")
        return self

# --- helpers -------------------------------------------------------------------------------------

Handler = Callable[[web.Request, Identity], Awaitable[web.StreamResponse]]


def endpoint(fn: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Authenticate, then run ``fn``; map our errors and database trouble to JSON answers."""

    @functools.wraps(fn)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        who = await _caller(request)
        if isinstance(who, web.Response):
            return who
        try:
            return await fn(request, who)
        except ApiError as exc:
            return exc.response()
        except DatabaseUnavailable as exc:
            log.warning("%s %s: database unavailable: %s", request.method, request.path, exc)
            return error(503, "unavailable", "the database is unavailable; try again shortly")
        except DatabaseError as exc:
            log.warning("%s %s refused by the database: %s", request.method, request.path, exc)
            return error(409, "conflict", f"the database refused that change: {exc}")

    return wrapper


def path_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]  # the route only matches digits
    if len(raw) > 19 or not 0 < int(raw) <= MAX_ID:
        raise ApiError(404, "not_found", f"no such {name.replace('_', ' ')}")
    return int(raw)


async def read_json(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "payload_too_large", f"request bodies are limited to {MAX_BODY} bytes")
    size, chunks = 0, []
    async for chunk in request.content.iter_chunked(16384):
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, "payload_too_large", f"request bodies are limited to {MAX_BODY} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None


def validated(model: Any, data: Any) -> Any:
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(data)
        return model.model_validate(data)
    except ValidationError as exc:
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                   for e in exc.errors(include_url=False, include_input=False, include_context=False)]
        first = details[0]
        where = ".".join(map(str, first["loc"])) or "body"
        raise ApiError(422, "validation_error", f"{where}: {first['msg']}", details=details) from None


def from_result(result: Result) -> None:
    """Raise the HTTP error a booking-service outcome means (success returns)."""
    if result.ok:
        return
    status, code = {
        Outcome.NOT_FOUND: (404, "not_found"),
        Outcome.NOT_ALLOWED: (403, "forbidden"),
        Outcome.INVALID: (422, "validation_error"),
        Outcome.UNAVAILABLE: (503, "unavailable"),
        Outcome.OFFER_GONE: (409, "offer_gone"),        # a waitlist offer taken by another, or run out
        Outcome.LIMIT_REACHED: (409, "limit_reached"),  # waitlist requests per patient (not a rate: no 429)
    }.get(result.outcome, (409, "conflict"))
    message = result.message or result.outcome.value
    extra: dict[str, Any] = {"outcome": result.outcome.value}
    if status == 422:  # like a body that does not validate: which field, in the message and details
        extra["details"] = [{"loc": [result.field] if result.field else [], "msg": message, "type": result.outcome.value}]
        message = f"{result.field}: {message}" if result.field else message
    raise ApiError(status, code, message, **extra)


def may_edit(who: Identity, dentist_id: int) -> bool:
    return who.role == "admin" or (who.role == "dentist" and who.dentist_id == dentist_id)


def may_edit_dentist(who: Identity, dentist_id: int) -> None:
    if not may_edit(who, dentist_id):
        raise ApiError(403, "forbidden", "only an admin or that dentist may do this")


def staff_only(who: Identity) -> None:
    """Refuse (403) a token whose role can never do this, before anything is looked up: the answer
    is the same whatever the id, so it tells nothing about which ids exist."""
    if who.role not in ("admin", "dentist"):
        raise ApiError(403, "forbidden", "only an admin or that dentist may do this")


def parse_instant(value: str, name: str, tz) -> datetime:
    """An ISO date or date-time from a query string; a date or a naive time is in the clinic's zone."""
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tz)
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ApiError(400, "invalid_query", f"{name} must be an ISO date or date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def future_date(value: date, name: str, tz) -> None:
    """Refuse (422) a date before today or more than two years ahead, in the clinic's zone."""
    today = datetime.now(tz).date()
    if not today <= value <= today + MAX_AHEAD:
        problem = "is in the past" if value < today else "is more than two years ahead"
        raise ApiError(422, "validation_error", f"{name}: {value.isoformat()} {problem}",
                       details=[{"loc": [name], "msg": problem, "type": "date_out_of_range"}])


def query_id(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and 0 < int(raw) <= MAX_ID):
        raise ApiError(400, "invalid_query", f"{name} must be a positive integer")
    return int(raw)
