"""The demo simulator (`citygrid simulate`): inspectors walking their communities with
OwnTracks over MQTT and patrol vehicles driving their streets with the Traccar Client's
OsmAnd protocol over HTTP, each on a shift in the demo city, and a small script of the
things the command center must hear about — someone wandering out of their area, someone
standing still, a phone going quiet, an SOS — repeated every cycle."""
from __future__ import annotations

import datetime as dt
import http.client
import logging
import math
import random
import time
import urllib.parse
from dataclasses import dataclass, field

import psycopg
import shapely
from shapely import wkb
from shapely.geometry import Point
from shapely.ops import nearest_points

from devices.mqtt import Publisher
from devices.registry import add_unit
from devices.shifts import add_shift

log = logging.getLogger("citygrid.simulate")

SHIFT_HOURS = 8
METRES_PER_DEGREE = 111_320.0


@dataclass
class Script:
    """When (seconds into each cycle) the scripted units misbehave, and for how long."""
    cycle_s: float = 900.0
    wander_at: float = 30.0               # unit 0 walks out of its area …
    wander_for: float = 300.0             # … and comes back after this
    still_at: float = 20.0                # unit 1 stands still
    still_for: float = 480.0
    silent_at: float = 40.0               # unit 2's phone goes quiet
    silent_for: float = 420.0
    sos_at: float = 90.0                  # unit 3 presses SOS (and a vehicle, half a cycle later)

    def scaled(self, factor: float) -> Script:
        return Script(**{k: v * factor for k, v in self.__dict__.items()})


@dataclass
class Walker:
    unit_id: int
    name: str
    device: str                           # owntracks:USER/DEVICE or osmand:ID
    area: object                          # shapely (Multi)Polygon, WGS84
    speed_mps: float
    lon: float = 0.0
    lat: float = 0.0
    heading: float = field(default_factory=lambda: random.uniform(0, 360))
    battery: float = field(default_factory=lambda: random.uniform(60, 100))
    role: str = "normal"                  # normal, wander, still, silent, sos

    def step(self, seconds: float, rng: random.Random, *, leave_area: bool = False) -> None:
        """Walk on for `seconds`, turning now and then, staying inside the area unless told not to."""
        self.heading = (self.heading + rng.gauss(0, 25)) % 360
        for _ in range(8):
            lon, lat = self._ahead(seconds)
            ahead, here = Point(lon, lat), Point(self.lon, self.lat)
            # inside, or (when out) on the way back in
            if leave_area or self.area.contains(ahead) or self.area.distance(ahead) < self.area.distance(here):
                self.lon, self.lat = lon, lat
                break
            toward = math.degrees(math.atan2(self.area.centroid.x - self.lon, self.area.centroid.y - self.lat))
            self.heading = (toward + rng.uniform(-60, 60)) % 360
        self.battery = max(5.0, self.battery - seconds / 600)

    def _ahead(self, seconds: float) -> tuple[float, float]:
        d = self.speed_mps * seconds / METRES_PER_DEGREE
        rad = math.radians(self.heading)
        return self.lon + d * math.sin(rad) / math.cos(math.radians(self.lat)), self.lat + d * math.cos(rad)


def prepare(conn: psycopg.Connection, *, inspectors: int, vehicles: int, actor: str = "simulator",
            rng: random.Random | None = None) -> list[Walker]:
    """The simulated units, registered (once) with their devices and put on a shift now:
    inspectors over communities, vehicles over streets."""
    rng = rng or random.Random(7)
    communities = _areas(conn, 12)
    streets = _areas(conn, 9)
    if not communities:
        raise RuntimeError("no grids in the database: run `citygrid demo seed` (or import grids) first")
    walkers = []
    for i in range(inspectors):
        code, area = communities[i % len(communities)]
        walkers.append(_unit(conn, f"模拟监督员{i + 1:02d}", "inspector", f"owntracks:sim{i + 1:02d}/phone", code, area,
                             rng.uniform(1.0, 1.6), actor, rng))
    for i in range(vehicles):
        code, area = streets[i % len(streets)]
        walkers.append(_unit(conn, f"模拟巡查车{i + 1:02d}", "vehicle", f"osmand:sim-car-{i + 1:02d}", code, area,
                             rng.uniform(5.0, 9.0), actor, rng))
    return walkers


def _areas(conn: psycopg.Connection, length: int) -> list[tuple[str, object]]:
    rows = conn.execute("SELECT left(code, %s) AS code, ST_AsBinary(ST_Union(geom)) AS area FROM grid"
                        " GROUP BY 1 ORDER BY 1", (length,)).fetchall()
    return [(r["code"], wkb.loads(bytes(r["area"]))) for r in rows]


