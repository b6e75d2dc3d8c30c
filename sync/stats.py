"""Counters for ``/api/realtime/stats``: throughput, delivery lag, fan-out time, uptime."""

from __future__ import annotations

import time
from collections import deque

_SAMPLES = 2048  # recent events kept for percentiles


def percentiles(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p90": None, "p99": None, "max": None, "count": 0}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(ordered[-1], 3),
            "count": len(ordered)}


class Stats:
    """Updated by the hub on every event; cheap enough for the hot path."""

    def __init__(self) -> None:
        self.started = time.time()
        self.events_processed = 0
        self.events_delivered = 0  # one per (event, recipient)
        self.events_failed = 0
        self.clients_dropped_slow = 0
        self.malformed_packets = 0  # client packets dropped by sync/server.py
        self.direct_writes = 0  # deliveries written straight to a websocket (sync/engine.py)
        self.lag_ms: deque[float] = deque(maxlen=_SAMPLES)      # created_at → last packet queued
        self.fanout_ms: deque[float] = deque(maxlen=_SAMPLES)   # batch read → last packet queued
        self._buckets: deque[list[int]] = deque(maxlen=61)      # [second, events] for the rate

    def record_event(self, created_ts: float, recipients: int, started: float) -> None:
        now = time.time()
        self.events_processed += 1
        self.events_delivered += recipients
        self.lag_ms.append((now - created_ts) * 1000.0)
        self.fanout_ms.append((time.perf_counter() - started) * 1000.0)
        second = int(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([second, 1])

    def rate(self, window: int) -> float:
        """Events per second over the last ``window`` whole seconds."""
        cutoff = int(time.time()) - window
        count = sum(n for second, n in self._buckets if second >= cutoff)
        return round(count / window, 3)

    def snapshot(self) -> dict:
        return {
            "eventsProcessed": self.events_processed,
            "eventsDelivered": self.events_delivered,
            "eventsFailed": self.events_failed,
            "slowClientsDropped": self.clients_dropped_slow,
            "directWrites": self.direct_writes,
            "malformedPackets": self.malformed_packets,
            "eventsPerSecond": {"last10s": self.rate(10), "last60s": self.rate(60)},
            "deliveryLagMs": percentiles(list(self.lag_ms)),
            "fanoutMs": percentiles(list(self.fanout_ms)),
            "uptimeSeconds": round(time.time() - self.started, 1),
        }
