"""Simulated IoT field devices for the demo (`citygrid simulate --devices N`): sensors on the
demo city's parts and streets reporting realistic readings over MQTT, answering commands on
…/cmd, and a script of faults repeated every cycle so the command center sees the whole alarm
loop within minutes: a manhole cover lifted, a street flooding, a lamp failing, a bin
overflowing and a gas detector going offline (its last will, then silence)."""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field

import psycopg

from devices.device_registry import NewDevice, add_device
from devices.mqtt import Publisher
from workflows.cases import LOCAL_TZ

log = logging.getLogger("citygrid.simulate.devices")

# How many of each type in a fleet of 300, and how often each reports (seconds).
MIX = {"manhole_cover": 100, "street_light": 80, "garbage_bin": 50, "waterlogging_gauge": 20, "gas_detector": 15,
       "smoke_detector": 10, "air_quality": 10, "noise": 10, "structure_tilt": 5}
EVERY_S = {"manhole_cover": 60, "street_light": 60, "garbage_bin": 120, "waterlogging_gauge": 30,
           "gas_detector": 30, "smoke_detector": 120, "air_quality": 60, "noise": 60, "structure_tilt": 120}
PREFIX = "SIM-"


@dataclass
class FaultScript:
    """When (seconds into each cycle) which fault starts, and for how long. Each cycle picks
    the next device of the type, so the faults move around the city."""
    cycle_s: float = 1800.0
    cover_lifted_at: float = 60.0          # 井盖开启 → critical alarm, part 丢失, case 井盖缺失
    cover_lifted_for: float = 300.0
    flood_at: float = 120.0                # 道路积水: depth rises to 25 cm, stays, recedes
    flood_for: float = 600.0
    lamp_fault_at: float = 240.0           # 路灯故障 → part 破损, case on the lamp
    lamp_fault_for: float = 600.0
    offline_at: float = 300.0              # a gas detector's last will, then silence past its heartbeat
    offline_for: float = 1200.0
    bin_full_at: float = 420.0             # 垃圾箱满溢 for longer than the rule's 5 minutes
    bin_full_for: float = 600.0

    def scaled(self, factor: float) -> FaultScript:
        return FaultScript(**{k: v * factor for k, v in self.__dict__.items()})


@dataclass
class SimDevice:
    device_id: str
    type_code: str
    every_s: float
    next_at: float = 0.0                   # monotonic time of the next report
    state: dict = field(default_factory=dict)
    offline: bool = False


def prepare_devices(conn: psycopg.Connection, count: int = 300, *, actor: str = "simulator",
                    rng: random.Random | None = None) -> list[SimDevice]:
    """The simulated fleet, registered once: typed devices on parts of the classes their type
    fits, the others at places in the city's grids. Running it again finds them again."""
    rng = rng or random.Random(23)
    total = sum(MIX.values())
    fleet = []
    for type_code, share in MIX.items():
        wanted = max(1, round(count * share / total))
        existing = [r["id"] for r in conn.execute("SELECT id FROM device WHERE id LIKE %s AND type_code = %s"
                                                  " ORDER BY id", (f"{PREFIX}%", type_code))]
        for n, (part_id, lon, lat) in enumerate(_places(conn, type_code, wanted - len(existing), rng),
                                                start=len(existing) + 1):
            device_id = f"{PREFIX}{type_code.upper().replace('_', '-')}-{n:03d}"
            add_device(conn, NewDevice(device_id, type_code, lon, lat, part_id=part_id,
                                       meta={"model": "CityGrid Sim", "firmware": "1.0.0"}), actor=actor)
            existing.append(device_id)
        fleet += [SimDevice(d, type_code, EVERY_S[type_code]) for d in existing[:wanted]]
    return fleet


