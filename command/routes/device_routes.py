"""IoT field devices (物联感知设备): the registry, the type catalog, and device alarms (设备告警).

Which devices a user sees: the command center's roles every one, a department the devices it
owns, anyone else the devices inside their area. A device out of sight answers 404 like one
that does not exist; its alarms are out of sight with it."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from command.auth import User, require
from command.deps import db
from devices import device_alarms, device_commands, telemetry_history
from devices.device_registry import NewDevice, add_device, set_rule_overrides
from gis.errors import Invalid, NotFound
from gis.geojson import area_condition

router = APIRouter(tags=["devices"])
Reader = Annotated[User, Depends(require("device.read"))]
Manager = Annotated[User, Depends(require("device.manage"))]
DeviceId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
_WHOLE_JURISDICTION = frozenset({"admin", "leader", "commander", "shift_lead", "operator", "dispatcher"})
ALARM_STATES = {"active": ("active_unack", "active_ack"), "unacknowledged": ("active_unack", "cleared_unack"),
                "cleared": ("cleared_unack", "cleared"),
                **{s: (s,) for s in ("active_unack", "active_ack", "cleared_unack")}}

# An alarm that is still on; written as the partial index device_alarm_active_idx is, so it is used.
_ACTIVE_ALARM = "a.status IN ('active_unack', 'active_ack')"
_HAS_ACTIVE_ALARM = f"EXISTS (SELECT 1 FROM device_alarm a WHERE a.device_id = d.id AND {_ACTIVE_ALARM})"
# A device's state as the device page shows it (devices.js deviceState): an active alarm
# outranks being offline, and a device never heard from counts as offline.
DEVICE_STATES = {
    "alarm": _HAS_ACTIVE_ALARM,
    "offline": f"NOT {_HAS_ACTIVE_ALARM} AND (s.online IS FALSE OR s.seen_at IS NULL)",
    "normal": f"NOT {_HAS_ACTIVE_ALARM} AND s.online IS NOT FALSE AND s.seen_at IS NOT NULL",
}

_DEVICE_SQL = """
SELECT d.id, d.type_code AS type, t.name AS type_name, d.part_id, ST_X(d.location) AS lon, ST_Y(d.location) AS lat,
       d.grid_code, d.dept_id, dp.name AS dept, d.username, d.password_hash IS NOT NULL AS has_password, d.meta,
       d.rules AS rule_overrides, d.active, d.created_at, s.ts AS last_reading_at, coalesce(s.values, '{{}}') AS latest,
       s.online, s.seen_at,
       (SELECT count(*) FROM device_alarm a WHERE a.device_id = d.id AND """ + _ACTIVE_ALARM + """) AS active_alarms
  FROM device d
  JOIN device_type t ON t.code = d.type_code
  LEFT JOIN department dp ON dp.id = d.dept_id
  LEFT JOIN device_state s ON s.device_id = d.id
 WHERE {where}"""


def device_filter(user: User, alias: str = "d") -> tuple[str, dict]:
    """A SQL condition on the device table (aliased `alias`) and its parameters."""
    if user.role in _WHOLE_JURISDICTION:
        return "TRUE", {}
    if user.role == "department":
        return f"{alias}.dept_id = %(viewer_dept)s", {"viewer_dept": user.dept_id}
    return area_condition(f"{alias}.grid_code", user.scope or [])


class DeviceIn(BaseModel):
    device_id: str = Field(min_length=1, max_length=64, description="also its MQTT topic level: citygrid/devices/{id}/…")
    type: str = Field(min_length=2, max_length=40, description="a code from GET /api/device-types, e.g. manhole_cover")
    lon: float | None = Field(default=None, description="WGS84; may be left out when part_id is given")
    lat: float | None = None
    part_id: str | None = Field(default=None, description="the 16-digit part (部件) it sits on")
    dept: str | None = Field(default=None, max_length=100, description="owning department's name")
    username: str | None = Field(default=None, max_length=64, description="broker login (default: the device id)")
    password: str | None = Field(default=None, min_length=8, max_length=200, description="broker password")
    meta: dict = Field(default_factory=dict, description="firmware, model, installed_on …")


def _device(conn, user: User, device_id: str) -> dict:
    where, params = device_filter(user)
    row = conn.execute(_DEVICE_SQL.format(where=f"d.id = %(id)s AND {where}"), {"id": device_id, **params}).fetchone()
    if row is None:
        raise NotFound(f"device {device_id} does not exist or is not yours to see")
    return row


@router.get("/api/device-types")
def list_device_types(user: Reader, conn=Depends(db)):
    """The catalog: each type's telemetry fields, default rules, commands and the part classes it fits."""
    return conn.execute("SELECT code, name, name_en, part_classes, heartbeat_s, fields, rules, commands"
                        " FROM device_type ORDER BY code").fetchall()


