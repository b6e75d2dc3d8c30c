"""Staff sign-in: ``GET /login`` (the page), ``POST /login``, ``POST /logout``, ``GET /api/session``.

``POST /login`` takes ``{"email", "password", "next"?}`` as JSON (what ``static/login.js``
sends) or as a form. The answer never tells whether the email has an account: a wrong password,
an unknown email and a disabled account are all ``401 wrong_credentials``; a locked one (known
or not: ``bot.accounts``) ``429 locked`` with ``Retry-After``. On success the ``staff_session``
cookie is set (HttpOnly, SameSite=Strict, Path=/, Secure per ``SESSION_COOKIE_SECURE``) and
the answer names the page to go to (``next`` when it is a local path, else the role's page).
``POST /logout`` is a cookie-signed write like any other (``X-CSRF-Token``; ``sync.staff``).

A flood of sign-ins must not stall the service: each one hashes a password with Argon2 (64 MiB,
tens of milliseconds of a core) in a worker thread that holds a database connection. So a client
past ``STAFF_SIGN_IN_FAILURES_PER_CLIENT`` failed sign-ins an hour gets ``429
too_many_requests`` before anything is hashed, and at most ``STAFF_SIGN_INS_AT_ONCE`` sign-ins
are checked at a time with as many again waiting; beyond that, ``503 busy`` with
``Retry-After: 1`` at once (``sync.throttle``). The account's own lockout (``bot.accounts``)
still counts every guess at it, from wherever.
"""

from __future__ import annotations

import asyncio
import logging
import re

from aiohttp import web

from bot import staff_sessions
from bot.accounts import authenticate

from . import keys, staff
from .api_io import ApiError, read_json
from .origins import foreign_origin
from .rest import _caller, error
from .throttle import Gate, PerClient
from .web import STAFF_PAGES, page

log = logging.getLogger(__name__)

LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9._~/-]{0,200}")
NOT_NEXT = ("/login", "/logout")
NO_STORE = {"Cache-Control": "no-store"}
FAILURES = web.AppKey("staff_sign_in_failures", PerClient)
GATE = web.AppKey("staff_sign_in_gate", Gate)


def destination(role: str, wanted: object) -> str:
    """Where a signed-in person goes: ``wanted`` if it is a path of this site (never another
    site: no open redirect), but not another role's page; else their role's page."""
    home = STAFF_PAGES[role]
    if not isinstance(wanted, str) or not LOCAL_PATH.fullmatch(wanted) or wanted.startswith(NOT_NEXT):
        return home
    if any(part in (".", "..") for part in wanted.split("/")):  # /dentist/../admin is /admin
        return home
    if wanted in STAFF_PAGES.values() and wanted != home:
        return home
    return wanted


async def login_page(request: web.Request) -> web.StreamResponse:
    try:
        session = await staff.request_session(request)
    except staff.SessionRefused:
        session = None  # the page itself still shows; signing in will say what is wrong
    if session is not None:
        raise web.HTTPFound(destination(session.role, request.query.get("next")), headers=NO_STORE)
    return page(request, "login.html")


async def _credentials(request: web.Request) -> dict:
    if request.content_type == "application/json":
        body = await read_json(request)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            body = dict(await request.post())
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, "payload_too_large", "the sign-in form is too large") from None
    else:
        raise ApiError(415, "unsupported_media_type", "send JSON {\"email\", \"password\"} or a form")
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) and body[k] for k in ("email", "password")):
        raise ApiError(422, "validation_error", "send email and password, both non-empty text",
                       details=[{"loc": ["body"], "msg": "email and password are required", "type": "missing"}])
    return body


