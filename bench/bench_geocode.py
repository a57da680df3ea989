"""Benchmark: GPS point → unit grid (单元网格) lookup.

Run: .venv/bin/python bench/bench_geocode.py

GridIndex against three baselines on the same irregular grids (Voronoi cells over
~3×3 km around lon 113.345, lat 27.0):
  A  naive per-point loop over polygons with shapely `contains` (on a sample),
  B  shapely STRtree.query(points, predicate="intersects"), vectorised,
  C  PostGIS ST_Intersects join with a GIST index — against the database in
     CITYGRID_BENCH_DATABASE_URL, or a throwaway cluster started here.
Single thread throughout.
"""
from __future__ import annotations

import os

# One core: keep any BLAS/OpenMP pools from spreading out (before numpy loads).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import io  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import shapely  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gis.grid_index import GridIndex  # noqa: E402

cv2.setNumThreads(1)

CENTRE_LON, CENTRE_LAT = 113.345, 27.0
SIDE_M = 3000.0
SEEDS = 600
LOOKUP_POINTS = 2_000_000
NAIVE_POINTS = 2_000
POSTGIS_POINTS = 200_000
TARGET = 1_000_000


# ---------------------------------------------------------------------- test data
def study_area() -> shapely.Polygon:
    half_lat = SIDE_M / 2 / 111_320.0
    half_lon = half_lat / np.cos(np.radians(CENTRE_LAT))
    return shapely.box(CENTRE_LON - half_lon, CENTRE_LAT - half_lat,
                       CENTRE_LON + half_lon, CENTRE_LAT + half_lat)


def make_grids(rng: np.random.Generator) -> tuple[list[str], list[shapely.Geometry]]:
    """Irregular grids: Voronoi cells of random seeds, clipped to the area."""
    area = study_area()
    minx, miny, maxx, maxy = area.bounds
    seeds = shapely.multipoints(np.column_stack([rng.uniform(minx, maxx, SEEDS),
                                                 rng.uniform(miny, maxy, SEEDS)]))
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=area))
    polys = [p for p in shapely.intersection(cells, area) if not p.is_empty]
    codes = [f"430281001001{i + 1:03d}" for i in range(len(polys))]
    return codes, polys


def random_points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    minx, miny, maxx, maxy = study_area().bounds
    return rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)


def timed(fn, repeat: int = 1):
    """(best seconds, result of the last call)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


# ---------------------------------------------------------------------- baselines
def naive_lookup(polys: list[shapely.Geometry], lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    out = np.full(lon.size, -1, dtype=np.int32)
    for k, p in enumerate(shapely.points(lon, lat)):
        for i, poly in enumerate(polys):
            if poly.contains(p):
                out[k] = i
                break
    return out


def strtree_lookup(tree: shapely.STRtree, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    point_i, grid_i = tree.query(shapely.points(lon, lat), predicate="intersects")
    out = np.full(lon.size, -1, dtype=np.int32)
    out[point_i] = grid_i
    return out


@contextmanager
def postgis_url():
    """The bench database: CITYGRID_BENCH_DATABASE_URL, or a throwaway local cluster."""
    from bench._stack import throwaway_postgres

    with throwaway_postgres("citygrid-bench-", allow_given=True) as stack:
        yield stack.url, stack.where


def postgis_join(url: str, codes: list[str], polys: list[shapely.Geometry],
                 lon: np.ndarray, lat: np.ndarray) -> tuple[float, int]:
    """(best seconds, matched points) for the ST_Intersects join over a GIST index."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute("DROP TABLE IF EXISTS bench_grid")
        conn.execute("CREATE TABLE bench_grid (code text PRIMARY KEY, geom geometry(MultiPolygon, 4326))")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO bench_grid VALUES (%s, ST_Multi(ST_GeomFromWKB(%s, 4326)))",
                [(c, shapely.to_wkb(p)) for c, p in zip(codes, polys)])
        conn.execute("CREATE INDEX ON bench_grid USING gist (geom)")
        conn.execute("ANALYZE bench_grid")
        conn.execute("CREATE TEMP TABLE pts (id int, geom geometry(Point, 4326))")
        rows = io.StringIO("".join(f"{i}\tSRID=4326;POINT({x!r} {y!r})\n"
                                   for i, (x, y) in enumerate(zip(lon.tolist(), lat.tolist()))))
        with conn.cursor() as cur, cur.copy("COPY pts (id, geom) FROM STDIN") as copy:
            copy.write(rows.getvalue())
        conn.execute("ANALYZE pts")
        query = "SELECT count(*) FROM pts JOIN bench_grid g ON ST_Intersects(g.geom, pts.geom)"
        seconds, row = timed(lambda: conn.execute(query).fetchone(), repeat=2)
        conn.execute("DROP TABLE bench_grid")
        return seconds, int(row[0])