@router.get("/api/devices")
def list_devices(user: Reader, conn=Depends(db), type: str | None = Query(default=None, max_length=40),  # noqa: A002
                 area: str | None = Query(default=None, pattern=r"^\d{6,15}$", description="a grid/community/street code prefix"),
                 state: Literal[tuple(DEVICE_STATES)] | None = Query(  # type: ignore[valid-type]
                     default=None, description="alarm: has an active alarm; offline: no active alarm and offline or"
                     " never heard from; normal: neither"),
                 limit: int = Query(default=500, ge=1, le=5000), after: str | None = Query(default=None, max_length=64)):
    """Devices this user may see, with their latest values, online state and active alarm count,
    in id order (page on with `after` = the last id; the filters hold on every page)."""
    where, params = device_filter(user)
    if state is not None:
        where += f" AND {DEVICE_STATES[state]}"
    where += (" AND (%(type)s::text IS NULL OR d.type_code = %(type)s)"
              " AND (%(area)s::text IS NULL OR d.grid_code LIKE %(area)s || '%%')"
              " AND (%(after)s::text IS NULL OR d.id > %(after)s) ORDER BY d.id LIMIT %(limit)s")
    return conn.execute(_DEVICE_SQL.format(where=where),
                        {**params, "type": type, "area": area, "after": after, "limit": limit}).fetchall()


@router.post("/api/devices", status_code=201)
def create_device(new: DeviceIn, user: Manager, conn=Depends(db)):
    """Register a device (device.manage); its broker password is kept only as mosquitto's hash."""
    add_device(conn, NewDevice(device_id=new.device_id, type_code=new.type, lon=new.lon, lat=new.lat,
                               part_id=new.part_id, dept=new.dept, username=new.username, password=new.password,
                               meta=new.meta), actor=user.username, actor_id=user.id)
    return _device(conn, user, new.device_id)


@router.get("/api/devices/{device_id}")
def get_device(device_id: DeviceId, user: Reader, conn=Depends(db)):
    return _device(conn, user, device_id)


@router.get("/api/devices/{device_id}/telemetry")
def device_telemetry(device_id: DeviceId, user: Reader, conn=Depends(db),
                     field: str | None = Query(default=None, max_length=40, description="one field of the type, or all"),
                     since: dt.datetime | None = Query(default=None, description="ISO time (default: 24 h before until)"),
                     until: dt.datetime | None = Query(default=None, description="ISO time (default: now)"),
                     resolution: Literal["auto", "raw", "hour"] = "auto"):
    """Recent telemetry for a chart, oldest first: the readings themselves (`raw`), or buckets
    with the average as `values` and `min`, `max`, `n` beside it (`hour`, or `{N}s` when `auto`
    finds more than 2,000 readings in the window). Older than the raw retention, only hours."""
    device = _device(conn, user, device_id)
    until = until or dt.datetime.now(dt.timezone.utc)
    since = since or until - dt.timedelta(hours=24)
    if since.tzinfo is None or until.tzinfo is None:
        raise Invalid("since and until need a time zone, e.g. 2026-11-22T08:00:00+08:00")
    if not since < until or until - since > dt.timedelta(days=400):
        raise Invalid("the window must run forwards and be at most 400 days long")
    if field is not None:
        fields = conn.execute("SELECT fields FROM device_type WHERE code = %s", (device["type"],)).fetchone()["fields"]
        if field not in fields:
            raise Invalid(f"a {device['type']} has no field {field!r}; it has {', '.join(sorted(fields))}")
    return telemetry_history.history(conn, device_id, since, until, field=field, resolution=resolution)


