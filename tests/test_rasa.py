"""The Rasa project as Rasa itself checks it: ``rasa data validate`` and every
conversation in tests/test_stories.yml through ``rasa test core`` on the trained model."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
# the fixture may train from cold (a checkout without `make train`): its 20 minutes must fit
# inside the first test's own limit, not race pyproject's 900 s per test
pytestmark = [pytest.mark.slow, pytest.mark.timeout(30 * 60)]
ENV = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def model() -> str:
    if not RASA.exists():
        pytest.fail(".venv-rasa is missing: run `make install`")
    trained = subprocess.run(["bash", "scripts/train.sh"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env=ENV, timeout=20 * 60)
    assert trained.returncode == 0, "scripts/train.sh failed (its log is above)"
    return trained.stdout.strip().splitlines()[-1]


def test_data_validates():
    r = subprocess.run([str(RASA), "data", "validate"], cwd=ROOT, capture_output=True, text=True, env=ENV,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_every_conversation_passes(model, tmp_path):
    r = subprocess.run([str(RASA), "test", "core", "--model", model, "--stories", "tests/test_stories.yml",
                        "--out", str(tmp_path), "--fail-on-prediction-errors"],
                       cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=900)
    failed = (tmp_path / "failed_test_stories.yml")
    detail = failed.read_text()[:4000] if failed.exists() else r.stderr[-4000:]
    assert r.returncode == 0, detail
    stories = (ROOT / "tests" / "test_stories.yml").read_text().count("- story:")
    assert stories >= 30