# ---------------------------------------------------------------------- report
def rate(points: int, seconds: float) -> float:
    return points / seconds if seconds > 0 else float("inf")


def fmt_rate(r: float | None) -> str:
    return "n/a" if r is None else f"{r:,.0f}"


def main() -> int:
    rng = np.random.default_rng(20240527)
    codes, polys = make_grids(rng)
    print(f"grids: {len(polys)} Voronoi cells over {SIDE_M / 1000:.0f}×{SIDE_M / 1000:.0f} km "
          f"(mean {np.mean([shapely.area(p) for p in polys]) * 111_320.0**2 * np.cos(np.radians(CENTRE_LAT)):,.0f} m²)")

    build_s, index = timed(lambda: GridIndex.build(codes, polys), repeat=1)
    rows, cols = index.raster.shape
    cell_m = index.cell_deg * 111_320.0
    ambiguous = float(np.mean(index.raster == -1))
    print(f"GridIndex build: {build_s:.3f} s, raster {rows}×{cols} cells of {cell_m:.2f} m N–S × "
          f"{cell_m * np.cos(np.radians(CENTRE_LAT)):.2f} m E–W "
          f"({index.raster.nbytes / 2**20:.1f} MB), ambiguous cells {ambiguous:.1%}")

    lon, lat = random_points(rng, LOOKUP_POINTS)
    index.lookup(lon[:10_000], lat[:10_000])                       # warm up
    grid_s, found = timed(lambda: index.lookup(lon, lat), repeat=3)

    tree = shapely.STRtree(polys)
    tree_s, truth = timed(lambda: strtree_lookup(tree, lon, lat), repeat=1)
    mismatches = int(np.count_nonzero(found != truth))

    naive_s, naive = timed(lambda: naive_lookup(polys, lon[:NAIVE_POINTS], lat[:NAIVE_POINTS]))
    mismatches += int(np.count_nonzero(naive != found[:NAIVE_POINTS]))

    results = [("GridIndex.lookup", LOOKUP_POINTS, grid_s),
               ("A naive loop (contains)", NAIVE_POINTS, naive_s),
               ("B STRtree.query", LOOKUP_POINTS, tree_s)]
    pg_rate = None
    try:
        with postgis_url() as (url, where):
            pg_s, matched = postgis_join(url, codes, polys, lon[:POSTGIS_POINTS], lat[:POSTGIS_POINTS])
        expected = int(np.count_nonzero(found[:POSTGIS_POINTS] >= 0))
        if matched != expected:
            mismatches += abs(matched - expected)
        results.append((f"C PostGIS join ({where})", POSTGIS_POINTS, pg_s))
        pg_rate = rate(POSTGIS_POINTS, pg_s)
    except Exception as exc:                       # no PostgreSQL here: report, don't fail
        print(f"PostGIS baseline skipped: {exc}")

    grid_rate = rate(LOOKUP_POINTS, grid_s)
    print()
    print(f"{'method':<38}{'points':>11}{'seconds':>10}{'points/s':>15}{'GridIndex/it':>14}")
    for name, n, seconds in results:
        r = rate(n, seconds)
        print(f"{name:<38}{n:>11,}{seconds:>10.3f}{r:>15,.0f}{grid_rate / r:>13.1f}×")
    print()
    print("(GridIndex: best of 3 runs; STRtree includes making the point geometries; "
          "PostGIS: the join query only, best of 2, points already loaded)")
    print(f"agreement with shapely/PostGIS: {mismatches} mismatching points")
    print(f"geocode: GridIndex {grid_rate:,.0f} points/s (target >= {TARGET:,}) vs "
          f"naive {fmt_rate(rate(NAIVE_POINTS, naive_s))}, STRtree {fmt_rate(rate(LOOKUP_POINTS, tree_s))}, "
          f"PostGIS {fmt_rate(pg_rate)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
