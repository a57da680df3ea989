"""Import benchmark: 10,000 unit grids and 50,000 parts, read + validate + write, each
printed beside the raw COPY of the same rows into an unindexed table (same run, same
machine), so the cost of validation and upserting is visible.

    .venv/bin/python bench/bench_import.py

Starts a throwaway PostGIS cluster in a temp folder and stops it at the end.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import throwaway_postgres  # noqa: E402
from gis import catalog, migrate  # noqa: E402
from gis.db import connect  # noqa: E402
from gis.grid_import import import_grids  # noqa: E402
from gis.importing import copy_rows, ewkb_hex, read_layer  # noqa: E402
from gis.part_import import import_parts  # noqa: E402

COUNTY = "430223"
ORIGIN = (113.30, 27.00)
SIDE = 100                  # 100 × 100 grids
CELL = 0.001                # degrees, about 100 m
PARTS = 50_000
TARGET_S = 15.0
DEPARTMENTS = ["县住建局", "县城管局", "县交通运输局", "县自然资源局", "县水利局",
               "县供电公司", "县自来水公司", "县燃气公司", "县园林绿化中心", "县环卫所"]


def make_grids(rng: np.random.Generator) -> gpd.GeoDataFrame:
    """A lattice of quadrilaterals whose shared inner vertices are jittered, so edges are
    shared exactly but no two grids are the same shape. Codes: 16 streets of 25
    communities of 25 grids."""
    xs = ORIGIN[0] + np.arange(SIDE + 1) * CELL
    ys = ORIGIN[1] + np.arange(SIDE + 1) * CELL
    x, y = np.meshgrid(xs, ys)
    x[1:-1, 1:-1] += rng.uniform(-0.25, 0.25, (SIDE - 1, SIDE - 1)) * CELL
    y[1:-1, 1:-1] += rng.uniform(-0.25, 0.25, (SIDE - 1, SIDE - 1)) * CELL
    polygons, codes, names = [], [], []
    for i in range(SIDE):
        for j in range(SIDE):
            ring = [(x[i, j], y[i, j]), (x[i, j + 1], y[i, j + 1]),
                    (x[i + 1, j + 1], y[i + 1, j + 1]), (x[i + 1, j], y[i + 1, j])]
            polygons.append(shapely.Polygon(ring))
            street = 1 + (i // 25) * 4 + j // 25
            community = 1 + ((i % 25) // 5) * 5 + (j % 25) // 5
            sequence = 1 + (i % 5) * 5 + j % 5
            codes.append(f"{COUNTY}{street:03d}{community:03d}{sequence:03d}")
            names.append(f"第{street}街道{community}社区{sequence}号网格")
    population = rng.integers(200, 3000, len(codes))
    return gpd.GeoDataFrame({"code": codes, "name": names, "population": population},
                            geometry=polygons, crs=4326)


def make_parts(rng: np.random.Generator, classes: list[str]) -> gpd.GeoDataFrame:
    lon = ORIGIN[0] + rng.uniform(0.0005, SIDE * CELL - 0.0005, PARTS)
    lat = ORIGIN[1] + rng.uniform(0.0005, SIDE * CELL - 0.0005, PARTS)
    return gpd.GeoDataFrame({
        "class_code": rng.choice(classes, PARTS),
        "status": rng.choice(["完好", "完好", "完好", "破损"], PARTS),
        "dept_owner": rng.choice(DEPARTMENTS, PARTS),
        "dept_maintainer": rng.choice(DEPARTMENTS, PARTS),
        "surveyed_on": "2025-06-30",
    }, geometry=shapely.points(lon, lat), crs=4326)


def raw_copy_seconds(conn, table: str, geometry_type: str, keys: list[str], geoms: np.ndarray) -> float:
    """The floor: COPY the same number of rows and geometries into an unindexed table."""
    with conn.transaction():
        conn.execute(f"CREATE TABLE {table} (key text, geom geometry({geometry_type}, 4326))")
        start = time.perf_counter()
        copy_rows(conn, table, ("key", "geom"), zip(keys, ewkb_hex(geoms)))
        return time.perf_counter() - start


def timed(label: str, count: int, read_s: float, total_s: float, baseline: float) -> None:
    print(f"{label}: {count} in {total_s:.2f} s (target <= {TARGET_S:.0f} s; read {read_s:.2f} s, "
          f"validate + write {total_s - read_s:.2f} s); baseline raw COPY {baseline:.2f} s "
          f"({total_s / baseline:.0f}x)", flush=True)


def read_and_import(run, path: Path, conn) -> tuple[object, float, float]:
    """(report, seconds to read the file, seconds in all)."""
    start = time.perf_counter()
    frame = read_layer(path)
    read_s = time.perf_counter() - start
    report = run(conn, frame, source=str(path), actor="bench")
    return report, read_s, time.perf_counter() - start


def main() -> None:
    rng = np.random.default_rng(2026)
    with throwaway_postgres("citygrid-bench-import-") as stack:
        home = stack.home
        with connect(stack.url) as conn:
            migrate.migrate(conn)
            with conn.transaction():
                catalog.load_catalog(conn, catalog.read_catalog())
            classes = [r["code"] for r in conn.execute("SELECT code FROM part_class ORDER BY code")]
            conn.commit()

            grids = make_grids(rng)
            grid_file = home / "grids.gpkg"
            grids.to_file(grid_file, layer="grids", driver="GPKG")
            parts = make_parts(rng, classes)
            part_file = home / "parts.gpkg"
            parts.to_file(part_file, layer="parts", driver="GPKG")

            multi = shapely.multipolygons(np.asarray(grids.geometry.values, dtype=object)[:, None])
            grid_baseline = raw_copy_seconds(conn, "raw_grid", "MultiPolygon", list(grids["code"]), multi)
            part_baseline = raw_copy_seconds(conn, "raw_part", "Point", [str(i) for i in range(PARTS)],
                                             np.asarray(parts.geometry.values, dtype=object))

            report, read_s, total_s = read_and_import(import_grids, grid_file, conn)
            assert report.imported == len(grids), report.to_text()[:2000]
            timed("import grids", report.imported, read_s, total_s, grid_baseline)

            report, read_s, total_s = read_and_import(import_grids, grid_file, conn)
            timed("re-import grids (all updates)", report.imported, read_s, total_s, grid_baseline)

            report, read_s, total_s = read_and_import(import_parts, part_file, conn)
            assert report.imported == PARTS, report.to_text()[:2000]
            timed("import parts", report.imported, read_s, total_s, part_baseline)


if __name__ == "__main__":
    main()
