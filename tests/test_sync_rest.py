"""REST endpoints × roles × token problems; JSON always."""

from __future__ import annotations

import time

import aiohttp
import pytest

from bot.settings import Settings
from sync import keys
from tests.sync_helpers import Recorder, http_get, serve, token

ROLES = [("admin", None), ("service", "actions"), ("dentist", 1), ("patient", 1)]


async def test_health_is_open_and_reports_the_listener(settings, db_url):
    async with serve(settings) as (url, app):
        pat = await Recorder().connect(url, token(settings, "patient", 1))
        await pat.call("subscribe", {"topic": "availability", "global": True})
        status, body = await http_get(f"{url}/api/realtime/health")
        assert status == 200
        assert body["status"] == "healthy" and body["service"] == "realtime-sync"
        assert body["activeSubscriptions"] == 2  # its own appointments + global availability
        assert body["timestamp"].endswith("+00:00")
        await app[keys.LISTENER].stop()
        status, body = await http_get(f"{url}/api/realtime/health")
        assert status == 503 and body["status"] == "unhealthy"
        await pat.close()


@pytest.mark.parametrize("role,ident", ROLES)
async def test_status_lists_only_the_callers_connections(settings, db_url, role, ident):
    async with serve(settings) as (url, app):
        mine = await Recorder().connect(url, token(settings, role, ident))
        other = await Recorder().connect(url, token(settings, "patient", 2))
        await mine.call("subscribe", {"topic": "availability", "dentist_id": 2})
        status, body = await http_get(f"{url}/api/realtime/status", token(settings, role, ident))
        assert status == 200 and body["status"] == "active"
        channels = {s["channelName"]: s for s in body["subscriptions"]}
        assert "availability:dentist:2" in channels and channels["availability:dentist:2"]["source"] == "subscribe"
        assert "appointments:patient:2" not in channels  # the other caller's
        assert all(s["active"] and s["connectionId"] == mine.sio.get_sid() for s in body["subscriptions"])
        assert body["activeSubscriptions"] == len(body["subscriptions"])
        expected_role = {"admin": "appointments:all", "service": "appointments:all",
                         "dentist": "appointments:dentist:1", "patient": "appointments:patient:1"}[role]
        assert channels[expected_role]["source"] == "role"
        await mine.close()
        await other.close()


@pytest.mark.parametrize("role,ident", ROLES)
async def test_stats_is_for_admins_only(settings, db_url, role, ident):
    async with serve(settings) as (url, app):
        client = await Recorder().connect(url, token(settings, "dentist", 1))
        status, body = await http_get(f"{url}/api/realtime/stats", token(settings, role, ident))
        if role != "admin":
            assert status == 403 and body["error"] == "forbidden" and body["message"]
        else:
            assert status == 200
            assert body["connections"] == {"total": 1, "byRole": {"admin": 0, "dentist": 1, "patient": 0,
                                                                   "service": 0}}
            for key in ("eventsProcessed", "eventsDelivered", "eventsPerSecond", "deliveryLagMs",
                        "fanoutMs", "lastOutboxId", "listener", "uptimeSeconds"):
                assert key in body, key
            assert body["listener"]["connected"] is True and body["listener"]["reconnects"] == 0
            assert set(body["deliveryLagMs"]) >= {"p50", "p90", "p99", "max"}
        await client.close()


async def test_stats_count_events_and_deliveries(settings, db_url):
    from tests.sync_helpers import Clinic

    clinic = await Clinic.open(db_url)
    async with serve(settings) as (url, app):
        admin = await Recorder().connect(url, token(settings, "admin"))
        dentist = await Recorder().connect(url, token(settings, "dentist", 1))
        await clinic.book(dentist=1, patient=1)
        await clinic.book(dentist=2, patient=2)
        await admin.wait_id(2)
        status, body = await http_get(f"{url}/api/realtime/stats", token(settings, "admin"))
        assert body["eventsProcessed"] == 2 and body["eventsDelivered"] == 3 and body["lastOutboxId"] == 2
        assert body["deliveryLagMs"]["count"] == 2 and body["deliveryLagMs"]["max"] >= 0
        assert body["eventsPerSecond"]["last60s"] > 0
        await admin.close()
        await dentist.close()
    await clinic.close()


def _other_secret(settings: Settings) -> Settings:
    return Settings(database_url=settings.database_url, env="test", jwt_secret="o" * 40, _env_file=None)


@pytest.mark.parametrize("path", ["/api/realtime/status", "/api/realtime/stats"])
async def test_bad_tokens_get_401(settings, db_url, path):
    async with serve(settings) as (url, app):
        cases = {
            "missing": (None, None, "missing_token"),
            "not bearer": (None, "Basic dXNlcjpwYXNz", "missing_token"),
            "empty bearer": (None, "Bearer ", "missing_token"),
            "forged": (token(_other_secret(settings), "admin"), None, "invalid_token"),
            "expired": (token(settings, "admin", ttl_minutes=1, now=time.time() - 3600), None, "invalid_token"),
            "garbage": ("abc.def.ghi", None, "invalid_token"),
        }
        for name, (tok, raw, code) in cases.items():
            status, body = await http_get(url + path, tok, raw_auth=raw)
            assert status == 401 and body["error"] == code and body["message"], name


async def test_unknown_paths_and_methods_are_json(settings, db_url):
    async with serve(settings) as (url, app):
        status, body = await http_get(f"{url}/api/realtime/nope")
        assert status == 404 and body["error"] == "not_found"
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/api/realtime/health") as resp:
                assert resp.status == 405 and (await resp.json())["error"] == "method_not_allowed"
