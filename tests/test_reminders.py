"""Reminders (bot/reminders.py) against real PostgreSQL, a real SMTP server (aiosmtpd) and a real
HTTP SMS endpoint: exactly one email (with an .ics file) and one SMS per visit, across a restart
of the worker; nothing for a cancelled visit or one outside the window; a claim left by a crash
is sent after the retry time; every reminder sent is a ``reminder_sent`` outbox event routed to
the visit's dentist and patient, naming neither the body nor the recipient."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from icalendar import Calendar
from sqlalchemy import text

from bot import events
from bot.notify import notifier_from
from bot.reminders import ReminderWorker, RunResult
from bot.settings import Settings
from sync.outbox import FETCH_AFTER
from tests.notify_servers import SmsProvider, SmtpServer

PATIENTS = {1: ("Ana Lima", "ana@example.com", "+12125550101"),
            2: ("Li Wei", "li@example.com", "+12125550102")}


@pytest.fixture
def clinic(db_url) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'Dr Chen'), (2, 'Dr Okafor')")
        for pid, (name, email, phone) in PATIENTS.items():
            conn.execute("INSERT INTO patients (id, full_name, email, phone) VALUES (%s, %s, %s, %s)",
                         (pid, name, email, phone))
        conn.execute("INSERT INTO services (id, name, duration_minutes, price_cents)"
                     " VALUES (1, 'Checkup', 30, 5000)")
        yield conn


def book(conn: psycopg.Connection, *, hours: float, patient: int = 1, dentist: int = 1,
         status: str = "confirmed") -> tuple[int, datetime, datetime]:
    start = (datetime.now(timezone.utc) + timedelta(hours=hours)).replace(microsecond=0)
    end = start + timedelta(minutes=30)
    (visit,) = conn.execute(
        "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, status)"
        " VALUES (%s, %s, 1, %s, %s, %s) RETURNING id", (patient, dentist, start, end, status)).fetchone()
    return visit, start, end


@contextmanager
def servers(settings: Settings) -> Iterator[tuple[SmtpServer, SmsProvider, Settings]]:
    with SmtpServer() as smtp, SmsProvider() as sms:
        yield smtp, sms, settings.model_copy(update={
            "email_sender": "smtp", "smtp_port": smtp.port, "sms_sender": "http", "sms_http_url": sms.url,
            "reminder_hours": 24})  # tests/conftest.py turns them off for every other test


def worker(engine, settings: Settings) -> ReminderWorker:
    """A worker as a fresh process makes one: its own notifier, no state but the database's."""
    return ReminderWorker(engine, notifier_from(engine, settings), settings)


def reminders(engine) -> list[dict]:
    with engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(text(
            "SELECT r.*, n.recipient, n.status AS n_status, n.kind AS n_kind, n.channel AS n_channel"
            " FROM reminders r LEFT JOIN notifications n ON n.id = r.notification_id ORDER BY r.id"))]


def outbox(conn: psycopg.Connection, type_: str = events.REMINDER_SENT) -> list[tuple[int, int, dict]]:
    """(dentist_id, patient_id, the body clients receive) of every event of ``type_``."""
    got = []
    for row in conn.execute(FETCH_AFTER, (0, 1000)).fetchall():
        if row[1] == type_:
            got.append((row[2], row[3], json.loads(row[7])))
    return got


