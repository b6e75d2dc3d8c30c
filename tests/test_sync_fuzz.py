"""Hostile input for the Socket.IO side of the sync service: hypothesis-drawn events, payloads and
connect ``auth`` from real python-socketio clients, and malformed Socket.IO packets as raw
Engine.IO websocket frames, against one real server per test.

Whatever arrives, every acknowledged reply is a valid ``{"ok": true, "channel"}`` for a channel the
role may join or ``{"ok": false, "error", "message"}`` with a documented code; the connection stays
up and keeps working; the service stays healthy; and no role ends up with a channel, or an event,
that is not its own."""

from __future__ import annotations

import asyncio
import gc
import logging
import json
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings as hsettings, strategies as st

from bot.settings import Settings
from sync import keys
from tests.sync_helpers import Clinic, Recorder, http_get, serve, token

pytestmark = pytest.mark.slow

ROLES = {"admin": ("admin", None), "dentist": ("dentist", 1), "patient": ("patient", 1)}
ERRORS = {"invalid_payload", "unknown_topic", "forbidden", "payload_too_large", "too_many_subscriptions",
          "not_subscribed", "role_channel", "unknown_event"}
REFUSALS = ("missing token", "invalid token signature", "token expired", "invalid token: ", "token too large: ",
            "invalid since: ")
SETTINGS = dict(deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])

# --- what a client may send ---------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80) | st.floats()
           | st.text(max_size=30)
           | st.sampled_from(["availability", "appointments", "appointments:all", "availability:global",
                              "<script>alert(1)</script>", "' OR 1=1 --", "\u202eRTL", "مرحبا", "🦷" * 5,
                              "\x00"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["topic", "dentist_id", "patient_id", "global", "x"]) | st.text(max_size=8), inner,
    max_size=4), max_leaves=10)
IDS = st.integers(min_value=-2**70, max_value=2**70) | st.sampled_from(
    [0, 1, 2, 3, 2**63 - 1, 2**63, -1, True, False, "1", 1.0, None, [], {}, float("inf")])
REQUESTS = st.fixed_dictionaries(
    {"topic": st.sampled_from(["availability", "appointments"]) | JSON},
    optional={"dentist_id": IDS, "patient_id": IDS, "global": st.sampled_from([True, False, 1, "true", None]),
              "extra": JSON})
HUGE = st.sampled_from([1_000, 20_000, 200_000]).map(lambda n: {"topic": "availability", "pad": "x" * n})
PAYLOADS = REQUESTS | JSON | HUGE | st.sampled_from(["x" * 200_000, ["topic", "availability"]])
# the arguments of one event: none, one, or too many (the client spreads a tuple over arguments)
ARGS = st.one_of(st.just(()), st.tuples(PAYLOADS), st.tuples(PAYLOADS, JSON), st.tuples(JSON, JSON, JSON))
EVENTS = (st.sampled_from(["subscribe", "unsubscribe"])
          | st.sampled_from(["connect", "disconnect", "message", "*", "SUBSCRIBE", "subscribe ",
                             "resync_required"])
          | st.text(max_size=20))


OWN = {"admin": {"appointments:all", "availability:global"},
       "dentist": {"appointments:dentist:1", "availability:dentist:1"}, "patient": {"appointments:patient:1"}}


def allowed(role: str, channel: str) -> bool:
    """The channels each test role may hold (written out here, independently of sync.rooms)."""
    if role == "admin":
        return channel in ("appointments:all", "availability:global") or channel.startswith(
            ("appointments:dentist:", "appointments:patient:", "availability:dentist:"))
    own = {"dentist": "appointments:dentist:1", "patient": "appointments:patient:1"}[role]
    return channel == own or channel == "availability:global" or channel.startswith("availability:dentist:")


# --- one server, driven from hypothesis's synchronous tests -------------------------------------

