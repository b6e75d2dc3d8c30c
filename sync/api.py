"""REST endpoints the web pages use: appointments, dentists' hours and time off, services
(date overrides and clinic closures: ``sync.api_rules``).

Authorisation follows the sync service's token rules (``rest._caller``): admin sees and
edits everything; a dentist reads and edits their own diary; a patient reads their own
visits. Someone else's visit, time off or date override looks exactly like a missing one
(404, the same body), and a refusal by role comes before any lookup, so no answer tells
which ids exist. Every write goes through PostgreSQL, so the outbox triggers announce it to
every page; no handler notifies anyone.

Errors are ``{"error": "<code>", "message": "..."}``: ``invalid_json`` / ``invalid_query``
(400), ``missing_token`` / ``invalid_token`` (401), ``forbidden`` (403), ``not_found``
(404), ``conflict`` (409), ``payload_too_large`` (413), ``validation_error`` (422, with
``details``; also text PostgreSQL cannot store, such as a NUL), ``unavailable`` (503: the
database is down). Bad input never gives a 5xx. Requests aiohttp's parser refuses (a header
or request line too long) are answered in ``sync.serving``.

SQLAlchemy is synchronous here (as in ``bot``), so each handler runs its database work
in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta, timezone

from aiohttp import web
from sqlalchemy import delete, select

from bot import attendance, recalls
from bot.booking import AppointmentView, BookingService, Outcome, Result
from bot.db import make_engine, resolve_database_url, session_scope
from bot.events import safe_mark
from bot.models import Appointment, Dentist, Hygienist, Operatory, Service, TimeOff, WorkingHours
from bot.tokens import Identity
from bot.waitlist import Waitlist

from . import api_rules, api_waitlist, keys, openapi
from .api_io import (MAX_RANGE, ApiError, StatusChange, TimeOffIn, WeeklyHours, endpoint, from_result,
                     may_edit, may_edit_dentist, parse_instant, path_id, query_id, read_json, run, staff_only,
                     validated)
from .keys import ENGINE

BOOKING = web.AppKey("api_booking", BookingService)
MAX_LIST = 1000  # appointments in one answer
NO_SUCH_APPOINTMENT = "No such appointment."  # bot.booking's answer for a missing id, word for word

def _hours_json(rows) -> list[dict]:
    return [{"id": r.id, "weekday": r.weekday, "start_time": r.start_time.strftime("%H:%M"),
             "end_time": r.end_time.strftime("%H:%M")} for r in rows]


def _time_off_json(r: TimeOff) -> dict:
    return {"id": r.id, "dentist_id": r.dentist_id, "starts_at": r.starts_at.isoformat(),
            "ends_at": r.ends_at.isoformat(), "reason": r.reason}


# --- appointments --------------------------------------------------------------------------------

@endpoint
async def list_appointments(request: web.Request, who: Identity) -> web.Response:
    tz = request.app[keys.SETTINGS].tz
    today = datetime.combine(datetime.now(tz).date(), time(0), tz)
    start = parse_instant(request.query["from"], "from", tz) if request.query.get("from") else today
    end = parse_instant(request.query["to"], "to", tz) if request.query.get("to") else start + timedelta(days=30)
    if end <= start or end - start > MAX_RANGE:
        raise ApiError(400, "invalid_query", "to must be after from, at most 366 days later")
    dentist_id, patient_id = query_id(request, "dentist_id"), query_id(request, "patient_id")
    if who.role == "dentist":
        if dentist_id not in (None, who.dentist_id):
            raise ApiError(403, "forbidden", "a dentist sees their own diary only")
        dentist_id = who.dentist_id
    elif who.role == "patient":
        if patient_id not in (None, who.patient_id):
            raise ApiError(403, "forbidden", "a patient sees their own appointments only")
        patient_id = who.patient_id
    elif who.role != "admin":
        raise ApiError(403, "forbidden", "appointments are for admin, dentist and patient tokens")

    def read() -> tuple[int, list[dict]]:
        with session_scope(request.app[ENGINE]) as s:
            mark = safe_mark(s)  # before the rows: they hold at least this (bot.events)
            q = select(Appointment).where(Appointment.ends_at > start, Appointment.starts_at < end)
            if dentist_id is not None:
                q = q.where(Appointment.dentist_id == dentist_id)
            if patient_id is not None:
                q = q.where(Appointment.patient_id == patient_id)
            rows = s.scalars(q.order_by(Appointment.starts_at, Appointment.id).limit(MAX_LIST + 1)).all()
            return mark, [AppointmentView.of(a).as_dict() for a in rows]

    mark, rows = await run(request, read)
    return web.json_response({"from": start.isoformat(), "to": end.isoformat(),
                              "appointments": rows[:MAX_LIST], "truncated": len(rows) > MAX_LIST,
                              "last_event_id": mark})


def _visit_or_404(result: Result) -> None:
    """Raise what a booking-service answer about one visit means; someone else's visit answers
    exactly as a missing one (404, the same body), so nobody can tell which ids exist."""
    if result.outcome is Outcome.NOT_ALLOWED:
        result = Result(Outcome.NOT_FOUND, NO_SUCH_APPOINTMENT, field="appointment_id")
    from_result(result)


def _reads_appointments(who: Identity) -> None:
    """Service tokens have no appointments to read: refused before any lookup, whatever the id."""
    if who.role not in ("admin", "dentist", "patient"):
        raise ApiError(403, "forbidden", "appointments are for admin, dentist and patient tokens")


@endpoint
async def get_appointment(request: web.Request, who: Identity) -> web.Response:
    _reads_appointments(who)
    result = await run(request, request.app[BOOKING].get, who, path_id(request))
    _visit_or_404(result)
    return web.json_response({"appointment": result.appointment.as_dict()})


@endpoint
async def patch_appointment(request: web.Request, who: Identity) -> web.Response:
    _reads_appointments(who)
    appointment_id = path_id(request)
    change = validated(StatusChange, await read_json(request))
    booking = request.app[BOOKING]
    current = await run(request, booking.get, who, appointment_id)
    _visit_or_404(current)  # someone else's visit: 404, for a dentist as for a patient
    if who.role not in ("admin", "dentist"):
        raise ApiError(403, "forbidden", "only the clinic's staff change a visit's status")
    if current.appointment.status == "cancelled" and change.status != "cancelled":
        raise ApiError(409, "conflict", "a cancelled visit cannot be reopened; book a new one",
                       outcome="already_cancelled")
    result = await run(request, booking.set_status, who, appointment_id, change.status)
    _visit_or_404(result)
    return web.json_response({"appointment": result.appointment.as_dict()})


# --- dentists, hours, time off, services ---------------------------------------------------------

@endpoint
async def list_dentists(request: web.Request, who: Identity) -> web.Response:
    return await _rows(request, Dentist, "dentists", "full_name", "specialty", "active")


async def _rows(request: web.Request, model, key: str, *columns: str) -> web.Response:
    """Every row of a small catalogue table, by id: ``{key: [{"id", *columns}]}``."""
    def read() -> list[dict]:
        with session_scope(request.app[ENGINE]) as s:
            return [{"id": row.id, **{c: getattr(row, c) for c in columns}}
                    for row in s.scalars(select(model).order_by(model.id))]

    return web.json_response({key: await run(request, read)})


@endpoint
async def list_operatories(request: web.Request, who: Identity) -> web.Response:
    """The chairs (sql/008): the front desk's day per chair groups visits by ``operatory_id``."""
    return await _rows(request, Operatory, "operatories", "name", "active")