def test_one_email_and_one_sms_per_visit_across_a_restart(clinic, engine, settings):
    with servers(settings) as (smtp, sms, s):
        first, start1, end1 = book(clinic, hours=3)
        a = worker(engine, s)
        assert len(a.run_once().sent) == 2
        second, start2, end2 = book(clinic, hours=6, patient=2, dentist=2)
        b = worker(engine, s)  # the restart: a new worker, a new notifier
        assert len(b.run_once().sent) == 2
        assert a.run_once().sent == b.run_once().sent == []  # both again: nothing more

        assert [m["To"] for m in smtp.messages] == ["ana@example.com", "li@example.com"]
        assert [m["to"] for m in sms.received] == ["+12125550101", "+12125550102"]
        rows = reminders(engine)
        assert [(r["appointment_id"], r["kind"], r["channel"], r["status"], r["recipient"], r["n_status"])
                for r in rows] == [
            (first, "day_before", "email", "sent", "ana@example.com", "sent"),
            (first, "day_before", "sms", "sent", "+12125550101", "sent"),
            (second, "day_before", "email", "sent", "li@example.com", "sent"),
            (second, "day_before", "sms", "sent", "+12125550102", "sent")]
        assert all(r["n_kind"] == "reminder" and r["n_channel"] == r["channel"] and r["sent_at"]
                   for r in rows)
        with engine.connect() as c:  # the notifier recorded each message once, and nothing else
            assert c.execute(text("SELECT count(*) FROM notifications")).scalar_one() == 4
        assert "Checkup with Dr Okafor" in sms.received[1]["body"]

        # the .ics file: the visit's start, end and summary
        mail = smtp.messages[0]
        assert "Checkup" in mail["Subject"]
        assert "Ana Lima" in mail.get_body(("plain",)).get_content()
        (ics,) = list(mail.iter_attachments())
        assert ics.get_content_type() == "text/calendar" and ics.get_filename() == "visit.ics"
        (event,) = Calendar.from_ical(ics.get_content()).walk("VEVENT")
        assert event.decoded("dtstart") == start1 and event.decoded("dtend") == end1
        assert str(event["summary"]) == "Checkup with Dr Chen"
        assert str(event["uid"]) == f"appointment-{first}@clinic.invalid"

        # reminder_sent: one per reminder, routed to the visit's dentist and patient, no body or recipient
        sent = outbox(clinic)
        assert [(d, p, b["appointment_id"], b["channel"]) for d, p, b in sent] == [
            (1, 1, first, "email"), (1, 1, first, "sms"), (2, 2, second, "email"), (2, 2, second, "sms")]
        for _, _, body in sent:
            assert body["kind"] == "day_before" and body["type"] == events.REMINDER_SENT
            assert set(body) == set(events.ReminderSentEvent.__required_keys__)
            assert "@" not in json.dumps(body) and "+1212" not in json.dumps(body)


def test_two_workers_never_claim_one_reminder(clinic, engine, settings):
    """Two sync nodes: the one that claims first sends; the other finds nothing to claim."""
    with servers(settings) as (smtp, sms, s):
        book(clinic, hours=3)
        a, b = worker(engine, s), worker(engine, s)
        claimed = a.claim()
        assert len(claimed) == 2 and b.claim() == [] and b.run_once().sent == []
        clinic.execute("UPDATE reminders SET claimed_at = claimed_at - interval '1 hour'")
        assert sorted(b.claim()) == sorted(claimed) and a.claim() == []  # a stale claim: one taker too


def test_a_cancelled_visit_and_one_outside_the_window_get_nothing(clinic, engine, settings):
    with servers(settings) as (smtp, sms, s):
        book(clinic, hours=2, status="cancelled")
        later, _, _ = book(clinic, hours=30, patient=2)  # REMINDER_HOURS is 24
        book(clinic, hours=-2, status="pending")  # already begun
        assert worker(engine, s).run_once().sent == []
        assert smtp.messages == [] and sms.received == [] and reminders(engine) == []
        assert outbox(clinic) == []
        # nothing *yet*: the same visit is reminded of once it is inside the window
        wide = s.model_copy(update={"reminder_hours": 48})
        assert len(worker(engine, wide).run_once().sent) == 2
        assert {r["appointment_id"] for r in reminders(engine)} == {later}
        assert [m["To"] for m in smtp.messages] == ["li@example.com"]


def test_a_visit_moved_after_its_reminder_is_reminded_of_its_new_time_once(clinic, engine, settings):
    with servers(settings) as (smtp, sms, s):
        visit, start, _ = book(clinic, hours=3)
        assert len(worker(engine, s).run_once().sent) == 2
        assert worker(engine, s).run_once().sent == []  # the same time: never twice
        moved = start + timedelta(hours=5)
        clinic.execute("UPDATE appointments SET starts_at = %s, ends_at = %s WHERE id = %s",
                       (moved, moved + timedelta(minutes=30), visit))
        assert len(worker(engine, s).run_once().sent) == 2  # its new time
        assert worker(engine, s).run_once().sent == []
        assert [r["visit_starts_at"] for r in reminders(engine)] == [start, start, moved, moved]
        assert len(smtp.messages) == len(sms.received) == 2  # one email and one SMS for each time


def test_a_visit_moved_after_its_claim_is_reminded_of_the_new_time_only(clinic, engine, settings):
    with servers(settings) as (smtp, sms, s):
        visit, start, _ = book(clinic, hours=3)
        w = worker(engine, s)
        claimed = w.claim()
        moved = start + timedelta(hours=1)
        clinic.execute("UPDATE appointments SET starts_at = %s, ends_at = %s WHERE id = %s",
                       (moved, moved + timedelta(minutes=30), visit))
        result = RunResult()
        for reminder_id in claimed:
            w._send(reminder_id, result)
        assert result.dropped == claimed and smtp.messages == []  # not of the old time
        assert len(w.run_once().sent) == 2
        assert [r["visit_starts_at"] for r in reminders(engine)] == [moved, moved]


