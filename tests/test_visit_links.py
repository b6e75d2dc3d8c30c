"""A reminder's signed link (sync/visit_links.py) and the private calendar feeds (sync/feeds.py),
against the real sync service and PostgreSQL: the link confirms or cancels its own visit as its
patient, under the cancellation policy, and every change reaches an admin's dashboard live; a
forged, tampered, expired or wrong-purpose token changes nothing; GET never changes anything;
a feed holds exactly its person's live visits."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import aiohttp
import jwt
import psycopg
import pytest
from icalendar import Calendar

from bot import events, links
from bot.notify import notifier_from
from bot.reminders import ReminderWorker
from bot.tokens import TokenError, mint, verify
from tests.notify_servers import SmsProvider, SmtpServer
from tests.sync_helpers import Recorder, serve, token

PHONE = "+1 (212) 555-0142"  # the clinic's (Settings' default)


@pytest.fixture
def clinic(db_url) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'Dr Chen'), (2, 'Dr Okafor')")
        conn.execute("INSERT INTO patients (id, full_name, email, phone) VALUES"
                     " (1, 'Ana Lima', 'ana@example.com', '+12125550101'),"
                     " (2, 'Li Wei', 'li@example.com', '+12125550102')")
        conn.execute("INSERT INTO services (id, name, duration_minutes, price_cents) VALUES (1, 'Checkup', 30, 5000)")
        yield conn


@pytest.fixture
def policy(settings):
    """The clinic's cancellation notice on (tests/conftest.py turns it off for other tests)."""
    return settings.model_copy(update={"cancel_notice_hours": 24})


def book(conn: psycopg.Connection, *, hours: float, patient: int = 1, dentist: int = 1,
         status: str = "pending") -> tuple[int, datetime]:
    start = (datetime.now(timezone.utc) + timedelta(hours=hours)).replace(microsecond=0)
    (visit,) = conn.execute(
        "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, status)"
        " VALUES (%s, %s, 1, %s, %s, %s) RETURNING id",
        (patient, dentist, start, start + timedelta(minutes=30), status)).fetchone()
    return visit, start


def status_of(conn: psycopg.Connection, visit: int) -> str:
    return conn.execute("SELECT status FROM appointments WHERE id = %s", (visit,)).fetchone()[0]


def event_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM realtime_events").fetchone()[0]


def link_token(settings, visit: int, patient: int, starts_at: datetime) -> str:
    return links.visit_token(visit, patient, starts_at, settings)


async def fetch(url: str, method: str = "GET", **kw) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.request(method, url, **kw) as r:
        return r.status, await r.text()


def updates(recorder: Recorder, visit: int) -> list[str]:
    """The statuses an ``appointment_updated`` of ``visit`` carried, in order."""
    return [d["appointment"]["status"] for e, d in recorder.events
            if e == events.APPOINTMENT_UPDATED and d["appointment"]["id"] == visit]


# --- the visit link ------------------------------------------------------------------------------

async def test_confirm_by_link_reaches_the_dashboard_and_a_repeat_changes_nothing(clinic, policy):
    visit, start = book(clinic, hours=72)
    tok = link_token(policy, visit, 1, start)
    async with serve(policy) as (url, app):
        admin = await Recorder("admin").connect(url, token(policy, "admin"))
        before = event_count(clinic)
        status, page = await fetch(f"{url}/visit/{tok}")
        assert status == 200 and "Checkup with Dr Chen" in page and 'id="confirm"' in page and 'id="cancel"' in page
        local = start.astimezone(policy.tz)
        assert f"{local:%A, %B} {local.day} at" in page  # in the clinic's zone
        assert (status_of(clinic, visit), event_count(clinic)) == ("pending", before)  # GET changed nothing

        status, page = await fetch(f"{url}/visit/{tok}/confirm", "POST")
        assert status == 200 and "your visit is confirmed" in page and 'id="confirm"' not in page
        assert status_of(clinic, visit) == "confirmed"
        await admin.wait_for(lambda r: updates(r, visit) == ["confirmed"])

        after = event_count(clinic)
        status, page = await fetch(f"{url}/visit/{tok}/confirm", "POST")  # idempotent
        assert status == 200 and "your visit is confirmed" in page
        assert (status_of(clinic, visit), event_count(clinic)) == ("confirmed", after)
        await admin.close()


