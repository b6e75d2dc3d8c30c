"""The spelling tables of the catalogue: every way a patient may write a service or a dentist
(their names, the parts of a dentist's name, the synonyms in data/nlu/synonyms.yml), for the
typo-tolerant matching in actions/understanding.py.

Built once per catalogue: the availability cache hands out a new ``Catalogue`` object when an
event changes it, so the tables of the last one seen are reused until then."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import yaml

from .catalogue import Catalogue
from .understanding import Vocabulary

SYNONYMS = Path(__file__).resolve().parent.parent / "data" / "nlu" / "synonyms.yml"
_last: tuple[Catalogue, Vocabulary] | None = None
_lock = threading.Lock()


@lru_cache(maxsize=8)
def _synonyms() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    try:
        data = yaml.safe_load(SYNONYMS.read_text(encoding="utf-8")) or {}
    except OSError:
        return out
    for item in data.get("nlu", []):
        if "synonym" in item:
            out[str(item["synonym"])] = [line.strip()[2:].strip() for line in str(item["examples"]).splitlines()
                                         if line.strip().startswith("- ")]
    return out


def vocabulary(catalogue: Catalogue) -> Vocabulary:
    """The spelling tables of ``catalogue`` (the same object until the catalogue changes)."""
    global _last
    with _lock:
        if _last is not None and _last[0] is catalogue:
            return _last[1]
    synonyms = _synonyms()
    services = {s.key: [s.name, *synonyms.get(s.key, [])] for s in catalogue.services.values()}
    dentists: dict[str, list[str]] = {}
    for d in catalogue.dentists.values():
        parts = [p.strip(".") for p in d.full_name.split() if p.strip(".").lower() not in ("dr", "doctor")]
        dentists[d.key] = [" ".join(parts), *parts, *synonyms.get(d.key, [])]
    built = Vocabulary.build(services, dentists)
    with _lock:
        _last = (catalogue, built)
    return built
