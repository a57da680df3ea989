"""Unit grid import (单元网格, GB/T 30428.1): validate a whole file in one pass, then write
it in one transaction.

Decisions worth knowing:
- Every problem of every feature is reported at once; nothing is written unless the file
  is clean, or skip_invalid is given, which imports the features without problems.
- An overlap (area > overlap_tolerance_m2) rejects BOTH features of the file involved:
  the file alone cannot tell which boundary is right, and keeping either one would let
  the wrong one in. An overlap with a grid already in the database (one this file does
  not replace) rejects the file's feature; the database grid stays as it is.
- Only an ACCEPTED feature replaces the database grid of its code. When it is rejected
  the old grid stays, and the accepted features are checked against it again (until no
  rejection brings back another old grid), so nothing written overlaps.
- A gap (a hole inside the union of a community's grids larger than gap_tolerance_m2,
  not filled by another community's grids) belongs to no feature: it refuses the file,
  and with skip_invalid it is reported but rejects nothing. Gaps are measured as the
  file draws them (every feature with a usable geometry and code, plus the database
  grids that stay) and again as they would be written (the accepted features only); a
  gap only the second finds is reported as left where the rejected features would be.
- A file lying entirely more than 50 km (plausible_distance_km) from the grids already
  in the database is most likely declared in the wrong CRS: one whole-file problem names
  both extents and every feature is rejected.
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

import geopandas as gpd
import numpy as np
import psycopg
import shapely
from pyproj import Transformer
from shapely import STRtree

from gis.codes import CodeError, parse_grid_code, street_kind
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
PLAUSIBLE_DISTANCE_KM = 50.0       # a file farther than this from the grids in the database is suspect


def import_grids(conn: psycopg.Connection, gdf: gpd.GeoDataFrame, *, source: str, actor: str,
                 skip_invalid: bool = False, gap_tolerance_m2: float = 1.0,
                 overlap_tolerance_m2: float = 0.5, county_name: str | None = None,
                 plausible_distance_km: float | None = PLAUSIBLE_DISTANCE_KM,
                 progress: bool = False) -> ImportReport:
    """Import unit grids (one Polygon/MultiPolygon per grid, field `code`; optional `name`,
    `community_name`, `street_name`, `population`) in one transaction, upserting by code.

    Raises ImportRefused (nothing written) when the file has problems and skip_invalid is
    False. With skip_invalid, an overlap between two features of the file rejects both of
    them, and a gap inside a community is reported without rejecting any feature; see the
    module docstring for the rest (database overlaps, names, tolerances). A file lying more
    than `plausible_distance_km` from the grids already in the database is refused whole
    (its CRS is probably wrong); None turns that check off, for a really distant new area."""
    check_frame(gdf, ["code"], KIND, source)
    raw_codes = column_values(gdf, "code")
    labels = feature_labels(gdf.index, [_code_key(c) for c in raw_codes])
    problems = Problems(len(gdf))
    with Progress(KIND, len(gdf), progress) as bar, conn.transaction():
        lock_imports(conn)
        bar.stage("geometry")
        geoms = to_wgs84(gdf)
        usable = check_geometries(geoms, GRID_TYPES, "a Polygon or MultiPolygon", problems, bar)
        if plausible_distance_km is not None:
            _check_place(conn, geoms[usable], gdf.crs, plausible_distance_km, problems)

        bar.stage("codes and fields", passes=4)     # one pass per bar.each below
        codes = _parse_codes(bar.each(raw_codes), problems)
        _check_duplicates(codes, labels, problems)
        _check_county(codes, _database_counties(conn), problems)
        populations = _parse_populations(bar.each(column_values(gdf, "population")), problems)
        names = [text_or_none(v) for v in column_values(gdf, "name")]
        community_names = _level_names(codes, bar.each(column_values(gdf, "community_name")), 12,
                                       "community", "community_name", problems)
        street_names = _level_names(codes, bar.each(column_values(gdf, "street_name")), 9,
                                    "street", "street_name", problems)

        _check_topology(conn, geoms, usable, codes, labels, problems, bar,
                        overlap_tolerance_m2=overlap_tolerance_m2, gap_tolerance_m2=gap_tolerance_m2)
        if problems and not skip_invalid:
            raise ImportRefused(make_report(KIND, source, labels, problems, imported=0))

        accepted = np.flatnonzero(~problems.rejected)
        bar.stage("write", features=accepted.size)
        if accepted.size:
            _write(conn, accepted, codes, geoms, names, populations,
                   community_names, street_names, county_name, bar)
        report = make_report(KIND, source, labels, problems, imported=int(accepted.size))
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


def _check_place(conn: psycopg.Connection, geoms: np.ndarray, crs: object, max_km: float,
                 problems: Problems) -> None:
    """A file declared in the wrong CRS lands far from the jurisdiction: when the database
    has grids and the file lies entirely more than max_km from their extent, say so once."""
    existing = grid_extent(conn) if len(geoms) else None
    if existing is None:
        return
    in_file = Extent.of(geoms)
    km = in_file.distance_km(existing)
    if km > max_km:
        problems.add_file("geometry", (
            f"the file's features ({in_file}) lie {km:,.0f} km from the unit grids already in the "
            f"database ({existing}); the file declares {describe_crs(crs)}, which is probably not "
            "the CRS its coordinates are in. Check the CRS it was exported with (for a shapefile, "
            "the .prj); nothing is imported while the file is this far away"))


# ---------------------------------------------------------------------------- topology
def _check_topology(conn: psycopg.Connection, geoms: np.ndarray, usable: np.ndarray,
                    codes: Sequence[str | None], labels: Sequence[str], problems: Problems,
                    bar: Progress, *, overlap_tolerance_m2: float, gap_tolerance_m2: float) -> None:
    """Overlaps and gaps, first as the file draws them, then as they would be written.

    A database grid is left out only when an ACCEPTED feature replaces it (same code): a
    rejected feature leaves its old grid where it is. Rejections in the first pass can
    therefore bring database grids back; those are checked against the accepted features
    until nothing changes, so nothing written overlaps. Gaps are then measured again on
    what is written, and the ones rejection opened are reported (they reject nothing)."""
    rows = np.flatnonzero(usable)
    if rows.size == 0:
        return
    topo = _Topology.load(conn, geoms, rows, codes, labels, problems,
                          overlap_tolerance_m2, gap_tolerance_m2)
    kept = topo.kept()
    bar.stage("overlaps")
    topo.check_overlaps_as_drawn(kept, bar)
    bar.stage("gaps")
    everything = np.ones(len(rows), dtype=bool)
    drawn_gaps = topo.gaps(everything, kept, bar)
    for community, gap in drawn_gaps:
        topo.report_gap(community, gap, "between its grids")

    started_with = kept
    while True:          # each round can only bring more database grids back, so it ends
        now_kept = topo.kept()
        restored = now_kept & ~kept
        if not restored.any():
            break
        topo.check_overlaps_with_restored(restored)
        kept = now_kept
    if (kept != started_with).any() or not topo.accepted().all():
        topo.report_gaps_left_by_rejection(drawn_gaps, kept)


class _Topology:
    """The file's usable features (`rows`) and the database grids around them, in metres
    (the local UTM zone), with the overlap and gap checks between them."""

    def __init__(self, rows: np.ndarray, file_m: np.ndarray, codes: Sequence[str | None],
                 labels: Sequence[str], db_codes: np.ndarray, db_geoms: np.ndarray,
                 to_metric: Transformer, to_lonlat: Transformer, problems: Problems,
                 overlap_tolerance_m2: float, gap_tolerance_m2: float):
        self.rows = rows
        self.file_m = file_m
        self.file_codes = np.array([codes[r] or "" for r in rows], dtype=object)
        self.labels = labels
        self.db_codes = db_codes
        self._db_geoms = db_geoms                       # EPSG:4326, turned into metres on demand
        self._db_m = np.empty(len(db_geoms), dtype=object)
        self._db_in_metres = np.zeros(len(db_geoms), dtype=bool)
        self.to_metric = to_metric
        self.to_lonlat = to_lonlat
        self.problems = problems
        self.overlap_tolerance_m2 = overlap_tolerance_m2
        self.gap_tolerance_m2 = gap_tolerance_m2
        # any feature naming a code, usable or not: the one a kept database grid waits for
        self.row_of_code: dict[str, int] = {}
        for row, code in enumerate(codes):
            if code:
                self.row_of_code.setdefault(code, row)

    @classmethod
    def load(cls, conn: psycopg.Connection, geoms: np.ndarray, rows: np.ndarray,
             codes: Sequence[str | None], labels: Sequence[str], problems: Problems,
             overlap_tolerance_m2: float, gap_tolerance_m2: float) -> _Topology:
        db_codes, db_geoms = _database_grids(conn, geoms[rows], codes)
        to_metric, to_lonlat = metric_transformers(geoms[rows])
        return cls(rows, transform(geoms[rows], to_metric), codes, labels, db_codes, db_geoms,
                   to_metric, to_lonlat, problems, overlap_tolerance_m2, gap_tolerance_m2)

    def db_m(self, which: np.ndarray) -> np.ndarray:
        """Database grids in metres (indices or a mask). Only those ever needed are
        transformed: on a full re-import every old grid is replaced and none is."""
        at = np.flatnonzero(which) if which.dtype == bool else which
        todo = at[~self._db_in_metres[at]]
        if todo.size:
            self._db_m[todo] = transform(self._db_geoms[todo], self.to_metric)
            self._db_in_metres[todo] = True
        return self._db_m[at]

    def accepted(self) -> np.ndarray:
        """Which of the usable features are not (yet) rejected."""
        return ~self.problems.rejected[self.rows]

    def kept(self) -> np.ndarray:
        """Which database grids stay: those no accepted feature replaces."""
        replacing = set(self.file_codes[self.accepted()])
        return np.array([code not in replacing for code in self.db_codes], dtype=bool)

    # ------------------------------------------------------------------ overlaps
    def check_overlaps_as_drawn(self, kept: np.ndarray, bar: Progress) -> None:
        """Every usable feature against the others and the kept database grids."""
        n_file = len(self.file_m)
        kept_at = np.flatnonzero(kept)
        others = np.concatenate([self.file_m, self.db_m(kept_at)])
        other_codes = np.concatenate([self.file_codes, self.db_codes[kept_at]])

        def wanted(mine: np.ndarray, other: np.ndarray) -> np.ndarray:
            # each file pair once; a feature does not overlap its own code (a duplicate,
            # reported already, or the old version of a rejected feature in the database)
            same_code = (self.file_codes[mine] == other_codes[other]) & (self.file_codes[mine] != "")
            return ((other >= n_file) | (mine < other)) & ~same_code

        found = _overlapping_pairs(self.file_m, others, wanted, self.overlap_tolerance_m2,
                                   bar.chunks(n_file))
        messages: dict[int, list[str]] = defaultdict(list)
        for mine, other, at in self._described(found):
            if other < n_file:
                messages[self.rows[mine]].append(f"overlaps {self.labels[self.rows[other]]} {at}")
                messages[self.rows[other]].append(f"overlaps {self.labels[self.rows[mine]]} {at}")
            else:
                messages[self.rows[mine]].append(self._database_overlap(kept_at[other - n_file], at))
        self._add_overlaps(messages)

    def check_overlaps_with_restored(self, restored: np.ndarray) -> None:
        """The accepted features against database grids that rejections brought back."""
        accepted_at = np.flatnonzero(self.accepted())
        restored_at = np.flatnonzero(restored)
        found = _overlapping_pairs(self.file_m[accepted_at], self.db_m(restored_at),
                                   lambda mine, other: np.ones(len(mine), dtype=bool),
                                   self.overlap_tolerance_m2, [slice(0, len(accepted_at))])
        messages: dict[int, list[str]] = defaultdict(list)
        for mine, other, at in self._described(found):
            messages[self.rows[accepted_at[mine]]].append(self._database_overlap(restored_at[other], at))
        self._add_overlaps(messages)

    def _described(self, found: tuple[np.ndarray, ...]):
        """(mine, other, 'by 12.3 m² around (lon, lat)') per overlapping pair."""
        mine, other, areas, shapes = found
        where = transform(shapely.point_on_surface(shapes), self.to_lonlat)
        for m, o, area, point in zip(mine, other, areas, where):
            yield m, o, f"by {area:.1f} m² around {lonlat_text(point)}"

    def _database_overlap(self, db_at: int, at: str) -> str:
        code = self.db_codes[db_at]
        row = self.row_of_code.get(code)
        if row is None:
            return f"overlaps unit grid {code} already in the database (not replaced by this file) {at}"
        return (f"overlaps unit grid {code} already in the database, which stays because "
                f"{self.labels[row]} that would replace it is rejected, {at}")

    def _add_overlaps(self, messages: dict[int, list[str]]) -> None:
        for row in sorted(messages):
            listed = messages[row]
            for message in listed[:OVERLAPS_LISTED_PER_FEATURE]:
                self.problems.add(row, "geometry", message)
            if len(listed) > OVERLAPS_LISTED_PER_FEATURE:
                self.problems.add(row, "geometry", f"... and {len(listed) - OVERLAPS_LISTED_PER_FEATURE} "
                                                   "more overlaps")

    # ------------------------------------------------------------------ gaps
    def gaps(self, features: np.ndarray, kept: np.ndarray,
             bar: Progress | None = None) -> list[tuple[str, shapely.Geometry]]:
        """Holes inside the union of each community's grids (the given features with a code,
        plus the kept database grids) that no other community fills: (community, hole)."""
        keyed = features & (self.file_codes != "")
        geoms = np.concatenate([self.file_m[keyed], self.db_m(kept)])
        found: list[tuple[str, shapely.Geometry]] = []
        if len(geoms) == 0:
            return found
        file_communities = [c[:12] for c in self.file_codes if c]
        member_communities = ([c[:12] for c in self.file_codes[keyed]]
                              + [c[:12] for c in self.db_codes[kept]])
        # communities as small integers, so picking out each one's members is cheap
        names, numbers = np.unique(np.array(member_communities + file_communities, dtype=object),
                                   return_inverse=True)
        numbers = numbers.ravel()
        communities = numbers[:len(geoms)]
        file_features_in = np.bincount(numbers[len(geoms):], minlength=len(names))
        tree = STRtree(geoms)
        for number in np.flatnonzero(file_features_in):      # the communities the file names
            community = names[number]
            members = communities == number
            for hole in _holes(shapely.union_all(geoms[members])):
                if hole.area <= self.gap_tolerance_m2:
                    continue
                nearby = tree.query(hole, predicate="intersects")
                fillers = nearby[~members[nearby]]   # an enclave community may fill the hole
                left = shapely.difference(hole, shapely.union_all(geoms[fillers])) if fillers.size else hole
                if left.area > self.gap_tolerance_m2:
                    found.append((community, left))
            if bar:
                bar.advance(int(file_features_in[number]))
        return found

    def report_gap(self, community: str, gap: shapely.Geometry, how: str) -> None:
        point = transform(np.array([shapely.point_on_surface(gap)]), self.to_lonlat)[0]
        self.problems.add_area(f"community {community}",
                               f"gap of {gap.area:.1f} m² {how} around {lonlat_text(point)}")

    def report_gaps_left_by_rejection(self, drawn_gaps: list[tuple[str, shapely.Geometry]],
                                      kept: np.ndarray) -> None:
        """Gaps in what is written that the file as drawn did not have: rejected features
        leave them. Reported (nothing more is rejected for them)."""
        drawn = shapely.union_all([gap for _community, gap in drawn_gaps]) if drawn_gaps else None
        rejected_at = np.flatnonzero(~self.accepted())
        rejected_tree = STRtree(self.file_m[rejected_at])
        for community, gap in self.gaps(self.accepted(), kept):
            new = shapely.difference(gap, drawn) if drawn is not None else gap
            if new.area <= self.gap_tolerance_m2:
                continue
            leavers = rejected_at[rejected_tree.query(new, predicate="intersects")]
            named = ", ".join(self.labels[self.rows[k]] for k in sorted(leavers)[:3])
            more = f" and {len(leavers) - 3} more" if len(leavers) > 3 else ""
            how = (f"between its grids where rejected {named}{more} would be" if named
                   else "between its grids once the rejected features are left out")
            self.report_gap(community, new, how)


def _database_grids(conn: psycopg.Connection, geoms: np.ndarray,
                    codes: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """(codes, geometries in EPSG:4326) of the database grids near the file or in its
    communities, including those the file names: whether they stay depends on which of the
    file's features are accepted."""
    communities = sorted({c[:12] for c in codes if c})
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    rows = conn.execute(
        "SELECT code, ST_AsBinary(geom) AS wkb FROM grid"
        " WHERE geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)"
        "    OR community_code = ANY(%(communities)s)",
        {"communities": communities,
         "x0": float(x0), "y0": float(y0), "x1": float(x1), "y1": float(y1)}).fetchall()
    found_codes = np.array([r["code"] for r in rows], dtype=object)
    found_geoms = np.empty(len(rows), dtype=object)
    if rows:
        found_geoms[:] = shapely.from_wkb([bytes(r["wkb"]) for r in rows])
    return found_codes, found_geoms