async def test_cancel_by_link_reaches_the_dashboard_and_the_link_then_shows_it_cancelled(clinic, policy):
    visit, start = book(clinic, hours=72, status="confirmed")
    tok = link_token(policy, visit, 1, start)
    async with serve(policy) as (url, app):
        admin = await Recorder("admin").connect(url, token(policy, "admin"))
        dentist = await Recorder("dentist").connect(url, token(policy, "dentist", 1))
        status, page = await fetch(f"{url}/visit/{tok}/cancel", "POST")
        assert status == 200 and "Your visit is cancelled." in page
        assert status_of(clinic, visit) == "cancelled"
        await admin.wait_for(lambda r: updates(r, visit) == ["cancelled"])
        await dentist.wait_for(lambda r: updates(r, visit) == ["cancelled"])
        status, page = await fetch(f"{url}/visit/{tok}")
        assert status == 200 and "This visit was cancelled." in page and 'data-status="cancelled"' in page
        assert 'id="confirm"' not in page and 'id="cancel"' not in page
        status, page = await fetch(f"{url}/visit/{tok}/confirm", "POST")  # never reopened
        assert status == 409 and "cannot be confirmed" in page and status_of(clinic, visit) == "cancelled"
        for client in (admin, dentist):
            await client.close()


async def test_cancel_inside_the_notice_is_refused_with_the_policy_and_the_phone(clinic, policy):
    visit, start = book(clinic, hours=3, status="confirmed")
    tok = link_token(policy, visit, 1, start)
    async with serve(policy) as (url, app):
        before = event_count(clinic)
        status, page = await fetch(f"{url}/visit/{tok}/cancel", "POST")
        assert status == 409
        assert "up to 24 hours before they start" in page and PHONE in page
        assert (status_of(clinic, visit), event_count(clinic)) == ("confirmed", before)


def tampered(tok: str, **changes) -> str:
    """The token's payload rewritten (its signature kept): what an attacker can make of a link."""
    header, _, rest = tok.partition(".")
    _, _, signature = rest.partition(".")
    claims = {**jwt.decode(tok, options={"verify_signature": False}), **changes}
    forged = jwt.encode(claims, "x" * 32, algorithm="HS256")
    return ".".join([header, forged.split(".")[1], signature])


def bad_tokens(settings, visit: int, start: datetime) -> dict[str, str]:
    genuine = link_token(settings, visit, 1, start)
    claims = {"appointment_id": visit, "patient_id": 1, "exp": int(start.timestamp())}
    return {
        # signed with another key (as one guessing the secret would)
        "forged": jwt.encode({**claims, "aud": links.VISIT_PURPOSE}, "f" * 40, algorithm="HS256"),
        "tampered": tampered(genuine, exp=int(start.timestamp()) + 86400),
        # genuine, but the visit has started (its exp passed)
        "expired": links.visit_token(visit, 1, datetime.now(timezone.utc) - timedelta(minutes=1), settings),
        # the patient's login token: another key and no audience
        "login token": mint("patient", 1, settings=settings),
        # the right key but another purpose's audience
        "other purpose": jwt.encode({**claims, "aud": links.FEED_PURPOSE},
                                    settings.derived_secret(links.VISIT_PURPOSE), algorithm="HS256"),
        # a genuine calendar-feed token of the same patient
        "feed token": links.feed_token(links.Feed("patient", 1), settings),
        "garbage": "not-a-token",
    }


