"""The actions' one door to the data layer.

Reads of free time go to an *availability source*: the in-memory cache
(``actions.cache.get_cache()``) when the action server runs one, else
``SqlAvailability`` (the booking service's SQL path), which ``AVAILABILITY_SOURCE=sql``
also chooses with a cache running (the benchmarks' naive baseline). Writes always go
through ``bot.booking.BookingService``: the database's no-overlap constraint has the last word.
The catalogue (services, dentists: ``actions.catalogue``) is the cache's too.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, Protocol

from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.availability import Slot, load_schedules, nearest_slots, service_buffers
from bot.booking import BookingService, ChatOrigin, Outcome, Result
from bot import attendance, recalls
from bot.db import DatabaseError, session_scope
from bot.models import Patient, Service, WaitlistEntry, WaitlistOffer
from bot.notify import Message, notifier_from
from bot.otp import CodeResult, Verifier
from bot.phone import InvalidPhone, normalise_phone
from bot.settings import Settings
from bot.tokens import Identity
from bot.waitlist import OfferView, Waitlist

from .caller import Caller
from .catalogue import Catalogue, load_catalogue
from .formatting import when_label

if TYPE_CHECKING:
    from .cache import AvailabilityCache

log = logging.getLogger(__name__)


class GatewayError(RuntimeError):
    """The data layer could not answer (the caller apologises; no detail reaches the chat)."""


class Availability(Protocol):
    def free_slots(self, service_id: int, start: datetime, end: datetime, dentist_id: int | None = None,
                   limit: int | None = None) -> list[Slot]: ...

    def nearest(self, service_id: int, around: datetime, dentist_id: int | None = None,
                count: int = 3) -> list[Slot]: ...


class SqlAvailability:
    """The availability source used when no cache is running: SQL through the booking service."""

    def __init__(self, booking: BookingService):
        self.booking = booking

    def free_slots(self, service_id: int, start: datetime, end: datetime, dentist_id: int | None = None,
                   limit: int | None = None) -> list[Slot]:
        found = self.booking.available_slots(service_id, start, end, dentist_id=dentist_id, limit=limit)
        if isinstance(found, Result):  # the service's guard turned a database error into an outcome
            raise GatewayError(found.message)
        return found

    def nearest(self, service_id: int, around: datetime, dentist_id: int | None = None,
                count: int = 3) -> list[Slot]:
        now = self.booking.now()
        window = timedelta(days=14)
        try:
            with session_scope(self.booking.engine) as s:
                service = s.get(Service, service_id)
                if service is None:
                    return []
                # as the cache does: only inside the bookable window (minimum notice .. horizon)
                earliest, latest = self.booking.rules.window(now, self.booking.tz, service)
                around = min(max(around, earliest), latest)
                schedules = load_schedules(s, max(earliest, around - window), min(latest, around + window),
                                           None if dentist_id is None else [dentist_id])
                return nearest_slots(schedules.values(), timedelta(minutes=service.duration_minutes), around,
                                     tz=self.booking.tz, not_before=earliest, not_after=latest, window=window,
                                     count=count, step=self.booking.step, now=now, **service_buffers(service))
        except DatabaseError as exc:
            raise GatewayError(str(exc)) from exc


def chat_identity(patient_id: int, sender_id: str | None = None) -> Identity:
    """How the action server acts for the chat's patient: a patient actor, never more."""
    return Identity(role="patient", sub=f"chat:{sender_id or patient_id}", patient_id=patient_id)


