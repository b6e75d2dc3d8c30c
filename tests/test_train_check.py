"""``bot.stack.has_model`` counts only the model trained from the current inputs: the file
``scripts/train.sh`` names by its fingerprint, checked with ``train.sh --check`` in a copy of the
project's training inputs (the shared models/ folder is never touched)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bot import stack

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ["config.yml", "domain.yml", "data", "requirements/rasa.lock", "rasa_tools/phone.py",
          "rasa_tools/faq_selector.py", "scripts/train.sh"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in INPUTS:
        src, dst = ROOT / name, tmp_path / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy2(src, dst)
    (tmp_path / "models").mkdir()
    monkeypatch.setattr(stack, "ROOT", tmp_path)
    return tmp_path


def check(project: Path) -> tuple[int, str]:
    done = subprocess.run(["bash", "scripts/train.sh", "--check"], cwd=project, capture_output=True, text=True,
                          timeout=60)
    return done.returncode, done.stdout.strip()


def test_only_the_model_of_the_current_data_counts(project: Path):
    rc, model = check(project)
    assert rc == 1 and model.startswith("models/rasa-") and model.endswith(".tar.gz")
    (project / "models" / "rasa-0123456789abcdef.tar.gz").write_bytes(b"")  # some other data's model
    assert not stack.has_model()

    (project / model).write_bytes(b"")  # what train.sh would have written for these inputs
    assert check(project) == (0, model)
    assert stack.has_model()

    with (project / "data" / "nlu" / "greet_extra.yml").open("w") as fh:  # the data moves on
        fh.write('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - good day to you\n')
    rc, newer = check(project)
    assert rc == 1 and newer != model
    assert not stack.has_model()  # the older model is stale now


def test_check_never_trains(project: Path):
    check(project)
    assert sorted(p.name for p in (project / "models").iterdir()) == []  # no lock, no model written
