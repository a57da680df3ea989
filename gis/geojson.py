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


def area_condition(column: str, prefixes: list[str] | None) -> tuple[str, dict]:
    """SQL limiting `column` (an admin code) to a user's area codes; None means everywhere."""
    if prefixes is None:
        return "TRUE", {}
    return f"{column} LIKE ANY(%(area_prefixes)s)", {"area_prefixes": [p + "%" for p in prefixes]}


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
