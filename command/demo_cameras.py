"""The demo city's cameras (演示摄像机): generated street clips (video.test_streams), served as
HTTP MJPEG cameras on this machine by `citygrid cameras serve-streams`, registered along the
demo's roads looking down them, two with a no-dumping zone where a bag is left and stays."""
from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import psycopg

from video.cameras import NewCamera, add_camera
from video.test_streams import make_street_video
from video.zones import zone_around

CLIP_S = 180                      # each loop: passers-by, vehicles, and (two cameras) a bag left at 40 s
STREAM_PORT_BASE = 18900          # camera i is http://127.0.0.1:18900+i/
CAMERAS = (("建设路东段", "城东", True), ("建设路西段", "城西", False), ("联星路口", "城东", True),
           ("人民路中段", "城西", False))


def streams_dir(data_dir: Path) -> Path:
    return data_dir / "streams"


def _events(rng: random.Random, with_bag: bool, seconds: float) -> list[dict]:
    """Passers-by every 8-20 s on both pavements, a vehicle every ~30 s, maybe a bag at 40 s."""
    events, at = [], 2.0
    while at < seconds - 10:
        lane = rng.choice(("upper", "lower"))
        events.append({"kind": "walker", "at": at, "lane": lane, "speed": rng.choice((-1, 1)) * rng.uniform(55, 85)})
        at += rng.uniform(8, 20)
    events += [{"kind": "vehicle", "at": t, "speed": rng.choice((-1, 1)) * rng.uniform(180, 260)}
               for t in range(17, int(seconds) - 10, 30)]
    if with_bag:
        events = [e for e in events if not 36 <= e["at"] <= 48]        # the carrier has the pavement to itself
        events.append({"kind": "carrier", "at": 40.0, "lane": "lower", "speed": 70, "drop_x": rng.uniform(0.55, 0.75)})
    return sorted(events, key=lambda e: e["at"])


def _road_spots(conn: psycopg.Connection, n: int) -> list[dict]:
    """Midpoints of the longest roads near the city centre, with the road's direction there."""
    return conn.execute(
        "WITH c AS (SELECT ST_Centroid(ST_Collect(geom)) AS centre FROM grid),"
        " r AS (SELECT geom FROM basemap_road, c ORDER BY ST_Distance(geom, c.centre), ST_Length(geom) DESC LIMIT %s)"
        " SELECT ST_X(ST_LineInterpolatePoint(geom, 0.5)) AS lon, ST_Y(ST_LineInterpolatePoint(geom, 0.5)) AS lat,"
        " degrees(ST_Azimuth(ST_LineInterpolatePoint(geom, 0.45), ST_LineInterpolatePoint(geom, 0.55))) AS bearing"
        " FROM r", (n,)).fetchall()


def seed_cameras(conn: psycopg.Connection, data_dir: Path, *, log: Callable[[str], None] = print,
                 clip_s: float = CLIP_S) -> int:
    """Generate the clips and register the cameras, once; how many were registered."""
    if conn.execute("SELECT count(*) AS n FROM camera").fetchone()["n"]:
        return 0
    folder = streams_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    spots = _road_spots(conn, len(CAMERAS))
    made = 0
    for i, ((name, group, with_bag), spot) in enumerate(zip(CAMERAS, spots)):
        clip = folder / f"street-{i}.mp4"
        log(f"generating the demo camera clip {clip.name} ({clip_s:g} s)")
        truth = make_street_video(clip, seconds=clip_s, fps=10, seed=101 + i,
                                  events=_events(random.Random(i), with_bag, clip_s))
        zones = [zone_around(truth.left_object, truth.size, pad=0.05)] if with_bag and truth.left_object else []
        url = f"http://127.0.0.1:{STREAM_PORT_BASE + i}/"
        add_camera(conn, NewCamera(name, url, spot["lon"], spot["lat"], bearing_deg=spot["bearing"] % 360, fov_deg=70,
                                   range_m=60, group=group, height_m=6, zones=zones), actor="demo")
        made += 1
    return made
