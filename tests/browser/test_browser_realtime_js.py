"""realtime.js in real Chromium against the real sync service: the legacy-named helpers,
per-user filtering, refusals, resume after a restart, and resync_required."""

from __future__ import annotations


import pytest
from browser_helpers import collect_errors, running

from bot.tokens import mint
from sync import keys
from tests.polling import wait_until
from tests.sync_helpers import Clinic

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RECORD = """
window.got = [];
window.record = (name) => (ev) => window.got.push([name, ev.type, ev.id, ev.appointment ? ev.appointment.patient_id : ev.dentist_id]);
"""


async def blank_page(browser, url: str):
    """A page of the service (so the vendored client and realtime.js are loaded) with no app on it."""
    # bypass_csp: the test drives the library with page.evaluate / wait_for_function, which the
    # pages' CSP (no eval) rightly refuses; the pages themselves are tested with it on
    context = await browser.new_context(bypass_csp=True)
    page = await context.new_page()
    errors = await collect_errors(page)
    await page.goto(f"{url}/admin?token=-")  # a token that is none: only the sign-in form runs
    await page.wait_for_selector("#signin")
    await page.evaluate(RECORD)
    return page, errors


async def got(page, count: int, timeout: float = 30_000) -> list:
    await page.wait_for_function(f"window.got.length >= {count}", timeout=timeout)
    return await page.evaluate("window.got")


async def test_legacy_helpers_filter_by_user_and_refuse_others(browser, settings, db_url):
    clinic = await Clinic.open(db_url)  # dentists 1-2, patients 1-2
    async with running(settings) as server:
        page, errors = await blank_page(browser, server.url)
        ack = await page.evaluate("""async (token) => {
            Realtime.configure({token});
            window.mine = subscribeAppointments(1, "patient", {onAppointmentCreated: record("mine"),
                                                             onAppointmentUpdated: record("mine")});
            return await window.mine.ready;
        }""", mint("patient", 1, settings=settings))
        assert ack == {"ok": True, "channel": "appointments:patient:1"}
        refused = await page.evaluate("subscribeAppointments(2, 'patient', {}).ready")
        assert refused["ok"] is False and refused["error"] == "forbidden"

        first = await clinic.book(dentist=1, patient=2)   # someone else's: not seen
        second = await clinic.book(dentist=2, patient=1)  # mine
        await clinic.update(second, status="confirmed")
        events = await got(page, 2)
        last = await clinic.last_event_id()
        assert [(e[0], e[1], e[3]) for e in events] == [("mine", "appointment_created", 1),
                                                        ("mine", "appointment_updated", 1)]
        assert events[-1][2] == last and first != second
        await page.evaluate("window.mine.unsubscribe()")
        await clinic.update(second, status="cancelled")
        # a later event the page still listens for: once it is in, the cancellation came before it
        ack = await page.evaluate("subscribeAvailability(2, {onAvailabilityChanged: record('later')}).ready")
        assert ack["ok"] is True
        await clinic.add_time_off(dentist=2)
        later = await clinic.last_event_id()
        await page.wait_for_function(f"window.got.some(e => e[0] === 'later' && e[2] === {later})")
        events = await page.evaluate("window.got")
        assert [e[0] for e in events].count("mine") == 2  # unsubscribed: no more callbacks
        assert errors == []
    await clinic.close()


async def test_legacy_helpers_pass_the_reminders_of_the_users_visits(browser, settings, db_url):
    """subscribeAppointments as a dentist and as a patient calls onReminderSent for their visits'
    reminders (the event names only appointment_id), and never for someone else's."""
    clinic = await Clinic.open(db_url)  # dentists 1-2, patients 1-2
    async with running(settings) as server:
        pages = {}
        for role in ("dentist", "patient"):
            page, errors = await blank_page(browser, server.url)
            ack = await page.evaluate("""async ([role, token]) => {
                Realtime.configure({token});
                return await subscribeAppointments(1, role, {
                    onReminderSent: (ev) => window.got.push([ev.type, ev.appointment_id, ev.kind, ev.channel])}).ready;
            }""", [role, mint(role, 1, settings=settings)])
            assert ack == {"ok": True, "channel": f"appointments:{role}:1"}
            pages[role] = page, errors
        theirs = await clinic.book(dentist=2, patient=2)
        mine = await clinic.book(dentist=1, patient=1)
        for visit in (theirs, mine):
            await clinic.conn.execute(
                "INSERT INTO reminders (appointment_id, kind, channel, status, sent_at)"
                " VALUES (%s, 'day_before', 'sms', 'sent', now())", (visit,))
        for role, (page, errors) in pages.items():
            await page.wait_for_function("window.got.length >= 1")
            assert await page.evaluate("window.got") == [["reminder_sent", mine, "day_before", "sms"]], role
            assert errors == []
    await clinic.close()


