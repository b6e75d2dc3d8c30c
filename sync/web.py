"""The pages: ``/`` (chat widget), ``/admin``, ``/dentist``, ``/patient``, and ``/static/``.

Plain HTML, CSS and JavaScript from ``sync/static`` with no build step. A page gets the
clinic's settings through ``<meta>`` tags filled in here (HTML-escaped); everything else
it reads from the REST API with the visitor's token (or, on the staff pages, the staff session
cookie: without one they send the visitor to ``/login``) and keeps current over Socket.IO
(``static/realtime.js``). Every page is sent with a Content-Security-Policy that allows
scripts from this origin only, so even a mistake in escaping could not run injected code.
"""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path

from aiohttp import web

from bot.settings import Settings

from . import keys, staff

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/": "chat.html", "/admin": "admin.html", "/dentist": "dentist.html", "/patient": "patient.html"}
STAFF_PAGES = {"admin": "/admin", "dentist": "/dentist"}  # role -> its page: signed-in people only

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self' http: https: ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def page_config(settings: Settings) -> dict[str, str]:
    """What a page needs to know about the clinic (``<meta name="clinic-...">``)."""
    return {
        "clinic-name": settings.clinic_name,
        "clinic-timezone": settings.clinic_timezone,
        "clinic-phone": settings.clinic_phone,
        # empty: the page uses its own host on RASA_PORT; RASA_PUBLIC_URL overrides (a proxy, TLS)
        "rasa-url": settings.rasa_public_url,
        "rasa-port": str(settings.rasa_port),
    }


@lru_cache(maxsize=16)
def _render(name: str, config: tuple[tuple[str, str], ...]) -> str:
    metas = "\n".join(f'  <meta name="{html.escape(k)}" content="{html.escape(v)}">' for k, v in config)
    text = (STATIC / name).read_text(encoding="utf-8")
    return text.replace("<!--config-->", metas.lstrip(), 1)


def page(request: web.Request, name: str, status: int = 200, *, content: str | None = None,
         headers: dict[str, str] | None = None) -> web.Response:
    """One page of ``sync/static``, with the clinic's settings and the security headers;
    ``content`` (HTML its caller escaped) replaces the page's ``<!--content-->``."""
    config = tuple(page_config(request.app[keys.SETTINGS]).items())
    text = _render(name, config)
    if content is not None:
        text = text.replace("<!--content-->", content, 1)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={**SECURITY_HEADERS, **(headers or {})})


def _page(name: str):
    async def handler(request: web.Request) -> web.Response:
        return page(request, name)
    return handler


def _staff_page(path: str, name: str):
    """A staff page: served to a signed-in person (or with ``?token=``, for integrations and
    tests); anyone else is sent to ``/login?next=<path>``."""
    async def handler(request: web.Request) -> web.StreamResponse:
        if not request.query.get("token"):
            try:
                session = await staff.request_session(request)
            except staff.SessionRefused as exc:
                return exc.response()
            if session is None:
                raise web.HTTPFound(f"/login?next={path}", headers={"Cache-Control": "no-store"})
        return page(request, name)
    return handler


@web.middleware
async def static_headers(request: web.Request, handler):
    response = await handler(request)
    if request.path.startswith("/static/"):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-cache")
    return response


def setup(app: web.Application) -> None:
    for path, name in PAGES.items():
        staff_page = path in STAFF_PAGES.values()
        app.router.add_get(path, _staff_page(path, name) if staff_page else _page(name))
    app.router.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
    app.middlewares.append(static_headers)
