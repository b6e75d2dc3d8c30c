"""The sync service runs the waitlist worker (sync/waitlist.py): a visit cancelled by a direct SQL
writer frees its time, which is offered at once to the waiting patients, each on their own
socket only, and their chats are told through Rasa's trigger_intent (here a local HTTP server
with Rasa's route, recording what it is asked); when one accepts, the other hears it is gone."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone

from aiohttp import web

from bot import events
from bot.booking import BookingService, Outcome
from bot.db import make_engine
from bot.tokens import Identity
from bot.waitlist import Waitlist
from tests.sync_helpers import Clinic, Recorder, free_port, serve, token
from tests.test_sync_visibility import ROLES


class RasaApi:
    """Rasa's ``POST /conversations/{id}/trigger_intent``, recording each call."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.changed = asyncio.Event()

    async def trigger(self, request: web.Request) -> web.Response:
        self.calls.append({"conversation": request.match_info["id"], "query": dict(request.query),
                           **await request.json()})
        self.changed.set()
        return web.json_response({"tracker": {}, "messages": []})

    async def wait(self, count: int, timeout: float = 10) -> None:
        async def loop():
            while len(self.calls) < count:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(loop(), timeout)


@asynccontextmanager
async def rasa_api() -> AsyncIterator[tuple[RasaApi, str]]:
    api = RasaApi()
    app = web.Application()
    app.router.add_post("/conversations/{id}/trigger_intent", api.trigger)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield api, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_freed_slot_reaches_the_waiting_patients_alone_and_their_chats(settings, db_url):
    clinic = await Clinic.open(db_url)
    for dentist in (1, 2):
        for weekday in range(1, 8):
            await clinic.conn.execute("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time)"
                                      " VALUES (%s, %s, '00:00', '23:59')", (dentist, weekday))
    engine = make_engine(settings.database_url, pool_size=5)
    booking = BookingService(engine, settings)
    waitlist = Waitlist(booking)
    start = datetime.now(timezone.utc) + timedelta(days=2)
    slot = booking.available_slots(1, start, start + timedelta(days=1), dentist_id=1, limit=1)[0]
    await clinic.conn.execute("INSERT INTO patients (full_name) VALUES ('Pat Taken'), ('Pat Other')")
    visits = [await clinic.one("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at)"
                               " VALUES (%s, %s, 1, %s, %s) RETURNING id", pid, dentist, slot.starts_at, slot.ends_at)
              for pid, dentist in ((3, 1), (4, 2))]
    for pid in (1, 2):
        joined = waitlist.join(Identity("patient", f"p{pid}", patient_id=pid), patient_id=pid, service_id=1,
                               earliest=slot.starts_at, latest=slot.starts_at + timedelta(minutes=1),
                               conversation_id=f"chat-{pid}")
        assert joined.outcome is Outcome.WAITLISTED
    async with rasa_api() as (rasa, rasa_url):
        s = settings.model_copy(update={"rasa_url": rasa_url, "waitlist_poll_seconds": 3600})
        async with serve(s) as (url, app):
            c = {name: await Recorder(name).connect(url, token(s, role, ident)) for name, (role, ident) in ROLES.items()}
            await asyncio.sleep(0.3)  # the worker's first pass: nothing is free
            assert rasa.calls == []
            await clinic.conn.execute("UPDATE appointments SET status = 'cancelled' WHERE id = %s", (visits[0],))
            # woken by appointment_updated: the poll (an hour) would be far too late
            for name in ("patient1", "patient2"):
                await c[name].wait_for(lambda r: any(e == events.WAITLIST_OFFER for e, _ in r.events), 10)
            await rasa.wait(2)
            assert sorted((call["conversation"], call["name"]) for call in rasa.calls) == [
                ("chat-1", "EXTERNAL_waitlist_offer"), ("chat-2", "EXTERNAL_waitlist_offer")]
            assert {call["query"]["token"] for call in rasa.calls} == {s.resolved_rasa_api_token}
            assert {call["query"]["output_channel"] for call in rasa.calls} == {"latest"}
            offers = {call["conversation"]: call["entities"]["offer_id"] for call in rasa.calls}
            for pid in (1, 2):
                (offer,) = [d["offer"] for e, d in c[f"patient{pid}"].events if e == events.WAITLIST_OFFER]
                assert offer["id"] == offers[f"chat-{pid}"] and offer["patient_id"] == pid
                assert offer["status"] == "open" and offer["starts_at"].startswith(slot.starts_at.strftime("%Y-%m-%d"))

            won = waitlist.accept(Identity("patient", "p2", patient_id=2), offers["chat-2"])
            assert won.outcome is Outcome.BOOKED
            await c["patient1"].wait_for(lambda r: [d["offer"]["status"] for e, d in r.events
                                                    if e == events.WAITLIST_OFFER] == ["open", "gone"], 10)
            await rasa.wait(3)
            assert (rasa.calls[2]["conversation"], rasa.calls[2]["name"], rasa.calls[2]["entities"]) == (
                "chat-1", "EXTERNAL_waitlist_gone", {"offer_id": offers["chat-1"]})
            last = await clinic.last_event_id()
            await c["admin"].wait_id(last)
            theirs = {pid: await clinic.one("SELECT max(id) FROM realtime_events WHERE patient_id = %s", pid)
                      for pid in (1, 2)}
            for pid, mine in theirs.items():
                await c[f"patient{pid}"].wait_id(mine)
            kinds = {name: Counter(e for e, _ in r.events) for name, r in c.items()}
            assert kinds["patient2"][events.WAITLIST_OFFER] == 2  # open, then accepted
            for name in ("admin", "service", "dentist1", "dentist2"):
                assert kinds[name][events.WAITLIST_OFFER] == 0, name  # the patient's alone
            assert kinds["service"][events.WAITLIST_CHANGED] == 0
            assert kinds["admin"][events.WAITLIST_CHANGED] >= 4  # offered, offered, waiting, booked
            assert all(d["entry"]["patient_id"] == 1 for e, d in c["patient1"].events if e == events.WAITLIST_CHANGED)
            # a resume replays the outbox by the same rule
            again = await Recorder("patient1-again").connect(url, token(s, "patient", 1), since=0)
            await again.wait_id(theirs[1])
            assert all(d["offer"]["patient_id"] == 1 for e, d in again.events if e == events.WAITLIST_OFFER)
            await again.close()
            for client in c.values():
                await client.close()
            assert len(rasa.calls) == 3  # each chat told each status once
    engine.dispose()
    await clinic.close()
