"""Resume with `since`, resync_required, and a listener that outlives its database connection."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from sync import keys
from tests.polling import wait_until
from tests.sync_helpers import Clinic, Recorder, serve, token

FAST_RETRY = {"backoff_initial": 0.05, "backoff_max": 0.5}
# a gap is settled by its writers ending, never by the last-resort timeout, in the tests below
NO_GAP_TIMEOUT = {"gap_timeout": 3600.0}


def holding_back(listener, missing: int, for_seconds: float = 0.0) -> bool:
    """Whether the listener has read past ``missing``, found it neither committed nor settled,
    and so holds back what follows it (for ``for_seconds`` at least, by its own clock).
    Reads OutboxListener._gap: this project's listener, which exposes no gap in its state."""
    gap = listener._gap
    return (gap is not None and gap.start == missing and not gap.settled
            and time.monotonic() - gap.seen >= for_seconds)


@pytest.mark.slow
async def test_resume_after_disconnect_during_a_burst_delivers_all_once_in_order(settings, db_url):
    clinic = await Clinic.open(db_url)
    async with serve(settings) as (url, app):
        admin_token, patient_token = token(settings, "admin"), token(settings, "patient", 1)
        admin = await Recorder("admin").connect(url, admin_token)
        patient = await Recorder("patient1").connect(url, patient_token)
        start = await clinic.last_event_id()
        writer_conn = await psycopg.AsyncConnection.connect(db_url, autocommit=True)
        writer = Clinic(writer_conn)

        async def burst():
            for i in range(500):  # one transaction per booking, alternating patients
                await writer.book(dentist=1 + i % 2, patient=1 + i % 2, slot=i)

        task = asyncio.create_task(burst())
        await admin.wait_for(lambda r: len(r.ids) >= 100, timeout=30)
        await patient.wait_for(lambda r: len(r.ids) >= 30, timeout=30)
        await admin.close()
        await patient.close()
        first_admin, first_patient = list(admin.ids), list(patient.ids)

        async def written_while_away() -> bool:  # the clients will have something to resume
            return task.done() or await clinic.last_event_id() >= first_admin[-1] + 50

        await wait_until(written_while_away, 60, what="50 bookings written while the clients are away")
        admin2 = await Recorder("admin2").connect(url, admin_token, since=first_admin[-1])
        patient2 = await Recorder("patient2").connect(url, patient_token, since=first_patient[-1])
        await asyncio.wait_for(task, 60)
        last = await clinic.last_event_id()
        assert last == start + 500
        await admin2.wait_id(last, timeout=30)
        await patient2.wait_id(last - 1, timeout=30)

        all_admin = first_admin + admin2.ids
        assert all_admin == list(range(start + 1, last + 1))
        all_patient = first_patient + patient2.ids
        assert all_patient == list(range(start + 1, last + 1, 2))  # patient 1 booked the odd ones
        assert len(first_admin) < 500 and len(admin2.ids) > 0
        for client in (admin2, patient2):
            await client.close()
        await writer_conn.close()
    await clinic.close()


async def test_replay_comes_before_live_events_and_respects_visibility(settings, db_url):
    clinic = await Clinic.open(db_url)
    async with serve(settings) as (url, app):
        for i in range(10):
            await clinic.book(dentist=1 + i % 2, patient=1 + i % 2)
        await clinic.add_hours(dentist=1)
        await clinic.add_hours(dentist=2)
        last = await clinic.last_event_id()
        await wait_until(lambda: app[keys.LISTENER].last_id == last, what="the service read the outbox")
        dentist = await Recorder("dentist2").connect(url, token(settings, "dentist", 2), since=3)
        await clinic.book(dentist=2, patient=2)
        live = await clinic.last_event_id()
        await dentist.wait_id(live)
        assert dentist.ids == [4, 6, 8, 10, 12, live]
        assert [e for e, _ in dentist.events][-2:] == ["availability_changed", "appointment_created"]
        await dentist.close()
    await clinic.close()


async def test_resync_required_when_since_is_older_than_the_outbox(settings, db_url):
    clinic = await Clinic.open(db_url)
    async with serve(settings) as (url, app):
        for _ in range(6):
            await clinic.book(dentist=1, patient=1)
        await clinic.conn.execute("DELETE FROM realtime_events WHERE id <= 3")  # pruned
        await wait_until(lambda: app[keys.LISTENER].last_id == 6, what="the service read the outbox")
        tok = token(settings, "admin")

        stale = await Recorder("stale").connect(url, tok, since=1)
        await stale.wait_for(lambda r: bool(r.events))
        name, data = stale.events[0]
        assert name == "resync_required"
        assert data["reason"] == "outbox_pruned" and data["lastId"] == 6 and data["oldestId"] == 4

        fine = await Recorder("fine").connect(url, tok, since=3)   # nothing it needs was pruned
        ahead = await Recorder("ahead").connect(url, tok, since=999)
        await ahead.wait_for(lambda r: bool(r.events))
        assert ahead.events[0][0] == "resync_required" and ahead.events[0][1]["reason"] == "since_ahead"

        await clinic.book(dentist=1, patient=1)
        for client in (stale, fine, ahead):
            await client.wait_id(7)
        assert stale.ids == [7] and ahead.ids == [7]
        assert fine.ids == [4, 5, 6, 7]
        assert [e for e, _ in fine.events].count("resync_required") == 0
        for client in (stale, fine, ahead):
            await client.close()
    await clinic.close()


