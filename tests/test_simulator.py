"""Simulated patients (bench/simulator.py) against the real assistant: a fixed-seed set of 60
conversations (20 tasks × 3 runs: every persona, every goal), judged by the database and the
transcript; and the simulator's own parts, which need no stack."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import yaml

from bench.simulator import (DENTISTS, RESPONSES, ROOT, SIM_LIMITS, Clinic, Expected, Goal, Kind, Patient,
                             Persona, Row, describe, find_loop, fits, judge, kind_of, make_tasks, ordinal,
                             pass_k, read, run_tasks, typo)
from tests.stack_helpers import reconfigured

SEED, TASKS, RUNS = 2026, 20, 3
TZ = ZoneInfo("America/New_York")
CLINIC = Clinic(TZ, {1: "Dr. Maria Alvarez", 2: "Dr. James Chen", 3: "Dr. Priya Patel"},
                {1: "Cleaning", 2: "Consultation", 3: "Filling", 4: "Extraction", 5: "Root canal", 6: "Crown",
                 7: "Whitening", 8: "Emergency visit"})


# --- against the stack ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sim_stack(chat_stack):
    """The shared stack (tests/conftest.py), its action server restarted with the anonymous chat's
    flood limits raised (SIM_LIMITS), since 60 conversations from one address book more in a minute
    than a real client may."""
    with reconfigured(chat_stack, "actions", **SIM_LIMITS) as stack:
        yield stack


@pytest.mark.slow
@pytest.mark.e2e
async def test_simulated_patients_reach_their_goals(sim_stack):
    results = await run_tasks(sim_stack, make_tasks(TASKS, SEED), RUNS, SEED)
    assert len(results) == TASKS * RUNS
    succeeded = sum(r.success for r in results) / len(results)
    loops = [r for r in results if r.loop]
    errors = [r for r in results if r.error_texts]
    tasks = pass_k(results)
    failures = "\n\n".join(describe(r) for r in results if not r.success)
    summary = (f"{succeeded:.0%} of {len(results)} conversations succeeded (need 97%), pass^3 "
               f"{sum(tasks.values())}/{len(tasks)} tasks, {len(loops)} with a loop, {len(errors)} with "
               "error texts")
    assert not loops and not errors and succeeded >= 0.97, f"{summary}\n\n{failures}"


# --- the simulator alone ---------------------------------------------------------------------------

def at(hour: int, minute: int = 0, days: int = 6) -> datetime:
    day = datetime.now(TZ).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ).astimezone(timezone.utc)


def label(instant: datetime, with_dentist: str = "") -> str:
    local = instant.astimezone(TZ)
    text = f"{local:%a %b} {local.day}, {local.strftime('%I:%M %p').lstrip('0')}"
    return text + (f" · {with_dentist}" if with_dentist else "")


def offer_reply(starts: list[tuple[datetime, int]], service: str = "cleaning") -> dict:
    return {"text": f"Here are free times for a {service}. Which one suits you?", "buttons": [
        {"title": label(s, f"Dr. {CLINIC.dentists[d].split()[-1]}"),
         "payload": f'/inform{{"slot_choice": "{s.isoformat()}|{d}"}}'} for s, d in starts]}


GOAL = Goal("book", "cleaning", "any", "next Tuesday afternoon", "Ada Lovelace", "2125551234")
OFFERS = offer_reply([(at(9), 1), (at(10, 30), 2), (at(14, 30), 3), (at(15, 15), 1)])


def script(persona: Persona, seed: int, goal: Goal = GOAL) -> list[str]:
    """What one patient says to a fixed run of bot replies: the first message, then to an offer,
    the name and phone questions and the summary."""
    patient = Patient(goal, persona, random.Random(seed), CLINIC)
    said = [patient.opening().text]
    while patient.choice is None and len(said) < 4:  # a correction may come before the pick
        said.append(patient.react([read(OFFERS)]).text)
    picked = patient.choice
    assert picked is not None
    for reply in ({"text": "What name should the appointment be under?"},
                  {"text": "And a phone number we can reach you on?"},
                  {"text": f"Please confirm: Cleaning with {CLINIC.dentists[picked.dentist_id]}, "
                           f"{picked.when} ($140). Shall I book it?",
                   "buttons": [{"title": "Yes, book it", "payload": "/affirm"}]}):
        said.append(patient.react([read(reply)]).text)
    return said


def test_the_judge_flags_a_wrong_start_time_and_accepts_the_right_one():
    chosen = at(14, 30)
    expected = Expected("book", "cleaning", 3, chosen, "Ada Lovelace")
    booked = Row(1, "ada lovelace", "+12125551234", 3, "Cleaning", chosen, "pending")
    assert judge(expected, [booked]) == []
    late = Row(1, "Ada Lovelace", "+12125551234", 3, "Cleaning", chosen + timedelta(minutes=15), "pending")
    [reason] = judge(expected, [late])
    assert reason.startswith("db wrong start:")
    other = Row(1, "Ada Lovelace", "+12125551234", 1, "Cleaning", chosen, "pending")
    assert [r.split(":")[0] for r in judge(expected, [other])] == ["db wrong dentist"]
    assert judge(expected, []) == ["db no visit: nothing booked"]


def test_the_judge_of_a_move_and_a_cancel_reads_the_visit_itself():
    old, new = at(9), at(11)
    kept = Row(2, "Ada", None, 1, "Filling", at(10, days=8), "confirmed")
    moved = Expected("reschedule", "cleaning", 2, new, visit_id=1, untouched=(kept,))
    assert judge(moved, [Row(1, "Ada", None, 2, "Cleaning", new, "confirmed"), kept]) == []
    [still] = judge(moved, [Row(1, "Ada", None, 2, "Cleaning", old, "confirmed"), kept])
    assert still.startswith("db not moved:")
    cancel = Expected("cancel", "cleaning", 2, old, visit_id=1, untouched=(kept,))
    assert judge(cancel, [Row(1, "Ada", None, 2, "Cleaning", old, "cancelled"), kept]) == []
    wrong = judge(cancel, [Row(1, "Ada", None, 2, "Cleaning", old, "confirmed"),
                           Row(2, "Ada", None, 1, "Filling", kept.starts_at, "cancelled")])
    assert sorted(r.split(":")[0] for r in wrong) == ["db not cancelled", "db other visit changed"]


def test_the_loop_detector_flags_three_identical_replies_in_a_row_only():
    assert find_loop(["Which dentist?", "When?", "When?", "When?"]) == "When?"
    assert find_loop(["When?", "Which dentist?", "When?", "Which dentist?", "When?"]) is None
    assert find_loop(["When?", "When?"]) is None


@pytest.mark.parametrize("persona", list(Persona))
def test_phrasing_is_deterministic_per_seed_and_varies_across_seeds(persona):
    assert script(persona, 11) == script(persona, 11)
    assert len({tuple(script(persona, seed)) for seed in range(12)}) > 3


def test_every_response_of_the_domain_is_known_to_the_simulator():
    responses = yaml.safe_load((ROOT / "domain.yml").read_text())["responses"]
    assert [name for name in responses if kind_of(name) is None] == []
    assert read({"text": "Sorry, something went wrong on my side. Please try again in a moment, or call the "
                         "front desk."}).kind is Kind.ERROR
    assert read({"text": "Here are free times for a filling with Dr. Chen. Which one suits you?"}).fields == {
        "for_whom": " for a filling with Dr. Chen"}
    assert set(RESPONSES.values()) <= set(Kind)


@pytest.mark.parametrize("persona", [p for p in Persona if p is not Persona.CLICKER])
def test_only_the_clicker_taps_buttons(persona):
    for seed in range(20):
        said = script(persona, seed)
        assert not any(text.startswith("/") for text in said), said
    clicker = Patient(GOAL, Persona.CLICKER, random.Random(3), CLINIC)
    clicker.opening()
    tapped = clicker.react([read(OFFERS)])
    assert tapped.payload and tapped.text == clicker.choice.payload


def test_a_time_two_offers_share_is_never_named_by_its_clock_alone():
    twins = read(offer_reply([(at(14, 30), 1), (at(14, 30, days=7), 1), (at(9), 2)]))
    for seed in range(60):
        patient = Patient(GOAL, Persona.CHATTY, random.Random(seed), CLINIC)
        patient.opening()
        said = patient.react([twins])
        if patient.choice.h == 2:
            assert said.act not in ("pick:clock", "pick:words"), said


def test_typos_never_touch_the_details_the_bot_must_read():
    for seed in range(40):
        patient = Patient(GOAL, Persona.ALL_AT_ONCE, random.Random(seed), CLINIC)
        first = patient.opening().text.lower()
        assert "ada lovelace" in first and "next tuesday afternoon" in first, first
        assert "2125551234" in re.sub(r"\D", "", first), first
        assert any(w.lower() in first for w in DENTISTS["any"].inline), first
        typist = Patient(GOAL, Persona.TYPO, random.Random(seed), CLINIC)
        typist.opening()
        typist.react([read(OFFERS)])
        name = typist.react([read({"text": "What name should the appointment be under?"})]).text
        assert "ada lovelace" in name.lower(), name


def test_a_wrong_detail_in_the_summary_is_corrected_not_confirmed():
    patient = Patient(GOAL, Persona.TERSE, random.Random(1), CLINIC)
    patient.opening()
    patient.react([read(OFFERS)])
    picked = patient.choice
    summary = {"text": f"Please confirm: Cleaning with {CLINIC.dentists[picked.dentist_id]}, {picked.when} "
                       "($140), for my name is Ada Lovelace (+12125551234). Shall I book it?",
               "buttons": [{"title": "Yes, book it", "payload": "/affirm"}]}
    said = patient.react([read(summary)])
    assert said.act == "fix:name" and "ada lovelace" in said.text.lower(), said
    right = {**summary, "text": summary["text"].replace("my name is ", "")}
    assert patient.react([read(right)]).act == "yes"


def test_a_typo_changes_one_letter_and_nothing_else():
    rng = random.Random(4)
    for word in ("appointment", "it's", "don't", "please"):
        for _ in range(50):
            changed = typo(word, rng)
            assert changed[0] == word[0] and changed[-1] == word[-1]
            assert "''" not in changed and abs(len(changed) - len(word)) <= 1


def test_a_time_the_patient_asked_for_fits_and_another_does_not():
    today = datetime.now(TZ).date()
    thursday = today + timedelta(days=(3 - today.weekday()) % 7 or 7)
    nine = datetime(thursday.year, thursday.month, thursday.day, 9, tzinfo=TZ)
    assert fits("Thursday between 9am and noon", nine, today, TZ)
    assert not fits("Thursday between 9am and noon", nine.replace(hour=12, minute=30), today, TZ)
    assert fits("Thursday at 2:30", nine.replace(hour=14, minute=30), today, TZ)
    assert not fits("Thursday at 2:30", nine.replace(hour=14, minute=45), today, TZ)
    assert fits("Thursday in the morning", nine, today, TZ)
    assert not fits("Thursday afternoon", nine, today, TZ)
    assert not fits("Friday morning", nine, today, TZ)
    assert fits(f"the {ordinal(thursday.day)}", nine, today, TZ)
    assert not fits("tomorrow morning", nine + timedelta(days=14), today, TZ)


def test_a_summary_before_any_pick_is_a_yes_only_for_a_time_asked_for():
    today = datetime.now(TZ).date()
    thursday = today + timedelta(days=(3 - today.weekday()) % 7 or 7)
    nine = datetime(thursday.year, thursday.month, thursday.day, 9, tzinfo=TZ)
    goal = Goal("book", "cleaning", "chen", "Thursday between 9am and noon", "Ada Lovelace", "2125551234")
    for hour, answer in ((9, "yes"), (13, "no")):
        patient = Patient(goal, Persona.TERSE, random.Random(2), CLINIC)
        patient.opening()
        summary = {"text": f"Please confirm: Cleaning with Dr. James Chen, {label(nine.replace(hour=hour))} "
                           "($140), for Ada Lovelace (+12125551234). Shall I book it?",
                   "buttons": [{"title": "Yes, book it", "payload": "/affirm"}]}
        assert patient.react([read(summary)]).act == answer
