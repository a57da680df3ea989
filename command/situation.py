"""The situation around one incident (事件态势): what is within a radius of it — cameras that can
see it, emergency resources, units on duty, parts (部件), IoT devices with their alarms, open
cases — and the unit grids its affected area touches, with the people likely affected.

It lives in `command` because it reads cameras (video) and devices together; the import rule
keeps that out of the packages below. Read-only: one snapshot (REPEATABLE READ), every section's
query sent in one pipeline round trip.

Distances are geodesic (geography, metres) from the incident's point. Each spatial test first
cuts by a lon/lat box around the point (`&&`), so the existing GiST indexes on the geometry
columns do the search and the geography test only checks the few candidates."""
from __future__ import annotations

import datetime as dt
import functools
import math
from typing import Any

import psycopg

from command.routes.device_routes import device_filter
from command.unit_access import unit_filter
from gis.errors import Invalid
from workflows import cases as case_rules, incidents
from workflows.case_flow import load_flow
from workflows.plans import resource_types

DEFAULT_RADIUS_M = 500.0
MAX_RADIUS_M = 5000.0
SECTION_CAP = 200                   # rows per section list; `count` still says how many there are
METRES_PER_DEG_LAT = 110_574.0      # the shortest degree of latitude (at the equator): the box errs wide
METRES_PER_DEG_LON_EQ = 111_320.0
BOX_MARGIN = 1.01
# Finished cases, written out so the planner can match the partial index on open cases'
# locations (0004: WHERE state <> ALL ('{not_filed,closed,void}')).
_OPEN_CASE = "c.state <> ALL ('{%s}'::text[])" % ",".join(case_rules.FINAL_STATES)
_POINT = "ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)"
_BOX = "ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)"


@functools.cache
def _state_names() -> dict[str, str]:
    return {key: state.name for key, state in load_flow().states.items()}


def check_radius(radius_m: Any, incident_radius_m: float | None) -> float:
    """The search radius: the one asked for (0 < r ≤ 5 km), else the incident's own (at most
    5 km), else 500 m."""
    if radius_m is None:
        return min(incident_radius_m or DEFAULT_RADIUS_M, MAX_RADIUS_M)
    if isinstance(radius_m, bool) or not isinstance(radius_m, (int, float)) or not math.isfinite(radius_m):
        raise Invalid("radius_m is the search radius in metres: a number above 0 and at most 5000")
    if radius_m <= 0:
        raise Invalid(f"radius_m must be above 0 (got {radius_m:g}); it is the search radius in metres")
    if radius_m > MAX_RADIUS_M:
        raise Invalid(f"radius_m {radius_m:g} is beyond the {MAX_RADIUS_M:g} m limit of the situation view;"
                      " ask for 5000 or less")
    return float(radius_m)


def _box(lon: float, lat: float, radius_m: float) -> dict:
    """A lon/lat box surely holding the circle (so the GiST index can cut first)."""
    dlat = radius_m / METRES_PER_DEG_LAT * BOX_MARGIN
    dlon = radius_m / (METRES_PER_DEG_LON_EQ * max(math.cos(math.radians(lat)), 0.01)) * BOX_MARGIN
    return {"x0": lon - dlon, "y0": lat - dlat, "x1": lon + dlon, "y1": lat + dlat}


# ---------------------------------------------------------------- one query per section

def _near(column: str) -> str:
    """`column` (a Point geometry) within the radius of the incident point."""
    return (f"{column} && {_BOX} AND ST_DWithin({column}::geography, {_POINT}::geography, %(radius)s)")


def _distance(column: str) -> str:
    return f"ST_Distance({column}::geography, {_POINT}::geography) AS distance_m"


# Cameras whose view sector holds the incident point, or that stand within the radius and see
# part of the affected area (the same test as video.cameras.cameras_seeing, widened to the area).
_CAMERAS_SQL = f"""
WITH i AS (SELECT area FROM incident WHERE id = %(id)s)
SELECT c.id, c.name, c.group_name AS "group", ST_X(c.location) AS lon, ST_Y(c.location) AS lat, c.grid_code,
       c.bearing_deg, c.fov_deg, c.range_m, c.online, c.status_reason, c.last_frame_at,
       ST_Intersects(c.sector, {_POINT}) AS sees_point, {_distance('c.location')}, count(*) OVER () AS total
  FROM camera c, i
 WHERE c.active
   AND ((ST_Intersects(c.sector, {_POINT})
         AND ST_DWithin(c.location::geography, {_POINT}::geography, c.range_m))
        OR (i.area IS NOT NULL AND ST_Intersects(c.sector, i.area) AND {_near('c.location')}))
 ORDER BY distance_m, c.id LIMIT %(cap)s"""

