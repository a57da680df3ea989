"""Work calendar: deadlines in working time. Expected times are worked out by hand against
the seeded 2025/2026 schedules and office hours 08:30–12:00, 14:30–17:30 (390 min a day)."""
from __future__ import annotations

import logging
import random
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
import pytest
import yaml

from gis import catalog
from workflows.calendar import (
    TZ, CalendarError, LimitKind, TimeLimit, WorkCalendar, due_status,
)

WH, WD, NH = LimitKind.WORK_HOURS, LimitKind.WORK_DAYS, LimitKind.NATURAL_HOURS


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=TZ)


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar.load()


# ------------------------------------------------------------------- seeded schedule
def test_seed_years_load_without_gaps(cal):
    assert cal.years == (2025, 2026)
    assert cal.missing_years == ()
    assert cal.work_day_minutes == 390


@pytest.mark.parametrize("day, working", [
    (date(2026, 1, 2), False),    # 元旦 Friday
    (date(2026, 1, 4), True),     # 元旦调休 Sunday
    (date(2026, 2, 14), True),    # 春节调休 Saturday
    (date(2026, 2, 16), False),   # 除夕
    (date(2026, 2, 23), False),   # 正月初七, Monday
    (date(2026, 2, 24), True),
    (date(2026, 2, 28), True),    # 春节调休 Saturday
    (date(2026, 4, 6), False),    # 清明 Monday
    (date(2026, 5, 5), False),    # 劳动节 Tuesday
    (date(2026, 5, 9), True),     # 劳动节调休 Saturday
    (date(2026, 6, 19), False),   # 端午 Friday
    (date(2026, 9, 20), True),    # 国庆调休 Sunday
    (date(2026, 9, 25), False),   # 中秋 Friday
    (date(2026, 10, 7), False),   # 国庆 Wednesday
    (date(2026, 10, 10), True),   # 国庆调休 Saturday
    (date(2026, 10, 11), False),  # ordinary Sunday
    (date(2026, 3, 2), True),     # ordinary Monday
    (date(2025, 10, 8), False),   # 2025 国庆中秋 8 days
    (date(2025, 10, 11), True),   # 2025 国庆调休 Saturday
])
def test_working_days(cal, day, working):
    assert cal.is_working_day(day) is working


def test_day_names_and_periods(cal):
    assert cal.day_name(date(2026, 10, 10)) == "国庆节调休"
    assert cal.working_periods(date(2026, 3, 2)) == [(at(2026, 3, 2, 8, 30), at(2026, 3, 2, 12)),
                                                     (at(2026, 3, 2, 14, 30), at(2026, 3, 2, 17, 30))]
    assert cal.working_periods(date(2026, 10, 1)) == []


