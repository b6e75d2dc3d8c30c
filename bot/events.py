"""The realtime event vocabulary: every event name, the shape of each payload, and the safe mark.

This module is where an event is named. The SQL triggers (``sql/002_outbox.sql`` and the later
trigger functions) write these types into ``realtime_events``; the sync service (``sync/``) sends
them to clients under the same names; the action server (``actions/``) and the browser client
(``sync/static/realtime.js``) handle them. ``tests/test_events.py`` checks that the triggers and
``realtime.js`` use exactly this set, so a name added or dropped on one side fails there. The
names are a wire contract (docs/realtime.md): never rename one.

The payload shapes below are what a client receives: the outbox row's ``payload`` with ``id``,
``type`` and ``at`` (sync/outbox.py builds the JSON in PostgreSQL).

The *safe mark* (``safe_mark``) is the outbox id a reader may resume after once it has read the
tables: the highest id below which every id is committed. Ids are handed out before commit, so
a missing id among the latest ones may be a transaction still in flight; resuming after the
highest id would skip its event forever. The REST list of appointments returns it as
``last_event_id``, the action server's cache takes it as its ``since`` at a full load, and the
sync service's listener starts its stream there.
"""

from __future__ import annotations

from typing import Literal, TypedDict

# --- names ------------------------------------------------------------------------------------

APPOINTMENT_CREATED = "appointment_created"
APPOINTMENT_UPDATED = "appointment_updated"
APPOINTMENT_DELETED = "appointment_deleted"
AVAILABILITY_CHANGED = "availability_changed"
REMINDER_SENT = "reminder_sent"  # a visit's reminder went out (sql/009, bot/reminders.py)
WAITLIST_CHANGED = "waitlist_changed"  # a waitlist entry was added or changed status (sql/010)
WAITLIST_OFFER = "waitlist_offer"  # a freed slot offered to one waiting patient, or that offer decided

APPOINTMENT_EVENTS = frozenset({APPOINTMENT_CREATED, APPOINTMENT_UPDATED, APPOINTMENT_DELETED})
# what the triggers write into realtime_events (and its CHECK allows), in this order in the docs
OUTBOX_EVENTS = (APPOINTMENT_CREATED, APPOINTMENT_UPDATED, APPOINTMENT_DELETED, AVAILABILITY_CHANGED,
                 REMINDER_SENT, WAITLIST_CHANGED, WAITLIST_OFFER)
# events for people, never for the action server (it has nothing to do with them)
PEOPLE_ONLY_EVENTS = frozenset({REMINDER_SENT, WAITLIST_CHANGED, WAITLIST_OFFER})

# A message of the sync service itself, never an outbox row: the client must reload its data.
RESYNC_REQUIRED = "resync_required"
ResyncReason = Literal["outbox_pruned", "since_ahead", "buffer_overflow"]

# Another: the staff session a connection was opened with has ended (sign-out, a new password,
# the account disabled, its time up); the connection is closed right after it.
SIGNED_OUT = "signed_out"

# Every name a client of the sync service may receive.
CLIENT_EVENTS = (*OUTBOX_EVENTS, RESYNC_REQUIRED, SIGNED_OUT)

# The NOTIFY channel the triggers signal on (payload: ``Notification``).
CHANNEL = "realtime_events"


# --- payload shapes ---------------------------------------------------------------------------

class Notification(TypedDict):
    """``pg_notify('realtime_events', ...)``: a signal naming the row, never the row itself."""

    type: str
    id: int


class AppointmentRow(TypedDict):
    """An ``appointments`` row as ``to_jsonb`` writes it (instants as ISO-8601 strings)."""

    id: int
    patient_id: int
    dentist_id: int
    service_id: int
    starts_at: str
    ends_at: str
    status: str
    notes: str | None
    created_at: str
    updated_at: str
    idempotency_key: str | None
    operatory_id: int | None  # the chair it holds (sql/008); None: the clinic keeps no chairs, or none needed
    hygienist_id: int | None  # who performs it when a hygienist does; None otherwise
    held_from: str  # its time plus the service's buffers: what the chair and provider are held for
    held_until: str


class Previous(TypedDict):
    """On ``appointment_updated``: what the visit was before the change."""

    dentist_id: int
    patient_id: int
    starts_at: str
    ends_at: str
    status: str
    operatory_id: int | None
    hygienist_id: int | None


