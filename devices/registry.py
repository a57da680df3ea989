"""Units (巡查单元: inspectors, officers, vehicles, teams) and the devices bound to them.

`DeviceDirectory` answers "which unit is this device?" for the ingest pipeline from memory,
reloading when it meets a device it does not know (at most every few seconds), so a device
registered while the worker runs is picked up without a restart."""
from __future__ import annotations

import re
import time
import psycopg

from gis.db import audit, department_id
from gis.errors import Conflict, Invalid

UNIT_KINDS = ("inspector", "officer", "vehicle", "team")
DEVICE_PATTERN = re.compile(r"^(owntracks:[^/\s]+/[^/\s]+|osmand:\S+)$")
RELOAD_AFTER_MISS_S = 5.0


def add_unit(conn: psycopg.Connection, *, name: str, kind: str, actor: str, dept: str | None = None,
             phone: str | None = None, devices: list[str] = (), username: str | None = None) -> int:
    """Register a unit and bind its devices, in one transaction with an audit row."""
    if kind not in UNIT_KINDS:
        raise Invalid(f"kind must be one of {', '.join(UNIT_KINDS)}, not {kind!r}")
    if not name.strip():
        raise Invalid("a unit needs a name")
    for device in devices:
        if not DEVICE_PATTERN.match(device):
            raise Invalid(f"device {device!r} must look like owntracks:USER/DEVICE or osmand:ID")
    with conn.transaction():
        dept_id = department_id(conn, dept)
        user_id = None
        if username:
            row = conn.execute("SELECT id FROM app_user WHERE username = %s", (username,)).fetchone()
            if row is None:
                raise Invalid(f"user {username!r} does not exist")
            user_id = row["id"]
        unit_id = conn.execute("INSERT INTO unit (name, kind, dept_id, phone, user_id) VALUES (%s, %s, %s, %s, %s)"
                               " RETURNING id", (name.strip(), kind, dept_id, phone, user_id)).fetchone()["id"]
        for device in devices:
            taken = conn.execute("SELECT unit_id FROM unit_device WHERE device = %s", (device,)).fetchone()
            if taken:
                raise Conflict(f"device {device} is already bound to unit {taken['unit_id']}")
            conn.execute("INSERT INTO unit_device (device, unit_id) VALUES (%s, %s)", (device, unit_id))
        audit(conn, actor=actor, action="unit.add", entity="unit", entity_id=str(unit_id),
              detail={"name": name, "kind": kind, "dept": dept, "devices": list(devices)})
    return unit_id


class DeviceDirectory:
    def __init__(self) -> None:
        self._units: dict[str, int] = {}
        self._active: set[int] = set()
        self._loaded_at = float("-inf")

    def load(self, conn: psycopg.Connection) -> None:
        rows = conn.execute("SELECT d.device, d.unit_id FROM unit_device d JOIN unit u ON u.id = d.unit_id"
                            " WHERE u.active").fetchall()
        self._units = {r["device"]: r["unit_id"] for r in rows}
        self._active = {r["id"] for r in conn.execute("SELECT id FROM unit WHERE active").fetchall()}
        self._loaded_at = time.monotonic()

    def unit_of(self, conn: psycopg.Connection, device: str) -> int | None:
        found = self._lookup(device)
        if found is None and time.monotonic() - self._loaded_at > RELOAD_AFTER_MISS_S:
            self.load(conn)
            found = self._lookup(device)
        return found

    def _lookup(self, device: str) -> int | None:
        if device.startswith("unit:"):
            try:
                unit_id = int(device[5:])
            except ValueError:
                return None
            return unit_id if unit_id in self._active else None
        return self._units.get(device)

