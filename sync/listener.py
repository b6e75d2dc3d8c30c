"""LISTEN ``realtime_events`` and turn the outbox into an ordered stream of events.

A notification is only a signal: on each one (and on a timer) the listener reads the
rows with ``id`` greater than the last one it processed, in id order, in batches.
Coalesced, lost or oversized notifications therefore lose nothing, and after a
reconnect the same read catches up with everything committed meanwhile.

Ids are handed out before commit, so a row with a smaller id can become visible
after a larger one (two writers committing out of order). When the next expected
id is missing, the listener holds back until it is settled: every transaction
that was running when the gap was seen has ended — cluster-wide, or among this
database's writers (so a long transaction in another database does not matter) —
and then a missing id was rolled back; ``gap_timeout`` (30 s) is the last resort
for an id whose writer stays open. So each client gets ids in increasing order
and none is skipped because a slower writer committed late. For the same reason the
stream starts at the safe mark (``bot.events.safe_mark``), not at the highest id: a
writer still open when the service starts is delivered when it commits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import psycopg

from bot.aio import cancel_and_wait
from bot.events import CHANNEL

from . import outbox
from .outbox import OutboxEvent

log = logging.getLogger(__name__)

_SNAPSHOT = ("SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint"
             " FROM pg_current_snapshot() s")
# Transactions of this database that hold an xid (every outbox row is written by a trigger after
# its table's row, so its writer has one), and whether we may see other roles' backends at all.
_WRITERS = ("SELECT coalesce(array_agg(pid::text || ':' || backend_xid::text), '{}'),"
            " current_setting('is_superuser') = 'on' OR pg_has_role('pg_read_all_stats', 'member')"
            " FROM pg_stat_activity WHERE datname = current_database() AND backend_xid IS NOT NULL"
            " AND pid <> pg_backend_pid()")


class _Gap:
    __slots__ = ("start", "seen", "xmax", "writers", "settled")

    def __init__(self, start: int, xmax: int, writers: frozenset[str] | None):
        self.start = start
        self.seen = time.monotonic()
        self.xmax = xmax
        self.writers = writers  # this database's open writers when the gap was seen (None: unknown)
        self.settled = False


class OutboxListener:
    def __init__(self, conninfo: str, on_events: Callable[[list[OutboxEvent], float], None], *,
                 batch_size: int = 500, idle_check: float = 5.0, query_timeout: float = 10.0,
                 backoff_initial: float = 0.1, backoff_max: float = 5.0, gap_timeout: float = 30.0,
                 gap_poll: float = 0.02):
        self.conninfo = conninfo
        self.on_events = on_events
        self.batch_size = batch_size
        self.idle_check = idle_check        # read (and so check the connection) at least this often
        self.query_timeout = query_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.gap_timeout = gap_timeout
        self.gap_poll = gap_poll
        # state, exposed in /stats
        self.last_id: int | None = None     # None until the first connection
        self.connected = False
        self.reconnects = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.connected_since: float | None = None
        self.notifications = 0
        self.gaps_skipped = 0
        self.ready = asyncio.Event()        # set once last_id is known
        self._gap: _Gap | None = None
        self._conn: psycopg.AsyncConnection | None = None
        self._task: asyncio.Task | None = None

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> asyncio.Task:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="outbox-listener")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self.connected = False

    def state(self) -> dict:
        return {
            "connected": self.connected,
            "lastOutboxId": self.last_id,
            "reconnects": self.reconnects,
            "lastError": self.last_error,
            "lastErrorAt": self.last_error_at,
            "connectedSince": self.connected_since,
            "notifications": self.notifications,
            "gapsSkipped": self.gaps_skipped,
        }

    @property
    def backend_pid(self) -> int | None:
        return self._conn.info.backend_pid if self._conn is not None and self.connected else None

    async def run(self) -> None:
        delay = self.backoff_initial
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True, connect_timeout=5,
                        keepalives=1, keepalives_idle=10, keepalives_interval=5,
                        keepalives_count=3) as conn:
                    self._conn = conn
                    await conn.execute("SET TIME ZONE 'UTC'")
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if self.last_id is None:  # below any writer still open, whose event follows
                        self.last_id = await outbox.safe_mark(conn)
                    if not first:
                        self.reconnects += 1
                    self.connected, self.connected_since = True, time.time()
                    self.ready.set()
                    before = self.last_id
                    waiting = await self._drain(conn)  # catch up with whatever we missed
                    log.info("outbox listener %s (last id %s, caught up %d)",
                             "connected" if first else "reconnected", self.last_id,
                             self.last_id - before)
                    first, delay = False, self.backoff_initial
                    while True:
                        timeout = self.gap_poll if waiting else self.idle_check
                        async for _ in conn.notifies(timeout=timeout, stop_after=1):
                            self.notifications += 1
                        waiting = await self._drain(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # psycopg.OperationalError, timeouts, anything else: retry
                self.connected = False
                self._conn = None
                self.last_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                self.last_error_at = time.time()
                log.warning("outbox listener lost its connection (%s); retrying in %.1fs",
                            self.last_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
            finally:
                self.connected = False
                self._conn = None

    # -- reading ----------------------------------------------------------------------
    async def _query(self, coro):
        return await asyncio.wait_for(coro, self.query_timeout)

    async def _drain(self, conn: psycopg.AsyncConnection) -> bool:
        """Process every committed row after ``last_id``; True while held back by a gap."""
        assert self.last_id is not None
        while True:
            started = time.perf_counter()
            rows = await self._query(outbox.fetch_after(conn, self.last_id, self.batch_size))
            if not rows:
                self._gap = None
                return False
            ready: list[OutboxEvent] = []
            expected = self.last_id + 1
            blocked = False
            for row in rows:
                if row.id != expected:
                    gap = self._gap
                    if gap is None or gap.start != expected or not gap.settled:
                        blocked = True
                        break
                    self.gaps_skipped += row.id - expected
                    log.info("outbox ids %d..%d never committed; skipped", expected, row.id - 1)
                ready.append(row)
                expected = row.id + 1
            if ready:
                self.last_id = ready[-1].id
                self._gap = None
                self.on_events(ready, started)
            if blocked:
                if await self._gap_settled(conn, expected):
                    continue  # read again: a late commit shows up now, or the gap is skipped
                return True
            if len(rows) < self.batch_size:
                return False

    async def _gap_settled(self, conn: psycopg.AsyncConnection, start: int) -> bool:
        cur = await self._query(conn.execute(_SNAPSHOT))
        xmin, xmax = await cur.fetchone()
        writers = await self._writers(conn)
        if self._gap is None or self._gap.start != start:
            self._gap = _Gap(start, xmax, writers)
        gap = self._gap
        # Settled when every transaction that could still commit the missing id has ended:
        # cluster-wide (xmin has passed the xmax seen with the gap), or — precise even while
        # another database holds xmin back — no writer of this database open then is open now.
        # The timeout is the last resort (an id held by a transaction left open for that long).
        done = xmin >= gap.xmax or (gap.writers is not None and writers is not None
                                     and not (gap.writers & writers))
        if not done and time.monotonic() - gap.seen > self.gap_timeout:
            log.warning("outbox id %d still missing after %.0fs with its writer open; skipped (clients "
                        "get it only by reloading)", start, self.gap_timeout)
            done = True
        gap.settled = done
        return done

    async def _writers(self, conn: psycopg.AsyncConnection) -> frozenset[str] | None:
        """This database's transactions holding an xid, as ``pid:xid``; None when this role may
        not see other roles' transactions (then only xmin and the timeout settle a gap)."""
        cur = await self._query(conn.execute(_WRITERS))
        found, visible = await cur.fetchone()
        return frozenset(found) if visible else None
