"""The code step: a chat that is not signed in proves the phone before anything is written.

After the patient says yes to the summary, a 6-digit code is texted to the phone (the one typed
for a booking, the one on file for a visit being moved or cancelled) and the write waits for it
to be typed back (``verification_code``, the last slot of the booking, reschedule and cancel
forms). Asked once: a conversation that typed a code back for that phone within
CHAT_VERIFIED_MINUTES is not asked again, and a signed-in patient never. At the code question:
- the code ("123456", "it's 123 456") → checked (bot/otp.py); right: the write happens;
  wrong: the tries left are said; after five, or once expired, a new code is sent;
- "resend", "I didn't get it" → a new code (not within VERIFICATION_RESEND_SECONDS of the last);
- "wrong number" → the phone question again (a booking), or a new number typed with it is
  taken at once and the code goes there;
- anything else → the usual escalation (actions/asking.py), which never loops.
A code that cannot be sent (a limit, the SMS provider down) ends the request with the front desk's
number; nothing is written without a code.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.otp import CodeOutcome, CodeResult, code_in
from bot.phone import InvalidPhone, display_phone, normalise_phone

from .asking import escalated_this_turn, latest_text, not_understood
from .caller import Caller
from .common import guarded
from .gateway import Gateway, get_gateway
from .session import caller
from .understanding import phone_in

RESEND = re.compile(r"\b(re-?send|send (it |me )?(again|another|a new)|new code|another code|"
                    r"(didn'?t|did not|haven'?t|have not|never|not) (get|got|receive|received|come|arrive)|"
                    r"no code|nothing came|where is (the|my) code)\b", re.IGNORECASE)
WRONG_NUMBER = re.compile(r"\b(wrong (phone |mobile |cell )?(number|phone)|not my (phone|number)|"
                          r"(change|different|other|new) (phone |mobile |cell )?number|"
                          r"(use|try) (another|a different) number|typo in (the|my) number)\b", re.IGNORECASE)
# the slot that says this turn's validation already spoke about the code (the ask action is quiet)
SAID = "code_status"


def masked(e164: str) -> str:
    """``(212) 555-0101`` shown as ``(•••) •••-0101`` in the chat: the code says where it went."""
    shown = display_phone(e164)
    digits = [i for i, c in enumerate(shown) if c.isdigit()]
    keep = set(digits[-4:])
    return "".join(c if (not c.isdigit() or i in keep) else "•" for i, c in enumerate(shown))


def said_this_turn(tracker: Tracker) -> bool:
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return False
        if event.get("event") == "slot" and event.get("name") == SAID:
            return True
    return False


def send_code(dispatcher: CollectingDispatcher, gw: Gateway, who: Caller, phone: str, *,
              again: bool = False) -> dict[str, Any]:
    """Text a new code to ``phone`` and say so; slot values for the validation's output."""
    try:
        result = gw.send_code(who, phone)
    except InvalidPhone:
        dispatcher.utter_message(response="utter_invalid_phone")
        return {"phone": None, "verification_code": None, SAID: "invalid_phone"}
    return announce_code(dispatcher, gw, result, again=again)


def announce_code(dispatcher: CollectingDispatcher, gw: Gateway, result: CodeResult, *,
                  again: bool = False) -> dict[str, Any]:
    where = masked(result.recipient) if result.recipient else "your phone"
    minutes = gw.settings.verification_code_minutes
    if result.outcome is CodeOutcome.SENT:
        dispatcher.utter_message(response="utter_code_resent" if again else "utter_code_sent", where=where,
                                 minutes=minutes)
        return {"verification_code": None, SAID: "sent"}
    if result.outcome is CodeOutcome.TOO_SOON:
        dispatcher.utter_message(response="utter_code_too_soon", where=where, seconds=result.retry_after or 30)
        return {"verification_code": None, SAID: "too_soon"}
    # a limit, or the sender refused: nothing can be typed back, so the request ends here
    dispatcher.utter_message(response="utter_code_not_sent", phone=gw.settings.clinic_phone)
    return {"verification_code": None, "confirmed": False, "outcome": "failed", SAID: result.outcome.value}


