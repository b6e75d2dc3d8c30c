"""The REST API's authorisation matrix: every endpoint × every kind of caller.

Bad tokens are refused with 401 everywhere; a dentist or patient asking about someone else's
visit (or a dentist about another's time off or date override, a patient about another's
waitlist request or offer) gets 404 exactly as for a missing one; staff-only writes give 403 to
everybody else, and so do a patient's own waitlist offers to everybody but that patient.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, time, timedelta, timezone

import pytest

from sqlalchemy import text

from bot.booking import BookingService
from bot.db import make_engine
from tests.api_helpers import call, seeded_clinic
from tests.staff_helpers import staff_headers

FUTURE = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=200)
TIME_OFF = {"starts_at": FUTURE.isoformat(), "ends_at": (FUTURE + timedelta(hours=3)).isoformat(), "reason": "x"}
HOURS = [{"weekday": 1, "start_time": "09:00", "end_time": "12:00"}]
_days = itertools.count(1)


def a_free_date() -> dict:
    """A body naming a date no other write in the test has used (overrides and closures are per date)."""
    return {"on_date": (FUTURE.date() + timedelta(days=next(_days))).isoformat(), "reason": "x"}


def a_request(c, service_id: int = 3, **extra) -> dict:
    """A waitlist request for the matrix's patient (a filling), for a night nobody works: the
    service's worker never offers it anything, so its answers leave no trace of their own."""
    night = datetime.combine(datetime.now(c.settings.tz).date() + timedelta(days=30), time(2), c.settings.tz)
    return {"service_id": service_id, "earliest": night.isoformat(), "latest": (night + timedelta(hours=1)).isoformat(),
            "patient_id": c.patient, **extra}


_offers = itertools.count(1)


def an_offer(c) -> int:
    """An open waitlist offer to ``c.patient`` of a free consultation, written as the worker writes
    one (its own time each: only the patient's acceptance books it)."""
    engine = make_engine(c.settings.database_url, pool_size=1)
    try:
        n = next(_offers)
        start = datetime.now(timezone.utc) + timedelta(days=30 + 2 * (n % 20))  # within the booking horizon
        slot = BookingService(engine, c.settings).available_slots(2, start, start + timedelta(days=2), limit=1)[0]
        with engine.begin() as conn:
            conn.execute(text("UPDATE waitlist_entries SET status = 'withdrawn' WHERE patient_id = :p"
                              " AND service_id = 2 AND status IN ('waiting', 'offered')"), {"p": c.patient})
            entry = conn.execute(text(
                "INSERT INTO waitlist_entries (patient_id, service_id, dentist_id, earliest, latest, status)"
                " VALUES (:p, 2, :d, :a, :a + interval '1 minute', 'offered') RETURNING id"),
                {"p": c.patient, "d": slot.dentist_id, "a": slot.starts_at}).scalar_one()
            return conn.execute(text(
                "INSERT INTO waitlist_offers (entry_id, patient_id, service_id, dentist_id, starts_at, ends_at,"
                " holder, expires_at) VALUES (:e, :p, 2, :d, :a, :b, :h, now() + interval '1 hour') RETURNING id"),
                {"e": entry, "p": c.patient, "d": slot.dentist_id, "a": slot.starts_at, "b": slot.ends_at,
                 "h": f"waitlist:matrix-{n}"}).scalar_one()
    finally:
        engine.dispose()


async def make_row(c, kind: str, admin: str) -> int:
    if kind == "offer":
        return an_offer(c)
    if kind == "waitlist":  # the patient's, asked for by the front desk
        _, made = await call("POST", f"{c.url}/api/waitlist", admin, a_request(c, 1))
        return made["entry"]["id"]
    if kind == "time-off":
        _, made = await call("POST", f"{c.url}/api/dentists/{c.dentist}/time-off", admin, TIME_OFF)
        return made["time_off"]["id"]
    if kind == "override":
        _, made = await call("POST", f"{c.url}/api/dentists/{c.dentist}/date-overrides", admin, a_free_date())
        return made["date_override"]["id"]
    _, made = await call("POST", f"{c.url}/api/closures", admin, a_free_date())
    return made["closures"][0]["id"]


def endpoints(c) -> list[tuple[str, str, object]]:
    return [
        ("GET", "/api/appointments", None),
        ("GET", f"/api/appointments/{c.visit}", None),
        ("PATCH", f"/api/appointments/{c.visit}", {"status": "confirmed"}),
        ("GET", "/api/dentists", None),
        ("GET", f"/api/dentists/{c.dentist}/working-hours", None),
        ("PUT", f"/api/dentists/{c.dentist}/working-hours", HOURS),
        ("GET", f"/api/dentists/{c.dentist}/time-off", None),
        ("POST", f"/api/dentists/{c.dentist}/time-off", TIME_OFF),
        ("DELETE", "/api/time-off/{new:time-off}", None),  # a fresh time off of `dentist` for each caller
        ("GET", "/api/services", None),
        ("GET", f"/api/dentists/{c.dentist}/date-overrides", None),
        ("POST", f"/api/dentists/{c.dentist}/date-overrides", a_free_date),  # a new date for each caller
        ("DELETE", "/api/date-overrides/{new:override}", None),
        ("GET", "/api/closures", None),
        ("POST", "/api/closures", a_free_date),
        ("DELETE", "/api/closures/{new:closure}", None),
        ("GET", "/api/operatories", None),
        ("GET", "/api/hygienists", None),
        ("GET", "/api/recalls", None),
        ("GET", "/api/attendance", None),
        ("GET", "/api/waitlist", None),
        ("POST", "/api/waitlist", a_request(c)),
        ("DELETE", "/api/waitlist/{new:waitlist}", None),
        ("GET", "/api/waitlist/offers", None),
        ("POST", "/api/waitlist/offers/{new:offer}/accept", None),
        ("POST", "/api/waitlist/offers/{new:offer}/decline", None),
        ("GET", "/api/feeds/me", None),
        ("POST", "/api/feeds/me/renew", None),
        ("POST", f"/api/feeds/patient/{c.patient}/renew", None),
        ("POST", f"/api/feeds/dentist/{c.dentist}/renew", None),
    ]


# expected status per (endpoint index, caller)
EXPECTED = {
    #            admin dentist other_d patient other_p service
    0: dict(admin=200, dentist=200, other_dentist=200, patient=200, other_patient=200, service=403),
    1: dict(admin=200, dentist=200, other_dentist=404, patient=200, other_patient=404, service=403),
    2: dict(admin=200, dentist=200, other_dentist=404, patient=403, other_patient=404, service=403),
    3: dict(admin=200, dentist=200, other_dentist=200, patient=200, other_patient=200, service=200),
    4: dict(admin=200, dentist=200, other_dentist=200, patient=200, other_patient=200, service=200),
    5: dict(admin=200, dentist=200, other_dentist=403, patient=403, other_patient=403, service=403),
    6: dict(admin=200, dentist=200, other_dentist=403, patient=403, other_patient=403, service=403),
    7: dict(admin=201, dentist=201, other_dentist=403, patient=403, other_patient=403, service=403),
    8: dict(admin=204, dentist=204, other_dentist=404, patient=403, other_patient=403, service=403),
    9: dict(admin=200, dentist=200, other_dentist=200, patient=200, other_patient=200, service=200),
    10: dict(admin=200, dentist=200, other_dentist=403, patient=403, other_patient=403, service=403),
    11: dict(admin=201, dentist=201, other_dentist=403, patient=403, other_patient=403, service=403),
    12: dict(admin=204, dentist=204, other_dentist=404, patient=403, other_patient=403, service=403),
    13: dict(admin=200, dentist=200, other_dentist=200, patient=200, other_patient=200, service=200),
    14: dict(admin=201, dentist=403, other_dentist=403, patient=403, other_patient=403, service=403),
    15: dict(admin=204, dentist=403, other_dentist=403, patient=403, other_patient=403, service=403),
    16: dict(admin=200, dentist=200, other_dentist=200, patient=200, other_patient=200, service=200),
    17: dict(admin=200, dentist=200, other_dentist=200, patient=200, other_patient=200, service=200),
    # who is due for a recall names patients: the front desk's only
    18: dict(admin=200, dentist=403, other_dentist=403, patient=403, other_patient=403, service=403),
    19: dict(admin=200, dentist=403, other_dentist=403, patient=403, other_patient=403, service=403),
    # the waitlist: each sees their own (a dentist those naming them); a patient joins for themselves
    20: dict(admin=200, dentist=200, other_dentist=200, patient=200, other_patient=200, service=403),
    21: dict(admin=201, dentist=403, other_dentist=403, patient=201, other_patient=403, service=403),
    22: dict(admin=200, dentist=403, other_dentist=403, patient=200, other_patient=404, service=403),
    # an offer is answered by the patient offered alone
    23: dict(admin=403, dentist=403, other_dentist=403, patient=200, other_patient=200, service=403),
    24: dict(admin=403, dentist=403, other_dentist=403, patient=201, other_patient=404, service=403),
    25: dict(admin=403, dentist=403, other_dentist=403, patient=200, other_patient=404, service=403),
    # a calendar feed is a dentist's or a patient's own; the front desk renews anyone's
    26: dict(admin=404, dentist=200, other_dentist=200, patient=200, other_patient=200, service=404),
    27: dict(admin=404, dentist=200, other_dentist=200, patient=200, other_patient=200, service=404),
    28: dict(admin=200, dentist=403, other_dentist=403, patient=403, other_patient=403, service=403),
    29: dict(admin=200, dentist=403, other_dentist=403, patient=403, other_patient=403, service=403),
}


