"""Blind-spot analysis (监控盲区排查): how much of each unit grid's street area the cameras
see, which grids they barely see, and where new cameras would see the most of what is unseen.

- Street area (街面): the base map's road centre lines (`basemap_road`) buffered by half
  their width, clipped to each unit grid.
- What a camera sees: its view sector with the building shadows taken out — a visibility
  polygon. Rays are cast every degree across the sector (every 2° for candidate positions)
  and each is cut at the first building wall it meets (numpy on the wall segments an STRtree
  pairs it with), so what lies behind a building is not counted, not just its footprint. The
  building a camera is mounted on (within 1 m of it) does not block its own view.
- Coverage per grid (覆盖率) = area(street ∩ union of visibility polygons) / area(street).
- Suggestions (补点建议): greedy over candidate positions every `spacing_m` along the road
  centre lines × bearings every `bearing_step_deg`; each step takes the candidate that adds the
  most uncovered street area and counts it as covered. Gains are counted on a lattice of
  street sample points (`cell_m` apart, each standing for cell² m²), so they are estimates to
  about a cell's width along the sector's edge; coverage itself is exact polygon area.
  Coverage is submodular, so gains only shrink and a lazy greedy (re-score the best until it
  stays the best) picks the same as the plain one.

All metric work is done in a transverse Mercator centred on the jurisdiction (scale error
below 1e-6 across a county; grid north within 0.01° of true north). The layers (grids, street
area, walls) are cached per database until a grid or base-map layer changes; cameras are read
on every call."""
from __future__ import annotations

import heapq
import math
import threading
from dataclasses import dataclass, field

import numpy as np
import psycopg
import shapely
from pyproj import Transformer

from gis.importing import transform

SHARE_THRESHOLD = 0.2           # a grid whose cameras see less than this share of its street is a blind spot
DEFAULT_ROAD_WIDTH_M = 7.0      # a road with no usable width
CAMERA_RAY_STEP_DEG = 1.0
CANDIDATE_RAY_STEP_DEG = 2.0
OWN_BUILDING_M = 1.0            # a camera this close to a building is mounted on it
RAY_CHUNK = 200_000             # rays per numpy pass (bounds the memory of the pairs)
MAX_LATTICE_CELLS = 25_000_000  # the sample raster's size limit; the cell grows beyond it


@dataclass(frozen=True)
class GridCoverage:
    code: str
    street_m2: float
    covered_m2: float
    share: float | None          # None: the grid has no street

    def as_dict(self) -> dict:
        return {"code": self.code, "street_m2": round(self.street_m2, 1), "covered_m2": round(self.covered_m2, 1),
                "share": None if self.share is None else round(self.share, 4)}


@dataclass(frozen=True)
class Suggestion:
    lon: float
    lat: float
    bearing_deg: float
    fov_deg: float
    range_m: float
    gain_m2: float               # uncovered street area this camera would add (after the ones before it)
    grid_code: str | None

    def as_dict(self) -> dict:
        return {"lon": round(self.lon, 7), "lat": round(self.lat, 7), "bearing_deg": self.bearing_deg,
                "fov_deg": self.fov_deg, "range_m": self.range_m, "gain_m2": round(self.gain_m2, 1),
                "grid_code": self.grid_code}


@dataclass
class Lattice:
    """Street sample points on a regular lattice, and a raster from lattice cell to sample."""
    x0: float
    y0: float
    cell: float
    raster: np.ndarray           # (ny, nx) int32: the sample in that cell, -1 none
    xy: np.ndarray               # (n, 2) sample centres


