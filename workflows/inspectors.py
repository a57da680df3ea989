"""Who verifies (核实) and checks (核查) on site: the inspector responsible for the grid, or
the nearest on-duty inspector when that one is off duty.

"Nearest" is measured to the inspector's patrol area (their grids) until live positions
exist; the patrol-GPS work replaces it with the latest known position."""
from __future__ import annotations

import psycopg


def responsible_inspector(conn: psycopg.Connection, grid_code: str, location_wkt: str) -> int | None:
    # The inspector whose area most narrowly covers the grid, if on duty.
    row = conn.execute(
        "SELECT u.id, u.on_duty FROM app_user u JOIN user_area a ON a.user_id = u.id"
        " WHERE u.role = 'inspector' AND u.active AND %s LIKE a.area_code || '%%'"
        " ORDER BY length(a.area_code) DESC, u.on_duty DESC, u.id LIMIT 1", (grid_code,)).fetchone()
    if row and row["on_duty"]:
        return row["id"]
    # Otherwise the on-duty inspector whose patrol area lies closest to the case.
    row = conn.execute(
        "SELECT u.id FROM app_user u JOIN user_area a ON a.user_id = u.id"
        " JOIN grid g ON g.code LIKE a.area_code || '%%'"
        " WHERE u.role = 'inspector' AND u.active AND u.on_duty"
        " GROUP BY u.id ORDER BY min(ST_Distance(g.geom::geography, ST_GeomFromText(%s, 4326)::geography)), u.id"
        " LIMIT 1", (location_wkt,)).fetchone()
    return row["id"] if row else None
