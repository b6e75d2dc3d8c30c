"""The pages as HTTP sees them: served with a strict CSP, settings escaped into <meta>, static
files present, the vendored Socket.IO client the one its README names, and no script that
puts data into HTML."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import aiohttp

from bot.settings import Settings
from tests.sync_helpers import serve

STATIC = Path(__file__).resolve().parent.parent / "sync" / "static"


async def _get(url: str) -> tuple[int, dict, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            return resp.status, dict(resp.headers), await resp.text()


async def test_pages_are_served_with_csp_and_escaped_settings(db_url):
    settings = Settings(database_url=db_url, env="test", jwt_secret="t" * 40, _env_file=None,
                        clinic_name='Smile "&" <Co>', clinic_timezone="Europe/Paris")
    async with serve(settings) as (url, app):
        # the staff pages are served to a sign-in (tests/test_staff_sessions.py) or with ?token=
        for path, title in [("/", "chat"), ("/admin?token=t", "Front desk"), ("/dentist?token=t", "Dentist"),
                            ("/patient", "My appointments"), ("/login", "Staff sign-in")]:
            status, headers, body = await _get(url + path)
            assert status == 200 and headers["Content-Type"].startswith("text/html"), path
            assert title in body
            csp = headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert '<meta name="clinic-name" content="Smile &quot;&amp;&quot; &lt;Co&gt;">' in body
            assert '<meta name="clinic-timezone" content="Europe/Paris">' in body
            assert "<!--config-->" not in body
            for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', body):
                status, headers, _ = await _get(url + src)
                assert status == 200, src
        status, _, _ = await _get(url + "/static/../api.py")
        assert status in (403, 404)


def test_vendored_socketio_client_is_the_pinned_one():
    readme = (STATIC / "vendor" / "README.md").read_text()
    digest = hashlib.sha256((STATIC / "vendor" / "socket.io.min.js").read_bytes()).hexdigest()
    assert digest in readme
    head = (STATIC / "vendor" / "socket.io.min.js").read_text()[:200]
    version = re.search(r"Socket\.IO v(\d+\.\d+\.\d+)", head).group(1)
    assert version.startswith("4.") and f"| {version} |" in readme  # v4 client: Engine.IO 4 / Socket.IO 5
    assert (STATIC / "vendor" / "socket.io.LICENSE").read_text().startswith("The MIT License")


def test_page_scripts_never_write_html():
    for script in STATIC.glob("*.js"):
        source = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in source, f"{script.name} uses {sink}"
