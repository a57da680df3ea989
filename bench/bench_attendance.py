"""Attendance benchmark (issue 4, "Attendance and reports"): a department's daily report
beside a plain count(*) of the same fixes, measured in the same run on the same cluster.

    .venv/bin/python bench/bench_attendance.py          (about a minute on the 2-core machine)

A throwaway PostGIS cluster (bench/_stack.py, fast settings: commits are not measured),
migrated, with the demo city's 610 grids (gis.demo_city, loaded by gis.grid_import). One
department of 200 units, each on an 8-hour shift over 4 neighbouring grids; every unit
sends a fix every 5 s (5,760 a shift, 1.15 million in all), COPYed into the day's position
partition: smooth loops over its area with GPS noise, some late, some leaving early, some
absent (their fixes far away), silent spells, 1 % flagged. Then, each the median of 3 runs
after a warm-up, as the app role:

- baseline A: count(*) of the shifts' good fixes, read through the same shift join and
  (unit_id, fix_time) index the report uses;
- baseline B: count(*) of the day partition's good fixes (a sequential scan);
- devices.attendance.day_report() for the department, then its CSV and HTML.
CITYGRID_BENCH_SCALE=0.1 runs a small version.
"""
from __future__ import annotations

import datetime as dt
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import throwaway_postgres  # noqa: E402
from devices import attendance, attendance_report, partitions  # noqa: E402
from devices.registry import add_unit  # noqa: E402
from devices.shifts import add_shift  # noqa: E402
from gis import migrate  # noqa: E402
from gis.db import connect, prepare_app_session  # noqa: E402
from gis.demo_city import generate_city  # noqa: E402
from gis.grid_import import import_grids  # noqa: E402
from workflows.cases import LOCAL_TZ  # noqa: E402

