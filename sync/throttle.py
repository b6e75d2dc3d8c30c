"""Keeping one client, or a crowd, from wearing the sign-ins out.

* ``PerClient``: at most N requests of a kind an hour from one client address (an IPv4 address
  or an IPv6 /64, ``bot.otp.client_key``), counted in this process's memory with the ``limits``
  library's moving window. ``check`` only asks whether one more is allowed, ``hit`` counts one:
  a handler checks before its costly work (a code checked, a password hashed) and counts only
  what should count (a wrong code, a failed sign-in), so a client past its count costs nothing.
* ``Gate``: at most ``at_once`` costly calls at a time (Argon2 takes 64 MiB and tens of
  milliseconds of a core) and ``waiting`` more queued; beyond that the caller is told to come
  back at once instead of queueing, so a flood of sign-ins never holds the worker threads and
  database connections every other request needs.

Both answer with ``TooMany`` (429) or ``Busy`` (503), each with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from limits import parse, storage, strategies

from bot.otp import client_key

from .api_io import ApiError


class _RetryLater(ApiError):
    def __init__(self, status: int, code: str, message: str, retry_after: int):
        super().__init__(status, code, message)
        self.retry_after = retry_after

    def response(self):
        answer = super().response()
        answer.headers["Retry-After"] = str(self.retry_after)
        return answer


class TooMany(_RetryLater):
    def __init__(self, retry_after: int, message: str = "Too many sign-in requests from here; try again later."):
        super().__init__(429, "too_many_requests", message, retry_after)


class Busy(_RetryLater):
    def __init__(self):
        super().__init__(503, "busy", "Signing in is busy right now; try again in a moment.", 1)


class PerClient:
    def __init__(self, per_hour: int, message: str | None = None):
        self.limit = parse(f"{per_hour}/hour")
        self.message = message
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    def _refuse(self, what: str, key: str) -> None:
        reset = self._limiter.get_window_stats(self.limit, what, key).reset_time
        retry = max(1, int(reset - time.time()) + 1)
        raise TooMany(retry, self.message) if self.message else TooMany(retry)

    def check(self, what: str, remote: str | None) -> None:
        """429 if this client has used up its count of ``what``; counts nothing."""
        key = client_key(remote) or "unknown"
        if not self._limiter.test(self.limit, what, key):
            self._refuse(what, key)

    def hit(self, what: str, remote: str | None) -> None:
        """Count one ``what`` from this client; 429 when that was one too many."""
        key = client_key(remote) or "unknown"
        if not self._limiter.hit(self.limit, what, key):
            self._refuse(what, key)


class Gate:
    def __init__(self, at_once: int, waiting: int):
        self._slots = asyncio.Semaphore(at_once)
        self._capacity = at_once + waiting
        self._inside = 0

    @asynccontextmanager
    async def enter(self) -> AsyncIterator[None]:
        if self._inside >= self._capacity:
            raise Busy()
        self._inside += 1
        try:
            async with self._slots:
                yield
        finally:
            self._inside -= 1
