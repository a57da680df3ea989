"""Incidents (突发事件): the four categories with their subtypes and the four levels from the
catalog, a place and an affected area, the status from reported to closed, links to the
cases, alarms and camera events they came from, and the timeline (时间轴) that records
everything done about them.

Every change takes the incident's row lock and bumps its `version`: a client that sends the
version it saw gets 409 when somebody else changed the incident first."""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from gis.db import audit
from workflows.actors import utc_now, who
from gis.errors import Conflict, Forbidden, Invalid, NotFound
from workflows.cases import LOCAL_TZ
from workflows.notify import live
from workflows.plans import LEVELS, emergency_catalog
from workflows.text_checks import check_text, check_texts

STATUSES = ("reported", "verified", "responding", "contained", "closed")
STATUS_NAMES = {"reported": "已报告", "verified": "已核实", "responding": "响应中", "contained": "已控制", "closed": "已关闭"}
# Which status may follow which (a step may be skipped forward: a commander who activates a
# plan on a fresh report both verifies and responds).
NEXT = {"reported": ("verified", "responding", "closed"), "verified": ("responding", "closed"),
        "responding": ("contained", "closed"), "contained": ("responding", "closed"), "closed": ()}
LINK_KINDS = {"case": "案卷", "device_alarm": "设备告警", "camera_event": "视频事件", "unit_alarm": "巡查告警"}
# Who sees incidents and who runs them (command.auth maps these to roles).
COMMAND_ROLES = frozenset({"commander", "leader"})


def level_name(level: str) -> str:
    info = emergency_catalog()["levels"][level]
    return f"{info['name']}（{level}级）"


@dataclass
class NewIncident:
    title: str
    category: str
    subtype: str
    level: str
    lon: float
    lat: float
    radius_m: float | None = None
    area_wkt: str | None = None            # a drawn affected area (polygon), instead of a radius
    description: str = ""
    drill: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    links: list[tuple[str, int]] = field(default_factory=list)   # (kind, id) it was promoted from




def timeline(conn: psycopg.Connection, incident_id: int, actor: Any, kind: str, message: str,
             detail: dict | None = None, at: dt.datetime | None = None) -> None:
    """One entry on the incident's timeline, inside the caller's transaction."""
    name, actor_id = who(actor)
    conn.execute("INSERT INTO incident_event (incident_id, at, actor, actor_id, kind, message, detail)"
                 " VALUES (%s, coalesce(%s, clock_timestamp()), %s, %s, %s, %s, %s)",
                 (incident_id, at, name, actor_id, kind, message, Jsonb(detail or {})))


def check_classification(category: str, subtype: str, level: str) -> None:
    cats = emergency_catalog()["categories"]
    if category not in cats:
        raise Invalid(f"category {category!r} is not one of {', '.join(cats)}")
    if subtype not in cats[category]:
        raise Invalid(f"subtype {subtype!r} is not one of {category}'s: {', '.join(cats[category])}")
    if level not in LEVELS:
        raise Invalid(f"level {level!r} is not one of Ⅰ, Ⅱ, Ⅲ, Ⅳ (Ⅰ the most severe)")


def _check(n: NewIncident) -> None:
    check_classification(n.category, n.subtype, n.level)
    check_text("the title", n.title)
    check_text("the description", n.description)
    check_texts("details", n.details)
    if not 1 <= len(n.title.strip()) <= 200:
        raise Invalid("the title is 1 to 200 characters")
    if len(n.description) > 4000:
        raise Invalid("the description is longer than 4000 characters")
    if not (math.isfinite(n.lon) and math.isfinite(n.lat) and -180 <= n.lon <= 180 and -90 <= n.lat <= 90):
        raise Invalid(f"({n.lon}, {n.lat}) is not a WGS84 longitude/latitude pair")
    if n.radius_m is not None and not (math.isfinite(n.radius_m) and 0 < n.radius_m <= 50000):
        raise Invalid("radius_m is the affected radius in metres, above 0 and at most 50,000")
    if n.radius_m is not None and n.area_wkt:
        raise Invalid("give the affected area as a radius or as a polygon, not both")
    for kind, _ in n.links:
        if kind not in LINK_KINDS:
            raise Invalid(f"link kind {kind!r} is not one of {', '.join(LINK_KINDS)}")


