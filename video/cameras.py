"""The camera registry (摄像机台账): a camera's streams, place, view sector, zones and owner.

A camera stands inside a unit grid of the city (its grid is derived; a place outside every
grid is refused, as for IoT devices). What it sees on the ground is its view sector (可视
扇区): the circular sector from its point, bearing ± fov/2 (clockwise from north), out to its
range; 360° is a full circle. The sector is computed here, never supplied: its arc points are
geodesic (pyproj.Geod.fwd), one every 2.5° at most, so its area is within 0.1 % of
fov/360·π·r². Stream URLs may carry a password; everything this module returns shows it as ***."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import psycopg
import shapely
from pyproj import Geod

from gis.db import audit, department_id
from gis.errors import Invalid, NotFound
from video.zones import parse_zones

URL_SCHEMES = ("rtsp", "rtsps", "http", "https", "file")
ARC_STEP_DEG = 2.5          # one arc vertex per 2.5° at most (chord loss ≤ 0.05 % of the area)
MAX_RANGE_M = 1000.0
_GEOD = Geod(ellps="WGS84")

# What the API and CLI show of a camera (url/sub_url redacted afterwards).
CAMERA_COLUMNS = """
  c.id, c.name, c.url, c.sub_url, ST_X(c.location) AS lon, ST_Y(c.location) AS lat, c.grid_code,
  c.bearing_deg, c.fov_deg, c.range_m, c.height_m, c.group_name AS "group", c.dept_id, d.name AS dept,
  c.zones, c.analysis_fps, c.active, c.online, c.status_reason, c.status_at, c.last_frame_at,
  c.measured_fps, c.created_at, c.updated_at, ST_AsGeoJSON(c.sector, 7)::json AS sector"""
_FROM = "FROM camera c LEFT JOIN department d ON d.id = c.dept_id"


@dataclass
class NewCamera:
    name: str
    url: str
    lon: float
    lat: float
    bearing_deg: float
    fov_deg: float
    range_m: float
    sub_url: str | None = None
    height_m: float | None = None
    group: str | None = None
    dept: str | None = None
    zones: Any = field(default_factory=list)      # JSON as given: checked by video.zones.parse_zones
    analysis_fps: float = 5.0


# ---------------------------------------------------------------------------- checks
def redact_url(url: str | None) -> str | None:
    """The URL with its password (camera URLs often carry one) shown as ***."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()
    return url


def check_url(url: Any, what: str = "url") -> str:
    """rtsp://, rtsps://, http(s):// (MJPEG), file:// or a file path (tests, demo)."""
    if not isinstance(url, str) or not url.strip():
        raise Invalid(f"{what}: give the stream address, e.g. rtsp://host:554/stream or http://host/video.mjpg")
    if len(url) > 2000 or any(ord(ch) < 32 or ch.isspace() for ch in url):
        raise Invalid(f"{what}: an address has no spaces or control characters and at most 2,000 characters")
    try:
        parts = urlsplit(url)
        parts.port                                  # noqa: B018 — raises on a port that is not a number
    except ValueError as e:
        raise Invalid(f"{what}: {url!r} is not a usable address ({e})") from None
    scheme = parts.scheme.lower()
    if scheme == "":
        return url                                  # a file path
    if scheme not in URL_SCHEMES:
        raise Invalid(f"{what}: {scheme}:// is not a stream this system reads; use rtsp://, http(s):// (MJPEG),"
                      " file:// or a file path")
    if scheme != "file" and not parts.hostname:
        raise Invalid(f"{what}: {redact_url(url)!r} names no host")
    if scheme == "file" and not parts.path:
        raise Invalid(f"{what}: {url!r} names no file")
    return url


