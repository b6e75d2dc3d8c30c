"""Rasa's SQL tracker store, storing no credentials (endpoints.yml: ``type: rasa_tools.tracker_store.ClinicTrackerStore``).

A message's metadata carries the patient's token and the client address (rasa_tools/channels.py);
the action server needs them while the message is handled, the dialogue never after. This store
writes every event as Rasa's ``SQLTrackerStore`` does, with ``token`` and ``client`` removed
from the event's metadata, from a user message's ``parse_data`` and from the
``session_started_metadata`` slot. So a stored conversation (and Rasa's HTTP API, where enabled)
holds no token, and nothing stored can vouch for the next message: its own token must.

Errors are not swallowed here: with rasa_tools.server, Rasa does not wrap this store in its
``FailSafeTrackerStore`` (which answers an unreachable database with an empty in-memory
conversation), so the channel answers "unavailable" and the stored conversation stays as it was.

Follows rasa 3.6.21: ``SQLTrackerStore.save`` reads only ``type_name`` and ``as_dict()`` of each
event that ``_additional_events`` yields (tests/test_rasa_tracker_store.py checks it still does).
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Iterator

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import SESSION_START_METADATA_SLOT
from rasa.shared.core.events import Event

CREDENTIALS = ("token", "client")


def _drop(metadata: Any) -> Any:
    if isinstance(metadata, dict):
        return {k: v for k, v in metadata.items() if k not in CREDENTIALS}
    return metadata


def scrub(data: Dict[str, Any]) -> Dict[str, Any]:
    """An event's dict without credentials (a copy; the live tracker keeps them for this turn)."""
    data = copy.deepcopy(data)
    if "metadata" in data:
        data["metadata"] = _drop(data["metadata"])
    if isinstance(data.get("parse_data"), dict) and "metadata" in data["parse_data"]:
        data["parse_data"]["metadata"] = _drop(data["parse_data"]["metadata"])
    if data.get("event") == "slot" and data.get("name") == SESSION_START_METADATA_SLOT:
        data["value"] = _drop(data.get("value"))
    return data


class _Stored:
    """An event as it is written: the same type, a scrubbed dict."""

    def __init__(self, event: Event):
        self.type_name = event.type_name
        self._event = event

    def as_dict(self) -> Dict[str, Any]:
        return scrub(self._event.as_dict())


class ClinicTrackerStore(SQLTrackerStore):
    def _additional_events(self, session: Any, tracker: Any) -> Iterator:
        return (_Stored(event) for event in super()._additional_events(session, tracker))
