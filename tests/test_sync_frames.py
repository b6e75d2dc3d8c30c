"""The fan-out's direct websocket writes (sync/frames.py): real clients decode every frame size,
and a socket with packets already queued keeps its order (the event waits behind them)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest

from sync import keys
from sync.frames import text_frame
from sync.outbox import OutboxEvent
from tests.sync_helpers import Recorder, serve, token


def event(event_id: int, note: str) -> OutboxEvent:
    body = json.dumps({"id": event_id, "type": "appointment_created", "at": "2030-01-07T09:00:00+00:00",
                       "appointment": {"id": event_id, "dentist_id": 1, "patient_id": 1, "notes": note}})
    return OutboxEvent(id=event_id, type="appointment_created", dentist_id=1, patient_id=1,
                       prev_dentist_id=None, prev_patient_id=None,
                       created_at=datetime.now(timezone.utc), body=body)


@pytest.mark.parametrize("size, head", [(0, b"\x81\x00"), (125, b"\x81\x7d"),
                                        (126, b"\x81\x7e\x00\x7e"), (65535, b"\x81\x7e\xff\xff"),
                                        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00")])
def test_text_frame_header_carries_the_payload_length(size, head):
    frame = text_frame("x" * size)
    assert frame[:len(head)] == head and len(frame) == len(head) + size


async def test_every_frame_size_reaches_a_real_client_written_directly(settings):
    async with serve(settings) as (url, app):
        hub, stats = app[keys.HUB], app[keys.STATS]
        admin = await Recorder("admin").connect(url, token(settings, "admin"))
        # short, 16-bit and 64-bit length frames, and non-ASCII text (length counts bytes)
        notes = ["a", "é" * 200, "z" * 70_000, "مرحبا 🦷"]
        base = 10_000_000
        before = stats.direct_writes
        for i, note in enumerate(notes, start=1):
            await asyncio.sleep(0.05)  # let the socket's queue go idle
            hub.dispatch([event(base + i, note)])
        await admin.wait_id(base + len(notes))
        assert [d["appointment"]["notes"] for _, d in admin.events] == notes
        assert stats.direct_writes - before == len(notes)
        await admin.close()


async def test_an_event_waits_behind_packets_already_queued_for_that_socket(settings):
    async with serve(settings) as (url, app):
        hub, stats = app[keys.HUB], app[keys.STATS]
        admin = await Recorder("admin").connect(url, token(settings, "admin"))
        await asyncio.sleep(0.05)
        client = next(iter(hub.clients.values()))
        before = stats.direct_writes
        # same tick: the queued packet has not been sent yet, so the event must queue behind it
        hub.send(client, "resync_required", {"reason": "test"})
        hub.dispatch([event(20_000_001, "after the queued packet")])
        await admin.wait_id(20_000_001)
        assert [name for name, _ in admin.events] == ["resync_required", "appointment_created"]
        assert stats.direct_writes == before
        await asyncio.sleep(0.05)
        hub.dispatch([event(20_000_002, "idle again")])  # queue drained: direct again
        await admin.wait_id(20_000_002)
        assert stats.direct_writes == before + 1
        await admin.close()
