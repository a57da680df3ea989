"""Units (巡查单元: inspectors, officers, vehicles, teams) and the devices bound to them.

`DeviceDirectory` answers "which unit is this device?" for the ingest pipeline from memory,
asking the database about a device it does not know, so a device registered while the
worker runs is picked up at its first message, without a restart."""
from __future__ import annotations

import re
import time
import psycopg

from gis.db import audit, department_id
from gis.errors import Conflict, Invalid

UNIT_KINDS = ("inspector", "officer", "vehicle", "team")
DEVICE_PATTERN = re.compile(r"^(owntracks:[^/\s]+/[^/\s]+|osmand:\S+)$")
UNKNOWN_RETRY_S = 5.0          # a device the database did not know is asked about again after this
MAX_NAME = 100                           # unit.name CHECK
MAX_PHONE = 50


def check_unit(*, name: str, kind: str, devices: list[str] = (), phone: str | None = None) -> None:
    """The checks that need no database: kind, name, phone and the shape of each device key."""
    if kind not in UNIT_KINDS:
        raise Invalid(f"kind must be one of {', '.join(UNIT_KINDS)}, not {kind!r}")
    if not name or not name.strip():
        raise Invalid("a unit needs a name")
    if len(name.strip()) > MAX_NAME:
        raise Invalid(f"a unit name has at most {MAX_NAME} characters ({len(name.strip())} given)")
    if phone is not None and len(phone) > MAX_PHONE:
        raise Invalid(f"a phone number has at most {MAX_PHONE} characters")
    seen: set[str] = set()
    for device in devices:
        if not DEVICE_PATTERN.match(device):
            raise Invalid(f"device {device!r} must look like owntracks:USER/DEVICE or osmand:ID")
        if device in seen:
            raise Invalid(f"device {device} is listed twice")
        seen.add(device)


def resolve_unit(conn: psycopg.Connection, *, dept: str | None = None, username: str | None = None,
                 devices: list[str] = ()) -> tuple[int | None, int | None]:
    """The database checks of a new unit, writing nothing: the department and the login
    exist, the login is not another unit's, no device is bound yet. Returns (dept_id, user_id)."""
    dept_id = department_id(conn, dept)
    user_id = None
    if username:
        row = conn.execute("SELECT u.id, n.id AS unit_id, n.name AS unit_name FROM app_user u"
                           " LEFT JOIN unit n ON n.user_id = u.id WHERE u.username = %s", (username,)).fetchone()
        if row is None:
            raise Invalid(f"user {username!r} does not exist")
        if row["unit_id"] is not None:
            raise Conflict(f"user {username!r} already belongs to unit {row['unit_id']} ({row['unit_name']})")
        user_id = row["id"]
    if devices:
        taken = conn.execute("SELECT device, unit_id FROM unit_device WHERE device = ANY(%s) ORDER BY device",
                             (list(devices),)).fetchone()
        if taken:
            raise Conflict(f"device {taken['device']} is already bound to unit {taken['unit_id']}")
    return dept_id, user_id


def add_unit(conn: psycopg.Connection, *, name: str, kind: str, actor: str, dept: str | None = None,
             phone: str | None = None, devices: list[str] = (), username: str | None = None,
             actor_id: int | None = None) -> int:
    """Register a unit and bind its devices, in one transaction with an audit row."""
    check_unit(name=name, kind=kind, devices=devices, phone=phone)
    with conn.transaction():
        dept_id, user_id = resolve_unit(conn, dept=dept, username=username, devices=devices)
        unit_id = conn.execute("INSERT INTO unit (name, kind, dept_id, phone, user_id) VALUES (%s, %s, %s, %s, %s)"
                               " RETURNING id", (name.strip(), kind, dept_id, phone, user_id)).fetchone()["id"]
        for device in devices:
            conn.execute("INSERT INTO unit_device (device, unit_id) VALUES (%s, %s)", (device, unit_id))
        audit(conn, actor=actor, actor_id=actor_id, action="unit.add", entity="unit", entity_id=str(unit_id),
              detail={"name": name, "kind": kind, "dept": dept, "user": username, "devices": list(devices)})
    return unit_id


class DeviceDirectory:
    def __init__(self) -> None:
        self._units: dict[str, int] = {}
        self._active: set[int] = set()
        self._unknown: dict[str, float] = {}      # device → when the database last said "no such device"

    def load(self, conn: psycopg.Connection) -> None:
        rows = conn.execute("SELECT d.device, d.unit_id FROM unit_device d JOIN unit u ON u.id = d.unit_id"
                            " WHERE u.active").fetchall()
        self._units = {r["device"]: r["unit_id"] for r in rows}
        self._active = {r["id"] for r in conn.execute("SELECT id FROM unit WHERE active").fetchall()}
        self._unknown.clear()

    def unit_of(self, conn: psycopg.Connection, device: str) -> int | None:
        """From memory; a device not there is looked up in the database (registered since the
        last load), and a device the database does not know either is not asked about again
        for a few seconds (a flood from an unregistered phone costs one query per interval)."""
        found = self._lookup(device)
        if found is not None:
            return found
        if time.monotonic() - self._unknown.get(device, float("-inf")) < UNKNOWN_RETRY_S:
            return None
        found = self._fetch(conn, device)
        if found is None:
            if len(self._unknown) > 100_000:
                self._unknown.clear()
            self._unknown[device] = time.monotonic()
        return found

    def _fetch(self, conn: psycopg.Connection, device: str) -> int | None:
        if device.startswith("unit:"):
            unit_id = _unit_number(device)
            if unit_id is not None and conn.execute("SELECT 1 FROM unit WHERE id = %s AND active",
                                                    (unit_id,)).fetchone():
                self._active.add(unit_id)
                return unit_id
            return None
        row = conn.execute("SELECT d.unit_id FROM unit_device d JOIN unit u ON u.id = d.unit_id"
                           " WHERE d.device = %s AND u.active", (device,)).fetchone()
        if row is not None:
            self._units[device] = row["unit_id"]
            return row["unit_id"]
        return None

    def _lookup(self, device: str) -> int | None:
        if device.startswith("unit:"):
            unit_id = _unit_number(device)
            return unit_id if unit_id in self._active else None
        return self._units.get(device)


def _unit_number(device: str) -> int | None:
    try:
        return int(device[5:])
    except ValueError:
        return None
