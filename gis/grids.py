"""Queries on the administrative hierarchy and unit grids (单元网格)."""
from __future__ import annotations

import psycopg

from gis.errors import NotFound
from gis.geojson import BBox, area_condition, feature_collection_sql, page_conditions, page_size


def grids_geojson(conn: psycopg.Connection, *, bbox: BBox | None = None, area: str | None = None,
                  after: str | None = None, limit: int | None = None,
                  scope: list[str] | None = None) -> tuple[str, int, str | None]:
    """A page of grids as GeoJSON text, keyset-paged by code; returns (json, count, next cursor)."""
    limit = page_size(limit)
    where, params = page_conditions(geom_column="g.geom", code_column="g.code", key_column="g.code",
                                    bbox=bbox, area=area, after=after, scope=scope, limit=limit)
    inner = (
        "SELECT g.code AS id, g.geom, g.name, g.community_code, c.name AS community_name,"
        " s.code AS street_code, s.name AS street_name, g.area_m2, g.population"
        " FROM grid g JOIN community c ON c.code = g.community_code JOIN street s ON s.code = c.street_code"
        f" WHERE {' AND '.join(where)} ORDER BY g.code LIMIT %(limit)s"
    )
    props = ("json_build_object('code', f.id, 'name', f.name, 'community_code', f.community_code,"
             " 'community_name', f.community_name, 'street_code', f.street_code,"
             " 'street_name', f.street_name, 'area_m2', round(f.area_m2::numeric, 1),"
             " 'population', f.population)")
    row = conn.execute(feature_collection_sql(inner, props), params).fetchone()
    next_cursor = row["last_id"] if row["n"] == limit else None
    return row["fc"], row["n"], next_cursor


def grid_detail(conn: psycopg.Connection, code: str, scope: list[str] | None = None) -> dict:
    scope_sql, params = area_condition("g.code", scope)
    row = conn.execute(
        "SELECT g.code, g.name, g.population, g.area_m2, g.updated_at,"
        " c.code AS community_code, c.name AS community_name,"
        " s.code AS street_code, s.name AS street_name, s.kind AS street_kind,"
        " k.code AS county_code, k.name AS county_name,"
        " (SELECT count(*) FROM part p WHERE p.grid_code = g.code) AS parts,"
        " ST_AsGeoJSON(g.geom, 7)::json AS geometry"
        " FROM grid g JOIN community c ON c.code = g.community_code"
        " JOIN street s ON s.code = c.street_code JOIN county k ON k.code = s.county_code"
        f" WHERE g.code = %(code)s AND {scope_sql}", {"code": code, **params}).fetchone()
    if row is None:
        raise NotFound(f"unit grid {code} does not exist or is outside your area")
    return row


def hierarchy(conn: psycopg.Connection, scope: list[str] | None = None) -> list[dict]:
    """County → streets → communities with grid counts, for pickers and filters."""
    scope_sql, params = area_condition("g.code", scope)
    rows = conn.execute(
        "SELECT k.code AS county_code, k.name AS county_name, s.code AS street_code,"
        " s.name AS street_name, s.kind, c.code AS community_code, c.name AS community_name,"
        " count(g.code) AS grids"
        " FROM county k JOIN street s ON s.county_code = k.code JOIN community c ON c.street_code = s.code"
        f" JOIN grid g ON g.community_code = c.code WHERE {scope_sql}"
        " GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 3, 6", params).fetchall()
    counties: dict[str, dict] = {}
    for r in rows:
        county = counties.setdefault(r["county_code"], {"code": r["county_code"], "name": r["county_name"],
                                                         "streets": {}})
        street = county["streets"].setdefault(r["street_code"], {"code": r["street_code"], "name": r["street_name"],
                                                                  "kind": r["kind"], "communities": []})
        street["communities"].append({"code": r["community_code"], "name": r["community_name"],
                                      "grids": r["grids"]})
    part_scope, part_params = area_condition("p.grid_code", scope)
    part_counts = {r["county"]: r["n"] for r in conn.execute(
        f"SELECT left(p.grid_code, 6) AS county, count(*) AS n FROM part p WHERE {part_scope} GROUP BY 1",
        part_params).fetchall()}
    return [{**c, "parts": part_counts.get(c["code"], 0), "streets": list(c["streets"].values())}
            for c in counties.values()]
