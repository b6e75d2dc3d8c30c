"""The reminder worker (``bot.reminders``) as a background task of the sync service.

Every ``REMINDER_POLL_SECONDS``, and at once after an appointment event (a visit booked or moved
into the window), one pass of ``ReminderWorker.run_once`` runs in a thread (it is blocking:
SQLAlchemy and smtplib). Every node may run it: the claim rows make each reminder one node's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.aio import in_thread, repeating
from bot.events import APPOINTMENT_EVENTS
from bot.notify import notifier_from
from bot.reminders import ReminderWorker

from . import keys

log = logging.getLogger(__name__)


WAKING = APPOINTMENT_EVENTS  # in the listener's batch: a visit changed, so a reminder may be due now


def setup(app: web.Application) -> None:
    """After ``sync.api``'s engine (``keys.ENGINE``) is set up in ``cleanup_ctx``."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings, engine = app[keys.SETTINGS], app[keys.ENGINE]
        if settings.reminder_hours == 0:
            log.info("REMINDER_HOURS=0: no reminders are sent")
            yield
            return
        worker = ReminderWorker(engine, notifier_from(engine, settings), settings)
        async with repeating(lambda: in_thread(worker.run_once), app[keys.REMINDER_WAKE],
                             settings.reminder_poll_seconds, "reminder pass"):
            yield

    app.cleanup_ctx.append(ctx)