@router.get("/api/alarms")
def list_alarms(user: Reader, conn=Depends(db),
                state: Literal[tuple(ALARM_STATES)] | None = Query(  # type: ignore[valid-type]
                    default=None, description="active, unacknowledged, cleared, or one exact status"),
                severity: Literal["critical", "major", "minor", "warning"] | None = None,
                device: str | None = Query(default=None, max_length=64),
                limit: int = Query(default=200, ge=1, le=2000)):
    """Device alarms (设备告警), newest first, with device, rule, severity and status."""
    where, params = device_filter(user)
    return conn.execute(
        "SELECT a.id, a.device_id, d.type_code AS device_type, a.rule_id, a.rule_name, a.severity, a.status,"
        " a.raised_at, a.last_at, a.repeats, a.value, a.acked_at, a.acked_by, a.cleared_at, a.cleared_by,"
        " a.escalated_at, a.part_id, a.case_id, a.lon, a.lat"
        " FROM device_alarm a JOIN device d ON d.id = a.device_id"
        f" WHERE {where} AND (%(states)s::text[] IS NULL OR a.status = ANY(%(states)s))"
        " AND (%(severity)s::text IS NULL OR a.severity = %(severity)s)"
        " AND (%(device)s::text IS NULL OR a.device_id = %(device)s)"
        " ORDER BY a.raised_at DESC, a.id DESC LIMIT %(limit)s",
        {**params, "states": list(ALARM_STATES[state]) if state else None, "severity": severity, "device": device,
         "limit": limit}).fetchall()


class AlarmNote(BaseModel):
    note: str | None = Field(default=None, max_length=2000, description="what was seen or done")


class AlarmComment(BaseModel):
    body: str = Field(min_length=1, max_length=2000)


AlarmId = Annotated[int, Path(ge=1, le=2**62)]
Handler = Annotated[User, Depends(require("device.alarm"))]


def _visible_alarm(conn, user: User, alarm_id: int) -> None:
    where, params = device_filter(user)
    if conn.execute(f"SELECT 1 FROM device_alarm a JOIN device d ON d.id = a.device_id WHERE a.id = %(alarm)s"
                    f" AND {where}", {"alarm": alarm_id, **params}).fetchone() is None:
        raise NotFound(f"alarm {alarm_id} does not exist or its device is not yours to see")


@router.get("/api/alarms/{alarm_id}")
def get_alarm(alarm_id: AlarmId, user: Reader, conn=Depends(db)):
    """One alarm with its comments."""
    _visible_alarm(conn, user, alarm_id)
    return device_alarms.alarm_detail(conn, alarm_id)


@router.post("/api/alarms/{alarm_id}/ack")
def acknowledge_alarm(alarm_id: AlarmId, user: Handler, conn=Depends(db), body: AlarmNote | None = None):
    """Acknowledge (确认) an alarm: who and when are kept; an optional note becomes a comment."""
    _visible_alarm(conn, user, alarm_id)
    return device_alarms.acknowledge(conn, alarm_id, by=user.username, by_id=user.id, note=body.note if body else None)


@router.post("/api/alarms/{alarm_id}/comments", status_code=201)
def comment_alarm(alarm_id: AlarmId, body: AlarmComment, user: Handler, conn=Depends(db)):
    _visible_alarm(conn, user, alarm_id)
    return device_alarms.comment(conn, alarm_id, by=user.username, by_id=user.id, body=body.body)


class CommandIn(BaseModel):
    name: str = Field(min_length=1, max_length=40, description="a command of the device's type, e.g. switch")
    params: dict = Field(default_factory=dict, description='e.g. {"on": false}')


Commander = Annotated[User, Depends(require("device.command"))]


@router.post("/api/devices/{device_id}/commands", status_code=202)
def send_command(device_id: DeviceId, body: CommandIn, user: Commander, conn=Depends(db)):
    """Queue a command (设备指令); an ingest worker publishes it on citygrid/devices/{id}/cmd and
    the device's answer on …/cmd/ack settles it (acked/failed), or its deadline does (timed_out)."""
    _device(conn, user, device_id)                      # 404 when out of sight
    return device_commands.queue_command(conn, device_id, body.name, body.params, by=user.username, by_id=user.id)


@router.get("/api/devices/{device_id}/commands")
def list_commands(device_id: DeviceId, user: Reader, conn=Depends(db), limit: int = Query(default=50, ge=1, le=500)):
    """The device's command log, newest first."""
    _device(conn, user, device_id)
    return conn.execute("SELECT id, device_id, name, params, status, created_by, created_at, deadline, sent_at,"
                        " answered_at, result FROM device_command WHERE device_id = %s ORDER BY id DESC LIMIT %s",
                        (device_id, limit)).fetchall()


@router.put("/api/devices/{device_id}/rules")
def put_rule_overrides(device_id: DeviceId, overrides: dict, user: Manager, conn=Depends(db)):
    """Replace the device's rule overrides: `{"rule_id": {…the rule's keys to change…}}` or
    `{"rule_id": {"enabled": false}}`, or a new rule of its own. Checked against the type's
    fields; the workers apply it within a minute, without a restart. Answers the rules that now apply."""
    _device(conn, user, device_id)
    return set_rule_overrides(conn, device_id, overrides, actor=user.username, actor_id=user.id)
