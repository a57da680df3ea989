"""Patrol units (巡查单元), their shifts (排班), the live picture and unit alarms (巡查告警).

Which units a user sees: `command.unit_access` (the command center all, a department its own,
an inspector their own unit); a unit out of sight answers 404 like one that does not exist."""
from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from command.auth import User, require
from command.deps import db
from command.unit_access import unit_filter, visible_unit
from devices.handlers.alarms import live_alarm
from devices.registry import UNIT_KINDS, add_unit
from devices.shifts import add_shift
from gis.db import audit
from gis.errors import Conflict, Invalid, NotFound

router = APIRouter(tags=["units"])
Reader = Annotated[User, Depends(require("unit.read"))]
Manager = Annotated[User, Depends(require("unit.manage"))]
UnitId = Annotated[int, Path(ge=1, le=2**31 - 1)]
MAX_SHIFT_RANGE = dt.timedelta(days=92)

# One row per unit: department, devices, the shift it is on now, its last good position
# (unit_state) and how many alarms are open. `{where}` is command.unit_access.unit_filter.
_UNIT_SQL = """
SELECT u.id, u.name, u.kind, u.dept_id, d.name AS dept, u.phone, au.username AS "user", u.active, u.created_at,
       coalesce((SELECT array_agg(x.device ORDER BY x.device) FROM unit_device x WHERE x.unit_id = u.id),
                '{{}}') AS devices,
       (SELECT json_build_object('id', s.id, 'starts_at', s.starts_at, 'ends_at', s.ends_at,
                                 'area_grids', s.area_grids)
          FROM shift s WHERE s.unit_id = u.id AND tstzrange(s.starts_at, s.ends_at) @> now()) AS shift,
       CASE WHEN st.unit_id IS NOT NULL THEN json_build_object(
         'fix_time', st.fix_time, 'lon', st.lon, 'lat', st.lat, 'speed_mps', st.speed_mps,
         'accuracy_m', st.accuracy_m, 'battery_pct', st.battery_pct, 'device', st.device) END AS position,
       (SELECT count(*) FROM unit_alarm a WHERE a.unit_id = u.id AND a.cleared_at IS NULL) AS open_alarms
  FROM unit u
  LEFT JOIN department d ON d.id = u.dept_id
  LEFT JOIN app_user au ON au.id = u.user_id
  LEFT JOIN unit_state st ON st.unit_id = u.id
 WHERE {where}"""


class NewUnit(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="e.g. 监督员张三, 湘B·12345")
    kind: Literal[UNIT_KINDS] = Field(description=", ".join(UNIT_KINDS))   # type: ignore[valid-type]
    dept: str | None = Field(default=None, max_length=100, description="department name")
    phone: str | None = Field(default=None, max_length=50)
    user: str | None = Field(default=None, max_length=64, description="the person's login (inspectors)")
    devices: list[str] = Field(default_factory=list, max_length=20,
                               description="owntracks:USER/DEVICE or osmand:ID")


class NewShift(BaseModel):
    starts_at: dt.datetime = Field(description="with a time zone, e.g. 2026-11-21T08:00+08:00")
    ends_at: dt.datetime
    areas: list[str] | None = Field(default=None, max_length=500, description="grid, community or street codes")
    polygon: dict | None = Field(default=None, description="a drawn GeoJSON Polygon or MultiPolygon (WGS84)")


class ClearAlarm(BaseModel):
    note: str | None = Field(default=None, max_length=500, description="what was done (处置说明)")


def _unit(conn, user: User, unit_id: int) -> dict:
    visible_unit(conn, user, unit_id)               # 404 when out of sight
    return conn.execute(_UNIT_SQL.format(where="u.id = %s"), (unit_id,)).fetchone()


