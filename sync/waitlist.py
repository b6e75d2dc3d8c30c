"""The waitlist worker (``bot.waitlist``) as a background task of the sync service.

At once after a visit, a diary or the waitlist changes (the listener's batch), and every
``WAITLIST_POLL_SECONDS``, one pass of ``Waitlist.run_once`` runs in a thread: offers whose hold
ran out expire, and freed time is offered to the waiting patients it fits. Then every chat that
has not heard its offer's latest status is told through Rasa's HTTP API
(``POST /conversations/<id>/trigger_intent?output_channel=latest``, with ``RASA_API_TOKEN``):
intent ``EXTERNAL_waitlist_offer`` for a new offer, ``EXTERNAL_waitlist_gone`` for one someone
else took or whose hold ran out, entity ``offer_id``. The assistant's actions read the offer
and answer in that chat (the web widget gets it pushed on its socket). Rasa unreachable: the
chat is told at a later pass; the patient page has the offer live either way (``waitlist_offer``).

Every node may run it: a pass takes an advisory lock, so one node offers at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bot.aio import in_thread, repeating
from bot.events import APPOINTMENT_EVENTS, AVAILABILITY_CHANGED, WAITLIST_CHANGED, WAITLIST_OFFER
from bot.settings import Settings
from bot.waitlist import GONE_INTENT, OFFER_INTENT, OPEN, ChatNotice, Waitlist

from . import api, keys

log = logging.getLogger(__name__)

# in the listener's batch: time may have been freed, or an offer decided
WAKING = APPOINTMENT_EVENTS | {AVAILABILITY_CHANGED, WAITLIST_CHANGED, WAITLIST_OFFER}
RASA_TIMEOUT = aiohttp.ClientTimeout(total=10)


class RasaTeller:
    """Tells a conversation of an offer through Rasa's ``trigger_intent``."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession):
        self.base = settings.resolved_rasa_url
        self.token = settings.resolved_rasa_api_token
        self.session = session

    async def tell(self, notice: ChatNotice) -> bool:
        """True: Rasa took it (or refused it for good: an unknown conversation); False: try later."""
        intent = OFFER_INTENT if notice.status == OPEN else GONE_INTENT
        url = f"{self.base}/conversations/{notice.conversation_id}/trigger_intent"
        try:
            async with self.session.post(url, params={"output_channel": "latest", "token": self.token},
                                         json={"name": intent, "entities": {"offer_id": notice.offer_id}}) as r:
                if r.status < 300:
                    return True
                body = (await r.text())[:200]
                if 400 <= r.status < 500:
                    log.warning("Rasa refused %s for offer %d: %d %s", intent, notice.offer_id, r.status, body)
                    return True
                log.warning("Rasa answered %s for offer %d with %d: %s", intent, notice.offer_id, r.status, body)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.info("Rasa unreachable for offer %d (%s); the chat is told later", notice.offer_id, exc)
        return False


async def one_pass(waitlist: Waitlist, teller: RasaTeller) -> None:
    await in_thread(waitlist.run_once)
    for notice in await in_thread(waitlist.chats_to_tell):
        if await teller.tell(notice):
            await in_thread(waitlist.mark_told, notice)


def setup(app: web.Application) -> None:
    """After ``sync.api``'s booking service (``api.BOOKING``) is set up in ``cleanup_ctx``."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[keys.SETTINGS]
        waitlist = Waitlist(app[api.BOOKING])
        async with aiohttp.ClientSession(timeout=RASA_TIMEOUT) as session:
            teller = RasaTeller(settings, session)
            async with repeating(lambda: one_pass(waitlist, teller), app[keys.WAITLIST_WAKE],
                                 settings.waitlist_poll_seconds, "waitlist pass"):
                yield

    app.cleanup_ctx.append(ctx)