async def sign_in(request: web.Request) -> web.StreamResponse:
    if foreign_origin(request):  # another site's form posting our sign-in (login CSRF)
        return error(403, "csrf_failed", "sign in from this service's own /login page")
    try:
        body = await _credentials(request)
    except ApiError as exc:
        return exc.response()
    app = request.app
    engine, settings = app[keys.ENGINE], app[keys.SETTINGS]
    try:
        app[FAILURES].check("staff", request.remote)  # past its count, this client's guesses cost nothing
        async with app[GATE].enter():
            result = await asyncio.to_thread(authenticate, engine, settings, body["email"], body["password"],
                                             request.remote, open_session=True,
                                             user_agent=request.headers.get("User-Agent"))
        if result.outcome != "ok":
            app[FAILURES].hit("staff", request.remote)
    except ApiError as exc:  # too many from this client, or too many at once
        return exc.response()
    if result.outcome == "locked":
        return error(429, "locked", f"too many failed sign-ins; try again in {result.retry_after} seconds",
                     **{"Retry-After": str(result.retry_after)})
    if result.outcome != "ok" or result.session is None:
        return error(401, "wrong_credentials", "wrong email or password")
    session_id, session = result.session
    goto = destination(session.role, body.get("next"))
    if request.content_type == "application/json":
        response: web.StreamResponse = web.json_response(
            {"redirect": goto, "name": session.full_name, "role": session.role, "dentist_id": session.dentist_id,
             "csrf_token": session.csrf_token}, headers=NO_STORE)
    else:
        response = web.Response(status=303, headers={"Location": goto, **NO_STORE})
    response.set_cookie(staff.COOKIE, session_id, max_age=settings.staff_session_minutes * 60, path="/",
                        httponly=True, samesite="Strict", secure=staff.cookie_secure(settings))
    return response


def _forget_cookie(response: web.StreamResponse, request: web.Request) -> web.StreamResponse:
    response.del_cookie(staff.COOKIE, path="/", httponly=True, samesite="Strict",
                        secure=staff.cookie_secure(request.app[keys.SETTINGS]))
    return response


async def sign_out(request: web.Request) -> web.StreamResponse:
    try:
        session = await staff.request_session(request)
        if session is None:
            return _forget_cookie(error(401, "invalid_session", "not signed in"), request)
        staff.check_write(request, session)
    except staff.SessionRefused as exc:
        return exc.response()
    await asyncio.to_thread(staff_sessions.end, request.app[keys.ENGINE], request.cookies.get(staff.COOKIE))
    log.info("staff sign-out: account %d", session.user_id)
    await staff.close_ended_sockets(request.app)  # this node's connections of that sign-in, at once
    return _forget_cookie(web.json_response({"redirect": "/login"}, headers=NO_STORE), request)


async def session_info(request: web.Request) -> web.Response:
    """Who is signed in, and (for a cookie session) the CSRF token the page sends on writes."""
    if not request.headers.get("Authorization") and staff.COOKIE in request.cookies:
        try:
            session = await staff.request_session(request)
        except staff.SessionRefused as exc:
            return exc.response()
        if session is None:
            return error(401, "invalid_session", "the sign-in has ended or is not valid; sign in again")
        who = session.identity
        return web.json_response({"role": who.role, "sub": who.sub, "name": who.name, "email": session.email,
                                  "dentist_id": who.dentist_id, "patient_id": None,
                                  "csrf_token": session.csrf_token, "expires_at": session.expires_at.isoformat()},
                                 headers=NO_STORE)
    who = await _caller(request)
    if isinstance(who, web.Response):
        return who
    return web.json_response({"role": who.role, "sub": who.sub, "name": who.name or who.sub, "email": None,
                              "dentist_id": who.dentist_id, "patient_id": who.patient_id,
                              "csrf_token": None, "expires_at": None}, headers=NO_STORE)


def setup(app: web.Application) -> None:
    settings = app[keys.SETTINGS]
    app[FAILURES] = PerClient(settings.staff_sign_in_failures_per_client,
                              "Too many failed sign-ins from here; try again later.")
    app[GATE] = Gate(settings.staff_sign_ins_at_once, settings.staff_sign_ins_at_once)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", sign_in)
    app.router.add_post("/logout", sign_out)
    app.router.add_get("/api/session", session_info)
