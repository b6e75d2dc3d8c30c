"""REST endpoints under ``/api/realtime``: health (open), status (any token), stats (admin);
and ``_caller``, who a REST request is (a bearer token or the staff session cookie).

Every answer is JSON; errors are ``{"error": "<stable_code>", "message": "..."}``:
``missing_token`` / ``invalid_token`` (401), ``forbidden`` (403), ``not_found`` (404),
``method_not_allowed`` (405), ``internal_error`` (500).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone

from aiohttp import web

from bot.tokens import Identity, TokenError

from . import keys, staff
from .auth import identify

log = logging.getLogger(__name__)


def error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers or None)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


async def _caller(request: web.Request) -> Identity | web.Response:
    """Who is calling: ``Authorization: Bearer <token>``, else the staff session cookie (with the
    CSRF rule for writes: ``sync.staff``), else 401."""
    header = request.headers.get("Authorization", "")
    if not header and staff.COOKIE in request.cookies:
        try:
            return await staff.cookie_caller(request)
        except staff.SessionRefused as exc:
            return exc.response()
    scheme, _, token = header.partition(" ")
    if not header or scheme.lower() != "bearer" or not token.strip():
        return error(401, "missing_token", "send Authorization: Bearer <token>, or sign in at /login",
                     **{"WWW-Authenticate": "Bearer"})
    try:
        return identify(token, request.app[keys.SETTINGS])
    except TokenError as exc:
        return error(401, "invalid_token", str(exc), **{"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def health(request: web.Request) -> web.Response:
    app = request.app
    listener = app[keys.LISTENER]
    healthy = listener.connected
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "service": "realtime-sync",
        "activeSubscriptions": app[keys.HUB].subscription_count(),
        "timestamp": _now(),
    }
    if not healthy:
        body["reason"] = listener.last_error or "not connected to the database"
    return web.json_response(body, status=200 if healthy else 503)


async def status(request: web.Request) -> web.Response:
    who = await _caller(request)
    if isinstance(who, web.Response):
        return who
    subscriptions = []
    for client in request.app[keys.HUB].for_subject(who):
        for channel, source in client.channels.items():
            subscriptions.append({"id": f"{client.sid}:{channel}", "connectionId": client.sid,
                                  "channelName": channel, "source": source,
                                  "active": not client.pending})
    return web.json_response({
        "status": "active",
        "subject": who.sub,
        "node": request.app[keys.NODE_ID],
        "activeSubscriptions": sum(1 for s in subscriptions if s["active"]),
        "subscriptions": subscriptions,
        "timestamp": _now(),
    })


async def stats(request: web.Request) -> web.Response:
    who = await _caller(request)
    if isinstance(who, web.Response):
        return who
    if who.role != "admin":
        return error(403, "forbidden", "stats are for admin tokens only")
    app = request.app
    hub = app[keys.HUB]
    by_role = hub.by_role()
    body = {
        "service": "realtime-sync",
        "node": app[keys.NODE_ID],
        "pid": os.getpid(),
        "clientManager": "redis" if app[keys.SETTINGS].redis_url else "local",
        "connections": {"total": sum(by_role.values()), "byRole": by_role},
        "activeSubscriptions": hub.subscription_count(),
        "lastOutboxId": app[keys.LISTENER].last_id,
        "listener": app[keys.LISTENER].state(),
        "timestamp": _now(),
        "startedAt": datetime.fromtimestamp(app[keys.STATS].started, timezone.utc).isoformat(),
    }
    body.update(app[keys.STATS].snapshot())
    return web.json_response(body)


@web.middleware
async def json_errors(request: web.Request, handler):
    """Turn aiohttp's HTML errors under /api into JSON ones."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return error(404, "not_found", f"no endpoint {request.path}")
    except web.HTTPMethodNotAllowed as exc:
        return error(405, "method_not_allowed", f"{request.method} is not allowed here",
                     Allow=",".join(sorted(exc.allowed_methods)))
    except web.HTTPException as exc:
        return error(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error(500, "internal_error", "unexpected error; see the server log")


def setup(app: web.Application) -> None:
    app.middlewares.append(json_errors)
    app.router.add_get("/api/realtime/health", health)
    app.router.add_get("/api/realtime/status", status)
    app.router.add_get("/api/realtime/stats", stats)
