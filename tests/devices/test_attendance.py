"""Attendance and patrol coverage (考勤与巡查覆盖) worked out from fixes stored in the real
position table of the tiny city (tests/conftest.py): two communities of two 0.001° grids."""
from __future__ import annotations

import csv
import datetime as dt
import io
import math

import pytest

from devices import attendance, attendance_report, partitions
from devices.registry import add_unit
from devices.shifts import add_shift
from gis.errors import Forbidden, NotFound
from workflows.cases import LOCAL_TZ

DAY = dt.date(2026, 3, 2)
EAST_GRID1, EAST_GRID2 = "430223001001001", "430223001001002"     # 东正社区, the patrol area
IN_1, IN_2 = (113.3405, 27.0005), (113.3415, 27.0005)              # centres of the two area grids
OUTSIDE = (113.3425, 27.0005)                                        # 西正社区, next door
RULES = attendance.Rules()                                           # 10 min grace, 10 min early, 5 min gap


def at(hh: int, mm: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm), tzinfo=LOCAL_TZ)


def put_fixes(db, unit_id: int, fixes: list[tuple[dt.datetime, tuple[float, float]]], flags: int = 0,
              device: str | None = None) -> None:
    """Store fixes the way the ingest does (owner connection, the day's partitions made first)."""
    for day in {partitions.local_day(t) for t, _ in fixes}:
        partitions.ensure(db, day)
    with db.cursor() as cur:
        cur.executemany("INSERT INTO position (device, fix_time, unit_id, received_at, lon, lat, flags)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        [(device or f"unit:{unit_id}", t, unit_id, t, lon, lat, flags) for t, (lon, lat) in fixes])


def every_minute(start: dt.datetime, end: dt.datetime, where: tuple[float, float]):
    """Fixes at `where` every minute from start to end, both included."""
    n = int((end - start).total_seconds() // 60)
    return [(start + dt.timedelta(minutes=k), where) for k in range(n + 1)]


def sphere_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    (lon1, lat1), (lon2, lat2) = (tuple(map(math.radians, p)) for p in (a, b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371000 * math.asin(math.sqrt(h))


def patrol_day(db, tiny_city) -> dict:
    """Units of the city department on DAY (08:00-12:00 in 东正社区) and one water unit:
    diligent (ok), slack (late, silent for an hour, left early, wandered out), absent,
    and the water department's unit (ok, another department)."""
    city, water = tiny_city["city_dept"], tiny_city["water_dept"]
    ids = {}
    for key, dept in (("diligent", city), ("slack", city), ("absent", city), ("water", water)):
        ids[key] = add_unit(db, name=f"监督员{key}", kind="inspector", dept=dept, actor="test")
        ids[key + "_shift"] = add_shift(db, unit_id=ids[key], starts_at=at(8), ends_at=at(12),
                                        areas=["430223001001"], actor="test")
    # diligent: 08:05-09:59 in grid 1, 10:00-11:55 in grid 2; a flagged fix far away is ignored.
    put_fixes(db, ids["diligent"], every_minute(at(8, 5), at(9, 59), IN_1) + every_minute(at(10), at(11, 55), IN_2))
    put_fixes(db, ids["diligent"], [(at(9, 30, ) + dt.timedelta(seconds=30), (113.5, 27.3))], flags=2)
    # slack: arrives 08:30, silent 09:00-10:00, inside until 11:00, then outside until 11:30.
    put_fixes(db, ids["slack"], every_minute(at(8, 30), at(9), IN_1) + every_minute(at(10), at(11), IN_1)
              + every_minute(at(11, 1), at(11, 30), OUTSIDE))
    # absent: only outside, and inside with poor accuracy (flag 4) — neither counts.
    put_fixes(db, ids["absent"], every_minute(at(8), at(9), OUTSIDE))
    put_fixes(db, ids["absent"], every_minute(at(9, 1), at(10), IN_1), flags=4)
    put_fixes(db, ids["water"], every_minute(at(8), at(12), IN_2))
    # Alarms of the slack unit's shift: two out-of-area (one cleared), one offline.
    for kind, cleared in (("out_of_area", at(11, 20)), ("out_of_area", None), ("offline", at(10))):
        db.execute("INSERT INTO unit_alarm (unit_id, shift_id, kind, since, raised_at, cleared_at, message)"
                   " VALUES (%s, %s, %s, %s, %s, %s, 'test')",
                   (ids["slack"], ids["slack_shift"], kind, at(9, 5), at(9, 10), cleared))
    return ids


def _by_unit(report: dict) -> dict[int, dict]:
    return {r["unit"]["id"]: r for r in report["shifts"]}


def test_a_diligent_unit_is_on_time_with_its_time_split_between_the_grids(db, tiny_city):
    ids = patrol_day(db, tiny_city)
    r = attendance.shift_report(db, ids["diligent_shift"], RULES)
    assert r["status"] == "ok" and not r["late"] and not r["early_leave"] and r["ended"]
    assert r["first_inside_at"] == at(8, 5).isoformat() and r["last_inside_at"] == at(11, 55).isoformat()
    assert r["minutes_inside"] == 230.0                      # 08:05 → 11:55, every interval inside
    assert r["fixes"] == r["fixes_inside"] == 231             # the flagged fix is not among them
    # One move of 0.001° east at 27° N; the flagged jump to (113.5, 27.3) adds nothing.
    assert r["distance_km"] * 1000 == pytest.approx(sphere_m(IN_1, IN_2), rel=2e-3)
    assert [(g["code"], g["minutes"], g["fixes"]) for g in r["grids"]] == [(EAST_GRID1, 115.0, 115),
                                                                          (EAST_GRID2, 115.0, 116)]
    assert r["grids"][0]["name"] == "第001网格"
    assert (r["area_grids"], r["grids_visited"], r["coverage_pct"], r["grids_missed"]) == (2, 2, 100.0, [])
    assert r["alarm_total"] == 0 and r["alarms"] == {"out_of_area": 0, "stationary": 0, "offline": 0, "sos": 0}


def test_late_early_and_a_silent_hour_counted_as_the_gap_only(db, tiny_city):
    ids = patrol_day(db, tiny_city)
    r = attendance.shift_report(db, ids["slack_shift"], RULES)
    assert r["status"] == "late_early" and r["late"] and r["early_leave"]
    assert (r["late_minutes"], r["early_minutes"]) == (30.0, 60.0)
    # 30 min (08:30-09:00) + the silent hour counted as the 5 min gap + 60 min (10:00-11:00);
    # the step out at 11:00 → 11:01 and the half hour outside do not count.
    assert r["minutes_inside"] == 95.0
    assert r["distance_km"] * 1000 == pytest.approx(sphere_m(IN_1, OUTSIDE), rel=2e-3)
    assert (r["area_grids"], r["grids_visited"], r["coverage_pct"], r["grids_missed"]) == (2, 1, 50.0, [EAST_GRID2])
    assert [g["code"] for g in r["grids"]] == [EAST_GRID1]     # time outside the area goes to no grid
    assert r["alarms"] == {"out_of_area": 2, "stationary": 0, "offline": 1, "sos": 0} and r["alarm_total"] == 3


def test_absent_without_a_good_fix_inside(db, tiny_city):
    ids = patrol_day(db, tiny_city)
    r = attendance.shift_report(db, ids["absent_shift"], RULES)
    assert r["status"] == "absent" and r["absent"] and not r["late"]
    assert r["minutes_inside"] == 0.0 and r["fixes_inside"] == 0 and r["first_inside_at"] is None
    assert r["fixes"] == 61 and r["distance_km"] == 0.0        # stood still outside
    assert (r["grids_visited"], r["coverage_pct"]) == (0, 0.0)


def test_thresholds_come_from_the_settings(db, tiny_city, settings):
    ids = patrol_day(db, tiny_city)
    lenient = attendance.Rules.from_settings(settings.model_copy(update={
        "late_grace_minutes": 45, "early_leave_minutes": 90, "presence_gap_minutes": 60}))
    r = attendance.shift_report(db, ids["slack_shift"], lenient)
    assert r["status"] == "ok" and r["minutes_inside"] == 150.0    # the silent hour now counts whole


def test_a_running_shift_is_not_yet_early_and_a_coming_one_is_pending(db, tiny_city):
    ids = patrol_day(db, tiny_city)
    running = attendance.shift_report(db, ids["slack_shift"], RULES, now=at(11, 10))
    assert running["status"] == "late" and not running["ended"] and not running["early_leave"]
    coming = attendance.shift_report(db, ids["absent_shift"], RULES, now=at(8, 5))
    assert coming["status"] == "pending"
    assert attendance.shift_report(db, ids["absent_shift"], RULES, now=at(8, 11))["status"] == "absent"


def test_the_day_report_of_a_department(db, tiny_city):
    ids = patrol_day(db, tiny_city)
    # Not on the day: a shift starting the next morning; on the day: one crossing midnight,
    # with fixes in both days' partitions.
    add_shift(db, unit_id=ids["diligent"], starts_at=at(8, day=DAY + dt.timedelta(days=1)),
              ends_at=at(12, day=DAY + dt.timedelta(days=1)), areas=["430223001001"], actor="test")
    night = add_shift(db, unit_id=ids["diligent"], starts_at=at(23), ends_at=at(23) + dt.timedelta(hours=4),
                      areas=[EAST_GRID1], actor="test")
    put_fixes(db, ids["diligent"], every_minute(at(23, 2), at(23) + dt.timedelta(hours=3, minutes=58), IN_1))
    city = db.execute("SELECT id FROM department WHERE name = %s", (tiny_city["city_dept"],)).fetchone()["id"]
    report = attendance.day_report(db, DAY, RULES, dept_id=city)
    assert report["dept"] == {"id": city, "name": tiny_city["city_dept"]} and report["date"] == "2026-03-02"
    assert sorted(r["shift_id"] for r in report["shifts"]) == sorted(
        [ids["diligent_shift"], ids["slack_shift"], ids["absent_shift"], night])
    crossing = next(r for r in report["shifts"] if r["shift_id"] == night)
    assert crossing["status"] == "ok" and crossing["minutes_inside"] == 236.0
    assert (crossing["area_grids"], crossing["coverage_pct"]) == (1, 100.0)
    s = report["summary"]
    assert (s["shifts"], s["ok"], s["late_early"], s["absent"], s["alarm_total"]) == (4, 2, 1, 1, 3)
    assert s["minutes_inside"] == 230.0 + 95.0 + 236.0
    # Every unit when no department is given: the water unit too.
    assert ids["water"] in _by_unit(attendance.day_report(db, DAY, RULES))
    assert attendance.day_report(db, DAY + dt.timedelta(days=3), RULES, dept_id=city)["shifts"] == []
    with pytest.raises(NotFound, match="department 9999"):
        attendance.day_report(db, DAY, RULES, dept_id=9999)


def test_a_drawn_area_is_measured_against_the_grids_it_overlaps(db, tiny_city):
    unit = add_unit(db, name="巡查车", kind="vehicle", actor="test")
    x0, x1 = 113.342, 113.343                                     # exactly grid 430223001002001
    square = {"type": "Polygon", "coordinates": [[[x0, 27.0], [x1, 27.0], [x1, 27.001], [x0, 27.001], [x0, 27.0]]]}
    shift = add_shift(db, unit_id=unit, starts_at=at(8), ends_at=at(9), polygon=square, actor="test")
    put_fixes(db, unit, every_minute(at(8), at(9), OUTSIDE))
    r = attendance.shift_report(db, shift, RULES)
    assert r["area_drawn"] and r["area_grids"] == 1                # the neighbours only touch its edges
    assert (r["status"], r["minutes_inside"], r["coverage_pct"]) == ("ok", 60.0, 100.0)
    assert r["grids"][0]["code"] == "430223001002001" and r["dept"] is None


def test_one_shift_is_refused_to_another_department_and_unknown_shifts_are_not_found(db, tiny_city):
    ids = patrol_day(db, tiny_city)
    water = db.execute("SELECT id FROM department WHERE name = %s", (tiny_city["water_dept"],)).fetchone()["id"]
    assert attendance.shift_report(db, ids["water_shift"], RULES, dept_limit=water)["status"] == "ok"
    with pytest.raises(Forbidden, match="another department"):
        attendance.shift_report(db, ids["slack_shift"], RULES, dept_limit=water)
    with pytest.raises(NotFound, match="shift 424242"):
        attendance.shift_report(db, 424242, RULES)


def test_csv_has_a_bom_and_a_row_per_shift_in_chinese_or_english(db, tiny_city):
    patrol_day(db, tiny_city)
    report = attendance.day_report(db, DAY, RULES)
    body = attendance_report.to_csv(report)
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:3] == ["部门", "巡查单元", "类型"] and len(rows) == 1 + 4
    slack = next(r for r in rows if r[1] == "监督员slack")
    assert slack[3:8] == ["08:00", "12:00", "08:30", "11:00", "迟到早退"]
    assert slack[rows[0].index("覆盖率")] == "50.0%" and slack[rows[0].index("越界")] == "2"
    assert "第001网格 430223001001001 95.0分钟" in slack[-1]
    english = list(csv.reader(io.StringIO(attendance_report.to_csv(report, "en").decode("utf-8-sig"))))
    assert english[0][1] == "Unit" and "Late and early leave" in {r[7] for r in english}
    assert any(r[7] == "缺勤" for r in rows)


def test_html_report_is_self_contained_and_escapes_names(db, tiny_city):
    unit = add_unit(db, name="<script>alert(1)</script>", kind="team", actor="test",
                    dept=tiny_city["city_dept"])
    add_shift(db, unit_id=unit, starts_at=at(8), ends_at=at(12), areas=["430223001001"], actor="test")
    report = attendance.day_report(db, DAY, RULES)
    page = attendance_report.to_html(report)
    assert "考勤与巡查覆盖日报" in page and "缺勤" in page and "<html lang=\"zh-CN\">" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page
    english = attendance_report.to_html(report, "en")
    assert "Daily attendance and patrol coverage" in english and "Absent" in english
