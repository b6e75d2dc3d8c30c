"""The booking service: book, cancel, reschedule, list and change status.

Every call returns a ``Result`` whose ``outcome`` is one of a small set
(``booked``, ``slot_taken``, ``outside_hours``, ``not_found``, ...). Callers (the
action server, the REST handlers) map outcomes to responses; no driver exception
reaches them. The database has the last word: a write refused by the no-overlap
constraint becomes ``slot_taken`` with the nearest free alternatives.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Callable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .availability import Slot, buffered, free_slots, load_schedules, nearest_slots, service_buffers, within_hours
from .db import DatabaseError, DatabaseUnavailable, InvalidData, SlotTaken, session_scope
from .models import STATUSES, Appointment, Dentist, Patient, Service
from .phone import InvalidPhone, normalise_phone
from .settings import Settings
from .tokens import Identity

log = logging.getLogger(__name__)

MAX_NOTES = 64 * 1024
MAX_NAME = 200


class Outcome(str, Enum):
    BOOKED = "booked"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    UPDATED = "updated"
    LISTED = "listed"
    FOUND = "found"
    SLOT_TAKEN = "slot_taken"
    OUTSIDE_HOURS = "outside_hours"
    IN_PAST = "in_past"
    NOT_FOUND = "not_found"
    NOT_ALLOWED = "not_allowed"
    ALREADY_CANCELLED = "already_cancelled"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


SUCCESS = {Outcome.BOOKED, Outcome.RESCHEDULED, Outcome.CANCELLED, Outcome.UPDATED, Outcome.LISTED,
           Outcome.FOUND}


@dataclass(frozen=True)
class AppointmentView:
    id: int
    patient_id: int
    patient_name: str
    dentist_id: int
    dentist_name: str
    service_id: int
    service_name: str
    starts_at: datetime
    ends_at: datetime
    status: str
    notes: str | None

    @classmethod
    def of(cls, a: Appointment) -> "AppointmentView":
        return cls(a.id, a.patient_id, a.patient.full_name, a.dentist_id, a.dentist.full_name, a.service_id,
                   a.service.name, a.starts_at, a.ends_at, a.status, a.notes)

    def as_dict(self) -> dict:
        d = self.__dict__.copy()
        d["starts_at"], d["ends_at"] = self.starts_at.isoformat(), self.ends_at.isoformat()
        return d


@dataclass
class Result:
    outcome: Outcome
    message: str = ""
    appointment: AppointmentView | None = None
    alternatives: list[Slot] = field(default_factory=list)
    appointments: list[AppointmentView] = field(default_factory=list)
    field: str | None = None  # the input a not_found / invalid outcome is about
    patient_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in SUCCESS


def _guard(fn: Callable[..., Result]) -> Callable[..., Result]:
    """Turn database trouble into outcomes: the caller never sees an exception."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> Result:
        try:
            return fn(*args, **kwargs)
        except DatabaseUnavailable as exc:
            log.warning("%s: database unavailable: %s", fn.__name__, exc)
            return Result(Outcome.UNAVAILABLE, "The booking system is unavailable right now; please try again.")
        except InvalidData as exc:
            log.info("%s: refused by %s: %s", fn.__name__, exc.constraint, exc)
            return Result(Outcome.INVALID, f"That was refused: {exc}", field=exc.constraint)
        except DatabaseError as exc:
            log.exception("%s failed", fn.__name__)
            return Result(Outcome.UNAVAILABLE, f"The booking system could not do that ({type(exc).__name__}).")

    return wrapper


def _aware(value: datetime) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None and value.utcoffset() is not None