def test_a_visit_cancelled_after_its_claim_is_not_sent(clinic, engine, settings):
    with servers(settings) as (smtp, sms, s):
        visit, _, _ = book(clinic, hours=3)
        w = worker(engine, s)
        claimed = w.claim()  # the claim commits; then the visit is cancelled before the send
        assert len(claimed) == 2
        clinic.execute("UPDATE appointments SET status = 'cancelled' WHERE id = %s", (visit,))
        result = RunResult()
        for reminder_id in claimed:
            w._send(reminder_id, result)
        assert result.dropped == claimed and result.sent == []
        assert smtp.messages == [] and sms.received == [] and reminders(engine) == []


def test_a_claim_left_by_a_crash_is_sent_after_the_retry_time(clinic, engine, settings):
    with servers(settings) as (smtp, sms, s):
        crashed, _, _ = book(clinic, hours=3)
        fresh, _, _ = book(clinic, hours=4, patient=2)
        # a worker claimed both emails and died before sending: one 20 minutes ago, one just now
        clinic.execute("INSERT INTO reminders (appointment_id, kind, channel, claimed_at) VALUES"
                       " (%s, 'day_before', 'email', now() - interval '20 minutes'),"
                       " (%s, 'day_before', 'email', now())", (crashed, fresh))
        worker(engine, s).run_once()
        # the stale claim is taken again (REMINDER_RETRY_MINUTES is 10); the fresh one is left to
        # its worker, which may still be sending; the SMSes were never claimed, so they go now
        assert sorted(m["To"] for m in smtp.messages) == ["ana@example.com"]
        assert sorted(m["to"] for m in sms.received) == ["+12125550101", "+12125550102"]
        by = {(r["appointment_id"], r["channel"]): r for r in reminders(engine)}
        assert (by[crashed, "email"]["status"], by[crashed, "email"]["attempts"]) == ("sent", 2)
        assert (by[fresh, "email"]["status"], by[fresh, "email"]["attempts"]) == ("claimed", 1)
        assert worker(engine, s).run_once().sent == []  # and nothing twice


def test_an_address_the_notifier_refuses_is_not_tried_again(clinic, engine, settings):
    with servers(settings) as (smtp, sms, s):
        clinic.execute("UPDATE patients SET email = 'ana at example dot com' WHERE id = 1")
        book(clinic, hours=3)
        w = worker(engine, s)
        result = w.run_once()
        assert (len(result.sent), len(result.failed)) == (1, 1)  # the SMS goes; the email cannot
        clinic.execute("UPDATE reminders SET claimed_at = claimed_at - interval '1 hour'")
        assert w.run_once().failed == []
        by = {r["channel"]: r for r in reminders(engine)}
        assert (by["email"]["status"], by["email"]["attempts"], by["email"]["notification_id"]) == (
            "failed", s.reminder_max_attempts, None)
        assert smtp.messages == [] and len(sms.received) == 1


def test_reminder_hours_zero_sends_nothing(clinic, engine, settings):
    with servers(settings) as (smtp, sms, s):
        book(clinic, hours=1)
        assert worker(engine, s.model_copy(update={"reminder_hours": 0})).run_once().sent == []
        assert smtp.messages == [] and sms.received == [] and reminders(engine) == []


def test_a_refused_send_is_tried_again_at_most_the_allowed_times(clinic, engine, settings):
    with SmsProvider(status=500) as sms:
        s = settings.model_copy(update={"sms_sender": "http", "sms_http_url": sms.url,
                                        "reminder_max_attempts": 2, "reminder_hours": 24})
        clinic.execute("UPDATE patients SET email = NULL")
        book(clinic, hours=3)
        w = worker(engine, s)
        assert len(w.run_once().failed) == 1
        assert w.run_once().failed == []  # not before the retry time
        for _ in range(3):  # past the retry time, twice: one more attempt, then no more
            clinic.execute("UPDATE reminders SET claimed_at = claimed_at - interval '1 hour'")
            w.run_once()
        (row,) = reminders(engine)
        assert (row["status"], row["attempts"], row["n_status"]) == ("failed", 2, "failed")
        assert len(sms.received) == 2
    assert outbox(clinic) == []
