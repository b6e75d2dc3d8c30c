"""Tokens and settings: what is accepted, what is refused and why."""

from __future__ import annotations

import time

import jwt
import pytest

from bot.settings import DEV_JWT_SECRET, Settings, normalise_database_url
from bot.tokens import TokenError, mint, verify

S = Settings(jwt_secret="s" * 40, env="test", _env_file=None)
OTHER = Settings(jwt_secret="o" * 40, env="test", _env_file=None)


@pytest.mark.parametrize("role,ident,claims", [
    ("admin", None, {"role": "admin", "sub": "admin"}),
    ("dentist", "3", {"role": "dentist", "sub": "dentist:3", "dentist_id": 3}),
    ("patient", 7, {"role": "patient", "sub": "patient:7", "patient_id": 7}),
    ("service", "actions", {"role": "service", "sub": "service:actions"}),
])
def test_round_trip(role, ident, claims):
    token = mint(role, ident, settings=S)
    decoded = jwt.decode(token, S.jwt_secret, algorithms=["HS256"])
    assert {k: decoded[k] for k in claims} == claims
    assert decoded["exp"] - decoded["iat"] == S.jwt_ttl_minutes * 60
    who = verify(token, settings=S)
    assert (who.role, who.sub, who.dentist_id, who.patient_id) == (
        role, claims["sub"], claims.get("dentist_id"), claims.get("patient_id"))


@pytest.mark.parametrize("role,ident", [("dentist", None), ("patient", "x"), ("patient", 0), ("service", " "),
                                        ("root", None)])
def test_mint_refuses_impossible_claims(role, ident):
    with pytest.raises(TokenError):
        mint(role, ident, settings=S)


def _raw(claims: dict, secret: str = S.jwt_secret, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


@pytest.mark.parametrize("token,reason", [
    (None, "missing token"),
    ("", "missing token"),
    ("not-a-jwt", "invalid token"),
    (mint("admin", settings=OTHER), "invalid token signature"),
    (mint("admin", settings=S, now=time.time() - 10 * 24 * 3600), "token expired"),
    (_raw({"sub": "x", "role": "admin"}), "invalid token"),                       # no exp
    (_raw({"sub": "x", "role": "root", "exp": time.time() + 86400}), "unknown role"),
    (_raw({"sub": "p", "role": "patient", "exp": time.time() + 86400}), "carries patient_id"),
    (_raw({"sub": "p", "role": "patient", "patient_id": "7", "exp": time.time() + 86400}), "positive integer"),
    (_raw({"sub": "p", "role": "patient", "patient_id": True, "exp": time.time() + 86400}), "positive integer"),
    (_raw({"sub": "x", "role": "admin", "exp": time.time() + 86400}, secret="s" * 64, alg="HS512"), "invalid token"),
])
def test_verify_refuses_with_a_reason(token, reason):
    with pytest.raises(TokenError, match=reason):
        verify(token, settings=S)


def test_alg_none_is_refused():
    forged = jwt.encode({"sub": "admin", "role": "admin", "exp": time.time() + 86400}, key=None, algorithm="none")
    with pytest.raises(TokenError):
        verify(forged, settings=S)


def test_production_refuses_the_development_secret():
    with pytest.raises(ValueError, match="placeholder"):
        Settings(env="production", _env_file=None)
    with pytest.raises(ValueError, match="at least 32"):
        Settings(env="production", jwt_secret="short", _env_file=None)
    assert Settings(env="development", _env_file=None).jwt_secret == DEV_JWT_SECRET


@pytest.mark.parametrize("raw", ["postgres://u:p@h:1/d", "postgresql://u:p@h:1/d",
                                 "postgresql+psycopg2://u:p@h:1/d", "postgresql+psycopg://u:p@h:1/d"])
def test_database_url_is_normalised(raw):
    assert normalise_database_url(raw) == "postgresql+psycopg://u:p@h:1/d"
    assert Settings(database_url=raw, _env_file=None).database_url == "postgresql+psycopg://u:p@h:1/d"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="PostgreSQL URL"):
        Settings(database_url="mysql://x/y", _env_file=None)
    with pytest.raises(ValueError, match="unknown time zone"):
        Settings(clinic_timezone="Mars/Olympus", _env_file=None)


def test_turning_chat_verification_off_warns_that_the_chat_books_without_a_code(caplog):
    with caplog.at_level("WARNING", logger="bot.settings"):
        Settings(jwt_secret="s" * 40, _env_file=None)
        assert not caplog.records  # on by default: nothing to warn about
        Settings(jwt_secret="s" * 40, chat_verification=False, _env_file=None)
    [record] = caplog.records
    assert record.levelname == "WARNING" and record.name == "bot.settings"
    assert record.getMessage().startswith("CHAT_VERIFICATION is off") and "kiosk" in record.getMessage()
