"""IoT device telemetry and status on citygrid/devices/{device_id}/telemetry and …/status.

Telemetry follows the common IoT shape: {"ts": <Unix ms (or s) or ISO 8601>, "values":
{field: value}}, a list of those (a device uploading what it kept while offline), or a bare
{field: value} (or {"values": …} without "ts") stamped with the time it arrived — such a
reading sent twice is stored twice, so devices that can should send "ts". Values are numbers
or booleans; a reading may also say what units they are in ("units": {field: unit}) and whose
they are ("device_id", which must be the topic's). Whether the fields, ranges and units fit the
device's type is checked when the batch is written (the decoder does not know the registry).
A batch is all or nothing, like native positions.

Status is the birth message and the last will: "online" / "offline", or {"online": bool}
(optionally with "ts"). …/cmd/ack answers a command: {"id": N, "ok": bool, "result": …}."""
from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from devices.fix import (CommandAnswer, DecodeError, DeviceStatus, Reading, as_object, check_time, decode_batch,
                         fix_time, load_json, parse_time, show)

_TOPIC = re.compile(r"citygrid/devices/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})/(telemetry|status|cmd/ack)")
MAX_READINGS = 1000                  # per message
MAX_FIELDS = 64                      # per reading
_READING_KEYS = frozenset({"ts", "values", "units", "device_id"})


def topic_parts(topic: str) -> tuple[str, str]:
    """citygrid/devices/{id}/telemetry → (id, "telemetry")."""
    match = _TOPIC.fullmatch(topic)
    if match is None:
        raise DecodeError("bad_topic", f"topic {show(topic)} is not citygrid/devices/DEVICE_ID/telemetry, …/status"
                          " or …/cmd/ack (DEVICE_ID: letters, digits, '_', '.', '-')")
    return match.group(1), match.group(2)


def decode(topic: str, payload: bytes, received_at: dt.datetime) -> list[Reading | DeviceStatus]:
    device_id, kind = topic_parts(topic)
    if kind == "status":
        return [_status(device_id, payload, received_at)]
    if kind == "cmd/ack":
        return [_answer(device_id, payload, received_at)]
    body = load_json(payload)
    if isinstance(body, list):
        if len(body) > MAX_READINGS:
            raise DecodeError("too_large", f"{len(body)} readings in one message; send at most {MAX_READINGS}")
        return decode_batch(body, lambda item: _reading(device_id, item, received_at), "reading")
    return [_reading(device_id, body, received_at)]


def _reading(device_id: str, item: Any, received_at: dt.datetime) -> Reading:
    obj = as_object(item, "a reading")
    units = None
    if "values" in obj:
        if not obj.keys() <= _READING_KEYS:
            extra = set(obj) - _READING_KEYS
            raise DecodeError("bad_type", f"a reading has ts, values (and units, device_id) only; also found"
                              f" {show(sorted(extra))}")
        if "device_id" in obj and obj["device_id"] != device_id:
            raise DecodeError("device_mismatch", f"a reading of {show(obj['device_id'])} on the topic of {device_id}:"
                              " each device publishes on its own topic")
        values = as_object(obj["values"], '"values"')
        ts = fix_time(obj["ts"], "ts", received_at) if obj.get("ts") is not None else received_at
        if "units" in obj:
            units = as_object(obj["units"], '"units"')
            if not all(isinstance(u, str) for u in units.values()):
                raise DecodeError("bad_type", '"units" maps a field to the name of its unit, e.g. {"depth_cm": "cm"}')
    else:                                          # a bare {field: value}: stamped on arrival
        if "ts" in obj:
            raise DecodeError("bad_type", 'a reading with "ts" puts its fields under "values"')
        values, ts = obj, received_at
    if not values:
        raise DecodeError("missing_field", "a reading without values")
    if len(values) > MAX_FIELDS:
        raise DecodeError("too_large", f"{len(values)} fields in one reading; at most {MAX_FIELDS}")
    checked = {}
    for name, value in values.items():                 # numbers as floats, booleans as they are
        kind = type(value)
        if kind is int:
            value = float(value)
        elif kind is float:
            if not math.isfinite(value):
                raise DecodeError("bad_value", f"field {show(name)} is not a finite number")
        elif kind is not bool:
            raise DecodeError("bad_type", f'field {show(name)} must be a number or true/false, got {show(value)}'
                              " (send units in the catalog's unit, without text)")
        checked[name] = value
    return Reading(device_id, ts, checked, units)


def _status(device_id: str, payload: bytes, received_at: dt.datetime) -> DeviceStatus:
    text = payload.strip().lower()
    if text in (b"online", b"offline"):
        return DeviceStatus(device_id, text == b"online", received_at)
    obj = as_object(load_json(payload), "a status")
    online = obj.get("online")
    if not isinstance(online, bool):
        raise DecodeError("bad_type", 'a status is "online", "offline" or {"online": true|false}')
    at = check_time(parse_time(obj["ts"], "ts"), received_at) if obj.get("ts") is not None else received_at
    return DeviceStatus(device_id, online, at)


def _answer(device_id: str, payload: bytes, received_at: dt.datetime) -> CommandAnswer:
    """{"id": <the command's id>, "ok": true|false, "result": anything small}."""
    obj = as_object(load_json(payload), "a command answer")
    command_id, ok = obj.get("id"), obj.get("ok")
    if not isinstance(command_id, int) or isinstance(command_id, bool) or not 0 < command_id < 2**62:
        raise DecodeError("bad_type", f'a command answer names its command: "id" (a positive integer), got {show(command_id)}')
    if not isinstance(ok, bool):
        raise DecodeError("bad_type", f'a command answer says "ok": true or false, got {show(ok)}')
    return CommandAnswer(device_id, command_id, ok, obj.get("result"), received_at)
