"""The availability engine on hand-made diaries (pure) and loaded from PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import psycopg
import pytest

from bot.availability import DentistSchedule, free_slots, load_schedules, nearest_slots, within_hours
from bot.db import session_scope

NY = ZoneInfo("America/New_York")
UTC = timezone.utc
MIN30 = timedelta(minutes=30)


def local(d: date, h: int, m: int = 0) -> datetime:
    return datetime.combine(d, time(h, m), NY).astimezone(UTC)


def day_range(d: date):
    return local(d, 0), local(d + timedelta(days=1), 0)


def starts(slots) -> list[str]:
    return [s.starts_at.astimezone(NY).strftime("%H:%M") for s in slots]


MONDAY = date(2030, 1, 7)


def test_lunch_break_is_a_gap():
    sched = DentistSchedule(1, hours={1: [(time(9), time(10)), (time(11), time(12))]})
    got = free_slots([sched], MIN30, *day_range(MONDAY), tz=NY, step=timedelta(minutes=15))
    assert starts(got) == ["09:00", "09:15", "09:30", "11:00", "11:15", "11:30"]


def test_time_off_and_partial_overlap_with_a_booking():
    sched = DentistSchedule(1, hours={1: [(time(9), time(12))]},
                            time_off={7: (local(MONDAY, 9), local(MONDAY, 10))},
                            busy={3: (local(MONDAY, 10, 40), local(MONDAY, 11, 10))})
    got = free_slots([sched], MIN30, *day_range(MONDAY), tz=NY, step=timedelta(minutes=15))
    # 10:00 ends 10:30 (free); 10:15 would end 10:45 (overlaps 10:40); 11:15 is the first after
    assert starts(got) == ["10:00", "11:15", "11:30"]


def test_past_slots_are_never_offered():
    sched = DentistSchedule(1, hours={1: [(time(9), time(11))]})
    now = local(MONDAY, 9, 50)
    got = free_slots([sched], MIN30, now, local(MONDAY, 23), tz=NY, step=timedelta(minutes=15))
    assert starts(got) == ["10:00", "10:15", "10:30"]


def test_dentist_with_no_hours_has_no_slots():
    assert free_slots([DentistSchedule(9)], MIN30, *day_range(MONDAY), tz=NY) == []


@pytest.mark.parametrize("dst_day,offset_hours", [(date(2026, 3, 8), -4), (date(2026, 11, 1), -5)])
def test_dst_day_keeps_local_wall_times(dst_day, offset_hours):
    # Sunday hours 9–10: on both DST change days the slots are still 9:00 local,
    # on that day's own UTC offset (EDT -4 after spring forward, EST -5 after fall back)
    sched = DentistSchedule(1, hours={7: [(time(9), time(10))]})
    got = free_slots([sched], MIN30, *day_range(dst_day), tz=NY, step=MIN30)
    assert starts(got) == ["09:00", "09:30"]
    assert got[0].starts_at.hour == 9 - offset_hours
    assert got[0].starts_at.astimezone(NY).utcoffset() == timedelta(hours=offset_hours)


def test_block_spanning_the_spring_forward_gap_has_real_durations():
    # 1:00–4:00 local on 2026-03-08 is only two real hours long
    sched = DentistSchedule(1, hours={7: [(time(1), time(4))]})
    got = free_slots([sched], timedelta(hours=1), *day_range(date(2026, 3, 8)), tz=NY, step=timedelta(hours=1))
    assert [s.ends_at - s.starts_at for s in got] == [timedelta(hours=1)] * 2
    assert starts(got) == ["01:00", "03:00"]


def test_buffers_keep_distance_from_other_visits():
    sched = DentistSchedule(1, hours={1: [(time(9), time(12))]},
                            busy={1: (local(MONDAY, 10), local(MONDAY, 10, 45))})  # includes its own buffer
    got = free_slots([sched], MIN30, *day_range(MONDAY), tz=NY, step=timedelta(minutes=15),
                     buffer_before=timedelta(minutes=15), buffer_after=timedelta(minutes=15))
    # 09:15 + 30 min + 15 min buffer ends exactly at 10:00; 09:30 would reach into the visit.
    # Buffers may reach outside the working block (cleanup after closing time is fine).
    assert starts(got) == ["09:00", "09:15", "11:00", "11:15", "11:30"]


def test_any_dentist_merges_in_time_order_and_nearest_picks_closest():
    a = DentistSchedule(1, hours={1: [(time(9), time(10))]})
    b = DentistSchedule(2, hours={1: [(time(9, 30), time(11))]})
    got = free_slots([a, b], MIN30, *day_range(MONDAY), tz=NY, step=MIN30)
    assert [(s.starts_at.astimezone(NY).strftime("%H:%M"), s.dentist_id) for s in got] == [
        ("09:00", 1), ("09:30", 1), ("09:30", 2), ("10:00", 2), ("10:30", 2)]
    near = nearest_slots([a, b], MIN30, local(MONDAY, 10, 20), tz=NY, not_before=local(MONDAY, 0), count=2,
                         step=MIN30)
    assert [(s.starts_at.astimezone(NY).strftime("%H:%M"), s.dentist_id) for s in near] == [
        ("10:00", 2), ("10:30", 2)]


def test_within_hours_checks_block_and_time_off():
    sched = DentistSchedule(1, hours={1: [(time(9), time(12))]},
                            time_off={1: (local(MONDAY, 11), local(MONDAY, 12))})
    assert within_hours(sched, local(MONDAY, 9), local(MONDAY, 9, 30), NY)
    assert not within_hours(sched, local(MONDAY, 8, 45), local(MONDAY, 9, 15), NY)
    assert not within_hours(sched, local(MONDAY, 10, 45), local(MONDAY, 11, 15), NY)
    assert not within_hours(sched, local(MONDAY + timedelta(days=1), 9), local(MONDAY + timedelta(days=1), 10), NY)


def test_loaded_from_postgres_matches_the_rows(engine, db_url):
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO dentists (id, full_name) VALUES (1, 'A'), (2, 'B')")
        conn.execute("INSERT INTO patients (id, full_name) VALUES (1, 'P')")
        conn.execute("INSERT INTO services (id, name, duration_minutes, price_cents, buffer_after_minutes)"
                     " VALUES (1, 'S', 30, 100, 10)")
        conn.execute("INSERT INTO working_hours (dentist_id, weekday, start_time, end_time)"
                     " VALUES (1, 1, '09:00', '12:00'), (1, 1, '13:00', '15:00')")
        conn.execute("INSERT INTO time_off (dentist_id, starts_at, ends_at) VALUES (1, %s, %s)",
                     (local(MONDAY, 13), local(MONDAY, 15)))
        conn.execute("INSERT INTO appointments (patient_id, dentist_id, service_id, starts_at, ends_at, status)"
                     " VALUES (1, 1, 1, %s, %s, 'confirmed'), (1, 1, 1, %s, %s, 'cancelled')",
                     (local(MONDAY, 9), local(MONDAY, 9, 30), local(MONDAY, 10), local(MONDAY, 10, 30)))
    with session_scope(engine) as s:
        schedules = load_schedules(s, *day_range(MONDAY))
    assert set(schedules) == {1, 2}
    assert schedules[1].hours == {1: [(time(9), time(12)), (time(13), time(15))]}
    assert list(schedules[1].time_off.values()) == [(local(MONDAY, 13), local(MONDAY, 15))]
    # the cancelled visit frees its time; the live one holds it plus its 10-minute buffer
    assert list(schedules[1].busy.values()) == [(local(MONDAY, 9), local(MONDAY, 9, 40))]
    got = free_slots(schedules.values(), MIN30, *day_range(MONDAY), tz=NY, step=timedelta(minutes=15))
    assert starts(got)[:3] == ["09:45", "10:00", "10:15"]
    assert starts(got)[-1] == "11:30"
