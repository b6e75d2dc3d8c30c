"""A frozen dataclass as the dict its JSON answer shows: its fields in declaration order, dates
and datetimes as ISO 8601 text (``isoformat()``), everything else as it is."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Any


def _iso(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in items}  # a datetime is a date


def json_dict(obj: Any) -> dict[str, Any]:
    """``dataclasses.asdict(obj)`` ready for ``json.dumps`` (nested dataclasses too)."""
    return asdict(obj, dict_factory=_iso)
