"""Reading ``realtime_events`` rows into plain ``OutboxEvent`` data.

The database builds the client-facing JSON itself (``{"id", "type", "at"} || payload``),
so Python never parses or re-serialises a payload. An event is plain data: its routing
columns and the JSON text of each view. Encoding and writing are the transport's
(``LeanEngine.broadcast`` in ``sync/engine.py``), which encodes each view once for all its
recipients.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection

from bot.events import APPOINTMENT_UPDATED, AVAILABILITY_CHANGED, SAFE_MARK_SQL

# One row → routing columns + the body every recipient allowed the whole change gets; for an update
# that moved a visit to another dentist or patient, two partial bodies as well (rooms.view_for):
# "left" for whoever saw the visit before and not after (what it was, nothing of what it became),
# "entered" for whoever sees it only after (the visit as it is, without ``previous``).
# ISO-8601 with microseconds and an explicit offset, whatever the session's time zone
_AT = """to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""
_MOVED = f"""e.type = '{APPOINTMENT_UPDATED}'
              AND ((e.payload->'previous'->>'patient_id')::bigint IS DISTINCT FROM e.patient_id
                   OR (e.payload->'previous'->>'dentist_id')::bigint IS DISTINCT FROM e.dentist_id)"""
_COLUMNS = """
    e.id, e.type, e.dentist_id, e.patient_id,
    (e.payload->'previous'->>'dentist_id')::bigint AS prev_dentist_id,
    (e.payload->'previous'->>'patient_id')::bigint AS prev_patient_id,
    e.created_at,
    (jsonb_build_object('id', e.id, 'type', e.type, 'at', $AT$) || e.payload)::text AS body,
    CASE WHEN $MOVED$
         THEN jsonb_build_object(
                'id', e.id, 'type', e.type, 'at', $AT$,
                'appointment', jsonb_build_object('id', e.payload->'appointment'->'id'),
                'previous', e.payload->'previous', 'moved_away', true)::text
    END AS left_body,
    CASE WHEN $MOVED$
         THEN (jsonb_build_object('id', e.id, 'type', e.type, 'at', $AT$) || (e.payload - 'previous'))::text
    END AS entered_body
""".replace("$AT$", _AT).replace("$MOVED$", _MOVED)
FETCH_AFTER = f"SELECT {_COLUMNS} FROM realtime_events e WHERE e.id > %s ORDER BY e.id LIMIT %s"
FETCH_RANGE = (f"SELECT {_COLUMNS} FROM realtime_events e WHERE e.id > %s AND e.id <= %s "
               "ORDER BY e.id LIMIT %s")


FULL, LEFT, ENTERED = "full", "left", "entered"  # the views of one event (rooms.view_for)


@dataclass(slots=True, eq=False)
class OutboxEvent:
    id: int
    type: str
    dentist_id: int | None
    patient_id: int | None
    prev_dentist_id: int | None
    prev_patient_id: int | None
    created_at: datetime
    body: str
    left_body: str | None = None
    entered_body: str | None = None

    @classmethod
    def from_row(cls, row: tuple) -> "OutboxEvent":
        return cls(*row)

    @property
    def is_availability(self) -> bool:
        return self.type == AVAILABILITY_CHANGED

    def body_for(self, view: str = FULL) -> str:
        """The JSON text of one view (``rooms.view_for`` says which a recipient gets)."""
        if view == FULL:
            return self.body
        body = self.left_body if view == LEFT else self.entered_body
        if body is None:  # a partial view of an event that has none: a bug, never the whole body
            raise ValueError(f"event {self.id} ({self.type}) has no {view!r} view")
        return body


async def fetch_after(conn: AsyncConnection, after: int, limit: int) -> list[OutboxEvent]:
    cur = await conn.execute(FETCH_AFTER, (after, limit))
    return [OutboxEvent.from_row(r) for r in await cur.fetchall()]


async def fetch_range(conn: AsyncConnection, after: int, upto: int, limit: int) -> list[OutboxEvent]:
    cur = await conn.execute(FETCH_RANGE, (after, upto, limit))
    return [OutboxEvent.from_row(r) for r in await cur.fetchall()]


async def bounds(conn: AsyncConnection) -> tuple[int | None, int]:
    """(oldest id kept, last id the sequence handed out) — to tell a pruned ``since``."""
    cur = await conn.execute(
        "SELECT (SELECT min(id) FROM realtime_events),"
        " (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM realtime_events_id_seq)")
    oldest, last = await cur.fetchone()
    return oldest, int(last or 0)


async def safe_mark(conn: AsyncConnection) -> int:
    """Where a stream may start: the safe mark (``bot.events``), below any id still in flight."""
    cur = await conn.execute(SAFE_MARK_SQL)
    return int((await cur.fetchone())[0])
