"""Reminders of upcoming visits: an email with an ``.ics`` file and an SMS, once per visit and time,
each with the visit's signed link to confirm or cancel it (``bot.links``; ``sync.visit_links`` serves
it). ``calendar_of`` builds the VEVENTs of the attachment and of the calendar feeds (``sync.feeds``).

``ReminderWorker.run_once`` finds every pending or confirmed visit (never a cancelled one) that
starts within ``REMINDER_HOURS`` and has no reminder of its kind and channel yet, claims each by
``INSERT INTO reminders ... ON CONFLICT DO NOTHING`` (the table's UNIQUE key), sends it through
the ``Notifier`` (so it is recorded in ``notifications``) and marks the claim ``sent`` with the
notification's id; that update fires ``reminder_sent`` into the outbox (sql/009).

A claim names the time it reminds of (``visit_starts_at``; the UNIQUE key is the visit, kind,
channel and that time, sql/011): a visit moved after its reminder went out is reminded of again,
at its new time; one that keeps its time, never twice.

**The claim rows are the worker's stored position.** A new worker (a restarted sync service,
another node) reads them and sends nothing that was sent. A claim is one transaction that
commits before the message goes out, so two workers never both send one reminder.

**Crash semantics.** A claim left ``claimed`` (the process died while sending) or ``failed``
(the sender refused it) is taken again after ``REMINDER_RETRY_MINUTES``, at most
``REMINDER_MAX_ATTEMPTS`` times in all; a recipient the notifier refuses (not an E.164 number,
not one email address) is not tried again. So a reminder is sent exactly once, except across a
crash between the SMTP server (or SMS provider) accepting it and its row being marked ``sent``:
then it is sent again after the retry time (at-least-once). Before each send the visit is read
again: one cancelled (or moved out of the future) since its claim is not sent, and its claim is
dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from icalendar import Calendar, Event
from sqlalchemy import text
from sqlalchemy.engine import Engine

from . import links
from .db import session_scope
from .notify import Attachment, Message, Notifier
from .settings import Settings

log = logging.getLogger(__name__)

DAY_BEFORE = "day_before"  # the one kind so far: REMINDER_HOURS before the visit
LIVE = ("pending", "confirmed")
PRODID = "-//Bright Smile Dental//reminders//EN"

# New claims: every live visit in the window whose patient has the channel's address, that has
# no row of this kind and channel yet. ON CONFLICT: a concurrent worker's claim wins, quietly.
_CLAIM_NEW = text("""
    INSERT INTO reminders (appointment_id, kind, channel, visit_starts_at)
    SELECT a.id, :kind, c.channel, a.starts_at
      FROM appointments a
      JOIN patients p ON p.id = a.patient_id
     CROSS JOIN LATERAL (VALUES ('email', p.email), ('sms', p.phone)) AS c(channel, address)
     WHERE a.status IN ('pending', 'confirmed')
       AND a.starts_at > now() AND a.starts_at <= now() + make_interval(hours => :hours)
       AND c.address IS NOT NULL AND c.address <> ''
       AND NOT EXISTS (SELECT 1 FROM reminders r
                        WHERE r.appointment_id = a.id AND r.kind = :kind AND r.channel = c.channel
                          AND r.visit_starts_at = a.starts_at)
     ORDER BY a.starts_at, a.id, c.channel
    ON CONFLICT (appointment_id, kind, channel, visit_starts_at) DO NOTHING
    RETURNING id
""")

# Claims left unsent for the retry time: taken again by exactly one worker (the row's new
# claimed_at makes the condition false for any other updating it concurrently).
_CLAIM_STALE = text("""
    UPDATE reminders SET status = 'claimed', claimed_at = now(), attempts = attempts + 1
     WHERE status <> 'sent' AND kind = :kind
       AND claimed_at <= now() - make_interval(mins => :retry) AND attempts < :max_attempts
    RETURNING id