async def test_forged_tampered_expired_and_wrong_purpose_tokens_change_nothing(clinic, policy):
    visit, start = book(clinic, hours=72)
    async with serve(policy) as (url, app):
        before = event_count(clinic)
        for name, tok in bad_tokens(policy, visit, start).items():
            for method, path in (("GET", ""), ("POST", "/confirm"), ("POST", "/cancel")):
                status, page = await fetch(f"{url}/visit/{tok}{path}", method)
                expected = 410 if name == "expired" else 404
                assert status == expected, (name, method, path, status)
                assert "Checkup" not in page and PHONE in page, (name, path)
        assert (status_of(clinic, visit), event_count(clinic)) == ("pending", before)


async def test_a_link_acts_on_its_own_visit_and_as_its_own_patient_only(clinic, policy):
    mine, start = book(clinic, hours=72)
    theirs, their_start = book(clinic, hours=96, patient=2, dentist=2)
    async with serve(policy) as (url, app):
        before = event_count(clinic)
        # a genuine token naming patient 1 and patient 2's visit (as if the ids were mixed up)
        crossed = link_token(policy, theirs, 1, their_start)
        # patient 1's own link with the visit id rewritten to patient 2's
        rewritten = tampered(link_token(policy, mine, 1, start), appointment_id=theirs)
        for tok in (crossed, rewritten):
            for method, path in (("GET", ""), ("POST", "/confirm"), ("POST", "/cancel")):
                status, page = await fetch(f"{url}/visit/{tok}{path}", method)
                assert status == 404 and "Dr Okafor" not in page, (method, path)
        assert (status_of(clinic, mine), status_of(clinic, theirs), event_count(clinic)) == (
            "pending", "pending", before)


async def test_a_post_from_another_sites_page_is_refused(clinic, policy):
    visit, start = book(clinic, hours=72)
    tok = link_token(policy, visit, 1, start)
    async with serve(policy) as (url, app):
        status, _ = await fetch(f"{url}/visit/{tok}/cancel", "POST", headers={"Origin": "https://evil.example"})
        assert status == 403 and status_of(clinic, visit) == "pending"
        status, _ = await fetch(f"{url}/visit/{tok}/cancel", "POST", headers={"Origin": url})
        assert status == 200 and status_of(clinic, visit) == "cancelled"


async def test_the_reminders_carry_a_working_link(clinic, settings, engine):
    visit, start = book(clinic, hours=3)
    with SmtpServer() as smtp, SmsProvider() as sms:
        async with serve(settings) as (url, app):
            s = settings.model_copy(update={
                "email_sender": "smtp", "smtp_port": smtp.port, "sms_sender": "http", "sms_http_url": sms.url,
                "reminder_hours": 24, "public_url": url + "/"})
            assert len(ReminderWorker(engine, notifier_from(engine, s), s).run_once().sent) == 2
            body = smtp.messages[0].get_body(("plain",)).get_content()
            (link,) = re.findall(rf"{re.escape(url)}/visit/[A-Za-z0-9_.-]+", body)
            assert link in sms.received[0]["body"]
            status, page = await fetch(link)
            assert status == 200 and "Checkup with Dr Chen" in page
            status, page = await fetch(f"{link}/confirm", "POST")
            assert status == 200 and status_of(clinic, visit) == "confirmed"


# --- calendar feeds ------------------------------------------------------------------------------

async def my_feed_url(url: str, tok: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/api/feeds/me",
                                                         headers={"Authorization": f"Bearer {tok}"}) as r:
        return r.status, await r.json()


async def feed_of(feed: str) -> tuple[dict[str, str], Calendar]:
    async with aiohttp.ClientSession() as http, http.get(feed) as r:
        assert r.status == 200 and r.content_type == "text/calendar", await r.text()
        cal = Calendar.from_ical(await r.read())
    return {str(e["uid"]): str(e["summary"]) for e in cal.walk("VEVENT")}, cal


