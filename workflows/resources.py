"""Emergency resources (应急资源) and the nearest available ones of a type, with the
straight-line distance and a rough ETA — what a commander needs when a step asks for two
pump trucks.

Ordering by PostGIS's `<->` on lon/lat is planar, a little off in metres away from the
equator, so a few more candidates than asked are taken from the index and put in order by
their true (geodesic) distance."""
from __future__ import annotations

from dataclasses import dataclass

import psycopg

from gis.db import audit
from gis.errors import Invalid
from workflows.plans import resource_types

STATUSES = ("available", "assigned", "out_of_service")
SPEED_KMH = {"team": 30.0, "vehicle": 30.0, "equipment": 25.0, "supply": 25.0, "shelter": 5.0}   # city driving; walking to a shelter
CANDIDATES = 3                                   # × the number asked, taken from the index before the exact sort


@dataclass
class NewResource:
    name: str
    type_code: str
    lon: float
    lat: float
    status: str = "available"
    quantity: int = 1
    contact: str | None = None
    dept: str | None = None


def add_resource(conn: psycopg.Connection, r: NewResource, *, actor: str, actor_id: int | None = None) -> dict:
    """Register a resource (its grid derived), with its audit row, in one transaction."""
    kinds = resource_types()
    if r.type_code not in kinds:
        raise Invalid(f"resource type {r.type_code!r} is not one of {', '.join(sorted(kinds))}")
    if r.status not in STATUSES:
        raise Invalid(f"status is one of {', '.join(STATUSES)}")
    if not (-180 <= r.lon <= 180 and -90 <= r.lat <= 90):
        raise Invalid("lon/lat must be WGS84 degrees")
    if not isinstance(r.quantity, int) or r.quantity < 0:
        raise Invalid("quantity is a whole number from 0")
    with conn.transaction():
        dept_id = None
        if r.dept:
            row = conn.execute("SELECT id FROM department WHERE name = %s", (r.dept,)).fetchone()
            if row is None:
                raise Invalid(f"no department named {r.dept!r}")
            dept_id = row["id"]
        row = conn.execute(
            "INSERT INTO resource (name, type_code, location, grid_code, status, quantity, contact, dept_id)"
            " SELECT %(name)s, %(type)s, p, (SELECT code FROM grid WHERE ST_Contains(geom, p) LIMIT 1), %(status)s,"
            " %(quantity)s, %(contact)s, %(dept)s FROM (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS p) q"
            " RETURNING id, grid_code",
            {"name": r.name, "type": r.type_code, "status": r.status, "quantity": r.quantity, "contact": r.contact,
             "dept": dept_id, "lon": r.lon, "lat": r.lat}).fetchone()
        audit(conn, actor=actor, actor_id=actor_id, action="resource.add", entity="resource", entity_id=str(row["id"]),
              detail={"type": r.type_code, "name": r.name, "grid": row["grid_code"]})
    return {"id": row["id"], "grid_code": row["grid_code"]}


def nearest_available(conn: psycopg.Connection, type_code: str, lon: float, lat: float, limit: int = 10) -> list[dict]:
    """The `limit` nearest available resources of a type: distance in metres and ETA in minutes."""
    kinds = resource_types()
    if type_code not in kinds:
        raise Invalid(f"resource type {type_code!r} is not one of {', '.join(sorted(kinds))}")
    speed = SPEED_KMH[kinds[type_code]["kind"]]
    rows = conn.execute(
        "WITH q AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS p),"
        " near AS (SELECT r.*, q.p FROM resource r, q WHERE r.status = 'available' AND r.type_code = %(type)s"
        "          ORDER BY r.location <-> q.p LIMIT %(candidates)s)"
        " SELECT id, name, type_code, ST_X(location) AS lon, ST_Y(location) AS lat, quantity, contact, grid_code,"
        " ST_Distance(location::geography, p::geography) AS distance_m FROM near ORDER BY distance_m LIMIT %(limit)s",
        {"lon": lon, "lat": lat, "type": type_code, "candidates": limit * CANDIDATES, "limit": limit}).fetchall()
    for r in rows:
        r["distance_m"] = round(r["distance_m"], 1)
        r["eta_min"] = round(r["distance_m"] / 1000 / speed * 60, 1)
    return rows
