"""The cancellation policy and no-shows, against real PostgreSQL: a patient changes a visit
themselves only up to CANCEL_NOTICE_HOURS before it (the bot says so and names the front desk),
staff always can; the front desk sees no-shows and late cancellations, and hears when a patient
who keeps missing visits books through the bot."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from rasa_sdk.executor import CollectingDispatcher

from action_kit import make_gateway
from actions.booking import announce
from bot import attendance
from bot.booking import BookingService, Outcome
from bot.db import session_scope
from bot.seed import seed
from bot.settings import Settings
from bot.tokens import Identity
from tests.api_helpers import call, seeded_clinic

NOW = datetime(2030, 1, 7, 12, tzinfo=timezone.utc)  # a Monday
ADMIN = Identity("admin", "admin")
PATIENT = 5


@pytest.fixture
def strict(db_url) -> Settings:
    return Settings(database_url=db_url, env="test", jwt_secret="t" * 40, _env_file=None, cancel_notice_hours=24)


@pytest.fixture
def visits(strict, engine, db_url) -> dict[str, int]:
    """Patient 5's visits of the seeded clinic: one in 23 hours, one in 25 hours."""
    seed(engine, strict, today=NOW.date())
    made = {}
    with psycopg.connect(db_url, autocommit=True) as conn:
        for name, hours in (("soon", 23), ("later", 25)):
            at = NOW + timedelta(hours=hours)
            made[name] = conn.execute(
                "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, operatory_id)"
                " VALUES (%s, 1, 2, %s, %s, 1) RETURNING id", (PATIENT, at, at + timedelta(minutes=30))).fetchone()[0]
    return made


def status(db_url: str, visit: int) -> tuple:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT status, starts_at FROM appointments WHERE id = %s", (visit,)).fetchone()


def test_a_patient_cannot_cancel_or_move_inside_the_notice_but_staff_can(strict, engine, db_url, visits):
    svc = BookingService(engine, strict, clock=lambda: NOW)
    me = Identity("patient", f"patient:{PATIENT}", patient_id=PATIENT)
    before = status(db_url, visits["soon"])
    late = svc.cancel(me, visits["soon"])
    assert late.outcome is Outcome.TOO_LATE and "24 hours" in late.message
    moved = svc.reschedule(me, visits["soon"], NOW + timedelta(days=3))
    assert moved.outcome is Outcome.TOO_LATE
    assert status(db_url, visits["soon"]) == before  # nothing changed
    assert svc.cancel(me, visits["later"]).outcome is Outcome.CANCELLED  # outside the notice: allowed
    assert svc.cancel(ADMIN, visits["soon"]).outcome is Outcome.CANCELLED  # the front desk always can


def test_the_bot_explains_the_policy_and_names_the_front_desk(strict, engine, db_url, visits):
    gw = make_gateway(engine, strict, NOW)
    result = gw.cancel(PATIENT, visits["soon"])
    dispatcher = CollectingDispatcher()
    announce(dispatcher, gw, result)
    [message] = dispatcher.messages
    assert message["response"] == "utter_too_late_to_change"
    assert (message["hours"], message["phone"]) == (24, strict.clinic_phone)
    assert status(db_url, visits["soon"])[0] == "pending"


def test_no_shows_and_late_cancellations_are_counted(strict, engine, db_url, visits):
    svc = BookingService(engine, strict, clock=lambda: NOW)
    svc.cancel(ADMIN, visits["soon"])  # cancelled 23 hours before: late
    svc.cancel(ADMIN, visits["later"])  # 25 hours before: in time
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE appointments SET status = 'no_show' WHERE patient_id = 1")  # the seed's Emma: 2
        # when they were cancelled on this test's clock (the touch trigger would write the real one)
        conn.execute("ALTER TABLE appointments DISABLE TRIGGER appointments_touch_updated_at")
        conn.execute("UPDATE appointments SET updated_at = %s WHERE id = ANY(%s)",
                     (NOW, [visits["soon"], visits["later"]]))
        conn.execute("ALTER TABLE appointments ENABLE TRIGGER appointments_touch_updated_at")
    with session_scope(engine) as s:
        got = [(a.patient_id, a.no_shows, a.late_cancels) for a in attendance.counts(s, timedelta(hours=24))]
    assert got == [(1, 2, 0), (PATIENT, 0, 1)]


