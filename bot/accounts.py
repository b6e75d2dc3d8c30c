"""Staff accounts: Argon2id passwords, adding, re-keying and disabling people, and sign-in with
lockout (the sessions a sign-in opens: ``bot.staff_sessions``; docs/security.md, "Staff accounts").

* Passwords are hashed with ``argon2.PasswordHasher`` (Argon2id, the library's defaults) and
  re-hashed at sign-in when those defaults have moved on (``check_needs_rehash``).
* ``STAFF_LOCKOUT_AFTER`` consecutive failures lock the account for ``STAFF_LOCKOUT_BASE_SECONDS``;
  each further failure after a lock doubles it, up to ``STAFF_LOCKOUT_MAX_SECONDS``. A locked
  account is refused even with the right password, which is then not even checked.
* An email without an account costs the same hash verification (against a dummy hash), gets the
  same answer and locks the same way, so neither the time nor the answer tells which emails have
  accounts. For that, every email's failures are counted by one rule, from the sign-in log: the
  failures of the email's key (stripped, lower-cased: what finds the account) in the last
  ``FAILURE_WINDOW``, since its last success (and an account's last new password). The log
  stores that key, so "desk@clinic " and "ghost@clinic " count alike.
* Every attempt is a row of ``staff_sign_ins`` and one log line; neither holds the password.
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from . import feeds, staff_sessions
from .db import InvalidData, session_scope
from .models import Dentist, StaffSignIn, StaffUser
from .notify import is_email_address
from .settings import Settings

log = logging.getLogger(__name__)

HASHER = PasswordHasher()  # Argon2id with argon2-cffi's defaults (RFC 9106's second recommendation)
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(18))  # what an unknown email is checked against
MAX_PASSWORD_CHARS = 1024
FAILURE_WINDOW = timedelta(hours=24)  # failed sign-ins of an email counted this far back
FAILURES = ("wrong_password", "unknown_email", "disabled")  # an attempt refused while locked is none
ROLES = ("admin", "dentist")


class AccountError(ValueError):
    """An operator's request that cannot be done (an unknown email, a duplicate, a short password)."""


@dataclass(frozen=True)
class StaffAccount:
    id: int
    email: str
    full_name: str
    role: str
    dentist_id: int | None

    @classmethod
    def of(cls, user: StaffUser) -> "StaffAccount":
        return cls(user.id, user.email, user.full_name, user.role, user.dentist_id)