class CodeStep:
    """For a form validation action whose write needs the code. Subclasses say where the code
    goes (``code_recipient``) and do the write (``write``), which returns slot values."""

    def code_recipient(self, gw: Gateway, tracker: Tracker) -> str | None:
        raise NotImplementedError

    def write(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        raise NotImplementedError

    def can_change_number(self) -> bool:
        return False  # only a booking takes a typed phone number; a visit's phone is the one on file

    def confirmed_yes(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        """The patient said yes to the summary: write now, or first send the code."""
        gw = get_gateway()
        who = caller(tracker)
        phone = self.code_recipient(gw, tracker)
        if not gw.needs_code(who, phone):
            return self.write(dispatcher, tracker)
        if not phone:
            dispatcher.utter_message(response="utter_code_no_phone", phone=gw.settings.clinic_phone)
            return {"confirmed": False, "outcome": "failed"}
        return {"confirmed": True, **send_code(dispatcher, gw, who, phone)}

    def validate_verification_code(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                   domain: dict) -> dict[str, Any]:
        if value is None:
            return {"verification_code": None}
        # (validated only when it changed this turn: "ok" here is what the patient typed, not a
        # code typed back, which only this method records, after the write)
        gw = get_gateway()
        who = caller(tracker)
        text = latest_text(tracker) or str(value)
        phone = self.code_recipient(gw, tracker)
        if not gw.needs_code(who, phone):  # proved meanwhile (another tab of this chat): write
            return {"verification_code": "ok", **self.write(dispatcher, tracker)}
        typed = code_in(text)
        if typed is None:
            return self.not_a_code(dispatcher, tracker, gw, who, text, phone)
        result = gw.check_code(who, typed)
        if result.outcome is CodeOutcome.VERIFIED and result.recipient != phone:
            # the code of another number than the one the write is for (the phone changed since):
            # it proves that number only; the code goes to this one
            return send_code(dispatcher, gw, who, phone or "")
        if result.outcome is CodeOutcome.VERIFIED:
            dispatcher.utter_message(response="utter_code_ok")
            return {"verification_code": "ok", SAID: "verified", **self.write(dispatcher, tracker)}
        if result.outcome is CodeOutcome.WRONG:
            dispatcher.utter_message(response="utter_code_wrong", tries=result.tries_left,
                                     tries_word="try" if result.tries_left == 1 else "tries")
            return {"verification_code": None, SAID: "wrong"}
        if result.outcome in (CodeOutcome.LOCKED, CodeOutcome.EXPIRED, CodeOutcome.NO_CODE):
            dispatcher.utter_message(response="utter_code_locked" if result.outcome is CodeOutcome.LOCKED
                                     else "utter_code_expired")
            return send_code(dispatcher, gw, who, phone or "", again=True)
        return {"verification_code": None}

    def not_a_code(self, dispatcher: CollectingDispatcher, tracker: Tracker, gw: Gateway, who: Caller,
                   text: str, phone: str | None) -> dict[str, Any]:
        new_phone = phone_in(text, gw.settings.phone_region) if self.can_change_number() else None
        if new_phone:
            try:
                new_phone = normalise_phone(new_phone, gw.settings.phone_region)
            except InvalidPhone:
                new_phone = None
        pending = gw.pending_code(who)
        sent_to = pending.recipient if pending is not None else phone
        if new_phone and new_phone != sent_to:  # "wrong number, it's 917 555 0199" (Rasa may have set it)
            return {"phone": new_phone, **send_code(dispatcher, gw, who, new_phone)}
        if WRONG_NUMBER.search(text):
            if not self.can_change_number():
                dispatcher.utter_message(response="utter_code_number_on_file", phone=gw.settings.clinic_phone)
                return {"verification_code": None, "confirmed": False, "outcome": "failed", SAID: "on_file"}
            dispatcher.utter_message(response="utter_code_new_number")
            return {"phone": None, "verification_code": None, SAID: "new_number"}
        if RESEND.search(text):
            return send_code(dispatcher, gw, who, phone or "", again=True)
        return {"verification_code": None,
                **not_understood(dispatcher, tracker, "verification_code", "utter_code_not_understood")}


class AskVerificationCode(Action):
    """The code question, unless this turn's validation already said what to do."""

    def name(self) -> str:
        return "action_ask_verification_code"

    @guarded
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list[dict]:
        if said_this_turn(tracker) or escalated_this_turn(tracker):
            return []
        gw = get_gateway()
        pending = gw.pending_code(caller(tracker))
        where = masked(pending.recipient) if pending is not None else "your phone"
        dispatcher.utter_message(response="utter_ask_verification_code", where=where)
        return []


def needs_code_step(gw: Gateway, tracker: Tracker, phone: str | None) -> bool:
    """Whether the form still has the code question ahead: nothing decided yet (no outcome), not
    signed in, and this conversation has not proved ``phone`` lately."""
    return tracker.get_slot("outcome") is None and gw.needs_code(caller(tracker), phone)


def typed_phone(gw: Gateway, tracker: Tracker) -> str | None:
    """The booking's phone number in E.164, or None when it is missing or not a number."""
    try:
        return normalise_phone(tracker.get_slot("phone") or "", gw.settings.phone_region)
    except InvalidPhone:
        return None
