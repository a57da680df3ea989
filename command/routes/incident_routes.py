"""Emergency command (应急指挥): incidents and their response — plans, tasks, resources and
dispatch orders — and the /incidents page.

Who may do what: command.auth PERMISSIONS (incident.*, resource.*, dispatch.order); which
incidents a user sees: workflows.incidents.visibility; who may act on a task: its owner or
a commander (workflows.response). Every change carries the version the client saw where it
matters, so two commanders acting at once get one success and one 409."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import shapely
import shapely.geometry
import shapely.validation
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, StrictInt

from command.auth import User, require
from command.deps import db
from command.routes.device_routes import device_filter
from command.routes.web import templates
from command.unit_access import unit_filter
from gis.errors import Forbidden, Invalid, NotFound
from gis.geojson import area_condition
from workflows import cases, dispatch, incidents, response
from workflows.incidents import LINK_KINDS, NewIncident
from workflows.plans import LEVELS, emergency_catalog, emergency_names_en, resource_types
from workflows.resources import (MAX_QUANTITY, STATUSES as RESOURCE_STATUSES, NewResource, add_resource,
                                 nearest_available, update_resource)

router = APIRouter(tags=["incidents"])
Reader = Annotated[User, Depends(require("incident.read"))]
Reporter = Annotated[User, Depends(require("incident.report"))]
Commander = Annotated[User, Depends(require("incident.command"))]
TaskActor = Annotated[User, Depends(require("incident.task"))]
Dispatcher = Annotated[User, Depends(require("dispatch.order"))]
ResourceReader = Annotated[User, Depends(require("resource.read"))]
ResourceManager = Annotated[User, Depends(require("resource.manage"))]
Id = Annotated[int, Path(ge=1, le=2**62)]
Level = Literal["Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ"]


class LinkIn(BaseModel):
    """A case, alarm or camera event: what an incident is promoted from or linked to."""
    kind: Literal["case", "device_alarm", "camera_event", "unit_alarm"]
    id: StrictInt = Field(ge=1, le=2**62)


class IncidentIn(BaseModel):
    title: str | None = Field(default=None, max_length=200, description="defaults to the promoted source's")
    category: str = Field(examples=["自然灾害"], description="one of the four categories (突发公共事件)")
    subtype: str = Field(examples=["水旱灾害"])
    level: Level = Field(description="Ⅰ 特别重大 … Ⅳ 一般")
    lon: float | None = Field(default=None, description="WGS84; defaults to the promoted source's place")
    lat: float | None = None
    radius_m: float | None = Field(default=None, description="the affected radius, metres")
    area: dict | None = Field(default=None, description="the affected area as a GeoJSON Polygon/MultiPolygon")
    description: str = Field(default="", max_length=4000)
    drill: bool = Field(default=False, description="演练: marked everywhere, out of the statistics")
    details: dict[str, Any] = Field(default_factory=dict, description="figures for the warning, e.g. {depth: 35}")
    promote_from: LinkIn | None = Field(default=None,
                                        description="{kind: case|device_alarm|camera_event|unit_alarm, id}")
    activate: bool = Field(default=True, description="activate the matching plan at once (自动启动)")
    plan_id: str | None = Field(default=None, max_length=100,
                                description="the plan to activate (a commander's choice when several cover it)")


class VersionedNote(BaseModel):
    note: str = Field(default="", max_length=2000)
    version: int | None = Field(default=None, description="the version you saw; 409 if it changed")


class StatusIn(VersionedNote):
    status: Literal["verified", "responding", "contained", "closed"]


class LevelIn(BaseModel):
    level: Level
    reason: str = Field(min_length=1, max_length=2000)
    version: int | None = None


class ActivateIn(BaseModel):
    plan_id: str | None = Field(default=None, description="which plan; defaults to the one covering the incident")
    version: int | None = None


class TaskActionIn(VersionedNote):
    checklist: list[bool] | None = None
    owner_user_id: int | None = None


class DispatchIn(BaseModel):
    resource_id: int = Field(ge=1, le=2**62)
    quantity: int = Field(default=1, ge=1, le=1_000_000)
    task_id: int | None = Field(default=None, ge=1, le=2**62)
    note: str | None = Field(default=None, max_length=1000)


class OrderActionIn(BaseModel):
    note: str = Field(default="", max_length=1000)
    returned: int = Field(default=0, ge=0, description="supplies brought back on release")


class ResourceIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    type_code: str
    lon: float
    lat: float
    status: Literal["available", "assigned", "out_of_service"] = "available"
    quantity: int = Field(default=1, ge=0, le=MAX_QUANTITY)
    contact: str | None = Field(default=None, max_length=200)
    dept: str | None = None
    unit_id: int | None = Field(default=None, ge=1, le=2**31 - 1, description="the tracked unit it travels with")


class ResourcePatch(BaseModel):
    status: str | None = Field(default=None, max_length=20,
                               description="available or out_of_service ('assigned' comes with dispatch orders only)")
    quantity: StrictInt | None = Field(default=None, ge=0, le=MAX_QUANTITY, description="the stock as counted (盘点)")
    restock: StrictInt | None = Field(default=None, ge=1, le=MAX_QUANTITY,
                                      description="the amount received (入库), added to the stock as it is now")
    contact: str | None = Field(default=None, max_length=200)
    unit_id: int | None = Field(default=None, ge=1, le=2**31 - 1, description="bind to a tracked unit")


def _visible(conn, incident_id: int, user: User) -> dict:
    return incidents.get(conn, incident_id, user)


# Where each kind of source lives, the source aliased `s` (the rules below name their own aliases).
_SOURCE_FROM = {"case": "case_file s", "device_alarm": "device_alarm s JOIN device d ON d.id = s.device_id",
                "camera_event": "camera_event s JOIN camera cam ON cam.id = s.camera_id"}


def _source_rule(user: User, kind: str) -> tuple[str, dict]:
    """The visibility rule of the source's own pages: cases by area or department, device alarms
    by their device's, camera events (seen by every role) by their grid against the user's area."""
    if kind == "case":
        return cases.visibility(user, "s")
    if kind == "device_alarm":
        return device_filter(user, "d")
    return area_condition("coalesce(s.grid_code, cam.grid_code)", user.scope)


def _visible_source(conn, user: User, kind: str, ref: int) -> None:
    """404 unless the case, alarm or camera event exists and this user may see it."""
    if kind == "unit_alarm":
        where, args = unit_filter(user)
        row = conn.execute(f"SELECT 1 FROM unit_alarm s JOIN unit u ON u.id = s.unit_id WHERE s.id = %s AND {where}",
                           (ref, *args)).fetchone()
    else:
        where, params = _source_rule(user, kind)
        row = conn.execute(f"SELECT 1 FROM {_SOURCE_FROM[kind]} WHERE s.id = %(ref)s AND {where}",
                           {"ref": ref, **params}).fetchone()
    if row is None:
        raise NotFound(f"{LINK_KINDS[kind]} {ref} does not exist or is not yours to see")


def _check_chosen_plan(body: IncidentIn, user: User) -> None:
    """A plan named on report must be one a commander may start and that covers the incident."""
    if body.plan_id is None:
        return
    if not body.activate:
        raise Invalid("plan_id names the plan to activate; leave it out when activate is false")
    if not user.can("incident.command"):
        raise Forbidden("only a commander (指挥长) or leader (领导) chooses the plan; leave plan_id out and the one"
                        " plan covering the incident starts by itself")
    incidents.check_classification(body.category, body.subtype, body.level)
    covering = response.matching_plans(body.category, body.subtype)
    if body.plan_id not in {p.id for p in covering}:
        which = ", ".join(f"{p.id} ({p.name})" for p in covering) or "none; leave plan_id out and respond by hand"
        raise Invalid(f"plan {body.plan_id!r} does not cover {body.category}/{body.subtype};"
                      f" the plans that do: {which}")


def _activate_on_report(conn, incident_id: int, body: IncidentIn, user: User) -> dict | None:
    if not body.activate:
        return None
    if body.plan_id is None:
        return response.auto_activate(conn, incident_id)
    return response.activate(conn, incident_id, user, plan_id=body.plan_id)


def _area_wkt(area: dict | None) -> str | None:
    """A GeoJSON polygon as WKT, or a message saying what is wrong with it."""
    if area is None:
        return None
    if area.get("type") not in ("Polygon", "MultiPolygon"):
        raise Invalid("area is a GeoJSON Polygon or MultiPolygon in lon/lat")
    try:
        geom = shapely.geometry.shape(area)
    except (ValueError, TypeError, IndexError, AttributeError, shapely.errors.ShapelyError) as e:
        raise Invalid(f"area is not valid GeoJSON: {e}") from None
    if geom.is_empty or not geom.is_valid:
        raise Invalid(f"area is not a valid polygon: {shapely.validation.explain_validity(geom)}")
    return geom.wkt


# ---------------------------------------------------------------- catalog and plans
@router.get("/api/emergency/catalog")
def catalog(user: Reader):
    """The categories with their subtypes, the levels, and the resource types; `names_en`
    gives the English of the categories and subtypes."""
    cat = emergency_catalog()
    return {"categories": cat["categories"], "levels": cat["levels"], "resource_types": resource_types(),
            "names_en": emergency_names_en()["names"]}


@router.get("/api/plans")
def list_plans(user: Reader):
    """The plans in force (应急预案): scope, levels with their criteria and step counts."""
    return [{"id": p.id, "version": p.version, "name": p.name, "categories": p.categories, "subtypes": p.subtypes,
             "levels": {lv: {"criteria": p.levels[lv]["criteria"], "steps": len(p.levels[lv]["steps"])}
                        for lv in LEVELS if lv in p.levels}} for p in response.all_plans()]


@router.get("/api/plans/{plan_id}")
def get_plan(plan_id: Annotated[str, Path(max_length=100)], user: Reader):
    return response.plan_by_id(plan_id).source


class DrillIn(BaseModel):
    plan_id: str = Field(max_length=100, examples=["waterlogging"])
    level: Level = "Ⅳ"
    lon: float
    lat: float
    radius_m: float | None = Field(default=300)
    title: str | None = Field(default=None, max_length=200)
    details: dict[str, Any] = Field(default_factory=dict)


@router.post("/api/drills", status_code=201)
def start_drill(body: DrillIn, user: Commander, conn=Depends(db)):
    """Run any plan as a drill (演练): an incident of the plan's scope, marked as a drill
    everywhere, with the plan activated at the level asked."""
    plan = response.plan_by_id(body.plan_id)
    category = plan.categories[0]
    subtype = plan.subtypes[0] if plan.subtypes else emergency_catalog()["categories"][category][0]
    new = NewIncident(title=body.title or f"{plan.name}演练", category=category, subtype=subtype, level=body.level,
                      lon=body.lon, lat=body.lat, radius_m=body.radius_m, drill=True, details=body.details,
                      description=f"按《{plan.name}》组织的应急演练")
    with conn.transaction():
        made = incidents.create(conn, new, user)
        made["activation"] = response.activate(conn, made["id"], user, plan=plan)
    return made


# ---------------------------------------------------------------- incidents
@router.get("/api/incidents/stats")
def incident_stats(user: Reader, conn=Depends(db), since: dt.date | None = None, until: dt.date | None = None):
    """Incidents by category, level and status over a period (by report date), drills left
    out of the figures and counted apart."""
    where, params = incidents.visibility(user)
    rows = conn.execute(
        f"SELECT i.category, i.level, i.status, i.drill, count(*) AS n FROM incident i WHERE {where}"
        " AND (%(since)s::date IS NULL OR i.reported_at >= %(since)s::date)"
        " AND (%(until)s::date IS NULL OR i.reported_at < %(until)s::date + 1) GROUP BY 1, 2, 3, 4",
        {**params, "since": since, "until": until}).fetchall()
    real = [r for r in rows if not r["drill"]]
    tally = lambda key: {k: sum(r["n"] for r in real if r[key] == k) for k in sorted({r[key] for r in real})}  # noqa: E731
    return {"total": sum(r["n"] for r in real), "by_category": tally("category"), "by_level": tally("level"),
            "by_status": tally("status"), "drills": sum(r["n"] for r in rows if r["drill"])}


@router.get("/api/incidents")
def list_incidents(user: Reader, conn=Depends(db), status: str | None = Query(default=None, max_length=20),
                   open: bool = False, drill: bool | None = None, limit: int = Query(default=200, ge=1, le=1000)):
    return incidents.list_incidents(conn, user, status=status, open_only=open, drill=drill, limit=limit)


@router.post("/api/incidents", status_code=201)
def create_incident(body: IncidentIn, user: Reporter, conn=Depends(db)):
    """Report an incident by hand or promote a case, alarm or camera event to one (linked both
    ways). With `activate` (the default) the one plan covering it starts at once, or the plan
    a commander names in `plan_id`. A user limited to an area reports and promotes inside it."""
    links, lon, lat, title = [], body.lon, body.lat, body.title
    if body.promote_from is not None:
        kind, ref = body.promote_from.kind, body.promote_from.id
        _visible_source(conn, user, kind, ref)
        source = incidents.promotion_source(conn, kind, ref)
        lon = source["lon"] if lon is None else lon
        lat = source["lat"] if lat is None else lat
        title = title or source["title"]
        links = [(kind, ref)]
    if lon is None or lat is None:
        raise Invalid("give the place (lon, lat), or promote_from a case, alarm or camera event")
    if not title:
        raise Invalid("give the incident a title")
    _check_chosen_plan(body, user)
    new = NewIncident(title=title, category=body.category, subtype=body.subtype, level=body.level, lon=lon, lat=lat,
                      radius_m=body.radius_m, area_wkt=_area_wkt(body.area), description=body.description,
                      drill=body.drill, details=body.details, links=links)
    with conn.transaction():
        made = incidents.create(conn, new, user)
        made["activation"] = _activate_on_report(conn, made["id"], body, user)
    return made


@router.get("/api/incidents/linked")
def incidents_linked(user: Reader, conn=Depends(db), kind: str = Query(max_length=20),
                     id: int = Query(ge=1, le=2**62)):
    """The incidents a case, alarm or camera event belongs to (for its own page)."""
    where, params = incidents.visibility(user)
    ids = [i["id"] for i in incidents.incidents_of(conn, kind, id)]
    if not ids:
        return []
    seen = {r["id"] for r in conn.execute(f"SELECT i.id FROM incident i WHERE i.id = ANY(%(ids)s) AND {where}",
                                          {"ids": ids, **params})}
    return [i for i in incidents.incidents_of(conn, kind, id) if i["id"] in seen]


@router.get("/api/incidents/{incident_id}")
def get_incident(incident_id: Id, user: Reader, conn=Depends(db)):
    """The incident with its plans in force, tasks, dispatch orders and links."""
    inc = _visible(conn, incident_id, user)
    inc["activations"] = response.activations(conn, incident_id)
    inc["tasks"] = response.tasks(conn, incident_id)
    inc["orders"] = dispatch.orders(conn, incident_id)
    inc["can_command"] = user.can("incident.command")
    inc["can_dispatch"] = user.can("dispatch.order")
    return inc


@router.get("/api/incidents/{incident_id}/timeline")
def incident_timeline(incident_id: Id, user: Reader, conn=Depends(db), after: int = Query(default=0, ge=0)):
    _visible(conn, incident_id, user)
    return incidents.events(conn, incident_id, after)


@router.post("/api/incidents/{incident_id}/status")
def change_status(incident_id: Id, body: StatusIn, user: Commander, conn=Depends(db)):
    """verified / responding / contained / closed. Closing is refused while a mandatory task is
    open; it cancels optional ones and releases the resources still out."""
    _visible(conn, incident_id, user)
    if body.status != "closed":
        return incidents.set_status(conn, incident_id, body.status, user, note=body.note,
                                    expected_version=body.version)
    with conn.transaction():
        done = response.close(conn, incident_id, user, note=body.note, expected_version=body.version)
        done["released"] = dispatch.release_all(conn, incident_id, user)
    return done


@router.post("/api/incidents/{incident_id}/level")
def change_level(incident_id: Id, body: LevelIn, user: Commander, conn=Depends(db)):
    """升级/降级 with a reason; an upgrade adds the plan's steps of the new level."""
    _visible(conn, incident_id, user)
    return response.change_level(conn, incident_id, body.level, body.reason, user, expected_version=body.version)


