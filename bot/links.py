"""Capability tokens in URLs: a reminder's visit link and a person's calendar feed.

Each kind is an HS256 JWT signed with a secret derived for its purpose alone
(``Settings.derived_secret``) and carrying that purpose as ``aud``. A login token
(``bot.tokens``, signed with JWT_SECRET itself) therefore never opens a link or a feed, and
neither kind signs anyone in: the keys differ, and ``bot.tokens.verify`` refuses any token
with an ``aud`` claim (PyJWT checks it when no audience is expected).

* **Visit link** (``visit-link``): ``appointment_id`` and ``patient_id``, expiring when the visit
  starts (``exp``). It lets its holder see that one visit and confirm or cancel it as that
  patient (the booking service's rules: the cancellation notice holds).
* **Calendar feed** (``calendar-feed``): ``kind`` (``dentist`` or ``patient``), ``id`` and ``gen``,
  the generation of that person's feed URL (``calendar_feeds``, sql/012), with no expiry (calendar
  applications keep the URL for years). A new link for the person raises the generation, and the
  feed refuses a token of any other (sync/feeds.py); a token without ``gen`` is generation 0.
  Changing JWT_SECRET revokes every one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import jwt

from .settings import Settings

ALGORITHM = "HS256"
VISIT_PURPOSE = "visit-link"
FEED_PURPOSE = "calendar-feed"
FEED_KINDS = ("dentist", "patient")
MAX_TOKEN_CHARS = 1024  # ours are about 200; a longer one is refused before it is decoded


class LinkError(ValueError):
    """A link token that is forged, tampered with, of another purpose, or malformed."""


class LinkExpired(LinkError):
    """A genuine visit link whose visit has started."""


@dataclass(frozen=True)
class VisitLink:
    appointment_id: int
    patient_id: int


@dataclass(frozen=True)
class Feed:
    kind: str  # dentist or patient
    id: int
    generation: int = 0


def _sign(purpose: str, claims: dict, settings: Settings) -> str:
    return jwt.encode({**claims, "aud": purpose}, settings.derived_secret(purpose), algorithm=ALGORITHM)


def _claims(purpose: str, token: object, settings: Settings, required: list[str]) -> dict:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise LinkError("not a link token")
    try:
        return jwt.decode(token, settings.derived_secret(purpose), algorithms=[ALGORITHM], audience=purpose,
                          options={"require": ["aud", *required]})
    except jwt.ExpiredSignatureError:  # checked only once the signature holds: a genuine link
        raise LinkExpired("the link has expired") from None
    except jwt.PyJWTError as exc:
        raise LinkError(f"invalid link: {exc}") from None


def _positive(claims: dict, key: str) -> int:
    value = claims.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise LinkError(f"invalid link: {key} must be a positive integer")
    return value


def visit_token(appointment_id: int, patient_id: int, starts_at: datetime, settings: Settings) -> str:
    """The link token of one visit for its patient, valid until the visit starts."""
    return _sign(VISIT_PURPOSE, {"appointment_id": appointment_id, "patient_id": patient_id,
                                 "iat": int(time.time()), "exp": int(starts_at.timestamp())}, settings)


def read_visit_token(token: object, settings: Settings) -> VisitLink:
    claims = _claims(VISIT_PURPOSE, token, settings, ["exp", "appointment_id", "patient_id"])
    return VisitLink(_positive(claims, "appointment_id"), _positive(claims, "patient_id"))


def feed_token(feed: Feed, settings: Settings) -> str:
    if feed.kind not in FEED_KINDS:
        raise ValueError(f"a feed is a dentist's or a patient's, not {feed.kind!r}")
    return _sign(FEED_PURPOSE, {"kind": feed.kind, "id": feed.id, "gen": feed.generation}, settings)


def read_feed_token(token: object, settings: Settings) -> Feed:
    claims = _claims(FEED_PURPOSE, token, settings, ["kind", "id"])
    if claims["kind"] not in FEED_KINDS:
        raise LinkError("invalid link: unknown feed kind")
    generation = claims.get("gen", 0)
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        raise LinkError("invalid link: gen must be a non-negative integer")
    return Feed(claims["kind"], _positive(claims, "id"), generation)


def visit_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/visit/{token}"


def feed_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/feeds/{token}.ics"
