"""OwnTracks over MQTT: topic owntracks/{user}/{device}[/suffix], a JSON object with `_type`.

Only `location`, `lwt` and `transition` carry something we store. The app's other messages
(waypoints, cards, commands, ...) are understood and dropped, so they do not fill the
dead-letter table; an unknown `_type` is refused so that a new app version gets noticed."""
from __future__ import annotations

import datetime as dt
from typing import Any

from devices.fix import (DecodeError, DeviceEvent, Fix, as_object, fix_time, lat_lon,
                         load_json, optional_number, parse_time, show, string)

# Sub-topics the apps publish under owntracks/{user}/{device}/... (OwnTracks booklet).
_SUFFIXES = frozenset({"event", "cmd", "step", "steps", "beacon", "dump", "status",
                       "waypoint", "waypoints", "info", "request"})
# Message types that are not positions: nothing to store, nothing wrong.
_IGNORED = frozenset({"waypoint", "waypoints", "card", "status", "cmd", "steps", "beacon",
                      "request", "configuration"})


def decode(topic: str, payload: bytes, received_at: dt.datetime) -> list[Fix | DeviceEvent]:
    device = device_key(topic)
    msg = as_object(load_json(payload), "OwnTracks payload")
    kind = msg.get("_type")
    if kind is None:
        raise DecodeError("missing_field", 'required field "_type" is missing')
    if kind == "location":
        return [_location(device, msg, received_at)]
    if kind == "lwt":
        return [_offline(device, msg, received_at)]
    if kind == "transition":
        return [_transition(device, msg, received_at)]
    if kind == "encrypted":
        raise DecodeError("unsupported", "OwnTracks payload is encrypted and cannot be read:"
                          " clear the encryption key in the app, or configure the key here")
    if isinstance(kind, str) and kind in _IGNORED:
        return []
    raise DecodeError("unknown_type", f"unknown OwnTracks _type {show(kind)}")


def device_key(topic: str) -> str:
    """owntracks/{user}/{device}[/suffix] -> "owntracks:{user}/{device}"."""
    parts = topic.split("/")
    ok = (len(parts) in (3, 4) and parts[0] == "owntracks"
          and all(p.strip() and "+" not in p and "#" not in p for p in parts[1:3])
          and (len(parts) == 3 or parts[3] in _SUFFIXES))
    if not ok:
        raise DecodeError("bad_topic", f"topic {show(topic)} is not"
                          " owntracks/USER/DEVICE or owntracks/USER/DEVICE/event")
    return f"owntracks:{parts[1]}/{parts[2]}"


def _location(device: str, msg: dict[str, Any], received_at: dt.datetime) -> Fix:
    lat, lon = lat_lon(msg.get("lat"), msg.get("lon"))
    # iOS location services report -1 for an unknown speed or course.
    vel_kmh = optional_number(msg.get("vel"), "vel", lo=0, negative_unknown=True)
    return Fix(
        device=device,
        fix_time=fix_time(msg.get("tst"), "tst", received_at, iso=False),
        lat=lat, lon=lon,
        accuracy_m=optional_number(msg.get("acc"), "acc", lo=0),
        altitude_m=optional_number(msg.get("alt"), "alt"),
        speed_mps=None if vel_kmh is None else vel_kmh * 1000 / 3600,
        course_deg=optional_number(msg.get("cog"), "cog", lo=0, hi=360, negative_unknown=True),
        battery_pct=optional_number(msg.get("batt"), "batt", lo=0, hi=100,
                                    negative_unknown=True),
        sos=_is_sos(msg),
    )


# OwnTracks has no alarm field. The field teams' convention: publish the location by hand
# naming the point (iOS "poi") or tagging it ("tag") SOS / 求救. A plain manual report
# (t="u") is not an SOS.
_SOS_WORDS = frozenset({"sos", "求救", "救命"})


def _is_sos(msg: dict[str, Any]) -> bool:
    return any(isinstance(msg.get(k), str) and msg[k].strip().lower() in _SOS_WORDS for k in ("poi", "tag"))


def _offline(device: str, msg: dict[str, Any], received_at: dt.datetime) -> DeviceEvent:
    """The broker publishes the will when the phone's connection drops. Its `tst` was set
    when the app connected, so the event is dated by arrival and `tst` kept as detail."""
    detail: dict[str, Any] = {}
    if msg.get("tst") is not None:
        detail["connected_at"] = parse_time(msg["tst"], "tst", iso=False).isoformat()
    return DeviceEvent(device=device, kind="offline", at=received_at, detail=detail)


def _transition(device: str, msg: dict[str, Any], received_at: dt.datetime) -> DeviceEvent:
    """Entering or leaving a region defined on the phone."""
    event = msg.get("event")
    if event is None:
        raise DecodeError("missing_field", 'required field "event" is missing')
    if event not in ("enter", "leave"):
        raise DecodeError("bad_type", f'"event" must be "enter" or "leave", got {show(event)}')
    at = fix_time(msg.get("tst"), "tst", received_at, iso=False)
    detail: dict[str, Any] = {}
    if msg.get("desc") is not None:
        detail["region"] = string(msg["desc"], "desc")
    if msg.get("rid") is not None:
        detail["region_id"] = string(msg["rid"], "rid")
    if msg.get("lat") is not None or msg.get("lon") is not None:
        detail["lat"], detail["lon"] = lat_lon(msg.get("lat"), msg.get("lon"))
    if msg.get("acc") is not None:
        detail["accuracy_m"] = optional_number(msg["acc"], "acc", lo=0)
    if msg.get("wtst") is not None:
        detail["region_created_at"] = parse_time(msg["wtst"], "wtst", iso=False).isoformat()
    if msg.get("t") is not None:
        detail["trigger"] = string(msg["t"], "t")
    return DeviceEvent(device=device, kind=event, at=at, detail=detail)
