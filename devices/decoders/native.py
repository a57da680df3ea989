"""Our own position format on MQTT topic citygrid/units/{unit_id}/pos.

The payload is one JSON fix object or an array of them (a device that was out of coverage
uploads its backlog as one batch). SI units already, so only checks, no conversions. A
batch is all or nothing: a half-stored backlog would leave gaps nobody notices."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from devices.fix import (DecodeError, Fix, as_object, decode_batch, fix_time, lat_lon,
                         load_json, optional_number, show)

# Positive integer without leading zeros (so "unit:7" and "unit:007" cannot both exist),
# small enough for a bigint.
_TOPIC = re.compile(r"citygrid/units/([1-9][0-9]{0,17})/pos")


def decode(topic: str, payload: bytes, received_at: dt.datetime) -> list[Fix]:
    device = device_key(topic)
    body = load_json(payload)
    if isinstance(body, list):
        return decode_batch(body, lambda item: _fix(device, item, received_at), "fix")
    return [_fix(device, body, received_at)]


def device_key(topic: str) -> str:
    """citygrid/units/{unit_id}/pos -> "unit:{unit_id}"."""
    match = _TOPIC.fullmatch(topic)
    if match is None:
        raise DecodeError("bad_topic", f"topic {show(topic)} is not citygrid/units/UNIT_ID/pos"
                          " with UNIT_ID a positive integer")
    return f"unit:{match.group(1)}"


def _fix(device: str, item: Any, received_at: dt.datetime) -> Fix:
    obj = as_object(item, "a fix")
    lat, lon = lat_lon(obj.get("lat"), obj.get("lon"))
    sos = obj.get("sos", False)
    if not isinstance(sos, bool):
        raise DecodeError("bad_type", f'"sos" must be true or false, got {show(sos)}')
    return Fix(
        device=device,
        fix_time=fix_time(obj.get("ts"), "ts", received_at),
        lat=lat, lon=lon,
        accuracy_m=optional_number(obj.get("acc"), "acc", lo=0),
        altitude_m=optional_number(obj.get("alt"), "alt"),
        speed_mps=optional_number(obj.get("speed"), "speed", lo=0),
        course_deg=optional_number(obj.get("course"), "course", lo=0, hi=360),
        battery_pct=optional_number(obj.get("batt"), "batt", lo=0, hi=100),
        sos=sos,
    )
