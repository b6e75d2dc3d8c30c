"""Typed SQLAlchemy 2 models of the tables in ``sql/`` (the SQL files are the source of truth)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import BigInteger, FetchedValue, ForeignKey, SmallInteger, Text
from sqlalchemy.dialects.postgresql import INTERVAL, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

STATUSES = ("pending", "confirmed", "cancelled", "completed", "no_show")
LIVE_STATUSES = ("pending", "confirmed")  # visits still to come that hold their time


class Base(DeclarativeBase):
    pass


class Dentist(Base):
    __tablename__ = "dentists"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    full_name: Mapped[str] = mapped_column(Text)
    specialty: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class Operatory(Base):
    """A chair (sql/008): a visit whose service needs one holds it for its time and buffers."""

    __tablename__ = "operatories"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class Hygienist(Base):
    """A provider who performs the services with ``performed_by = 'hygienist'`` (sql/008)."""

    __tablename__ = "hygienists"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    full_name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class HygienistWorkingHours(Base):
    __tablename__ = "hygienist_working_hours"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hygienist_id: Mapped[int] = mapped_column(ForeignKey("hygienists.id"))
    weekday: Mapped[int] = mapped_column(SmallInteger)  # ISO, 1 = Monday
    start_time: Mapped[time]
    end_time: Mapped[time]


class HygienistTimeOff(Base):
    __tablename__ = "hygienist_time_off"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hygienist_id: Mapped[int] = mapped_column(ForeignKey("hygienists.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    full_name: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text, unique=True)
    email: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class Service(Base):
    __tablename__ = "services"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    duration_minutes: Mapped[int]
    price_cents: Mapped[int]
    description: Mapped[str | None] = mapped_column(Text)
    buffer_before_minutes: Mapped[int] = mapped_column(default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(default=0)
    min_notice_minutes: Mapped[int | None] = mapped_column()  # None: the clinic's default
    performed_by: Mapped[str] = mapped_column(Text, default="dentist")  # or "hygienist" (sql/008)
    needs_operatory: Mapped[bool] = mapped_column(default=True)
    recall_interval: Mapped[timedelta | None] = mapped_column(INTERVAL)


class WorkingHours(Base):
    __tablename__ = "working_hours"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dentist_id: Mapped[int] = mapped_column(ForeignKey("dentists.id"))
    weekday: Mapped[int] = mapped_column(SmallInteger)  # ISO, 1 = Monday
    start_time: Mapped[time]
    end_time: Mapped[time]


class TimeOff(Base):
    __tablename__ = "time_off"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dentist_id: Mapped[int] = mapped_column(ForeignKey("dentists.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)


class Appointment(Base):
    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    dentist_id: Mapped[int] = mapped_column(ForeignKey("dentists.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(Text, default="pending")
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    updated_at: Mapped[datetime] = mapped_column(server_default="now()")
    idempotency_key: Mapped[str | None] = mapped_column(Text, unique=True)
    operatory_id: Mapped[int | None] = mapped_column(ForeignKey("operatories.id"))
    hygienist_id: Mapped[int | None] = mapped_column(ForeignKey("hygienists.id"))
    # time plus the service's buffers, kept by the held_range_v1 trigger (sql/008)
    held_from: Mapped[datetime] = mapped_column(server_default=FetchedValue(), server_onupdate=FetchedValue())
    held_until: Mapped[datetime] = mapped_column(server_default=FetchedValue(), server_onupdate=FetchedValue())

    patient: Mapped[Patient] = relationship(lazy="joined", innerjoin=True)
    dentist: Mapped[Dentist] = relationship(lazy="joined", innerjoin=True)
    service: Mapped[Service] = relationship(lazy="joined", innerjoin=True)
    hygienist: Mapped[Hygienist | None] = relationship(lazy="joined")


class DateOverride(Base):
    __tablename__ = "date_overrides"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dentist_id: Mapped[int] = mapped_column(ForeignKey("dentists.id"))
    on_date: Mapped[date]
    start_time: Mapped[time | None]
    end_time: Mapped[time | None]
    reason: Mapped[str | None] = mapped_column(Text)


class ClinicClosure(Base):
    __tablename__ = "clinic_closures"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    on_date: Mapped[date] = mapped_column(unique=True)
    reason: Mapped[str | None] = mapped_column(Text)


class SlotHold(Base):
    __tablename__ = "slot_holds"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dentist_id: Mapped[int] = mapped_column(ForeignKey("dentists.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    holder: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    client: Mapped[str | None] = mapped_column(Text)  # the chat client's address (per-client hold limit)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    operatory_id: Mapped[int | None] = mapped_column(ForeignKey("operatories.id"))
    hygienist_id: Mapped[int | None] = mapped_column(ForeignKey("hygienists.id"))
    held_from: Mapped[datetime] = mapped_column(server_default=FetchedValue(), server_onupdate=FetchedValue())
    held_until: Mapped[datetime] = mapped_column(server_default=FetchedValue(), server_onupdate=FetchedValue())


class WaitlistEntry(Base):
    """A patient waiting for an earlier slot (sql/010); ``dentist_id`` None: any dentist."""

    __tablename__ = "waitlist_entries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    dentist_id: Mapped[int | None] = mapped_column(ForeignKey("dentists.id"))
    earliest: Mapped[datetime]
    latest: Mapped[datetime]
    status: Mapped[str] = mapped_column(Text, default="waiting")
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    conversation_id: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(server_default="now()")


class WaitlistOffer(Base):
    """One freed slot offered to one waitlist entry (sql/010)."""

    __tablename__ = "waitlist_offers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("waitlist_entries.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    dentist_id: Mapped[int] = mapped_column(ForeignKey("dentists.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    holder: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(Text, default="open")
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    decided_at: Mapped[datetime | None]
    chat_told_at: Mapped[datetime | None]

    entry: Mapped[WaitlistEntry] = relationship(lazy="joined", innerjoin=True)


class ChatBooking(Base):
    """A visit booked by an anonymous chat: its conversation may manage it (sql/005)."""

    __tablename__ = "chat_bookings"

    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"),
                                                primary_key=True)
    conversation_id: Mapped[str] = mapped_column(Text)
    client: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class StaffUser(Base):
    """A person of the clinic's staff who signs in with an email and a password (sql/007)."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(Text)
    full_name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)  # admin | dentist
    dentist_id: Mapped[int | None] = mapped_column(ForeignKey("dentists.id"))
    password_hash: Mapped[str] = mapped_column(Text)  # Argon2id only
    active: Mapped[bool] = mapped_column(default=True)
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    password_changed_at: Mapped[datetime] = mapped_column(server_default="now()")


