"""One event vocabulary (bot/events.py): the SQL triggers emit exactly its outbox events, the
browser client handles exactly its client events, payloads have its shapes, and its safe mark
stays below an event still in flight for every reader (REST, the cache, the listener)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import get_type_hints

import psycopg
import pytest

from bot import events
from bot.db import make_engine, session_scope
from sync.listener import OutboxListener
from sync.outbox import FETCH_AFTER

ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = ROOT / "sql"
REALTIME_JS = ROOT / "sync" / "static" / "realtime.js"
SOCKET_IO_OWN = {"connect", "disconnect", "connect_error"}  # Socket.IO's lifecycle, not ours

_FUNCTION = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(\w+)\s*\(.*?\$\$(.*?)\$\$", re.S | re.I)
_DROP = re.compile(r"DROP\s+FUNCTION\s+(?:IF\s+EXISTS\s+)?(\w+)", re.I)
_PUBLISH = re.compile(r"realtime_publish_v1\s*\(\s*([^,]*),", re.I)
_CHECK = re.compile(r"CHECK\s*\(\s*type\s+IN\s*\(([^)]*)\)\s*\)", re.I)


def trigger_event_types(scripts: list[str]) -> set[str]:
    """The event types the trigger functions still defined after ``scripts`` (in order) publish."""
    bodies: dict[str, str] = {}
    for script in scripts:
        spans = []
        for m in _FUNCTION.finditer(script):
            spans.append((m.start(), "create", m.group(1).lower(), m.group(2)))
        for m in _DROP.finditer(script):
            spans.append((m.start(), "drop", m.group(1).lower(), ""))
        for _, what, name, body in sorted(spans):
            if what == "create":
                bodies[name] = body
            else:
                bodies.pop(name, None)
    found = set()
    for name, body in bodies.items():
        for arg in _PUBLISH.findall(body):
            literal = re.fullmatch(r"\s*'(\w+)'\s*", arg)
            assert literal, f"{name} publishes a type that is not a literal: {arg!r} (the test cannot check it)"
            found.add(literal.group(1))
    return found


def outbox_check_types(scripts: list[str]) -> set[str]:
    """The types realtime_events' CHECK allows (the last definition wins)."""
    allowed: set[str] = set()
    for script in scripts:
        for m in _CHECK.finditer(script):
            allowed = set(re.findall(r"'(\w+)'", m.group(1)))
    return allowed


def js_event_names(source: str) -> tuple[set[str], set[str]]:
    """(the keys of realtime.js's EVENTS table, the other names it registers with socket.on)."""
    table = re.search(r"var\s+EVENTS\s*=\s*\{(.*?)\}", source, re.S)
    assert table, "realtime.js has no EVENTS table"
    keys = set(re.findall(r"^\s*(\w+)\s*:", table.group(1), re.M))
    registered = set(re.findall(r"socket\.on\(\s*[\"'](\w+)[\"']", source)) - SOCKET_IO_OWN
    return keys, registered


def js_event_literals(source: str) -> set[str]:
    """Every string in the script that looks like an event name (a typo hides nowhere)."""
    return set(re.findall(r"[\"']((?:appointment|availability|resync|reminder|waitlist|signed)_\w+)[\"']", source))


def sql_scripts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(SQL_DIR.glob("*.sql"))]


# --- the vocabulary against the SQL and the JavaScript ---------------------------------------------

def test_the_triggers_emit_exactly_the_outbox_events():
    scripts = sql_scripts()
    assert trigger_event_types(scripts) == set(events.OUTBOX_EVENTS)
    assert outbox_check_types(scripts) == set(events.OUTBOX_EVENTS)


def test_realtime_js_handles_exactly_the_client_events():
    source = REALTIME_JS.read_text(encoding="utf-8")
    table, registered = js_event_names(source)
    assert table == set(events.OUTBOX_EVENTS)
    assert registered == {events.RESYNC_REQUIRED, events.SIGNED_OUT}
    for script in sorted((ROOT / "sync" / "static").glob("*.js")):
        assert js_event_literals(script.read_text(encoding="utf-8")) <= set(events.CLIENT_EVENTS), script.name


def test_the_vocabulary_is_consistent():
    others = {events.AVAILABILITY_CHANGED, events.REMINDER_SENT, events.WAITLIST_CHANGED, events.WAITLIST_OFFER}
    assert events.APPOINTMENT_EVENTS | others == set(events.OUTBOX_EVENTS)
    assert len(set(events.CLIENT_EVENTS)) == len(events.CLIENT_EVENTS) == 9
    assert events.RESYNC_REQUIRED not in events.OUTBOX_EVENTS