_AREA_SQL = """CASE
  WHEN %(wkt)s::text IS NOT NULL THEN ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_GeomFromText(%(wkt)s, 4326)), 3))
  WHEN %(radius)s::float8 IS NOT NULL THEN
    ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography, %(radius)s, 'quad_segs=16')::geometry)
END"""


def create(conn: psycopg.Connection, n: NewIncident, actor: Any, now: dt.datetime | None = None) -> dict:
    """Record a new incident (status reported) with its links and the first timeline entry.
    A point outside the jurisdiction's grids is refused."""
    _check(n)
    now = now or utc_now()
    name, actor_id = who(actor)
    with conn.transaction():
        grid = conn.execute("SELECT code FROM grid WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))"
                            " ORDER BY code LIMIT 1", (n.lon, n.lat)).fetchone()
        if grid is None:
            raise Invalid(f"({n.lon:.6f}, {n.lat:.6f}) lies outside the jurisdiction's unit grids;"
                          " an incident elsewhere is for the neighbouring jurisdiction")
        _check_in_area(actor, grid["code"])
        if n.area_wkt:
            try:
                ok = conn.execute("SELECT ST_IsValid(ST_GeomFromText(%s, 4326)) AND"
                                  " GeometryType(ST_GeomFromText(%s, 4326)) IN ('POLYGON', 'MULTIPOLYGON') AS ok",
                                  (n.area_wkt, n.area_wkt)).fetchone()["ok"]
            except psycopg.errors.DataException as e:
                raise Invalid(f"the affected area is not WKT: {str(e).splitlines()[0]}") from None
            if not ok:
                raise Invalid("the affected area must be a valid polygon (WKT, lon/lat)")
        row = conn.execute(
            "WITH n AS (INSERT INTO incident_number (day, last) VALUES (%(day)s, 1) ON CONFLICT (day)"
            "           DO UPDATE SET last = incident_number.last + 1 RETURNING last)"
            " INSERT INTO incident (incident_no, title, category, subtype, level, location, radius_m, area, grid_code,"
            "  description, drill, details, reported_by, reported_at, updated_at)"
            f" SELECT 'YJ' || to_char(%(day)s::date, 'YYYYMMDD') || lpad(n.last::text, 3, '0'), %(title)s, %(category)s,"
            f"  %(subtype)s, %(level)s, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(radius)s, {_AREA_SQL},"
            "  %(grid)s, %(description)s, %(drill)s, %(details)s, %(by)s, %(now)s, %(now)s FROM n"
            " RETURNING id, incident_no",
            {"day": now.astimezone(LOCAL_TZ).date(), "title": n.title.strip(), "category": n.category,
             "subtype": n.subtype, "level": n.level, "lon": n.lon, "lat": n.lat, "radius": n.radius_m,
             "wkt": n.area_wkt, "grid": grid["code"], "description": n.description, "drill": n.drill,
             "details": Jsonb(n.details), "by": name, "now": now}).fetchone()
        incident_id = row["id"]
        for kind, ref_id in n.links:
            _check_link_target(conn, kind, ref_id)
            conn.execute("INSERT INTO incident_link (incident_id, kind, ref_id, promoted) VALUES (%s, %s, %s, true)",
                         (incident_id, kind, ref_id))
        drill = "【演练】" if n.drill else ""
        source = "；由" + "、".join(f"{LINK_KINDS[k]} {i}" for k, i in n.links) + "升级" if n.links else ""
        timeline(conn, incident_id, actor, "reported",
                 f"{drill}报告突发事件：{n.title}（{n.category}/{n.subtype}，{level_name(n.level)}）{source}",
                 {"level": n.level, "links": n.links}, at=now)
        audit(conn, actor=name, actor_id=actor_id, action="incident.create", entity="incident",
              entity_id=str(incident_id), detail={"no": row["incident_no"], "category": n.category,
                                                  "subtype": n.subtype, "level": n.level, "drill": n.drill})
        live(conn, "incident", incident_id)
    return {"id": incident_id, "incident_no": row["incident_no"], "grid_code": grid["code"]}


def _check_in_area(actor: Any, grid_code: str) -> None:
    """A user limited to an area reports only inside it (elsewhere they could not even read
    the incident back: see visibility)."""
    scope = getattr(actor, "scope", None)
    if scope is not None and not any(grid_code.startswith(prefix) for prefix in scope):
        raise Forbidden(f"the place lies in grid {grid_code}, outside your area ({', '.join(scope) or 'none'});"
                        " ask the command centre or a colleague of that area to report it")


