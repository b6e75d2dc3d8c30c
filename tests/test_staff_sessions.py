"""Staff sessions in the sync service: the cookie's flags, the pages that need it, no open
redirect, the CSRF rule for cookie-signed writes, sign-out and disabling ending sessions server
side, and Socket.IO connecting with the cookie into the role's rooms (sync/login.py, sync/staff.py)."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import psycopg
import pytest

from bot import staff_sessions
from bot.accounts import disable_user
from sync.staff import close_ended_sockets
from tests.api_helpers import call, seeded_clinic
from tests.staff_helpers import account, get, login, stored_text
from tests.sync_helpers import Recorder, serve

EVIL = "https://evil.example"


@pytest.fixture
async def clinic(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        account(engine, settings, "desk@clinic.example", name="Ana Front")
        account(engine, settings, "doc@clinic.example", "dentist", c.dentist)
        yield c


async def test_sign_in_sets_a_strict_http_only_cookie_and_stores_only_its_hash(clinic, db_url):
    signed = await login(clinic.url, "Desk@Clinic.example")
    assert signed.status == 200, signed.body
    assert signed.body["redirect"] == "/admin" and signed.body["name"] == "Ana Front"
    cookie = signed.cookie
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert not cookie["secure"]  # ENV=test; production, or SESSION_COOKIE_SECURE=1, sets it
    assert int(cookie["max-age"]) == clinic.settings.staff_session_minutes * 60
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT id_hash FROM staff_sessions").fetchall() == [
            (hashlib.sha256(cookie.value.encode()).hexdigest(),)]
        assert cookie.value not in stored_text(conn)
    status, who = await call("GET", f"{clinic.url}/api/session", headers=signed.cookie_header)
    assert status == 200 and (who["name"], who["role"], who["dentist_id"]) == ("Ana Front", "admin", None)
    assert who["sub"].startswith("staff:") and who["csrf_token"] == signed.body["csrf_token"]
    doc = await login(clinic.url, "doc@clinic.example")
    assert doc.body["redirect"] == "/dentist" and doc.body["dentist_id"] == clinic.dentist


async def test_the_secure_flag_follows_the_setting(settings, db_url, engine):
    account(engine, settings, "desk@clinic.example")
    for update, secure in (({"env": "production", "jwt_secret": "p" * 40}, True),
                           ({"session_cookie_secure": True}, True), ({"session_cookie_secure": False}, False)):
        async with serve(settings.model_copy(update=update)) as (url, app):
            signed = await login(url, "desk@clinic.example")
            assert bool(signed.cookie["secure"]) is secure, update


async def test_staff_pages_send_strangers_to_the_sign_in_page(clinic):
    for path in ("/admin", "/dentist"):
        status, headers = await get(clinic.url + path)
        assert status == 302 and headers["Location"] == f"/login?next={path}", (path, status)
        forged = await get(clinic.url + path, {"Cookie": "staff_session=made-up"})
        assert forged[0] == 302
    assert (await get(f"{clinic.url}/admin?token={clinic.tok('admin')}"))[0] == 200  # integrations, tests
    assert (await get(clinic.url + "/login"))[0] == 200
    signed = await login(clinic.url, "desk@clinic.example")
    assert (await get(clinic.url + "/admin", signed.cookie_header))[0] == 200
    status, headers = await get(clinic.url + "/login?next=/admin", signed.cookie_header)
    assert status == 302 and headers["Location"] == "/admin"  # already signed in


@pytest.mark.parametrize("wanted", [EVIL, "//evil.example/admin", "/\\evil.example", "javascript:alert(1)",
                                    "/admin@evil.example", " /admin", "/login", "/dentist", "http:/admin"])
async def test_next_never_leads_off_the_site(clinic, wanted):
    for form in (False, True):
        signed = await login(clinic.url, "desk@clinic.example", next_path=wanted, form=form)
        goto = signed.headers["Location"] if form else signed.body["redirect"]
        assert signed.status == (303 if form else 200) and goto == "/admin", (wanted, form, goto)


@pytest.mark.parametrize("wanted", ["/dentist/../admin", "/./admin", "/x/..//admin"])
async def test_next_never_leads_to_another_roles_page_through_dot_segments(clinic, wanted):
    """The browser resolves dot segments: /dentist/../admin is /admin, not the dentist's page."""
    signed = await login(clinic.url, "doc@clinic.example", next_path=wanted)
    assert signed.status == 200 and signed.body["redirect"] == "/dentist", (wanted, signed.body)


