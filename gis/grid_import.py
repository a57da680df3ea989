"""Unit grid import (单元网格, GB/T 30428.1): validate a whole file in one pass, then write
it in one transaction.

Decisions worth knowing:
- Every problem of every feature is reported at once; nothing is written unless the file
  is clean, or skip_invalid is given, which imports the features without problems.
- An overlap (area > overlap_tolerance_m2) rejects BOTH features of the file involved:
  the file alone cannot tell which boundary is right, and keeping either one would let
  the wrong one in. An overlap with a grid already in the database (one this file does
  not replace) rejects the file's feature; the database grid stays as it is.
- A gap (a hole inside the union of a community's grids larger than gap_tolerance_m2,
  not filled by another community's grids) belongs to no feature: it refuses the file,
  and with skip_invalid it is reported but rejects nothing. Gaps are measured on the
  features with a usable geometry and code plus the community's grids already in the
  database, so a feature rejected for another reason does not show up as a gap too.
- Names: the file is authoritative for the names it carries (county_name, street_name,
  community_name, name, population); a blank value keeps what the database has. Streets
  and communities first seen without a name get one made from the code, e.g.
  "430223001街道", "430223001002社区" (村 under a 镇/乡).
- A community code carrying several community_name values (or a street code several
  street_name values) keeps the most common one; the features that disagree are
  rejected.
- Areas are measured in the local UTM zone of the data; area_m2 is stored from
  ST_Area(geography).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import psycopg
import shapely
from pyproj import Transformer
from shapely import STRtree

from gis.codes import CodeError, parse_grid_code, street_kind
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
    is_blank,
    lock_imports,
    lonlat_text,
    make_report,
    metric_transformers,
    record_run,
    text_or_none,
    to_wgs84,
    transform,
)

KIND = "grids"
GRID_TYPES = {"Polygon", "MultiPolygon"}
OVERLAPS_LISTED_PER_FEATURE = 10   # beyond this one summary line, not hundreds
MAX_POPULATION = 2**31 - 1


@dataclass
class _Existing:
    """Grids already in the database that this file does not replace."""
    codes: np.ndarray
    geoms: np.ndarray   # EPSG:4326


def import_grids(conn: psycopg.Connection, gdf: gpd.GeoDataFrame, *, source: str, actor: str,
                 skip_invalid: bool = False, gap_tolerance_m2: float = 1.0,
                 overlap_tolerance_m2: float = 0.5, county_name: str | None = None,
                 progress: bool = False) -> ImportReport:
    """Import unit grids (one Polygon/MultiPolygon per grid, field `code`; optional `name`,
    `community_name`, `street_name`, `population`) in one transaction, upserting by code.

    Raises ImportRefused (nothing written) when the file has problems and skip_invalid is
    False. With skip_invalid, an overlap between two features of the file rejects both of
    them, and a gap inside a community is reported without rejecting any feature; see the
    module docstring for the rest (database overlaps, names, tolerances)."""
    check_frame(gdf, ["code"], KIND, source)
    raw_codes = column_values(gdf, "code")
    labels = feature_labels(gdf.index, [_code_key(c) for c in raw_codes])
    problems = Problems(len(gdf))
    with Stages(KIND, 5, progress) as stage, conn.transaction():
        lock_imports(conn)
        stage("geometry")
        geoms = to_wgs84(gdf)
        usable = check_geometries(geoms, GRID_TYPES, "a Polygon or MultiPolygon", problems)

        stage("codes and fields")
        codes = _parse_codes(raw_codes, problems)
        _check_duplicates(codes, labels, problems)
        _check_county(codes, _database_counties(conn), problems)
        populations = _parse_populations(column_values(gdf, "population"), problems)
        names = [text_or_none(v) for v in column_values(gdf, "name")]
        community_names = _level_names(codes, column_values(gdf, "community_name"), 12,
                                       "community", "community_name", problems)
        street_names = _level_names(codes, column_values(gdf, "street_name"), 9,
                                    "street", "street_name", problems)

        stage("overlaps and gaps")
        _check_topology(conn, geoms, usable, codes, labels, problems,
                        overlap_tolerance_m2=overlap_tolerance_m2, gap_tolerance_m2=gap_tolerance_m2)
        if problems and not skip_invalid:
            raise ImportRefused(make_report(KIND, source, labels, problems, imported=0))

        stage("write")
        accepted = np.flatnonzero(~problems.rejected)
        if accepted.size:
            _write(conn, accepted, codes, geoms, names, populations,
                   community_names, street_names, county_name)
        report = make_report(KIND, source, labels, problems, imported=int(accepted.size))

        stage("record")
        record_run(conn, report, actor=actor, entity="grid")
    return report


# ---------------------------------------------------------------------------- fields
def _code_key(raw: object) -> str | None:
    shown = display(raw)
    return f"code {shown}" if shown else None


def _parse_codes(raw_codes: Sequence[object], problems: Problems) -> list[str | None]:
    """15-digit codes (legacy 14-digit ones widened); None where missing or wrong."""
    codes: list[str | None] = []
    for row, raw in enumerate(raw_codes):
        if is_blank(raw):
            problems.add(row, "code", "no grid code")
            codes.append(None)
            continue
        try:
            codes.append(parse_grid_code(display(raw)).code)
        except CodeError as e:
            problems.add(row, "code", str(e))
            codes.append(None)
    return codes


def _check_duplicates(codes: Sequence[str | None], labels: Sequence[str], problems: Problems) -> None:
    """Every feature sharing a code is rejected: which one is meant cannot be told."""
    rows_by_code: dict[str, list[int]] = defaultdict(list)
    for row, code in enumerate(codes):
        if code:
            rows_by_code[code].append(row)
    for code, rows in rows_by_code.items():
        if len(rows) < 2:
            continue
        for row in rows:
            others = ", ".join(labels[r] for r in rows if r != row)
            problems.add(row, "code", f"code {code} appears more than once in the file (also {others})")


def _database_counties(conn: psycopg.Connection) -> list[str]:
    return [r["code"] for r in conn.execute("SELECT code FROM county ORDER BY code").fetchall()]


def _check_county(codes: Sequence[str | None], db_counties: list[str], problems: Problems) -> None:
    """All grids belong to the jurisdiction's county: the database's, or else the one most
    of the file names."""
    in_file = Counter(code[:6] for code in codes if code)
    if not in_file:
        return
    if db_counties:
        expected = set(db_counties)
        whose = f"the jurisdiction's county in the database ({', '.join(db_counties)})"
    else:
        majority = in_file.most_common(1)[0][0]
        expected = {majority}
        whose = f"the rest of the file (county {majority})"
    for row, code in enumerate(codes):
        if code and code[:6] not in expected:
            problems.add(row, "code", f"county {code[:6]} differs from {whose}")


def _parse_populations(values: Sequence[object], problems: Problems) -> list[int | None]:
    out: list[int | None] = []
    for row, value in enumerate(values):
        if value is None:
            out.append(None)
            continue
        number = _whole_number(value)
        if number is None or not 0 <= number <= MAX_POPULATION:
            problems.add(row, "population", f"population {display(value)!r} is not a whole number ≥ 0")
        out.append(number)
    return out


def _whole_number(value: object) -> int | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _level_names(codes: Sequence[str | None], values: Sequence[object], width: int, level: str,
                 field: str, problems: Problems) -> dict[str, str]:
    """The name each street/community code carries in the file; features that disagree
    with the most common name of their parent are reported."""
    names_by_key: dict[str, Counter] = defaultdict(Counter)
    rows_by_key: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row, (code, value) in enumerate(zip(codes, values)):
        name = text_or_none(value)
        if code and name:
            names_by_key[code[:width]][name] += 1
            rows_by_key[code[:width]].append((row, name))
    chosen: dict[str, str] = {}
    for key, counter in names_by_key.items():
        chosen[key], count = counter.most_common(1)[0]
        if len(counter) == 1:
            continue
        for row, name in rows_by_key[key]:
            if name != chosen[key]:
                problems.add(row, field, f"{level} {key} is named {chosen[key]!r} by {count} other "
                                         f"feature(s) of the file; this feature says {name!r}")
    return chosen


# ---------------------------------------------------------------------------- topology
def _check_topology(conn: psycopg.Connection, geoms: np.ndarray, usable: np.ndarray,
                    codes: Sequence[str | None], labels: Sequence[str], problems: Problems, *,
                    overlap_tolerance_m2: float, gap_tolerance_m2: float) -> None:
    rows = np.flatnonzero(usable)
    if rows.size == 0:
        return
    existing = _existing_grids(conn, geoms[rows], codes)
    to_metric, to_lonlat = metric_transformers(geoms[rows])
    file_m = transform(geoms[rows], to_metric)
    existing_m = transform(existing.geoms, to_metric)
    _check_overlaps(rows, file_m, existing.codes, existing_m, codes, labels, problems,
                    overlap_tolerance_m2, to_lonlat)
    _check_gaps(rows, file_m, existing.codes, existing_m, codes, problems,
                gap_tolerance_m2, to_lonlat)


def _existing_grids(conn: psycopg.Connection, geoms: np.ndarray,
                    codes: Sequence[str | None]) -> _Existing:
    """Database grids near the file or in its communities, except those it replaces."""
    file_codes = sorted({c for c in codes if c})
    communities = sorted({c[:12] for c in file_codes})
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    rows = conn.execute(
        "SELECT code, ST_AsBinary(geom) AS wkb FROM grid"
        " WHERE NOT (code = ANY(%(codes)s))"
        "   AND (geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)"
        "        OR community_code = ANY(%(communities)s))",
        {"codes": file_codes, "communities": communities,
         "x0": float(x0), "y0": float(y0), "x1": float(x1), "y1": float(y1)}).fetchall()
    found_codes = np.array([r["code"] for r in rows], dtype=object)
    found_geoms = shapely.from_wkb([bytes(r["wkb"]) for r in rows]) if rows else np.array([], dtype=object)
    return _Existing(found_codes, np.asarray(found_geoms, dtype=object))


def _check_overlaps(rows: np.ndarray, file_m: np.ndarray, existing_codes: np.ndarray,
                    existing_m: np.ndarray, codes: Sequence[str | None], labels: Sequence[str],
                    problems: Problems, tolerance_m2: float, to_lonlat: Transformer) -> None:
    """Pairs whose intersection is larger than the tolerance, measured in square metres."""
    n_file = len(file_m)
    everything = np.concatenate([file_m, existing_m]) if len(existing_m) else file_m
    tree = STRtree(everything)
    mine, other = tree.query(file_m, predicate="intersects")
    # each file pair once; file-database pairs always; same-code pairs are duplicates already
    keep = (other >= n_file) | (mine < other)
    mine, other = mine[keep], other[keep]
    file_codes = np.array([codes[r] or "" for r in rows], dtype=object)
    in_file = other < n_file
    same_code = np.zeros(len(mine), dtype=bool)
    same_code[in_file] = ((file_codes[mine[in_file]] == file_codes[other[in_file]])
                          & (file_codes[mine[in_file]] != ""))
    mine, other = mine[~same_code], other[~same_code]
    overlap = shapely.intersection(file_m[mine], everything[other])
    areas = shapely.area(overlap)
    big = areas > tolerance_m2
    mine, other, overlap, areas = mine[big], other[big], overlap[big], areas[big]
    where = transform(shapely.point_on_surface(overlap), to_lonlat)

    messages: dict[int, list[str]] = defaultdict(list)
    for m, o, area, point in zip(mine, other, areas, where):
        at = f"by {area:.1f} m² around {lonlat_text(point)}"
        if o < n_file:
            messages[rows[m]].append(f"overlaps {labels[rows[o]]} {at}")
            messages[rows[o]].append(f"overlaps {labels[rows[m]]} {at}")
        else:
            messages[rows[m]].append(f"overlaps unit grid {existing_codes[o - n_file]} already in the "
                                     f"database (not replaced by this file) {at}")
    for row in sorted(messages):
        listed = messages[row]
        for message in listed[:OVERLAPS_LISTED_PER_FEATURE]:
            problems.add(row, "geometry", message)
        if len(listed) > OVERLAPS_LISTED_PER_FEATURE:
            problems.add(row, "geometry", f"... and {len(listed) - OVERLAPS_LISTED_PER_FEATURE} "
                                          "more overlaps")


def _check_gaps(rows: np.ndarray, file_m: np.ndarray, existing_codes: np.ndarray,
                existing_m: np.ndarray, codes: Sequence[str | None], problems: Problems,
                tolerance_m2: float, to_lonlat: Transformer) -> None:
    """Holes inside the union of each community's grids that no other grid fills."""
    keyed = np.array([codes[r] is not None for r in rows], dtype=bool)
    geoms = np.concatenate([file_m[keyed], existing_m]) if len(existing_m) else file_m[keyed]
    communities = np.array([codes[r][:12] for r in rows[keyed]]
                           + [c[:12] for c in existing_codes], dtype=object)
    if len(geoms) == 0:
        return
    tree = STRtree(geoms)
    for community in sorted(set(communities[: int(keyed.sum())])):
        members = communities == community
        union = shapely.union_all(geoms[members])
        for hole in _holes(union):
            if hole.area <= tolerance_m2:
                continue
            nearby = tree.query(hole, predicate="intersects")
            fillers = nearby[~members[nearby]]   # an enclave community may fill the hole
            left = shapely.difference(hole, shapely.union_all(geoms[fillers])) if fillers.size else hole
            if left.area > tolerance_m2:
                point = transform(np.array([shapely.point_on_surface(left)]), to_lonlat)[0]
                problems.add_area(f"community {community}",
                                  f"gap of {left.area:.1f} m² between its grids around {lonlat_text(point)}")