@dataclass(frozen=True)
class SignInResult:
    outcome: Literal["ok", "refused", "locked"]
    account: StaffAccount | None = None
    retry_after: int | None = None  # seconds, when locked
    session: tuple[str, staff_sessions.SignedIn] | None = None  # (cookie id, who) when asked to open one


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def check_password(password: str, settings: Settings) -> None:
    if not isinstance(password, str) or len(password) < settings.staff_password_min_chars:
        raise AccountError(f"the password must have at least {settings.staff_password_min_chars} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"the password must have at most {MAX_PASSWORD_CHARS} characters")


def normalise_email(email: str) -> str:
    value = email.strip().lower()
    if not is_email_address(value):
        raise AccountError(f"not an email address: {email!r}")
    return value


def lock_seconds(failures: int, settings: Settings) -> int | None:
    """How long ``failures`` consecutive failures lock an account (None: not locked)."""
    over = failures - settings.staff_lockout_after
    if over < 0:
        return None
    return min(settings.staff_lockout_base_seconds * 2 ** min(over, 40), settings.staff_lockout_max_seconds)


def _user(s: Session, email: str, *, lock: bool = False) -> StaffUser | None:
    q = select(StaffUser).where(func.lower(StaffUser.email) == email.strip().lower())
    return s.scalars(q.with_for_update() if lock else q).one_or_none()


def _known(s: Session, email: str) -> StaffUser:
    user = _user(s, email, lock=True)
    if user is None:
        raise AccountError(f"no staff account with email {email.strip()!r}")
    return user


# --- what an operator does (python -m bot user ...) ----------------------------------------------

def add_user(engine: Engine, settings: Settings, email: str, role: str, password: str, *,
             dentist_id: int | None = None, full_name: str | None = None) -> StaffAccount:
    email = normalise_email(email)
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if (role == "dentist") != (dentist_id is not None):
        raise AccountError("a dentist's account needs --dentist-id; an admin's has none")
    check_password(password, settings)
    name = (full_name or "").strip()
    if len(name) > 200:
        raise AccountError("the name must have at most 200 characters")
    try:
        with session_scope(engine) as s:
            if _user(s, email) is not None:
                raise AccountError(f"a staff account with email {email!r} already exists")
            if dentist_id is not None:
                dentist = s.get(Dentist, dentist_id)
                if dentist is None:
                    raise AccountError(f"no dentist with id {dentist_id}")
                name = name or dentist.full_name
            user = StaffUser(email=email, full_name=name or email, role=role, dentist_id=dentist_id,
                             password_hash=hash_password(password))
            s.add(user)
            s.flush()
            log.info("staff account %d added: %s (%s)", user.id, email, role)
            return StaffAccount.of(user)
    except InvalidData as exc:  # two operators adding the same email at once
        raise AccountError(f"the account was refused: {exc}") from None


def set_password(engine: Engine, settings: Settings, email: str, password: str) -> int:
    """A new password (and the lockout lifted); every open session of that person ends. Returns how many."""
    check_password(password, settings)
    with session_scope(engine) as s:
        user = _known(s, email)
        user.password_hash = hash_password(password)
        user.password_changed_at = datetime.now(timezone.utc)
        user.failed_attempts, user.locked_until = 0, None
        ended = _end_access(s, user)
        log.info("staff account %d: new password; %d session(s) ended", user.id, ended)
        return ended


def disable_user(engine: Engine, email: str) -> int:
    """The person can no longer sign in; every open session ends. Returns how many."""
    with session_scope(engine) as s:
        user = _known(s, email)
        user.active = False
        ended = _end_access(s, user)
        log.info("staff account %d disabled; %d session(s) ended", user.id, ended)
        return ended


def _end_access(s: Session, user: StaffUser) -> int:
    """End what a sign-in of ``user`` handed out: its sessions, and a dentist's calendar feed URL
    (whoever held the sign-in may have kept it; the dentist's pages show the new one). Returns
    the sessions ended."""
    if user.role == "dentist" and user.dentist_id is not None:
        feeds.renew_in(s, "dentist", user.dentist_id)
    return staff_sessions.end_all(s, user.id)


# --- sign-in -------------------------------------------------------------------------------------

def _verify(hashed: str, password: str) -> bool:
    try:
        return HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def _failures(s: Session, key: str, since: datetime) -> tuple[int, datetime | None]:
    """The failed sign-ins of ``key`` after ``since`` and its last success, and the latest one."""
    mine = func.lower(StaffSignIn.email) == key
    last_ok = s.scalar(select(func.max(StaffSignIn.at)).where(mine, StaffSignIn.success))
    count, last = s.execute(select(func.count(), func.max(StaffSignIn.at)).where(
        mine, StaffSignIn.reason.in_(FAILURES), StaffSignIn.at > max(since, last_ok or since))).one()
    return int(count), last


def authenticate(engine: Engine, settings: Settings, email: object, password: object,
                 client: str | None, *, open_session: bool = False, user_agent: str | None = None) -> SignInResult:
    """Check one sign-in attempt, count it towards the lockout and log it; with ``open_session``,
    a right one opens the staff session in the same transaction (see staff_sessions.open_in)."""
    secret = password if isinstance(password, str) else ""
    key = staff_sessions.clip(email, 320).strip().lower()[:320]  # lower() may lengthen it
    now = datetime.now(timezone.utc)
    with session_scope(engine) as s:
        # one attempt per email at a time, so parallel guesses cannot slip past the count
        s.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 7007))"), {"k": "staff:" + key})
        user = _user(s, key, lock=True) if key else None
        since = now - FAILURE_WINDOW
        if user is not None and user.password_changed_at > since:
            since = user.password_changed_at
        failures, last = _failures(s, key, since)
        seconds = lock_seconds(failures, settings)
        locked_until = last + timedelta(seconds=seconds) if seconds and last else None
        if locked_until is not None and locked_until > now:
            _verify(_DUMMY_HASH, secret)  # the same cost as any other answer
            return _record(s, key, user, "locked", client,
                           SignInResult("locked", retry_after=math.ceil((locked_until - now).total_seconds())))
        right = _verify(user.password_hash if user else _DUMMY_HASH, secret)
        if user is not None and right and user.active:
            user.failed_attempts, user.locked_until = 0, None
            if HASHER.check_needs_rehash(user.password_hash):
                user.password_hash = hash_password(secret)
            opened = staff_sessions.open_in(s, settings, user, user_agent=user_agent, client=client) \
                if open_session else None
            return _record(s, key, user, "ok", client, SignInResult("ok", StaffAccount.of(user), session=opened))
        reason = "unknown_email" if user is None else ("disabled" if not user.active else "wrong_password")
        seconds = lock_seconds(failures + 1, settings)
        if user is not None:
            user.failed_attempts = failures + 1
            user.locked_until = now + timedelta(seconds=seconds) if seconds else None
        result = SignInResult("locked", retry_after=seconds) if seconds else SignInResult("refused")
        return _record(s, key, user, reason, client, result)


def _record(s: Session, key: str, user: StaffUser | None, reason: str, client: str | None,
            result: SignInResult) -> SignInResult:
    s.add(StaffSignIn(email=key, user_id=user.id if user else None, success=reason == "ok", reason=reason,
                      client=staff_sessions.clip(client, 100) or None))
    level = logging.INFO if reason == "ok" else logging.WARNING
    log.log(level, "staff sign-in %s: email=%r account=%s client=%s%s", reason, key,
            user.id if user else "-", client or "-",
            f"; locked for {result.retry_after}s" if result.outcome == "locked" else "")
    return result
