"""The patient page's sign-in: a one-time code texted to the phone on file (bot/otp.py).

``POST /api/patient/sign-in/code`` ``{"phone": "..."}`` → 202 ``{"attempt": "<id>", "message"}``.
The answer is the same whether or not the number is on file (no answer tells who is a patient);
a code is sent only to a patient's number. ``POST /api/patient/sign-in/verify``
``{"attempt": "<id>", "code": "123456"}`` → 200 ``{"token", "name", "expires_in"}``: a patient
token (PATIENT_SIGN_IN_MINUTES) the page sends as ``Authorization: Bearer``, as any client does.
Refusals: ``invalid_phone`` (422), ``too_many_codes`` (429, ``Retry-After``), ``wrong_code``
(401, with ``tries_left``), ``code_expired`` (401: expired, or five wrong tries: ask for a new
one). The attempt id is random and names the code; it proves nothing by itself.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from aiohttp import web
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from bot.db import DatabaseUnavailable, session_scope
from bot.models import Patient
from bot.notify import notifier_from
from bot.otp import CodeOutcome, Verifier, code_in
from bot.phone import InvalidPhone, normalise_phone
from bot.tokens import mint

from . import keys
from .api_io import ApiError, read_json, text, validated

log = logging.getLogger(__name__)

PURPOSE = "patient_sign_in"
VERIFIER = web.AppKey("patient_verifier", Verifier)


def _verifier(request: web.Request) -> Verifier:
    return request.app[VERIFIER]


async def _verifier_ctx(app: web.Application):
    """The codes' verifier on the API's engine (sync.api's context, which runs before this one)."""
    settings, engine = app[keys.SETTINGS], app[keys.ENGINE]
    app[VERIFIER] = Verifier(engine, settings, notifier_from(engine, settings))
    yield


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: text(40)  # type: ignore[valid-type]


class CodeCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attempt: text(100)  # type: ignore[valid-type]
    code: text(40)  # type: ignore[valid-type]


def _answer(fn):
    async def handler(request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            # only JSON: a page of another site cannot send it without CORS's consent (no preflight
            # passes: SYNC_CORS_ORIGINS covers Socket.IO only), so it cannot make us text anyone
            return web.json_response({"error": "unsupported_media_type", "message": "send application/json"},
                                     status=415)
        try:
            return await fn(request)
        except ApiError as exc:
            return exc.response()
        except DatabaseUnavailable:
            return web.json_response({"error": "unavailable", "message": "the database is unavailable; try again"},
                                     status=503)
    return handler


@_answer
async def send_code(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    raw = validated(CodeRequest, await read_json(request)).phone
    try:
        phone = normalise_phone(raw, settings.phone_region)
    except InvalidPhone as exc:
        raise ApiError(422, "invalid_phone", str(exc)) from None
    attempt = secrets.token_urlsafe(24)
    verifier = _verifier(request)

    def work():
        with session_scope(verifier.engine) as s:
            known = s.scalar(select(Patient.id).where(Patient.phone == phone))
        return verifier.send(PURPOSE, attempt, phone, client=request.remote) if known else None

    result = await asyncio.to_thread(work)
    if result is not None and result.outcome is CodeOutcome.TOO_MANY:
        return web.json_response({"error": "too_many_codes", "message": "Too many codes were sent; try again later."},
                                 status=429, headers={"Retry-After": str(result.retry_after or 3600)})
    if result is not None and result.outcome is CodeOutcome.SEND_FAILED:
        log.warning("patient sign-in: the code to %s could not be sent", phone)
    return web.json_response({"attempt": attempt, "message": "If this number is on file, a 6-digit code is on its way."
                              f" It expires in {settings.verification_code_minutes} minutes."}, status=202)


@_answer
async def verify_code(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    data = validated(CodeCheck, await read_json(request))
    attempt, typed = data.attempt, code_in(data.code)
    if typed is None:
        raise ApiError(422, "validation_error", "code is the 6 digits from the text message")
    verifier = _verifier(request)
    result = await asyncio.to_thread(verifier.check, PURPOSE, attempt, typed)
    if result.outcome is CodeOutcome.WRONG:
        raise ApiError(401, "wrong_code", "That code isn't right.", tries_left=result.tries_left)
    if result.outcome is not CodeOutcome.VERIFIED:
        raise ApiError(401, "code_expired", "That code has expired or was tried too often; ask for a new one.")

    def patient():
        with session_scope(verifier.engine) as s:
            return s.execute(select(Patient.id, Patient.full_name).where(Patient.phone == result.recipient)).first()

    found = await asyncio.to_thread(patient)
    if found is None:  # the record changed its number meanwhile
        raise ApiError(401, "code_expired", "That number is no longer on file; ask the front desk.")
    minutes = settings.patient_sign_in_minutes
    token = mint("patient", found.id, ttl_minutes=minutes, settings=settings)
    log.info("patient %s signed in on the patient page by code", found.id)
    return web.json_response({"token": token, "name": found.full_name, "expires_in": minutes * 60})


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_verifier_ctx)
    app.router.add_post("/api/patient/sign-in/code", send_code)
    app.router.add_post("/api/patient/sign-in/verify", verify_code)