# ----------------------------------------------------------------------- deadlines
@pytest.mark.parametrize("start, limit, deadline", [
    # across the lunch break: 11:00–12:00, then 14:30–15:30
    (at(2026, 3, 2, 11), TimeLimit.work_hours(2), at(2026, 3, 2, 15, 30)),
    # reported during lunch: counting starts at 14:30
    (at(2026, 3, 2, 13), TimeLimit.work_hours(1), at(2026, 3, 2, 15, 30)),
    # ends exactly when the morning ends: 12:00, not 14:30
    (at(2026, 3, 2, 10), TimeLimit.work_hours(2), at(2026, 3, 2, 12)),
    # across a weekend: Fri 16:30–17:30 (60) + Mon 08:30–11:30 (180)
    (at(2026, 3, 6, 16, 30), TimeLimit.work_hours(4), at(2026, 3, 9, 11, 30)),
    # Friday 23:00: counting starts Monday 08:30
    (at(2026, 3, 6, 23), TimeLimit.work_hours(1), at(2026, 3, 9, 9, 30)),
    # 国庆: Wed 9/30 16:00–17:30 (90), 10/1–10/7 off, Thu 10/8 08:30–11:00 (150)
    (at(2026, 9, 30, 16), TimeLimit.work_hours(4), at(2026, 10, 8, 11)),
    # the 国庆调休 Saturday 10/10 is worked
    (at(2026, 10, 9, 16), TimeLimit.work_hours(4), at(2026, 10, 10, 11)),
    # the 国庆调休 Sunday 9/20 is worked; Saturday 9/19 is not
    (at(2026, 9, 19, 10), TimeLimit.work_hours(1), at(2026, 9, 20, 9, 30)),
    # 中秋 Fri–Sun
    (at(2026, 9, 24, 17), TimeLimit.work_hours(1), at(2026, 9, 28, 9)),
    # 春节: Fri 2/13 17:00–17:30, then the 调休 Saturday 2/14 from 08:30
    (at(2026, 2, 13, 17), TimeLimit.work_hours(2), at(2026, 2, 14, 10)),
    # Sat 2/14 17:00–17:30, 2/15–2/23 off, Tue 2/24 08:30–09:00
    (at(2026, 2, 14, 17), TimeLimit.work_hours(1), at(2026, 2, 24, 9)),
    # the closing 调休 Saturday 2/28
    (at(2026, 2, 27, 17), TimeLimit.work_hours(1), at(2026, 2, 28, 9)),
    # 2025 春节 (除夕 1/28 to 2/4) with the 调休 Sunday 1/26 before it
    (at(2025, 1, 25, 9), TimeLimit.work_hours(1), at(2025, 1, 26, 9, 30)),
    (at(2025, 1, 27, 17), TimeLimit.work_hours(1), at(2025, 2, 5, 9)),
    # natural hours run through midnight and holidays alike
    (at(2026, 10, 1, 23), TimeLimit.natural_hours(2), at(2026, 10, 2, 1)),
    (at(2026, 3, 6, 23, 50), TimeLimit.from_stage("自然时", 30), at(2026, 3, 7, 0, 20)),
    # 1 工作日 = one standard day: Monday 10:00 → Tuesday 10:00
    (at(2026, 3, 2, 10), TimeLimit.work_days(1), at(2026, 3, 3, 10)),
    # 2 工作日 from Tue 9/29 10:00: Wed 9/30 10:00, then over 国庆 to Thu 10/8 10:00
    (at(2026, 9, 29, 10), TimeLimit.work_days(2), at(2026, 10, 8, 10)),
    # 15 工作日 (私搭乱建) from Monday 08:30: the end of the third Friday
    (at(2026, 3, 2, 8, 30), TimeLimit.from_catalog("工作日", 15), at(2026, 3, 20, 17, 30)),
    # half a day = 195 working minutes
    (at(2026, 3, 2, 8, 30), TimeLimit.work_days(0.5), at(2026, 3, 2, 11, 45)),
    # a zero limit is due at once
    (at(2026, 3, 2, 20), TimeLimit.work_hours(0), at(2026, 3, 2, 20)),
])
def test_add(cal, start, limit, deadline):
    got = cal.add(start, limit)
    assert got == deadline
    assert got.tzinfo is TZ


def test_other_time_zones_are_converted(cal):
    start = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)          # 11:00 in Shanghai
    assert cal.add(start, TimeLimit.work_hours(2)) == at(2026, 3, 2, 15, 30)


def test_eight_hour_working_day_when_configured():
    cal = WorkCalendar.from_dict({2026: {"work_day_minutes": 480}})
    assert cal.work_day_minutes == 480
    # Mon 08:30: 390 minutes on Monday, the other 90 on Tuesday
    assert cal.add(at(2026, 3, 2, 8, 30), TimeLimit.work_days(1)) == at(2026, 3, 3, 10)
    assert cal.add(at(2026, 3, 2, 8, 30), TimeLimit.from_catalog("工作日", 1)) == at(2026, 3, 3, 10)
    assert cal.minutes_of(TimeLimit.work_days(2)) == 960
    # a 工作日 limit given in minutes is working minutes on any calendar
    assert cal.add(at(2026, 3, 2, 8, 30), TimeLimit(WD, 390)) == at(2026, 3, 2, 17, 30)


