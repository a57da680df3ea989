"""Point → unit grid, community, street, county, plus the nearest parts (PostGIS).

Bulk look-ups (ingest, video) use the in-memory gis.grid_index.GridIndex instead."""
from __future__ import annotations

import math

import psycopg

from gis.errors import Invalid, NotFound
from gis.geojson import area_condition


def check_lon_lat(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise Invalid(f"({lon}, {lat}) is not a WGS84 longitude/latitude pair")


def geocode(conn: psycopg.Connection, lon: float, lat: float, *, nearest: int = 5,
            radius_m: float = 100.0, scope: list[str] | None = None) -> dict:
    """`scope`: the user's area codes; a point outside them is answered like one outside
    the jurisdiction, and only parts inside them are listed."""
    check_lon_lat(lon, lat)
    if not 0 <= nearest <= 50:
        raise Invalid("nearest must be between 0 and 50")
    grid_scope, params = area_condition("g.code", scope)
    part_scope, _ = area_condition("part.grid_code", scope)
    point = {"lon": lon, "lat": lat, **params}
    row = conn.execute(
        "SELECT g.code AS grid_code, g.name AS grid_name, c.code AS community_code,"
        " c.name AS community_name, s.code AS street_code, s.name AS street_name, s.kind AS street_kind,"
        " k.code AS county_code, k.name AS county_name"
        " FROM grid g JOIN community c ON c.code = g.community_code"
        " JOIN street s ON s.code = c.street_code JOIN county k ON k.code = s.county_code"
        " WHERE ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326))"
        f" AND {grid_scope} ORDER BY g.code LIMIT 1", point).fetchone()
    if row is None:
        raise NotFound(f"({lon:.6f}, {lat:.6f}) lies outside every unit grid of "
                       + ("your area" if scope is not None else "the jurisdiction"))
    parts = conn.execute(
        "SELECT p.id, p.class_code, pc.name AS class_name, p.name, p.status,"
        " round(ST_Distance(p.location::geography, pt::geography)::numeric, 1)::float AS distance_m"
        " FROM (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS pt) q,"
        f" LATERAL (SELECT * FROM part WHERE {part_scope} ORDER BY part.location <-> q.pt LIMIT %(n)s) p"
        " JOIN part_class pc ON pc.code = p.class_code"
        " WHERE ST_DWithin(p.location::geography, pt::geography, %(r)s)"
        " ORDER BY distance_m", {**point, "n": nearest, "r": radius_m}).fetchall()
    return {**row, "lon": lon, "lat": lat, "nearest_parts": parts}
