"""Helpers for the staff account tests: the CLI as an operator runs it, accounts, cookie sign-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from http.cookies import Morsel
from pathlib import Path

import aiohttp

from bot.accounts import add_user
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
TABLES = ("staff_users", "staff_sessions", "staff_sign_ins")


def user_cli(db_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``python -m bot user ...`` in a process of its own, on ``db_url``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "JWT_SECRET", "ENV")}
    env.update(DATABASE_URL=db_url, JWT_SECRET="t" * 40, ENV="test")
    return subprocess.run([sys.executable, "-m", "bot", "user", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def account(engine, settings: Settings, email: str, role: str = "admin", dentist_id: int | None = None,
            name: str | None = None, password: str = PASSWORD) -> int:
    return add_user(engine, settings, email, role, password, dentist_id=dentist_id, full_name=name).id


@dataclass
class Login:
    status: int
    body: dict
    headers: dict
    cookie: Morsel | None  # the staff_session cookie the answer set

    @property
    def headers_for_writes(self) -> dict:
        """What a signed-in page sends: the cookie and the CSRF token."""
        return {"Cookie": f"staff_session={self.cookie.value}", "X-CSRF-Token": self.body["csrf_token"]}

    @property
    def cookie_header(self) -> dict:
        return {"Cookie": f"staff_session={self.cookie.value}"}


async def login(url: str, email: str, password: str = PASSWORD, *, next_path: str | None = None,
                headers: dict | None = None, form: bool = False) -> Login:
    """POST /login as the page does (JSON) or as a plain form; the answer is not followed."""
    fields = {"email": email, "password": password, **({"next": next_path} if next_path is not None else {})}
    kwargs = {"data": fields} if form else {"data": json.dumps(fields), "headers": {"Content-Type": "application/json"}}
    kwargs["headers"] = {**kwargs.get("headers", {}), **(headers or {})}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/login", allow_redirects=False, **kwargs) as resp:
            text = await resp.text()
            body = json.loads(text) if resp.content_type == "application/json" else {}
            return Login(resp.status, body, dict(resp.headers), resp.cookies.get("staff_session"))


async def get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    """A GET that is not followed: (status, headers)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers or {}, allow_redirects=False) as resp:
            return resp.status, dict(resp.headers)


def stored_text(conn) -> str:
    """Every row of the staff tables as text (every column), for "the secret is nowhere" checks."""
    return "\n".join(row[0] for table in TABLES for row in conn.execute(f"SELECT t::text FROM {table} t"))


async def staff_headers(c, engine, settings: Settings) -> dict[str, dict]:
    """For a seeded clinic (tests.api_helpers.Seeded): the admin, ``c.dentist`` and ``c.other_dentist``
    signed in at /login, as the headers their pages send (the cookie and the CSRF token)."""
    callers = {"admin": ("admin", None), "dentist": ("dentist", c.dentist), "other_dentist": ("dentist", c.other_dentist)}
    headers = {}
    for caller, (role, dentist_id) in callers.items():
        email = f"{caller.replace('_', '.')}@clinic.example"
        account(engine, settings, email, role, dentist_id)
        signed = await login(c.url, email)
        assert signed.status == 200, signed.body
        headers[caller] = signed.headers_for_writes
    return headers