@router.post("/api/incidents/{incident_id}/activate")
def activate_plan(incident_id: Id, body: ActivateIn, user: Commander, conn=Depends(db)):
    """Activate a plan by hand (手动启动预案)."""
    _visible(conn, incident_id, user)
    return response.activate(conn, incident_id, user, plan_id=body.plan_id, expected_version=body.version)


@router.post("/api/incidents/{incident_id}/links", status_code=201)
def link(incident_id: Id, body: LinkIn, user: Reporter, conn=Depends(db)):
    _visible(conn, incident_id, user)
    _visible_source(conn, user, body.kind, body.id)
    incidents.link(conn, incident_id, body.kind, body.id, user)
    return {"incident_id": incident_id, "kind": body.kind, "id": body.id}


# ---------------------------------------------------------------- tasks
@router.get("/api/incidents/{incident_id}/tasks")
def list_tasks(incident_id: Id, user: Reader, conn=Depends(db)):
    _visible(conn, incident_id, user)
    return response.tasks(conn, incident_id)


@router.get("/api/me/incident-tasks")
def my_tasks(user: TaskActor, conn=Depends(db)):
    """My open emergency tasks, soonest deadline first (for the phone and the console)."""
    return conn.execute(
        "SELECT t.id, t.incident_id, i.incident_no, i.title AS incident_title, i.drill, t.title, t.status, t.due_at,"
        " t.checklist, t.version FROM incident_task t JOIN incident i ON i.id = t.incident_id"
        " WHERE t.owner_user_id = %s AND t.status IN ('blocked', 'open', 'in_progress') ORDER BY t.due_at",
        (user.id,)).fetchall()