""")

# What one claim sends, if its visit is still live and ahead.
_DETAILS = text("""
    SELECT r.channel, a.id, a.patient_id, a.status, a.starts_at, a.ends_at, p.full_name, p.email, p.phone,
           d.full_name AS dentist, s.name AS service
      FROM reminders r
      JOIN appointments a ON a.id = r.appointment_id
      JOIN patients p ON p.id = a.patient_id
      JOIN dentists d ON d.id = a.dentist_id
      JOIN services s ON s.id = a.service_id
     WHERE r.id = :id AND r.status = 'claimed' AND a.starts_at = r.visit_starts_at
       AND a.status IN ('pending', 'confirmed') AND a.starts_at > now()
""")


@dataclass(frozen=True)
class Visit:
    appointment_id: int
    starts_at: datetime
    ends_at: datetime
    patient_name: str
    dentist_name: str
    service_name: str
    patient_id: int | None = None  # for the signed link in a reminder (bot.links)
    status: str = "pending"


@dataclass
class RunResult:
    sent: list[int] = field(default_factory=list)     # reminder ids
    failed: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)  # the visit was cancelled after its claim


def when_text(instant: datetime, settings: Settings) -> str:
    """``Tuesday, January 7 at 9:00 AM`` in the clinic's time zone."""
    local = instant.astimezone(settings.tz)
    return f"{local:%A, %B} {local.day} at {local:%I:%M %p}".replace(" at 0", " at ")


def first_name(full_name: str) -> str:
    return (full_name.split() or ["patient"])[0]


def for_patient(visit: Visit) -> str:
    return f"{visit.service_name} with {visit.dentist_name}"


def for_dentist(visit: Visit) -> str:
    """What a dentist's calendar feed says of a visit: the service and the patient's first name
    only (feeds end up in third-party calendars; docs/scheduling.md)."""
    return f"{visit.service_name}: {first_name(visit.patient_name)}"


