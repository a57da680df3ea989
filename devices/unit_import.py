"""Units from a CSV file (批量导入巡查单元), all or nothing.

Columns: name, kind, and optionally dept, phone, user, devices (header names in any order
and case). `devices` is a `;`-separated list of owntracks:USER/DEVICE and osmand:ID keys.
Every row is checked first (the same checks as `devices.registry.add_unit`, plus clashes
between rows of the file); when any row is bad nothing is written and every bad row is
named by its line number. Otherwise all units are added in one transaction."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from devices.csv_rows import ImportRefused, decode_text, read_rows
from devices.registry import add_unit, check_unit, resolve_unit
from gis.db import audit
from gis.errors import CityGridError, Invalid

__all__ = ["ImportRefused", "import_units", "import_units_file", "parse_rows", "read_area_geojson"]

REQUIRED = ("name", "kind")
OPTIONAL = ("dept", "phone", "user", "devices")
MAX_ROWS = 20_000


@dataclass
class UnitRow:
    line: int
    name: str
    kind: str
    dept: str | None = None
    phone: str | None = None
    user: str | None = None
    devices: list[str] = field(default_factory=list)


def parse_rows(text: str, source: str = "file") -> list[UnitRow]:
    """The file's rows; ImportRefused names every row whose shape is wrong (not its content)."""
    return [UnitRow(line=line, name=cell["name"], kind=cell["kind"].lower(), dept=cell.get("dept") or None,
                    phone=cell.get("phone") or None, user=cell.get("user") or None,
                    devices=[d.strip() for d in (cell.get("devices") or "").split(";") if d.strip()])
            for line, cell in read_rows(text, source, REQUIRED, OPTIONAL, MAX_ROWS, what="units")]


def check_rows(conn: psycopg.Connection, rows: list[UnitRow]) -> list[tuple[int, str]]:
    """Every problem of every row, writing nothing."""
    problems: list[tuple[int, str]] = []
    device_line: dict[str, int] = {}
    user_line: dict[str, int] = {}
    for row in rows:
        try:
            check_unit(name=row.name, kind=row.kind, devices=row.devices, phone=row.phone)
            resolve_unit(conn, dept=row.dept, username=row.user, devices=row.devices)
        except CityGridError as e:
            problems.append((row.line, str(e)))
            continue
        clash = [f"device {d} is also on line {device_line[d]}" for d in row.devices if d in device_line]
        if row.user and row.user in user_line:
            clash.append(f"user {row.user!r} is also on line {user_line[row.user]}")
        if clash:
            problems.append((row.line, "; ".join(clash)))
            continue
        device_line.update((d, row.line) for d in row.devices)
        if row.user:
            user_line[row.user] = row.line
    return problems


def import_units(conn: psycopg.Connection, text: str, *, actor: str, source: str = "file",
                 actor_id: int | None = None) -> list[int]:
    """Check every row, then add them all in one transaction; returns the new unit ids."""
    rows = parse_rows(text, source)
    with conn.transaction():
        # Checked inside the transaction that writes: what was checked is what is written
        # (a device bound meanwhile by someone else still fails the insert, and rolls it all back).
        problems = check_rows(conn, rows)
        if problems:
            raise ImportRefused(source, problems)
        ids = [add_unit(conn, name=r.name, kind=r.kind, dept=r.dept, phone=r.phone, username=r.user,
                        devices=r.devices, actor=actor, actor_id=actor_id) for r in rows]
        audit(conn, actor=actor, actor_id=actor_id, action="unit.import", entity="unit",
              detail={"source": source, "units": len(ids), "first_id": ids[0], "last_id": ids[-1]})
    return ids


def import_units_file(conn: psycopg.Connection, path: Path, *, actor: str) -> list[int]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise Invalid(f"cannot read {path}: {e.strerror}") from None
    return import_units(conn, decode_text(data, str(path)), actor=actor, source=path.name)


def read_area_geojson(path: Path) -> dict:
    """A drawn shift area from a GeoJSON file: a Polygon/MultiPolygon geometry, a Feature
    holding one, or a FeatureCollection of exactly one such Feature."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as e:
        raise Invalid(f"cannot read {path}: {e.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Invalid(f"{path} is not GeoJSON: {e}") from None
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        features = doc.get("features") or []
        if len(features) != 1:
            raise Invalid(f"{path} holds {len(features)} features; a shift area is one polygon"
                          " (merge them into one MultiPolygon)")
        doc = features[0]
    if isinstance(doc, dict) and doc.get("type") == "Feature":
        doc = doc.get("geometry")
    if not isinstance(doc, dict) or doc.get("type") not in ("Polygon", "MultiPolygon"):
        kind = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise Invalid(f"{path} must hold a Polygon or MultiPolygon, not {kind}")
    return doc
