"""The OpenAPI 3.1 description of every REST endpoint the sync service serves (``/api/openapi.json``).

Request bodies come from the pydantic models in ``sync.api``, so the description cannot
drift from the validation; responses are described by hand, briefly.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from bot.models import STATUSES
from bot.settings import Settings

REF = "#/components/schemas/{model}"


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*codes: int) -> dict:
    text = {400: "malformed JSON or query", 401: "missing, forged or expired token", 403: "not allowed for this token",
            404: "no such resource (or not the caller's)", 409: "conflicts with the current state",
            413: "body larger than 64 KiB", 415: "the body is not application/json", 422: "the body does not validate",
            429: "too many requests: try again after Retry-After seconds", 503: "the database is unavailable"}
    return {str(c): {"description": text[c], **_json(_ref("Error"))} for c in codes}


def _id(name: str = "id", where: str = "path") -> dict:
    return {"name": name, "in": where, "required": where == "path",
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}


def _op(summary: str, ok: dict, *errors: int, params: list | None = None, body: dict | None = None,
        secured: bool = True, status: str = "200") -> dict:
    op: dict[str, Any] = {"summary": summary, "responses": {status: ok, **_errors(*errors)}}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    if not secured:
        op["security"] = []
    return op


def _ok(description: str, schema: dict | None = None) -> dict:
    return {"description": description, **(_json(schema) if schema else {})}


def _obj(**props: dict) -> dict:
    return {"type": "object", "properties": props, "required": list(props)}


@lru_cache
def _components() -> dict:
    from .api_io import ClosureIn, DateOverrideIn, HoursBlock, StatusChange, TimeOffIn, WaitlistIn

    schemas: dict[str, Any] = {}
    for model in (StatusChange, HoursBlock, TimeOffIn, DateOverrideIn, ClosureIn, WaitlistIn):
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["Error"] = {"type": "object", "required": ["error", "message"], "properties": {
        "error": {"type": "string", "description": "stable code, e.g. validation_error"},
        "message": {"type": "string"}, "details": {"type": "array", "items": {"type": "object"}}}}
    ts = {"type": "string", "format": "date-time"}
    schemas["Appointment"] = _obj(
        id={"type": "integer"}, patient_id={"type": "integer"}, patient_name={"type": "string"},
        dentist_id={"type": "integer"}, dentist_name={"type": "string"}, service_id={"type": "integer"},
        service_name={"type": "string"}, starts_at=ts, ends_at=ts,
        status={"type": "string", "enum": list(STATUSES)}, notes={"type": ["string", "null"]},
        operatory_id={"type": ["integer", "null"], "description": "the chair it holds"},
        hygienist_id={"type": ["integer", "null"], "description": "who performs it, for a hygienist's service"},
        hygienist_name={"type": ["string", "null"], "description": "that hygienist's name"})
    schemas["WorkingHours"] = _obj(id={"type": "integer"}, weekday={"type": "integer"},
                                   start_time={"type": "string"}, end_time={"type": "string"})
    schemas["TimeOff"] = _obj(id={"type": "integer"}, dentist_id={"type": "integer"}, starts_at=ts, ends_at=ts,
                              reason={"type": ["string", "null"]})
    day, hhmm, note = ({"type": "string", "format": "date"}, {"type": ["string", "null"]},
                       {"type": ["string", "null"]})
    schemas["DateOverride"] = _obj(id={"type": "integer"}, dentist_id={"type": "integer"}, on_date=day,
                                   start_time=hhmm, end_time=hhmm, reason=note)
    schemas["Closure"] = _obj(id={"type": "integer"}, on_date=day, reason=note)
    schemas.update(_waitlist_schemas(ts))
    return schemas


def _waitlist_schemas(ts: dict) -> dict:
    from bot.waitlist import ENTRY_STATUSES, OFFER_STATUSES

    maybe_id, name = {"type": ["integer", "null"]}, {"type": "string"}
    entry = _obj(id={"type": "integer"}, patient_id={"type": "integer"}, service_id={"type": "integer"},
                 service_name=name, dentist_id={**maybe_id, "description": "null: any dentist"},
                 dentist_name={"type": ["string", "null"]}, earliest=ts, latest=ts,
                 status={"type": "string", "enum": list(ENTRY_STATUSES)}, created_at=ts,
                 appointment_id={**maybe_id, "description": "the visit to move earlier; null: a new booking"})
    entry["properties"]["patient_name"] = {"type": "string", "description": "for the clinic's staff only"}
    offer = _obj(id={"type": "integer"}, entry_id={"type": "integer"}, patient_id={"type": "integer"},
                 service_id={"type": "integer"}, service_name=name, dentist_id={"type": "integer"},
                 dentist_name=name, starts_at=ts, ends_at=ts,
                 expires_at={**ts, "description": "held for the patient until then"},
                 status={"type": "string", "enum": list(OFFER_STATUSES)},
                 appointment_id={**maybe_id, "description": "the visit it became, or the visit it would move"})
    return {"WaitlistEntry": entry, "WaitlistOffer": offer}


def _waitlist_paths() -> dict:
    entry, offer, text = _ref("WaitlistEntry"), _ref("WaitlistOffer"), {"type": "string"}
    one_entry = _obj(entry=entry, message=text)
    offer_or_null = {"anyOf": [offer, {"type": "null"}]}
    return {
        "/api/waitlist": {
            "get": _op("Live waitlist requests (waiting or offered): admin all (or patient_id's), dentist those "
                       "naming them, patient their own",
                       _ok("list", _obj(entries={"type": "array", "items": entry})), 400, 401, 403, 503,
                       params=[_id("patient_id", "query")]),
            "post": _op("Join the waitlist: a patient for themselves, an admin for patient_id (asking again for "
                        "the same service and visit changes the waiting request)",
                        _ok("on the waitlist", one_entry), 400, 401, 403, 404, 409, 413, 422, 503,
                        body=_ref("WaitlistIn"), status="201"),
        },
        "/api/waitlist/{id}": {"delete": _op(
            "Withdraw a waitlist request (the patient's own; admin any)", _ok("withdrawn", one_entry),
            401, 403, 404, 503, params=[_id()])},
        "/api/waitlist/offers": {"get": _op(
            "The patient's open offers, the latest first", _ok("list", _obj(offers={"type": "array", "items": offer})),
            401, 403, 503)},
        "/api/waitlist/offers/{id}/accept": {"post": _op(
            "Take the offered time (the patient offered only): the visit booked, or moved there; 409 offer_gone "
            "when someone else took it or its hold ran out",
            {"description": "booked", **_json(_obj(appointment=_ref("Appointment"), outcome=text,
                                                   offer=offer_or_null, message=text))},
            401, 403, 404, 409, 503, params=[_id()], status="201")},
        "/api/waitlist/offers/{id}/decline": {"post": _op(
            "Turn the offer down (the patient offered only); the request keeps waiting",
            _ok("declined", _obj(offer=offer_or_null, message=text)), 401, 403, 404, 409, 503, params=[_id()])},
    }


def document(settings: Settings) -> dict:
    from .patient_signin import CodeCheck, CodeRequest

    appt = _json(_obj(appointment=_ref("Appointment")))["content"]
    hours = _obj(dentist_id={"type": "integer"}, working_hours={"type": "array", "items": _ref("WorkingHours")})
    q_time = [{"name": n, "in": "query", "required": False, "schema": {"type": "string"},
               "description": "ISO date (clinic's zone) or date-time"} for n in ("from", "to")]
    any_json = {"type": "object"}
    ids = {"type": "array", "items": {"type": "integer"},
           "description": "visits still booked that the change leaves outside working time"}
    paths = {
        "/api/openapi.json": {"get": _op("This description", _ok("OpenAPI 3.1 document", any_json), secured=False)},
        "/api/realtime/health": {"get": {
            "summary": "Liveness of the sync service and its database listener", "security": [],
            "responses": {"200": _ok("healthy", any_json), "503": _ok("the listener is not connected", any_json)}}},
        "/api/realtime/status": {"get": _op("The caller's own connections and channels",
                                            _ok("status", any_json), 401)},
        "/api/realtime/stats": {"get": _op("Counters: connections, events, delivery lag (admin)",
                                           _ok("stats", any_json), 401, 403)},
        "/api/appointments": {"get": _op(
            "Appointments overlapping [from, to): admin all, dentist own, patient own",
            _ok("list", _obj(**{"from": {"type": "string"}, "to": {"type": "string"},
                                "appointments": {"type": "array", "items": _ref("Appointment")},
                                "truncated": {"type": "boolean"},
                                "last_event_id": {"type": "integer", "description":
                                                  "resume live updates after this outbox id (realtime.js advance)"}})),
            400, 401, 403, 503, params=q_time + [_id("dentist_id", "query"), _id("patient_id", "query")])},
        "/api/appointments/{id}": {
            "get": _op("One appointment", {"description": "found", "content": appt}, 401, 403, 404, 503,
                       params=[_id()]),
            "patch": _op("Change a visit's status (admin, or the visit's dentist)",
                         {"description": "updated", "content": appt}, 400, 401, 403, 404, 409, 413, 422, 503,
                         params=[_id()], body=_ref("StatusChange")),
        },
        "/api/dentists": {"get": _op("Dentists", _ok("list", _obj(dentists={"type": "array", "items": any_json})),
                                     401, 503)},
        "/api/dentists/{id}/working-hours": {
            "get": _op("A dentist's weekly hours", _ok("hours", hours), 401, 404, 503, params=[_id()]),
            "put": _op("Replace a dentist's weekly hours (admin or that dentist)", _ok("replaced", hours),
                       400, 401, 403, 404, 413, 422, 503, params=[_id()],
                       body={"type": "array", "maxItems": 50, "items": _ref("HoursBlock")}),
        },
        "/api/dentists/{id}/time-off": {
            "get": _op("A dentist's current and future time off (admin or that dentist)",
                       _ok("list", _obj(dentist_id={"type": "integer"},
                                        time_off={"type": "array", "items": _ref("TimeOff")})),
                       401, 403, 404, 503, params=[_id()]),
            "post": _op("Add time off (admin or that dentist)",
                        _ok("created", _obj(time_off=_ref("TimeOff"),
                                            overlapping_appointments={"type": "array",
                                                                      "items": {"type": "integer"}})),
                        400, 401, 403, 404, 413, 422, 503, params=[_id()], body=_ref("TimeOffIn"),
                        status="201"),
        },
        "/api/time-off/{id}": {"delete": _op("Remove time off (admin or that dentist)", _ok("deleted"),
                                             401, 403, 404, 503, params=[_id()], status="204")},
        "/api/dentists/{id}/date-overrides": {
            "get": _op("A dentist's date overrides from today on (admin or that dentist)",
                       _ok("list", _obj(dentist_id={"type": "integer"},
                                        date_overrides={"type": "array", "items": _ref("DateOverride")})),
                       401, 403, 404, 503, params=[_id()]),
            "post": _op("Other hours on one date, or not working (admin or that dentist)",
                        _ok("created", _obj(date_override=_ref("DateOverride"), overlapping_appointments=ids)),
                        400, 401, 403, 404, 409, 413, 422, 503, params=[_id()], body=_ref("DateOverrideIn"),
                        status="201"),
        },
        "/api/date-overrides/{id}": {"delete": _op("Remove a date override (admin or that dentist)",
                                                   _ok("deleted"), 401, 403, 404, 503, params=[_id()],
                                                   status="204")},
        "/api/closures": {
            "get": _op("The clinic's closures from today on",
                       _ok("list", _obj(closures={"type": "array", "items": _ref("Closure")})), 401, 503),
            "post": _op("Close the clinic on a date or a range of dates (admin)",
                        _ok("created", _obj(closures={"type": "array", "items": _ref("Closure")},
                                            overlapping_appointments=ids)),
                        400, 401, 403, 409, 413, 422, 503, body=_ref("ClosureIn"), status="201"),
        },
        "/api/closures/{id}": {"delete": _op("Reopen a closed date (admin)", _ok("deleted"),
                                             401, 403, 404, 503, params=[_id()], status="204")},
        **_waitlist_paths(),
        "/api/session": {"get": {**_op(
            "Who is signed in: a staff session cookie (with the CSRF token its writes send back in "
            "X-CSRF-Token) or a bearer token (csrf_token null)",
            _ok("the caller", _obj(role={"type": "string"}, sub={"type": "string"}, name={"type": "string"},
                                   email={"type": ["string", "null"]},
                                   dentist_id={"type": ["integer", "null"]}, patient_id={"type": ["integer", "null"]},
                                   csrf_token={"type": ["string", "null"]},
                                   expires_at={"type": ["string", "null"]})), 401, 503),
            "security": [{"bearer": []}, {"staffSession": []}]}},
        "/api/patient/sign-in/code": {"post": _op(
            "Text a 6-digit sign-in code to this phone if it is a patient's (the same answer either way)",
            _ok("accepted", _obj(attempt={"type": "string"}, message={"type": "string"})),
            400, 413, 415, 422, 429, 503, body=CodeRequest.model_json_schema(), secured=False, status="202")},
        "/api/patient/sign-in/verify": {"post": _op(
            "Trade the texted code for a patient token (Authorization: Bearer)",
            _ok("signed in", _obj(token={"type": "string"}, name={"type": "string"}, expires_in={"type": "integer"})),
            400, 401, 413, 415, 422, 429, 503, body=CodeCheck.model_json_schema(), secured=False)},
        "/api/feeds/me": {"get": _op(
            "The caller's private calendar feed URL (a dentist's or a patient's; GET it for text/calendar, "
            "no credential: the URL is the secret)",
            _ok("the feed", _obj(url={"type": "string", "format": "uri"})), 401, 404, 503)},
        "/api/feeds/me/renew": {"post": _op(
            "A new URL for the caller's own calendar feed; every earlier URL of it stops working",
            _ok("the new feed URL", _obj(url={"type": "string", "format": "uri"})), 401, 403, 404, 503)},
        "/api/feeds/{kind}/{id}/renew": {"post": _op(
            "A new calendar feed URL for a dentist or a patient (admin); every earlier URL of theirs stops working",
            _ok("the new feed URL", _obj(url={"type": "string", "format": "uri"})), 401, 403, 404, 503,
            params=[{"name": "kind", "in": "path", "required": True,
                     "schema": {"type": "string", "enum": ["dentist", "patient"]}}, _id()])},
        "/api/services": {"get": _op("Services", _ok("list", _obj(services={"type": "array", "items": any_json})),
                                     401, 503)},
        "/api/operatories": {"get": _op("Chairs (operatories)", _ok("list", _obj(
            operatories={"type": "array", "items": any_json})), 401, 503)},
        "/api/hygienists": {"get": _op("Hygienists", _ok("list", _obj(
            hygienists={"type": "array", "items": any_json})), 401, 503)},
        "/api/recalls": {"get": _op("Patients due for a recalled service, the longest overdue first (admin)",
                                    _ok("list", _obj(due={"type": "array", "items": any_json})), 401, 403, 503)},
        "/api/attendance": {"get": _op("Patients with no-shows or late cancellations, the most first (admin)",
                                       _ok("list", _obj(patients={"type": "array", "items": any_json})),
                                       401, 403, 503)},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{settings.clinic_name} booking API", "version": "1.0.0",
                 "description": "REST endpoints of the sync service. Live updates travel over Socket.IO "
                                "(docs/realtime.md); pages and the JavaScript client: docs/web.md."},
        "servers": [{"url": "/"}],
        "components": {"schemas": _components(), "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            # a signed-in staff page (POST /login); its writes also send X-CSRF-Token (docs/security.md)
            "staffSession": {"type": "apiKey", "in": "cookie", "name": "staff_session"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }
