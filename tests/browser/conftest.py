"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright for Python.

The browser is never downloaded (no ``playwright install``): these tests skip, saying why,
only when /usr/bin/chromium is missing; CI installs it (``apt-get install -y chromium``).
Screenshots go to ``test-artifacts/screenshots/`` (git-ignored) for people to look at.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def pytest_collection_modifyitems(config, items):
    if Path(CHROMIUM).exists():
        return
    skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    for item in items:
        if "browser" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def shot():
    """shot(page, name): save a full-page screenshot as test-artifacts/screenshots/<name>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)

    async def take(page, name: str) -> Path:
        path = SHOTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return take
