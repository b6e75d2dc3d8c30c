"""Reading and driving conversations through Rasa's REST channel in end-to-end tests."""

from __future__ import annotations

import re
from datetime import datetime

import psycopg

from bot.stack import Stack


def buttons(replies: list[dict]) -> list[dict]:
    return [b for r in replies for b in r.get("buttons", [])]


def text(replies: list[dict]) -> str:
    return " ".join(r.get("text", "") for r in replies)


def slot_buttons(replies):
    return [b for b in buttons(replies) if "slot_choice" in b["payload"]]


def choice_start(button: dict) -> datetime:
    return datetime.fromisoformat(re.search(r'"slot_choice": "([^|]+)\|', button["payload"]).group(1))


def rows(stack: Stack, sql: str, *params):
    with psycopg.connect(stack.db_url) as conn:
        return conn.execute(sql, params).fetchall()


async def offers(stack: Stack, sender: str, request: str) -> list[dict]:
    replies = await stack.say(sender, request)
    found = slot_buttons(replies)
    assert found, f"no slots offered for {request!r}: {text(replies)}"
    return found


async def book_anonymously(stack: Stack, sender: str, button: dict, name: str, phone: str) -> list[dict]:
    """From a chosen slot button to the confirmation question."""
    replies = await stack.say(sender, button["payload"])
    if "name" in text(replies).lower():
        replies = await stack.say(sender, name)
    if "phone" in text(replies).lower():
        replies = await stack.say(sender, phone)
    assert "Shall I book it?" in text(replies), text(replies)
    return replies


def sent_code(stack: Stack, phone: str) -> str:
    """The last code texted to ``phone`` (any spelling): what the patient reads on their phone."""
    from bot.otp import last_code_sent
    from bot.phone import normalise_phone

    with psycopg.connect(stack.db_url) as conn:
        code = last_code_sent(conn, normalise_phone(phone))
    assert code is not None, f"no code was texted to {phone}"
    return code


async def yes_and_code(stack: Stack, sender: str, phone: str, yes: str = "yes") -> list[dict]:
    """Say yes to the summary, then type back the code texted to ``phone``: the replies to the code."""
    asked = await stack.say(sender, yes)
    assert "6-digit code" in text(asked), text(asked)
    return await stack.say(sender, sent_code(stack, phone))
