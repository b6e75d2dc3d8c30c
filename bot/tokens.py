"""HS256 JSON Web Tokens: the claims every service checks.

Claims: ``sub`` (a readable subject such as ``patient:7``), ``role`` (admin,
dentist, patient or service), ``dentist_id`` / ``patient_id`` where the role
has one, ``iat`` and ``exp``. Real deployments mint the same claims from their
own sign-in; ``python -m bot token ...`` mints them for the demo.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from .settings import Settings, get_settings

ROLES = ("admin", "dentist", "patient", "service")
ALGORITHM = "HS256"
MISSING_TOKEN = "missing token"  # the reason given when no token came at all (or no readable one)


class TokenError(ValueError):
    """A token that is missing, malformed, forged, expired or carries impossible claims."""


@dataclass(frozen=True)
class Identity:
    role: str
    sub: str
    dentist_id: int | None = None
    patient_id: int | None = None
    name: str | None = None  # for service tokens


def mint(role: str, ident: int | str | None = None, *, ttl_minutes: int | None = None,
         settings: Settings | None = None, now: float | None = None) -> str:
    """A signed token for ``role``; ``ident`` is the dentist/patient id or the service name."""
    settings = settings or get_settings()
    if role not in ROLES:
        raise TokenError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    issued = int(now if now is not None else time.time())
    claims: dict = {"role": role, "iat": issued,
                    "exp": issued + 60 * (ttl_minutes or settings.jwt_ttl_minutes)}
    if role in ("dentist", "patient"):
        try:
            number = int(ident)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise TokenError(f"a {role} token needs a numeric {role} id") from None
        if number <= 0:
            raise TokenError(f"a {role} id must be positive")
        claims[f"{role}_id"] = number
        claims["sub"] = f"{role}:{number}"
    elif role == "service":
        if not ident or not str(ident).strip():
            raise TokenError("a service token needs a name")
        claims["sub"] = f"service:{str(ident).strip()}"
    else:
        claims["sub"] = f"admin:{ident}" if ident else "admin"
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def verify(token: object, *, settings: Settings | None = None) -> Identity:
    """Check signature, expiry and claims; return who the caller is or raise TokenError."""
    settings = settings or get_settings()
    if not isinstance(token, str) or not token.strip():
        raise TokenError(MISSING_TOKEN)
    try:
        claims = jwt.decode(token.strip(), settings.jwt_secret, algorithms=[ALGORITHM],
                            options={"require": ["exp", "sub", "role"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.InvalidSignatureError:
        raise TokenError("invalid token signature") from None
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid token: {exc}") from None
    role = claims.get("role")
    if role not in ROLES:
        raise TokenError("invalid token: unknown role")
    ids = {}
    for key in ("dentist_id", "patient_id"):
        value = claims.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise TokenError(f"invalid token: {key} must be a positive integer")
        ids[key] = value
    if role in ("dentist", "patient") and ids[f"{role}_id"] is None:
        raise TokenError(f"invalid token: a {role} token carries {role}_id")
    name = claims["sub"].split(":", 1)[1] if role == "service" and ":" in claims["sub"] else None
    return Identity(role=role, sub=str(claims["sub"]), name=name, **ids)
