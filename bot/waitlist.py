"""The waitlist (ASAP list): freed time offered to the patients who wait for it, first come first served.

A patient asks (the bot, the patient page, ``POST /api/waitlist``) to be told if a slot opens for
a service between ``earliest`` and ``latest``, with one dentist or any: a ``waitlist_entries``
row (sql/010), optionally naming the visit to move earlier and the chat to tell.

``Waitlist.run_once`` (run by the sync service, at once after a visit or a diary changes and
every ``WAITLIST_POLL_SECONDS``) does, one node at a time (a PostgreSQL advisory lock):

1. **expire**: offers whose hold ran out become ``expired`` and their entries wait again; entries
   whose range is over become ``expired``; entries whose visit was cancelled are ``withdrawn``.
2. **offer**: for each waiting entry, the earliest request first, the first free slot in its range
   (SQL availability: a chair, a provider, no one else's hold) that was never offered to it and
   does not overlap another visit of the patient. The slot is held (a ``slot_holds`` row, holder
   ``waitlist:<uuid>``, for ``HOLD_MINUTES``) and offered to that entry and to the next waiting
   entries it fits, up to ``WAITLIST_OFFER_TO``: one ``waitlist_offers`` row each, all sharing the
   hold. Each row fires ``waitlist_offer`` to its patient alone; each entry's change fires
   ``waitlist_changed`` to the dashboards.

**The first acceptance wins, and the database decides.** ``accept`` books the slot (or moves the
entry's visit there) through ``BookingService`` with the shared hold as its ``holder``: the hold
keeps everyone else out, and between the offered patients the visits' no-overlap constraints
pick one. The winner's offer becomes ``accepted`` and its entry ``booked``; every other open offer
of the hold becomes ``gone`` (its entry waits again), and a later ``accept`` of one is answered
``offer_gone``. ``chats_to_tell`` lists the offers whose chat has not heard their latest status
(a new offer, or one gone or expired); the sync service tells them through Rasa's
``trigger_intent`` and marks them told.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Engine

from .availability import Slot
from .booking import BookingService, ChatOrigin, Outcome, Result, _guard
from .db import session_scope
from .jsonable import json_dict
from .models import Appointment, Dentist, Patient, Service, WaitlistEntry, WaitlistOffer
from .tokens import Identity

log = logging.getLogger(__name__)

WAITING, OFFERED, BOOKED, EXPIRED, WITHDRAWN = "waiting", "offered", "booked", "expired", "withdrawn"
OPEN, ACCEPTED, GONE, DECLINED = "open", "accepted", "gone", "declined"
ENTRY_STATUSES = (WAITING, OFFERED, BOOKED, EXPIRED, WITHDRAWN)
OFFER_STATUSES = (OPEN, ACCEPTED, GONE, DECLINED, EXPIRED)
LIVE_ENTRY = (WAITING, OFFERED)
LIVE_VISIT = ("pending", "confirmed")
PASS_LOCK = "waitlist-pass"
# The intents the sync service triggers in a waiting chat (sync/waitlist.py) and the assistant
# answers (domain.yml, actions/waitlist.py): a contract, entity ``offer_id``.
OFFER_INTENT = "EXTERNAL_waitlist_offer"
GONE_INTENT = "EXTERNAL_waitlist_gone"
SLOTS_LOOKED_AT = 40  # free slots read per entry and pass (those already offered to it are skipped)


@dataclass(frozen=True)
class EntryView:
    id: int
    patient_id: int
    service_id: int
    dentist_id: int | None
    earliest: datetime
    latest: datetime
    status: str
    created_at: datetime
    appointment_id: int | None

    @classmethod
    def of(cls, e: WaitlistEntry) -> "EntryView":
        return cls(e.id, e.patient_id, e.service_id, e.dentist_id, e.earliest, e.latest, e.status, e.created_at,
                   e.appointment_id)

    def as_dict(self) -> dict:
        return json_dict(self)


@dataclass(frozen=True)
class OfferView:
    id: int
    entry_id: int
    patient_id: int
    service_id: int
    service_name: str
    dentist_id: int
    dentist_name: str
    starts_at: datetime
    ends_at: datetime
    expires_at: datetime
    status: str
    appointment_id: int | None  # the visit it became (accepted), or the visit it would move

    def as_dict(self) -> dict:
        return json_dict(self)


def _may_act(actor: Identity, patient_id: int) -> bool:
    """Whether ``actor`` may see or answer a request or offer of ``patient_id``: its patient,
    admins, the services."""
    return actor.role in ("admin", "service") or (actor.role == "patient" and actor.patient_id == patient_id)


@dataclass(frozen=True)
class ChatNotice:
    """An offer whose chat has not heard its latest status: ``open`` (tell of the offer) or
    ``gone`` / ``expired`` (tell that it is no longer held)."""

    offer_id: int
    conversation_id: str
    status: str


@dataclass
class PassResult:
    offered: list[int] = field(default_factory=list)   # offer ids made
    expired: list[int] = field(default_factory=list)   # offer ids whose hold ran out
    skipped: bool = False                               # another node was running a pass


_OFFER_VIEW = text("""
    SELECT o.id, o.entry_id, o.patient_id, o.service_id, s.name, o.dentist_id, d.full_name, o.starts_at,
           o.ends_at, o.expires_at, o.status, coalesce(o.appointment_id, e.appointment_id)
      FROM waitlist_offers o
      JOIN waitlist_entries e ON e.id = o.entry_id
      JOIN services s ON s.id = o.service_id
      JOIN dentists d ON d.id = o.dentist_id
     WHERE o.id = :id