@router.get("/api/units")
def list_units(user: Reader, conn=Depends(db), active: bool | None = None,
               kind: Literal[UNIT_KINDS] | None = None):     # type: ignore[valid-type]
    """Every unit this user may see, with its department, devices, current shift, last good
    position and open alarm count."""
    where, params = unit_filter(user)
    return conn.execute(_UNIT_SQL.format(where=f"{where} AND (%s::boolean IS NULL OR u.active = %s)"
                                               f" AND (%s::text IS NULL OR u.kind = %s) ORDER BY u.id"),
                        (*params, active, active, kind, kind)).fetchall()


@router.post("/api/units", status_code=201)
def create_unit(new: NewUnit, user: Manager, conn=Depends(db)):
    """Register a unit and bind its devices (unit.manage)."""
    unit_id = add_unit(conn, name=new.name, kind=new.kind, dept=new.dept, phone=new.phone, username=new.user,
                       devices=[d.strip() for d in new.devices], actor=user.username, actor_id=user.id)
    return _unit(conn, user, unit_id)


@router.get("/api/units/live")
def live_units(user: Reader, conn=Depends(db)):
    """The map's live layer: every visible active unit as a GeoJSON Feature at its last good
    position (geometry null before its first fix), on duty or not, with its open alarms.
    The live bus (/api/live) says when to fetch it again: kinds unit_position, unit_alarm."""
    where, params = unit_filter(user)
    rows = conn.execute(
        "SELECT u.id, u.name, u.kind, d.name AS dept, st.fix_time, st.lon, st.lat, st.speed_mps, st.accuracy_m,"
        " st.battery_pct, s.id AS shift_id, s.ends_at AS shift_ends_at,"
        " coalesce((SELECT array_agg(a.kind ORDER BY a.raised_at) FROM unit_alarm a"
        "           WHERE a.unit_id = u.id AND a.cleared_at IS NULL), '{}') AS alarms"
        " FROM unit u LEFT JOIN department d ON d.id = u.dept_id LEFT JOIN unit_state st ON st.unit_id = u.id"
        " LEFT JOIN shift s ON s.unit_id = u.id AND tstzrange(s.starts_at, s.ends_at) @> now()"
        f" WHERE u.active AND {where} ORDER BY u.id", params).fetchall()
    features = []
    for r in rows:
        features.append({
            "type": "Feature", "id": r["id"],
            "geometry": None if r["lon"] is None else {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
            "properties": {
                "id": r["id"], "name": r["name"], "kind": r["kind"], "dept": r["dept"],
                "on_duty": r["shift_id"] is not None, "shift_id": r["shift_id"], "shift_ends_at": r["shift_ends_at"],
                "fix_time": r["fix_time"], "speed_mps": r["speed_mps"], "accuracy_m": r["accuracy_m"],
                "battery_pct": r["battery_pct"], "open_alarms": list(r["alarms"]),
            }})
    return {"type": "FeatureCollection", "features": features,
            "generated_at": dt.datetime.now(dt.timezone.utc)}


@router.get("/api/units/{unit_id}")
def get_unit(unit_id: UnitId, user: Reader, conn=Depends(db)):
    return _unit(conn, user, unit_id)


@router.post("/api/units/{unit_id}/shifts", status_code=201)
def create_shift(unit_id: UnitId, new: NewShift, user: Manager, conn=Depends(db)):
    """Put the unit on duty (排班) in an area: grid/community/street codes or a drawn polygon."""
    visible_unit(conn, user, unit_id)
    shift_id = add_shift(conn, unit_id=unit_id, starts_at=new.starts_at, ends_at=new.ends_at, areas=new.areas,
                         polygon=new.polygon, actor=user.username, actor_id=user.id)
    return _shifts(conn, "s.id = %s", (shift_id,))[0]


@router.get("/api/units/{unit_id}/shifts")
def list_shifts(unit_id: UnitId, user: Reader, conn=Depends(db),
                from_: Annotated[dt.datetime | None, Query(alias="from")] = None,
                to: dt.datetime | None = None):
    """Shifts overlapping [from, to) (default: from a day ago to a week ahead), with their areas."""
    visible_unit(conn, user, unit_id)
    now = dt.datetime.now(dt.timezone.utc)
    start, end = from_ or now - dt.timedelta(days=1), to or now + dt.timedelta(days=7)
    if start.tzinfo is None or end.tzinfo is None:
        raise Invalid("from and to need a time zone (e.g. 2026-11-21T00:00+08:00)")
    if end <= start:
        raise Invalid("'to' must be after 'from'")
    if end - start > MAX_SHIFT_RANGE:
        raise Invalid(f"ask for at most {MAX_SHIFT_RANGE.days} days of shifts at a time")
    return _shifts(conn, "s.unit_id = %s AND tstzrange(s.starts_at, s.ends_at) && tstzrange(%s, %s)",
                   (unit_id, start, end))


def _shifts(conn, where: str, params: tuple) -> list[dict]:
    rows = conn.execute(
        "SELECT s.id, s.unit_id, s.starts_at, s.ends_at, s.area_grids, s.created_by,"
        " tstzrange(s.starts_at, s.ends_at) @> now() AS current, ST_AsGeoJSON(s.area, 6) AS area"
        f" FROM shift s WHERE {where} ORDER BY s.starts_at", params).fetchall()
    for r in rows:
        r["area"] = json.loads(r["area"])
    return rows


# ---------------------------------------------------------------- alarms (巡查告警)
@router.get("/api/unit-alarms")
def list_alarms(user: Reader, conn=Depends(db), open: bool | None = None,  # noqa: A002 - the API's word
                unit_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 200):
    """Alarms of visible units, newest first; `open=true` only those not cleared yet."""
    where, params = unit_filter(user)
    return conn.execute(
        "SELECT a.id, a.unit_id, u.name AS unit_name, u.kind AS unit_kind, a.shift_id, a.kind, a.since,"
        " a.raised_at, a.escalated_at, a.cleared_at, a.cleared_by, a.lon, a.lat, a.message, a.detail"
        " FROM unit_alarm a JOIN unit u ON u.id = a.unit_id"
        f" WHERE {where} AND (%s::boolean IS NULL OR (a.cleared_at IS NULL) = %s)"
        " AND (%s::integer IS NULL OR a.unit_id = %s) ORDER BY a.raised_at DESC, a.id DESC LIMIT %s",
        (*params, open, open, unit_id, unit_id, limit)).fetchall()


@router.post("/api/unit-alarms/{alarm_id}/clear")
def clear_alarm(alarm_id: Annotated[int, Path(ge=1, le=2**62)],
                user: Annotated[User, Depends(require("unit.alarm"))], conn=Depends(db),
                body: ClearAlarm | None = None):
    """Clear (解除) an open alarm: who and when are kept, with an audit row; the live bus
    tells the browsers (kind unit_alarm)."""
    where, params = unit_filter(user)
    with conn.transaction():
        row = conn.execute(
            "SELECT a.id, a.unit_id, a.kind, a.cleared_at, a.cleared_by"
            " FROM unit_alarm a JOIN unit u ON u.id = a.unit_id"
            f" WHERE a.id = %s AND {where} FOR UPDATE OF a", (alarm_id, *params)).fetchone()
        if row is None:
            raise NotFound(f"alarm {alarm_id} does not exist or its unit is not yours to see")
        if row["cleared_at"] is not None:
            raise Conflict(f"alarm {alarm_id} was already cleared by {row['cleared_by']}"
                           f" at {row['cleared_at']:%Y-%m-%d %H:%M:%S %z}")
        cleared = conn.execute(
            "UPDATE unit_alarm SET cleared_at = now(), cleared_by = %s WHERE id = %s"
            " RETURNING id, unit_id, kind, since, raised_at, cleared_at, cleared_by, message",
            (user.username, alarm_id)).fetchone()
        audit(conn, actor=user.username, actor_id=user.id, action="unit_alarm.clear", entity="unit_alarm",
              entity_id=str(alarm_id), detail={"unit_id": row["unit_id"], "kind": row["kind"],
                                               "note": body.note if body else None})
        live_alarm(conn, alarm_id, row["unit_id"], row["kind"], "cleared")   # same shape as the handlers'
    return cleared