def _places(conn, type_code: str, n: int, rng: random.Random) -> list[tuple[str | None, float | None, float | None]]:
    """Free parts of the type's classes (spread over the city), or, when the city has no such
    parts at all, points inside random grids."""
    if n <= 0:
        return []
    classes = conn.execute("SELECT part_classes FROM device_type WHERE code = %s", (type_code,)).fetchone()[
        "part_classes"]
    if classes and conn.execute("SELECT 1 FROM part WHERE class_code = ANY(%s) LIMIT 1", (classes,)).fetchone():
        free = conn.execute("SELECT p.id FROM part p WHERE p.class_code = ANY(%s) AND NOT EXISTS"
                            " (SELECT 1 FROM device d WHERE d.part_id = p.id) ORDER BY p.id", (classes,)).fetchall()
        return [(r["id"], None, None) for r in rng.sample(free, min(n, len(free)))]
    grids = conn.execute("SELECT ST_X(ST_PointOnSurface(geom)) AS lon, ST_Y(ST_PointOnSurface(geom)) AS lat"
                         " FROM grid ORDER BY code").fetchall()
    if not grids:
        raise RuntimeError("no grids in the database: run `citygrid demo seed` (or import grids) first")
    return [(None, g["lon"], g["lat"]) for g in (rng.choice(grids) for _ in range(n))]