@pytest.mark.parametrize("day_minutes", [None, 480])
def test_time_left_round_trips_through_elapsed(day_minutes):
    # What a suspension does: measure what was left when the clock stopped, start it again later.
    cal = WorkCalendar.from_dict({2026: {} if day_minutes is None else {"work_day_minutes": day_minutes}})
    for limit in (TimeLimit.work_days(3), TimeLimit.work_hours(7), TimeLimit.natural_hours(40)):
        start = at(2026, 3, 2, 9, 10)
        deadline = cal.add(start, limit)
        paused_at = at(2026, 3, 2, 15, 20)
        left = cal.elapsed(paused_at, deadline, limit.kind)
        assert cal.add(paused_at, TimeLimit(limit.kind, left)) == deadline, limit
        # elapsed() gives whole minutes: a stop at hh:mm:30 loses under a minute, never gains
        paused_at = at(2026, 3, 2, 15, 20, 30)
        left = cal.elapsed(paused_at, deadline, limit.kind)
        again = cal.add(paused_at, TimeLimit(limit.kind, left))
        assert deadline - timedelta(minutes=1) < again <= deadline, limit


def test_seasonal_hours():
    hours = {"default": ["08:30-12:00", "14:30-17:30"],
             "seasons": [{"name": "夏季作息", "from": "05-01", "to": "09-30",
                          "periods": ["08:30-12:00", "15:00-18:00"]},
                         {"name": "冬季", "from": "12-15", "to": "01-15",   # wraps the new year
                          "periods": ["09:00-12:00", "14:00-17:00"]}]}
    cal = WorkCalendar.from_dict({2026: {"work_hours": hours}})
    assert cal.working_periods(date(2026, 7, 1))[1] == (at(2026, 7, 1, 15), at(2026, 7, 1, 18))
    assert cal.working_periods(date(2026, 1, 5))[0] == (at(2026, 1, 5, 9), at(2026, 1, 5, 12))
    assert cal.working_periods(date(2026, 12, 21))[0] == (at(2026, 12, 21, 9), at(2026, 12, 21, 12))
    assert cal.working_periods(date(2026, 10, 12))[1] == (at(2026, 10, 12, 14, 30), at(2026, 10, 12, 17, 30))
    # Thu 4/30 17:00–17:30 (old hours), then Fri 5/1 08:30–12:00 and 15:00–15:30 (summer hours)
    assert cal.add(at(2026, 4, 30, 17), TimeLimit.work_hours(4.5)) == at(2026, 5, 1, 15, 30)
    # one 工作日 is still the standard (default) day
    assert cal.work_day_minutes == 390


# ----------------------------------------------------------------- warn and status
def test_warn_at_eighty_percent(cal):
    # 4 工作时 from Monday 08:30: 192 minutes → 11:42; deadline 15:00
    start, limit = at(2026, 3, 2, 8, 30), TimeLimit.work_hours(4)
    assert cal.warn_at(start, limit) == at(2026, 3, 2, 11, 42)
    assert cal.add(start, limit) == at(2026, 3, 2, 15)
    # 5 工作时 (道路不洁) from 11:00: 240 minutes run out exactly at 17:30
    assert cal.warn_at(at(2026, 3, 2, 11), TimeLimit.work_hours(5)) == at(2026, 3, 2, 17, 30)
    assert cal.add(at(2026, 3, 2, 11), TimeLimit.work_hours(5)) == at(2026, 3, 3, 9, 30)
    # natural: 80% of 2 hours
    assert cal.warn_at(at(2026, 10, 1, 23), TimeLimit.natural_hours(2)) == at(2026, 10, 2, 0, 36)


