"""The clinic's catalogue as the bot names it: its services and its active dentists.

One type of each, and one source: the availability cache holds the catalogue in its state and
keeps it fresh from events (the ``dentists`` and ``services`` triggers announce every edit as
``availability_changed``, and the cache reloads what changed); ``actions.gateway`` answers
``catalogue()`` from it, and reads ``load_catalogue`` itself only where no cache is loaded
(tools, tests, the action server's first seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Dentist, Service


@dataclass(frozen=True)
class ServiceInfo:
    """A service. ``buffer_*`` minutes surround a visit in the diary."""

    id: int
    name: str
    duration_minutes: int
    price_cents: int
    description: str | None = None
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    min_notice_minutes: int | None = None  # None: the clinic's default (settings)
    performed_by: str = "dentist"  # or "hygienist" (sql/008)
    needs_operatory: bool = True  # whether a visit holds a chair

    @property
    def key(self) -> str:  # the canonical entity value: "root canal"
        return self.name.lower()

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)

    @property
    def price(self) -> float:
        return self.price_cents / 100


@dataclass(frozen=True)
class DentistInfo:
    id: int
    full_name: str
    specialty: str | None = None

    @property
    def key(self) -> str:  # the canonical entity value: "alvarez"
        return self.full_name.split()[-1].lower()


@dataclass(frozen=True)
class Catalogue:
    services: Mapping[int, ServiceInfo]
    dentists: Mapping[int, DentistInfo]  # active ones only

    def service(self, text: object) -> ServiceInfo | None:
        if not isinstance(text, str):
            return None
        wanted = " ".join(text.lower().replace("-", " ").split())
        for s in self.services.values():
            prefix = len(wanted) >= 4 and s.key.startswith(wanted)  # "extract", "root"
            if wanted == s.key or wanted.rstrip("s") == s.key or prefix:
                return s
        return None

    def dentist(self, text: object) -> DentistInfo | None:
        if not isinstance(text, str):
            return None
        words = [w.strip(".,").lower() for w in text.split()]
        words = [w for w in words if w not in ("dr", "doctor", "dentist")]
        for d in self.dentists.values():
            names = [n.strip(".").lower() for n in d.full_name.split()[1:]]
            if words and all(w in names for w in words):
                return d
        return None


def service_info(row: Service) -> ServiceInfo:
    return ServiceInfo(row.id, row.name, row.duration_minutes, row.price_cents, row.description,
                       row.buffer_before_minutes, row.buffer_after_minutes, row.min_notice_minutes,
                       row.performed_by, row.needs_operatory)


def dentist_info(row: Dentist) -> DentistInfo | None:
    """The dentist as the bot names them; None for one who is not active."""
    return DentistInfo(row.id, row.full_name, row.specialty) if row.active else None


def load_catalogue(session: Session) -> Catalogue:
    """Every service and every active dentist, by id, read in ``session``."""
    services = {r.id: service_info(r) for r in session.scalars(select(Service).order_by(Service.id))}
    dentists = {r.id: DentistInfo(r.id, r.full_name, r.specialty)
                for r in session.scalars(select(Dentist).where(Dentist.active.is_(True)).order_by(Dentist.id))}
    return Catalogue(services, dentists)
