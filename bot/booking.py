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
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Callable

from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .availability import (Rules, Slot, buffered, free_slots, load_schedules, nearest_slots, same_dentist_first,
                           service_buffers, within_hours)
from .db import Contention, DatabaseError, DatabaseUnavailable, InvalidData, SlotTaken, session_scope, translate
from .models import STATUSES, Appointment, ChatBooking, Dentist, Patient, Service, SlotHold
from .phone import InvalidPhone, normalise_phone
from .resources import Needs, PoolView, load_resources, on_duty
from .settings import Settings
from .tokens import Identity

log = logging.getLogger(__name__)

MAX_NOTES = 64 * 1024
CONTENTION_ATTEMPTS = 3  # runs of a write that PostgreSQL aborts to break a deadlock
MAX_NAME = 200
PATIENT_OVERLAP = "appointments_patient_no_overlap"  # sql/005
# a chair or a hygienist another writer took meanwhile: the next free one is tried (sql/008)
RESOURCE_OVERLAPS = frozenset({"appointments_operatory_no_overlap", "appointments_hygienist_no_overlap",
                               "slot_holds_operatory_no_overlap", "slot_holds_hygienist_no_overlap"})
MAX_PLACES = 8  # chair and hygienist combinations tried by one write
Assignment = dict  # {"operatory_id": id, "hygienist_id": id}: the resources a write takes


@dataclass(frozen=True)
class ChatOrigin:
    """Where a chat's request comes from: its conversation (the sender id Rasa passes on), the
    client address Rasa's channel saw (None: unknown, e.g. ``rasa shell``) and whether the caller
    is signed in. An anonymous booking is recorded for its conversation (``chat_bookings``), and
    the chat's flood limits count per conversation, per phone number and per client address."""

    conversation_id: str
    client: str | None = None
    signed_in: bool = False


class Outcome(str, Enum):
    BOOKED = "booked"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    UPDATED = "updated"
    LISTED = "listed"
    FOUND = "found"
    HELD = "held"
    RELEASED = "released"
    SLOT_TAKEN = "slot_taken"
    PATIENT_BUSY = "patient_busy"  # the patient has another visit at that time
    LIMIT_REACHED = "limit_reached"  # a chat flood limit (field: conversation, phone or client)
    OUTSIDE_HOURS = "outside_hours"
    IN_PAST = "in_past"
    TOO_SOON = "too_soon"      # inside the minimum notice
    TOO_FAR = "too_far"        # beyond the booking horizon
    NOT_FOUND = "not_found"
    NOT_ALLOWED = "not_allowed"
    ALREADY_CANCELLED = "already_cancelled"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"
    NOT_VERIFIED = "not_verified"  # a chat's phone number, not yet proved with a code
    TOO_LATE = "too_late"      # inside the cancellation notice: only the front desk may change it
    WAITLISTED = "waitlisted"  # on the waitlist (bot/waitlist.py)
    WITHDRAWN = "withdrawn"    # off the waitlist
    DECLINED = "declined"      # a waitlist offer turned down
    OFFER_GONE = "offer_gone"  # a waitlist offer someone else took, or whose hold ran out


SUCCESS = {Outcome.BOOKED, Outcome.RESCHEDULED, Outcome.CANCELLED, Outcome.UPDATED, Outcome.LISTED,
           Outcome.FOUND, Outcome.HELD, Outcome.RELEASED, Outcome.WAITLISTED, Outcome.WITHDRAWN, Outcome.DECLINED}


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
    operatory_id: int | None = None  # the chair it holds (sql/008)
    hygienist_id: int | None = None  # who performs it, for a hygienist's service
    hygienist_name: str | None = None

    @classmethod
    def of(cls, a: Appointment) -> "AppointmentView":
        return cls(a.id, a.patient_id, a.patient.full_name, a.dentist_id, a.dentist.full_name, a.service_id,
                   a.service.name, a.starts_at, a.ends_at, a.status, a.notes, a.operatory_id, a.hygienist_id,
                   a.hygienist.full_name if a.hygienist is not None else None)

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
    slot: Slot | None = None              # the held slot (outcome held)
    hold_expires_at: datetime | None = None
    replayed: bool = False                # a repeated idempotency key: the first result again
    earliest: datetime | None = None      # too_soon: the earliest bookable instant
    entry: Any = None                     # a waitlist entry (bot.waitlist.EntryView)
    offer: Any = None                     # a waitlist offer (bot.waitlist.OfferView)

    @property
    def ok(self) -> bool:
        return self.outcome in SUCCESS


