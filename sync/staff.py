"""The staff session cookie as a credential: REST requests and Socket.IO connects (docs/security.md).

A request without ``Authorization`` that carries the ``staff_session`` cookie is the person the
session names (``bot.staff_sessions``), with the same ``Identity`` a token of that role gives
(``sub`` ``staff:<account id>``, ``name`` the person's). The cookie travels by itself, so a
write signed by it must also prove it comes from our own page:

* ``X-CSRF-Token`` equal to the session's CSRF token (the page reads it from ``/api/session``;
  a page of another site can neither read it nor set the header without our CORS consent);
* and an ``Origin`` header, when the browser sends one, that is this service's own.

Either missing is ``403 csrf_failed`` before anything is read or written. A bearer token needs
neither (no browser adds it by itself). A Socket.IO connect by cookie needs an ``Origin`` that
is ours or in ``SYNC_CORS_ORIGINS``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from http.cookies import CookieError, SimpleCookie

from aiohttp import web

from bot import staff_sessions
from bot.aio import repeating
from bot.db import DatabaseError
from bot.settings import Settings
from bot.staff_sessions import SignedIn
from bot.tokens import Identity

from . import keys
from .origins import foreign_origin, listed_origins, own_origins

log = logging.getLogger(__name__)

COOKIE = "staff_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SessionRefused(Exception):
    """A cookie that signs nobody in, or a write that is not provably our page's."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code

    def response(self) -> web.Response:
        return web.json_response({"error": self.code, "message": str(self)}, status=self.status)


def cookie_secure(settings: Settings) -> bool:
    return settings.env == "production" if settings.session_cookie_secure is None else settings.session_cookie_secure


async def signed_in(app: web.Application, session_id: str | None) -> SignedIn | None:
    """Who the session id signs in (None: nobody); ``SessionRefused`` 503 when the database is down."""
    if not session_id:
        return None
    try:
        return await asyncio.to_thread(staff_sessions.lookup, app[keys.ENGINE], session_id)
    except DatabaseError as exc:
        log.warning("staff session lookup failed: %s", exc)
        raise SessionRefused(503, "unavailable", "the database is unavailable; try again shortly") from None


async def request_session(request: web.Request) -> SignedIn | None:
    return await signed_in(request.app, request.cookies.get(COOKIE))


def check_write(request: web.Request, session: SignedIn) -> None:
    """The CSRF rule for a write signed by the cookie (a read needs nothing more)."""
    if request.method in SAFE_METHODS:
        return
    if foreign_origin(request):
        raise SessionRefused(403, "csrf_failed", "a signed-in write must come from this service's own pages")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode("utf-8", "replace"), session.csrf_token.encode()):
        raise SessionRefused(403, "csrf_failed", f"a signed-in write needs the {CSRF_HEADER} header "
                                                 "from GET /api/session")


async def cookie_caller(request: web.Request) -> Identity:
    """The identity of a cookie-signed request, or ``SessionRefused``."""
    session = await request_session(request)
    if session is None:
        raise SessionRefused(401, "invalid_session", "the sign-in has ended or is not valid; sign in again")
    check_write(request, session)
    return session.identity


def _environ_cookie(environ: dict) -> str | None:
    raw = environ.get("HTTP_COOKIE")
    if not raw:
        return None
    jar = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel else None


def socket_identity(app: web.Application) -> Callable[[dict], Awaitable[tuple[Identity, str] | None]]:
    """For ``SocketHandlers``: the identity a connect's cookie proves and its session's hash
    (None: no cookie at all); raises ``SessionRefused`` for a cookie that signs nobody in or an
    origin not allowed."""
    async def identity(environ: dict) -> tuple[Identity, str] | None:
        session_id = _environ_cookie(environ)
        if session_id is None:
            return None
        origin = environ.get("HTTP_ORIGIN")
        allowed = own_origins(environ) + listed_origins(app[keys.SETTINGS])
        if origin is not None and origin.rstrip("/") not in allowed:
            raise SessionRefused(403, "csrf_failed", "a signed-in connection must come from an allowed origin")
        session = await signed_in(app, session_id)
        if session is None:
            raise SessionRefused(401, "invalid_session", "the sign-in has ended or is not valid; sign in again")
        return session.identity, staff_sessions.digest(session_id)

    return identity


ENDED = "your sign-in has ended; sign in again"


async def close_ended_sockets(app: web.Application) -> int:
    """Close every Socket.IO connection opened with a staff session that no longer signs anyone
    in (ended, expired, its account disabled), telling it ``signed_out`` first. How many."""
    handlers = app[keys.HANDLERS]
    opened = dict(handlers.cookie_sessions)
    if not opened:
        return 0
    live = await asyncio.to_thread(staff_sessions.live, app[keys.ENGINE], set(opened.values()))
    # only the connections asked about: one opened while the query ran was not, and is not ended
    ended = [sid for sid, hashed in opened.items() if hashed not in live and sid in handlers.cookie_sessions]
    for sid in ended:
        await handlers.sign_out(sid, ENDED)
    return len(ended)


async def watch_sessions(app: web.Application):
    """``cleanup_ctx``: every STAFF_SESSION_CHECK_SECONDS, close the connections whose sign-in
    ended elsewhere (``python -m bot user passwd|disable``, a sign-out on another node, expiry)."""
    async def check() -> None:
        closed = await close_ended_sockets(app)
        if closed:
            log.info("closed %d connection(s) whose staff sign-in ended", closed)

    async with repeating(check, asyncio.Event(), app[keys.SETTINGS].staff_session_check_seconds,
                         "staff session check"):
        yield
