"""Authorisation: who may see which event, and which channels a caller may join.

This module alone decides visibility. Everything is expressed as channels:

* a connection joins its role's channels on connect (admin and service:
  ``appointments:all`` + ``availability:global``; dentist N:
  ``appointments:dentist:N`` + ``availability:dentist:N``; patient N:
  ``appointments:patient:N``) and may add more with ``subscribe``;
* an event names the channels it belongs to (:func:`event_channels`);
* a connection receives an event when the two sets meet — once, however many
  channels match — in the view its role and ids allow (:func:`view_for`: a visit
  moved away from someone reaches them as "moved away", with nothing of what it became).
"""

from __future__ import annotations

import json
from typing import Any

from bot.events import PEOPLE_ONLY_EVENTS, WAITLIST_OFFER
from bot.tokens import Identity

from . import outbox
from .outbox import OutboxEvent

ALL_APPOINTMENTS = "appointments:all"
GLOBAL_AVAILABILITY = "availability:global"
ANY_DENTIST_AVAILABILITY = "availability:dentist:*"  # clinic-wide availability: every dentist channel

MAX_SUBSCRIBE_BYTES = 512
MAX_ID = 2**63 - 1
TOPICS = ("availability", "appointments")
_KEYS = frozenset({"topic", "dentist_id", "patient_id", "global"})


def availability_dentist(dentist_id: int) -> str:
    return f"availability:dentist:{dentist_id}"


def appointments_dentist(dentist_id: int) -> str:
    return f"appointments:dentist:{dentist_id}"


def appointments_patient(patient_id: int) -> str:
    return f"appointments:patient:{patient_id}"


def role_channels(who: Identity) -> tuple[str, ...]:
    """What a connection sees with no extra call, by role."""
    if who.role in ("admin", "service"):
        return (ALL_APPOINTMENTS, GLOBAL_AVAILABILITY)
    if who.role == "dentist" and who.dentist_id:
        return (appointments_dentist(who.dentist_id), availability_dentist(who.dentist_id))
    if who.role == "patient" and who.patient_id:
        return (appointments_patient(who.patient_id),)
    return ()


def event_channels(ev: OutboxEvent) -> tuple[str, ...]:
    """Every channel an event is published to (the previous dentist/patient of a moved visit too)."""
    if ev.is_availability:
        if ev.dentist_id is None:
            return (GLOBAL_AVAILABILITY, ANY_DENTIST_AVAILABILITY)
        return (GLOBAL_AVAILABILITY, availability_dentist(ev.dentist_id))
    chans = [ALL_APPOINTMENTS]
    for dentist in {ev.dentist_id, ev.prev_dentist_id}:
        if dentist is not None:
            chans.append(appointments_dentist(dentist))
    for patient in {ev.patient_id, ev.prev_patient_id}:
        if patient is not None:
            chans.append(appointments_patient(patient))
    return tuple(chans)


def view_for(who: Identity, ev: OutboxEvent) -> str | None:
    """Which view of ``ev`` a connection that receives it gets (None: none at all).

    A visit moved to another dentist or patient (or both, in one statement) is a different
    visit for each side: whoever saw it before and not after gets ``left`` (its id, what it
    was — ``previous`` — and ``moved_away``, nothing of what it became); whoever sees it only
    after gets ``entered`` (the visit as it now is, without ``previous``: until then it was
    someone else's). Admin and service tokens, and whoever sees it on both sides, get the
    whole event. A ``reminder_sent`` or ``waitlist_changed`` is for people (admins, the dentist and
    patient it names), not for the action server, which has nothing to do with it; a
    ``waitlist_offer`` is for the patient offered alone.
    """
    if ev.type in PEOPLE_ONLY_EVENTS and who.role == "service":
        return None
    if ev.type == WAITLIST_OFFER:  # the offered patient's alone
        return outbox.FULL if who.role == "patient" and who.patient_id == ev.patient_id else None
    if ev.is_availability or who.role in ("admin", "service"):
        return outbox.FULL
    if who.role == "dentist":
        mine, now, before = who.dentist_id, ev.dentist_id, ev.prev_dentist_id
    elif who.role == "patient":
        mine, now, before = who.patient_id, ev.patient_id, ev.prev_patient_id
    else:
        return None
    if before is None:  # an insert or a delete: its dentist and patient are its only parties
        before = now
    if now == mine:
        return outbox.FULL if before == mine else outbox.ENTERED
    return outbox.LEFT if before == mine else None


def may_join(who: Identity, channel: str) -> bool:
    """The rights check for an explicit subscription."""
    if channel.startswith("availability:"):
        return True  # availability carries no patient data
    if who.role in ("admin", "service"):
        return True
    if who.role == "dentist":
        return channel == appointments_dentist(who.dentist_id or 0)
    if who.role == "patient":
        return channel == appointments_patient(who.patient_id or 0)
    return False


class SubscribeError(ValueError):
    """A subscribe/unsubscribe request that is refused; ``code`` is stable, the message is for humans."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code

    def ack(self) -> dict[str, Any]:
        return {"ok": False, "error": self.code, "message": str(self)}


def _positive_id(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise SubscribeError("invalid_payload", f"{key} must be a positive integer")
    return value


def channel_for(who: Identity, request: Any) -> str:
    """The channel a subscribe/unsubscribe request names, after shape and rights checks."""
    if not isinstance(request, dict):
        raise SubscribeError("invalid_payload", "expected an object such as {\"topic\": \"availability\"}")
    try:
        size = len(json.dumps(request))
    except (TypeError, ValueError, RecursionError):
        raise SubscribeError("invalid_payload", "the request is not plain JSON") from None
    if size > MAX_SUBSCRIBE_BYTES:
        raise SubscribeError("payload_too_large", f"requests are limited to {MAX_SUBSCRIBE_BYTES} bytes")
    unknown = set(request) - _KEYS
    if unknown:
        raise SubscribeError("invalid_payload", f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    topic = request.get("topic")
    if topic not in TOPICS:
        raise SubscribeError("unknown_topic", f"topic must be one of {', '.join(TOPICS)}")
    # identity, not equality: 0 == False and 1 == True, but dentist_id 0 and "global": 1 are invalid
    named = [k for k in ("dentist_id", "patient_id", "global")
             if request.get(k) is not None and request.get(k) is not False]
    if len(named) > 1:
        raise SubscribeError("invalid_payload", "name one of dentist_id, patient_id or global")
    if "global" in request and request["global"] is not True and request["global"] is not False:
        raise SubscribeError("invalid_payload", "global must be true")

    if topic == "availability":
        if named == ["global"]:
            channel = GLOBAL_AVAILABILITY
        elif named == ["dentist_id"]:
            channel = availability_dentist(_positive_id(request["dentist_id"], "dentist_id"))
        elif who.role == "dentist" and not named:
            channel = availability_dentist(who.dentist_id or 0)
        else:
            raise SubscribeError("invalid_payload", "availability needs dentist_id or global: true")
    else:
        if named == ["global"]:
            channel = ALL_APPOINTMENTS
        elif named == ["dentist_id"]:
            channel = appointments_dentist(_positive_id(request["dentist_id"], "dentist_id"))
        elif named == ["patient_id"]:
            channel = appointments_patient(_positive_id(request["patient_id"], "patient_id"))
        elif not named:  # the caller's own appointments
            own = role_channels(who)
            channel = own[0] if own else ""
        else:  # pragma: no cover - every combination is handled above
            raise SubscribeError("invalid_payload", "unsupported request")
    if not may_join(who, channel):
        raise SubscribeError("forbidden", f"{who.role} may not subscribe to {channel}")
    return channel
