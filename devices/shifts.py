"""Shifts (排班): who is on duty when, and the area each unit patrols during that shift —
the union of named grids (a grid, community or street code stands for all its grids) or a
polygon drawn by hand."""
from __future__ import annotations

import datetime as dt
import json

import psycopg

from gis.codes import area_level
from gis.db import audit
from gis.errors import Conflict, Invalid, NotFound

MAX_SHIFT = dt.timedelta(hours=24)


def add_shift(conn: psycopg.Connection, *, unit_id: int, starts_at: dt.datetime, ends_at: dt.datetime,
              actor: str, actor_id: int | None = None, areas: list[str] | None = None,
              polygon: dict | None = None) -> int:
    """Put a unit on duty from starts_at to ends_at in an area; returns the shift id.
    Give `areas` (grid/community/street codes) or `polygon` (a GeoJSON Polygon or
    MultiPolygon in WGS84), not both."""
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise Invalid("shift times need a time zone (e.g. 2026-11-21T08:00+08:00)")
    if ends_at <= starts_at:
        raise Invalid("a shift must end after it starts")
    if ends_at - starts_at > MAX_SHIFT:
        raise Invalid("a shift lasts at most 24 hours; split longer duty into several shifts")
    if bool(areas) == bool(polygon):
        raise Invalid("give the shift's area either as grid/community/street codes or as a drawn polygon")
    for code in areas or []:
        area_level(code)
    with conn.transaction():
        if conn.execute("SELECT 1 FROM unit WHERE id = %s", (unit_id,)).fetchone() is None:
            raise NotFound(f"unit {unit_id} does not exist")
        if areas:
            row = conn.execute(
                "SELECT array_agg(code ORDER BY code) AS grids, ST_Multi(ST_Union(geom)) AS area FROM grid"
                " WHERE code LIKE ANY(%s)", ([c + "%" for c in areas],)).fetchone()
            if not row["grids"]:
                raise Invalid(f"no grid lies in {', '.join(areas)}; check the codes (grids must be imported first)")
            grids, area_sql, area_arg = row["grids"], "%s::geometry", row["area"]
        else:
            grids = None
            if not isinstance(polygon, dict) or polygon.get("type") not in ("Polygon", "MultiPolygon"):
                raise Invalid("the drawn area must be a GeoJSON Polygon or MultiPolygon")
            valid = conn.execute("SELECT ST_IsValidReason(ST_GeomFromGeoJSON(%s)) AS why",
                                 (json.dumps(polygon),)).fetchone()["why"]
            if valid != "Valid Geometry":
                raise Invalid(f"the drawn area is not a valid polygon: {valid}")
            area_sql, area_arg = "ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326))", json.dumps(polygon)
        try:
            with conn.transaction():
                shift_id = conn.execute(
                    f"INSERT INTO shift (unit_id, starts_at, ends_at, area_grids, area, created_by)"
                    f" VALUES (%s, %s, %s, %s, {area_sql}, %s) RETURNING id",
                    (unit_id, starts_at, ends_at, grids, area_arg, actor)).fetchone()["id"]
        except psycopg.errors.ExclusionViolation:
            raise Conflict(f"unit {unit_id} already has a shift overlapping {starts_at:%Y-%m-%d %H:%M}"
                           f"–{ends_at:%H:%M}; change that shift instead") from None
        audit(conn, actor=actor, actor_id=actor_id, action="shift.add", entity="shift", entity_id=str(shift_id),
              detail={"unit_id": unit_id, "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat(),
                      "areas": areas, "drawn": polygon is not None})
    return shift_id
