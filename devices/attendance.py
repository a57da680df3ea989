"""Attendance and patrol coverage (考勤与巡查覆盖) of shifts, worked out from the stored fixes.

Only good fixes count (flags = 0). Per shift:
- time inside the area (在岗时长): the intervals between consecutive fixes that are both
  inside the shift's area, each counted at most `gap` long (a phone silent for an hour is
  not an hour on duty);
- distance (巡查里程): the sum of the segments between consecutive fixes, inside or not;
- time per grid (网格停留): each inside interval goes to the grid holding its first fix;
  grids visited are the grids holding a fix inside the area; coverage (覆盖率) is the share
  of the shift's area grids visited (for a drawn area: the grids whose inside it overlaps);
- status: absent (缺勤) without a fix inside the area; late (迟到) when the first one came
  after start + grace; early leave (早退) when the last one came before end − early_leave
  (judged once the shift is over); pending (未开始) while the grace period is still running.

All of it in one SQL query for any number of shifts (window functions over the fixes, the
grid of each fix looked up among its shift's own area grids, GROUPING SETS for the shift
totals and the per-grid rows at once), so a department's day costs one pass over its fixes.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from gis.config import Settings
from gis.errors import Forbidden, Invalid, NotFound
from workflows.cases import LOCAL_TZ

STATUSES = ("ok", "late", "early", "late_early", "absent", "pending")
ALARM_KINDS = ("out_of_area", "stationary", "offline", "sos")


@dataclass(frozen=True)
class Rules:
    late_grace: dt.timedelta = dt.timedelta(minutes=10)
    early_leave: dt.timedelta = dt.timedelta(minutes=10)
    gap: dt.timedelta = dt.timedelta(minutes=5)

    @classmethod
    def from_settings(cls, s: Settings) -> "Rules":
        if s.presence_gap_minutes <= 0 or s.late_grace_minutes < 0 or s.early_leave_minutes < 0:
            raise Invalid("attendance settings: the gap must be positive, grace and early-leave minutes not negative")
        return cls(dt.timedelta(minutes=s.late_grace_minutes), dt.timedelta(minutes=s.early_leave_minutes),
                   dt.timedelta(minutes=s.presence_gap_minutes))

    def as_json(self) -> dict:
        return {"late_grace_minutes": self.late_grace.total_seconds() / 60,
                "early_leave_minutes": self.early_leave.total_seconds() / 60,
                "presence_gap_minutes": self.gap.total_seconds() / 60}


# The shifts with their unit, department and area grids (for a drawn area: the grids whose
# inside it overlaps, so coverage means the same thing for both kinds of area).
_SHIFTS = """
SELECT s.id, s.unit_id, u.name AS unit_name, u.kind AS unit_kind, u.dept_id, d.name AS dept_name,
       s.starts_at, s.ends_at, s.area_grids IS NULL AS drawn,
       coalesce(s.area_grids, (SELECT coalesce(array_agg(g.code ORDER BY g.code), '{}') FROM grid g
                               WHERE ST_Intersects(g.geom, s.area) AND NOT ST_Touches(g.geom, s.area))) AS grids
FROM shift s JOIN unit u ON u.id = s.unit_id LEFT JOIN department d ON d.id = u.dept_id
"""

# Metres between consecutive fixes (haversine on the mean Earth radius): plain arithmetic
# on lon/lat, so no geometry has to be carried through the window's sort.
_METRES = ("2 * 6371008.8 * asin(sqrt(power(sin(radians(lead(lat) OVER w - lat) / 2), 2)"
           " + cos(radians(lat)) * cos(radians(lead(lat) OVER w))"
           " * power(sin(radians(lead(lon) OVER w - lon) / 2), 2)))")

# One pass over the fixes of every shift asked for:
# - `ag`: each shift's area grids (codes and geometries, in code order) from the parallel
#   arrays grid_shift/grid_code;
# - `fix`: each shift reads its unit's good fixes by the (unit_id, fix_time) index, `lo`/`hi`
#   bounding the whole set so only those days' partitions are read; the grid of a fix is
#   looked up among its shift's few area grids (a lateral unnest: much cheaper than a GiST
#   probe per fix), the first in code order on a shared edge. A fix is inside the area when
#   it is in one of those grids; a drawn area is tested itself. OFFSET 0 keeps these
#   columns computed before the window's sort (otherwise the sort carries the area);
# - `step`: consecutive fixes by window functions; the totals per shift and the rows per
#   grid come out of one GROUPING SETS aggregate.
_MEASURE = """
WITH ag AS (
  SELECT a.shift_id, array_agg(g.code ORDER BY g.code) AS codes, array_agg(g.geom ORDER BY g.code) AS geoms
  FROM unnest(%(grid_shift)s::bigint[], %(grid_code)s::text[]) AS a(shift_id, code) JOIN grid g ON g.code = a.code
  GROUP BY a.shift_id
), s AS (
  SELECT sh.id, sh.unit_id, sh.starts_at, sh.ends_at, sh.area_grids IS NULL AS drawn, sh.area, ag.codes, ag.geoms
  FROM shift sh LEFT JOIN ag ON ag.shift_id = sh.id WHERE sh.id = ANY(%(ids)s)
), fix AS (
  SELECT s.id AS shift_id, p.fix_time, p.lon, p.lat, c.code,
         CASE WHEN s.drawn THEN ST_Intersects(s.area, m.pt) ELSE c.code IS NOT NULL END AS inside
  FROM s JOIN position p ON p.unit_id = s.unit_id AND p.fix_time >= s.starts_at AND p.fix_time <= s.ends_at
  CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326) AS pt) m
  LEFT JOIN LATERAL (SELECT u.code FROM unnest(s.codes, s.geoms) AS u(code, geom)
                     WHERE ST_Intersects(u.geom, m.pt) LIMIT 1) c ON true
  WHERE p.flags = 0 AND p.fix_time >= %(lo)s AND p.fix_time <= %(hi)s
  OFFSET 0
), step AS (
  SELECT shift_id, fix_time, inside, CASE WHEN inside THEN code END AS code,
         lead(inside) OVER w AS next_inside,
         extract(epoch FROM least(lead(fix_time) OVER w - fix_time, %(gap)s)) AS seconds,
         """ + _METRES + """ AS metres
  FROM fix WINDOW w AS (PARTITION BY shift_id ORDER BY fix_time)
)
SELECT shift_id, code, grouping(code) = 1 AS whole,
       count(*) AS fixes, count(*) FILTER (WHERE inside) AS fixes_inside,
       min(fix_time) FILTER (WHERE inside) AS first_inside, max(fix_time) FILTER (WHERE inside) AS last_inside,
       coalesce(sum(seconds) FILTER (WHERE inside AND next_inside), 0)::float8 AS seconds_inside,
       coalesce(sum(metres), 0)::float8 AS metres
