"""Queries and changes on the parts inventory (部件)."""
from __future__ import annotations

import psycopg

from gis.db import audit
from gis.errors import Forbidden, Invalid, NotFound
from gis.geojson import BBox, area_condition, feature_collection_sql, page_conditions, page_size

PART_STATUSES = ("完好", "破损", "丢失", "占用")

_DETAIL_SELECT = (
    "SELECT p.id, p.class_code, pc.name AS class_name, pc.big_code, pb.name AS big_name, p.name,"
    " p.status, p.currency, p.grid_code, p.source, p.surveyed_on, p.created_at, p.updated_at, p.photo,"
    " p.dept_owner_id, d1.name AS dept_owner, p.dept_rights_id, d2.name AS dept_rights,"
    " p.dept_maintainer_id, d3.name AS dept_maintainer,"
    " ST_X(p.location) AS lon, ST_Y(p.location) AS lat, ST_AsGeoJSON(p.geom, 7)::json AS geometry"
    " FROM part p JOIN part_class pc ON pc.code = p.class_code JOIN part_big_class pb ON pb.code = pc.big_code"
    " LEFT JOIN department d1 ON d1.id = p.dept_owner_id"
    " LEFT JOIN department d2 ON d2.id = p.dept_rights_id"
    " LEFT JOIN department d3 ON d3.id = p.dept_maintainer_id"
)


def parts_geojson(conn: psycopg.Connection, *, bbox: BBox | None = None, class_code: str | None = None,
                  big_code: str | None = None, status: str | None = None, area: str | None = None,
                  after: str | None = None, limit: int | None = None,
                  scope: list[str] | None = None) -> tuple[str, int, str | None]:
    """A page of parts as GeoJSON text (points at their location), keyset-paged by id."""
    limit = page_size(limit)
    where, params = page_conditions(geom_column="p.location", code_column="p.grid_code", key_column="p.id",
                                    bbox=bbox, area=area, after=after, scope=scope, limit=limit)
    if class_code:
        where.append("p.class_code = %(class_code)s")
        params["class_code"] = class_code
    if big_code:
        where.append("left(p.class_code, 2) = %(big_code)s")
        params["big_code"] = big_code
    if status:
        if status not in PART_STATUSES:
            raise Invalid(f"status {status!r} is not one of {', '.join(PART_STATUSES)}")
        where.append("p.status = %(status)s")
        params["status"] = status
    inner = ("SELECT p.id, p.location AS geom, p.class_code, pc.name AS class_name, p.name, p.status,"
             " p.grid_code FROM part p JOIN part_class pc ON pc.code = p.class_code"
             f" WHERE {' AND '.join(where)} ORDER BY p.id LIMIT %(limit)s")
    props = ("json_build_object('id', f.id, 'class_code', f.class_code, 'class_name', f.class_name,"
             " 'name', f.name, 'status', f.status, 'grid_code', f.grid_code)")
    row = conn.execute(feature_collection_sql(inner, props), params).fetchone()
    return row["fc"], row["n"], (row["last_id"] if row["n"] == limit else None)


def part_detail(conn: psycopg.Connection, part_id: str, scope: list[str] | None = None) -> dict:
    scope_sql, params = area_condition("p.grid_code", scope)
    row = conn.execute(f"{_DETAIL_SELECT} WHERE p.id = %(id)s AND {scope_sql}", {"id": part_id, **params}).fetchone()
    if row is None:
        raise NotFound(f"part {part_id} does not exist or is outside your area")
    return row


def update_part_status(conn: psycopg.Connection, part_id: str, status: str, *, note: str | None,
                       actor: str, actor_id: int | None, scope: list[str] | None = None,
                       dept_id: int | None = None) -> dict:
    """Change a part's status (完好/破损/丢失/占用) with an audit row, in one transaction.

    `dept_id` set means a department user: only parts the department owns, holds or
    maintains may be changed by it."""
    if status not in PART_STATUSES:
        raise Invalid(f"status {status!r} is not one of {', '.join(PART_STATUSES)}")
    with conn.transaction():
        conn.execute("SELECT 1 FROM part WHERE id = %s FOR UPDATE", (part_id,))   # lock, then read
        before = part_detail(conn, part_id, scope)
        if dept_id is not None and dept_id not in (before["dept_owner_id"], before["dept_rights_id"],
                                                   before["dept_maintainer_id"]):
            raise Forbidden(f"part {part_id} is not owned, held or maintained by your department")
        conn.execute("UPDATE part SET status = %s, updated_at = now() WHERE id = %s", (status, part_id))
        audit(conn, actor=actor, actor_id=actor_id, action="part.status", entity="part", entity_id=part_id,
              detail={"from": before["status"], "to": status, "note": note})
        return part_detail(conn, part_id, scope)