def _unit(conn, name: str, kind: str, device: str, area_code: str, area, speed: float, actor: str,
          rng: random.Random) -> Walker:
    row = conn.execute("SELECT unit_id FROM unit_device WHERE device = %s", (device,)).fetchone()
    unit_id = row["unit_id"] if row else add_unit(conn, name=name, kind=kind, devices=[device], actor=actor)
    now = dt.datetime.now(dt.timezone.utc)
    on_shift = conn.execute("SELECT 1 FROM shift WHERE unit_id = %s AND starts_at <= %s AND ends_at > %s",
                            (unit_id, now, now)).fetchone()
    if not on_shift:
        later = conn.execute("SELECT min(starts_at) AS s FROM shift WHERE unit_id = %s AND starts_at > %s",
                             (unit_id, now)).fetchone()["s"]
        end = min(now + dt.timedelta(hours=SHIFT_HOURS), later) if later else now + dt.timedelta(hours=SHIFT_HOURS)
        add_shift(conn, unit_id=unit_id, starts_at=now - dt.timedelta(seconds=1), ends_at=end, areas=[area_code],
                  actor=actor)
    last = conn.execute("SELECT lon, lat FROM unit_state WHERE unit_id = %s", (unit_id,)).fetchone()
    if last:                                    # a restarted simulation walks on from there
        return Walker(unit_id, name, device, area, speed, last["lon"], last["lat"])
    start = shapely.Point(area.representative_point())
    walker = Walker(unit_id, name, device, area, speed, start.x, start.y)
    walker.step(rng.uniform(0, 60), rng)
    return walker


class Simulation:
    """Moves the walkers every `interval` seconds and reports their fixes."""

    def __init__(self, walkers: list[Walker], publisher: Publisher, osmand_url: str, *, interval: float = 2.0,
                 script: Script | None = None, rng: random.Random | None = None):
        self.walkers, self.publisher, self.interval = walkers, publisher, interval
        self.script = script or Script()
        self.rng = rng or random.Random(11)
        self.osmand = urllib.parse.urlsplit(osmand_url)
        self._http: http.client.HTTPConnection | None = None
        self.sent = {"owntracks": 0, "osmand": 0, "osmand_refused": 0}
        inspectors = [w for w in walkers if w.device.startswith("owntracks:")]
        for walker, role in zip(inspectors, ("wander", "still", "silent", "sos")):
            walker.role = role
        vehicles = [w for w in walkers if w.device.startswith("osmand:")]
        if vehicles:
            vehicles[0].role = "sos"

    def run(self, duration_s: float = 0.0, stop=None) -> None:
        started = time.monotonic()
        while not (stop and stop.is_set()) and (not duration_s or time.monotonic() - started < duration_s):
            tick = time.monotonic()
            self.tick((tick - started) % self.script.cycle_s)
            time.sleep(max(0.0, self.interval - (time.monotonic() - tick)))

    def tick(self, t: float) -> None:
        """One round: move everybody and report what their phones and trackers would send."""
        now = dt.datetime.now(dt.timezone.utc)
        s = self.script
        for w in self.walkers:
            sos = False
            if w.role == "still" and s.still_at <= t < s.still_at + s.still_for:
                pass                                                  # stands where they are
            elif w.role == "silent" and s.silent_at <= t < s.silent_at + s.silent_for:
                continue                                              # the phone says nothing
            else:
                wandering = w.role == "wander" and s.wander_at <= t < s.wander_at + s.wander_for
                if wandering and w.area.contains(Point(w.lon, w.lat)):     # head for the nearest edge
                    edge, _ = nearest_points(w.area.boundary, Point(w.lon, w.lat))
                    w.heading = math.degrees(math.atan2(edge.x - w.lon, edge.y - w.lat)) % 360
                w.step(self.interval, self.rng, leave_area=wandering)
                offset = s.sos_at + (s.cycle_s / 2 if w.device.startswith("osmand:") else 0)
                sos = w.role == "sos" and offset <= t < offset + self.interval
            try:
                self._report(w, now, sos)
            except (OSError, http.client.HTTPException) as e:      # the server restarting: carry on
                log.warning("could not report %s: %s", w.name, e)

    def _report(self, w: Walker, now: dt.datetime, sos: bool) -> None:
        jitter_m = self.rng.uniform(3, 12)
        if w.device.startswith("owntracks:"):
            user, device = w.device.split(":", 1)[1].split("/")
            payload = {"_type": "location", "lat": round(w.lat, 6), "lon": round(w.lon, 6), "tst": int(now.timestamp()),
                       "acc": round(jitter_m), "vel": round(w.speed_mps * 3.6), "cog": round(w.heading),
                       "batt": round(w.battery), "tid": device[:2], "t": "u" if sos else "t"}
            if sos:
                payload["poi"] = "SOS"
            self.publisher.publish(f"owntracks/{user}/{device}", payload)
            self.sent["owntracks"] += 1
        else:
            params = {"id": w.device.split(":", 1)[1], "lat": f"{w.lat:.6f}", "lon": f"{w.lon:.6f}",
                      "timestamp": int(now.timestamp()), "speed": f"{w.speed_mps / 0.514444:.1f}",
                      "bearing": round(w.heading), "accuracy": round(jitter_m), "batt": round(w.battery)}
            if sos:
                params["alarm"] = "sos"
            self._osmand(urllib.parse.urlencode(params))

    def _osmand(self, query: str) -> None:
        if self._http is None:
            self._http = http.client.HTTPConnection(self.osmand.hostname, self.osmand.port or 80, timeout=10)
        try:
            self._http.request("GET", f"{self.osmand.path.rstrip('/')}/osmand?{query}")
            response = self._http.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            self._http.close()
            self._http = None
            raise
        if response.status == 200:
            self.sent["osmand"] += 1
        else:
            self.sent["osmand_refused"] += 1
            log.warning("the server refused an OsmAnd fix (%s)", response.status)
