"""The NLU model on held-out data: intent F1, key entities, and the data's hygiene.

Trains through scripts/train.sh when models/ holds no model for the current
config, domain and data (a clean clone trains once, ~4 minutes on 2 cores), then
scores tests/nlu_holdout.yml with rasa_tools/nlu_score.py in .venv-rasa.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOLDOUT = ROOT / "tests" / "nlu_holdout.yml"
F1_TARGET = 0.95  # weighted intent F1, FAQ keys as labels: the documented target (docs/assistant.md)
# Micro span F1 over every entity: the model of this data scores 0.918 (`time` is the weak type:
# stray "this", "in", "from now" tagged); a drop below 0.90 is a regression, not noise.
ENTITY_F1_TARGET = 0.90

# text -> (intent, {entity: value after synonym mapping}). Held out like tests/nlu_holdout.yml
# (test_key_phrases_are_not_in_training_data): each checks one rule of docs/assistant.md end to end.
KEY_PHRASES: dict[str, tuple[str, dict[str, str]]] = {
    "could I drop in Wednesday morning for a scale and polish with Dr Patel?":
        ("book_appointment", {"service": "cleaning", "dentist": "patel", "time": "Wednesday morning"}),
    "get me a check-up with any dentist this Friday evening":
        ("book_appointment", {"service": "cleaning", "dentist": "any", "time": "this Friday evening"}),
    "reserve a hygiene visit with whoever is free the 19th at 8:45":
        ("book_appointment", {"service": "cleaning", "dentist": "any", "time": "the 19th at 8:45"}),
    "I need to get a tooth out asap":
        ("book_appointment", {"service": "extraction", "time": "asap"}),
    "root canal treatment with James Chen":
        ("inform", {"service": "root canal", "dentist": "chen"}),
    "teeth whitening with Priya in two weeks":
        ("inform", {"service": "whitening", "dentist": "patel", "time": "in two weeks"}),
    "the best number for me is 212 555 0187": ("inform", {"phone": "212 555 0187"}),
    "you can call me at (646) 555-0199": ("inform", {"phone": "(646) 555-0199"}),
    "+33 1 42 68 53 00": ("inform", {"phone": "+33 1 42 68 53 00"}),
    "I'd like you to cancel my dental appointment": ("cancel_appointment", {}),
    "let's forget the whole thing": ("stop", {}),
    "no wait, I'll sort it out another day": ("stop", {}),
    "if a tooth gets knocked loose, should I put it in milk?": ("faq/emergency_advice", {}),
    "I knocked my tooth out and it's bleeding": ("emergency", {}),
    "does the clinic open at all on Saturdays?": ("faq/opening_hours", {}),
    "do you have a free slot this Saturday?": ("check_availability", {"time": "this Saturday"}),
}

# the report fixture may train from cold (a checkout without `make train`): its 20 minutes must fit
# inside the first test's own limit, not race pyproject's 900 s per test
pytestmark = pytest.mark.timeout(30 * 60)


@pytest.fixture(scope="module")
def report(rasa_evaluation: dict) -> dict:
    """rasa_tools.nlu_score's report of the current model (tests/conftest.py: one run with test_rasa's)."""
    return rasa_evaluation


@pytest.mark.slow
def test_heldout_intent_f1(report: dict) -> None:
    errors = "\n".join(f"  {e['expected_intent']} -> {e['intent']} ({e['confidence']}): {e['text']}"
                       for e in report["errors"] if e["intent"] != e["expected_intent"])
    assert report["intent_f1_weighted"] >= F1_TARGET, f"misclassified:\n{errors}"


@pytest.mark.slow
def test_heldout_entity_f1(report: dict) -> None:
    """Entity spans (start, end and type must all match), micro F1 over the held-out set."""
    errors = "\n".join(f"  {e['text']}: got {[(x['entity'], x['value']) for x in e['entities']]}"
                       f" want {e['expected_entities']}" for e in report["errors"])
    assert report["entity_report"]["micro"]["f1"] >= ENTITY_F1_TARGET, f"{report['entity_report']}\n{errors}"


@pytest.mark.slow
def test_heldout_covers_every_label(report: dict) -> None:
    labels = {k for k in report["intent_report"] if k not in {"accuracy", "macro avg", "weighted avg",
                                                                "micro avg"}}
    assert labels >= _trained_intents(), "every trained intent has held-out examples"
    assert all(report["intent_report"][label]["support"] >= 8 for label in labels)


# Known misses of the current model, kept visible: strict, so once the data fixes one the XPASS
# fails and it must leave this set (and docs/assistant.md, "Evaluation").
KNOWN_MISSES = {
    # "another day" is a time phrase in answers ("[another day](time)"); here the model tags
    # "another" alone as a time, in a message that gives none
    "no wait, I'll sort it out another day",
}


@pytest.mark.slow
@pytest.mark.parametrize("text", [
    pytest.param(t, marks=pytest.mark.xfail(strict=True, reason="known miss of the current model"))
    if t in KNOWN_MISSES else t
    for t in KEY_PHRASES
])
def test_key_phrase(report: dict, text: str) -> None:
    parse = next(p for p in report["parses"] if p["text"] == text)
    intent, entities = KEY_PHRASES[text]
    assert parse["intent"] == intent
    # a list, not a dict: "teeth" + "whitening" as two service spans is a miss, not "whitening"
    assert sorted((e["entity"], e["value"]) for e in parse["entities"]) == sorted(entities.items())


# --- data hygiene (no model needed) ---------------------------------------------

_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")
_BARE_VALUE = re.compile(r"^\[[^\]]*\](?:\([^)]*\)|\{[^}]*\})$")

# Near-copy thresholds (see test_holdout_is_not_in_training_data).
SIMILAR = 0.8             # difflib ratio of two normalised sentences at or above which they are one phrasing
CONTAINED_MIN_WORDS = 3   # a sentence inside another counts from this many words


@dataclass(frozen=True)
class Example:
    intent: str
    text: str          # annotations removed
    bare_value: bool   # the whole line is one entity value, e.g. "[scale and polish](service)"


def _examples(path: Path) -> list[Example]:
    """The examples of each `- intent:` block (PyYAML-free)."""
    out, intent = [], None
    for line in path.read_text().splitlines():
        if m := re.match(r"- (intent|synonym|regex|lookup): (\S+)", line):
            intent = m.group(2) if m.group(1) == "intent" else None
        elif intent and (m := re.match(r"\s+- (.*)$", line)):
            raw = m.group(1).strip()
            out.append(Example(intent, _ANNOTATION.sub(r"\1", raw).strip(), bool(_BARE_VALUE.match(raw))))
    return out


def _training() -> list[Example]:
    return [e for f in sorted((ROOT / "data" / "nlu").glob("*.yml")) for e in _examples(f)]


def _trained_intents() -> set[str]:
    return {e.intent for e in _training()}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", "", text.lower()).split())


def _near_copy(a: str, b: str, *, a_bare: bool = False, b_bare: bool = False) -> str | None:
    """Why the normalised sentences ``a`` and ``b`` are one phrasing, or None."""
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.real_quick_ratio() >= SIMILAR and matcher.quick_ratio() >= SIMILAR and matcher.ratio() >= SIMILAR:
        return f"{matcher.ratio():.2f} similar"
    (short, short_bare), (long, _) = sorted(((a, a_bare), (b, b_bare)), key=lambda x: len(x[0]))
    if not short_bare and len(short.split()) >= CONTAINED_MIN_WORDS and f" {short} " in f" {long} ":
        return "contained"
    return None


def _leaks(texts: list[tuple[str, bool]]) -> list[str]:
    trained = {(_norm(e.text), e.bare_value) for e in _training()}
    found = []
    for text, bare in texts:
        norm = _norm(text)
        for other, other_bare in trained:
            if why := _near_copy(norm, other, a_bare=bare, b_bare=other_bare):
                found.append(f"{text!r} ~ {other!r} ({why})")
    return found


def test_holdout_is_not_in_training_data() -> None:
    """No held-out sentence is a training sentence, a near copy of one, or one with words added
    or taken away, so the held-out F1 measures phrasings the model has not seen. Both sides are
    normalised (lower case, punctuation dropped, whitespace collapsed) and a pair is a copy when

    * difflib's ratio is at least 0.8 (SIMILAR): in a ten-word sentence that is one or two words
      swapped ("are you open on Sunday?" ~ "are you open on Saturday?", 0.88) or a typo
      ("heyy" ~ "hey", 0.86). Distinct phrasings of one request score 0.4-0.7;
    * or one sits inside the other on word boundaries ("can you cancel my appointment with Dr
      Alvarez" contains "cancel my appointment"), counted only when the inner one has at least
      three words (CONTAINED_MIN_WORDS): one or two words ("hi", "next week", "any dentist") are
      vocabulary every sentence shares, three make a phrasing. A line that is one entity value
      and nothing else ("[scale and polish](service)", "[in two weeks](time)") is vocabulary too:
      the held-out set must be able to use the values the synonyms map.
    """
    leaked = _leaks([(e.text, e.bare_value) for e in _examples(HOLDOUT)])
    assert not leaked, "held-out examples that copy data/nlu:\n" + "\n".join(leaked)


def test_key_phrases_are_not_in_training_data() -> None:
    """The key phrases are held out by the same rule."""
    leaked = _leaks([(text, False) for text in KEY_PHRASES])
    assert not leaked, "key phrases that copy data/nlu:\n" + "\n".join(leaked)


def test_the_guard_catches_near_copies() -> None:
    """What the guard above must flag and let through (a guard that flags nothing passes too)."""
    assert _near_copy(_norm("Are you open on Sunday?"), _norm("are you open on Saturday?"))
    assert _near_copy(_norm("heyy"), _norm("hey"))
    assert _near_copy(_norm("can you cancel my appointment with Dr Alvarez?"), _norm("cancel my appointment"))
    assert _near_copy(_norm("cancel my appointment"), _norm("please could you cancel my appointment today"))
    assert not _near_copy(_norm("hi, can I book a cleaning?"), _norm("hi"))  # too short to count inside
    assert not _near_copy(_norm("can I book a scale and polish next week?"), _norm("scale and polish"), b_bare=True)
    assert not _near_copy(_norm("could you pencil me in for a visit?"), _norm("I'd like to make an appointment"))


def test_no_example_has_two_intents() -> None:
    seen: dict[str, str] = {}
    clashes = []
    for e in _training():
        if seen.setdefault(_norm(e.text), e.intent) != e.intent:
            clashes.append((e.text, seen[_norm(e.text)], e.intent))
    assert not clashes, clashes


def test_time_spans_leave_out_on_at_for() -> None:
    """docs/assistant.md: a leading "on", "at" or "for" is not part of a `time` span ("on Friday"
    gives `Friday`), in the training data and in the held-out set alike."""
    pattern = re.compile(r"\[(?:on|at|for) [^\]]*\]\(time\)", re.IGNORECASE)
    files = [*sorted((ROOT / "data" / "nlu").glob("*.yml")), HOLDOUT]
    spans = [f"{f.name}: {m.group(0)}" for f in files for m in pattern.finditer(f.read_text())]
    assert not spans, spans
