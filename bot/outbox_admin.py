"""Outbox housekeeping: ``python -m bot prune-events --older-than 7d``."""

from __future__ import annotations

import re
from datetime import timedelta

import psycopg

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w`` → timedelta; anything else raises ValueError."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*([smhdw])\s*", text or "")
    if not match:
        raise ValueError(f"expected an age such as 7d, 12h or 30m, got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def prune_events(conninfo: str, older_than: timedelta) -> int:
    """Delete outbox rows older than ``older_than``; the newest row is always kept, so a
    reconnecting client can still tell how far the outbox reaches. Returns rows deleted."""
    with psycopg.connect(conninfo) as conn:
        cur = conn.execute(
            "DELETE FROM realtime_events WHERE created_at < now() - %s"
            " AND id < (SELECT max(id) FROM realtime_events)",
            (older_than,),
        )
        return cur.rowcount