def calendar_of(visits: Iterable[Visit], settings: Settings, *,
                summary: Callable[[Visit], str] = for_patient, description: bool = True) -> bytes:
    """An ``.ics`` file's bytes: one VEVENT per visit (times in UTC), ``UID``
    ``appointment-<id>@clinic.invalid`` (so a calendar replaces, never duplicates, a moved visit)."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    stamp = datetime.now(timezone.utc)
    for visit in visits:
        event = Event()
        event.add("uid", f"appointment-{visit.appointment_id}@clinic.invalid")
        event.add("dtstamp", stamp)
        event.add("dtstart", visit.starts_at.astimezone(timezone.utc))
        event.add("dtend", visit.ends_at.astimezone(timezone.utc))
        event.add("summary", summary(visit))
        event.add("status", "CONFIRMED" if visit.status == "confirmed" else "TENTATIVE")
        event.add("location", f"{settings.clinic_name}, {settings.clinic_address}")
        if description:
            event.add("description", f"To move or cancel it, call {settings.clinic_phone}.")
        cal.add_component(event)
    return cal.to_ical()


def ics_for(visit: Visit, settings: Settings) -> bytes:
    """One visit as an ``.ics`` file's bytes (a reminder's attachment)."""
    return calendar_of([visit], settings)


def link_for(visit: Visit, settings: Settings) -> str | None:
    """The signed link to confirm or cancel the visit (valid until it starts; bot.links)."""
    if visit.patient_id is None:
        return None
    token = links.visit_token(visit.appointment_id, visit.patient_id, visit.starts_at, settings)
    return links.visit_url(settings.resolved_public_url, token)


def email_for(visit: Visit, recipient: str, settings: Settings) -> Message:
    when = when_text(visit.starts_at, settings)
    link = link_for(visit, settings)
    act = (f"To confirm or cancel it, open {link}\nTo move it, call {settings.clinic_phone}."
           if link else f"To move or cancel it, call {settings.clinic_phone}.")
    body = (f"Hello {visit.patient_name},\n\n"
            f"This is a reminder of your {visit.service_name} with {visit.dentist_name} on {when}.\n\n"
            f"{settings.clinic_name}\n{settings.clinic_address}\n\n"
            f"{act}\nThe attached file adds it to your calendar.\n")
    ics = Attachment("visit.ics", ics_for(visit, settings), "text/calendar")
    return Message("email", recipient, body, subject=f"Reminder: your {visit.service_name} on {when}",
                   kind="reminder", attachments=(ics,))


def sms_for(visit: Visit, recipient: str, settings: Settings) -> Message:
    when = when_text(visit.starts_at, settings)
    link = link_for(visit, settings)
    act = (f"Confirm or cancel: {link} To move it, call {settings.clinic_phone}."
           if link else f"To move or cancel it, call {settings.clinic_phone}.")
    body = (f"{settings.clinic_name}: a reminder of your {visit.service_name} with {visit.dentist_name} "
            f"on {when}. {act}")
    return Message("sms", recipient, body, kind="reminder")


class ReminderWorker:
    """One pass at a time (``run_once``); blocking (SQLAlchemy, smtplib): run it in a thread."""

    def __init__(self, engine: Engine, notifier: Notifier, settings: Settings, *, kind: str = DAY_BEFORE):
        self.engine = engine
        self.notifier = notifier
        self.settings = settings
        self.kind = kind

    def claim(self) -> list[int]:
        """New claims, then stale ones, each committed before anything is sent."""
        s = self.settings
        if s.reminder_hours == 0:  # reminders are off
            return []
        with session_scope(self.engine) as session:
            ids = list(session.execute(_CLAIM_NEW, {"kind": self.kind, "hours": s.reminder_hours}).scalars())
        with session_scope(self.engine) as session:
            ids += session.execute(_CLAIM_STALE, {"kind": self.kind, "retry": s.reminder_retry_minutes,
                                                  "max_attempts": s.reminder_max_attempts}).scalars()
        return ids

    def run_once(self) -> RunResult:
        result = RunResult()
        for reminder_id in self.claim():
            try:
                self._send(reminder_id, result)
            except Exception:  # one bad reminder must not stop the others; it is retried later
                log.exception("reminder %s failed; it is tried again later", reminder_id)
                result.failed.append(reminder_id)
        if result.sent or result.failed:
            log.info("reminders: %d sent, %d failed", len(result.sent), len(result.failed))
        return result

    def _send(self, reminder_id: int, result: RunResult) -> None:
        with session_scope(self.engine) as session:
            row = session.execute(_DETAILS, {"id": reminder_id}).one_or_none()
            if row is None:  # cancelled or moved since the claim: never sent (a moved one is claimed anew)
                session.execute(text("DELETE FROM reminders WHERE id = :id AND status <> 'sent'"),
                                {"id": reminder_id})
                result.dropped.append(reminder_id)
                return
        visit = Visit(row.id, row.starts_at, row.ends_at, row.full_name, row.dentist, row.service,
                      row.patient_id, row.status)
        if row.channel == "email":
            message = email_for(visit, row.email, self.settings)
        else:
            message = sms_for(visit, row.phone, self.settings)
        try:
            sent = self.notifier.send(message)
        except ValueError as exc:  # an address the notifier refuses: trying again changes nothing
            log.warning("reminder %s not sent: %s", reminder_id, exc)
            self._mark(reminder_id, "failed", None, final=True)
            result.failed.append(reminder_id)
            return
        self._mark(reminder_id, sent.status, sent.notification_id)
        (result.sent if sent.ok else result.failed).append(reminder_id)

    def _mark(self, reminder_id: int, status: str, notification_id: int | None, *,
              final: bool = False) -> None:
        with session_scope(self.engine) as session:
            session.execute(text("""
                UPDATE reminders
                   SET status = :status, notification_id = coalesce(:notification, notification_id),
                       sent_at = CASE WHEN :status = 'sent' THEN now() END,
                       attempts = CASE WHEN :final THEN greatest(attempts, :max_attempts) ELSE attempts END
                 WHERE id = :id"""),
                {"id": reminder_id, "status": status, "notification": notification_id, "final": final,
                 "max_attempts": self.settings.reminder_max_attempts})