class StaffSessionRow(Base):
    """A signed-in browser: the SHA-256 of its cookie's session id, never the id itself."""

    __tablename__ = "staff_sessions"

    id_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    last_seen_at: Mapped[datetime] = mapped_column(server_default="now()")
    expires_at: Mapped[datetime]
    user_agent: Mapped[str | None] = mapped_column(Text)
    client: Mapped[str | None] = mapped_column(Text)


class StaffSignIn(Base):
    """One sign-in attempt, as typed (the email) and as judged (success, reason)."""

    __tablename__ = "staff_sign_ins"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    success: Mapped[bool]
    reason: Mapped[str] = mapped_column(Text)
    client: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(server_default="now()")


class RealtimeEvent(Base):
    __tablename__ = "realtime_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    type: Mapped[str] = mapped_column(Text)
    dentist_id: Mapped[int | None] = mapped_column(BigInteger)
    patient_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class Notification(Base):
    """One message the clinic sent or tried to send (sql/006; bot/notify.py writes it)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel: Mapped[str] = mapped_column(Text)  # sms | email
    recipient: Mapped[str] = mapped_column(Text)  # E.164 or an email address
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="queued")  # queued | sent | failed
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    sent_at: Mapped[datetime | None]
    kind: Mapped[str] = mapped_column(Text, server_default="message")
    subject: Mapped[str | None] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class VerificationCode(Base):
    """A one-time code sent to prove a phone or email (sql/006; bot/otp.py)."""

    __tablename__ = "verification_codes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    purpose: Mapped[str] = mapped_column(Text)  # chat | patient_sign_in
    subject: Mapped[str] = mapped_column(Text)  # the conversation id, or the sign-in attempt
    channel: Mapped[str] = mapped_column(Text)
    recipient: Mapped[str] = mapped_column(Text)
    code_hash: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    client: Mapped[str | None] = mapped_column(Text)
    notification_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    expires_at: Mapped[datetime]
    verified_at: Mapped[datetime | None]
    superseded_at: Mapped[datetime | None]


class CalendarFeed(Base):
    """The generation of one person's calendar feed URL (sql/012; sync/feeds.py): a feed token of
    another generation is refused. No row: generation 0."""

    __tablename__ = "calendar_feeds"

    kind: Mapped[str] = mapped_column(Text, primary_key=True)  # dentist | patient
    owner_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    generation: Mapped[int]
    renewed_at: Mapped[datetime] = mapped_column(server_default="now()")