def _holes(union: shapely.Geometry) -> list[shapely.Polygon]:
    holes = []
    for part in shapely.get_parts(union):
        if isinstance(part, shapely.Polygon):
            holes.extend(shapely.Polygon(ring) for ring in part.interiors)
    return holes


# ---------------------------------------------------------------------------- writing
def _write(conn: psycopg.Connection, accepted: np.ndarray, codes: Sequence[str | None],
           geoms: np.ndarray, names: Sequence[str | None], populations: Sequence[int | None],
           community_names: dict[str, str], street_names: dict[str, str],
           county_name: str | None) -> None:
    grid_codes = [codes[i] for i in accepted]
    counties = sorted({c[:6] for c in grid_codes})
    streets = sorted({c[:9] for c in grid_codes})
    communities = sorted({c[:12] for c in grid_codes})
    _upsert_counties(conn, counties, county_name)
    _upsert_streets(conn, streets, street_names)
    _upsert_communities(conn, communities, community_names)
    _upsert_grids(conn, grid_codes, geoms[accepted], [names[i] for i in accepted],
                  [populations[i] for i in accepted])
    _recompute_parents(conn, communities, streets, counties)


def _upsert_counties(conn: psycopg.Connection, counties: list[str], county_name: str | None) -> None:
    for county in counties:
        conn.execute(
            "INSERT INTO county (code, name) VALUES (%(code)s, COALESCE(%(name)s::text, %(made)s))"
            " ON CONFLICT (code) DO UPDATE SET name = COALESCE(%(name)s::text, county.name)",
            {"code": county, "name": county_name, "made": f"{county}区县"})


