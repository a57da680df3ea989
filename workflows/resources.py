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
from gis.errors import Conflict, Invalid, NotFound
from workflows.notify import live
from workflows.plans import resource_types

STATUSES = ("available", "assigned", "out_of_service")
HAND_STATUSES = ("available", "out_of_service")  # 'assigned' comes and goes with dispatch orders only
EDITABLE = ("status", "quantity", "restock", "contact", "unit_id")   # restock: add to the stock (入库)
MAX_QUANTITY = 1_000_000
OPEN_ORDERS = ("sent", "acknowledged", "arrived")
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
    unit_id: int | None = None                   # a tracked unit: dispatch reaches it on citygrid/units/{id}/cmd


def add_resource(conn: psycopg.Connection, r: NewResource, *, actor: str, actor_id: int | None = None) -> dict:
    """Register a resource (its grid derived), with its audit row, in one transaction."""
    kinds = resource_types()
    if r.type_code not in kinds:
        raise Invalid(f"resource type {r.type_code!r} is not one of {', '.join(sorted(kinds))}")
    if r.status not in STATUSES:
        raise Invalid(f"status is one of {', '.join(STATUSES)}")
    if not (-180 <= r.lon <= 180 and -90 <= r.lat <= 90):
        raise Invalid("lon/lat must be WGS84 degrees")
    _check_quantity(r.quantity)
    with conn.transaction():
        _check_unit(conn, r.unit_id)
        dept_id = None
        if r.dept:
            row = conn.execute("SELECT id FROM department WHERE name = %s", (r.dept,)).fetchone()
            if row is None:
                raise Invalid(f"no department named {r.dept!r}")
            dept_id = row["id"]
        row = conn.execute(
            "INSERT INTO resource (name, type_code, location, grid_code, status, quantity, contact, dept_id, unit_id)"
            " SELECT %(name)s, %(type)s, p, (SELECT code FROM grid WHERE ST_Contains(geom, p) LIMIT 1), %(status)s,"
            " %(quantity)s, %(contact)s, %(dept)s, %(unit)s"
            " FROM (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS p) q RETURNING id, grid_code",
            {"name": r.name, "type": r.type_code, "status": r.status, "quantity": r.quantity, "contact": r.contact,
             "dept": dept_id, "unit": r.unit_id, "lon": r.lon, "lat": r.lat}).fetchone()
        audit(conn, actor=actor, actor_id=actor_id, action="resource.add", entity="resource", entity_id=str(row["id"]),
              detail={"type": r.type_code, "name": r.name, "grid": row["grid_code"], "unit_id": r.unit_id})
        live(conn, "resource", row["id"])
    return {"id": row["id"], "grid_code": row["grid_code"]}


def _check_quantity(quantity: object) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 <= quantity <= MAX_QUANTITY:
        raise Invalid(f"quantity is a whole number from 0 to {MAX_QUANTITY}, got {quantity!r}")


def _check_restock(res: dict, amount: object) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise Invalid(f"restock is the amount received, a whole number from 1, got {amount!r}")
    if res["quantity"] + amount > MAX_QUANTITY:
        raise Invalid(f"restock would take {res['name']} to {res['quantity'] + amount}, over {MAX_QUANTITY}")


def _check_unit(conn: psycopg.Connection, unit_id: int | None) -> None:
    if unit_id is not None and conn.execute("SELECT 1 FROM unit WHERE id = %s", (unit_id,)).fetchone() is None:
        raise Invalid(f"unit {unit_id} does not exist; bind the resource to a tracked unit from /api/units")


