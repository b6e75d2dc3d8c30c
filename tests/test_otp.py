"""One-time codes against real PostgreSQL: 6 digits, stored only as HMACs, 10 minutes, 5 tries,
resend limits, and the code the SMTP server received is the one that verifies."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from bot.notify import Notifier, notifier_from
from bot.otp import CodeOutcome, Verifier, code_in
from tests.notify_servers import SmtpServer

START = datetime(2026, 12, 2, 15, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += timedelta(**kw)


class Inbox:
    """A sender that keeps what it was given (the channel behind it is tested in test_notify)."""

    name = "inbox"

    def __init__(self):
        self.bodies: list[str] = []

    def deliver(self, message) -> None:
        self.bodies.append(message.body)

    def last_code(self) -> str:
        return re.search(r"\b(\d{6})\b", self.bodies[-1]).group(1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def verifier(engine, settings, clock, inbox) -> Verifier:
    return Verifier(engine, settings, Notifier(engine, {"sms": inbox, "email": inbox}), clock=clock)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_code_is_six_digits_stored_only_as_hmac(verifier, inbox, engine):
    sent = verifier.send("chat", "conv-1", "+12125550101")
    assert sent.outcome is CodeOutcome.SENT
    code = inbox.last_code()
    assert re.fullmatch(r"\d{6}", code)
    with engine.connect() as c:
        stored = c.execute(text("SELECT code_hash, recipient FROM verification_codes")).one()
    assert code not in stored.code_hash and len(stored.code_hash) == 64
    assert verifier.check("chat", "conv-1", code).outcome is CodeOutcome.VERIFIED
    assert verifier.verified("chat", "conv-1", timedelta(minutes=60)) == "+12125550101"


def test_code_of_another_conversation_does_not_verify(verifier, inbox, clock):
    verifier.send("chat", "conv-1", "+12125550101")
    code = inbox.last_code()
    assert verifier.send("chat", "conv-2", "+12125550101").outcome is CodeOutcome.TOO_SOON  # per number
    clock.advance(seconds=31)
    verifier.send("chat", "conv-2", "+12125550101")
    assert verifier.check("chat", "conv-2", code).outcome in (CodeOutcome.WRONG, CodeOutcome.VERIFIED)
    assert verifier.verified("chat", "conv-1", timedelta(minutes=60)) is None
    assert verifier.check("chat", "conv-3", code).outcome is CodeOutcome.NO_CODE


def test_code_expires_after_ten_minutes(verifier, inbox, clock):
    verifier.send("chat", "conv-1", "+12125550101")
    clock.advance(minutes=10, seconds=1)
    assert verifier.check("chat", "conv-1", inbox.last_code()).outcome is CodeOutcome.EXPIRED
    assert verifier.verified("chat", "conv-1", timedelta(minutes=60)) is None
    assert verifier.pending("chat", "conv-1") is None


def test_five_wrong_tries_lock_the_code_even_for_the_right_one(verifier, inbox):
    verifier.send("chat", "conv-1", "+12125550101")
    code = inbox.last_code()
    left = [verifier.check("chat", "conv-1", wrong(code)).tries_left for _ in range(5)]
    assert left == [4, 3, 2, 1, 0]
    assert verifier.check("chat", "conv-1", code).outcome is CodeOutcome.LOCKED
    assert verifier.pending("chat", "conv-1") is None


def test_guesses_typed_at_once_all_count(verifier, inbox):
    verifier.send("chat", "conv-1", "+12125550101")
    code = inbox.last_code()
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(verifier.check("chat", "conv-1", wrong(code))))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.outcome.value for r in results).count("wrong") == 4
    assert verifier.check("chat", "conv-1", code).outcome is CodeOutcome.LOCKED


def test_resend_supersedes_the_old_code_and_waits_its_turn(verifier, inbox, clock):
    verifier.send("chat", "conv-1", "+12125550101")
    old = inbox.last_code()
    assert verifier.send("chat", "conv-1", "+12125550101").outcome is CodeOutcome.TOO_SOON
    clock.advance(seconds=31)
    assert verifier.send("chat", "conv-1", "+12125550101").outcome is CodeOutcome.SENT
    new = inbox.last_code()
    if new != old:
        assert verifier.check("chat", "conv-1", old).outcome is CodeOutcome.WRONG
    assert verifier.check("chat", "conv-1", new).outcome is CodeOutcome.VERIFIED


@pytest.mark.parametrize("field", ["recipient", "client", "subject"])
def test_hourly_limits(verifier, clock, settings, field):
    limit = {"recipient": settings.verification_codes_per_recipient, "client": settings.verification_codes_per_client,
             "subject": settings.verification_codes_per_subject}[field]
    for i in range(limit + 1):
        clock.advance(seconds=31)
        recipient = "+12125550101" if field == "recipient" else f"+1212555{i:04d}"
        subject = "conv-1" if field == "subject" else f"conv-{i}"
        sent = verifier.send("chat", subject, recipient, client="10.0.0.9" if field == "client" else f"10.0.1.{i}")
        if i < limit:
            assert sent.outcome is CodeOutcome.SENT, (i, sent)
    assert sent.outcome is CodeOutcome.TOO_MANY and sent.field == field
    clock.advance(hours=1, seconds=1)
    assert verifier.send("chat", "conv-new", "+12125550101", client="10.0.0.9").outcome is CodeOutcome.SENT


def test_email_code_through_real_smtp_verifies(engine, settings, clock):
    with SmtpServer() as smtp:
        notifier = notifier_from(engine, settings.model_copy(update={"email_sender": "smtp",
                                                                     "smtp_port": smtp.port}))
        verifier = Verifier(engine, settings, notifier, clock=clock)
        assert verifier.send("patient_sign_in", "attempt-1", "ana@example.com", channel="email").ok
    [mail] = smtp.messages
    code = re.search(r"\b(\d{6})\b", mail.get_body(("plain",)).get_content()).group(1)
    assert verifier.check("patient_sign_in", "attempt-1", code).outcome is CodeOutcome.VERIFIED
    with engine.connect() as c:
        assert c.execute(text("SELECT body FROM notifications")).scalar_one() == \
            mail.get_body(("plain",)).get_content().strip()


def test_the_whole_clinic_has_a_ceiling(verifier, settings, clock):
    verifier.settings = settings.model_copy(update={"verification_codes_per_hour": 3})
    sent = [verifier.send("chat", f"conv-{i}", f"+1212555{i:04d}", client=f"10.0.2.{i}").outcome for i in range(4)]
    assert sent == [CodeOutcome.SENT] * 3 + [CodeOutcome.TOO_MANY]


def test_no_code_goes_abroad_unless_its_region_is_listed(verifier, inbox, settings):
    assert verifier.send("chat", "conv-1", "+442079460958").outcome is CodeOutcome.NOT_ALLOWED
    assert verifier.send("chat", "conv-2", "+2521234567").outcome is CodeOutcome.NOT_ALLOWED
    assert inbox.bodies == []
    verifier.settings = settings.model_copy(update={"sms_regions": "US,GB"})
    assert verifier.send("chat", "conv-1", "+442079460958").outcome is CodeOutcome.SENT


def test_no_code_goes_to_a_premium_rate_number(verifier, inbox):
    """+1 900 numbers earn their owner money per text: a flood of them would cost the clinic
    (SMS pumping), so none is sent, even in a region the clinic texts."""
    assert verifier.send("chat", "conv-1", "+19005550123").outcome is CodeOutcome.NOT_ALLOWED
    assert inbox.bodies == []
    assert verifier.send("chat", "conv-2", "+12125550123").outcome is CodeOutcome.SENT


def test_an_ipv6_network_counts_as_one_client(verifier, settings, clock):
    for i in range(settings.verification_codes_per_client):
        clock.advance(seconds=31)
        assert verifier.send("chat", f"conv-{i}", f"+1212555{i:04d}", client=f"2001:db8:1:2::{i + 1:x}").ok
    late = verifier.send("chat", "conv-x", "+12125559999", client="2001:db8:1:2:ffff::1")
    assert late.outcome is CodeOutcome.TOO_MANY and late.field == "client"
    assert verifier.send("chat", "conv-y", "+12125559998", client="2001:db8:1:3::1").ok  # another /64


def test_sign_ins_on_the_page_cannot_use_up_the_chats_codes(verifier, settings, clock):
    for i in range(settings.verification_codes_per_recipient):
        clock.advance(seconds=31)
        assert verifier.send("patient_sign_in", f"attempt-{i}", "+12125550101").ok
    clock.advance(seconds=31)
    assert verifier.send("patient_sign_in", "attempt-x", "+12125550101").outcome is CodeOutcome.TOO_MANY
    assert verifier.send("chat", "conv-1", "+12125550101").ok


@pytest.mark.parametrize("typed, code", [
    ("123456", "123456"), ("my code is 123 456", "123456"), ("code: 123-456.", "123456"),
    (" 004211 ", "004211"), ("12345", None), ("1234567", None), ("+1 212 555 0101", None),
    ("123456 or 654321", None), ("resend", None), ("", None), ("it is 123456, sent at 3", "123456")])
def test_code_in_typed_text(typed, code):
    assert code_in(typed) == code
