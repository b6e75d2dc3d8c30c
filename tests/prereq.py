"""What a test needs from the machine (Redis, psql, the trained model): skipped locally when it
is missing, a failure under CI.

CI (``CI=true``, as CI services set it) runs every test; a prerequisite missing there is a
broken CI machine, and a skip would hide it while the run stays green.
"""

from __future__ import annotations

import os

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(condition: object, reason: str) -> None:
    """Go on when ``condition`` holds; else skip the test, or fail it when CI is set.

    Call it inside a test or fixture (not at import time): a module-level failure would stop
    the whole collection instead of naming the tests that need the missing thing."""
    if condition:
        return
    if under_ci():
        pytest.fail(f"{reason} (CI is set: a missing prerequisite fails instead of skipping)", pytrace=False)
    pytest.skip(reason)
