"""Grids, parts, base map, geocoding and the catalog: the map's data."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from command.auth import User, require
from command.deps import db
from gis import basemap, geocode as geocoding, grids, parts
from gis.geojson import BBox

router = APIRouter(tags=["map"])
Reader = Annotated[User, Depends(require("map.read"))]
GEOJSON = "application/geo+json"

BBoxQuery = Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat (WGS84)",
                                        examples=["113.33,26.99,113.36,27.01"])]
AreaQuery = Annotated[str | None, Query(pattern=r"^[0-9]{6}([0-9]{3}){0,3}$",
                                        description="county, street, community or grid code")]


def _paged(request: Request, body: str, count: int, next_after: str | None) -> Response:
    headers = {"X-Count": str(count)}
    if next_after:
        headers["X-Next-After"] = next_after
        headers["Link"] = f'<{request.url.include_query_params(after=next_after)}>; rel="next"'
    return Response(body, media_type=GEOJSON, headers=headers)


@router.get("/api/grids", response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
def list_grids(request: Request, user: Reader, conn=Depends(db), bbox: BBoxQuery = None, area: AreaQuery = None,
               after: Annotated[str | None, Query(pattern=r"^[0-9]{15}$")] = None, limit: Annotated[int | None, Query(ge=1, le=5000)] = None):
    """Unit grids (单元网格) as a GeoJSON FeatureCollection, keyset-paged by code."""
    body, n, nxt = grids.grids_geojson(conn, bbox=BBox.parse(bbox), area=area, after=after, limit=limit,
                                       scope=user.scope)
    return _paged(request, body, n, nxt)


@router.get("/api/grids/{code}")
def get_grid(code: Annotated[str, Path(pattern=r"^[0-9]{15}$")], user: Reader, conn=Depends(db)):
    return grids.grid_detail(conn, code, user.scope)


@router.get("/api/areas")
def area_tree(user: Reader, conn=Depends(db)):
    """The county → street/town → community hierarchy with grid counts."""
    return grids.hierarchy(conn, user.scope)


@router.get("/api/parts", response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
def list_parts(request: Request, user: Reader, conn=Depends(db), bbox: BBoxQuery = None, area: AreaQuery = None,
               class_code: Annotated[str | None, Query(pattern=r"^[0-9]{4}$")] = None,
               big_code: Annotated[str | None, Query(pattern=r"^[0-9]{2}$")] = None,
               status: str | None = None, after: Annotated[str | None, Query(pattern=r"^[0-9]{16}$")] = None,
               limit: Annotated[int | None, Query(ge=1, le=5000)] = None):
    """Parts (部件) as GeoJSON points, filtered and keyset-paged by id."""
    body, n, nxt = parts.parts_geojson(conn, bbox=BBox.parse(bbox), class_code=class_code, big_code=big_code,
                                       status=status, area=area, after=after, limit=limit, scope=user.scope)
    return _paged(request, body, n, nxt)


@router.get("/api/parts/{part_id}")
def get_part(part_id: Annotated[str, Path(pattern=r"^[0-9]{16}$")], user: Reader, conn=Depends(db)):
    return parts.part_detail(conn, part_id, user.scope)


class StatusChange(BaseModel):
    status: str = Field(description="完好 / 破损 / 丢失 / 占用")
    note: str | None = Field(default=None, max_length=500)


@router.patch("/api/parts/{part_id}/status")
def change_part_status(part_id: Annotated[str, Path(pattern=r"^[0-9]{16}$")], change: StatusChange,
                       user: Annotated[User, Depends(require("part.status"))], conn=Depends(db)):
    return parts.update_part_status(conn, part_id, change.status, note=change.note, actor=user.username,
                                    actor_id=user.id, scope=user.scope, dept_id=user.dept_limit)


@router.get("/api/geocode")
def geocode(user: Reader, conn=Depends(db), lon: float = Query(ge=-180, le=180), lat: float = Query(ge=-90, le=90),
            nearest: Annotated[int, Query(ge=0, le=50)] = 5):
    """A point → its unit grid, community, street/town and county, and the nearest parts."""
    return geocoding.geocode(conn, lon, lat, nearest=nearest, scope=user.scope)


@router.get("/api/catalog")
def catalog(user: Reader, conn=Depends(db)):
    """Part and event classes (部件/事件) with their big classes and time limits."""
    def grouped(kind: str, extra: str) -> list[dict]:
        rows = conn.execute(
            f"SELECT b.code AS big_code, b.name AS big_name, c.code, c.name, c.std{extra}"
            f" FROM {kind}_big_class b LEFT JOIN {kind}_class c ON c.big_code = b.code ORDER BY b.code, c.code"
        ).fetchall()
        out: dict[str, dict] = {}
        for r in rows:
            big = out.setdefault(r["big_code"], {"code": r["big_code"], "name": r["big_name"], "classes": []})
            if r["code"]:
                big["classes"].append({k: v for k, v in r.items() if k not in ("big_code", "big_name")})
        return list(out.values())

    return {"parts": grouped("part", ""), "events": grouped("event", ", c.limit_kind, c.limit_value::float"),
            "part_statuses": list(parts.PART_STATUSES)}


@router.get("/api/departments")
def departments(user: Reader, conn=Depends(db)):
    return conn.execute("SELECT id, name, phone FROM department ORDER BY name").fetchall()


@router.get("/api/basemap/{layer}", response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
def basemap_layer(layer: str, user: Reader, conn=Depends(db), bbox: BBoxQuery = None):
    """Offline base-map layers (roads, buildings, water) drawn from our own PostGIS tables."""
    return Response(basemap.layer_geojson(conn, layer, BBox.parse(bbox)), media_type=GEOJSON,
                    headers={"Cache-Control": "private, max-age=300"})


@router.get("/api/extent")
def extent(user: Reader, conn=Depends(db)):
    return {"bbox": basemap.extent(conn)}
