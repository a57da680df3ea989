"""Part import (部件, GB/T 30428.2): validate a whole file in one pass, then write it in
one transaction.

Decisions worth knowing:
- Every problem of every feature is reported at once; nothing is written unless the file
  is clean, or skip_invalid is given, which imports the features without problems.
- The grid is derived from the location: the point itself, or shapely's point_on_surface
  for lines and polygons, looked up with GridIndex among the grids in the database. A
  point on a shared edge goes to the grid with the smaller code (GridIndex's rule).
- Ids missing from the file are assigned per (county, class), continuing after the
  largest sequence used in the database or anywhere in the file, in file order.
- Departments (主管部门/权属单位/养护单位) are given by name; missing ones are created.
- Upsert by id. On an update a blank value keeps what the database has (so a re-import
  without a status column does not reset a part reported 破损); geometry, location and
  grid always follow the file. A new part without a name is named class name +
  sequence, e.g. "上水井盖000017".
- A numeric class_code (read from a number column, 101) is widened to 4 digits (0101);
  a text class_code must be exactly 4 digits.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import psycopg
import shapely

from gis.codes import CodeError, make_part_id, parse_part_id
from gis.grid_index import GridIndex
from gis.importing import (
    ImportRefused,
    ImportReport,
    Problems,
    Stages,
    check_frame,
    check_geometries,
    column_values,
    copy_rows,
    display,
    ewkb_hex,
    feature_labels,
    lock_imports,
    lonlat_text,
    make_report,
    record_run,
    text_or_none,
    to_wgs84,
)
from gis.parts import PART_STATUSES

KIND = "parts"
PART_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
SOURCES = ("实测", "地形图", "调绘", "其它")   # survey source: measured, topographic map, field mapping, other
DEPARTMENT_FIELDS = ("dept_owner",          # 主管部门
                     "dept_rights",         # 权属单位
                     "dept_maintainer")     # 养护单位


def import_parts(conn: psycopg.Connection, gdf: gpd.GeoDataFrame, *, source: str, actor: str,
                 skip_invalid: bool = False, progress: bool = False) -> ImportReport:
    """Import parts (points, lines or polygons with a 4-digit `class_code`; optional `id`,
    `name`, `status`, `dept_owner`, `dept_rights`, `dept_maintainer`, `source`,
    `surveyed_on`) in one transaction, upserting by id.

    Raises ImportRefused (nothing written) when the file has problems and skip_invalid is
    False. See the module docstring for how grids, ids and blanks are decided."""
    check_frame(gdf, ["class_code"], KIND, source)
    raw_ids = column_values(gdf, "id")
    raw_classes = column_values(gdf, "class_code")
    labels = feature_labels(gdf.index, [_part_key(i, c) for i, c in zip(raw_ids, raw_classes)])
    problems = Problems(len(gdf))
    with Stages(KIND, 5, progress) as stage, conn.transaction():
        lock_imports(conn)
        stage("geometry")
        geoms = to_wgs84(gdf)
        usable = check_geometries(geoms, PART_TYPES, "a point, line or polygon", problems)

        stage("fields")
        class_names = _catalog(conn)
        classes = _parse_classes(raw_classes, class_names, problems)
        ids = _parse_ids(raw_ids, raw_classes, labels, problems)
        statuses = _parse_choices(column_values(gdf, "status"), PART_STATUSES, "status", problems)
        origins = _parse_choices(column_values(gdf, "source"), SOURCES, "source", problems)
        surveyed = _parse_dates(column_values(gdf, "surveyed_on"), problems)
        names = [text_or_none(v) for v in column_values(gdf, "name")]
        departments = {f: [text_or_none(v) for v in column_values(gdf, f)] for f in DEPARTMENT_FIELDS}

        stage("grids and ids")
        locations = np.where(usable, shapely.point_on_surface(np.where(usable, geoms, None)), None)
        grid_codes = _grid_codes(conn, locations, usable, problems)
        _check_id_counties(ids, grid_codes, problems)
        final_ids = _assign_ids(conn, ids, classes, grid_codes, problems)
        if problems and not skip_invalid:
            raise ImportRefused(make_report(KIND, source, labels, problems, imported=0))

        stage("write")
        accepted = np.flatnonzero(~problems.rejected)
        if accepted.size:
            rows = _stage_rows(accepted, final_ids, classes, class_names, names, statuses, departments,
                               grid_codes, origins, surveyed, geoms, locations)
            _write(conn, rows)
        report = make_report(KIND, source, labels, problems, imported=int(accepted.size))

        stage("record")
        record_run(conn, report, actor=actor, entity="part")
    return report


# ---------------------------------------------------------------------------- fields
def _part_key(raw_id: object, raw_class: object) -> str | None:
    if display(raw_id):
        return f"id {display(raw_id)}"
    return f"class {display(raw_class)}" if display(raw_class) else None


def _catalog(conn: psycopg.Connection) -> dict[str, str]:
    return {r["code"]: r["name"] for r in conn.execute("SELECT code, name FROM part_class").fetchall()}


def _class_text(raw: object) -> str | None:
    """'0101' from '0101', 101 or 101.0 (a number column loses the leading zero)."""
    shown = display(raw)
    if shown is None:
        return None
    if not isinstance(raw, str) and shown.isdigit() and len(shown) <= 4:
        return shown.zfill(4)
    return shown


def _parse_classes(raw_classes: Sequence[object], class_names: dict[str, str],
                   problems: Problems) -> list[str | None]:
    out: list[str | None] = []
    for row, raw in enumerate(raw_classes):
        code = _class_text(raw)
        if code is None:
            problems.add(row, "class_code", "no class_code")
        elif not (len(code) == 4 and code.isdigit()):
            problems.add(row, "class_code", f"class_code {code!r} must be 4 digits (2 big + 2 small class)")
            code = None
        elif code not in class_names:
            problems.add(row, "class_code", f"class {code} is not in the parts catalog (part_class)")
            code = None
        out.append(code)
    return out


def _parse_ids(raw_ids: Sequence[object], raw_classes: Sequence[object], labels: Sequence[str],
               problems: Problems) -> list[str | None]:
    """Given 16-digit ids (None where blank or wrong); checks class digits and duplicates."""
    ids: list[str | None] = []
    for row, (raw, raw_class) in enumerate(zip(raw_ids, raw_classes)):
        if raw is None:
            ids.append(None)
            continue
        try:
            pid = parse_part_id(display(raw)).id
        except CodeError as e:
            problems.add(row, "id", str(e))
            ids.append(None)
            continue
        class_code = _class_text(raw_class)
        if class_code and pid[6:10] != class_code:
            problems.add(row, "id", f"id {pid} carries class {pid[6:10]} but class_code is {class_code}")
        ids.append(pid)
    _check_duplicate_ids(ids, labels, problems)
    return ids


def _check_duplicate_ids(ids: Sequence[str | None], labels: Sequence[str], problems: Problems) -> None:
    rows_by_id: dict[str, list[int]] = defaultdict(list)
    for row, pid in enumerate(ids):
        if pid:
            rows_by_id[pid].append(row)
    for pid, rows in rows_by_id.items():
        if len(rows) > 1:
            for row in rows:
                others = ", ".join(labels[r] for r in rows if r != row)
                problems.add(row, "id", f"id {pid} appears more than once in the file (also {others})")


def _parse_choices(values: Sequence[object], allowed: Sequence[str], field: str,
                   problems: Problems) -> list[str | None]:
    """One of the allowed words, or None (blank: the default or the database's value)."""
    out: list[str | None] = []
    for row, value in enumerate(values):
        text = text_or_none(value)
        if text is not None and text not in allowed:
            problems.add(row, field, f"{field} {text!r} is not one of {', '.join(allowed)}")
            text = None
        out.append(text)
    return out


def _parse_dates(values: Sequence[object], problems: Problems) -> list[dt.date | None]:
    out: list[dt.date | None] = []
    for row, value in enumerate(values):
        day = _as_date(value)
        if value is not None and day is None:
            problems.add(row, "surveyed_on", f"surveyed_on {display(value)!r} is not a date (YYYY-MM-DD)")
        out.append(day)
    return out


def _as_date(value: object) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):          # includes pandas Timestamp
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else value.astype("datetime64[D]").item()
    text = str(value).strip().replace("/", "-")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        return None