@router.post("/api/incident-tasks/{task_id}/{action}")
def task_action(task_id: Id, action: Literal["start", "done", "reopen", "waive", "reassign", "check"],
                body: TaskActionIn, user: TaskActor, conn=Depends(db)):
    """start / check (the checklist) / done by the owner or a commander; waive (with a reason),
    reopen and reassign by a commander. Send `version` to be told (409) of a change you missed."""
    return response.act_on_task(conn, task_id, action, user, note=body.note, expected_version=body.version,
                                checklist=body.checklist, owner_user_id=body.owner_user_id)


# ---------------------------------------------------------------- resources and dispatch
@router.get("/api/incidents/{incident_id}/suggestions")
def suggestions(incident_id: Id, user: Dispatcher, conn=Depends(db), task_id: int | None = Query(default=None, ge=1),
                limit: int = Query(default=5, ge=1, le=20)):
    """For each resource type the task (or every open task) needs: the nearest available, with
    distance and ETA."""
    _visible(conn, incident_id, user)
    return dispatch.suggest(conn, incident_id, task_id, limit)


@router.post("/api/incidents/{incident_id}/dispatch", status_code=201)
def dispatch_resource(incident_id: Id, body: DispatchIn, user: Dispatcher, conn=Depends(db)):
    _visible(conn, incident_id, user)
    return dispatch.dispatch(conn, incident_id, body.resource_id, user, quantity=body.quantity, task_id=body.task_id,
                             note=body.note)