async def test_next_keeps_a_local_path(clinic):
    signed = await login(clinic.url, "desk@clinic.example", next_path="/admin")
    assert signed.body["redirect"] == "/admin"
    signed = await login(clinic.url, "desk@clinic.example", next_path="/patient")
    assert signed.body["redirect"] == "/patient"


async def test_a_cookie_signed_write_needs_the_csrf_token_and_our_origin(clinic):
    signed = await login(clinic.url, "desk@clinic.example")
    path = f"{clinic.url}/api/appointments/{clinic.visit}"
    before = await clinic.last_event()
    for headers in (signed.cookie_header,                                               # no token
                    {**signed.cookie_header, "X-CSRF-Token": "x" * 43},                 # a wrong one
                    {**signed.headers_for_writes, "Origin": EVIL},                      # another site
                    {**signed.headers_for_writes, "Origin": "null"}):
        status, body = await call("PATCH", path, body={"status": "confirmed"}, headers=headers)
        assert (status, body["error"]) == (403, "csrf_failed"), headers
    assert await clinic.last_event() == before  # nothing was written
    status, _ = await call("GET", path, headers=signed.cookie_header)  # a read needs no token
    assert status == 200
    status, body = await call("PATCH", path, body={"status": "confirmed"}, headers=signed.headers_for_writes)
    assert status == 200 and body["appointment"]["status"] == "confirmed"
    status, _ = await call("PATCH", path, body={"status": "pending"},
                           headers={**signed.headers_for_writes, "Origin": clinic.url})
    assert status == 200
    # a bearer token needs no CSRF token: no browser sends it by itself
    status, _ = await call("PATCH", path, clinic.tok("admin"), {"status": "confirmed"})
    assert status == 200


async def test_a_sign_in_posted_from_another_site_is_refused(clinic, db_url):
    # login CSRF: another site's page posting our sign-in with its own (or the victim's) password
    for form in (False, True):
        for origin in (EVIL, "null"):
            signed = await login(clinic.url, "desk@clinic.example", form=form, headers={"Origin": origin})
            assert (signed.status, signed.body.get("error")) == (403, "csrf_failed"), (form, origin)
            assert signed.cookie is None and "Set-Cookie" not in signed.headers, (form, origin)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM staff_sessions").fetchone() == (0,)
    signed = await login(clinic.url, "desk@clinic.example", form=True, headers={"Origin": clinic.url})
    assert signed.status == 303 and signed.cookie is not None  # our own page's form still signs in


async def test_sign_out_ends_the_session_on_the_server(clinic):
    signed = await login(clinic.url, "desk@clinic.example")
    status, body = await call("POST", f"{clinic.url}/logout", headers=signed.cookie_header)
    assert (status, body["error"]) == (403, "csrf_failed")  # sign-out is CSRF-protected too
    assert (await call("GET", f"{clinic.url}/api/session", headers=signed.cookie_header))[0] == 200
    status, body = await call("POST", f"{clinic.url}/logout", headers=signed.headers_for_writes)
    assert status == 200 and body["redirect"] == "/login"
    # the old cookie, replayed, signs nobody in
    for method, path in (("GET", "/api/session"), ("GET", "/api/appointments"),
                         ("PATCH", f"/api/appointments/{clinic.visit}")):
        status, body = await call(method, clinic.url + path, body={"status": "confirmed"} if method == "PATCH" else None,
                                  headers=signed.headers_for_writes)
        assert (status, body["error"]) == (401, "invalid_session"), path
    assert (await get(clinic.url + "/admin", signed.cookie_header))[0] == 302


async def test_disabling_an_account_ends_its_open_sessions(clinic, engine):
    signed = await login(clinic.url, "doc@clinic.example")
    assert (await call("GET", f"{clinic.url}/api/appointments", headers=signed.cookie_header))[0] == 200
    assert disable_user(engine, "doc@clinic.example") == 1
    status, body = await call("GET", f"{clinic.url}/api/appointments", headers=signed.cookie_header)
    assert (status, body["error"]) == (401, "invalid_session")
    assert (await login(clinic.url, "doc@clinic.example")).status == 401


async def test_socket_connects_with_the_cookie_into_the_rooms_of_its_role(settings, engine, db_url):
    async with seeded_clinic(settings, engine, db_url) as c:
        account(engine, settings, "doc@clinic.example", "dentist", c.dentist)
        account(engine, settings, "desk@clinic.example")
        for email, role, ident in (("doc@clinic.example", "dentist", c.dentist), ("desk@clinic.example", "admin", None)):
            signed = await login(c.url, email)
            by_cookie = await Recorder("cookie").connect(c.url, None, headers=signed.cookie_header)
            by_token = await Recorder("token").connect(c.url, c.tok(role, ident))
            try:
                status, mine = await call("GET", f"{c.url}/api/realtime/status", headers=signed.cookie_header)
                assert status == 200 and mine["subject"].startswith("staff:")
                _, theirs = await call("GET", f"{c.url}/api/realtime/status", c.tok(role, ident))
                rooms = lambda s: sorted(x["channelName"] for x in s["subscriptions"])  # noqa: E731
                assert rooms(mine) and rooms(mine) == rooms(theirs), (role, rooms(mine), rooms(theirs))
            finally:
                await by_cookie.close()
                await by_token.close()