def _upsert_streets(conn: psycopg.Connection, streets: list[str], names: dict[str, str]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO street (code, county_code, name, kind)"
            " VALUES (%(code)s, %(county)s, COALESCE(%(name)s::text, %(made)s), %(kind)s)"
            " ON CONFLICT (code) DO UPDATE SET name = COALESCE(%(name)s::text, street.name)",
            [{"code": s, "county": s[:6], "name": names.get(s), "kind": street_kind(s[6:9]),
              "made": f"{s}{street_kind(s[6:9])}"} for s in streets])


def _upsert_communities(conn: psycopg.Connection, communities: list[str], names: dict[str, str]) -> None:
    def made(code: str) -> str:
        return f"{code}社区" if street_kind(code[6:9]) == "街道" else f"{code}村"

    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO community (code, street_code, name)"
            " VALUES (%(code)s, %(street)s, COALESCE(%(name)s::text, %(made)s))"
            " ON CONFLICT (code) DO UPDATE SET name = COALESCE(%(name)s::text, community.name)",
            [{"code": c, "street": c[:9], "name": names.get(c), "made": made(c)} for c in communities])


def _upsert_grids(conn: psycopg.Connection, codes: list[str], geoms: np.ndarray,
                  names: list[str | None], populations: list[int | None]) -> None:
    """COPY into a staging table, then one upsert; area from the geography."""
    conn.execute("DROP TABLE IF EXISTS pg_temp.grid_stage")
    conn.execute("CREATE TEMP TABLE grid_stage (code text, name text, population integer,"
                 " geom geometry(Geometry, 4326)) ON COMMIT DROP")
    copy_rows(conn, "grid_stage", ("code", "name", "population", "geom"),
              zip(codes, names, populations, ewkb_hex(geoms)))
    conn.execute(
        "INSERT INTO grid (code, community_code, name, population, area_m2, geom, updated_at)"
        " SELECT code, left(code, 12), name, population, ST_Area(geom::geography), ST_Multi(geom), now()"
        " FROM grid_stage"
        " ON CONFLICT (code) DO UPDATE SET name = COALESCE(EXCLUDED.name, grid.name),"
        "   population = COALESCE(EXCLUDED.population, grid.population),"
        "   area_m2 = EXCLUDED.area_m2, geom = EXCLUDED.geom, updated_at = now()")


def _recompute_parents(conn: psycopg.Connection, communities: list[str], streets: list[str],
                       counties: list[str]) -> None:
    """Community, street and county outlines as the union of what lies below them."""
    conn.execute(
        "UPDATE community c SET geom = u.geom FROM ("
        "  SELECT community_code AS code, ST_Multi(ST_Union(geom)) AS geom FROM grid"
        "  WHERE community_code = ANY(%s) GROUP BY community_code) u WHERE c.code = u.code",
        (communities,))
    conn.execute(
        "UPDATE street s SET geom = u.geom FROM ("
        "  SELECT street_code AS code, ST_Multi(ST_Union(geom)) AS geom FROM community"
        "  WHERE street_code = ANY(%s) GROUP BY street_code) u WHERE s.code = u.code",
        (streets,))
    conn.execute(
        "UPDATE county k SET geom = u.geom FROM ("
        "  SELECT county_code AS code, ST_Multi(ST_Union(geom)) AS geom FROM street"
        "  WHERE county_code = ANY(%s) GROUP BY county_code) u WHERE k.code = u.code",
        (counties,))