SEED = 2026
SCALE = float(os.environ.get("CITYGRID_BENCH_SCALE", "1"))
UNITS = max(4, int(200 * SCALE))
DAY = dt.date(2026, 3, 2)
START = dt.datetime.combine(DAY, dt.time(8), tzinfo=LOCAL_TZ)
HOURS, EVERY_S = 8, 5
DEPT = "县城市管理和综合执法局"
M_PER_DEG_LAT = 111_320.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def median_time(fn, runs: int = 3) -> tuple[float, object]:
    result = fn()                                       # warm-up (caches, plans)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def tracks(rng: np.random.Generator, area: shapely.Geometry, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seconds after start, lon, lat) of one unit: loops over the area's box, GPS noise,
    maybe late / early / silent spells / absent (somewhere else)."""
    minx, miny, maxx, maxy = area.bounds
    t = np.arange(n) * EVERY_S
    p1, p2 = rng.uniform(1800, 5400, 2)
    lon = (minx + maxx) / 2 + (maxx - minx) * 0.45 * np.sin(2 * np.pi * t / p1 + rng.uniform(0, 6.3))
    lat = (miny + maxy) / 2 + (maxy - miny) * 0.45 * np.sin(2 * np.pi * t / p2 + rng.uniform(0, 6.3))
    noise = rng.normal(0, 5 / M_PER_DEG_LAT, (2, n))        # ~5 m
    lon, lat = lon + noise[0], lat + noise[1]
    keep = np.ones(n, bool)
    if rng.random() < 0.1:                                  # late
        keep[: int(rng.uniform(20, 60) * 60 / EVERY_S)] = False
    if rng.random() < 0.1:                                  # early leave
        keep[n - int(rng.uniform(20, 60) * 60 / EVERY_S):] = False
    for _ in range(rng.poisson(2)):                         # silent spells of 1-30 min
        a = rng.integers(0, n)
        keep[a: a + int(rng.uniform(1, 30) * 60 / EVERY_S)] = False
    if rng.random() < 0.03:                                 # absent: the phone is elsewhere
        lon, lat = lon + 0.05, lat + 0.05
    return t[keep], lon[keep], lat[keep]


def load(conn, rng: np.random.Generator) -> tuple[int, int]:
    city = generate_city(SEED)
    grids = import_grids(conn, city.grids, source="bench", actor="bench", county_name=city.county_name)
    conn.execute("INSERT INTO department (name) VALUES (%s)", (DEPT,))
    codes = sorted(city.grids["code"])
    geom = dict(zip(city.grids["code"], city.grids.geometry))
    partitions.ensure(conn, DAY)
    n = HOURS * 3600 // EVERY_S
    fixes = 0
    buf = io.StringIO()
    for i in range(UNITS):
        first = (i * 4) % (len(codes) - 4)
        area_codes = codes[first: first + 4]
        unit = add_unit(conn, name=f"监督员{i:03d}", kind="inspector", dept=DEPT, actor="bench")
        add_shift(conn, unit_id=unit, starts_at=START, ends_at=START + dt.timedelta(hours=HOURS),
                  areas=area_codes, actor="bench")
        t, lon, lat = tracks(rng, shapely.union_all([geom[c] for c in area_codes]), n)
        flags = np.where(rng.random(len(t)) < 0.01, 4, 0)
        start_epoch = START.timestamp()
        for s, x, y, f in zip(t.tolist(), lon.tolist(), lat.tolist(), flags.tolist()):
            stamp = dt.datetime.fromtimestamp(start_epoch + s, dt.timezone.utc).isoformat()
            buf.write(f"unit:{unit}\t{stamp}\t{unit}\t{stamp}\t{x!r}\t{y!r}\t{f}\n")
        fixes += len(t)
    with conn.cursor() as cur, cur.copy("COPY position (device, fix_time, unit_id, received_at, lon, lat, flags)"
                                        " FROM STDIN") as copy:
        copy.write(buf.getvalue())
    conn.execute("ANALYZE position")
    return grids.imported, fixes


def main() -> int:
    rng = np.random.default_rng(SEED)
    with throwaway_postgres("citygrid-bench-attendance-") as stack:
        log(f"PostgreSQL: {stack.settings_note()}")
        with connect(stack.url) as conn:
            migrate.migrate(conn)
            t0 = time.perf_counter()
            grids, fixes = load(conn, rng)
            log(f"loaded {grids} grids, {UNITS} units/shifts, {fixes:,} fixes in {time.perf_counter() - t0:.1f} s")
        with connect(stack.url) as conn:
            prepare_app_session(conn, "citygrid_app")
            dept_id = conn.execute("SELECT id FROM department WHERE name = %s", (DEPT,)).fetchone()["id"]
            ids = [s["id"] for s in attendance.shifts_of_day(conn, DAY, dept_id)]
            joined = ("SELECT count(*) AS n FROM shift s JOIN position p ON p.unit_id = s.unit_id"
                      " AND p.fix_time >= s.starts_at AND p.fix_time <= s.ends_at"
                      " WHERE s.id = ANY(%s) AND p.flags = 0 AND p.fix_time >= %s AND p.fix_time <= %s")
            end = START + dt.timedelta(hours=HOURS)
            count_join, n_join = median_time(lambda: conn.execute(joined, (ids, START, end)).fetchone()["n"])
            count_scan, n_scan = median_time(lambda: conn.execute(
                "SELECT count(*) AS n FROM position WHERE flags = 0 AND fix_time >= %s AND fix_time < %s",
                attendance.day_bounds(DAY)).fetchone()["n"])
            rules = attendance.Rules()
            took, report = median_time(lambda: attendance.day_report(conn, DAY, rules, dept_id=dept_id))
            csv_s, body = median_time(lambda: attendance_report.to_csv(report))
            html_s, page = median_time(lambda: attendance_report.to_html(report))
    s = report["summary"]
    print()
    print("=" * 100)
    print(f"SUMMARY ({stack.settings_note()}; {UNITS} units x {HOURS} h at 1 fix / {EVERY_S} s,"
          f" {fixes:,} fixes stored, {n_join:,} good ones in the shifts; 2-core machine, medians of 3)")
    print(f"attendance: day report of the department {took:.2f} s ({n_join / took:,.0f} fixes/s)"
          f" vs baseline count(*) of the same fixes through the same join {count_join:.2f} s"
          f" (x{took / count_join:.1f}) and a scan count(*) of the day partition {count_scan:.2f} s"
          f" ({n_scan:,} rows)")
    print(f"attendance: CSV {csv_s * 1e3:.0f} ms ({len(body) / 1024:.0f} KiB), HTML {html_s * 1e3:.0f} ms"
          f" ({len(page) / 1024:.0f} KiB) for {s['shifts']} shifts: {s['ok']} ok, {s['late']} late,"
          f" {s['early']} early, {s['late_early']} late+early, {s['absent']} absent;"
          f" mean coverage {s['mean_coverage_pct']} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