def _patient_busy() -> Result:
    """What a booking or a move refused by PATIENT_OVERLAP returns (a new Result each time:
    callers may change theirs)."""
    return Result(Outcome.PATIENT_BUSY, "You already have a visit at that time.", field="starts_at")


def _guard(fn: Callable[..., Result]) -> Callable[..., Result]:
    """Turn database trouble into outcomes: the caller never sees an exception."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> Result:
        # Each guarded method writes in one transaction; a deadlock victim wrote nothing, so the
        # method runs again (the retry then sees the winner's row: "slot taken" with alternatives).
        for attempt in range(1, CONTENTION_ATTEMPTS + 1):
            try:
                return fn(*args, **kwargs)
            except Contention as exc:
                log.info("%s: %s (attempt %d of %d)", fn.__name__, exc, attempt, CONTENTION_ATTEMPTS)
                time.sleep(0.005 * attempt)
            except DatabaseUnavailable as exc:
                log.warning("%s: database unavailable: %s", fn.__name__, exc)
                return Result(Outcome.UNAVAILABLE, "The booking system is unavailable right now; please try again.")
            except InvalidData as exc:
                log.info("%s: refused by %s: %s", fn.__name__, exc.constraint, exc)
                return Result(Outcome.INVALID, f"That was refused: {exc}", field=exc.constraint)
            except DatabaseError as exc:
                log.exception("%s failed", fn.__name__)
                return Result(Outcome.UNAVAILABLE, f"The booking system could not do that ({type(exc).__name__}).")
        return Result(Outcome.UNAVAILABLE, "The booking system is busy right now; please try again.")

    return wrapper


def _aware(value: datetime) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None and value.utcoffset() is not None


class BookingService:
    def __init__(self, engine: Engine, settings: Settings, *, clock: Callable[[], datetime] | None = None):
        self.engine = engine
        self.settings = settings
        self.tz = settings.tz
        self.rules = Rules.from_settings(settings)
        self.step = self.rules.step
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    def now(self) -> datetime:
        return self._clock()

    # --- reads ---------------------------------------------------------------------------------

    @_guard
    def available_slots(self, service_id: int, start: datetime, end: datetime, *,
                        dentist_id: int | None = None, limit: int | None = None,
                        holder: str | None = None) -> list[Slot]:
        """Free slots from SQL (the reference the action server's cache is compared with),
        within the minimum notice and the booking horizon."""
        with session_scope(self.engine) as s:
            service = s.get(Service, service_id)
            if service is None:
                return []
            now = self.now()
            bookable = self.rules.clamp(now, self.tz, service, start, end)
            if bookable is None:
                return []
            start, end = bookable
            schedules = self._diaries(service, load_schedules(s, start, end,
                                                              None if dentist_id is None else [dentist_id]))
            pools = self._pools(s, service, start, end, now=now, holder=holder)
        return free_slots(schedules.values(), timedelta(minutes=service.duration_minutes), start, end,
                          tz=self.tz, step=self.step, limit=limit, now=now, holder=holder,
                          fits=pools.fits if pools.limits else None, **service_buffers(service))

    @staticmethod
    def _diaries(service: Service, schedules: dict) -> dict:
        """The dentists' diaries as ``service`` sees them: a hygienist's service needs its dentist
        on duty, not free (``bot.resources.on_duty``)."""
        if Needs.of(service).hygienist:
            return {i: on_duty(sc) for i, sc in schedules.items()}
        return schedules

    def _pools(self, s: Session, service: Service, start: datetime, end: datetime, *, now: datetime,
               holder: str | None, ignore: int | None = None) -> PoolView:
        """The chairs and hygienists ``service`` needs, as free or busy as SQL says now."""
        needs = Needs.of(service)
        buffers = service_buffers(service)
        if not (needs.chair or needs.hygienist):
            return PoolView([], self.tz)
        return load_resources(s, start, end).view(needs, tz=self.tz, now=now, holder=holder, ignore=ignore,
                                                  buffers=(buffers["buffer_before"], buffers["buffer_after"]))

    def _alternatives(self, s: Session, service: Service, dentist_id: int | None, around: datetime,
                      count: int = 3, holder: str | None = None) -> list[Slot]:
        """The free slots nearest ``around``: the same dentist's first, else anyone's."""
        search = self.rules.nearest_search(self.now(), self.tz, service, around)
        kwargs = dict(tz=self.tz, not_before=search.earliest, not_after=search.latest, count=count,
                      step=self.step, now=search.now, holder=holder, **service_buffers(service))
        duration = timedelta(minutes=service.duration_minutes)

        pools = self._pools(s, service, search.lo, search.hi, now=search.now, holder=holder)
        if pools.limits:
            kwargs["fits"] = pools.fits

        def nearest(one: int | None) -> list[Slot]:
            schedules = self._diaries(service, load_schedules(s, search.lo, search.hi, None if one is None else [one]))
            return nearest_slots(schedules.values(), duration, search.around, **kwargs)

        return same_dentist_first(dentist_id, nearest)

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
             notes: str | None = None, status: str = "pending", idempotency_key: str | None = None,
             holder: str | None = None, origin: ChatOrigin | None = None) -> Result:
        """Book a visit. ``idempotency_key``: a repeated request returns the first result
        (``replayed``), never a second visit. ``holder``: whose hold may be turned into
        this booking (others' live holds refuse the time). ``origin``: a chat's request, held to
        the chat's flood limits and, when anonymous, recorded for its conversation."""
        if actor.role == "patient" and actor.patient_id != patient_id:
            return Result(Outcome.NOT_ALLOWED, "You can only book for yourself.")
        if actor.role == "dentist" and actor.dentist_id != dentist_id:
            return Result(Outcome.NOT_ALLOWED, "A dentist can only book visits with themselves.")
        if idempotency_key is not None and not (isinstance(idempotency_key, str) and 0 < len(idempotency_key) <= 200):
            return Result(Outcome.INVALID, "An idempotency key is 1 to 200 characters.", field="idempotency_key")
        if idempotency_key:
            first = self._replay(idempotency_key, patient_id)
            if first:
                return first
        result = self._book(patient_id, dentist_id, service_id, starts_at, notes, status, idempotency_key, holder,
                            origin)
        if idempotency_key and not result.ok:  # a concurrent twin with the same key may have won
            return self._replay(idempotency_key, patient_id) or result
        return result

    def _book(self, patient_id: int, dentist_id: int, service_id: int, starts_at: datetime, notes: str | None,
              status: str, idempotency_key: str | None, holder: str | None,
              origin: ChatOrigin | None = None) -> Result:
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
                if origin is not None and (limited := self._chat_booking_limit(s, origin, patient_id)):
                    return limited
                service = s.get(Service, service_id)
                assert service is not None
                ends_at = starts_at + timedelta(minutes=service.duration_minutes)
                places = self._check_time(s, service, dentist_id, starts_at, ends_at, ignore=None, holder=holder)
                if isinstance(places, Result):
                    return places
                if holder:  # the hold becomes the booking, in the same transaction
                    s.execute(delete(SlotHold).where(SlotHold.holder == holder))

                def write(place: Assignment) -> Appointment:
                    appt = Appointment(patient_id=patient_id, dentist_id=dentist_id, service_id=service_id,
                                       starts_at=starts_at, ends_at=ends_at, status=status, notes=notes,
                                       idempotency_key=idempotency_key, **place)
                    s.add(appt)
                    return appt

                appt = self._place(s, places, write)
                if origin is not None and not origin.signed_in:
                    s.add(ChatBooking(appointment_id=appt.id, conversation_id=origin.conversation_id[:200],
                                      client=(origin.client or None) and origin.client[:100]))
                    s.flush()
        except SlotTaken as exc:  # the database's word: someone else committed first
            if str(exc) == PATIENT_OVERLAP:
                return _patient_busy()
            return self.slot_taken(service_id, dentist_id, starts_at, holder=holder)
        except InvalidData as exc:
            if exc.constraint == "appointments_idempotency_key_key":
                return Result(Outcome.INVALID, "That request key is in use.", field="idempotency_key")
            raise
        return self._after_write(Outcome.BOOKED, appt.id)

    def _replay(self, key: str, patient_id: int) -> Result | None:
        with session_scope(self.engine) as s:
            appt = s.scalars(select(Appointment).where(Appointment.idempotency_key == key)).one_or_none()
            if appt is None:
                return None
            if appt.patient_id != patient_id:
                return Result(Outcome.INVALID, "That request key was already used for another booking.",
                              field="idempotency_key")
            return Result(Outcome.BOOKED, appointment=AppointmentView.of(appt), replayed=True)

    @_guard
    def hold(self, *, holder: str, dentist_id: int, service_id: int, starts_at: datetime,
             client: str | None = None) -> Result:
        """Keep a proposed slot for ``holder`` (a conversation, a page) for the clinic's hold
        time; others do not see it free meanwhile. A holder keeps one hold at a time (a new one
        replaces it); ``client`` (a chat's address) keeps at most CHAT_HOLDS_PER_CLIENT."""
        if not (isinstance(holder, str) and 0 < len(holder) <= 200):
            return Result(Outcome.INVALID, "A holder is 1 to 200 characters.", field="holder")
        if not _aware(starts_at):
            return Result(Outcome.INVALID, "The start time needs a time zone.", field="starts_at")
        try:
            with session_scope(self.engine) as s:
                for name, model, value in (("dentist_id", Dentist, dentist_id), ("service_id", Service, service_id)):
                    if not isinstance(value, int) or isinstance(value, bool) or s.get(model, value) is None:
                        return Result(Outcome.NOT_FOUND, f"No such {name.removesuffix('_id')}.", field=name)
                service = s.get(Service, service_id)
                assert service is not None
                ends_at = starts_at + timedelta(minutes=service.duration_minutes)
                s.execute(delete(SlotHold).where(SlotHold.expires_at <= self.now()))
                s.execute(delete(SlotHold).where(SlotHold.holder == holder))
                client = (client or None) and client[:100]
                if client is not None:
                    self._lock_key(s, f"chat-client:{client}")
                    live = s.scalar(select(func.count()).select_from(SlotHold).where(
                        SlotHold.client == client, SlotHold.expires_at > self.now()))
                    if live >= self.settings.chat_holds_per_client:
                        return Result(Outcome.LIMIT_REACHED, "Too many times are on hold from this address.",
                                      field="client")
                places = self._check_time(s, service, dentist_id, starts_at, ends_at, ignore=None, holder=holder)
                if isinstance(places, Result):
                    return places
                expires = self.now() + self.rules.hold

                def write(place: Assignment) -> SlotHold:
                    hold = SlotHold(dentist_id=dentist_id, service_id=service_id, holder=holder, starts_at=starts_at,
                                    ends_at=ends_at, expires_at=expires, client=client, **place)
                    s.add(hold)
                    return hold

                self._place(s, places, write)
        except SlotTaken:
            return self.slot_taken(service_id, dentist_id, starts_at, holder=holder)
        return Result(Outcome.HELD, slot=Slot(starts_at, dentist_id, ends_at), hold_expires_at=expires)

    @_guard
    def release_hold(self, holder: str) -> Result:
        with session_scope(self.engine) as s:
            s.execute(delete(SlotHold).where(SlotHold.holder == holder))
        return Result(Outcome.RELEASED)

    @_guard
    def expire_holds(self) -> int:
        """Delete expired holds; each deletion announces availability_changed. Returns the count."""
        with session_scope(self.engine) as s:
            return s.execute(delete(SlotHold).where(SlotHold.expires_at <= self.now())).rowcount or 0

    @_guard
    def reschedule(self, actor: Identity, appointment_id: int, starts_at: datetime, *,
                   dentist_id: int | None = None, holder: str | None = None) -> Result:
        """Move a visit; ``holder``'s own hold on the new time does not block it and is
        consumed by the move."""
        if not _aware(starts_at):
            return Result(Outcome.INVALID, "The start time needs a time zone.", field="starts_at")
        service_id = dentist = None
        try:
            with session_scope(self.engine) as s:
                appt = self._visit(s, actor, appointment_id)
                if isinstance(appt, Result):
                    return appt
                if appt.status not in ("pending", "confirmed"):
                    return Result(Outcome.ALREADY_CANCELLED if appt.status == "cancelled" else Outcome.NOT_ALLOWED,
                                  f"That visit is {appt.status.replace('_', ' ')} and cannot be moved.")
                if late := self._too_late(actor, appt):
                    return late
                new_dentist = dentist_id or appt.dentist_id
                service_id, dentist = appt.service_id, new_dentist
                if new_dentist != appt.dentist_id and s.get(Dentist, new_dentist) is None:
                    return Result(Outcome.NOT_FOUND, "No such dentist.", field="dentist_id")
                ends_at = starts_at + timedelta(minutes=appt.service.duration_minutes)
                places = self._check_time(s, appt.service, new_dentist, starts_at, ends_at, ignore=appt.id,
                                          holder=holder)
                if isinstance(places, Result):
                    return places
                if holder:
                    s.execute(delete(SlotHold).where(SlotHold.holder == holder))
                mine = {"operatory_id": appt.operatory_id, "hygienist_id": appt.hygienist_id}
                places.sort(key=lambda p: sum(mine.get(k) != v for k, v in p.items()))  # keep its chair if free

                def write(place: Assignment) -> Appointment:
                    appt.starts_at, appt.ends_at, appt.dentist_id = starts_at, ends_at, new_dentist
                    for key, value in place.items():
                        setattr(appt, key, value)
                    return appt

                self._place(s, places, write)
        except SlotTaken as exc:
            if str(exc) == PATIENT_OVERLAP:
                return _patient_busy()
            assert service_id is not None and dentist is not None
            return self.slot_taken(service_id, dentist, starts_at, holder=holder)
        return self._after_write(Outcome.RESCHEDULED, appointment_id)

    @_guard
    def cancel(self, actor: Identity, appointment_id: int) -> Result:
        with session_scope(self.engine) as s:
            appt = self._uncancelled(s, actor, appointment_id, "That visit was already cancelled.")
            if isinstance(appt, Result):
                return appt
            if appt.status in ("completed", "no_show"):
                return Result(Outcome.NOT_ALLOWED, "That visit is in the past and cannot be cancelled.")
            if late := self._too_late(actor, appt):
                return late
            appt.status = "cancelled"
        return self._after_write(Outcome.CANCELLED, appointment_id)

    @_guard
    def confirm(self, actor: Identity, appointment_id: int) -> Result:
        """The patient (or staff) confirms a pending visit: the staff's rules (a cancelled visit is
        never reopened, ``sync.api``), and only while it is ahead. Confirming a confirmed visit
        changes nothing and answers the same (no write, so no event)."""
        with session_scope(self.engine) as s:
            appt = self._uncancelled(s, actor, appointment_id, "That visit was cancelled; book a new one.")
            if isinstance(appt, Result):
                return appt
            if appt.status not in ("pending", "confirmed") or appt.starts_at <= self.now():
                return Result(Outcome.NOT_ALLOWED, "That visit has begun or is over.",
                              appointment=AppointmentView.of(appt))
            if appt.status == "pending":
                appt.status = "confirmed"
        return self._after_write(Outcome.UPDATED, appointment_id)

    @_guard
    def set_status(self, actor: Identity, appointment_id: int, status: str) -> Result:
        """Staff change a visit's status (admin, or the dentist of that visit)."""
        if status not in STATUSES:
            return Result(Outcome.INVALID, f"Status must be one of {', '.join(STATUSES)}.", field="status")
        if actor.role not in ("admin", "dentist"):
            return Result(Outcome.NOT_ALLOWED, "Only staff can change a visit's status.")
        with session_scope(self.engine) as s:
            appt = self._visit(s, actor, appointment_id)
            if isinstance(appt, Result):
                return appt
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
    def chat_appointments(self, conversation_id: str) -> Result:
        """The upcoming live visits an anonymous chat booked in this conversation (chat_bookings)."""
        with session_scope(self.engine) as s:
            q = (select(Appointment).join(ChatBooking, ChatBooking.appointment_id == Appointment.id)
                 .where(ChatBooking.conversation_id == conversation_id[:200], Appointment.ends_at > self.now(),
                        Appointment.status.in_(("pending", "confirmed"))))
            rows = [AppointmentView.of(a) for a in s.scalars(q.order_by(Appointment.starts_at))]
        return Result(Outcome.LISTED, appointments=rows)

    @_guard
    def get(self, actor: Identity, appointment_id: int) -> Result:
        with session_scope(self.engine) as s:
            appt = self._visit(s, actor, appointment_id, lock=False)
            if isinstance(appt, Result):
                return appt
            return Result(Outcome.FOUND, appointment=AppointmentView.of(appt))

    # --- helpers -------------------------------------------------------------------------------

    def _visit(self, s: Session, actor: Identity, appointment_id: int, *, lock: bool = True) -> Appointment | Result:
        """The visit if ``actor`` may act on it, else the refusal. With ``lock`` the row stays
        locked until the transaction ends (two edits of one visit queue up)."""
        appt = None
        if isinstance(appointment_id, int) and not isinstance(appointment_id, bool):
            q = select(Appointment).where(Appointment.id == appointment_id)
            appt = s.scalars(q.with_for_update(of=Appointment) if lock else q).one_or_none()
        return self._check_access(actor, appt) or appt

    def _uncancelled(self, s: Session, actor: Identity, appointment_id: int, cancelled: str) -> Appointment | Result:
        """The visit (locked) if ``actor`` may act on it and it is not cancelled; else the refusal
        (``already_cancelled`` with the visit and the message ``cancelled``)."""
        appt = self._visit(s, actor, appointment_id)
        if not isinstance(appt, Result) and appt.status == "cancelled":
            return Result(Outcome.ALREADY_CANCELLED, cancelled, appointment=AppointmentView.of(appt))
        return appt

    def _too_late(self, actor: Identity, appt: Appointment) -> Result | None:
        """The cancellation policy: a patient changes a visit themselves only up to
        CANCEL_NOTICE_HOURS before it starts (staff always can)."""
        notice = timedelta(hours=self.settings.cancel_notice_hours)
        if actor.role != "patient" or appt.starts_at - self.now() >= notice:
            return None
        return Result(Outcome.TOO_LATE, f"Visits can be changed up to {self.settings.cancel_notice_hours} hours"
                      " before they start; the front desk can still help.", appointment=AppointmentView.of(appt))

    @staticmethod
    def _lock_key(s: Session, key: str) -> None:
        """Serialise this transaction with others counting the same key (until it ends)."""
        s.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})

    def _chat_booking_limit(self, s: Session, origin: ChatOrigin, patient_id: int) -> Result | None:
        """The anonymous chat's flood limits, counted in this transaction under advisory locks, so
        two conversations of one client (or one phone) cannot both take the last booking."""
        if origin.signed_in:  # a verified patient: the token is the limit
            return None
        # the database's clock, as created_at is (a service's test clock may be elsewhere)
        since = s.scalar(select(func.now())) - timedelta(minutes=self.settings.chat_limit_window_minutes)
        self._lock_key(s, f"chat-patient:{patient_id}")
        booked = s.scalar(select(func.count()).select_from(ChatBooking)
                          .join(Appointment, Appointment.id == ChatBooking.appointment_id)
                          .where(Appointment.patient_id == patient_id, ChatBooking.created_at > since))
        if booked >= self.settings.chat_bookings_per_phone:
            return Result(Outcome.LIMIT_REACHED, "That phone number has booked enough visits for now.",
                          field="phone")
        self._lock_key(s, f"chat-conversation:{origin.conversation_id}")
        mine = s.scalar(select(func.count()).select_from(ChatBooking).where(
            ChatBooking.conversation_id == origin.conversation_id[:200], ChatBooking.created_at > since))
        if mine >= self.settings.chat_bookings_per_conversation:
            return Result(Outcome.LIMIT_REACHED, "This conversation has booked enough visits for now.",
                          field="conversation")
        if origin.client:
            self._lock_key(s, f"chat-client:{origin.client}")
            theirs = s.scalar(select(func.count()).select_from(ChatBooking).where(
                ChatBooking.client == origin.client[:100], ChatBooking.created_at > since))
            if theirs >= self.settings.chat_bookings_per_client:
                return Result(Outcome.LIMIT_REACHED, "Too many visits were booked from this address.",
                              field="client")
        return None

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
                    ends_at: datetime, *, ignore: int | None, holder: str | None = None) -> Result | list[Assignment]:
        """Every rule a booking must pass, checked again on every write (the database's
        constraints are still the last word on overlaps); the chair and hygienist combinations
        free for it, best first (``[{}]`` when the service needs neither)."""
        now = self.now()
        earliest, latest = self.rules.window(now, self.tz, service)

        def refuse(outcome: Outcome, message: str, around: datetime, **extra) -> Result:
            return Result(outcome, message, alternatives=self._alternatives(s, service, dentist_id, around,
                                                                            holder=holder), **extra)

        if starts_at < now:
            return refuse(Outcome.IN_PAST, "That time has already passed.", now)
        if starts_at < earliest:
            local = earliest.astimezone(self.tz)
            return refuse(Outcome.TOO_SOON, f"The earliest I can book is {local:%A %d %B at %H:%M}.", earliest,
                          earliest=earliest)
        if starts_at >= latest:
            return refuse(Outcome.TOO_FAR, f"I can only book up to {self.rules.horizon_days} days ahead.", latest)
        schedule = load_schedules(s, starts_at - timedelta(days=1), ends_at + timedelta(days=1),
                                  [dentist_id]).get(dentist_id)
        if schedule is None or not within_hours(schedule, starts_at, ends_at, self.tz):
            return refuse(Outcome.OUTSIDE_HOURS, "The dentist is not working then.", starts_at)
        if ignore is not None:
            schedule.busy.pop(ignore, None)
        want = buffered(starts_at, ends_at, service)
        held = [(h.starts_at, h.ends_at) for h in schedule.holds.values() if h.expires_at > now and h.holder != holder]
        if not Needs.of(service).hygienist and any(
                b0 < want[1] and want[0] < b1 for b0, b1 in [*schedule.busy.values(), *held]):
            return refuse(Outcome.SLOT_TAKEN, "That time has just been taken.", starts_at)
        pools = self._pools(s, service, starts_at, ends_at, now=now, holder=holder, ignore=ignore)
        places = list(pools.members(starts_at, ends_at, want)) if pools.limits else [{}]
        if not places:
            return refuse(Outcome.SLOT_TAKEN, "That time has just been taken.", starts_at)
        return places

    @staticmethod
    def _place(s: Session, places: list[Assignment], write: Callable[[Assignment], object]):
        """``write`` with the first free chair and hygienist the database accepts: a concurrent
        writer may have taken one since it was read, and its constraint says so (sql/008). Any other
        refusal (the dentist, the patient) is final."""
        taken: SlotTaken | None = None
        for place in places[:MAX_PLACES]:
            try:
                with s.begin_nested():
                    row = write(place)
                    s.flush()
                return row
            except DBAPIError as exc:
                error = translate(exc)
                if not (isinstance(error, SlotTaken) and str(error) in RESOURCE_OVERLAPS):
                    raise
                taken = error
        raise taken or SlotTaken("no place")

    def slot_taken(self, service_id: int, dentist_id: int, starts_at: datetime,
                   holder: str | None = None) -> Result:
        with session_scope(self.engine) as s:
            service = s.get(Service, service_id)
            assert service is not None
            return Result(Outcome.SLOT_TAKEN, "That time has just been taken.",
                          alternatives=self._alternatives(s, service, dentist_id, starts_at, holder=holder))