class BookingService:
    def __init__(self, engine: Engine, settings: Settings, *, clock: Callable[[], datetime] | None = None):
        self.engine = engine
        self.settings = settings
        self.tz = settings.tz
        self.step = timedelta(minutes=settings.slot_step_minutes)
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    def now(self) -> datetime:
        return self._clock()

    # --- reads ---------------------------------------------------------------------------------

    @_guard
    def available_slots(self, service_id: int, start: datetime, end: datetime, *,
                        dentist_id: int | None = None, limit: int | None = None) -> list[Slot]:
        """Free slots from SQL (the reference the action server's cache is compared with)."""
        with session_scope(self.engine) as s:
            service = s.get(Service, service_id)
            if service is None:
                return []
            start = max(start, self.now())
            schedules = load_schedules(s, start, end, None if dentist_id is None else [dentist_id])
        return free_slots(schedules.values(), timedelta(minutes=service.duration_minutes), start, end,
                          tz=self.tz, step=self.step, limit=limit, **service_buffers(service))

    def _alternatives(self, s: Session, service: Service, dentist_id: int | None, around: datetime,
                      count: int = 3) -> list[Slot]:
        now = self.now()
        window = timedelta(days=14)
        lo, hi = max(now, around - window), max(now, around) + window
        kwargs = dict(tz=self.tz, not_before=now, window=window, count=count, step=self.step,
                      **service_buffers(service))
        duration = timedelta(minutes=service.duration_minutes)
        if dentist_id is not None:
            found = nearest_slots(load_schedules(s, lo, hi, [dentist_id]).values(), duration, around, **kwargs)
            if found:
                return found
        return nearest_slots(load_schedules(s, lo, hi).values(), duration, around, **kwargs)

    # --- patients ------------------------------------------------------------------------------

    @_guard
    def find_or_create_patient(self, full_name: str, phone: str, email: str | None = None) -> Result:
        """The patient with this phone number (normalised), created if new."""
        name = (full_name or "").strip()
        if not name:
            return Result(Outcome.INVALID, "A name is needed.", field="full_name")
        if len(name) > MAX_NAME:
            return Result(Outcome.INVALID, f"A name can be at most {MAX_NAME} characters.", field="full_name")
        try:
            e164 = normalise_phone(phone, self.settings.phone_region)
        except InvalidPhone as exc:
            return Result(Outcome.INVALID, str(exc), field="phone")
        with session_scope(self.engine) as s:
            stmt = (insert(Patient).values(full_name=name, phone=e164, email=email)
                    .on_conflict_do_update(index_elements=[Patient.phone], set_={"phone": e164})
                    .returning(Patient.id))
            patient_id = s.execute(stmt).scalar_one()
        return Result(Outcome.FOUND, patient_id=patient_id)

    # --- writes --------------------------------------------------------------------------------

    @_guard
    def book(self, actor: Identity, *, patient_id: int, dentist_id: int, service_id: int, starts_at: datetime,
             notes: str | None = None, status: str = "pending") -> Result:
        if actor.role == "patient" and actor.patient_id != patient_id:
            return Result(Outcome.NOT_ALLOWED, "You can only book for yourself.")
        if actor.role == "dentist" and actor.dentist_id != dentist_id:
            return Result(Outcome.NOT_ALLOWED, "A dentist can only book visits with themselves.")
        if not _aware(starts_at):
            return Result(Outcome.INVALID, "The start time needs a time zone.", field="starts_at")
        if notes is not None and len(notes) > MAX_NOTES:
            return Result(Outcome.INVALID, f"Notes can be at most {MAX_NOTES} characters.", field="notes")
        if status not in ("pending", "confirmed"):
            return Result(Outcome.INVALID, "A new visit is pending or confirmed.", field="status")
        try:
            with session_scope(self.engine) as s:
                problem = self._check_refs(s, patient_id=patient_id, dentist_id=dentist_id, service_id=service_id)
                if problem:
                    return problem
                service = s.get(Service, service_id)
                assert service is not None
                ends_at = starts_at + timedelta(minutes=service.duration_minutes)
                refusal = self._check_time(s, service, dentist_id, starts_at, ends_at, ignore=None)
                if refusal:
                    return refusal
                appt = Appointment(patient_id=patient_id, dentist_id=dentist_id, service_id=service_id,
                                   starts_at=starts_at, ends_at=ends_at, status=status, notes=notes)
                s.add(appt)
                s.flush()
        except SlotTaken:  # the database's word: someone else committed first
            return self.slot_taken(service_id, dentist_id, starts_at)
        return self._after_write(Outcome.BOOKED, appt.id)

    @_guard
    def reschedule(self, actor: Identity, appointment_id: int, starts_at: datetime, *,
                   dentist_id: int | None = None) -> Result:
        if not _aware(starts_at):
            return Result(Outcome.INVALID, "The start time needs a time zone.", field="starts_at")
        service_id = dentist = None
        try:
            with session_scope(self.engine) as s:
                appt = self._locked(s, appointment_id)
                refusal = self._check_access(actor, appt)
                if refusal:
                    return refusal
                assert appt is not None
                if appt.status not in ("pending", "confirmed"):
                    return Result(Outcome.ALREADY_CANCELLED if appt.status == "cancelled" else Outcome.NOT_ALLOWED,
                                  f"That visit is {appt.status.replace('_', ' ')} and cannot be moved.")
                new_dentist = dentist_id or appt.dentist_id
                service_id, dentist = appt.service_id, new_dentist
                if new_dentist != appt.dentist_id and s.get(Dentist, new_dentist) is None:
                    return Result(Outcome.NOT_FOUND, "No such dentist.", field="dentist_id")
                ends_at = starts_at + timedelta(minutes=appt.service.duration_minutes)
                refusal = self._check_time(s, appt.service, new_dentist, starts_at, ends_at, ignore=appt.id)
                if refusal:
                    return refusal
                appt.starts_at, appt.ends_at, appt.dentist_id = starts_at, ends_at, new_dentist
                s.flush()
        except SlotTaken:
            assert service_id is not None and dentist is not None
            return self.slot_taken(service_id, dentist, starts_at)
        return self._after_write(Outcome.RESCHEDULED, appointment_id)

    @_guard
    def cancel(self, actor: Identity, appointment_id: int) -> Result:
        with session_scope(self.engine) as s:
            appt = self._locked(s, appointment_id)
            refusal = self._check_access(actor, appt)
            if refusal:
                return refusal
            assert appt is not None
            if appt.status == "cancelled":
                return Result(Outcome.ALREADY_CANCELLED, "That visit was already cancelled.",
                              appointment=AppointmentView.of(appt))
            if appt.status in ("completed", "no_show"):
                return Result(Outcome.NOT_ALLOWED, "That visit is in the past and cannot be cancelled.")
            appt.status = "cancelled"
        return self._after_write(Outcome.CANCELLED, appointment_id)

    @_guard
    def set_status(self, actor: Identity, appointment_id: int, status: str) -> Result:
        """Staff change a visit's status (admin, or the dentist of that visit)."""
        if status not in STATUSES:
            return Result(Outcome.INVALID, f"Status must be one of {', '.join(STATUSES)}.", field="status")
        if actor.role not in ("admin", "dentist"):
            return Result(Outcome.NOT_ALLOWED, "Only staff can change a visit's status.")
        with session_scope(self.engine) as s:
            appt = self._locked(s, appointment_id)
            refusal = self._check_access(actor, appt)
            if refusal:
                return refusal
            assert appt is not None
            appt.status = status
        return self._after_write(Outcome.UPDATED, appointment_id)

    @_guard
    def list_appointments(self, actor: Identity, patient_id: int, *, include_past: bool = False) -> Result:
        if actor.role == "patient" and actor.patient_id != patient_id:
            return Result(Outcome.NOT_ALLOWED, "You can only see your own appointments.")
        with session_scope(self.engine) as s:
            q = select(Appointment).where(Appointment.patient_id == patient_id)
            if actor.role == "dentist":
                q = q.where(Appointment.dentist_id == actor.dentist_id)
            if not include_past:
                q = q.where(Appointment.ends_at > self.now(), Appointment.status.in_(("pending", "confirmed")))
            rows = [AppointmentView.of(a) for a in s.scalars(q.order_by(Appointment.starts_at))]
        return Result(Outcome.LISTED, appointments=rows)

    @_guard
    def get(self, actor: Identity, appointment_id: int) -> Result:
        with session_scope(self.engine) as s:
            appt = s.get(Appointment, appointment_id)
            refusal = self._check_access(actor, appt)
            if refusal:
                return refusal
            assert appt is not None
            return Result(Outcome.FOUND, appointment=AppointmentView.of(appt))

    # --- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _locked(s: Session, appointment_id: int) -> Appointment | None:
        """The visit, row-locked until the transaction ends (two edits of one visit queue up)."""
        if not isinstance(appointment_id, int) or isinstance(appointment_id, bool):
            return None
        return s.scalars(select(Appointment).where(Appointment.id == appointment_id)
                         .with_for_update(of=Appointment)).one_or_none()

    def _after_write(self, outcome: Outcome, appointment_id: int) -> Result:
        with session_scope(self.engine) as s:
            appt = s.get(Appointment, appointment_id)
            assert appt is not None
            return Result(outcome, appointment=AppointmentView.of(appt))

    @staticmethod
    def _check_refs(s: Session, **ids: int) -> Result | None:
        for name, model in (("patient_id", Patient), ("dentist_id", Dentist), ("service_id", Service)):
            value = ids[name]
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or s.get(model, value) is None:
                return Result(Outcome.NOT_FOUND, f"No such {name.removesuffix('_id')}.", field=name)
        dentist = s.get(Dentist, ids["dentist_id"])
        if dentist is not None and not dentist.active:
            return Result(Outcome.NOT_FOUND, "That dentist is not seeing patients.", field="dentist_id")
        return None

    @staticmethod
    def _check_access(actor: Identity, appt: Appointment | None) -> Result | None:
        """Not found and not yours look alike to a patient: no probing of other people's ids."""
        if appt is None:
            return Result(Outcome.NOT_FOUND, "No such appointment.", field="appointment_id")
        if actor.role == "admin":
            return None
        if actor.role == "dentist" and actor.dentist_id == appt.dentist_id:
            return None
        if actor.role == "patient" and actor.patient_id == appt.patient_id:
            return None
        if actor.role == "patient":
            return Result(Outcome.NOT_FOUND, "No such appointment.", field="appointment_id")
        return Result(Outcome.NOT_ALLOWED, "That appointment is not yours to change.")

    def _check_time(self, s: Session, service: Service, dentist_id: int, starts_at: datetime,
                    ends_at: datetime, *, ignore: int | None) -> Result | None:
        if starts_at < self.now():
            return Result(Outcome.IN_PAST, "That time has already passed.",
                          alternatives=self._alternatives(s, service, dentist_id, self.now()))
        day_start = starts_at - timedelta(days=1)
        schedule = load_schedules(s, day_start, ends_at + timedelta(days=1), [dentist_id]).get(dentist_id)
        if schedule is None or not within_hours(schedule, starts_at, ends_at, self.tz):
            return Result(Outcome.OUTSIDE_HOURS, "The dentist is not working then.",
                          alternatives=self._alternatives(s, service, dentist_id, starts_at))
        if ignore is not None:
            schedule.busy.pop(ignore, None)
        want = buffered(starts_at, ends_at, service)
        if any(b0 < want[1] and want[0] < b1 for b0, b1 in schedule.busy.values()):
            return Result(Outcome.SLOT_TAKEN, "That time has just been taken.",
                          alternatives=self._alternatives(s, service, dentist_id, starts_at))
        return None

    def slot_taken(self, service_id: int, dentist_id: int, starts_at: datetime) -> Result:
        with session_scope(self.engine) as s:
            service = s.get(Service, service_id)
            assert service is not None
            return Result(Outcome.SLOT_TAKEN, "That time has just been taken.",
                          alternatives=self._alternatives(s, service, dentist_id, starts_at))