class Gateway:
    def __init__(self, engine: Engine, settings: Settings, *, availability: Availability | None = None,
                 clock: Callable[[], datetime] | None = None):
        self.settings = settings
        self.tz = settings.tz
        self.booking = BookingService(engine, settings, clock=clock)
        self._availability = availability
        self._lock = threading.Lock()
        # reads answered by SQL although the settings ask for the cache (not started yet, or failing)
        self.sql_fallbacks = 0
        self.notifier = notifier_from(engine, settings)
        self.verifier = Verifier(engine, settings, self.notifier, clock=clock)
        self.waitlist = Waitlist(self.booking)

    def now(self) -> datetime:
        return self.booking.now()

    @property
    def availability(self) -> Availability:
        if self._availability is not None:
            return self._availability
        if self.settings.availability_source == "sql":
            return SqlAvailability(self.booking)
        cache = _running_cache()
        if cache is None:  # counted: /health shows it, and the end-to-end tests expect none
            with self._lock:
                self.sql_fallbacks += 1
            return SqlAvailability(self.booking)
        return cache

    # --- reads -------------------------------------------------------------------------------

    def catalogue(self) -> Catalogue:
        """Services and active dentists: the availability cache's, kept fresh by events, whatever
        ``AVAILABILITY_SOURCE`` says (it is about offers); read from SQL only while no cache is
        loaded in this process (tools, tests, the action server's first seconds)."""
        cache = _running_cache()
        catalogue = cache.catalogue() if cache is not None else None
        if catalogue is not None:
            return catalogue
        try:
            with session_scope(self.booking.engine) as s:
                return load_catalogue(s)
        except DatabaseError as exc:
            raise GatewayError(str(exc)) from exc

    def free_slots(self, service_id: int, start: datetime, end: datetime, dentist_id: int | None = None,
                   limit: int | None = None) -> list[Slot]:
        start = max(start, self.now())
        if end <= start:
            return []
        return list(self.availability.free_slots(service_id, start, end, dentist_id=dentist_id, limit=limit))

    def nearest(self, service_id: int, around: datetime, dentist_id: int | None = None,
                count: int = 3) -> list[Slot]:
        return list(self.availability.nearest(service_id, around, dentist_id=dentist_id, count=count))

    def bookable_window(self, service_id: int) -> tuple[datetime, datetime]:
        """[earliest, latest): when a visit of this service may start now — from the minimum
        notice (the service's own, else the clinic's) to the end of the booking horizon."""
        try:
            with session_scope(self.booking.engine) as s:
                service = s.get(Service, service_id)
        except DatabaseError as exc:
            raise GatewayError(str(exc)) from exc
        return self.booking.rules.window(self.now(), self.tz, service)

    def is_free(self, service_id: int, dentist_id: int, starts_at: datetime) -> bool:
        found = self.free_slots(service_id, starts_at, starts_at + timedelta(seconds=1),
                                dentist_id=dentist_id)
        return any(s.starts_at == starts_at and s.dentist_id == dentist_id for s in found)

    def own_appointments(self, who: Caller) -> Result:
        """The caller's upcoming visits: all of a signed-in patient's, or of the patient whose
        phone this conversation proved with a code lately; else those the database records as
        booked in this conversation (``chat_bookings``)."""
        patient_id = self.known_patient(who)
        if patient_id is not None:
            return self.booking.list_appointments(chat_identity(patient_id), patient_id)
        return self.booking.chat_appointments(who.conversation_id)

    # --- one-time codes (bot/otp.py): who an anonymous chat has proved to be -------------------

    def verified_phone(self, who: Caller) -> str | None:
        """The phone (E.164) this conversation typed a code back for, within CHAT_VERIFIED_MINUTES."""
        if who.authenticated or not who.conversation_id:
            return None
        return self.verifier.verified("chat", who.conversation_id,
                                      timedelta(minutes=self.settings.chat_verified_minutes))

    def verified_patient(self, who: Caller) -> int | None:
        phone = self.verified_phone(who)
        if phone is None:
            return None
        with session_scope(self.booking.engine) as s:
            return s.scalar(select(Patient.id).where(Patient.phone == phone))

    def known_patient(self, who: Caller) -> int | None:
        """The patient this message proves: signed in with its token, or the phone this conversation
        typed a code back for lately; None for an anonymous chat."""
        if who.authenticated and who.patient_id is not None:
            return who.patient_id
        return self.verified_patient(who)

    # --- the waitlist (bot/waitlist.py) -------------------------------------------------------

    def chat_offer(self, who: Caller, offer_id: object) -> OfferView | None:
        """A waitlist offer as this conversation may see it: only one made for a request joined in
        this conversation (the entry's ``conversation_id``, written when a known patient joined
        here; the sender id is Rasa's, not the caller's), and, when the message carries a token,
        only that patient's. An external intent (the sync service's ``trigger_intent``) carries no
        token: the conversation recorded in the database is what identifies its patient then."""
        if not isinstance(offer_id, int) or isinstance(offer_id, bool) or not who.conversation_id:
            return None
        with session_scope(self.booking.engine) as s:
            patient_id = s.scalar(select(WaitlistEntry.patient_id).join(
                WaitlistOffer, WaitlistOffer.entry_id == WaitlistEntry.id).where(
                WaitlistOffer.id == offer_id, WaitlistEntry.conversation_id == who.conversation_id))
        if patient_id is None or (who.authenticated and who.patient_id != patient_id):
            return None
        return self.waitlist.offer(chat_identity(patient_id, who.conversation_id), offer_id)

    def too_late_to_change(self, visit) -> bool:
        """Whether the cancellation policy keeps a patient from moving or cancelling ``visit`` now
        (CANCEL_NOTICE_HOURS before it; the booking service checks it again at the write)."""
        return visit.starts_at - self.now() < timedelta(hours=self.settings.cancel_notice_hours)

    def recalls_due(self, patient_id: int) -> list[recalls.Due]:
        """The recalled services this patient is due for now (bot/recalls.py)."""
        with session_scope(self.booking.engine) as s:
            return recalls.due(s, self.now(), self.settings.clinic_timezone, patient_id=patient_id)

    def patient_phone(self, patient_id: int) -> str | None:
        """The phone on file for a patient (E.164), where a visit's code goes."""
        with session_scope(self.booking.engine) as s:
            return s.scalar(select(Patient.phone).where(Patient.id == patient_id))

    def needs_code(self, who: Caller, phone: str | None) -> bool:
        """Whether a write for ``phone`` must wait for a code typed back (never when signed in)."""
        if who.authenticated or not self.settings.chat_verification:
            return False
        try:
            e164 = normalise_phone(phone or "", self.settings.phone_region)
        except InvalidPhone:
            return True
        return self.verified_phone(who) != e164

    def send_code(self, who: Caller, phone: str) -> CodeResult:
        e164 = normalise_phone(phone, self.settings.phone_region)
        return self.verifier.send("chat", who.conversation_id, e164, client=who.client)

    def pending_code(self, who: Caller):
        return self.verifier.pending("chat", who.conversation_id)

    def check_code(self, who: Caller, typed: str) -> CodeResult:
        return self.verifier.check("chat", who.conversation_id, typed)

    def chat_patient(self, who: Caller, full_name: str, phone: str) -> Result:
        """The patient a chat writes for: the signed-in one; else the record of ``phone`` (created
        if new), and only once this conversation has proved that phone with a code."""
        if who.authenticated and who.patient_id is not None:
            return Result(Outcome.FOUND, patient_id=who.patient_id)
        if self.needs_code(who, phone):
            return Result(Outcome.NOT_VERIFIED, "The phone number is not verified in this chat.", field="phone")
        return self.booking.find_or_create_patient(full_name, phone)

    # --- writes ------------------------------------------------------------------------------

    def hold(self, holder: str, *, dentist_id: int, service_id: int, starts_at: datetime,
             client: str | None = None) -> Result:
        """Keep the picked slot for this conversation while it gives name, phone and a yes."""
        return self.booking.hold(holder=holder, dentist_id=dentist_id, service_id=service_id,
                                 starts_at=starts_at, client=client)

    def release(self, holder: str) -> None:
        result = self.booking.release_hold(holder)
        if result.outcome is not Outcome.RELEASED:
            log.warning("releasing the hold of %s: %s", holder, result.outcome.value)

    def book(self, patient_id: int, *, dentist_id: int, service_id: int, starts_at: datetime,
             idempotency_key: str | None = None, holder: str | None = None,
             origin: ChatOrigin | None = None) -> Result:
        """Book. The same ``idempotency_key`` (one confirming message) never books twice, and a
        retry without one finds the identical visit it already made."""
        result = self.booking.book(chat_identity(patient_id), patient_id=patient_id, dentist_id=dentist_id,
                                   service_id=service_id, starts_at=starts_at,
                                   idempotency_key=idempotency_key, holder=holder, origin=origin)
        if result.outcome is Outcome.SLOT_TAKEN:
            mine = self.booking.list_appointments(chat_identity(patient_id), patient_id)
            for a in mine.appointments:
                if (a.dentist_id, a.service_id, a.starts_at) == (dentist_id, service_id, starts_at):
                    log.info("book: patient %s already holds appointment %s for this slot", patient_id, a.id)
                    return Result(Outcome.BOOKED, appointment=a)
        if result.outcome is Outcome.BOOKED and not result.replayed:
            self._tell_front_desk_of_no_shows(result)
        return result

    def _tell_front_desk_of_no_shows(self, result: Result) -> None:
        """A patient with NO_SHOW_ALERT_COUNT no-shows or more booked through the bot: the front
        desk hears of it (an email through the notifier, recorded in notifications)."""
        appt = result.appointment
        assert appt is not None
        with session_scope(self.booking.engine) as s:
            missed = attendance.no_shows(s, appt.patient_id)
        if missed < self.settings.no_show_alert_count:
            return
        when = when_label(appt.starts_at, self.tz, now=self.now())
        body = (f"{appt.patient_name} (patient {appt.patient_id}), who has missed {missed} visits without notice,"
                f" booked a {appt.service_name.lower()} with {appt.dentist_name} {when} through the chat"
                f" (appointment {appt.id}).")
        try:
            self.notifier.send(Message("email", self.settings.front_desk_email, body,
                                       subject=f"Repeated no-shows: {appt.patient_name} booked", kind="no_show_alert"))
        except Exception:  # the booking stands; the front desk's list shows the counts anyway
            log.exception("could not tell the front desk about appointment %s", appt.id)

    def cancel(self, patient_id: int, appointment_id: int) -> Result:
        return self.booking.cancel(chat_identity(patient_id), appointment_id)

    def reschedule(self, patient_id: int, appointment_id: int, starts_at: datetime,
                   dentist_id: int | None = None) -> Result:
        return self.booking.reschedule(chat_identity(patient_id), appointment_id, starts_at,
                                       dentist_id=dentist_id)


def _running_cache() -> "AvailabilityCache | None":
    try:
        from actions.cache import CacheNotStarted, get_cache
    except ImportError:
        return None
    try:
        return get_cache()
    except CacheNotStarted:  # no cache in this process (tests, tools): SQL answers
        return None
    except Exception:  # a cache that cannot answer must not stop the bot: SQL answers instead
        log.exception("availability cache unavailable; answering from SQL")
        return None


_gateway: Gateway | None = None
_gateway_lock = threading.Lock()


def get_gateway() -> Gateway:
    """The process-wide gateway (built on first use from the settings)."""
    global _gateway
    with _gateway_lock:
        if _gateway is None:
            from bot.db import get_engine
            from bot.settings import get_settings

            _gateway = Gateway(get_engine(), get_settings())
        return _gateway


def use_gateway(gateway: Gateway | None) -> None:
    """Install a gateway (tests, or the server entry point with its cache); None resets."""
    global _gateway
    with _gateway_lock:
        _gateway = gateway

