"""The sync service runs the reminder worker (sync/reminders.py): a visit booked inside the window
is reminded of at once (woken by its appointment event, not the poll), and ``reminder_sent``
reaches admins, that visit's dentist and that visit's patient only."""

from __future__ import annotations

from collections import Counter

from bot import events
from tests.notify_servers import SmsProvider, SmtpServer
from tests.sync_helpers import Clinic, Recorder, serve, token
from tests.test_sync_visibility import ROLES


async def test_reminder_sent_reaches_admins_and_the_visits_dentist_and_patient_only(settings, db_url):
    clinic = await Clinic.open(db_url)
    await clinic.conn.execute("UPDATE patients SET email = 'pat' || id || '@example.com',"
                              " phone = '+1212555010' || id")
    with SmtpServer() as smtp, SmsProvider() as sms:
        s = settings.model_copy(update={"email_sender": "smtp", "smtp_port": smtp.port, "sms_sender": "http",
                                        "sms_http_url": sms.url, "reminder_poll_seconds": 3600,
                                        "reminder_hours": 24})
        async with serve(s) as (url, app):
            c = {name: await Recorder(name).connect(url, token(s, role, ident))
                 for name, (role, ident) in ROLES.items()}
            visit = await clinic.one(
                "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at)"
                " VALUES (1, 1, 1, now() + interval '3 hours', now() + interval '210 minutes') RETURNING id")
            # woken by appointment_created: the poll (an hour) would be far too late
            await c["admin"].wait_for(lambda r: sum(e == events.REMINDER_SENT for e, _ in r.events) == 2, 10)
            sentinels = [await clinic.book(dentist=1, patient=1), await clinic.book(dentist=2, patient=2)]
            last = await clinic.last_event_id()
            for name in ("admin", "service", "dentist2", "patient2"):
                await c[name].wait_id(last)
            for name in ("dentist1", "patient1"):
                await c[name].wait_id(last - 1)

            kinds = {name: Counter(e for e, _ in r.events) for name, r in c.items()}
            for name in ("admin", "dentist1", "patient1"):
                assert kinds[name][events.REMINDER_SENT] == 2, name
            for name in ("service", "dentist2", "patient2"):
                assert kinds[name][events.REMINDER_SENT] == 0, name
            assert kinds["service"][events.APPOINTMENT_CREATED] == 3  # it does get the visits
            sent = [d for e, d in c["patient1"].events if e == events.REMINDER_SENT]
            assert sorted(d["channel"] for d in sent) == ["email", "sms"]
            assert {(d["appointment_id"], d["kind"]) for d in sent} == {(visit, "day_before")}
            assert visit not in sentinels
            # a resume replays the outbox by the same rule
            for name in ("service", "dentist2", "admin", "patient1"):
                role, ident = ROLES[name]
                again = await Recorder(f"{name}-again").connect(url, token(s, role, ident), since=0)
                await again.wait_id(last - (name == "patient1"))
                got = sum(e == events.REMINDER_SENT for e, _ in again.events)
                assert got == (2 if name in ("admin", "patient1") else 0), name
                await again.close()
            for client in c.values():
                await client.close()
        assert [m["To"] for m in smtp.messages] == ["pat1@example.com"]
        assert [m["to"] for m in sms.received] == ["+12125550101"]
    await clinic.close()