@pytest.mark.slow
async def test_listener_survives_a_killed_backend_without_loss_or_duplicates(settings, db_url, pg_server):
    clinic = await Clinic.open(db_url)
    async with serve(settings, listener_options=FAST_RETRY) as (url, app):
        listener = app[keys.LISTENER]
        admin = await Recorder("admin").connect(url, token(settings, "admin"))
        for _ in range(5):
            await clinic.book(dentist=1, patient=1)
        await admin.wait_id(5)
        for round_ in range(2):
            pid = listener.backend_pid
            assert pid is not None
            async with await psycopg.AsyncConnection.connect(pg_server, autocommit=True) as killer:
                await killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
            for _ in range(5):  # written while the listener is away
                await clinic.book(dentist=2, patient=2)
            await wait_until(lambda: listener.reconnects > round_, what=f"reconnect {round_ + 1}")
        await clinic.book(dentist=1, patient=1)
        await admin.wait_id(16, timeout=30)
        assert admin.ids == list(range(1, 17))
        assert listener.connected and listener.reconnects == 2 and listener.last_error
        await admin.close()
    await clinic.close()


async def test_out_of_order_commits_are_delivered_in_id_order(settings, db_url):
    """A writer that took id N but commits after N+1 is waited for, not skipped."""
    clinic = await Clinic.open(db_url)
    async with serve(settings, listener_options=NO_GAP_TIMEOUT) as (url, app):
        listener = app[keys.LISTENER]
        admin = await Recorder("admin").connect(url, token(settings, "admin"))
        slow = await psycopg.AsyncConnection.connect(db_url)
        try:
            await Clinic(slow).book(dentist=1, patient=1, slot=100)  # id 1, not committed yet
            await clinic.book(dentist=2, patient=2, slot=101)         # id 2, committed
            await wait_until(lambda: holding_back(listener, 1), what="the listener holding back id 2")
            assert admin.ids == []  # held back: 1 may still commit
            await slow.commit()
            await admin.wait_id(2, timeout=30)
            assert admin.ids == [1, 2]
            # a rolled-back id is skipped once no older transaction is running (not by the timeout)
            await Clinic(slow).book(dentist=1, patient=1, slot=102)   # id 3
            await clinic.book(dentist=2, patient=2, slot=103)          # id 4
            await slow.rollback()
            await admin.wait_id(4, timeout=30)
            assert admin.ids == [1, 2, 4] and listener.gaps_skipped == 1
        finally:
            await slow.close()
        await admin.close()
    await clinic.close()


async def test_a_late_commit_is_waited_for_while_another_database_holds_xmin_back(settings, db_url, pg_server):
    """The cluster-wide xmin cannot settle a gap while any database has an old transaction open;
    the listener then watches this database's writers: a writer committing late (after the
    listener has held its gap for 3 s, re-checking it every 20 ms) is waited for and delivered in
    order, and a rolled-back id is skipped once its writer is gone (the timeout is out of reach)."""
    clinic = await Clinic.open(db_url)
    elsewhere = await psycopg.AsyncConnection.connect(pg_server)  # another database
    await elsewhere.execute("SELECT pg_current_xact_id()")  # holds an xid open: xmin stays behind
    async with serve(settings, listener_options=NO_GAP_TIMEOUT) as (url, app):
        listener = app[keys.LISTENER]
        admin = await Recorder("admin").connect(url, token(settings, "admin"))
        slow = await psycopg.AsyncConnection.connect(db_url)
        try:
            first = await clinic.last_event_id() + 1
            await Clinic(slow).book(dentist=1, patient=1, slot=200)  # takes `first`, commits late
            await clinic.book(dentist=2, patient=2, slot=201)         # first + 1, committed
            # late: the listener has held the gap, unsettled, for 3 s of its own re-checks
            await wait_until(lambda: holding_back(listener, first, for_seconds=3.0),
                             what="the listener holding the gap for 3 s")
            assert admin.ids == []
            await slow.commit()
            await admin.wait_id(first + 1, timeout=30)
            assert admin.ids == [first, first + 1]
            await Clinic(slow).book(dentist=1, patient=1, slot=202)   # rolled back: skipped
            await clinic.book(dentist=2, patient=2, slot=203)
            await slow.rollback()
            await admin.wait_id(first + 3, timeout=30)
            assert admin.ids == [first, first + 1, first + 3] and listener.gaps_skipped == 1
        finally:
            await slow.close()
            await elsewhere.close()
        await admin.close()
    await clinic.close()