# ---------------------------------------------------------------------------- grids and ids
def _grid_codes(conn: psycopg.Connection, locations: np.ndarray, usable: np.ndarray,
                problems: Problems) -> list[str | None]:
    """The unit grid under each location, from the grids in the database."""
    lon = shapely.get_x(locations.astype(object))
    lat = shapely.get_y(locations.astype(object))
    index = _grid_index_near(conn, lon[usable], lat[usable])
    found = index.lookup(lon, lat)
    codes: list[str | None] = []
    for row, i in enumerate(found):
        if i >= 0:
            codes.append(str(index.codes[i]))
            continue
        codes.append(None)
        if usable[row]:
            problems.add(row, "geometry", f"outside the jurisdiction's unit grids "
                                          f"(at {lonlat_text(locations[row])})")
    return codes


def _grid_index_near(conn: psycopg.Connection, lon: np.ndarray, lat: np.ndarray) -> GridIndex:
    """A GridIndex of the grids around the file's locations, ordered by code."""
    if lon.size == 0:
        return GridIndex.build([], [])
    rows = conn.execute(
        "SELECT code, ST_AsBinary(geom) AS wkb FROM grid"
        " WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326) ORDER BY code",
        (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))).fetchall()
    geoms = shapely.from_wkb([bytes(r["wkb"]) for r in rows]) if rows else []
    return GridIndex.build([r["code"] for r in rows], list(geoms))


def _check_id_counties(ids: Sequence[str | None], grid_codes: Sequence[str | None],
                       problems: Problems) -> None:
    for row, (pid, grid) in enumerate(zip(ids, grid_codes)):
        if pid and grid and pid[:6] != grid[:6]:
            problems.add(row, "id", f"id {pid} is numbered for county {pid[:6]} but the feature lies "
                                    f"in unit grid {grid} of county {grid[:6]}")


