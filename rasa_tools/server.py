"""Rasa's command line with one per-turn cost taken out: ``python -m rasa_tools.server run ...``.

Same arguments as ``rasa`` (``run``, ``shell``, ...); the launcher starts the Rasa server this way.

Rasa 3.6 checks every custom action's answer with ``jsonschema.validate(result, schema)``
(``RemoteAction._validate_action_result``). With the pinned jsonschema 4.17 that call first
checks the *schema itself* against the draft 2020-12 meta-schema, every time: about 55 ms of
CPU for Rasa's events schema, before the answer is checked in about 1.5 ms. A booking turn
calls one to three custom actions (the action, the form's validation, the form's question),
so this was the largest single cost of a turn (py-spy: 36 % of the Rasa process's time at one
chat user; see BENCHMARKS.md, "Chat turns"). Here the validator is built once per class, its
schema checked once, and every answer is still checked against the same schema, with the same
error (``best_match``, as ``jsonschema.validate`` reports) and the same message Rasa adds.

Two more changes for the clinic's boundaries (docs/security.md):

* the tracker store is not wrapped in Rasa's ``FailSafeTrackerStore`` (see ``_tracker_store_as_is``);
* a custom action the action server cannot run answers ``utter_unavailable`` (``_answering_remote_run``);
* ``run`` enables Rasa's HTTP API only when ``RASA_API_TOKEN`` is set, and then with that token
  (``--enable-api --auth-token``), read from the environment so it never shows in ``ps``.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Text

_validators: Dict[type, Any] = {}


def _validator_for(action_class: type):
    validator = _validators.get(action_class)
    if validator is None:
        from jsonschema.validators import validator_for

        schema = action_class.action_response_format_spec()
        cls = validator_for(schema)
        cls.check_schema(schema)  # once, as jsonschema.validate would on every call
        validator = _validators[action_class] = cls(schema)
    return validator


def _validate_action_result(self, result: Dict[Text, Any]) -> bool:
    from jsonschema import ValidationError
    from jsonschema.exceptions import best_match
    from rasa.shared.constants import DOCS_BASE_URL

    error = best_match(_validator_for(type(self)).iter_errors(result))
    if error is None:
        return True
    assert isinstance(error, ValidationError)
    error.message += (
        f". Failed to validate Action server response from API, "
        f"make sure your response from the Action endpoint is valid. "
        f"For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


def _tracker_store_as_is(store, domain):
    """Rasa's ``Agent._create_tracker_store`` without the ``FailSafeTrackerStore`` around it: that
    wrapper answers a database it cannot reach with an empty in-memory conversation (the patient's
    booking form lost, "didn't quite get that"); here the error reaches the channel, which says
    the system is unavailable (rasa_tools/channels.py) and the stored conversation stays intact."""
    from rasa.core.tracker_store import InMemoryTrackerStore

    if store is None:
        return InMemoryTrackerStore(domain)
    store.domain = domain
    return store


def _answering_remote_run(run):
    """``RemoteAction.run`` that says "unavailable" when the action server cannot answer.

    Rasa logs a failed custom action and carries on with no events, so the patient got no reply
    at all (or the next prediction's question again). Here the patient gets ``utter_unavailable``
    as a bot message; the conversation state stays as it was (the action's events are lost either
    way), so the next message after the action server is back continues the form. A form's
    rejection (``ActionExecutionRejection``) is the dialogue's business and passes through."""
    import functools

    from rasa.core.actions.action import ActionExecutionRejection
    from rasa.shared.core.events import BotUttered
    from rasa.shared.exceptions import RasaException

    @functools.wraps(run)
    async def answering(self, output_channel, nlg, tracker, domain):
        try:
            return await run(self, output_channel, nlg, tracker, domain)
        except ActionExecutionRejection:
            raise
        except RasaException:
            texts = domain.responses.get("utter_unavailable") or [{"text": "The booking system is unavailable."}]
            return [BotUttered(texts[0]["text"], metadata={"utter_action": "utter_unavailable"})]

    answering.__wrapped_by_clinic__ = True
    return answering


def apply() -> None:
    """Install the cached validator and the answering ``run`` on Rasa's RemoteAction and the
    unwrapped tracker store (idempotent)."""
    from rasa.core.actions.action import RemoteAction
    from rasa.core.agent import Agent

    RemoteAction._validate_action_result = _validate_action_result
    if not getattr(RemoteAction.run, "__wrapped_by_clinic__", False):
        RemoteAction.run = _answering_remote_run(RemoteAction.run)
    Agent._create_tracker_store = staticmethod(_tracker_store_as_is)


def main() -> int:
    apply()
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    token = os.environ.get("RASA_API_TOKEN")
    if token and sys.argv[1:2] == ["run"]:
        sys.argv[2:2] = ["--enable-api", "--auth-token", token]
    return rasa_main()


if __name__ == "__main__":
    sys.exit(main())
