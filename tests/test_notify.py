"""The notifier against a real SMTP server and a real HTTP SMS endpoint: what they receive is
exactly what ``notifications`` records, and a failed delivery is recorded as failed."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from bot.notify import Attachment, ConsoleSender, Message, Notifier, notifier_from
from bot.settings import Settings

from tests.notify_servers import SmsProvider, SmtpServer, free_port


def rows(engine) -> list[dict]:
    with engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(text("SELECT * FROM notifications ORDER BY id"))]


def configured(settings: Settings, **changes) -> Settings:
    return settings.model_copy(update=changes)


def test_smtp_server_receives_exactly_what_is_recorded(engine, settings):
    with SmtpServer() as smtp:
        notifier = notifier_from(engine, configured(settings, email_sender="smtp", smtp_port=smtp.port))
        ics = Attachment("visit.ics", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "text/calendar")
        first = notifier.send(Message("email", "ana@example.com", "See you on Friday.", subject="Reminder",
                                      kind="reminder", attachments=(ics,)))
        second = notifier.send(Message("email", "li@example.com", "Your code is 123456.", kind="verification_code"))
    assert first.ok and second.ok
    recorded = rows(engine)
    assert [(r["recipient"], r["body"], r["status"], r["sender"]) for r in recorded] == [
        ("ana@example.com", "See you on Friday.", "sent", "smtp"),
        ("li@example.com", "Your code is 123456.", "sent", "smtp")]
    assert all(r["sent_at"] is not None and r["sent_at"] >= r["created_at"] for r in recorded)
    assert [(m["To"], m.get_body(("plain",)).get_content().strip()) for m in smtp.messages] == [
        (r["recipient"], r["body"]) for r in recorded]
    assert smtp.messages[0]["Subject"] == "Reminder"
    attached = [p for p in smtp.messages[0].iter_attachments()]
    assert [(p.get_filename(), p.get_content_type()) for p in attached] == [("visit.ics", "text/calendar")]


def test_unreachable_smtp_server_is_recorded_as_failed(engine, settings):
    notifier = notifier_from(engine, configured(settings, email_sender="smtp", smtp_port=free_port(),
                                                notify_timeout_seconds=2))
    sent = notifier.send(Message("email", "ana@example.com", "Hello"))
    assert not sent.ok
    [row] = rows(engine)
    assert row["status"] == "failed" and row["sent_at"] is None and "SMTP" in row["error"]


def test_http_sms_provider_receives_number_and_body_with_its_token(engine, settings):
    with SmsProvider(token="sms-secret") as provider:
        notifier = notifier_from(engine, configured(settings, sms_sender="http", sms_http_url=provider.url,
                                                    sms_http_token="sms-secret"))
        sent = notifier.send(Message("sms", "+12125550101", "Your code is 654321."))
    assert sent.ok
    assert provider.received == [{"to": "+12125550101", "body": "Your code is 654321."}]
    [row] = rows(engine)
    assert (row["channel"], row["recipient"], row["status"], row["sender"]) == ("sms", "+12125550101", "sent", "http")


@pytest.mark.parametrize("status", [401, 500])
def test_sms_provider_refusal_is_recorded_as_failed(engine, settings, status):
    with SmsProvider(status=status, token="right" if status == 401 else None) as provider:
        notifier = notifier_from(engine, configured(settings, sms_sender="http", sms_http_url=provider.url,
                                                    sms_http_token="wrong"))
        sent = notifier.send(Message("sms", "+12125550101", "Hello"))
    assert not sent.ok and str(status) in (sent.error or "")
    [row] = rows(engine)
    assert row["status"] == "failed" and row["sent_at"] is None


def test_console_sender_logs_the_message(engine, caplog):
    notifier = Notifier(engine, {"sms": ConsoleSender()})
    with caplog.at_level("WARNING", logger="bot.notify"):
        assert notifier.send(Message("sms", "+12125550101", "Your code is 111222.")).ok
    assert "+12125550101" in caplog.text and "111222" in caplog.text


def test_a_channel_without_sender_and_an_http_sender_without_url_are_refused(engine, settings):
    with pytest.raises(ValueError, match="no sender"):
        Notifier(engine, {"sms": ConsoleSender()}).send(Message("email", "a@example.com", "x"))
    with pytest.raises(ValueError, match="SMS_HTTP_URL"):
        Settings(database_url=settings.database_url, env="test", jwt_secret="t" * 40, sms_sender="http",
                 _env_file=None)
    assert rows(engine) == []


class Recording:
    name = "recording"

    def __init__(self):
        self.delivered: list[Message] = []

    def deliver(self, message: Message) -> None:
        self.delivered.append(message)


@pytest.mark.parametrize("channel, recipient", [
    ("sms", "2125550101"), ("sms", "+1 212 555 0101"), ("sms", "+1212555010"), ("sms", "ana@example.com"),
    ("sms", ""), ("email", "+12125550101"), ("email", "ana@example"), ("email", "ana smith@example.com"),
    ("email", "ana@example.com\r\nBcc: all@evil.example"), ("email", "ana@example.com, li@example.com")])
def test_a_recipient_that_is_not_of_its_channel_is_refused_before_anything_is_recorded(engine, channel, recipient):
    sender = Recording()
    notifier = Notifier(engine, {"sms": sender, "email": sender})
    expected = "E.164" if channel == "sms" else "one email address"
    with pytest.raises(ValueError, match=expected):
        notifier.send(Message(channel, recipient, "Your code is 123456."))
    assert sender.delivered == [] and rows(engine) == []
    good = "+12125550101" if channel == "sms" else "ana@example.com"
    assert notifier.send(Message(channel, good, "Hello")).ok and [m.recipient for m in sender.delivered] == [good]