async def test_each_feed_holds_exactly_its_persons_live_visits(clinic, settings):
    ana_pending, _ = book(clinic, hours=48)
    li_confirmed, _ = book(clinic, hours=50, patient=2, status="confirmed")
    book(clinic, hours=52, status="cancelled")
    ana_elsewhere, _ = book(clinic, hours=54, dentist=2)
    ana_last_week, _ = book(clinic, hours=-24 * 7, status="confirmed")
    book(clinic, hours=-24 * 60, status="confirmed")  # before FEED_PAST_DAYS (30)
    book(clinic, hours=-24 * 2, patient=2, dentist=2, status="completed")
    uid = "appointment-{}@clinic.invalid".format
    async with serve(settings) as (url, app):
        status, dentist = await my_feed_url(url, token(settings, "dentist", 1))
        assert status == 200 and dentist["url"].startswith(f"{url}/feeds/") and dentist["url"].endswith(".ics")
        events_, cal = await feed_of(dentist["url"])
        assert events_ == {uid(ana_pending): "Checkup: Ana", uid(li_confirmed): "Checkup: Li",
                           uid(ana_last_week): "Checkup: Ana"}
        assert "Lima" not in cal.to_ical().decode() and "Wei" not in cal.to_ical().decode()

        status, patient = await my_feed_url(url, token(settings, "patient", 1))
        assert status == 200
        events_, _ = await feed_of(patient["url"])
        assert events_ == {uid(ana_pending): "Checkup with Dr Chen", uid(ana_elsewhere): "Checkup with Dr Okafor",
                           uid(ana_last_week): "Checkup with Dr Chen"}
        status, other = await my_feed_url(url, token(settings, "patient", 2))
        events_, _ = await feed_of(other["url"])
        assert events_ == {uid(li_confirmed): "Checkup with Dr Chen"}  # patient 1's feed is not patient 2's

        status, body = await my_feed_url(url, token(settings, "admin"))
        assert status == 404 and body["error"] == "not_found"
        async with aiohttp.ClientSession() as http, http.get(f"{url}/api/feeds/me") as r:
            assert r.status == 401


async def test_a_tampered_or_wrong_purpose_feed_token_is_404(clinic, settings):
    book(clinic, hours=48)
    book(clinic, hours=50, patient=2)
    genuine = links.feed_token(links.Feed("patient", 2), settings)
    visit_link = links.visit_token(1, 1, datetime.now(timezone.utc) + timedelta(days=2), settings)
    bad = {"tampered": tampered(genuine, id=1),
           "forged": jwt.encode({"kind": "patient", "id": 1, "aud": links.FEED_PURPOSE}, "f" * 40,
                                algorithm="HS256"),
           "other purpose": jwt.encode({"kind": "patient", "id": 1, "aud": links.VISIT_PURPOSE},
                                       settings.derived_secret(links.FEED_PURPOSE), algorithm="HS256"),
           "visit link": visit_link, "login token": mint("patient", 1, settings=settings),
           "a later generation": links.feed_token(links.Feed("patient", 2, 1), settings),
           "a negative generation": tampered(genuine, gen=-1), "a text generation": tampered(genuine, gen="0"),
           "nobody": links.feed_token(links.Feed("patient", 99), settings)}
    async with serve(settings) as (url, app):
        for name, tok in bad.items():
            status, text = await fetch(f"{url}/feeds/{tok}.ics")
            assert status == 404 and "VEVENT" not in text, name
        events_, _ = await feed_of(f"{url}/feeds/{genuine}.ics")
        assert len(events_) == 1


async def renew(url: str, tok: str, path: str = "me") -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/api/feeds/{path}/renew",
                                                          headers={"Authorization": f"Bearer {tok}"}) as r:
        return r.status, await r.json()


