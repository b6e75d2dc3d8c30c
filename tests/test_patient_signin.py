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
from sync import patient_signin
from tests.notify_servers import SmsProvider
from tests.polling import wait_until
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


async def texted(provider: SmsProvider, count: int) -> None:
    """Until the provider has had ``count`` texts (they are sent after the answer)."""
    await wait_until(lambda: len(provider.received) >= count, 10, what=f"{count} texts")


async def settled(app) -> None:
    """Until every code being sent in the background is sent (or refused)."""
    await wait_until(lambda: not app[patient_signin.SENDING], 10, what="the codes being sent")


async def test_the_code_texted_to_the_phone_on_file_signs_in_as_that_patient(sms_settings, provider, engine):
    async with serve(sms_settings) as (url, app), aiohttp.ClientSession() as http:
        status, sent, _ = await post(http, f"{url}/api/patient/sign-in/code", {"phone": "(212) 555-0101"})
        assert status == 202 and sent["attempt"]
        await texted(provider, 1)
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
        assert status == 401 and again["error"] == "wrong_code"
    with engine.connect() as c:
        assert c.execute(text("SELECT recipient, status FROM notifications")).all() == [(EMMA, "sent")]


async def test_an_unknown_number_gets_the_same_answer_and_no_text(sms_settings, provider):
    async with serve(sms_settings) as (url, app), aiohttp.ClientSession() as http:
        known = await post(http, f"{url}/api/patient/sign-in/code", {"phone": EMMA})
        unknown = await post(http, f"{url}/api/patient/sign-in/code", {"phone": "+1 917 555 0199"})
        await settled(app)
    assert known[0] == unknown[0] == 202 and known[1]["message"] == unknown[1]["message"]
    assert [m["to"] for m in provider.received] == [EMMA]


async def test_no_answer_tells_who_is_a_patient_once_a_number_has_had_its_codes(sms_settings, provider):
    """A number's own hourly limit is never told (it would say the number is on file): past it the
    answer is the same 202, no text goes out; only the per-client count answers 429, for every
    number alike."""
    async with serve(sms_settings) as (url, app), aiohttp.ClientSession() as http:
        for _ in range(sms_settings.verification_codes_per_recipient + 2):
            assert (await post(http, f"{url}/api/patient/sign-in/code", {"phone": EMMA}))[0] == 202
        await settled(app)
        assert len(provider.received) == 1  # the resend wait is per number, whoever asks
        left = sms_settings.patient_sign_in_per_client - sms_settings.verification_codes_per_recipient - 2
        for i in range(left):
            assert (await post(http, f"{url}/api/patient/sign-in/code", {"phone": f"+1917555{i:04d}"}))[0] == 202
        answers = [await post(http, f"{url}/api/patient/sign-in/code", {"phone": phone})
                   for phone in (EMMA, "+12125550102", "+19175559999")]
    assert [a[0] for a in answers] == [429, 429, 429] and len({a[1]["message"] for a in answers}) == 1
    assert all(int(a[2]["Retry-After"]) > 0 for a in answers)


async def test_five_wrong_codes_end_the_attempt_and_another_attempts_code_is_refused(sms_settings, provider):
    async with serve(sms_settings) as (url, app), aiohttp.ClientSession() as http:
        _, mine, _ = await post(http, f"{url}/api/patient/sign-in/code", {"phone": EMMA})
        await texted(provider, 1)
        right = code_from(provider)
        _, theirs, _ = await post(http, f"{url}/api/patient/sign-in/code", {"phone": "+12125550102"})
        await texted(provider, 2)
        status, body, _ = await post(http, f"{url}/api/patient/sign-in/verify",
                                     {"attempt": theirs["attempt"], "code": right})
        assert status == 401  # Emma's code does not open Liam's attempt
        wrong = f"{(int(right) + 1) % 10**6:06d}"
        answers = [await post(http, f"{url}/api/patient/sign-in/verify", {"attempt": mine["attempt"], "code": wrong})
                   for _ in range(5)]
        # one answer for every refusal (the number of tries left would tell a patient's attempt
        # from any other: tests/security/test_verified_identity_attacks.py)
        assert {(a[0], a[1]["error"]) for a in answers} == {(401, "wrong_code")}
        assert all("tries_left" not in a[1] for a in answers)
        status, body, _ = await post(http, f"{url}/api/patient/sign-in/verify", {"attempt": mine["attempt"], "code": right})
        assert status == 401 and body == answers[0][1]  # locked after five: the right code no longer signs in


async def test_wrong_codes_of_many_attempts_count_per_client(sms_settings, provider):
    async with serve(sms_settings) as (url, app), aiohttp.ClientSession() as http:
        answers = [(await post(http, f"{url}/api/patient/sign-in/verify", {"attempt": f"guess-{i}",
                                                                           "code": "123456"}))[0]
                   for i in range(sms_settings.patient_sign_in_per_client + 1)]
    assert answers[:-1] == [401] * sms_settings.patient_sign_in_per_client and answers[-1] == 429


async def test_bad_input(sms_settings, provider):
    async with serve(sms_settings) as (url, app), aiohttp.ClientSession() as http:
        assert (await post(http, f"{url}/api/patient/sign-in/code", {"phone": "12"}))[1]["error"] == "invalid_phone"
        assert (await post(http, f"{url}/api/patient/sign-in/code", {"phone": 5}))[0] == 422
        assert (await post(http, f"{url}/api/patient/sign-in/verify", {"attempt": "x", "code": "abc"}))[0] == 422
        async with http.post(f"{url}/api/patient/sign-in/code", data=f'{{"phone": "{EMMA}"}}',
                             headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415  # what a form of another site could send: refused, nothing texted
        await settled(app)
        assert provider.received == []