def _number(value: Any, what: str, low: float, high: float, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid(f"{what}: a number is needed ({hint}), got {value!r}")
    if not low <= value <= high:
        raise Invalid(f"{what}: {value:g} is out of range; {hint}")
    return float(value)


def check_shape(cam: NewCamera) -> None:
    """What can be checked without the database; Invalid names the field."""
    if not isinstance(cam.name, str) or not 1 <= len(cam.name.strip()) <= 100:
        raise Invalid("name: 1-100 characters, e.g. 联星路与建设路口东")
    check_url(cam.url, "url")
    if cam.sub_url is not None:
        check_url(cam.sub_url, "sub_url")
    _number(cam.lon, "lon", -180, 180, "WGS84 longitude, -180…180 (longitude first, then latitude)")
    _number(cam.lat, "lat", -90, 90, "WGS84 latitude, -90…90")
    _number(cam.bearing_deg, "bearing", 0, 360, "degrees clockwise from north, 0…360")
    _number(cam.fov_deg, "fov", 1, 360, "the horizontal field of view in degrees, 1…360 (360: all round)")
    _number(cam.range_m, "range", 1, MAX_RANGE_M, f"metres the camera usefully sees, 1…{MAX_RANGE_M:g}")
    if cam.height_m is not None:
        _number(cam.height_m, "height", 0, 300, "metres above the ground, 0…300")
    _number(cam.analysis_fps, "analysis_fps", 0.1, 30, "frames analysed per second, 0.1…30 (default 5)")
    if cam.group is not None and (not isinstance(cam.group, str) or not 1 <= len(cam.group.strip()) <= 100):
        raise Invalid("group: the video-wall group's name, 1-100 characters")


def check_zones(conn: psycopg.Connection, raw: Any) -> list[dict]:
    """Zones parsed (video.zones) and their event classes checked against the catalog."""
    zones = parse_zones(raw)
    classes = sorted({z.event_class for z in zones if z.event_class})
    if classes:
        known = {r["code"] for r in conn.execute("SELECT code FROM event_class WHERE code = ANY(%s)", (classes,))}
        for z in zones:
            if z.event_class and z.event_class not in known:
                raise Invalid(f"zone {z.id!r}: event class {z.event_class} is not in the catalog"
                              " (GET /api/catalog lists the event classes)")
    return [z.as_json() for z in zones]


# ---------------------------------------------------------------------------- the sector
def sector_polygon(lon: float, lat: float, bearing_deg: float, fov_deg: float, range_m: float) -> shapely.Polygon:
    """The view sector in lon/lat: apex at the camera, a geodesic arc of radius range_m from
    bearing - fov/2 to bearing + fov/2 (clockwise from north); a circle when fov is 360."""
    full = fov_deg >= 360
    steps = max(2, math.ceil(fov_deg / ARC_STEP_DEG))
    if full:
        azimuths = np.linspace(0.0, 360.0, steps, endpoint=False)
    else:
        azimuths = bearing_deg - fov_deg / 2 + np.linspace(0.0, fov_deg, steps + 1)
    n = len(azimuths)
    xs, ys, _ = _GEOD.fwd(np.full(n, lon), np.full(n, lat), azimuths, np.full(n, float(range_m)))
    ring = list(zip(xs.tolist(), ys.tolist()))
    return shapely.Polygon(ring if full else [(lon, lat), *ring])


# ---------------------------------------------------------------------------- writes
def add_camera(conn: psycopg.Connection, cam: NewCamera, *, actor: str, actor_id: int | None = None) -> dict:
    """Register a camera in one transaction with its audit row; returns it as get_camera does."""
    check_shape(cam)
    with conn.transaction():
        zones = check_zones(conn, cam.zones)
        grid = conn.execute("SELECT code FROM grid WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))"
                            " ORDER BY code LIMIT 1", (cam.lon, cam.lat)).fetchone()
        if grid is None:
            raise Invalid(f"location: ({cam.lon:.6f}, {cam.lat:.6f}) lies outside every unit grid of the city"
                          " (longitude first, then latitude)")
        dept_id = department_id(conn, cam.dept)
        sector = sector_polygon(cam.lon, cam.lat, cam.bearing_deg, cam.fov_deg, cam.range_m)
        camera_id = conn.execute(
            "INSERT INTO camera (name, url, sub_url, location, grid_code, bearing_deg, fov_deg, range_m, height_m,"
            " group_name, dept_id, sector, zones, analysis_fps)"
            " VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s, %s, %s, %s, %s, %s, %s,"
            " ST_GeomFromText(%s, 4326), %s, %s) RETURNING id",
            (cam.name.strip(), cam.url, cam.sub_url, cam.lon, cam.lat, grid["code"], cam.bearing_deg, cam.fov_deg,
             cam.range_m, cam.height_m, cam.group.strip() if cam.group else None, dept_id, sector.wkt,
             json.dumps(zones, ensure_ascii=False), cam.analysis_fps)).fetchone()["id"]
        audit(conn, actor=actor, actor_id=actor_id, action="camera.add", entity="camera", entity_id=str(camera_id),
              detail={"name": cam.name.strip(), "url": redact_url(cam.url), "sub_url": redact_url(cam.sub_url),
                      "lon": cam.lon, "lat": cam.lat, "grid": grid["code"], "bearing": cam.bearing_deg,
                      "fov": cam.fov_deg, "range_m": cam.range_m, "group": cam.group, "dept": cam.dept,
                      "zones": [z["id"] for z in zones]})
    return get_camera(conn, camera_id)


def update_zones(conn: psycopg.Connection, camera_id: int, zones: Any, *, actor: str,
                 actor_id: int | None = None) -> dict:
    """Replace a camera's zones (checked); the worker holding it takes them at its next reload."""
    with conn.transaction():
        row = conn.execute("SELECT zones FROM camera WHERE id = %s FOR UPDATE", (camera_id,)).fetchone()
        if row is None:
            raise NotFound(f"camera {camera_id} does not exist")
        checked = check_zones(conn, zones)
        conn.execute("UPDATE camera SET zones = %s, updated_at = now() WHERE id = %s",
                     (json.dumps(checked, ensure_ascii=False), camera_id))
        audit(conn, actor=actor, actor_id=actor_id, action="camera.zones", entity="camera", entity_id=str(camera_id),
              detail={"before": row["zones"], "after": checked})
    return get_camera(conn, camera_id)


# ---------------------------------------------------------------------------- reads
def _shown(row: dict) -> dict:
    row["url"] = redact_url(row["url"])
    row["sub_url"] = redact_url(row["sub_url"])
    return row


def get_camera(conn: psycopg.Connection, camera_id: int) -> dict:
    row = conn.execute(f"SELECT {CAMERA_COLUMNS} {_FROM} WHERE c.id = %s", (camera_id,)).fetchone()
    if row is None:
        raise NotFound(f"camera {camera_id} does not exist")
    return _shown(row)


def list_cameras(conn: psycopg.Connection, *, group: str | None = None, area: str | None = None,
                 active_only: bool = False, limit: int = 1000) -> list[dict]:
    """Cameras in id order; `area` is a grid/community/street/county code prefix."""
    rows = conn.execute(
        f"SELECT {CAMERA_COLUMNS} {_FROM}"
        " WHERE (%(group)s::text IS NULL OR c.group_name = %(group)s)"
        " AND (%(area)s::text IS NULL OR c.grid_code LIKE %(area)s || '%%')"
        " AND (NOT %(active)s OR c.active) ORDER BY c.id LIMIT %(limit)s",
        {"group": group, "area": area, "active": active_only, "limit": limit}).fetchall()
    return [_shown(r) for r in rows]


def cameras_seeing(conn: psycopg.Connection, lon: float, lat: float, limit: int = 10) -> list[dict]:
    """Active cameras that can see this point (能看到此处的摄像机): within range and inside
    the view sector, nearest first, with the distance and the bearing from camera to point."""
    _number(lon, "lon", -180, 180, "WGS84 longitude, -180…180")
    _number(lat, "lat", -90, 90, "WGS84 latitude, -90…90")
    if not 1 <= limit <= 100:
        raise Invalid("limit: 1…100")
    rows = conn.execute(
        "WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g)"
        " SELECT c.id, c.name, c.group_name AS \"group\", ST_X(c.location) AS lon, ST_Y(c.location) AS lat,"
        " c.bearing_deg, c.fov_deg, c.range_m, c.online, c.grid_code,"
        " ST_Distance(c.location::geography, p.g::geography) AS distance_m,"
        " degrees(ST_Azimuth(c.location::geography, p.g::geography)) AS bearing_to_point"
        " FROM camera c, p"
        " WHERE c.active AND ST_Intersects(c.sector, p.g)"       # the sector's GiST index
        " AND ST_DWithin(c.location::geography, p.g::geography, c.range_m)"
        " ORDER BY distance_m, c.id LIMIT %(limit)s", {"lon": lon, "lat": lat, "limit": limit}).fetchall()
    return rows
