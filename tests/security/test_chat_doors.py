"""Every door of the chat side, tried as an outsider on loopback would: Rasa's port, the action
server's port, conversation ids, tokens left behind, floods and a store that goes away.

The shared stack (``make run``'s services, real PostgreSQL: ``chat_stack`` in tests/conftest.py)
with the flood limits set low, so a test reaches them in a few bookings; each test speaks from its
own conversations, and tests that count per client speak from their own loopback address
(127.0.0.x). Rasa's HTTP API with a token is another Rasa: that test starts a stack of its own.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import psycopg
import pytest
import socketio

from bot.stack import Stack
from bot.tokens import mint
from tests.chat_helpers import book_anonymously, offers, rows, sent_code, slot_buttons, text, yes_and_code
from tests.stack_helpers import reconfigured, running_stack

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.usefixtures("trained_model")]

# (one patient books from four conversations within seconds here: the wait between two codes to
# one number, which has tests of its own in tests/test_otp.py, would hold the second code)
# (five codes per client: the client-limit test below asks one for each of its five bookings)
LIMITS = dict(chat_bookings_per_conversation=2, chat_bookings_per_phone=3, chat_bookings_per_client=4,
              chat_holds_per_client=2, verification_resend_seconds=0, verification_codes_per_client=5)
UNAVAILABLE = "the booking system is unavailable"
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


@pytest.fixture(scope="module")
def stack(chat_stack):
    """The shared system (tests/conftest.py) with its action server, which alone enforces the
    flood limits, restarted with ``LIMITS`` for this module."""
    with reconfigured(chat_stack, "actions", **LIMITS) as s:
        yield s


@pytest.fixture(autouse=True)
def fresh_counts(request):
    """Each test starts below every limit: earlier bookings leave the window, holds are released."""
    if "stack" not in request.fixturenames:
        yield
        return
    stack = request.getfixturevalue("stack")
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('chat_bookings')").fetchone()[0]:  # (run on older code, too)
            conn.execute("UPDATE chat_bookings SET created_at = created_at - interval '1 day'")
        conn.execute("DELETE FROM slot_holds")
    yield


def conversation() -> str:
    return f"doors-{uuid.uuid4().hex}"


async def http(method: str, url: str, **kwargs) -> tuple[int, dict, str]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, timeout=aiohttp.ClientTimeout(total=30), **kwargs) as resp:
            return resp.status, dict(resp.headers), await resp.text()


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in list(fh)[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.rsplit(":", 1)
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


# --- what listens where ---------------------------------------------------------------------------

def test_rasa_and_the_action_server_listen_on_loopback_only(stack):
    for name in ("rasa", "actions"):
        assert listening_addresses(stack.services[name].port) == {"0100007F"}, name  # 127.0.0.1


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/status", None), ("GET", "/domain", None),
    ("GET", "/conversations/{victim}/tracker", None),
    ("POST", "/conversations/{victim}/tracker/events",
     [{"event": "slot", "name": "authenticated", "value": True}, {"event": "slot", "name": "patient_id", "value": 1}]),
    ("POST", "/model/parse", {"text": "hi"}),
    ("PUT", "/model", {"model_file": "/tmp/other.tar.gz"}),
])
async def test_rasas_http_api_answers_nothing_without_its_token(stack, method, path, body):
    """Rasa's HTTP API is served (the sync service tells waiting patients' chats of freed slots
    through trigger_intent), but only with RASA_API_TOKEN, derived from JWT_SECRET when unset:
    no token, a wrong one or the actions' token get 401 and nothing else."""
    victim = conversation()
    await stack.say(victim, "hi", {"token": mint("patient", 1, settings=stack.settings)})
    for params in ({}, {"token": "wrong" * 8}, {"token": stack.settings.resolved_actions_token}):
        status, _, answer = await http(method, stack.url("rasa") + path.format(victim=victim), json=body,
                                       params=params)
        assert status == 401, (status, answer[:300])
        assert "patient" not in answer.lower() and "slot" not in answer.lower()


async def test_rasas_version_is_all_it_says_without_a_token(stack):
    """Rasa serves GET /version to anyone (no auth in Rasa itself): the version, nothing else."""
    status, _, answer = await http("GET", stack.url("rasa") + "/version")
    assert status == 200 and set(json.loads(answer)) == {"version", "minimum_compatible_version"}