FROM step GROUP BY GROUPING SETS ((shift_id), (shift_id, code))
"""


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The local day (Asia/Shanghai) as [start, end) instants."""
    start = dt.datetime.combine(day, dt.time(0), tzinfo=LOCAL_TZ)
    return start, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=LOCAL_TZ)


def shifts_of_day(conn: psycopg.Connection, day: dt.date, dept_id: int | None = None) -> list[dict]:
    """Shifts starting on local day `day`, of one department's units or of every unit."""
    start, end = day_bounds(day)
    # ends_at bounds too, so the (ends_at, starts_at) index serves: a shift lasts at most 24 h.
    return conn.execute(
        _SHIFTS + " WHERE s.starts_at >= %(start)s AND s.starts_at < %(end)s"
        " AND s.ends_at > %(start)s AND s.ends_at <= %(end)s + interval '24 hours'"
        " AND (%(dept)s::integer IS NULL OR u.dept_id = %(dept)s)"
        " ORDER BY d.name NULLS LAST, u.name, s.starts_at, s.id",
        {"start": start, "end": end, "dept": dept_id}).fetchall()


def shift_row(conn: psycopg.Connection, shift_id: int) -> dict:
    row = conn.execute(_SHIFTS + " WHERE s.id = %s", (shift_id,)).fetchone()
    if row is None:
        raise NotFound(f"shift {shift_id} does not exist")
    return row


def measure(conn: psycopg.Connection, shifts: list[dict], rules: Rules,
            now: dt.datetime | None = None) -> list[dict]:
    """Attendance of each shift (rows from shifts_of_day / shift_row), in the same order."""
    if not shifts:
        return []
    now = now or dt.datetime.now(dt.timezone.utc)
    ids = [s["id"] for s in shifts]
    totals: dict[int, dict] = {}
    per_grid: dict[int, list[dict]] = {i: [] for i in ids}
    params = {"ids": ids, "gap": rules.gap, "lo": min(s["starts_at"] for s in shifts),
              "hi": max(s["ends_at"] for s in shifts),
              "grid_shift": [s["id"] for s in shifts for _ in s["grids"]],
              "grid_code": [c for s in shifts for c in s["grids"]]}
    for r in conn.execute(_MEASURE, params).fetchall():
        if r["whole"]:
            totals[r["shift_id"]] = r
        elif r["code"] is not None:
            per_grid[r["shift_id"]].append(r)
    alarms = _alarm_counts(conn, ids)
    names = _grid_names(conn, {c for s in shifts for c in s["grids"]} |
                        {g["code"] for rows in per_grid.values() for g in rows})
    return [_result(s, totals.get(s["id"]), per_grid[s["id"]], alarms.get(s["id"], {}), names, rules, now)
            for s in shifts]


