"""The ``offered_slots`` slot: the times just offered, kept JSON-safe between turns so that a
typed "the second one" can be resolved against them (its own module: the availability action
writes it, and the asking helpers, the booking form and the manage actions read or write it too)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.availability import Slot


def store_offer(slots: list[Slot]) -> list[dict[str, Any]]:
    """The ``offered_slots`` slot value (JSON-safe), so a typed "the second one" can be resolved."""
    return [{"starts_at": s.starts_at.isoformat(), "dentist_id": s.dentist_id,
             "ends_at": s.ends_at.isoformat()} for s in slots]


def load_offer(value: Any) -> list[Slot]:
    out = []
    for item in value or ():
        try:
            out.append(Slot(datetime.fromisoformat(item["starts_at"]), int(item["dentist_id"]),
                            datetime.fromisoformat(item["ends_at"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out