_RESOURCES_SQL = f"""
SELECT r.id, r.name, r.type_code, r.status, r.quantity, r.contact, dp.name AS dept, r.unit_id, r.grid_code,
       ST_X(r.location) AS lon, ST_Y(r.location) AS lat, {_distance('r.location')}, count(*) OVER () AS total
  FROM resource r LEFT JOIN department dp ON dp.id = r.dept_id
 WHERE {_near('r.location')}
 ORDER BY distance_m, r.id LIMIT %(cap)s"""

# Units on a shift now, at their last good fix (unit_state keeps plain lon/lat numbers).
_UNITS_SQL = f"""
SELECT u.id, u.name, u.kind, dp.name AS dept, u.phone, st.lon, st.lat, st.fix_time, st.speed_mps, st.battery_pct,
       extract(epoch FROM (%(now)s - st.fix_time)) AS age_s, s.id AS shift_id, s.ends_at AS shift_ends_at,
       coalesce((SELECT array_agg(a.kind ORDER BY a.raised_at) FROM unit_alarm a
                  WHERE a.unit_id = u.id AND a.cleared_at IS NULL), '{{}}') AS open_alarms,
       {_distance('ST_SetSRID(ST_MakePoint(st.lon, st.lat), 4326)')}, count(*) OVER () AS total
  FROM unit u
  JOIN unit_state st ON st.unit_id = u.id
  JOIN shift s ON s.unit_id = u.id AND s.starts_at <= %(now)s AND s.ends_at > %(now)s
  LEFT JOIN department dp ON dp.id = u.dept_id
 WHERE u.active AND st.lon BETWEEN %(x0)s AND %(x1)s AND st.lat BETWEEN %(y0)s AND %(y1)s
   AND ST_DWithin(ST_SetSRID(ST_MakePoint(st.lon, st.lat), 4326)::geography, {_POINT}::geography, %(radius)s)
   AND __WHERE__
 ORDER BY distance_m, u.id LIMIT %(cap)s"""

_PARTS_SQL = f"""
SELECT x.id, x.class_code, pc.name AS class_name, x.name, x.status, x.grid_code,
       ST_X(x.location) AS lon, ST_Y(x.location) AS lat, {_distance('x.location')}, count(*) OVER () AS total
  FROM part x JOIN part_class pc ON pc.code = x.class_code
 WHERE x.currency = '在用' AND {_near('x.location')}
 ORDER BY distance_m, x.id LIMIT %(cap)s"""

# Every part in the radius by class, with the count per status (not cut at the list's cap).
_PART_CLASSES_SQL = f"""
WITH n AS (SELECT x.class_code, x.status, count(*) AS n,
                  min(ST_Distance(x.location::geography, {_POINT}::geography)) AS nearest
             FROM part x WHERE x.currency = '在用' AND {_near('x.location')} GROUP BY x.class_code, x.status)
SELECT n.class_code, pc.name AS class_name, sum(n.n)::int AS count, jsonb_object_agg(n.status, n.n) AS by_status,
       min(n.nearest) AS nearest_m
  FROM n JOIN part_class pc ON pc.code = n.class_code
 GROUP BY n.class_code, pc.name ORDER BY count DESC, n.class_code"""

_DEVICES_SQL = f"""
SELECT d.id, d.type_code AS type, t.name AS type_name, t.name_en AS type_name_en, d.part_id, d.grid_code,
       dp.name AS dept, s.online, s.ts AS last_reading_at, s.seen_at, coalesce(s.values, '{{}}') AS latest,
       coalesce((SELECT jsonb_agg(jsonb_build_object('id', a.id, 'rule_name', a.rule_name, 'severity', a.severity,
                                                     'status', a.status, 'raised_at', a.raised_at)
                                  ORDER BY a.raised_at DESC)
                   FROM device_alarm a WHERE a.device_id = d.id AND a.status IN ('active_unack', 'active_ack')),
                '[]') AS active_alarms,
       ST_X(d.location) AS lon, ST_Y(d.location) AS lat, {_distance('d.location')}, count(*) OVER () AS total
  FROM device d JOIN device_type t ON t.code = d.type_code
  LEFT JOIN device_state s ON s.device_id = d.id LEFT JOIN department dp ON dp.id = d.dept_id
 WHERE d.active AND {_near('d.location')} AND __WHERE__
 ORDER BY distance_m, d.id LIMIT %(cap)s"""

