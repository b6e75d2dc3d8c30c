"""Private calendar feeds: ``GET /feeds/<token>.ics``, ``GET /api/feeds/me`` and new URLs.

A feed token (``bot.links``, no expiry) names a dentist or a patient; the feed is an
``icalendar`` file of that person's live (pending or confirmed) visits that end after
``FEED_PAST_DAYS`` ago, one VEVENT each (``bot.reminders.calendar_of``, the reminders' shape).
A dentist's feed names each visit by its service and the patient's **first name only**: a feed
is copied into third-party calendars (Google, Apple, Outlook), so it carries no more than the
dentist needs to recognise the visit. A patient's names the service and the dentist. A forged,
tampered or wrong-purpose token, one naming nobody, or one of an earlier generation of that
person's URL, is 404 (one answer for all).

``GET /api/feeds/me`` (a dentist's or a patient's credential, as for any ``/api`` call)
answers ``{"url": ...}`` on ``PUBLIC_URL``, else the host the request came to; an admin or
service token has no feed (404 ``not_found``). A URL that leaked is replaced by a new one:
``POST /api/feeds/me/renew`` (the person's own) or ``POST /api/feeds/{dentist|patient}/{id}/renew``
(the front desk's, for a patient who calls) raise the person's generation in ``calendar_feeds``
(sql/012) and answer the new URL; every earlier URL of that person is refused from then on, and
nobody else's changes.
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
from bot import feeds
from bot.models import Appointment
from bot.reminders import LIVE, Visit, calendar_of, for_dentist, for_patient
from bot.tokens import Identity

from . import keys
from .api_io import ApiError, endpoint, path_id, run

log = logging.getLogger(__name__)

MAX_VISITS = 1000  # in one feed, the soonest first (as sync.api's MAX_LIST)
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _visit(view: AppointmentView) -> Visit:
    return Visit(view.id, view.starts_at, view.ends_at, view.patient_name, view.dentist_name,
                 view.service_name, view.patient_id, view.status)


def visits(engine, feed: Feed, since: datetime) -> list[Visit] | None:
    """The feed's visits, or None when it names nobody or an earlier generation of its URL."""
    owner, column = feeds.OWNERS[feed.kind]
    with session_scope(engine) as s:
        if s.get(owner, feed.id) is None or feeds.generation_of(s, feed.kind, feed.id) != feed.generation:
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


def _own(who: Identity) -> tuple[str, int]:
    if who.role == "dentist" and who.dentist_id:
        return "dentist", who.dentist_id
    if who.role == "patient" and who.patient_id:
        return "patient", who.patient_id
    raise ApiError(404, "not_found", "calendar feeds are a dentist's or a patient's; this token has none")


def _url_of(request: web.Request, which: Feed, status: int = 200) -> web.Response:
    token = feed_token(which, request.app[keys.SETTINGS])
    return web.json_response({"url": feed_url(base_url(request), token)}, status=status,
                             headers={"Cache-Control": "no-store"})


@endpoint
async def my_feed(request: web.Request, who: Identity) -> web.Response:
    return _url_of(request, await run(request, feeds.current, request.app[keys.ENGINE], *_own(who)))


async def _renewed(request: web.Request, kind: str, ident: int) -> web.Response:
    which = await run(request, feeds.renew, request.app[keys.ENGINE], kind, ident)
    if which is None:
        raise ApiError(404, "not_found", f"no such {kind}")
    log.info("calendar feed of %s %d renewed (generation %d)", kind, ident, which.generation)
    return _url_of(request, which)


@endpoint
async def renew_my_feed(request: web.Request, who: Identity) -> web.Response:
    return await _renewed(request, *_own(who))


@endpoint
async def renew_feed(request: web.Request, who: Identity) -> web.Response:
    if who.role != "admin":
        raise ApiError(403, "forbidden", "only the front desk renews another person's calendar feed")
    return await _renewed(request, request.match_info["kind"], path_id(request))


def setup(app: web.Application) -> None:
    """After ``sync.api`` (its engine, ``keys.ENGINE``)."""
    app.router.add_get(r"/feeds/{token:[A-Za-z0-9_.-]+}.ics", feed)
    app.router.add_get("/api/feeds/me", my_feed)
    app.router.add_post("/api/feeds/me/renew", renew_my_feed)
    app.router.add_post(r"/api/feeds/{kind:dentist|patient}/{id:\d+}/renew", renew_feed)
