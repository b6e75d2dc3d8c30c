"""The waitlist's REST endpoints (sync/api_waitlist.py) on real PostgreSQL and the real sync app:
joining, listing and withdrawing per role; another patient neither sees, answers nor withdraws
someone's request or offer (404, the database unchanged); freed time offered by the service's
worker is booked by the first acceptance and gone for the second; bad bodies are 422s that say why."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
from sqlalchemy import text

from bot.booking import BookingService
from tests.api_helpers import call, seeded_clinic, waitlist_worker_paused
from tests.polling import wait_until
from tests.test_api_schemathesis import changed, snapshot

LATER = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=20)


def service_id(engine, name: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT id FROM services WHERE name = :n"), {"n": name}).scalar_one()


def taken_slot(engine, settings, patient_id: int):
    """A Filling slot 40 to 60 days ahead (past the seed's visits), booked in SQL for ``patient_id``:
    the time the waiting patients want. Returns (slot, visit id)."""
    svc = BookingService(engine, settings)
    start = datetime.now(timezone.utc) + timedelta(days=40)
    slot = svc.available_slots(service_id(engine, "Filling"), start, start + timedelta(days=20), limit=1)[0]
    with engine.begin() as conn:
        visit = conn.execute(text(
            "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, operatory_id)"
            " VALUES (:p, :d, :s, :a, :b, (SELECT min(id) FROM operatories)) RETURNING id"),
            {"p": patient_id, "d": slot.dentist_id, "s": service_id(engine, "Filling"), "a": slot.starts_at,
             "b": slot.ends_at}).scalar_one()
    return slot, visit


async def test_join_list_withdraw_per_role(settings, engine, db_url):
    # the requests would be offered free time by the worker meanwhile: this test is about the API
    with waitlist_worker_paused(db_url):
        await join_list_withdraw_per_role(settings, engine, db_url)


async def join_list_withdraw_per_role(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        cleaning, filling = service_id(engine, "Cleaning"), service_id(engine, "Filling")
        me, admin = c.tok("patient", c.patient), c.tok("admin")
        status, joined = await call("POST", f"{c.url}/api/waitlist", me,
                                    {"service_id": cleaning, "latest": LATER.isoformat()})
        assert status == 201, joined
        entry = joined["entry"]
        assert (entry["patient_id"], entry["service_id"], entry["dentist_id"], entry["status"]) == (
            c.patient, cleaning, None, "waiting")
        assert entry["service_name"] == "Cleaning" and "patient_name" not in entry
        # the admin joins another patient, naming a dentist; a patient may not name someone else
        status, theirs = await call("POST", f"{c.url}/api/waitlist", admin,
                                    {"service_id": filling, "dentist_id": c.dentist, "patient_id": c.other_patient,
                                     "latest": LATER.isoformat()})
        assert status == 201 and theirs["entry"]["patient_name"] and theirs["entry"]["dentist_name"]
        status, body = await call("POST", f"{c.url}/api/waitlist", me,
                                  {"service_id": filling, "patient_id": c.other_patient, "latest": LATER.isoformat()})
        assert (status, body["error"]) == (403, "forbidden")
        status, body = await call("POST", f"{c.url}/api/waitlist", c.tok("dentist", c.dentist),
                                  {"service_id": filling, "patient_id": c.patient, "latest": LATER.isoformat()})
        assert (status, body["error"]) == (403, "forbidden")

        async def ids(tok, query=""):
            status, body = await call("GET", f"{c.url}/api/waitlist{query}", tok)
            assert status == 200, body
            return [e["id"] for e in body["entries"]]

        mine, other = entry["id"], theirs["entry"]["id"]
        assert await ids(me) == [mine]
        assert await ids(c.tok("patient", c.other_patient)) == [other]
        assert await ids(admin) == [mine, other]
        assert await ids(admin, f"?patient_id={c.other_patient}") == [other]
        assert await ids(c.tok("dentist", c.dentist)) == [other]  # names them; "any dentist" does not
        assert await ids(c.tok("dentist", c.other_dentist)) == []
        status, body = await call("GET", f"{c.url}/api/waitlist?patient_id={c.other_patient}", me)
        assert (status, body["error"]) == (403, "forbidden")
        _, listed = await call("GET", f"{c.url}/api/waitlist", admin)
        assert {e["patient_name"] for e in listed["entries"]} and all(e["patient_name"] for e in listed["entries"])

        # asking again for the same service changes the waiting request instead of adding one
        status, again = await call("POST", f"{c.url}/api/waitlist", me,
                                   {"service_id": cleaning, "latest": (LATER + timedelta(days=1)).isoformat()})
        assert status == 201 and again["entry"]["id"] == mine and again["message"] == "Your waitlist request was updated."

        # withdrawing: own only (another patient: 404 as for a missing one, nothing changes); admin any
        with psycopg.connect(db_url, autocommit=True) as db:
            before = snapshot(db)
            for tok in (c.tok("patient", c.other_patient),):
                status, body = await call("DELETE", f"{c.url}/api/waitlist/{mine}", tok)
                assert (status, body["error"]) == (404, "not_found")
            status, missing = await call("DELETE", f"{c.url}/api/waitlist/999999", me)
            assert missing == body  # the same answer: no id oracle
            status, body = await call("DELETE", f"{c.url}/api/waitlist/{mine}", c.tok("dentist", c.dentist))
            assert (status, body["error"]) == (403, "forbidden")
            assert not changed(before, snapshot(db))
        status, body = await call("DELETE", f"{c.url}/api/waitlist/{mine}", me)
        assert status == 200 and body["entry"]["status"] == "withdrawn"
        status, body = await call("DELETE", f"{c.url}/api/waitlist/{other}", admin)
        assert status == 200 and body["entry"]["status"] == "withdrawn"
        assert await ids(admin) == []
        kinds = [t for t, _ in await c.events()]
        assert kinds.count("waitlist_changed") >= 4  # the triggers announce every change


async def test_the_limit_and_bad_bodies(settings, engine, db_url):
    with waitlist_worker_paused(db_url):  # it would offer the requests free time, writing events
        await the_limit_and_bad_bodies(settings, engine, db_url)


async def the_limit_and_bad_bodies(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        me = c.tok("patient", c.patient)
        url = f"{c.url}/api/waitlist"
        with engine.connect() as conn:
            services = conn.execute(text("SELECT id FROM services ORDER BY id")).scalars().all()
        for sid in services[:settings.waitlist_entries_per_patient]:
            status, body = await call("POST", url, me, {"service_id": sid, "latest": LATER.isoformat()})
            assert status == 201, body
        status, body = await call("POST", url, me, {"service_id": services[-1], "latest": LATER.isoformat()})
        assert (status, body["error"], body["outcome"]) == (409, "limit_reached", "limit_reached")
        assert "withdraw one" in body["message"]

        before = await c.last_event()
        soon = datetime.now(timezone.utc) + timedelta(days=2)
        cases = [  # (body, the field the message names)
            ({"latest": LATER.isoformat()}, "service_id"),
            ({"service_id": "1", "latest": LATER.isoformat()}, "service_id"),
            ({"service_id": 1}, "latest"),
            ({"service_id": 1, "latest": "next week"}, "latest"),
            ({"service_id": 1, "latest": "2030-01-01T10:00:00"}, "latest"),  # no offset: ambiguous
            ({"service_id": 1, "latest": soon.isoformat(), "earliest": LATER.isoformat()}, "latest must be after"),
            ({"service_id": 1, "latest": LATER.isoformat(), "dentist_id": 0}, "dentist_id"),
            ({"service_id": 1, "latest": LATER.isoformat(), "colour": "blue"}, "colour"),
            ([1], "body"),
            ({"service_id": 1, "latest": "2020-01-01T10:00:00Z"}, "latest"),  # over already: the core says so
        ]
        for body_in, named in cases:
            status, body = await call("POST", url, c.tok("patient", c.other_patient), body_in)
            assert (status, body["error"]) == (422, "validation_error"), (body_in, body)
            assert named in body["message"] and body["details"], (body_in, body)
        status, body = await call("POST", url, me, raw=b"{oops")
        assert (status, body["error"]) == (400, "invalid_json")
        status, body = await call("POST", url, c.tok("admin"), {"service_id": 1, "latest": LATER.isoformat()})
        assert (status, body["error"]) == (422, "validation_error") and "patient_id" in body["message"]
        status, body = await call("POST", url, me, {"service_id": 999999, "latest": LATER.isoformat()})
        assert (status, body["error"]) == (404, "not_found")
        assert await c.last_event() == before  # nothing refused was written


async def test_freed_time_first_acceptance_wins_and_others_cannot_touch_offers(settings, engine, db_url):
    s = settings.model_copy(update={"waitlist_poll_seconds": 3600})  # only a change wakes the worker
    async with seeded_clinic(s, engine, db_url) as c:
        first, second, stranger = c.patient, c.other_patient, c.other_patient + 1
        slot, visit = taken_slot(engine, s, stranger + 1)
        filling = service_id(engine, "Filling")
        for pid in (first, second):
            status, body = await call("POST", f"{c.url}/api/waitlist", c.tok("patient", pid), {
                "service_id": filling, "dentist_id": slot.dentist_id, "earliest": slot.starts_at.isoformat(),
                "latest": (slot.starts_at + timedelta(minutes=1)).isoformat()})
            assert status == 201, body
        with engine.begin() as conn:  # a direct SQL writer frees the time: the worker offers it
            conn.execute(text("UPDATE appointments SET status = 'cancelled' WHERE id = :id"), {"id": visit})

        async def open_offer(pid):
            _, body = await call("GET", f"{c.url}/api/waitlist/offers", c.tok("patient", pid))
            return body["offers"]

        offers = {pid: (await wait_until(lambda pid=pid: open_offer(pid), what=f"an offer to {pid}"))[0]
                  for pid in (first, second)}
        for pid, offer in offers.items():
            assert (offer["patient_id"], offer["status"], offer["service_name"]) == (pid, "open", "Filling")
            assert datetime.fromisoformat(offer["starts_at"]) == slot.starts_at
        assert await open_offer(stranger) == []

        # a stranger (another patient) can neither accept, decline nor withdraw: 404, nothing changes
        with psycopg.connect(db_url, autocommit=True) as db:
            before = snapshot(db)
            _, missing = await call("POST", f"{c.url}/api/waitlist/offers/999999/accept", c.tok("patient", stranger))
            for method, path in (("POST", f"/api/waitlist/offers/{offers[first]['id']}/accept"),
                                 ("POST", f"/api/waitlist/offers/{offers[first]['id']}/decline"),
                                 ("DELETE", f"/api/waitlist/{offers[first]['entry_id']}")):
                status, body = await call(method, c.url + path, c.tok("patient", stranger))
                assert (status, body["error"]) == (404, "not_found"), (path, body)
                if "offers" in path:
                    assert body == missing  # exactly as a missing offer
            for role in ("admin", "dentist"):  # the patient offered alone answers an offer
                status, body = await call("POST", f"{c.url}/api/waitlist/offers/{offers[first]['id']}/accept",
                                          c.tok(role, c.dentist if role == "dentist" else None))
                assert (status, body["error"]) == (403, "forbidden")
            assert not changed(before, snapshot(db))

        status, won = await call("POST", f"{c.url}/api/waitlist/offers/{offers[second]['id']}/accept",
                                 c.tok("patient", second))
        assert status == 201, won
        assert won["appointment"]["patient_id"] == second and won["offer"]["status"] == "accepted"
        assert datetime.fromisoformat(won["appointment"]["starts_at"]) == slot.starts_at
        status, gone = await call("POST", f"{c.url}/api/waitlist/offers/{offers[first]['id']}/accept",
                                  c.tok("patient", first))
        assert (status, gone["error"]) == (409, "offer_gone"), gone
        status, again = await call("POST", f"{c.url}/api/waitlist/offers/{offers[first]['id']}/decline",
                                   c.tok("patient", first))
        assert (status, again["error"]) == (409, "offer_gone")
        with engine.connect() as conn:
            booked = conn.execute(text(
                "SELECT patient_id FROM appointments WHERE starts_at = :a AND dentist_id = :d AND service_id = :f"
                " AND status <> 'cancelled'"),  # (a seeded cleaning of that dentist, a hygienist's, may share the time)
                {"a": slot.starts_at, "d": slot.dentist_id, "f": filling}).scalars().all()
        assert booked == [second]
        _, visits = await call("GET", f"{c.url}/api/appointments?from={slot.starts_at.date()}", c.tok("patient", second))
        assert won["appointment"]["id"] in [a["id"] for a in visits["appointments"]]
        _, left = await call("GET", f"{c.url}/api/waitlist", c.tok("patient", first))
        assert [e["status"] for e in left["entries"]] == ["waiting"]  # still waiting for another time


async def test_declining_keeps_the_request_waiting(settings, engine, db_url):
    s = settings.model_copy(update={"waitlist_poll_seconds": 3600})
    async with seeded_clinic(s, engine, db_url) as c:
        slot, visit = taken_slot(engine, s, c.other_patient + 2)
        me = c.tok("patient", c.patient)
        status, joined = await call("POST", f"{c.url}/api/waitlist", me, {
            "service_id": service_id(engine, "Filling"), "dentist_id": slot.dentist_id,
            "earliest": slot.starts_at.isoformat(), "latest": (slot.starts_at + timedelta(minutes=1)).isoformat()})
        assert status == 201
        with engine.begin() as conn:
            conn.execute(text("UPDATE appointments SET status = 'cancelled' WHERE id = :id"), {"id": visit})

        async def offers():
            return (await call("GET", f"{c.url}/api/waitlist/offers", me))[1]["offers"]

        (offer,) = await wait_until(offers, what="the offer")
        status, body = await call("POST", f"{c.url}/api/waitlist/offers/{offer['id']}/decline", me)
        assert status == 200 and body["offer"]["status"] == "declined"
        assert await offers() == []
        _, mine = await call("GET", f"{c.url}/api/waitlist", me)
        assert [e["id"] for e in mine["entries"]] == [joined["entry"]["id"]]