@endpoint
async def list_recalls(request: web.Request, who: Identity) -> web.Response:
    """Patients due for a recalled service (``bot.recalls``): the front desk's list (admin only)."""
    if who.role != "admin":
        raise ApiError(403, "forbidden", "the recall list is the front desk's")
    settings = request.app[keys.SETTINGS]

    def read() -> list[dict]:
        with session_scope(request.app[ENGINE]) as s:
            return [d.as_dict() for d in recalls.due(s, datetime.now(timezone.utc), settings.clinic_timezone)]

    return web.json_response({"due": await run(request, read)})


@endpoint
async def list_attendance(request: web.Request, who: Identity) -> web.Response:
    """Each patient's no-shows and late cancellations (``bot.attendance``): the front desk's."""
    if who.role != "admin":
        raise ApiError(403, "forbidden", "attendance is the front desk's")
    notice = timedelta(hours=request.app[keys.SETTINGS].cancel_notice_hours)

    def read() -> list[dict]:
        with session_scope(request.app[ENGINE]) as s:
            return [a.as_dict() for a in attendance.counts(s, notice)]

    return web.json_response({"patients": await run(request, read)})


@endpoint
async def list_hygienists(request: web.Request, who: Identity) -> web.Response:
    return await _rows(request, Hygienist, "hygienists", "full_name", "active")


@endpoint
async def list_services(request: web.Request, who: Identity) -> web.Response:
    def read() -> list[dict]:
        with session_scope(request.app[ENGINE]) as s:
            return [{"id": v.id, "name": v.name, "duration_minutes": v.duration_minutes,
                     "price_cents": v.price_cents, "description": v.description,
                     "performed_by": v.performed_by, "needs_operatory": v.needs_operatory}
                    for v in s.scalars(select(Service).order_by(Service.id))]

    return web.json_response({"services": await run(request, read)})


def _dentist_exists(s, dentist_id: int) -> None:
    if s.get(Dentist, dentist_id) is None:
        raise ApiError(404, "not_found", "no such dentist")


@endpoint
async def get_hours(request: web.Request, who: Identity) -> web.Response:
    dentist_id = path_id(request)

    def read() -> list[dict]:
        with session_scope(request.app[ENGINE]) as s:
            _dentist_exists(s, dentist_id)
            return _hours_json(s.scalars(select(WorkingHours).where(WorkingHours.dentist_id == dentist_id)
                                         .order_by(WorkingHours.weekday, WorkingHours.start_time)))

    return web.json_response({"dentist_id": dentist_id, "working_hours": await run(request, read)})


