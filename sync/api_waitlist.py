"""REST endpoints of the waitlist (``bot.waitlist``): requests to be offered freed time, and the
offers the sync service's worker makes (``sync.waitlist``).

A patient joins, lists and withdraws their own requests and answers their own offers; an admin
lists everyone's and joins or withdraws for any patient; a dentist lists the requests naming
them. A refusal by role (403) comes before any lookup; someone else's request or offer answers
exactly as a missing one (404, the same body). Outcomes of ``Waitlist`` map to answers as the
booking service's do (``api_io.from_result``): ``offer_gone`` 409 when someone else took the
time or its hold ran out, ``limit_reached`` 409 past ``WAITLIST_ENTRIES_PER_PATIENT``.
Every change goes through PostgreSQL, whose triggers announce ``waitlist_changed`` and
``waitlist_offer`` (sql/010); no handler notifies anyone.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from bot.db import session_scope
from bot.models import Dentist, Patient, Service
from bot.tokens import Identity
from bot.waitlist import EntryView, OfferView

from . import keys
from .api_io import ApiError, WaitlistIn, endpoint, from_result, path_id, query_id, read_json, run, validated
from .keys import ENGINE

NO_SUCH_OFFER = "No such offer."  # bot.waitlist's answer for a missing offer, word for word


def _roles(who: Identity, *roles: str) -> None:
    if who.role not in roles:
        raise ApiError(403, "forbidden", f"the waitlist here is for {' and '.join(roles)} tokens")


def _names(request: web.Request, entries: list[EntryView], *, patients: bool) -> list[dict]:
    """The entries as JSON, with their service's and dentist's names (and, for staff, the patient's)."""
    def read() -> list[dict]:
        with session_scope(request.app[ENGINE]) as s:
            def names(model, column, ids) -> dict[int, str]:
                ids = {i for i in ids if i is not None}
                return dict(s.execute(select(model.id, column).where(model.id.in_(ids))).all()) if ids else {}

            services = names(Service, Service.name, (e.service_id for e in entries))
            dentists = names(Dentist, Dentist.full_name, (e.dentist_id for e in entries))
            people = names(Patient, Patient.full_name, (e.patient_id for e in entries)) if patients else {}
        out = []
        for e in entries:
            row = {**e.as_dict(), "service_name": services.get(e.service_id, ""),
                   "dentist_name": dentists.get(e.dentist_id) if e.dentist_id is not None else None}
            if patients:
                row["patient_name"] = people.get(e.patient_id, "")
            out.append(row)
        return out

    return read()  # called in a worker thread


@endpoint
async def list_entries(request: web.Request, who: Identity) -> web.Response:
    _roles(who, "admin", "dentist", "patient")
    patient_id = query_id(request, "patient_id")
    if who.role == "patient" and patient_id not in (None, who.patient_id):
        raise ApiError(403, "forbidden", "a patient sees their own waitlist requests only")
    waitlist = request.app[keys.WAITLIST]

    def read() -> list[dict]:
        return _names(request, waitlist.entries(who, patient_id=patient_id), patients=who.role != "patient")

    return web.json_response({"entries": await run(request, read)})


@endpoint
async def join(request: web.Request, who: Identity) -> web.Response:
    _roles(who, "admin", "patient")
    body = validated(WaitlistIn, await read_json(request))
    if who.role == "patient":
        if body.patient_id not in (None, who.patient_id):
            raise ApiError(403, "forbidden", "a patient joins the waitlist for themselves only")
        patient_id = who.patient_id
    elif body.patient_id is None:
        raise ApiError(422, "validation_error", "patient_id: the admin names the patient",
                       details=[{"loc": ["patient_id"], "msg": "required for an admin", "type": "missing"}])
    else:
        patient_id = body.patient_id
    waitlist = request.app[keys.WAITLIST]

    def add():
        result = waitlist.join(who, patient_id=patient_id, service_id=body.service_id, latest=body.latest,
                               earliest=body.earliest, dentist_id=body.dentist_id,
                               appointment_id=body.appointment_id)
        return result, _names(request, [result.entry], patients=who.role != "patient") if result.ok else None

    result, entries = await run(request, add)
    from_result(result)
    return web.json_response({"entry": entries[0], "message": result.message}, status=201)


@endpoint
async def withdraw(request: web.Request, who: Identity) -> web.Response:
    _roles(who, "admin", "patient")
    entry_id = path_id(request)
    waitlist = request.app[keys.WAITLIST]

    def remove():
        result = waitlist.withdraw(who, entry_id)
        return result, _names(request, [result.entry], patients=who.role != "patient") if result.ok else None

    result, entries = await run(request, remove)
    from_result(result)  # someone else's: NOT_FOUND, as a missing one
    return web.json_response({"entry": entries[0], "message": result.message})


@endpoint
async def list_offers(request: web.Request, who: Identity) -> web.Response:
    _roles(who, "patient")
    offers: list[OfferView] = await run(request, request.app[keys.WAITLIST].open_offers, who)
    return web.json_response({"offers": [o.as_dict() for o in offers]})


def _offer_id(request: web.Request, who: Identity) -> int:
    _roles(who, "patient")  # the patient offered alone answers an offer
    try:
        return path_id(request)
    except ApiError:
        raise ApiError(404, "not_found", NO_SUCH_OFFER) from None


@endpoint
async def accept(request: web.Request, who: Identity) -> web.Response:
    """Take the offered time: 201 with the visit booked (or the visit moved there)."""
    offer_id = _offer_id(request, who)
    result = await run(request, request.app[keys.WAITLIST].accept, who, offer_id)
    from_result(result)  # another's offer: NOT_FOUND; taken or run out: offer_gone
    return web.json_response({"appointment": result.appointment.as_dict(), "outcome": result.outcome.value,
                              "offer": result.offer.as_dict() if result.offer else None,
                              "message": result.message}, status=201)


@endpoint
async def decline(request: web.Request, who: Identity) -> web.Response:
    offer_id = _offer_id(request, who)
    result = await run(request, request.app[keys.WAITLIST].decline, who, offer_id)
    from_result(result)  # not open any more: offer_gone
    return web.json_response({"offer": result.offer.as_dict() if result.offer else None, "message": result.message})


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/api/waitlist", list_entries)
    r.add_post("/api/waitlist", join)
    r.add_delete(r"/api/waitlist/{id:[0-9]+}", withdraw)
    r.add_get("/api/waitlist/offers", list_offers)
    r.add_post(r"/api/waitlist/offers/{id:[0-9]+}/accept", accept)
    r.add_post(r"/api/waitlist/offers/{id:[0-9]+}/decline", decline)