@pytest.mark.parametrize("bad", ["none", "forged", "expired", "garbage"])
async def test_every_endpoint_refuses_bad_tokens_with_401(settings, engine, db_url, bad):
    async with seeded_clinic(settings, engine, db_url) as c:
        tok = {"none": None, "forged": c.tokens()["forged"], "expired": c.tokens()["expired"],
               "garbage": "not.a.token"}[bad]
        before = await c.last_event()
        for method, path, body in endpoints(c):
            body = body() if callable(body) else body
            status, payload = await call(method, c.url + re.sub(r"\{new:[a-z-]+\}", "1", path), tok, body)
            assert status == 401, (method, path, payload)
            assert payload["error"] == ("missing_token" if bad == "none" else "invalid_token")
        assert await c.last_event() == before  # nothing was written


@pytest.mark.parametrize("staff_by", ["token", "cookie"])
async def test_authorisation_matrix(settings, engine, db_url, staff_by):
    """The same answers whether the admin and the dentists send tokens or, signed in at /login,
    their session cookie and CSRF token (patients and services keep their tokens)."""
    async with seeded_clinic(settings, engine, db_url) as c:
        tokens = c.tokens()
        signed = await staff_headers(c, engine, settings) if staff_by == "cookie" else {}
        assert len(EXPECTED) == len(endpoints(c))
        for index, (method, path, body) in enumerate(endpoints(c)):
            for caller, expected in EXPECTED[index].items():
                url = c.url + path
                kind = re.search(r"\{new:([a-z-]+)\}", path)
                if kind:  # a fresh row for each caller, so one caller's delete does not hide the next one's answer
                    url = c.url + path.replace(kind.group(0), str(await make_row(c, kind.group(1), tokens["admin"])))
                before = await c.last_event()
                status, payload = await call(method, url, None if caller in signed else tokens[caller],
                                             body() if callable(body) else body, headers=signed.get(caller))
                assert status == expected, (method, path, caller, payload)
                if status == 403:
                    assert payload["error"] == "forbidden"
                    assert await c.last_event() == before  # a refused write leaves no trace
                if status == 404:
                    assert payload["error"] == "not_found"


async def test_a_dentist_sees_only_their_diary_and_a_patient_only_their_visits(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        tokens = c.tokens()
        _, everyone = await call("GET", f"{c.url}/api/appointments", tokens["admin"])
        assert len({a["dentist_id"] for a in everyone["appointments"]}) == 3
        _, mine = await call("GET", f"{c.url}/api/appointments", tokens["dentist"])
        assert mine["appointments"] and {a["dentist_id"] for a in mine["appointments"]} == {c.dentist}
        _, own = await call("GET", f"{c.url}/api/appointments", tokens["patient"])
        assert own["appointments"] and {a["patient_id"] for a in own["appointments"]} == {c.patient}
        # asking for someone else's explicitly is refused, not silently narrowed
        status, body = await call("GET", f"{c.url}/api/appointments?dentist_id={c.other_dentist}", tokens["dentist"])
        assert status == 403 and body["error"] == "forbidden"
        status, body = await call("GET", f"{c.url}/api/appointments?patient_id={c.other_patient}", tokens["patient"])
        assert status == 403
        # the admin may filter
        _, filtered = await call("GET", f"{c.url}/api/appointments?dentist_id=2", tokens["admin"])
        assert filtered["appointments"] and {a["dentist_id"] for a in filtered["appointments"]} == {2}


async def test_missing_things_are_404_json(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        admin = c.tokens()["admin"]
        for method, path, body in [
            ("GET", "/api/appointments/999999", None),
            ("PATCH", "/api/appointments/999999", {"status": "confirmed"}),
            ("GET", "/api/appointments/99999999999999999999999", None),  # beyond bigint
            ("GET", "/api/dentists/999/working-hours", None),
            ("PUT", "/api/dentists/999/working-hours", HOURS),
            ("POST", "/api/dentists/999/time-off", TIME_OFF),
            ("DELETE", "/api/time-off/999", None),
            ("GET", "/api/dentists/999/date-overrides", None),
            ("POST", "/api/dentists/999/date-overrides", a_free_date()),
            ("DELETE", "/api/date-overrides/999", None),
            ("DELETE", "/api/closures/999", None),
            ("DELETE", "/api/waitlist/999", None),
            ("POST", "/api/waitlist", a_request(c, patient_id=999)),
            ("GET", "/api/appointments/abc", None),
            ("GET", "/api/nothing-here", None),
        ]:
            status, payload = await call(method, c.url + path, admin, body)
            assert status == 404 and payload["error"] == "not_found", (method, path, payload)
