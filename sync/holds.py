"""Expiry of slot holds: every few seconds, delete the holds whose time is up.

Each deletion fires the ``slot_holds`` trigger, so the freed slot is announced as
``availability_changed`` like any other change. Every node may sweep: a hold is
deleted once, whoever gets to it first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from bot.aio import cancel_and_wait

from . import keys

log = logging.getLogger(__name__)

SWEEP_SECONDS = 5.0


async def sweep(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("DELETE FROM slot_holds WHERE expires_at <= now()")
        return cur.rowcount or 0


async def _loop(pool: AsyncConnectionPool, every: float) -> None:
    while True:
        try:
            freed = await sweep(pool)
            if freed:
                log.info("released %d expired slot hold(s)", freed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be restarting: try again next round
            log.warning("hold sweep failed: %s", exc)
        await asyncio.sleep(every)


def setup(app: web.Application, every: float = SWEEP_SECONDS) -> None:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(_loop(app[keys.POOL], every), name="hold-sweeper")
        try:
            yield
        finally:
            await cancel_and_wait(task)

    app.cleanup_ctx.append(ctx)