_CASES_SQL = f"""
SELECT c.id, c.case_no, c.kind, coalesce(c.event_class, c.part_class) AS class_code,
       coalesce(ec.name, pc.name) AS class_name, c.state, left(c.description, 200) AS description, c.address,
       c.grid_code, c.created_at, c.handle_deadline, ST_X(c.location) AS lon, ST_Y(c.location) AS lat,
       {_distance('c.location')}, count(*) OVER () AS total
  FROM case_file c
  LEFT JOIN event_class ec ON ec.code = c.event_class LEFT JOIN part_class pc ON pc.code = c.part_class
 WHERE {_OPEN_CASE} AND {_near('c.location')} AND __WHERE__
 ORDER BY distance_m, c.id LIMIT %(cap)s"""

# The affected area: the incident's own (drawn, or its radius circle) or, when it has none,
# the search circle. Shares use geodesic areas of both the overlap and the grid.
_AFFECTED = (f"coalesce((SELECT area FROM incident WHERE id = %(id)s),"
             f" ST_Multi(ST_Buffer({_POINT}::geography, %(radius)s, 'quad_segs=16')::geometry))")

_SHAPES_SQL = f"""
SELECT ST_AsGeoJSON(ST_Buffer({_POINT}::geography, %(radius)s, 'quad_segs=16')::geometry, 7)::json AS circle,
       ST_AsGeoJSON({_AFFECTED}, 7)::json AS affected,
       ST_Area({_AFFECTED}::geography) AS affected_m2"""

_GRIDS_SQL = f"""
WITH a AS (SELECT {_AFFECTED} AS g),
hit AS (
  SELECT gr.code, gr.name, gr.community_code, gr.population, gr.area_m2, ST_AsGeoJSON(gr.geom, 7)::json AS geometry,
         ST_Area(ST_Intersection(gr.geom, a.g)::geography) AS affected_m2,
         nullif(ST_Area(gr.geom::geography), 0) AS geo_m2,
         ST_Distance(gr.geom::geography, {_POINT}::geography) AS distance_m
    FROM grid gr, a WHERE gr.geom && a.g AND ST_Intersects(gr.geom, a.g)),
shared AS (SELECT *, least(coalesce(affected_m2 / geo_m2, 0), 1) AS share FROM hit)
SELECT code, name, community_code, population, area_m2, geometry, affected_m2, share,
       round(population * share)::int AS people_affected, distance_m, count(*) OVER () AS total,
       sum(population) OVER () AS total_population,
       sum(round(population * share)) OVER () AS total_people_affected,
       count(*) FILTER (WHERE population IS NULL) OVER () AS without_population,
       sum(affected_m2) OVER () AS total_affected_m2
  FROM shared WHERE affected_m2 > 0
 ORDER BY distance_m, code LIMIT %(cap)s"""


# ---------------------------------------------------------------- shaping the answer

def _section(rows: list[dict]) -> dict:
    """A section: its items (nearest first, at most SECTION_CAP), how many there are in all,
    and whether the list was cut."""
    total = rows[0]["total"] if rows else 0
    for r in rows:
        del r["total"]
        r["distance_m"] = round(r["distance_m"], 1)
    return {"count": total, "truncated": total > len(rows), "items": rows}


def _cameras(rows: list[dict]) -> dict:
    for r in rows:
        r["snapshot_url"] = f"/api/cameras/{r['id']}/snapshot.jpg"
    return _section(rows)


def _resources(rows: list[dict]) -> dict:
    kinds = resource_types()
    for r in rows:
        kind = kinds.get(r["type_code"], {})
        r.update(type_name=kind.get("name", r["type_code"]), type_name_en=kind.get("name_en", r["type_code"]),
                 type_kind=kind.get("kind"), type_unit=kind.get("unit"))
    return _section(rows)


def _units(rows: list[dict]) -> dict:
    for r in rows:
        r["age_s"] = round(float(r["age_s"]))
        r["open_alarms"] = list(r["open_alarms"])
    return _section(rows)


