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
- currency (现势性) is 在用 (in use) or 作废 (withdrawn), 在用 for a new part; photo is a
  path or URL stored as given, a reference only (nothing is fetched).
- Upsert by id. On an update a blank value keeps what the database has (so a re-import
  without a status column does not reset a part reported 破损, nor one without currency
  revive a part marked 作废); geometry, location and grid always follow the file. A new
  part without a name is named class name + sequence, e.g. "上水井盖000017".
- When every feature falls outside the unit grids, one whole-file problem says the file's
  CRS is probably wrong, giving the file's extent and the jurisdiction's.
- A numeric class_code (read from a number column, 101) is widened to 4 digits (0101);
  a text class_code must be exactly 4 digits.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import psycopg
import shapely

from gis.codes import CodeError, make_part_id, parse_part_id
from gis.grid_index import GridIndex
from gis.importing import (
    Extent,
    ImportRefused,
    ImportReport,
    Problems,
    Progress,
    check_frame,
    check_geometries,
    column_values,
    copy_rows,
    describe_crs,
    display,
    ewkb_hex,
    feature_labels,
    grid_extent,
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
CURRENCIES = ("在用", "作废")                 # 现势性: in use, withdrawn (part.currency)
MAX_PHOTO_CHARS = 2048                        # a path or URL, not the picture itself
DEPARTMENT_FIELDS = ("dept_owner",          # 主管部门
                     "dept_rights",         # 权属单位
                     "dept_maintainer")     # 养护单位


def import_parts(conn: psycopg.Connection, gdf: gpd.GeoDataFrame, *, source: str, actor: str,
                 skip_invalid: bool = False, progress: bool = False) -> ImportReport:
    """Import parts (points, lines or polygons with a 4-digit `class_code`; optional `id`,
    `name`, `status`, `currency`, `dept_owner`, `dept_rights`, `dept_maintainer`, `source`,
    `surveyed_on`, `photo`) in one transaction, upserting by id.

    Raises ImportRefused (nothing written) when the file has problems and skip_invalid is
    False. See the module docstring for how grids, ids and blanks are decided."""
    check_frame(gdf, ["class_code"], KIND, source)
    raw_ids = column_values(gdf, "id")
    raw_classes = column_values(gdf, "class_code")
    labels = feature_labels(gdf.index, [_part_key(i, c) for i, c in zip(raw_ids, raw_classes)])
    problems = Problems(len(gdf))
    with Progress(KIND, len(gdf), progress) as bar, conn.transaction():
        lock_imports(conn)
        bar.stage("geometry")
        geoms = to_wgs84(gdf)
        usable = check_geometries(geoms, PART_TYPES, "a point, line or polygon", problems, bar)

        bar.stage("fields", passes=7)           # one pass per bar.each below
        class_names = _catalog(conn)
        classes = _parse_classes(bar.each(raw_classes), class_names, problems)
        ids = _parse_ids(bar.each(raw_ids), raw_classes, labels, problems)
        statuses = _parse_choices(bar.each(column_values(gdf, "status")), PART_STATUSES, "status", problems)
        currencies = _parse_choices(bar.each(column_values(gdf, "currency")), CURRENCIES, "currency",
                                    problems)
        origins = _parse_choices(bar.each(column_values(gdf, "source")), SOURCES, "source", problems)
        surveyed = _parse_dates(bar.each(column_values(gdf, "surveyed_on")), problems)
        photos = _parse_photos(bar.each(column_values(gdf, "photo")), problems)
        names = [text_or_none(v) for v in column_values(gdf, "name")]
        departments = {f: [text_or_none(v) for v in column_values(gdf, f)] for f in DEPARTMENT_FIELDS}

        bar.stage("grids and ids")
        locations = np.where(usable, shapely.point_on_surface(np.where(usable, geoms, None)), None)
        grid_codes = _grid_codes(conn, locations, usable, problems, bar)
        _check_all_outside(conn, locations, usable, grid_codes, gdf.crs, problems)
        _check_id_counties(ids, grid_codes, problems)
        final_ids = _assign_ids(conn, ids, classes, grid_codes, problems)
        if problems and not skip_invalid:
            raise ImportRefused(make_report(KIND, source, labels, problems, imported=0))

        accepted = np.flatnonzero(~problems.rejected)
        bar.stage("write", passes=2, features=accepted.size)     # staging rows, then COPY
        if accepted.size:
            fields = _Fields(final_ids, classes, class_names, names, statuses, currencies,
                             departments, grid_codes, origins, surveyed, photos)
            _write(conn, _stage_rows(bar.each(accepted), fields, geoms[accepted], locations[accepted]),
                   bar)
        report = make_report(KIND, source, labels, problems, imported=int(accepted.size))
        record_run(conn, report, actor=actor, entity="part")
    return report


@dataclass
class _Fields:
    """The parsed value of each field, one entry per feature of the file."""
    ids: list[str | None]
    classes: list[str | None]
    class_names: dict[str, str]
    names: list[str | None]
    statuses: list[str | None]
    currencies: list[str | None]
    departments: dict[str, list[str | None]]
    grid_codes: list[str | None]
    origins: list[str | None]
    surveyed: list[dt.date | None]
    photos: list[str | None]


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


_ONE_PHOTO = f"give one path or URL (at most {MAX_PHOTO_CHARS} characters)"


def _parse_photos(values: Sequence[object], problems: Problems) -> list[str | None]:
    """A photo path or URL, kept as text: it is only a reference, nothing is downloaded.
    Control characters (a pasted multi-line cell) and very long values are refused."""
    out: list[str | None] = []
    for row, value in enumerate(values):
        text = text_or_none(value)
        if text is None:
            pass
        elif len(text) > MAX_PHOTO_CHARS:
            problems.add(row, "photo", f"photo is {len(text)} characters long; {_ONE_PHOTO}")
            text = None
        elif any(ord(ch) < 32 for ch in text):
            problems.add(row, "photo", f"photo holds control characters; {_ONE_PHOTO}")
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
                problems: Problems, bar: Progress) -> list[str | None]:
    """The unit grid under each location, from the grids in the database."""
    lon = shapely.get_x(locations.astype(object))
    lat = shapely.get_y(locations.astype(object))
    index = _grid_index_near(conn, lon[usable], lat[usable])
    found = np.empty(len(locations), dtype=np.int32)
    for part in bar.chunks(len(locations)):
        found[part] = index.lookup(lon[part], lat[part])
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