@dataclass
class City:
    """The layers coverage needs, in a local metric CRS."""
    codes: np.ndarray
    grids: np.ndarray
    streets: np.ndarray          # per grid (an empty polygon when none)
    street_m2: np.ndarray
    roads: np.ndarray            # centre lines
    buildings: np.ndarray
    seg_a: np.ndarray            # building wall segments: start (n, 2) …
    seg_b: np.ndarray            # … end (n, 2)
    seg_building: np.ndarray     # … and the building each belongs to
    to_metric: Transformer
    to_lonlat: Transformer
    grid_tree: shapely.STRtree = field(init=False)
    building_tree: shapely.STRtree = field(init=False)
    seg_tree: shapely.STRtree = field(init=False)
    lattices: dict = field(default_factory=dict)

    def __post_init__(self):
        self.grid_tree = shapely.STRtree(self.grids)
        self.building_tree = shapely.STRtree(self.buildings)
        self.seg_tree = shapely.STRtree(shapely.linestrings(np.stack([self.seg_a, self.seg_b], axis=1))
                                        if len(self.seg_a) else np.array([], dtype=object))


# ---------------------------------------------------------------------------- loading
def _wkb(rows: list[dict], key: str = "wkb") -> np.ndarray:
    return shapely.from_wkb([bytes(r[key]) for r in rows]) if rows else np.array([], dtype=object)


def load_city(conn: psycopg.Connection) -> City:
    grid_rows = conn.execute("SELECT code, ST_AsBinary(geom) AS wkb FROM grid ORDER BY code").fetchall()
    road_rows = conn.execute("SELECT width_m, ST_AsBinary(geom) AS wkb FROM basemap_road ORDER BY id").fetchall()
    building_rows = conn.execute("SELECT ST_AsBinary(geom) AS wkb FROM basemap_building ORDER BY id").fetchall()
    grids_ll = _wkb(grid_rows)
    if len(grids_ll):
        x0, y0, x1, y1 = shapely.total_bounds(grids_ll)
        lon0, lat0 = (x0 + x1) / 2, (y0 + y1) / 2
    else:
        lon0, lat0 = 0.0, 0.0
    local = f"+proj=tmerc +lat_0={lat0} +lon_0={lon0} +k=1 +x_0=0 +y_0=0 +ellps=GRS80 +units=m +no_defs"
    to_metric = Transformer.from_crs("EPSG:4326", local, always_xy=True)
    to_lonlat = Transformer.from_crs(local, "EPSG:4326", always_xy=True)

    def metric(geoms: np.ndarray) -> np.ndarray:
        return transform(geoms, to_metric) if len(geoms) else geoms

    grids = metric(grids_ll)
    roads = metric(_wkb(road_rows))
    widths = np.array([r["width_m"] if r["width_m"] and r["width_m"] > 0 else DEFAULT_ROAD_WIDTH_M
                       for r in road_rows], dtype=float)
    buildings = shapely.make_valid(metric(_wkb(building_rows))) if building_rows else np.array([], dtype=object)
    streets = _street_per_grid(grids, roads, widths)
    seg_a, seg_b, seg_building = _wall_segments(buildings)
    return City(np.array([r["code"] for r in grid_rows]), grids, streets, shapely.area(streets), roads, buildings,
                seg_a, seg_b, seg_building, to_metric, to_lonlat)


