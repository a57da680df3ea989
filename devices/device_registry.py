"""The device registry (设备台账): provisioning one device (API) or a CSV file of them (all or
nothing), with its broker credentials.

A device sits on a part (部件) of a class its type allows, or at a location of its own; either
way it must lie inside a unit grid of the city. Its broker login defaults to its id; the
password is kept only as the broker's own hash (mosquitto's PBKDF2-SHA512, `$7$…`), so the
password file and ACL can be generated from this table (devices/broker_auth.py)."""
from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
from dataclasses import dataclass, field

import psycopg

from devices.device_types import types_from_db
from devices.rules import merge_overrides
from gis.db import audit, department_id
from gis.errors import Conflict, Invalid, NotFound

DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PBKDF2_ITERATIONS = 101          # mosquitto_passwd's own setting (mosquitto 2.0)
MIN_PASSWORD = 8


@dataclass
class NewDevice:
    device_id: str
    type_code: str
    lon: float | None = None
    lat: float | None = None
    part_id: str | None = None
    dept: str | None = None
    username: str | None = None
    password: str | None = None
    meta: dict = field(default_factory=dict)


def broker_hash(password: str, salt: bytes | None = None) -> str:
    """The hash mosquitto's password file holds for `password` ($7$: PBKDF2-SHA512)."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ITERATIONS)
    return f"$7${_PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_shape(d: NewDevice) -> None:
    """What can be checked without the database (also run on every CSV row first)."""
    if not isinstance(d.device_id, str) or not DEVICE_ID.match(d.device_id):
        raise Invalid(f"device id {d.device_id!r}: 1-64 letters, digits, '_', '.' or '-', starting with a letter"
                      " or digit (it is a level of the MQTT topic)")
    if (d.lon is None) != (d.lat is None):
        raise Invalid(f"device {d.device_id}: give both lon and lat, or neither (then it takes its part's location)")
    if d.lon is None and not d.part_id:
        raise Invalid(f"device {d.device_id}: needs a location (lon, lat) or a part_id to sit on")
    if d.lon is not None and not (math.isfinite(d.lon) and math.isfinite(d.lat) and -180 <= d.lon <= 180
                                  and -90 <= d.lat <= 90):
        raise Invalid(f"device {d.device_id}: ({d.lon}, {d.lat}) is not a WGS84 longitude/latitude pair")
    if d.part_id is not None and not re.fullmatch(r"\d{16}", d.part_id):
        raise Invalid(f"device {d.device_id}: part_id {d.part_id!r} is not a 16-digit part code")
    if d.username is not None and not DEVICE_ID.match(d.username):
        raise Invalid(f"device {d.device_id}: username {d.username!r} may hold letters, digits, '_', '.', '-'")
    if d.password is not None and (len(d.password) < MIN_PASSWORD or len(d.password) > 200
                                   or any(c in d.password for c in ":\n\r\0")):
        raise Invalid(f"device {d.device_id}: a broker password has {MIN_PASSWORD}-200 characters and no ':',"
                      " newline or NUL")
    if not isinstance(d.meta, dict) or len(json.dumps(d.meta, ensure_ascii=False)) > 4000:
        raise Invalid(f"device {d.device_id}: meta is a small mapping (firmware, model …), at most 4,000 characters")


def add_device(conn: psycopg.Connection, d: NewDevice, *, actor: str, actor_id: int | None = None) -> dict:
    """Register a device in one transaction with its audit row; returns its row."""
    check_shape(d)
    with conn.transaction():
        row = insert_device(conn, d)
        audit(conn, actor=actor, actor_id=actor_id, action="device.add", entity="device", entity_id=d.device_id,
              detail={"type": d.type_code, "part_id": d.part_id, "grid": row["grid_code"], "dept": d.dept,
                      "username": row["username"], "password": d.password is not None})
    return row


def insert_device(conn: psycopg.Connection, d: NewDevice) -> dict:
    """Check against the database and insert (no audit row: the caller writes one)."""
    kind = conn.execute("SELECT part_classes FROM device_type WHERE code = %s", (d.type_code,)).fetchone()
    if kind is None:
        known = [r["code"] for r in conn.execute("SELECT code FROM device_type ORDER BY code")]
        raise Invalid(f"device {d.device_id}: type {d.type_code!r} is not in the catalog ({', '.join(known)})")
    lon, lat = d.lon, d.lat
    if d.part_id:
        part = conn.execute("SELECT class_code, ST_X(location) AS lon, ST_Y(location) AS lat FROM part WHERE id = %s",
                            (d.part_id,)).fetchone()
        if part is None:
            raise Invalid(f"device {d.device_id}: part {d.part_id} does not exist")
        if part["class_code"] not in kind["part_classes"]:
            allowed = ", ".join(kind["part_classes"]) or "none (it stands on its own)"
            raise Invalid(f"device {d.device_id}: a {d.type_code} cannot sit on part {d.part_id} of class"
                          f" {part['class_code']} (classes it fits: {allowed})")
        if lon is None:
            lon, lat = part["lon"], part["lat"]
    grid = conn.execute("SELECT code FROM grid WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))"
                        " ORDER BY code LIMIT 1", (lon, lat)).fetchone()
    if grid is None:
        raise Invalid(f"device {d.device_id}: ({lon:.6f}, {lat:.6f}) lies outside every unit grid of the city"
                      " (longitude first, then latitude)")
    dept_id = department_id(conn, d.dept)
    username = d.username or d.device_id
    try:
        with conn.transaction():
            return conn.execute(
                "INSERT INTO device (id, type_code, part_id, location, grid_code, dept_id, username, password_hash,"
                " meta) VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s, %s, %s, %s, %s)"
                " RETURNING id, type_code, part_id, ST_X(location) AS lon, ST_Y(location) AS lat, grid_code,"
                " username, password_hash IS NOT NULL AS has_password, meta, active, created_at",
                (d.device_id, d.type_code, d.part_id, lon, lat, grid["code"], dept_id, username,
                 broker_hash(d.password) if d.password else None,
                 json.dumps(d.meta, ensure_ascii=False))).fetchone()
    except psycopg.errors.UniqueViolation as e:
        what = "username" if "username" in (e.diag.constraint_name or "") else "id"
        raise Conflict(f"device {d.device_id}: a device with this {what} is already registered") from None


def set_rule_overrides(conn: psycopg.Connection, device_id: str, overrides: dict, *, actor: str,
                       actor_id: int | None = None) -> list[dict]:
    """Replace a device's rule overrides ({rule_id: rule or {"enabled": false}}), checked
    against its type's fields; the ingest workers take them at their next registry reload
    (within a minute), no restart. Returns the device's rules as they now apply."""
    with conn.transaction():
        row = conn.execute("SELECT type_code, rules FROM device WHERE id = %s FOR UPDATE", (device_id,)).fetchone()
        if row is None:
            raise NotFound(f"device {device_id} does not exist")
        kind = types_from_db(conn)[row["type_code"]]
        rules = merge_overrides(list(kind.rules), overrides, kind.fields, f"device {device_id}")
        conn.execute("UPDATE device SET rules = %s WHERE id = %s", (json.dumps(overrides, ensure_ascii=False), device_id))
        audit(conn, actor=actor, actor_id=actor_id, action="device.rules", entity="device", entity_id=device_id,
              detail={"before": row["rules"], "after": overrides})
    return [{"id": r.id, "name": r.name, "severity": r.severity, "when": r.when, "for_s": r.for_s,
             "part_status": r.part_status, "case": r.case} for r in rules]
