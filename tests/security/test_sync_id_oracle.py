"""No id oracle: asking about another dentist's (or patient's) appointment, time off or date
override answers exactly as asking about an id that does not exist — same status, same body —
on every endpoint that takes such an id, so nobody can tell which ids exist.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.api_helpers import call, seeded_clinic

FUTURE = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=120)
MISSING = 987_654_321


async def test_someone_elses_ids_look_exactly_like_missing_ones(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        admin = c.tok("admin")
        _, off = await call("POST", f"{c.url}/api/dentists/{c.dentist}/time-off", admin,
                            {"starts_at": FUTURE.isoformat(), "ends_at": (FUTURE + timedelta(hours=2)).isoformat()})
        _, override = await call("POST", f"{c.url}/api/dentists/{c.dentist}/date-overrides", admin,
                                 {"on_date": (FUTURE.date() + timedelta(days=1)).isoformat()})
        _, closure = await call("POST", f"{c.url}/api/closures", admin,
                                {"on_date": (FUTURE.date() + timedelta(days=2)).isoformat()})
        theirs = {"appointment": c.visit, "time_off": off["time_off"]["id"],
                  "override": override["date_override"]["id"], "closure": closure["closures"][0]["id"],
                  "dentist": c.dentist}
        probes = [  # (method, path with {id}, body, kind of id)
            ("GET", "/api/appointments/{id}", None, "appointment"),
            ("PATCH", "/api/appointments/{id}", {"status": "cancelled"}, "appointment"),
            ("DELETE", "/api/time-off/{id}", None, "time_off"),
            ("DELETE", "/api/date-overrides/{id}", None, "override"),
            ("DELETE", "/api/closures/{id}", None, "closure"),
            ("GET", "/api/dentists/{id}/time-off", None, "dentist"),
            ("POST", "/api/dentists/{id}/time-off",
             {"starts_at": FUTURE.isoformat(), "ends_at": (FUTURE + timedelta(hours=1)).isoformat()}, "dentist"),
            ("GET", "/api/dentists/{id}/date-overrides", None, "dentist"),
            ("PUT", "/api/dentists/{id}/working-hours",
             [{"weekday": 2, "start_time": "09:00", "end_time": "10:00"}], "dentist"),
        ]
        callers = {"other_dentist": c.tok("dentist", c.other_dentist),
                   "other_patient": c.tok("patient", c.other_patient),
                   "service": c.tok("service", "actions")}
        before = await c.last_event()
        for who, tok in callers.items():
            for method, path, body, kind in probes:
                existing = await call(method, c.url + path.format(id=theirs[kind]), tok, body)
                missing = await call(method, c.url + path.format(id=MISSING), tok, body)
                assert existing == missing, (who, method, path, existing, missing)
                assert existing[0] in (403, 404), (who, method, path, existing)
        # the appointment endpoints in particular answer 404 to a dentist and a patient
        for who in ("other_dentist", "other_patient"):
            for method, body in (("GET", None), ("PATCH", {"status": "cancelled"})):
                status, answer = await call(method, f"{c.url}/api/appointments/{c.visit}", callers[who], body)
                assert (status, answer["error"]) == (404, "not_found"), (who, method, answer)
        status, _ = await call("DELETE", f"{c.url}/api/time-off/{theirs['time_off']}", callers["other_dentist"])
        assert status == 404
        assert await c.last_event() == before  # and nothing was changed by any of it
        # while their owners still get at them
        assert (await call("GET", f"{c.url}/api/appointments/{c.visit}", c.tok("dentist", c.dentist)))[0] == 200
        assert (await call("DELETE", f"{c.url}/api/time-off/{theirs['time_off']}", c.tok("dentist", c.dentist)))[0] == 204
