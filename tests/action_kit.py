"""Drive custom actions the way Rasa does: a ``Tracker.from_dict`` snapshot per turn,
a ``CollectingDispatcher``, the real domain, and a gateway on a real (seeded) database
with a pinned clock. ``Chat`` keeps the slots between turns like the Rasa server would.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from ruamel.yaml import YAML

import psycopg

from actions.availability import JOIN_WAITLIST_BUTTON
from actions.cache import AvailabilityCache
from actions.gateway import Gateway, SqlAvailability
from bot.settings import libpq_url

ROOT = Path(__file__).resolve().parent.parent
DOMAIN: dict = YAML(typ="safe").load((ROOT / "domain.yml").read_text())
_ids = itertools.count(1)


def next_weekday(after: datetime, iso_weekday: int, at: time) -> datetime:
    """The first ``iso_weekday`` strictly after ``after``'s date, at local ``at``."""
    day = after.date() + timedelta(days=1)
    while day.isoweekday() != iso_weekday:
        day += timedelta(days=1)
    return datetime.combine(day, at, tzinfo=after.tzinfo)


class FedCache:
    """The action server's availability cache, fed every outbox event before each read, as the
    sync service's stream feeds it in production (there a few milliseconds later; here at once,
    so a test reads what it wrote). Without a running refresher the cache reloads inline."""

    def __init__(self, cache: AvailabilityCache, db_url: str):
        self.cache, self.db_url = cache, db_url

    def _catch_up(self) -> None:
        with psycopg.connect(self.db_url) as conn:
            for (event,) in conn.execute(OUTBOX_EVENTS, (self.cache.last_event_id,)):
                self.cache.apply(event)

    def free_slots(self, *args, **kwargs):
        self._catch_up()
        return self.cache.free_slots(*args, **kwargs)

    def nearest(self, *args, **kwargs):
        self._catch_up()
        return self.cache.nearest(*args, **kwargs)


OUTBOX_EVENTS = ("SELECT (jsonb_build_object('id', id, 'type', type, 'at', created_at) || payload) "
                 "FROM realtime_events WHERE id > %s ORDER BY id")


@contextmanager
def seeded_gateway(engine, settings, now: datetime, source: str) -> Iterator[Gateway]:
    """The seeded clinic at ``now``, its gateway the one every action uses meanwhile."""
    from actions import gateway as gateway_module
    from bot.seed import seed

    seed(engine, settings, today=now.date())
    gateway = make_gateway(engine, settings, now, source)
    gateway_module.use_gateway(gateway)
    try:
        yield gateway
    finally:
        gateway_module.use_gateway(None)


def make_gateway(engine, settings, now: datetime, source: str = "sql") -> Gateway:
    """A gateway at ``now`` whose offers come from SQL or from the production cache."""
    gw = Gateway(engine, settings, clock=lambda: now)
    if source == "cache":
        cache = AvailabilityCache(engine, settings, clock=lambda: now)
        cache.load()
        gw._availability = FedCache(cache, libpq_url(settings.database_url))
    else:
        gw._availability = SqlAvailability(gw.booking)
    return gw


@dataclass
class Turn:
    events: list[dict]
    responses: list[str | None]
    messages: list[dict]

    def slots(self) -> dict[str, Any]:
        return {e["name"]: e["value"] for e in self.events if e.get("event") == "slot"}

    def buttons(self) -> list[dict]:
        """The choices offered (the waitlist's button under every offer of times aside)."""
        return [b for b in self.all_buttons() if b["payload"] != JOIN_WAITLIST_BUTTON["payload"]]

    def all_buttons(self) -> list[dict]:
        return [b for m in self.messages for b in m.get("buttons") or []]


