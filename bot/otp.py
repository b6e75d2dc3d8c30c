"""One-time codes: a 6-digit code sent to a phone (or email) and typed back.

A code belongs to a ``purpose`` (``chat``: a conversation proving the phone it booked or
manages under; ``patient_sign_in``: the patient page) and a ``subject`` (the conversation id,
or the sign-in attempt). Rules (settings, documented in docs/security.md):

- a code is 6 random digits (``secrets``), stored only as an HMAC-SHA256 keyed by a secret
  derived from JWT_SECRET and bound to its purpose, subject and recipient;
- it expires after VERIFICATION_CODE_MINUTES (10) and takes at most VERIFICATION_MAX_TRIES (5)
  wrong guesses; then only a new code helps;
- sending a new code supersedes the live one; a new code to the same recipient is refused within
  VERIFICATION_RESEND_SECONDS of the last (whoever asks), and past the hourly limits per
  recipient (and purpose), per client address (an IPv6 address counts by its /64), per subject
  and for the whole clinic (a flood of made-up numbers sends a handful of messages, books
  nothing); texts go only to numbers of SMS_REGIONS (default: PHONE_REGION);
- checking locks the code row, so two guesses typed at once count as two.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Callable

import phonenumbers
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from .db import session_scope
from .models import VerificationCode
from .notify import Message, Notifier
from .settings import Settings

CODE_DIGITS = 6
PURPOSES = ("chat", "patient_sign_in")
# a run of digits, possibly typed with single spaces or dashes ("123 456", "123-456")
_DIGITS = re.compile(r"\d(?:[ \-]?\d)*")


class CodeOutcome(str, Enum):
    SENT = "sent"
    TOO_SOON = "too_soon"  # a code was sent moments ago: it is still on its way
    TOO_MANY = "too_many"  # an hourly limit (field: recipient, client, subject or clinic)
    NOT_ALLOWED = "not_allowed"  # a number of a region the clinic does not text
    SEND_FAILED = "send_failed"  # the sender refused: nothing to type back
    VERIFIED = "verified"
    WRONG = "wrong"
    EXPIRED = "expired"
    LOCKED = "locked"  # too many wrong guesses
    NO_CODE = "no_code"


@dataclass(frozen=True)
class CodeResult:
    outcome: CodeOutcome
    recipient: str | None = None
    tries_left: int | None = None
    retry_after: int | None = None  # seconds
    field: str | None = None
    notification_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in (CodeOutcome.SENT, CodeOutcome.VERIFIED)


def code_in(text: object) -> str | None:
    """The 6-digit code in a typed answer ("123456", "it's 123 456", "code: 123-456"), or None."""
    if not isinstance(text, str) or len(text) > 200:
        return None
    runs = {re.sub(r"\D", "", m) for m in _DIGITS.findall(text)}
    codes = {r for r in runs if len(r) == CODE_DIGITS}
    return codes.pop() if len(codes) == 1 else None


def last_code_sent(conn, recipient: str) -> str | None:
    """The code in the newest code message recorded for ``recipient`` (E.164 or an email address),
    as its reader sees it; ``conn`` is a psycopg connection. For tests and the simulated patients,
    which read their codes where the clinic records what it sends (``notifications``)."""
    row = conn.execute("SELECT body FROM notifications WHERE recipient = %s AND kind = 'verification_code' "
                       "ORDER BY id DESC LIMIT 1", (recipient,)).fetchone()
    return code_in(row[0]) if row else None


# numbers a text to which costs the clinic extra and pays their owner (SMS pumping)
PAID_TO_RECEIVE = frozenset({phonenumbers.PhoneNumberType.PREMIUM_RATE, phonenumbers.PhoneNumberType.SHARED_COST})


def client_key(client: str | None) -> str | None:
    """The address the per-client limit counts: an IPv4 address, or an IPv6 address's /64 (one
    customer's network hands out addresses from it at will)."""
    if not client:
        return None
    try:
        address = ipaddress.ip_address(client.strip("[]"))
    except ValueError:
        return client[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def message_for(settings: Settings, code: str, minutes: int) -> str:
    return (f"{settings.clinic_name}: your code is {code}. It expires in {minutes} minutes. "
            "Never share it: the clinic will never ask you for it by phone.")


class Verifier:
    def __init__(self, engine: Engine, settings: Settings, notifier: Notifier, *,
                 clock: Callable[[], datetime] | None = None):
        self.engine = engine
        self.settings = settings
        self.notifier = notifier
        self._clock = clock
        self._key = settings.derived_secret("verification-code").encode()

    def now(self) -> datetime:
        return self._clock() if self._clock else datetime.now(timezone.utc)

    def _hash(self, purpose: str, subject: str, recipient: str, code: str) -> str:
        return hmac.new(self._key, f"{purpose}\x1f{subject}\x1f{recipient}\x1f{code}".encode(),
                        hashlib.sha256).hexdigest()

    def send(self, purpose: str, subject: str, recipient: str, *, channel: str = "sms",
             client: str | None = None) -> CodeResult:
        """Send a new code to ``recipient`` (E.164 or an email address); the live one is superseded."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown purpose {purpose!r}")
        s, now = self.settings, self.now()
        client = client_key(client)
        if channel == "sms" and not self.may_text(recipient):
            return CodeResult(CodeOutcome.NOT_ALLOWED, recipient, field="recipient")
        code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
        with session_scope(self.engine) as db:
            # one code issued at a time, clinic-wide: the counts below are read and the new row
            # written under this lock, so codes asked for at once (one client or a botnet, one
            # number or many) cannot all pass one count. Only this short transaction holds it
            # (the message is sent after): bench/otp_issue.py measures what it costs.
            db.execute(select(func.pg_advisory_xact_lock(func.hashtext("otp:issue"))))
            # per number, whoever asks: a new number ("wrong number") need not wait, and many
            # sign-in attempts for one number are as many resends
            last = db.scalar(select(func.max(VerificationCode.created_at)).where(
                VerificationCode.purpose == purpose, VerificationCode.recipient == recipient))
            if last is not None and (now - last).total_seconds() < s.verification_resend_seconds:
                wait = s.verification_resend_seconds - int((now - last).total_seconds())
                return CodeResult(CodeOutcome.TOO_SOON, recipient, retry_after=max(wait, 1))
            hour = now - timedelta(hours=1)
            recent = VerificationCode.created_at > hour
            for fieldname, where, limit in (
                    # per purpose: sign-ins on the page cannot use up the chat's codes of that number
                    ("recipient", (VerificationCode.recipient == recipient, VerificationCode.purpose == purpose),
                     s.verification_codes_per_recipient),
                    ("subject", (VerificationCode.subject == subject,), s.verification_codes_per_subject),
                    ("client", (VerificationCode.client == client,) if client else None,
                     s.verification_codes_per_client),
                    ("clinic", (), s.verification_codes_per_hour)):
                if where is None:
                    continue
                if db.scalar(select(func.count()).where(recent, *where)) >= limit:
                    return CodeResult(CodeOutcome.TOO_MANY, recipient, retry_after=3600, field=fieldname)
            db.execute(update(VerificationCode).where(
                VerificationCode.purpose == purpose, VerificationCode.subject == subject,
                VerificationCode.verified_at.is_(None), VerificationCode.superseded_at.is_(None))
                .values(superseded_at=now))
            row = VerificationCode(purpose=purpose, subject=subject, channel=channel, recipient=recipient,
                                   code_hash=self._hash(purpose, subject, recipient, code), client=client,
                                   created_at=now,
                                   expires_at=now + timedelta(minutes=s.verification_code_minutes))
            db.add(row)
            db.flush()
            row_id = row.id
        sent = self.notifier.send(Message(channel, recipient, message_for(s, code, s.verification_code_minutes),
                                          subject=f"{s.clinic_name}: your code", kind="verification_code"))
        with session_scope(self.engine) as db:
            values: dict = {"notification_id": sent.notification_id}
            if not sent.ok:
                values["superseded_at"] = self.now()  # never delivered: nothing can be typed back
            db.execute(update(VerificationCode).where(VerificationCode.id == row_id).values(**values))
        if not sent.ok:
            return CodeResult(CodeOutcome.SEND_FAILED, recipient, notification_id=sent.notification_id)
        return CodeResult(CodeOutcome.SENT, recipient, tries_left=s.verification_max_tries,
                          notification_id=sent.notification_id)

    def may_text(self, recipient: str) -> bool:
        """Whether ``recipient`` is a number of a region the clinic texts (SMS_REGIONS, else
        PHONE_REGION), and not a premium-rate or shared-cost one: no code goes abroad, or to a
        number that earns its owner money per message, because a stranger typed it."""
        try:
            number = phonenumbers.parse(recipient)
        except phonenumbers.NumberParseException:
            return False
        if phonenumbers.number_type(number) in PAID_TO_RECEIVE:
            return False
        allowed = {r.strip().upper() for r in (self.settings.sms_regions or self.settings.phone_region).split(",")}
        return phonenumbers.region_code_for_number(number) in allowed

    def pending(self, purpose: str, subject: str) -> VerificationCode | None:
        """The code still waiting to be typed back for this subject (live, not locked), if any."""
        with session_scope(self.engine) as db:
            row = self._latest(db, purpose, subject)
            if row is None or row.expires_at <= self.now() or row.attempts >= self.settings.verification_max_tries:
                return None
            return row

    def check(self, purpose: str, subject: str, typed: str) -> CodeResult:
        """Compare a typed code with the live one of this subject."""
        s = self.settings
        with session_scope(self.engine) as db:
            row = self._latest(db, purpose, subject, lock=True)
            if row is None:
                return CodeResult(CodeOutcome.NO_CODE)
            if row.expires_at <= self.now():
                return CodeResult(CodeOutcome.EXPIRED, row.recipient)
            if row.attempts >= s.verification_max_tries:
                return CodeResult(CodeOutcome.LOCKED, row.recipient, tries_left=0)
            expected = self._hash(purpose, subject, row.recipient, re.sub(r"\D", "", typed or ""))
            if hmac.compare_digest(expected, row.code_hash):
                row.verified_at = self.now()
                return CodeResult(CodeOutcome.VERIFIED, row.recipient)
            row.attempts += 1
            left = s.verification_max_tries - row.attempts
            return CodeResult(CodeOutcome.LOCKED if left == 0 else CodeOutcome.WRONG, row.recipient,
                              tries_left=left)

    def verified(self, purpose: str, subject: str, within: timedelta) -> str | None:
        """The recipient this subject proved with a code typed back in the last ``within``."""
        with session_scope(self.engine) as db:
            return db.scalar(select(VerificationCode.recipient).where(
                VerificationCode.purpose == purpose, VerificationCode.subject == subject,
                VerificationCode.verified_at > self.now() - within)
                .order_by(VerificationCode.verified_at.desc()).limit(1))

    def _latest(self, db, purpose: str, subject: str, *, lock: bool = False) -> VerificationCode | None:
        stmt = (select(VerificationCode).where(
            VerificationCode.purpose == purpose, VerificationCode.subject == subject,
            VerificationCode.verified_at.is_(None), VerificationCode.superseded_at.is_(None))
            .order_by(VerificationCode.id.desc()).limit(1))
        return db.scalars(stmt.with_for_update() if lock else stmt).first()
