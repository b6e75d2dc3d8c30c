"""Which browser origins are this service's own, and which others may open Socket.IO sessions.

engine.io decides the same thing for its handshakes (``BaseServer._cors_allowed_origins`` with
``None``: the request's own scheme and host, or the proxy's ``X-Forwarded-*`` ones); the REST
API's cookie-signed writes and the Socket.IO connect of a signed-in page use the same rule.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from bot.settings import Settings


def listed_origins(settings: Settings) -> list[str]:
    """``SYNC_CORS_ORIGINS``: other origins whose pages may open Socket.IO sessions (never ``*``)."""
    listed = [o.strip().rstrip("/") for o in settings.sync_cors_origins.split(",") if o.strip()]
    if any("*" in o for o in listed):
        raise ValueError("SYNC_CORS_ORIGINS lists origins (scheme://host[:port]); '*' is not allowed")
    return listed


def cors_origins(settings: Settings) -> Callable[[str, dict], bool] | None:
    """For python-socketio's ``cors_allowed_origins``: the service's own origin (engine.io's
    ``None``) plus ``SYNC_CORS_ORIGINS``. Never with credentials (tokens travel in ``auth``)."""
    listed = listed_origins(settings)
    if not listed:
        return None
    return lambda origin, environ: origin in listed or origin in own_origins(environ)


def own_origins(environ: dict) -> list[str]:
    """engine.io's same-origin rule, on a WSGI-style environ."""
    host = environ.get("HTTP_HOST")
    if not host:
        return []
    scheme = environ.get("wsgi.url_scheme", "http")
    own = [f"{scheme}://{host}"]
    if "HTTP_X_FORWARDED_PROTO" in environ or "HTTP_X_FORWARDED_HOST" in environ:
        fwd_scheme = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0].strip()
        fwd_host = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
        own.append(f"{fwd_scheme}://{fwd_host}")
    return own


def foreign_origin(request: web.Request) -> bool:
    """Whether the request names an ``Origin`` that is not this service's own."""
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    environ = {"HTTP_HOST": request.host, "wsgi.url_scheme": request.scheme}
    for header, key in (("X-Forwarded-Proto", "HTTP_X_FORWARDED_PROTO"), ("X-Forwarded-Host", "HTTP_X_FORWARDED_HOST")):
        if header in request.headers:
            environ[key] = request.headers[header]
    return origin.rstrip("/") not in own_origins(environ)