@dataclass
class Chat:
    sender_id: str = "chat-1"
    slots: dict[str, Any] = field(default_factory=dict)
    active_loop: str | None = None
    metadata: dict = field(default_factory=dict)
    latest: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)  # the events of the turns before
    turn_log: list[dict] = field(default_factory=list)  # this turn's slot events so far

    def __post_init__(self) -> None:
        for name, spec in DOMAIN["slots"].items():
            self.slots.setdefault(name, spec.get("initial_value"))
        self.slots.setdefault("requested_slot", None)
        self.say("/greet", "greet")

    def say(self, text: str, intent: str, entities: dict[str, str] | None = None, **slot_values: Any) -> None:
        """A user message; ``slot_values`` are what Rasa's slot mappings extracted from it."""
        if self.latest:  # the turn before becomes history, as in Rasa's tracker
            self.history += [self._user_event()] + self.turn_log
        ents = [{"entity": k, "value": v, "start": i, "end": i + 1}
                for i, (k, v) in enumerate((entities or {}).items())]
        self.latest = {"text": text, "intent": {"name": intent, "confidence": 1.0}, "entities": ents,
                       "metadata": dict(self.metadata), "message_id": f"m{next(_ids)}"}
        self.extracted = dict(slot_values)
        self.turn_log = [{"event": "slot", "name": k, "value": v} for k, v in self.extracted.items()]

    def _user_event(self) -> dict:
        return {"event": "user", "text": self.latest["text"], "parse_data": self.latest,
                "metadata": self.latest["metadata"]}

    def tracker(self) -> Tracker:
        slots = {**self.slots, **self.extracted}
        events = self.history + [self._user_event()] + self.turn_log
        return Tracker.from_dict({
            "sender_id": self.sender_id, "slots": slots, "latest_message": self.latest, "events": events,
            "paused": False, "followup_action": None, "latest_action_name": "action_listen",
            "active_loop": {"name": self.active_loop} if self.active_loop else {},
        })

    async def run(self, action: Action) -> Turn:
        dispatcher = CollectingDispatcher()
        events = await action.run(dispatcher, self.tracker(), DOMAIN)
        self.slots.update(self.extracted)
        self.extracted = {}
        for e in events:
            if e.get("event") == "slot":
                self.slots[e["name"]] = e["value"]
                self.turn_log.append({"event": "slot", "name": e["name"], "value": e["value"]})
            elif e.get("event") == "active_loop":
                self.active_loop = e.get("name")
        return Turn(events, [m.get("response") for m in dispatcher.messages], dispatcher.messages)


def sent_code(db_url: str, recipient: str) -> str:
    """The last code texted to ``recipient``, as the patient reads it (the notifications row)."""
    from bot.otp import last_code_sent

    with psycopg.connect(libpq_url(db_url)) as conn:
        code = last_code_sent(conn, recipient)
    assert code is not None, f"no code was sent to {recipient}"
    return code


def prove_phone(gw: Gateway, chat: "Chat", phone: str) -> None:
    """This conversation typed back a code texted to ``phone`` (E.164), as the code step does."""
    from actions.caller import Caller

    who = Caller(None, False, chat.sender_id)
    assert gw.send_code(who, phone).ok
    assert gw.check_code(who, sent_code(gw.settings.database_url, phone)).ok


async def type_code(chat: "Chat", action: Action, db_url: str, recipient: str, code: str | None = None) -> "Turn":
    """The patient types the code (by default the one texted to ``recipient``) at the code question."""
    typed = code or sent_code(db_url, recipient)
    chat.slots["requested_slot"] = "verification_code"
    chat.say(typed, "inform", verification_code=typed)
    return await chat.run(action)


async def yes_then_code(chat: "Chat", action: Action, db_url: str, phone: str, yes: str = "yes") -> "Turn":
    """The patient says yes to the summary, is texted a code and types it back: the last turn."""
    chat.slots["requested_slot"] = "confirmed"
    chat.say(yes, "affirm", confirmed=True)
    asked = await chat.run(action)
    assert asked.responses == ["utter_code_sent"], asked.responses
    return await type_code(chat, action, db_url, phone)


def without_requested_slot(events: list[dict]) -> list[dict]:
    """A form's events without ``requested_slot`` (rasa-sdk sets it when a form's slots depend on
    the caller, as the code step's does)."""
    return [e for e in events if e.get("name") != "requested_slot"]