_EXTRA_TRIGGER = """
CREATE FUNCTION visits_outbox_v9() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM realtime_publish_v1('appointment_moved', NEW.dentist_id, NULL, '{}'::jsonb);
    RETURN NULL;
END $$;
"""


@pytest.mark.parametrize("change", ["add a trigger type", "drop a trigger type", "drop the function",
                                    "add a JS handler", "drop a JS handler", "a JS typo"])
def test_the_checks_catch_a_name_added_or_dropped(change):
    """The comparisons above fail when either side gains or loses a name."""
    scripts = sql_scripts()
    source = REALTIME_JS.read_text(encoding="utf-8")
    vocabulary = set(events.OUTBOX_EVENTS)
    if change == "add a trigger type":
        assert trigger_event_types([*scripts, _EXTRA_TRIGGER]) == vocabulary | {"appointment_moved"}
    elif change == "drop a trigger type":
        edited = [s.replace("'appointment_deleted', OLD.dentist_id", "'appointment_updated', OLD.dentist_id")
                  for s in scripts]
        assert edited != scripts and trigger_event_types(edited) == vocabulary - {"appointment_deleted"}
    elif change == "drop the function":
        edited = [*scripts, "DROP TRIGGER appointments_outbox ON appointments;\n"
                            "DROP FUNCTION appointments_outbox_v2();\n"]
        assert trigger_event_types(edited) == {events.AVAILABILITY_CHANGED, events.REMINDER_SENT,
                                               events.WAITLIST_CHANGED, events.WAITLIST_OFFER}
    elif change == "add a JS handler":
        edited = source.replace('reminder_sent: "onReminderSent"',
                                'reminder_sent: "onReminderSent",\n    visit_moved: "onVisitMoved"')
        assert js_event_names(edited)[0] == vocabulary | {"visit_moved"}
    elif change == "drop a JS handler":
        edited = source.replace('    appointment_deleted: "onAppointmentDeleted",\n', "")
        assert js_event_names(edited)[0] == vocabulary - {"appointment_deleted"}
        edited = source.replace('socket.on("resync_required"', 'socket.on("resync")')
        assert js_event_names(edited)[1] == {"resync", events.SIGNED_OUT}
    else:
        edited = source.replace('return type !== "availability_changed";', 'return type !== "availability_change";')
        assert edited != source and "availability_change" in js_event_literals(edited)


# --- payload shapes, on real rows -------------------------------------------------------------------

def _bodies(conn: psycopg.Connection, after: int) -> list[dict]:
    cur = conn.execute(FETCH_AFTER, (after, 100))
    return [json.loads(row[7]) for row in cur.fetchall()]  # the ``body`` column clients receive


def _keys(shape: type) -> tuple[set[str], set[str]]:
    """(required, optional) keys of a TypedDict."""
    return set(shape.__required_keys__), set(shape.__optional_keys__)


def _fits(body: dict, shape: type) -> None:
    required, optional = _keys(shape)
    assert required <= body.keys() <= required | optional, (shape.__name__, sorted(body))
    assert set(get_type_hints(shape)) == required | optional


def test_events_have_the_shapes_the_vocabulary_names(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'Dr A'), (2, 'Dr B');"
                     "INSERT INTO patients (id, full_name) VALUES (1, 'P1');"
                     "INSERT INTO services (id, name, duration_minutes, price_cents) VALUES (1, 'S', 30, 100)")
        (start,) = conn.execute("SELECT coalesce(max(id), 0) FROM realtime_events").fetchone()
        (appt,) = conn.execute("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at)"
                               " VALUES (1, 1, 1, '2030-01-07 15:00Z', '2030-01-07 15:30Z') RETURNING id").fetchone()
        conn.execute("UPDATE appointments SET dentist_id = 2 WHERE id = %s", (appt,))
        conn.execute("DELETE FROM appointments WHERE id = %s", (appt,))
        conn.execute("INSERT INTO time_off (dentist_id, starts_at, ends_at) VALUES (1, '2030-01-08Z', '2030-01-09Z')")
        conn.execute("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time) VALUES (1, 1, '09:00', '17:00')")
        bodies = _bodies(conn, start)
    assert [b["type"] for b in bodies] == [events.APPOINTMENT_CREATED, events.APPOINTMENT_UPDATED,
                                           events.APPOINTMENT_DELETED, events.AVAILABILITY_CHANGED,
                                           events.AVAILABILITY_CHANGED]
    for body in bodies[:3]:
        _fits(body, events.AppointmentEvent)
        _fits(body["appointment"], events.AppointmentRow)
    _fits(bodies[1]["previous"], events.Previous)
    assert "previous" not in bodies[0] and "previous" not in bodies[2]
    for body in bodies[3:]:
        _fits(body, events.AvailabilityEvent)


