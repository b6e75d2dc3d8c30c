"""Recalls: who is due for a service again (the six-month cleaning).

A service with a ``recall_interval`` (sql/008) recalls its patients: a patient whose last
*completed* visit of that service started longer than the interval ago is due, unless they have
already booked that service again (a pending or confirmed visit after the last one). The interval
is added in the clinic's wall-clock time, in SQL, so "6 months" after a 9:00 visit in May is 9:00
in November whatever the daylight-saving change in between, and a month is a calendar month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from .jsonable import json_dict

_DUE = text("""
    WITH last AS (
        SELECT DISTINCT ON (a.patient_id, a.service_id) a.patient_id, a.service_id, a.starts_at
          FROM appointments a JOIN services s ON s.id = a.service_id
         WHERE a.status = 'completed' AND s.recall_interval IS NOT NULL
           AND (CAST(:patient AS bigint) IS NULL OR a.patient_id = CAST(:patient AS bigint))
         ORDER BY a.patient_id, a.service_id, a.starts_at DESC)
    SELECT p.id, p.full_name, s.id, s.name, l.starts_at,
           ((l.starts_at AT TIME ZONE :tz) + s.recall_interval) AT TIME ZONE :tz AS due_at
      FROM last l JOIN patients p ON p.id = l.patient_id JOIN services s ON s.id = l.service_id
     WHERE ((l.starts_at AT TIME ZONE :tz) + s.recall_interval) AT TIME ZONE :tz <= :now
       AND NOT EXISTS (SELECT 1 FROM appointments u
                        WHERE u.patient_id = l.patient_id AND u.service_id = l.service_id
                          AND u.status IN ('pending', 'confirmed') AND u.starts_at > l.starts_at)
     ORDER BY due_at, p.id, s.id
     LIMIT :limit
""")


@dataclass(frozen=True)
class Due:
    patient_id: int
    patient_name: str
    service_id: int
    service_name: str
    last_visit: datetime
    due_at: datetime

    def as_dict(self) -> dict:
        return json_dict(self)


def due(session: Session, now: datetime, tz_name: str, *, patient_id: int | None = None,
        limit: int = 1000) -> list[Due]:
    """Everyone due at ``now`` (or only ``patient_id``), the longest overdue first."""
    rows = session.execute(_DUE, {"now": now, "tz": tz_name, "patient": patient_id, "limit": limit})
    return [Due(*row) for row in rows]
