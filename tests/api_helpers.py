"""Helpers for the REST API and page tests: a seeded clinic served in-process, a JSON client."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import psycopg
from sqlalchemy import select

from bot.models import Appointment
from bot.seed import seed
from bot.settings import Settings
from tests.sync_helpers import serve, token


@dataclass
class Seeded:
    url: str
    settings: Settings
    db_url: str
    visit: int          # an upcoming appointment ...
    patient: int        # ... of this patient
    dentist: int        # ... with this dentist
    other_patient: int
    other_dentist: int

    def tok(self, role: str, ident=None, **kwargs) -> str:
        return token(self.settings, role, ident, **kwargs)

    def tokens(self) -> dict[str, str]:
        """One token per kind of caller the authorisation matrix names."""
        forged = Settings(database_url=self.settings.database_url, env="test", jwt_secret="x" * 40, _env_file=None)
        return {
            "admin": self.tok("admin"),
            "dentist": self.tok("dentist", self.dentist),
            "other_dentist": self.tok("dentist", self.other_dentist),
            "patient": self.tok("patient", self.patient),
            "other_patient": self.tok("patient", self.other_patient),
            "service": self.tok("service", "actions"),
            "forged": token(forged, "admin"),
            "expired": self.tok("admin", ttl_minutes=1, now=time.time() - 3600),
        }

    async def events(self, after: int = 0) -> list[tuple[str, dict]]:
        async with await psycopg.AsyncConnection.connect(self.db_url) as conn:
            cur = await conn.execute("SELECT type, payload FROM realtime_events WHERE id > %s ORDER BY id", (after,))
            return list(await cur.fetchall())

    async def last_event(self) -> int:
        async with await psycopg.AsyncConnection.connect(self.db_url) as conn:
            cur = await conn.execute("SELECT coalesce(max(id), 0) FROM realtime_events")
            return (await cur.fetchone())[0]


def pick_visit(engine) -> tuple[int, int, int]:
    """(appointment id, patient id, dentist id) of the first upcoming seeded visit."""
    with engine.connect() as conn:
        row = conn.execute(select(Appointment.id, Appointment.patient_id, Appointment.dentist_id)
                           .order_by(Appointment.id).limit(1)).one()
    return row[0], row[1], row[2]


@contextlib.asynccontextmanager
async def seeded_clinic(settings: Settings, engine, db_url: str) -> AsyncIterator[Seeded]:
    seed(engine, settings)
    visit, patient, dentist = pick_visit(engine)
    async with serve(settings) as (url, app):
        yield Seeded(url, settings, db_url, visit, patient, dentist,
                     other_patient=patient + 1, other_dentist=1 if dentist != 1 else 2)


async def call(method: str, url: str, tok: str | None = None, body=None, *, raw: bytes | None = None,
               headers: dict | None = None) -> tuple[int, dict | None]:
    """One request; returns (status, parsed JSON or None for an empty body). Asserts JSON errors."""
    hdrs = dict(headers or {})
    if tok is not None:
        hdrs["Authorization"] = f"Bearer {tok}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is not None:
        hdrs.setdefault("Content-Type", "application/json")
    async with aiohttp.ClientSession() as session:
        payload_in = io.BytesIO(data) if data is not None and len(data) > 1024 * 1024 else data
        async with session.request(method, url, data=payload_in, headers=hdrs) as resp:
            text = await resp.text()
            if resp.status == 204:
                assert text == ""
                return resp.status, None
            assert resp.content_type == "application/json", (resp.status, text[:200])
            payload = json.loads(text)
            if resp.status >= 400:
                assert isinstance(payload.get("error"), str) and payload["error"], payload
                assert isinstance(payload.get("message"), str) and payload["message"], payload
            return resp.status, payload


@contextlib.contextmanager
def waitlist_worker_paused(db_url: str) -> Iterator[None]:
    """Hold the waitlist worker's pass lock (``bot.waitlist.PASS_LOCK``), so the sync service's
    worker offers nothing meanwhile: for tests that count what their own requests write."""
    from bot.waitlist import PASS_LOCK

    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (PASS_LOCK,)) is not None
        yield