def test_used_fraction(cal):
    start, limit = at(2026, 3, 2, 8, 30), TimeLimit.work_hours(4)
    assert cal.used_fraction(start, at(2026, 3, 2, 11, 42), limit) == pytest.approx(0.8)
    assert cal.used_fraction(start, at(2026, 3, 2, 13), limit) == pytest.approx(210 / 240)   # lunch
    assert cal.used_fraction(start, at(2026, 3, 2, 17, 30), limit) == pytest.approx(390 / 240)
    assert cal.used_fraction(start, at(2026, 3, 2, 13), limit, paused_minutes_of_kind=90) == pytest.approx(0.5)
    assert cal.used_fraction(start, at(2026, 3, 1), limit) == 0.0                            # before start


def test_due_status_transitions(cal):
    start, limit = at(2026, 3, 2, 8, 30), TimeLimit.work_hours(4)
    warn, deadline = cal.warn_at(start, limit), cal.add(start, limit)
    assert due_status(at(2026, 3, 2, 11, 41), warn, deadline) == "green"
    assert due_status(at(2026, 3, 2, 11, 42), warn, deadline) == "yellow"
    assert due_status(at(2026, 3, 2, 15), warn, deadline) == "yellow"        # at the deadline: not yet overdue
    assert due_status(at(2026, 3, 2, 15, 0, 1), warn, deadline) == "red"


# ------------------------------------------------------------ pauses and extensions
def test_closed_pause_moves_the_deadline(cal):
    start, limit = at(2026, 3, 2, 8, 30), TimeLimit.work_hours(4)       # plain deadline 15:00
    # paused 10:00–15:00 = 150 working minutes (10:00–12:00, 14:30–15:00) → 17:30
    pauses = [(at(2026, 3, 2, 10), at(2026, 3, 2, 15))]
    assert cal.deadline_with(start, limit, pauses) == at(2026, 3, 2, 17, 30)
    # a pause over non-working time changes nothing
    assert cal.deadline_with(start, limit, [(at(2026, 3, 2, 12), at(2026, 3, 2, 14, 30))]) == at(2026, 3, 2, 15)
    # a pause after the deadline changes nothing, nor one before the start
    assert cal.deadline_with(start, limit, [(at(2026, 3, 2, 16), at(2026, 3, 3, 16))]) == at(2026, 3, 2, 15)
    assert cal.deadline_with(start, limit, [(at(2026, 3, 1, 9), at(2026, 3, 2, 8))]) == at(2026, 3, 2, 15)


def test_a_later_pause_counts_once_the_first_has_moved_the_deadline(cal):
    start, limit = at(2026, 3, 2, 8, 30), TimeLimit.work_hours(2)       # plain deadline 10:30
    pauses = [(at(2026, 3, 2, 11), at(2026, 3, 2, 11, 15)),            # after 10:30, before 11:30
              (at(2026, 3, 2, 9), at(2026, 3, 2, 10))]                  # moves the deadline to 11:30
    assert cal.deadline_with(start, limit, pauses) == at(2026, 3, 2, 11, 45)
    # overlapping pauses count once
    overlapping = [(at(2026, 3, 2, 9), at(2026, 3, 2, 10)), (at(2026, 3, 2, 9, 30), at(2026, 3, 2, 10))]
    assert cal.deadline_with(start, limit, overlapping) == at(2026, 3, 2, 11, 30)


def test_open_pause_means_no_deadline_yet(cal):
    start, limit = at(2026, 3, 2, 8, 30), TimeLimit.work_hours(4)
    assert cal.deadline_with(start, limit, [(at(2026, 3, 2, 10), None)]) is None
    # suspended only after the limit ran out: the deadline stands (already overdue)
    assert cal.deadline_with(start, limit, [(at(2026, 3, 2, 16), None)]) == at(2026, 3, 2, 15)


