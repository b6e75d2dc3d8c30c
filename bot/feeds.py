"""The generation of each person's calendar feed URL (``calendar_feeds``, sql/012).

A feed token (``bot.links``) names the generation it was made in, and the feed (sync/feeds.py)
refuses any other. ``renew`` raises it: the person's own "new link", the front desk's for them,
and ``python -m bot user passwd`` / ``disable`` for a dentist's account (whoever held that
sign-in may have kept the URL). No row is generation 0.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from .db import session_scope
from .links import Feed
from .models import Appointment, CalendarFeed, Dentist, Patient

OWNERS = {"dentist": (Dentist, Appointment.dentist_id), "patient": (Patient, Appointment.patient_id)}


def generation_of(s, kind: str, ident: int) -> int:
    return s.scalar(select(CalendarFeed.generation).where(CalendarFeed.kind == kind,
                                                          CalendarFeed.owner_id == ident)) or 0


def current(engine, kind: str, ident: int) -> Feed:
    """The person's feed as its URL is now."""
    with session_scope(engine) as s:
        return Feed(kind, ident, generation_of(s, kind, ident))


def renew_in(s: Session, kind: str, ident: int) -> Feed:
    """The person's feed of the next generation, in the caller's transaction."""
    upsert = insert(CalendarFeed).values(kind=kind, owner_id=ident, generation=1)
    generation = s.scalar(upsert.on_conflict_do_update(
        index_elements=[CalendarFeed.kind, CalendarFeed.owner_id],
        set_={"generation": CalendarFeed.generation + 1, "renewed_at": func.now()},
    ).returning(CalendarFeed.generation))
    return Feed(kind, ident, generation)


def renew(engine, kind: str, ident: int) -> Feed | None:
    """The person's feed of the next generation (every earlier URL refused from now), or None
    when nobody has that id."""
    with session_scope(engine) as s:
        if s.get(OWNERS[kind][0], ident) is None:
            return None
        return renew_in(s, kind, ident)
