"""Cameras (视频监控): the registry with view sectors, zones, events with their snapshots,
"cameras that can see this point", and street coverage with blind spots (监控盲区).

Every staff role reads cameras, events and coverage (camera.read); admins register cameras
and edit zones (camera.manage). Snapshots are also fetched by <img> tags, which cannot send
headers, so they take the token as ?token= too (as /api/live does)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from command.auth import User, require
from command.deps import db
from command.routes.live_routes import live_user
from gis.errors import Forbidden, Invalid, NotFound
from gis.roles import ROLES
from video import cameras, coverage

router = APIRouter(tags=["cameras"])
Reader = Annotated[User, Depends(require("camera.read"))]
Manager = Annotated[User, Depends(require("camera.manage"))]
CameraId = Annotated[int, Path(ge=1, le=2**62)]
EventId = Annotated[int, Path(ge=1, le=2**62)]
AreaQuery = Annotated[str | None, Query(pattern=r"^[0-9]{6}([0-9]{3}){0,3}$",
                                        description="county, street, community or grid code")]
GEOJSON = "application/geo+json"


def _snapshot_reader(who: Annotated[tuple[User, float], Depends(live_user)]) -> User:
    user, _ = who
    if not user.can("camera.read"):
        raise Forbidden(f"the role {ROLES[user.role]} ({user.role}) may not see camera events (camera.read)")
    return user


class CameraIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["联星路与建设路口东"])
    url: str = Field(min_length=1, max_length=2000, description="main stream: rtsp://, http(s):// MJPEG or a file")
    sub_url: str | None = Field(default=None, max_length=2000, description="low-resolution analysis stream (default: url)")
    lon: float = Field(description="WGS84 longitude")
    lat: float = Field(description="WGS84 latitude")
    bearing_deg: float = Field(description="where it looks, degrees clockwise from north, 0…360")
    fov_deg: float = Field(description="horizontal field of view, 1…360")
    range_m: float = Field(description="how far it usefully sees, 1…1000 m")
    height_m: float | None = Field(default=None, description="mounting height, m")
    group: str | None = Field(default=None, max_length=100, description="video-wall group")
    dept: str | None = Field(default=None, max_length=100, description="owning department's name")
    zones: Any = Field(default_factory=list, description="[{id, purpose, points: [[x, y], …], event_class?}],"
                                                         " x and y as shares of the image, 0…1")
    analysis_fps: float = Field(default=5.0, description="frames analysed per second")


class ZonesIn(BaseModel):
    zones: Any = Field(description="the camera's zones, replacing the ones it has")


# ---------------------------------------------------------------------------- the registry
@router.get("/api/cameras")
def list_cameras(user: Reader, conn=Depends(db), group: str | None = Query(default=None, max_length=100),
                 area: AreaQuery = None, limit: int = Query(default=1000, ge=1, le=5000)):
    """Cameras in id order, each with its view sector as a GeoJSON polygon (`sector`) and its
    status (online, last frame, measured fps). Stream passwords show as ***."""
    return cameras.list_cameras(conn, group=group, area=area, limit=limit)


@router.get("/api/cameras.geojson", response_class=JSONResponse, responses={200: {"content": {GEOJSON: {}}}})
def cameras_geojson(user: Reader, conn=Depends(db), group: str | None = Query(default=None, max_length=100),
                    area: AreaQuery = None):
    """The view sectors as a FeatureCollection for the map (the camera's point in properties)."""
    features = [{"type": "Feature", "id": c["id"], "geometry": c["sector"],
                 "properties": {k: c[k] for k in ("id", "name", "group", "lon", "lat", "bearing_deg", "fov_deg",
                                                  "range_m", "grid_code", "active", "online", "status_reason")}}
                for c in cameras.list_cameras(conn, group=group, area=area, limit=5000)]
    return JSONResponse({"type": "FeatureCollection", "features": features}, media_type=GEOJSON)


@router.post("/api/cameras", status_code=201)
def create_camera(new: CameraIn, user: Manager, conn=Depends(db)):
    """Register a camera (camera.manage); its grid and view sector are derived."""
    return cameras.add_camera(conn, cameras.NewCamera(
        name=new.name, url=new.url, sub_url=new.sub_url, lon=new.lon, lat=new.lat, bearing_deg=new.bearing_deg,
        fov_deg=new.fov_deg, range_m=new.range_m, height_m=new.height_m, group=new.group, dept=new.dept,
        zones=new.zones, analysis_fps=new.analysis_fps), actor=user.username, actor_id=user.id)


@router.get("/api/cameras/seeing")
def cameras_seeing(user: Reader, conn=Depends(db), lon: float = Query(ge=-180, le=180),
                   lat: float = Query(ge=-90, le=90), limit: int = Query(default=10, ge=1, le=100)):
    """Cameras that can see this point (能看到此处的摄像机): within range and inside the view
    sector, nearest first, with the distance and the bearing from the camera to the point."""
    return cameras.cameras_seeing(conn, lon, lat, limit)


@router.get("/api/cameras/{camera_id}")
def get_camera(camera_id: CameraId, user: Reader, conn=Depends(db)):
    return cameras.get_camera(conn, camera_id)


@router.put("/api/cameras/{camera_id}/zones")
def put_zones(camera_id: CameraId, body: ZonesIn, user: Manager, conn=Depends(db)):
    """Replace the camera's zones; a malformed zone is refused whole, naming the zone."""
    return cameras.update_zones(conn, camera_id, body.zones, actor=user.username, actor_id=user.id)


# ---------------------------------------------------------------------------- events
@router.get("/api/cameras/{camera_id}/events")
def camera_events(camera_id: CameraId, user: Reader, conn=Depends(db),
                  kind: Literal["motion", "dwell"] | None = None,
                  since: dt.datetime | None = Query(default=None, description="ISO time with a zone"),
                  limit: int = Query(default=100, ge=1, le=1000)):
    """The camera's events, newest first, with links to their snapshots."""
    if since is not None and since.tzinfo is None:
        raise Invalid("since needs a time zone, e.g. 2026-11-22T08:00:00+08:00")
    cameras.get_camera(conn, camera_id)                       # 404 for a camera that does not exist
    rows = conn.execute(
        "SELECT e.id, e.local_id, e.kind, e.zone_id, e.event_class, ec.name AS event_class_name, e.started_at,"
        " e.updated_at, e.ended_at, e.boxes, e.score, e.status, e.case_id, e.grid_code,"
        " ST_X(e.location) AS lon, ST_Y(e.location) AS lat,"
        " e.snapshot IS NOT NULL AS has_snapshot, e.before_snapshot IS NOT NULL AS has_before"
        " FROM camera_event e LEFT JOIN event_class ec ON ec.code = e.event_class"
        " WHERE e.camera_id = %(camera)s AND (%(kind)s::text IS NULL OR e.kind = %(kind)s)"
        " AND (%(since)s::timestamptz IS NULL OR e.started_at >= %(since)s)"
        " ORDER BY e.started_at DESC, e.id DESC LIMIT %(limit)s",
        {"camera": camera_id, "kind": kind, "since": since, "limit": limit}).fetchall()
    base = f"/api/cameras/{camera_id}/events"
    for row in rows:
        row["snapshot_url"] = f"{base}/{row['id']}/snapshot.jpg" if row.pop("has_snapshot") else None
        row["before_url"] = f"{base}/{row['id']}/before.jpg" if row.pop("has_before") else None
    return rows


def _event_file(request: Request, conn, camera_id: int, event_id: int, column: str) -> FileResponse:
    row = conn.execute(f"SELECT {column} AS path FROM camera_event WHERE id = %s AND camera_id = %s",
                       (event_id, camera_id)).fetchone()
    if row is None:
        raise NotFound(f"camera {camera_id} has no event {event_id}")
    what = "snapshot" if column == "snapshot" else "before-snapshot"
    if not row["path"]:
        raise NotFound(f"event {event_id} has no {what}")
    root = FilePath(request.app.state.settings.data_dir).resolve()
    path = (root / row["path"]).resolve()
    if not path.is_relative_to(root) or not path.is_file():      # a path leading out of data_dir is refused too
        raise NotFound(f"the {what} of event {event_id} is not on disk")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


@router.get("/api/cameras/{camera_id}/events/{event_id}/snapshot.jpg", response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}}}})
def event_snapshot(request: Request, camera_id: CameraId, event_id: EventId,
                   user: Annotated[User, Depends(_snapshot_reader)], conn=Depends(db)):
    """The event's best picture, its boxes drawn (evidence on the case)."""
    return _event_file(request, conn, camera_id, event_id, "snapshot")


