"""``python -m rasa_tools.server``: Rasa's command line with the custom-action answer checked by a
validator built once (rasa_tools/server.py). Runs in .venv-rasa, where Rasa and jsonschema live."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RASA_PY = ROOT / ".venv-rasa" / "bin" / "python"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not RASA_PY.exists(), reason=".venv-rasa is missing: run `make install`")]

# Runs inside .venv-rasa: the same answers through Rasa's own method and through the patched one.
PROBE = r"""
import json
from unittest import mock

from jsonschema import ValidationError
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.utils.endpoints import EndpointConfig

good = {"events": [{"event": "slot", "name": "service", "value": "cleaning", "timestamp": None},
                   {"event": "active_loop", "name": None}],
        "responses": [{"text": "Which day?", "buttons": [{"title": "Mon", "payload": "/inform"}]}]}
bad = [{"events": "not a list"}, {"events": [{"event": "slot"}]}, {"responses": [3]},
       {"events": [{"event": "no_such_event"}]}]
action = RemoteAction("validate_booking_form", EndpointConfig("http://127.0.0.1:1/webhook"))


def outcome(result):
    try:
        return action._validate_action_result(result)
    except ValidationError as e:
        return "error: " + e.message


checker = validator_for(RemoteAction.action_response_format_spec())
before = [outcome(r) for r in [good, *bad]]
import rasa_tools.server

rasa_tools.server.apply()
with mock.patch.object(checker, "check_schema", wraps=checker.check_schema) as checks:
    after = [outcome(r) for r in [good, *bad] * 3]
print(json.dumps({"before": before, "after": after, "schema_checks": checks.call_count}))
"""


def test_custom_action_answers_are_judged_as_rasa_does_with_the_schema_checked_once():
    env = {"RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([str(RASA_PY), "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["before"][0] is True
    assert all(o.startswith("error: ") and "Failed to validate Action server response" in o
               for o in out["before"][1:])
    assert out["after"] == out["before"] * 3  # same verdicts, same messages
    assert out["schema_checks"] == 1  # Rasa's own method checks the schema on every call


def test_it_is_rasa_s_command_line():
    r = subprocess.run([str(RASA_PY), "-m", "rasa_tools.server", "run", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env={"RASA_TELEMETRY_ENABLED": "false", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "usage: rasa run" in r.stdout and "--enable-api" in r.stdout
