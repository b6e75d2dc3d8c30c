"""The recall reminder after a greeting (actions/recall.py), against real PostgreSQL: a signed-in
patient due for their cleaning hears so and gets a button that books it; nobody else does."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from action_kit import Chat, seeded_gateway
from actions.recall import ActionRecallCheck
from bot.tokens import mint

TZ = ZoneInfo("America/New_York")
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=TZ)
DUE, BOOKED_AGAIN, RECENT = 10, 11, 12  # patients


@pytest.fixture
def gw(engine, settings, db_url):
    with seeded_gateway(engine, settings, NOW, "sql") as gateway:
        visit = ("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, status)"
                 " SELECT %s, 1, s.id, %s, %s, %s FROM services s WHERE s.name = 'Cleaning'")
        with psycopg.connect(db_url, autocommit=True) as conn:
            for patient, at, status in [(DUE, NOW - timedelta(days=300), "completed"),
                                        (BOOKED_AGAIN, NOW - timedelta(days=301), "completed"),
                                        (BOOKED_AGAIN, NOW + timedelta(days=20), "pending"),
                                        (RECENT, NOW - timedelta(days=60), "completed")]:
                conn.execute(visit, (patient, at, at + timedelta(minutes=45), status))
        yield gateway


def signed_in(patient_id: int, settings) -> Chat:
    return Chat(f"recall-{patient_id}", metadata={"token": mint("patient", patient_id, settings=settings)})


async def test_a_signed_in_patient_due_for_a_cleaning_is_told_and_offered_it(gw, settings):
    turn = await signed_in(DUE, settings).run(ActionRecallCheck())
    assert turn.responses == ["utter_recall_due"] and turn.events == []
    message = turn.messages[0]
    last = (NOW - timedelta(days=300)).astimezone(TZ)
    assert (message["service"], message["last_visit"]) == ("cleaning", f"{last:%B} {last.day}, {last.year}")
    [button] = turn.buttons()
    assert button["payload"] == "/book_appointment" + json.dumps({"service": "cleaning"})


@pytest.mark.parametrize("who", ["booked again", "recent", "anonymous", "forged token", "dentist token"])
async def test_nobody_else_hears_it(gw, settings, who):
    chat = {"booked again": lambda: signed_in(BOOKED_AGAIN, settings),
            "recent": lambda: signed_in(RECENT, settings),
            "anonymous": lambda: Chat("recall-anon"),
            # an anonymous chat cannot name a due patient to learn about their visits
            "forged token": lambda: Chat("recall-forged", metadata={
                "token": mint("patient", DUE, settings=settings.model_copy(update={"jwt_secret": "x" * 40}))}),
            "dentist token": lambda: Chat("recall-dentist", metadata={
                "token": mint("dentist", 1, settings=settings)})}[who]()
    turn = await chat.run(ActionRecallCheck())
    assert turn.responses == [] and turn.events == []
