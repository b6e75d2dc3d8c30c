"""Private calendar feeds: ``GET /feeds/<token>.ics`` and ``GET /api/feeds/me``.

A feed token (``bot.links``, no expiry) names a dentist or a patient; the feed is an
``icalendar`` file of that person's live (pending or confirmed) visits that end after
``FEED_PAST_DAYS`` ago, one VEVENT each (``bot.reminders.calendar_of``, the reminders' shape).
A dentist's feed names each visit by its service and the patient's **first name only**: a feed
is copied into third-party calendars (Google, Apple, Outlook), so it carries no more than the
dentist needs to recognise the visit. A patient's names the service and the dentist. A forged,
tampered or wrong-purpose token, or one naming nobody, is 404 (one answer for all).

``GET /api/feeds/me`` (a dentist's or a patient's credential, as for any ``/api`` call)
answers ``{"url": ...}`` on ``PUBLIC_URL``, else the host the request came to; an admin or
service token has no feed (404 ``not_found``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from aiohttp import web
from sqlalchemy import select

from bot.booking import AppointmentView
from bot.db import DatabaseError, session_scope
from bot.links import Feed, LinkError, feed_token, feed_url, read_feed_token
from bot.models import Appointment, Dentist, Patient
from bot.reminders import LIVE, Visit, calendar_of, for_dentist, for_patient
from bot.tokens import Identity

from . import keys
from .api_io import ApiError, endpoint

log = logging.getLogger(__name__)

MAX_VISITS = 1000  # in one feed, the soonest first (as sync.api's MAX_LIST)
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _visit(view: AppointmentView) -> Visit:
    return Visit(view.id, view.starts_at, view.ends_at, view.patient_name, view.dentist_name,
                 view.service_name, view.patient_id, view.status)


def visits(engine, feed: Feed, since: datetime) -> list[Visit] | None:
    """The feed's visits, or None when it names nobody."""
    owner, column = (Dentist, Appointment.dentist_id) if feed.kind == "dentist" else (Patient, Appointment.patient_id)
    with session_scope(engine) as s:
        if s.get(owner, feed.id) is None:
            return None
        rows = s.scalars(select(Appointment).where(column == feed.id, Appointment.status.in_(LIVE),
                                                   Appointment.ends_at > since)
                         .order_by(Appointment.starts_at, Appointment.id).limit(MAX_VISITS))
        return [_visit(AppointmentView.of(a)) for a in rows]


def _no_feed() -> web.Response:
    return web.Response(status=404, text="No such calendar feed.\n", headers=HEADERS)


async def feed(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    try:
        which = read_feed_token(request.match_info["token"], settings)
    except LinkError as exc:
        log.info("calendar feed refused: %s", exc)
        return _no_feed()
    since = datetime.now(timezone.utc) - timedelta(days=settings.feed_past_days)
    try:
        found = await asyncio.to_thread(visits, request.app[keys.ENGINE], which, since)
    except DatabaseError as exc:
        log.warning("calendar feed: database trouble: %s", exc)
        return web.Response(status=503, text="The calendar is unavailable; try again shortly.\n",
                            headers={**HEADERS, "Retry-After": "60"})
    if found is None:
        return _no_feed()
    dentist = which.kind == "dentist"
    body = calendar_of(found, settings, summary=for_dentist if dentist else for_patient, description=not dentist)
    return web.Response(body=body, content_type="text/calendar", charset="utf-8", headers=HEADERS)


def base_url(request: web.Request) -> str:
    """``PUBLIC_URL``, else this request's own scheme and host (where the page was served from)."""
    public = request.app[keys.SETTINGS].public_url.strip().rstrip("/")
    return public or f"{request.scheme}://{request.host}"


@endpoint
async def my_feed(request: web.Request, who: Identity) -> web.Response:
    if who.role == "dentist" and who.dentist_id:
        kind, ident = "dentist", who.dentist_id
    elif who.role == "patient" and who.patient_id:
        kind, ident = "patient", who.patient_id
    else:
        raise ApiError(404, "not_found", "calendar feeds are a dentist's or a patient's; this token has none")
    token = feed_token(kind, ident, request.app[keys.SETTINGS])
    return web.json_response({"url": feed_url(base_url(request), token)}, headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    """After ``sync.api`` (its engine, ``keys.ENGINE``)."""
    app.router.add_get(r"/feeds/{token:[A-Za-z0-9_.-]+}.ics", feed)
    app.router.add_get("/api/feeds/me", my_feed)
