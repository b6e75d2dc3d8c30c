"""Who sees what: the role matrix, subscriptions, and refused connections."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import socketio

from bot.settings import Settings
from sync import keys
from tests.sync_helpers import Clinic, Recorder, serve, token

ROLES = {
    "admin": ("admin", None), "service": ("service", "actions"),
    "dentist1": ("dentist", 1), "dentist2": ("dentist", 2),
    "patient1": ("patient", 1), "patient2": ("patient", 2),
}


async def connect_all(url, settings) -> dict[str, Recorder]:
    clients = {}
    for name, (role, ident) in ROLES.items():
        clients[name] = await Recorder(name).connect(url, token(settings, role, ident))
    return clients


async def test_each_role_receives_exactly_what_it_may(settings, db_url):
    clinic = await Clinic.open(db_url)
    async with serve(settings) as (url, app):
        c = await connect_all(url, settings)
        expect: dict[str, list[int]] = {name: [] for name in ROLES}

        async def happened(*who, eid=None):
            eid = eid or await clinic.last_event_id()
            for name in ("admin", "service", *who):
                expect[name].append(eid)
            return eid

        a1 = await clinic.book(dentist=1, patient=1)
        await happened("dentist1", "patient1")
        a2 = await clinic.book(dentist=2, patient=2)
        await happened("dentist2", "patient2")
        await clinic.update(a1, status="confirmed")
        await happened("dentist1", "patient1")
        await clinic.update(a1, dentist_id=2)                      # moved from dentist 1 to 2
        moved = await happened("dentist1", "dentist2", "patient1")
        await clinic.update(a2, patient_id=1)                      # handed from patient 2 to 1
        handed = await happened("dentist2", "patient1", "patient2")
        await clinic.cancel_delete(a1)
        await happened("dentist2", "patient1")
        hours = await clinic.add_hours(dentist=1)
        await happened("dentist1")
        off = await clinic.add_time_off(dentist=2)
        await happened("dentist2")
        await clinic.conn.execute("UPDATE working_hours SET dentist_id = 2 WHERE id = %s", (hours,))
        last = await clinic.last_event_id()
        await happened("dentist2", eid=last - 1)      # the new dentist's diary, first
        await happened("dentist1", eid=last)          # then the one it left
        await clinic.conn.execute("DELETE FROM time_off WHERE id = %s", (off,))
        await happened("dentist2")
        # sentinels: every client's last expected event is one of these two
        await clinic.book(dentist=1, patient=1)
        await happened("dentist1", "patient1")
        await clinic.book(dentist=2, patient=2)
        await happened("dentist2", "patient2")

        for name, client in c.items():
            await client.wait_id(expect[name][-1])
            assert client.ids == expect[name], name

        # payload shapes
        events = {d["id"]: (e, d) for e, d in c["admin"].events}
        name, data = events[moved]
        assert name == "appointment_updated" == data["type"]
        assert data["appointment"]["dentist_id"] == 2 and data["previous"]["dentist_id"] == 1
        assert datetime.fromisoformat(data["at"]).tzinfo is not None
        for e, d in c["admin"].events:
            if e == "availability_changed":
                assert "patient_id" not in d and "appointment" not in d and d["dentist_id"] in (1, 2)
        # the patient a visit was taken from learns it moved, not who has it now
        (_, gone), = [(e, d) for e, d in c["patient2"].events if d["id"] == handed]
        assert gone["appointment"] == {"id": a2} and gone["moved_away"] is True
        assert gone["previous"]["patient_id"] == 2
        (_, got), = [(e, d) for e, d in c["patient1"].events if d["id"] == handed]
        assert got["appointment"]["patient_id"] == 1
        for name in ("patient1", "patient2"):
            for e, d in c[name].events:
                pid = d.get("appointment", {}).get("patient_id", int(name[-1]))
                assert pid == int(name[-1]) and e != "availability_changed"
        for client in c.values():
            await client.close()
    await clinic.close()


async def test_subscriptions_add_channels_and_each_event_arrives_once(settings, db_url):
    clinic = await Clinic.open(db_url)
    async with serve(settings) as (url, app):
        pat = await Recorder("patient1").connect(url, token(settings, "patient", 1))
        den = await Recorder("dentist1").connect(url, token(settings, "dentist", 1))
        adm = await Recorder("admin").connect(url, token(settings, "admin"))
        assert await pat.call("subscribe", {"topic": "availability", "dentist_id": 1}) == {
            "ok": True, "channel": "availability:dentist:1"}
        assert await den.call("subscribe", {"topic": "availability", "global": True}) == {
            "ok": True, "channel": "availability:global"}
        # admin already sees everything: an overlapping subscription must not duplicate
        assert (await adm.call("subscribe", {"topic": "appointments", "dentist_id": 1}))["ok"]
        assert (await den.call("subscribe", {"topic": "appointments"}))["channel"] == "appointments:dentist:1"

        await clinic.add_hours(dentist=1)
        d1 = await clinic.last_event_id()
        await clinic.add_hours(dentist=2)
        d2 = await clinic.last_event_id()
        await clinic.book(dentist=1, patient=1)
        b1 = await clinic.last_event_id()
        for client in (pat, den, adm):
            await client.wait_id(b1)
        assert pat.ids == [d1, b1]
        assert den.ids == [d1, d2, b1]
        assert adm.ids == [d1, d2, b1]

        assert await pat.call("unsubscribe", {"topic": "availability", "dentist_id": 1}) == {
            "ok": True, "channel": "availability:dentist:1"}
        again = await pat.call("unsubscribe", {"topic": "availability", "dentist_id": 1})
        assert again["ok"] is False and again["error"] == "not_subscribed"
        role = await den.call("unsubscribe", {"topic": "availability", "dentist_id": 1})
        assert role["ok"] is False and role["error"] == "role_channel"
        await clinic.add_hours(dentist=1)
        await clinic.book(dentist=1, patient=1)
        b2 = await clinic.last_event_id()
        await pat.wait_id(b2)
        assert pat.ids == [d1, b1, b2]
        for client in (pat, den, adm):
            await client.close()
    await clinic.close()


BAD_REQUESTS = [
    (None, "invalid_payload"), ("availability", "invalid_payload"), (42, "invalid_payload"),
    ([{"topic": "availability"}], "invalid_payload"), ({}, "unknown_topic"),
    ({"topic": "weather"}, "unknown_topic"), ({"topic": ["availability"]}, "unknown_topic"),
    ({"topic": "availability"}, "invalid_payload"),
    ({"topic": "availability", "dentist_id": "1"}, "invalid_payload"),
    ({"topic": "availability", "dentist_id": -1}, "invalid_payload"),
    ({"topic": "availability", "dentist_id": True}, "invalid_payload"),
    ({"topic": "availability", "dentist_id": 2**70}, "invalid_payload"),
    ({"topic": "availability", "dentist_id": 0}, "invalid_payload"),
    ({"topic": "availability", "global": 1}, "invalid_payload"),
    ({"topic": "appointments", "patient_id": 0}, "invalid_payload"),
    ({"topic": "availability", "dentist_id": 1, "global": True}, "invalid_payload"),
    ({"topic": "availability", "global": "yes"}, "invalid_payload"),
    ({"topic": "availability", "dentist_id": 1, "extra": 1}, "invalid_payload"),
    ({"topic": "appointments", "patient_id": 2}, "forbidden"),
    ({"topic": "appointments", "dentist_id": 1}, "forbidden"),
    ({"topic": "appointments", "global": True}, "forbidden"),
    ({"topic": "availability", "pad": "x" * 200_000}, "payload_too_large"),
    ({"topic": "availability", "nested": [[[[[[[[{"a": 1}]]]]]]]] * 40}, "payload_too_large"),
]


@pytest.mark.parametrize("event", ["subscribe", "unsubscribe"])
async def test_malformed_and_oversized_requests_are_refused_not_fatal(settings, db_url, event):
    clinic = await Clinic.open(db_url)
    async with serve(settings) as (url, app):
        pat = await Recorder("patient1").connect(url, token(settings, "patient", 1))
        for request, code in BAD_REQUESTS:
            ack = await pat.call(event, request)
            assert ack["ok"] is False and ack["error"] == code, (request if len(str(request)) < 200 else "big", ack)
        assert pat.sio.connected
        # no arguments at all
        ack = await pat.sio.call(event, timeout=5)
        assert ack["ok"] is False
        # still alive and still served
        await clinic.book(dentist=1, patient=1)
        await pat.wait_id(await clinic.last_event_id())
        await pat.close()
    await clinic.close()


def _forged(settings: Settings) -> str:
    other = Settings(database_url=settings.database_url, env="test", jwt_secret="x" * 40, _env_file=None)
    return token(other, "admin")


@pytest.mark.parametrize("case", ["missing", "empty", "forged", "expired", "garbage", "bad_since"])
async def test_connect_refused_with_a_reason(settings, db_url, case):
    async with serve(settings) as (url, app):
        good = token(settings, "admin")
        tok, since, reason = {
            "missing": (None, None, "missing token"),
            "empty": ("", None, "missing token"),
            "forged": (_forged(settings), None, "invalid token signature"),
            "expired": (token(settings, "admin", ttl_minutes=1, now=time.time() - 3600), None, "token expired"),
            "garbage": ("not.a.jwt", None, "invalid token"),
            "bad_since": (good, "12", "invalid since"),
        }[case]
        client = Recorder(case)
        with pytest.raises(socketio.exceptions.ConnectionError) as info:
            await client.connect(url, tok, since=since)
        assert "failed to connect" in str(info.value)
        assert reason in client.refused["message"]
        assert not app[keys.HUB].clients