_LINK_TABLES = {"case": "case_file", "device_alarm": "device_alarm", "camera_event": "camera_event",
                "unit_alarm": "unit_alarm"}


def _check_link_target(conn: psycopg.Connection, kind: str, ref_id: int) -> None:
    if conn.execute(f"SELECT 1 FROM {_LINK_TABLES[kind]} WHERE id = %s", (ref_id,)).fetchone() is None:
        raise Invalid(f"{LINK_KINDS[kind]} {ref_id} does not exist")


def link(conn: psycopg.Connection, incident_id: int, kind: str, ref_id: int, actor: Any) -> None:
    """Link a case, alarm or camera event to a running incident."""
    if kind not in LINK_KINDS:
        raise Invalid(f"link kind {kind!r} is not one of {', '.join(LINK_KINDS)}")
    name, actor_id = who(actor)
    with conn.transaction():
        inc = locked(conn, incident_id)
        _check_link_target(conn, kind, ref_id)
        made = conn.execute("INSERT INTO incident_link (incident_id, kind, ref_id) VALUES (%s, %s, %s)"
                            " ON CONFLICT DO NOTHING RETURNING 1", (incident_id, kind, ref_id)).fetchone()
        if made is None:
            raise Conflict(f"{LINK_KINDS[kind]} {ref_id} is already linked to incident {inc['incident_no']}")
        timeline(conn, incident_id, actor, "link", f"关联{LINK_KINDS[kind]} {ref_id}", {"kind": kind, "id": ref_id})
        _bump(conn, incident_id)
        audit(conn, actor=name, actor_id=actor_id, action="incident.link", entity="incident",
              entity_id=str(incident_id), detail={"kind": kind, "id": ref_id})


def incidents_of(conn: psycopg.Connection, kind: str, ref_id: int) -> list[dict]:
    """The incidents a case, alarm or camera event is linked to (the other way round)."""
    return conn.execute("SELECT i.id, i.incident_no, i.title, i.level, i.status, i.drill, l.promoted"
                        " FROM incident_link l JOIN incident i ON i.id = l.incident_id"
                        " WHERE l.kind = %s AND l.ref_id = %s ORDER BY i.id", (kind, ref_id)).fetchall()


def locked(conn: psycopg.Connection, incident_id: int, expected_version: int | None = None) -> dict:
    """The incident's row, locked for the caller's transaction; 409 when it moved on since the
    version the caller saw."""
    inc = conn.execute("SELECT *, ST_X(location) AS lon, ST_Y(location) AS lat FROM incident WHERE id = %s FOR UPDATE",
                       (incident_id,)).fetchone()
    if inc is None:
        raise NotFound(f"incident {incident_id} does not exist")
    if expected_version is not None and expected_version != inc["version"]:
        raise Conflict(f"incident {inc['incident_no']} changed since you opened it (version {expected_version},"
                       f" now {inc['version']}); reload it and try again")
    return inc


def _bump(conn: psycopg.Connection, incident_id: int, changes: dict | None = None) -> None:
    changes = changes or {}
    sets = "".join(f", {k} = %({k})s" for k in changes)
    conn.execute(f"UPDATE incident SET version = version + 1, updated_at = now(){sets} WHERE id = %(id)s",
                 {**changes, "id": incident_id})
    live(conn, "incident", incident_id)


def require_commander(actor: Any) -> None:
    if getattr(actor, "role", None) not in COMMAND_ROLES:
        raise Forbidden("only a commander (指挥长) or leader (领导) may do this")