def _street_per_grid(grids: np.ndarray, roads: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Each grid's street area: the road buffers that reach it, clipped to it and unioned (so
    crossings count once)."""
    streets = np.array([shapely.Polygon()] * len(grids), dtype=object)
    if not len(grids) or not len(roads):
        return streets
    buffers = shapely.buffer(roads, widths / 2, quad_segs=4)
    road_i, grid_i = shapely.STRtree(grids).query(buffers, predicate="intersects")
    pieces = shapely.intersection(buffers[road_i], grids[grid_i])
    for g, group in _groups(grid_i, pieces):
        streets[g] = shapely.union_all(group)
    return streets


def _groups(keys: np.ndarray, values: np.ndarray):
    """(key, values of that key) for each distinct key."""
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    cuts = np.flatnonzero(np.diff(keys)) + 1
    for start, group in zip(np.concatenate([[0], cuts]), np.split(values, cuts)):
        yield int(keys[start]), group


def _wall_segments(buildings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not len(buildings):
        return np.empty((0, 2)), np.empty((0, 2)), np.empty(0, dtype=np.int64)
    polygons, owner = shapely.get_parts(buildings, return_index=True)
    areal = shapely.get_type_id(polygons) == 3          # make_valid may leave stray lines: not walls
    polygons, owner = polygons[areal], owner[areal]
    rings = shapely.get_rings(polygons, return_index=True)   # exterior and holes: all are walls
    coords, ring_of = shapely.get_coordinates(rings[0], return_index=True)
    same = ring_of[1:] == ring_of[:-1]
    return coords[:-1][same], coords[1:][same], owner[rings[1]][ring_of[:-1][same]]


# ---------------------------------------------------------------------------- the cache
_cache: dict[tuple, tuple[tuple, City]] = {}     # (host, port, database) → (layer signature, City)
_CACHE_DATABASES = 4
_cache_lock = threading.Lock()
_SIGNATURE_SQL = """
SELECT (SELECT n FROM grid_version) AS grids,
       (SELECT md5(coalesce(string_agg(id || ':' || width_m || ':' || md5(ST_AsEWKB(geom)), ',' ORDER BY id), ''))
          FROM basemap_road) AS roads,
       (SELECT md5(coalesce(string_agg(id || ':' || md5(ST_AsEWKB(geom)), ',' ORDER BY id), ''))
          FROM basemap_building) AS buildings"""


def city(conn: psycopg.Connection) -> City:
    """The layers, rebuilt when a grid or a base-map layer changed since the last call."""
    info = conn.info
    key = (info.host, info.port, info.dbname)
    row = conn.execute(_SIGNATURE_SQL).fetchone()
    signature = (row["grids"], row["roads"], row["buildings"])
    with _cache_lock:
        hit = _cache.get(key)
        if hit and hit[0] == signature:
            return hit[1]
    built = load_city(conn)
    with _cache_lock:
        _cache.pop(key, None)
        while len(_cache) >= _CACHE_DATABASES:           # oldest first (dicts keep insertion order)
            _cache.pop(next(iter(_cache)))
        _cache[key] = (signature, built)
    return built


# ---------------------------------------------------------------------------- visibility
def ray_reach(c: City, ox: np.ndarray, oy: np.ndarray, azimuth: np.ndarray, reach: np.ndarray,
              owner: np.ndarray, own_keys: np.ndarray | None = None) -> np.ndarray:
    """How far each ray (origin, azimuth in radians clockwise from north, length) runs before
    it meets a building wall. `owner[i]` is the viewpoint ray i belongs to; `own_keys` the
    viewpoint × n_buildings + building keys of buildings that do not block that viewpoint
    (it stands on them: _own_buildings)."""
    out = np.asarray(reach, dtype=float).copy()
    if not len(c.seg_a) or not len(out):
        return out
    dx, dy = np.sin(azimuth), np.cos(azimuth)
    own_keys = np.unique(own_keys) if own_keys is not None else np.empty(0, dtype=np.int64)
    n_buildings = len(c.buildings)
    for lo in range(0, len(out), RAY_CHUNK):
        hi = min(lo + RAY_CHUNK, len(out))
        start = np.column_stack([ox[lo:hi], oy[lo:hi]])
        end = start + np.column_stack([dx[lo:hi], dy[lo:hi]]) * out[lo:hi, None]
        rays = shapely.linestrings(np.stack([start, end], axis=1))
        ray, seg = c.seg_tree.query(rays)                    # bounding boxes only: numpy decides
        ray_abs = ray + lo
        if len(own_keys):
            keep = ~np.isin(owner[ray_abs].astype(np.int64) * n_buildings + c.seg_building[seg], own_keys)
            ray, seg, ray_abs = ray[keep], seg[keep], ray_abs[keep]
        # ray: O + t·D (0 ≤ t ≤ reach); wall: A + u·E (0 ≤ u ≤ 1); solve with 2-D cross products
        ax, ay = c.seg_a[seg, 0], c.seg_a[seg, 1]
        ex, ey = c.seg_b[seg, 0] - ax, c.seg_b[seg, 1] - ay
        rx, ry = dx[ray_abs], dy[ray_abs]
        qx, qy = ax - ox[ray_abs], ay - oy[ray_abs]
        den = rx * ey - ry * ex
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (qx * ey - qy * ex) / den
            u = (qx * ry - qy * rx) / den
        hit = (np.abs(den) > 1e-12) & (u >= 0) & (u <= 1) & (t >= 0) & (t <= out[ray_abs])
        np.minimum.at(out, ray_abs[hit], t[hit])
    return out


def _own_buildings(c: City, xy: np.ndarray) -> np.ndarray:
    """Keys viewpoint × n_buildings + building for the buildings each viewpoint stands on."""
    if not len(c.buildings) or not len(xy):
        return np.empty(0, dtype=np.int64)
    view, building = c.building_tree.query(shapely.points(xy), predicate="dwithin", distance=OWN_BUILDING_M)
    return view.astype(np.int64) * len(c.buildings) + building


def view_polygons(c: City, xy: np.ndarray, bearing_deg: np.ndarray, fov_deg: np.ndarray, range_m: np.ndarray,
                  *, shadows: bool = True, step_deg: float = CAMERA_RAY_STEP_DEG) -> np.ndarray:
    """What each camera sees on the ground (metric): its sector, cut at the first wall along
    each ray when `shadows`."""
    n = len(xy)
    if not n:
        return np.array([], dtype=object)
    bearing_deg, fov_deg, range_m = (np.asarray(v, dtype=float) for v in (bearing_deg, fov_deg, range_m))
    full = fov_deg >= 360
    rays = np.where(full, np.ceil(360 / step_deg), np.ceil(fov_deg / step_deg) + 1).astype(int)
    owner = np.repeat(np.arange(n), rays)
    j = np.arange(rays.sum()) - np.repeat(np.cumsum(rays) - rays, rays)
    k = rays[owner]
    degrees = np.where(full[owner], j * 360.0 / k, bearing_deg[owner] - fov_deg[owner] / 2
                       + j * fov_deg[owner] / np.maximum(k - 1, 1))
    azimuth = np.radians(degrees)
    ox, oy = xy[owner, 0], xy[owner, 1]
    reach = range_m[owner]
    if shadows:
        reach = ray_reach(c, ox, oy, azimuth, reach, owner, _own_buildings(c, xy))
    ends = np.column_stack([ox + reach * np.sin(azimuth), oy + reach * np.cos(azimuth)])
    # rings: apex, arc ends, apex (a sector) or the arc ends closed on themselves (a circle)
    polygons = np.empty(n, dtype=object)
    first = np.cumsum(rays) - rays
    for i in range(n):
        arc = ends[first[i]: first[i] + rays[i]]
        ring = np.vstack([arc, arc[:1]]) if full[i] else np.vstack([xy[i], arc, xy[i]])
        polygons[i] = shapely.Polygon(ring)
    bad = ~shapely.is_valid(polygons)
    if bad.any():                     # spikes where a ray stopped at the apex
        polygons[bad] = shapely.buffer(polygons[bad], 0)
    return polygons


# ---------------------------------------------------------------------------- coverage
def _cameras(conn: psycopg.Connection, c: City) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rows = conn.execute("SELECT ST_X(location) AS lon, ST_Y(location) AS lat, bearing_deg, fov_deg, range_m"
                        " FROM camera WHERE active ORDER BY id").fetchall()
    if not rows:
        return np.empty((0, 2)), np.empty(0), np.empty(0), np.empty(0)
    x, y = c.to_metric.transform([r["lon"] for r in rows], [r["lat"] for r in rows])
    return (np.column_stack([x, y]), np.array([r["bearing_deg"] for r in rows]),
            np.array([r["fov_deg"] for r in rows]), np.array([r["range_m"] for r in rows]))


def camera_views(conn: psycopg.Connection, c: City, *, shadows: bool = True) -> np.ndarray:
    xy, bearing, fov, reach = _cameras(conn, c)
    return view_polygons(c, xy, bearing, fov, reach, shadows=shadows)


def covered_area(c: City, views: np.ndarray) -> np.ndarray:
    """Per grid: the street area inside the union of the views (m²)."""
    covered = np.zeros(len(c.grids))
    if not len(views) or not len(c.grids):
        return covered
    grid_i, view_i = shapely.STRtree(views).query(c.streets, predicate="intersects")
    for g, group in _groups(grid_i, view_i):
        covered[g] = shapely.area(shapely.intersection(c.streets[g], shapely.union_all(views[group])))
    return covered


def coverage(conn: psycopg.Connection, *, shadows: bool = True) -> list[GridCoverage]:
    """Per unit grid, in code order: street area, the part of it the active cameras see, the share."""
    c = city(conn)
    covered = covered_area(c, camera_views(conn, c, shadows=shadows))
    return [GridCoverage(str(code), float(street), float(seen), float(seen / street) if street > 0 else None)
            for code, street, seen in zip(c.codes, c.street_m2, covered)]


def uncovered(rows: list[GridCoverage], threshold: float = SHARE_THRESHOLD) -> list[GridCoverage]:
    """The blind spots (盲区网格): grids with street whose covered share is below the threshold,
    the largest unseen street area first."""
    blind = [r for r in rows if r.share is not None and r.share < threshold]
    return sorted(blind, key=lambda r: (-(r.street_m2 - r.covered_m2), r.code))


def coverage_geojson(conn: psycopg.Connection, rows: list[GridCoverage] | None = None,
                     threshold: float = SHARE_THRESHOLD) -> dict:
    """Per-grid coverage as a GeoJSON FeatureCollection (the grid polygons), for the map."""
    rows = coverage(conn) if rows is None else rows
    shapes = {r["code"]: r["geometry"] for r in
              conn.execute("SELECT code, ST_AsGeoJSON(geom, 7)::json AS geometry FROM grid").fetchall()}
    features = [{"type": "Feature", "id": r.code, "geometry": shapes.get(r.code),
                 "properties": {**r.as_dict(), "blind": r.share is not None and r.share < threshold}}
                for r in rows if r.code in shapes]
    street = sum(r.street_m2 for r in rows)
    seen = sum(r.covered_m2 for r in rows)
    return {"type": "FeatureCollection", "features": features,
            "summary": {"grids": len(rows), "street_m2": round(street, 1), "covered_m2": round(seen, 1),
                        "share": round(seen / street, 4) if street else None, "threshold": threshold,
                        "blind_grids": sum(1 for f in features if f["properties"]["blind"])}}


# ---------------------------------------------------------------------------- suggestions
def lattice(c: City, cell_m: float) -> Lattice:
    """Street sample points `cell_m` apart (cached on the city)."""
    if cell_m in c.lattices:
        return c.lattices[cell_m]
    x0, y0, x1, y1 = shapely.total_bounds(c.grids) if len(c.grids) else (0.0, 0.0, 1.0, 1.0)
    cell = max(cell_m, math.sqrt((x1 - x0) * (y1 - y0) / MAX_LATTICE_CELLS))
    x0, y0 = math.floor(x0 / cell) * cell, math.floor(y0 / cell) * cell
    nx, ny = int(math.ceil((x1 - x0) / cell)) + 1, int(math.ceil((y1 - y0) / cell)) + 1
    raster = np.full((ny, nx), -1, dtype=np.int32)
    points = []
    count = 0
    for street in c.streets:
        if shapely.is_empty(street):
            continue
        bx0, by0, bx1, by1 = street.bounds
        i = np.arange(max(0, int((bx0 - x0) / cell)), min(nx, int((bx1 - x0) / cell) + 1))
        j = np.arange(max(0, int((by0 - y0) / cell)), min(ny, int((by1 - y0) / cell) + 1))
        ii, jj = np.meshgrid(i, j)
        ii, jj = ii.ravel(), jj.ravel()
        xs, ys = x0 + (ii + 0.5) * cell, y0 + (jj + 0.5) * cell
        shapely.prepare(street)
        inside = shapely.contains_xy(street, xs, ys) & (raster[jj, ii] < 0)
        ii, jj = ii[inside], jj[inside]
        raster[jj, ii] = np.arange(count, count + len(ii), dtype=np.int32)
        count += len(ii)
        points.append(np.column_stack([xs[inside], ys[inside]]))
    xy = np.vstack(points) if points else np.empty((0, 2))
    c.lattices[cell_m] = built = Lattice(x0, y0, cell, raster, xy)
    return built


def _seen_samples(lat: Lattice, views: np.ndarray) -> np.ndarray:
    seen = np.zeros(len(lat.xy), dtype=bool)
    ny, nx = lat.raster.shape
    for view in views:
        if shapely.is_empty(view):
            continue
        bx0, by0, bx1, by1 = view.bounds
        block = lat.raster[max(0, int((by0 - lat.y0) / lat.cell)): max(0, int((by1 - lat.y0) / lat.cell) + 1),
                           max(0, int((bx0 - lat.x0) / lat.cell)): max(0, int((bx1 - lat.x0) / lat.cell) + 1)]
        ids = block[block >= 0]
        if len(ids):
            shapely.prepare(view)
            seen[ids[shapely.contains_xy(view, lat.xy[ids, 0], lat.xy[ids, 1])]] = True
    return seen


def candidate_points(c: City, spacing_m: float) -> np.ndarray:
    """Points every `spacing_m` along the road centre lines that lie inside a unit grid."""
    if not len(c.roads) or not len(c.grids):
        return np.empty((0, 2))
    lengths = shapely.length(c.roads)
    per_road = np.floor(lengths / spacing_m).astype(int) + 1
    road = np.repeat(np.arange(len(c.roads)), per_road)
    along = (np.arange(per_road.sum()) - np.repeat(np.cumsum(per_road) - per_road, per_road)) * spacing_m
    points = shapely.line_interpolate_point(c.roads[road], along)
    inside = np.unique(c.grid_tree.query(points, predicate="intersects")[0])
    return shapely.get_coordinates(points[inside])


def suggest_positions(conn: psycopg.Connection, k: int = 5, *, range_m: float = 60.0, fov_deg: float = 90.0,
                      spacing_m: float = 25.0, bearing_step_deg: float = 45.0, cell_m: float = 2.0,
                      shadows: bool = True) -> list[Suggestion]:
    """Up to k new camera positions (on the road centre lines) with bearing, each the one that
    adds the most still-uncovered street area given the cameras there and the ones before it."""
    c = city(conn)
    lat = lattice(c, cell_m)
    if not len(lat.xy):
        return []
    seen = _seen_samples(lat, camera_views(conn, c, shadows=shadows))
    points = candidate_points(c, spacing_m)
    if not len(points):
        return []
    step = CANDIDATE_RAY_STEP_DEG
    n_rays = int(round(360 / step))
    ray_az = np.radians(np.arange(n_rays) * step)
    reach = np.full((len(points), n_rays), float(range_m))
    if shadows:                            # one all-round ray fan per point, shared by its bearings
        owner = np.repeat(np.arange(len(points)), n_rays)
        reach = ray_reach(c, points[owner, 0], points[owner, 1], np.tile(ray_az, len(points)), reach.ravel(),
                          owner, _own_buildings(c, points)).reshape(len(points), n_rays)
    point_of, sample_of, angle_of = _visible_samples(lat, points, reach, range_m, step)
    bearings = np.array([0.0]) if fov_deg >= 360 else np.arange(0.0, 360.0, bearing_step_deg)
    half = fov_deg / 2
    weight = lat.cell ** 2
    # gains of every (point, bearing) against what is seen now
    gains = np.zeros((len(points), len(bearings)))
    open_ = ~seen[sample_of]
    open_point, open_angle = point_of[open_], angle_of[open_]
    for b, bearing in enumerate(bearings):
        inside = _angle_gap(open_angle, bearing) <= half
        gains[:, b] = np.bincount(open_point[inside], minlength=len(points)) * weight
    # pairs are grouped by point (made point by point): slice them per point
    starts = np.searchsorted(point_of, np.arange(len(points) + 1))
    heap = [(-g, p, b) for (p, b), g in np.ndenumerate(gains) if g > 0]
    heapq.heapify(heap)
    picked: list[Suggestion] = []
    while heap and len(picked) < k:
        _, p, b = heapq.heappop(heap)
        lo, hi = starts[p], starts[p + 1]
        window = _angle_gap(angle_of[lo:hi], bearings[b]) <= half
        samples = sample_of[lo:hi][window & ~seen[sample_of[lo:hi]]]
        gain = len(samples) * weight
        if gain <= 0:
            continue
        if heap and gain < -heap[0][0]:            # no longer the best: score it again later
            heapq.heappush(heap, (-gain, p, b))
            continue
        seen[samples] = True
        lon, lat_ = c.to_lonlat.transform(points[p, 0], points[p, 1])
        grid = c.grid_tree.query(shapely.Point(points[p]), predicate="intersects")
        picked.append(Suggestion(float(lon), float(lat_), float(bearings[b]), float(fov_deg), float(range_m),
                                 float(gain), str(c.codes[grid.min()]) if len(grid) else None))
    return picked


def _angle_gap(angles_deg: np.ndarray, bearing: float) -> np.ndarray:
    """|angle - bearing| on the circle, 0…180."""
    return np.abs((angles_deg - bearing + 180.0) % 360.0 - 180.0)


def _visible_samples(lat: Lattice, points: np.ndarray, reach: np.ndarray, range_m: float,
                     step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point, sample, azimuth° from the point) for every street sample each point sees within
    range: the lattice cells of a disk around the point's own cell, kept when nearer than the
    ray of their direction reaches."""
    cell = lat.cell
    m = int(math.ceil(range_m / cell)) + 1
    di, dj = np.meshgrid(np.arange(-m, m + 1), np.arange(-m, m + 1))
    near = np.hypot(di, dj) * cell <= range_m + 1.5 * cell      # the disk (a point lies anywhere in its cell)
    di, dj = di[near], dj[near]
    ny, nx = lat.raster.shape
    n_rays = reach.shape[1]
    out_p, out_s, out_a = [], [], []
    chunk = max(1, 1_000_000 // len(di))          # ~1 M cells a pass: bounded memory
    for lo in range(0, len(points), chunk):
        pts = points[lo: lo + chunk]
        ci = np.floor((pts[:, 0] - lat.x0) / cell).astype(np.int64)
        cj = np.floor((pts[:, 1] - lat.y0) / cell).astype(np.int64)
        ii, jj = ci[:, None] + di[None, :], cj[:, None] + dj[None, :]
        ok = (ii >= 0) & (ii < nx) & (jj >= 0) & (jj < ny)
        sample = np.where(ok, lat.raster[np.clip(jj, 0, ny - 1), np.clip(ii, 0, nx - 1)], -1)
        p_local, which = np.nonzero(sample >= 0)
        s = sample[p_local, which]
        vx = lat.xy[s, 0] - pts[p_local, 0]
        vy = lat.xy[s, 1] - pts[p_local, 1]
        dist = np.hypot(vx, vy)
        azimuth = np.degrees(np.arctan2(vx, vy)) % 360.0
        ray = np.rint(azimuth / step).astype(np.int64) % n_rays
        keep = (dist <= range_m) & (dist <= reach[lo + p_local, ray])
        out_p.append(lo + p_local[keep])
        out_s.append(s[keep])
        out_a.append(azimuth[keep].astype(np.float32))
    return np.concatenate(out_p), np.concatenate(out_s), np.concatenate(out_a)