def _overlapping_pairs(file_m: np.ndarray, others: np.ndarray, wanted, tolerance_m2: float,
                       chunks) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(file index, other index, area m², overlap shape) for pairs whose intersection is
    larger than the tolerance, among the pairs `wanted(mine, other)` keeps; chunk by chunk
    of the file's features, so the progress bar moves."""
    found: list[tuple[np.ndarray, ...]] = []
    tree = STRtree(others)
    for part in chunks:
        mine, other = tree.query(file_m[part], predicate="intersects")
        mine = mine + part.start
        keep = wanted(mine, other)
        mine, other = mine[keep], other[keep]
        shapes = shapely.intersection(file_m[mine], others[other])
        areas = shapely.area(shapes)
        big = areas > tolerance_m2
        found.append((mine[big], other[big], areas[big], shapes[big]))
    if not found:
        return (np.array([], dtype=np.intp),) * 2 + (np.array([]), np.array([], dtype=object))
    return tuple(np.concatenate(column) for column in zip(*found))


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
           county_name: str | None, bar: Progress) -> None:
    grid_codes = [codes[i] for i in accepted]
    counties = sorted({c[:6] for c in grid_codes})
    streets = sorted({c[:9] for c in grid_codes})
    communities = sorted({c[:12] for c in grid_codes})
    _upsert_counties(conn, counties, county_name)
    _upsert_streets(conn, streets, street_names)
    _upsert_communities(conn, communities, community_names)
    _upsert_grids(conn, grid_codes, geoms[accepted], [names[i] for i in accepted],
                  [populations[i] for i in accepted], bar)
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
                  names: list[str | None], populations: list[int | None], bar: Progress) -> None:
    """COPY into a staging table, then one upsert; area from the geography."""
    conn.execute("DROP TABLE IF EXISTS pg_temp.grid_stage")
    conn.execute("CREATE TEMP TABLE grid_stage (code text, name text, population integer,"
                 " geom geometry(Geometry, 4326)) ON COMMIT DROP")
    copy_rows(conn, "grid_stage", ("code", "name", "population", "geom"),
              zip(bar.each(codes), names, populations, ewkb_hex(geoms)))
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