class DeviceSimulation:
    """Publishes the fleet's readings when they are due, plays the fault script, and answers
    commands: a street light really switches (its next reading says so)."""

    def __init__(self, fleet: list[SimDevice], host: str, port: int, *, script: FaultScript | None = None,
                 login: tuple[str, str | None] | None = None, rng: random.Random | None = None):
        self.fleet = fleet
        self.by_id = {d.device_id: d for d in fleet}
        self.script = script or FaultScript()
        self.rng = rng or random.Random(29)
        self.sent = {"telemetry": 0, "status": 0, "acks": 0}
        self._lock = threading.Lock()                          # the fleet's state: the loop and command answers
        self.publisher = Publisher(host, port, client_id=f"citygrid-sim-devices-{port}", login=login)
        self.publisher.subscribe("citygrid/devices/+/cmd", self._on_command)

    def close(self) -> None:
        self.publisher.close()

    def run(self, duration_s: float = 0.0, stop: threading.Event | None = None) -> None:
        started = time.monotonic()
        for d in self.fleet:                                   # spread the first reports over a period
            d.next_at = started + self.rng.uniform(0, d.every_s)
            self._publish(f"citygrid/devices/{d.device_id}/status", "online")
        while not (stop and stop.is_set()) and (not duration_s or time.monotonic() - started < duration_s):
            now = time.monotonic()
            self.tick(now - started, now)
            time.sleep(0.5)

    def tick(self, t: float, now: float | None = None) -> None:
        """One round at `t` seconds into the run: apply the script, report what is due."""
        now = time.monotonic() if now is None else now
        cycle, at = divmod(t, self.script.cycle_s)
        faults = self._faults(int(cycle), at)
        with self._lock:
            for d in self.fleet:
                fault = faults.get(d.device_id)
                if fault == "offline":
                    if not d.offline:
                        d.offline = True                        # what the broker sends as its last will
                        self._publish(f"citygrid/devices/{d.device_id}/status", "offline")
                    continue
                if d.offline:
                    d.offline = False
                    self._publish(f"citygrid/devices/{d.device_id}/status", "online")      # birth
                    d.next_at = now
                if now >= d.next_at or d.state.get("fault") != fault:       # a fault shows (and ends) at once
                    d.state["fault"] = fault
                    self.report(d, fault)
                    d.next_at = now + d.every_s

    def _faults(self, cycle: int, at: float) -> dict[str, str]:
        """Which device has which fault now: the next device of each type every cycle."""
        s, faults = self.script, {}
        for type_code, start, length, fault in (
                ("manhole_cover", s.cover_lifted_at, s.cover_lifted_for, "lifted"),
                ("waterlogging_gauge", s.flood_at, s.flood_for, "flood"),
                ("street_light", s.lamp_fault_at, s.lamp_fault_for, "lamp_fault"),
                ("gas_detector", s.offline_at, s.offline_for, "offline"),
                ("garbage_bin", s.bin_full_at, s.bin_full_for, "full")):
            if start <= at < start + length:
                of_type = [d for d in self.fleet if d.type_code == type_code]
                if of_type:
                    device = of_type[cycle % len(of_type)]
                    faults[device.device_id] = fault
                    device.state["fault_progress"] = (at - start) / length
        return faults

    def report(self, d: SimDevice, fault: str | None) -> None:
        values = self.values(d, fault, dt.datetime.now(LOCAL_TZ))
        self._publish(f"citygrid/devices/{d.device_id}/telemetry",
                      {"ts": int(time.time() * 1000), "values": values})
        self.sent["telemetry"] += 1

    def values(self, d: SimDevice, fault: str | None, local: dt.datetime) -> dict:
        """Plausible readings of the device's type at this local time, with its fault if any."""
        g, st, progress = self.rng.gauss, d.state, d.state.get("fault_progress", 0.0)
        st["battery"] = max(16.0, st.get("battery", self.rng.uniform(60, 100)) - 0.002)
        night = local.hour >= 18 or local.hour < 6
        match d.type_code:
            case "manhole_cover":
                return {"open": fault == "lifted", "tilt_deg": round(abs(g(1.0, 0.4)), 1),
                        "water_level_cm": round(g(150, 5)), "battery_pct": round(st["battery"])}
            case "waterlogging_gauge":
                # rises over the first fifth, stays at ~25 cm, recedes over the last fifth
                depth = 25 * min(1.0, progress / 0.2, (1 - progress) / 0.2) if fault == "flood" else 0.0
                return {"depth_cm": round(max(0.0, depth + g(0, 0.3)), 1), "battery_pct": round(st["battery"])}
            case "street_light":
                on = st.get("switched", night)
                current = 0.0 if fault == "lamp_fault" or not on else round(g(0.8, 0.03), 2)
                return {"on": on, "current_a": current, "fault": fault == "lamp_fault"}
            case "garbage_bin":
                st["fill"] = 96.0 if fault == "full" else (st.get("fill", self.rng.uniform(10, 60)) + 0.3) % 85
                return {"fill_pct": round(st["fill"]), "battery_pct": round(st["battery"])}
            case "gas_detector":
                return {"lel_pct": round(abs(g(0.5, 0.3)), 1)}
            case "smoke_detector":
                return {"smoke": False, "battery_pct": round(st["battery"])}
            case "air_quality":
                base = 45 + 20 * math.sin(local.hour / 24 * 2 * math.pi)
                return {"pm25": round(max(1.0, g(base, 5))), "pm10": round(max(2.0, g(base * 1.6, 8)))}
            case "noise":
                return {"db": round(g(48 if night else 58, 3), 1)}
            case "structure_tilt":
                return {"tilt_x_deg": round(g(0, 0.03), 3), "tilt_y_deg": round(g(0, 0.03), 3)}
        raise ValueError(f"no simulated readings for type {d.type_code}")

    def _on_command(self, topic: str, payload: bytes) -> None:
        """A command on citygrid/devices/{id}/cmd: do it and answer on …/cmd/ack."""
        device_id = topic.split("/")[2]
        if device_id not in self.by_id:
            return                                             # a real device's command: not ours to answer
        try:
            command = json.loads(payload)
            answer = self.perform(self.by_id[device_id], command["name"], command.get("params") or {})
            answer["id"] = command["id"]
        except (ValueError, KeyError, TypeError) as e:
            log.warning("simulated device %s cannot read command %r: %s", device_id, payload[:200], e)
            return
        self._publish(f"citygrid/devices/{device_id}/cmd/ack", answer)
        self.sent["acks"] += 1

    def perform(self, d: SimDevice, name: str, params: dict) -> dict:
        with self._lock:
            if d.offline:
                return {"ok": False, "result": {"error": "device offline"}}
            if d.type_code == "street_light" and name == "switch":
                d.state["switched"] = bool(params.get("on"))
                self.report(d, d.state.get("fault"))               # the new state shows at once
                return {"ok": True, "result": {"on": d.state["switched"]}}
            if d.type_code == "waterlogging_gauge" and name == "set_interval":
                d.every_s = float(params["seconds"])
                return {"ok": True, "result": {"seconds": d.every_s}}
            if (d.type_code, name) in {("street_light", "dim"), ("manhole_cover", "reset"),
                                       ("smoke_detector", "silence")}:
                return {"ok": True, "result": params}
            return {"ok": False, "result": {"error": f"{name} is not supported by a {d.type_code}"}}

    def _publish(self, topic: str, payload: dict | str) -> None:
        self.publisher.publish(topic, payload)
        if topic.endswith("/status"):
            self.sent["status"] += 1
