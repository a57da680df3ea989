"""Export grids and parts to GeoJSON or GeoPackage with geopandas."""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import psycopg
import shapely
from psycopg.rows import dict_row

from gis.errors import Invalid

QUERIES = {
    "grids": ("SELECT g.code, g.name, c.name AS community_name, s.name AS street_name, g.population,"
              " g.area_m2, ST_AsBinary(g.geom) AS wkb FROM grid g JOIN community c ON c.code = g.community_code"
              " JOIN street s ON s.code = c.street_code ORDER BY g.code"),
    "parts": ("SELECT p.id, p.class_code, p.name, p.status, p.currency, d1.name AS dept_owner,"
              " d2.name AS dept_rights, d3.name AS dept_maintainer, p.grid_code, p.source,"
              " p.surveyed_on::text AS surveyed_on, ST_AsBinary(p.geom) AS wkb FROM part p"
              " LEFT JOIN department d1 ON d1.id = p.dept_owner_id LEFT JOIN department d2 ON d2.id = p.dept_rights_id"
              " LEFT JOIN department d3 ON d3.id = p.dept_maintainer_id ORDER BY p.id"),
}
DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}


def export_layer(conn: psycopg.Connection, what: str, out: Path) -> int:
    if what not in QUERIES:
        raise Invalid(f"can export {', '.join(QUERIES)}, not {what!r}")
    driver = DRIVERS.get(out.suffix.lower())
    if driver is None:
        raise Invalid(f"{out.name}: use a .geojson or .gpkg file name")
    rows = conn.cursor(row_factory=dict_row).execute(QUERIES[what]).fetchall()
    geoms = shapely.from_wkb([bytes(r.pop("wkb")) for r in rows])
    frame = gpd.GeoDataFrame(rows, geometry=geoms, crs="EPSG:4326")
    frame.to_file(out, driver=driver, layer=what if driver == "GPKG" else None)
    return len(frame)
