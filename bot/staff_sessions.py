"""Staff sessions: what a successful sign-in opens (the sync service's cookie; docs/security.md).

A session id is 32 random bytes from ``secrets`` (URL-safe base64 in the cookie); the database
keeps only its SHA-256, so reading ``staff_sessions`` signs nobody in. A session lasts
``STAFF_SESSION_MINUTES`` from sign-in (no sliding: a working day, then sign in again); a
disabled person's sessions, and every session of someone whose password changed, are deleted.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .db import session_scope
from .models import StaffSessionRow, StaffUser
from .settings import Settings
from .tokens import Identity

MAX_SESSION_ID_CHARS = 100  # ours are 43; anything longer is not one of ours
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often


@dataclass(frozen=True)
class SignedIn:
    """Who a valid session belongs to, and the CSRF token their page sends back on writes."""
    user_id: int
    email: str
    full_name: str
    role: str
    dentist_id: int | None
    csrf_token: str
    expires_at: datetime

    @property
    def identity(self) -> Identity:
        return Identity(role=self.role, sub=f"staff:{self.user_id}", dentist_id=self.dentist_id,
                        name=self.full_name)


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def _signed_in(user: StaffUser, row: StaffSessionRow) -> SignedIn:
    return SignedIn(user.id, user.email, user.full_name, user.role, user.dentist_id, row.csrf_token,
                    row.expires_at)


def open_in(s: Session, settings: Settings, user: StaffUser, *, user_agent: str | None = None,
            client: str | None = None) -> tuple[str, SignedIn]:
    """A new session for ``user`` (the id for the cookie, who it signs in), in the caller's
    transaction: a sign-in (bot.accounts.authenticate) opens it in the one that checked the
    password with the account's row locked, so a ``user passwd`` either comes first (the old
    password is refused) or after (and ends this session too)."""
    session_id = secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    s.execute(delete(StaffSessionRow).where(StaffSessionRow.expires_at <= now))  # the expired ones
    row = StaffSessionRow(id_hash=digest(session_id), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
                          created_at=now, last_seen_at=now,
                          expires_at=now + timedelta(minutes=settings.staff_session_minutes),
                          user_agent=clip(user_agent, 300) or None, client=clip(client, 100) or None)
    s.add(row)
    s.flush()
    return session_id, _signed_in(user, row)


def lookup(engine: Engine, session_id: object) -> SignedIn | None:
    """Who ``session_id`` signs in, or None (unknown, expired, or the account disabled)."""
    if not isinstance(session_id, str) or not 0 < len(session_id) <= MAX_SESSION_ID_CHARS:
        return None
    now = datetime.now(timezone.utc)
    with session_scope(engine) as s:
        found = s.execute(select(StaffSessionRow, StaffUser).join(StaffUser, StaffUser.id == StaffSessionRow.user_id)
                          .where(StaffSessionRow.id_hash == digest(session_id),
                                 StaffSessionRow.expires_at > now, StaffUser.active)).one_or_none()
        if found is None:
            return None
        row, user = found
        if now - row.last_seen_at > TOUCH_EVERY:
            s.execute(update(StaffSessionRow).where(StaffSessionRow.id_hash == row.id_hash)
                      .values(last_seen_at=now))
        return _signed_in(user, row)


def live(engine: Engine, hashes: set[str]) -> set[str]:
    """Which of these session hashes still sign someone in (not ended, not expired, the account active)."""
    if not hashes:
        return set()
    now = datetime.now(timezone.utc)
    with session_scope(engine) as s:
        return set(s.scalars(select(StaffSessionRow.id_hash).join(StaffUser, StaffUser.id == StaffSessionRow.user_id)
                             .where(StaffSessionRow.id_hash.in_(hashes), StaffSessionRow.expires_at > now,
                                    StaffUser.active)))


def end(engine: Engine, session_id: object) -> bool:
    """Sign out: the session is deleted (its cookie signs nobody in any more)."""
    if not isinstance(session_id, str) or not 0 < len(session_id) <= MAX_SESSION_ID_CHARS:
        return False
    with session_scope(engine) as s:
        return s.execute(delete(StaffSessionRow).where(StaffSessionRow.id_hash == digest(session_id))).rowcount > 0


def end_all(s: Session, user_id: int) -> int:
    """Delete every session of one person, in the caller's transaction; how many there were."""
    return s.execute(delete(StaffSessionRow).where(StaffSessionRow.user_id == user_id)).rowcount


def clip(value: object, limit: int) -> str:
    """Text a client sent, storable (no NUL, no lone surrogate) and cut to ``limit``; "" for a non-string."""
    raw = value if isinstance(value, str) else ""
    return raw.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")[:limit]