def _devices(rows: list[dict]) -> dict:
    for r in rows:
        r["state"] = ("alarm" if r["active_alarms"] else "online" if r["online"]
                      else "offline" if r["online"] is False else "unknown")
    return _section(rows)


def _cases(rows: list[dict]) -> dict:
    names = _state_names()
    for r in rows:
        r["state_name"] = names.get(r["state"], r["state"])
    return _section(rows)


def _parts(rows: list[dict], classes: list[dict]) -> dict:
    for c in classes:
        c["nearest_m"] = round(c["nearest_m"], 1)
    return {**_section(rows), "classes": classes}


def _grids(rows: list[dict], shapes: dict, basis: str) -> dict:
    first = rows[0] if rows else {}
    totals = {
        "grids": first.get("total", 0),
        "population": int(first["total_population"]) if first.get("total_population") is not None else None,
        "people_affected": (int(first["total_people_affected"])
                            if first.get("total_people_affected") is not None else None),
        "grids_without_population": int(first.get("without_population") or 0),
        "affected_area_m2": round(shapes["affected_m2"], 1),
    }
    for r in rows:
        for key in ("total_population", "total_people_affected", "without_population", "total_affected_m2"):
            del r[key]
        r["affected_m2"] = round(r["affected_m2"], 1)
        r["share"] = round(r["share"], 4)
    return {**_section(rows), "basis": basis, "totals": totals}


def _incident_summary(inc: dict) -> dict:
    keep = ("id", "incident_no", "title", "category", "subtype", "level", "level_name", "status", "status_name",
            "drill", "lon", "lat", "radius_m", "grid_code", "area", "reported_at")
    return {k: inc[k] for k in keep}


# ---------------------------------------------------------------- the whole picture

def situation(conn: psycopg.Connection, incident_id: int, actor: Any, radius_m: float | None = None,
              *, now: dt.datetime | None = None) -> dict:
    """Everything within `radius_m` of the incident (404 when the actor may not see it). Units,
    devices and cases are limited to those the actor may see elsewhere too."""
    inc = incidents.get(conn, incident_id, actor)
    radius = check_radius(radius_m, inc["radius_m"])
    now = now or dt.datetime.now(dt.timezone.utc)
    params = {"id": incident_id, "lon": inc["lon"], "lat": inc["lat"], "radius": radius, "cap": SECTION_CAP,
              "now": now, **_box(inc["lon"], inc["lat"], radius)}
    unit_where, unit_args = unit_filter(actor)
    unit_where = unit_where.replace("%s", "%(unit_vis)s")          # unit_filter takes at most one argument
    device_where, device_args = device_filter(actor)
    case_where, case_args = case_rules.visibility(actor)
    params.update({"unit_vis": unit_args[0] if unit_args else None, **device_args, **case_args})

    # One snapshot for every section; inside a caller's transaction, that one is the snapshot.
    fresh = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        if fresh:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        with conn.pipeline():
            cursors = {name: conn.execute(sql, params) for name, sql in (
                ("shapes", _SHAPES_SQL), ("cameras", _CAMERAS_SQL), ("resources", _RESOURCES_SQL),
                ("units", _UNITS_SQL.replace("__WHERE__", unit_where)), ("parts", _PARTS_SQL),
                ("part_classes", _PART_CLASSES_SQL), ("devices", _DEVICES_SQL.replace("__WHERE__", device_where)),
                ("cases", _CASES_SQL.replace("__WHERE__", case_where)), ("grids", _GRIDS_SQL))}
            rows = {name: cur.fetchall() for name, cur in cursors.items()}
    shapes = rows["shapes"][0]
    return {
        "incident": _incident_summary(inc),
        "radius_m": radius,
        "max_radius_m": MAX_RADIUS_M,
        "generated_at": now,
        "circle": shapes["circle"],
        "affected": shapes["affected"],
        "cameras": _cameras(rows["cameras"]),
        "resources": _resources(rows["resources"]),
        "units": _units(rows["units"]),
        "parts": _parts(rows["parts"], rows["part_classes"]),
        "devices": _devices(rows["devices"]),
        "cases": _cases(rows["cases"]),
        "grids": _grids(rows["grids"], shapes, "incident_area" if inc["area"] else "radius"),
    }

