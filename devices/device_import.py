"""Devices from a CSV file (`citygrid devices import FILE.csv`), all or nothing.

Columns: device_id, type, lon, lat, and optionally part_id, dept, username, password,
model, firmware (header names in any order and case). lon and lat may be left empty on a row
that names a part_id: the device then takes the part's location. Every row is checked and
tried inside one transaction; when any row is bad nothing stays written and every bad row is
named by its line number."""
from __future__ import annotations

from pathlib import Path

import psycopg

from devices.csv_rows import ImportRefused, decode_text, read_rows
from devices.device_registry import NewDevice, check_shape, insert_device
from gis.db import audit
from gis.errors import CityGridError, Invalid

REQUIRED = ("device_id", "type", "lon", "lat")
OPTIONAL = ("part_id", "dept", "username", "password", "model", "firmware")
MAX_ROWS = 200_000


def _number(text: str, column: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise Invalid(f"{column} {text!r} is not a number") from None


def parse_devices(text: str, source: str) -> list[tuple[int, NewDevice]]:
    rows, problems = [], []
    for line, cell in read_rows(text, source, REQUIRED, OPTIONAL, MAX_ROWS, what="devices"):
        try:
            d = NewDevice(device_id=cell["device_id"], type_code=cell["type"], lon=_number(cell["lon"], "lon"),
                          lat=_number(cell["lat"], "lat"), part_id=cell.get("part_id") or None,
                          dept=cell.get("dept") or None, username=cell.get("username") or None,
                          password=cell.get("password") or None,
                          meta={k: cell[k] for k in ("model", "firmware") if cell.get(k)})
            check_shape(d)
        except Invalid as e:
            problems.append((line, str(e)))
            continue
        rows.append((line, d))
    first_line: dict[str, int] = {}
    for line, d in rows:
        keys = (f"id {d.device_id}", f"username {d.username or d.device_id}")
        clash = next((k for k in keys if k in first_line), None)
        if clash:
            problems.append((line, f"{clash} is also on line {first_line[clash]}"))
        for key in keys:
            first_line.setdefault(key, line)
    if problems:
        raise ImportRefused(source, sorted(problems))
    return rows


def import_devices(conn: psycopg.Connection, text: str, *, actor: str, source: str = "file",
                   actor_id: int | None = None) -> int:
    """Add every device of the file in one transaction; returns how many."""
    rows = parse_devices(text, source)
    problems: list[tuple[int, str]] = []
    with conn.transaction():
        for line, d in rows:
            try:
                with conn.transaction():            # one bad row must not end the check of the rest
                    insert_device(conn, d)
            except CityGridError as e:
                problems.append((line, str(e)))
        if problems:
            raise ImportRefused(source, problems)   # rolls back every row written above
        audit(conn, actor=actor, actor_id=actor_id, action="device.import", entity="device",
              detail={"source": source, "devices": len(rows), "first": rows[0][1].device_id,
                      "last": rows[-1][1].device_id})
    return len(rows)


def import_devices_file(conn: psycopg.Connection, path: Path, *, actor: str) -> int:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise Invalid(f"cannot read {path}: {e.strerror}") from None
    return import_devices(conn, decode_text(data, str(path)), actor=actor, source=path.name)
