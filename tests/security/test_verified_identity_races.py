"""Races on the verified-identity features found by a second security review (2026-12-04):
requests sent at once got past a limit or a revocation that held one at a time. Each test failed
on the code before its fix (docs/security.md names each rule):

* a sign-in whose password was checked just before `user passwd` still opened a session after it;
* guesses sent at once on the patient page were all checked, past the per-client count;
* codes asked for at once all passed the hourly counts (per client, and the clinic's ceiling).

Races are made deterministic by holding one step open (a barrier or a pause at a point the
code reaches anyway), as tests/test_staff_sessions.py does for the session check: nothing the
code decides is changed, only when its two halves run."""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp
import psycopg
import pytest
from sqlalchemy import event

from bot.accounts import set_password
from bot.notify import notifier_from
from bot.otp import CodeOutcome, Verifier
from bot.seed import seed
from sync import keys, patient_signin
from tests.staff_helpers import PASSWORD, account, login
from tests.sync_helpers import serve
from tests.test_patient_signin import post, settled

EMMA = "+12125550101"  # seeded patient 1
NEW_PASSWORD = "a brand new password nobody else knows"


# --- `user passwd` ends a sign-in checked against the old password -------------------------------

async def test_user_passwd_ends_a_sign_in_checked_against_the_old_password(settings, engine):
    """An operator's `user passwd` (every session ends) lands just after a thief's sign-in with the
    old password was checked: the session that sign-in opens ends with the others. (Before the
    fix the session was opened in a second transaction, which checked only that the account was
    active, and the thief kept a fresh 8-hour session.) The hook runs the change as the session is
    written."""
    account(engine, settings, "desk@clinic.example")
    changed = threading.Thread(target=set_password, args=(engine, settings, "desk@clinic.example", NEW_PASSWORD))

    def passwd_at_the_sessions_insert(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO STAFF_SESSIONS") and changed.ident is None:
            changed.start()  # the operator's `python -m bot user passwd desk@clinic.example`, now
            time.sleep(0.2)  # time for it to end the sessions it can

    served = None
    try:
        async with serve(settings) as (url, app):
            served = app[keys.ENGINE]
            event.listen(served, "before_cursor_execute", passwd_at_the_sessions_insert)
            thief = await login(url, "desk@clinic.example", PASSWORD)  # the OLD password
            event.remove(served, "before_cursor_execute", passwd_at_the_sessions_insert)
            await asyncio.to_thread(changed.join, 10)
            assert thief.status == 200 and thief.cookie is not None  # the check passed before the change
            async with aiohttp.ClientSession() as http, \
                    http.get(f"{url}/api/session", headers=thief.cookie_header) as r:
                after = r.status
            old_again = (await login(url, "desk@clinic.example", PASSWORD)).status
            fresh = (await login(url, "desk@clinic.example", NEW_PASSWORD)).status
        assert changed.ident is not None  # the change did land there
    finally:
        if served is not None and event.contains(served, "before_cursor_execute", passwd_at_the_sessions_insert):
            event.remove(served, "before_cursor_execute", passwd_at_the_sessions_insert)
    assert (old_again, fresh) == (401, 200)  # the old password no longer signs in; the new one does
    assert after == 401, after  # the session the old password opened ended with the change


# --- the patient page's per-client count bounds guesses sent at once ----------------------------

async def test_guesses_sent_at_once_are_counted_before_they_are_checked(settings, engine, db_url):
    """Five guesses sent at once from one client allowed two: two are checked, the rest refused
    unchecked (429). (Before the fix the count was tested before the check and a guess counted
    only after its answer, so all five passed the test first.) A slow check holds them together."""
    seed(engine, settings)
    s = settings.model_copy(update={"patient_sign_in_per_client": 2})
    async with serve(s) as (url, app), aiohttp.ClientSession() as http:
        _, sent, _ = await post(http, f"{url}/api/patient/sign-in/code", {"phone": EMMA})
        await settled(app)
        verifier = app[patient_signin.VERIFIER]
        real_check = verifier.check

        def slow_check(*args, **kwargs):  # a loaded database: the check takes a moment
            time.sleep(0.3)
            return real_check(*args, **kwargs)

        verifier.check = slow_check
        guesses = [asyncio.create_task(post(http, f"{url}/api/patient/sign-in/verify",
                                            {"attempt": sent["attempt"], "code": f"{n:06d}"}))
                   for n in range(5)]  # (000000..000004: the real code is almost surely none of them)
        answers = await asyncio.gather(*guesses)
    with psycopg.connect(db_url) as conn:
        checked = conn.execute("SELECT attempts FROM verification_codes WHERE recipient = %s",
                               (EMMA,)).fetchone()[0]
    statuses = sorted(status for status, _, _ in answers)
    assert checked == 2, f"{checked} guesses checked from one client allowed 2"
    assert statuses == [401, 401, 429, 429, 429], statuses


# --- the hourly code limits hold for codes asked for at once -----------------------------------

NUMBERS = [f"+121255501{n:02d}" for n in range(10, 16)]  # six numbers the clinic may text


@pytest.mark.parametrize("limit", ["client", "clinic"])
def test_codes_asked_for_at_once_stay_within_the_hourly_limits(settings, engine, db_url, limit):
    """Six codes asked for at once, to six numbers, from one address (or six, against the clinic's
    ceiling VERIFICATION_CODES_PER_HOUR): exactly the limit is texted. (Before the fix the lock
    was per number, so all six read the same count and all were texted.) The hook holds each
    sender at its insert until all have counted, which only a per-number lock lets happen: with
    the clinic-wide lock the wait times out and the senders go one at a time."""
    key = {"client": "verification_codes_per_client", "clinic": "verification_codes_per_hour"}[limit]
    s = settings.model_copy(update={key: 2})
    verifier = Verifier(engine, s, notifier_from(engine, s))
    barrier = threading.Barrier(len(NUMBERS), timeout=3)

    def hold_the_insert(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO VERIFICATION_CODES"):
            try:  # every sender has counted by now (a fixed code serialises them: then this times out)
                barrier.wait()
            except threading.BrokenBarrierError:
                pass

    event.listen(engine, "before_cursor_execute", hold_the_insert)
    results: list = [None] * len(NUMBERS)

    def send(i: int, phone: str) -> None:
        client = "203.0.113.7" if limit == "client" else f"198.51.100.{i + 1}"
        results[i] = verifier.send("patient_sign_in", f"attempt-{i}", phone, client=client)

    try:
        threads = [threading.Thread(target=send, args=(i, p)) for i, p in enumerate(NUMBERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        event.remove(engine, "before_cursor_execute", hold_the_insert)
    sent = [r for r in results if r is not None and r.outcome is CodeOutcome.SENT]
    with psycopg.connect(db_url) as conn:
        texted = conn.execute("SELECT count(*) FROM notifications WHERE kind = 'verification_code'").fetchone()[0]
    assert len(sent) == 2 and texted == 2, f"{texted} codes texted under a limit of 2 ({limit})"
    assert sorted(r.outcome.value for r in results if r.outcome is not CodeOutcome.SENT) == ["too_many"] * 4