@router.get("/api/cameras/{camera_id}/events/{event_id}/before.jpg", response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}}}})
def event_before(request: Request, camera_id: CameraId, event_id: EventId,
                 user: Annotated[User, Depends(_snapshot_reader)], conn=Depends(db)):
    """A dwell event's picture from before the object came."""
    return _event_file(request, conn, camera_id, event_id, "before_snapshot")


# ---------------------------------------------------------------------------- coverage
@router.get("/api/coverage", responses={200: {"content": {GEOJSON: {}}}})
def grid_coverage(user: Reader, conn=Depends(db),
                  threshold: float = Query(default=coverage.SHARE_THRESHOLD, ge=0, le=1,
                                           description="a grid seeing less of its street than this is blind"),
                  shadows: bool = Query(default=True, description="building shadows cut the view sectors")):
    """Per unit grid: street area, the part of it the cameras see and the share, as a GeoJSON
    FeatureCollection of the grid polygons (`blind` marks the grids below the threshold)."""
    rows = coverage.coverage(conn, shadows=shadows)
    return JSONResponse(coverage.coverage_geojson(conn, rows, threshold), media_type=GEOJSON)


@router.get("/api/coverage/blind")
def blind_grids(user: Reader, conn=Depends(db),
                threshold: float = Query(default=coverage.SHARE_THRESHOLD, ge=0, le=1)):
    """The blind-spot list (盲区网格): grids below the threshold, the most unseen street first."""
    return [r.as_dict() for r in coverage.uncovered(coverage.coverage(conn), threshold)]


@router.get("/api/coverage/suggestions", responses={200: {"content": {GEOJSON: {}}}})
def suggestions(user: Reader, conn=Depends(db), k: int = Query(default=5, ge=1, le=50),
                range_m: float = Query(default=60.0, ge=10, le=300, description="the new cameras' range"),
                fov_deg: float = Query(default=90.0, ge=10, le=360, description="their field of view")):
    """Where new cameras would see the most uncovered street (greedy), as GeoJSON points with
    the bearing and the gain (m²) of each, in the order picked."""
    picks = coverage.suggest_positions(conn, k, range_m=range_m, fov_deg=fov_deg)
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [s.lon, s.lat]},
                 "properties": {"rank": i, **s.as_dict()}} for i, s in enumerate(picks, 1)]
    return JSONResponse({"type": "FeatureCollection", "features": features}, media_type=GEOJSON)
