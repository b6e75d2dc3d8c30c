"""The one way the clinic sends a message: the ``Notifier`` and its senders.

Every message is first written to ``notifications`` (status ``queued``), then handed to the
sender of its channel, then marked ``sent`` (with ``sent_at``) or ``failed`` (with the reason).
So the table is the record of everything the clinic sent, and a message that could not be
delivered is visible, never silently lost. Senders:

- ``SmtpSender`` (email): the standard library's ``smtplib`` and ``email.message.EmailMessage``
  against SMTP_HOST:SMTP_PORT (STARTTLS and login when set); attachments (an ``.ics`` file) ride
  along as MIME parts.
- ``HttpSmsSender`` (sms): ``POST`` of ``{"to": "+1...", "body": "..."}`` JSON to SMS_HTTP_URL with
  ``Authorization: Bearer SMS_HTTP_TOKEN``; any 2xx is delivered. An SMS provider's own API is
  wrapped behind that shape by a small relay, or a sender class of its own.
- ``ConsoleSender`` (either channel, the development default): logs the message at WARNING on
  the ``bot.notify`` logger, which ``bot up`` shows: a developer reads the code there.
"""

from __future__ import annotations

import http.client
import json
import logging
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol

from sqlalchemy import update
from sqlalchemy.engine import Engine

from .db import session_scope
from .models import Notification
from .phone import is_e164
from .settings import Settings

log = logging.getLogger(__name__)

CHANNELS = ("sms", "email")
MAX_EMAIL_CHARS = 254


def is_email_address(value: object) -> bool:
    """Whether ``value`` is one email address (``local@domain.tld``): no spaces or line breaks,
    which in a ``To:`` header would add recipients or headers of their own."""
    if not isinstance(value, str) or len(value) > MAX_EMAIL_CHARS or any(c.isspace() for c in value):
        return False
    local, at, domain = value.partition("@")
    return bool(at and local and "." in domain.strip(".") and "@" not in domain)


def check_recipient(channel: str, recipient: object) -> None:
    """A message goes only to an address of its channel: an E.164 number for ``sms``, an email
    address for ``email``. Anything else is a caller's mistake, refused before it is recorded."""
    if channel == "sms" and not is_e164(recipient):
        raise ValueError(f"an sms goes to a number in E.164 form (+12125550142), not {recipient!r}")
    if channel == "email" and not is_email_address(recipient):
        raise ValueError(f"an email goes to one email address (name@example.com), not {recipient!r}")


class SendError(RuntimeError):
    """The sender could not hand the message on (refused, unreachable, timed out)."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"  # "text/calendar" for an .ics file


@dataclass(frozen=True)
class Message:
    channel: str
    recipient: str
    body: str
    subject: str | None = None
    kind: str = "message"
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)


class Sender(Protocol):
    name: str

    def deliver(self, message: Message) -> None:
        """Hand the message on, or raise SendError."""


class ConsoleSender:
    name = "console"

    def deliver(self, message: Message) -> None:
        log.warning("[%s to %s] %s", message.channel, message.recipient, message.body)


class SmtpSender:
    name = "smtp"

    def __init__(self, settings: Settings):
        self.settings = settings

    def deliver(self, message: Message) -> None:
        s = self.settings
        mail = EmailMessage()
        mail["From"] = s.smtp_from
        mail["To"] = message.recipient
        mail["Subject"] = message.subject or s.clinic_name
        mail["Message-ID"] = make_msgid(domain="clinic.invalid")
        mail.set_content(message.body)
        for part in message.attachments:
            maintype, _, subtype = part.mime_type.partition("/")
            mail.add_attachment(part.content, maintype=maintype, subtype=subtype or "octet-stream",
                                filename=part.filename)
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.notify_timeout_seconds) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password or "")
                smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(f"SMTP {s.smtp_host}:{s.smtp_port}: {exc}") from exc


class HttpSmsSender:
    name = "http"

    def __init__(self, settings: Settings):
        if not settings.sms_http_url:
            raise ValueError("SMS_HTTP_URL is not set")
        self.url = settings.sms_http_url
        self.token = settings.sms_http_token
        self.timeout = settings.notify_timeout_seconds

    def deliver(self, message: Message) -> None:
        data = json.dumps({"to": message.recipient, "body": message.body}).encode()
        request = urllib.request.Request(self.url, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (a set URL)
                if not 200 <= response.status < 300:
                    raise SendError(f"SMS provider answered {response.status}")
        except urllib.error.HTTPError as exc:
            raise SendError(f"SMS provider answered {exc.code}") from exc
        except http.client.HTTPException as exc:  # a garbled answer (BadStatusLine, IncompleteRead, ...)
            raise SendError(f"SMS provider's answer unreadable: {exc!r}") from exc
        except (OSError, ValueError) as exc:
            raise SendError(f"SMS provider unreachable: {exc}") from exc


@dataclass(frozen=True)
class Sent:
    notification_id: int
    status: str  # sent | failed
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "sent"


class Notifier:
    """Records, then sends, every message; one sender per channel."""

    def __init__(self, engine: Engine, senders: dict[str, Sender]):
        unknown = set(senders) - set(CHANNELS)
        if unknown:
            raise ValueError(f"unknown channel(s): {', '.join(sorted(unknown))}")
        self.engine = engine
        self.senders = senders

    def send(self, message: Message) -> Sent:
        sender = self.senders.get(message.channel)
        if sender is None:
            raise ValueError(f"no sender for channel {message.channel!r}")
        check_recipient(message.channel, message.recipient)
        with session_scope(self.engine) as s:
            row = Notification(channel=message.channel, recipient=message.recipient, body=message.body,
                               subject=message.subject, kind=message.kind, sender=sender.name)
            s.add(row)
            s.flush()
            notification_id = row.id
        try:
            sender.deliver(message)
        except Exception as exc:  # noqa: BLE001 (a sender's bug too: never a row left queued)
            reason = str(exc) if isinstance(exc, SendError) else f"{type(exc).__name__}: {exc}"
            log.error("notification %s (%s to %s) failed: %s", notification_id, message.kind,
                      message.recipient, reason, exc_info=not isinstance(exc, SendError))
            self._mark(notification_id, status="failed", error=reason[:500])
            return Sent(notification_id, "failed", reason)
        self._mark(notification_id, status="sent", sent_at=datetime.now(timezone.utc))
        return Sent(notification_id, "sent")

    def _mark(self, notification_id: int, **values) -> None:
        with session_scope(self.engine) as s:
            s.execute(update(Notification).where(Notification.id == notification_id).values(**values))


def senders_from(settings: Settings) -> dict[str, Sender]:
    """The senders the settings choose (SMS_SENDER, EMAIL_SENDER)."""
    sms: Sender = HttpSmsSender(settings) if settings.sms_sender == "http" else ConsoleSender()
    email: Sender = SmtpSender(settings) if settings.email_sender == "smtp" else ConsoleSender()
    return {"sms": sms, "email": email}


def notifier_from(engine: Engine, settings: Settings) -> Notifier:
    return Notifier(engine, senders_from(settings))
