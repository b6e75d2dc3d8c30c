"""HTTP requests aiohttp's parser refuses (a 266 KB header, a 266 KB ``?token=``): a short JSON
answer and one short log line, instead of plain text and a traceback per request.

aiohttp reads a request's line and headers in its HTTP parser (``aiohttp/_http_parser.pyx``,
limits ``max_line_size`` and ``max_field_size`` from the server's ``handler_args``) before any
handler or middleware runs. What it refuses there — a header or request line over the limit,
malformed HTTP — it answers itself in ``RequestHandler.handle_error``: ``400 text/plain`` with
the parser's message (which quotes the first 100 bytes of the line: part of a token), logged with
``logger.exception``, so every such request writes a traceback a client can repeat at will.

Raising the limits instead would only move the edge (and let every header of every request grow
to the new limit in memory); checking in a middleware is too late (the parser has already
refused). So the limits stay small and explicit here (``MAX_REQUEST_LINE``, ``MAX_HEADER_FIELD``),
and the one place aiohttp builds that answer is replaced:

* ``JsonErrorHandler`` (aiohttp's ``web_protocol.RequestHandler``) overrides ``handle_error`` for
  parse errors only: a header over ``MAX_HEADER_FIELD`` is ``431 header_too_large``, a request
  line over ``MAX_REQUEST_LINE`` (a long ``?token=``) ``414 uri_too_long``, anything else the
  parser refuses ``400 bad_request`` — all ``{"error", "message"}`` JSON, the connection closed
  as aiohttp does, and one INFO line naming the client and the code (never the line itself).
  Any other error goes to aiohttp's own ``handle_error``;
* ``SyncRunner`` (an ``AppRunner``) serves the app with ``SyncServer``, whose connections are
  ``JsonErrorHandler``s; ``run`` is ``web.run_app`` for it (``python -m sync``).

The 401 for a token that fits the header but is larger than any real one (``SYNC_MAX_TOKEN_BYTES``)
is the REST and Socket.IO handlers' own (``sync/rest.py``, ``sync/handlers.py``).

aiohttp hooks used, as of aiohttp 3.14 (``tests/security/test_sync_oversized_tokens.py`` fails if
they change): ``RequestHandler.handle_error(request, status, exc, message)``,
``AppRunner._make_server()``, and ``web.Server``'s ``_kwargs`` (the ``RequestHandler`` arguments).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

MAX_REQUEST_LINE = 16 * 1024   # bytes of "GET /path?query HTTP/1.1" (aiohttp's default is 8190)
MAX_HEADER_FIELD = 8190        # bytes of one header, name and value (aiohttp's default)
HANDLER_ARGS = {"max_line_size": MAX_REQUEST_LINE, "max_field_size": MAX_HEADER_FIELD}


def refusal(handler: RequestHandler, exc: BaseException | None) -> tuple[int, str, str] | None:
    """(status, code, message) for a request the parser refused; None for any other error."""
    if not isinstance(exc, BadHttpMessage):
        return None
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else None
        if limit == handler.max_line_size:
            return 414, "uri_too_long", f"the request line is limited to {limit} bytes"
        return 431, "header_too_large", f"each request header is limited to {handler.max_field_size} bytes"
    return 400, "bad_request", "the request is not valid HTTP/1.1"


class JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, answering requests its parser refused with JSON."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        refused = refusal(self, exc)
        if refused is None or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        status, code, text = refused
        log.info("refused a request from %s: %d %s", request.remote, status, code)
        response = web.json_response({"error": code, "message": text}, status=status)
        response.force_close()
        return response


class SyncServer(web.Server):
    """aiohttp's server (the protocol factory) whose connections are ``JsonErrorHandler``s."""

    def __call__(self) -> RequestHandler:
        return JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class SyncRunner(web.AppRunner):
    """``web.AppRunner`` with ``SyncServer``: the app's start-up as aiohttp runs it, then the
    same server arguments on the server class above."""

    def __init__(self, app: web.Application, **kwargs: Any):
        super().__init__(app, **{**HANDLER_ARGS, **kwargs})

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return SyncServer(server.request_handler, request_factory=server.request_factory,
                          handler_cancellation=server.handler_cancellation, **server._kwargs)


def run(app: web.Application, *, host: str, port: int, shutdown_timeout: float,
        loop: asyncio.AbstractEventLoop | None = None) -> None:
    """``web.run_app(app, host=..., port=..., access_log=None)`` with ``SyncRunner``: serve until
    SIGINT or SIGTERM, then shut the app down gracefully (``app.on_shutdown``, ``cleanup_ctx``)."""
    loop = loop or asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def serve() -> None:
        runner = SyncRunner(app, handle_signals=True, shutdown_timeout=shutdown_timeout, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            await asyncio.Event().wait()  # a signal raises GracefulExit out of the loop
        finally:
            await runner.cleanup()

    main = loop.create_task(serve())
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(main)  # runs the graceful shutdown in serve()'s finally
        rest = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in rest:
            task.cancel()
        if rest:
            loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
