"""What the availability cache holds: immutable snapshots that readers share without a lock.

``State`` is everything a reader needs, swapped as one reference; ``FrozenSchedule`` is one
dentist's diary that is never mutated once published (a change publishes a new one), so
the free slots of a day can be memoised on it. The state's ``Catalogue`` (``actions.catalogue``)
is the bot's one catalogue; ``parse_ts`` reads the instants in sync-service events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping

from bot.availability import NO_HOLDS, DentistSchedule, iter_free_slots, merge_intervals
from bot.resources import Resources

from .catalogue import Catalogue, DentistInfo, ServiceInfo

UTC = timezone.utc
EDGE_MARGIN = timedelta(days=1)  # the end of the loaded horizon that queries may not reach


SCHEDULE_FIELDS = tuple(f.name for f in fields(DentistSchedule))


class FrozenSchedule(DentistSchedule):
    """A schedule that is never mutated once published: time off and visits are merged once;
    only live holds (few, and they expire) are merged in per query."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self._base = merge_intervals(sorted([*self.time_off.values(), *self.busy.values()]))
        # (service shape, local day) -> its free slots as (starts_at, dentist_id, ends_at, slot): tuples
        # sort in C with the same order as Slot's (slower, Python-level) dataclass comparisons
        self._days: dict[tuple, tuple[tuple, ...]] = {}
        self._duty: FrozenSchedule | None = None

    def on_duty(self) -> "FrozenSchedule":
        """This diary as a hygienist's visit sees it (``bot.resources.on_duty``): hours and time off
        only, memoised, and kept by ``evolve`` while only visits or holds change."""
        if self._duty is None:
            self._duty = self.evolve(busy={}, holds={})
        return self._duty

    def live_holds(self, now: datetime, holder: str | None) -> bool:
        return any(h.expires_at > now and (holder is None or h.holder != holder) for h in self.holds.values())

    def day_slots(self, day: date, duration: timedelta, *, tz, step: timedelta, buffer_before: timedelta,
                  buffer_after: timedelta) -> tuple[tuple, ...]:
        """Every free slot starting on local ``day``, holds aside — computed once per published
        schedule (a change publishes a new one), so repeated questions cost a lookup."""
        key = (duration, step, buffer_before, buffer_after, day)
        found = self._days.get(key)
        if found is None:
            lo = datetime.combine(day, datetime.min.time(), tz).astimezone(UTC)
            hi = datetime.combine(day + timedelta(days=1), datetime.min.time(), tz).astimezone(UTC)
            found = tuple((sl.starts_at, sl.dentist_id, sl.ends_at, sl) for sl in iter_free_slots(
                self, duration, lo, hi, tz=tz, step=step, buffer_before=buffer_before, buffer_after=buffer_after,
                now=NO_HOLDS, holder=None))
            self._days[key] = found  # a racing writer computes the same tuple
        return found

    def blocked(self, *, now: datetime | None = None, holder: str | None = None):
        holds = [(h.starts_at, h.ends_at) for h in self.holds.values()
                 if (now is None or h.expires_at > now) and (holder is None or h.holder != holder)]
        if not holds:
            return self._base
        return merge_intervals(sorted([*self._base, *holds]))

    def evolve(self, **changes) -> "FrozenSchedule":
        new = FrozenSchedule(**{**{name: getattr(self, name) for name in SCHEDULE_FIELDS}, **changes})
        if changes.keys() <= {"busy", "holds"} and self._duty is not None:
            new._duty = self._duty  # the same hours and time off
        return new


def freeze_resources(res: Resources, closures: frozenset[date]) -> Resources:
    return Resources({i: freeze(sc, closures) for i, sc in res.chairs.items()},
                     {i: freeze(sc, closures) for i, sc in res.hygienists.items()})


def freeze(s: DentistSchedule, closures: frozenset[date]) -> FrozenSchedule:
    kw = {name: getattr(s, name) for name in SCHEDULE_FIELDS}
    kw.update(hours={d: sorted(b) for d, b in s.hours.items()}, time_off=dict(s.time_off), busy=dict(s.busy),
              overrides={d: sorted(b) for d, b in s.overrides.items()}, holds=dict(s.holds), closures=closures)
    return FrozenSchedule(**kw)


@dataclass(frozen=True)
class State:
    """Everything a reader needs, swapped as one reference."""

    schedules: Mapping[int, FrozenSchedule]  # active dentists only, by id
    catalogue: Catalogue
    window_start: datetime
    window_end: datetime
    closures: frozenset[date] = frozenset()
    # appointments of dentists not (yet) active: kept so a dentist who appears gets them
    orphans: Mapping[int, Mapping[int, tuple[datetime, datetime]]] = field(default_factory=dict)
    # the chairs and hygienists (bot.resources), each a FrozenSchedule
    resources: Resources = field(default_factory=Resources)

    @property
    def usable_end(self) -> datetime:
        return self.window_end - EDGE_MARGIN

    @property
    def services(self) -> Mapping[int, ServiceInfo]:
        return self.catalogue.services

    @property
    def dentists(self) -> Mapping[int, DentistInfo]:
        return self.catalogue.dentists


_FRACTION = re.compile(r"(\.\d+)")


def parse_ts(value: Any) -> datetime:
    """An ISO-8601 instant as PostgreSQL's JSON writes it (any fraction length, any offset)."""
    if isinstance(value, datetime):
        dt = value
    else:
        s = str(value).strip().replace(" ", "T", 1)
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        s = _FRACTION.sub(lambda m: (m.group(1) + "000000")[:7], s, count=1)
        if re.search(r"[+-]\d\d$", s):  # "+00" → "+00:00"
            s += ":00"
        dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {value!r}")
    return dt.astimezone(UTC)