def set_status(conn: psycopg.Connection, incident_id: int, status: str, actor: Any, *, note: str = "",
               expected_version: int | None = None, now: dt.datetime | None = None,
               before_close=None) -> dict:
    """Move the incident along reported → verified → responding → contained → closed.
    `before_close(conn, incident)` runs under the lock and may refuse the close (open
    mandatory tasks)."""
    if status not in STATUSES:
        raise Invalid(f"status {status!r} is not one of {', '.join(STATUSES)}")
    require_commander(actor)
    now = now or utc_now()
    name, actor_id = who(actor)
    with conn.transaction():
        inc = locked(conn, incident_id, expected_version)
        if status not in NEXT[inc["status"]]:
            allowed = "、".join(STATUS_NAMES[s] for s in NEXT[inc["status"]]) or "nothing (it is closed)"
            raise Conflict(f"incident {inc['incident_no']} is {STATUS_NAMES[inc['status']]}; it can move to {allowed}")
        if status == "closed" and before_close is not None:
            before_close(conn, inc)
        changes = {"status": status}
        stamp = {"verified": "verified_at", "responding": "responding_at", "contained": "contained_at",
                 "closed": "closed_at"}[status]
        if inc[stamp] is None:
            changes[stamp] = now
        if status in ("responding", "contained", "closed") and inc["verified_at"] is None:
            changes["verified_at"] = now
        _bump(conn, incident_id, changes)
        timeline(conn, incident_id, actor, f"status.{status}",
                 f"状态：{STATUS_NAMES[inc['status']]} → {STATUS_NAMES[status]}" + (f"（{note}）" if note else ""),
                 {"from": inc["status"], "to": status, "note": note}, at=now)
        audit(conn, actor=name, actor_id=actor_id, action=f"incident.{status}", entity="incident",
              entity_id=str(incident_id), detail={"from": inc["status"], "note": note})
    return {"status": status}


def set_level(conn: psycopg.Connection, incident_id: int, level: str, reason: str, actor: Any, *,
              expected_version: int | None = None, now: dt.datetime | None = None) -> dict:
    """Change the response level (升级/降级), with the reason on the timeline. Returns the old
    and new level; the caller upgrades the plan's response."""
    if level not in LEVELS:
        raise Invalid(f"level {level!r} is not one of Ⅰ, Ⅱ, Ⅲ, Ⅳ")
    if not reason or not reason.strip():
        raise Invalid("a level change needs a written reason")
    require_commander(actor)
    now = now or utc_now()
    name, actor_id = who(actor)
    with conn.transaction():
        inc = locked(conn, incident_id, expected_version)
        if inc["status"] == "closed":
            raise Conflict(f"incident {inc['incident_no']} is closed")
        if inc["level"] == level:
            raise Conflict(f"incident {inc['incident_no']} is already at level {level}")
        up = LEVELS.index(level) > LEVELS.index(inc["level"])
        _bump(conn, incident_id, {"level": level})
        timeline(conn, incident_id, actor, "level",
                 f"{'升级' if up else '降级'}：{level_name(inc['level'])} → {level_name(level)}；理由：{reason.strip()}",
                 {"from": inc["level"], "to": level, "reason": reason.strip()}, at=now)
        audit(conn, actor=name, actor_id=actor_id, action="incident.level", entity="incident",
              entity_id=str(incident_id), detail={"from": inc["level"], "to": level, "reason": reason.strip()})
    return {"from": inc["level"], "to": level, "upgraded": up}


# ---------------------------------------------------------------- reading

def visibility(actor: Any, alias: str = "i") -> tuple[str, dict]:
    """Which incidents a user sees: command-centre roles all; a user limited to an area those
    in it; a department those it has a task or a dispatched resource in."""
    scope = getattr(actor, "scope", None)
    if getattr(actor, "role", None) == "department":
        return (f"(EXISTS (SELECT 1 FROM incident_task t JOIN duty_post p ON p.id = t.post_id"
                f"  WHERE t.incident_id = {alias}.id AND p.dept_id = %(vis_dept)s)"
                f" OR EXISTS (SELECT 1 FROM dispatch_order d JOIN resource r ON r.id = d.resource_id"
                f"  WHERE d.incident_id = {alias}.id AND r.dept_id = %(vis_dept)s))", {"vis_dept": actor.dept_id})
    if scope is not None:
        return (f"EXISTS (SELECT 1 FROM unnest(%(vis_scope)s::text[]) s WHERE {alias}.grid_code LIKE s || '%%')",
                {"vis_scope": scope})
    return "TRUE", {}


_COLUMNS = ("i.id, i.incident_no, i.title, i.category, i.subtype, i.level, i.status, ST_X(i.location) AS lon,"
            " ST_Y(i.location) AS lat, i.radius_m, i.grid_code, i.description, i.drill, i.details, i.reported_by,"
            " i.reported_at, i.verified_at, i.responding_at, i.contained_at, i.closed_at, i.version, i.updated_at")


