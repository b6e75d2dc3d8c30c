"""The reminder worker (``bot.reminders``) as a background task of the sync service.

Every ``REMINDER_POLL_SECONDS``, and at once after an appointment event (a visit booked or moved
into the window), one pass of ``ReminderWorker.run_once`` runs in a thread (it is blocking:
SQLAlchemy and smtplib). Every node may run it: the claim rows make each reminder one node's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

from aiohttp import web

from bot.aio import cancel_and_wait
from bot.events import APPOINTMENT_EVENTS
from bot.notify import notifier_from
from bot.reminders import ReminderWorker

from . import keys
from .outbox import OutboxEvent

log = logging.getLogger(__name__)


def wake_on(events: Iterable[OutboxEvent], wake: asyncio.Event) -> None:
    """The listener's batch: a visit changed, so a reminder may be due now."""
    if any(ev.type in APPOINTMENT_EVENTS for ev in events):
        wake.set()


async def one_pass(worker: ReminderWorker) -> None:
    """``run_once`` in a thread. A cancellation (shutdown) waits for the pass to end first: a thread
    cannot be stopped, and the engine it uses is disposed right after this task."""
    running = asyncio.ensure_future(asyncio.to_thread(worker.run_once))
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        while not running.done():  # cancel_and_wait cancels again every second: keep waiting
            try:
                await asyncio.wait({running})
            except asyncio.CancelledError:
                pass
        if not running.cancelled() and running.exception() is not None:
            log.warning("reminder pass failed at shutdown: %s", running.exception())
        raise


async def run(worker: ReminderWorker, wake: asyncio.Event, every: float) -> None:
    while True:
        wake.clear()
        try:
            await one_pass(worker)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be restarting: try again next round
            log.warning("reminder pass failed: %s", exc)
        try:
            await asyncio.wait_for(wake.wait(), every)
        except TimeoutError:
            pass


def setup(app: web.Application) -> None:
    """After ``sync.api``'s engine (``keys.ENGINE``) is set up in ``cleanup_ctx``."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings, engine = app[keys.SETTINGS], app[keys.ENGINE]
        if settings.reminder_hours == 0:
            log.info("REMINDER_HOURS=0: no reminders are sent")
            yield
            return
        worker = ReminderWorker(engine, notifier_from(engine, settings), settings)
        task = asyncio.get_running_loop().create_task(
            run(worker, app[keys.REMINDER_WAKE], settings.reminder_poll_seconds), name="reminders")
        try:
            yield
        finally:
            await cancel_and_wait(task)

    app.cleanup_ctx.append(ctx)
