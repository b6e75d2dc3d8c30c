"""The NLU model on held-out data: intent F1, key entities, and the data's hygiene.

Trains through scripts/train.sh when models/ holds no model for the current
config, domain and data (a clean clone trains once, ~4 minutes on 2 cores), then
scores tests/nlu_holdout.yml with rasa_tools/nlu_score.py in .venv-rasa.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RASA_PY = ROOT / ".venv-rasa" / "bin" / "python"
HOLDOUT = ROOT / "tests" / "nlu_holdout.yml"
F1_TARGET = 0.95

# text -> (intent, {entity: value after synonym mapping}). Phrasings not in data/nlu/.
KEY_PHRASES: dict[str, tuple[str, dict[str, str]]] = {
    "can I come in Tuesday afternoon for a cleaning with Dr Patel?":
        ("book_appointment", {"service": "cleaning", "dentist": "patel", "time": "Tuesday afternoon"}),
    "I'd like a check-up with any dentist next Tuesday afternoon":
        ("book_appointment", {"service": "cleaning", "dentist": "any", "time": "next Tuesday afternoon"}),
    "book a scale and polish with whoever is free the 14th at 10:30":
        ("book_appointment", {"service": "cleaning", "dentist": "any", "time": "the 14th at 10:30"}),
    "I need to get a tooth out asap":
        ("book_appointment", {"service": "extraction", "time": "asap"}),
    "root canal treatment with James Chen":
        ("inform", {"service": "root canal", "dentist": "chen"}),
    "teeth whitening with Priya in two weeks":
        ("inform", {"service": "whitening", "dentist": "patel", "time": "in two weeks"}),
    "my number is 212 555 0142": ("inform", {"phone": "212 555 0142"}),
    "you can call me at (646) 555-0199": ("inform", {"phone": "(646) 555-0199"}),
    "+44 20 7946 0958": ("inform", {"phone": "+44 20 7946 0958"}),
    "cancel my appointment": ("cancel_appointment", {}),
    "never mind": ("stop", {}),
    "forget it": ("stop", {}),
    "what should I do if I knock out a tooth?": ("faq/emergency_advice", {}),
    "I knocked my tooth out and it's bleeding": ("emergency", {}),
    "are you open on Saturday?": ("faq/opening_hours", {}),
    "any openings on Saturday?": ("check_availability", {"time": "Saturday"}),
}

@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not RASA_PY.exists():
        pytest.fail(".venv-rasa is missing: run `make install`")
    trained = subprocess.run([str(ROOT / "scripts" / "train.sh")], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True, timeout=20 * 60)
    assert trained.returncode == 0, "scripts/train.sh failed (its log is above)"
    model = trained.stdout.strip().splitlines()[-1]
    out = tmp_path_factory.mktemp("nlu") / "report.json"
    cmd = [str(RASA_PY), "-m", "rasa_tools.nlu_score", "--model", model, "--holdout", str(HOLDOUT),
           "--out", str(out)]
    for text in KEY_PHRASES:
        cmd += ["--parse", text]
    scored = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=10 * 60)
    print(scored.stdout)
    assert scored.returncode == 0, "rasa_tools.nlu_score failed (its log is above)"
    return json.loads(out.read_text())


@pytest.mark.slow
def test_heldout_intent_f1(report: dict) -> None:
    errors = "\n".join(f"  {e['expected_intent']} -> {e['intent']} ({e['confidence']}): {e['text']}"
                       for e in report["errors"] if e["intent"] != e["expected_intent"])
    assert report["intent_f1_weighted"] >= F1_TARGET, f"misclassified:\n{errors}"


@pytest.mark.slow
def test_heldout_covers_every_label(report: dict) -> None:
    labels = {k for k in report["intent_report"] if k not in {"accuracy", "macro avg", "weighted avg",
                                                                "micro avg"}}
    assert labels >= set(_trained_intents()), "every trained intent has held-out examples"
    assert all(report["intent_report"][label]["support"] >= 8 for label in labels)


# Known miss, kept visible: a verbless request with every detail sits between `inform`
# (an answer in a form) and `book_appointment`; the model returns nlu_fallback (0.6).
# strict: once the data fixes it, the XPASS fails and this mark must go.
# Phrases the current model still gets wrong: strict xfail, so the mark must go once data fixes them.
KNOWN_MISSES = {"book a scale and polish with whoever is free the 14th at 10:30"}  # dentist span eats the time


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
    got = {e["entity"]: e["value"] for e in parse["entities"]}
    assert got == entities


# --- data hygiene (no model needed) ---------------------------------------------

_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


def _examples(path: Path) -> list[tuple[str, str]]:
    """(intent, plain text) for each example of an `- intent:` block (PyYAML-free)."""
    out, intent = [], None
    for line in path.read_text().splitlines():
        if m := re.match(r"- (intent|synonym|regex|lookup): (\S+)", line):
            intent = m.group(2) if m.group(1) == "intent" else None
        elif intent and (m := re.match(r"\s+- (.*)$", line)):
            out.append((intent, _ANNOTATION.sub(r"\1", m.group(1)).strip()))
    return out


def _trained_intents() -> set[str]:
    return {intent for f in (ROOT / "data" / "nlu").glob("*.yml") for intent, _ in _examples(f)}


def _norm(text: str) -> str:
    return re.sub(r"[^\w\s]", "", text.lower()).strip()


def test_holdout_is_not_in_training_data() -> None:
    trained = {_norm(t) for f in (ROOT / "data" / "nlu").glob("*.yml") for _, t in _examples(f)}
    leaked = [t for _, t in _examples(HOLDOUT) if _norm(t) in trained]
    assert not leaked, f"held-out examples also in data/nlu: {leaked}"


def test_no_example_has_two_intents() -> None:
    seen: dict[str, str] = {}
    clashes = []
    for f in sorted((ROOT / "data" / "nlu").glob("*.yml")):
        for intent, text in _examples(f):
            if seen.setdefault(_norm(text), intent) != intent:
                clashes.append((text, seen[_norm(text)], intent))
    assert not clashes, clashes
