"""OsmAnd protocol as the Traccar Client app sends it over HTTP.

Two shapes: query or form parameters (older clients; speed in KNOTS), and the JSON body of
Traccar Client 9+ (speed in m/s, battery 0..1). The HTTP layer parses the request and calls
the matching function; both return plain Fix values keyed "osmand:{id}"."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from devices.fix import (MAX_PAYLOAD_BYTES, DecodeError, Fix, as_object, coordinate,
                         decode_batch, fix_time, lat_lon, load_json, optional_number,
                         require, string)

KNOT_MPS = 0.514444
# "+08:00" in an unencoded query string arrives as " 08:00": put the plus back.
_LOST_PLUS = re.compile(r"^(\d{4}-\d\d-\d\dT[\d:.]+) (\d\d(?::?\d\d)?)$")


def decode_params(params: Mapping[str, str], received_at: dt.datetime) -> list[Fix]:
    """GET query string or form POST body, already split into a name -> value mapping."""
    size = sum(len(str(k)) + len(str(v)) + 2 for k, v in params.items())
    if size > MAX_PAYLOAD_BYTES:
        raise DecodeError("too_large", f"request parameters are {size} bytes;"
                          f" the limit is {MAX_PAYLOAD_BYTES}")
    ident = params.get("id") or params.get("deviceid")
    if ident is None:
        raise DecodeError("missing_field", 'required field "id" (or "deviceid") is missing')
    lat, lon = _params_position(params)
    speed_kn = optional_number(params.get("speed"), "speed", text=True, negative_unknown=True)
    course_key = "bearing" if params.get("bearing") not in (None, "") else "heading"
    return [Fix(
        device=_device(ident, "id"),
        fix_time=fix_time(_restore_plus(params.get("timestamp")), "timestamp", received_at,
                          text_epoch=True),
        lat=lat, lon=lon,
        accuracy_m=optional_number(params.get("accuracy"), "accuracy", lo=0, text=True),
        altitude_m=optional_number(params.get("altitude"), "altitude", text=True),
        speed_mps=None if speed_kn is None else speed_kn * KNOT_MPS,
        course_deg=optional_number(params.get(course_key), course_key, lo=0, hi=360,
                                   text=True, negative_unknown=True),
        battery_pct=optional_number(params.get("batt"), "batt", lo=0, hi=100, text=True),
        sos=_is_sos(params.get("alarm")),
    )]


def decode_json(body: bytes, received_at: dt.datetime) -> list[Fix]:
    """Traccar Client 9+ body: {"location": {...} or [{...}, ...], "device_id": "..."}."""
    root = as_object(load_json(body), "Traccar Client body")
    device = _device(require(root, "device_id"), "device_id")
    location = require(root, "location")
    if isinstance(location, list):
        return decode_batch(location, lambda loc: _json_fix(device, loc, received_at),
                            "location")
    return [_json_fix(device, location, received_at)]


def _json_fix(device: str, loc: Any, received_at: dt.datetime) -> Fix:
    loc = as_object(loc, '"location"')
    coords = as_object(require(loc, "coords"), '"coords"')
    level = None
    if loc.get("battery") is not None:
        battery = as_object(loc["battery"], '"battery"')
        # The SDK reports -1 when the level is unknown.
        level = optional_number(battery.get("level"), "battery.level", lo=0, hi=1,
                                negative_unknown=True)
    extras = loc.get("extras")
    return Fix(
        device=device,
        fix_time=fix_time(loc.get("timestamp"), "timestamp", received_at),
        lat=coordinate(coords.get("latitude"), "latitude", -90, 90),
        lon=coordinate(coords.get("longitude"), "longitude", -180, 180),
        accuracy_m=optional_number(coords.get("accuracy"), "accuracy", lo=0),
        altitude_m=optional_number(coords.get("altitude"), "altitude"),
        speed_mps=optional_number(coords.get("speed"), "speed", negative_unknown=True),
        course_deg=optional_number(coords.get("heading"), "heading", lo=0, hi=360,
                                   negative_unknown=True),
        battery_pct=None if level is None else round(level * 100, 1),
        sos=_is_sos(loc.get("alarm")) or (isinstance(extras, dict)
                                          and _is_sos(extras.get("alarm"))),
    )


def _params_position(params: Mapping[str, str]) -> tuple[float, float]:
    """lat + lon, or location=LAT,LON."""
    if params.get("lat") in (None, "") and params.get("lon") in (None, ""):
        location = params.get("location")
        if location in (None, ""):
            raise DecodeError("missing_field", 'required fields "lat" and "lon"'
                              ' (or "location") are missing')
        parts = str(location).split(",")
        if len(parts) != 2:
            raise DecodeError("bad_coordinates", f'"location" must be LAT,LON, got {location!r}')
        return lat_lon(parts[0], parts[1], text=True)
    return lat_lon(params.get("lat"), params.get("lon"), text=True)


def _device(value: Any, name: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return "osmand:" + string(value, name, max_len=100).strip()


def _restore_plus(value: Any) -> Any:
    return _LOST_PLUS.sub(r"\1+\2", value) if isinstance(value, str) else value


def _is_sos(value: Any) -> bool:
    """alarm=sos is the panic button; other alarm values are not an SOS and not an error."""
    return isinstance(value, str) and value.strip().lower() == "sos"
