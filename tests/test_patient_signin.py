"""The patient page's sign-in by a code texted to the phone on file, against the real sync app
and PostgreSQL: the code the SMS provider received signs in as that patient, nobody else; no
answer tells whether a number is on file; five wrong tries end the code."""

from __future__ import annotations

import re

import aiohttp
import pytest
from sqlalchemy import text

from bot.seed import seed
from bot.tokens import verify
from tests.notify_servers import SmsProvider
from tests.sync_helpers import serve

EMMA = "+12125550101"  # seeded patient 1


@pytest.fixture
def provider():
    with SmsProvider() as sms:
        yield sms


@pytest.fixture
def sms_settings(settings, engine, provider):
    seed(engine, settings)
    return settings.model_copy(update={"sms_sender": "http", "sms_http_url": provider.url})


async def post(session: aiohttp.ClientSession, url: str, body, **kw) -> tuple[int, dict, dict]:
    async with session.post(url, json=body, **kw) as r:
        return r.status, await r.json(content_type=None), dict(r.headers)


def code_from(provider: SmsProvider) -> str:
    return re.search(r"\b(\d{6})\b", provider.received[-1]["body"]).group(1)


async def test_the_code_texted_to_the_phone_on_file_signs_in_as_that_patient(sms_settings, provider, engine):
    async with serve(sms_settings) as (url, app), aiohttp.ClientSession() as http:
        status, sent, _ = await post(http, f"{url}/api/patient/sign-in/code", {"phone": "(212) 555-0101"})
        assert status == 202 and sent["attempt"]
        assert [m["to"] for m in provider.received] == [EMMA]
        status, done, _ = await post(http, f"{url}/api/patient/sign-in/verify",
                                     {"attempt": sent["attempt"], "code": code_from(provider)})
        assert status == 200 and done["name"] == "Emma Johnson"
        who = verify(done["token"], settings=sms_settings)
        assert (who.role, who.patient_id) == ("patient", 1)
        async with http.get(f"{url}/api/appointments", headers={"Authorization": f"Bearer {done['token']}"}) as r:
            listed = await r.json()
        assert r.status == 200 and {a["patient_id"] for a in listed["appointments"]} == {1}
        # the code is spent: a second use signs nobody in
        status, again, _ = await post(http, f"{url}/api/patient/sign-in/verify",
                                      {"attempt": sent["attempt"], "code": code_from(provider)})
        assert status == 401 and again["error"] == "code_expired"
    with engine.connect() as c:
        assert c.execute(text("SELECT recipient, status FROM notifications")).all() == [(EMMA, "sent")]


async def test_an_unknown_number_gets_the_same_answer_and_no_text(sms_settings, provider):
    async with serve(sms_settings) as (url, app), aiohttp.ClientSession() as http:
        known = await post(http, f"{url}/api/patient/sign-in/code", {"phone": EMMA})
        unknown = await post(http, f"{url}/api/patient/sign-in/code", {"phone": "+1 917 555 0199"})
    assert known[0] == unknown[0] == 202 and known[1]["message"] == unknown[1]["message"]
    assert [m["to"] for m in provider.received] == [EMMA]


async def test_five_wrong_codes_end_the_attempt_and_another_attempts_code_is_refused(sms_settings, provider):
    async with serve(sms_settings) as (url, app), aiohttp.ClientSession() as http:
        _, mine, _ = await post(http, f"{url}/api/patient/sign-in/code", {"phone": EMMA})
        right = code_from(provider)
        _, theirs, _ = await post(http, f"{url}/api/patient/sign-in/code", {"phone": "+12125550102"})
        status, body, _ = await post(http, f"{url}/api/patient/sign-in/verify",
                                     {"attempt": theirs["attempt"], "code": right})
        assert status == 401  # Emma's code does not open Liam's attempt
        wrong = f"{(int(right) + 1) % 10**6:06d}"
        answers = [await post(http, f"{url}/api/patient/sign-in/verify", {"attempt": mine["attempt"], "code": wrong})
                   for _ in range(5)]
        assert [a[1].get("tries_left") for a in answers] == [4, 3, 2, 1, None]
        assert answers[-1][1]["error"] == "code_expired"
        status, body, _ = await post(http, f"{url}/api/patient/sign-in/verify", {"attempt": mine["attempt"], "code": right})
        assert status == 401 and body["error"] == "code_expired"


async def test_limits_and_bad_input(sms_settings, provider):
    async with serve(sms_settings) as (url, app), aiohttp.ClientSession() as http:
        for _ in range(sms_settings.verification_codes_per_recipient):
            assert (await post(http, f"{url}/api/patient/sign-in/code", {"phone": EMMA}))[0] == 202
        status, body, headers = await post(http, f"{url}/api/patient/sign-in/code", {"phone": EMMA})
        assert status == 429 and body["error"] == "too_many_codes" and int(headers["Retry-After"]) > 0
        assert len(provider.received) == sms_settings.verification_codes_per_recipient
        assert (await post(http, f"{url}/api/patient/sign-in/code", {"phone": "12"}))[1]["error"] == "invalid_phone"
        assert (await post(http, f"{url}/api/patient/sign-in/code", {"phone": 5}))[0] == 422
        assert (await post(http, f"{url}/api/patient/sign-in/verify", {"attempt": "x", "code": "abc"}))[0] == 422
        async with http.post(f"{url}/api/patient/sign-in/code", data=f'{{"phone": "{EMMA}"}}',
                             headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415  # what a form of another site could send: refused, nothing texted
        assert len(provider.received) == sms_settings.verification_codes_per_recipient
