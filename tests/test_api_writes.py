"""REST writes: validation answers (4xx JSON with a code, never 5xx), outbox events for every
write, verbatim storage of hostile text, and an OpenAPI document that names every route."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sync.app import create_app
from tests.api_helpers import call, seeded_clinic
from tests.sync_helpers import Recorder

SOON = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=3)


async def test_bad_bodies_and_queries_get_4xx_json_with_a_code(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        admin = c.tok("admin")
        patch, hours, off = (f"{c.url}/api/appointments/{c.visit}", f"{c.url}/api/dentists/1/working-hours",
                             f"{c.url}/api/dentists/1/time-off")
        before = await c.last_event()
        cases = [
            # (method, url, body or raw bytes, status, code)
            ("PATCH", patch, b"{not json", 400, "invalid_json"),
            ("PATCH", patch, b"", 400, "invalid_json"),
            ("PATCH", patch, b"\xff\xfe\x00garbage", 400, "invalid_json"),
            ("PATCH", patch, b"[" * 50_000, 400, "invalid_json"),  # deeper than any parser's stack
            ("PATCH", patch, {"status": "done"}, 422, "validation_error"),
            ("PATCH", patch, {"status": 3}, 422, "validation_error"),
            ("PATCH", patch, {"status": None}, 422, "validation_error"),
            ("PATCH", patch, {}, 422, "validation_error"),
            ("PATCH", patch, ["confirmed"], 422, "validation_error"),
            ("PATCH", patch, {"status": "confirmed", "starts_at": "2030-01-01T00:00:00Z"}, 422, "validation_error"),
            ("PATCH", patch, {"status": "x" * 100_000}, 413, "payload_too_large"),
            ("PATCH", patch, b"{" + b" " * (3 * 1024 * 1024) + b"}", 413, "payload_too_large"),
            ("PUT", hours, {"weekday": 1}, 422, "validation_error"),
            ("PUT", hours, [{"weekday": 8, "start_time": "09:00", "end_time": "10:00"}], 422, "validation_error"),
            ("PUT", hours, [{"weekday": "1", "start_time": "09:00", "end_time": "10:00"}], 422, "validation_error"),
            ("PUT", hours, [{"weekday": True, "start_time": "09:00", "end_time": "10:00"}], 422, "validation_error"),
            ("PUT", hours, [{"weekday": 1, "start_time": "12:00", "end_time": "09:00"}], 422, "validation_error"),
            ("PUT", hours, [{"weekday": 1, "start_time": "25:00", "end_time": "26:00"}], 422, "validation_error"),
            ("PUT", hours, [{"weekday": 1, "start_time": "09:00", "end_time": "12:00"},
                            {"weekday": 1, "start_time": "11:00", "end_time": "13:00"}], 422, "validation_error"),
            ("PUT", hours, [{"weekday": 1, "start_time": "09:00", "end_time": "10:00"}] * 51, 422, "validation_error"),
            ("POST", off, {"starts_at": SOON.isoformat(), "ends_at": (SOON - timedelta(hours=1)).isoformat()},
             422, "validation_error"),
            ("POST", off, {"starts_at": "2030-01-01T09:00:00", "ends_at": "2030-01-01T10:00:00"},
             422, "validation_error"),  # no offset: ambiguous
            ("POST", off, {"starts_at": "tomorrow", "ends_at": "later"}, 422, "validation_error"),
            ("POST", off, {"starts_at": SOON.isoformat(), "ends_at": (SOON + timedelta(days=400)).isoformat()},
             422, "validation_error"),
            ("POST", off, {"starts_at": SOON.isoformat(), "ends_at": (SOON + timedelta(hours=1)).isoformat(),
                           "reason": "r" * 501}, 422, "validation_error"),
            ("GET", f"{c.url}/api/appointments?from=yesterday", None, 400, "invalid_query"),
            ("GET", f"{c.url}/api/appointments?from=2030-01-02&to=2030-01-01", None, 400, "invalid_query"),
            ("GET", f"{c.url}/api/appointments?from=2020-01-01&to=2030-01-01", None, 400, "invalid_query"),
            ("GET", f"{c.url}/api/appointments?dentist_id=-1", None, 400, "invalid_query"),
            ("GET", f"{c.url}/api/appointments?dentist_id=%C2%B2", None, 400, "invalid_query"),
        ]
        for method, url, body, status, code in cases:
            raw = body if isinstance(body, bytes) else None
            got, payload = await call(method, url, admin, None if raw is not None else body, raw=raw)
            assert (got, payload["error"]) == (status, code), (method, url, str(body)[:80], payload)
        status, payload = await call("PATCH", patch, admin, {"status": "done"})
        assert payload["details"][0]["loc"] == ["status"]
        assert await c.last_event() == before  # nothing refused was written


async def test_status_change_writes_one_outbox_event_and_reaches_sockets(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        dentist = await Recorder("dentist").connect(c.url, c.tok("dentist", c.dentist))
        patient = await Recorder("patient").connect(c.url, c.tok("patient", c.patient))
        before = await c.last_event()
        status, body = await call("PATCH", f"{c.url}/api/appointments/{c.visit}", c.tok("dentist", c.dentist),
                                  {"status": "completed"})
        assert status == 200 and body["appointment"]["status"] == "completed"
        events = await c.events(before)
        assert [t for t, _ in events] == ["appointment_updated"]
        assert events[0][1]["appointment"]["id"] == c.visit and events[0][1]["appointment"]["status"] == "completed"
        assert events[0][1]["previous"]["status"] != "completed"
        for client in (dentist, patient):
            await client.wait_id(before + 1)
            assert client.events[-1][0] == "appointment_updated"
            assert client.events[-1][1]["appointment"]["status"] == "completed"
            await client.close()
        # a cancelled visit is not reopened behind the database's back
        await call("PATCH", f"{c.url}/api/appointments/{c.visit}", c.tok("admin"), {"status": "cancelled"})
        status, body = await call("PATCH", f"{c.url}/api/appointments/{c.visit}", c.tok("admin"),
                                  {"status": "confirmed"})
        assert status == 409 and body["error"] == "conflict"


async def test_hours_and_time_off_writes_announce_availability(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        tok = c.tok("dentist", 3)
        watcher = await Recorder("dentist3").connect(c.url, tok)
        _, old = await call("GET", f"{c.url}/api/dentists/3/working-hours", tok)
        before = await c.last_event()
        new = [{"weekday": 2, "start_time": "08:00", "end_time": "12:00"},
               {"weekday": 2, "start_time": "13:00", "end_time": "17:30"}]
        status, body = await call("PUT", f"{c.url}/api/dentists/3/working-hours", tok, new)
        assert status == 200
        assert [(b["weekday"], b["start_time"], b["end_time"]) for b in body["working_hours"]] == \
            [(2, "08:00", "12:00"), (2, "13:00", "17:30")]
        _, again = await call("GET", f"{c.url}/api/dentists/3/working-hours", c.tok("patient", 1))
        assert again["working_hours"] == body["working_hours"]
        events = await c.events(before)
        assert len(events) == len(old["working_hours"]) + 2
        assert {(p["source"], p["op"]) for _, p in events} == {("working_hours", "delete"), ("working_hours", "insert")}
        assert all(t == "availability_changed" and p["dentist_id"] == 3 for t, p in events)

        mark = await c.last_event()
        status, body = await call("POST", f"{c.url}/api/dentists/3/time-off", tok, {
            "starts_at": SOON.isoformat(), "ends_at": (SOON + timedelta(hours=4)).isoformat(), "reason": "Course"})
        assert status == 201 and body["time_off"]["reason"] == "Course"
        row = body["time_off"]["id"]
        status, _ = await call("DELETE", f"{c.url}/api/time-off/{row}", tok)
        assert status == 204
        events = await c.events(mark)
        assert [(t, p["source"], p["op"], p["row_id"]) for t, p in events] == [
            ("availability_changed", "time_off", "insert", row), ("availability_changed", "time_off", "delete", row)]
        assert all("reason" not in p for _, p in events)  # free text stays out of the broadcast
        await watcher.wait_id(mark + 2)
        assert [e for e, _ in watcher.events][-2:] == ["availability_changed", "availability_changed"]
        await watcher.close()


async def test_time_off_over_a_booked_visit_is_kept_and_the_clash_reported(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        admin = c.tok("admin")
        _, visit = await call("GET", f"{c.url}/api/appointments/{c.visit}", admin)
        a = visit["appointment"]
        status, body = await call("POST", f"{c.url}/api/dentists/{c.dentist}/time-off", admin,
                                  {"starts_at": a["starts_at"], "ends_at": a["ends_at"]})
        assert status == 201 and body["overlapping_appointments"] == [c.visit]


async def test_hostile_notes_are_stored_and_returned_verbatim(settings, engine, db_url):
    hostile = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> \'; DROP TABLE x;-- مرحبا 🦷'
    async with seeded_clinic(settings, engine, db_url) as c:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE appointments SET notes = %s WHERE id = %s", (hostile, c.visit))
        _, body = await call("GET", f"{c.url}/api/appointments/{c.visit}", c.tok("admin"))
        assert body["appointment"]["notes"] == hostile


async def test_openapi_describes_every_api_route(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        status, doc = await call("GET", f"{c.url}/api/openapi.json")  # open, like health
        assert status == 200 and doc["openapi"].startswith("3.")
        json.dumps(doc)
        routes = set()
        for route in create_app(settings).router.routes():
            path = route.resource.canonical if route.resource else ""
            if path.startswith("/api/") and route.method != "HEAD":
                routes.add((path, route.method.lower()))
        described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
        assert described == routes
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                assert op["responses"], (path, method)
                if op.get("security") != []:
                    assert "401" in op["responses"], (path, method)
        assert doc["components"]["schemas"]["StatusChange"]["properties"]["status"]["enum"] == [
            "pending", "confirmed", "cancelled", "completed", "no_show"]