def _check_changes(conn: psycopg.Connection, res: dict, changes: dict) -> None:
    """Refuse what a hand may not change: unknown fields, bad values, and the status of a
    resource an order is out for (dispatch sets and clears 'assigned')."""
    unknown = sorted(set(changes) - set(EDITABLE), key=str)
    if unknown:
        raise Invalid(f"{', '.join(map(str, unknown))}: only {', '.join(EDITABLE)} can be changed")
    if not changes:
        raise Invalid(f"nothing to change; give one or more of {', '.join(EDITABLE)}")
    if "quantity" in changes:
        _check_quantity(changes["quantity"])
    if "restock" in changes:
        if "quantity" in changes:
            raise Invalid("give quantity (the stock counted) or restock (the amount received), not both")
        _check_restock(res, changes["restock"])
    if "contact" in changes and changes["contact"] is not None and (
            not isinstance(changes["contact"], str) or len(changes["contact"]) > 200):
        raise Invalid("contact is a text of at most 200 characters (a name and a phone number)")
    if "unit_id" in changes:
        _check_unit(conn, changes["unit_id"])
    if "status" not in changes or changes["status"] == res["status"]:
        return
    if changes["status"] not in HAND_STATUSES:
        raise Invalid(f"status is set by hand to {' or '.join(HAND_STATUSES)}; 'assigned' comes with a dispatch order")
    if res["status"] == "assigned":
        out = conn.execute("SELECT d.id, i.incident_no FROM dispatch_order d JOIN incident i ON i.id = d.incident_id"
                           " WHERE d.resource_id = %s AND d.status = ANY(%s) ORDER BY d.id LIMIT 1",
                           (res["id"], list(OPEN_ORDERS))).fetchone()
        if out is not None:
            raise Conflict(f"{res['name']} is out on dispatch order {out['id']} for incident {out['incident_no']};"
                           " it becomes available when that order is released or refused")


def update_resource(conn: psycopg.Connection, resource_id: int, changes: dict, *, actor: str,
                    actor_id: int | None = None) -> dict:
    """Change a resource's status (available / out of service), stock, contact or tracked unit,
    under its row lock: an audit row for each field that changes and the live bus told, all in
    one transaction. `restock` adds to the stock as it is now, so it cannot undo stock drawn by
    a dispatch since the form was read; `quantity` sets the stock from a count (盘点)."""
    with conn.transaction():
        res = conn.execute("SELECT id, name, status, quantity, contact, unit_id FROM resource WHERE id = %s FOR UPDATE",
                           (resource_id,)).fetchone()
        if res is None:
            raise NotFound(f"resource {resource_id} does not exist")
        _check_changes(conn, res, changes)
        restock = changes.get("restock")
        if restock is not None:
            changes = {k: v for k, v in changes.items() if k != "restock"} | {"quantity": res["quantity"] + restock}
        changed = {k: v for k, v in changes.items() if v != res[k]}
        for field, value in changed.items():
            detail = {"name": res["name"], "from": res[field], "to": value}
            action = f"resource.{field}"
            if field == "quantity" and restock is not None:
                action, detail["amount"] = "resource.restock", restock
            audit(conn, actor=actor, actor_id=actor_id, action=action, entity="resource",
                  entity_id=str(resource_id), detail=detail)
        if changed:
            sets = "".join(f", {k} = %({k})s" for k in changed)
            conn.execute(f"UPDATE resource SET updated_at = now(){sets} WHERE id = %(id)s",
                         {**changed, "id": resource_id})
            live(conn, "resource", resource_id)
        return conn.execute("SELECT id, name, type_code, ST_X(location) AS lon, ST_Y(location) AS lat, grid_code,"
                            " status, quantity, contact, dept_id, unit_id FROM resource WHERE id = %s",
                            (resource_id,)).fetchone()


def nearest_available(conn: psycopg.Connection, type_code: str, lon: float, lat: float, limit: int = 10) -> list[dict]:
    """The `limit` nearest available resources of a type (an empty store is not available):
    distance in metres and ETA in minutes."""
    kinds = resource_types()
    if type_code not in kinds:
        raise Invalid(f"resource type {type_code!r} is not one of {', '.join(sorted(kinds))}")
    speed = SPEED_KMH[kinds[type_code]["kind"]]
    rows = conn.execute(
        "WITH q AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS p),"
        " near AS (SELECT r.*, q.p FROM resource r, q WHERE r.status = 'available' AND r.quantity > 0"
        "          AND r.type_code = %(type)s"
        "          ORDER BY r.location <-> q.p LIMIT %(candidates)s)"
        " SELECT id, name, type_code, ST_X(location) AS lon, ST_Y(location) AS lat, quantity, contact, grid_code,"
        " ST_Distance(location::geography, p::geography) AS distance_m FROM near ORDER BY distance_m LIMIT %(limit)s",
        {"lon": lon, "lat": lat, "type": type_code, "candidates": limit * CANDIDATES, "limit": limit}).fetchall()
    for r in rows:
        r["distance_m"] = round(r["distance_m"], 1)
        r["eta_min"] = round(r["distance_m"] / 1000 / speed * 60, 1)
    return rows