def test_extensions_add_to_the_limit(cal):
    start, limit = at(2026, 3, 2, 8, 30), TimeLimit.work_hours(4)
    assert cal.deadline_with(start, limit, extensions=[TimeLimit.work_hours(1)]) == at(2026, 3, 2, 16)
    # + 1 工作日 = 240 + 390 minutes: all of Monday, then Tuesday 08:30–12:00 and 14:30–15:00
    assert cal.deadline_with(start, limit, extensions=[TimeLimit.work_days(1)]) == at(2026, 3, 3, 15)
    # pause and extension together, and the matching warn moment
    pauses = [(at(2026, 3, 2, 10), at(2026, 3, 2, 15))]
    assert cal.deadline_with(start, limit, pauses, [TimeLimit.work_hours(1)]) == at(2026, 3, 3, 9, 30)
    # 80% of 300 = 240 working minutes: 90 before the pause, 150 after 15:00 → 17:30
    assert cal.deadline_with(start, limit, pauses, [TimeLimit.work_hours(1)], fraction=0.8) == at(2026, 3, 2, 17, 30)
    with pytest.raises(ValueError, match="same clock"):
        cal.deadline_with(start, limit, extensions=[TimeLimit.natural_hours(1)])


# ------------------------------------------------------------------- refusals
def test_naive_datetimes_are_refused(cal):
    naive = datetime(2026, 3, 2, 10)
    limit = TimeLimit.work_hours(1)
    for call in (lambda: cal.add(naive, limit),
                 lambda: cal.elapsed(naive, at(2026, 3, 2, 11), WH),
                 lambda: cal.elapsed(at(2026, 3, 2, 9), naive, WH),
                 lambda: cal.warn_at(naive, limit),
                 lambda: cal.used_fraction(at(2026, 3, 2, 9), naive, limit),
                 lambda: cal.is_working_day(naive),
                 lambda: cal.deadline_with(at(2026, 3, 2, 9), limit, [(naive, None)]),
                 lambda: due_status(naive, at(2026, 3, 2, 9), at(2026, 3, 2, 10))):
        with pytest.raises(ValueError, match="naive datetime"):
            call()


def test_time_limit_validation():
    assert TimeLimit.from_catalog("工作日", 15) == TimeLimit(WD, 15 * 390, days=15)
    assert TimeLimit.from_catalog("工作时", 4) == TimeLimit(WH, 240)
    assert TimeLimit.from_stage("工作日", 480) == TimeLimit(WD, 480)        # working minutes
    assert str(TimeLimit.from_catalog("工作时", 2.5)) == "2.5 工作时"
    assert str(TimeLimit.work_days(15)) == "15 工作日"
    with pytest.raises(ValueError, match="unknown time limit kind"):
        TimeLimit.from_catalog("小时", 4)
    with pytest.raises(ValueError, match="non-negative"):
        TimeLimit.from_catalog("工作时", -1)
    with pytest.raises(ValueError, match="non-negative integer"):
        TimeLimit(WH, 1.5)
    with pytest.raises(ValueError, match="only 工作日 limits have days"):
        TimeLimit(WH, 60, days=1)


def test_standard_day_matches_the_default_hours(cal):
    from workflows.calendar import STANDARD_WORK_DAY_MINUTES
    assert STANDARD_WORK_DAY_MINUTES == cal.work_day_minutes == 390


def test_every_catalog_limit_parses(cal):
    doc = catalog.read_catalog()
    limits = [TimeLimit.from_catalog(**cls["limit"])
              for big in doc["events"].values() for cls in (big.get("classes") or {}).values()
              if "limit" in cls]
    stages = {name: TimeLimit.from_stage(**spec) for name, spec in doc["stage_limits"].items()}
    assert len(limits) >= 20
    assert stages["核实"] == TimeLimit(NH, 30) and stages["核查"] == TimeLimit(WH, 60)
    assert cal.minutes_of(TimeLimit.from_catalog("工作日", 15)) == 15 * 390
    for limit in limits:
        assert cal.add(at(2026, 3, 2, 9), limit) > at(2026, 3, 2, 9)


