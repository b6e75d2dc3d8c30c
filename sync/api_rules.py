"""REST endpoints for the scheduling rules kept by date: a dentist's date overrides (other hours
on one date, or not working) and the clinic's closures (nobody works).

An admin edits any dentist's overrides, a dentist their own; only an admin edits closures, which
every token may read. Reasons of overrides are private to the clinic's staff, like time off.
Writes go through PostgreSQL, whose triggers announce ``availability_changed`` (without the
reason); answers list the visits still booked that the change leaves outside working time.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from aiohttp import web
from sqlalchemy import select, text

from bot.availability import local_block
from bot.db import session_scope
from bot.models import LIVE_STATUSES, Appointment, ClinicClosure, DateOverride
from bot.tokens import Identity

from . import keys
from .api_io import (ApiError, ClosureIn, DateOverrideIn, endpoint, future_date, may_edit, may_edit_dentist,
                     path_id, read_json, run, staff_only, validated)
from .keys import ENGINE

MAX_ROWS = 1000  # rows in one list answer


def _hhmm(t: time | None) -> str | None:
    return None if t is None else t.strftime("%H:%M")


def _override_json(r: DateOverride) -> dict:
    return {"id": r.id, "dentist_id": r.dentist_id, "on_date": r.on_date.isoformat(),
            "start_time": _hhmm(r.start_time), "end_time": _hhmm(r.end_time), "reason": r.reason}


def _closure_json(r: ClinicClosure) -> dict:
    return {"id": r.id, "on_date": r.on_date.isoformat(), "reason": r.reason}


def _midnight(day: date, tz) -> datetime:
    return datetime.combine(day, time(0), tz)


def _live_visits(s, first: date, last: date, tz, dentist_id: int | None = None) -> list[Appointment]:
    """Visits still to happen that start on a local date in [first, last]."""
    q = select(Appointment).where(Appointment.status.in_(LIVE_STATUSES),
                                  Appointment.starts_at >= _midnight(first, tz),
                                  Appointment.starts_at < _midnight(last + timedelta(days=1), tz))
    if dentist_id is not None:
        q = q.where(Appointment.dentist_id == dentist_id)
    return list(s.scalars(q.order_by(Appointment.starts_at, Appointment.id)))


# --- date overrides ------------------------------------------------------------------------------

def _lock_dentist(s, dentist_id: int, *, lock: bool = True) -> None:
    """404 for a missing dentist; with ``lock``, serialise override writes of this dentist
    (FOR NO KEY UPDATE: bookings, which only take KEY SHARE, are not held up)."""
    sql = "SELECT 1 FROM dentists WHERE id = :id" + (" FOR NO KEY UPDATE" if lock else "")
    if s.execute(text(sql), {"id": dentist_id}).first() is None:
        raise ApiError(404, "not_found", "no such dentist")


@endpoint
async def list_overrides(request: web.Request, who: Identity) -> web.Response:
    dentist_id = path_id(request)
    may_edit_dentist(who, dentist_id)  # reasons are private to the clinic's staff
    today = datetime.now(request.app[keys.SETTINGS].tz).date()

    def read() -> list[dict]:
        with session_scope(request.app[ENGINE]) as s:
            _lock_dentist(s, dentist_id, lock=False)
            return [_override_json(r) for r in s.scalars(
                select(DateOverride).where(DateOverride.dentist_id == dentist_id, DateOverride.on_date >= today)
                .order_by(DateOverride.on_date, DateOverride.start_time.nulls_first(), DateOverride.id)
                .limit(MAX_ROWS))]

    return web.json_response({"dentist_id": dentist_id, "date_overrides": await run(request, read)})


@endpoint
async def post_override(request: web.Request, who: Identity) -> web.Response:
    dentist_id = path_id(request)
    may_edit_dentist(who, dentist_id)
    body = validated(DateOverrideIn, await read_json(request))
    tz = request.app[keys.SETTINGS].tz
    future_date(body.on_date, "on_date", tz)

    def add() -> dict:
        with session_scope(request.app[ENGINE]) as s:
            _lock_dentist(s, dentist_id)
            same_day = list(s.scalars(select(DateOverride).where(
                DateOverride.dentist_id == dentist_id, DateOverride.on_date == body.on_date)))
            day = body.on_date.isoformat()
            if any(r.start_time is None for r in same_day):
                raise ApiError(409, "conflict", f"{day} is already marked as not working; remove that first",
                               existing=[r.id for r in same_day])
            if body.start_time is None and same_day:
                raise ApiError(409, "conflict", f"{day} already has other hours; remove them first",
                               existing=[r.id for r in same_day])
            for r in same_day:
                if r.start_time < body.end_time and body.start_time < r.end_time:
                    raise ApiError(409, "conflict", f"overlaps {_hhmm(r.start_time)}-{_hhmm(r.end_time)} on {day}",
                                   existing=[r.id])
            row = DateOverride(dentist_id=dentist_id, on_date=body.on_date, start_time=body.start_time,
                               end_time=body.end_time, reason=body.reason)
            s.add(row)
            s.flush()
            blocks = [local_block(body.on_date, r.start_time, r.end_time, tz)
                      for r in (*same_day, row) if r.start_time is not None]
            outside = [a.id for a in _live_visits(s, body.on_date, body.on_date, tz, dentist_id)
                       if not any(bs <= a.starts_at and a.ends_at <= be for bs, be in blocks)]
            return {"date_override": _override_json(row), "overlapping_appointments": outside}

    return web.json_response(await run(request, add), status=201)


@endpoint
async def delete_override(request: web.Request, who: Identity) -> web.Response:
    row_id = path_id(request)
    staff_only(who)

    def remove() -> None:
        with session_scope(request.app[ENGINE]) as s:
            row = s.get(DateOverride, row_id)
            if row is None or not may_edit(who, row.dentist_id):  # another dentist's: as if missing
                raise ApiError(404, "not_found", "no such date override")
            s.delete(row)

    await run(request, remove)
    return web.Response(status=204)


# --- clinic closures -----------------------------------------------------------------------------

def _admin_only(who: Identity) -> None:
    if who.role != "admin":
        raise ApiError(403, "forbidden", "only an admin may change the clinic's closures")


@endpoint
async def list_closures(request: web.Request, who: Identity) -> web.Response:
    today = datetime.now(request.app[keys.SETTINGS].tz).date()

    def read() -> list[dict]:
        with session_scope(request.app[ENGINE]) as s:
            return [_closure_json(r) for r in s.scalars(
                select(ClinicClosure).where(ClinicClosure.on_date >= today)
                .order_by(ClinicClosure.on_date).limit(MAX_ROWS))]

    return web.json_response({"closures": await run(request, read)})


@endpoint
async def post_closure(request: web.Request, who: Identity) -> web.Response:
    _admin_only(who)
    body = validated(ClosureIn, await read_json(request))
    tz = request.app[keys.SETTINGS].tz
    future_date(body.on_date, "on_date", tz)
    future_date(body.last_date or body.on_date, "last_date", tz)
    dates = body.dates

    def add() -> dict:
        with session_scope(request.app[ENGINE]) as s:
            taken = list(s.scalars(select(ClinicClosure).where(ClinicClosure.on_date.in_(dates))
                                   .order_by(ClinicClosure.on_date)))
            if taken:
                raise ApiError(409, "conflict", f"the clinic is already closed on {taken[0].on_date.isoformat()}",
                               existing=[r.id for r in taken])
            rows = [ClinicClosure(on_date=d, reason=body.reason) for d in dates]
            s.add_all(rows)
            s.flush()
            clashes = [a.id for a in _live_visits(s, dates[0], dates[-1], tz)]
            return {"closures": [_closure_json(r) for r in rows], "overlapping_appointments": clashes}

    return web.json_response(await run(request, add), status=201)


@endpoint
async def delete_closure(request: web.Request, who: Identity) -> web.Response:
    _admin_only(who)
    row_id = path_id(request)

    def remove() -> None:
        with session_scope(request.app[ENGINE]) as s:
            row = s.get(ClinicClosure, row_id)
            if row is None:
                raise ApiError(404, "not_found", "no such closure")
            s.delete(row)

    await run(request, remove)
    return web.Response(status=204)


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get(r"/api/dentists/{id:[0-9]+}/date-overrides", list_overrides)
    r.add_post(r"/api/dentists/{id:[0-9]+}/date-overrides", post_override)
    r.add_delete(r"/api/date-overrides/{id:[0-9]+}", delete_override)
    r.add_get("/api/closures", list_closures)
    r.add_post("/api/closures", post_closure)
    r.add_delete(r"/api/closures/{id:[0-9]+}", delete_closure)
