"""Units from a CSV file (批量导入巡查单元), all or nothing.

Columns: name, kind, and optionally dept, phone, user, devices (header names in any order
and case). `devices` is a `;`-separated list of owntracks:USER/DEVICE and osmand:ID keys.
Every row is checked first (the same checks as `devices.registry.add_unit`, plus clashes
between rows of the file); when any row is bad nothing is written and every bad row is
named by its line number. Otherwise all units are added in one transaction."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from devices.registry import add_unit, check_unit, resolve_unit
from gis.db import audit
from gis.errors import CityGridError, Invalid

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


class ImportRefused(Invalid):
    """Some rows are bad; `problems` lists (line, reason) for each of them."""

    def __init__(self, source: str, problems: list[tuple[int, str]]):
        self.problems = problems
        lines = "\n".join(f"  line {line}: {reason}" for line, reason in problems)
        super().__init__(f"{source}: {len(problems)} bad row(s), nothing was imported:\n{lines}")


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 (with or without Excel's BOM); a file Excel saved as GBK/GB18030 is taken too."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise Invalid(f"{source} is neither UTF-8 nor GB18030 text; save it as \"CSV UTF-8\"") from None


def parse_rows(text: str, source: str = "file") -> list[UnitRow]:
    """The file's rows; ImportRefused names every row whose shape is wrong (not its content)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise Invalid(f"{source} is empty; the first line must name the columns"
                      f" ({', '.join(REQUIRED + OPTIONAL)})") from None
    except csv.Error as e:
        raise ImportRefused(source, [(1, f"not CSV: {e}")]) from None
    columns = [h.strip().lower() for h in header]
    problems: list[tuple[int, str]] = []
    unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
    missing = [c for c in REQUIRED if c not in columns]
    doubled = sorted({c for c in columns if columns.count(c) > 1})
    if unknown or missing or doubled:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(repr(c) for c in unknown)}"
                         f" (known: {', '.join(REQUIRED + OPTIONAL)})")
        if doubled:
            parts.append(f"column(s) named twice: {', '.join(doubled)}")
        raise ImportRefused(source, [(1, "; ".join(parts))])
    rows: list[UnitRow] = []
    line = reader.line_num
    try:
        for values in reader:
            start, line = line + 1, reader.line_num       # a quoted field may span lines
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(columns):
                problems.append((start, f"has {len(values)} fields; the header has {len(columns)}"))
                continue
            cell = {c: v.strip() for c, v in zip(columns, values)}
            rows.append(UnitRow(
                line=start, name=cell["name"], kind=cell["kind"].lower(),
                dept=cell.get("dept") or None, phone=cell.get("phone") or None, user=cell.get("user") or None,
                devices=[d.strip() for d in (cell.get("devices") or "").split(";") if d.strip()]))
            if len(rows) > MAX_ROWS:
                raise Invalid(f"{source} has more than {MAX_ROWS} units; split it into several files")
    except csv.Error as e:
        problems.append((reader.line_num, f"not CSV: {e}"))
    if problems:
        raise ImportRefused(source, problems)
    if not rows:
        raise Invalid(f"{source} has a header but no units")
    return rows


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
