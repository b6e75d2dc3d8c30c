"""The demo clinic: three dentists, two hygienists, four chairs, eight services, weekly hours
with lunch breaks, time off, 24 patients and upcoming visits, in the clinic's time zone. The
cleaning is the hygienists' (its dentist of record examines at the end) and is recalled every
six months; every service needs a chair.

Idempotent: rows are matched by natural keys (names, phone numbers); running it
again adds nothing. Upcoming visits are created only when the clinic has none.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from .db import session_scope
from .models import (Appointment, Dentist, Hygienist, HygienistWorkingHours, Operatory, Patient, Service, TimeOff,
                     WorkingHours)
from .resources import Needs, load_resources
from .settings import Settings

log = logging.getLogger(__name__)

# name, minutes, price in cents, description, buffer after (minutes)
SERVICES = [
    ("Cleaning", 45, 14000, "Check-up, scale and polish", 0),
    ("Consultation", 30, 7500, "Examination and treatment plan", 0),
    ("Filling", 60, 18000, "Composite (white) filling", 0),
    ("Extraction", 45, 25000, "Simple tooth extraction", 15),
    ("Root canal", 90, 95000, "Root canal treatment, one sitting", 15),
    ("Crown", 90, 110000, "Porcelain crown fitting", 10),
    ("Whitening", 60, 35000, "In-chair whitening", 0),
    ("Emergency visit", 30, 15000, "Same-day pain relief and assessment", 0),
]

# name, specialty, {ISO weekday: [(start, end), ...]} -- a gap between blocks is lunch
_MORNING_AFTERNOON = [(time(9), time(12, 30)), (time(13, 30), time(17))]
DENTISTS = [
    ("Dr. Maria Alvarez", "General dentistry",
     {d: _MORNING_AFTERNOON for d in (1, 2, 3, 4, 5)}),
    ("Dr. James Chen", "Endodontics",
     {1: [(time(8), time(12)), (time(13), time(16))],
      3: [(time(8), time(12)), (time(13), time(16))],
      5: [(time(8), time(12)), (time(13), time(16))],
      6: [(time(9), time(13))]}),
    ("Dr. Priya Patel", "Cosmetic dentistry",
     {2: [(time(11), time(14)), (time(15), time(19))],
      4: [(time(11), time(14)), (time(15), time(19))],
      5: [(time(10), time(13)), (time(14), time(18))]}),
]

# Between them the hygienists cover every dentist's hours, so a cleaning is offered whenever its
# dentist of record is in.
HYGIENISTS = [
    ("Sam Rivera", {d: [(time(8), time(12, 30)), (time(13), time(17))] for d in (1, 2, 3, 4, 5)}),
    ("Noor Haddad", {2: [(time(11), time(19))], 4: [(time(11), time(19))], 5: [(time(10), time(18))],
                     6: [(time(9), time(13))]}),
]
OPERATORIES = ["Chair 1", "Chair 2", "Chair 3", "Chair 4"]
HYGIENE = {"Cleaning": "6 months"}  # the hygienists' services and their recall intervals (SQL intervals)

PATIENTS = [
    ("Emma Johnson", "+12125550101"), ("Liam Smith", "+12125550102"), ("Olivia Williams", "+12125550103"),
    ("Noah Brown", "+12125550104"), ("Ava Jones", "+12125550105"), ("Elijah Garcia", "+12125550106"),
    ("Sophia Miller", "+12125550107"), ("Lucas Davis", "+12125550108"), ("Isabella Rodriguez", "+12125550109"),
    ("Mason Martinez", "+12125550110"), ("Mia Hernandez", "+12125550111"), ("Logan Lopez", "+12125550112"),
    ("Amelia Gonzalez", "+12125550113"), ("Ethan Wilson", "+12125550114"), ("Harper Anderson", "+12125550115"),
    ("James Thomas", "+12125550116"), ("Evelyn Taylor", "+12125550117"), ("Benjamin Moore", "+12125550118"),
    ("Abigail Jackson", "+12125550119"), ("Henry Martin", "+12125550120"), ("Emily Lee", "+12125550121"),
    ("Alexander Perez", "+12125550122"), ("Charlotte Thompson", "+12125550123"), ("Daniel White", "+12125550124"),
]


def _next_weekday(start: date, iso_weekday: int) -> date:
    return start + timedelta(days=(iso_weekday - start.isoweekday()) % 7 or 7)


def seed(engine: Engine, settings: Settings, *, today: date | None = None) -> dict[str, int]:
    """Create what is missing of the demo clinic; return how many rows of each kind were added."""
    tz = settings.tz
    today = today or datetime.now(tz).date()
    added = {"dentists": 0, "services": 0, "working_hours": 0, "time_off": 0, "patients": 0, "appointments": 0,
             "hygienists": 0, "operatories": 0}
    with session_scope(engine) as s:
        services = {sv.name: sv for sv in s.scalars(select(Service))}
        for name, minutes, cents, desc, after in SERVICES:
            if name not in services:
                services[name] = Service(name=name, duration_minutes=minutes, price_cents=cents,
                                         description=desc, buffer_after_minutes=after,
                                         min_notice_minutes=0 if name == "Emergency visit" else None,
                                         performed_by="hygienist" if name in HYGIENE else "dentist")
                s.add(services[name])
                added["services"] += 1
                if name in HYGIENE:  # "6 months" is calendar months in SQL, not 180 days
                    s.flush()
                    s.execute(text("UPDATE services SET recall_interval = CAST(:every AS interval) WHERE id = :id"),
                              {"every": HYGIENE[name], "id": services[name].id})
        dentists = {d.full_name: d for d in s.scalars(select(Dentist))}
        for name, specialty, hours in DENTISTS:
            if name in dentists:
                continue
            dentist = dentists[name] = Dentist(full_name=name, specialty=specialty)
            s.add(dentist)
            s.flush()
            for weekday, blocks in hours.items():
                for start, end in blocks:
                    s.add(WorkingHours(dentist_id=dentist.id, weekday=weekday, start_time=start, end_time=end))
                    added["working_hours"] += 1
            added["dentists"] += 1
        chairs = set(s.scalars(select(Operatory.name)))
        for name in OPERATORIES:
            if name not in chairs:
                s.add(Operatory(name=name))
                added["operatories"] += 1
        hygienists = set(s.scalars(select(Hygienist.full_name)))
        for name, hours in HYGIENISTS:
            if name in hygienists:
                continue
            hygienist = Hygienist(full_name=name)
            s.add(hygienist)
            s.flush()
            for weekday, blocks in hours.items():
                for start, end in blocks:
                    s.add(HygienistWorkingHours(hygienist_id=hygienist.id, weekday=weekday, start_time=start,
                                                end_time=end))
            added["hygienists"] += 1
        known = set(s.scalars(select(Patient.phone)))
        for name, phone in PATIENTS:
            if phone not in known:
                s.add(Patient(full_name=name, phone=phone, email=name.lower().replace(" ", ".") + "@example.com"))
                added["patients"] += 1
        s.flush()

        chen = dentists["Dr. James Chen"]
        if not s.scalar(select(func.count()).select_from(TimeOff).where(TimeOff.dentist_id == chen.id)):
            off_day = _next_weekday(today + timedelta(days=7), 3)  # a Wednesday conference, 1-2 weeks out
            s.add(TimeOff(dentist_id=chen.id, reason="Conference",
                          starts_at=datetime.combine(off_day, time(0), tz),
                          ends_at=datetime.combine(off_day + timedelta(days=1), time(0), tz)))
            alvarez = dentists["Dr. Maria Alvarez"]
            friday = _next_weekday(today, 5)
            s.add(TimeOff(dentist_id=alvarez.id, reason="School event",
                          starts_at=datetime.combine(friday, time(13, 30), tz),
                          ends_at=datetime.combine(friday, time(17), tz)))
            added["time_off"] += 2

        upcoming = s.scalar(select(func.count()).select_from(Appointment).where(
            Appointment.starts_at > datetime.now(tz), Appointment.status != "cancelled"))
        if not upcoming:
            patients = list(s.scalars(select(Patient).order_by(Patient.id).limit(8)))
            plan = [  # (patient index, dentist, service, weekday, local time, status)
                (0, "Dr. Maria Alvarez", "Cleaning", 2, time(9), "confirmed"),
                (0, "Dr. Priya Patel", "Whitening", 4, time(15), "pending"),
                (1, "Dr. Maria Alvarez", "Filling", 2, time(10), "confirmed"),
                (2, "Dr. James Chen", "Root canal", 1, time(8), "confirmed"),
                (3, "Dr. James Chen", "Consultation", 5, time(13), "pending"),
                (4, "Dr. Priya Patel", "Crown", 5, time(10), "confirmed"),
                (5, "Dr. Maria Alvarez", "Extraction", 4, time(13, 30), "pending"),
                (6, "Dr. James Chen", "Cleaning", 6, time(9), "pending"),
                (7, "Dr. Priya Patel", "Consultation", 2, time(11), "confirmed"),
            ]
            for idx, dname, sname, weekday, at, status in plan:
                if idx >= len(patients):
                    continue
                day = _next_weekday(today, weekday)
                starts = datetime.combine(day, at, tz)
                service = services[sname]
                ends = starts + timedelta(minutes=service.duration_minutes)
                buffers = (timedelta(minutes=service.buffer_before_minutes),
                           timedelta(minutes=service.buffer_after_minutes))
                pools = load_resources(s, starts, ends).view(Needs.of(service), tz=tz, now=None, holder=None,
                                                             buffers=buffers)
                place = pools.pick(starts, ends, pools.held(starts, ends)) if pools.limits else {}
                if place is None:  # no chair (or hygienist) free then: the demo goes without it
                    continue
                s.add(Appointment(patient_id=patients[idx].id, dentist_id=dentists[dname].id,
                                  service_id=service.id, starts_at=starts, status=status, ends_at=ends, **place))
                s.flush()
                added["appointments"] += 1
    log.info("seed: %s", added)
    return added


def is_empty(engine: Engine) -> bool:
    with session_scope(engine) as s:
        return not s.scalar(select(func.count()).select_from(Dentist))