def get(conn: psycopg.Connection, incident_id: int, actor: Any) -> dict:
    where, params = visibility(actor)
    inc = conn.execute(f"SELECT {_COLUMNS}, ST_AsGeoJSON(i.area, 7)::json AS area FROM incident i"
                       f" WHERE i.id = %(id)s AND {where}", {"id": incident_id, **params}).fetchone()
    if inc is None:
        raise NotFound(f"incident {incident_id} does not exist or is not yours to see")
    inc["links"] = conn.execute("SELECT kind, ref_id, promoted, linked_at FROM incident_link WHERE incident_id = %s"
                                " ORDER BY linked_at", (incident_id,)).fetchall()
    inc["level_name"] = level_name(inc["level"])
    inc["status_name"] = STATUS_NAMES[inc["status"]]
    return inc


def list_incidents(conn: psycopg.Connection, actor: Any, *, status: str | None = None, open_only: bool = False,
                   drill: bool | None = None, limit: int = 200) -> list[dict]:
    where, params = visibility(actor)
    clauses = [where]
    if status:
        if status not in STATUSES:
            raise Invalid(f"status is one of {', '.join(STATUSES)}")
        clauses.append("i.status = %(status)s")
    if open_only:
        clauses.append("i.status <> 'closed'")
    if drill is not None:
        clauses.append("i.drill = %(drill)s")
    return conn.execute(
        f"SELECT {_COLUMNS},"
        " (SELECT count(*) FROM incident_task t WHERE t.incident_id = i.id AND t.status IN ('blocked', 'open', 'in_progress')) AS open_tasks,"
        " (SELECT count(*) FROM incident_task t WHERE t.incident_id = i.id AND t.status IN ('blocked', 'open', 'in_progress')"
        "   AND t.due_at < now()) AS overdue_tasks"
        f" FROM incident i WHERE {' AND '.join(clauses)} ORDER BY i.status = 'closed', i.reported_at DESC LIMIT %(limit)s",
        {**params, "status": status, "drill": drill, "limit": limit}).fetchall()


def events(conn: psycopg.Connection, incident_id: int, after_id: int = 0) -> list[dict]:
    return conn.execute("SELECT id, at, actor, kind, message, detail FROM incident_event"
                        " WHERE incident_id = %s AND id > %s ORDER BY id", (incident_id, after_id)).fetchall()


_SOURCE_SQL = {
    "case": "SELECT ST_X(c.location) AS lon, ST_Y(c.location) AS lat, c.case_no AS ref,"
            " coalesce(ec.name, pc.name) AS what, c.description FROM case_file c"
            " LEFT JOIN event_class ec ON ec.code = c.event_class LEFT JOIN part_class pc ON pc.code = c.part_class"
            " WHERE c.id = %s",
    "device_alarm": "SELECT a.lon, a.lat, a.device_id AS ref, a.rule_name AS what, a.value::text AS description"
                    " FROM device_alarm a WHERE a.id = %s",
    "camera_event": "SELECT ST_X(coalesce(e.location, c.location)) AS lon, ST_Y(coalesce(e.location, c.location)) AS lat,"
                    " c.name AS ref, coalesce(ec.name, e.kind) AS what, '' AS description FROM camera_event e"
                    " JOIN camera c ON c.id = e.camera_id LEFT JOIN event_class ec ON ec.code = e.event_class"
                    " WHERE e.id = %s",
    "unit_alarm": "SELECT a.lon, a.lat, u.name AS ref, a.kind AS what, a.message AS description"
                  " FROM unit_alarm a JOIN unit u ON u.id = a.unit_id WHERE a.id = %s",
}


def promotion_source(conn: psycopg.Connection, kind: str, ref_id: int) -> dict:
    """Where and what a case, alarm or camera event is, to start an incident from (升级为突发事件)."""
    if kind not in _SOURCE_SQL:
        raise Invalid(f"an incident is promoted from one of {', '.join(_SOURCE_SQL)}")
    row = conn.execute(_SOURCE_SQL[kind], (ref_id,)).fetchone()
    if row is None:
        raise NotFound(f"{LINK_KINDS[kind]} {ref_id} does not exist")
    if row["lon"] is None:
        raise Invalid(f"{LINK_KINDS[kind]} {ref_id} has no location; give lon and lat")
    row["title"] = f"{row['what']}（{LINK_KINDS[kind]} {row['ref']}）"
    return row