""")


class _FreeTime:
    """The free slots one pass looks at: read once per service and dentist choice (one dentist,
    or any) over the union of the waiting requests' ranges, instead of once per request (a pass
    over 50 requests read availability 50 times: bench/waitlist.py)."""

    def __init__(self, booking: BookingService, waiting: list[WaitlistEntry], now: datetime):
        self.booking, self.now = booking, now
        self.ranges: dict[tuple[int, int | None], tuple[datetime, datetime]] = {}
        for e in waiting:
            key = (e.service_id, e.dentist_id)
            lo, hi = self.ranges.get(key, (e.earliest, e.latest))
            self.ranges[key] = (min(lo, e.earliest), max(hi, e.latest))
        self.slots: dict[tuple[int, int | None], list[Slot]] = {}

    def within(self, entry: WaitlistEntry) -> list[Slot]:
        key = (entry.service_id, entry.dentist_id)
        if key not in self.slots:
            lo, hi = self.ranges[key]
            found = self.booking.available_slots(entry.service_id, max(lo, self.now), hi,
                                                 dentist_id=entry.dentist_id)
            self.slots[key] = found if isinstance(found, list) else []  # a Result: the database is away
        return [s for s in self.slots[key] if entry.earliest <= s.starts_at < entry.latest][:SLOTS_LOOKED_AT]

    def changed(self, slot: Slot) -> None:
        for key in [k for k in self.slots if k[1] in (None, slot.dentist_id)]:
            del self.slots[key]


class Waitlist:
    """Blocking (SQLAlchemy): the sync service runs ``run_once`` in a thread."""

    def __init__(self, booking: BookingService):
        self.booking = booking
        self.engine: Engine = booking.engine
        self.settings = booking.settings

    def now(self) -> datetime:
        return self.booking.now()

    # --- the patient's side ------------------------------------------------------------------

    @_guard
    def join(self, actor: Identity, *, patient_id: int, service_id: int, latest: datetime,
             earliest: datetime | None = None, dentist_id: int | None = None, appointment_id: int | None = None,
             conversation_id: str | None = None) -> Result:
        """Put ``patient_id`` on the waitlist. A visit (``appointment_id``) is to be moved earlier:
        the range ends at its start. Asking again for the same service (and visit) changes the
        waiting entry's range instead of adding one."""
        if actor.role not in ("admin", "patient", "service") or (
                actor.role == "patient" and actor.patient_id != patient_id):
            return Result(Outcome.NOT_ALLOWED, "You can only join the waitlist for yourself.")
        now = self.now()
        earliest = max(earliest or now, now)
        for name, value in (("earliest", earliest), ("latest", latest)):
            if not isinstance(value, datetime) or value.tzinfo is None:
                return Result(Outcome.INVALID, f"{name} needs a date and time with a time zone.", field=name)
        if conversation_id is not None and not (isinstance(conversation_id, str) and 0 < len(conversation_id) <= 200):
            return Result(Outcome.INVALID, "A conversation id is 1 to 200 characters.", field="conversation_id")
        with session_scope(self.engine) as s:
            for name, model, value in (("patient_id", Patient, patient_id), ("service_id", Service, service_id),
                                       ("dentist_id", Dentist, dentist_id)):
                if value is None and name == "dentist_id":
                    continue
                if not isinstance(value, int) or isinstance(value, bool) or s.get(model, value) is None:
                    return Result(Outcome.NOT_FOUND, f"No such {name.removesuffix('_id')}.", field=name)
            if appointment_id is not None:
                appt = s.get(Appointment, appointment_id) if isinstance(appointment_id, int) else None
                if appt is None or appt.patient_id != patient_id:
                    return Result(Outcome.NOT_FOUND, "No such visit.", field="appointment_id")
                if appt.status not in LIVE_VISIT:
                    return Result(Outcome.NOT_ALLOWED, "That visit is no longer booked.", field="appointment_id")
                if appt.service_id != service_id:
                    return Result(Outcome.INVALID, "That visit is for another service.", field="service_id")
                latest = min(latest, appt.starts_at)
            horizon = now + timedelta(days=self.settings.horizon_days)
            latest = min(latest, horizon)
            if latest <= earliest:
                return Result(Outcome.INVALID, "The range must end after it starts, in the future and within "
                              f"{self.settings.horizon_days} days.", field="latest")
            self.booking._lock_key(s, f"waitlist-patient:{patient_id}")
            same = s.scalars(select(WaitlistEntry).where(
                WaitlistEntry.patient_id == patient_id, WaitlistEntry.service_id == service_id,
                WaitlistEntry.status.in_(LIVE_ENTRY),
                WaitlistEntry.appointment_id.is_(None) if appointment_id is None
                else WaitlistEntry.appointment_id == appointment_id)).one_or_none()
            if same is not None:
                same.earliest, same.latest, same.dentist_id = earliest, latest, dentist_id
                same.conversation_id = conversation_id or same.conversation_id
                same.updated_at = now
                s.flush()
                return Result(Outcome.WAITLISTED, "Your waitlist request was updated.", entry=EntryView.of(same))
            live = s.scalar(select(func.count()).select_from(WaitlistEntry).where(
                WaitlistEntry.patient_id == patient_id, WaitlistEntry.status.in_(LIVE_ENTRY)))
            if live >= self.settings.waitlist_entries_per_patient:
                return Result(Outcome.LIMIT_REACHED, f"You already wait for {live} earlier times; withdraw one "
                              "first.", field="patient_id")
            entry = WaitlistEntry(patient_id=patient_id, service_id=service_id, dentist_id=dentist_id,
                                  earliest=earliest, latest=latest, appointment_id=appointment_id,
                                  conversation_id=conversation_id)
            s.add(entry)
            s.flush()
            s.refresh(entry)
            return Result(Outcome.WAITLISTED, "You are on the waitlist.", entry=EntryView.of(entry))

    @_guard
    def withdraw(self, actor: Identity, entry_id: int) -> Result:
        with session_scope(self.engine) as s:
            entry = self._entry(s, actor, entry_id)
            if entry is None:
                return Result(Outcome.NOT_FOUND, "No such waitlist request.", field="entry_id")
            if entry.status not in LIVE_ENTRY:
                return Result(Outcome.WITHDRAWN, f"That request is already {entry.status}.", entry=EntryView.of(entry))
            entry.status, entry.updated_at = WITHDRAWN, self.now()
            holders = self._decide_open(s, WaitlistOffer.entry_id == entry.id, DECLINED)
            view = EntryView.of(entry)
        self._release_unused(holders)
        return Result(Outcome.WITHDRAWN, "You are off the waitlist.", entry=view)

    def entries(self, actor: Identity, *, patient_id: int | None = None,
                statuses: tuple[str, ...] = LIVE_ENTRY) -> list[EntryView]:
        """Admins: everyone's (or ``patient_id``'s); a dentist: those naming them; a patient: their own."""
        q = select(WaitlistEntry).where(WaitlistEntry.status.in_(statuses)).order_by(
            WaitlistEntry.created_at, WaitlistEntry.id)
        if actor.role == "patient":
            q = q.where(WaitlistEntry.patient_id == actor.patient_id)
        elif actor.role == "dentist":
            q = q.where(WaitlistEntry.dentist_id == actor.dentist_id)
        elif actor.role not in ("admin", "service"):
            return []
        if patient_id is not None:
            q = q.where(WaitlistEntry.patient_id == patient_id)
        with session_scope(self.engine) as s:
            return [EntryView.of(e) for e in s.scalars(q)]

    def offer(self, actor: Identity, offer_id: int) -> OfferView | None:
        """The offer, if ``actor`` may see it (its patient, admins, services)."""
        if not isinstance(offer_id, int) or isinstance(offer_id, bool):
            return None
        with session_scope(self.engine) as s:
            row = s.execute(_OFFER_VIEW, {"id": offer_id}).one_or_none()
        if row is None:
            return None
        view = OfferView(*row)
        if _may_act(actor, view.patient_id):
            return view
        return None

    def open_offers(self, actor: Identity) -> list[OfferView]:
        """A patient's open offers, the latest first."""
        if actor.role != "patient" or not actor.patient_id:
            return []
        with session_scope(self.engine) as s:
            ids = s.scalars(select(WaitlistOffer.id).where(
                WaitlistOffer.patient_id == actor.patient_id, WaitlistOffer.status == OPEN,
                WaitlistOffer.expires_at > self.now()).order_by(WaitlistOffer.id.desc())).all()
        return [v for v in (self.offer(actor, i) for i in ids) if v is not None]

    @_guard
    def accept(self, actor: Identity, offer_id: int, *, origin: ChatOrigin | None = None) -> Result:
        """Take the offered slot: book it, or move the entry's visit there. The first acceptance
        of a shared hold wins; the others get ``offer_gone``."""
        view = self.offer(actor, offer_id)
        if view is None:
            return Result(Outcome.NOT_FOUND, "No such offer.", field="offer_id")
        if view.status != OPEN or view.expires_at <= self.now():
            return self._gone_result(view)
        with session_scope(self.engine) as s:  # the hold's name, which no view shows
            holder = s.scalar(select(WaitlistOffer.holder).where(WaitlistOffer.id == offer_id))
        moving = view.appointment_id  # an open offer's: the visit its request moves earlier, if any
        if moving is not None:
            result = self.booking.reschedule(actor, moving, view.starts_at, dentist_id=view.dentist_id, holder=holder)
        else:
            result = self.booking.book(actor, patient_id=view.patient_id, dentist_id=view.dentist_id,
                                       service_id=view.service_id, starts_at=view.starts_at, holder=holder,
                                       idempotency_key=f"waitlist-offer:{offer_id}", origin=origin)
        if result.ok:
            assert result.appointment is not None
            self._won(offer_id, holder, result.appointment.id)
            result.offer = self.offer(actor, offer_id)
            return result
        if result.outcome in (Outcome.SLOT_TAKEN, Outcome.PATIENT_BUSY, Outcome.OUTSIDE_HOURS, Outcome.TOO_SOON,
                              Outcome.IN_PAST):
            self._lost(offer_id)
            gone = self._gone_result(self.offer(actor, offer_id) or view)
            gone.alternatives = result.alternatives
            return gone
        return result

    @_guard
    def decline(self, actor: Identity, offer_id: int) -> Result:
        view = self.offer(actor, offer_id)
        if view is None:
            return Result(Outcome.NOT_FOUND, "No such offer.", field="offer_id")
        if view.status != OPEN:
            return self._gone_result(view)
        with session_scope(self.engine) as s:
            holders = self._decide_open(s, WaitlistOffer.id == offer_id, DECLINED)
        self._release_unused(holders)
        return Result(Outcome.DECLINED, "All right, you stay on the waitlist for another time.",
                      offer=self.offer(actor, offer_id))

    def _gone_result(self, view: OfferView) -> Result:
        if view.status == ACCEPTED:
            return Result(Outcome.OFFER_GONE, "You already took that time.", offer=view)
        return Result(Outcome.OFFER_GONE, "That time is no longer held for you; you stay on the waitlist.",
                      offer=view)

    # --- deciding offers ---------------------------------------------------------------------

    def _won(self, offer_id: int, holder: str, appointment_id: int) -> None:
        with session_scope(self.engine) as s:
            o = s.get(WaitlistOffer, offer_id)
            assert o is not None
            now = self.now()
            o.status, o.decided_at, o.appointment_id, o.chat_told_at = ACCEPTED, now, appointment_id, now
            o.entry.status, o.entry.updated_at = BOOKED, now
            s.flush()
            self._decide_open(s, (WaitlistOffer.holder == holder) & (WaitlistOffer.id != offer_id), GONE)

    def _lost(self, offer_id: int) -> None:
        with session_scope(self.engine) as s:
            self._decide_open(s, WaitlistOffer.id == offer_id, GONE, told=True)

    def _decide_open(self, s, where, status: str, *, told: bool = False) -> set[str]:
        """Close the open offers ``where`` selects with ``status``; their entries wait again
        (unless withdrawn or booked meanwhile). ``told``: the chat hears it in the answer (the
        patient acted there), so it is not told again. Returns their holders."""
        now = self.now()
        rows = s.execute(update(WaitlistOffer).where(where, WaitlistOffer.status == OPEN).values(
            status=status, decided_at=now, chat_told_at=now if (told or status == DECLINED) else None)
            .returning(WaitlistOffer.entry_id, WaitlistOffer.holder)).all()
        entries = [r[0] for r in rows]
        if entries:
            s.execute(update(WaitlistEntry).where(WaitlistEntry.id.in_(entries), WaitlistEntry.status == OFFERED)
                      .values(status=WAITING, updated_at=now))
        return {r[1] for r in rows}

    def _release_unused(self, holders: set[str]) -> None:
        """Release a shared hold once none of its offers is open."""
        for holder in holders:
            with session_scope(self.engine) as s:
                still = s.scalar(select(WaitlistOffer.id).where(WaitlistOffer.holder == holder,
                                                                WaitlistOffer.status == OPEN).limit(1))
            if still is None:
                self.booking.release_hold(holder)

    def _entry(self, s, actor: Identity, entry_id: int) -> WaitlistEntry | None:
        if not isinstance(entry_id, int) or isinstance(entry_id, bool):
            return None
        entry = s.get(WaitlistEntry, entry_id, with_for_update=True)
        if entry is None:
            return None
        if _may_act(actor, entry.patient_id):
            return entry
        return None

    # --- the worker's pass -------------------------------------------------------------------

    def run_once(self) -> PassResult:
        result = PassResult()
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
            if not lock.execute(text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"),
                                {"k": PASS_LOCK}).scalar():
                result.skipped = True
                return result
            try:
                result.expired = self._expire()
                result.offered = self._offer_freed()
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), {"k": PASS_LOCK})
        return result

    def _expire(self) -> list[int]:
        with session_scope(self.engine) as s:
            now = self.now()
            expired = s.execute(update(WaitlistOffer).where(
                WaitlistOffer.status == OPEN, WaitlistOffer.expires_at <= now).values(
                status=EXPIRED, decided_at=now, chat_told_at=None).returning(
                WaitlistOffer.id, WaitlistOffer.entry_id)).all()
            if expired:
                s.execute(update(WaitlistEntry).where(
                    WaitlistEntry.id.in_([r[1] for r in expired]), WaitlistEntry.status == OFFERED,
                    ~select(WaitlistOffer.id).where(WaitlistOffer.entry_id == WaitlistEntry.id,
                                                    WaitlistOffer.status == OPEN).exists())
                    .values(status=WAITING, updated_at=now))
            s.execute(update(WaitlistEntry).where(WaitlistEntry.status == WAITING, WaitlistEntry.latest <= now)
                      .values(status=EXPIRED, updated_at=now))
            s.execute(update(WaitlistEntry).where(
                WaitlistEntry.status == WAITING, WaitlistEntry.appointment_id.is_not(None),
                ~select(Appointment.id).where(Appointment.id == WaitlistEntry.appointment_id,
                                              Appointment.status.in_(LIVE_VISIT)).exists())
                .values(status=WITHDRAWN, updated_at=now))
            return [r[0] for r in expired]

    def _offer_freed(self) -> list[int]:
        with session_scope(self.engine) as s:
            waiting = s.scalars(select(WaitlistEntry).where(WaitlistEntry.status == WAITING)
                                .order_by(WaitlistEntry.created_at, WaitlistEntry.id)).all()
            s.expunge_all()
        made: list[int] = []
        grouped: set[int] = set()
        free = _FreeTime(self.booking, waiting, self.now())
        for entry in waiting:
            if entry.id in grouped:
                continue
            for slot in self._candidates(entry, free.within(entry)):
                # every waiting request it suits, in the fair order: also those before this one
                # that found nothing earlier in this pass (the time may have been freed meanwhile)
                group = [o for o in waiting if o.id not in grouped
                         and (o is entry or self._fits(o, slot, entry.service_id))]
                group = group[:self.settings.waitlist_offer_to]
                offers = self._make_offer(slot, entry.service_id, group)
                free.changed(slot)  # held now, or taken by someone else: read that diary again
                if offers is None:  # taken meanwhile: try the entry's next slot
                    continue
                made += offers
                grouped.update(e.id for e in group)
                break
        return made

    def _candidates(self, entry: WaitlistEntry, slots: list[Slot]):
        """Of the free ``slots`` in the entry's range, those never offered to it and clear of the
        patient's other visits."""
        if not slots:
            return
        now = self.now()
        with session_scope(self.engine) as s:
            offered = set(s.execute(select(WaitlistOffer.dentist_id, WaitlistOffer.starts_at).where(
                WaitlistOffer.entry_id == entry.id)).all())
            busy = s.execute(select(Appointment.starts_at, Appointment.ends_at).where(
                Appointment.patient_id == entry.patient_id, Appointment.status.in_(LIVE_VISIT),
                Appointment.ends_at > now,
                Appointment.id != (entry.appointment_id or 0))).all()
        for slot in slots:
            if (slot.dentist_id, slot.starts_at) in offered:
                continue
            if any(slot.starts_at < end and start < slot.ends_at for start, end in busy):
                continue
            yield slot

    def _fits(self, other: WaitlistEntry, slot: Slot, service_id: int) -> bool:
        """Whether a slot found for one entry suits another waiting one (same service, its dentist
        or any, inside its range, not offered to it before, clear of its patient's visits)."""
        if other.service_id != service_id or other.dentist_id not in (None, slot.dentist_id):
            return False
        if not (other.earliest <= slot.starts_at < other.latest):
            return False
        with session_scope(self.engine) as s:
            if s.scalar(select(WaitlistOffer.id).where(
                    WaitlistOffer.entry_id == other.id, WaitlistOffer.dentist_id == slot.dentist_id,
                    WaitlistOffer.starts_at == slot.starts_at).limit(1)) is not None:
                return False
            clash = s.scalar(select(Appointment.id).where(
                Appointment.patient_id == other.patient_id, Appointment.status.in_(LIVE_VISIT),
                Appointment.starts_at < slot.ends_at, Appointment.ends_at > slot.starts_at,
                Appointment.id != (other.appointment_id or 0)).limit(1))
        return clash is None

    def _make_offer(self, slot: Slot, service_id: int, group: list[WaitlistEntry]) -> list[int] | None:
        holder = f"waitlist:{uuid.uuid4().hex}"
        held = self.booking.hold(holder=holder, dentist_id=slot.dentist_id, service_id=service_id,
                                 starts_at=slot.starts_at)
        if held.outcome is not Outcome.HELD:
            return None
        made: list[int] = []
        with session_scope(self.engine) as s:
            now = self.now()
            for entry in group:
                claimed = s.execute(update(WaitlistEntry).where(
                    WaitlistEntry.id == entry.id, WaitlistEntry.status == WAITING, WaitlistEntry.service_id == service_id)
                    .values(status=OFFERED, updated_at=now).returning(WaitlistEntry.id)).scalar()
                if claimed is None:  # withdrawn or changed meanwhile
                    continue
                o = WaitlistOffer(entry_id=entry.id, patient_id=entry.patient_id, service_id=service_id,
                                  dentist_id=slot.dentist_id, starts_at=slot.starts_at, ends_at=slot.ends_at,
                                  holder=holder, expires_at=held.hold_expires_at)
                s.add(o)
                s.flush()
                made.append(o.id)
        if not made:
            self.booking.release_hold(holder)
            return None
        log.info("waitlist: offered %s at %s to %d patient(s)", slot.dentist_id, slot.starts_at.isoformat(),
                 len(made))
        return made

    # --- telling chats -----------------------------------------------------------------------

    def chats_to_tell(self) -> list[ChatNotice]:
        with session_scope(self.engine) as s:
            rows = s.execute(select(WaitlistOffer.id, WaitlistEntry.conversation_id, WaitlistOffer.status)
                             .join(WaitlistEntry, WaitlistEntry.id == WaitlistOffer.entry_id)
                             .where(WaitlistEntry.conversation_id.is_not(None), WaitlistOffer.chat_told_at.is_(None),
                                    WaitlistOffer.status.in_((OPEN, GONE, EXPIRED)))
                             .order_by(WaitlistOffer.id)).all()
        return [ChatNotice(*r) for r in rows]

    def mark_told(self, notice: ChatNotice) -> None:
        """The chat heard ``notice`` (only if the offer's status is still the one it heard)."""
        with session_scope(self.engine) as s:
            s.execute(update(WaitlistOffer).where(WaitlistOffer.id == notice.offer_id,
                                                  WaitlistOffer.status == notice.status)
                      .values(chat_told_at=self.now()))