def test_waitlist_events_have_the_shapes_the_vocabulary_names(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'Dr A');"
                     "INSERT INTO patients (id, full_name) VALUES (1, 'P1');"
                     "INSERT INTO services (id, name, duration_minutes, price_cents) VALUES (1, 'S', 30, 100)")
        (start,) = conn.execute("SELECT coalesce(max(id), 0) FROM realtime_events").fetchone()
        (entry,) = conn.execute("INSERT INTO waitlist_entries (patient_id, service_id, earliest, latest,"
                                " conversation_id) VALUES (1, 1, '2030-01-07Z', '2030-01-09Z', 'chat-secret')"
                                " RETURNING id").fetchone()
        conn.execute("UPDATE waitlist_entries SET status = 'offered' WHERE id = %s", (entry,))
        conn.execute("INSERT INTO waitlist_offers (entry_id, patient_id, service_id, dentist_id, starts_at, ends_at,"
                     " holder, expires_at) VALUES (%s, 1, 1, 1, '2030-01-08 15:00Z', '2030-01-08 15:30Z',"
                     " 'waitlist:secret', '2030-01-07 12:05Z')", (entry,))
        conn.execute("UPDATE waitlist_offers SET chat_told_at = now()")  # not a status change: no event
        conn.execute("UPDATE waitlist_offers SET status = 'gone'")
        rows = [(r[1], r[2], r[3]) for r in conn.execute(FETCH_AFTER, (start, 100)).fetchall()]
        bodies = _bodies(conn, start)
    assert rows == [(events.WAITLIST_CHANGED, None, 1), (events.WAITLIST_CHANGED, None, 1),
                    (events.WAITLIST_OFFER, None, 1), (events.WAITLIST_OFFER, None, 1)]
    for body in bodies[:2]:
        _fits(body, events.WaitlistChangedEvent)
        _fits(body["entry"], events.WaitlistEntryRow)
    for body in bodies[2:]:
        _fits(body, events.WaitlistOfferEvent)
        _fits(body["offer"], events.WaitlistOfferRow)
    assert [b["offer"]["status"] for b in bodies[2:]] == ["open", "gone"]
    assert "secret" not in json.dumps(bodies)  # neither the chat nor the hold is named


# --- the safe mark ----------------------------------------------------------------------------------

def _time_off(conn, day: int) -> None:
    conn.execute("INSERT INTO time_off (dentist_id, starts_at, ends_at) VALUES (1, %s, %s)",
                 (f"2030-02-{day:02d} 00:00Z", f"2030-02-{day:02d} 12:00Z"))


@pytest.fixture
def dentist(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'Dr A')")
    return db_url


def test_safe_mark_stays_below_an_event_in_flight(dentist, settings):
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        with psycopg.connect(dentist, autocommit=True) as conn:
            _time_off(conn, 1)
            (first,) = conn.execute("SELECT max(id) FROM realtime_events").fetchone()
            with session_scope(engine) as s:
                assert events.safe_mark(s) == first
            with psycopg.connect(dentist) as slow:  # holds id first + 1 until the block ends
                _time_off(slow, 2)
                _time_off(conn, 3)  # first + 2, committed
                with session_scope(engine) as s:
                    assert events.safe_mark(s) == first
            with session_scope(engine) as s:
                assert events.safe_mark(s) == first + 2
            with psycopg.connect(dentist) as rolled_back:
                _time_off(rolled_back, 4)
                rolled_back.rollback()
            _time_off(conn, 5)
            with session_scope(engine) as s:  # a rolled-back id stays a gap: the mark is conservative
                assert events.safe_mark(s) == first + 2
    finally:
        engine.dispose()


async def test_the_listener_starts_below_an_event_in_flight_and_delivers_it(dentist):
    """A writer still open when the sync service starts: its event reaches live clients when it
    commits (the stream starts at the safe mark, not at the highest id)."""
    got: list[int] = []
    arrived = asyncio.Event()

    def on_events(batch, started):
        got.extend(e.id for e in batch)
        arrived.set()

    with psycopg.connect(dentist, autocommit=True) as conn:
        _time_off(conn, 1)
        with psycopg.connect(dentist) as slow:
            _time_off(slow, 2)
            (late,) = slow.execute("SELECT max(id) FROM realtime_events").fetchone()
            _time_off(conn, 3)
            listener = OutboxListener(dentist, on_events, gap_timeout=3600.0)
            listener.start()
            try:
                await asyncio.wait_for(listener.ready.wait(), 10)
                assert listener.last_id == late - 1
                slow.commit()
                while late + 1 not in got:
                    arrived.clear()
                    await asyncio.wait_for(arrived.wait(), 10)
            finally:
                await listener.stop()
    assert got == [late, late + 1]