def test_the_front_desk_hears_when_a_patient_who_misses_visits_books(strict, engine, db_url, visits):
    gw = make_gateway(engine, strict, NOW)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE appointments SET status = 'no_show' WHERE id = ANY(%s)", (list(visits.values()),))

    def book(patient: int, hours: int):
        slot = gw.booking.available_slots(3, NOW + timedelta(hours=hours), NOW + timedelta(days=10), limit=1)[0]
        return gw.book(patient, dentist_id=slot.dentist_id, service_id=3, starts_at=slot.starts_at)

    assert book(PATIENT, 48).outcome is Outcome.BOOKED
    with psycopg.connect(db_url) as conn:
        alerts = conn.execute("SELECT recipient, body, status FROM notifications WHERE kind = 'no_show_alert'").fetchall()
    assert len(alerts) == 1 and alerts[0][0] == strict.front_desk_email and alerts[0][2] == "sent"
    assert "missed 2 visits" in alerts[0][1] and "Ava Jones" in alerts[0][1]
    assert book(6, 96).outcome is Outcome.BOOKED  # no no-shows: no message
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM notifications WHERE kind = 'no_show_alert'").fetchone()[0] == 1


async def test_attendance_is_the_front_desks_only(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("UPDATE appointments SET status = 'no_show' WHERE id = %s", (c.visit,))
        tokens = c.tokens()
        code, body = await call("GET", f"{c.url}/api/attendance", tokens["admin"])
        assert code == 200 and [(p["patient_id"], p["no_shows"]) for p in body["patients"]] == [(c.patient, 1)]
        for who in ("dentist", "patient"):
            code, body = await call("GET", f"{c.url}/api/attendance", tokens[who])
            assert (code, body["error"]) == (403, "forbidden")


async def test_the_bot_says_so_as_soon_as_the_visit_is_named_and_asks_nothing_more(strict, engine, db_url,
                                                                                     visits):
    from action_kit import Chat
    from actions.gateway import use_gateway
    from actions.manage import ValidateCancelForm, ValidateRescheduleForm
    from bot.tokens import mint

    use_gateway(make_gateway(engine, strict, NOW))
    try:
        for form, loop, intent in ((ValidateCancelForm, "cancel_form", "cancel_appointment"),
                                   (ValidateRescheduleForm, "reschedule_form", "reschedule_appointment")):
            chat = Chat(f"policy-{loop}", metadata={"token": mint("patient", PATIENT, settings=strict)})
            chat.active_loop = loop
            chat.say(f"{intent.split('_')[0]} #{visits['soon']}", intent, {"appointment_id": str(visits["soon"])},
                     appointment_id=str(visits["soon"]))
            turn = await chat.run(form())
            assert turn.responses == ["utter_too_late_to_change"], turn.responses
            assert turn.slots()["outcome"] == "none" and turn.slots()["appointment_id"] is None
            # the one in 25 hours may be changed: the form goes on with it
            chat = Chat(f"policy-{loop}-later", metadata={"token": mint("patient", PATIENT, settings=strict)})
            chat.active_loop = loop
            chat.say(f"{intent.split('_')[0]} #{visits['later']}", intent, {"appointment_id": str(visits["later"])},
                     appointment_id=str(visits["later"]))
            turn = await chat.run(form())
            assert "utter_too_late_to_change" not in turn.responses
            assert turn.slots().get("appointment_id") == str(visits["later"])
    finally:
        use_gateway(None)
    assert status(db_url, visits["soon"])[0] == "pending"
