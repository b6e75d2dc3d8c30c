"""One UPDATE changing any set of an appointment's columns, as every kind of connection sees it.

A visit of dentist 1 and patient 1 is changed in one statement (dentist → 2, patient → 2,
notes, times, status: every combination). Eight connections watch it: admin, service, the
old dentist (1), the dentist it may move to (2), an unrelated dentist (3), and the same three
for patients. Each must get exactly the view it is allowed — the whole event, the visit
"moved away" (what it was, nothing of what it became), the visit as it now is without what
it was before, or nothing — live and on resume.
"""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest

from tests.sync_helpers import BASE_TIME, Clinic, Recorder, serve, token

NEW_NOTE = "new note: Pat Two's allergy to latex"
OLD_NOTE = "old note: Pat One's crown"
OLD_START = BASE_TIME + timedelta(minutes=30)
NEW_START = BASE_TIME + timedelta(days=2)
COLUMNS = ("dentist_id", "patient_id", "notes", "time", "status")
COMBOS = [combo for n in range(1, len(COLUMNS) + 1) for combo in itertools.combinations(COLUMNS, n)]
PEOPLE = {"admin": ("admin", None), "service": ("service", "actions"),
          "dentist1": ("dentist", 1), "dentist2": ("dentist", 2), "dentist3": ("dentist", 3),
          "patient1": ("patient", 1), "patient2": ("patient", 2), "patient3": ("patient", 3)}


def changes_for(combo: tuple[str, ...]) -> dict:
    sets: dict = {}
    if "dentist_id" in combo:
        sets["dentist_id"] = 2
    if "patient_id" in combo:
        sets["patient_id"] = 2
    if "notes" in combo:
        sets["notes"] = NEW_NOTE
    if "time" in combo:
        sets["starts_at"], sets["ends_at"] = NEW_START, NEW_START + timedelta(minutes=45)
    if "status" in combo:
        sets["status"] = "confirmed"
    return sets


def expected_views(combo: tuple[str, ...]) -> dict[str, str | None]:
    """Who gets which view: written out by hand, not derived from the code under test."""
    dentist_moved, patient_moved = "dentist_id" in combo, "patient_id" in combo
    return {
        "admin": "full", "service": "full",
        "dentist1": "left" if dentist_moved else "full",      # saw it before; after only if it stayed
        "dentist2": "entered" if dentist_moved else None,      # sees it only after, if it came to them
        "dentist3": None,
        "patient1": "left" if patient_moved else "full",
        "patient2": "entered" if patient_moved else None,
        "patient3": None,
    }


async def connect_everyone(url: str, settings, since: int | None = None) -> dict[str, Recorder]:
    clients = {}
    for name, (role, ident) in PEOPLE.items():
        clients[name] = await Recorder(name).connect(url, token(settings, role, ident), since=since)
    return clients


@pytest.mark.parametrize("combo", COMBOS, ids=["+".join(c) for c in COMBOS])
async def test_one_statement_changing_columns_shows_each_role_only_its_view(settings, db_url, combo):
    clinic = await Clinic.open(db_url, people=3)
    visit = await clinic.one(
        "INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, notes)"
        " VALUES (1, 1, 1, %s, %s, %s) RETURNING id", OLD_START, OLD_START + timedelta(minutes=30), OLD_NOTE)
    booked = await clinic.last_event_id()
    before = json.loads(await clinic.one("SELECT to_jsonb(a)::text FROM appointments a WHERE id = %s", visit))
    try:
        async with serve(settings) as (url, app):
            live = await connect_everyone(url, settings)
            for client in live.values():  # so that every connection hears the sentinel below
                assert (await client.call("subscribe", {"topic": "availability", "global": True}))["ok"]

            await clinic.update(visit, **changes_for(combo))
            changed = await clinic.last_event_id()
            assert changed == booked + 1
            after = json.loads(await clinic.one("SELECT to_jsonb(a)::text FROM appointments a WHERE id = %s", visit))
            await clinic.add_hours(dentist=3)
            sentinel = await clinic.last_event_id()  # every live connection hears this one
            # and each resumed connection replays at least one of these (its role channels carry it)
            await clinic.book(dentist=2, patient=2, slot=20)
            second = await clinic.last_event_id()
            await clinic.book(dentist=3, patient=3, slot=21)
            third = await clinic.last_event_id()
            last_seen = {"admin": third, "service": third, "dentist1": changed, "patient1": changed,
                         "dentist2": second, "patient2": second, "dentist3": third, "patient3": third}

            previous = {"dentist_id": 1, "patient_id": 1, "starts_at": before["starts_at"],
                        "ends_at": before["ends_at"], "status": "pending", "operatory_id": None,
                        "hygienist_id": None}
            views = {
                "full": {"appointment": after, "previous": previous},
                "left": {"appointment": {"id": visit}, "previous": previous, "moved_away": True},
                "entered": {"appointment": after},
            }
            expect = expected_views(combo)

            def check(name: str, client: Recorder, how: str) -> None:
                got = [(e, d) for e, d in client.events if booked < d["id"] < sentinel]
                view = expect[name]
                if view is None:
                    assert got == [], (how, name, got)
                    return
                assert len(got) == 1, (how, name, got)
                event, data = got[0]
                assert event == "appointment_updated", (how, name, event)
                assert {k: v for k, v in data.items() if k != "at"} == {
                    "id": changed, "type": "appointment_updated", **views[view]}, (how, name, view, data)
                assert set(data) == {"id", "type", "at", *views[view]}, (how, name, data)
                text = json.dumps(data)
                if view == "left":  # nothing of what it became, however it is spelt
                    assert NEW_NOTE not in text and OLD_NOTE not in text, (how, name, data)
                    assert "notes" not in text and "service_id" not in text, (how, name, data)
                    if "time" in combo:
                        assert after["starts_at"] not in text and after["ends_at"] not in text, (how, name, data)
                    if "status" in combo:
                        assert "confirmed" not in text, (how, name, data)
                if view == "entered":  # nothing of what it was: someone else's visit until now
                    assert "previous" not in data, (how, name, data)
                    if "notes" in combo:
                        assert OLD_NOTE not in text, (how, name, data)
                    if "time" in combo:
                        assert before["starts_at"] not in text, (how, name, data)

            for name, client in live.items():
                await client.wait_id(sentinel)
                check(name, client, "live")
            for client in live.values():
                await client.close()

            # the same views when the change is replayed on resume
            resumed = await connect_everyone(url, settings, since=booked)
            for name, client in resumed.items():
                await client.wait_id(last_seen[name])
                check(name, client, "resume")
                await client.close()
    finally:
        await clinic.close()
