"""The Rasa project as Rasa itself checks it: ``rasa data validate`` and every
conversation in tests/test_stories.yml as ``rasa test core`` runs them on the trained model
(in the one process that also scores the NLU model: ``rasa_evaluation`` in tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
# the session's rasa_evaluation may train from cold (a checkout without `make train`): its 20 minutes must fit
# inside the first test's own limit, not race pyproject's 900 s per test
pytestmark = [pytest.mark.slow, pytest.mark.timeout(30 * 60)]
ENV = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_data_validates():
    r = subprocess.run([str(RASA), "data", "validate"], cwd=ROOT, capture_output=True, text=True, env=ENV,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_every_conversation_passes(rasa_evaluation):
    """``rasa test core --fail-on-prediction-errors`` on tests/test_stories.yml, run on the model
    test_nlu scores, in the same process (tests/conftest.py, rasa_tools/evaluate.py)."""
    stories = rasa_evaluation["stories"]
    assert stories["passed"], stories["failure"]
    count = (ROOT / "tests" / "test_stories.yml").read_text().count("- story:")
    assert count >= 30