def _check_all_outside(conn: psycopg.Connection, locations: np.ndarray, usable: np.ndarray,
                       grid_codes: Sequence[str | None], crs: object, problems: Problems) -> None:
    """Every feature outside the grids is one mistake, not N: most likely the file's CRS
    (or no grids imported yet). Said once for the whole file, beside the feature lines."""
    placed = np.flatnonzero(usable)
    if placed.size < 2 or any(grid_codes[row] for row in placed):
        return
    head = f"all {placed.size} features lie outside the jurisdiction's unit grids"
    jurisdiction = grid_extent(conn)
    if jurisdiction is None:
        problems.add_file("geometry", f"{head}: the database has no unit grids yet; import the grids first")
        return
    in_file = Extent.of(locations[placed])
    km = in_file.distance_km(jurisdiction)
    apart = f", {km:,.0f} km away" if km >= 1 else ""
    problems.add_file("geometry", (
        f"{head}: the file's features ({in_file}) against the jurisdiction's ({jurisdiction}{apart}); "
        f"the file declares {describe_crs(crs)}, which is probably not the CRS its coordinates are in. "
        "Check the CRS it was exported with (for a shapefile, the .prj)"))


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
_STAGE_COLUMNS = ("id", "class_code", "name", "default_name", "status", "currency", "dept_owner",
                  "dept_rights", "dept_maintainer", "grid_code", "source", "surveyed_on", "photo",
                  "geom", "location")


def _stage_rows(accepted: Iterable[int], f: _Fields, geoms: np.ndarray,
                locations: np.ndarray) -> list[tuple]:
    """One staging row per accepted feature; `geoms` and `locations` are the accepted ones."""
    geom_hex = ewkb_hex(geoms)
    location_hex = ewkb_hex(locations)
    rows = []
    for k, row in enumerate(accepted):
        pid, class_code = f.ids[row], f.classes[row]
        rows.append((pid, class_code, f.names[row], f"{f.class_names[class_code]}{pid[10:]}",
                     f.statuses[row], f.currencies[row], f.departments["dept_owner"][row],
                     f.departments["dept_rights"][row], f.departments["dept_maintainer"][row],
                     f.grid_codes[row], f.origins[row], f.surveyed[row], f.photos[row],
                     geom_hex[k], location_hex[k]))
    return rows


def _write(conn: psycopg.Connection, rows: list[tuple], bar: Progress) -> None:
    """COPY into a staging table; departments, then update existing parts, insert new ones."""
    conn.execute("DROP TABLE IF EXISTS pg_temp.part_stage")
    conn.execute(
        "CREATE TEMP TABLE part_stage (id text, class_code text, name text, default_name text,"
        " status text, currency text, dept_owner text, dept_rights text, dept_maintainer text,"
        " grid_code text, source text, surveyed_on date, photo text, geom geometry(Geometry, 4326),"
        " location geometry(Point, 4326)) ON COMMIT DROP")
    copy_rows(conn, "part_stage", _STAGE_COLUMNS, bar.each(rows))
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
        "   status = COALESCE(s.status, p.status), currency = COALESCE(s.currency, p.currency),"
        "   dept_owner_id = COALESCE(s.owner_id, p.dept_owner_id),"
        "   dept_rights_id = COALESCE(s.rights_id, p.dept_rights_id),"
        "   dept_maintainer_id = COALESCE(s.maintainer_id, p.dept_maintainer_id),"
        "   grid_code = s.grid_code, geom = s.geom, location = s.location,"
        "   source = COALESCE(s.source, p.source), surveyed_on = COALESCE(s.surveyed_on, p.surveyed_on),"
        "   photo = COALESCE(s.photo, p.photo),"
        f"  updated_at = now() FROM ({staged}) s WHERE p.id = s.id")
    conn.execute(
        "INSERT INTO part (id, class_code, name, status, currency, dept_owner_id, dept_rights_id,"
        "   dept_maintainer_id, grid_code, geom, location, source, surveyed_on, photo)"
        " SELECT s.id, s.class_code, COALESCE(s.name, s.default_name), COALESCE(s.status, '完好'),"
        "   COALESCE(s.currency, '在用'), s.owner_id, s.rights_id, s.maintainer_id, s.grid_code,"
        "   s.geom, s.location, COALESCE(s.source, '实测'), s.surveyed_on, s.photo"
        f" FROM ({staged}) s WHERE NOT EXISTS (SELECT 1 FROM part p WHERE p.id = s.id)")