class _Event(TypedDict):
    id: int  # the outbox id: strictly increasing per connection
    type: str
    at: str  # when the change was written, ISO-8601 UTC


class _AppointmentEvent(_Event):
    appointment: AppointmentRow


class AppointmentEvent(_AppointmentEvent, total=False):
    """``appointment_created`` / ``_updated`` / ``_deleted``. ``previous`` is on updates only;
    a dentist or patient a visit left gets ``{"id"}`` as ``appointment`` and ``moved_away``."""

    previous: Previous
    moved_away: Literal[True]


class _AvailabilityEvent(_Event):
    dentist_id: int | None  # None: clinic-wide (a closure, a service)
    source: str  # the table: working_hours, time_off, date_overrides, clinic_closures, slot_holds, ...
    op: Literal["insert", "update", "delete"]
    row_id: int


class AvailabilityEvent(_AvailabilityEvent, total=False):
    """``availability_changed``: which diary changed, never a patient or a free-text reason; the
    row's time fields when it has them."""

    operatory_id: int | None  # the chair the row is about (operatories, a hold's chair); null: none
    hygienist_id: int | None  # the hygienist the row is about (their hours, time off, a hold); null: none
    weekday: int
    on_date: str
    starts_at: str
    ends_at: str
    expires_at: str


class ReminderSentEvent(_Event):
    """``reminder_sent``: a reminder of a visit was sent, to its patient, by one channel. Routed to
    admins and the visit's dentist and patient (the outbox row's ``dentist_id``, ``patient_id``);
    never the message's body or recipient."""

    appointment_id: int
    kind: str  # day_before
    channel: Literal["sms", "email"]


class WaitlistEntryRow(TypedDict):
    """A ``waitlist_entries`` row without its conversation id."""

    id: int
    patient_id: int
    service_id: int
    dentist_id: int | None  # None: any dentist
    earliest: str
    latest: str
    status: Literal["waiting", "offered", "booked", "expired", "withdrawn"]
    created_at: str
    appointment_id: int | None  # the visit to move earlier; None: a new booking


class WaitlistChangedEvent(_Event):
    """``waitlist_changed``: routed to admins, the entry's dentist (when it names one) and its
    patient."""

    op: Literal["insert", "update", "delete"]
    entry: WaitlistEntryRow


class WaitlistOfferRow(TypedDict):
    """A ``waitlist_offers`` row without its hold's name."""

    id: int
    entry_id: int
    patient_id: int
    service_id: int
    dentist_id: int
    starts_at: str
    ends_at: str
    expires_at: str  # the offer (and its hold) ends then
    status: Literal["open", "accepted", "gone", "declined", "expired"]
    appointment_id: int | None  # the visit it became, once accepted
    created_at: str
    decided_at: str | None


class WaitlistOfferEvent(_Event):
    """``waitlist_offer``: to the patient offered only (not admins, not the dentist): a new
    ``open`` offer, then its end (``accepted``, ``gone``: someone else took it, ``declined``,
    ``expired``)."""

    offer: WaitlistOfferRow


class SignedOut(TypedDict):
    """``signed_out``: the connection's staff session ended; sign in again."""

    message: str


class ResyncRequired(TypedDict):
    """``resync_required``: reload, then live events continue after ``lastId``."""

    reason: ResyncReason
    since: int | None
    oldestId: int | None
    lastId: int


# --- the safe mark ----------------------------------------------------------------------------

MARK_LOOKBACK = 1000  # the latest outbox ids searched for one still in flight

# Plain SQL without parameters, so SQLAlchemy (``safe_mark``) and psycopg (sync/outbox.py) both run it.
SAFE_MARK_SQL = f"""
    WITH b AS (SELECT coalesce(max(id), 0) AS hi, coalesce(min(id), 1) AS lo FROM realtime_events)
    SELECT coalesce((SELECT min(g) - 1 FROM generate_series(greatest(b.hi - {MARK_LOOKBACK}, b.lo), b.hi) g
                     WHERE NOT EXISTS (SELECT 1 FROM realtime_events e WHERE e.id = g)), b.hi) FROM b
"""


def safe_mark(session) -> int:
    """The safe mark, read in ``session``'s transaction (a SQLAlchemy ``Session`` or
    ``Connection``) before the rows it stands for (or in their snapshot): they hold every event up
    to it, so a reader resumes after it."""
    from sqlalchemy import text  # here: the vocabulary itself needs no database library

    return int(session.execute(text(SAFE_MARK_SQL)).scalar_one())