def _assign_ids(conn: psycopg.Connection, ids: Sequence[str | None], classes: Sequence[str | None],
                grid_codes: Sequence[str | None], problems: Problems) -> list[str | None]:
    """Every feature without problems gets an id: its own, or the next free sequence of
    its (county, class)."""
    last = _largest_sequences(conn)
    for pid in ids:
        if pid:
            key = (pid[:6], pid[6:10])
            last[key] = max(last.get(key, 0), int(pid[10:]))
    final: list[str | None] = list(ids)
    for row, (pid, class_code, grid) in enumerate(zip(ids, classes, grid_codes)):
        if pid or problems.rejected[row]:
            continue
        key = (grid[:6], class_code)
        try:
            final[row] = make_part_id(key[0], class_code, last.get(key, 0) + 1)
        except CodeError as e:
            problems.add(row, "id", str(e))
            continue
        last[key] = last.get(key, 0) + 1
    return final


def _largest_sequences(conn: psycopg.Connection) -> dict[tuple[str, str], int]:
    rows = conn.execute("SELECT left(id, 6) AS county, class_code, max(right(id, 6)::int) AS seq"
                        " FROM part GROUP BY 1, 2").fetchall()
    return {(r["county"], r["class_code"]): r["seq"] for r in rows}


# ---------------------------------------------------------------------------- writing
_STAGE_COLUMNS = ("id", "class_code", "name", "default_name", "status", "dept_owner", "dept_rights",
                  "dept_maintainer", "grid_code", "source", "surveyed_on", "geom", "location")


def _stage_rows(accepted: np.ndarray, ids, classes, class_names, names, statuses, departments,
                grid_codes, origins, surveyed, geoms, locations) -> list[tuple]:
    geom_hex = ewkb_hex(geoms[accepted])
    location_hex = ewkb_hex(locations[accepted])
    rows = []
    for k, row in enumerate(accepted):
        pid = ids[row]
        rows.append((pid, classes[row], names[row], f"{class_names[classes[row]]}{pid[10:]}",
                     statuses[row], departments["dept_owner"][row], departments["dept_rights"][row],
                     departments["dept_maintainer"][row], grid_codes[row], origins[row], surveyed[row],
                     geom_hex[k], location_hex[k]))
    return rows


def _write(conn: psycopg.Connection, rows: list[tuple]) -> None:
    """COPY into a staging table; departments, then update existing parts, insert new ones."""
    conn.execute("DROP TABLE IF EXISTS pg_temp.part_stage")
    conn.execute(
        "CREATE TEMP TABLE part_stage (id text, class_code text, name text, default_name text,"
        " status text, dept_owner text, dept_rights text, dept_maintainer text, grid_code text,"
        " source text, surveyed_on date, geom geometry(Geometry, 4326), location geometry(Point, 4326))"
        " ON COMMIT DROP")
    copy_rows(conn, "part_stage", _STAGE_COLUMNS, rows)
    conn.execute(
        "INSERT INTO department (name)"
        " SELECT DISTINCT v.name FROM part_stage s,"
        "   LATERAL (VALUES (s.dept_owner), (s.dept_rights), (s.dept_maintainer)) AS v(name)"
        " WHERE v.name IS NOT NULL ORDER BY v.name"
        " ON CONFLICT (name) DO NOTHING")
    staged = (
        "SELECT s.*, d1.id AS owner_id, d2.id AS rights_id, d3.id AS maintainer_id FROM part_stage s"
        " LEFT JOIN department d1 ON d1.name = s.dept_owner"
        " LEFT JOIN department d2 ON d2.name = s.dept_rights"
        " LEFT JOIN department d3 ON d3.name = s.dept_maintainer")
    conn.execute(
        "UPDATE part p SET class_code = s.class_code, name = COALESCE(s.name, p.name),"
        "   status = COALESCE(s.status, p.status),"
        "   dept_owner_id = COALESCE(s.owner_id, p.dept_owner_id),"
        "   dept_rights_id = COALESCE(s.rights_id, p.dept_rights_id),"
        "   dept_maintainer_id = COALESCE(s.maintainer_id, p.dept_maintainer_id),"
        "   grid_code = s.grid_code, geom = s.geom, location = s.location,"
        "   source = COALESCE(s.source, p.source), surveyed_on = COALESCE(s.surveyed_on, p.surveyed_on),"
        f"  updated_at = now() FROM ({staged}) s WHERE p.id = s.id")
    conn.execute(
        "INSERT INTO part (id, class_code, name, status, dept_owner_id, dept_rights_id,"
        "   dept_maintainer_id, grid_code, geom, location, source, surveyed_on)"
        " SELECT s.id, s.class_code, COALESCE(s.name, s.default_name), COALESCE(s.status, '完好'),"
        "   s.owner_id, s.rights_id, s.maintainer_id, s.grid_code, s.geom, s.location,"
        "   COALESCE(s.source, '实测'), s.surveyed_on"
        f" FROM ({staged}) s WHERE NOT EXISTS (SELECT 1 FROM part p WHERE p.id = s.id)")