# --------------------------------------------------------------- missing years
def test_missing_year_falls_back_to_weekends_and_warns_once(caplog):
    cal = WorkCalendar.from_dict({2026: {}})
    assert cal.missing_years == ()
    with caplog.at_level(logging.WARNING, logger="workflows.calendar"):
        # Thu 2026-12-31 17:00: 30 minutes, then Fri 2027-01-01 counted as an ordinary Friday
        assert cal.add(at(2026, 12, 31, 17), TimeLimit.work_hours(1)) == at(2027, 1, 1, 9)
        assert cal.add(at(2026, 12, 31, 17), TimeLimit.work_hours(2)) == at(2027, 1, 1, 10)
        assert cal.is_working_day(date(2027, 1, 1)) is True
    assert cal.missing_years == (2027,)
    warnings = [r for r in caplog.records if "2027" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_gap_year_is_reported_at_once(caplog):
    with caplog.at_level(logging.WARNING, logger="workflows.calendar"):
        cal = WorkCalendar.from_dict({2025: {}, 2027: {}})
    assert cal.missing_years == (2026,)
    assert any("2026" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ bad files
GOOD = {"year": 2026, "holidays": [{"name": "元旦", "from": "2026-01-01", "to": "2026-01-03"}],
        "workdays": [{"name": "元旦调休", "date": "2026-01-04"}]}


def _with(**changes):
    doc = {**GOOD, **changes}
    return yaml.safe_dump(doc, allow_unicode=True)


@pytest.mark.parametrize("text, field, message", [
    (_with(holidays=[{"name": "元旦", "from": "2026-01-01", "to": "2026-02-30"}]),
     "holidays[0].to", "is not a date"),
    (_with(holidays=[{"name": "国庆节", "from": "2025-10-01", "to": "2025-10-07"}]),
     "holidays[0].from", "is not in 2026"),
    (_with(holidays=[{"name": "x", "from": "2026-05-05", "to": "2026-05-01"}]),
     "holidays[0].to", "before"),
    (_with(workdays=[{"name": "调休", "date": "2026-03-02"}]),
     "workdays[0].date", "already a working day"),
    (_with(workdays=[{"name": "调休", "date": "2026-01-03"}]),
     "workdays[0].date", "also listed under holidays"),
    (_with(work_hours={"default": ["08:30-12:60"]}), "work_hours.default[0]", "HH:MM"),
    (_with(work_hours={"default": ["14:30-17:30", "08:30-12:00"]}), "work_hours.default[1]", "in order"),
    (_with(work_hours={"seasons": []}), "work_hours", "missing 'default'"),
    (_with(work_day_minutes=0), "work_day_minutes", "between 1 and 1440"),
    (_with(year=2025), "year", "2026"),
    (_with(holiday=[]), "(top level)", "unknown key(s) holiday"),
    ("holidays: [{name: 元旦, from: 2026-01-01\n", None, "not valid YAML"),
    ("holidays:\n  - {name: 元旦, from: 2026-13-01}\n", None, "not valid YAML"),
])
def test_bad_calendar_file_names_file_and_field(tmp_path, text, field, message):
    (tmp_path / "2026.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(CalendarError) as err:
        WorkCalendar.load(tmp_path)
    text = str(err.value)
    assert "2026.yaml" in text and message in text
    if field:
        assert f": {field}: " in text


def test_file_names_and_cross_file_conflicts(tmp_path):
    (tmp_path / "calendar.yaml").write_text("{}", encoding="utf-8")
    with pytest.raises(CalendarError, match=r"calendar\.yaml: file name must be the year"):
        WorkCalendar.load(tmp_path)
    (tmp_path / "calendar.yaml").unlink()
    with pytest.raises(CalendarError, match="no calendar files"):
        WorkCalendar.load(tmp_path)
    # 2027's notice reaches back to 2026-12-27 as a working Sunday; 2026 says it is a holiday
    (tmp_path / "2026.yaml").write_text(
        "holidays: [{name: x, from: 2026-12-27, to: 2026-12-27}]\n", encoding="utf-8")
    (tmp_path / "2027.yaml").write_text("workdays: [{name: y, date: 2026-12-27}]\n", encoding="utf-8")
    with pytest.raises(CalendarError, match=r"2027\.yaml: 2026-12-27 is a working day here but a holiday in .*2026\.yaml"):
        WorkCalendar.load(tmp_path)


# --------------------------------------------------------- inverse and reference
def _random_start(rng: random.Random, whole_minutes: bool = False) -> datetime:
    base = at(2025, 1, 1)
    seconds = rng.randrange(0, 2 * 365 * 86400 - 40 * 86400)
    if whole_minutes:
        seconds -= seconds % 60
    return base + timedelta(seconds=seconds)


def _random_limit(rng: random.Random) -> TimeLimit:
    kind = rng.choice([WH, WD, NH])
    if kind is WD and rng.random() < 0.7:
        return TimeLimit.work_days(rng.choice([0, 0.5, 1, 2, rng.randint(1, 20)]))
    return TimeLimit(kind, rng.randint(0, 40 * 60))


def test_elapsed_is_the_inverse_of_add(cal):
    rng = random.Random(20260302)
    for _ in range(3000):
        start, limit = _random_start(rng), _random_limit(rng)
        deadline = cal.add(start, limit)
        assert deadline >= start
        assert cal.elapsed(start, deadline, limit.kind) == cal.minutes_of(limit), (start, limit)
        assert cal.elapsed(deadline, start, limit.kind) == -cal.minutes_of(limit)
        if limit.kind.counts_working_time and limit.minutes:
            # a work deadline always falls inside office hours (or at the end of a period)
            periods = cal.working_periods(deadline.date())
            assert any(a < deadline <= b for a, b in periods), (start, limit, deadline)
        # one minute less is never later
        if limit.minutes:
            budget = round(cal.minutes_of(limit))
            assert cal.add(start, TimeLimit(limit.kind, budget - 1)) <= deadline


def test_add_matches_minute_by_minute_reference(cal):
    @lru_cache(maxsize=None)
    def periods(d: date):
        return cal.working_periods(d)

    def naive_add(start: datetime, minutes: int) -> datetime:
        t, left = start, minutes
        while left > 0:
            if any(a <= t < b for a, b in periods(t.date())):
                left -= 1
            t += timedelta(minutes=1)
        return t

    rng = random.Random(7)
    for _ in range(150):
        start, minutes = _random_start(rng, whole_minutes=True), rng.randint(1, 8 * 60)
        assert cal.add(start, TimeLimit(WH, minutes)) == naive_add(start, minutes), (start, minutes)


def test_add_many_matches_add(cal):
    rng = random.Random(11)
    starts = [_random_start(rng) for _ in range(2000)]
    as_utc = np.array([s.astimezone(timezone.utc).replace(tzinfo=None) for s in starts], dtype="datetime64[us]")
    for limit in (TimeLimit.work_hours(4), TimeLimit.work_days(15), TimeLimit.natural_hours(2),
                  TimeLimit.work_hours(0)):
        got = cal.add_many(as_utc, limit)
        want = np.array([cal.add(s, limit).astimezone(timezone.utc).replace(tzinfo=None) for s in starts],
                        dtype="datetime64[us]")
        assert (got == want).all(), limit
    # aware datetimes in an object array work too
    assert (cal.add_many(np.array(starts[:10], dtype=object), TimeLimit.work_hours(4))
            == cal.add_many(as_utc[:10], TimeLimit.work_hours(4))).all()


def test_add_many_reaches_into_a_missing_year():
    cal = WorkCalendar.from_dict({2026: {}})
    start = np.array(["2026-12-31T09:00"], dtype="datetime64[us]")        # 17:00 in Shanghai
    assert cal.add_many(start, TimeLimit.work_hours(1))[0] == np.datetime64("2027-01-01T01:00", "us")
    assert cal.missing_years == (2027,)