@router.post("/api/dispatch-orders/{order_id}/{action}")
def order_action(order_id: Id, action: Literal["acknowledge", "arrive", "release", "refuse"], body: OrderActionIn,
                 user: TaskActor, conn=Depends(db)):
    """The unit or team answers an order (确认/到场/归队/拒绝); dispatchers may on their behalf."""
    return dispatch.update_order(conn, order_id, action, user, note=body.note, returned=body.returned)


@router.get("/api/resources")
def list_resources(user: ResourceReader, conn=Depends(db), type: str | None = Query(default=None, max_length=50),
                   status: str | None = Query(default=None, max_length=20), limit: int = Query(default=1000, ge=1, le=10000)):
    if type is not None and type not in resource_types():
        raise Invalid(f"resource type {type!r} is not one of {', '.join(sorted(resource_types()))}")
    if status is not None and status not in RESOURCE_STATUSES:
        raise Invalid(f"status is one of {', '.join(RESOURCE_STATUSES)}")
    return conn.execute(
        "SELECT id, name, type_code, ST_X(location) AS lon, ST_Y(location) AS lat, grid_code, status, quantity, contact,"
        " dept_id, unit_id FROM resource WHERE (%(type)s::text IS NULL OR type_code = %(type)s)"
        " AND (%(status)s::text IS NULL OR status = %(status)s) ORDER BY id LIMIT %(limit)s",
        {"type": type, "status": status, "limit": limit}).fetchall()