@endpoint
async def put_hours(request: web.Request, who: Identity) -> web.Response:
    dentist_id = path_id(request)
    may_edit_dentist(who, dentist_id)
    blocks = sorted(validated(WeeklyHours, await read_json(request)),
                    key=lambda b: (b.weekday, b.start_time))
    for a, b in zip(blocks, blocks[1:]):
        if a.weekday == b.weekday and b.start_time < a.end_time:
            raise ApiError(422, "validation_error", f"blocks on weekday {a.weekday} overlap",
                           details=[{"loc": ["body"], "msg": "overlapping blocks", "type": "overlap"}])

    def replace() -> list[dict]:
        with session_scope(request.app[ENGINE]) as s:
            _dentist_exists(s, dentist_id)
            s.execute(delete(WorkingHours).where(WorkingHours.dentist_id == dentist_id))
            rows = [WorkingHours(dentist_id=dentist_id, weekday=b.weekday, start_time=b.start_time,
                                 end_time=b.end_time) for b in blocks]
            s.add_all(rows)
            s.flush()
            return _hours_json(rows)

    return web.json_response({"dentist_id": dentist_id, "working_hours": await run(request, replace)})


@endpoint
async def get_time_off(request: web.Request, who: Identity) -> web.Response:
    dentist_id = path_id(request)
    may_edit_dentist(who, dentist_id)  # reasons are private to the clinic's staff

    def read() -> list[dict]:
        with session_scope(request.app[ENGINE]) as s:
            _dentist_exists(s, dentist_id)
            since = datetime.now(timezone.utc) - timedelta(days=1)
            return [_time_off_json(r) for r in s.scalars(
                select(TimeOff).where(TimeOff.dentist_id == dentist_id, TimeOff.ends_at > since)
                .order_by(TimeOff.starts_at))]

    return web.json_response({"dentist_id": dentist_id, "time_off": await run(request, read)})


@endpoint
async def post_time_off(request: web.Request, who: Identity) -> web.Response:
    dentist_id = path_id(request)
    may_edit_dentist(who, dentist_id)
    body = validated(TimeOffIn, await read_json(request))

    def add() -> dict:
        with session_scope(request.app[ENGINE]) as s:
            _dentist_exists(s, dentist_id)
            row = TimeOff(dentist_id=dentist_id, starts_at=body.starts_at, ends_at=body.ends_at,
                          reason=body.reason)
            s.add(row)
            s.flush()
            clashes = s.scalars(select(Appointment.id).where(
                Appointment.dentist_id == dentist_id, Appointment.status.in_(("pending", "confirmed")),
                Appointment.ends_at > body.starts_at, Appointment.starts_at < body.ends_at)
                .order_by(Appointment.starts_at)).all()
            return {"time_off": _time_off_json(row), "overlapping_appointments": list(clashes)}

    return web.json_response(await run(request, add), status=201)


@endpoint
async def delete_time_off(request: web.Request, who: Identity) -> web.Response:
    row_id = path_id(request)
    staff_only(who)

    def remove() -> None:
        with session_scope(request.app[ENGINE]) as s:
            row = s.get(TimeOff, row_id)
            if row is None or not may_edit(who, row.dentist_id):  # another dentist's: as if missing
                raise ApiError(404, "not_found", "no such time off")
            s.delete(row)

    await run(request, remove)
    return web.Response(status=204)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi.document(request.app[keys.SETTINGS]))


# --- wiring --------------------------------------------------------------------------------------

async def _engine(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    url = await asyncio.to_thread(resolve_database_url, settings)
    engine = make_engine(url, pool_size=5, max_overflow=5)
    app[ENGINE] = engine
    app[BOOKING] = BookingService(engine, settings)
    app[keys.WAITLIST] = Waitlist(app[BOOKING])
    try:
        yield
    finally:
        await asyncio.to_thread(engine.dispose)


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_engine)
    r = app.router
    r.add_get("/api/openapi.json", openapi_json)
    r.add_get("/api/appointments", list_appointments)
    r.add_get(r"/api/appointments/{id:[0-9]+}", get_appointment)
    r.add_patch(r"/api/appointments/{id:[0-9]+}", patch_appointment)
    r.add_get("/api/dentists", list_dentists)
    r.add_get(r"/api/dentists/{id:[0-9]+}/working-hours", get_hours)
    r.add_put(r"/api/dentists/{id:[0-9]+}/working-hours", put_hours)
    r.add_get(r"/api/dentists/{id:[0-9]+}/time-off", get_time_off)
    r.add_post(r"/api/dentists/{id:[0-9]+}/time-off", post_time_off)
    r.add_delete(r"/api/time-off/{id:[0-9]+}", delete_time_off)
    r.add_get("/api/services", list_services)
    r.add_get("/api/operatories", list_operatories)
    r.add_get("/api/hygienists", list_hygienists)
    r.add_get("/api/recalls", list_recalls)
    r.add_get("/api/attendance", list_attendance)
    api_rules.add_routes(r)  # date overrides and closures, on the same engine (keys.ENGINE)
    api_waitlist.add_routes(r)  # the waitlist and its offers (keys.WAITLIST)