@dataclass
class Live:
    loop: asyncio.AbstractEventLoop
    settings: Settings
    url: str
    app: web.Application
    clinic: Clinic
    clients: dict[str, Recorder] = field(default_factory=dict)

    def run(self, coro: Coroutine) -> Any:
        return self.loop.run_until_complete(coro)

    def token(self, role: str) -> str:
        kind, ident = ROLES[role]
        return token(self.settings, kind, ident)

    def healthy(self) -> None:
        status, body = self.run(http_get(f"{self.url}/api/realtime/health"))
        assert status == 200 and body["status"] == "healthy", body

    def channels(self, role: str) -> dict[str, str]:
        """The channels the server holds for this role's connection (REST status)."""
        status, body = self.run(http_get(f"{self.url}/api/realtime/status", self.token(role)))
        assert status == 200, body
        return {s["channelName"]: s["source"] for s in body["subscriptions"]
                if s["connectionId"] == self.clients[role].sio.get_sid()}

    def wait(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async def poll():
            while not predicate():
                await asyncio.sleep(0.02)
        self.run(asyncio.wait_for(poll(), timeout))


@pytest.fixture
def live(settings: Settings, db_url: str) -> Iterator[Live]:
    loop = asyncio.new_event_loop()
    clinic = loop.run_until_complete(Clinic.open(db_url))  # dentists 1, 2; patients 1, 2; service 1
    server = serve(settings)
    url, app = loop.run_until_complete(server.__aenter__())
    state = Live(loop, settings, url, app, clinic)
    try:
        for role in ROLES:
            state.clients[role] = state.run(Recorder(role).connect(url, state.token(role)))
        yield state
    finally:
        for client in state.clients.values():
            loop.run_until_complete(client.close())
        loop.run_until_complete(server.__aexit__(None, None, None))
        loop.run_until_complete(clinic.close())
        leftovers = asyncio.all_tasks(loop)  # e.g. the clients' engine.io ping tasks
        for task in leftovers:
            task.cancel()
        if leftovers:  # (gather() of nothing would make a future on another loop)
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.close()


def check_reply(role: str, event: Any, args: tuple, reply: Any) -> None:
    assert isinstance(reply, dict), reply
    if reply.get("ok") is True:
        assert event in ("subscribe", "unsubscribe") and len(args) == 1 and isinstance(args[0], dict), reply
        assert set(reply) == {"ok", "channel"} and allowed(role, reply["channel"]), reply
        return
    assert reply.get("ok") is False and set(reply) == {"ok", "error", "message"}, reply
    assert reply["error"] in ERRORS and isinstance(reply["message"], str) and reply["message"], reply
    if event not in ("subscribe", "unsubscribe"):
        assert reply["error"] == "unknown_event", reply
    elif len(args) != 1 or not isinstance(args[0], dict):
        assert reply["error"] == "invalid_payload", reply


def test_any_event_with_any_arguments_gets_a_valid_answer_and_leaks_nothing(live: Live):
    @hsettings(max_examples=100, **SETTINGS)
    @given(role=st.sampled_from(sorted(ROLES)), event=EVENTS, args=ARGS, ack=st.booleans())
    def one(role: str, event: str, args: tuple, ack: bool) -> None:
        client = live.clients[role].sio
        if ack:
            reply = live.run(client.call(event, args, timeout=10))
            check_reply(role, event, args, reply)
        else:  # nobody waits for an answer: the next call still gets its own
            live.run(client.emit(event, args))
        assert client.connected

    one()
    live.healthy()
    for role, recorder in live.clients.items():
        # still up and served: a valid request is answered ...
        mine = live.run(recorder.call("subscribe", {"topic": "appointments"}))
        assert mine["ok"] is True and allowed(role, mine["channel"]), mine
        # ... and every channel the server holds for it is one it may hold
        held = live.channels(role)
        assert all(allowed(role, channel) for channel in held), held
        assert {c for c, source in held.items() if source == "role"} == OWN[role], held
    # events: dentist 2 / patient 2's visit reaches only the admin; dentist 1 / patient 1's reaches all
    other = live.run(live.clinic.book(dentist=2, patient=2))
    mine = live.run(live.clinic.book(dentist=1, patient=1))
    last = live.run(live.clinic.last_event_id())
    for recorder in live.clients.values():
        live.run(recorder.wait_id(last))

    def visits(role: str) -> set[int]:
        return {e["appointment"]["id"] for name, e in live.clients[role].events if "appointment" in e}
    assert visits("admin") == {other, mine}
    assert visits("dentist") == {mine} and visits("patient") == {mine}


def _auths(valid: str) -> st.SearchStrategy:
    tokens = (JSON | st.text(max_size=50) | st.just(valid) | st.sampled_from(
        [valid + "x", valid[:-2], valid.upper(), " " + valid + " \n", "Bearer " + valid, "x" * 100_000,
         valid + "." + "A" * 50_000, "a.b.c", "..", ""]))
    since = (JSON | st.integers(min_value=-2**80, max_value=2**80)
             | st.sampled_from([0, 1, -1, 2**63, True, "5", 5.0]))
    as_dict = st.fixed_dictionaries({}, optional={"token": tokens, "since": since, "x": JSON})
    return as_dict | JSON | st.sampled_from(["x" * 100_000, [valid], valid])


def test_malformed_connect_auth_is_refused_with_a_reason(live: Live):
    valid = live.token("dentist")
    hub = live.app[keys.HUB]
    before = set(hub.clients)
    outcomes = {"accepted": 0, "refused": 0}

    @hsettings(max_examples=80, **SETTINGS)
    @given(auth=_auths(valid))
    @example(auth={"token": valid})
    @example(auth={"token": " " + valid + " \n", "since": 0})
    @example(auth={"token": valid, "since": 2**70})  # ahead of the outbox: resync_required, then live
    @example(auth={"token": valid, "since": -1})
    @example(auth=[valid])
    # a bare number: Socket.IO reads a CONNECT packet's leading digits as an ack id, so
    # "01.0" leaves ".0", which does not decode (sync/server.py answers it with a reason)
    @example(auth=1.0)
    @example(auth=0.5)
    @example(auth=7)  # "07": ack id 7 and no auth at all
    def one(auth: Any) -> None:
        expected = (isinstance(auth, dict) and auth.get("token") in (valid, " " + valid + " \n")
                    and (auth.get("since") is None or (type(auth["since"]) is int and auth["since"] >= 0)))
        client = Recorder("hostile")
        try:
            live.run(client.sio.connect(live.url, auth=auth, transports=["websocket"], wait_timeout=5))
        except socketio.exceptions.ConnectionError:
            assert not expected, auth if len(repr(auth)) < 300 else "big"
            assert isinstance(client.refused, dict) and client.refused["message"].startswith(REFUSALS), \
                client.refused
            outcomes["refused"] += 1
        else:
            assert expected, auth if len(repr(auth)) < 300 else "big"
            ack = live.run(client.call("subscribe", {"topic": "appointments"}))
            assert ack == {"ok": True, "channel": "appointments:dentist:1"}
            live.run(client.close())
            outcomes["accepted"] += 1

    one()
    assert outcomes["refused"] and outcomes["accepted"], outcomes
    live.healthy()
    live.wait(lambda: set(hub.clients) == before)  # no refused or closed connection is left behind
    assert live.run(live.clients["dentist"].call("subscribe", {"topic": "appointments"}))["ok"] is True


def test_a_token_larger_than_a_message_may_be_closes_that_socket_only(live: Live):
    client = Recorder("huge")
    with pytest.raises(socketio.exceptions.ConnectionError):
        live.run(client.sio.connect(live.url, auth={"token": "x" * 300_000}, transports=["websocket"],
                                    wait_timeout=2))
    live.wait(lambda: len(live.app[keys.SIO].eio.sockets) == len(ROLES))  # that socket is gone
    live.healthy()
    assert live.run(live.clients["patient"].call("subscribe", {"topic": "appointments"}))["ok"] is True


# --- raw frames: Socket.IO packets the python client would never send ---------------------------

class RawSocket:
    """A websocket speaking Engine.IO 4 by hand: answers pings, collects every packet."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.packets: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            if msg.data == "2":
                await self.ws.send_str("3")
                continue
            self.packets.append(msg.data)
            self._changed.set()
        self._changed.set()  # closed

    async def wait(self, predicate: Callable[[list[str]], Any], timeout: float = 5.0) -> Any:
        async def loop():
            while not (found := predicate(self.packets)):
                self._changed.clear()
                await self._changed.wait()
            return found
        return await asyncio.wait_for(loop(), timeout)

    async def call(self, ack_id: int, event: str, data: Any) -> Any:
        await self.ws.send_str(f"42{ack_id}" + json.dumps([event, data]))
        prefix = f"43{ack_id}["
        packet = await self.wait(lambda ps: next((p for p in ps if p.startswith(prefix)), None), 10)
        return json.loads(packet[len(prefix) - 1:])[0]

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)

    def events(self, name: str) -> list[dict]:
        return [json.loads(p[2:])[1] for p in self.packets
                if p.startswith("42[") and json.loads(p[2:])[0] == name]


async def raw_connect(session: aiohttp.ClientSession, url: str, tok: str) -> RawSocket:
    ws = await session.ws_connect(url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket")
    opened = await ws.receive()
    assert opened.type == aiohttp.WSMsgType.TEXT and opened.data.startswith("0{"), opened
    raw = RawSocket(ws)
    await ws.send_str("40" + json.dumps({"token": tok}))
    await raw.wait(lambda ps: any(p.startswith('40{"sid"') for p in ps))
    return raw


MALFORMED = [
    '42["subscribe",{"topic":"availability","global":true},2]',   # two arguments, no ack
    '421["subscribe",1,2]', '422["nope",{}]', '423[[1],{}]', '424[{"a":1}]', '425[null]', '426[1]',
    '42[]', '427[]', '42"x"', '42{', '42[', '4', '49["x"]', '43999[{"ok":true}]', '44{"message":"x"}',
    '4/x,42["subscribe"]', '40', '40{"token":"forged"}',
    '428["disconnect"]', '429["disconnect","transport close"]', '4210["connect"]', '42["connect",{},null]',
]
# Socket.IO packet types a client may send and stay connected: not 1 (leave) nor 5/6 (binary: the
# next frame is taken as the attachment)
PACKET_TYPES = st.sampled_from([0, 2, 3, 4, 7, 8, 9])
FRAMES = st.lists(st.one_of(
    st.sampled_from(MALFORMED),
    st.text(max_size=40).map(lambda t: "4" + t).filter(lambda f: f[1:2] not in ("1", "5", "6")),
    st.tuples(PACKET_TYPES, st.none() | st.integers(min_value=0, max_value=2**40), JSON)
    .map(lambda x: f"4{x[0]}{'' if x[1] is None else x[1]}{json.dumps(x[2])}"),
    st.tuples(EVENTS, JSON).map(lambda x: "42" + json.dumps(list(x)))), min_size=1, max_size=4)


def test_malformed_packets_leave_the_connection_and_its_rights_as_they_were(live: Live):
    session = live.run(_session())
    raw = live.run(raw_connect(session, live.url, live.token("patient")))
    numbers = iter(range(2**41, 2**42))  # ack ids no drawn frame uses (those are below 2**40)
    try:
        # a client-sent "connect" event carrying another token must not change who this is
        admin = json.dumps({"token": live.token("admin"), "since": 0})
        live.run(raw.ws.send_str(f'42["connect",{{"HTTP_X": "1"}},{admin}]'))

        @hsettings(max_examples=60, **SETTINGS)
        @given(frames=FRAMES)
        def one(frames: list[str]) -> None:
            for frame in frames:
                live.run(raw.ws.send_str(frame))
            reply = live.run(raw.call(next(numbers), "subscribe", {"topic": "appointments"}))
            assert reply == {"ok": True, "channel": "appointments:patient:1"}, (frames, reply)
            assert not raw.ws.closed, frames

        one()
        unknown = live.run(raw.call(next(numbers), "frobnicate", {}))
        assert unknown["ok"] is False and unknown["error"] == "unknown_event", unknown
        # still the patient's connection, still served, nothing of anyone else's
        other = live.run(live.clinic.book(dentist=2, patient=2))
        mine = live.run(live.clinic.book(dentist=1, patient=1))
        def created() -> list[int]:
            return [e["appointment"]["id"] for e in raw.events("appointment_created")]
        live.run(raw.wait(lambda ps: mine in created()))
        assert created() == [mine], other
        # an empty frame is not an Engine.IO packet at all: that socket is closed, nothing else
        live.run(raw.ws.send_str(""))
        live.run(raw.wait(lambda ps: raw.ws.closed or None))
    finally:
        live.run(raw.close())
        live.run(session.close())
    live.healthy()
    assert live.run(live.clients["patient"].call("subscribe", {"topic": "appointments"}))["ok"] is True


def test_malformed_packets_are_counted_not_logged_as_errors(live: Live, caplog):
    """A packet that does not decode is dropped on one DEBUG line (sync/server.py), not an ERROR
    traceback per packet that a client could repeat to flood the log."""
    undecodable = ['423[[1],{}]', '424[{"a":1}]', '42[]', '42{', '4/x,42["subscribe"]', '44{"message":"x"}',
                   '49["x"]', '425[null]', '426[1]']
    session = live.run(_session())
    raw = live.run(raw_connect(session, live.url, live.token("admin")))
    before = live.app[keys.STATS].malformed_packets
    try:
        with caplog.at_level(logging.WARNING):
            for frame in undecodable:
                live.run(raw.ws.send_str(frame))
            reply = live.run(raw.call(2**41, "subscribe", {"topic": "appointments"}))
            gc.collect()  # "Task exception was never retrieved" is reported when the task is freed
            live.run(asyncio.sleep(0.05))
        assert reply == {"ok": True, "channel": "appointments:all"}
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert live.app[keys.STATS].malformed_packets - before == len(undecodable)
    finally:
        live.run(raw.close())
        live.run(session.close())


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()
