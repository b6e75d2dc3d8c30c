"""The patient page's sign-in: a one-time code texted to the phone on file (bot/otp.py).

``POST /api/patient/sign-in/code`` ``{"phone": "..."}`` → 202 ``{"attempt": "<id>", "message"}``
at once, before the number is looked up: the answer, and its time, are the same whether or not
the number is on file, and the code's own limits (bot/otp.py) are never told to the caller;
a code is sent, in the background, only to a patient's number. Code requests and typed codes
(each before it is checked) are counted per client address (PATIENT_SIGN_IN_PER_CLIENT an hour,
in this process's memory with the ``limits`` library's moving window: known numbers or not, so
429 tells nothing either).
``POST /api/patient/sign-in/verify``
``{"attempt": "<id>", "code": "123456"}`` → 200 ``{"token", "name", "expires_in"}``: a patient
token (PATIENT_SIGN_IN_MINUTES) the page sends as ``Authorization: Bearer``, as any client does.
Refusals: ``invalid_phone`` (422), ``too_many_requests`` (429, ``Retry-After``), and one
``wrong_code`` (401) for every code that does not sign in: wrong, expired, tried five times, or
of an attempt for a number not on file, which has no code at all. Telling these apart (say,
"4 tries left" against "expired") would tell who is a patient: a wrong guess at a number on
file would answer differently from one at any other number. The attempt id is random and names
the code; it proves nothing by itself. A client past its hourly count gets 429 before its code
is even checked, so the count bounds its guesses.
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
from .throttle import PerClient

log = logging.getLogger(__name__)

PURPOSE = "patient_sign_in"
VERIFIER = web.AppKey("patient_verifier", Verifier)
LIMITER = web.AppKey("patient_sign_in_limiter", PerClient)
SENDING = web.AppKey("patient_sign_in_sending", set)
NOT_SIGNED_IN = ("That code didn't sign you in. Check the 6 digits; a code lasts {minutes} minutes and 5 tries,"
                 " then ask for a new one.")


def _verifier(request: web.Request) -> Verifier:
    return request.app[VERIFIER]


async def _verifier_ctx(app: web.Application):
    """The codes' verifier on the API's engine (sync.api's context, which runs before this one),
    the per-client counter, and the codes being sent (finished before the app stops)."""
    settings, engine = app[keys.SETTINGS], app[keys.ENGINE]
    app[VERIFIER] = Verifier(engine, settings, notifier_from(engine, settings))
    app[LIMITER] = PerClient(settings.patient_sign_in_per_client)
    app[SENDING] = set()
    yield
    if app[SENDING]:
        await asyncio.wait(app[SENDING], timeout=settings.notify_timeout_seconds)


def _counted(request: web.Request, what: str) -> None:
    """One more request of ``what`` from this client; 429 past PATIENT_SIGN_IN_PER_CLIENT an hour."""
    request.app[LIMITER].hit(what, request.remote)


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
    _counted(request, "code")
    attempt = secrets.token_urlsafe(24)
    verifier = _verifier(request)
    client = request.remote

    def work() -> None:
        with session_scope(verifier.engine) as s:
            known = s.scalar(select(Patient.id).where(Patient.phone == phone))
        if known is None:
            return
        result = verifier.send(PURPOSE, attempt, phone, client=client)
        if not result.ok:
            log.warning("patient sign-in: no code to patient %s: %s (%s)", known, result.outcome.value,
                        result.field or "-")

    task = asyncio.create_task(asyncio.to_thread(work))
    request.app[SENDING].add(task)
    task.add_done_callback(request.app[SENDING].discard)
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
    # every guess is counted before it is checked (guesses sent at once cannot all pass a count
    # taken after their answers), and past the count none is checked at all; many attempts'
    # guesses from one place are as many guesses
    _counted(request, "guess")
    result = await asyncio.to_thread(verifier.check, PURPOSE, attempt, typed)
    if result.outcome is not CodeOutcome.VERIFIED:
        raise ApiError(401, "wrong_code", NOT_SIGNED_IN.format(minutes=settings.verification_code_minutes))

    def patient():
        with session_scope(verifier.engine) as s:
            return s.execute(select(Patient.id, Patient.full_name).where(Patient.phone == result.recipient)).first()

    found = await asyncio.to_thread(patient)
    if found is None:  # the record changed its number since the right code was typed (no oracle)
        raise ApiError(401, "code_expired", "That number is no longer on file; ask the front desk.")
    minutes = settings.patient_sign_in_minutes
    token = mint("patient", found.id, ttl_minutes=minutes, settings=settings)
    log.info("patient %s signed in on the patient page by code", found.id)
    return web.json_response({"token": token, "name": found.full_name, "expires_in": minutes * 60})


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_verifier_ctx)
    app.router.add_post("/api/patient/sign-in/code", send_code)
    app.router.add_post("/api/patient/sign-in/verify", verify_code)