async def test_subscribe_availability_for_one_dentist(browser, settings, db_url):
    clinic = await Clinic.open(db_url)
    async with running(settings) as server:
        page, errors = await blank_page(browser, server.url)
        ack = await page.evaluate("""async (token) => {
            Realtime.configure({token});
            return await subscribeAvailability(2, {onAvailabilityChanged: record("av")}).ready;
        }""", mint("patient", 1, settings=settings))
        assert ack["ok"] is True and ack["channel"] == "availability:dentist:2"
        await clinic.add_time_off(dentist=1)
        await clinic.add_time_off(dentist=2)
        # events come in id order: had dentist 1's change got through, it would be the first
        events = await got(page, 1)
        assert [(e[1], e[3]) for e in events] == [("availability_changed", 2)]
        assert events[0][2] == await clinic.last_event_id()
        assert errors == []
    await clinic.close()


async def test_resumes_after_a_restart_and_asks_for_a_resync_when_it_cannot(browser, settings, db_url):
    clinic = await Clinic.open(db_url)
    async with running(settings) as server:
        page, errors = await blank_page(browser, server.url)
        await page.evaluate("""(token) => {
            window.states = [];
            window.sync = realtimeSync({token, reconnectionDelay: 200, reconnectionDelayMax: 500}, {
                onAppointmentCreated: record("sync"),
                onConnectionChange: (s) => window.states.push(s),
                onResyncRequired: (info) => window.got.push(["resync", info.reason, info.lastId, null]),
            });
        }""", mint("admin", settings=settings))
        await page.wait_for_function("window.sync.connected")
        await clinic.book(dentist=1, patient=1)
        await got(page, 1)
        await server.stop()
        await page.wait_for_function("!window.sync.connected")
        missed = [await clinic.book(dentist=1 + i % 2, patient=1) for i in range(5)]  # while it is down
        await server.start()
        events = await got(page, 6, timeout=10_000)
        ids = [e[2] for e in events]
        assert ids == sorted(set(ids)) and len(ids) == 6  # each once, in order
        assert ids[-1] == await clinic.last_event_id() and len(missed) == 5
        assert "reconnecting" in await page.evaluate("window.states")

        # the outbox pruned past what the client saw: it is told to reload, then goes on live
        await page.evaluate("window.sync.close()")
        await clinic.conn.execute("DELETE FROM realtime_events")
        await clinic.book(dentist=1, patient=2)
        bound = await clinic.last_event_id()
        await wait_until(lambda: server.app[keys.LISTENER].last_id == bound, what="the service read the outbox")
        await page.evaluate("""(token) => {
            window.got = [];
            window.sync = realtimeSync({token, since: 1}, {
                onAppointmentCreated: record("sync"),
                onResyncRequired: (info) => window.got.push(["resync", info.reason, info.lastId, null]),
            });
        }""", mint("admin", settings=settings))
        resync = (await got(page, 1))[0]
        assert resync[:2] == ["resync", "outbox_pruned"] and resync[2] == bound
        assert await page.evaluate("window.sync.lastEventId") == bound
        await clinic.book(dentist=2, patient=2)
        events = await got(page, 2)
        assert events[1][1:3] == ["appointment_created", bound + 1]
        assert [e for e in errors if "socket.io" not in e and "ERR_CONNECTION_REFUSED" not in e] == []
    await clinic.close()
