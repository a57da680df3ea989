"""The offline base map: roads, buildings and water from our own PostGIS layers."""
from __future__ import annotations

import psycopg

from gis.db import audit
from gis.errors import Invalid
from gis.geojson import BBox, bbox_condition, feature_collection_sql

LAYERS = {
    "roads": ("basemap_road", "json_build_object('name', f.name, 'kind', f.kind, 'width_m', f.width_m)",
              "name, kind, width_m"),
    "buildings": ("basemap_building", "json_build_object('kind', f.kind, 'floors', f.floors)", "kind, floors"),
    "water": ("basemap_water", "json_build_object('name', f.name)", "name"),
}


def layer_geojson(conn: psycopg.Connection, layer: str, bbox: BBox | None = None) -> str:
    if layer not in LAYERS:
        raise Invalid(f"base-map layer {layer!r} is not one of {', '.join(LAYERS)}")
    table, props, columns = LAYERS[layer]
    where, params = bbox_condition("geom", bbox)
    inner = f"SELECT id, geom, {columns} FROM {table} WHERE {where}"
    return conn.execute(feature_collection_sql(inner, props), params).fetchone()["fc"]


def extent(conn: psycopg.Connection) -> list[float] | None:
    """[min_lon, min_lat, max_lon, max_lat] of the jurisdiction's grids, for the map's first view."""
    row = conn.execute("SELECT ST_XMin(e) x0, ST_YMin(e) y0, ST_XMax(e) x1, ST_YMax(e) y1"
                       " FROM (SELECT ST_Extent(geom) e FROM grid) q").fetchone()
    return None if row["x0"] is None else [row["x0"], row["y0"], row["x1"], row["y1"]]


def replace_layers(conn: psycopg.Connection, roads, buildings, water, actor: str = "system") -> dict[str, int]:
    """Replace the base-map layers with the given GeoDataFrames, in one transaction with an
    audit row."""
    layers = (
        ("basemap_road", ("name", "kind", "width_m"), roads, "ST_GeomFromWKB(decode(%s, 'hex'), 4326)"),
        ("basemap_building", ("kind", "floors"), buildings, "ST_GeomFromWKB(decode(%s, 'hex'), 4326)"),
        ("basemap_water", ("name",), water, "ST_Multi(ST_GeomFromWKB(decode(%s, 'hex'), 4326))"),
    )
    counts = {}
    with conn.transaction():
        for table, columns, frame, geom_sql in layers:
            conn.execute(f"DELETE FROM {table}")
            frame = frame.to_crs(4326)
            rows = [(*(row[c] for c in columns), geom.wkb_hex)
                    for row, geom in zip(frame[list(columns)].to_dict("records"), frame.geometry)]
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}, geom)"
                                f" VALUES ({', '.join(['%s'] * len(columns))}, {geom_sql})", rows)
            counts[table] = len(rows)
        audit(conn, actor=actor, action="basemap.replace", entity="basemap", detail=counts)
    return counts