async def test_cors_names_the_clinics_origins_and_never_echoes_a_strangers(stack):
    url = stack.url("rasa") + "/webhooks/rest/webhook"
    own = f"http://127.0.0.1:{stack.settings.sync_port}"
    for origin, allowed in ((own, True), ("https://evil.example", False)):
        status, headers, _ = await http("OPTIONS", url, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"})
        got = headers.get("Access-Control-Allow-Origin")
        assert (got == origin) is allowed and got != "*", (origin, status, got)


async def test_a_strangers_page_cannot_open_the_chat_socket(stack):
    async with aiohttp.ClientSession() as http_session:
        evil = socketio.AsyncClient(reconnection=False, http_session=http_session)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await evil.connect(stack.url("rasa"), transports=["websocket"],
                               headers={"Origin": "https://evil.example"})
        own = socketio.AsyncClient(reconnection=False, http_session=http_session)
        await own.connect(stack.url("rasa"), transports=["websocket"],
                          headers={"Origin": f"http://localhost:{stack.settings.sync_port}"})
        await own.disconnect()


# --- the action server believes nobody but Rasa ---------------------------------------------------

def forged_call(sender: str, slots: dict, metadata: dict | None = None) -> dict:
    return {"next_action": "action_list_appointments", "sender_id": sender, "version": "3.6.21",
            "domain": {}, "tracker": {
                "sender_id": sender, "slots": slots, "events": [], "paused": False, "followup_action": None,
                "active_loop": {}, "latest_action_name": "action_listen",
                "latest_message": {"text": "my appointments", "intent": {"name": "list_appointments"},
                                   "entities": [], "metadata": metadata or {}}}}


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Bearer "])
async def test_the_action_server_refuses_a_call_without_rasas_secret(stack, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    call = forged_call(conversation(), {"authenticated": True, "patient_id": 1})
    status, _, answer = await http("POST", stack.url("actions") + "/webhook", json=call, headers=headers)
    assert status == 401 and json.loads(answer)["error"] == "unauthorized"
    assert "Cleaning" not in answer and "Dr." not in answer


async def test_slots_in_a_tracker_grant_no_identity_even_with_the_secret(stack):
    """Defence in depth: Rasa itself sent slots saying "signed in as patient 1", no token."""
    call = forged_call(conversation(), {"authenticated": True, "patient_id": 1})
    status, _, answer = await http("POST", stack.url("actions") + "/webhook", json=call,
                                   headers={"Authorization": f"Bearer {stack.settings.resolved_actions_token}"})
    assert status == 200, answer
    said = " ".join(r.get("text") or r.get("response") or "" for r in json.loads(answer)["responses"])
    assert "utter_no_appointments_anonymous" in said or "can't find any upcoming visits" in said, said


# --- identity is the token on this message, and tokens are not kept -------------------------------

async def test_a_message_without_a_token_is_anonymous_in_a_signed_in_conversation(stack):
    sender = conversation()
    token = mint("patient", 1, settings=stack.settings)
    signed = await stack.say(sender, "what are my appointments?", {"token": token})
    assert "Your upcoming visits" in text(signed), text(signed)
    after = await stack.say(sender, "what are my appointments?")
    assert "Your upcoming visits" not in text(after) and "booked in this chat" in text(after), text(after)


async def test_tokens_and_client_addresses_are_never_stored_in_the_tracker_store(stack):
    sender = conversation()
    token = mint("patient", 2, settings=stack.settings)
    await stack.say(sender, "hi", {"token": token})
    await stack.say(sender, "what are my appointments?", {"token": token})
    stored = rows(stack, "SELECT data FROM events WHERE sender_id = %s", sender)
    assert stored, "the conversation was not stored at all"
    assert not [d for (d,) in stored if token in d or "127.0.0.1" in d]


async def test_metadata_a_caller_writes_is_not_passed_on(stack):
    """A caller cannot name its own client address (and so dodge a per-client limit)."""
    sender = conversation()
    await stack.say(sender, "hi", {"client": "10.9.8.7", "patient_id": 1, "authenticated": True})
    stored = " ".join(d for (d,) in rows(stack, "SELECT data FROM events WHERE sender_id = %s", sender))
    assert "10.9.8.7" not in stored and '"patient_id": 1' not in stored


async def test_anonymous_visits_belong_to_the_conversation_that_booked_them(stack):
    owner, stranger = conversation(), conversation()
    offered = await offers(stack, owner, "I'd like a consultation with Dr. Chen next Tuesday")
    await book_anonymously(stack, owner, offered[0], "Olive Owner", "212 555 0301")
    assert "You're booked" in text(await yes_and_code(stack, owner, "212 555 0301"))
    [(appt_id, booked_in)] = rows(stack, "SELECT a.id, c.conversation_id FROM appointments a JOIN patients p ON "
                                  "p.id = a.patient_id JOIN chat_bookings c ON c.appointment_id = a.id "
                                  "WHERE p.phone = '+12125550301'")
    assert booked_in == owner
    theirs = await stack.say(stranger, "what are my appointments?")
    assert f"#{appt_id}" not in text(theirs)
    cancel = await stack.say(stranger, f'/cancel_appointment{{"appointment_id": "{appt_id}"}}')
    if "Shall I cancel" in text(cancel):
        await stack.say(stranger, "yes")
    assert rows(stack, "SELECT status FROM appointments WHERE id = %s", appt_id) == [("pending",)]
    mine = await stack.say(owner, "what are my appointments?")
    assert f"#{appt_id}" in text(mine), text(mine)


async def test_rest_refuses_a_missing_or_unreasonable_sender(stack):
    url = stack.url("rasa") + "/webhooks/rest/webhook"
    for body in ({"message": "hi"}, {"sender": "", "message": "hi"}, {"sender": "x" * 201, "message": "hi"},
                 {"sender": "a\nb", "message": "hi"}, {"sender": 7, "message": "hi"}):
        status, _, answer = await http("POST", url, json=body)
        assert status == 400, (body, status, answer[:200])
    assert rows(stack, "SELECT count(*) FROM events WHERE sender_id = 'default'") == [(0,)]


# --- the web chat's conversation ids are issued by the server ----------------------------------

async def widget(stack: Stack, session_id: str | None = None):
    client = socketio.AsyncClient(reconnection=False)
    confirmed: asyncio.Future = asyncio.get_running_loop().create_future()
    replies: list[dict] = []
    client.on("session_confirm", lambda sid: confirmed.done() or confirmed.set_result(sid))
    client.on("bot_uttered", lambda data: replies.append(data))
    await client.connect(stack.url("rasa"), transports=["websocket"],
                         headers={"Origin": f"http://127.0.0.1:{stack.settings.sync_port}"})
    await client.emit("session_request", {"session_id": session_id})
    return client, await asyncio.wait_for(confirmed, 10), replies


async def test_widget_ids_are_random_signed_and_bound_to_their_socket(stack):
    first, issued, _ = await widget(stack)
    try:
        nonce = issued.split(".")[0]
        assert len(nonce) * 6 >= 128, issued  # base64url characters of randomness
        again, kept, _ = await widget(stack, issued)  # a reload presents the id it was given
        await again.disconnect()
        assert kept == issued
        chosen, forced, _ = await widget(stack, "victim-conversation")  # an id it was not given
        await chosen.disconnect()
        assert forced != "victim-conversation" and forced != issued
        tampered, renewed, _ = await widget(stack, nonce + ".0000")
        await tampered.disconnect()
        assert renewed != nonce + ".0000"
    finally:
        await first.disconnect()


async def test_a_socket_speaks_only_in_its_own_conversation(stack):
    victim = conversation()
    await stack.say(victim, "hi")
    client, own, replies = await widget(stack)
    try:
        await client.emit("user_uttered", {"message": "hello there", "session_id": victim})
        for _ in range(100):
            if replies:
                break
            await asyncio.sleep(0.1)
        assert replies, "no answer on the socket"
    finally:
        await client.disconnect()
    assert rows(stack, "SELECT count(*) FROM events WHERE sender_id = %s AND data LIKE '%%hello there%%'",
                victim) == [(0,)]
    assert rows(stack, "SELECT count(*) FROM events WHERE sender_id = %s AND data LIKE '%%hello there%%'",
                own) != [(0,)]


# --- floods ---------------------------------------------------------------------------------------

async def book(stack: Stack, sender: str, phone: str, request: str, source: str = "127.0.0.1",
               pick: int = 0, guess_wrong: bool = False) -> str:
    """One anonymous booking from ``source``; the bot's last answer. ``guess_wrong``: the code
    typed is not the one texted (a made-up number's owner never tells it)."""
    replies = await stack.say(sender, request, source=source)
    offered = slot_buttons(replies)
    assert offered, text(replies)
    replies = await stack.say(sender, offered[min(pick, len(offered) - 1)]["payload"], source=source)
    if "name" in text(replies).lower():
        replies = await stack.say(sender, "Flo Flood", source=source)
    if "phone" in text(replies).lower():
        replies = await stack.say(sender, phone, source=source)
    if "Shall I book it?" in text(replies):
        replies = await stack.say(sender, "yes", source=source)
    if "6-digit code" in text(replies):  # the phone is proved once per conversation
        code = sent_code(stack, phone)
        replies = await stack.say(sender, f"{(int(code) + 1) % 10**6:06d}" if guess_wrong else code, source=source)
    return text(replies)


def live_visits(stack: Stack, phone: str) -> int:
    return rows(stack, "SELECT count(*) FROM appointments a JOIN patients p ON p.id = a.patient_id "
                       "WHERE p.phone = %s AND a.status <> 'cancelled'", phone)[0][0]


async def test_one_conversation_books_at_most_its_limit(stack):
    sender = conversation()  # the chat remembers the name and phone after the first booking
    answers = [await book(stack, sender, "212 555 0311", f"I would like to book a cleaning with any dentist next {day}",
                          source="127.0.0.11") for day in DAYS[:3]]
    assert ["You're booked" in a for a in answers] == [True, True, False], answers
    assert "booked several visits in a short time" in answers[2] and "555-0142" in answers[2]
    assert live_visits(stack, "+12125550311") == 2


async def test_one_phone_number_books_at_most_its_limit_across_conversations(stack):
    answers = [await book(stack, conversation(), "212 555 0321", f"I would like to book a filling with any dentist next {day}",
                          source=f"127.0.0.{21 + i}") for i, day in enumerate(DAYS[:4])]
    assert ["You're booked" in a for a in answers] == [True, True, True, False], answers
    assert live_visits(stack, "+12125550321") == 3


async def test_one_client_address_books_at_most_its_limit(stack):
    answers = [await book(stack, conversation(), f"212 555 033{i}", f"I would like to book a whitening with any dentist next {day}",
                          source="127.0.0.31") for i, day in enumerate(DAYS)]
    assert ["You're booked" in a for a in answers] == [True, True, True, True, False], answers
    other = await book(stack, conversation(), "212 555 0339",
                       "I would like to book a whitening with any dentist next Friday", source="127.0.0.32")
    assert "You're booked" in other


async def test_made_up_numbers_from_one_client_book_nothing_and_are_texted_few_codes(stack):
    source, limit = "127.0.0.61", stack.settings.verification_codes_per_client
    phones = [f"+1212555{401 + i:04d}" for i in range(limit + 1)]
    answers = []
    for phone in phones:  # each conversation a fresh number, a wrong code, then on to the next
        sender = conversation()
        answers.append(await book(stack, sender, phone, "I would like to book a cleaning with any dentist next Monday",
                                  source=source, guess_wrong=True))
        await stack.say(sender, "stop", source=source)  # its hold goes: the next one is not held back
    assert ["isn't right" in a for a in answers] == [True] * limit + [False], answers
    assert "can't send a code right now" in answers[-1] and "555-0142" in answers[-1], answers[-1]
    assert rows(stack, "SELECT count(*) FROM appointments a JOIN patients p ON p.id = a.patient_id "
                       "WHERE p.phone = ANY(%s)", phones) == [(0,)]
    assert rows(stack, "SELECT count(*) FROM notifications WHERE kind = 'verification_code' AND recipient = ANY(%s)",
                phones) == [(limit,)]


async def test_silent_conversations_of_one_client_hold_at_most_its_limit(stack):
    held = []
    for i in range(3):
        sender = conversation()
        replies = await stack.say(sender, "I would like to book a crown with any dentist next Thursday", source="127.0.0.41")
        replies = await stack.say(sender, slot_buttons(replies)[0]["payload"], source="127.0.0.41")
        held.append(text(replies))
    holds = rows(stack, "SELECT count(*) FROM slot_holds WHERE client = '127.0.0.41'")[0][0]
    assert holds == 2, (holds, held)
    assert "booked several visits in a short time" in held[2], held[2]


async def test_a_new_hold_of_a_conversation_replaces_its_old_one(stack):
    sender = conversation()
    replies = await stack.say(sender, "I would like to book an extraction with any dentist next Monday", source="127.0.0.51")
    offered = slot_buttons(replies)
    await stack.say(sender, offered[0]["payload"], source="127.0.0.51")
    await stack.say(sender, "stop", source="127.0.0.51")
    replies = await stack.say(sender, "I would like to book an extraction with any dentist next Tuesday", source="127.0.0.51")
    await stack.say(sender, slot_buttons(replies)[0]["payload"], source="127.0.0.51")
    assert rows(stack, "SELECT count(*) FROM slot_holds WHERE holder = %s", f"chat:{sender}") == [(1,)]


async def test_one_patient_never_has_two_visits_at_once(stack):
    """Written straight into the database, as any writer could: the constraint refuses it."""
    [(start, end, patient)] = rows(stack, "SELECT starts_at, ends_at, patient_id FROM appointments "
                                          "WHERE status <> 'cancelled' ORDER BY id LIMIT 1")
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        other = conn.execute("SELECT id FROM dentists WHERE id <> (SELECT dentist_id FROM appointments "
                             "WHERE starts_at = %s AND patient_id = %s LIMIT 1) LIMIT 1", (start, patient)).fetchone()[0]
        with pytest.raises(psycopg.errors.ExclusionViolation, match="appointments_patient_no_overlap"):
            conn.execute("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at) "
                         "VALUES (%s, %s, 1, %s, %s)", (patient, other, start, end))


# --- big messages and a store that goes away ------------------------------------------------------

async def test_a_very_long_message_is_answered_without_running_the_model(stack):
    sender = conversation()
    replies = await stack.say(sender, "book a cleaning " * 7000)  # ~110 KB
    assert "too long for me to read" in text(replies)
    assert rows(stack, "SELECT count(*) FROM events WHERE sender_id = %s", sender) == [(0,)]
    limit = stack.settings.chat_max_message_chars
    fits = await stack.say(sender, ("hi " * limit)[:limit])
    assert "too long" not in text(fits)


async def test_no_tracker_store_means_unavailable_and_the_booking_form_survives(stack):
    sender = conversation()
    offered = await offers(stack, sender, "I'd like a root canal with Dr. Patel next Friday")
    name = stack.db_url.rpartition("/")[2]
    admin_url = stack.db_url.rpartition("/")[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    try:
        down = await stack.say(sender, offered[0]["payload"])
        assert UNAVAILABLE in text(down).lower(), text(down)
        assert "didn't quite get that" not in text(down)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    back = await stack.say(sender, offered[0]["payload"])  # the form is where it was: the pick goes on
    assert "name" in text(back).lower(), text(back)


async def test_no_action_server_means_unavailable_and_the_booking_form_survives(stack):
    sender = conversation()
    offered = await offers(stack, sender, "I'd like a crown with Dr. Chen next Wednesday")
    await asyncio.to_thread(stack.kill, "actions")
    try:
        down = await stack.say(sender, offered[0]["payload"])
        assert UNAVAILABLE in text(down).lower(), text(down)
        assert "Sorry, something went wrong" not in text(down)
    finally:
        await asyncio.to_thread(stack.start, "actions")
    back = await stack.say(sender, offered[0]["payload"])
    assert "name" in text(back).lower(), text(back)


async def test_rasas_http_api_answers_only_with_its_token_when_enabled(pg_server, template_db):
    token = "api-" + uuid.uuid4().hex * 2
    with running_stack(pg_server, template_db, "clinic_api", "rasa", rasa_api_token=token) as api:
        assert "--enable-api" not in api.services["rasa"].argv and token not in " ".join(api.services["rasa"].argv)
        status, _, _ = await http("GET", api.url("rasa") + "/status")
        assert status == 401
        status, _, _ = await http("GET", api.url("rasa") + "/status", params={"token": "wrong" * 8})
        assert status == 401
        status, _, body = await http("GET", api.url("rasa") + "/status", params={"token": token})
        assert status == 200 and "model_file" in body