async def test_socket_refuses_a_cookie_from_another_origin_or_an_ended_session(clinic):
    import socketio

    signed = await login(clinic.url, "desk@clinic.example")
    foreign, ended = Recorder("foreign"), Recorder("ended")
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await foreign.connect(clinic.url, None, headers={**signed.cookie_header, "Origin": EVIL})
        await call("POST", f"{clinic.url}/logout", headers=signed.headers_for_writes)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await ended.connect(clinic.url, None, headers=signed.cookie_header)
        assert "sign in again" in ended.refused["message"]
    finally:
        await foreign.close()
        await ended.close()


async def test_a_typed_token_wins_over_the_cookie_on_a_socket(clinic):
    signed = await login(clinic.url, "desk@clinic.example")
    rec = await Recorder("both").connect(clinic.url, clinic.tok("patient", clinic.patient), headers=signed.cookie_header)
    try:
        status, body = await call("GET", f"{clinic.url}/api/realtime/status", clinic.tok("patient", clinic.patient))
        assert [s["channelName"] for s in body["subscriptions"]] == [f"appointments:patient:{clinic.patient}"]
    finally:
        await rec.close()


async def test_a_socket_opened_while_the_check_asks_the_database_stays_open(settings, engine, db_url, monkeypatch):
    """The check asks the database about the connections open when it starts; one that opens
    while that question is in flight was not asked about, and is not taken for ended."""
    s = settings.model_copy(update={"staff_session_check_seconds": 3600.0})
    account(engine, s, "doc@clinic.example")
    account(engine, s, "desk@clinic.example")
    asked, answer = threading.Event(), threading.Event()
    real_live = staff_sessions.live

    def slow_live(engine, hashes):
        asked.set()
        answer.wait(10)
        return real_live(engine, hashes)

    async with serve(s) as (url, app):
        doc, desk = await login(url, "doc@clinic.example"), await login(url, "desk@clinic.example")
        doc_socket = await Recorder("doc").connect(url, None, headers=doc.cookie_header)
        desk_socket = None
        monkeypatch.setattr(staff_sessions, "live", slow_live)
        check = asyncio.get_running_loop().create_task(close_ended_sockets(app))
        try:
            assert await asyncio.to_thread(asked.wait, 10)
            desk_socket = await Recorder("desk").connect(url, None, headers=desk.cookie_header)
            answer.set()
            assert await check == 0
            assert doc_socket.sio.connected and desk_socket.sio.connected
            assert desk_socket.events == []
        finally:
            answer.set()
            for rec in (doc_socket, desk_socket):
                if rec is not None:
                    await rec.close()


async def test_a_socket_of_a_sign_in_ended_elsewhere_is_closed_within_the_check(settings, engine, db_url):
    """`python -m bot user disable` (another process, no request to this node) and `passwd`: the
    sync service's check closes the connections opened with those sessions, telling them
    ``signed_out`` first; a connection by token, or of another person, stays."""
    s = settings.model_copy(update={"staff_session_check_seconds": 0.2})
    async with seeded_clinic(s, engine, db_url) as c:
        account(engine, s, "doc@clinic.example", "dentist", c.dentist)
        account(engine, s, "desk@clinic.example")
        doc, desk = await login(c.url, "doc@clinic.example"), await login(c.url, "desk@clinic.example")
        doc_socket = await Recorder("doc").connect(c.url, None, headers=doc.cookie_header)
        desk_socket = await Recorder("desk").connect(c.url, None, headers=desk.cookie_header)
        by_token = await Recorder("token").connect(c.url, c.tok("dentist", c.dentist))
        try:
            assert disable_user(engine, "doc@clinic.example") == 1
            await doc_socket.wait_for(lambda r: not r.sio.connected, timeout=5)
            assert [name for name, _ in doc_socket.events] == ["signed_out"]
            assert desk_socket.sio.connected and by_token.sio.connected
            assert (await call("GET", f"{c.url}/api/session", headers=desk.cookie_header))[0] == 200
        finally:
            for rec in (doc_socket, desk_socket, by_token):
                await rec.close()
