"""Every ``python -m`` entry point of the repository, and every console script of pyproject.toml,
answers ``--help`` with its usage and exit code 0, as a real process (nothing starts, nothing
needs a database). The list is checked against the tree, so a new entry point joins it."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.prereq import require

ROOT = Path(__file__).resolve().parent.parent
RASA_PY = ROOT / ".venv-rasa" / "bin" / "python"

# module → the interpreter it runs on (.venv's for the services and benches, .venv-rasa's for rasa_tools)
ENTRIES = {
    "bot": sys.executable,
    "sync": sys.executable,
    "actions": sys.executable,
    "bench.realtime": sys.executable,
    "rasa_tools.server": str(RASA_PY),
    "rasa_tools.evaluate": str(RASA_PY),
    "rasa_tools.nlu_score": str(RASA_PY),
}
VENVS = (".venv", ".venv-rasa", ".git", ".make")


def _entry_points_in_tree() -> set[str]:
    found = set()
    for path in ROOT.rglob("__main__.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] not in VENVS:
            found.add(".".join(rel.parts[:-1]))
    for path in (ROOT / "rasa_tools").glob("*.py"):
        if 'if __name__ == "__main__":' in path.read_text():
            found.add(f"rasa_tools.{path.stem}")
    return found


def _env() -> dict[str, str]:
    # no configuration at all: --help must not need any
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "JWT_SECRET", "ENV")}


def _assert_usage(r: subprocess.CompletedProcess, name: str) -> None:
    assert r.returncode == 0, f"{name} --help: exit {r.returncode}\n{r.stderr[-2000:]}"
    assert "usage:" in r.stdout.lower(), f"{name} --help printed no usage:\n{r.stdout[-2000:]}"
    assert "Traceback" not in r.stderr


def test_every_entry_point_is_listed():
    assert _entry_points_in_tree() == set(ENTRIES)


@pytest.mark.parametrize("module", sorted(ENTRIES))
def test_python_m_help(module):
    python = ENTRIES[module]
    if python == str(RASA_PY):
        require(RASA_PY.exists(), ".venv-rasa is missing: run `make install`")
    r = subprocess.run([python, "-m", module, "--help"], cwd=ROOT, env=_env(), capture_output=True, text=True,
                       timeout=300)
    _assert_usage(r, f"python -m {module}")


SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_console_script_help(script):
    path = Path(sys.executable).parent / script
    require(path.exists(), f"{script} is not installed: run `make install` (pip install -e .)")
    module = SCRIPTS[script].split(":")[0].removesuffix(".__main__")
    r = subprocess.run([str(path), "--help"], cwd="/", env=_env(), capture_output=True, text=True, timeout=120)
    _assert_usage(r, script)
    assert f"python -m {module}" in r.stdout  # the same parser as the module's
