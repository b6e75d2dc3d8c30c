"""Date overrides and clinic closures over REST: validation, the per-date rules, outbox events
reaching sockets (without the reason), the visits a change leaves out, and availability."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from bot.booking import BookingService
from tests.api_helpers import call, seeded_clinic
from tests.sync_helpers import Recorder

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> \'; DROP TABLE x;-- 🦷'


def today(c) -> date:
    return datetime.now(c.settings.tz).date()


async def visit_of(c, appointment_id: int) -> dict:
    _, body = await call("GET", f"{c.url}/api/appointments/{appointment_id}", c.tok("admin"))
    return body["appointment"]


async def test_bad_override_and_closure_bodies_get_4xx_and_write_nothing(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        admin = c.tok("admin")
        ov, cl = f"{c.url}/api/dentists/1/date-overrides", f"{c.url}/api/closures"
        day = (today(c) + timedelta(days=30)).isoformat()
        past = (today(c) - timedelta(days=1)).isoformat()
        far = (today(c) + timedelta(days=731)).isoformat()
        before = await c.last_event()
        cases = [
            (ov, b"{nope", 400, "invalid_json"),
            (ov, {}, 422, "validation_error"),
            (ov, {"on_date": "next friday"}, 422, "validation_error"),
            (ov, {"on_date": "2030-02-30"}, 422, "validation_error"),
            (ov, {"on_date": day, "start_time": "09:00"}, 422, "validation_error"),  # one time only
            (ov, {"on_date": day, "end_time": "12:00"}, 422, "validation_error"),
            (ov, {"on_date": day, "start_time": "12:00", "end_time": "09:00"}, 422, "validation_error"),
            (ov, {"on_date": day, "start_time": "09:00", "end_time": "09:00"}, 422, "validation_error"),
            (ov, {"on_date": day, "start_time": "09:00+02:00", "end_time": "12:00+02:00"}, 422, "validation_error"),
            (ov, {"on_date": day, "start_time": "24:00", "end_time": "25:00"}, 422, "validation_error"),
            (ov, {"on_date": day, "reason": "r" * 501}, 422, "validation_error"),
            (ov, {"on_date": day, "dentist_id": 2}, 422, "validation_error"),  # unknown field
            (ov, {"on_date": past}, 422, "validation_error"),
            (ov, {"on_date": far}, 422, "validation_error"),
            (ov, [{"on_date": day}], 422, "validation_error"),
            (ov, {"on_date": day, "reason": "x" * 70_000}, 413, "payload_too_large"),
            (cl, b"", 400, "invalid_json"),
            (cl, {"reason": "Holiday"}, 422, "validation_error"),
            (cl, {"on_date": day, "last_date": past}, 422, "validation_error"),
            (cl, {"on_date": past, "last_date": day}, 422, "validation_error"),
            (cl, {"on_date": day, "last_date": far}, 422, "validation_error"),  # more than 366 days
            (cl, {"on_date": day, "until": day}, 422, "validation_error"),
            (cl, {"on_date": day, "reason": 5}, 422, "validation_error"),
        ]
        for url, body, status, code in cases:
            raw = body if isinstance(body, bytes) else None
            got, payload = await call("POST", url, admin, None if raw is not None else body, raw=raw)
            assert (got, payload["error"]) == (status, code), (url, str(body)[:80], payload)
        _, payload = await call("POST", ov, admin, {"on_date": past})
        assert payload["details"][0]["loc"] == ["on_date"] and "past" in payload["message"]
        assert await c.last_event() == before


async def test_one_date_holds_either_blocks_or_not_working(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        tok = c.tok("dentist", 3)
        url = f"{c.url}/api/dentists/3/date-overrides"
        day, other = (today(c) + timedelta(days=40)).isoformat(), (today(c) + timedelta(days=41)).isoformat()
        status, first = await call("POST", url, tok, {"on_date": day, "start_time": "13:00", "end_time": "15:00"})
        assert status == 201 and first["date_override"]["start_time"] == "13:00"
        status, second = await call("POST", url, tok, {"on_date": day, "start_time": "09:00", "end_time": "13:00"})
        assert status == 201  # touching blocks are fine
        status, body = await call("POST", url, tok, {"on_date": day, "start_time": "14:30", "end_time": "16:00"})
        assert status == 409 and body["error"] == "conflict" and body["existing"] == [first["date_override"]["id"]]
        status, body = await call("POST", url, tok, {"on_date": day, "reason": "off after all"})
        assert status == 409 and body["error"] == "conflict"
        status, off = await call("POST", url, tok, {"on_date": other, "reason": "Course"})
        assert status == 201 and off["date_override"]["start_time"] is None
        status, body = await call("POST", url, tok, {"on_date": other, "start_time": "09:00", "end_time": "10:00"})
        assert status == 409 and "not working" in body["message"]
        with engine.begin() as conn:  # an old override is history, not listed
            conn.exec_driver_sql("INSERT INTO date_overrides (dentist_id, on_date) VALUES (3, %s)",
                                 (today(c) - timedelta(days=3),))
        _, listed = await call("GET", url, tok)
        assert [(o["on_date"], o["start_time"], o["end_time"]) for o in listed["date_overrides"]] == [
            (day, "09:00", "13:00"), (day, "13:00", "15:00"), (other, None, None)]
        # another dentist's overrides are theirs alone (404, as if missing); the admin edits anyone's
        status, _ = await call("DELETE", f"{c.url}/api/date-overrides/{off['date_override']['id']}", c.tok("dentist", 1))
        assert status == 404
        status, _ = await call("DELETE", f"{c.url}/api/date-overrides/{off['date_override']['id']}", c.tok("admin"))
        assert status == 204
        status, again = await call("POST", url, tok, {"on_date": other, "start_time": "09:00", "end_time": "10:00"})
        assert status == 201


async def test_override_writes_reach_the_dentist_socket_without_the_reason(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        mine = await Recorder("dentist3").connect(c.url, c.tok("dentist", 3))
        other = await Recorder("dentist1").connect(c.url, c.tok("dentist", 1))
        patient = await Recorder("patient").connect(c.url, c.tok("patient", c.patient))
        day = (today(c) + timedelta(days=20)).isoformat()
        before = await c.last_event()
        status, body = await call("POST", f"{c.url}/api/dentists/3/date-overrides", c.tok("admin"),
                                  {"on_date": day, "reason": HOSTILE})
        assert status == 201
        row = body["date_override"]["id"]
        status, _ = await call("DELETE", f"{c.url}/api/date-overrides/{row}", c.tok("dentist", 3))
        assert status == 204
        events = await c.events(before)
        assert [(t, p["source"], p["op"], p["row_id"], p["dentist_id"], p["on_date"]) for t, p in events] == [
            ("availability_changed", "date_overrides", "insert", row, 3, day),
            ("availability_changed", "date_overrides", "delete", row, 3, day)]
        assert all("reason" not in p and "pwned" not in str(p) for _, p in events)
        await mine.wait_id(before + 2)
        assert [(e, d["source"], d["op"]) for e, d in mine.events][-2:] == [
            ("availability_changed", "date_overrides", "insert"), ("availability_changed", "date_overrides", "delete")]
        # a barrier: dentist 1's own next event arrives after anything earlier that was meant for them
        mark = await c.last_event()
        await call("POST", f"{c.url}/api/dentists/1/date-overrides", c.tok("dentist", 1), {"on_date": day})
        await other.wait_id(mark + 1)
        assert [d["dentist_id"] for e, d in other.events] == [1]
        assert not patient.events
        for client in (mine, other, patient):
            await client.close()


async def test_closures_are_per_date_reach_every_dentist_and_empty_the_day(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        admin = c.tok("admin")
        visit = await visit_of(c, c.visit)
        day = datetime.fromisoformat(visit["starts_at"]).astimezone(c.settings.tz).date()
        booking = BookingService(engine, settings)
        whole_day = (datetime.combine(day, time(0), c.settings.tz), datetime.combine(day, time(23, 59), c.settings.tz))
        assert booking.available_slots(2, *whole_day)  # a consultation fits somewhere that day
        dentist = await Recorder("dentist").connect(c.url, c.tok("dentist", 2))
        before = await c.last_event()
        status, body = await call("POST", f"{c.url}/api/closures", admin,
                                  {"on_date": day.isoformat(), "last_date": (day + timedelta(days=2)).isoformat(),
                                   "reason": HOSTILE})
        assert status == 201
        assert [x["on_date"] for x in body["closures"]] == [(day + timedelta(days=i)).isoformat() for i in range(3)]
        assert c.visit in body["overlapping_appointments"]
        for appointment_id in body["overlapping_appointments"]:
            starts = datetime.fromisoformat((await visit_of(c, appointment_id))["starts_at"])
            assert day <= starts.astimezone(c.settings.tz).date() <= day + timedelta(days=2)
        assert booking.available_slots(2, *whole_day) == []
        events = await c.events(before)
        assert [(t, p["source"], p["op"], p["dentist_id"]) for t, p in events] == \
            [("availability_changed", "clinic_closures", "insert", None)] * 3
        assert all("reason" not in p for _, p in events)
        await dentist.wait_id(before + 3)  # clinic-wide: every dentist hears it
        # the clinic's closures are no secret: any token reads them, reason included
        _, listed = await call("GET", f"{c.url}/api/closures", c.tok("patient", c.patient))
        assert [x["reason"] for x in listed["closures"]] == [HOSTILE] * 3
        # a range meeting a closed date is refused whole
        status, refused = await call("POST", f"{c.url}/api/closures", admin,
                                     {"on_date": (day - timedelta(days=1)).isoformat(), "last_date": day.isoformat()})
        assert status == 409 and refused["error"] == "conflict" and refused["existing"] == [body["closures"][0]["id"]]
        _, again = await call("GET", f"{c.url}/api/closures", admin)
        assert len(again["closures"]) == 3
        mark = await c.last_event()
        status, _ = await call("DELETE", f"{c.url}/api/closures/{body['closures'][0]['id']}", admin)
        assert status == 204
        assert booking.available_slots(2, *whole_day)
        assert [(p["source"], p["op"]) for _, p in await c.events(mark)] == [("clinic_closures", "delete")]
        await dentist.close()


async def test_an_override_reports_the_visits_its_hours_leave_out(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        admin = c.tok("admin")
        visit = await visit_of(c, c.visit)  # Dr Alvarez: a 09:00 cleaning, and a 10:00 filling the same day
        day = datetime.fromisoformat(visit["starts_at"]).astimezone(c.settings.tz).date()
        _, diary = await call("GET", f"{c.url}/api/appointments?from={day}&to={day + timedelta(days=1)}"
                                     f"&dentist_id={c.dentist}", admin)
        later = [a["id"] for a in diary["appointments"] if a["id"] != c.visit]
        assert later, diary
        url = f"{c.url}/api/dentists/{c.dentist}/date-overrides"
        status, body = await call("POST", url, admin, {"on_date": day.isoformat(), "start_time": "09:00",
                                                       "end_time": "10:00"})
        assert status == 201 and body["overlapping_appointments"] == later
        status, body = await call("POST", url, admin, {"on_date": day.isoformat(), "start_time": "10:00",
                                                       "end_time": "13:00"})
        assert status == 201 and body["overlapping_appointments"] == []
        other_day = (day + timedelta(days=1)).isoformat()
        status, body = await call("POST", url, c.tok("dentist", c.dentist), {"on_date": other_day})
        assert status == 201 and body["date_override"]["reason"] is None
