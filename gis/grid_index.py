"""Point → unit grid (单元网格) lookup for large batches of GPS points.

A lookup raster over the grids' bounding box answers almost every point with a
single array read; only points in cells that a grid boundary passes through go to
shapely for the exact answer.

Cells are square in degrees: 1 m where the 64 MB cap allows (≈ 3×3 km towns), else
the finest the cap allows (≈ 2.7 m for 20,000 grids of 10,000 m²). Labels are int16
while they fit, int32 beyond 32,766 grids. Finer cells mean fewer exact tests; the
exact test (~0.8 µs/point) dominates the cost, not the raster read (~0.05 µs).

Raster values:
    i + 1   the cell lies entirely inside grid i
    0       the cell lies entirely outside every grid (gap, hole, margin)
    -1      "ambiguous": a boundary may pass through the cell → exact test

Why the answer is exact. A cell whose closed square meets a boundary has its
centre within √2/2 ≈ 0.71 px of that boundary. Every ring is drawn with
cv2.polylines at thickness 3, which (round joints, sub-pixel vertices) marks every
cell whose centre is within ~1.5 px of the ring, so all such cells become -1 with
about 0.8 px to spare. Any other cell lies wholly inside one grid or wholly
outside all of them, and its centre is ≥ 1.5 px from every edge, far beyond
cv2.fillPoly's rounding (< 1 px), so its label is right for every point in it.

Boundary rule. Points in ambiguous cells are resolved with
`STRtree.query(points, predicate="intersects")`: a point counts as in a grid if it
is in the grid's interior or on its boundary (intersects ≡ covers for a point).
A point exactly on an edge or vertex shared by several grids gets the one with
the lowest index, i.e. the first in the order given to `build` (the smallest code
for `from_db`, which orders by code). Points on a boundary always land in an
ambiguous cell, so the rule never depends on the raster. The grids are assumed
not to overlap (a tiling); where bad data overlaps, interior points get whichever
grid the raster drew last.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import cv2
import numpy as np
import psycopg
import shapely
from psycopg.rows import tuple_row

METRES_PER_DEGREE = 111_320.0      # one degree of latitude, near enough for sizing cells
DEFAULT_CELL_M = 1.0               # finest cell tried; finer cells mean fewer exact tests
MAX_RASTER_BYTES = 64 * 1024 * 1024
BOUNDARY_THICKNESS = 3             # px; marks cells whose centre is within ~1.5 px of a ring
MARGIN_CELLS = 4                   # empty border: ≥ the band's reach, so edge cells stay 0
AMBIGUOUS = -1
UNSURE = AMBIGUOUS - 1             # what an ambiguous cell gives after the label − 1 shift
CHUNK = 1 << 16                    # points per pass: keeps the temporaries in cache


@dataclass(frozen=True)
class _RasterFrame:
    """Where the raster sits: cell (row, col) covers lon [x0 + col·cell, x0 + (col+1)·cell),
    lat [y0 + row·cell, y0 + (row+1)·cell)."""
    x0: float
    y0: float
    cell: float
    rows: int
    cols: int

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """lon/lat → OpenCV continuous pixel coordinates (pixel centres sit on integers)."""
        return (xy - (self.x0, self.y0)) / self.cell - 0.5


class GridIndex:
    """Maps lon/lat points (EPSG:4326) to the unit grid containing them."""

    codes: np.ndarray          # object array of str; index i ↔ polygon i

    def __init__(self, codes: np.ndarray, geoms: np.ndarray, frame: _RasterFrame | None,
                 raster: np.ndarray | None):
        self.codes = codes
        self._geoms = geoms
        self._frame = frame
        self._raster = raster                       # flat, row-major
        self._tree = shapely.STRtree(geoms)
        self._codes_or_none = np.append(codes, None)  # index -1 → None

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, codes: Sequence[str], polygons: Sequence[shapely.Geometry],
              cell_deg: float | None = None) -> GridIndex:
        """Index `polygons` (Polygon/MultiPolygon, lon/lat); `cell_deg` overrides the
        automatic raster cell size (degrees, both axes)."""
        codes_arr = np.empty(len(codes), dtype=object)
        codes_arr[:] = [str(c) for c in codes]
        geoms = np.empty(len(polygons), dtype=object)
        geoms[:] = list(polygons)
        if len(codes_arr) != len(geoms):
            raise ValueError(f"{len(codes_arr)} codes but {len(geoms)} polygons")
        _check_polygonal(geoms)

        bounds = _total_bounds(geoms)
        if bounds is None:                               # no grids, or all empty
            return cls(codes_arr, geoms, None, None)
        label_dtype = _label_dtype(len(geoms))
        frame = _choose_frame(bounds, cell_deg, label_dtype)
        raster = _draw_raster(frame, geoms, label_dtype)
        return cls(codes_arr, geoms, frame, raster)

    @classmethod
    def from_db(cls, conn: psycopg.Connection) -> GridIndex:
        """Build from the `grid` table, ordered by code (so shared edges go to the smaller code)."""
        with conn.cursor(row_factory=tuple_row) as cur:
            cur.execute("SELECT code, ST_AsBinary(geom) FROM grid ORDER BY code")
            rows = cur.fetchall()
        codes = [row[0] for row in rows]
        geoms = shapely.from_wkb([bytes(row[1]) for row in rows]) if rows else []
        return cls.build(codes, list(geoms))

    # ------------------------------------------------------------------ queries
    def lookup(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """int32 index into `codes` for each point; -1 where no grid contains it (also NaN)."""
        lon_b, lat_b = np.broadcast_arrays(np.asarray(lon, dtype=np.float64),
                                           np.asarray(lat, dtype=np.float64))
        shape = lon_b.shape
        lon_f, lat_f = np.ravel(lon_b), np.ravel(lat_b)
        out = np.full(lon_f.size, -1, dtype=np.int32)
        if self._frame is None or lon_f.size == 0:
            return out.reshape(shape)
        for start in range(0, lon_f.size, CHUNK):
            stop = min(start + CHUNK, lon_f.size)
            out[start:stop] = self._raster_labels(lon_f[start:stop], lat_f[start:stop])
        unsure = np.flatnonzero(out == UNSURE)
        if unsure.size:
            out[unsure] = self._exact(lon_f[unsure], lat_f[unsure])
        return out.reshape(shape)

    def locate(self, lon: float, lat: float) -> str | None:
        """The code of the grid containing one point, or None."""
        i = int(self.lookup(np.array([lon], dtype=np.float64), np.array([lat], dtype=np.float64))[0])
        return self.codes[i] if i >= 0 else None

    def codes_for(self, lon, lat) -> np.ndarray:
        """Object array of the code (or None) for each point."""
        return self._codes_or_none[self.lookup(lon, lat)]

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def cell_deg(self) -> float | None:
        return self._frame.cell if self._frame else None

    @property
    def raster(self) -> np.ndarray | None:
        """The lookup raster (rows = latitude), read-only view; None when there are no grids."""
        if self._frame is None:
            return None
        view = self._raster.reshape(self._frame.rows, self._frame.cols).view()
        view.flags.writeable = False
        return view

    def cell_bounds(self) -> tuple[float, float, float] | None:
        """(x0, y0, cell): cell (row, col) covers [x0 + col·cell, +cell) × [y0 + row·cell, +cell)."""
        f = self._frame
        return (f.x0, f.y0, f.cell) if f else None

    # ------------------------------------------------------------------ internals
    def _raster_labels(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Raster label − 1 per point: grid index, -1 outside, -2 ambiguous."""
        f = self._frame
        inv = 1.0 / f.cell
        col = lon - f.x0
        col *= inv
        # fmax/fmin drop NaN, so NaN and far-away points land in the empty margin.
        np.fmax(col, 0.0, out=col)
        np.fmin(col, f.cols - 1, out=col)
        row = lat - f.y0
        row *= inv
        np.fmax(row, 0.0, out=row)
        np.fmin(row, f.rows - 1, out=row)
        flat = row.astype(np.intp)
        flat *= f.cols
        flat += col.astype(np.intp)
        labels = self._raster.take(flat).astype(np.int32)
        labels -= 1
        return labels

    def _exact(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Exact answer with shapely; shared edges go to the lowest grid index."""
        points = shapely.points(lon, lat)
        point_i, grid_i = self._tree.query(points, predicate="intersects")
        best = np.full(lon.size, np.iinfo(np.int32).max, dtype=np.int32)
        np.minimum.at(best, point_i, grid_i.astype(np.int32))
        best[best == np.iinfo(np.int32).max] = -1
        return best


# ---------------------------------------------------------------------- raster building
def _check_polygonal(geoms: np.ndarray) -> None:
    kinds = shapely.get_type_id(geoms)   # -1 for None
    bad = ~np.isin(kinds, (-1, shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise TypeError(f"grid {i} is a {geoms[i].geom_type} geometry; "
                        "only Polygon and MultiPolygon are indexed")


def _total_bounds(geoms: np.ndarray) -> tuple[float, float, float, float] | None:
    present = geoms[~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)] if len(geoms) else geoms
    if len(present) == 0:
        return None
    minx, miny, maxx, maxy = shapely.total_bounds(present)
    if not np.all(np.isfinite((minx, miny, maxx, maxy))):
        raise ValueError("grid geometries have non-finite coordinates")
    return float(minx), float(miny), float(maxx), float(maxy)


def _label_dtype(n_grids: int) -> type:
    """int16 when the labels fit (≤ 32,766 grids): half the memory, so finer cells within
    the cap, fewer points needing the exact test and fewer cache misses; else int32."""
    return np.int16 if n_grids + 1 <= np.iinfo(np.int16).max else np.int32


def _choose_frame(bounds: tuple[float, float, float, float], cell_deg: float | None,
                  label_dtype: type) -> _RasterFrame:
    """The raster frame: finest cell within the memory cap unless `cell_deg` is given."""
    minx, miny, maxx, maxy = bounds
    width, height = maxx - minx, maxy - miny
    max_cells = MAX_RASTER_BYTES // np.dtype(label_dtype).itemsize
    if cell_deg is None:
        cell = max(DEFAULT_CELL_M / METRES_PER_DEGREE, math.sqrt(width * height / max_cells))
        while _cells(width, height, cell) > max_cells:     # thin extents: the margin counts
            cell *= 1.05
    else:
        cell = float(cell_deg)
        if not (math.isfinite(cell) and cell > 0):
            raise ValueError(f"cell_deg must be a positive number, not {cell_deg!r}")
        if _cells(width, height, cell) > max_cells:
            raise ValueError(f"cell_deg={cell_deg} needs a raster larger than "
                             f"{MAX_RASTER_BYTES >> 20} MB")
    cols, rows = _dims(width, height, cell)
    return _RasterFrame(x0=minx - MARGIN_CELLS * cell, y0=miny - MARGIN_CELLS * cell,
                        cell=cell, rows=rows, cols=cols)


def _dims(width: float, height: float, cell: float) -> tuple[int, int]:
    return (math.ceil(width / cell) + 2 * MARGIN_CELLS + 1,
            math.ceil(height / cell) + 2 * MARGIN_CELLS + 1)


def _cells(width: float, height: float, cell: float) -> int:
    cols, rows = _dims(width, height, cell)
    return cols * rows


def _fixed_point_shift(frame: _RasterFrame) -> int:
    """Sub-pixel bits for cv2 (≤ 16) such that pixel coordinates still fit in int32."""
    largest = max(frame.rows, frame.cols) + 2
    return int(max(0, min(16, math.floor(math.log2((2**31 - 1) / largest)))))


def _draw_raster(frame: _RasterFrame, geoms: np.ndarray, label_dtype: type) -> np.ndarray:
    shift = _fixed_point_shift(frame)
    scale = float(1 << shift)

    def ring_points(ring: shapely.Geometry) -> np.ndarray:
        px = frame.to_pixels(shapely.get_coordinates(ring))
        return np.round(px * scale).astype(np.int32).reshape(-1, 1, 2)

    # Each polygon part is drawn on its own; MultiPolygon parts keep the grid's label.
    parts, owner = shapely.get_parts(geoms, return_index=True)
    keep = ~shapely.is_empty(parts)
    parts, owner = parts[keep], owner[keep]
    # Largest exterior first: a grid inside another's hole is drawn after that grid.
    exterior_area = shapely.area(shapely.polygons(shapely.get_exterior_ring(parts)))
    order = np.argsort(-exterior_area, kind="stable")

    image = np.zeros((frame.rows, frame.cols), dtype=label_dtype)
    all_rings: list[np.ndarray] = []
    for k in order:
        part = parts[k]
        exterior = ring_points(part.exterior)
        cv2.fillPoly(image, [exterior], int(owner[k]) + 1, lineType=cv2.LINE_8, shift=shift)
        all_rings.append(exterior)
        for hole in part.interiors:
            hole_px = ring_points(hole)
            cv2.fillPoly(image, [hole_px], 0, lineType=cv2.LINE_8, shift=shift)
            all_rings.append(hole_px)
    # Every ring, thick: any cell a true boundary passes through becomes ambiguous.
    cv2.polylines(image, all_rings, isClosed=True, color=AMBIGUOUS,
                  thickness=BOUNDARY_THICKNESS, lineType=cv2.LINE_8, shift=shift)
    return image.ravel()


# ---------------------------------------------------------------------- cache
class GridIndexCache:
    """Holds a GridIndex and rebuilds it when the grid table changes: checks the change
    counter `SELECT n FROM grid_version` (bumped by a trigger on every statement that
    changes grid, migration 0003) at most every `check_seconds`.

    Thread-safe; a caller arriving during a rebuild waits for it.
    """

    def __init__(self, connect: Callable[[], AbstractContextManager[psycopg.Connection]],
                 check_seconds: float = 30.0):
        self._connect = connect
        self._check_seconds = check_seconds
        self._lock = threading.Lock()
        self._index: GridIndex | None = None
        self._version: int | None = None
        self._checked_at = -math.inf

    def get(self) -> GridIndex:
        with self._lock:
            if self._index is not None and time.monotonic() - self._checked_at < self._check_seconds:
                return self._index
            with self._connect() as conn:
                # Version first: a change racing the build only causes one extra rebuild.
                version = _grid_version(conn)
                if self._index is None or version != self._version:
                    self._index = GridIndex.from_db(conn)
                    self._version = version
            self._checked_at = time.monotonic()
            return self._index


def _grid_version(conn: psycopg.Connection) -> int:
    """The grid change counter. Unlike count(*) and max(updated_at) it also moves for an
    import that commits after a later one, and for SQL that leaves updated_at alone."""
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT n FROM grid_version")
        return int(cur.fetchone()[0])
