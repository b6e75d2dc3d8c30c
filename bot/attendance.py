"""Attendance: each patient's no-shows and late cancellations, for the front desk.

A *no-show* is a visit whose status is ``no_show``. A *late cancellation* is a visit cancelled
(its last change, ``updated_at``) within the cancellation notice before it started
(``CANCEL_NOTICE_HOURS``; with a notice of 0, one cancelled after it began). Only patients with
at least one of either are listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from .jsonable import json_dict

_COUNTS = text("""
    SELECT p.id, p.full_name,
           count(*) FILTER (WHERE a.status = 'no_show') AS no_shows,
           count(*) FILTER (WHERE a.status = 'cancelled' AND a.updated_at > a.starts_at - :notice) AS late_cancels
      FROM appointments a JOIN patients p ON p.id = a.patient_id
     WHERE (CAST(:patient AS bigint) IS NULL OR a.patient_id = CAST(:patient AS bigint))
     GROUP BY p.id, p.full_name
    HAVING count(*) FILTER (WHERE a.status = 'no_show') > 0
        OR count(*) FILTER (WHERE a.status = 'cancelled' AND a.updated_at > a.starts_at - :notice) > 0
     ORDER BY no_shows DESC, late_cancels DESC, p.id
     LIMIT 1000
""")


@dataclass(frozen=True)
class Attendance:
    patient_id: int
    patient_name: str
    no_shows: int
    late_cancels: int

    def as_dict(self) -> dict:
        return json_dict(self)


def counts(session: Session, notice: timedelta, *, patient_id: int | None = None) -> list[Attendance]:
    return [Attendance(*row) for row in session.execute(_COUNTS, {"notice": notice, "patient": patient_id})]


def no_shows(session: Session, patient_id: int) -> int:
    found = counts(session, timedelta(0), patient_id=patient_id)
    return found[0].no_shows if found else 0
