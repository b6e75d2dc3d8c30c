"""The naive baseline the realtime benchmark compares the sync service with.

``python bench/naive_server.py --port N`` (DATABASE_URL and JWT_SECRET from the environment):
one psycopg 3 connection LISTENs on ``realtime_events``; for each notification a second
connection reads the outbox row it names and the server does
``await sio.emit(type, body, room=[...])`` — python-socketio's own emit (one task per
recipient), nothing cached, nothing pre-encoded. Same auth and the same idea of rooms as
the sync service (admin → every event; dentist N → their visits; patient N → their own),
none of its guarantees (no resume, no gap handling, no ordering across reconnects).

It serves ``/api/realtime/stats`` (admin token) with the same ``fanoutMs`` and
``deliveryLagMs`` fields as the sync service so the bench reads both the same way:
fan-out = notification received → ``emit`` returned (every recipient's packet queued).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bot` without installing

import psycopg  # noqa: E402
import socketio  # noqa: E402
from aiohttp import web  # noqa: E402

from bot.settings import Settings, libpq_url  # noqa: E402
from bot.tokens import TokenError, verify  # noqa: E402
from sync.stats import Stats  # noqa: E402  (same percentile code as the service)

ROW = ("SELECT id, type, dentist_id, patient_id, payload, created_at"
       " FROM realtime_events WHERE id = %s")


def rooms_of(role: str, dentist_id: int | None, patient_id: int | None) -> list[str]:
    if role in ("admin", "service"):
        return ["admin"]
    if role == "dentist":
        return [f"dentist:{dentist_id}"]
    if role == "patient":
        return [f"patient:{patient_id}"]
    return []


def create_app(settings: Settings, dsn: str) -> web.Application:
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
    app = web.Application()
    sio.attach(app)
    stats = Stats()

    @sio.event
    async def connect(sid, environ, auth=None):
        try:
            who = verify((auth or {}).get("token") if isinstance(auth, dict) else None, settings=settings)
        except TokenError as exc:
            raise socketio.exceptions.ConnectionRefusedError(str(exc)) from None
        for room in rooms_of(who.role, who.dentist_id, who.patient_id):
            await sio.enter_room(sid, room)

    async def listen() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as listen_conn, \
                await psycopg.AsyncConnection.connect(dsn, autocommit=True) as read_conn:
            await listen_conn.execute("LISTEN realtime_events")
            async for note in listen_conn.notifies():
                started = time.perf_counter()
                event_id = json.loads(note.payload)["id"]
                cur = await read_conn.execute(ROW, (event_id,))
                row = await cur.fetchone()
                if row is None:
                    continue
                oid, etype, dentist_id, patient_id, payload, created_at = row
                body = {"id": oid, "type": etype, "at": created_at.isoformat(), **payload}
                targets = ["admin"]
                if dentist_id is not None:
                    targets.append(f"dentist:{dentist_id}")
                if patient_id is not None:
                    targets.append(f"patient:{patient_id}")
                await sio.emit(etype, body, room=targets)
                stats.record_event(created_at.timestamp(), 0, started)

    async def lifecycle(app: web.Application):
        task = asyncio.get_running_loop().create_task(listen())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def stats_view(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").partition(" ")[2]
        try:
            who = verify(token, settings=settings)
        except TokenError:
            return web.json_response({"error": "invalid_token"}, status=401)
        if who.role != "admin":
            return web.json_response({"error": "forbidden"}, status=403)
        return web.json_response({"service": "naive-baseline", "pid": os.getpid(),
                                  "connections": {"total": len(sio.eio.sockets)}, **stats.snapshot()})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy", "service": "naive-baseline"})

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/api/realtime/stats", stats_view)
    app.router.add_get("/api/realtime/health", health)
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5099)
    args = parser.parse_args()
    settings = Settings()
    if not settings.database_url:
        print("naive_server: DATABASE_URL is required", file=sys.stderr)
        return 2
    web.run_app(create_app(settings, libpq_url(settings.database_url)), host=args.host, port=args.port,
                print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