@router.get("/api/resources/nearest")
def resources_nearest(user: ResourceReader, conn=Depends(db), type: str = Query(max_length=50),
                      lon: float = Query(ge=-180, le=180), lat: float = Query(ge=-90, le=90),
                      limit: int = Query(default=10, ge=1, le=100)):
    """The nearest available resources of a type, with straight-line distance and a rough ETA."""
    return nearest_available(conn, type, lon, lat, limit)


@router.post("/api/resources", status_code=201)
def create_resource(body: ResourceIn, user: ResourceManager, conn=Depends(db)):
    return add_resource(conn, NewResource(body.name, body.type_code, body.lon, body.lat, status=body.status,
                                          quantity=body.quantity, contact=body.contact, dept=body.dept,
                                          unit_id=body.unit_id),
                        actor=user.username, actor_id=user.id)


@router.patch("/api/resources/{resource_id}")
def change_resource(resource_id: Id, body: ResourcePatch, user: ResourceManager, conn=Depends(db)):
    """Put a resource out of service or back, restock it (restock adds; quantity sets a count),
    change its contact or bind it to a tracked unit; only the fields sent change (contact or
    unit_id null clears them)."""
    return update_resource(conn, resource_id, body.model_dump(exclude_unset=True), actor=user.username,
                           actor_id=user.id)


# ---------------------------------------------------------------- page
@router.get("/incidents", response_class=HTMLResponse, include_in_schema=False)
def incidents_page(request: Request):
    """The commander's console for emergencies (应急指挥台)."""
    return templates.TemplateResponse(request, "incidents.html", {"demo": request.app.state.settings.demo})
