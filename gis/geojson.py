"""GeoJSON straight from PostGIS: the database builds the JSON text, Python passes it on."""
from __future__ import annotations

from dataclasses import dataclass

from gis.errors import Invalid

MAX_PAGE = 5000
COORD_DIGITS = 7   # ~1 cm at this latitude


@dataclass(frozen=True)
class BBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    @classmethod
    def parse(cls, text: str | None) -> "BBox | None":
        if not text:
            return None
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise Invalid(f"bbox {text!r} must be four numbers: min_lon,min_lat,max_lon,max_lat") from None
        if len(values) != 4:
            raise Invalid(f"bbox {text!r} must be four numbers: min_lon,min_lat,max_lon,max_lat")
        box = cls(*values)
        if not (-180 <= box.min_lon < box.max_lon <= 180 and -90 <= box.min_lat < box.max_lat <= 90):
            raise Invalid(f"bbox {text!r} is not a box in longitude/latitude (min before max, WGS84 range)")
        return box


def page_size(limit: int | None, default: int = 1000) -> int:
    if limit is None:
        return default
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE}")
    return limit


def bbox_condition(column: str, bbox: BBox | None) -> tuple[str, dict]:
    """SQL keeping rows whose `column` geometry touches the box (index-assisted &&)."""
    if bbox is None:
        return "TRUE", {}
    return (f"{column} && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)",
            {"x0": bbox.min_lon, "y0": bbox.min_lat, "x1": bbox.max_lon, "y1": bbox.max_lat})


def area_condition(column: str, prefixes: list[str] | None) -> tuple[str, dict]:
    """SQL limiting `column` (an admin code) to a user's area codes; None means everywhere."""
    if prefixes is None:
        return "TRUE", {}
    return f"{column} LIKE ANY(%(area_prefixes)s)", {"area_prefixes": [p + "%" for p in prefixes]}


def page_conditions(*, geom_column: str, code_column: str, key_column: str, bbox: BBox | None,
                    area: str | None, after: str | None, scope: list[str] | None,
                    limit: int) -> tuple[list[str], dict]:
    """The filters every paged map layer shares: box, area code prefix, keyset cursor, user scope."""
    box_sql, params = bbox_condition(geom_column, bbox)
    scope_sql, scope_params = area_condition(code_column, scope)
    where = [box_sql, scope_sql]
    params.update(scope_params, limit=limit)
    if area:
        where.append(f"{code_column} LIKE %(area)s")
        params["area"] = area + "%"
    if after:
        where.append(f"{key_column} > %(after)s")
        params["after"] = after
    return where, params


def feature_collection_sql(inner: str, properties: str, geom: str = "geom") -> str:
    """Wrap a SELECT (aliased `f`) into one GeoJSON FeatureCollection text."""
    return (
        "SELECT json_build_object('type', 'FeatureCollection', 'features', "
        f"coalesce(json_agg(json_build_object('type', 'Feature', 'id', f.id, "
        f"'geometry', ST_AsGeoJSON(f.{geom}, {COORD_DIGITS})::json, "
        f"'properties', {properties}) ORDER BY f.id), '[]'::json))::text AS fc, "
        "count(*) AS n, max(f.id) AS last_id "
        f"FROM ({inner}) AS f"
    )
