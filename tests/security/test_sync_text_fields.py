"""Text PostgreSQL cannot store — a NUL character, a lone surrogate — is refused with 422 in
every writable string field of the REST API, and never reaches the database.

The fields come from ``/api/openapi.json`` itself, so a new text field is covered (or this test
fails because it has no valid body to put the bad text into).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.api_helpers import call, seeded_clinic

SOON = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=40)
BAD = {"nul": "Course\x00; DROP", "only_nul": "\x00", "lone_surrogate": "half \ud83d a tooth"}


def valid_bodies(c) -> dict[tuple[str, str], object]:
    """A body each writing operation accepts (the bad text then replaces one string in it)."""
    day = (SOON.date() + timedelta(days=1)).isoformat()
    return {
        ("patch", "/api/appointments/{id}"): {"status": "confirmed"},
        ("put", "/api/dentists/{id}/working-hours"): [{"weekday": 1, "start_time": "09:00", "end_time": "12:00"}],
        ("post", "/api/dentists/{id}/time-off"): {"starts_at": SOON.isoformat(),
                                                  "ends_at": (SOON + timedelta(hours=2)).isoformat(), "reason": "x"},
        ("post", "/api/dentists/{id}/date-overrides"): {"on_date": day, "start_time": "09:00", "end_time": "12:00",
                                                        "reason": "x"},
        ("post", "/api/closures"): {"on_date": day, "last_date": day, "reason": "x"},
        ("post", "/api/patient/sign-in/code"): {"phone": "+12125550101"},
        ("post", "/api/patient/sign-in/verify"): {"attempt": "no-such-attempt", "code": "123456"},
        ("post", "/api/waitlist"): {"service_id": 1, "patient_id": c.patient, "earliest": SOON.isoformat(),
                                    "latest": (SOON + timedelta(days=2)).isoformat()},
    }


def resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def is_string(doc: dict, schema: dict) -> bool:
    schema = resolve(doc, schema)
    return schema.get("type") == "string" or any(is_string(doc, s) for s in schema.get("anyOf", []))


def string_fields(doc: dict, schema: dict) -> list[tuple]:
    """Paths (keys and list indexes) of every string property a body of ``schema`` may carry."""
    schema = resolve(doc, schema)
    if schema.get("type") == "array":
        return [(0, *p) for p in string_fields(doc, schema["items"])]
    return [(name,) for name, prop in schema.get("properties", {}).items() if is_string(doc, prop)]


def replaced(body, path: tuple, value):
    if isinstance(body, list):
        return [replaced(body[0], path[1:], value)] + body[1:]
    return {**body, path[0]: value} if len(path) == 1 else {**body, path[0]: replaced(body[path[0]], path[1:], value)}


async def test_every_text_field_refuses_what_postgresql_cannot_store(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        admin = c.tok("admin")
        _, doc = await call("GET", f"{c.url}/api/openapi.json")
        bodies = valid_bodies(c)
        writes = {(m, p): op for p, ops in doc["paths"].items() for m, op in ops.items() if "requestBody" in op}
        assert set(writes) == set(bodies), "a writing operation without a valid body here"
        seen_reason = 0
        for (method, path), op in writes.items():
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            fields = string_fields(doc, schema)
            assert fields, (method, path)
            target = c.url + path.replace("{id}", str(c.visit if "appointments" in path else c.dentist))
            for field in fields:
                seen_reason += field[-1] == "reason"
                for kind, bad in BAD.items():
                    before = await c.last_event()
                    status, body = await call(method.upper(), target, admin, replaced(bodies[(method, path)], field, bad))
                    assert (status, body["error"]) == (422, "validation_error"), (method, path, field, kind, body)
                    assert body["details"][0]["loc"] == list(field), (method, path, field, body)
                    assert "\x00" not in body["message"] and "\ud83d" not in body["message"]
                    assert await c.last_event() == before, (method, path, field, kind)  # nothing written
        assert seen_reason == 3  # time off, date overrides and closures each have one
        # and the valid bodies are valid: the 422s above are about the bad text alone
        for (method, path), body in bodies.items():
            target = c.url + path.replace("{id}", str(c.visit if "appointments" in path else c.dentist))
            status, answer = await call(method.upper(), target, admin, body)
            # (a code for no sign-in attempt: read and refused, past the validation)
            assert status in (200, 201, 202) or answer.get("error") == "wrong_code", (method, path, answer)


async def test_the_refusal_says_what_is_wrong(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        status, body = await call("POST", f"{c.url}/api/dentists/{c.dentist}/time-off", c.tok("admin"),
                                  {**valid_bodies(c)[("post", "/api/dentists/{id}/time-off")], "reason": "a\x00b"})
        assert status == 422 and body["details"][0]["loc"] == ["reason"]
        assert "NUL" in body["message"], body