def _alarm_counts(conn: psycopg.Connection, ids: list[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {}
    for r in conn.execute("SELECT shift_id, kind, count(*) AS n FROM unit_alarm WHERE shift_id = ANY(%s)"
                          " GROUP BY shift_id, kind", (ids,)).fetchall():
        counts.setdefault(r["shift_id"], {})[r["kind"]] = r["n"]
    return counts


def _grid_names(conn: psycopg.Connection, codes: set[str]) -> dict[str, str]:
    if not codes:
        return {}
    return {r["code"]: r["name"] for r in conn.execute("SELECT code, name FROM grid WHERE code = ANY(%s)",
                                                       (sorted(codes),)).fetchall()}


def _status(s: dict, first: dt.datetime | None, last: dt.datetime | None, rules: Rules,
            now: dt.datetime) -> tuple[str, bool, bool]:
    """(status, late, early leave)."""
    if first is None:
        return ("pending" if now < s["starts_at"] + rules.late_grace else "absent"), False, False
    late = first > s["starts_at"] + rules.late_grace
    early = now >= s["ends_at"] and last < s["ends_at"] - rules.early_leave
    return ("late_early" if late and early else "late" if late else "early" if early else "ok"), late, early


def _minutes(delta: dt.timedelta) -> float:
    return round(delta.total_seconds() / 60, 1)


def _local(t: dt.datetime | None) -> str | None:
    return t.astimezone(LOCAL_TZ).isoformat() if t else None


def _result(s: dict, total: dict | None, grids: list[dict], alarms: dict[str, int], names: dict[str, str],
            rules: Rules, now: dt.datetime) -> dict:
    first = total["first_inside"] if total else None
    last = total["last_inside"] if total else None
    status, late, early = _status(s, first, last, rules, now)
    area = list(s["grids"])
    visited = sorted(g["code"] for g in grids)
    in_area = set(area)
    covered = sum(1 for c in visited if c in in_area)
    return {
        "shift_id": s["id"],
        "unit": {"id": s["unit_id"], "name": s["unit_name"], "kind": s["unit_kind"]},
        "dept": {"id": s["dept_id"], "name": s["dept_name"]} if s["dept_id"] else None,
        "starts_at": _local(s["starts_at"]), "ends_at": _local(s["ends_at"]),
        "ended": now >= s["ends_at"],
        "status": status, "late": late, "early_leave": early, "absent": status == "absent",
        "first_inside_at": _local(first), "last_inside_at": _local(last),
        "late_minutes": _minutes(first - s["starts_at"]) if late else 0.0,
        "early_minutes": _minutes(s["ends_at"] - last) if early else 0.0,
        "minutes_inside": round(total["seconds_inside"] / 60, 1) if total else 0.0,
        "distance_km": round(total["metres"] / 1000, 3) if total else 0.0,
        "fixes": total["fixes"] if total else 0,
        "fixes_inside": total["fixes_inside"] if total else 0,
        "area_drawn": s["drawn"],
        "area_grids": len(area), "grids_visited": covered,
        "coverage_pct": round(100 * covered / len(area), 1) if area else None,
        "grids": [{"code": g["code"], "name": names.get(g["code"]), "minutes": round(g["seconds_inside"] / 60, 1),
                   "fixes": g["fixes_inside"]} for g in sorted(grids, key=lambda g: g["code"])],
        "grids_missed": [c for c in area if c not in set(visited)],
        "alarms": {k: alarms.get(k, 0) for k in ALARM_KINDS},
        "alarm_total": sum(alarms.values()),
    }


def summary(rows: list[dict]) -> dict:
    """Counts by status and the department's totals."""
    out = {"shifts": len(rows), **{k: sum(1 for r in rows if r["status"] == k) for k in STATUSES}}
    out["minutes_inside"] = round(sum(r["minutes_inside"] for r in rows), 1)
    out["distance_km"] = round(sum(r["distance_km"] for r in rows), 3)
    out["alarm_total"] = sum(r["alarm_total"] for r in rows)
    cov = [r["coverage_pct"] for r in rows if r["coverage_pct"] is not None and r["status"] != "pending"]
    out["mean_coverage_pct"] = round(sum(cov) / len(cov), 1) if cov else None
    return out


def day_report(conn: psycopg.Connection, day: dt.date, rules: Rules, *, dept_id: int | None = None,
               now: dt.datetime | None = None) -> dict:
    """The daily attendance report (考勤日报) of a department (or of every unit with no
    department given): one row per shift starting on local day `day`."""
    dept = None
    if dept_id is not None:
        found = conn.execute("SELECT id, name FROM department WHERE id = %s", (dept_id,)).fetchone()
        if found is None:
            raise NotFound(f"department {dept_id} does not exist; known departments are listed at /api/departments")
        dept = {"id": found["id"], "name": found["name"]}
    rows = measure(conn, shifts_of_day(conn, day, dept_id), rules, now)
    return {"date": day.isoformat(), "dept": dept, "rules": rules.as_json(), "summary": summary(rows),
            "shifts": rows}


def shift_report(conn: psycopg.Connection, shift_id: int, rules: Rules, *, dept_limit: int | None = None,
                 now: dt.datetime | None = None) -> dict:
    """Attendance of one shift; with `dept_limit`, only of that department's units."""
    row = shift_row(conn, shift_id)
    if dept_limit is not None and row["dept_id"] != dept_limit:
        raise Forbidden(f"shift {shift_id} belongs to a unit of another department; "
                        f"you can see your own department's shifts only")
    return measure(conn, [row], rules, now)[0]