async def test_a_new_feed_url_ends_the_old_one_and_no_one_elses(clinic, settings):
    """A feed URL that leaked (a shared calendar, a forwarded email) is replaced: the person's own
    new link, or the front desk's for them; each old URL of that person is 404 from then on, the
    new one works, and other people's URLs are untouched."""
    book(clinic, hours=48)
    book(clinic, hours=50, patient=2)
    # a URL handed out before sql/012 (no gen claim: generation 0)
    before_migration = jwt.encode({"kind": "patient", "id": 1, "aud": links.FEED_PURPOSE},
                                  settings.derived_secret(links.FEED_PURPOSE), algorithm="HS256")
    async with serve(settings) as (url, app):
        _, first = await my_feed_url(url, token(settings, "patient", 1))
        _, li = await my_feed_url(url, token(settings, "patient", 2))
        _, dentist = await my_feed_url(url, token(settings, "dentist", 1))
        assert (await fetch(f"{url}/feeds/{before_migration}.ics"))[0] == 200

        status, second = await renew(url, token(settings, "patient", 1))
        assert status == 200 and second["url"] != first["url"]
        _, asked_again = await my_feed_url(url, token(settings, "patient", 1))
        assert asked_again == second  # the page shows the new one from now on
        for old in (first["url"], f"{url}/feeds/{before_migration}.ics"):
            status, text = await fetch(old)
            assert status == 404 and "VEVENT" not in text
        assert len((await feed_of(second["url"]))[0]) == 1
        assert len((await feed_of(li["url"]))[0]) == 1 and len((await feed_of(dentist["url"]))[0]) == 2

        # the front desk renews for a patient who called, and for a dentist
        status, third = await renew(url, token(settings, "admin"), "patient/1")
        assert status == 200 and (await fetch(second["url"]))[0] == 404
        assert len((await feed_of(third["url"]))[0]) == 1
        status, _ = await renew(url, token(settings, "admin"), "dentist/1")
        assert status == 200 and (await fetch(dentist["url"]))[0] == 404
        status, body = await renew(url, token(settings, "admin"), "patient/99")
        assert status == 404 and body["error"] == "not_found"
        # nobody else renews anyone's: not another patient, not a dentist, and an admin has no own feed
        for who, path in (("patient", "patient/1"), ("dentist", "patient/1"), ("dentist", "dentist/1")):
            status, body = await renew(url, token(settings, who, 2 if who == "patient" else 1), path)
            assert status == 403 and body["error"] == "forbidden"
        assert len((await feed_of(third["url"]))[0]) == 1
        status, body = await renew(url, token(settings, "admin"))
        assert status == 404 and body["error"] == "not_found"
    generations = clinic.execute("SELECT kind, owner_id, generation FROM calendar_feeds ORDER BY 1, 2").fetchall()
    assert generations == [("dentist", 1, 1), ("patient", 1, 2)]


async def test_concurrent_renewals_each_get_a_generation(clinic, settings):
    async with serve(settings) as (url, app):
        answers = await asyncio.gather(*(renew(url, token(settings, "patient", 1)) for _ in range(8)))
        assert {status for status, _ in answers} == {200} and len({body["url"] for _, body in answers}) == 8
    assert clinic.execute("SELECT generation FROM calendar_feeds").fetchall() == [(8,)]


async def test_neither_a_link_nor_a_feed_token_signs_in(clinic, settings):
    visit, start = book(clinic, hours=72)
    for tok in (link_token(settings, visit, 1, start), links.feed_token(links.Feed("patient", 1), settings)):
        with pytest.raises(TokenError, match="signature"):
            verify(tok, settings=settings)
    # even one signed with the JWT key itself: it names a purpose, so it is no login
    claims = {"role": "patient", "sub": "patient:1", "patient_id": 1, "exp": int(start.timestamp()),
              "aud": links.VISIT_PURPOSE}
    with pytest.raises(TokenError, match="audience"):
        verify(jwt.encode(claims, settings.jwt_secret, algorithm="HS256"), settings=settings)
    async with serve(settings) as (url, app):
        async with aiohttp.ClientSession() as http, http.get(
                f"{url}/api/appointments", headers={"Authorization": f"Bearer {link_token(settings, visit, 1, start)}"}) as r:
            assert r.status == 401
