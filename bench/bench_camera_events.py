"""Camera event latency: from an object appearing in a live camera's picture to its motion
event on the live bus, through the real worker (HTTP MJPEG camera → decode → motion → event
row and snapshot → NOTIFY) and a durable PostgreSQL.

The camera is a test stream on this machine (video.test_streams) whose pictures the bench
controls: a passer-by steps into an empty street at a moment it records (the first picture
sent showing them). Baseline, measured in the same run: the same moment to the first decoded
picture showing them, read by a plain client of the same stream (what transport and decode
alone cost, before any analysis).

    .venv/bin/python bench/bench_camera_events.py [--trials 12]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import threading
import time

from _stack import throwaway_postgres

import numpy as np
import psycopg

from bench_ingest import pct
from gis import catalog, migrate
from gis.config import Settings
from gis.db import connect
from gis.demo_city import generate_city
from gis.grid_import import import_grids
from video.cameras import NewCamera, add_camera
from video.frames import open_source
from video.test_streams import MjpegServer, StreetScene
from video.worker import VideoWorker
from workflows.notify import LIVE_CHANNEL

TARGET_S = 2.0
FPS = 10.0
WALKER = {"kind": "walker", "at": 0.0, "lane": "lower", "speed": 250}   # crosses the picture in under 3 s


class Scene:
    """An empty street until `send_walker()`; then a passer-by hurrying across. Remembers when
    the first picture showing them (half their width in) went out."""

    def __init__(self) -> None:
        self.scene = StreetScene(events=[WALKER], seconds=1.0, fps=FPS)
        self.started: float | None = None          # monotonic time of send_walker()
        self.appeared_at: float | None = None      # wall time of the first picture showing them
        self._lock = threading.Lock()

    def send_walker(self) -> None:
        with self._lock:
            self.started, self.appeared_at = time.monotonic(), None

    def __iter__(self):
        k = 0
        while True:
            with self._lock:
                t = time.monotonic() - self.started if self.started is not None else -1.0
                frame = self.scene.frame(t, k)
                x, _, w, _ = self.scene._mover_box(WALKER, t)
                if t >= 0 and self.appeared_at is None and x + w >= w // 2:
                    self.appeared_at = time.time()
            k += 1
            yield frame


def watch_decoded(url: str, scene: Scene, seen: dict, stop: threading.Event) -> None:
    """The baseline client: when does a decoded picture first show the passer-by?"""
    with open_source(url, fps=FPS, realtime=True, decoder="opencv") as source:
        while not stop.is_set():
            _, frame = source.read()
            changed = int((np.abs(frame.astype(np.int16) - scene.scene.base).max(axis=2) > 40).sum())
            if changed > 200 and scene.appeared_at and scene.appeared_at not in seen:
                seen[scene.appeared_at] = time.time()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=12)
    args = ap.parse_args()
    scene = Scene()
    with throwaway_postgres("citygrid-bench-camera-events-", durable=True) as stack, \
            MjpegServer(scene, fps=FPS) as camera:
        with connect(stack.url) as conn:
            migrate.migrate(conn)
            with conn.transaction():
                catalog.load_catalog(conn, catalog.read_catalog())
            city = generate_city(2026)
            import_grids(conn, city.grids, source="bench", actor="bench", county_name=city.county_name)
            spot = conn.execute("SELECT ST_X(ST_PointOnSurface(geom)) AS lon, ST_Y(ST_PointOnSurface(geom)) AS lat"
                                " FROM grid ORDER BY code LIMIT 1").fetchone()
            camera_id = add_camera(conn, NewCamera("基准摄像机", camera.url, spot["lon"], spot["lat"], bearing_deg=90,
                                                   fov_deg=60, range_m=60), actor="bench")["id"]
        settings = Settings(demo=True, database_url=stack.url, data_dir=stack.home / "data")
        worker = VideoWorker(settings, "bench", lease=dt.timedelta(seconds=30))
        runner = threading.Thread(target=worker.run, daemon=True)
        decoded: dict[float, float] = {}
        stop = threading.Event()
        baseline = threading.Thread(target=watch_decoded, args=(camera.url, scene, decoded, stop), daemon=True)
        latencies, missed = [], 0
        with psycopg.connect(stack.url, autocommit=True) as listener:
            listener.execute(f"LISTEN {LIVE_CHANNEL}")
            runner.start()
            baseline.start()
            time.sleep(8.0)                                  # the worker claims the camera, learns the street
            for _ in listener.notifies(timeout=0.1):
                pass
            for trial in range(args.trials):
                scene.send_walker()
                got = None
                end = time.monotonic() + 10
                while got is None and time.monotonic() < end:
                    for n in listener.notifies(timeout=0.2):
                        m = json.loads(n.payload)
                        if m.get("kind") == "camera_event" and m.get("state") == "start" and m["camera_id"] == camera_id:
                            got = time.time()
                            break
                if got is None or scene.appeared_at is None:
                    missed += 1
                else:
                    latencies.append(got - scene.appeared_at)
                time.sleep(7.0)                              # gone in 3 s, the event ends 3 s later
            stop.set()
            worker.stop()
            runner.join(15)
        to_decode = [decoded[t] - t for t in decoded]
    print()
    print("=" * 100)
    print(f"SUMMARY ({stack.settings_note()}; an HTTP MJPEG test camera at {FPS:g} fps, analysed at 5 fps,"
          f" {args.trials} passers-by; 2-core machine shared by camera, worker, database and bench)")
    if latencies:
        print(f"event latency, object appearing → motion event on the live bus: p50 {statistics.median(latencies):.2f} s,"
              f" p99 {pct(latencies, 99):.2f} s, max {max(latencies):.2f} s ({len(latencies)}/{args.trials} events)"
              f"  | baseline, to the first decoded picture showing it: p50 {statistics.median(to_decode):.2f} s,"
              f" max {max(to_decode):.2f} s  | target <= {TARGET_S:g} s:"
              f" {'met' if max(latencies) <= TARGET_S and not missed else 'NOT met'}")
    else:
        print("event latency: no event reached the live bus")
    return 0 if latencies and not missed else 1


if __name__ == "__main__":
    raise SystemExit(main())
