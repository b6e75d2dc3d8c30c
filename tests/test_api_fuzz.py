"""Hostile input for every REST endpoint, driven by its OpenAPI description: random JSON bodies,
ids and query strings, with every token kind. The answer is never a 5xx and always JSON with a
stable error code (or a success the caller was entitled to)."""

from __future__ import annotations

import random
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from tests.api_helpers import call, seeded_clinic

SOON = (date.today() + timedelta(days=60)).isoformat()  # a date an override or closure may take
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=40) | st.sampled_from(["09:00", "25:61", "2030-01-01T10:00:00+00:00", "2030-01-01",
                                             "confirmed", "<script>x</script>", "' OR 1=1 --", "\u202etxt",
                                             SOON, "9999-12-31", "0001-01-01"]),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
        st.sampled_from(["status", "weekday", "start_time", "end_time", "starts_at", "ends_at", "reason",
                         "on_date", "last_date", "x"]),
        inner, max_size=5),
    max_leaves=12)
IDS = st.sampled_from(["1", "2", "0", "999999", "9223372036854775807", "9223372036854775808", "1" * 30])
QUERY = st.dictionaries(st.sampled_from(["from", "to", "dentist_id", "patient_id", "x"]),
                        st.text(max_size=25) | st.sampled_from(["2030-01-01", "2030-01-01T00:00:00Z", "-1", "1"]),
                        max_size=3)


def _draw(strategy, count: int) -> list:
    """`count` examples of a strategy, drawn by hypothesis (its edge cases included)."""
    found: list = []

    @hsettings(max_examples=count, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value):
        found.append(value)

    collect()
    return found


async def test_no_endpoint_gives_a_5xx_for_any_input(settings, engine, db_url):
    bodies, ids, queries = _draw(JSON, 120), _draw(IDS, 30), _draw(QUERY, 60)
    rng = random.Random(5)
    async with seeded_clinic(settings, engine, db_url) as c:
        tokens = [None, *c.tokens().values()]
        _, doc = await call("GET", f"{c.url}/api/openapi.json")
        operations = [(path, method.upper()) for path, ops in doc["paths"].items() for method in ops]
        assert len(operations) >= 19
        for path, method in operations:
            for i in range(25):
                url = c.url + path.replace("{id}", rng.choice(ids))
                if method == "GET" and "{id}" not in path:
                    query = rng.choice(queries)
                    if query:
                        url += "?" + "&".join(f"{k}={v}" for k, v in query.items()).replace("#", "%23")
                body = rng.choice(bodies) if method in ("PUT", "POST", "PATCH") else None
                status, payload = await call(method, url, rng.choice(tokens), body)  # asserts JSON errors
                assert status < 500 or (path == "/api/realtime/health" and status == 503), (method, url, body, payload)
